/* SASRec training (SPEC §2): window or prefix layout, shuffled batches of ~4096 target
 * positions, Adam, validation NDCG@10 after every epoch, early stopping keeping the best model,
 * and a training-state file after every epoch so a run can be resumed bit-exactly.
 *
 * Layouts. RecBole trains on one sample per prefix (the "prefix" layout): a user with n training
 * targets costs n forward passes of up to 50 positions. The "window" layout makes one causal pass
 * over a window of up to 50 consecutive items and takes the loss at every position whose context
 * is long enough, which poses the same prediction tasks at a fraction of the cost:
 * - the first window of a user covers targets 1..50 with their full RecBole prefixes (a causal
 *   pass at position t sees exactly items 0..t);
 * - later targets p > 50 are covered by windows of the 50 items before a window end; only the
 *   last `stride` positions of such a window carry a loss, so every target sees at least
 *   50 - stride + 1 items of context (RecBole: exactly 50). stride = 50 would waste nothing but
 *   give some targets one item of context; stride = 1 is the prefix layout. The default 25 keeps
 *   every context >= 26 items at 1/25 of the prefix layout's passes for long users. */
#ifndef POPSTEER_TRAIN_H
#define POPSTEER_TRAIN_H

#include <stdint.h>

#include "popsteer/dataset.h"
#include "popsteer/sasrec.h"

typedef enum ps_layout { PS_LAYOUT_WINDOW = 0, PS_LAYOUT_PREFIX = 1 } ps_layout;

/* Training loss: the full softmax over the catalogue (default), or a sampled softmax with log-Q
 * correction over the target and `negatives` items drawn once per Adam step, shared by the whole
 * logical batch (src/nn/sampled_softmax.h). Validation always ranks the whole catalogue. */
typedef enum ps_loss { PS_LOSS_CE = 0, PS_LOSS_SAMPLED = 1 } ps_loss;
typedef enum ps_sampler { PS_SAMPLE_UNIFORM = 0, PS_SAMPLE_POP = 1 } ps_sampler;

struct ps_dist;

typedef struct ps_epoch_report {
    int epoch;                 /* 1-based */
    double train_loss;         /* mean CE over the epoch's target positions */
    int64_t targets;           /* target positions trained on this epoch */
    double valid_ndcg;         /* validation NDCG@10 after the epoch */
    double valid_hit;
    double seconds;            /* wall time of the epoch including validation */
    double train_seconds;      /* ... excluding validation */
    int improved;              /* new best model */
    int best_epoch;
    double best_ndcg;
} ps_epoch_report;

typedef struct ps_train_options {
    ps_layout layout;
    int window_stride;         /* 25 */
    int batch_targets;         /* target positions per Adam step (4096, RecBole's batch) */
    int micro_batch;           /* sequences per forward pass (256): bounds memory */
    float lr;                  /* 1e-3 */
    int max_epochs;            /* 300 */
    int min_epochs;            /* 50: no early stop before */
    int patience;              /* 10 epochs without a better validation NDCG@10 */
    uint64_t seed;             /* 42: init, shuffling, dropout */
    int init_weights;          /* 1: fresh RecBole init from seed; 0: start from m's weights */
    const char *state_path;    /* written after every epoch (NULL: none) */
    int resume;                /* continue from state_path */
    ps_loss loss;              /* PS_LOSS_CE */
    int negatives;             /* sampled: negatives per Adam step (1024) */
    ps_sampler sampler;        /* sampled: uniform or popularity-proportional (count + 1) */
    /* data parallelism (popsteer/dist.h; NULL: one process): every rank takes its share of each
     * logical batch, gradients are summed with one allreduce per Adam step, rank 0 validates and
     * writes the state file; every rank must call with the same data and options */
    const struct ps_dist *dist;
    /* progress: batch-level (may be NULL) and after every epoch (may be NULL) */
    void (*on_batch)(void *ctx, int epoch, int64_t batch, int64_t n_batches, double loss, int64_t targets_done,
                     double seconds);
    void (*on_epoch)(void *ctx, const ps_epoch_report *r);
    /* asked before every batch (may be NULL): nonzero stops training with PS_ERR and the message
     * "training interrupted at epoch E, batch B"; m->params then hold the best weights so far (the
     * initial ones before the first validation). How a front end turns Ctrl-C into a clean stop. */
    int (*cancel)(void *ctx);
    void *cb_ctx;
} ps_train_options;

void ps_train_options_init(ps_train_options *o);

typedef struct ps_train_result {
    int epochs;                /* epochs run in total (including resumed ones) */
    int best_epoch;
    double best_ndcg;
    double seconds;            /* training wall time in total */
    int64_t targets_per_epoch;
    int stopped_early;
} ps_train_result;

/* Trains m (its config must match the dataset) and leaves the best weights in m->params. */
int ps_sasrec_train(ps_sasrec *m, const ps_dataset *ds, const ps_train_options *o, ps_train_result *res,
                    ps_error *err);

/* Validation/test NDCG@10 and Hit@10 of a model (full ranking, eval mode). */
int ps_sasrec_quick_eval(const ps_sasrec *m, const ps_dataset *ds, int split, double *ndcg, double *hit,
                         ps_error *err);

/* ---- the SASRec scorer for ps_evaluate (see evaluate.h) ---- */
#include "popsteer/evaluate.h"

typedef struct ps_sasrec_scorer {
    const ps_sasrec *model;
    ps_sasrec_ws *ws;
    float *h;                  /* [max_batch, d] user vectors of the latest batch */
    int max_batch;
} ps_sasrec_scorer;

int ps_sasrec_scorer_init(ps_sasrec_scorer *s, const ps_sasrec *m, int max_batch, ps_error *err);
void ps_sasrec_scorer_free(ps_sasrec_scorer *s);
ps_scorer ps_sasrec_scorer_as_scorer(ps_sasrec_scorer *s);

#endif
