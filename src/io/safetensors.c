/* safetensors reader (validating, safe on hostile input) and writer (atomic, 8-byte aligned data).
 *
 * The reader never trusts a length or an offset from the file: each one is checked against the
 * bytes actually present before it is used, and every size computation is overflow-checked. */
#include "popsteer/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "popsteer/io.h"

/* Tensor bytes are copied verbatim between the file and memory, which is only right when the
 * host stores numbers little-endian like the format. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O needs a little-endian host");
#define HOST_IS_LITTLE_ENDIAN() 1
#else
static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}
#define HOST_IS_LITTLE_ENDIAN() host_is_little_endian()
#endif

/* JSON numbers reach us as doubles (cJSON): only integers below 2^53 are represented exactly, so
 * larger shapes and offsets are refused rather than silently rounded. */
#define MAX_JSON_INT ((int64_t)1 << 53)
#define META_KEY "__metadata__"
/* Names in messages are truncated so that a hostile 1 MB name cannot push out the explanation. */
#define QNAME "'%.200s'"

/* ------------------------------------------------------------------------------------------ */
/* dtypes                                                                                      */

static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {
    [PS_DTYPE_F32] = {"F32", 4},  [PS_DTYPE_F64] = {"F64", 8}, [PS_DTYPE_F16] = {"F16", 2},
    [PS_DTYPE_BF16] = {"BF16", 2}, [PS_DTYPE_I64] = {"I64", 8}, [PS_DTYPE_I32] = {"I32", 4},
    [PS_DTYPE_I16] = {"I16", 2},  [PS_DTYPE_I8] = {"I8", 1},   [PS_DTYPE_U8] = {"U8", 1},
    [PS_DTYPE_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

static int dtype_valid(ps_dtype d)
{
    return (int)d >= 0 && (int)d < N_DTYPES;
}

const char *ps_dtype_name(ps_dtype d)
{
    return dtype_valid(d) ? DTYPES[d].name : "?";
}

size_t ps_dtype_size(ps_dtype d)
{
    return dtype_valid(d) ? DTYPES[d].size : 0;
}

int ps_dtype_parse(const char *name, ps_dtype *d)
{
    for (int i = 0; i < N_DTYPES; i++) {
        if (strcmp(name, DTYPES[i].name) == 0) {
            *d = (ps_dtype)i;
            return PS_OK;
        }
    }
    return PS_ERR;
}

/* ------------------------------------------------------------------------------------------ */
/* small helpers shared by reader and writer                                                   */

static char *dup_str(const char *s, ps_error *err)
{
    size_t n = strlen(s) + 1;
    char *d = ps_calloc(n, 1, "a string", err);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Element count and byte size of a shape, or 0 if either overflows int64/size_t. A zero dimension
 * makes the tensor empty whatever the other dimensions are, so it is looked for first. */
static int shape_size(int ndim, const int64_t *shape, ps_dtype dt, int64_t *numel, size_t *nbytes)
{
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            *numel = 0;
            *nbytes = 0;
            return 1;
        }
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || n > INT64_MAX / shape[i])
            return 0;
        n *= shape[i];
    }
    uint64_t size = ps_dtype_size(dt);
    if (size == 0 || (uint64_t)n > (uint64_t)INT64_MAX / size || (uint64_t)n > SIZE_MAX / size)
        return 0;
    *numel = n;
    *nbytes = (size_t)((uint64_t)n * size);
    return 1;
}

/* "[2976, 64]" into out, truncated if cap is small (8 dims of int64 fit in SHAPE_STR). */
static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (used < cap)
        snprintf(out + used, cap - used, "]");
}

#define SHAPE_STR 200

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 if it is malformed:
 * truncated, overlong, a surrogate or beyond U+10FFFF. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Offset of the first malformed UTF-8 byte of s[0..n), or n if it is all well formed. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq_len(s + i, n - i);
        if (k == 0)
            return i;
        i += k;
    }
    return n;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* First string that occurs twice among names[0..n) (sorted in place), or NULL. Sorting keeps this
 * O(n log n) on hostile headers with millions of keys. */
static const char *first_duplicate(const char **names, size_t n)
{
    if (n < 2)
        return NULL;
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* reader: header text                                                                         */

static uint64_t read_u64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* cJSON spends about 64 bytes on every value, so a 100 MB header of `[0,0,0,...` would take
 * 3 GB before any check could refuse it. A real header has about ten values per tensor; this
 * allows 100,000 tensors and bounds cJSON's memory to ~64 MB. */
#define MAX_HEADER_VALUES ((size_t)1 << 20)

/* Checks what cJSON does not: the header is UTF-8, has no raw control bytes (JSON allows only
 * tab, CR and LF, between tokens), no escaped NUL (\u0000), which C strings would silently
 * truncate so that two different names could read back as one, and not more JSON values than
 * MAX_HEADER_VALUES (every value but the first follows a ',', ':', '[' or '{' outside strings). */
static int check_header_text(const char *label, const unsigned char *h, size_t n, ps_error *err)
{
    size_t bad = utf8_invalid_at(h, n);
    if (bad < n)
        return ps_fail(err, "%s: header is not valid JSON: invalid UTF-8 at byte %zu of the header", label,
                       bad);
    size_t values = 1;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = h[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return ps_fail(err, "%s: header is not valid JSON: control byte 0x%02x at byte %zu of the header",
                           label, c, i);
        if (c == '"')
            in_string = !in_string;
        else if (!in_string && (c == ',' || c == ':' || c == '[' || c == '{') && ++values > MAX_HEADER_VALUES)
            return ps_fail(err, "%s: header holds more than %zu JSON values (corrupt, or not a model file)", label,
                           MAX_HEADER_VALUES);
        if (c != '\\' || i + 1 >= n)
            continue;
        if (h[i + 1] == 'u' && i + 6 <= n && memcmp(h + i + 2, "0000", 4) == 0)
            return ps_fail(err, "%s: header contains an escaped NUL (\\u0000) at byte %zu, not allowed in names",
                           label, i);
        i++; /* skip the escaped character so that "\\\\u0000" is not mistaken for an escape */
    }
    return PS_OK;
}

/* Parses the header bytes into a cJSON object. cJSON's length-limited parser can read one byte
 * past its buffer (cJSON issue #804), so it gets a NUL-terminated copy instead. */
static cJSON *parse_header_json(const char *label, const char *h, size_t n, ps_error *err)
{
    char *text = ps_calloc(n + 1, 1, "the safetensors header", err);
    if (!text) {
        ps_fail_wrap(err, "%s", label);
        return NULL;
    }
    memcpy(text, h, n);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    size_t pos = end ? (size_t)(end - text) : 0;
    if (!root) {
        free(text);
        ps_fail(err, "%s: header is not valid JSON (error near byte %zu of the header)", label, pos);
        return NULL;
    }
    while (pos < n && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r'))
        pos++;
    free(text);
    if (pos < n) {
        cJSON_Delete(root);
        ps_fail(err, "%s: header is not valid JSON: unexpected bytes after the JSON value at byte %zu", label,
                pos);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        ps_fail(err, "%s: header is not a JSON object", label);
        return NULL;
    }
    return root;
}

/* ------------------------------------------------------------------------------------------ */
/* reader: header entries                                                                      */

/* Byte range of one tensor inside the data buffer; idx is its position in header order. */
typedef struct span {
    uint64_t begin, end;
    int idx;
} span;

/* A non-negative integer exactly representable by cJSON's double. */
static int json_uint(const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return 0;
    double d = item->valuedouble;
    if (!(d >= 0.0 && d < (double)MAX_JSON_INT)) /* also false for NaN */
        return 0;
    int64_t v = (int64_t)d;
    if ((double)v != d)
        return 0;
    *out = v;
    return 1;
}

/* The three fields of a tensor entry; duplicates are errors (cJSON would keep both and look up
 * the first, hiding the second). Unknown fields are ignored, as by the reference implementation. */
static int tensor_fields(const char *label, const cJSON *entry, const cJSON **dtype, const cJSON **shape,
                         const cJSON **offsets, ps_error *err)
{
    static const char *const names[3] = {"dtype", "shape", "data_offsets"};
    const cJSON *found[3] = {NULL, NULL, NULL};
    const cJSON *c;
    cJSON_ArrayForEach(c, entry)
    {
        for (int k = 0; k < 3; k++) {
            if (strcmp(c->string, names[k]) != 0)
                continue;
            if (found[k])
                return ps_fail(err, "%s: tensor " QNAME ": field '%s' appears more than once", label,
                               entry->string, names[k]);
            found[k] = c;
        }
    }
    for (int k = 0; k < 3; k++)
        if (!found[k])
            return ps_fail(err, "%s: tensor " QNAME ": missing field '%s'", label, entry->string, names[k]);
    *dtype = found[0];
    *shape = found[1];
    *offsets = found[2];
    return PS_OK;
}

static int parse_dtype(const char *label, const char *name, const cJSON *item, ps_dtype *dt, ps_error *err)
{
    if (!cJSON_IsString(item))
        return ps_fail(err, "%s: tensor " QNAME ": dtype is not a string", label, name);
    if (ps_dtype_parse(item->valuestring, dt) != PS_OK)
        return ps_fail(err, "%s: tensor " QNAME ": unknown dtype '%.32s' (supported: F32 F64 F16 BF16 I64 I32 "
                       "I16 I8 U8 BOOL)", label, name, item->valuestring);
    return PS_OK;
}

static int parse_shape(const char *label, const char *name, const cJSON *item, ps_st_tensor *t, ps_error *err)
{
    if (!cJSON_IsArray(item))
        return ps_fail(err, "%s: tensor " QNAME ": shape is not an array of non-negative integers", label, name);
    int n = cJSON_GetArraySize(item);
    if (n > PS_ST_MAX_DIMS)
        return ps_fail(err, "%s: tensor " QNAME ": shape has %d dimensions, more than the maximum of %d", label,
                       name, n, PS_ST_MAX_DIMS);
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, item)
    {
        if (!json_uint(c, &t->shape[i]))
            return ps_fail(err, "%s: tensor " QNAME ": shape entry %d is not a non-negative integer below 2^53",
                           label, name, i);
        i++;
    }
    t->ndim = n;
    if (!shape_size(t->ndim, t->shape, t->dtype, &t->numel, &t->nbytes)) {
        char s[SHAPE_STR];
        format_shape(s, sizeof s, t->ndim, t->shape);
        return ps_fail(err, "%s: tensor " QNAME ": shape %s of %s overflows (element count or byte size too large)",
                       label, name, s, ps_dtype_name(t->dtype));
    }
    return PS_OK;
}

static int parse_offsets(const char *label, const char *name, const cJSON *item, uint64_t data_len,
                         const ps_st_tensor *t, span *sp, ps_error *err)
{
    int64_t b, e;
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 || !json_uint(item->child, &b) ||
        !json_uint(item->child->next, &e))
        return ps_fail(err, "%s: tensor " QNAME ": data_offsets is not an array of two non-negative integers",
                       label, name);
    if (b > e)
        return ps_fail(err, "%s: tensor " QNAME ": data_offsets [%" PRId64 ", %" PRId64 "] begin after end", label,
                       name, b, e);
    if ((uint64_t)e > data_len)
        return ps_fail(err, "%s: tensor " QNAME ": data_offsets [%" PRId64 ", %" PRId64 "] end beyond the data "
                       "buffer of %" PRIu64 " bytes", label, name, b, e, data_len);
    if ((uint64_t)(e - b) != (uint64_t)t->nbytes) {
        char s[SHAPE_STR];
        format_shape(s, sizeof s, t->ndim, t->shape);
        return ps_fail(err, "%s: tensor " QNAME ": data_offsets [%" PRId64 ", %" PRId64 "] do not match shape %s "
                       "of %s (%zu bytes)", label, name, b, e, s, ps_dtype_name(t->dtype), t->nbytes);
    }
    sp->begin = (uint64_t)b;
    sp->end = (uint64_t)e;
    return PS_OK;
}

static int parse_tensor(ps_st_file *f, const cJSON *entry, uint64_t data_len, ps_st_tensor *t, span *sp,
                        ps_error *err)
{
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return ps_fail(err, "%s: tensor " QNAME ": entry is not an object with dtype, shape and data_offsets",
                       f->label, name);
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL; /* set unless tensor_fields fails */
    if (tensor_fields(f->label, entry, &dtype, &shape, &offsets, err) != PS_OK ||
        parse_dtype(f->label, name, dtype, &t->dtype, err) != PS_OK ||
        parse_shape(f->label, name, shape, t, err) != PS_OK ||
        parse_offsets(f->label, name, offsets, data_len, t, sp, err) != PS_OK)
        return PS_ERR;
    char *copy = dup_str(name, err);
    if (!copy)
        return ps_fail_wrap(err, "%s", f->label);
    t->name = copy;
    return PS_OK;
}

static int parse_metadata(ps_st_file *f, const cJSON *meta, ps_error *err)
{
    if (!cJSON_IsObject(meta))
        return ps_fail(err, "%s: " META_KEY " is not an object of strings", f->label);
    int n = cJSON_GetArraySize(meta);
    const char **keys = ps_calloc((size_t)n, sizeof *keys, "metadata keys", err);
    f->meta_keys = ps_calloc((size_t)n, sizeof *f->meta_keys, "metadata keys", err);
    f->meta_values = ps_calloc((size_t)n, sizeof *f->meta_values, "metadata values", err);
    if (!keys || !f->meta_keys || !f->meta_values) {
        free(keys);
        return ps_fail_wrap(err, "%s", f->label);
    }
    int rc = PS_OK;
    const cJSON *c;
    cJSON_ArrayForEach(c, meta)
    {
        if (!cJSON_IsString(c)) {
            rc = ps_fail(err, "%s: " META_KEY " value for key " QNAME " is not a string", f->label, c->string);
            break;
        }
        f->meta_keys[f->n_meta] = dup_str(c->string, err);
        f->meta_values[f->n_meta] = dup_str(c->valuestring, err);
        keys[f->n_meta] = c->string;
        f->n_meta++; /* counted before checking so that ps_st_close frees a half-copied pair */
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1]) {
            rc = ps_fail_wrap(err, "%s", f->label);
            break;
        }
    }
    const char *dup = rc == PS_OK ? first_duplicate(keys, (size_t)f->n_meta) : NULL;
    if (dup)
        rc = ps_fail(err, "%s: " META_KEY " key " QNAME " appears more than once", f->label, dup);
    free(keys);
    return rc;
}

/* Rejects duplicate top-level keys (tensor names, or two __metadata__) and counts tensors. */
static int check_top_keys(ps_st_file *f, const cJSON *root, int *n_tensors, ps_error *err)
{
    int n = cJSON_GetArraySize(root);
    const char **keys = ps_calloc((size_t)n, sizeof *keys, "header keys", err);
    if (!keys)
        return ps_fail_wrap(err, "%s", f->label);
    int i = 0, n_meta = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, root)
    {
        keys[i++] = c->string;
        n_meta += strcmp(c->string, META_KEY) == 0;
    }
    const char *dup = first_duplicate(keys, (size_t)n);
    int rc = PS_OK;
    if (dup)
        rc = ps_fail(err, "%s: key " QNAME " appears more than once in the header", f->label, dup);
    free(keys);
    *n_tensors = n - n_meta;
    return rc;
}

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The spec requires the tensors to tile the data buffer exactly: overlaps would alias tensors,
 * holes and trailing bytes could smuggle other content (polyglot files). spans ends up sorted. */
static int check_coverage(const ps_st_file *f, span *spans, int n, uint64_t data_len, ps_error *err)
{
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    uint64_t covered = 0;
    for (int i = 0; i < n; i++) {
        const span *s = &spans[i];
        if (s->begin < covered) {
            const span *p = &spans[i - 1]; /* covered > 0 implies a previous span */
            return ps_fail(err, "%s: tensors " QNAME " [%" PRIu64 ", %" PRIu64 "] and " QNAME " [%" PRIu64 ", %" PRIu64
                           "] overlap in the data buffer", f->label, f->tensors[p->idx].name, p->begin, p->end,
                           f->tensors[s->idx].name, s->begin, s->end);
        }
        if (s->begin > covered)
            return ps_fail(err, "%s: bytes [%" PRIu64 ", %" PRIu64 ") of the data buffer belong to no tensor (hole)",
                           f->label, covered, s->begin);
        covered = s->end;
    }
    if (covered < data_len)
        return ps_fail(err, "%s: bytes [%" PRIu64 ", %" PRIu64 ") of the data buffer belong to no tensor "
                       "(trailing data)", f->label, covered, data_len);
    return PS_OK;
}

/* Replaces f->tensors (header order) by the same tensors in data-offset order. */
static int order_tensors(ps_st_file *f, const span *spans, ps_error *err)
{
    ps_st_tensor *sorted = ps_calloc((size_t)f->n_tensors, sizeof *sorted, "the tensor table", err);
    if (!sorted)
        return ps_fail_wrap(err, "%s", f->label);
    for (int i = 0; i < f->n_tensors; i++)
        sorted[i] = f->tensors[spans[i].idx];
    free(f->tensors);
    f->tensors = sorted;
    return PS_OK;
}

static int parse_entries(ps_st_file *f, const cJSON *root, const unsigned char *data, uint64_t data_len,
                         ps_error *err)
{
    int n = 0;
    if (check_top_keys(f, root, &n, err) != PS_OK)
        return PS_ERR;
    f->tensors = ps_calloc((size_t)n, sizeof *f->tensors, "the tensor table", err);
    span *spans = ps_calloc((size_t)n, sizeof *spans, "the tensor table", err);
    if (!f->tensors || !spans) {
        free(spans);
        return ps_fail_wrap(err, "%s", f->label);
    }
    int rc = PS_OK;
    const cJSON *c;
    cJSON_ArrayForEach(c, root)
    {
        if (strcmp(c->string, META_KEY) == 0) {
            rc = parse_metadata(f, c, err);
        } else {
            ps_st_tensor *t = &f->tensors[f->n_tensors];
            span *sp = &spans[f->n_tensors];
            rc = parse_tensor(f, c, data_len, t, sp, err);
            if (rc == PS_OK) {
                sp->idx = f->n_tensors++;
                t->data = data + sp->begin; /* sp->end <= data_len: inside the buffer */
            }
        }
        if (rc != PS_OK)
            break;
    }
    if (rc == PS_OK)
        rc = check_coverage(f, spans, f->n_tensors, data_len, err);
    if (rc == PS_OK)
        rc = order_tensors(f, spans, err);
    free(spans);
    return rc;
}

/* Validates f->buf[0..f->len) and fills the tables. */
static int parse_file(ps_st_file *f, ps_error *err)
{
    const unsigned char *buf = (const unsigned char *)f->buf;
    if (!HOST_IS_LITTLE_ENDIAN())
        return ps_fail(err, "%s: safetensors needs a little-endian host", f->label);
    if (f->len < 8)
        return ps_fail(err, "%s: file is %zu bytes, too short for a safetensors file (8-byte header length "
                       "missing)", f->label, f->len);
    uint64_t n = read_u64_le(buf);
    if (n > PS_ST_MAX_HEADER)
        return ps_fail(err, "%s: header length %" PRIu64 " bytes is larger than the limit of %" PRIu64
                       " (corrupt or not a safetensors file)", f->label, n, PS_ST_MAX_HEADER);
    if (n > f->len - 8)
        return ps_fail(err, "%s: header length %" PRIu64 " bytes runs past the end of the file (%zu bytes "
                       "follow the length field; truncated?)", f->label, n, f->len - 8);
    if (check_header_text(f->label, buf + 8, (size_t)n, err) != PS_OK)
        return PS_ERR;
    cJSON *root = parse_header_json(f->label, f->buf + 8, (size_t)n, err);
    if (!root)
        return PS_ERR;
    int rc = parse_entries(f, root, buf + 8 + n, (uint64_t)(f->len - 8 - (size_t)n), err);
    cJSON_Delete(root);
    return rc;
}

/* Takes ownership of buf in every case. */
static int parse_owned(ps_st_file *f, char *buf, size_t len, const char *label, ps_error *err)
{
    memset(f, 0, sizeof *f);
    f->buf = buf;
    f->len = len;
    f->label = dup_str(label, err);
    if (!f->label) {
        ps_fail_wrap(err, "%s", label);
        ps_st_close(f);
        return PS_ERR;
    }
    if (parse_file(f, err) != PS_OK) {
        ps_st_close(f);
        return PS_ERR;
    }
    return PS_OK;
}

int ps_st_open(ps_st_file *f, const char *path, ps_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    memset(f, 0, sizeof *f);
    if (ps_read_file(path, 0, &buf, &len, err) != PS_OK)
        return PS_ERR;
    return parse_owned(f, buf, len, path, err);
}

int ps_st_parse(ps_st_file *f, const void *buf, size_t len, const char *label, ps_error *err)
{
    if (!label)
        label = "<memory>";
    memset(f, 0, sizeof *f);
    char *copy = ps_calloc(len, 1, "a safetensors buffer", err);
    if (!copy)
        return ps_fail_wrap(err, "%s", label);
    if (len)
        memcpy(copy, buf, len);
    return parse_owned(f, copy, len, label, err);
}

void ps_st_close(ps_st_file *f)
{
    for (int i = 0; f->tensors && i < f->n_tensors; i++)
        free((char *)f->tensors[i].name); /* allocated by parse_tensor; const only for users */
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->label);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const ps_st_tensor *ps_st_find(const ps_st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *ps_st_meta(const ps_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* typed reads                                                                                 */

static const char *label_of(const ps_st_file *f)
{
    return f->label ? f->label : "<safetensors>";
}

/* The tensor called name if it has dtype dt and exactly the given shape. */
static const ps_st_tensor *expect_tensor(const ps_st_file *f, const char *name, ps_dtype dt, int ndim,
                                         const int64_t *shape, ps_error *err)
{
    if (ndim < 0 || ndim > PS_ST_MAX_DIMS || (ndim > 0 && !shape)) {
        ps_fail(err, "%s: tensor " QNAME ": invalid request of %d dimensions", label_of(f), name, ndim);
        return NULL;
    }
    const ps_st_tensor *t = ps_st_find(f, name);
    if (!t) {
        ps_fail(err, "%s: tensor " QNAME " not found (the file has %d tensors)", label_of(f), name, f->n_tensors);
        return NULL;
    }
    if (t->dtype != dt) {
        ps_fail(err, "%s: tensor " QNAME " has dtype %s, expected %s", label_of(f), name, ps_dtype_name(t->dtype),
                ps_dtype_name(dt));
        return NULL;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char want[SHAPE_STR], got[SHAPE_STR];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        ps_fail(err, "%s: tensor " QNAME ": expected shape %s, found %s", label_of(f), name, want, got);
        return NULL;
    }
    return t;
}

/* Copies t into dst; memcpy because t->data need not be aligned for the element type. */
static int copy_tensor(const ps_st_file *f, const ps_st_tensor *t, void *dst, ps_error *err)
{
    if (t->nbytes == 0)
        return PS_OK;
    if (!dst)
        return ps_fail(err, "%s: tensor " QNAME ": no destination buffer", label_of(f), t->name);
    memcpy(dst, t->data, t->nbytes);
    return PS_OK;
}

/* Coordinates of flat index k in shape, e.g. "[0, 17]". */
static void format_index(char *out, size_t cap, const ps_st_tensor *t, int64_t k)
{
    int64_t idx[PS_ST_MAX_DIMS];
    for (int i = t->ndim - 1; i >= 0; i--) {
        idx[i] = t->shape[i] ? k % t->shape[i] : 0;
        k = t->shape[i] ? k / t->shape[i] : 0;
    }
    format_shape(out, cap, t->ndim, idx);
}

int ps_st_read_f32(const ps_st_file *f, const char *name, int ndim, const int64_t *shape, float *dst,
                   ps_error *err)
{
    const ps_st_tensor *t = expect_tensor(f, name, PS_DTYPE_F32, ndim, shape, err);
    if (!t || copy_tensor(f, t, dst, err) != PS_OK)
        return PS_ERR;
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < t->numel; i++) {
        if (!isfinite(dst[i])) {
            if (first < 0)
                first = i;
            bad++;
        }
    }
    if (bad) {
        char at[SHAPE_STR];
        format_index(at, sizeof at, t, first);
        return ps_fail(err, "%s: tensor " QNAME ": %" PRId64 " of %" PRId64 " values are not finite (NaN or Inf); "
                       "the first, %s, is at flat index %" PRId64 " %s", label_of(f), name, bad, t->numel,
                       isnan(dst[first]) ? "NaN" : "Inf", first, at);
    }
    return PS_OK;
}

int ps_st_read_i32(const ps_st_file *f, const char *name, int ndim, const int64_t *shape, int32_t *dst,
                   ps_error *err)
{
    const ps_st_tensor *t = expect_tensor(f, name, PS_DTYPE_I32, ndim, shape, err);
    if (!t)
        return PS_ERR;
    return copy_tensor(f, t, dst, err);
}

/* ------------------------------------------------------------------------------------------ */
/* writer                                                                                      */

typedef struct wentry {
    char *name;
    ps_dtype dtype;
    int ndim;
    int64_t shape[PS_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wentry;

struct ps_st_writer {
    wentry *entries;
    int n, cap;
    char **meta_keys, **meta_values;
    int n_meta, cap_meta;
};

ps_st_writer *ps_st_writer_new(ps_error *err)
{
    return ps_calloc(1, sizeof(ps_st_writer), "a safetensors writer", err);
}

void ps_st_writer_free(ps_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->entries[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->entries);
    free(w->meta_keys);
    free(w->meta_values);
    free(w);
}

static int check_utf8(const char *what, const char *s, ps_error *err)
{
    size_t n = strlen(s);
    size_t bad = utf8_invalid_at((const unsigned char *)s, n);
    if (bad < n)
        return ps_fail(err, "safetensors writer: %s is not valid UTF-8 (byte %zu)", what, bad);
    return PS_OK;
}

static int check_new_tensor(const ps_st_writer *w, const char *name, ps_dtype dt, int ndim, const int64_t *shape,
                            ps_error *err)
{
    if (!name)
        return ps_fail(err, "safetensors writer: tensor without a name");
    if (check_utf8("a tensor name", name, err) != PS_OK)
        return PS_ERR;
    if (strcmp(name, META_KEY) == 0)
        return ps_fail(err, "safetensors writer: '" META_KEY "' is reserved and cannot name a tensor");
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return ps_fail(err, "safetensors writer: tensor " QNAME " added twice (duplicate name)", name);
    if (!dtype_valid(dt))
        return ps_fail(err, "safetensors writer: tensor " QNAME ": unknown dtype %d", name, (int)dt);
    if (ndim < 0 || ndim > PS_ST_MAX_DIMS)
        return ps_fail(err, "safetensors writer: tensor " QNAME ": %d dimensions, must be 0..%d", name, ndim,
                       PS_ST_MAX_DIMS);
    if (ndim > 0 && !shape)
        return ps_fail(err, "safetensors writer: tensor " QNAME ": no shape given", name);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return ps_fail(err, "safetensors writer: tensor " QNAME ": dimension %d is %" PRId64 " (negative)", name,
                           i, shape[i]);
    return PS_OK;
}

int ps_st_writer_add(ps_st_writer *w, const char *name, ps_dtype dt, int ndim, const int64_t *shape,
                     const void *data, ps_error *err)
{
    if (check_new_tensor(w, name, dt, ndim, shape, err) != PS_OK)
        return PS_ERR;
    wentry e = {.dtype = dt, .ndim = ndim, .data = data};
    int64_t numel;
    if (ndim > 0)
        memcpy(e.shape, shape, (size_t)ndim * sizeof *shape);
    if (!shape_size(ndim, e.shape, dt, &numel, &e.nbytes) || e.nbytes >= (uint64_t)MAX_JSON_INT)
        return ps_fail(err, "safetensors writer: tensor " QNAME ": shape is too large", name);
    if (e.nbytes && !data)
        return ps_fail(err, "safetensors writer: tensor " QNAME ": no data", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        wentry *grown = ps_realloc(w->entries, (size_t)cap, sizeof *grown, "the writer's tensor list", err);
        if (!grown)
            return PS_ERR;
        w->entries = grown;
        w->cap = cap;
    }
    e.name = dup_str(name, err);
    if (!e.name)
        return PS_ERR;
    w->entries[w->n++] = e;
    return PS_OK;
}

static int grow_meta(ps_st_writer *w, ps_error *err)
{
    if (w->n_meta < w->cap_meta)
        return PS_OK;
    int cap = w->cap_meta ? 2 * w->cap_meta : 8;
    char **k = ps_realloc(w->meta_keys, (size_t)cap, sizeof *k, "the writer's metadata", err);
    if (!k)
        return PS_ERR;
    w->meta_keys = k;
    char **v = ps_realloc(w->meta_values, (size_t)cap, sizeof *v, "the writer's metadata", err);
    if (!v)
        return PS_ERR;
    w->meta_values = v;
    w->cap_meta = cap;
    return PS_OK;
}

int ps_st_writer_meta(ps_st_writer *w, const char *key, const char *value, ps_error *err)
{
    if (!key || !value)
        return ps_fail(err, "safetensors writer: metadata key and value must not be NULL");
    if (check_utf8("a metadata key", key, err) != PS_OK || check_utf8("a metadata value", value, err) != PS_OK)
        return PS_ERR;
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0)
            return ps_fail(err, "safetensors writer: metadata key " QNAME " set twice", key);
    if (grow_meta(w, err) != PS_OK)
        return PS_ERR;
    char *k = dup_str(key, err);
    char *v = k ? dup_str(value, err) : NULL;
    if (!v) {
        free(k);
        return PS_ERR;
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta] = v;
    w->n_meta++;
    return PS_OK;
}

/* Growable byte string for the header; an allocation failure is remembered and reported once. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_int(sbuf *b, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal; UTF-8 passes through, quotes, backslashes and control bytes are escaped. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_metadata(sbuf *b, const ps_st_writer *w)
{
    sb_str(b, "\"" META_KEY "\":{");
    for (int i = 0; i < w->n_meta; i++) {
        if (i)
            sb_put(b, ",", 1);
        sb_json_string(b, w->meta_keys[i]);
        sb_put(b, ":", 1);
        sb_json_string(b, w->meta_values[i]);
    }
    sb_put(b, "}", 1);
}

/* The JSON header, space-padded so that 8 + its length is a multiple of 8. */
static int build_header(const ps_st_writer *w, sbuf *b, ps_error *err)
{
    uint64_t offset = 0;
    sb_put(b, "{", 1);
    if (w->n_meta)
        sb_metadata(b, w);
    for (int i = 0; i < w->n; i++) {
        const wentry *e = &w->entries[i];
        if (e->nbytes > (uint64_t)MAX_JSON_INT - 1 - offset)
            return ps_fail(err, "safetensors writer: total data size too large at tensor " QNAME, e->name);
        sb_str(b, (i || w->n_meta) ? "," : "");
        sb_json_string(b, e->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, ps_dtype_name(e->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            sb_str(b, d ? "," : "");
            sb_int(b, e->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_int(b, (int64_t)offset);
        sb_put(b, ",", 1);
        offset += e->nbytes;
        sb_int(b, (int64_t)offset);
        sb_str(b, "]}");
    }
    sb_put(b, "}", 1);
    while (!b->failed && (8 + b->len) % 8 != 0)
        sb_put(b, " ", 1);
    if (b->failed)
        return ps_fail(err, "safetensors writer: out of memory building the header");
    if (b->len > PS_ST_MAX_HEADER)
        return ps_fail(err, "safetensors writer: header of %zu bytes exceeds the limit of %" PRIu64
                       " that readers accept", b->len, PS_ST_MAX_HEADER);
    return PS_OK;
}

static int write_all(ps_atomic_file *af, const char *path, const void *p, size_t n, ps_error *err)
{
    if (n && fwrite(p, 1, n, af->fp) != n)
        return ps_fail(err, "%s: write failed: %s", path, strerror(errno));
    return PS_OK;
}

static int write_body(ps_atomic_file *af, const ps_st_writer *w, const sbuf *hdr, const char *path,
                      ps_error *err)
{
    unsigned char len8[8];
    uint64_t n = hdr->len;
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(n >> (8 * i));
    if (write_all(af, path, len8, 8, err) != PS_OK || write_all(af, path, hdr->p, hdr->len, err) != PS_OK)
        return PS_ERR;
    for (int i = 0; i < w->n; i++)
        if (write_all(af, path, w->entries[i].data, w->entries[i].nbytes, err) != PS_OK)
            return PS_ERR;
    return PS_OK;
}

int ps_st_writer_write(ps_st_writer *w, const char *path, ps_error *err)
{
    if (!HOST_IS_LITTLE_ENDIAN())
        return ps_fail(err, "%s: safetensors needs a little-endian host", path);
    sbuf hdr = {0};
    if (build_header(w, &hdr, err) != PS_OK) {
        free(hdr.p);
        return ps_fail_wrap(err, "%s", path);
    }
    ps_atomic_file af;
    int rc = ps_atomic_open(&af, path, err);
    if (rc == PS_OK) {
        rc = write_body(&af, w, &hdr, path, err);
        if (rc == PS_OK)
            rc = ps_atomic_commit(&af, err);
        else
            ps_atomic_abort(&af);
    }
    free(hdr.p);
    return rc;
}
