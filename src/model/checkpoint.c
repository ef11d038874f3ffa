/* SASRec <-> safetensors. Tensor names are RecBole's; hyperparameters travel in __metadata__ as
 * strings (the safetensors convention), so PyTorch and RecBole users can read them too. */
#include "popsteer/checkpoint.h"
#include "popsteer/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- metadata helpers ---------- */

static int meta_int(ps_st_writer *w, const char *key, long long v, ps_error *err)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return ps_st_writer_meta(w, key, buf, err);
}

static int meta_double(ps_st_writer *w, const char *key, double v, ps_error *err)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    return ps_st_writer_meta(w, key, buf, err);
}

static int write_config(ps_st_writer *w, const ps_sasrec_config *c, ps_error *err)
{
    char eps[32], hd[32], ad[32];
    snprintf(eps, sizeof eps, "%g", (double)c->ln_eps);
    snprintf(hd, sizeof hd, "%g", (double)c->hidden_dropout);
    snprintf(ad, sizeof ad, "%g", (double)c->attn_dropout);
    if (ps_st_writer_meta(w, "model", "SASRec", err) || ps_st_writer_meta(w, "producer", "popsteer", err) ||
        meta_int(w, "n_items", c->n_items, err) || meta_int(w, "hidden_size", c->d, err) ||
        meta_int(w, "n_layers", c->n_layers, err) || meta_int(w, "n_heads", c->n_heads, err) ||
        meta_int(w, "inner_size", c->d_ff, err) || meta_int(w, "max_seq_length", c->max_len, err) ||
        ps_st_writer_meta(w, "layer_norm_eps", eps, err) || ps_st_writer_meta(w, "hidden_act", "gelu", err) ||
        ps_st_writer_meta(w, "hidden_dropout_prob", hd, err) || ps_st_writer_meta(w, "attn_dropout_prob", ad, err))
        return PS_ERR;
    return PS_OK;
}

/* Parses an integer metadata value; absent keys leave *out unchanged. */
static int read_meta_int(const ps_st_file *f, const char *key, int *out, ps_error *err)
{
    const char *v = ps_st_meta(f, key);
    if (!v)
        return PS_OK;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0 || x > 100000000)
        return ps_fail(err, "%s: metadata '%s' = '%s' is not a valid size", f->label, key, v);
    *out = (int)x;
    return PS_OK;
}

static int read_meta_float(const ps_st_file *f, const char *key, float *out, ps_error *err)
{
    const char *v = ps_st_meta(f, key);
    if (!v)
        return PS_OK;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= 0))
        return ps_fail(err, "%s: metadata '%s' = '%s' is not a valid number", f->label, key, v);
    *out = (float)x;
    return PS_OK;
}

/* ---------- model files ---------- */

static int add_tensors(ps_st_writer *w, const ps_sasrec *m, const float *base, const char *prefix, ps_error *err)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &m->tensors[i];
        char name[PS_SASREC_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        if (ps_st_writer_add(w, name, PS_DTYPE_F32, t->ndim, t->shape, base + t->offset, err) != PS_OK)
            return PS_ERR;
    }
    return PS_OK;
}

int ps_sasrec_save(const ps_sasrec *m, const ps_model_info *info, const char *path, ps_error *err)
{
    ps_st_writer *w = ps_st_writer_new(err);
    if (!w)
        return PS_ERR;
    int rc = add_tensors(w, m, m->params, "", err);
    if (rc == PS_OK)
        rc = write_config(w, &m->cfg, err);
    if (rc == PS_OK && info && info->epoch >= 0)
        rc = meta_int(w, "epoch", info->epoch, err);
    if (rc == PS_OK && info && info->best_valid_ndcg >= 0)
        rc = meta_double(w, "best_valid_ndcg@10", info->best_valid_ndcg, err);
    if (rc == PS_OK && info && info->dataset)
        rc = ps_st_writer_meta(w, "dataset", info->dataset, err);
    if (rc == PS_OK)
        rc = ps_st_writer_write(w, path, err);
    ps_st_writer_free(w);
    return rc;
}

static int count_layers(const ps_st_file *f)
{
    int n = 0;
    for (;; n++) {
        char name[PS_SASREC_NAME_MAX];
        snprintf(name, sizeof name, "trm_encoder.layer.%d.feed_forward.dense_1.weight", n);
        if (!ps_st_find(f, name))
            return n;
    }
}

/* Configuration from metadata, falling back to the tensor shapes. */
static int infer_config(const ps_st_file *f, ps_sasrec_config *c, ps_error *err)
{
    const ps_st_tensor *emb = ps_st_find(f, "item_embedding.weight");
    const ps_st_tensor *pos = ps_st_find(f, "position_embedding.weight");
    const ps_st_tensor *ff = ps_st_find(f, "trm_encoder.layer.0.feed_forward.dense_1.weight");
    if (!emb || !pos || !ff || emb->ndim != 2 || pos->ndim != 2 || ff->ndim != 2)
        return ps_fail(err, "%s: not a SASRec checkpoint (needs item_embedding.weight, position_embedding.weight "
                            "and trm_encoder.layer.N.* tensors with RecBole names)",
                       f->label);
    if (emb->shape[0] < 2 || emb->shape[0] > INT32_MAX || emb->shape[1] < 1 || emb->shape[1] > 1 << 20)
        return ps_fail(err, "%s: item_embedding.weight has an impossible shape", f->label);
    ps_sasrec_config_default(c, (int)emb->shape[0] - 1);
    c->d = (int)emb->shape[1];
    c->max_len = (int)pos->shape[0];
    c->d_ff = (int)ff->shape[0];
    c->n_layers = count_layers(f);
    int n_items = c->n_items;
    if (read_meta_int(f, "hidden_size", &c->d, err) || read_meta_int(f, "n_layers", &c->n_layers, err) ||
        read_meta_int(f, "n_heads", &c->n_heads, err) || read_meta_int(f, "inner_size", &c->d_ff, err) ||
        read_meta_int(f, "max_seq_length", &c->max_len, err) || read_meta_int(f, "n_items", &n_items, err) ||
        read_meta_float(f, "layer_norm_eps", &c->ln_eps, err) ||
        read_meta_float(f, "hidden_dropout_prob", &c->hidden_dropout, err) ||
        read_meta_float(f, "attn_dropout_prob", &c->attn_dropout, err))
        return PS_ERR;
    if (n_items != c->n_items)
        return ps_fail(err, "%s: metadata says %d items but item_embedding.weight has %d rows (expected n_items + 1)",
                       f->label, n_items, c->n_items + 1);
    if (ps_st_meta(f, "hidden_act") && strcmp(ps_st_meta(f, "hidden_act"), "gelu") != 0)
        return ps_fail(err, "%s: hidden_act '%s' is not supported (only exact erf 'gelu')", f->label,
                       ps_st_meta(f, "hidden_act"));
    if (ps_sasrec_config_validate(c, err) != PS_OK)
        return ps_fail_wrap(err, "%s", f->label);
    return PS_OK;
}

static int read_tensors(const ps_st_file *f, ps_sasrec *m, float *base, const char *prefix, ps_error *err)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const ps_sasrec_tensor *t = &m->tensors[i];
        char name[PS_SASREC_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        if (ps_st_read_f32(f, name, t->ndim, t->shape, base + t->offset, err) != PS_OK)
            return PS_ERR;
    }
    return PS_OK;
}

int ps_sasrec_load(ps_sasrec **out, const char *path, ps_error *err)
{
    *out = NULL;
    ps_st_file f;
    if (ps_st_open(&f, path, err) != PS_OK)
        return PS_ERR;
    ps_sasrec_config cfg;
    ps_sasrec *m = NULL;
    int rc = infer_config(&f, &cfg, err);
    if (rc == PS_OK)
        rc = ps_sasrec_create(&m, &cfg, err);
    if (rc == PS_OK)
        rc = read_tensors(&f, m, m->params, "", err);
    ps_st_close(&f);
    if (rc != PS_OK) {
        ps_sasrec_free(m);
        return PS_ERR;
    }
    *out = m;
    return PS_OK;
}

int ps_sasrec_check_dataset(const ps_sasrec *m, int32_t n_items, int max_len, const char *model_path,
                            ps_error *err)
{
    if (m->cfg.n_items != n_items)
        return ps_fail(err, "%s: the model has %d items but the dataset has %d: was it trained on other data "
                            "(or with other filters such as --kcore)?",
                       model_path, m->cfg.n_items, n_items);
    if (m->cfg.max_len != max_len)
        return ps_fail(err, "%s: the model reads sequences of %d items but the dataset uses --max-len %d", model_path,
                       m->cfg.max_len, max_len);
    return PS_OK;
}

/* ---------- training state ---------- */

int ps_train_state_save(const ps_sasrec *m, const float *best_params, const ps_train_state *st, const char *path,
                        ps_error *err)
{
    ps_st_writer *w = ps_st_writer_new(err);
    if (!w)
        return PS_ERR;
    int rc = PS_OK;
    if (add_tensors(w, m, m->params, "param.", err) || add_tensors(w, m, m->adam_m, "adam_m.", err) ||
        add_tensors(w, m, m->adam_v, "adam_v.", err) || add_tensors(w, m, best_params, "best.", err) ||
        write_config(w, &m->cfg, err) || meta_int(w, "adam_t", m->adam_t, err) ||
        meta_int(w, "epochs_done", st->epochs_done, err) || meta_int(w, "best_epoch", st->best_epoch, err) ||
        meta_double(w, "best_ndcg", st->best_ndcg, err) || meta_int(w, "bad_epochs", st->bad_epochs, err) ||
        meta_double(w, "seconds", st->seconds, err) || meta_int(w, "seed", (long long)st->seed, err) ||
        meta_int(w, "fingerprint", (long long)st->fingerprint, err) ||
        ps_st_writer_write(w, path, err))
        rc = PS_ERR;
    ps_st_writer_free(w);
    return rc;
}

static int state_number(const ps_st_file *f, const char *key, double *out, ps_error *err)
{
    const char *v = ps_st_meta(f, key);
    char *end;
    if (!v)
        return ps_fail(err, "%s: not a training-state file (no '%s')", f->label, key);
    *out = strtod(v, &end);
    if (end == v || *end)
        return ps_fail(err, "%s: '%s' = '%s' is not a number", f->label, key, v);
    return PS_OK;
}

int ps_train_state_load(ps_sasrec *m, float *best_params, ps_train_state *st, const char *path, ps_error *err)
{
    ps_st_file f;
    if (ps_st_open(&f, path, err) != PS_OK)
        return PS_ERR;
    double adam_t = 0, epochs = 0, best_epoch = 0, bad = 0, seed = 0, fp = 0;
    int rc = PS_OK;
    if (state_number(&f, "adam_t", &adam_t, err) || state_number(&f, "epochs_done", &epochs, err) ||
        state_number(&f, "best_epoch", &best_epoch, err) || state_number(&f, "best_ndcg", &st->best_ndcg, err) ||
        state_number(&f, "bad_epochs", &bad, err) || state_number(&f, "seconds", &st->seconds, err) ||
        state_number(&f, "seed", &seed, err) || state_number(&f, "fingerprint", &fp, err) ||
        read_tensors(&f, m, m->params, "param.", err) || read_tensors(&f, m, m->adam_m, "adam_m.", err) ||
        read_tensors(&f, m, m->adam_v, "adam_v.", err) || read_tensors(&f, m, best_params, "best.", err))
        rc = PS_ERR;
    if (rc == PS_OK) {
        /* integers were written with %lld; re-read the exact 64-bit values, not via double */
        st->seed = strtoull(ps_st_meta(&f, "seed"), NULL, 10);
        st->fingerprint = (uint64_t)strtoll(ps_st_meta(&f, "fingerprint"), NULL, 10);
        m->adam_t = (int64_t)adam_t;
        st->epochs_done = (int)epochs;
        st->best_epoch = (int)best_epoch;
        st->bad_epochs = (int)bad;
    }
    ps_st_close(&f);
    return rc;
}
