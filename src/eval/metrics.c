/* Accuracy, fairness and exposure metrics of SPEC §6, accumulated over users.
 *
 * Every per-user quantity is reduced to integer counts at add time (see metrics.h), so
 * adding and merging commute exactly; all floating point happens once, in finish. */
#include "popsteer/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- lifecycle */

void ps_metrics_acc_free(ps_metrics_acc *a)
{
    if (!a)
        return;
    free(a->rank_hist);
    free(a->len_users);
    free(a->len_pop);
    free(a->len_nonhead);
    free(a->exposure);
    free(a->scratch);
    free(a->distinct);
    for (int w = 0; w < PS_ILAD_COUNT; w++)
        free(a->ilad_sum[w]);
    memset(a, 0, sizeof *a);
}

static int check_inputs(int k, int32_t n_items, const int8_t *label, const int64_t *pop_count,
                        ps_error *err)
{
    if (k < 1)
        return ps_fail(err, "metrics: k must be at least 1 (got %d)", k);
    if (n_items < 1)
        return ps_fail(err, "metrics: need at least one item (got %d)", (int)n_items);
    if (!label || !pop_count)
        return ps_fail(err, "metrics: item labels and popularity counts are required");
    for (int32_t i = 1; i <= n_items; i++) {
        if (pop_count[i] < 0)
            return ps_fail(err, "metrics: negative popularity count %lld for item %d",
                           (long long)pop_count[i], (int)i);
    }
    return PS_OK;
}

static int alloc_buffers(ps_metrics_acc *a, ps_error *err)
{
    size_t k1 = (size_t)a->k + 1, n = (size_t)a->n_items;
    a->rank_hist = ps_calloc((size_t)PS_GROUP_COUNT * k1, sizeof *a->rank_hist, "metric rank histogram", err);
    a->len_users = a->rank_hist ? ps_calloc(k1, sizeof *a->len_users, "metric list lengths", err) : NULL;
    a->len_pop = a->len_users ? ps_calloc(k1, sizeof *a->len_pop, "metric popularity sums", err) : NULL;
    a->len_nonhead = a->len_pop ? ps_calloc(k1, sizeof *a->len_nonhead, "metric long-tail counts", err) : NULL;
    a->exposure = a->len_nonhead ? ps_calloc(n + 1, sizeof *a->exposure, "item exposure counts", err) : NULL;
    a->scratch = a->exposure ? ps_calloc(n, sizeof *a->scratch, "Gini sort buffer", err) : NULL;
    a->distinct = a->scratch ? ps_calloc((size_t)a->k, sizeof *a->distinct, "list buffer", err) : NULL;
    return a->distinct ? PS_OK : PS_ERR;
}

int ps_metrics_acc_init(ps_metrics_acc *a, int k, int32_t n_items, const int8_t *label,
                        const int64_t *pop_count, ps_error *err)
{
    memset(a, 0, sizeof *a);
    if (check_inputs(k, n_items, label, pop_count, err) != PS_OK)
        return PS_ERR;
    a->k = k;
    a->n_items = n_items;
    a->label = label;
    a->pop_count = pop_count;
    for (int32_t i = 1; i <= n_items; i++)
        a->pop_total += pop_count[i];
    if (alloc_buffers(a, err) != PS_OK) {
        ps_metrics_acc_free(a);
        return PS_ERR;
    }
    return PS_OK;
}

/* ---------------------------------------------------------------- ILAD vectors */

float *ps_item_unit_vectors(const float *vectors, int32_t n_items, int dim, ps_error *err)
{
    if (!vectors || n_items < 1 || dim < 1)
        return ps_fail(err, "item vectors: need a table of at least one item and one dimension"), NULL;
    size_t d = (size_t)dim;
    float *u = ps_calloc(((size_t)n_items + 1), d * sizeof *u, "unit item vectors", err);
    if (!u)
        return NULL;
    for (int32_t i = 1; i <= n_items; i++) { /* row 0 stays zero: padding is never in a list */
        const float *v = vectors + (size_t)i * d;
        double sq = 0.0;
        for (size_t j = 0; j < d; j++) {
            if (!isfinite(v[j])) {
                free(u);
                return ps_fail(err, "item vectors: item %d has a non-finite value in dimension %zu", (int)i, j + 1),
                       NULL;
            }
            sq += (double)v[j] * v[j];
        }
        if (sq == 0.0)
            continue; /* a zero vector stays zero: cosine 0 with everything (metrics.h) */
        double inv = 1.0 / sqrt(sq);
        for (size_t j = 0; j < d; j++)
            u[(size_t)i * d + j] = (float)(v[j] * inv);
    }
    return u;
}

/* Norm 1 or 0 for every real item: a raw embedding table passed by mistake would give a
 * plausible-looking but wrong number, so it is refused here rather than trusted. */
static int check_unit_rows(const float *u, int32_t n_items, int dim, ps_error *err)
{
    for (int32_t i = 1; i <= n_items; i++) {
        const float *v = u + (size_t)i * (size_t)dim;
        double sq = 0.0;
        for (int j = 0; j < dim; j++)
            sq += (double)v[j] * v[j];
        if (sq != 0.0 && !(fabs(sq - 1.0) <= 1e-3))
            return ps_fail(err, "metrics: ILAD vectors must be unit length or zero (item %d has squared norm %g; "
                                "use ps_item_unit_vectors)", (int)i, sq);
    }
    return PS_OK;
}

int ps_metrics_acc_set_item_vectors(ps_metrics_acc *a, int which, const float *unit_vectors, int dim,
                                    ps_error *err)
{
    if (which < 0 || which >= PS_ILAD_COUNT)
        return ps_fail(err, "metrics: unknown ILAD vector kind %d", which);
    if (!unit_vectors || dim < 1)
        return ps_fail(err, "metrics: ILAD needs item vectors of at least one dimension (got %d)", dim);
    if (a->users > 0)
        return ps_fail(err, "metrics: ILAD vectors must be set before the first user is added");
    if (check_unit_rows(unit_vectors, a->n_items, dim, err) != PS_OK)
        return PS_ERR;
    double *sum = ps_calloc((size_t)dim, sizeof *sum, "ILAD buffer", err);
    if (!sum)
        return PS_ERR;
    free(a->ilad_sum[which]);
    a->ilad_sum[which] = sum;
    a->ilad_vec[which] = unit_vectors;
    a->ilad_dim[which] = dim;
    return PS_OK;
}

/* ---------------------------------------------------------------- adding users */

static int target_group(const ps_metrics_acc *a, int32_t target)
{
    if (target < 1 || target > a->n_items)
        return PS_GROUP_NONE;
    int8_t l = a->label[target];
    return l > 0 ? PS_GROUP_HEAD : l < 0 ? PS_GROUP_TAIL : PS_GROUP_MID;
}

/* A list is the set of its real items: padding and out-of-range ids are skipped, and a
 * repeat is detected by a scan of the earlier slots (k is small, so O(k^2) is cheap and
 * needs no per-user buffer). */
static int counts_in_list(const ps_metrics_acc *a, const int32_t *topk, int j)
{
    int32_t id = topk[j];
    if (id < 1 || id > a->n_items)
        return 0;
    for (int p = 0; p < j; p++) {
        if (topk[p] == id)
            return 0;
    }
    return 1;
}

/* llround(ILAD_u * PS_ILAD_FIXED_ONE) of the m >= 2 distinct items of a list, from
 * Σ_{i<j} u_i·u_j = (|S|^2 - Σ|u_i|^2) / 2 (see metrics.h). Everything is in double and in list
 * order, so the value depends on the list only. Rounding can put a mean cosine a hair outside
 * [-1, 1]; the distance is clamped to [0, 2], its exact range. */
static int64_t list_ilad_fixed(const ps_metrics_acc *a, int w, int m)
{
    const float *vec = a->ilad_vec[w];
    size_t d = (size_t)a->ilad_dim[w];
    double *s = a->ilad_sum[w];
    double self = 0.0;
    memset(s, 0, d * sizeof *s);
    for (int p = 0; p < m; p++) {
        const float *v = vec + (size_t)a->distinct[p] * d;
        for (size_t j = 0; j < d; j++) {
            s[j] += v[j];
            self += (double)v[j] * v[j];
        }
    }
    double ss = 0.0;
    for (size_t j = 0; j < d; j++)
        ss += s[j] * s[j];
    double mean_cos = (ss - self) / ((double)m * (double)(m - 1));
    double dist = 1.0 - mean_cos;
    dist = dist < 0.0 ? 0.0 : dist > 2.0 ? 2.0 : dist;
    return llround(dist * (double)PS_ILAD_FIXED_ONE);
}

void ps_metrics_acc_add(ps_metrics_acc *a, int32_t target, int32_t rank, const int32_t *topk)
{
    int r = (rank >= 1 && rank <= a->k) ? (int)rank : 0;
    a->rank_hist[(size_t)target_group(a, target) * ((size_t)a->k + 1) + (size_t)r]++;
    a->users++;

    int len = 0;
    int64_t pop = 0, nonhead = 0;
    for (int j = 0; j < a->k; j++) {
        if (!counts_in_list(a, topk, j))
            continue;
        int32_t id = topk[j];
        a->distinct[len++] = id;
        pop += a->pop_count[id];
        nonhead += a->label[id] != 1;
        a->exposure[id]++;
    }
    /* Grouping by list length keeps the per-user means (sum / len) exact integers until finish. */
    a->len_users[len]++;
    a->len_pop[len] += pop;
    a->len_nonhead[len] += nonhead;
    for (int w = 0; len >= 2 && w < PS_ILAD_COUNT; w++)
        if (a->ilad_vec[w])
            a->ilad_fixed[w] += list_ilad_fixed(a, w, len);
}

static void add_counts(int64_t *into, const int64_t *from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        into[i] += from[i];
}

int ps_metrics_acc_merge(ps_metrics_acc *into, const ps_metrics_acc *from, ps_error *err)
{
    if (into->k != from->k || into->n_items != from->n_items)
        return ps_fail(err, "metrics: cannot merge accumulators for k=%d/%d items and k=%d/%d items",
                       into->k, (int)into->n_items, from->k, (int)from->n_items);
    for (int w = 0; w < PS_ILAD_COUNT; w++)
        if (into->ilad_vec[w] != from->ilad_vec[w] || into->ilad_dim[w] != from->ilad_dim[w])
            return ps_fail(err, "metrics: cannot merge accumulators with different ILAD %s vectors",
                           w == PS_ILAD_EMBEDDING ? "embedding" : "feature");
    for (int w = 0; w < PS_ILAD_COUNT; w++)
        into->ilad_fixed[w] += from->ilad_fixed[w];
    size_t k1 = (size_t)into->k + 1;
    into->users += from->users;
    add_counts(into->rank_hist, from->rank_hist, (size_t)PS_GROUP_COUNT * k1);
    add_counts(into->len_users, from->len_users, k1);
    add_counts(into->len_pop, from->len_pop, k1);
    add_counts(into->len_nonhead, from->len_nonhead, k1);
    add_counts(into->exposure, from->exposure, (size_t)into->n_items + 1);
    return PS_OK;
}

/* ---------------------------------------------------------------- finishing */

static double safe_div(double num, double den)
{
    return den > 0 ? num / den : 0.0;
}

/* Accuracy of one target group: sums of NDCG, MRR and hits over its rank histogram. */
typedef struct accuracy_sums {
    int64_t users, hits;
    double ndcg, mrr;
} accuracy_sums;

static accuracy_sums group_sums(const ps_metrics_acc *a, int group)
{
    const int64_t *h = a->rank_hist + (size_t)group * ((size_t)a->k + 1);
    accuracy_sums s = { h[0], 0, 0.0, 0.0 };
    for (int r = 1; r <= a->k; r++) {
        s.users += h[r];
        s.hits += h[r];
        s.ndcg += (double)h[r] / log2((double)r + 1.0);
        s.mrr += (double)h[r] / (double)r;
    }
    return s;
}

static void finish_accuracy(const ps_metrics_acc *a, ps_metrics *m)
{
    accuracy_sums g[PS_GROUP_COUNT], all = { 0, 0, 0.0, 0.0 };
    for (int i = 0; i < PS_GROUP_COUNT; i++) {
        g[i] = group_sums(a, i);
        all.users += g[i].users;
        all.hits += g[i].hits;
        all.ndcg += g[i].ndcg;
        all.mrr += g[i].mrr;
    }
    m->ndcg = safe_div(all.ndcg, (double)all.users);
    m->hit = safe_div((double)all.hits, (double)all.users);
    m->recall = m->hit;
    m->precision = m->hit / a->k;
    m->mrr = safe_div(all.mrr, (double)all.users);
    m->users_head = g[PS_GROUP_HEAD].users;
    m->users_mid = g[PS_GROUP_MID].users;
    m->users_tail = g[PS_GROUP_TAIL].users;
    m->ndcg_head = safe_div(g[PS_GROUP_HEAD].ndcg, (double)g[PS_GROUP_HEAD].users);
    m->ndcg_mid = safe_div(g[PS_GROUP_MID].ndcg, (double)g[PS_GROUP_MID].users);
    m->ndcg_tail = safe_div(g[PS_GROUP_TAIL].ndcg, (double)g[PS_GROUP_TAIL].users);
}

/* Per-user means of list popularity and long-tail share. Users with an empty list (only
 * possible with padding-only input) count as users with 0 for both. */
static void finish_list_means(const ps_metrics_acc *a, ps_metrics *m)
{
    double pop = 0.0, nonhead = 0.0;
    for (int len = 1; len <= a->k; len++) {
        pop += (double)a->len_pop[len] / len;
        nonhead += (double)a->len_nonhead[len] / len;
    }
    m->arp = safe_div(safe_div(pop, (double)a->pop_total), (double)a->users);
    m->aplt = safe_div(nonhead, (double)a->users);
}

static int cmp_int64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* G = Σ_j (2j − I − 1) c_(j) / (I Σc) over exposures sorted ascending. */
static double gini(const ps_metrics_acc *a, int64_t total)
{
    int32_t n = a->n_items;
    if (total <= 0)
        return 0.0;
    memcpy(a->scratch, a->exposure + 1, (size_t)n * sizeof *a->scratch);
    qsort(a->scratch, (size_t)n, sizeof *a->scratch, cmp_int64);
    double num = 0.0;
    for (int32_t j = 1; j <= n; j++)
        num += (double)(2 * (int64_t)j - n - 1) * (double)a->scratch[j - 1];
    return num / ((double)n * (double)total);
}

static void finish_exposure(const ps_metrics_acc *a, ps_metrics *m)
{
    int64_t total = 0, covered = 0, nonhead = 0, nonhead_cov = 0, tail = 0, tail_cov = 0;
    int64_t distinct_pop = 0;
    for (int32_t i = 1; i <= a->n_items; i++) {
        int64_t c = a->exposure[i];
        int seen = c > 0;
        total += c;
        covered += seen;
        nonhead += a->label[i] != 1;
        nonhead_cov += seen && a->label[i] != 1;
        tail += a->label[i] == -1;
        tail_cov += seen && a->label[i] == -1;
        if (seen)
            distinct_pop += a->pop_count[i];
    }
    double ent = 0.0;
    for (int32_t i = 1; i <= a->n_items; i++) {
        if (a->exposure[i] > 0) {
            double q = (double)a->exposure[i] / (double)total;
            ent -= q * log(q);
        }
    }
    m->coverage = safe_div((double)covered, (double)a->n_items);
    m->lt_coverage = safe_div((double)nonhead_cov, (double)nonhead);
    m->deep_lt_coverage = safe_div((double)tail_cov, (double)tail);
    m->arp_distinct = safe_div(safe_div((double)distinct_pop, (double)a->pop_total), (double)covered);
    m->entropy = ent;
    m->gini = gini(a, total);
}

/* The users with a pair are exactly those whose list has >= 2 distinct items: len_users has them. */
static void finish_ilad(const ps_metrics_acc *a, ps_metrics *m)
{
    for (int len = 2; len <= a->k; len++)
        m->ilad_users += a->len_users[len];
    double den = (double)m->ilad_users * (double)PS_ILAD_FIXED_ONE;
    m->has_ilad = a->ilad_vec[PS_ILAD_EMBEDDING] != NULL;
    m->has_ilad_features = a->ilad_vec[PS_ILAD_FEATURES] != NULL;
    m->ilad = safe_div((double)a->ilad_fixed[PS_ILAD_EMBEDDING], den);
    m->ilad_features = safe_div((double)a->ilad_fixed[PS_ILAD_FEATURES], den);
}

void ps_metrics_acc_finish(const ps_metrics_acc *a, ps_metrics *out)
{
    memset(out, 0, sizeof *out);
    out->k = a->k;
    out->users = a->users;
    finish_accuracy(a, out);
    finish_list_means(a, out);
    finish_exposure(a, out);
    finish_ilad(a, out);
}

/* ---------------------------------------------------------------- output */

static int add_number(cJSON *obj, const char *name, int k, double v)
{
    char key[64];
    snprintf(key, sizeof key, "%s@%d", name, k);
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

cJSON *ps_metrics_to_json(const ps_metrics *m)
{
    const struct { const char *name; double v; } rows[] = {
        { "ndcg", m->ndcg }, { "hit", m->hit }, { "recall", m->recall },
        { "precision", m->precision }, { "mrr", m->mrr }, { "ndcg_head", m->ndcg_head },
        { "ndcg_mid", m->ndcg_mid }, { "ndcg_tail", m->ndcg_tail }, { "coverage", m->coverage },
        { "lt_coverage", m->lt_coverage }, { "deep_lt_coverage", m->deep_lt_coverage },
        { "gini", m->gini }, { "arp", m->arp }, { "arp_distinct", m->arp_distinct },
        { "aplt", m->aplt }, { "entropy", m->entropy },
    };
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    int ok = cJSON_AddNumberToObject(obj, "users", (double)m->users) != NULL;
    for (size_t i = 0; ok && i < sizeof rows / sizeof rows[0]; i++)
        ok = add_number(obj, rows[i].name, m->k, rows[i].v);
    if (ok && m->has_ilad) {
        ok = add_number(obj, "ilad", m->k, m->ilad);
    } else if (ok) { /* the key set stays fixed; null says "not measured", which 0 would hide */
        char key[64];
        snprintf(key, sizeof key, "ilad@%d", m->k);
        ok = cJSON_AddNullToObject(obj, key) != NULL;
    }
    if (ok && m->has_ilad_features)
        ok = add_number(obj, "ilad_features", m->k, m->ilad_features);
    if (!ok) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

void ps_metrics_print(FILE *fp, const ps_metrics *m)
{
    int k = m->k;
    fprintf(fp, "users                 %lld\n", (long long)m->users);
    fprintf(fp, "NDCG@%-3d              %.4f\n", k, m->ndcg);
    fprintf(fp, "Hit@%-3d               %.4f\n", k, m->hit);
    fprintf(fp, "Recall@%-3d            %.4f\n", k, m->recall);
    fprintf(fp, "Precision@%-3d         %.4f\n", k, m->precision);
    fprintf(fp, "MRR@%-3d               %.4f\n", k, m->mrr);
    fprintf(fp, "NDCG-head@%-3d         %.4f  (%lld users)\n", k, m->ndcg_head, (long long)m->users_head);
    fprintf(fp, "NDCG-mid@%-3d          %.4f  (%lld users)\n", k, m->ndcg_mid, (long long)m->users_mid);
    fprintf(fp, "NDCG-tail@%-3d         %.4f  (%lld users)\n", k, m->ndcg_tail, (long long)m->users_tail);
    fprintf(fp, "Coverage@%-3d          %.4f\n", k, m->coverage);
    fprintf(fp, "LT-coverage@%-3d       %.4f\n", k, m->lt_coverage);
    fprintf(fp, "Deep-LT-coverage@%-3d  %.4f\n", k, m->deep_lt_coverage);
    fprintf(fp, "Gini@%-3d              %.4f\n", k, m->gini);
    fprintf(fp, "ARP@%-3d               %.6f  (literature: mean over users)\n", k, m->arp);
    fprintf(fp, "ARP-distinct@%-3d      %.6f  (reference code: mean over distinct items)\n", k, m->arp_distinct);
    fprintf(fp, "APLT@%-3d              %.4f\n", k, m->aplt);
    fprintf(fp, "Entropy@%-3d           %.4f  (nats)\n", k, m->entropy);
    if (m->has_ilad)
        fprintf(fp, "ILAD@%-3d              %.4f  (item embeddings, %lld users)\n", k, m->ilad,
                (long long)m->ilad_users);
    if (m->has_ilad_features)
        fprintf(fp, "ILAD-features@%-3d     %.4f  (item features, %lld users)\n", k, m->ilad_features,
                (long long)m->ilad_users);
}

/* ---------------------------------------------------------------- shared ILAD vectors */

void ps_ilad_vectors_free(ps_ilad_vectors *v)
{
    for (int w = 0; w < PS_ILAD_COUNT; w++)
        free(v->unit[w]);
    memset(v, 0, sizeof *v);
}

int ps_ilad_vectors_make(ps_ilad_vectors *v, int32_t n_items, const float *embedding, int embedding_dim,
                         const float *features, int features_dim, ps_error *err)
{
    const float *raw[PS_ILAD_COUNT] = { embedding, features };
    const int dim[PS_ILAD_COUNT] = { embedding_dim, features_dim };
    static const char *const what[PS_ILAD_COUNT] = { "item embeddings", "item features" };
    memset(v, 0, sizeof *v);
    for (int w = 0; w < PS_ILAD_COUNT; w++) {
        if (!raw[w])
            continue;
        v->unit[w] = ps_item_unit_vectors(raw[w], n_items, dim[w], err);
        v->dim[w] = dim[w];
        if (!v->unit[w]) {
            ps_ilad_vectors_free(v);
            return ps_fail_wrap(err, "%s", what[w]);
        }
    }
    return PS_OK;
}

int ps_ilad_vectors_attach(const ps_ilad_vectors *v, ps_metrics_acc *a, ps_error *err)
{
    for (int w = 0; w < PS_ILAD_COUNT; w++)
        if (v->unit[w] && ps_metrics_acc_set_item_vectors(a, w, v->unit[w], v->dim[w], err) != PS_OK)
            return PS_ERR;
    return PS_OK;
}
