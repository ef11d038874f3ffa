/* SASRec checkpoints in safetensors with RecBole's state_dict names (SPEC §2), so a RecBole/
 * PyTorch model converts in a few lines and ours loads in PyTorch; and the training-state file
 * that lets `popsteer train --resume` continue exactly where a run stopped. */
#ifndef POPSTEER_CHECKPOINT_H
#define POPSTEER_CHECKPOINT_H

#include <stdint.h>

#include "popsteer/sasrec.h"

/* Extra metadata stored with a model (all optional; NULL/negative = not written). */
typedef struct ps_model_info {
    int epoch;                 /* epochs trained when the weights were taken */
    double best_valid_ndcg;    /* validation NDCG@10 of these weights */
    const char *dataset;       /* path of the training data */
} ps_model_info;

/* Writes the parameters with RecBole names and the hyperparameters in __metadata__, atomically. */
int ps_sasrec_save(const ps_sasrec *m, const ps_model_info *info, const char *path, ps_error *err);

/* Loads a model: hyperparameters from __metadata__ where present, otherwise inferred from the
 * tensor shapes (n_heads then defaults to 2). Every tensor must be present with the right shape,
 * F32 and finite. */
int ps_sasrec_load(ps_sasrec **out, const char *path, ps_error *err);

/* Checks that a model fits a dataset (item count, sequence length) with a message that says
 * what to do otherwise. */
int ps_sasrec_check_dataset(const ps_sasrec *m, int32_t n_items, int max_len, const char *model_path,
                            ps_error *err);

/* Training state: current weights, Adam moments, best weights and the loop counters. */
typedef struct ps_train_state {
    int epochs_done;
    int best_epoch;            /* 0 = none yet */
    double best_ndcg;
    int bad_epochs;            /* epochs since the best one (early-stopping patience) */
    double seconds;            /* training time so far */
    uint64_t seed;
    uint64_t fingerprint;      /* of the options that must not change on --resume */
} ps_train_state;

int ps_train_state_save(const ps_sasrec *m, const float *best_params, const ps_train_state *st, const char *path,
                        ps_error *err);
/* m must already have the right configuration and training buffers; fills m->params, adam
 * moments, adam_t, best_params and st. */
int ps_train_state_load(ps_sasrec *m, float *best_params, ps_train_state *st, const char *path, ps_error *err);

#endif
