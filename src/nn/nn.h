/* Neural-network kernels on plain float arrays (internal API of libpopsteer).
 *
 * Conventions (after karpathy/llm.c):
 * - row-major, shapes in the comment above each function ([N,C] = N rows of C floats);
 * - x_forward writes its outputs (overwrites); x_backward ACCUMULATES (+=) into every gradient
 *   buffer it is given, so the caller zeroes them once and residual branches just add up;
 * - no allocation: callers pass every buffer (scratch sizes are given by helper functions);
 * - non-BLAS loops use OpenMP with static schedules, and no reduction depends on the thread
 *   count: sums over rows are split by output column (each output is summed in row order by
 *   one thread), so results are bitwise identical for any OMP_NUM_THREADS.
 * - GEMMs go through ps_nn_gemm / ps_nn_sgemm (below), single-threaded per call or split in a
 *   thread-count-independent way, so the whole model is bitwise independent of OMP_NUM_THREADS. */
#ifndef POPSTEER_NN_H
#define POPSTEER_NN_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * Random numbers (rng.c) */

/* The splitmix64 finaliser: a bijective 64-bit mixer. */
uint64_t ps_nn_mix64(uint64_t z);

/* Sequential generator for weight initialisation (splitmix64 stream). */
typedef struct ps_nn_rng {
    uint64_t state;
    int has_spare; /* Box-Muller makes normals in pairs */
    double spare;
} ps_nn_rng;

void ps_nn_rng_seed(ps_nn_rng *r, uint64_t seed);
uint64_t ps_nn_rng_u64(ps_nn_rng *r);
/* Uniform in (0, 1] (never 0, so log() is safe). */
double ps_nn_rng_uniform(ps_nn_rng *r);
/* Standard normal by Box-Muller. */
double ps_nn_rng_normal(ps_nn_rng *r);

/* ---------------------------------------------------------------------------------------------
 * Embedding (embedding.c) */

/* out[B,L,C] = table[ids[b,l]] + pos[l];  ids [B,L] in [0, rows), table [rows,C], pos [L,C] */
void ps_nn_embedding_forward(float *out, const int32_t *ids, const float *table, const float *pos,
                             int B, int L, int C);
/* dtable[ids[b,l]] += dout[b,l] except for ids == padding_idx (PyTorch padding_idx: that row gets
 * no gradient from the lookup); dpos[l] += sum_b dout[b,l]. dpos may be NULL. */
void ps_nn_embedding_backward(float *dtable, float *dpos, const float *dout, const int32_t *ids,
                              int B, int L, int C, int padding_idx);

/* ---------------------------------------------------------------------------------------------
 * LayerNorm (layernorm.c): biased variance, eps inside the square root (PyTorch). */

/* x [N,C], w [C], b [C] -> out [N,C], mean [N], rstd [N] (saved for backward) */
void ps_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                             const float *b, int N, int C, float eps);
/* dout [N,C] -> dx [N,C] +=, dw [C] +=, db [C] += */
void ps_nn_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                              const float *w, const float *mean, const float *rstd, int N, int C);

/* Serial versions for callers that parallelise at a higher level (the model's chunks). */
void ps_nn_layernorm_rows(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                          int N, int C, float eps);
/* dx [N,C] = (or += with accumulate) ..., dw [C] +=, db [C] += (rows in order). */
void ps_nn_layernorm_backward_rows(float *dx, float *dw, float *db, const float *dout, const float *x,
                                   const float *w, const float *mean, const float *rstd, int N, int C,
                                   int accumulate);

/* ---------------------------------------------------------------------------------------------
 * Linear, PyTorch layout (linear.c) */

/* y [N,OC] = x [N,IC] W^T + b;  W [OC,IC], b [OC] (may be NULL) */
void ps_nn_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int IC,
                          int OC);
/* dy [N,OC] -> dx [N,IC] += dy W, dW [OC,IC] += dy^T x, db [OC] += sum_n dy. dx/db may be NULL. */
void ps_nn_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                           const float *W, int N, int IC, int OC);

/* Row-major C [M,N] = alpha op(A) op(B) + beta C (cblas_sgemm arguments, ta/tb nonzero =
 * transposed), on the BLAS library gemm_backend.c loaded. Large products (m*n*k >= 2^20) are
 * threaded by us: the larger of M and N is cut into at most 8
 * blocks whose size depends on the shape only, the blocks are shared out between the OpenMP
 * threads, each block is one single-threaded sgemm. One thread pool for everything, and every
 * output element comes from the same call whatever the thread count, so results do not depend
 * on OMP_NUM_THREADS. */
void ps_nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);

/* Our GEMM, single-threaded (callers parallelise over rows / sequences / chunks), gemm.c:
 *   C [M,N] = alpha * A B (+ bias [N])   or, with accumulate, C [M,N] += alpha * A B
 * with A(i,k) = A[i*a_rs + k*a_ks] (row-major: a_rs = lda, a_ks = 1; transposed: a_rs = 1,
 * a_ks = lda) and B(k,j) = B[k*ldb + j]. Every element is one FMA chain over k in order (K is cut
 * at fixed multiples of 384, the later pieces added to C), so C[i][j] depends only on row i of
 * A, column j of B, K, alpha, bias[j] and the mode: NOT on M, N, where the row or column sits in
 * the call, or the thread. That is what makes the model's rows computable in any grouping (a
 * user vector alone, or inside a batch) with identical bits. The instruction set (AVX-512,
 * AVX2+FMA, plain C) is picked at load time; POPSTEER_GEMM_ISA=generic|avx2|avx512 forces one
 * for testing. The paths differ in the last bits from each other. */
void ps_nn_gemm(int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks, const float *B,
                ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias, int accumulate);
/* "avx512", "avx2" or "generic": the path our kernels use. */
const char *ps_nn_gemm_isa(void);
/* Our kernels alone, whatever backend ps_nn_gemm picked for the shape. */
void ps_nn_gemm_own(int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks, const float *B,
                    ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias, int accumulate);

/* GEMM backends (gemm_backend.c): ps_nn_gemm runs each shape class on the backend measured
 * fastest on this machine (cached per machine), or the one POPSTEER_GEMM=own|openblas|blis
 * forces; libraries are dlopen'ed, a missing or broken one is skipped with a note. With a
 * library backend a class loses our kernels' row independence (results then differ in the last
 * bits between groupings of the same rows), not its determinism: single-threaded calls, the same
 * bits run to run and for any thread count. */
enum { PS_GEMM_OWN, PS_GEMM_OPENBLAS, PS_GEMM_BLIS, PS_GEMM_NBACKENDS };
enum { PS_GEMM_ATTENTION, PS_GEMM_LAYER, PS_GEMM_WEIGHT_GRAD, PS_GEMM_ITEMS, PS_GEMM_ITEMS_K, PS_GEMM_ITEMS_GRAD,
       PS_GEMM_NCLASSES };
int ps_nn_gemm_classify(int M, int N, int K, ptrdiff_t a_rs, ptrdiff_t a_ks);
int ps_nn_gemm_backend_for(int M, int N, int K, ptrdiff_t a_rs, ptrdiff_t a_ks);
int ps_nn_gemm_class_backend(int cls);
/* 1 when every class runs on our kernels: a row's result is then the same bits whatever rows
 * share its call (tests compare bits then, and to float rounding otherwise). */
int ps_nn_gemm_rows_exact(void);
/* The call on a library backend (1), or 0 when it is not loaded or cannot take the strides. */
int ps_nn_gemm_lib(int backend, int M, int N, int K, const float *A, ptrdiff_t a_rs, ptrdiff_t a_ks,
                   const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, float alpha, const float *bias,
                   int accumulate);
int ps_nn_gemm_available(int backend);
const char *ps_nn_gemm_backend_name(int backend);
const char *ps_nn_gemm_class_name(int cls);
/* "measured: attention=own layer=own ...", how the choice was made and what it is. */
const char *ps_nn_gemm_backends(void);
/* Libraries that did not load or were refused, "" when none. */
const char *ps_nn_gemm_notes(void);
/* A backend's version and kernels ("OpenBLAS 0.3.21 SkylakeX openmp (OPENBLAS_CORETYPE=SKYLAKEX)"). */
const char *ps_nn_gemm_library(int backend);
/* The timing behind the choice: seconds per pass over the class's shapes (0: not timed). */
double ps_nn_gemm_class_seconds(int cls, int backend);
/* cblas_sgemm (row-major) on the BLAS library in use, single-threaded; our kernels without one. */
void ps_nn_blas_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc);
/* dst [cols, rows] = src [rows, cols]^T */
void ps_nn_transpose(float *dst, const float *src, int rows, int cols);

/* Column sums: out[c] += sum_n x[n,c] for x [N,C] (deterministic, used for biases). */
void ps_nn_colsum_acc(float *out, const float *x, int N, int C);

/* Serial: y [n] += x [n] (vectorised for the machine's widest ISA). */
void ps_nn_add_to(float *y, const float *x, size_t n);
/* Serial: out[c] += sum_n x[n*ldx + c], rows in order. */
void ps_nn_colsum_rows(float *out, const float *x, int N, int C, ptrdiff_t ldx);

/* ---------------------------------------------------------------------------------------------
 * GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)) (gelu.c) */

/* x [n] -> out [n]; out may equal x */
void ps_nn_gelu_forward(float *out, const float *x, size_t n);
/* dx [n] += gelu'(x) dout */
void ps_nn_gelu_backward(float *dx, const float *x, const float *dout, size_t n);

/* Serial spans: out [n] = gelu(x); dx [n] = (or += with accumulate) gelu'(x) dout. */
void ps_nn_gelu_span(float *out, const float *x, size_t n);
void ps_nn_gelu_backward_span(float *dx, const float *x, const float *dout, size_t n, int accumulate);

/* ---------------------------------------------------------------------------------------------
 * Dropout with a counter-based mask (dropout.c).
 *
 * Element e of a call is kept iff the 32-bit hash word of (seed, stream, e) >= p * 2^32; kept
 * elements are scaled by 1/(1-p). The mask depends on nothing else (not on thread count, order
 * or chunking), so backward recomputes it instead of storing it. `stream` must differ between
 * the calls of a training step and between steps (the model uses step * sites + site). */
typedef struct ps_nn_dropout {
    float p;         /* drop probability in [0, 1); 0 = identity */
    uint64_t seed;
    uint64_t stream;
} ps_nn_dropout;

/* 1 if element e is kept. */
int ps_nn_dropout_keep(const ps_nn_dropout *d, uint64_t e);
/* out [n] = x * mask / (1-p); out may equal x. d NULL or p == 0: copy. */
void ps_nn_dropout_forward(float *out, const float *x, size_t n, const ps_nn_dropout *d);
/* dx [n] += dout * mask / (1-p) */
void ps_nn_dropout_backward(float *dx, const float *dout, size_t n, const ps_nn_dropout *d);

/* Serial span of a larger masked array: out[t] = x[t] * mask(e0 + t) / (1-p), plus add[t] when add
 * is not NULL (add may equal out: accumulation). The mask of element e0 + t is the one
 * ps_nn_dropout_forward gives element e0 + t of the whole array, so an array can be processed in
 * any pieces. Inactive dropout: out = x (+ add). out may equal x. */
void ps_nn_dropout_span(float *out, const float *x, const float *add, size_t n, const ps_nn_dropout *d,
                        uint64_t e0);

/* ---------------------------------------------------------------------------------------------
 * Causal, padding-masked multi-head self-attention core as in RecBole (attention.c).
 *
 * qkv [B*L, 3C]: each row is q | k | v (C = H * hd each, head h in columns h*hd .. h*hd+hd-1).
 * scores[b,h,i,j] = q_i . k_j / sqrt(hd) + (j <= i && ids[b,j] != 0 ? 0 : -10000)
 * probs = softmax_j(scores); probs_drop = dropout(probs); ctx[b,i, head h] = sum_j probs_drop v_j.
 * The -10000 is added, not used to skip keys, so even an all-padding row matches PyTorch. */

/* -> ctx [B*L, C], probs [B,H,L,L]; probs_drop [B,H,L,L] is written only when drop is active
 * (d != NULL and p > 0); it may equal probs (in-place) when probs is not needed afterwards. */
void ps_nn_attention_forward(float *ctx, float *probs, float *probs_drop, const float *qkv,
                             const int32_t *ids, int B, int L, int C, int H,
                             const ps_nn_dropout *drop);
/* dctx [B*L, C] -> dqkv [B*L, 3C] +=. dscratch [B,H,L,L] is overwritten. probs_drop is the one
 * the forward wrote (ignored when drop is inactive). */
void ps_nn_attention_backward(float *dqkv, float *dscratch, const float *dctx, const float *qkv,
                              const float *probs, const float *probs_drop, int B, int L, int C,
                              int H, const ps_nn_dropout *drop);

/* Causal attention of ONE sequence, all heads, single-threaded (attention_causal.c), with the
 * masking above. Query row i sees keys 0..i only (the later keys' -10000 gives exact zeros), so
 * row i's result does not depend on how many rows follow it; a row whose keys 0..i are all
 * padding keeps PyTorch's softmax over all Le keys.
 *   q: query rows q0..q1-1 at q + (i - q0) * q_ld (head h at column h*hd);
 *   kv: key j at kv + j*kv_ld + h*hd, value j at kv + j*kv_ld + C + h*hd (kv = qkv + C for
 *       fused qkv rows), j = 0..Le-1;
 *   ids [Le]: key item ids (0 = padding);
 *   probs [H, Le, Le]: rows q0..q1-1 written (zeros past the visible keys);
 *   probs_d [H, Le, Le]: the same after dropout (written only when drop is active);
 *   ctx: rows q0..q1-1 at ctx + (i - q0) * ctx_ld.
 * Dropout element of (h, i, j) is e_base + (h*L + i)*L + j with L the full sequence length, so
 * the masks are those of a [B, H, L, L] array with e_base = b*H*L*L.
 * scratch: ps_nn_attn_causal_scratch_floats(L, C, H) floats. */
size_t ps_nn_attn_causal_scratch_floats(int L, int C, int H);
void ps_nn_attn_causal_forward(float *ctx, ptrdiff_t ctx_ld, float *probs, float *probs_d, const float *q,
                               ptrdiff_t q_ld, const float *kv, ptrdiff_t kv_ld, const int32_t *ids, int Le,
                               int q0, int q1, int C, int H, const ps_nn_dropout *drop, uint64_t e_base, int L,
                               float *scratch);
/* All Le rows: dctx [Le, C] -> dqkv [Le, 3C] (written, not accumulated). qkv, probs, probs_d as
 * the forward left them (q0 = 0, q1 = Le). */
void ps_nn_attn_causal_backward(float *dqkv, const float *dctx, const float *qkv, const float *probs,
                                const float *probs_d, const int32_t *ids, int Le, int C, int H,
                                const ps_nn_dropout *drop, uint64_t e_base, int L, float *scratch);

/* ---------------------------------------------------------------------------------------------
 * Softmax cross-entropy against a table (softmax_ce.c), fused forward + backward.
 *
 * For N rows h [N,C] and a table E [V,C]: logits = h E^T [N,V], loss_n = logsumexp(logits_n) -
 * logits_n[target_n]. Rows are processed in blocks of `block` rows, so memory is O(block * V)
 * however large N is. Returns sum_n loss_n (accumulated in double, in row order).
 * If dh != NULL: dh [N,C] += grad_scale * dL/dh and dE [V,C] += grad_scale * dL/dE, i.e. the
 * gradient of grad_scale * sum_n loss_n (grad_scale = 1/N gives the mean). dE may be NULL.
 * targets must lie in [0, V). scratch: ps_nn_softmax_ce_scratch_floats(block, V) floats. */
size_t ps_nn_softmax_ce_scratch_floats(int block, int V);
double ps_nn_softmax_ce(float *dh, float *dE, const float *h, const float *E, const int32_t *target,
                        int N, int V, int C, float grad_scale, int block, float *scratch);
/* Serial rows of logits [nb, V] -> losses [nb] (double); with want_grad each row becomes
 * grad_scale * (softmax - onehot(target)). */
void ps_nn_ce_rows(float *logits, int nb, int V, const int32_t *target, int want_grad, float grad_scale,
                   double *losses);

/* ---------------------------------------------------------------------------------------------
 * Adam, PyTorch semantics, no weight decay (adam.c). t is the step number after increment
 * (1 for the first step). Hyperparameters in double, as Python hands them to PyTorch: float
 * constants such as 1 - beta2 are rounded from the double value, not computed in float. */
void ps_nn_adam_step(float *p, const float *g, float *m, float *v, size_t n, double lr, double beta1,
                     double beta2, double eps, int64_t t);

/* ---------------------------------------------------------------------------------------------
 * Small helpers (util in linear.c) */

/* Splits [0, n) into nth near-equal contiguous parts; part t is [*lo, *hi). */
void ps_nn_split(int n, int nth, int t, int *lo, int *hi);
/* Inside a parallel region: this thread's contiguous part of [0, n). */
void ps_nn_thread_span(size_t n, size_t *lo, size_t *hi);

#endif
