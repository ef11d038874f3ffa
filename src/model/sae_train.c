/* SAE training loop (SPEC §3 and §9): Adam at a constant learning rate on shuffled batches, AuxK on
 * the latents that stayed dead during the previous epoch, early stopping on validation FVU with the
 * best epoch's parameters kept. Deterministic: the shuffle depends only on (seed, epoch) and every
 * batch computation is thread-count independent (see sae.c). */
#include "popsteer/sae.h"
#include "popsteer/dist.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

void ps_sae_train_options_init(ps_sae_train_options *o)
{
    o->batch_size = 4096;
    o->max_epochs = 50;
    o->patience = 3;
    o->lr = 1e-3f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->seed = 42;
    o->cancel = NULL;
    o->dist = NULL;
}

/* Σ‖x − mean(X)‖² over the whole dataset, in double. */
static double dataset_variance(const float *X, int64_t N, int d, double *mean)
{
    for (int i = 0; i < d; i++)
        mean[i] = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int i = 0; i < d; i++)
            mean[i] += X[n * d + i];
    for (int i = 0; i < d; i++)
        mean[i] /= (double)N;
    double v = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int i = 0; i < d; i++) {
            double x = X[n * d + i] - mean[i];
            v += x * x;
        }
    return v;
}

/* Dataset FVU with a given workspace: the batch errors are summed, the denominator uses the mean of
 * all N rows (not per batch). sae is only read: the forward runs on a view without gradients.
 * With several ranks each takes a contiguous share of the batches and writes their errors into
 * their slots; the slots are summed over the ranks (every slot is nonzero on one rank only, so
 * exactly) and added in batch order, as one process adds them: every rank gets its bits. */
static int dataset_fvu(const ps_sae *sae, ps_sae_workspace *ws, const float *X, int64_t N, int bs,
                       const ps_dist *dist, double *fvu, ps_error *err)
{
    const int d = sae->cfg.d_in;
    double *mean = ps_calloc((size_t)d, sizeof(double), "SAE dataset mean", err);
    if (!mean)
        return PS_ERR;
    const double var = dataset_variance(X, N, d, mean);
    free(mean);
    if (!(var > 0.0))
        return ps_fail(err, "SAE FVU: the %lld vectors are all identical (variance 0), FVU is undefined",
                       (long long)N);
    ps_sae view = *sae;
    view.grads = NULL;
    const int64_t n_batches = (N + bs - 1) / bs;
    double *part = ps_calloc((size_t)n_batches, sizeof *part, "SAE validation errors", err);
    if (!part)
        return PS_ERR;
    int64_t b0, b1;
    ps_dist_share(dist, n_batches, &b0, &b1);
    int rc = PS_OK;
    for (int64_t bi = b0; rc == PS_OK && bi < b1; bi++) {
        const int64_t lo = bi * bs;
        const int B = (int)(N - lo < bs ? N - lo : bs);
        ps_sae_batch_loss L;
        rc = ps_sae_forward_backward(&view, ws, X + lo * d, B, NULL, NULL, 0, &L, err);
        if (rc == PS_OK)
            part[bi] = L.sse;
    }
    if (rc == PS_OK)
        rc = ps_dist_sum_f64(dist, part, (size_t)n_batches, err);
    double sse = 0.0;
    for (int64_t bi = 0; bi < n_batches; bi++)
        sse += part[bi];
    free(part);
    *fvu = sse / var;
    return rc;
}

int ps_sae_fvu(const ps_sae *sae, const float *X, int64_t N, int batch_size, double *fvu,
               ps_error *err)
{
    if (!X || N < 2)
        return ps_fail(err, "SAE FVU: needs at least 2 vectors, got %lld", (long long)N);
    int bs = batch_size > 0 ? batch_size : 4096;
    if (bs > N)
        bs = (int)N;
    ps_sae_workspace *ws = ps_sae_workspace_new(sae, bs, err);
    if (!ws)
        return PS_ERR;
    int rc = dataset_fvu(sae, ws, X, N, bs, NULL, fvu, err);
    ps_sae_workspace_free(ws);
    return rc;
}

static int check_options(const ps_sae_train_options *o, ps_error *err)
{
    if (o->batch_size < 2)
        return ps_fail(err, "SAE training: batch size %d must be at least 2", o->batch_size);
    if (o->max_epochs < 1)
        return ps_fail(err, "SAE training: max epochs %d must be at least 1", o->max_epochs);
    if (o->patience < 1)
        return ps_fail(err, "SAE training: patience %d must be at least 1", o->patience);
    if (!(o->lr > 0.0f) || !isfinite(o->lr))
        return ps_fail(err, "SAE training: learning rate %g must be a finite number > 0", (double)o->lr);
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f) || !(o->beta2 >= 0.0f && o->beta2 < 1.0f))
        return ps_fail(err, "SAE training: Adam betas (%g, %g) must lie in [0, 1)", (double)o->beta1,
                       (double)o->beta2);
    if (!(o->eps > 0.0f) || !isfinite(o->eps))
        return ps_fail(err, "SAE training: Adam eps %g must be a finite number > 0", (double)o->eps);
    return PS_OK;
}

/* A NaN or Inf input would silently poison every parameter, so it is reported up front. */
static int check_finite(const float *X, int64_t N, int d, const char *what, ps_error *err)
{
    for (int64_t n = 0; n < N; n++)
        for (int i = 0; i < d; i++)
            if (!isfinite(X[n * d + i]))
                return ps_fail(err, "SAE training: %s vector %lld, component %d is %s", what,
                               (long long)n, i, isnan(X[n * d + i]) ? "NaN" : "infinite");
    return PS_OK;
}

/* The epoch's order: a Fisher-Yates shuffle of 0..N-1 from a stream that depends only on
 * (seed, epoch), so a run can be reproduced or resumed at any epoch. */
static void shuffle(int64_t *perm, int64_t N, uint64_t seed, int epoch)
{
    ps_nn_rng rng;
    ps_nn_rng_seed(&rng, ps_nn_mix64(seed) ^ ps_nn_mix64(0x5ae0000000000000ULL + (uint64_t)epoch));
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    for (int64_t i = N - 1; i > 0; i--) {
        int64_t j = (int64_t)(ps_nn_rng_u64(&rng) % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

typedef struct train_buffers {
    ps_sae_workspace *ws;
    int64_t *perm;   /* [N] */
    float *hbuf;     /* [bs,d] the gathered batch */
    int64_t *fires;  /* [m] TopK firings this epoch */
    uint8_t *dead;   /* [m] never fired during the previous epoch */
    float *best;     /* [n_params] parameters of the best epoch */
} train_buffers;

static void free_buffers(train_buffers *tb)
{
    ps_sae_workspace_free(tb->ws);
    free(tb->perm);
    free(tb->hbuf);
    free(tb->fires);
    free(tb->dead);
    free(tb->best);
}

static int alloc_buffers(train_buffers *tb, ps_sae *sae, int64_t N, int bs, ps_error *err)
{
    const size_t m = (size_t)sae->cfg.n_latents, d = (size_t)sae->cfg.d_in;
    memset(tb, 0, sizeof *tb);
    int ok = ps_sae_alloc_grads(sae, err) == PS_OK && ps_sae_alloc_adam(sae, err) == PS_OK &&
             (tb->ws = ps_sae_workspace_new(sae, bs, err)) &&
             (tb->perm = ps_calloc((size_t)N, sizeof(int64_t), "SAE training order", err)) &&
             (tb->hbuf = ps_calloc((size_t)bs * d, sizeof(float), "SAE training batch", err)) &&
             (tb->fires = ps_calloc(m, sizeof(int64_t), "SAE firing counts", err)) &&
             (tb->dead = ps_calloc(m, sizeof(uint8_t), "SAE dead mask", err)) &&
             (tb->best = ps_calloc(sae->n_params, sizeof(float), "SAE best parameters", err));
    if (!ok)
        free_buffers(tb);
    return ok ? PS_OK : PS_ERR;
}

/* One Adam step on the batch of B rows starting at perm[lo]. With P ranks, rank r takes the rows
 * [B r / P, B (r + 1) / P) of the batch; the loss is normalised by the whole batch's variance on
 * every rank (each holds all the rows: B d numbers next to the encoder's B d m), so the gradients
 * summed by the allreduce are the one-process gradients up to summation order. The dead mask is
 * the same everywhere (the firing counts are summed at the end of each epoch). *L is this rank's
 * part of the batch's loss terms. */
static int train_batch(ps_sae *sae, train_buffers *tb, const float *X, int64_t lo, int B,
                       const ps_sae_train_options *o, int epoch, ps_sae_batch_loss *L, int *mine,
                       ps_error *err)
{
    const int d = sae->cfg.d_in;
    for (int r = 0; r < B; r++)
        memcpy(tb->hbuf + (size_t)r * d, X + tb->perm[lo + r] * d, (size_t)d * sizeof(float));
    const double var = ps_sae_batch_variance(tb->ws, tb->hbuf, B);
    if (!(var > 0.0))
        return ps_fail(err, "SAE backward: the %d rows of the batch are identical (variance 0), so "
                            "FVU and its gradient are undefined", B);
    int64_t r0, r1;
    ps_dist_share(o->dist, B, &r0, &r1);
    *mine = (int)(r1 - r0);
    memset(L, 0, sizeof *L);
    ps_sae_zero_grads(sae);
    if (r1 > r0 && ps_sae_forward_backward_part(sae, tb->ws, tb->hbuf + r0 * d, (int)(r1 - r0), var,
                                                epoch > 1 ? tb->dead : NULL, tb->fires, 1, L, err) != PS_OK)
        return PS_ERR;
    if (ps_dist_sum_f32(o->dist, sae->grads, sae->n_params, err) != PS_OK ||
        ps_sae_adam_step(sae, o->lr, o->beta1, o->beta2, o->eps, err) != PS_OK)
        return PS_ERR;
    ps_dist_fault_point(o->dist, sae->adam_t);
    return PS_OK;
}

/* The epoch's firing counts and loss sums of every rank, on every rank (one process: as they are). */
static int reduce_epoch(const ps_sae_train_options *o, train_buffers *tb, int m, double sums[2], ps_error *err)
{
    if (ps_dist_sum_i64(o->dist, tb->fires, (size_t)m, err) != PS_OK ||
        ps_dist_sum_f64(o->dist, sums, 2, err) != PS_OK)
        return ps_fail_wrap(err, "summing the SAE epoch over the ranks");
    return PS_OK;
}

/* One pass over the shuffled data; fills the training fields of info. */
static int train_epoch(ps_sae *sae, train_buffers *tb, const float *X, int64_t N,
                       const ps_sae_train_options *o, int epoch, const ps_sae_callbacks *cb,
                       void *ctx, ps_sae_epoch_info *info, ps_error *err)
{
    const int m = sae->cfg.n_latents;
    const int bs = o->batch_size < N ? o->batch_size : (int)N;
    const int64_t n_batches = (N + bs - 1) / bs;
    shuffle(tb->perm, N, o->seed, epoch);
    memset(tb->fires, 0, (size_t)m * sizeof(int64_t));
    double sums[2] = {0.0, 0.0}; /* Σ fvu·B and Σ auxk·B over the batches */
    int64_t rows = 0;
    for (int64_t bi = 0; bi < n_batches; bi++) {
        const int64_t lo = bi * bs;
        const int B = (int)(N - lo < bs ? N - lo : bs);
        if (B < 2)
            continue; /* a lone last row has no batch variance */
        if (o->cancel && o->cancel(ctx))
            return ps_fail(err, "SAE training interrupted at epoch %d, batch %lld", epoch, (long long)bi + 1);
        ps_sae_batch_loss L;
        int mine = 0;
        if (train_batch(sae, tb, X, lo, B, o, epoch, &L, &mine, err) != PS_OK)
            return ps_fail_wrap(err, "epoch %d, batch %lld", epoch, (long long)bi + 1);
        sums[0] += L.fvu * B;
        sums[1] += L.auxk * B;
        rows += B;
        if (cb && cb->batch) {
            ps_sae_batch_info bi_info = { epoch, bi, n_batches, L.loss, L.fvu, L.auxk };
            if (ps_dist_size(o->dist) > 1 && mine > 0) { /* this rank's part, scaled to the batch: the
                                                            exact figure would cost an allreduce */
                const double scale = (double)B / mine;
                bi_info.loss *= scale, bi_info.fvu *= scale, bi_info.auxk *= scale;
            }
            cb->batch(&bi_info, ctx);
        }
    }
    if (reduce_epoch(o, tb, m, sums, err) != PS_OK)
        return PS_ERR;
    int n_dead = 0;
    for (int j = 0; j < m; j++) {
        tb->dead[j] = tb->fires[j] == 0;
        n_dead += tb->dead[j];
    }
    info->epoch = epoch;
    info->train_fvu = rows ? sums[0] / (double)rows : NAN;
    info->train_auxk = rows ? sums[1] / (double)rows : NAN;
    info->dead_fraction = (double)n_dead / m;
    return PS_OK;
}

/* Every rank gets rank 0's parameters and Adam moments after each epoch: the allreduce gives every
 * rank the same sums and so the same steps; this makes it so even for an MPI whose allreduce
 * leaves ranks with different roundings (the validation and the kept model then agree bit for
 * bit). Three copies of the parameters per epoch, next to two allreduces of them per step. */
static int sync_params(ps_sae *sae, const ps_dist *dist, ps_error *err)
{
    if (ps_dist_size(dist) <= 1)
        return PS_OK;
    const size_t bytes = sae->n_params * sizeof(float);
    if (ps_dist_bcast(dist, sae->params, bytes, 0, err) != PS_OK ||
        ps_dist_bcast(dist, sae->adam_m, bytes, 0, err) != PS_OK ||
        ps_dist_bcast(dist, sae->adam_v, bytes, 0, err) != PS_OK)
        return ps_fail_wrap(err, "sharing the SAE between ranks");
    return PS_OK;
}

int ps_sae_train(ps_sae *sae, const float *X, int64_t N, const float *Xval, int64_t Nval,
                 const ps_sae_train_options *o, const ps_sae_callbacks *cb, void *ctx,
                 ps_sae_train_result *res, ps_error *err)
{
    const int d = sae->cfg.d_in;
    if (check_options(o, err) != PS_OK)
        return PS_ERR;
    if (!X || N < 2)
        return ps_fail(err, "SAE training: needs at least 2 training vectors, got %lld", (long long)N);
    if ((Xval == NULL) != (Nval == 0) || Nval < 0 || Nval == 1)
        return ps_fail(err, "SAE training: the validation set must be empty or hold at least 2 "
                            "vectors (got %lld)", (long long)Nval);
    if (check_finite(X, N, d, "training", err) != PS_OK ||
        (Xval && check_finite(Xval, Nval, d, "validation", err) != PS_OK))
        return PS_ERR;
    train_buffers tb;
    const int bs = o->batch_size < N ? o->batch_size : (int)N;
    if (alloc_buffers(&tb, sae, N, bs, err) != PS_OK)
        return PS_ERR;

    int rc = PS_OK, best_epoch = 0, epoch = 0, bad = 0, stopped = 0;
    double best = INFINITY;
    while (epoch < o->max_epochs && !stopped) {
        epoch++;
        const double t0 = omp_get_wtime();
        ps_sae_epoch_info info;
        memset(&info, 0, sizeof info);
        if (train_epoch(sae, &tb, X, N, o, epoch, cb, ctx, &info, err) != PS_OK ||
            sync_params(sae, o->dist, err) != PS_OK) {
            rc = PS_ERR;
            break;
        }
        info.val_fvu = info.train_fvu;
        if (Xval && dataset_fvu(sae, tb.ws, Xval, Nval, bs, o->dist, &info.val_fvu, err) != PS_OK) {
            rc = ps_fail_wrap(err, "epoch %d: validation", epoch);
            break;
        }
        info.is_best = best_epoch == 0 || info.val_fvu < best;
        if (info.is_best) {
            best = info.val_fvu;
            best_epoch = epoch;
            bad = 0;
            memcpy(tb.best, sae->params, sae->n_params * sizeof(float));
        } else if (++bad >= o->patience) {
            stopped = 1;
        }
        info.seconds = omp_get_wtime() - t0;
        int stop_asked = cb && cb->epoch && cb->epoch(&info, ctx) != 0;
        /* rank 0's callback decides for every rank, so all leave the loop together */
        if (ps_dist_bcast(o->dist, &stop_asked, sizeof stop_asked, 0, err) != PS_OK) {
            rc = PS_ERR;
            break;
        }
        if (stop_asked)
            stopped = 1;
    }
    if (best_epoch > 0 && best_epoch != epoch)
        memcpy(sae->params, tb.best, sae->n_params * sizeof(float));
    if (rc == PS_OK) {
        sae->trained_epochs += best_epoch;
        sae->val_fvu = best;
        if (res) {
            res->epochs_run = epoch;
            res->best_epoch = best_epoch;
            res->best_val_fvu = best;
            res->stopped_early = stopped;
        }
    }
    free_buffers(&tb);
    return rc;
}
