/* Datasets: loading interaction logs and turning them into the RecBole-compatible
 * sequential split of SPEC §1.
 *
 * Memory layout is compact and flat: every user's chronologically ordered items live in
 * one int32 array indexed by offsets; samples refer to (user, position) pairs instead of
 * copying prefixes. Ids: users 1..n_users, items 1..n_items, item 0 is padding. */
#ifndef POPSTEER_DATASET_H
#define POPSTEER_DATASET_H

#include <stdint.h>

#include "popsteer/error.h"

typedef enum ps_format {
    PS_FORMAT_AUTO = 0,
    PS_FORMAT_ATOMIC,    /* RecBole atomic .inter: typed tab-separated header */
    PS_FORMAT_DAT,       /* MovieLens ratings.dat: UserID::MovieID::Rating::Timestamp */
    PS_FORMAT_UDATA,     /* MovieLens 100K u.data: user item rating timestamp, tab, no header */
    PS_FORMAT_SEQUENCE,  /* one user per line: user item1 item2 ... (chronological) */
    PS_FORMAT_CSV,       /* CSV/TSV with a header naming user, item (and time, rating) columns */
} ps_format;

const char *ps_format_name(ps_format f);
/* Parses "auto", "atomic", "dat", "udata", "sequence", "csv"; returns -1 if unknown. */
int ps_format_parse(const char *name);

typedef struct ps_load_options {
    ps_format format;
    int has_rating_threshold;   /* keep rows with rating >= rating_threshold */
    double rating_threshold;
    int kcore;                  /* iterative k-core on users and items; 0 = off */
    int min_user_len;           /* users with fewer interactions are dropped and counted (3) */
    int max_seq_len;            /* prefix length cap (50) */
    double head_share;          /* cumulative share of training targets marking head items (0.20) */
    double tail_share;          /* ... and tail items (0.20) */
    size_t max_line_bytes;      /* longer lines are an error (1 MiB) */
    const char *user_col, *item_col, *time_col, *rating_col; /* CSV column names; NULL = guess */
} ps_load_options;

void ps_load_options_init(ps_load_options *o);

typedef struct ps_sample {
    int32_t user; /* 1..n_users */
    int32_t pos;  /* index of the target inside the user's sequence; prefix = the ≤ max_seq_len items before */
} ps_sample;

/* Interned strings: string i is pool + off[i] (NUL-terminated). */
typedef struct ps_strings {
    char *pool;
    int64_t *off;
    int32_t n;
} ps_strings;

typedef struct ps_load_report {
    ps_format format;           /* the format actually read */
    int64_t rows_read;          /* data rows in the file */
    int64_t rows_below_rating;  /* removed by the rating threshold */
    int64_t rows_kcore;         /* removed by the k-core filter */
    int64_t users_too_short;    /* users dropped for having < min_user_len interactions */
    int64_t rows_too_short;     /* ... and their rows */
    int has_time;               /* timestamps were present (else file order is time order) */
} ps_load_report;

typedef struct ps_dataset {
    int32_t n_users, n_items;
    int64_t n_inter;
    int64_t *user_off;          /* [n_users + 2]: user u's items are seq[user_off[u] .. user_off[u+1]) */
    int32_t *seq;               /* [n_inter] item ids, chronological per user */
    ps_strings user_tokens;     /* raw token of user u is user_tokens[u] (index 0 = "") */
    ps_strings item_tokens;     /* raw token of item i is item_tokens[i] (index 0 = "[PAD]") */
    /* Raw item tokens of the log that filtering removed (rating threshold, k-core, short users),
     * in order of first appearance, index 0 = "": side files such as item features may list
     * them, and must be told apart from tokens the log never had. */
    ps_strings dropped_item_tokens;
    int64_t *train_count;       /* [n_items + 1] training samples whose target is the item */
    int8_t *label;              /* [n_items + 1] +1 head, 0 mid, -1 tail; label[0] = 0 */
    int32_t n_head, n_mid, n_tail;
    /* [n_items + 1] when the item first appears in the filtered log, on the log's normalised
     * time axis: 0 = its first row, 1 = its last (the file order when there are no timestamps);
     * "new items" concept groups (group.h) read it. NULL in datasets not made by ps_dataset_load. */
    float *first_seen;
    int max_seq_len;
    int64_t n_train;
    ps_sample *train;           /* [n_train] in user order, then position order */
    ps_sample *valid;           /* [n_users] second-to-last item of every user */
    ps_sample *test;            /* [n_users] last item of every user */
    ps_load_report report;
} ps_dataset;

/* Loads a log, applies the filters and builds ids, order, split and labels (SPEC §1). */
int ps_dataset_load(ps_dataset *ds, const char *path, const ps_load_options *opt, ps_error *err);
void ps_dataset_free(ps_dataset *ds);

/* Recomputes head/mid/tail labels with other shares (labels depend only on train counts). */
int ps_dataset_label(ps_dataset *ds, double head_share, double tail_share, ps_error *err);

/* The prefix of a sample: *len items starting at the returned pointer (oldest first). */
const int32_t *ps_sample_prefix(const ps_dataset *ds, ps_sample s, int *len);
static inline int32_t ps_sample_target(const ps_dataset *ds, ps_sample s)
{
    return ds->seq[ds->user_off[s.user] + s.pos];
}
static inline int64_t ps_user_len(const ps_dataset *ds, int32_t u)
{
    return ds->user_off[u + 1] - ds->user_off[u];
}
/* Id of a raw token, or 0 if unknown. Linear scan: for the CLI, not hot paths. */
int32_t ps_dataset_find_user(const ps_dataset *ds, const char *token);
int32_t ps_dataset_find_item(const ps_dataset *ds, const char *token);
static inline const char *ps_strings_get(const ps_strings *s, int32_t i)
{
    return s->pool + s->off[i];
}

typedef struct ps_dataset_stats {
    int32_t users, items;
    int64_t interactions, train_samples, valid_samples, test_samples;
    int32_t head_items, mid_items, tail_items;
    double top20_share;         /* share of interactions on the 20 % most popular items */
    double len_min, len_q25, len_median, len_q75, len_q90, len_max, len_mean;
    double density;
} ps_dataset_stats;

int ps_dataset_stats_compute(const ps_dataset *ds, ps_dataset_stats *st, ps_error *err);

#endif
