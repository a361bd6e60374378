/* GGUF reader and writer: round trip of every value type, the fixture files,
 * truncation at every byte, and targeted corruptions with their messages. */
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "gguf.h"
#include "quant.h"

/* ---- helpers ---- */

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

/* A growable byte buffer for hand-built files. */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(1);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) {
    bb_put(b, &v, 1);
}
static void bb_u32(bb *b, uint32_t v) {
    bb_put(b, &v, 4);
}
static void bb_u64(bb *b, uint64_t v) {
    bb_put(b, &v, 8);
}
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_pad(bb *b, size_t a) {
    while (b->n % a) bb_u8(b, 0);
}
static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_u32(b, GGUF_MAGIC);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                     uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims && d < 5; d++) bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, off);
}

/* Opens a copy of exactly n bytes (so ASan sees any over-read) and returns the status. */
static int open_copy(const uint8_t *p, size_t n) {
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    gguf_file *f = NULL;
    int rc = gguf_open_memory(copy, n, &f);
    if ((rc == M40LLM_OK) != (f != NULL)) rc = 12345; /* out must be set exactly on success */
    gguf_close(f);
    free(copy);
    return rc;
}

static void expect_error(const bb *b, int want_rc, const char *want_msg, const char *what) {
    err_clear();
    int rc = open_copy(b->p, b->n);
    const char *msg = m40llm_last_error();
    CHECKF(rc == want_rc, "%s: rc %d, want %d (%s)", what, rc, want_rc, msg);
    CHECKF(strstr(msg, want_msg) != NULL, "%s: message '%s' lacks '%s'", what, msg, want_msg);
}

/* ---- writer round trip ---- */

typedef struct fill_ctx {
    int calls;
} fill_ctx;

static int fill_ramp(void *ctx, void *dst, size_t nbytes) {
    ((fill_ctx *)ctx)->calls++;
    for (size_t i = 0; i < nbytes; i++) ((uint8_t *)dst)[i] = (uint8_t)(i * 7 + 1);
    return M40LLM_OK;
}

static int fill_fail(void *ctx, void *dst, size_t nbytes) {
    (void)ctx, (void)dst, (void)nbytes;
    return err_set(M40LLM_ERR_IO, "source unavailable");
}

static float t_f32[3][4];
static uint16_t t_f16[8];
static block_q4_0 t_q4[2][1];

/* Writes the round-trip file; returns its path in path (buffer of 256). */
static int write_small(const char *path) {
    gguf_writer *w = NULL;
    CHECK(gguf_writer_create(&w) == M40LLM_OK);
    if (!w) return 1;
    CHECK(gguf_writer_set_alignment(w, 64) == M40LLM_OK);
    CHECK(gguf_writer_set_alignment(w, 48) == M40LLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_str(w, "general.architecture", "llama") == M40LLM_OK);
    CHECK(gguf_writer_set_str(w, "general.name", "first") == M40LLM_OK);
    CHECK(gguf_writer_set_str(w, "general.name", "tiny test") == M40LLM_OK); /* replaces */
    CHECK(gguf_writer_set_u32(w, "llama.block_count", 3) == M40LLM_OK);
    CHECK(gguf_writer_set_i32(w, "test.i32", -123456) == M40LLM_OK);
    CHECK(gguf_writer_set_u64(w, "test.u64", 0x123456789abcull) == M40LLM_OK);
    CHECK(gguf_writer_set_u64(w, "test.u64big", UINT64_MAX) == M40LLM_OK);
    CHECK(gguf_writer_set_f32(w, "test.f32", 1e-5f) == M40LLM_OK);
    CHECK(gguf_writer_set_bool(w, "test.bool", true) == M40LLM_OK);
    CHECK(gguf_writer_set_str(w, "test.empty", "") == M40LLM_OK);
    uint8_t a_u8[] = {1, 2, 255};
    int8_t a_i8[] = {-1, 0, 127};
    uint16_t a_u16[] = {65535, 7};
    int16_t a_i16[] = {-32768, 5};
    uint32_t a_u32[] = {4000000000u};
    int32_t a_i32[] = {-7, 8, 9, 10};
    float a_f32[] = {0.5f, -2.25f};
    uint8_t a_bool[] = {1, 0};
    uint64_t a_u64[] = {1ull << 40};
    int64_t a_i64[] = {-(1ll << 50), 3};
    double a_f64[] = {3.141592653589793};
    CHECK(gguf_writer_set_arr(w, "a.u8", GGUF_VT_UINT8, a_u8, 3) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.i8", GGUF_VT_INT8, a_i8, 3) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.u16", GGUF_VT_UINT16, a_u16, 2) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.i16", GGUF_VT_INT16, a_i16, 2) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.u32", GGUF_VT_UINT32, a_u32, 1) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.i32", GGUF_VT_INT32, a_i32, 4) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.f32", GGUF_VT_FLOAT32, a_f32, 2) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.bool", GGUF_VT_BOOL, a_bool, 2) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.u64", GGUF_VT_UINT64, a_u64, 1) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.i64", GGUF_VT_INT64, a_i64, 2) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.f64", GGUF_VT_FLOAT64, a_f64, 1) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.empty", GGUF_VT_INT32, NULL, 0) == M40LLM_OK);
    CHECK(gguf_writer_set_arr(w, "a.bad", GGUF_VT_STRING, a_u8, 1) == M40LLM_ERR_INVALID_ARG);
    char tok_buf[3][8] = {"<s>", "", "hello"};
    const char *toks[] = {tok_buf[0], tok_buf[1], tok_buf[2]};
    CHECK(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3) == M40LLM_OK);
    strcpy(tok_buf[2], "XXXXX"); /* strings are copied: the file must still say "hello" */

    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) t_f32[r][c] = (float)(r * 10 + c) - 0.5f;
    for (int i = 0; i < 8; i++) t_f16[i] = quant_f32_to_f16((float)i * 0.25f);
    memset(t_q4, 0x5a, sizeof t_q4);
    int64_t ne_f32[] = {4, 3}, ne_f16[] = {8}, ne_q4[] = {32, 1, 2, 1}, ne_q8[] = {64, 2};
    static fill_ctx fc;
    fc.calls = 0;
    CHECK(gguf_writer_add_tensor(w, "t.f32", QT_F32, 2, ne_f32, t_f32, sizeof t_f32) == 0);
    CHECK(gguf_writer_add_tensor(w, "t.f16", QT_F16, 1, ne_f16, t_f16, sizeof t_f16) == 0);
    CHECK(gguf_writer_add_tensor(w, "t.q4", QT_Q4_0, 4, ne_q4, t_q4, sizeof t_q4) == 0);
    CHECK(gguf_writer_add_tensor_fn(w, "t.q8", QT_Q8_0, 2, ne_q8, fill_ramp, &fc) == 0);
    /* rejected: duplicate, wrong size, bad block multiple, unknown type, bad dims */
    CHECK(gguf_writer_add_tensor(w, "t.f16", QT_F16, 1, ne_f16, t_f16, 16) ==
          M40LLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "x", QT_F16, 1, ne_f16, t_f16, 15) == M40LLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "x", QT_Q4_0, 1, ne_f16, t_q4, 18) == M40LLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "x", 99, 1, ne_f16, t_f16, 16) == M40LLM_ERR_UNSUPPORTED);
    CHECK(gguf_writer_add_tensor(w, "x", QT_F16, 5, ne_q4, t_f16, 16) == M40LLM_ERR_INVALID_ARG);
    int rc = gguf_writer_write(w, path);
    CHECKF(rc == M40LLM_OK, "write: %s", m40llm_last_error());
    CHECK(fc.calls == 1);
    gguf_writer_free(w);
    return rc;
}

static void check_small(const gguf_file *f) {
    CHECK(gguf_version(f) == 3);
    CHECK(gguf_alignment(f) == 64);
    CHECK(gguf_data_offset(f) % 64 == 0);
    CHECK(gguf_n_kv(f) == 23);
    CHECK(gguf_n_tensors(f) == 4);
    gguf_str s;
    uint32_t u32;
    int64_t i64;
    float f32;
    bool b;
    CHECK(gguf_get_str(f, "general.name", &s) == 0 && gguf_str_eq(s, "tiny test"));
    CHECK(gguf_get_str(f, "test.empty", &s) == 0 && s.len == 0 && gguf_str_eq(s, ""));
    CHECK(gguf_get_u32(f, "llama.block_count", &u32) == 0 && u32 == 3);
    CHECK(gguf_get_u32(f, "general.alignment", &u32) == 0 && u32 == 64);
    CHECK(gguf_get_i64(f, "test.i32", &i64) == 0 && i64 == -123456);
    CHECK(gguf_get_u32(f, "test.i32", &u32) == M40LLM_ERR_TYPE);
    CHECK(gguf_get_i64(f, "test.u64", &i64) == 0 && i64 == 0x123456789abcll);
    CHECK(gguf_get_u32(f, "test.u64", &u32) == M40LLM_ERR_TYPE);
    CHECK(gguf_get_i64(f, "test.u64big", &i64) == M40LLM_ERR_TYPE);
    CHECK(gguf_get_f32(f, "test.f32", &f32) == 0 && f32 == 1e-5f);
    CHECK(gguf_get_f32(f, "test.i32", &f32) == M40LLM_ERR_TYPE);
    CHECK(gguf_get_bool(f, "test.bool", &b) == 0 && b);
    CHECK(gguf_get_str(f, "test.bool", &s) == M40LLM_ERR_TYPE);
    err_clear();
    CHECK(gguf_get_u32(f, "no.such.key", &u32) == M40LLM_ERR_NOT_FOUND);
    CHECK(m40llm_last_error()[0] == '\0'); /* absent keys set no message */
    CHECK(gguf_find_kv(f, "no.such.key") == NULL);

    const gguf_value *a;
    float fv;
    CHECK(gguf_get_arr(f, "a.u8", &a) == 0 && a->arr.type == GGUF_VT_UINT8 && a->arr.n == 3);
    CHECK(gguf_arr_i64(a, 2, &i64) == 0 && i64 == 255);
    CHECK(gguf_arr_i64(a, 3, &i64) == M40LLM_ERR_INVALID_ARG);
    CHECK(gguf_get_arr(f, "a.i8", &a) == 0 && gguf_arr_i64(a, 0, &i64) == 0 && i64 == -1);
    CHECK(gguf_get_arr(f, "a.u16", &a) == 0 && gguf_arr_i64(a, 0, &i64) == 0 && i64 == 65535);
    CHECK(gguf_get_arr(f, "a.i16", &a) == 0 && gguf_arr_i64(a, 0, &i64) == 0 && i64 == -32768);
    CHECK(gguf_get_arr(f, "a.u32", &a) == 0 && gguf_arr_i64(a, 0, &i64) == 0 &&
          i64 == 4000000000ll);
    CHECK(gguf_get_arr(f, "a.i32", &a) == 0 && a->arr.n == 4 && gguf_arr_i64(a, 3, &i64) == 0 &&
          i64 == 10);
    CHECK(gguf_arr_f32(a, 0, &fv) == 0 && fv == -7.0f);
    CHECK(gguf_get_arr(f, "a.f32", &a) == 0 && gguf_arr_f32(a, 1, &fv) == 0 && fv == -2.25f);
    CHECK(gguf_arr_i64(a, 0, &i64) == M40LLM_ERR_TYPE);
    CHECK(gguf_get_arr(f, "a.bool", &a) == 0 && a->arr.type == GGUF_VT_BOOL &&
          a->arr.data[0] == 1 && a->arr.data[1] == 0);
    CHECK(gguf_get_arr(f, "a.u64", &a) == 0 && gguf_arr_i64(a, 0, &i64) == 0 && i64 == 1ll << 40);
    CHECK(gguf_get_arr(f, "a.i64", &a) == 0 && gguf_arr_i64(a, 0, &i64) == 0 &&
          i64 == -(1ll << 50));
    CHECK(gguf_get_arr(f, "a.f64", &a) == 0 && gguf_arr_f32(a, 0, &fv) == 0 && fv == 3.14159265f);
    CHECK(gguf_get_arr(f, "a.empty", &a) == 0 && a->arr.n == 0);
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", &a) == 0 && a->arr.type == GGUF_VT_STRING &&
          a->arr.n == 3);
    CHECK(gguf_arr_str(a, 0, &s) == 0 && gguf_str_eq(s, "<s>"));
    CHECK(gguf_arr_str(a, 1, &s) == 0 && s.len == 0);
    CHECK(gguf_arr_str(a, 2, &s) == 0 && gguf_str_eq(s, "hello"));
    CHECK(gguf_arr_str(a, 3, &s) == M40LLM_ERR_INVALID_ARG);
    CHECK(gguf_arr_i64(a, 0, &i64) == M40LLM_ERR_TYPE);
    char buf[4];
    CHECK(strcmp(gguf_str_copy(s, buf, sizeof buf), "hel") == 0);

    /* key order is preserved; offsets point at the key */
    const gguf_kv *kv0 = gguf_kv_at(f, 0);
    CHECK(kv0 && gguf_str_eq(kv0->key, "general.alignment") && kv0->offset == 24);
    CHECK(gguf_kv_at(f, 23) == NULL && gguf_kv_at(f, -1) == NULL);

    const gguf_tensor *t = gguf_find_tensor(f, "t.f32");
    CHECK(t && t->type == QT_F32 && t->n_dims == 2 && t->ne[0] == 4 && t->ne[1] == 3 &&
          t->ne[2] == 1 && t->ne[3] == 1 && t->nbytes == sizeof t_f32 && t->offset == 0);
    CHECK(t && !memcmp(t->data, t_f32, sizeof t_f32));
    t = gguf_find_tensor(f, "t.f16");
    CHECK(t && t->type == QT_F16 && t->n_dims == 1 && t->nbytes == 16 && t->offset == 64);
    CHECK(t && !memcmp(t->data, t_f16, sizeof t_f16));
    t = gguf_find_tensor(f, "t.q4");
    CHECK(t && t->type == QT_Q4_0 && t->n_dims == 4 && t->ne[2] == 2 && t->nbytes == 36 &&
          t->offset == 128 && !memcmp(t->data, t_q4, 36));
    t = gguf_find_tensor(f, "t.q8");
    CHECK(t && t->type == QT_Q8_0 && t->nbytes == 136 && t->offset == 192);
    CHECK(t && ((const uint8_t *)t->data)[135] == (uint8_t)(135 * 7 + 1));
    CHECK(gguf_tensor_at(f, 3) == t && gguf_tensor_at(f, 4) == NULL);
    CHECK(gguf_find_tensor(f, "t.nope") == NULL);
    CHECK(gguf_data_offset(f) + 192 + 136 == gguf_file_size(f));
}

/* Entries of dir whose name contains ".tmp-" (fileio_out's temporaries). */
static int temporaries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        if (strstr(de->d_name, ".tmp-")) n++;
    if (d) closedir(d);
    return d ? n : -1;
}

static void test_writer_errors(const char *dir) {
    gguf_writer *w = NULL;
    CHECK(gguf_writer_create(&w) == 0);
    int64_t ne[] = {16};
    CHECK(gguf_writer_add_tensor_fn(w, "bad", QT_F32, 1, ne, fill_fail, NULL) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/fail.gguf", dir);
    err_clear();
    int rc = gguf_writer_write(w, path);
    CHECKF(rc == M40LLM_ERR_IO && strstr(m40llm_last_error(), "'bad'") &&
               strstr(m40llm_last_error(), "source unavailable"),
           "fill failure: rc %d: %s", rc, m40llm_last_error());
    /* nothing left behind: neither OUT nor fileio_out's OUT.tmp-PID-N */
    CHECK(access(path, F_OK) != 0);
    CHECKF(temporaries(dir) == 0, "%d temporaries left in %s", temporaries(dir), dir);
    snprintf(path, sizeof path, "%s/no/such/dir/x.gguf", dir);
    CHECK(gguf_writer_write(w, path) == M40LLM_ERR_IO);
    gguf_writer_free(w);
}

/* Every prefix of a valid file must fail with FORMAT and never crash. */
static void test_truncation(const uint8_t *p, size_t n, const char *what) {
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        int rc = open_copy(p, len);
        if (rc != M40LLM_ERR_FORMAT) {
            if (bad++ < 5)
                fprintf(stderr, "%s truncated to %zu: rc %d (%s)\n", what, len, rc,
                        m40llm_last_error());
        }
    }
    CHECKF(bad == 0, "%s: %d of %zu truncations did not fail with FORMAT", what, bad, n);
    CHECK(open_copy(p, n) == M40LLM_OK);
}

/* Every byte overwritten with a few values: any status, never a crash (run under ASan). */
static void test_byte_flips(const uint8_t *p, size_t n, const char *what) {
    static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    uint8_t *copy = malloc(n);
    int opened = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(copy, p, n);
            copy[i] = vals[k];
            gguf_file *f = NULL;
            int rc = gguf_open_memory(copy, n, &f);
            CHECKF((rc == M40LLM_OK) == (f != NULL), "%s byte %zu = %u", what, i, vals[k]);
            if (f && gguf_n_tensors(f) > 0) {
                const gguf_tensor *t = gguf_tensor_at(f, gguf_n_tensors(f) - 1);
                CHECK((const uint8_t *)t->data + t->nbytes <= copy + n);
            }
            opened += rc == M40LLM_OK;
            gguf_close(f);
        }
    }
    free(copy);
    CHECKF(opened > 0, "%s: no flipped file opened", what); /* flips in tensor data are harmless */
}

/* A real model file cut everywhere in its header and at sampled points in its data. */
static void test_fixture_truncation(void) {
    char path[512];
    check_fixture("reference/synth-q4_0.gguf", path, sizeof path);
    size_t n = 0;
    uint8_t *buf = read_all(path, &n);
    CHECKF(buf != NULL, "cannot read %s", path);
    if (!buf) return;
    gguf_file *f = NULL;
    CHECK(gguf_open_memory(buf, n, &f) == M40LLM_OK);
    size_t head = f ? (size_t)gguf_data_offset(f) + 64 : 0;
    gguf_close(f);
    int bad = 0;
    for (size_t len = 0; len < head && len < n; len++)
        bad += open_copy(buf, len) != M40LLM_ERR_FORMAT;
    uint64_t x = 88172645463325252ull; /* xorshift: fixed sample of cut points */
    for (int i = 0; i < 64; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        bad += open_copy(buf, (size_t)(x % n)) != M40LLM_ERR_FORMAT;
    }
    CHECKF(bad == 0, "synth-q4_0.gguf: %d truncations did not fail with FORMAT", bad);
    free(buf);
}

#include "test_gguf_corrupt.h"

int main(void) {
    char dir[] = "/tmp/m40-test-gguf-XXXXXX";
    if (!mkdtemp(dir)) SKIP("cannot create a temp dir");
    char path[512];
    snprintf(path, sizeof path, "%s/small.gguf", dir);
    if (write_small(path) == M40LLM_OK) {
        size_t n = 0;
        uint8_t *buf = read_all(path, &n);
        CHECK(buf != NULL);
        gguf_file *f = NULL;
        int rc = gguf_open_memory(buf, n, &f);
        CHECKF(rc == M40LLM_OK, "open_memory: %s", m40llm_last_error());
        if (f) check_small(f);
        gguf_close(f);
        rc = gguf_open(path, &f);
        CHECKF(rc == M40LLM_OK, "open: %s", m40llm_last_error());
        if (f) check_small(f);
        gguf_close(f);
        if (buf) test_truncation(buf, n, "small.gguf");
        if (buf) test_byte_flips(buf, n, "small.gguf");
        free(buf);
        unlink(path);
    }
    test_writer_errors(dir);
    test_nested();
    test_corruptions();
    test_escape();
    test_fixtures();
    test_fixture_truncation();
    err_clear();
    gguf_file *f = NULL;
    CHECK(gguf_open("/nonexistent/x.gguf", &f) == M40LLM_ERR_NOT_FOUND && f == NULL);
    CHECK(strstr(m40llm_last_error(), "/nonexistent/x.gguf") != NULL);
    CHECK(gguf_open(dir, &f) == M40LLM_ERR_IO && f == NULL); /* a directory */
    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    FILE *fp = fopen(path, "wb");
    if (fp) fclose(fp);
    err_clear();
    CHECK(gguf_open(path, &f) == M40LLM_ERR_FORMAT && f == NULL);
    CHECK(strstr(m40llm_last_error(), "empty") != NULL);
    unlink(path);
    rmdir(dir);
    return check_summary("test_gguf");
}
