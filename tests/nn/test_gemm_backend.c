/* GEMM backends (src/nn/gemm_backend.c): every loadable library gives our kernels' products to
 * float rounding in every layout ps_nn_gemm is called with; POPSTEER_GEMM forces one, a library
 * that cannot load falls back to the next with a note; the measured choice is cached and read
 * back. The backend table is set up once per process, so each scenario runs in a forked child
 * with its own environment. Speed is not tested here (make bench). */
#include "testutil.h"

#include "nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void fill(float *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

/* 0 when backend b matches our kernels on C = alpha op(A) B (+ bias) (+= C) for row-major and
 * transposed A, one row, and K past the kernels' K block. */
static int check_backend(int b)
{
    static const int shapes[][5] = {/* M, N, K, transposed A, bias|accumulate bits */
                                    {37, 70, 19, 0, 0}, {37, 70, 19, 1, 1}, {1, 130, 64, 0, 2},
                                    {64, 33, 500, 1, 3}, {200, 1100, 64, 0, 1}, {9, 64, 1500, 0, 2}};
    int bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = shapes[s][3];
        const int use_bias = shapes[s][4] & 1, acc = shapes[s][4] & 2;
        float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
        float *C = malloc(sizeof(float) * (size_t)M * N), *R = malloc(sizeof(float) * (size_t)M * N);
        float *bias = malloc(sizeof(float) * (size_t)N);
        if (!A || !B || !C || !R || !bias) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        fill(A, (size_t)M * K, 1), fill(B, (size_t)K * N, 2), fill(C, (size_t)M * N, 3), fill(bias, (size_t)N, 4);
        memcpy(R, C, sizeof(float) * (size_t)M * N);
        const ptrdiff_t a_rs = ta ? 1 : K, a_ks = ta ? M : 1;
        ps_nn_gemm_own(M, N, K, A, a_rs, a_ks, B, N, R, N, 0.75f, use_bias ? bias : NULL, acc);
        if (b == PS_GEMM_OWN)
            ps_nn_gemm_own(M, N, K, A, a_rs, a_ks, B, N, C, N, 0.75f, use_bias ? bias : NULL, acc);
        else if (!ps_nn_gemm_lib(b, M, N, K, A, a_rs, a_ks, B, N, C, N, 0.75f, use_bias ? bias : NULL, acc)) {
            fprintf(stderr, "%s refused shape %zu\n", ps_nn_gemm_backend_name(b), s);
            bad = 1;
        }
        for (size_t i = 0; !bad && i < (size_t)M * N; i++)
            if (!(fabsf(C[i] - R[i]) <= 2e-5f * (1.0f + fabsf(R[i])) * (1.0f + K / 256.0f))) {
                fprintf(stderr, "%s shape %zu element %zu: %.9g, ours %.9g\n", ps_nn_gemm_backend_name(b), s, i,
                        (double)C[i], (double)R[i]);
                bad = 1;
            }
        free(A), free(B), free(C), free(R), free(bias);
    }
    return bad;
}

typedef int (*scenario)(void);

/* Runs fn in a child with the given environment ("NAME=value" pairs, NULL-terminated). */
static int in_child(scenario fn, const char *const *env)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        unsetenv("POPSTEER_GEMM");
        for (int i = 0; env[i]; i++) {
            char name[64];
            const char *eq = strchr(env[i], '=');
            if (!eq || (size_t)(eq - env[i]) >= sizeof name)
                _exit(2);
            snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
            if (setenv(name, eq + 1, 1) != 0)
                _exit(2);
        }
        int rc = fn();
        fflush(NULL);
        _exit(rc);
    }
    int status = 0;
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}

static int every_backend_matches_ours(void)
{
    int bad = 0;
    for (int b = 0; b < PS_GEMM_NBACKENDS; b++) {
        printf("  %-8s %s\n", ps_nn_gemm_backend_name(b), ps_nn_gemm_library(b));
        if (ps_nn_gemm_available(b))
            bad |= check_backend(b);
    }
    return bad;
}

static int forced_own(void)
{
    for (int c = 0; c < PS_GEMM_NCLASSES; c++)
        if (ps_nn_gemm_class_backend(c) != PS_GEMM_OWN)
            return 1;
    return strstr(ps_nn_gemm_backends(), "forced") == NULL;
}

/* POPSTEER_OPENBLAS names a library that does not exist: BLIS (or ours) runs, with a note. */
static int missing_openblas_falls_back(void)
{
    const int want = ps_nn_gemm_available(PS_GEMM_BLIS) ? PS_GEMM_BLIS : PS_GEMM_OWN;
    printf("  %s\n  notes: %s\n", ps_nn_gemm_backends(), ps_nn_gemm_notes());
    for (int c = 0; c < PS_GEMM_NCLASSES; c++)
        if (ps_nn_gemm_class_backend(c) != want)
            return 1;
    if (!strstr(ps_nn_gemm_notes(), "POPSTEER_OPENBLAS=/nonexistent/libopenblas.so.0"))
        return 1;
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4];
    ps_nn_gemm(2, 2, 3, A, 3, 1, B, 2, C, 2, 1.0f, NULL, 0); /* [[4, 5], [10, 11]] */
    return !(C[0] == 4 && C[1] == 5 && C[2] == 10 && C[3] == 11);
}

static int unknown_name_is_auto(void)
{
    return strstr(ps_nn_gemm_notes(), "POPSTEER_GEMM=fastest is not one of") == NULL;
}

static char g_summary[512];
static int measured_then_cached(void)
{
    snprintf(g_summary, sizeof g_summary, "%s", ps_nn_gemm_backends());
    printf("  %s\n", g_summary);
    return strncmp(g_summary, "measured:", 9) != 0;
}
static int cached(void)
{
    return strncmp(ps_nn_gemm_backends(), "cached:", 7) != 0;
}

static void test_backends_match_our_kernels(void **state)
{
    (void)state;
    const char *env[] = {"POPSTEER_GEMM=own", NULL};
    assert_int_equal(in_child(every_backend_matches_ours, env + 1), 0); /* auto: libraries loaded */
    assert_int_equal(in_child(forced_own, env), 0);
}

static void test_missing_library_falls_back(void **state)
{
    (void)state;
    const char *env[] = {"POPSTEER_GEMM=openblas", "POPSTEER_OPENBLAS=/nonexistent/libopenblas.so.0", NULL};
    assert_int_equal(in_child(missing_openblas_falls_back, env), 0);
    const char *env2[] = {"POPSTEER_GEMM=fastest", NULL};
    assert_int_equal(in_child(unknown_name_is_auto, env2), 0);
}

static void test_choice_is_cached(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    static char xdg[1100];
    snprintf(xdg, sizeof xdg, "XDG_CACHE_HOME=%s", dir);
    const char *env[] = {xdg, NULL};
    assert_int_equal(in_child(measured_then_cached, env), 0);
    assert_int_equal(tu_count_entries(dir), 1); /* popsteer/ */
    assert_int_equal(in_child(cached, env), 0);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backends_match_our_kernels),
        cmocka_unit_test(test_missing_library_falls_back),
        cmocka_unit_test(test_choice_is_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
