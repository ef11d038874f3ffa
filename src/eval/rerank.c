/* Re-ranking baselines, common part: method registry, "name=value" parameter parsing,
 * argument checks, per-user candidate preparation (compaction, normalisation, groups) and
 * candidate extraction. The methods live in rerank_<name>.c. */
#define PS_RERANK_IMPL
#include "popsteer/rerank.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/metrics.h"

static const ps_rerank_method_impl *const registry[] = {
    &ps_rerank_random_impl, &ps_rerank_penalty_impl, &ps_rerank_fair_impl,
    &ps_rerank_xquad_impl,  &ps_rerank_cp_impl,      &ps_rerank_pmmf_impl,
    &ps_rerank_pct_impl,
};
#define N_METHODS ((int)(sizeof registry / sizeof registry[0]))

int ps_rerank_method_count(void)
{
    return N_METHODS;
}

const ps_rerank_method_info *ps_rerank_method_at(int i)
{
    return i >= 0 && i < N_METHODS ? &registry[i]->info : NULL;
}

static const ps_rerank_method_impl *find_method(const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < N_METHODS; i++) {
        if (strcmp(registry[i]->info.name, name) == 0)
            return registry[i];
    }
    return NULL;
}

static int fail_unknown_method(const char *name, ps_error *err)
{
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; i < N_METHODS; i++) {
        int w = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                         registry[i]->info.name);
        if (w < 0 || (size_t)w >= sizeof list - len)
            break;
        len += (size_t)w;
    }
    return ps_fail(err, "unknown re-ranking method '%s' (valid methods: %s)", name ? name : "(null)",
                   list);
}

int ps_rerank_method_default_L(const char *method)
{
    const ps_rerank_method_impl *m = find_method(method);
    return m && m->info.default_L > 0 ? m->info.default_L : PS_RERANK_DEFAULT_L;
}

int ps_rerank_default_grid(const char *method, const ps_rerank_setting **settings,
                           int *n_settings, ps_error *err)
{
    const ps_rerank_method_impl *m = find_method(method);
    if (!m)
        return fail_unknown_method(method, err);
    if (settings)
        *settings = m->grid;
    if (n_settings)
        *n_settings = m->n_grid;
    return PS_OK;
}

/* ---- parameters ---- */

static void format_real(char *buf, size_t size, double v)
{
    if (isinf(v))
        snprintf(buf, size, "%sinf", v < 0 ? "-" : "");
    else
        snprintf(buf, size, "%.6g", v);
}

/* "name: real in (lo, hi], default d (doc); ..." */
static void params_help(const ps_rerank_method_impl *m, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    if (m->n_params == 0) {
        snprintf(buf, size, "none");
        return;
    }
    for (int i = 0; i < m->n_params && len < size; i++) {
        const ps_rerank_param_spec *p = &m->params[i];
        int w;
        if (p->kind == PS_RP_REAL) {
            char lo[32], hi[32];
            format_real(lo, sizeof lo, p->lo);
            format_real(hi, sizeof hi, p->hi);
            w = snprintf(buf + len, size - len, "%s%s: real in %c%s, %s%c, default %s (%s)",
                         i ? "; " : "", p->name, p->lo_open ? '(' : '[', lo, hi,
                         p->hi_open ? ')' : ']', p->def, p->doc);
        } else {
            w = snprintf(buf + len, size - len, "%s%s: one of %s, default %s (%s)", i ? "; " : "",
                         p->name, p->choices, p->def, p->doc);
        }
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
    }
}

/* Index of value among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    int idx = 0;
    const char *s = choices;
    for (;;) {
        const char *bar = strchr(s, '|');
        size_t len = bar ? (size_t)(bar - s) : strlen(s);
        if (len == vlen && strncmp(s, value, len) == 0)
            return idx;
        if (!bar)
            return -1;
        s = bar + 1;
        idx++;
    }
}

/* Parses value for spec p into *out; returns 0 on success, -1 when malformed/out of range. */
static int parse_value(const ps_rerank_param_spec *p, const char *value, double *out)
{
    if (p->kind == PS_RP_CHOICE) {
        int c = choice_index(p->choices, value);
        if (c < 0)
            return -1;
        *out = c;
        return 0;
    }
    if (!*value)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    if (v < p->lo || (p->lo_open && v == p->lo) || v > p->hi || (p->hi_open && v == p->hi))
        return -1;
    *out = v;
    return 0;
}

static void describe(ps_reranker *r)
{
    const ps_rerank_method_impl *m = r->m;
    size_t len = 0, size = sizeof r->desc;
    int w = snprintf(r->desc, size, "%s(", m->info.name);
    len = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < m->n_params && len < size; i++) {
        const ps_rerank_param_spec *p = &m->params[i];
        char v[64];
        if (p->kind == PS_RP_REAL) {
            snprintf(v, sizeof v, "%.6g", r->val[i]);
        } else {
            /* the index-th choice */
            const char *s = p->choices;
            for (int c = 0; c < (int)r->val[i]; c++)
                s = strchr(s, '|') + 1;
            const char *bar = strchr(s, '|');
            size_t n = bar ? (size_t)(bar - s) : strlen(s);
            if (n >= sizeof v)
                n = sizeof v - 1;
            memcpy(v, s, n);
            v[n] = '\0';
        }
        w = snprintf(r->desc + len, size - len, "%s%s=%s", i ? ", " : "", p->name, v);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (len < size)
        snprintf(r->desc + len, size - len, ")");
}

ps_reranker *ps_reranker_create(const char *method, const ps_rerank_ctx *ctx,
                                const char *const *params, int n_params, ps_error *err)
{
    const ps_rerank_method_impl *m = find_method(method);
    if (!m) {
        fail_unknown_method(method, err);
        return NULL;
    }
    if (!ctx) {
        ps_fail(err, "rerank %s: no context given", m->info.name);
        return NULL;
    }
    int L = ctx->L ? ctx->L : PS_RERANK_DEFAULT_L;
    if (ctx->n_items < 1 || !ctx->label || !ctx->pop_count) {
        ps_fail(err, "rerank %s: the context needs n_items >= 1 (got %d), label and pop_count",
                m->info.name, (int)ctx->n_items);
        return NULL;
    }
    if (L < 1 || ctx->k < 1 || ctx->k > L) {
        ps_fail(err, "rerank %s: need 1 <= k <= L (got k = %d, L = %d)", m->info.name, ctx->k, L);
        return NULL;
    }
    if (ctx->n_users < 0) {
        ps_fail(err, "rerank %s: n_users must be >= 0 (got %lld)", m->info.name,
                (long long)ctx->n_users);
        return NULL;
    }
    if (n_params < 0 || (n_params > 0 && !params)) {
        ps_fail(err, "rerank %s: bad parameter list (n_params = %d)", m->info.name, n_params);
        return NULL;
    }
    char help[1200];
    double val[PS_RERANK_MAX_PARAMS];
    int seen[PS_RERANK_MAX_PARAMS] = { 0 };
    for (int i = 0; i < m->n_params; i++) {
        if (parse_value(&m->params[i], m->params[i].def, &val[i]) != 0) {
            ps_fail(err, "rerank %s: internal error: bad default for %s", m->info.name,
                    m->params[i].name);
            return NULL;
        }
    }
    for (int a = 0; a < n_params; a++) {
        const char *s = params[a];
        const char *eq = s ? strchr(s, '=') : NULL;
        if (!eq || eq == s) {
            params_help(m, help, sizeof help);
            ps_fail(err, "rerank %s: parameter '%s' is not of the form name=value; valid parameters: %s",
                    m->info.name, s ? s : "(null)", help);
            return NULL;
        }
        size_t nlen = (size_t)(eq - s);
        int which = -1;
        for (int i = 0; i < m->n_params; i++) {
            if (strlen(m->params[i].name) == nlen && strncmp(m->params[i].name, s, nlen) == 0)
                which = i;
        }
        params_help(m, help, sizeof help);
        if (which < 0) {
            ps_fail(err, "rerank %s: unknown parameter '%.*s'; valid parameters: %s", m->info.name,
                    (int)nlen, s, help);
            return NULL;
        }
        if (seen[which]) {
            ps_fail(err, "rerank %s: parameter '%s' given twice; valid parameters: %s", m->info.name,
                    m->params[which].name, help);
            return NULL;
        }
        seen[which] = 1;
        if (parse_value(&m->params[which], eq + 1, &val[which]) != 0) {
            ps_fail(err, "rerank %s: bad value '%s' for parameter '%s'; valid parameters: %s",
                    m->info.name, eq + 1, m->params[which].name, help);
            return NULL;
        }
    }
    ps_reranker *r = ps_calloc(1, sizeof *r, "reranker", err);
    if (!r)
        return NULL;
    r->m = m;
    r->ctx = *ctx;
    r->ctx.L = L;
    for (int i = 0; i < m->n_params; i++)
        r->val[i] = val[i];
    describe(r);
    if (m->init && m->init(r, err) != PS_OK) {
        ps_fail_wrap(err, "rerank %s", m->info.name);
        free(r);
        return NULL;
    }
    return r;
}

void ps_reranker_free(ps_reranker *r)
{
    if (!r)
        return;
    if (r->m->free_state)
        r->m->free_state(r);
    free(r);
}

void ps_reranker_reset(ps_reranker *r)
{
    if (r && r->m->reset)
        r->m->reset(r);
}

const char *ps_reranker_describe(const ps_reranker *r)
{
    return r ? r->desc : "";
}

const char *ps_reranker_method(const ps_reranker *r)
{
    return r ? r->m->info.name : "";
}

int ps_reranker_is_sequential(const ps_reranker *r)
{
    return r ? r->m->info.sequential : 0;
}

/* ---- helpers shared by the methods ---- */

/* a ranks strictly before b: key descending, NaN last, then position. */
static inline int before(const double *key, int a, int b)
{
    double ka = key[a], kb = key[b];
    int na = isnan(ka), nb = isnan(kb);
    if (na || nb) {
        if (na != nb)
            return nb;
        return a < b;
    }
    if (ka != kb)
        return ka > kb;
    return a < b;
}

/* Heap sort with the total order above: no allocation, deterministic (the order is total,
 * so stability does not matter). The heap keeps the LAST element at the root. */
static void sift(int *idx, int n, int pos, const double *key)
{
    int v = idx[pos];
    for (;;) {
        int c = 2 * pos + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(key, idx[c], idx[c + 1]))
            c++;
        if (!before(key, v, idx[c]))
            break;
        idx[pos] = idx[c];
        pos = c;
    }
    idx[pos] = v;
}

void ps_rerank_sort_desc(int *idx, int n, const double *key)
{
    for (int i = n / 2 - 1; i >= 0; i--)
        sift(idx, n, i, key);
    for (int end = n - 1; end > 0; end--) {
        int t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        sift(idx, end, 0, key);
    }
}

int ps_rerank_hist_shares(const ps_rerank_ctx *ctx, const int32_t *hist, int hist_len,
                          double share[PS_RERANK_GROUPS])
{
    int64_t cnt[PS_RERANK_GROUPS] = { 0 };
    int valid = 0;
    if (!hist)
        return 0;
    for (int j = 0; j < hist_len; j++) {
        int32_t it = hist[j];
        if (it < 1 || it > ctx->n_items)
            continue;
        cnt[ps_rerank_group_of(ctx->label[it])]++;
        valid++;
    }
    if (valid == 0)
        return 0;
    for (int g = 0; g < PS_RERANK_GROUPS; g++)
        share[g] = (double)cnt[g] / valid;
    return valid;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* ---- apply ---- */

int ps_reranker_apply_ex(ps_reranker *r, int32_t user_index, const int32_t *cand,
                         const float *cand_scores, int L, const int32_t *hist, int hist_len,
                         int32_t *out_topk, ps_error *err)
{
    if (!r || !out_topk)
        return ps_fail(err, "rerank: NULL reranker or output");
    const int k = r->ctx.k;
    for (int j = 0; j < k; j++)
        out_topk[j] = 0;
    if (L < 0 || (L > 0 && (!cand || !cand_scores)))
        return ps_fail(err, "rerank %s: bad candidate list (L = %d)", r->m->info.name, L);
    if (hist_len < 0 || (hist_len > 0 && !hist))
        return ps_fail(err, "rerank %s: bad history (length %d)", r->m->info.name, hist_len);
    int n = 0;
    for (int j = 0; j < L; j++) {
        if (cand[j] < 0 || cand[j] > r->ctx.n_items)
            return ps_fail(err, "rerank %s: user %d: candidate id %d outside 0..%d",
                           r->m->info.name, (int)user_index, (int)cand[j], (int)r->ctx.n_items);
        n += cand[j] != 0;
    }
    if (n == 0)
        return 0;

    /* One block for every per-user array. */
    size_t bytes = (size_t)n * (2 * sizeof(int32_t) + sizeof(float) + 2 * sizeof(double) +
                                2 * sizeof(int) + sizeof(uint8_t));
    unsigned char *blk = ps_calloc(1, bytes, "re-ranking workspace", err);
    if (!blk)
        return PS_ERR;
    double *snorm = (double *)blk;
    double *dwork = snorm + n;
    int32_t *id = (int32_t *)(dwork + n);
    int32_t *sorted = id + n;
    float *score = (float *)(sorted + n);
    int *group = (int *)(score + n);
    int *iwork = group + n;
    uint8_t *used = (uint8_t *)(iwork + n);

    int m = 0;
    for (int j = 0; j < L; j++) {
        if (cand[j] == 0)
            continue;
        id[m] = cand[j];
        score[m] = cand_scores[j];
        group[m] = ps_rerank_group_of(r->ctx.label[cand[j]]);
        m++;
    }
    memcpy(sorted, id, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_i32);
    for (int j = 1; j < n; j++) {
        if (sorted[j] == sorted[j - 1]) {
            int32_t dup = sorted[j];
            free(blk);
            return ps_fail(err, "rerank %s: user %d: candidate %d appears twice", r->m->info.name,
                           (int)user_index, (int)dup);
        }
    }

    /* Min-max normalisation over the finite scores. */
    double lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < n; j++) {
        double s = score[j];
        if (isfinite(s)) {
            lo = s < lo ? s : lo;
            hi = s > hi ? s : hi;
        }
    }
    for (int j = 0; j < n; j++) {
        double s = score[j];
        if (isnan(s) || s == -INFINITY)
            snorm[j] = -1.0;
        else if (s == INFINITY)
            snorm[j] = 1.0;
        else
            snorm[j] = hi > lo ? (s - lo) / (hi - lo) : 0.0;
    }

    ps_rerank_input in = { .user = user_index, .n = n, .id = id, .score = score, .snorm = snorm,
                           .group = group, .hist = hist, .hist_len = hist_len, .iwork = iwork,
                           .dwork = dwork, .used = used };
    int rc = r->m->apply(r, &in, out_topk, err);
    free(blk);
    if (rc != PS_OK)
        return PS_ERR;
    return n < k ? n : k;
}

int ps_reranker_apply(ps_reranker *r, int32_t user_index, const int32_t *cand,
                      const float *cand_scores, int L, int32_t *out_topk)
{
    return ps_reranker_apply_ex(r, user_index, cand, cand_scores, L, NULL, 0, out_topk, NULL);
}

int ps_rerank_candidates(const float *scores, int32_t n_items, int L, const uint8_t *exclude,
                         int32_t *cand, float *cand_scores)
{
    if (L <= 0)
        return 0;
    ps_topk(scores, n_items, L, exclude, cand);
    int n = 0;
    for (int j = 0; j < L; j++) {
        if (cand[j] != 0) {
            cand_scores[j] = scores[cand[j]];
            n++;
        } else {
            cand_scores[j] = 0.0f;
        }
    }
    return n;
}
