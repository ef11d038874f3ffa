/* The model-independent half of the PopSteer probe (SPEC §4): synthetic popular-only and
 * long-tail-only users, streaming per-latent statistics of SAE pre-activations, Cohen's d,
 * TopK firing counts, and the per-latent CSV table with its summary.
 *
 * The model-dependent half (running SASRec and the SAE encoder on the synthetic users) lives
 * with the models; the functions here only see item ids and dense float arrays, so they can
 * be tested without a trained model. */
#ifndef POPSTEER_PROBE_H
#define POPSTEER_PROBE_H

#include <stdint.h>

#include "popsteer/dataset.h"
#include "popsteer/error.h"

/* ---- synthetic users --------------------------------------------------------------- */

/* Two groups of synthetic users built from the same training prefixes.
 *
 * Rows [0, n_group) are the popular-only users (label +1) and rows [n_group, 2·n_group) the
 * unpopular-only users (label −1): row r and row n_group + r both come from the training
 * prefix ds->train[source[r]] and have its length. Keeping each group contiguous lets the
 * caller feed batches of one group straight into that group's ps_latent_stats.
 *
 * Sequences are left-aligned in a flat row-major buffer seq[n][max_len] (positions 0..L−1
 * hold items, the rest is the padding item 0), which is SASRec's input layout (SPEC §2). */
typedef struct ps_probe_users {
    int64_t n;          /* rows = 2 · n_group */
    int64_t n_group;    /* users per group = number of selected training prefixes */
    int max_len;        /* row stride of seq: ds->max_seq_len */
    int32_t *seq;       /* [n · max_len] item ids, 0-padded */
    int32_t *len;       /* [n] real items per row (the prefix length L, ≥ 1 for real datasets) */
    int8_t *label;      /* [n] +1 for popular-only rows, −1 for unpopular-only rows */
    int64_t *source;    /* [n_group] index into ds->train of the prefix row r was made from */
} ps_probe_users;

/* Builds the synthetic users of SPEC §4. For each selected training prefix with length L,
 * the popular row holds L items drawn uniformly with replacement from the head items
 * (label +1) and the unpopular row L items drawn from the tail items (label −1).
 *
 * Selection: cap == 0 or cap >= ds->n_train takes every training prefix; 0 < cap < n_train
 * takes a uniform sample of exactly cap prefixes without replacement, kept in train order.
 * cap < 0 is an error.
 *
 * Deterministic in seed alone: a self-contained xoshiro256** generator with one independent
 * stream per synthetic row, named by its training sample (and one for the selection), so the
 * result does not depend on the number of OpenMP threads, and with the same seed a capped
 * probe's users are exactly the uncapped probe's users of the selected prefixes.
 * Fails, suggesting --head-share/--tail-share, when the dataset has no head or no tail
 * items. On failure *out is left empty (safe to free). */
int ps_probe_users_make(const ps_dataset *ds, int64_t cap, uint64_t seed, ps_probe_users *out, ps_error *err);
/* The same with any two item sets in the head and tail roles (concept probes, group.h):
 * sides[n_items + 1] says which pool each item is drawn into, +1 (the popular role: rows
 * [0, n_group), label +1) or −1 (the long-tail role: label −1), 0 = neither. Fails when a side
 * has no item.
 * min_len > 0 lengthens rows shorter than min_len items to min(min_len, max_len) (same
 * selection and streams; only the lengths change): on short-sequence logs (Amazon Beauty: a
 * median of 6 items) most prefixes hold 1–5 items, and a one-item synthetic user says little
 * about a latent. With sides = ds->label and min_len = 0 this is ps_probe_users_make, item for
 * item. */
int ps_probe_users_make_sides(const ps_dataset *ds, const int8_t *sides, int64_t cap, int min_len, uint64_t seed,
                              ps_probe_users *out, ps_error *err);
void ps_probe_users_free(ps_probe_users *u);

/* Row r of the sequence buffer. */
static inline const int32_t *ps_probe_users_row(const ps_probe_users *u, int64_t r)
{
    return u->seq + r * (int64_t)u->max_len;
}

/* ---- streaming per-latent statistics ------------------------------------------------ */

/* Running mean and sum of squared deviations (M2) of m latents, in double.
 *
 * Each added batch is reduced with an exact two-pass computation (batch mean, then the
 * batch's squared deviations from it) and folded into the running totals with Chan et al.'s
 * parallel formula. Per latent, the arithmetic happens in the order the rows and batches
 * arrive; OpenMP only splits the latents between threads, so results are bit-identical for
 * any thread count. Memory is O(m), whatever the number of rows. */
typedef struct ps_latent_stats {
    int m;
    int64_t n;          /* rows added so far */
    double *mean;       /* [m] */
    double *m2;         /* [m] Σ (x − mean)² */
    double *scratch;    /* [2m] batch mean and batch M2, reused by every add */
} ps_latent_stats;

int ps_latent_stats_init(ps_latent_stats *s, int m, ps_error *err);
/* Adds B rows of dense pre-activations a[B][m] (row-major). B == 0 is a no-op. */
int ps_latent_stats_add(ps_latent_stats *s, const float *a, int64_t B, ps_error *err);
/* dst ← dst ∪ src (Chan et al.). Both must have the same m; src is unchanged. */
int ps_latent_stats_merge(ps_latent_stats *dst, const ps_latent_stats *src, ps_error *err);
void ps_latent_stats_free(ps_latent_stats *s);

/* Finalised statistics: mean and POPULATION standard deviation sqrt(M2 / n). */
typedef struct ps_latent_stats_result {
    int m;
    int64_t n;
    double *mean;       /* [m] */
    double *std;        /* [m] */
} ps_latent_stats_result;

/* Fails when no rows were added, or when a latent's mean or M2 is not finite (a NaN or
 * infinite pre-activation reached it; the message names the first such latent). */
int ps_latent_stats_finish(const ps_latent_stats *s, ps_latent_stats_result *r, ps_error *err);
void ps_latent_stats_result_free(ps_latent_stats_result *r);

/* Cohen's d per latent (SPEC §4): d_j = (μ_pop − μ_unpop) / sqrt((σ_pop² + σ_unpop²) / 2).
 * d > 0: the latent is larger for popular taste; d < 0: for long-tail taste.
 *
 * When the denominator is 0 (the latent is constant within both groups) d_j is defined as
 * 0, even if the two constants differ: such a latent carries no within-group variation to
 * scale a steering shift by (SPEC §5 multiplies by σ), so it must not be ranked first.
 * NaN inputs give NaN (ps_steer_plan_make rejects them, naming the latent).
 * d has pop->m entries; fails if the two results have different m. */
int ps_cohens_d(const ps_latent_stats_result *pop, const ps_latent_stats_result *unpop, double *d, ps_error *err);

/* ---- firing counts on real users ---------------------------------------------------- */

/* Adds, for B users, how often each latent is among the user's TopK: idx[B][k] holds latent
 * indices. val (may be NULL) holds the matching activations; when given, an entry counts
 * only if its value is > 0, because TopK after ReLU can select latents whose activation is 0
 * when fewer than k are positive, and those did not fire. count has m entries and is
 * accumulated into (zero it first). Fails, naming user and slot, on an index outside 0..m−1.
 * Integer counts, so the result does not depend on how users are batched. */
int ps_fire_counts_add(int64_t *count, int m, const int32_t *idx, const float *val, int64_t B, int k, ps_error *err);

/* rate_j = count_j / n_users (0 when n_users == 0). */
void ps_fire_rate(const int64_t *count, int m, int64_t n_users, double *rate);

/* ---- the per-latent table (CSV) ------------------------------------------------------ */

/* One row per latent. For writing, the pointers may point at the caller's arrays; the
 * reader allocates them (free with ps_latent_table_free). */
typedef struct ps_latent_table {
    int m;
    double *d, *mean_pop, *std_pop, *mean_unpop, *std_unpop, *fire_rate; /* [m] each */
} ps_latent_table;

int ps_latent_table_alloc(ps_latent_table *t, int m, ps_error *err);
void ps_latent_table_free(ps_latent_table *t);

/* The table's d, means and stds from the two groups' finished statistics (t allocated with their
 * m; fire_rate untouched). Fails as ps_latent_stats_finish and ps_cohens_d do. */
int ps_latent_table_fill(const ps_latent_stats *pop, const ps_latent_stats *unpop, ps_latent_table *t,
                         ps_error *err);

/* The CSV header, without line terminator. */
#define PS_LATENTS_CSV_HEADER "latent,cohens_d,mean_pop,std_pop,mean_unpop,std_unpop,fire_rate,top_items"
/* At most this many items are written per latent. */
#define PS_LATENTS_CSV_TOP_ITEMS 10

/* How to name items in the top_items column. */
typedef struct ps_latent_items {
    const int32_t *top;        /* [m · n_top] item ids per latent, best first; 0 ends a list
                                * early; NULL = every top_items field is empty */
    int n_top;                 /* entries per latent in top (only the first 10 are written) */
    const ps_strings *tokens;  /* item tokens by item id (ds->item_tokens); needed when top != NULL */
    char *const *titles;       /* [tokens->n] or NULL; titles[i] NULL or "" = no title
                                * (ps_item_titles.title from items.h fits as is) */
} ps_latent_items;

/* Writes the table atomically: the header, then latents 0..m−1 in order. Numbers use %.9g.
 * top_items is always a quoted field: up to 10 items as "token" or "token:title" separated by
 * '|', with '"' doubled and CR/LF replaced by spaces so that every record is one line.
 * items may be NULL (every top_items is ""). Fails, writing nothing, when a number is not
 * finite (the message names the latent and the column) or an item id is out of range. */
int ps_latents_csv_write(const char *path, const ps_latent_table *t, const ps_latent_items *items, ps_error *err);

/* Reads a table written by ps_latents_csv_write (top_items is ignored). Validates the header,
 * that there are exactly expected_m rows (expected_m <= 0 accepts any positive count), that
 * latent indices run 0, 1, 2, ..., and that every number parses, is finite, stds are >= 0 and
 * fire rates lie in [0, 1]. Errors name the file and line. CRLF line ends and a UTF-8 BOM are
 * accepted. On success t is allocated (free with ps_latent_table_free); on failure t is empty. */
int ps_latents_csv_read(const char *path, int expected_m, ps_latent_table *t, ps_error *err);

/* ---- summary -------------------------------------------------------------------------- */

/* Cohen's conventional effect-size thresholds: small, medium, large. */
#define PS_EFFECT_SMALL 0.2
#define PS_EFFECT_MEDIUM 0.5
#define PS_EFFECT_LARGE 0.8
#define PS_LATENTS_SUMMARY_MAX_TOP 32

typedef struct ps_latents_summary {
    int m;
    int n_pos, n_neg, n_zero;     /* latents with d > 0, d < 0, d == 0 */
    int n_abs_gt[3];              /* |d| > 0.2, 0.5, 0.8 */
    int n_pos_gt[3];              /*  d  > 0.2, 0.5, 0.8 */
    int n_neg_gt[3];              /*  d  < −0.2, −0.5, −0.8 */
    int n_top_pos, n_top_neg;
    int32_t top_pos[PS_LATENTS_SUMMARY_MAX_TOP]; /* strongest d > 0, largest d first */
    int32_t top_neg[PS_LATENTS_SUMMARY_MAX_TOP]; /* strongest d < 0, most negative first */
} ps_latents_summary;

/* Summarises d[0..m). top (0..PS_LATENTS_SUMMARY_MAX_TOP) is how many of the strongest
 * latents of each sign to list; ties go to the smaller index. Fails on a NaN d (names it). */
int ps_latents_summary_make(const double *d, int m, int top, ps_latents_summary *s, ps_error *err);

#endif
