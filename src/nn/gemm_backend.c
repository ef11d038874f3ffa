/* GEMM backends chosen by measurement (docs/performance.md, "GEMM backends").
 *
 * ps_nn_gemm (gemm.c) is single-threaded by contract: callers share rows, sequences or chunks
 * out between OpenMP threads. Each call falls into a shape class (classify below: attention's
 * tiny products, the layers' thin products, their weight gradients, the products against the
 * item table or the SAE's latents); per class one backend runs it:
 *   own       popsteer's register-blocked kernels (gemm.c; AVX-512, AVX2+FMA or plain C),
 *   openblas  OpenBLAS's cblas_sgemm,
 *   blis      BLIS's cblas_sgemm.
 * Libraries are not linked: they are opened with dlopen(RTLD_NOW | RTLD_LOCAL) the first time a
 * GEMM runs, so a machine without one (or with a broken one: it must also pass a small product
 * check) runs the next one, with a note (ps_nn_gemm_notes). RTLD_LOCAL keeps the two libraries'
 * BLAS symbols apart (each binds its own); RTLD_DEEPBIND is not used: the sanitizer runtimes
 * refuse it. OpenBLAS is loaded with OPENBLAS_CORETYPE set from the CPU's features when the user
 * has not set it (0.3.21 misdetects CPUs newer than itself, e.g. a Xeon as "Prescott"); it reads
 * the variable when it loads, which is why it is not linked.
 *
 * POPSTEER_OPENBLAS=/path/libopenblas.so and POPSTEER_BLIS=/path/libblis.so load those builds
 * instead of Debian's.
 *
 * Choice: POPSTEER_GEMM=own|openblas|blis forces one backend for every class (falling back in
 * the order openblas, blis, own when it cannot load); POPSTEER_GEMM=auto (the default) times
 * every loadable backend single-threaded on each class's representative shapes (the shapes of
 * the default model: d = 64, F = 256, chunks of ~800 rows, ~3,400 items, 4,096 latents) and
 * keeps the fastest; own keeps a class unless a library is at least 5 % faster (the timing is
 * noisy, and own is row-independent: see gemm.c). The choice is cached in
 * $XDG_CACHE_HOME/popsteer/ (else ~/.cache/popsteer/) in a file keyed on the CPU model, the
 * library versions and cores, the own kernels' ISA and the build, written atomically; a cache
 * that cannot be read or written only costs the timing again (~0.2 s; reading it: 3 ms). The
 * choice does not depend on the thread count: every backend runs single-threaded inside the
 * callers' threads, so results stay independent of OMP_NUM_THREADS, and bit-identical run to run
 * for the same choice (the cache file, or POPSTEER_GEMM, pins it).
 *
 * State: one context struct, written once under pthread_once before any GEMM reads it (the same
 * pattern as the ISA dispatch in gemm.c), read-only afterwards. */
#include "nn/nn.h"

#include "popsteer/error.h"
#include "popsteer/io.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/clock.h"

#define CBLAS_ROW_MAJOR 101
#define CBLAS_NO_TRANS 111
#define CBLAS_TRANS 112
/* 2: the attention class timed on its 6-row tiles, so choices made on format 1 are measured
 * again. The format is part of the key, hence of the file name: a build of another format
 * running on the same machine keeps its own file instead of overwriting this one. */
#define CACHE_FORMAT "popsteer-gemm-cache 2"

typedef void (*cblas_sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                               int lda, const float *B, int ldb, float beta, float *C, int ldc);

typedef struct gemm_lib {
    void *handle;
    cblas_sgemm_fn sgemm;
    int ok;
    char desc[160]; /* version and kernels, e.g. "OpenBLAS 0.3.21 SkylakeX (OPENBLAS_CORETYPE=SKYLAKEX)" */
} gemm_lib;

typedef struct gemm_ctx {
    gemm_lib lib[PS_GEMM_NBACKENDS];
    int backend[PS_GEMM_NCLASSES];              /* per class */
    double seconds[PS_GEMM_NCLASSES][PS_GEMM_NBACKENDS]; /* the timing (0: not timed) */
    int blas;                                   /* the library ps_nn_sgemm uses, or PS_GEMM_OWN */
    char how[48];                               /* "measured", "cached", "forced (POPSTEER_GEMM=…)" */
    char notes[1024];
    char summary[512];
} gemm_ctx;

static gemm_ctx g_ctx;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static const char *const BACKEND_NAMES[PS_GEMM_NBACKENDS] = {"own", "openblas", "blis"};
static const char *const CLASS_NAMES[PS_GEMM_NCLASSES] = {"attention", "layer", "weight_grad",
                                                          "items",     "items_k", "items_grad"};

const char *ps_nn_gemm_backend_name(int backend)
{
    return backend >= 0 && backend < PS_GEMM_NBACKENDS ? BACKEND_NAMES[backend] : "?";
}

const char *ps_nn_gemm_class_name(int cls)
{
    return cls >= 0 && cls < PS_GEMM_NCLASSES ? CLASS_NAMES[cls] : "?";
}

int ps_nn_gemm_classify(int M, int N, int K, ptrdiff_t a_rs, ptrdiff_t a_ks)
{
    if (M <= 128 && N <= 128 && K <= 128)
        return PS_GEMM_ATTENTION;
    if (K >= 1024)
        return PS_GEMM_ITEMS_K;
    if (a_rs == 1 && a_ks != 1)
        return M >= 1024 ? PS_GEMM_ITEMS_GRAD : PS_GEMM_WEIGHT_GRAD;
    if (N >= 1024)
        return PS_GEMM_ITEMS;
    return PS_GEMM_LAYER;
}

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...)
{
    size_t n = strlen(g_ctx.notes);
    if (n + 3 >= sizeof g_ctx.notes)
        return;
    if (n) {
        memcpy(g_ctx.notes + n, "; ", 3);
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_ctx.notes + n, sizeof g_ctx.notes - n, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------------
 * Loading */

static void *sym(void *h, const char *name)
{
    dlerror();
    return dlsym(h, name);
}

/* The library's cblas_sgemm, single-threaded, in the layout ps_nn_gemm uses. 0 when the shape
 * cannot be expressed (strides that are neither row-major nor transposed, sizes past int). */
static int lib_call(const gemm_lib *L, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks,
                    const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias,
                    int accumulate)
{
    int ta;
    ptrdiff_t lda;
    if (a_ks == 1 && a_rs >= (K > 1 ? K : 1)) {
        ta = CBLAS_NO_TRANS, lda = a_rs;
    } else if (a_rs == 1 && a_ks >= (M > 1 ? M : 1)) {
        ta = CBLAS_TRANS, lda = a_ks;
    } else if (M == 1 && a_ks == 1) { /* one row: its row stride does not matter */
        ta = CBLAS_NO_TRANS, lda = K > 1 ? K : 1;
    } else {
        return 0;
    }
    if (ldb < N || ldc < N || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
        return 0;
    float beta = 0.0f;
    if (bias) {
        for (int i = 0; i < M; i++) {
            float *c = C + (ptrdiff_t)i * ldc;
            for (int j = 0; j < N; j++)
                c[j] = accumulate ? c[j] + bias[j] : bias[j];
        }
        beta = 1.0f;
    } else if (accumulate) {
        beta = 1.0f;
    }
    /* single-threaded: inside an active parallel region OpenBLAS's OpenMP build runs one thread;
     * outside it follows omp_get_max_threads(), which is set to 1 around the call (this task's
     * ICV only). BLIS was set to one thread when it was loaded. */
    const int outside = !omp_in_parallel(), saved = outside ? omp_get_max_threads() : 1;
    if (outside && saved != 1)
        omp_set_num_threads(1);
    L->sgemm(CBLAS_ROW_MAJOR, ta, CBLAS_NO_TRANS, M, N, K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    if (outside && saved != 1)
        omp_set_num_threads(saved);
    return 1;
}

/* A product every correct sgemm gets right to rounding: guards against a library of the wrong
 * integer width or a broken build. */
static int lib_check(const gemm_lib *L)
{
    enum { M = 7, N = 9, K = 5 };
    float A[M * K], B[K * N], C[M * N], bias[N];
    for (int i = 0; i < M * K; i++)
        A[i] = (float)((i * 7) % 11) - 5.0f;
    for (int i = 0; i < K * N; i++)
        B[i] = (float)((i * 5) % 13) - 6.0f;
    for (int j = 0; j < N; j++)
        bias[j] = (float)j;
    if (!lib_call(L, M, N, K, A, K, 1, B, N, C, N, 0.5f, bias, 0))
        return 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s += A[i * K + k] * B[k * N + j];
            if (fabsf(C[i * N + j] - (0.5f * s + bias[j])) > 1e-4f)
                return 0;
        }
    return 1;
}

/* The library at $env_var when set (a newer build in /opt, say), else the first of paths. */
static void *open_first(const char *env_var, const char *const *paths, char *err, size_t errn)
{
    err[0] = 0;
    const char *mine = getenv(env_var);
    if (mine && mine[0]) {
        void *h = dlopen(mine, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *e = dlerror();
            snprintf(err, errn, "%s=%s: %s", env_var, mine, e ? e : "cannot load");
        }
        return h;
    }
    for (int i = 0; paths[i]; i++) {
        void *h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
        if (!err[0]) {
            const char *e = dlerror();
            snprintf(err, errn, "%s", e ? e : paths[i]);
        }
    }
    return NULL;
}

/* OPENBLAS_CORETYPE for this CPU, or NULL to leave OpenBLAS's own detection. */
static const char *openblas_core_for_cpu(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SKYLAKEX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "HASWELL";
#endif
    return NULL;
}

#ifndef POPSTEER_LIBDIR
#define POPSTEER_LIBDIR "/usr/lib/x86_64-linux-gnu"
#endif

static void load_openblas(gemm_lib *L)
{
    /* the OpenMP build first: it runs single-threaded inside our parallel regions */
    static const char *const paths[] = {POPSTEER_LIBDIR "/openblas-openmp/libopenblas.so.0", "libopenblas.so.0",
                                        NULL};
    const char *user_core = getenv("OPENBLAS_CORETYPE"), *core = user_core;
    if (!user_core && (core = openblas_core_for_cpu()) != NULL && setenv("OPENBLAS_CORETYPE", core, 0) != 0) {
        note("openblas: cannot set OPENBLAS_CORETYPE=%s: %s", core, strerror(errno));
        core = NULL;
    }
    char err[256];
    L->handle = open_first("POPSTEER_OPENBLAS", paths, err, sizeof err);
    if (!user_core && core)
        unsetenv("OPENBLAS_CORETYPE"); /* read at load; not passed on to child processes */
    if (!L->handle) {
        note("openblas not loaded (%s)", err);
        return;
    }
    void *f = sym(L->handle, "cblas_sgemm");
    char *(*corename)(void) = NULL, *(*config)(void) = NULL;
    int (*parallel)(void) = NULL;
    void (*set_threads)(int) = NULL;
    void *p;
    if ((p = sym(L->handle, "openblas_get_corename")))
        memcpy(&corename, &p, sizeof p);
    if ((p = sym(L->handle, "openblas_get_config")))
        memcpy(&config, &p, sizeof p);
    if ((p = sym(L->handle, "openblas_get_parallel")))
        memcpy(&parallel, &p, sizeof p);
    if ((p = sym(L->handle, "openblas_set_num_threads")))
        memcpy(&set_threads, &p, sizeof p);
    if (!f) {
        note("openblas: no cblas_sgemm in the library");
        return;
    }
    memcpy(&L->sgemm, &f, sizeof f);
    /* a pthreads build would start its own threads inside ours: one thread (OpenMP: 2) */
    if (parallel && parallel() != 2 && set_threads)
        set_threads(1);
    const char *cfg = config ? config() : "OpenBLAS";
    char ver[64] = "OpenBLAS"; /* "OpenBLAS " + at most 40 + NUL */
    if (cfg && sscanf(cfg, "OpenBLAS %40s", ver + 9) == 1)
        ver[8] = ' ';
    snprintf(L->desc, sizeof L->desc, "%s %s%s%s%s%s", ver, corename ? corename() : "?",
             parallel && parallel() == 2 ? " openmp" : "", core ? " (OPENBLAS_CORETYPE=" : "", core ? core : "",
             core ? (user_core ? ", yours)" : ")") : "");
    L->ok = 1;
}

static void load_blis(gemm_lib *L)
{
#if defined(__SANITIZE_ADDRESS__)
    /* LeakSanitizer's exit-time scan crashes ("Tracer caught signal 11") on the dynamic TLS of a
     * dlopen'ed BLIS that has run (a sanitizer bug of the google/sanitizers#1342 kind; fine
     * with LSAN_OPTIONS=use_tls=0): sanitizer builds test our kernels and OpenBLAS only. */
    (void)L;
    note("blis not loaded in a sanitizer build (LeakSanitizer cannot scan its thread-local storage)");
    return;
#endif
    static const char *const paths[] = {POPSTEER_LIBDIR "/blis-openmp/libblis.so.4", "libblis.so.4", NULL};
    char err[256];
    L->handle = open_first("POPSTEER_BLIS", paths, err, sizeof err);
    if (!L->handle) {
        note("blis not loaded (%s)", err);
        return;
    }
    void *f = sym(L->handle, "cblas_sgemm"), *p;
    void (*set_threads)(int64_t) = NULL;
    char *(*version)(void) = NULL, *(*arch_string)(int) = NULL;
    int (*arch_id)(void) = NULL;
    if ((p = sym(L->handle, "bli_thread_set_num_threads")))
        memcpy(&set_threads, &p, sizeof p);
    if ((p = sym(L->handle, "bli_info_get_version_str")))
        memcpy(&version, &p, sizeof p);
    if ((p = sym(L->handle, "bli_arch_query_id")))
        memcpy(&arch_id, &p, sizeof p);
    if ((p = sym(L->handle, "bli_arch_string")))
        memcpy(&arch_string, &p, sizeof p);
    if (!f || !set_threads) {
        note("blis: no %s in the library", !f ? "cblas_sgemm" : "bli_thread_set_num_threads");
        return;
    }
    memcpy(&L->sgemm, &f, sizeof f);
    set_threads(1); /* dim_t is 64-bit in Debian's build (BLIS_INT_TYPE_SIZE auto on LP64) */
    snprintf(L->desc, sizeof L->desc, "BLIS %s %s", version ? version() : "?",
             arch_id && arch_string ? arch_string(arch_id()) : "?");
    L->ok = 1;
}

/* ---------------------------------------------------------------------------------------------
 * Timing */

typedef struct shape {
    int M, N, K, a_trans;
} shape;

/* The default model's products, per class (d = 64, 2 heads, F = 256, chunks of 16 windows of
 * <= 50 positions, ~3,400 items, 4,096 SAE latents). Attention runs in tiles of 6 query rows
 * (attention_causal.c), so its products have M = 6 (K or N up to the 50 keys), not 50: a
 * library that wins on 50 x 50 x 32 can lose on the calls that are made. */
static const shape SHAPES[PS_GEMM_NCLASSES][3] = {
    [PS_GEMM_ATTENTION] = {{6, 50, 32, 0}, {6, 32, 50, 0}, {6, 32, 50, 1}},
    [PS_GEMM_LAYER] = {{800, 192, 64, 0}, {800, 64, 256, 0}, {800, 256, 64, 0}},
    [PS_GEMM_WEIGHT_GRAD] = {{192, 64, 800, 1}, {64, 256, 800, 1}, {256, 64, 800, 1}},
    [PS_GEMM_ITEMS] = {{256, 3417, 64, 0}, {128, 4096, 64, 0}, {0, 0, 0, 0}},
    [PS_GEMM_ITEMS_K] = {{256, 64, 3417, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}},
    [PS_GEMM_ITEMS_GRAD] = {{3417, 64, 256, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}},
};

static int run_on(int backend, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks, const float *B,
                  ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias, int accumulate)
{
    if (backend == PS_GEMM_OWN) {
        ps_nn_gemm_own(M, N, K, A, a_rs, a_ks, B, ldb, C, ldc, alpha, bias, accumulate);
        return 1;
    }
    return lib_call(&g_ctx.lib[backend], M, N, K, A, a_rs, a_ks, B, ldb, C, ldc, alpha, bias, accumulate);
}

/* Seconds for one pass over the class's shapes (the best of 3 timings of >= 2 ms each). */
static double time_class(int cls, int backend, float *A, float *B, float *C)
{
    double total = 0;
    for (int s = 0; s < 3 && SHAPES[cls][s].M; s++) {
        const shape sh = SHAPES[cls][s];
        const ptrdiff_t a_rs = sh.a_trans ? 1 : sh.K, a_ks = sh.a_trans ? sh.M : 1;
        if (!run_on(backend, sh.M, sh.N, sh.K, A, a_rs, a_ks, B, sh.N, C, sh.N, 1.0f, NULL, 0))
            return INFINITY;
        const double flop = 2.0 * sh.M * sh.N * sh.K;
        const int reps = (int)(2e-3 * 50e9 / flop) + 1; /* ~2 ms at 50 GFLOP/s */
        double best = INFINITY;
        for (int t = 0; t < 3; t++) {
            double t0 = ps_now_seconds();
            for (int r = 0; r < reps; r++)
                run_on(backend, sh.M, sh.N, sh.K, A, a_rs, a_ks, B, sh.N, C, sh.N, 1.0f, NULL, r > 0);
            double dt = (ps_now_seconds() - t0) / reps;
            best = dt < best ? dt : best;
        }
        total += best;
    }
    return total;
}

static int measure(void)
{
    const size_t n = 3417 * 256 + 64; /* the largest operand of SHAPES */
    float *A = malloc(n * sizeof *A), *B = malloc(n * sizeof *B), *C = malloc(n * sizeof *C);
    if (!A || !B || !C) {
        free(A), free(B), free(C);
        note("no memory to time the GEMM backends (%zu bytes): own kernels everywhere", 3 * n * sizeof *A);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        A[i] = (float)(i % 7) * 0.01f - 0.02f;
        B[i] = (float)(i % 5) * 0.01f - 0.02f;
        C[i] = 0.0f;
    }
    for (int c = 0; c < PS_GEMM_NCLASSES; c++) {
        g_ctx.backend[c] = PS_GEMM_OWN;
        for (int b = 0; b < PS_GEMM_NBACKENDS; b++)
            g_ctx.seconds[c][b] = b == PS_GEMM_OWN || g_ctx.lib[b].ok ? time_class(c, b, A, B, C) : 0;
        for (int b = 1; b < PS_GEMM_NBACKENDS; b++)
            if (g_ctx.lib[b].ok && g_ctx.seconds[c][b] < 0.95 * g_ctx.seconds[c][g_ctx.backend[c]])
                g_ctx.backend[c] = b;
    }
    free(A), free(B), free(C);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Cache */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown-cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            const char *v = strchr(line, ':');
            if (v) {
                v += v[1] == ' ' ? 2 : 1;
                snprintf(out, n, "%.*s", (int)strcspn(v, "\n"), v);
            }
            break;
        }
    fclose(f);
}

static void cache_key(char *key, size_t n)
{
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    const char *build =
#if defined(__SANITIZE_ADDRESS__)
        "asan"
#elif defined(__OPTIMIZE__)
        "optimized"
#else
        "unoptimized"
#endif
        ;
    snprintf(key, n, "%s | cpu=%s | own=%s | build=%s | openblas=%s | blis=%s", CACHE_FORMAT, cpu, ps_nn_gemm_isa(), build,
             g_ctx.lib[PS_GEMM_OPENBLAS].ok ? g_ctx.lib[PS_GEMM_OPENBLAS].desc : "none",
             g_ctx.lib[PS_GEMM_BLIS].ok ? g_ctx.lib[PS_GEMM_BLIS].desc : "none");
}

static int cache_path(char *path, size_t n, const char *key, int make_dirs)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[1024];
    if (xdg && xdg[0] == '/')
        snprintf(dir, sizeof dir, "%s", xdg);
    else if (home && home[0] == '/')
        snprintf(dir, sizeof dir, "%s/.cache", home);
    else
        return -1;
    if (make_dirs)
        (void)mkdir(dir, 0755); /* exists already, mostly; the fopen below reports real failures */
    size_t len = strlen(dir);
    if (len + 16 >= sizeof dir)
        return -1;
    snprintf(dir + len, sizeof dir - len, "/popsteer");
    if (make_dirs && mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -1;
    int w = snprintf(path, n, "%s/gemm-%016llx.txt", dir, (unsigned long long)fnv1a(key));
    return w > 0 && (size_t)w < n ? 0 : -1;
}

static int cache_read(const char *key)
{
    char path[1200], line[600];
    if (cache_path(path, sizeof path, key, 0) != 0)
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int got = 0, ok = fgets(line, sizeof line, f) && !strncmp(line, CACHE_FORMAT, strlen(CACHE_FORMAT));
    if (ok && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        ok = !strncmp(line, "key ", 4) && !strcmp(line + 4, key);
    } else {
        ok = 0;
    }
    int choice[PS_GEMM_NCLASSES];
    while (ok && fgets(line, sizeof line, f)) {
        char cls[32], be[32];
        double sec[PS_GEMM_NBACKENDS] = {0};
        if (sscanf(line, "%31s %31s %lf %lf %lf", cls, be, &sec[0], &sec[1], &sec[2]) < 2)
            continue;
        for (int c = 0; c < PS_GEMM_NCLASSES; c++)
            if (!strcmp(cls, CLASS_NAMES[c]))
                for (int b = 0; b < PS_GEMM_NBACKENDS; b++)
                    if (!strcmp(be, BACKEND_NAMES[b]) && (b == PS_GEMM_OWN || g_ctx.lib[b].ok)) {
                        choice[c] = b;
                        memcpy(g_ctx.seconds[c], sec, sizeof sec);
                        got |= 1 << c;
                    }
    }
    fclose(f);
    if (got != (1 << PS_GEMM_NCLASSES) - 1)
        return -1;
    memcpy(g_ctx.backend, choice, sizeof choice);
    return 0;
}

static void cache_write(const char *key)
{
    char path[1200];
    if (cache_path(path, sizeof path, key, 1) != 0) {
        note("GEMM choice not cached: no cache directory (set XDG_CACHE_HOME or HOME)");
        return;
    }
    ps_atomic_file af;
    ps_error err;
    if (ps_atomic_open(&af, path, &err) != PS_OK) {
        note("GEMM choice not cached: %s", err.msg);
        return;
    }
    fprintf(af.fp, "%s\nkey %s\n# class backend seconds(own openblas blis), single-threaded, per pass\n",
            CACHE_FORMAT, key);
    for (int c = 0; c < PS_GEMM_NCLASSES; c++)
        fprintf(af.fp, "%s %s %.9f %.9f %.9f\n", CLASS_NAMES[c], BACKEND_NAMES[g_ctx.backend[c]], g_ctx.seconds[c][0],
                g_ctx.seconds[c][1], g_ctx.seconds[c][2]);
    if (ps_atomic_commit(&af, &err) != PS_OK)
        note("GEMM choice not cached: %s", err.msg);
}

/* ---------------------------------------------------------------------------------------------
 * Initialisation */

static void summarise(void)
{
    size_t n = 0;
    n += (size_t)snprintf(g_ctx.summary + n, sizeof g_ctx.summary - n, "%s:", g_ctx.how);
    for (int c = 0; c < PS_GEMM_NCLASSES && n < sizeof g_ctx.summary; c++)
        n += (size_t)snprintf(g_ctx.summary + n, sizeof g_ctx.summary - n, " %s=%s", CLASS_NAMES[c],
                              BACKEND_NAMES[g_ctx.backend[c]]);
}

static void init(void)
{
    const char *want = getenv("POPSTEER_GEMM");
    if (want && !want[0])
        want = NULL;
    int forced = -1;
    if (want && strcmp(want, "auto") != 0) {
        for (int b = 0; b < PS_GEMM_NBACKENDS; b++)
            if (!strcmp(want, BACKEND_NAMES[b]))
                forced = b;
        if (forced < 0) {
            note("POPSTEER_GEMM=%s is not one of auto, own, openblas, blis: %s", want, "auto");
            fprintf(stderr, "popsteer: note: POPSTEER_GEMM=%s is not one of auto, own, openblas, blis: using auto\n",
                    want);
        }
    }
    if (forced != PS_GEMM_OWN) {
        load_openblas(&g_ctx.lib[PS_GEMM_OPENBLAS]);
        load_blis(&g_ctx.lib[PS_GEMM_BLIS]);
        for (int b = 1; b < PS_GEMM_NBACKENDS; b++)
            if (g_ctx.lib[b].ok && !lib_check(&g_ctx.lib[b])) {
                g_ctx.lib[b].ok = 0;
                note("%s loaded but failed the product check: not used (%s)", BACKEND_NAMES[b], g_ctx.lib[b].desc);
            }
    }
    g_ctx.blas = g_ctx.lib[PS_GEMM_OPENBLAS].ok ? PS_GEMM_OPENBLAS
                 : g_ctx.lib[PS_GEMM_BLIS].ok   ? PS_GEMM_BLIS
                                                : PS_GEMM_OWN;
    if (forced >= 0) {
        int b = forced;
        while (b != PS_GEMM_OWN && !g_ctx.lib[b].ok)
            b = b == PS_GEMM_OPENBLAS ? PS_GEMM_BLIS : PS_GEMM_OWN;
        if (b != forced) {
            fprintf(stderr, "popsteer: note: POPSTEER_GEMM=%s: %s: using %s\n", want, g_ctx.notes, BACKEND_NAMES[b]);
            note("POPSTEER_GEMM=%s could not be used: %s instead", want, BACKEND_NAMES[b]);
        }
        for (int c = 0; c < PS_GEMM_NCLASSES; c++)
            g_ctx.backend[c] = b;
        if (b != PS_GEMM_OWN)
            g_ctx.blas = b;
        snprintf(g_ctx.how, sizeof g_ctx.how, "forced (POPSTEER_GEMM=%.16s)", want);
    } else {
        char key[900];
        cache_key(key, sizeof key);
        if (cache_read(key) == 0) {
            snprintf(g_ctx.how, sizeof g_ctx.how, "cached");
        } else if (measure() == 0) {
            snprintf(g_ctx.how, sizeof g_ctx.how, "measured");
            cache_write(key);
        } else {
            snprintf(g_ctx.how, sizeof g_ctx.how, "default");
        }
    }
    summarise();
}

static void ensure(void)
{
    if (pthread_once(&g_once, init) != 0)
        abort(); /* only on misuse of the once object */
}

int ps_nn_gemm_backend_for(int M, int N, int K, ptrdiff_t a_rs, ptrdiff_t a_ks)
{
    ensure();
    return g_ctx.backend[ps_nn_gemm_classify(M, N, K, a_rs, a_ks)];
}

int ps_nn_gemm_class_backend(int cls)
{
    ensure();
    return cls >= 0 && cls < PS_GEMM_NCLASSES ? g_ctx.backend[cls] : PS_GEMM_OWN;
}

int ps_nn_gemm_rows_exact(void)
{
    for (int c = 0; c < PS_GEMM_NCLASSES; c++)
        if (ps_nn_gemm_class_backend(c) != PS_GEMM_OWN)
            return 0;
    return 1;
}

int ps_nn_gemm_lib(int backend, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks,
                   const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias,
                   int accumulate)
{
    ensure();
    if (backend <= PS_GEMM_OWN || backend >= PS_GEMM_NBACKENDS || !g_ctx.lib[backend].ok)
        return 0;
    return lib_call(&g_ctx.lib[backend], M, N, K, A, a_rs, a_ks, B, ldb, C, ldc, alpha, bias, accumulate);
}

int ps_nn_gemm_available(int backend)
{
    ensure();
    return backend == PS_GEMM_OWN || (backend > 0 && backend < PS_GEMM_NBACKENDS && g_ctx.lib[backend].ok);
}

const char *ps_nn_gemm_backends(void)
{
    ensure();
    return g_ctx.summary;
}

const char *ps_nn_gemm_notes(void)
{
    ensure();
    return g_ctx.notes;
}

const char *ps_nn_gemm_library(int backend)
{
    ensure();
    if (backend <= PS_GEMM_OWN || backend >= PS_GEMM_NBACKENDS)
        return ps_nn_gemm_isa();
    return g_ctx.lib[backend].ok ? g_ctx.lib[backend].desc : "not loaded";
}

double ps_nn_gemm_class_seconds(int cls, int backend)
{
    ensure();
    return cls >= 0 && cls < PS_GEMM_NCLASSES && backend >= 0 && backend < PS_GEMM_NBACKENDS
               ? g_ctx.seconds[cls][backend]
               : 0;
}

/* cblas_sgemm semantics (row-major, op(A) op(B), beta) on the BLAS library, or on our kernels
 * when no library loaded (B transposed through a copy, or plain loops without memory). */
void ps_nn_blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc)
{
    ensure();
    if (M <= 0 || N <= 0)
        return;
    if (g_ctx.blas != PS_GEMM_OWN) {
        const int outside = !omp_in_parallel(), saved = outside ? omp_get_max_threads() : 1;
        if (outside && saved != 1)
            omp_set_num_threads(1);
        g_ctx.lib[g_ctx.blas].sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS,
                                    tb ? CBLAS_TRANS : CBLAS_NO_TRANS, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        if (outside && saved != 1)
            omp_set_num_threads(saved);
        return;
    }
    if (beta != 0.0f && beta != 1.0f)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] *= beta;
    const ptrdiff_t a_rs = ta ? 1 : lda, a_ks = ta ? lda : 1;
    const int acc = beta != 0.0f;
    if (!tb) {
        ps_nn_gemm_own(M, N, K, A, a_rs, a_ks, B, ldb, C, ldc, alpha, NULL, acc);
        return;
    }
    float *bt = malloc((size_t)K * N * sizeof *bt + 1);
    if (bt) {
        if (ldb == K)
            ps_nn_transpose(bt, B, N, K);
        else /* B is [N, K] with row stride ldb */
            for (int j = 0; j < N; j++)
                for (int k = 0; k < K; k++)
                    bt[(size_t)k * N + j] = B[(size_t)j * ldb + k];
        ps_nn_gemm_own(M, N, K, A, a_rs, a_ks, bt, N, C, ldc, alpha, NULL, acc);
        free(bt);
        return;
    }
    for (int i = 0; i < M; i++) /* no memory for the copy: plain loops */
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s += A[i * a_rs + k * a_ks] * B[(size_t)j * ldb + k];
            C[(size_t)i * ldc + j] = acc ? C[(size_t)i * ldc + j] + alpha * s : alpha * s;
        }
}
