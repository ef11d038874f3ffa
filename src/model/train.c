/* The SASRec training loop: windows -> shuffled logical batches of ~batch_targets target
 * positions -> micro-batches through forward/backward (gradients accumulate) -> one Adam step. */
#include "popsteer/train.h"
#include "popsteer/checkpoint.h"
#include "popsteer/dist.h"
#include "model/sasrec_internal.h"
#include "nn/sampled_softmax.h"
#include "util/clock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ps_train_options_init(ps_train_options *o)
{
    memset(o, 0, sizeof *o);
    o->layout = PS_LAYOUT_WINDOW;
    o->window_stride = 25;
    o->batch_targets = 4096;
    o->micro_batch = 256;
    o->lr = 1e-3f;
    o->max_epochs = 300;
    o->min_epochs = 50;
    o->patience = 10;
    o->seed = 42;
    o->init_weights = 1;
    o->negatives = 1024;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---------- windows ---------- */

/* One forward sequence: items seq[user_off[user] + start ..][0..len), loss at positions
 * first_loss..len-1, whose targets are the items one step later. */
typedef struct window {
    int32_t user;
    int32_t start;
    int16_t len;
    int16_t first_loss;
} window;

static int64_t user_windows(const ps_dataset *ds, int32_t u, const ps_train_options *o, int L, window *out)
{
    int32_t last_target = (int32_t)ps_user_len(ds, u) - 3; /* training targets are positions 1..n-3 */
    int64_t n = 0;
    if (last_target < 1)
        return 0;
    if (o->layout == PS_LAYOUT_PREFIX) {
        for (int32_t p = 1; p <= last_target; p++, n++)
            if (out) {
                int32_t start = p > L ? p - L : 0;
                out[n] = (window){u, start, (int16_t)(p - start), (int16_t)(p - start - 1)};
            }
        return n;
    }
    int32_t covered = last_target < L ? last_target : L; /* first window: targets 1..covered */
    if (out)
        out[n] = (window){u, 0, (int16_t)covered, 0};
    n++;
    while (covered < last_target) {
        int32_t end = covered + o->window_stride < last_target ? covered + o->window_stride : last_target;
        if (out)
            out[n] = (window){u, end - L, (int16_t)L, (int16_t)(L - (end - covered))};
        n++;
        covered = end;
    }
    return n;
}

static window *make_windows(const ps_dataset *ds, const ps_train_options *o, int L, int64_t *n_out, ps_error *err)
{
    int64_t n = 0;
    for (int32_t u = 1; u <= ds->n_users; u++)
        n += user_windows(ds, u, o, L, NULL);
    window *w = ps_calloc((size_t)n, sizeof *w, "training windows", err);
    if (!w)
        return NULL;
    int64_t k = 0;
    for (int32_t u = 1; u <= ds->n_users; u++)
        k += user_windows(ds, u, o, L, w + k);
    *n_out = n;
    return w;
}

/* Fisher-Yates from the canonical order with a generator seeded by (seed, epoch) alone, so a
 * resumed run shuffles exactly as an uninterrupted one. */
static void shuffle_windows(window *w, const window *canonical, int64_t n, uint64_t seed, int epoch)
{
    memcpy(w, canonical, (size_t)n * sizeof *w);
    uint64_t state = mix64(seed ^ mix64((uint64_t)epoch));
    for (int64_t i = n - 1; i > 0; i--) {
        state = mix64(state);
        int64_t j = (int64_t)(state % (uint64_t)(i + 1));
        window t = w[i];
        w[i] = w[j];
        w[j] = t;
    }
}

static void fill_micro_batch(const ps_dataset *ds, const window *w, int B, int L, int32_t *seq, int32_t *target,
                             int32_t *len)
{
    for (int b = 0; b < B; b++) {
        len[b] = w[b].len;
        const int32_t *items = ds->seq + ds->user_off[w[b].user] + w[b].start;
        int32_t *s = seq + (size_t)b * L, *t = target + (size_t)b * L;
        for (int j = 0; j < L; j++) {
            s[j] = j < w[b].len ? items[j] : 0;
            t[j] = (j >= w[b].first_loss && j < w[b].len) ? items[j + 1] : -1;
        }
    }
}

/* ---------- the loop ---------- */

typedef struct trainer {
    ps_sasrec *m;
    const ps_dataset *ds;
    const ps_train_options *o;
    window *win, *canonical;
    int64_t n_win, n_targets;
    ps_sasrec_ws *ws;
    int32_t *seq, *target, *len;
    float *best;
    ps_train_state st;
    ps_neg_sampler smp; /* --loss sampled */
    int32_t *neg;       /* [negatives], redrawn every Adam step */
} trainer;

static int64_t window_targets(const window *w)
{
    return w->len - w->first_loss;
}

/* A NaN or Inf gradient stops the run before it reaches the weights; the state file of the last
 * finished epoch stays as it was, so the run can be resumed with other options. */
static int check_gradients(const ps_sasrec *m, ps_error *err)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const ps_sasrec_tensor *tt = &m->tensors[i];
        const float *g = m->grads + tt->offset;
        for (size_t j = 0; j < tt->numel; j++)
            if (!isfinite(g[j]))
                return ps_fail(err, "training diverged: the gradient of '%s' is %g at Adam step %lld", tt->name,
                               (double)g[j], (long long)m->adam_t + 1);
    }
    return PS_OK;
}

/* The first window index in [first, last) before which the batch has at least `want` targets. */
static int64_t cut_at(const trainer *t, int64_t first, int64_t last, int64_t want)
{
    int64_t i = first, acc = 0;
    while (i < last && acc < want)
        acc += window_targets(&t->win[i++]);
    return i;
}

/* One logical batch: windows [first, last) -> gradients -> Adam step. With P ranks, rank r takes
 * the contiguous windows holding about targets / P of them (cut by target count) and goes through
 * them in the single process's micro-batches (cut at the same multiples of micro_batch from
 * first, with the same dropout streams and mask offsets), so every rank computes exactly the
 * gradients the single process computes for those windows; one allreduce sums them. */
static int train_batch(trainer *t, int64_t first, int64_t last, int64_t targets, double *loss_sum,
                       int64_t *my_targets, ps_error *err)
{
    int L = t->m->cfg.max_len;
    const int64_t mb = t->o->micro_batch;
    const ps_dist *dist = t->o->dist;
    ps_sasrec_zero_grad(t->m);
    if (t->neg) /* the negatives of this Adam step: the same on every rank and on --resume */
        ps_neg_sampler_draw(&t->smp, t->o->seed, (uint64_t)t->m->adam_t, t->neg);
    int64_t lo = first, hi = last;
    if (ps_dist_size(dist) > 1) {
        const int64_t P = ps_dist_size(dist), r = ps_dist_rank(dist);
        lo = cut_at(t, first, last, targets * r / P);
        hi = cut_at(t, first, last, targets * (r + 1) / P);
    }
    *my_targets = 0;
    for (int64_t i = lo; i < hi;) {
        const int64_t micro = (i - first) / mb, end = first + (micro + 1) * mb < hi ? first + (micro + 1) * mb : hi;
        const int B = (int)(end - i);
        fill_micro_batch(t->ds, t->win + i, B, L, t->seq, t->target, t->len);
        for (int64_t w = i; w < end; w++)
            *my_targets += window_targets(&t->win[w]);
        ps_sasrec_ws_set_dropout_base(t->ws, (int)(i - (first + micro * mb)));
        i = end;
        /* dropout stream: unique per (Adam step, micro-batch), replayable on --resume */
        uint64_t step = ((uint64_t)t->m->adam_t << 20) | (uint64_t)micro;
        ps_sasrec_loss_stats ls;
        /* forward + backward fused per chunk of windows; positions past a window's length are
         * padding and not computed (exact, see sasrec_ws.c) */
        if (ps_sasrec_train_step(t->m, t->ws, t->seq, t->len, t->target, B, t->o->seed, step, (double)targets, &ls,
                                 err) != PS_OK)
            return PS_ERR;
        *loss_sum += ls.loss_sum;
    }
    if (!isfinite(*loss_sum))
        return ps_fail(err, "training diverged: the loss became %g at Adam step %lld", *loss_sum,
                       (long long)t->m->adam_t + 1);
    if (ps_dist_sum_f32(dist, t->m->grads, t->m->n_params, err) != PS_OK)
        return PS_ERR;
    if (check_gradients(t->m, err) != PS_OK || ps_sasrec_adam_step(t->m, t->o->lr, err) != PS_OK)
        return PS_ERR;
    ps_dist_fault_point(dist, t->m->adam_t);
    return PS_OK;
}

static int64_t count_batches(const trainer *t)
{
    int64_t n = 0, acc = 0;
    for (int64_t i = 0; i < t->n_win; i++) {
        acc += window_targets(&t->win[i]);
        if (acc >= t->o->batch_targets || i == t->n_win - 1) {
            n++;
            acc = 0;
        }
    }
    return n;
}

static int train_epoch(trainer *t, int epoch, double *mean_loss, ps_error *err)
{
    shuffle_windows(t->win, t->canonical, t->n_win, t->o->seed, epoch);
    int64_t n_batches = count_batches(t), batch = 0, done = 0;
    double loss_sum = 0, t0 = ps_now_seconds();
    for (int64_t first = 0; first < t->n_win;) {
        int64_t last = first, targets = 0;
        while (last < t->n_win && targets < t->o->batch_targets)
            targets += window_targets(&t->win[last++]);
        double batch_loss = 0;
        if (t->o->cancel && t->o->cancel(t->o->cb_ctx))
            return ps_fail(err, "training interrupted at epoch %d, batch %lld", epoch, (long long)batch + 1);
        int64_t mine = 0;
        if (train_batch(t, first, last, targets, &batch_loss, &mine, err) != PS_OK)
            return PS_ERR;
        loss_sum += batch_loss;
        done += targets;
        first = last;
        /* the batch loss shown is this rank's share's (all of it in one process) */
        if (t->o->on_batch)
            t->o->on_batch(t->o->cb_ctx, epoch, ++batch, n_batches, batch_loss / (double)(mine ? mine : 1), done,
                           ps_now_seconds() - t0);
    }
    if (ps_dist_sum_f64(t->o->dist, &loss_sum, 1, err) != PS_OK)
        return PS_ERR;
    *mean_loss = loss_sum / (double)(done ? done : 1);
    return PS_OK;
}

static uint64_t options_fingerprint(const trainer *t)
{
    const ps_train_options *o = t->o;
    uint64_t h = mix64((uint64_t)o->layout);
    uint64_t parts[] = {(uint64_t)o->window_stride, (uint64_t)o->batch_targets, (uint64_t)o->micro_batch,
                        (uint64_t)(double)(o->lr * 1e9f), o->seed, (uint64_t)t->ds->n_items,
                        (uint64_t)t->ds->n_train, (uint64_t)t->m->n_params};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        h = mix64(h ^ parts[i]);
    if (o->loss != PS_LOSS_CE) /* the full softmax keeps the fingerprint of older state files */
        h = mix64(h ^ mix64(((uint64_t)o->loss << 40) ^ ((uint64_t)o->sampler << 32) ^ (uint64_t)o->negatives));
    return h >> 1; /* stored as a signed 64-bit integer in metadata */
}

/* Every rank gets rank 0's weights, Adam moments, best weights and counters. The allreduce
 * gives every rank the same gradient sum and so the same Adam step; this makes it so even for an
 * MPI whose allreduce leaves different ranks with different roundings, and hands a resumed run's
 * state (read by rank 0 only) to the others. */
static int sync_state(trainer *t, ps_error *err)
{
    const ps_dist *dist = t->o->dist;
    if (ps_dist_size(dist) <= 1)
        return PS_OK;
    const size_t bytes = t->m->n_params * sizeof(float);
    if (ps_dist_bcast(dist, t->m->params, bytes, 0, err) != PS_OK ||
        ps_dist_bcast(dist, t->m->adam_m, bytes, 0, err) != PS_OK ||
        ps_dist_bcast(dist, t->m->adam_v, bytes, 0, err) != PS_OK ||
        ps_dist_bcast(dist, t->best, bytes, 0, err) != PS_OK ||
        ps_dist_bcast(dist, &t->m->adam_t, sizeof t->m->adam_t, 0, err) != PS_OK ||
        ps_dist_bcast(dist, &t->st, sizeof t->st, 0, err) != PS_OK)
        return ps_fail_wrap(err, "sharing the training state between ranks");
    return PS_OK;
}

/* Validation NDCG@10 and Hit@10 (ps_sasrec_quick_eval), with the users sharded across the ranks:
 * the metrics are reduced from integer counters, so every rank gets the same numbers, the single
 * process's, and all ranks stop together. */
static int validate(const trainer *t, double *ndcg, double *hit, ps_error *err)
{
    ps_sasrec_scorer s;
    if (ps_sasrec_scorer_init(&s, t->m, 512, err) != PS_OK)
        return PS_ERR;
    ps_scorer sc = ps_sasrec_scorer_as_scorer(&s);
    ps_eval_options o;
    ps_eval_options_init(&o);
    o.split = PS_SPLIT_VALID;
    o.dist = t->o->dist;
    ps_metrics met;
    int rc = ps_evaluate(t->ds, &sc, &o, &met, err);
    ps_sasrec_scorer_free(&s);
    if (rc == PS_OK) {
        *ndcg = met.ndcg;
        *hit = met.hit;
    }
    return rc;
}

static int end_epoch(trainer *t, int epoch, double loss, double t_start, double t_train, ps_error *err)
{
    double ndcg = 0, hit = 0;
    if (validate(t, &ndcg, &hit, err) != PS_OK)
        return PS_ERR;
    ps_epoch_report r = {epoch, loss, t->n_targets, ndcg, hit, ps_now_seconds() - t_start, t_train, 0, 0, 0};
    if (t->st.best_epoch == 0 || ndcg > t->st.best_ndcg) {
        t->st.best_epoch = epoch;
        t->st.best_ndcg = ndcg;
        t->st.bad_epochs = 0;
        memcpy(t->best, t->m->params, t->m->n_params * sizeof *t->best);
        r.improved = 1;
    } else {
        t->st.bad_epochs++;
    }
    t->st.epochs_done = epoch;
    t->st.seconds += r.seconds;
    r.best_epoch = t->st.best_epoch;
    r.best_ndcg = t->st.best_ndcg;
    if (sync_state(t, err) != PS_OK)
        return PS_ERR;
    if (t->o->state_path && ps_dist_rank(t->o->dist) == 0 &&
        ps_train_state_save(t->m, t->best, &t->st, t->o->state_path, err) != PS_OK)
        return PS_ERR;
    if (t->o->on_epoch)
        t->o->on_epoch(t->o->cb_ctx, &r);
    return PS_OK;
}

static int should_stop(const trainer *t, int epoch)
{
    if (epoch >= t->o->max_epochs)
        return 1;
    return epoch >= t->o->min_epochs && t->st.bad_epochs >= t->o->patience;
}

static int run(trainer *t, ps_train_result *res, ps_error *err)
{
    int epoch = t->st.epochs_done;
    while (!should_stop(t, epoch)) {
        epoch++;
        double t0 = ps_now_seconds(), loss = 0;
        if (train_epoch(t, epoch, &loss, err) != PS_OK) {
            memcpy(t->m->params, t->best, t->m->n_params * sizeof *t->best); /* see ps_train_options.cancel */
            return PS_ERR;
        }
        if (end_epoch(t, epoch, loss, t0, ps_now_seconds() - t0, err) != PS_OK)
            return PS_ERR;
    }
    memcpy(t->m->params, t->best, t->m->n_params * sizeof *t->best);
    res->epochs = epoch;
    res->best_epoch = t->st.best_epoch;
    res->best_ndcg = t->st.best_ndcg;
    res->seconds = t->st.seconds;
    res->targets_per_epoch = t->n_targets;
    res->stopped_early = epoch < t->o->max_epochs;
    return PS_OK;
}

static int check_options(const ps_train_options *o, int L, ps_error *err)
{
    if (o->window_stride < 1 || o->window_stride > L)
        return ps_fail(err, "window stride must be between 1 and the sequence length %d (got %d)", L,
                       o->window_stride);
    if (o->batch_targets < 1 || o->micro_batch < 1)
        return ps_fail(err, "batch sizes must be positive");
    if (!(o->lr > 0) || !isfinite(o->lr))
        return ps_fail(err, "learning rate must be positive (got %g)", (double)o->lr);
    if (o->max_epochs < 1 || o->min_epochs < 0 || o->patience < 1)
        return ps_fail(err, "epochs and patience must be positive");
    if (o->resume && !o->state_path)
        return ps_fail(err, "--resume needs a training-state file");
    if (o->loss == PS_LOSS_SAMPLED && o->negatives < 1)
        return ps_fail(err, "--negatives must be at least 1 (got %d)", o->negatives);
    return PS_OK;
}

static int setup(trainer *t, ps_error *err)
{
    int L = t->m->cfg.max_len;
    if (check_options(t->o, L, err) != PS_OK ||
        ps_sasrec_check_dataset(t->m, t->ds->n_items, t->ds->max_seq_len, "model", err) != PS_OK ||
        ps_sasrec_alloc_training(t->m, err) != PS_OK)
        return PS_ERR;
    t->canonical = make_windows(t->ds, t->o, L, &t->n_win, err);
    if (!t->canonical)
        return PS_ERR;
    t->win = ps_calloc((size_t)t->n_win, sizeof *t->win, "training windows", err);
    if (!t->win)
        return PS_ERR;
    if (t->n_win == 0)
        return ps_fail(err, "the dataset has no training samples (every user has fewer than 4 interactions)");
    for (int64_t i = 0; i < t->n_win; i++)
        t->n_targets += window_targets(&t->canonical[i]);
    int B = t->o->micro_batch;
    t->seq = ps_calloc((size_t)B * (size_t)L, sizeof *t->seq, "batch", err);
    t->target = ps_calloc((size_t)B * (size_t)L, sizeof *t->target, "batch", err);
    t->len = ps_calloc((size_t)B, sizeof *t->len, "batch", err);
    t->best = ps_calloc(t->m->n_params, sizeof *t->best, "best parameters", err);
    if (!t->seq || !t->target || !t->len || !t->best || ps_sasrec_ws_create(&t->ws, t->m, B, 1, err) != PS_OK)
        return PS_ERR;
    if (t->o->loss == PS_LOSS_SAMPLED) {
        ps_neg_sampler_kind kind = t->o->sampler == PS_SAMPLE_POP ? PS_SAMPLER_POP : PS_SAMPLER_UNIFORM;
        if (ps_neg_sampler_init(&t->smp, kind, t->ds->n_items, t->ds->train_count, t->o->negatives, err) != PS_OK)
            return PS_ERR;
        t->neg = ps_calloc((size_t)t->o->negatives, sizeof *t->neg, "negatives", err);
        if (!t->neg || ps_sasrec_ws_set_sampled(t->ws, t->neg, t->smp.logq, t->o->negatives, err) != PS_OK)
            return PS_ERR;
    }
    t->st.seed = t->o->seed;
    t->st.fingerprint = options_fingerprint(t);
    if (t->o->resume) { /* rank 0 reads the state file, sync_state hands it to the others */
        uint64_t fp = t->st.fingerprint;
        if (ps_dist_rank(t->o->dist) == 0 && ps_train_state_load(t->m, t->best, &t->st, t->o->state_path, err) != PS_OK)
            return PS_ERR;
        if (sync_state(t, err) != PS_OK)
            return PS_ERR;
        if (t->st.fingerprint != fp)
            return ps_fail(err, "%s was written with other training options or data (layout, stride, batch, lr, "
                                "seed, loss or dataset differ); resume with the same ones or start afresh",
                           t->o->state_path);
    } else {
        if (t->o->init_weights)
            ps_sasrec_init_weights(t->m, t->o->seed);
        memcpy(t->best, t->m->params, t->m->n_params * sizeof *t->best);
        memset(t->m->adam_m, 0, t->m->n_params * sizeof *t->m->adam_m);
        memset(t->m->adam_v, 0, t->m->n_params * sizeof *t->m->adam_v);
        t->m->adam_t = 0;
    }
    return PS_OK;
}

int ps_sasrec_train(ps_sasrec *m, const ps_dataset *ds, const ps_train_options *o, ps_train_result *res,
                    ps_error *err)
{
    trainer t = {.m = m, .ds = ds, .o = o};
    memset(res, 0, sizeof *res);
    int rc = setup(&t, err);
    if (rc == PS_OK)
        rc = run(&t, res, err);
    free(t.win);
    free(t.canonical);
    free(t.seq);
    free(t.target);
    free(t.len);
    free(t.best);
    free(t.neg);
    ps_neg_sampler_free(&t.smp);
    ps_sasrec_ws_free(t.ws);
    return rc;
}
