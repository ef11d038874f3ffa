/* safetensors: round trips through the writer, the shared reference checkpoint, and one test per
 * class of malformed input (each asserting PS_ERR and a message that names the problem). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "popsteer/io.h"
#include "popsteer/safetensors.h"

#define LABEL "hostile.safetensors"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */

/* 8-byte little-endian n_field, then hlen header bytes, then data_len bytes (data or zeros). */
static unsigned char *make_raw(uint64_t n_field, const char *header, size_t hlen, const void *data,
                               size_t data_len, size_t *len)
{
    *len = 8 + hlen + data_len;
    unsigned char *b = calloc(*len + 1, 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(n_field >> (8 * i));
    memcpy(b + 8, header, hlen);
    if (data)
        memcpy(b + 8 + hlen, data, data_len);
    return b;
}

static unsigned char *make_file(const char *header, size_t data_len, size_t *len)
{
    return make_raw(strlen(header), header, strlen(header), NULL, data_len, len);
}

static void assert_contains(const char *msg, const char *word)
{
    if (!strstr(msg, word))
        fail_msg("message \"%s\" lacks \"%s\"", msg, word);
}

/* Parses buf, expects failure, a message starting with the label and containing every word of
 * the NULL-terminated list, and a closed file. */
static void expect_buf_error(const unsigned char *buf, size_t len, ...)
{
    ps_st_file f;
    ps_error err = {{0}};
    assert_int_equal(ps_st_parse(&f, buf, len, LABEL, &err), PS_ERR);
    assert_contains(err.msg, LABEL ": ");
    assert_true(strncmp(err.msg, LABEL ": ", strlen(LABEL) + 2) == 0);
    va_list ap;
    va_start(ap, len);
    for (const char *w; (w = va_arg(ap, const char *));)
        assert_contains(err.msg, w);
    va_end(ap);
    assert_null(f.buf);
    assert_null(f.tensors);
    ps_st_close(&f);
}

/* Header text plus data_len zero bytes of data. */
#define EXPECT_HEADER_ERROR(header, data_len, ...)                                                   \
    do {                                                                                             \
        size_t len_;                                                                                 \
        unsigned char *b_ = make_file(header, data_len, &len_);                                      \
        expect_buf_error(b_, len_, __VA_ARGS__, (const char *)NULL);                                 \
        free(b_);                                                                                    \
    } while (0)

/* Writes a small valid file with two tensors and metadata into dir; returns its path. */
static char *write_small(const char *dir, float *f32, int32_t *i32)
{
    ps_error err;
    ps_st_writer *w = ps_st_writer_new(&err);
    assert_non_null(w);
    const int64_t s23[] = {2, 3}, s3[] = {3};
    for (int i = 0; i < 6; i++)
        f32[i] = (float)i * 0.5f;
    for (int i = 0; i < 3; i++)
        i32[i] = -i;
    assert_int_equal(ps_st_writer_add(w, "weights", PS_DTYPE_F32, 2, s23, f32, &err), PS_OK);
    assert_int_equal(ps_st_writer_add(w, "ids", PS_DTYPE_I32, 1, s3, i32, &err), PS_OK);
    assert_int_equal(ps_st_writer_meta(w, "hidden_size", "64", &err), PS_OK);
    char *path = tu_path(dir, "small.safetensors");
    assert_int_equal(ps_st_writer_write(w, path, &err), PS_OK);
    ps_st_writer_free(w);
    return path;
}

/* ------------------------------------------------------------------------------------------ */
/* round trips                                                                                 */

static void test_dtype_names_and_sizes(void **state)
{
    (void)state;
    assert_string_equal(ps_dtype_name(PS_DTYPE_F32), "F32");
    assert_string_equal(ps_dtype_name(PS_DTYPE_BF16), "BF16");
    assert_string_equal(ps_dtype_name(PS_DTYPE_BOOL), "BOOL");
    assert_int_equal(ps_dtype_size(PS_DTYPE_F64), 8);
    assert_int_equal(ps_dtype_size(PS_DTYPE_F16), 2);
    assert_int_equal(ps_dtype_size(PS_DTYPE_I8), 1);
    assert_int_equal(ps_dtype_size((ps_dtype)99), 0);
    assert_string_equal(ps_dtype_name((ps_dtype)99), "?");
    ps_dtype d;
    assert_int_equal(ps_dtype_parse("I64", &d), PS_OK);
    assert_int_equal(d, PS_DTYPE_I64);
    assert_int_equal(ps_dtype_parse("U32", &d), PS_ERR);
}

static void test_round_trip_dtypes_and_metadata(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "model.safetensors");
    ps_error err;
    const float f32[6] = {1.5f, -2.0f, 0.0f, 3.25f, 1e-7f, -1e7f};
    const double f64[2] = {3.141592653589793, -1e300};
    const int64_t i64[2] = {INT64_MIN, INT64_MAX};
    const int32_t i32[3] = {-7, 0, 2147483647};
    const int16_t i16[2] = {-32768, 12345};
    const int8_t i8[3] = {-128, 0, 127};
    const uint8_t u8[5] = {0, 1, 2, 254, 255};
    const uint8_t bools[2] = {1, 0};
    const uint16_t f16[2] = {0x3c00, 0xc000}, bf16[1] = {0x3f80};
    const float scalar = 42.0f;
    const int64_t s23[] = {2, 3}, s2[] = {2}, s3[] = {3}, s5[] = {5}, s112[] = {1, 1, 2}, s1[] = {1},
                  s04[] = {0, 4};
    struct { const char *name; ps_dtype dt; int ndim; const int64_t *shape; const void *data; size_t nbytes; } t[] = {
        {"layer.0.weight", PS_DTYPE_F32, 2, s23, f32, sizeof f32},
        {"f64", PS_DTYPE_F64, 1, s2, f64, sizeof f64},
        {"i64", PS_DTYPE_I64, 3, s112, i64, sizeof i64},
        {"i32", PS_DTYPE_I32, 1, s3, i32, sizeof i32},
        {"i16", PS_DTYPE_I16, 1, s2, i16, sizeof i16},
        {"i8", PS_DTYPE_I8, 1, s3, i8, sizeof i8},
        {"u8 \"quoted\" \\ name", PS_DTYPE_U8, 1, s5, u8, sizeof u8},
        {"bool", PS_DTYPE_BOOL, 1, s2, bools, sizeof bools},
        {"f16", PS_DTYPE_F16, 1, s2, f16, sizeof f16},
        {"bf16", PS_DTYPE_BF16, 1, s1, bf16, sizeof bf16},
        {"scalar", PS_DTYPE_F32, 0, NULL, &scalar, sizeof scalar},
        {"empty", PS_DTYPE_F32, 2, s04, NULL, 0},
    };
    const int n = (int)(sizeof t / sizeof t[0]);
    ps_st_writer *w = ps_st_writer_new(&err);
    assert_non_null(w);
    for (int i = 0; i < n; i++)
        assert_int_equal(ps_st_writer_add(w, t[i].name, t[i].dt, t[i].ndim, t[i].shape, t[i].data, &err), PS_OK);
    assert_int_equal(ps_st_writer_meta(w, "hidden_size", "64", &err), PS_OK);
    assert_int_equal(ps_st_writer_meta(w, "note", "tab\there \"q\" \xc3\xa9\n", &err), PS_OK);
    assert_int_equal(ps_st_writer_write(w, path, &err), PS_OK);
    ps_st_writer_free(w);
    assert_int_equal(tu_count_entries(dir), 1); /* no temporary file left behind */

    size_t len;
    unsigned char *raw = (unsigned char *)tu_read(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | raw[i];
    assert_int_equal((8 + hlen) % 8, 0); /* data starts 8-byte aligned */
    free(raw);

    ps_st_file f;
    if (ps_st_open(&f, path, &err) != PS_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(f.n_tensors, n);
    for (int i = 0; i < n; i++) {
        const ps_st_tensor *g = ps_st_find(&f, t[i].name);
        assert_non_null(g);
        assert_ptr_equal(g, &f.tensors[i]); /* insertion order is kept */
        assert_int_equal(g->dtype, t[i].dt);
        assert_int_equal(g->ndim, t[i].ndim);
        for (int d = 0; d < t[i].ndim; d++)
            assert_int_equal(g->shape[d], t[i].shape[d]);
        assert_int_equal(g->nbytes, t[i].nbytes);
        if (t[i].nbytes)
            assert_memory_equal(g->data, t[i].data, t[i].nbytes);
    }
    assert_int_equal(f.tensors[10].numel, 1);
    assert_int_equal(f.tensors[11].numel, 0);
    assert_null(ps_st_find(&f, "absent"));
    assert_int_equal(f.n_meta, 2);
    assert_string_equal(ps_st_meta(&f, "hidden_size"), "64");
    assert_string_equal(ps_st_meta(&f, "note"), "tab\there \"q\" \xc3\xa9\n");
    assert_null(ps_st_meta(&f, "absent"));
    ps_st_close(&f);
    ps_st_close(&f); /* closing twice is harmless */
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_writer_overwrites_atomically(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    float f32[6];
    int32_t i32[3];
    char *path = write_small(dir, f32, i32);
    free(write_small(dir, f32, i32)); /* second write replaces the first */
    assert_int_equal(tu_count_entries(dir), 1);
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_open(&f, path, &err), PS_OK);
    assert_int_equal(f.n_tensors, 2);
    ps_st_close(&f);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_empty_file_is_valid(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "empty.safetensors");
    ps_error err;
    ps_st_writer *w = ps_st_writer_new(&err);
    assert_int_equal(ps_st_writer_write(w, path, &err), PS_OK);
    ps_st_writer_free(w);
    ps_st_file f;
    assert_int_equal(ps_st_open(&f, path, &err), PS_OK);
    assert_int_equal(f.n_tensors, 0);
    assert_int_equal(f.n_meta, 0);
    ps_st_close(&f);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_read_typed(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    float f32[6], got_f[6];
    int32_t i32[3], got_i[3];
    char *path = write_small(dir, f32, i32);
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_open(&f, path, &err), PS_OK);
    const int64_t s23[] = {2, 3}, s3[] = {3};
    assert_int_equal(ps_st_read_f32(&f, "weights", 2, s23, got_f, &err), PS_OK);
    assert_memory_equal(got_f, f32, sizeof f32);
    assert_int_equal(ps_st_read_i32(&f, "ids", 1, s3, got_i, &err), PS_OK);
    assert_memory_equal(got_i, i32, sizeof i32);
    assert_string_equal(ps_st_meta(&f, "hidden_size"), "64");
    ps_st_close(&f);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* A header whose length is not a multiple of 8 puts F32 data at an odd address: the typed reads
 * must copy bytewise (UBSan would flag a misaligned float access). */
static void test_read_unaligned_data(void **state)
{
    (void)state;
    const char *h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    assert_int_not_equal((8 + strlen(h)) % 4, 0);
    const float v[3] = {1.0f, 2.0f, -3.5f};
    size_t len;
    unsigned char *b = make_raw(strlen(h), h, strlen(h), v, sizeof v, &len);
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_parse(&f, b, len, LABEL, &err), PS_OK);
    float got[3];
    const int64_t s3[] = {3};
    assert_int_equal(ps_st_read_f32(&f, "x", 1, s3, got, &err), PS_OK);
    assert_memory_equal(got, v, sizeof v);
    ps_st_close(&f);
    free(b);
}

/* ------------------------------------------------------------------------------------------ */
/* typed read errors                                                                           */

static void test_read_missing_tensor(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    float f32[6], dst[6];
    int32_t i32[3];
    char *path = write_small(dir, f32, i32);
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_open(&f, path, &err), PS_OK);
    const int64_t s23[] = {2, 3};
    assert_int_equal(ps_st_read_f32(&f, "nope", 2, s23, dst, &err), PS_ERR);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "'nope' not found");
    ps_st_close(&f);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_read_wrong_dtype(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    float f32[6];
    int32_t i32[3], dst_i[6];
    char *path = write_small(dir, f32, i32);
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_open(&f, path, &err), PS_OK);
    const int64_t s23[] = {2, 3};
    assert_int_equal(ps_st_read_i32(&f, "weights", 2, s23, dst_i, &err), PS_ERR);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "'weights' has dtype F32, expected I32");
    ps_st_close(&f);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void test_read_wrong_shape(void **state)
{
    (void)state;
    float *data = calloc(3000 * 64, sizeof *data), *dst = calloc(3000 * 64, sizeof *dst);
    assert_non_null(data);
    assert_non_null(dst);
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "model.safetensors");
    ps_error err;
    ps_st_writer *w = ps_st_writer_new(&err);
    const int64_t found[] = {3000, 64}, want[] = {2976, 64}, want3[] = {3000, 64, 1};
    assert_int_equal(ps_st_writer_add(w, "item_embedding.weight", PS_DTYPE_F32, 2, found, data, &err), PS_OK);
    assert_int_equal(ps_st_writer_write(w, path, &err), PS_OK);
    ps_st_writer_free(w);
    ps_st_file f;
    assert_int_equal(ps_st_open(&f, path, &err), PS_OK);
    assert_int_equal(ps_st_read_f32(&f, "item_embedding.weight", 2, want, dst, &err), PS_ERR);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "'item_embedding.weight'");
    assert_contains(err.msg, "expected shape [2976, 64], found [3000, 64]");
    assert_int_equal(ps_st_read_f32(&f, "item_embedding.weight", 3, want3, dst, &err), PS_ERR);
    assert_contains(err.msg, "expected shape [3000, 64, 1], found [3000, 64]");
    assert_int_equal(ps_st_read_f32(&f, "item_embedding.weight", 2, found, dst, &err), PS_OK);
    ps_st_close(&f);
    free(path);
    tu_rmtree(dir);
    free(dir);
    free(data);
    free(dst);
}

static void test_read_f32_nonfinite(void **state)
{
    (void)state;
    float v[2][4] = {{0, 1, 2, 3}, {4, 5, 6, 7}};
    v[1][1] = NAN;
    v[1][3] = -INFINITY;
    const char *h = "{\"h\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]}}";
    size_t len;
    unsigned char *b = make_raw(strlen(h), h, strlen(h), v, sizeof v, &len);
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_parse(&f, b, len, LABEL, &err), PS_OK);
    float dst[8];
    const int64_t s24[] = {2, 4};
    assert_int_equal(ps_st_read_f32(&f, "h", 2, s24, dst, &err), PS_ERR);
    assert_contains(err.msg, LABEL ": tensor 'h'");
    assert_contains(err.msg, "2 of 8 values are not finite");
    assert_contains(err.msg, "NaN");
    assert_contains(err.msg, "index 5 [1, 1]");
    ps_st_close(&f);
    free(b);
}

static void test_open_missing_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "absent.safetensors");
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_open(&f, path, &err), PS_ERR);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "cannot open");
    ps_st_close(&f);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------------------------------------ */
/* the reference checkpoint in ../shared                                                       */

static void test_shared_sasrec_checkpoint(void **state)
{
    (void)state;
    TU_SKIP_IF_NO_SHARED(path, "models/sasrec-lastfm.safetensors");
    ps_st_file f;
    ps_error err;
    if (ps_st_open(&f, path, &err) != PS_OK)
        fail_msg("%s", err.msg);
    const ps_st_tensor *t = ps_st_find(&f, "item_embedding.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, PS_DTYPE_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2976);
    assert_int_equal(t->shape[1], 64);
    assert_non_null(ps_st_meta(&f, "hidden_size"));
    assert_string_equal(ps_st_meta(&f, "hidden_size"), "64");
    float *emb = calloc(2976 * 64, sizeof *emb);
    assert_non_null(emb);
    const int64_t shape[] = {2976, 64};
    if (ps_st_read_f32(&f, "item_embedding.weight", 2, shape, emb, &err) != PS_OK)
        fail_msg("%s", err.msg);
    double sum = 0;
    for (int i = 0; i < 2976 * 64; i++)
        sum += fabs(emb[i]);
    assert_true(sum > 0);
    free(emb);
    ps_st_close(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* hostile input: layout                                                                       */

static void test_hostile_short_file(void **state)
{
    (void)state;
    const unsigned char b[5] = {2, 0, 0, 0, 0};
    expect_buf_error(b, sizeof b, "5 bytes", "too short", (const char *)NULL);
    expect_buf_error(NULL, 0, "0 bytes", "too short", (const char *)NULL);
}

static void test_hostile_header_length_past_end(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = make_raw(1000, "{}", 2, NULL, 0, &len);
    expect_buf_error(b, len, "header length 1000", "past the end", (const char *)NULL);
    free(b);
}

static void test_hostile_header_length_absurd(void **state)
{
    (void)state;
    size_t len;
    unsigned char *b = make_raw((uint64_t)1 << 40, "{}", 2, NULL, 0, &len);
    expect_buf_error(b, len, "header length 1099511627776", "larger than the limit", (const char *)NULL);
    free(b);
    b = make_raw(UINT64_MAX, "{}", 2, NULL, 0, &len);
    expect_buf_error(b, len, "header length 18446744073709551615", "limit", (const char *)NULL);
    free(b);
}

static void test_hostile_bad_json(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"a\":", 0, "not valid JSON");
    EXPECT_HEADER_ERROR("", 0, "not valid JSON");
    EXPECT_HEADER_ERROR("{} {}", 0, "not valid JSON", "after the JSON value");
}

static void test_hostile_not_object(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("[1, 2]", 0, "not a JSON object");
    EXPECT_HEADER_ERROR("\"x\"", 0, "not a JSON object");
}

static void test_hostile_non_utf8(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"\xff\":1}", 0, "not valid JSON", "UTF-8");
    EXPECT_HEADER_ERROR("{\"\xc0\xaf\":1}", 0, "UTF-8");     /* overlong '/' */
    EXPECT_HEADER_ERROR("{\"\xed\xa0\x80\":1}", 0, "UTF-8"); /* surrogate */
    EXPECT_HEADER_ERROR("{\"\xe2\x82\":1}", 0, "UTF-8");     /* truncated sequence */
}

static void test_hostile_control_bytes_and_nul(void **state)
{
    (void)state;
    size_t len;
    const char h[] = "{\"a\0b\":1}";
    unsigned char *b = make_raw(sizeof h - 1, h, sizeof h - 1, NULL, 0, &len);
    expect_buf_error(b, len, "control byte 0x00", (const char *)NULL);
    free(b);
    EXPECT_HEADER_ERROR("{\"a\\u0000b\":{}}", 0, "escaped NUL");
    /* An escaped backslash followed by "u0000" is an ordinary name. */
    EXPECT_HEADER_ERROR("{\"a\\\\u0000\":{}}", 0, "'a\\u0000'", "missing field 'dtype'");
}

/* ------------------------------------------------------------------------------------------ */
/* hostile input: tensor entries                                                               */

static void test_hostile_entry_not_object(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"t\":[1]}", 0, "tensor 't'", "not an object");
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 't'", "missing field 'data_offsets'");
}

static void test_hostile_unknown_dtype(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 't'",
                        "unknown dtype 'U32'");
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 't'",
                        "dtype is not a string");
}

static void test_hostile_bad_shape(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F32\",\"shape\":5,\"data_offsets\":[0,20]}}", 20, "tensor 't'",
                        "shape is not an array");
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", 0, "tensor 't'",
                        "shape entry 1", "non-negative integer");
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape entry 0");
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"3\"],\"data_offsets\":[0,12]}}", 12, "shape entry 0");
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, "shape entry 0");
}

static void test_hostile_too_many_dims(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
                        "tensor 't'", "9 dimensions", "maximum of 8");
}

static void test_hostile_size_overflow(void **state)
{
    (void)state;
    /* Each dimension is a valid integer; their product is not. */
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,4503599627370496],"
                        "\"data_offsets\":[0,4]}}", 4, "tensor 't'", "overflows");
    /* The element count fits, the byte count does not. */
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F64\",\"shape\":[4503599627370496,1024],"
                        "\"data_offsets\":[0,4]}}", 4, "tensor 't'", "overflows");
    /* A zero dimension makes any other dimension harmless. */
    size_t len;
    unsigned char *b = make_file("{\"t\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,0,4503599627370496],"
                                 "\"data_offsets\":[0,0]}}", 0, &len);
    ps_st_file f;
    ps_error err;
    assert_int_equal(ps_st_parse(&f, b, len, LABEL, &err), PS_OK);
    assert_int_equal(f.tensors[0].numel, 0);
    ps_st_close(&f);
    free(b);
}

static void test_hostile_offsets_not_two_integers(void **state)
{
    (void)state;
    const char *words[] = {"tensor 't'", "data_offsets is not an array of two non-negative integers"};
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0]}}", 4, words[0], words[1]);
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", 8, words[0], words[1]);
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,\"4\"]}}", 4, words[0], words[1]);
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-1,3]}}", 4, words[0], words[1]);
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":{\"a\":0}}}", 4, words[0], words[1]);
}

static void test_hostile_offsets_begin_after_end(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8, "tensor 't'",
                        "data_offsets [8, 4] begin after end");
}

static void test_hostile_offsets_beyond_buffer(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12, "tensor 't'",
                        "data_offsets [0, 16] end beyond the data buffer of 12 bytes");
    /* Offsets far beyond the file must not be added to a pointer. */
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9007199254740000,"
                        "9007199254740001]}}", 0, "end beyond the data buffer");
}

static void test_hostile_offsets_do_not_match_shape(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"item_embedding.weight\":{\"dtype\":\"F32\",\"shape\":[2976,64],\"data_offsets\":[0,100]}}",
                        100, "tensor 'item_embedding.weight': data_offsets [0, 100] do not match shape [2976, 64] "
                        "of F32 (761856 bytes)");
}

static void test_hostile_overlapping_tensors(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                        "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    /* Listed in the other order: sorting by offset still finds it. */
    EXPECT_HEADER_ERROR("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "overlap");
    /* Identical ranges alias the same bytes. */
    EXPECT_HEADER_ERROR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlap");
}

static void test_hostile_holes_and_trailing_data(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                        "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}", 6,
                        "bytes [2, 4)", "belong to no tensor");
    EXPECT_HEADER_ERROR("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 10, "bytes [2, 10)",
                        "trailing data");
    EXPECT_HEADER_ERROR("{}", 3, "bytes [0, 3)", "belong to no tensor");
}

/* ------------------------------------------------------------------------------------------ */
/* hostile input: metadata and duplicates                                                      */

static void test_hostile_metadata_not_strings(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"__metadata__\":{\"epoch\":108}}", 0, "__metadata__ value for key 'epoch' is not a string");
    EXPECT_HEADER_ERROR("{\"__metadata__\":{\"a\":\"x\",\"b\":null}}", 0, "key 'b' is not a string");
    EXPECT_HEADER_ERROR("{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not an object");
}

static void test_hostile_duplicate_tensor_names(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                        "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4,
                        "key 'a' appears more than once");
}

static void test_hostile_duplicate_metadata(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"__metadata__\":{\"k\":\"1\"},\"__metadata__\":{\"k\":\"2\"}}", 0,
                        "key '__metadata__' appears more than once");
    EXPECT_HEADER_ERROR("{\"__metadata__\":{\"k\":\"1\",\"j\":\"0\",\"k\":\"2\"}}", 0,
                        "__metadata__ key 'k' appears more than once");
}

static void test_hostile_duplicate_fields(void **state)
{
    (void)state;
    EXPECT_HEADER_ERROR("{\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"shape\":[1]}}", 2,
                        "tensor 't'", "field 'shape' appears more than once");
}

static void test_hostile_long_name_keeps_message(void **state)
{
    (void)state;
    /* A huge name is truncated in the message so that the explanation survives. */
    size_t n = 5000;
    char *h = malloc(n + 100);
    assert_non_null(h);
    strcpy(h, "{\"");
    memset(h + 2, 'x', n);
    strcpy(h + 2 + n, "\":{\"dtype\":\"Q\",\"shape\":[],\"data_offsets\":[0,1]}}");
    EXPECT_HEADER_ERROR(h, 1, "unknown dtype 'Q'");
    free(h);
}

/* Every prefix of a valid file, and every single-byte corruption of its header, must be rejected
 * or accepted cleanly: this is the fuzzer's job in miniature (run it under ASan/UBSan). */
static void test_hostile_truncations_and_corruptions(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    float f32[6];
    int32_t i32[3];
    char *path = write_small(dir, f32, i32);
    size_t len;
    unsigned char *good = (unsigned char *)tu_read(path, &len);
    ps_st_file f;
    ps_error err;
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(ps_st_parse(&f, good, cut, LABEL, &err), PS_ERR);
        assert_true(strncmp(err.msg, LABEL ": ", strlen(LABEL) + 2) == 0);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | good[i];
    unsigned char *bad = malloc(len);
    assert_non_null(bad);
    const unsigned char flips[] = {0x01, 0x20, 0x80, 0xff};
    for (size_t pos = 0; pos < 8 + hlen; pos++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            memcpy(bad, good, len);
            bad[pos] ^= flips[k];
            err.msg[0] = '\0';
            if (ps_st_parse(&f, bad, len, LABEL, &err) == PS_OK) {
                for (int i = 0; i < f.n_tensors; i++) /* whatever was accepted lies inside the buffer */
                    assert_true((const char *)f.tensors[i].data + f.tensors[i].nbytes <= f.buf + f.len);
                ps_st_close(&f);
            } else {
                assert_true(strncmp(err.msg, LABEL ": ", strlen(LABEL) + 2) == 0);
            }
        }
    }
    free(bad);
    free(good);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------------------------------------ */
/* writer errors                                                                               */

static void test_writer_rejects_duplicates(void **state)
{
    (void)state;
    ps_error err;
    ps_st_writer *w = ps_st_writer_new(&err);
    const int64_t s[] = {1};
    const float v = 1;
    assert_int_equal(ps_st_writer_add(w, "a", PS_DTYPE_F32, 1, s, &v, &err), PS_OK);
    assert_int_equal(ps_st_writer_add(w, "a", PS_DTYPE_F32, 1, s, &v, &err), PS_ERR);
    assert_contains(err.msg, "'a' added twice");
    assert_int_equal(ps_st_writer_add(w, "__metadata__", PS_DTYPE_F32, 1, s, &v, &err), PS_ERR);
    assert_contains(err.msg, "reserved");
    assert_int_equal(ps_st_writer_meta(w, "k", "1", &err), PS_OK);
    assert_int_equal(ps_st_writer_meta(w, "k", "2", &err), PS_ERR);
    assert_contains(err.msg, "'k' set twice");
    ps_st_writer_free(w);
}

static void test_writer_rejects_bad_shapes(void **state)
{
    (void)state;
    ps_error err;
    ps_st_writer *w = ps_st_writer_new(&err);
    const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[] = {2, -3}, huge[] = {INT64_MAX, 2}, two[] = {2};
    const float v[2] = {0};
    assert_int_equal(ps_st_writer_add(w, "nine", PS_DTYPE_F32, 9, nine, v, &err), PS_ERR);
    assert_contains(err.msg, "'nine': 9 dimensions");
    assert_int_equal(ps_st_writer_add(w, "neg", PS_DTYPE_F32, 2, neg, v, &err), PS_ERR);
    assert_contains(err.msg, "'neg': dimension 1 is -3 (negative)");
    assert_int_equal(ps_st_writer_add(w, "huge", PS_DTYPE_F32, 2, huge, v, &err), PS_ERR);
    assert_contains(err.msg, "'huge': shape is too large");
    assert_int_equal(ps_st_writer_add(w, "nodata", PS_DTYPE_F32, 1, two, NULL, &err), PS_ERR);
    assert_contains(err.msg, "'nodata': no data");
    assert_int_equal(ps_st_writer_add(w, "bad\xff", PS_DTYPE_F32, 1, two, v, &err), PS_ERR);
    assert_contains(err.msg, "UTF-8");
    ps_st_writer_free(w);
    ps_st_writer_free(NULL);
}

static void test_writer_missing_directory(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "no/such/dir/model.safetensors");
    ps_error err;
    ps_st_writer *w = ps_st_writer_new(&err);
    assert_int_equal(ps_st_writer_write(w, path, &err), PS_ERR);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "cannot create");
    ps_st_writer_free(w);
    assert_int_equal(tu_count_entries(dir), 0);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_names_and_sizes),
        cmocka_unit_test(test_round_trip_dtypes_and_metadata),
        cmocka_unit_test(test_writer_overwrites_atomically),
        cmocka_unit_test(test_empty_file_is_valid),
        cmocka_unit_test(test_read_typed),
        cmocka_unit_test(test_read_unaligned_data),
        cmocka_unit_test(test_read_missing_tensor),
        cmocka_unit_test(test_read_wrong_dtype),
        cmocka_unit_test(test_read_wrong_shape),
        cmocka_unit_test(test_read_f32_nonfinite),
        cmocka_unit_test(test_open_missing_file),
        cmocka_unit_test(test_shared_sasrec_checkpoint),
        cmocka_unit_test(test_hostile_short_file),
        cmocka_unit_test(test_hostile_header_length_past_end),
        cmocka_unit_test(test_hostile_header_length_absurd),
        cmocka_unit_test(test_hostile_bad_json),
        cmocka_unit_test(test_hostile_not_object),
        cmocka_unit_test(test_hostile_non_utf8),
        cmocka_unit_test(test_hostile_control_bytes_and_nul),
        cmocka_unit_test(test_hostile_entry_not_object),
        cmocka_unit_test(test_hostile_unknown_dtype),
        cmocka_unit_test(test_hostile_bad_shape),
        cmocka_unit_test(test_hostile_too_many_dims),
        cmocka_unit_test(test_hostile_size_overflow),
        cmocka_unit_test(test_hostile_offsets_not_two_integers),
        cmocka_unit_test(test_hostile_offsets_begin_after_end),
        cmocka_unit_test(test_hostile_offsets_beyond_buffer),
        cmocka_unit_test(test_hostile_offsets_do_not_match_shape),
        cmocka_unit_test(test_hostile_overlapping_tensors),
        cmocka_unit_test(test_hostile_holes_and_trailing_data),
        cmocka_unit_test(test_hostile_metadata_not_strings),
        cmocka_unit_test(test_hostile_duplicate_tensor_names),
        cmocka_unit_test(test_hostile_duplicate_metadata),
        cmocka_unit_test(test_hostile_duplicate_fields),
        cmocka_unit_test(test_hostile_long_name_keeps_message),
        cmocka_unit_test(test_hostile_truncations_and_corruptions),
        cmocka_unit_test(test_writer_rejects_duplicates),
        cmocka_unit_test(test_writer_rejects_bad_shapes),
        cmocka_unit_test(test_writer_missing_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
