/* Fuzz target: the safetensors reader (ps_st_parse, from memory, as used for every checkpoint).
 *
 * A file the reader accepts must keep the promises of safetensors.h: every tensor lies inside
 * the buffer with nbytes = numel * dtype size, tensors tile the data buffer in offset order,
 * lookups by name and metadata key find what was parsed, typed reads of F32/I32 tensors work,
 * and writing the file back with ps_st_writer and reading it again gives the same tensors and
 * metadata (which also exercises the writer on hostile names and shapes). */
#define FUZZ_TARGET safetensors
#include "fuzz_common.h"

#include "popsteer/safetensors.h"

static void check_tensors(const ps_st_file *f)
{
    uint64_t hdr = 0; /* the header length: the data buffer starts after it */
    for (int i = 7; i >= 0; i--)
        hdr = hdr << 8 | (unsigned char)f->buf[i];
    const char *data0 = f->buf + 8 + hdr;
    size_t covered = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const ps_st_tensor *t = &f->tensors[i];
        FUZZ_CHECK(t->name != NULL);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= PS_ST_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            numel *= t->shape[d]; /* cannot overflow: nbytes below is checked against the file */
        }
        FUZZ_CHECK(numel == t->numel);
        FUZZ_CHECK(t->nbytes == (size_t)numel * ps_dtype_size(t->dtype));
        const char *p = t->data;
        FUZZ_CHECK(p == data0 + covered); /* offset order, no holes, no overlaps */
        covered += t->nbytes;
        FUZZ_CHECK(ps_st_find(f, t->name) == t);
        ps_error err;
        if (t->dtype == PS_DTYPE_F32 || t->dtype == PS_DTYPE_I32) {
            void *dst = malloc(t->nbytes ? t->nbytes : 1);
            FUZZ_CHECK(dst != NULL);
            int rc = t->dtype == PS_DTYPE_F32 ? ps_st_read_f32(f, t->name, t->ndim, t->shape, dst, &err)
                                              : ps_st_read_i32(f, t->name, t->ndim, t->shape, dst, &err);
            FUZZ_CHECK(rc == PS_OK || (t->dtype == PS_DTYPE_F32 && strstr(err.msg, "not finite")));
            free(dst);
        }
    }
    FUZZ_CHECK(data0 + covered == f->buf + f->len);
    for (int i = 0; i < f->n_meta; i++)
        FUZZ_CHECK(ps_st_meta(f, f->meta_keys[i]) == f->meta_values[i]);
}

/* Writes f back out and reads it again: the writer must accept whatever the reader accepted. */
static void round_trip(const ps_st_file *f)
{
    ps_error err;
    ps_st_writer *w = ps_st_writer_new(&err);
    FUZZ_CHECK(w != NULL);
    for (int i = 0; i < f->n_tensors; i++) {
        const ps_st_tensor *t = &f->tensors[i];
        FUZZ_CHECK(ps_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err) == PS_OK);
    }
    for (int i = 0; i < f->n_meta; i++)
        FUZZ_CHECK(ps_st_writer_meta(w, f->meta_keys[i], f->meta_values[i], &err) == PS_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/round-trip.safetensors", fuzz_scratch_dir());
    FUZZ_CHECK(ps_st_writer_write(w, path, &err) == PS_OK);
    ps_st_writer_free(w);
    ps_st_file g;
    FUZZ_CHECK(ps_st_open(&g, path, &err) == PS_OK);
    unlink(path);
    FUZZ_CHECK(g.n_tensors == f->n_tensors && g.n_meta == f->n_meta);
    for (int i = 0; i < f->n_tensors; i++) {
        const ps_st_tensor *a = &f->tensors[i], *b = &g.tensors[i];
        FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->ndim == b->ndim);
        FUZZ_CHECK(memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape) == 0);
        FUZZ_CHECK(a->nbytes == b->nbytes && (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0));
    }
    for (int i = 0; i < f->n_meta; i++) {
        FUZZ_CHECK(strcmp(f->meta_keys[i], g.meta_keys[i]) == 0);
        FUZZ_CHECK(strcmp(f->meta_values[i], g.meta_values[i]) == 0);
    }
    ps_st_close(&g);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    ps_st_file f;
    ps_error err;
    if (ps_st_parse(&f, data, size, "fuzz.safetensors", &err) != PS_OK) {
        FUZZ_CHECK(strncmp(err.msg, "fuzz.safetensors", 16) == 0); /* messages name the file */
        FUZZ_CHECK(f.buf == NULL && f.tensors == NULL);
        return 0;
    }
    check_tensors(&f);
    round_trip(&f);
    ps_st_close(&f);
    return 0;
}
