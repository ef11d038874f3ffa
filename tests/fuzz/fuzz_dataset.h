/* The body of the interaction-log targets (fuzz_data_*.c): one target per forced --format
 * plus one with detection, all through the public entry point ps_dataset_load, so the line
 * reader, splitter, number parsing, interning, filters, ordering, split and labels all run.
 *
 * Loader options come from a hash of the input (see fuzz_hash): k-core on or off, a rating
 * threshold, short prefix caps, odd head/tail shares, a small line-length limit and explicit
 * CSV column names, so that those paths are reached without a separate options encoding.
 *
 * On success the dataset's documented invariants are checked (dataset.h); any violation, like
 * any sanitizer report, is a finding. */
#ifndef POPSTEER_FUZZ_DATASET_H
#define POPSTEER_FUZZ_DATASET_H

#include "fuzz_common.h"

#include <math.h>

#include "popsteer/dataset.h"

static void fuzz_check_strings(const ps_strings *s, int32_t n)
{
    FUZZ_CHECK(s->n == n + 1);
    for (int32_t i = 1; i < s->n; i++) {
        FUZZ_CHECK(s->off[i] > 0);
        FUZZ_CHECK(ps_strings_get(s, i)[0] != '\0'); /* empty ids are refused by the parser */
    }
}

static void fuzz_check_dataset(const ps_dataset *ds, const ps_load_options *o)
{
    FUZZ_CHECK(ds->n_users >= 1 && ds->n_items >= 1);
    FUZZ_CHECK(ds->max_seq_len == o->max_seq_len);
    FUZZ_CHECK(ds->user_off[0] == 0 && ds->user_off[1] == 0);
    FUZZ_CHECK(ds->user_off[ds->n_users + 1] == ds->n_inter);
    int64_t n_train = 0;
    for (int32_t u = 1; u <= ds->n_users; u++) {
        int64_t len = ps_user_len(ds, u);
        FUZZ_CHECK(len >= 3 && len >= o->min_user_len);
        n_train += len - 3;
    }
    FUZZ_CHECK(n_train == ds->n_train);
    /* every item id is used, and only ids 1..n_items are */
    char *seen = calloc((size_t)ds->n_items + 1, 1);
    FUZZ_CHECK(seen != NULL);
    for (int64_t i = 0; i < ds->n_inter; i++) {
        FUZZ_CHECK(ds->seq[i] >= 1 && ds->seq[i] <= ds->n_items);
        seen[ds->seq[i]] = 1;
    }
    for (int32_t i = 1; i <= ds->n_items; i++)
        FUZZ_CHECK(seen[i]);
    free(seen);
    fuzz_check_strings(&ds->user_tokens, ds->n_users);
    fuzz_check_strings(&ds->item_tokens, ds->n_items);
    FUZZ_CHECK(strcmp(ps_strings_get(&ds->item_tokens, 0), "[PAD]") == 0);
    int64_t counted = 0;
    for (int32_t i = 0; i <= ds->n_items; i++) {
        FUZZ_CHECK(ds->train_count[i] >= 0);
        FUZZ_CHECK(ds->label[i] >= -1 && ds->label[i] <= 1);
        counted += ds->train_count[i];
    }
    FUZZ_CHECK(ds->train_count[0] == 0 && ds->label[0] == 0);
    FUZZ_CHECK(counted == ds->n_train);
    FUZZ_CHECK(ds->n_head + ds->n_mid + ds->n_tail == ds->n_items);
    for (int64_t k = 0; k < ds->n_train; k++) {
        ps_sample s = ds->train[k];
        FUZZ_CHECK(s.user >= 1 && s.user <= ds->n_users);
        FUZZ_CHECK(s.pos >= 1 && s.pos <= ps_user_len(ds, s.user) - 3);
        int len;
        const int32_t *p = ps_sample_prefix(ds, s, &len);
        FUZZ_CHECK(len >= 1 && len <= ds->max_seq_len);
        FUZZ_CHECK(p + len == ds->seq + ds->user_off[s.user] + s.pos);
    }
    for (int32_t u = 1; u <= ds->n_users; u++) {
        FUZZ_CHECK(ds->valid[u - 1].user == u && ds->valid[u - 1].pos == ps_user_len(ds, u) - 2);
        FUZZ_CHECK(ds->test[u - 1].user == u && ds->test[u - 1].pos == ps_user_len(ds, u) - 1);
    }
    /* token lookups are linear: check a few, not all */
    for (int32_t i = 1; i <= ds->n_items && i <= 8; i++)
        FUZZ_CHECK(ps_dataset_find_item(ds, ps_strings_get(&ds->item_tokens, i)) == i);
    for (int32_t u = 1; u <= ds->n_users && u <= 8; u++)
        FUZZ_CHECK(ps_dataset_find_user(ds, ps_strings_get(&ds->user_tokens, u)) == u);
    FUZZ_CHECK(ds->report.rows_read >= ds->n_inter);
}

static int fuzz_dataset_one(const uint8_t *data, size_t size, ps_format format)
{
    uint32_t h = fuzz_hash(data, size);
    ps_load_options o;
    ps_load_options_init(&o);
    o.format = format;
    if ((h & 3) == 0)
        o.kcore = 1 + (int)(h >> 2 & 3);
    if ((h >> 4 & 3) == 0) {
        o.has_rating_threshold = 1;
        o.rating_threshold = (double)(h >> 6 & 7) - 1.0;
    }
    if ((h >> 9 & 3) == 0)
        o.max_seq_len = 1 + (int)(h >> 11 & 7);
    if ((h >> 14 & 3) == 0) {
        o.head_share = (double)(h >> 16 & 15) / 15.0;
        o.tail_share = (double)(h >> 20 & 15) / 15.0;
    }
    if ((h >> 24 & 7) == 0)
        o.max_line_bytes = 1 + (h >> 27 & 31);
    if ((h >> 24 & 7) == 1)
        o.min_user_len = (int)(h >> 27 & 7);
    if ((h >> 29 & 7) == 0 && (format == PS_FORMAT_CSV || format == PS_FORMAT_ATOMIC)) {
        o.user_col = "u";
        o.item_col = "i";
        o.time_col = (h & 0x100) ? "t" : NULL;
        o.rating_col = (h & 0x200) ? "r" : NULL;
    }
    ps_dataset ds;
    ps_error err;
    if (ps_dataset_load(&ds, fuzz_input_path(data, size), &o, &err) != PS_OK) {
        FUZZ_CHECK(err.msg[0] != '\0'); /* every failure says why */
        FUZZ_CHECK(ds.seq == NULL && ds.train == NULL);
        return 0;
    }
    if (format != PS_FORMAT_AUTO)
        FUZZ_CHECK(ds.report.format == format);
    fuzz_check_dataset(&ds, &o);
    ps_dataset_stats st;
    FUZZ_CHECK(ps_dataset_stats_compute(&ds, &st, &err) == PS_OK);
    FUZZ_CHECK(st.users == ds.n_users && st.items == ds.n_items && st.interactions == ds.n_inter);
    FUZZ_CHECK(isfinite(st.len_mean) && isfinite(st.density) && isfinite(st.top20_share));
    FUZZ_CHECK(ps_dataset_label(&ds, 0.5, 0.5, &err) == PS_OK);
    FUZZ_CHECK(ds.n_head + ds.n_mid + ds.n_tail == ds.n_items);
    ps_dataset_free(&ds);
    return 0;
}

#endif
