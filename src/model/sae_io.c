/* SAE checkpoints as safetensors in the style of SAELens: the four tensors under their parameter
 * names and the configuration as __metadata__ strings. */
#include "popsteer/sae.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "popsteer/safetensors.h"

/* Shapes of the four tensors, in storage order. */
static int tensor_shape(const ps_sae_config *c, int t, int64_t shape[2])
{
    switch (t) {
    case PS_SAE_W_ENC:
    case PS_SAE_W_DEC:
        shape[0] = c->n_latents;
        shape[1] = c->d_in;
        return 2;
    case PS_SAE_B_ENC: shape[0] = c->n_latents; return 1;
    default: shape[0] = c->d_in; return 1;
    }
}

static int add_meta_int(ps_st_writer *w, const char *key, long long v, ps_error *err)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return ps_st_writer_meta(w, key, buf, err);
}

static int add_meta_float(ps_st_writer *w, const char *key, double v, ps_error *err)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v); /* round-trips exactly */
    return ps_st_writer_meta(w, key, buf, err);
}

int ps_sae_save(const ps_sae *sae, const char *path, ps_error *err)
{
    const ps_sae_config *c = &sae->cfg;
    ps_st_writer *w = ps_st_writer_new(err);
    if (!w)
        return PS_ERR;
    int rc = PS_OK;
    for (int t = 0; t < PS_SAE_N_TENSORS && rc == PS_OK; t++) {
        int64_t shape[2];
        int nd = tensor_shape(c, t, shape);
        rc = ps_st_writer_add(w, ps_sae_tensor_name(t), PS_DTYPE_F32, nd, shape,
                              sae->params + sae->offset[t], err);
    }
    if (rc == PS_OK)
        rc = add_meta_int(w, "d_in", c->d_in, err) == PS_OK &&
                     add_meta_int(w, "n_latents", c->n_latents, err) == PS_OK &&
                     add_meta_int(w, "k", c->k, err) == PS_OK &&
                     add_meta_int(w, "k_aux", c->k_aux, err) == PS_OK &&
                     add_meta_float(w, "aux_coef", c->aux_coef, err) == PS_OK &&
                     (sae->trained_epochs <= 0 ||
                      add_meta_int(w, "trained_epochs", sae->trained_epochs, err) == PS_OK) &&
                     (!isfinite(sae->val_fvu) ||
                      add_meta_float(w, "val_fvu", sae->val_fvu, err) == PS_OK)
                 ? PS_OK
                 : PS_ERR;
    if (rc != PS_OK)
        ps_fail_wrap(err, "%s", path);
    else
        rc = ps_st_writer_write(w, path, err); /* its messages already name the path */
    ps_st_writer_free(w);
    return rc;
}

/* Strict decimal integer in [lo, hi]. required == 0: an absent key leaves *out unchanged. */
static int meta_int(const ps_st_file *f, const char *key, int required, long lo, long hi, int *out,
                    ps_error *err)
{
    const char *s = ps_st_meta(f, key);
    if (!s) {
        if (required)
            return ps_fail(err, "%s: __metadata__ has no '%s' (not a popsteer SAE file?)", f->label,
                           key);
        return PS_OK;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return ps_fail(err, "%s: __metadata__ '%s' is \"%.40s\", expected an integer in %ld..%ld",
                       f->label, key, s, lo, hi);
    *out = (int)v;
    return PS_OK;
}

static int meta_double(const ps_st_file *f, const char *key, double *out, ps_error *err)
{
    const char *s = ps_st_meta(f, key);
    if (!s)
        return PS_OK;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return ps_fail(err, "%s: __metadata__ '%s' is \"%.40s\", expected a finite number", f->label,
                       key, s);
    *out = v;
    return PS_OK;
}

ps_sae *ps_sae_load(const char *path, ps_error *err)
{
    ps_st_file f;
    if (ps_st_open(&f, path, err) != PS_OK)
        return NULL;
    ps_sae_config c;
    ps_sae_config_init(&c, PS_SAE_DEFAULT_D_IN, PS_SAE_DEFAULT_SCALE);
    double aux_coef = c.aux_coef, val_fvu = NAN;
    int epochs = 0;
    ps_sae *sae = NULL;
    if (meta_int(&f, "d_in", 1, 1, INT32_MAX, &c.d_in, err) != PS_OK ||
        meta_int(&f, "n_latents", 1, 1, INT32_MAX, &c.n_latents, err) != PS_OK ||
        meta_int(&f, "k", 1, 1, INT32_MAX, &c.k, err) != PS_OK ||
        meta_int(&f, "k_aux", 1, 1, INT32_MAX, &c.k_aux, err) != PS_OK ||
        meta_int(&f, "trained_epochs", 0, 0, INT32_MAX, &epochs, err) != PS_OK ||
        meta_double(&f, "aux_coef", &aux_coef, err) != PS_OK ||
        meta_double(&f, "val_fvu", &val_fvu, err) != PS_OK)
        goto fail;
    c.aux_coef = (float)aux_coef;
    if (ps_sae_config_validate(&c, err) != PS_OK) {
        ps_fail_wrap(err, "%s", f.label);
        goto fail;
    }
    sae = ps_sae_create(&c, err);
    if (!sae)
        goto fail;
    for (int t = 0; t < PS_SAE_N_TENSORS; t++) {
        int64_t shape[2];
        int nd = tensor_shape(&c, t, shape);
        /* the reader's messages name the file, the tensor, expected vs found shape, NaN/Inf */
        if (ps_st_read_f32(&f, ps_sae_tensor_name(t), nd, shape, sae->params + sae->offset[t],
                           err) != PS_OK)
            goto fail;
    }
    sae->trained_epochs = epochs;
    sae->val_fvu = val_fvu;
    ps_st_close(&f);
    return sae;
fail:
    ps_sae_free(sae);
    ps_st_close(&f);
    return NULL;
}
