/* One user's list, plain or steered, for the CLI's `recommend` and the server (recommend.h). */
#include "popsteer/recommend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/checkpoint.h"
#include "popsteer/metrics.h"
#include "popsteer/popsteer.h"
#include "steer/steer_internal.h"
#include "util/intern.h"

struct ps_recommender {
    const ps_dataset *ds;
    const ps_sasrec *m;
    const ps_sae *sae;
    const ps_latent_table *latents;
    /* owned when opened from files */
    ps_sasrec *own_m;
    ps_sae *own_sae;
    ps_latent_table own_latents;
    float *et;         /* [d, n_items + 1] the item embedding, transposed once */
    int32_t *order;    /* [m] latents by |d| descending (ps_steer_order) */
    double min_abs_d;  /* ps_steer_min_nonzero_abs over all latents */
    float *user_h;     /* [n_users + 1, d] cached user vectors, or NULL */
    ps_intern users, items;
    int32_t *user_of, *item_of; /* intern id -> dataset id */
};

struct ps_rec_ws {
    const ps_recommender *r;
    ps_sasrec_ws *ws;
    ps_sae_encoder enc;
    float *base_bias;  /* [m] the encoder's folded bias without shifts */
    ps_steer_plan plan; /* arrays with room for m */
    float *h, *hrec, *val, *scores, *list_scores;
    int32_t *idx, *seq, *list;
    uint8_t *exclude;  /* [n_items + 1], all 0 between calls */
};

/* ---------- the recommender ---------- */

static int index_tokens(ps_intern *t, int32_t **of, const ps_strings *s, const char *what, ps_error *err)
{
    if (ps_intern_init(t, err) != PS_OK)
        return PS_ERR;
    *of = ps_calloc((size_t)s->n + 1, sizeof **of, what, err);
    if (!*of)
        return PS_ERR;
    for (int32_t i = 1; i < s->n; i++) { /* index 0 is padding / no user: never found */
        const char *tok = ps_strings_get(s, i);
        int32_t id = ps_intern_get(t, tok, strlen(tok), err);
        if (id < 0)
            return PS_ERR;
        (*of)[id] = i;
    }
    return PS_OK;
}

static int prepare_steering(ps_recommender *r, ps_error *err)
{
    const ps_latent_table *t = r->latents;
    const int m = r->sae->cfg.n_latents;
    if (t->m != m)
        return ps_fail(err, "the latents table has %d latents but the SAE has %d", t->m, m);
    /* validated once as a plan for every latent would be: finite d and stds >= 0 */
    ps_steer_plan check;
    if (ps_steer_plan_make(t->d, t->std_pop, t->std_unpop, m, m, 0.0, &check, err) != PS_OK)
        return PS_ERR;
    ps_steer_plan_free(&check);
    r->order = ps_calloc((size_t)m, sizeof *r->order, "steering order", err);
    int n = 0;
    if (!r->order || ps_steer_order(t->d, NULL, m, r->order, &n, err) != PS_OK)
        return PS_ERR;
    r->min_abs_d = ps_steer_min_nonzero_abs(t->d, m);
    return PS_OK;
}

int ps_recommender_create(ps_recommender **out, const ps_dataset *ds, const ps_sasrec *m, const ps_sae *sae,
                          const ps_latent_table *latents, ps_error *err)
{
    *out = NULL;
    if (ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, "the model", err) != PS_OK)
        return PS_ERR;
    if (sae && ps_sae_fits_model(sae, m, err) != PS_OK)
        return PS_ERR;
    if (latents && !sae)
        return ps_fail(err, "steering with a latents table needs the SAE it was probed on");
    ps_recommender *r = ps_calloc(1, sizeof *r, "recommender", err);
    if (!r)
        return PS_ERR;
    r->ds = ds;
    r->m = m;
    r->sae = sae;
    r->latents = latents;
    r->et = ps_calloc((size_t)m->cfg.d * (size_t)(ds->n_items + 1), sizeof *r->et, "item embedding", err);
    int rc = r->et ? PS_OK : PS_ERR;
    if (rc == PS_OK)
        ps_sasrec_item_embedding_t(m, r->et);
    if (rc == PS_OK)
        rc = index_tokens(&r->users, &r->user_of, &ds->user_tokens, "user index", err);
    if (rc == PS_OK)
        rc = index_tokens(&r->items, &r->item_of, &ds->item_tokens, "item index", err);
    if (rc == PS_OK && latents)
        rc = prepare_steering(r, err);
    if (rc != PS_OK) {
        ps_recommender_free(r);
        return PS_ERR;
    }
    *out = r;
    return PS_OK;
}

int ps_recommender_open(ps_recommender **out, const ps_dataset *ds, const char *model_path, const char *sae_path,
                        const char *latents_path, ps_error *err)
{
    *out = NULL;
    if (latents_path && !sae_path)
        return ps_fail(err, "%s: a latents table needs the SAE it was probed on", latents_path);
    ps_sasrec *m = NULL;
    ps_sae *sae = NULL;
    ps_latent_table t = {0};
    int rc = ps_sasrec_load(&m, model_path, err);
    if (rc == PS_OK)
        rc = ps_sasrec_check_dataset(m, ds->n_items, ds->max_seq_len, model_path, err);
    if (rc == PS_OK && sae_path && !(sae = ps_sae_load(sae_path, err)))
        rc = PS_ERR;
    if (rc == PS_OK && latents_path)
        rc = ps_latents_csv_read(latents_path, sae->cfg.n_latents, &t, err);
    if (rc == PS_OK)
        rc = ps_recommender_create(out, ds, m, sae, latents_path ? &t : NULL, err);
    if (rc != PS_OK) {
        ps_latent_table_free(&t);
        ps_sae_free(sae);
        ps_sasrec_free(m);
        return PS_ERR;
    }
    ps_recommender *r = *out;
    r->own_m = m;
    r->own_sae = sae;
    r->own_latents = t;
    if (latents_path)
        r->latents = &r->own_latents; /* the struct moved: point at the recommender's copy */
    return PS_OK;
}

void ps_recommender_free(ps_recommender *r)
{
    if (!r)
        return;
    free(r->et);
    free(r->user_h);
    free(r->order);
    ps_intern_free(&r->users);
    ps_intern_free(&r->items);
    free(r->user_of);
    free(r->item_of);
    ps_latent_table_free(&r->own_latents);
    ps_sae_free(r->own_sae);
    ps_sasrec_free(r->own_m);
    free(r);
}

const ps_dataset *ps_recommender_dataset(const ps_recommender *r) { return r->ds; }
const ps_sasrec *ps_recommender_model(const ps_recommender *r) { return r->m; }
const ps_sae *ps_recommender_sae(const ps_recommender *r) { return r->sae; }
const ps_latent_table *ps_recommender_latents(const ps_recommender *r) { return r->latents; }

static int32_t find(const ps_intern *t, const int32_t *of, const char *token)
{
    int32_t id = token ? ps_intern_find(t, token, strlen(token)) : -1;
    return id < 0 ? 0 : of[id];
}

int32_t ps_recommender_find_user(const ps_recommender *r, const char *token)
{
    return find(&r->users, r->user_of, token);
}

int32_t ps_recommender_find_item(const ps_recommender *r, const char *token)
{
    return find(&r->items, r->item_of, token);
}

int ps_recommender_plan(const ps_recommender *r, double alpha, int neurons, ps_steer_plan *plan, ps_error *err)
{
    memset(plan, 0, sizeof *plan);
    if (!r->latents)
        return ps_fail(err, "steering needs the probe's latents table");
    const ps_latent_table *t = r->latents;
    return ps_steer_plan_make(t->d, t->std_pop, t->std_unpop, t->m, neurons ? neurons : t->m, alpha, plan, err);
}

/* The last max_len items of a history, left-aligned in seq [max_len] (ps_batch_prefixes' layout). */
static int32_t fill_prefix(const ps_recommender *r, const int32_t *history, int64_t n, int32_t *seq)
{
    const int L = r->m->cfg.max_len;
    int32_t len = n < L ? (int32_t)n : L;
    memset(seq, 0, (size_t)L * sizeof *seq);
    memcpy(seq, history + (n - len), (size_t)len * sizeof *seq);
    return len;
}

int ps_recommender_cache_users(ps_recommender *r, ps_error *err)
{
    const ps_dataset *ds = r->ds;
    const size_t d = (size_t)r->m->cfg.d;
    float *h = ps_calloc((size_t)ds->n_users + 1, d * sizeof *h, "user vectors", err);
    int32_t *seq = ps_calloc((size_t)r->m->cfg.max_len, sizeof *seq, "sequence", err);
    ps_sasrec_ws *ws = NULL;
    int rc = h && seq ? ps_sasrec_ws_create(&ws, r->m, 1, 0, err) : PS_ERR;
    for (int32_t u = 1; rc == PS_OK && u <= ds->n_users; u++) {
        int32_t len = fill_prefix(r, ds->seq + ds->user_off[u], ps_user_len(ds, u), seq);
        rc = ps_sasrec_user_vectors(r->m, ws, seq, &len, 1, h + (size_t)u * d, err);
    }
    ps_sasrec_ws_free(ws);
    free(seq);
    if (rc != PS_OK) {
        free(h);
        return PS_ERR;
    }
    free(r->user_h);
    r->user_h = h;
    return PS_OK;
}

/* ---------- per-thread workspaces ---------- */

void ps_rec_ws_free(ps_rec_ws *w)
{
    if (!w)
        return;
    ps_sasrec_ws_free(w->ws);
    ps_sae_encoder_free(&w->enc);
    free(w->base_bias);
    ps_steer_plan_free(&w->plan);
    free(w->h);
    free(w->hrec);
    free(w->val);
    free(w->scores);
    free(w->list_scores);
    free(w->idx);
    free(w->seq);
    free(w->list);
    free(w->exclude);
    free(w);
}

int ps_rec_ws_create(ps_rec_ws **out, const ps_recommender *r, ps_error *err)
{
    *out = NULL;
    ps_rec_ws *w = ps_calloc(1, sizeof *w, "recommender workspace", err);
    if (!w)
        return PS_ERR;
    w->r = r;
    const size_t d = (size_t)r->m->cfg.d, V = (size_t)r->ds->n_items + 1, L = (size_t)r->m->cfg.max_len;
    const size_t m = r->sae ? (size_t)r->sae->cfg.n_latents : 0, k = r->sae ? (size_t)r->sae->cfg.k : 0;
    int ok = ps_sasrec_ws_create(&w->ws, r->m, 1, 0, err) == PS_OK &&
             (w->h = ps_calloc(d, sizeof *w->h, "user vector", err)) &&
             (w->scores = ps_calloc(V, sizeof *w->scores, "scores", err)) &&
             (w->list_scores = ps_calloc(V, sizeof *w->list_scores, "list", err)) &&
             (w->list = ps_calloc(V, sizeof *w->list, "list", err)) &&
             (w->seq = ps_calloc(L, sizeof *w->seq, "sequence", err)) &&
             (w->exclude = ps_calloc(V, sizeof *w->exclude, "exclusions", err));
    if (ok && r->sae) {
        ok = (w->hrec = ps_calloc(d, sizeof *w->hrec, "user vector", err)) &&
             (w->val = ps_calloc(k, sizeof *w->val, "codes", err)) &&
             (w->idx = ps_calloc(k, sizeof *w->idx, "codes", err)) &&
             (w->base_bias = ps_calloc(m, sizeof *w->base_bias, "encoder bias", err)) &&
             ps_sae_encoder_init(&w->enc, r->sae, err) == PS_OK;
        if (ok)
            memcpy(w->base_bias, w->enc.bias, m * sizeof *w->base_bias);
    }
    if (ok && r->latents)
        ok = (w->plan.latent = ps_calloc(m, sizeof *w->plan.latent, "steering latents", err)) &&
             (w->plan.weight = ps_calloc(m, sizeof *w->plan.weight, "steering weights", err)) &&
             (w->plan.shift = ps_calloc(m, sizeof *w->plan.shift, "steering shifts", err));
    if (!ok) {
        ps_rec_ws_free(w);
        return PS_ERR;
    }
    *out = w;
    return PS_OK;
}

/* ---------- one list ---------- */

const char *ps_rec_scoring_name(ps_rec_scoring s)
{
    return s == PS_REC_STEERED ? "popsteer" : s == PS_REC_SAE ? "sae" : "sasrec";
}

int ps_rec_query_check(const ps_recommender *r, const ps_rec_query *q, ps_error *err)
{
    const int32_t n_items = r->ds->n_items;
    if (q->user < 0 || q->user > r->ds->n_users)
        return ps_fail(err, "user id %d is outside 1..%d", (int)q->user, (int)r->ds->n_users);
    if (q->user)
        ; /* the dataset's own history: valid by construction */
    else if (!q->history || q->n_history < 1)
        return ps_fail(err, "the history is empty: at least one known item is needed");
    for (int64_t i = 0; !q->user && i < q->n_history; i++)
        if (q->history[i] < 1 || q->history[i] > n_items)
            return ps_fail(err, "history item %lld has id %d, outside 1..%d", (long long)i, (int)q->history[i],
                           (int)n_items);
    if (q->k < 1 || q->k > PS_REC_MAX_K)
        return ps_fail(err, "k = %d is outside 1..%d", q->k, PS_REC_MAX_K);
    if (!isfinite(q->alpha) || q->alpha < 0 || q->alpha > 1e6)
        return ps_fail(err, "alpha = %g is outside 0..1e6 (a negative alpha would amplify popularity bias)",
                       q->alpha);
    if (q->alpha > 0 && !r->latents)
        return ps_fail(err, "alpha = %g needs steering, which needs an SAE and its latents table", q->alpha);
    const int m = r->latents ? r->latents->m : 0;
    if (q->neurons != 0 && !r->latents)
        return ps_fail(err, "neurons = %d needs steering, which needs an SAE and its latents table", q->neurons);
    if (q->neurons < 0 || q->neurons > m)
        return ps_fail(err, "neurons = %d is outside 1..%d (the SAE's latents; 0 = all)", q->neurons, m);
    return PS_OK;
}

/* The user vector to score: SASRec's, or its SAE reconstruction with the plan's shifts in the
 * encoder bias (ps_steer_scorer's chain for one row). */
static int user_vector(const ps_recommender *r, ps_rec_ws *w, const ps_rec_query *q, int32_t len,
                       const float **vec, ps_rec_list *out, ps_error *err)
{
    const size_t d = (size_t)r->m->cfg.d;
    if (q->user && r->user_h)
        memcpy(w->h, r->user_h + (size_t)q->user * d, d * sizeof *w->h);
    else if (ps_sasrec_user_vectors(r->m, w->ws, w->seq, &len, 1, w->h, err) != PS_OK)
        return PS_ERR;
    *vec = w->h;
    out->scoring = PS_REC_SASREC;
    out->neurons = 0;
    if (!r->sae)
        return PS_OK;
    const int m = r->sae->cfg.n_latents;
    memcpy(w->enc.bias, w->base_bias, (size_t)m * sizeof *w->enc.bias);
    out->scoring = PS_REC_SAE;
    if (r->latents && q->alpha > 0) {
        const ps_latent_table *t = r->latents;
        int N = q->neurons ? q->neurons : m;
        ps_steer_plan_fill(t->d, t->std_pop, t->std_unpop, m, r->order, N, q->alpha, r->min_abs_d, &w->plan);
        ps_steer_shift_bias(&w->plan, w->enc.bias);
        out->scoring = PS_REC_STEERED;
        out->neurons = N;
    }
    ps_sae_encoder_topk(&w->enc, w->h, 1, w->idx, w->val);
    ps_sae_decode(r->sae, w->idx, w->val, 1, w->hrec);
    *vec = w->hrec;
    return PS_OK;
}

int ps_recommend(const ps_recommender *r, ps_rec_ws *w, const ps_rec_query *q, ps_rec_list *out, ps_error *err)
{
    memset(out, 0, sizeof *out);
    if (ps_rec_query_check(r, q, err) != PS_OK)
        return PS_ERR;
    const int32_t n_items = r->ds->n_items;
    ps_rec_query uq = *q;
    if (q->user) {
        uq.history = r->ds->seq + r->ds->user_off[q->user];
        uq.n_history = ps_user_len(r->ds, q->user);
        q = &uq;
    }
    int32_t len = fill_prefix(r, q->history, q->n_history, w->seq);
    const float *vec;
    if (user_vector(r, w, q, len, &vec, out, err) != PS_OK)
        return PS_ERR;
    ps_sasrec_score_t(r->m, r->et, vec, 1, w->scores);
    int32_t eligible = n_items;
    for (int64_t i = 0; q->exclude_seen && i < q->n_history; i++)
        if (!w->exclude[q->history[i]]) {
            w->exclude[q->history[i]] = 1;
            eligible--;
        }
    int k = q->k < eligible ? q->k : (int)eligible;
    if (k > 0)
        ps_topk(w->scores, n_items, k, q->exclude_seen ? w->exclude : NULL, w->list);
    for (int64_t i = 0; q->exclude_seen && i < q->n_history; i++)
        w->exclude[q->history[i]] = 0;
    for (int j = 0; j < k; j++) {
        int32_t it = w->list[j];
        w->list_scores[j] = w->scores[it];
        int8_t lab = r->ds->label[it];
        out->n_head += lab > 0;
        out->n_tail += lab < 0;
        out->n_mid += lab == 0;
    }
    out->n = k;
    out->items = w->list;
    out->scores = w->list_scores;
    out->prefix_len = len;
    return PS_OK;
}
