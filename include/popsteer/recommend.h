/* One user's recommendations, plain or steered, as `popsteer recommend` prints them and
 * `popsteer serve` answers them: a recommender loaded once and shared read-only by any number of
 * threads, and one workspace per thread that scores a history per call without allocating.
 *
 * Scoring is the eval chain of popsteer.h for one prefix, the last max_len items of a history:
 *  - without an SAE: SASRec (ps_sasrec_scorer);
 *  - with an SAE: TopK SAE reconstruction of the user vector (alpha 0), and with the probe's
 *    latents table and alpha > 0 the paper's steering (SPEC §5): the plan of ps_steer_plan_make
 *    for (alpha, N) folded into the encoder bias, exactly as ps_steer_scorer does. The plan is
 *    made per call from an order of the latents by |d| sorted once, with the same arithmetic
 *    (steer_internal.h), so a request costs no sort.
 * The list is ps_topk's order (score descending, ties to the smaller item id). */
#ifndef POPSTEER_RECOMMEND_H
#define POPSTEER_RECOMMEND_H

#include <stdint.h>

#include "popsteer/dataset.h"
#include "popsteer/error.h"
#include "popsteer/probe.h"
#include "popsteer/sae.h"
#include "popsteer/sasrec.h"
#include "popsteer/steer.h"

/* The longest list one call returns (lists are also cut at the number of eligible items). */
#define PS_REC_MAX_K 100000

typedef struct ps_recommender ps_recommender;
typedef struct ps_rec_ws ps_rec_ws;

/* A recommender over borrowed parts, which must outlive it and not change: ds, the model (checked
 * against ds), sae (NULL: plain SASRec; else checked against the model) and the latents table
 * (NULL: no steering; else it needs the SAE and must have its latent count, and is validated as a
 * plan would be). On failure *out is NULL. */
int ps_recommender_create(ps_recommender **out, const ps_dataset *ds, const ps_sasrec *m, const ps_sae *sae,
                          const ps_latent_table *latents, ps_error *err);
/* The same from files: the model, and optionally the SAE and the probe's latents CSV (which
 * needs the SAE); they are owned by the recommender. Errors name the file. */
int ps_recommender_open(ps_recommender **out, const ps_dataset *ds, const char *model_path, const char *sae_path,
                        const char *latents_path, ps_error *err);
void ps_recommender_free(ps_recommender *r); /* safe on NULL */

const ps_dataset *ps_recommender_dataset(const ps_recommender *r);
const ps_sasrec *ps_recommender_model(const ps_recommender *r);
const ps_sae *ps_recommender_sae(const ps_recommender *r);               /* NULL without one */
const ps_latent_table *ps_recommender_latents(const ps_recommender *r);  /* NULL without one */
/* Internal id of a raw user / item token (hash lookup, thread-safe), 0 when unknown. */
int32_t ps_recommender_find_user(const ps_recommender *r, const char *token);
int32_t ps_recommender_find_item(const ps_recommender *r, const char *token);
/* The paper's plan for (alpha, N; N 0 = all latents) from the latents table, as `eval` makes it
 * (ps_steer_plan_make); fails without a table. */
int ps_recommender_plan(const ps_recommender *r, double alpha, int neurons, ps_steer_plan *plan, ps_error *err);

/* Computes and keeps every user's SASRec vector of their whole history (ps_sasrec_user_vectors on
 * the last max_len items, one user at a time: the bits a query by that user computes), so that
 * queries by user skip SASRec and cost only the SAE and the scoring. Once, before the threads
 * start; about 0.2 ms per user of the paper's model on one core. */
int ps_recommender_cache_users(ps_recommender *r, ps_error *err);

/* One thread's scratch: the model's activations, an SAE encoder with its own bias, a plan and the
 * score and list buffers. */
int ps_rec_ws_create(ps_rec_ws **out, const ps_recommender *r, ps_error *err);
void ps_rec_ws_free(ps_rec_ws *w); /* safe on NULL */

typedef struct ps_rec_query {
    const int32_t *history; /* internal item ids 1..n_items, oldest first */
    int64_t n_history;      /* >= 1; the last max_len items are scored */
    int k;                  /* 1..PS_REC_MAX_K */
    double alpha;           /* finite, 0..1e6; > 0 needs the SAE and the latents table */
    int neurons;            /* steered latents N: 0 = all, else 1..the SAE's latents (needs the table) */
    int exclude_seen;       /* leave out every item of the history */
    int32_t user;           /* 0, or a dataset user (1..n_users) whose whole history is the history
                               (history and n_history are then ignored; the cached vector is used) */
} ps_rec_query;

/* PS_OK when the recommender can answer q; otherwise a message naming the bad field, its value
 * and the allowed range (a client's error, not the recommender's). */
int ps_rec_query_check(const ps_recommender *r, const ps_rec_query *q, ps_error *err);

typedef enum ps_rec_scoring { PS_REC_SASREC = 0, PS_REC_SAE = 1, PS_REC_STEERED = 2 } ps_rec_scoring;
const char *ps_rec_scoring_name(ps_rec_scoring s); /* "sasrec", "sae", "popsteer" */

typedef struct ps_rec_list {
    int n;                  /* items in the list: min(k, eligible items) */
    const int32_t *items;   /* [n] best first; owned by the workspace, valid until its next call */
    const float *scores;    /* [n] their scores */
    int n_head, n_mid, n_tail;
    int prefix_len;         /* items scored */
    int neurons;            /* latents steered (0: unsteered) */
    ps_rec_scoring scoring;
} ps_rec_list;

/* Scores q's history and fills out. Checks q first (ps_rec_query_check). */
int ps_recommend(const ps_recommender *r, ps_rec_ws *w, const ps_rec_query *q, ps_rec_list *out, ps_error *err);

#endif
