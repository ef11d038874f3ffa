/* Finite-difference gradient checking shared by the nn and model tests (header-only).
 *
 * Central differences on float inputs: g ~ (f(x+h) - f(x-h)) / (x+h - x-h), with the actual
 * float values of x +- h in the denominator. The forward runs in float, the scalar loss is
 * summed in double; unaffected outputs are bitwise identical in both evaluations and cancel, so
 * the noise is only the rounding of the outputs the perturbation touches.
 *
 * Error measure per element: |analytic - numeric| / max(|analytic|, |numeric|, floor), i.e.
 * relative error, and absolute error / floor for gradients below the floor. */
#ifndef POPSTEER_TEST_FDCHECK_H
#define POPSTEER_TEST_FDCHECK_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef double (*fd_loss_fn)(void *ctx);

typedef struct fd_result {
    double max_err;    /* worst error measure */
    size_t worst;      /* its index */
    double worst_analytic, worst_numeric;
    size_t checked;
} fd_result;

static double fd_numeric(fd_loss_fn f, void *ctx, float *x, size_t i, float h)
{
    const float old = x[i];
    const float xp = old + h, xm = old - h;
    x[i] = xp;
    double lp = f(ctx);
    x[i] = xm;
    double lm = f(ctx);
    x[i] = old;
    return (lp - lm) / ((double)xp - (double)xm);
}

static double fd_err(double a, double n, double floor_)
{
    double s = fmax(fmax(fabs(a), fabs(n)), floor_);
    return fabs(a - n) / s;
}

/* Checks analytic[i] for up to max_samples indices of x spread evenly over [0, n). */
static fd_result fd_check(fd_loss_fn f, void *ctx, float *x, const float *analytic, size_t n,
                          float h, double floor_, size_t max_samples)
{
    fd_result r = {0.0, 0, 0.0, 0.0, 0};
    size_t stride = n > max_samples ? (n + max_samples - 1) / max_samples : 1;
    for (size_t i = 0; i < n; i += stride) {
        double num = fd_numeric(f, ctx, x, i, h);
        double e = fd_err(analytic[i], num, floor_);
        if (e > r.max_err || r.checked == 0) {
            r.max_err = e;
            r.worst = i;
            r.worst_analytic = analytic[i];
            r.worst_numeric = num;
        }
        r.checked++;
    }
    return r;
}

static void fd_report(const char *what, const fd_result *r)
{
    printf("  %-34s max err %.2e over %zu entries (worst #%zu: analytic %.6e, numeric %.6e)\n", what,
           r->max_err, r->checked, r->worst, r->worst_analytic, r->worst_numeric);
}

#endif
