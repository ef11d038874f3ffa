/* From a raw log to the sequential dataset of SPEC §1: filters, first-appearance ids,
 * float32-rounded normalised time, stable per-user time order, leave-one-out split,
 * head/mid/tail labels from training-target counts. */
#include "popsteer/dataset.h"
#include "data/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ps_load_options_init(ps_load_options *o)
{
    memset(o, 0, sizeof *o);
    o->format = PS_FORMAT_AUTO;
    o->min_user_len = 3;
    o->max_seq_len = 50;
    o->head_share = 0.20;
    o->tail_share = 0.20;
    o->max_line_bytes = (size_t)1 << 20;
}

/* ---------- filters: they clear keep[row] ---------- */

static void filter_rating(const ps_log *log, const ps_load_options *opt, uint8_t *keep, ps_load_report *rep)
{
    if (!opt->has_rating_threshold)
        return;
    for (int64_t r = 0; r < log->n; r++)
        if (keep[r] && log->rating[r] < opt->rating_threshold) {
            keep[r] = 0;
            rep->rows_below_rating++;
        }
}

static void count_rows(const ps_log *log, const uint8_t *keep, int64_t *ucount, int64_t *icount)
{
    memset(ucount, 0, (size_t)log->users.n * sizeof *ucount);
    if (icount)
        memset(icount, 0, (size_t)log->items.n * sizeof *icount);
    for (int64_t r = 0; r < log->n; r++)
        if (keep[r]) {
            ucount[log->user[r]]++;
            if (icount)
                icount[log->item[r]]++;
        }
}

/* Iterative k-core: removing rows of rare items can make users rare and vice versa,
 * so repeat until nothing changes (RecBole's filter_by_inter_num does the same). */
static int filter_kcore(const ps_log *log, int k, uint8_t *keep, ps_load_report *rep, ps_error *err)
{
    if (k <= 0)
        return PS_OK;
    int64_t *uc = ps_calloc((size_t)log->users.n, sizeof *uc, "user counts", err);
    int64_t *ic = ps_calloc((size_t)log->items.n, sizeof *ic, "item counts", err);
    if (!uc || !ic) {
        free(uc);
        free(ic);
        return PS_ERR;
    }
    for (int64_t removed = 1; removed;) {
        count_rows(log, keep, uc, ic);
        removed = 0;
        for (int64_t r = 0; r < log->n; r++)
            if (keep[r] && (uc[log->user[r]] < k || ic[log->item[r]] < k)) {
                keep[r] = 0;
                removed++;
            }
        rep->rows_kcore += removed;
    }
    free(uc);
    free(ic);
    return PS_OK;
}

static int filter_short_users(const ps_log *log, int min_len, uint8_t *keep, ps_load_report *rep, ps_error *err)
{
    int64_t *uc = ps_calloc((size_t)log->users.n, sizeof *uc, "user counts", err);
    if (!uc)
        return PS_ERR;
    count_rows(log, keep, uc, NULL);
    for (int32_t u = 0; u < log->users.n; u++)
        if (uc[u] > 0 && uc[u] < min_len) {
            rep->users_too_short++;
            rep->rows_too_short += uc[u];
        }
    for (int64_t r = 0; r < log->n; r++)
        if (keep[r] && uc[log->user[r]] < min_len)
            keep[r] = 0;
    free(uc);
    return PS_OK;
}

/* ---------- ids in order of first appearance among the surviving rows ---------- */

static int32_t *first_appearance_ids(const int32_t *tok, int64_t n_rows, const uint8_t *keep, int32_t n_tokens,
                                     int32_t *n_ids, ps_error *err)
{
    int32_t *map = ps_calloc((size_t)n_tokens, sizeof *map, "id map", err);
    if (!map)
        return NULL;
    int32_t next = 0;
    for (int64_t r = 0; r < n_rows; r++)
        if (keep[r] && map[tok[r]] == 0)
            map[tok[r]] = ++next;
    *n_ids = next;
    return map;
}

/* Ids 1..n for the tokens that no surviving row uses (map[t] == 0), in token order, which is
 * the order of first appearance in the file. */
static int32_t *dropped_ids(const int32_t *map, int32_t n_tokens, int32_t *n_ids, ps_error *err)
{
    int32_t *dropped = ps_calloc((size_t)n_tokens + 1, sizeof *dropped, "dropped-id map", err);
    if (!dropped)
        return NULL;
    int32_t next = 0;
    for (int32_t t = 0; t < n_tokens; t++)
        if (map[t] == 0)
            dropped[t] = ++next;
    *n_ids = next;
    return dropped;
}

static int copy_tokens(ps_strings *out, const ps_intern *in, const int32_t *map, int32_t n_ids, const char *pad,
                       ps_error *err)
{
    int64_t bytes = (int64_t)strlen(pad) + 1;
    for (int32_t t = 0; t < in->n; t++)
        if (map[t])
            bytes += (int64_t)strlen(ps_intern_str(in, t)) + 1;
    out->n = n_ids + 1;
    out->off = ps_calloc((size_t)out->n, sizeof *out->off, "token offsets", err);
    out->pool = ps_calloc((size_t)bytes, 1, "token pool", err);
    if (!out->off || !out->pool)
        return PS_ERR;
    strcpy(out->pool, pad);
    int64_t used = (int64_t)strlen(pad) + 1;
    for (int32_t t = 0; t < in->n; t++) {
        if (!map[t])
            continue;
        const char *s = ps_intern_str(in, t);
        size_t n = strlen(s) + 1;
        memcpy(out->pool + used, s, n);
        out->off[map[t]] = used;
        used += (int64_t)n;
    }
    return PS_OK;
}

/* ---------- time order ---------- */

typedef struct timed_row {
    float t;     /* normalised time rounded to float32: decides near-ties as RecBole does */
    int64_t row; /* file order breaks exact ties (stable sort) */
} timed_row;

static int cmp_timed(const void *a, const void *b)
{
    const timed_row *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* Counting sort by user (stable), then each user's rows by (float32 time, file order). */
static int order_rows(ps_dataset *ds, const ps_log *log, const uint8_t *keep, const int32_t *umap,
                      const int32_t *imap, ps_error *err)
{
    int64_t *off = ds->user_off;
    for (int64_t r = 0; r < log->n; r++)
        if (keep[r])
            off[umap[log->user[r]] + 1]++;
    for (int32_t u = 1; u <= ds->n_users + 1; u++)
        off[u] += off[u - 1];
    double tmin = INFINITY, tmax = -INFINITY;
    if (log->time)
        for (int64_t r = 0; r < log->n; r++)
            if (keep[r]) {
                tmin = fmin(tmin, log->time[r]);
                tmax = fmax(tmax, log->time[r]);
            }
    timed_row *rows = ps_calloc((size_t)ds->n_inter, sizeof *rows, "row order", err);
    int64_t *fill = ps_calloc((size_t)ds->n_users + 2, sizeof *fill, "row order", err);
    if (!rows || !fill) {
        free(rows);
        free(fill);
        return PS_ERR;
    }
    memcpy(fill, off, ((size_t)ds->n_users + 2) * sizeof *fill);
    for (int32_t i = 0; i <= ds->n_items; i++)
        ds->first_seen[i] = INFINITY;
    ds->first_seen[0] = 0.0f;
    for (int64_t r = 0; r < log->n; r++) {
        if (!keep[r])
            continue;
        double t = 0.0;
        if (log->time && tmax > tmin)
            t = (log->time[r] - tmin) / (tmax - tmin);
        timed_row *slot = &rows[fill[umap[log->user[r]]]++];
        slot->t = (float)t;
        slot->row = r;
        /* without timestamps the file order is the time order (SPEC §1) */
        float seen = log->time ? (float)t : (float)((double)r / (double)(log->n > 1 ? log->n - 1 : 1));
        int32_t item = imap[log->item[r]];
        if (seen < ds->first_seen[item])
            ds->first_seen[item] = seen;
    }
    for (int32_t u = 1; u <= ds->n_users; u++)
        qsort(rows + off[u], (size_t)(off[u + 1] - off[u]), sizeof *rows, cmp_timed);
    for (int64_t i = 0; i < ds->n_inter; i++)
        ds->seq[i] = imap[log->item[rows[i].row]];
    free(rows);
    free(fill);
    return PS_OK;
}

/* ---------- split and labels ---------- */

static int build_split(ps_dataset *ds, ps_error *err)
{
    ds->n_train = 0;
    for (int32_t u = 1; u <= ds->n_users; u++)
        ds->n_train += ps_user_len(ds, u) - 3; /* targets at positions 1..n-3 */
    ds->train = ps_calloc((size_t)ds->n_train, sizeof *ds->train, "training samples", err);
    ds->valid = ps_calloc((size_t)ds->n_users, sizeof *ds->valid, "validation samples", err);
    ds->test = ps_calloc((size_t)ds->n_users, sizeof *ds->test, "test samples", err);
    ds->train_count = ps_calloc((size_t)ds->n_items + 1, sizeof *ds->train_count, "item counts", err);
    ds->label = ps_calloc((size_t)ds->n_items + 1, sizeof *ds->label, "item labels", err);
    if (!ds->train || !ds->valid || !ds->test || !ds->train_count || !ds->label)
        return PS_ERR;
    int64_t k = 0;
    for (int32_t u = 1; u <= ds->n_users; u++) {
        int32_t n = (int32_t)ps_user_len(ds, u);
        for (int32_t pos = 1; pos <= n - 3; pos++) {
            ds->train[k++] = (ps_sample){u, pos};
            ds->train_count[ds->seq[ds->user_off[u] + pos]]++;
        }
        ds->valid[u - 1] = (ps_sample){u, n - 2};
        ds->test[u - 1] = (ps_sample){u, n - 1};
    }
    return PS_OK;
}

typedef struct item_count {
    int64_t count;
    int32_t id;
} item_count;

static int cmp_count_desc(const void *a, const void *b)
{
    const item_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_count_asc(const void *a, const void *b)
{
    const item_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Marks with `mark` the prefix of the sorted items whose cumulative share stays <= share;
 * items already marked head keep their label (an item that qualifies for both is head). */
static void mark_prefix(ps_dataset *ds, item_count *items, int64_t total, double share, int8_t mark)
{
    int64_t cum = 0;
    for (int32_t j = 0; j < ds->n_items; j++) {
        cum += items[j].count;
        if (total == 0 || (double)cum / (double)total > share)
            break;
        if (ds->label[items[j].id] != 1)
            ds->label[items[j].id] = mark;
    }
}

int ps_dataset_label(ps_dataset *ds, double head_share, double tail_share, ps_error *err)
{
    item_count *items = ps_calloc((size_t)ds->n_items, sizeof *items, "item order", err);
    if (!items)
        return PS_ERR;
    memset(ds->label, 0, ((size_t)ds->n_items + 1) * sizeof *ds->label);
    int64_t total = 0;
    for (int32_t i = 1; i <= ds->n_items; i++) {
        total += ds->train_count[i];
        items[i - 1] = (item_count){ds->train_count[i], i};
    }
    qsort(items, (size_t)ds->n_items, sizeof *items, cmp_count_desc);
    mark_prefix(ds, items, total, head_share, 1);
    qsort(items, (size_t)ds->n_items, sizeof *items, cmp_count_asc);
    mark_prefix(ds, items, total, tail_share, -1);
    free(items);
    ds->n_head = ds->n_mid = ds->n_tail = 0;
    for (int32_t i = 1; i <= ds->n_items; i++) {
        if (ds->label[i] > 0) ds->n_head++;
        else if (ds->label[i] < 0) ds->n_tail++;
        else ds->n_mid++;
    }
    return PS_OK;
}

/* ---------- the whole pipeline ---------- */

static int build(ps_dataset *ds, const ps_log *log, const ps_load_options *opt, uint8_t *keep, ps_error *err)
{
    ps_load_report *rep = &ds->report;
    filter_rating(log, opt, keep, rep);
    if (filter_kcore(log, opt->kcore, keep, rep, err) != PS_OK ||
        filter_short_users(log, opt->min_user_len < 3 ? 3 : opt->min_user_len, keep, rep, err) != PS_OK)
        return PS_ERR;
    for (int64_t r = 0; r < log->n; r++)
        ds->n_inter += keep[r];
    if (ds->n_inter == 0)
        return ps_fail(err, "no interactions left after filtering (%lld below the rating threshold, %lld by the "
                            "%d-core, %lld rows of %lld users with fewer than 3 interactions)",
                       (long long)rep->rows_below_rating, (long long)rep->rows_kcore, opt->kcore,
                       (long long)rep->rows_too_short, (long long)rep->users_too_short);
    int32_t n_dropped = 0;
    int32_t *umap = first_appearance_ids(log->user, log->n, keep, log->users.n, &ds->n_users, err);
    int32_t *imap = umap ? first_appearance_ids(log->item, log->n, keep, log->items.n, &ds->n_items, err) : NULL;
    int32_t *dmap = imap ? dropped_ids(imap, log->items.n, &n_dropped, err) : NULL;
    int rc = PS_ERR;
    if (!dmap)
        goto out;
    ds->user_off = ps_calloc((size_t)ds->n_users + 2, sizeof *ds->user_off, "user offsets", err);
    ds->seq = ps_calloc((size_t)ds->n_inter, sizeof *ds->seq, "sequences", err);
    ds->first_seen = ps_calloc((size_t)ds->n_items + 1, sizeof *ds->first_seen, "item first-seen times", err);
    if (!ds->user_off || !ds->seq || !ds->first_seen || order_rows(ds, log, keep, umap, imap, err) != PS_OK ||
        copy_tokens(&ds->user_tokens, &log->users, umap, ds->n_users, "", err) != PS_OK ||
        copy_tokens(&ds->item_tokens, &log->items, imap, ds->n_items, "[PAD]", err) != PS_OK ||
        copy_tokens(&ds->dropped_item_tokens, &log->items, dmap, n_dropped, "", err) != PS_OK ||
        build_split(ds, err) != PS_OK || ps_dataset_label(ds, opt->head_share, opt->tail_share, err) != PS_OK)
        goto out;
    rc = PS_OK;
out:
    free(umap);
    free(imap);
    free(dmap);
    return rc;
}

static int check_options(const ps_load_options *opt, ps_error *err)
{
    if (opt->max_seq_len < 1)
        return ps_fail(err, "max sequence length must be at least 1 (got %d)", opt->max_seq_len);
    if (!(opt->head_share >= 0 && opt->head_share <= 1) || !(opt->tail_share >= 0 && opt->tail_share <= 1))
        return ps_fail(err, "head and tail shares must be between 0 and 1 (got %g and %g)", opt->head_share,
                       opt->tail_share);
    if (opt->kcore < 0)
        return ps_fail(err, "k-core must be 0 (off) or positive (got %d)", opt->kcore);
    return PS_OK;
}

int ps_dataset_load(ps_dataset *ds, const char *path, const ps_load_options *opt, ps_error *err)
{
    memset(ds, 0, sizeof *ds);
    if (check_options(opt, err) != PS_OK)
        return PS_ERR;
    ps_log log;
    if (ps_log_read(&log, path, opt, err) != PS_OK)
        return PS_ERR;
    ds->max_seq_len = opt->max_seq_len;
    ds->report.format = log.format;
    ds->report.rows_read = log.n;
    ds->report.has_time = log.time != NULL;
    uint8_t *keep = ps_calloc((size_t)log.n, 1, "row mask", err);
    int rc = PS_ERR;
    if (keep) {
        memset(keep, 1, (size_t)log.n);
        rc = build(ds, &log, opt, keep, err);
    }
    free(keep);
    ps_log_free(&log);
    if (rc != PS_OK) {
        ps_dataset_free(ds);
        return ps_fail_wrap(err, "%s", path);
    }
    return PS_OK;
}

void ps_dataset_free(ps_dataset *ds)
{
    free(ds->user_off);
    free(ds->seq);
    free(ds->user_tokens.pool);
    free(ds->user_tokens.off);
    free(ds->item_tokens.pool);
    free(ds->item_tokens.off);
    free(ds->dropped_item_tokens.pool);
    free(ds->dropped_item_tokens.off);
    free(ds->train_count);
    free(ds->label);
    free(ds->first_seen);
    free(ds->train);
    free(ds->valid);
    free(ds->test);
    memset(ds, 0, sizeof *ds);
}

const int32_t *ps_sample_prefix(const ps_dataset *ds, ps_sample s, int *len)
{
    int32_t start = s.pos > ds->max_seq_len ? s.pos - ds->max_seq_len : 0;
    *len = s.pos - start;
    return ds->seq + ds->user_off[s.user] + start;
}

static int32_t find_token(const ps_strings *s, const char *token)
{
    for (int32_t i = 1; i < s->n; i++)
        if (strcmp(ps_strings_get(s, i), token) == 0)
            return i;
    return 0;
}

int32_t ps_dataset_find_user(const ps_dataset *ds, const char *token)
{
    return find_token(&ds->user_tokens, token);
}

int32_t ps_dataset_find_item(const ps_dataset *ds, const char *token)
{
    return find_token(&ds->item_tokens, token);
}
