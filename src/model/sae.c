/* TopK sparse autoencoder: parameters, inference pieces, and the batch forward/backward (SPEC §3).
 *
 * The batch forward never holds the dense [B,m] pre-activations: rows are processed in chunks of
 * CHUNK rows, one chunk per OpenMP task (our AVX-512 GEMM into a per-thread buffer, then TopK,
 * decode and the per-row part of the backward while the chunk is still in cache; with OpenBLAS's
 * sgemm, which runs its AVX2 kernels on Zen 4, an epoch took 28 % longer). The backward exploits
 * sparsity: dL/dpre is non-zero only at the k TopK and k_aux AuxK slots of a row, so the W_enc / W_dec
 * gradients are accumulated per selected latent from a latent-major (CSR) list of those slots,
 * about (k + k_aux) * d * 2 multiply-adds per row against 2 * m * d for a dense dpre + sgemm (a 13x
 * saving at the default shape), and the sum for every latent runs in row order on one thread. */
#include "popsteer/sae.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* Rows per forward task: 128 x 4096 floats (2 MB) stays in L2/L3 between the GEMM writing it and
 * the TopK scan reading it, and is large enough for the GEMM to run near peak. */
#define CHUNK 128
/* Latents per dynamic-schedule task in the sparse weight-gradient pass. */
#define LATENT_TASK 32
/* Row groups of the latent index build: fixed (not the thread count), so the order of every
 * latent's list, and with it every gradient sum, is the same for any number of threads. */
#define INDEX_GROUPS 16

/* Rows per block of the inference encoder (ps_sae_encoder_topk): 32 x 4096 floats (512 KB) stay
 * in L2 between the GEMM writing them and the TopK scan reading them. */
#define INFER_CHUNK 32

/* ---------------------------------------------------------------------------------------------
 * Configuration and parameters */

void ps_sae_config_init(ps_sae_config *c, int d_in, int scale)
{
    long long m = (long long)d_in * scale;
    c->d_in = d_in;
    c->n_latents = m > INT32_MAX || m < INT32_MIN ? INT32_MAX : (int)m;
    c->k = PS_SAE_DEFAULT_K;
    c->k_aux = PS_SAE_DEFAULT_K_AUX;
    c->aux_coef = PS_SAE_DEFAULT_AUX_COEF;
}

int ps_sae_config_validate(const ps_sae_config *c, ps_error *err)
{
    if (c->d_in < 1)
        return ps_fail(err, "SAE config: d_in is %d, must be at least 1", c->d_in);
    if (c->n_latents < 1 || c->n_latents == INT32_MAX)
        return ps_fail(err, "SAE config: n_latents is %d, must be between 1 and %d (d_in x scale)",
                       c->n_latents, INT32_MAX - 1);
    if ((size_t)c->n_latents * (size_t)c->d_in > ((size_t)1 << 40))
        return ps_fail(err, "SAE config: n_latents %d x d_in %d is too large", c->n_latents, c->d_in);
    if (c->k < 1 || c->k > c->n_latents)
        return ps_fail(err, "SAE config: k is %d, must be between 1 and n_latents (%d)", c->k,
                       c->n_latents);
    if (c->k_aux < 1 || c->k_aux > c->n_latents)
        return ps_fail(err, "SAE config: k_aux is %d, must be between 1 and n_latents (%d)", c->k_aux,
                       c->n_latents);
    if (!(c->aux_coef >= 0.0f) || !isfinite(c->aux_coef))
        return ps_fail(err, "SAE config: aux_coef is %g, must be a finite number >= 0",
                       (double)c->aux_coef);
    return PS_OK;
}

const char *ps_sae_tensor_name(int t)
{
    switch (t) {
    case PS_SAE_W_ENC: return "W_enc";
    case PS_SAE_B_ENC: return "b_enc";
    case PS_SAE_W_DEC: return "W_dec";
    case PS_SAE_B_DEC: return "b_dec";
    default: return "?";
    }
}

ps_sae_tensors ps_sae_view(const ps_sae *sae, float *buf)
{
    ps_sae_tensors t;
    t.W_enc = buf + sae->offset[PS_SAE_W_ENC];
    t.b_enc = buf + sae->offset[PS_SAE_B_ENC];
    t.W_dec = buf + sae->offset[PS_SAE_W_DEC];
    t.b_dec = buf + sae->offset[PS_SAE_B_DEC];
    return t;
}

ps_sae *ps_sae_create(const ps_sae_config *cfg, ps_error *err)
{
    if (ps_sae_config_validate(cfg, err) != PS_OK)
        return NULL;
    ps_sae *sae = ps_calloc(1, sizeof *sae, "SAE", err);
    if (!sae)
        return NULL;
    sae->cfg = *cfg;
    size_t m = (size_t)cfg->n_latents, d = (size_t)cfg->d_in;
    sae->size[PS_SAE_W_ENC] = m * d;
    sae->size[PS_SAE_B_ENC] = m;
    sae->size[PS_SAE_W_DEC] = m * d;
    sae->size[PS_SAE_B_DEC] = d;
    size_t off = 0;
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        sae->offset[t] = off;
        off += sae->size[t];
    }
    sae->n_params = off;
    sae->val_fvu = NAN;
    sae->params = ps_calloc(off, sizeof(float), "SAE parameters", err);
    if (!sae->params) {
        free(sae);
        return NULL;
    }
    return sae;
}

void ps_sae_free(ps_sae *sae)
{
    if (!sae)
        return;
    free(sae->params);
    free(sae->grads);
    free(sae->adam_m);
    free(sae->adam_v);
    free(sae);
}

void ps_sae_init(ps_sae *sae, uint64_t seed)
{
    const int m = sae->cfg.n_latents, d = sae->cfg.d_in;
    ps_sae_tensors p = ps_sae_view(sae, sae->params);
    ps_nn_rng rng;
    ps_nn_rng_seed(&rng, seed);
    const double bound = 1.0 / sqrt((double)d);
    for (size_t i = 0; i < sae->size[PS_SAE_W_ENC]; i++)
        p.W_enc[i] = (float)((2.0 * ps_nn_rng_uniform(&rng) - 1.0) * bound);
    for (int j = 0; j < m; j++) {
        const float *we = p.W_enc + (size_t)j * d;
        float *wd = p.W_dec + (size_t)j * d;
        double nrm = 0.0;
        for (int i = 0; i < d; i++)
            nrm += (double)we[i] * we[i];
        nrm = sqrt(nrm);
        for (int i = 0; i < d; i++) /* an all-zero row (probability 0) stays zero, never NaN */
            wd[i] = nrm > 0.0 ? (float)(we[i] / nrm) : 0.0f;
    }
    memset(p.b_enc, 0, sae->size[PS_SAE_B_ENC] * sizeof(float));
    memset(p.b_dec, 0, sae->size[PS_SAE_B_DEC] * sizeof(float));
    if (sae->adam_m)
        memset(sae->adam_m, 0, sae->n_params * sizeof(float));
    if (sae->adam_v)
        memset(sae->adam_v, 0, sae->n_params * sizeof(float));
    sae->adam_t = 0;
    sae->trained_epochs = 0;
    sae->val_fvu = NAN;
}

int ps_sae_alloc_grads(ps_sae *sae, ps_error *err)
{
    if (!sae->grads)
        sae->grads = ps_calloc(sae->n_params, sizeof(float), "SAE gradients", err);
    return sae->grads ? PS_OK : PS_ERR;
}

int ps_sae_alloc_adam(ps_sae *sae, ps_error *err)
{
    if (!sae->adam_m)
        sae->adam_m = ps_calloc(sae->n_params, sizeof(float), "SAE Adam first moments", err);
    if (sae->adam_m && !sae->adam_v)
        sae->adam_v = ps_calloc(sae->n_params, sizeof(float), "SAE Adam second moments", err);
    return sae->adam_m && sae->adam_v ? PS_OK : PS_ERR;
}

void ps_sae_zero_grads(ps_sae *sae)
{
    if (sae->grads)
        memset(sae->grads, 0, sae->n_params * sizeof(float));
}

int ps_sae_adam_step(ps_sae *sae, float lr, float beta1, float beta2, float eps, ps_error *err)
{
    if (!sae->grads || !sae->adam_m || !sae->adam_v)
        return ps_fail(err, "SAE Adam step: gradient and moment buffers are not allocated");
    sae->adam_t++;
    ps_nn_adam_step(sae->params, sae->grads, sae->adam_m, sae->adam_v, sae->n_params, lr, beta1,
                    beta2, eps, sae->adam_t);
    return PS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * TopK selection */

/* Heap order: the root is the worst kept entry. a is worse than b when it is smaller, or equal
 * with a larger latent index (so ties keep the smaller index). */
static inline int worse(float va, int32_t ia, float vb, int32_t ib)
{
    return va < vb || (va == vb && ia > ib);
}

static void sift_down(float *v, int32_t *ix, int n, int pos)
{
    float vp = v[pos];
    int32_t ip = ix[pos];
    for (;;) {
        int c = 2 * pos + 1;
        if (c >= n)
            break;
        if (c + 1 < n && worse(v[c + 1], ix[c + 1], v[c], ix[c]))
            c++;
        if (!worse(v[c], ix[c], vp, ip))
            break;
        v[pos] = v[c];
        ix[pos] = ix[c];
        pos = c;
    }
    v[pos] = vp;
    ix[pos] = ip;
}

static void heapify(float *v, int32_t *ix, int n)
{
    for (int p = n / 2 - 1; p >= 0; p--)
        sift_down(v, ix, n, p);
}

/* Repeatedly moves the worst entry to the end: the array ends up best first. */
static void heap_sort_best_first(float *v, int32_t *ix, int n)
{
    for (int end = n - 1; end > 0; end--) {
        float tv = v[0];
        int32_t ti = ix[0];
        v[0] = v[end];
        ix[0] = ix[end];
        v[end] = tv;
        ix[end] = ti;
        sift_down(v, ix, end, 0);
    }
}

static inline float relu(float x)
{
    return x > 0.0f ? x : 0.0f; /* NaN -> 0: never selected over a real value */
}

/* Plain k-heap over relu(row[0..n)), best first. Candidates arrive in increasing index order, so
 * once the heap is full a newcomer can only beat the root by a strictly larger value. Used when
 * fewer than k values are positive (zero ties must then go to the smallest indices). */
static void topk_heap(const float *row, int n, int k, int32_t *idx, float *val)
{
    for (int s = 0; s < k; s++) {
        val[s] = relu(row[s]);
        idx[s] = s;
    }
    heapify(val, idx, k);
    float thr = val[0];
    for (int j = k; j < n; j++) {
        if (row[j] > thr) {
            val[0] = row[j];
            idx[0] = j;
            sift_down(val, idx, k, 0);
            thr = val[0];
        }
    }
    heap_sort_best_first(val, idx, k);
}

/* The k-th largest of a[0..n), 1 <= k <= n, no NaN; reorders a. Wirth's quickselect with a
 * median-of-three pivot value. */
static float kth_largest(float *a, int n, int k)
{
    int lo = 0, hi = n - 1;
    const int t = k - 1;
    while (lo < hi) {
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        float piv = x > y ? (y > z ? y : (x > z ? z : x)) : (x > z ? x : (y > z ? z : y));
        int i = lo, j = hi;
        do {
            while (a[i] > piv)
                i++;
            while (piv > a[j])
                j--;
            if (i <= j) {
                float tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < t)
            lo = i;
        if (t < i)
            hi = j;
    }
    return a[t];
}

#define TOPK_BLOCK 16
#define TOPK_MAX_BLOCKS 1024

/* Maximum of 16 values; NaN is ignored. Four independent lanes so that it vectorises. */
static inline float block_max(const float *x)
{
    float m[4] = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
    for (int q = 0; q < TOPK_BLOCK; q += 4)
        for (int l = 0; l < 4; l++)
            m[l] = x[q + l] > m[l] ? x[q + l] : m[l];
    float a = m[0] > m[1] ? m[0] : m[1], b = m[2] > m[3] ? m[2] : m[3];
    return a > b ? a : b;
}

static inline int count_ge(const float *a, int n, float t)
{
    int c = 0;
#pragma omp simd reduction(+ : c)
    for (int i = 0; i < n; i++)
        c += a[i] >= t;
    return c;
}

/* Feeds x (latent j, arriving in increasing j) to the k-heap being filled from candidates >= T. */
static inline void heap_offer(float x, int32_t j, int k, float T, int32_t *idx, float *val, int *cnt,
                              float *thr)
{
    if (*cnt < k) {
        if (x >= T) {
            val[*cnt] = x;
            idx[*cnt] = j;
            if (++*cnt == k) {
                heapify(val, idx, k);
                *thr = val[0];
            }
        }
    } else if (x > *thr) { /* a later index must be strictly larger to win a tie */
        val[0] = x;
        idx[0] = j;
        sift_down(val, idx, k, 0);
        *thr = val[0];
    }
}

/* idx [k], val [k] = the k best of relu(row[0..n)); best first if sorted, else in heap order.
 *
 * A plain heap scan costs about k ln(n/k) insertions with unpredictable branches (~25k cycles for
 * 4096 latents). Instead, with bm = the maxima of 16-wide blocks: any T such that at least k
 * blocks have bm >= T is a lower bound of the k-th largest value, so only those blocks, and only
 * their values >= T, can contribute. The minimum of the maxima of k groups of blocks is such a T;
 * a few bisection steps (branch-free counts over bm) raise it until about k blocks remain. The
 * heap then sees a few dozen candidates, in index order so ties keep the smaller index. Falls back
 * to the plain heap when T <= 0 (fewer than k positive blocks: zero ties matter). */
static void topk_row(const float *row, int n, int k, int32_t *idx, float *val, int sorted)
{
    const int nb = n / TOPK_BLOCK;
    if (nb < k || nb > TOPK_MAX_BLOCKS) {
        topk_heap(row, n, k, idx, val);
        return;
    }
    float bm[TOPK_MAX_BLOCKS];
    for (int b = 0; b < nb; b++)
        bm[b] = block_max(row + (size_t)b * TOPK_BLOCK);
    const int per = nb / k;
    float lo = INFINITY, hi = -INFINITY;
    for (int g = 0; g < k; g++) {
        const int b1 = g == k - 1 ? nb : (g + 1) * per;
        float mx = -INFINITY;
        for (int b = g * per; b < b1; b++)
            mx = bm[b] > mx ? bm[b] : mx;
        lo = mx < lo ? mx : lo;
        hi = mx > hi ? mx : hi;
    }
    if (!(lo > 0.0f)) {
        topk_heap(row, n, k, idx, val);
        return;
    }
    int c = count_ge(bm, nb, lo);
    for (int it = 0; it < 24 && c > k + k / 4; it++) {
        const float mid = lo + 0.5f * (hi - lo);
        const int cm = count_ge(bm, nb, mid);
        if (cm >= k) {
            lo = mid;
            c = cm;
        } else {
            hi = mid;
        }
    }
    const float T = lo;
    int cnt = 0;
    float thr = T;
    for (int b = 0; b < nb; b++) {
        if (!(cnt < k ? bm[b] >= T : bm[b] > thr))
            continue;
        for (int j = b * TOPK_BLOCK; j < (b + 1) * TOPK_BLOCK; j++)
            heap_offer(row[j], j, k, T, idx, val, &cnt, &thr);
    }
    for (int j = nb * TOPK_BLOCK; j < n; j++) /* the tail after the last full block */
        heap_offer(row[j], j, k, T, idx, val, &cnt, &thr);
    /* cnt == k here: at least k values are >= T */
    if (sorted)
        heap_sort_best_first(val, idx, k);
}

static inline int count_gt(const float *a, int n, float t)
{
    int c = 0;
#pragma omp simd reduction(+ : c)
    for (int i = 0; i < n; i++)
        c += a[i] > t;
    return c;
}

/* The k-th largest of v[0..n) (values >= 0, 1 <= k < n); scratch: n floats (v is not changed).
 * Bisection on the value with branch-free counts: it stops as soon as exactly k values are >= lo
 * (the usual case, ~20 counts), or when lo and hi are adjacent floats; quickselect settles what
 * ties leave open, on the few values >= lo. */
static float kth_value(const float *v, int n, int k, float *scratch)
{
    float hi = 0.0f;
    for (int t = 0; t < n; t++)
        hi = v[t] > hi ? v[t] : hi;
    if (count_gt(v, n, 0.0f) < k)
        return 0.0f;
    if (count_ge(v, n, hi) >= k)
        return hi;
    float lo = 0.0f; /* invariant: count_ge(lo) >= k > count_ge(hi) */
    for (int it = 0; it < 64; it++) {
        const float mid = lo + 0.5f * (hi - lo);
        if (!(mid > lo && mid < hi))
            break;
        const int c = count_ge(v, n, mid);
        if (c == k)
            return mid; /* exactly k values are >= mid: the set is decided */
        if (c > k)
            lo = mid;
        else
            hi = mid;
    }
    int c = 0;
    for (int t = 0; t < n; t++)
        if (v[t] >= lo)
            scratch[c++] = v[t];
    return kth_largest(scratch, c, k);
}

/* The k best of relu(row[cand[t]]) over the candidates cand[0..nc) (increasing), k <= nc: every
 * value > T in latent order, then values == T by smallest latent, where T bounds the k-th largest
 * (AuxK needs the set, not an order). The first pass is branch-free: it writes every candidate and
 * advances only past those kept, so idx and val need one spare slot (k + 1 entries).
 * scratch: 2 * nc floats. */
static void topk_among(const float *row, const int32_t *cand, int nc, int k, int32_t *idx,
                       float *val, float *scratch)
{
    float *v = scratch;
    for (int t = 0; t < nc; t++)
        v[t] = relu(row[cand[t]]);
    const float T = k < nc ? kth_value(v, nc, k, scratch + nc) : -1.0f;
    int s = 0;
    for (int t = 0; t < nc; t++) {
        idx[s] = cand[t];
        val[s] = v[t];
        s += v[t] > T;
    }
    for (int t = 0; t < nc && s < k; t++) { /* ties at T, smallest latent first */
        if (v[t] == T) {
            idx[s] = cand[t];
            val[s] = v[t];
            s++;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Inference */

/* c [m] = b_enc − W_enc b_dec, in double: the folded encoder bias, so that
 * (h − b_dec) W_encᵀ + b_enc = h W_encᵀ + c is one sgemm on h itself. */
static void encoder_bias(const ps_sae *sae, float *c)
{
    const int m = sae->cfg.n_latents, d = sae->cfg.d_in;
    ps_sae_tensors p = ps_sae_view(sae, sae->params);
#pragma omp parallel for schedule(static) if ((size_t)m * d > 65536)
    for (int j = 0; j < m; j++) {
        const float *w = p.W_enc + (size_t)j * d;
        double s = p.b_enc[j];
        for (int i = 0; i < d; i++)
            s -= (double)w[i] * p.b_dec[i];
        c[j] = (float)s;
    }
}

/* pre [R,m] = h [R,d] W_encᵀ + c: the bias rows first, the product added with beta = 1. */
static void pre_from_bias(const ps_sae *sae, const float *h, int R, const float *c, float *pre)
{
    const int m = sae->cfg.n_latents, d = sae->cfg.d_in;
    for (int r = 0; r < R; r++)
        if (pre + (size_t)r * m != c)
            memcpy(pre + (size_t)r * m, c, (size_t)m * sizeof(float));
    ps_nn_sgemm(0, 1, R, m, d, 1.0f, h, d, sae->params + sae->offset[PS_SAE_W_ENC], d, 1.0f, pre, m);
}

void ps_sae_encode_pre(const ps_sae *sae, const float *h, int B, float *pre)
{
    if (B <= 0)
        return;
    encoder_bias(sae, pre); /* row 0 doubles as the bias vector: no scratch */
    pre_from_bias(sae, h, B, pre, pre);
}

void ps_sae_encoder_reset_bias(ps_sae_encoder *e)
{
    encoder_bias(e->sae, e->bias);
}

void ps_sae_encoder_free(ps_sae_encoder *e)
{
    free(e->w_t);
    free(e->bias);
    free(e->scratch);
    memset(e, 0, sizeof *e);
}

int ps_sae_encoder_init(ps_sae_encoder *e, const ps_sae *sae, ps_error *err)
{
    memset(e, 0, sizeof *e);
    const size_t m = (size_t)sae->cfg.n_latents, d = (size_t)sae->cfg.d_in;
    e->sae = sae;
    e->n_threads = omp_get_max_threads();
    e->w_t = ps_calloc(d * m, sizeof *e->w_t, "SAE encoder weights", err);
    e->bias = e->w_t ? ps_calloc(m, sizeof *e->bias, "SAE encoder bias", err) : NULL;
    e->scratch = e->bias ? ps_calloc((size_t)e->n_threads * INFER_CHUNK, m * sizeof(float), "SAE pre-activation blocks",
                                     err)
                         : NULL;
    if (!e->scratch) {
        ps_sae_encoder_free(e);
        return PS_ERR;
    }
    ps_nn_transpose(e->w_t, sae->params + sae->offset[PS_SAE_W_ENC], (int)m, (int)d);
    ps_sae_encoder_reset_bias(e);
    return PS_OK;
}

/* Blocks of INFER_CHUNK rows, one per thread at a time: pre = h W_encᵀ + bias into the thread's
 * scratch with the row-independent GEMM (so a row's bits do not depend on the block or the
 * thread count), then TopK while the block is still in L2. */
void ps_sae_encoder_topk(const ps_sae_encoder *e, const float *h, int B, int32_t *idx, float *val)
{
    if (B <= 0)
        return;
    const int m = e->sae->cfg.n_latents, d = e->sae->cfg.d_in, k = e->sae->cfg.k;
    const int n_blocks = (B + INFER_CHUNK - 1) / INFER_CHUNK;
    int nth = omp_get_max_threads() < e->n_threads ? omp_get_max_threads() : e->n_threads;
    nth = n_blocks < nth ? n_blocks : nth;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int blk = 0; blk < n_blocks; blk++) {
        const int r0 = blk * INFER_CHUNK, r1 = r0 + INFER_CHUNK < B ? r0 + INFER_CHUNK : B;
        float *pre = e->scratch + (size_t)omp_get_thread_num() * INFER_CHUNK * m;
        ps_nn_gemm(r1 - r0, m, d, h + (size_t)r0 * d, d, 1, e->w_t, m, pre, m, 1.0f, e->bias, 0);
        for (int b = r0; b < r1; b++)
            topk_row(pre + (size_t)(b - r0) * m, m, k, idx + (size_t)b * k, val + (size_t)b * k, 1);
    }
}

void ps_sae_encoder_pre(const ps_sae_encoder *e, const float *h, int B, float *pre)
{
    const int m = e->sae->cfg.n_latents, d = e->sae->cfg.d_in;
    const int n_blocks = (B + INFER_CHUNK - 1) / INFER_CHUNK;
#pragma omp parallel for schedule(dynamic, 1) if (n_blocks > 1)
    for (int blk = 0; blk < n_blocks; blk++) {
        const int r0 = blk * INFER_CHUNK, r1 = r0 + INFER_CHUNK < B ? r0 + INFER_CHUNK : B;
        ps_nn_gemm(r1 - r0, m, d, h + (size_t)r0 * d, d, 1, e->w_t, m, pre + (size_t)r0 * m, m, 1.0f, e->bias, 0);
    }
}

void ps_sae_topk(const ps_sae *sae, const float *pre, int B, int32_t *idx, float *val)
{
    const int m = sae->cfg.n_latents, k = sae->cfg.k;
#pragma omp parallel for schedule(static) if (B >= 64)
    for (int b = 0; b < B; b++)
        topk_row(pre + (size_t)b * m, m, k, idx + (size_t)b * k, val + (size_t)b * k, 1);
}

/* out [d] += Σ_s val[s] W_dec[idx[s]] over n slots. Four slots per pass over out, so out is
 * loaded and stored a quarter as often (W_dec holds finite values, so a zero slot adds 0). */
static void decode_row(const float *W_dec, int d, const int32_t *idx, const float *val, int n,
                       float *out)
{
    int s = 0;
    for (; s + 4 <= n; s += 4) {
        const float *w0 = W_dec + (size_t)idx[s] * d, *w1 = W_dec + (size_t)idx[s + 1] * d;
        const float *w2 = W_dec + (size_t)idx[s + 2] * d, *w3 = W_dec + (size_t)idx[s + 3] * d;
        const float z0 = val[s], z1 = val[s + 1], z2 = val[s + 2], z3 = val[s + 3];
#pragma omp simd
        for (int i = 0; i < d; i++)
            out[i] += (z0 * w0[i] + z1 * w1[i]) + (z2 * w2[i] + z3 * w3[i]);
    }
    for (; s < n; s++) {
        const float *w = W_dec + (size_t)idx[s] * d;
        const float z = val[s];
#pragma omp simd
        for (int i = 0; i < d; i++)
            out[i] += z * w[i];
    }
}

/* dz[s] = dv · W_dec[idx[s]] where val[s] > 0 (the TopK/ReLU mask), else 0. Four dot products
 * per pass, so the four sums are independent dependency chains. */
static void slot_grads(const float *W_dec, int d, const float *dv, const int32_t *idx,
                       const float *val, int n, float *dz)
{
    int s = 0;
    for (; s + 4 <= n; s += 4) {
        const float *w0 = W_dec + (size_t)idx[s] * d, *w1 = W_dec + (size_t)idx[s + 1] * d;
        const float *w2 = W_dec + (size_t)idx[s + 2] * d, *w3 = W_dec + (size_t)idx[s + 3] * d;
        float g0 = 0.0f, g1 = 0.0f, g2 = 0.0f, g3 = 0.0f;
#pragma omp simd reduction(+ : g0, g1, g2, g3)
        for (int i = 0; i < d; i++) {
            g0 += dv[i] * w0[i];
            g1 += dv[i] * w1[i];
            g2 += dv[i] * w2[i];
            g3 += dv[i] * w3[i];
        }
        dz[s] = val[s] > 0.0f ? g0 : 0.0f;
        dz[s + 1] = val[s + 1] > 0.0f ? g1 : 0.0f;
        dz[s + 2] = val[s + 2] > 0.0f ? g2 : 0.0f;
        dz[s + 3] = val[s + 3] > 0.0f ? g3 : 0.0f;
    }
    for (; s < n; s++) {
        const float *w = W_dec + (size_t)idx[s] * d;
        float g = 0.0f;
#pragma omp simd reduction(+ : g)
        for (int i = 0; i < d; i++)
            g += dv[i] * w[i];
        dz[s] = val[s] > 0.0f ? g : 0.0f;
    }
}

void ps_sae_decode(const ps_sae *sae, const int32_t *idx, const float *val, int B, float *out)
{
    const int d = sae->cfg.d_in, k = sae->cfg.k;
    ps_sae_tensors p = ps_sae_view(sae, sae->params);
#pragma omp parallel for schedule(static) if (B >= 256)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * d;
        memcpy(o, p.b_dec, (size_t)d * sizeof(float));
        decode_row(p.W_dec, d, idx + (size_t)b * k, val + (size_t)b * k, k, o);
    }
}

size_t ps_sae_scratch_bytes(const ps_sae *sae, int B)
{
    size_t rows = B > 0 ? (size_t)B : 0;
    return rows * ((size_t)sae->cfg.n_latents * sizeof(float) +
                   (size_t)sae->cfg.k * (sizeof(float) + sizeof(int32_t)));
}

void ps_sae_reconstruct(const ps_sae *sae, const float *h, int B, float *out, void *scratch)
{
    if (B <= 0)
        return;
    const size_t m = (size_t)sae->cfg.n_latents, k = (size_t)sae->cfg.k;
    float *pre = scratch;
    float *val = pre + (size_t)B * m;
    int32_t *idx = (int32_t *)(void *)(val + (size_t)B * k);
    ps_sae_encode_pre(sae, h, B, pre);
    ps_sae_topk(sae, pre, B, idx, val);
    ps_sae_decode(sae, idx, val, B, out);
}

/* ---------------------------------------------------------------------------------------------
 * Batch forward / backward */

struct ps_sae_workspace {
    int d, m, k, k_aux;  /* the model shape this was made for */
    int max_batch;
    int nthreads;        /* OpenMP threads of the chunk loop (fixed at creation) */
    int chunk;           /* rows per chunk buffer: min(max_batch, CHUNK) */
    float *pre;          /* [nthreads, chunk, m] per-thread pre-activation chunks */
    float *sel;          /* [nthreads, 2m] per-thread AuxK selection scratch */
    int32_t *sel_idx;    /* [nthreads, k_aux+1] per-thread AuxK selection (one spare slot) */
    float *sel_val;      /* [nthreads, k_aux+1] */
    double *mean;        /* [d] batch mean */
    float *cbias;        /* [m] folded encoder bias */
    float *w_t;          /* [d, m] W_encᵀ for ps_nn_gemm (refreshed every batch) */
    int32_t *idx;        /* [B,k] TopK latents */
    float *val;          /* [B,k] their ReLU'd pre-activations */
    float *dz;           /* [B,k] dL/dpre at those slots */
    int32_t *aidx;       /* [B,ka] AuxK latents (ka = min(k_aux, #dead), row stride ka), by index */
    float *aval, *adz;   /* [B,ka] */
    float *dhat;         /* [B,d] dL/dĥ (the residual ĥ − h before scaling) */
    float *dehat;        /* [B,d] dL/dê */
    double *row_sse;     /* [B] ‖ĥ − h‖² */
    double *row_aux;     /* [B] ‖ê − e‖² */
    int32_t *dead;       /* [m] dead latents, increasing */
    int32_t *start;      /* [m+1] CSR: slots of latent j are entry[start[j] .. start[j+1]) */
    int32_t *gcount;     /* [INDEX_GROUPS, m] per row-group counts, then fill cursors */
    int32_t *entry;      /* [B*(k+k_aux)] slot ids: b*k+s (TopK), B*k + b*ka+s (AuxK) */
    int32_t *entry_row;  /* [B*(k+k_aux)] the row b of each slot */
    float *lat_sum;      /* [m] Σ dL/dpre per latent (= the b_enc gradient of the batch) */
    float *tmp_d;        /* [d] */
};

void ps_sae_workspace_free(ps_sae_workspace *ws)
{
    if (!ws)
        return;
    free(ws->pre);
    free(ws->sel);
    free(ws->sel_idx);
    free(ws->sel_val);
    free(ws->mean);
    free(ws->cbias);
    free(ws->w_t);
    free(ws->idx);
    free(ws->val);
    free(ws->dz);
    free(ws->aidx);
    free(ws->aval);
    free(ws->adz);
    free(ws->dhat);
    free(ws->dehat);
    free(ws->row_sse);
    free(ws->row_aux);
    free(ws->dead);
    free(ws->start);
    free(ws->gcount);
    free(ws->entry);
    free(ws->entry_row);
    free(ws->lat_sum);
    free(ws->tmp_d);
    free(ws);
}

ps_sae_workspace *ps_sae_workspace_new(const ps_sae *sae, int max_batch, ps_error *err)
{
    const ps_sae_config *c = &sae->cfg;
    if (max_batch < 1) {
        ps_fail(err, "SAE workspace: batch size %d must be at least 1", max_batch);
        return NULL;
    }
    /* slot ids are int32 */
    if ((int64_t)max_batch * ((int64_t)c->k + c->k_aux) > INT32_MAX) {
        ps_fail(err, "SAE workspace: batch size %d x (k + k_aux) = %lld slots exceeds 2^31 - 1",
                max_batch, (long long)max_batch * ((long long)c->k + c->k_aux));
        return NULL;
    }
    ps_sae_workspace *ws = ps_calloc(1, sizeof *ws, "SAE workspace", err);
    if (!ws)
        return NULL;
    ws->d = c->d_in;
    ws->m = c->n_latents;
    ws->k = c->k;
    ws->k_aux = c->k_aux;
    ws->max_batch = max_batch;
    ws->nthreads = omp_get_max_threads();
    const size_t B = (size_t)max_batch, m = (size_t)c->n_latents, d = (size_t)c->d_in;
    const size_t k = (size_t)c->k, ka = (size_t)c->k_aux;
    ws->chunk = max_batch < CHUNK ? max_batch : CHUNK;
    int ok = (ws->pre = ps_calloc((size_t)ws->nthreads * (size_t)ws->chunk, m * sizeof(float),
                                  "SAE pre-activation chunks", err)) &&
             (ws->sel = ps_calloc((size_t)ws->nthreads * 2, m * sizeof(float), "SAE AuxK scratch", err)) &&
             (ws->sel_idx = ps_calloc((size_t)ws->nthreads, (ka + 1) * sizeof(int32_t),
                                      "SAE AuxK scratch", err)) &&
             (ws->sel_val = ps_calloc((size_t)ws->nthreads, (ka + 1) * sizeof(float),
                                      "SAE AuxK scratch", err)) &&
             (ws->mean = ps_calloc(d, sizeof(double), "SAE batch mean", err)) &&
             (ws->cbias = ps_calloc(m, sizeof(float), "SAE encoder bias", err)) &&
             (ws->w_t = ps_calloc(d * m, sizeof(float), "SAE encoder weights", err)) &&
             (ws->idx = ps_calloc(B * k, sizeof(int32_t), "SAE TopK indices", err)) &&
             (ws->val = ps_calloc(B * k, sizeof(float), "SAE TopK values", err)) &&
             (ws->dz = ps_calloc(B * k, sizeof(float), "SAE TopK gradients", err)) &&
             (ws->aidx = ps_calloc(B * ka, sizeof(int32_t), "SAE AuxK indices", err)) &&
             (ws->aval = ps_calloc(B * ka, sizeof(float), "SAE AuxK values", err)) &&
             (ws->adz = ps_calloc(B * ka, sizeof(float), "SAE AuxK gradients", err)) &&
             (ws->dhat = ps_calloc(B * d, sizeof(float), "SAE reconstruction gradient", err)) &&
             (ws->dehat = ps_calloc(B * d, sizeof(float), "SAE AuxK gradient", err)) &&
             (ws->row_sse = ps_calloc(B, sizeof(double), "SAE row errors", err)) &&
             (ws->row_aux = ps_calloc(B, sizeof(double), "SAE row AuxK errors", err)) &&
             (ws->dead = ps_calloc(m, sizeof(int32_t), "SAE dead list", err)) &&
             (ws->start = ps_calloc(m + 1, sizeof(int32_t), "SAE latent index", err)) &&
             (ws->gcount = ps_calloc(INDEX_GROUPS * m, sizeof(int32_t), "SAE latent index", err)) &&
             (ws->entry = ps_calloc(B * (k + ka), sizeof(int32_t), "SAE latent index", err)) &&
             (ws->entry_row = ps_calloc(B * (k + ka), sizeof(int32_t), "SAE latent index", err)) &&
             (ws->lat_sum = ps_calloc(m, sizeof(float), "SAE latent sums", err)) &&
             (ws->tmp_d = ps_calloc(d, sizeof(float), "SAE scratch", err));
    if (!ok) {
        ps_sae_workspace_free(ws);
        return NULL;
    }
    return ws;
}

/* Batch-level constants of one forward/backward. */
typedef struct batch_ctx {
    const ps_sae *sae;
    ps_sae_workspace *ws;
    const float *h;
    int B;
    int n_dead, ka;     /* dead latents; AuxK slots per row (0: no AuxK) */
    float scale_fvu;    /* dL/dĥ = scale_fvu (ĥ − h) */
    float scale_aux;    /* dL/dê = scale_aux (ê − e) */
    int backward;
} batch_ctx;

/* Rows [r0, r1): pre-activations into the thread's chunk buffer, TopK and AuxK selections,
 * reconstruction and AuxK errors, and the per-row backward (dL/dĥ, dL/dê, dL/dpre at the slots). */
static void forward_rows(const batch_ctx *bc, int r0, int r1, int th)
{
    const ps_sae *sae = bc->sae;
    ps_sae_workspace *ws = bc->ws;
    const int m = ws->m, d = ws->d, k = ws->k, ka = bc->ka;
    ps_sae_tensors p = ps_sae_view(sae, sae->params);
    /* this thread's scratch */
    float *pre = ws->pre + (size_t)th * ws->chunk * m;
    float *sel = ws->sel + (size_t)th * 2 * m;
    int32_t *sel_idx = ws->sel_idx + (size_t)th * (ws->k_aux + 1);
    float *sel_val = ws->sel_val + (size_t)th * (ws->k_aux + 1);
    ps_nn_gemm(r1 - r0, m, d, bc->h + (size_t)r0 * d, d, 1, ws->w_t, m, pre, m, 1.0f, ws->cbias, 0);
    for (int b = r0; b < r1; b++) {
        const float *prow = pre + (size_t)(b - r0) * m;
        const float *hb = bc->h + (size_t)b * d;
        int32_t *idx = ws->idx + (size_t)b * k;
        float *val = ws->val + (size_t)b * k;
        float *res = ws->dhat + (size_t)b * d;
        topk_row(prow, m, k, idx, val, 0); /* the loss does not need the slots in order */
        /* res = ĥ − h */
        memcpy(res, p.b_dec, (size_t)d * sizeof(float));
        decode_row(p.W_dec, d, idx, val, k, res);
        double sse = 0.0;
#pragma omp simd reduction(+ : sse)
        for (int i = 0; i < d; i++) {
            res[i] -= hb[i];
            sse += (double)res[i] * res[i];
        }
        ws->row_sse[b] = sse;
        if (ka > 0) {
            /* ê − e = ê − (h − ĥ) = ê + res; e is a constant, so nothing flows back into res */
            int32_t *aidx = ws->aidx + (size_t)b * ka;
            float *aval = ws->aval + (size_t)b * ka;
            float *diff = ws->dehat + (size_t)b * d;
            topk_among(prow, ws->dead, bc->n_dead, ka, sel_idx, sel_val, sel);
            memcpy(aidx, sel_idx, (size_t)ka * sizeof(int32_t));
            memcpy(aval, sel_val, (size_t)ka * sizeof(float));
            memset(diff, 0, (size_t)d * sizeof(float));
            decode_row(p.W_dec, d, aidx, aval, ka, diff);
            double aux = 0.0;
#pragma omp simd reduction(+ : aux)
            for (int i = 0; i < d; i++) {
                diff[i] += res[i];
                aux += (double)diff[i] * diff[i];
            }
            ws->row_aux[b] = aux;
        }
        if (!bc->backward)
            continue;
        for (int i = 0; i < d; i++)
            res[i] *= bc->scale_fvu;
        /* dL/dpre = dL/dz at kept slots with pre > 0 (the ReLU/TopK mask); zero elsewhere */
        slot_grads(p.W_dec, d, res, idx, val, k, ws->dz + (size_t)b * k);
        if (ka > 0) {
            float *dehat = ws->dehat + (size_t)b * d;
            for (int i = 0; i < d; i++)
                dehat[i] *= bc->scale_aux;
            slot_grads(p.W_dec, d, dehat, ws->aidx + (size_t)b * ka, ws->aval + (size_t)b * ka, ka,
                       ws->adz + (size_t)b * ka);
        }
    }
}

/* Latent-major list of the non-zero slots (a counting sort by latent). Within a latent the slots
 * come by row group, and inside a group TopK slots in row order, then AuxK slots in row order.
 * Each group counts and fills its own rows in parallel; the offsets are a prefix sum over
 * (latent, group). entry_row keeps the row of each slot so the gradient pass needs no division. */
static void build_latent_index(const batch_ctx *bc)
{
    ps_sae_workspace *ws = bc->ws;
    const int m = ws->m, B = bc->B, k = ws->k, ka = bc->ka;
    const int G = B < INDEX_GROUPS ? B : INDEX_GROUPS;
    const int32_t nk = (int32_t)((size_t)B * k);
#pragma omp parallel for schedule(static) num_threads(ws->nthreads)
    for (int g = 0; g < G; g++) {
        int32_t *cnt = ws->gcount + (size_t)g * m;
        int lo, hi;
        ps_nn_split(B, G, g, &lo, &hi);
        memset(cnt, 0, (size_t)m * sizeof(int32_t));
        for (size_t e = (size_t)lo * k; e < (size_t)hi * k; e++)
            cnt[ws->idx[e]] += ws->val[e] > 0.0f;
        for (size_t e = (size_t)lo * ka; e < (size_t)hi * ka; e++)
            cnt[ws->aidx[e]] += ws->aval[e] > 0.0f;
    }
    int32_t pos = 0;
    for (int j = 0; j < m; j++) { /* gcount becomes each (group, latent)'s fill cursor */
        ws->start[j] = pos;
        for (int g = 0; g < G; g++) {
            int32_t c = ws->gcount[(size_t)g * m + j];
            ws->gcount[(size_t)g * m + j] = pos;
            pos += c;
        }
    }
    ws->start[m] = pos;
#pragma omp parallel for schedule(static) num_threads(ws->nthreads)
    for (int g = 0; g < G; g++) {
        int32_t *cur = ws->gcount + (size_t)g * m;
        int lo, hi;
        ps_nn_split(B, G, g, &lo, &hi);
        for (int b = lo; b < hi; b++)
            for (int s = 0; s < k; s++) {
                const int32_t e = b * k + s;
                if (ws->val[e] > 0.0f) {
                    const int32_t q = cur[ws->idx[e]]++;
                    ws->entry[q] = e;
                    ws->entry_row[q] = b;
                }
            }
        for (int b = lo; b < hi; b++)
            for (int s = 0; s < ka; s++) {
                const int32_t e = b * ka + s;
                if (ws->aval[e] > 0.0f) {
                    const int32_t q = cur[ws->aidx[e]]++;
                    ws->entry[q] = nk + e;
                    ws->entry_row[q] = b;
                }
            }
    }
}

/* Slots ahead whose input rows are prefetched: the rows are scattered over the batch. */
#define PREFETCH_AHEAD 4

/* dW_dec[j] += Σ z dL/d(ĥ or ê)_b; dW_enc[j] += Σ dL/dpre (h_b − b_dec); lat_sum[j] = Σ dL/dpre,
 * over the slots of latent j. One latent per iteration, so no two threads touch the same row. */
static void backward_weights(const batch_ctx *bc, ps_sae_tensors g)
{
    const ps_sae *sae = bc->sae;
    ps_sae_workspace *ws = bc->ws;
    const int m = ws->m, d = ws->d, k = ws->k;
    const int32_t nk = (int32_t)((size_t)bc->B * k);
    const float *b_dec = sae->params + sae->offset[PS_SAE_B_DEC];
#pragma omp parallel for schedule(dynamic, LATENT_TASK) num_threads(ws->nthreads)
    for (int j = 0; j < m; j++) {
        float *restrict gD = g.W_dec + (size_t)j * d;
        float *restrict gE = g.W_enc + (size_t)j * d;
        float s = 0.0f;
        const int32_t q1 = ws->start[j + 1];
        for (int32_t q = ws->start[j]; q < q1; q++) {
            if (q + PREFETCH_AHEAD < q1) {
                const int32_t ef = ws->entry[q + PREFETCH_AHEAD];
                const size_t rf = (size_t)ws->entry_row[q + PREFETCH_AHEAD] * d;
                const float *dvf = (ef < nk ? ws->dhat : ws->dehat) + rf;
                for (int i = 0; i < d; i += 16) {
                    __builtin_prefetch(dvf + i);
                    __builtin_prefetch(bc->h + rf + i);
                }
            }
            const int32_t e = ws->entry[q];
            const size_t r = (size_t)ws->entry_row[q] * d;
            float z, dp;
            const float *dv;
            if (e < nk) {
                z = ws->val[e];
                dp = ws->dz[e];
                dv = ws->dhat + r;
            } else {
                z = ws->aval[e - nk];
                dp = ws->adz[e - nk];
                dv = ws->dehat + r;
            }
            const float *hb = bc->h + r;
#pragma omp simd
            for (int i = 0; i < d; i++) {
                gD[i] += z * dv[i];
                gE[i] += dp * (hb[i] - b_dec[i]);
            }
            s += dp;
        }
        ws->lat_sum[j] = s;
    }
}

/* The bias gradients: b_enc from the per-latent sums; b_dec enters twice, once added to ĥ and once
 * subtracted from the encoder input: db_dec += Σ_b dL/dĥ_b − Σ_j lat_sum[j] W_enc[j]. */
static void backward_biases(const batch_ctx *bc, ps_sae_tensors g)
{
    const ps_sae *sae = bc->sae;
    ps_sae_workspace *ws = bc->ws;
    const int m = ws->m, d = ws->d;
    const float *W_enc = sae->params + sae->offset[PS_SAE_W_ENC];
    for (int j = 0; j < m; j++)
        g.b_enc[j] += ws->lat_sum[j];
    ps_nn_colsum_acc(g.b_dec, ws->dhat, bc->B, d);
    float *t = ws->tmp_d;
    memset(t, 0, (size_t)d * sizeof(float));
    for (int j = 0; j < m; j++) {
        const float s = ws->lat_sum[j];
        if (s == 0.0f)
            continue;
        const float *w = W_enc + (size_t)j * d;
#pragma omp simd
        for (int i = 0; i < d; i++)
            t[i] += s * w[i];
    }
    for (int i = 0; i < d; i++)
        g.b_dec[i] -= t[i];
}

/* Σ‖h − mean(h)‖² over the B rows, in double (two passes: mean, then squares). */
static double batch_variance(const float *h, int B, int d, double *mean)
{
    for (int i = 0; i < d; i++)
        mean[i] = 0.0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < d; i++)
            mean[i] += h[(size_t)b * d + i];
    for (int i = 0; i < d; i++)
        mean[i] /= B;
    double v = 0.0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < d; i++) {
            double x = h[(size_t)b * d + i] - mean[i];
            v += x * x;
        }
    return v;
}

double ps_sae_batch_variance(ps_sae_workspace *ws, const float *h, int B)
{
    return batch_variance(h, B, ws->d, ws->mean);
}

static int check_batch(const ps_sae *sae, const ps_sae_workspace *ws, int B, int backward, ps_error *err)
{
    const ps_sae_config *c = &sae->cfg;
    if (ws->d != c->d_in || ws->m != c->n_latents || ws->k != c->k || ws->k_aux != c->k_aux)
        return ps_fail(err, "SAE forward: workspace was made for another model shape");
    if (B < 1 || B > ws->max_batch)
        return ps_fail(err, "SAE forward: batch of %d rows, must be between 1 and %d", B,
                       ws->max_batch);
    if (backward && !sae->grads)
        return ps_fail(err, "SAE backward: gradient buffer not allocated (ps_sae_alloc_grads)");
    return PS_OK;
}

/* The forward (+ backward) of rows h [B,d] whose batch has variance var (their own, or that of a
 * larger batch they are part of: every term is a per-row sum scaled by 1 / var). */
static int forward_backward_var(ps_sae *sae, ps_sae_workspace *ws, const float *h, int B, double var,
                                const uint8_t *dead, int64_t *fire_count, int backward,
                                ps_sae_batch_loss *out)
{
    const ps_sae_config *c = &sae->cfg;
    const int m = c->n_latents, k = c->k;
    int n_dead = 0;
    if (dead)
        for (int j = 0; j < m; j++)
            if (dead[j])
                ws->dead[n_dead++] = j;
    const int ka = c->aux_coef > 0.0f ? (n_dead < c->k_aux ? n_dead : c->k_aux) : 0;
    const double aux_scale = n_dead < c->k_aux ? (double)n_dead / c->k_aux : 1.0;

    batch_ctx bc = { sae, ws, h, B, n_dead, ka, 0.0f, 0.0f, backward };
    if (backward) {
        bc.scale_fvu = (float)(2.0 / var);
        bc.scale_aux = (float)(2.0 * c->aux_coef * aux_scale / var);
    }

    encoder_bias(sae, ws->cbias);
    ps_nn_transpose(ws->w_t, sae->params + sae->offset[PS_SAE_W_ENC], m, c->d_in);
    const int n_chunks = (B + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(ws->nthreads)
    for (int t = 0; t < n_chunks; t++) {
        const int r0 = t * CHUNK, r1 = r0 + CHUNK < B ? r0 + CHUNK : B;
        forward_rows(&bc, r0, r1, omp_get_thread_num());
    }

    double sse = 0.0, aux = 0.0;
    for (int b = 0; b < B; b++)
        sse += ws->row_sse[b];
    if (ka > 0)
        for (int b = 0; b < B; b++)
            aux += ws->row_aux[b];
    if (fire_count) {
        for (size_t e = 0; e < (size_t)B * k; e++)
            if (ws->val[e] > 0.0f)
                fire_count[ws->idx[e]]++;
    }
    if (backward) {
        ps_sae_tensors g = ps_sae_view(sae, sae->grads);
        build_latent_index(&bc);
        backward_weights(&bc, g);
        backward_biases(&bc, g);
    }
    if (out) {
        out->sse = sse;
        out->var = var;
        out->fvu = var > 0.0 ? sse / var : NAN;
        out->auxk = ka > 0 ? (var > 0.0 ? aux_scale * aux / var : NAN) : 0.0;
        out->loss = out->fvu + (double)c->aux_coef * out->auxk;
        out->n_dead = n_dead;
    }
    return PS_OK;
}

int ps_sae_forward_backward(ps_sae *sae, ps_sae_workspace *ws, const float *h, int B,
                            const uint8_t *dead, int64_t *fire_count, int backward,
                            ps_sae_batch_loss *out, ps_error *err)
{
    if (check_batch(sae, ws, B, backward, err) != PS_OK)
        return PS_ERR;
    const double var = batch_variance(h, B, sae->cfg.d_in, ws->mean);
    if (backward && !(var > 0.0))
        return ps_fail(err, "SAE backward: the %d rows of the batch are identical (variance 0), so "
                            "FVU and its gradient are undefined", B);
    return forward_backward_var(sae, ws, h, B, var, dead, fire_count, backward, out);
}

int ps_sae_forward_backward_part(ps_sae *sae, ps_sae_workspace *ws, const float *h, int B, double var,
                                 const uint8_t *dead, int64_t *fire_count, int backward,
                                 ps_sae_batch_loss *out, ps_error *err)
{
    if (check_batch(sae, ws, B, backward, err) != PS_OK)
        return PS_ERR;
    if (!(var > 0.0) || !isfinite(var))
        return ps_fail(err, "SAE forward: the batch variance %g must be a finite number > 0", var);
    return forward_backward_var(sae, ws, h, B, var, dead, fire_count, backward, out);
}
