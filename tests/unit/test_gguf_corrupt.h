/* Part of test_gguf.c: hand-built files with nested arrays, targeted
 * corruptions of one field each, and the fixture files. */

/* A valid file with one field changeable per case. */
typedef struct raw_spec {
    uint32_t magic, version;
    int64_t n_tensors, n_kv; /* -1: the true count */
    uint64_t arch_len;       /* length field of the architecture string; 0: true */
    uint32_t arr_vtype;      /* value type field of key "arr" */
    uint32_t arr_etype;
    uint64_t arr_n;
    uint32_t n_dims;
    uint64_t ne0, ne1;
    uint32_t ttype;
    uint64_t toff;
    int64_t align;      /* general.alignment value; -1: absent */
    bool align_as_str;  /* write general.alignment as a string */
    bool dup_key;       /* repeat key "arr" */
    bool dup_tensor;    /* repeat tensor "w" */
    int64_t data_bytes; /* bytes of tensor data; -1: what the tensor needs */
    int64_t v_off;      /* data offset of a second tensor "v" shaped like "w"; -1: none */
} raw_spec;

static raw_spec raw_default(void) {
    raw_spec r = {GGUF_MAGIC, 3,       -1, -1, 0,     GGUF_VT_ARRAY, GGUF_VT_INT32, 2,  2, 32,
                  2,          QT_Q8_0, 0,  -1, false, false,         false,         -1, -1};
    return r;
}

static void raw_build(bb *b, const raw_spec *r) {
    b->n = 0;
    int64_t n_kv = 2 + (r->align >= 0) + r->dup_key;
    int64_t n_t = 1 + r->dup_tensor + (r->v_off >= 0);
    bb_u32(b, r->magic);
    bb_u32(b, r->version);
    bb_u64(b, (uint64_t)(r->n_tensors >= 0 ? r->n_tensors : n_t));
    bb_u64(b, (uint64_t)(r->n_kv >= 0 ? r->n_kv : n_kv));
    if (r->align >= 0) {
        bb_str(b, "general.alignment");
        if (r->align_as_str) {
            bb_u32(b, GGUF_VT_STRING);
            bb_str(b, "32");
        } else {
            bb_u32(b, GGUF_VT_UINT32);
            bb_u32(b, (uint32_t)r->align);
        }
    }
    bb_str(b, "general.architecture");
    bb_u32(b, GGUF_VT_STRING);
    bb_u64(b, r->arch_len ? r->arch_len : 5);
    bb_put(b, "llama", 5);
    bb_str(b, "arr");
    bb_u32(b, r->arr_vtype);
    bb_u32(b, r->arr_etype);
    bb_u64(b, r->arr_n);
    bb_u32(b, 1);
    bb_u32(b, 2);
    if (r->dup_key) {
        bb_str(b, "arr");
        bb_u32(b, GGUF_VT_UINT8);
        bb_u8(b, 1);
    }
    uint64_t ne[5] = {r->ne0, r->ne1, 1, 1, 1}; /* 5: the n_dims = 5 case */
    bb_tinfo(b, "w", r->n_dims, ne, r->ttype, r->toff);
    if (r->dup_tensor) bb_tinfo(b, "w", r->n_dims, ne, r->ttype, r->toff);
    if (r->v_off >= 0) bb_tinfo(b, "v", r->n_dims, ne, r->ttype, (uint64_t)r->v_off);
    bb_pad(b, r->align > 0 && !r->align_as_str ? (size_t)r->align : 32);
    int64_t nd = r->data_bytes >= 0 ? r->data_bytes : 68;
    for (int64_t i = 0; i < nd; i++) bb_u8(b, (uint8_t)i);
}

static void test_corruptions(void) {
    bb b = {0};
    raw_spec r = raw_default();
    raw_build(&b, &r);
    gguf_file *f = NULL;
    CHECKF(gguf_open_memory(b.p, b.n, &f) == M40LLM_OK, "base file: %s", m40llm_last_error());
    if (f) {
        const gguf_tensor *t = gguf_find_tensor(f, "w");
        CHECK(t && t->nbytes == 68 && t->ne[1] == 2 && ((const uint8_t *)t->data)[5] == 5);
        gguf_close(f);
    }
    test_truncation(b.p, b.n, "raw");
    test_byte_flips(b.p, b.n, "raw");
    r.version = 2; /* v2 has the same layout */
    raw_build(&b, &r);
    CHECK(open_copy(b.p, b.n) == M40LLM_OK);

#define CASE(field, value, rc, msg)                                                                \
    do {                                                                                           \
        r = raw_default();                                                                         \
        r.field = value;                                                                           \
        raw_build(&b, &r);                                                                         \
        expect_error(&b, rc, msg, #field " = " #value);                                            \
    } while (0)
    const int FMT = M40LLM_ERR_FORMAT, UNS = M40LLM_ERR_UNSUPPORTED;
    CASE(magic, 0x46554748u, FMT, "bad magic 0x46554748 at offset 0");
    CASE(version, 1, UNS, "version 1");
    CASE(version, 4, UNS, "version 4 at offset 4");
    CASE(version, 0x03000000u, UNS, "big-endian");
    CASE(n_kv, 1ll << 60, FMT, "metadata count 1152921504606846976 at offset 16");
    CASE(n_tensors, 1ll << 60, FMT, "tensor count 1152921504606846976 at offset 8");
    /* a third key is read from the tensor info, then the tensor info from the data */
    CASE(n_kv, 3, FMT, "tensor info 0: tensor name at offset 119 has length");
    CASE(n_tensors, 2, FMT, "tensor");
    CASE(arch_len, 1ull << 62, FMT,
         "key 'general.architecture' (offset 24): string value at offset 56 has length "
         "4611686018427387904");
    CASE(arch_len, UINT64_MAX, FMT, "general.architecture");
    CASE(arr_vtype, 13, FMT, "key 'arr' (offset 69): unknown value type 13 at offset 80");
    CASE(arr_vtype, UINT32_MAX, FMT, "unknown value type 4294967295");
    CASE(arr_etype, 13, FMT, "key 'arr' (offset 69): array at offset 84 has unknown element type");
    CASE(arr_n, 1ull << 61, FMT, "claims 2305843009213693952 elements of type int32");
    CASE(arr_n, UINT64_MAX, FMT, "claims 18446744073709551615 elements");
    CASE(n_dims, 5, FMT, "tensor 'w' (offset 104) has 5 dimensions, not 1..4");
    CASE(n_dims, 0, FMT, "has 0 dimensions");
    CASE(ne1, 0, FMT, "tensor 'w': dimension 1 at offset 125 is 0, not positive");
    CASE(ne1, (uint64_t)-5, FMT, "dimension 1 at offset 125 is -5");
    CASE(ne1, 1ull << 60, FMT, "overflows 64 bits");
    CASE(ttype, 99, UNS, "tensor 'w': unknown tensor type 99 at offset 133");
    CASE(ttype, 4, UNS, "unknown tensor type 4"); /* removed Q4_2 */
    CASE(ne0, 33, FMT, "row length 33 is not a multiple of the Q8_0 block size 32");
    CASE(toff, 8, FMT, "data offset 8 is not a multiple of the alignment 32");
    CASE(toff, 32, FMT, "tensor 'w' data [192..260) lies outside the file (size 228)");
    CASE(toff, UINT64_MAX - 31, FMT, "data offset 18446744073709551584 + 68 bytes overflows");
    CASE(toff, 1ull << 40, FMT, "data [1099511627936..1099511628004) lies outside the file");
    CASE(data_bytes, 67, FMT, "tensor 'w' data [160..228) lies outside the file (size 227)");
    CASE(align, 0, FMT, "general.alignment (offset 24) is 0, not a power of two");
    CASE(align, 48, FMT, "is 48, not a power of two");
    CASE(dup_key, true, FMT, "duplicate metadata key 'arr' at offset 104 (first is #1)");
    CASE(dup_tensor, true, FMT, "duplicate tensor name 'w' at offset 145 (first is #0)");
    /* tensors sharing bytes: same offset, or one starting inside the other */
    CASE(v_off, 0, FMT,
         "tensors 'w' (data offsets [0..68)) and 'v' (data offsets [0..68)) overlap");
#undef CASE
    r = raw_default();
    r.v_off = 64;
    r.data_bytes = 200;
    raw_build(&b, &r);
    expect_error(&b, FMT, "tensors 'w' (data offsets [0..68)) and 'v' (data offsets [64..132))",
                 "v inside w");
    /* "v" before "w" in the data: still named by position, the lower first */
    r = raw_default();
    r.toff = 64;
    r.v_off = 0;
    r.data_bytes = 200;
    raw_build(&b, &r);
    expect_error(&b, FMT, "tensors 'v' (data offsets [0..68)) and 'w' (data offsets [64..132))",
                 "v before w");
    /* adjacent (aligned) tensors are fine */
    r = raw_default();
    r.v_off = 96;
    r.data_bytes = 96 + 68;
    raw_build(&b, &r);
    CHECKF(open_copy(b.p, b.n) == M40LLM_OK, "adjacent tensors: %s", m40llm_last_error());
    r = raw_default();
    r.align = 32;
    r.align_as_str = true;
    raw_build(&b, &r);
    expect_error(&b, FMT, "general.alignment (offset 24) has type string", "alignment string");
    /* element count fits but the byte size overflows */
    r = raw_default();
    r.ttype = QT_F32;
    r.ne0 = 1ull << 62;
    r.ne1 = 1;
    raw_build(&b, &r);
    expect_error(&b, FMT, "byte size overflows 64 bits", "f32 2^62");

    /* alignment 64 moves the data section */
    r = raw_default();
    r.align = 64;
    raw_build(&b, &r);
    f = NULL;
    CHECKF(gguf_open_memory(b.p, b.n, &f) == M40LLM_OK, "align 64: %s", m40llm_last_error());
    if (f) {
        CHECK(gguf_alignment(f) == 64 && gguf_data_offset(f) % 64 == 0);
        CHECK(gguf_data_offset(f) + 68 == gguf_file_size(f));
        gguf_close(f);
    }
    CHECK(gguf_open_memory(NULL, 0, &f) == M40LLM_ERR_FORMAT && f == NULL);
    free(b.p);
}

static void test_nested(void) {
    bb b = {0};
    bb_header(&b, 3, 0, 3);
    /* nest = [[1, 2], [3]] of int32 */
    bb_str(&b, "nest");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u64(&b, 2);
    bb_u32(&b, GGUF_VT_INT32);
    bb_u64(&b, 2);
    bb_u32(&b, 1);
    bb_u32(&b, 2);
    bb_u32(&b, GGUF_VT_INT32);
    bb_u64(&b, 1);
    bb_u32(&b, 3);
    /* nest_s = [["a", "bc"], []] of strings */
    bb_str(&b, "nest_s");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u64(&b, 2);
    bb_u32(&b, GGUF_VT_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "a");
    bb_str(&b, "bc");
    bb_u32(&b, GGUF_VT_STRING);
    bb_u64(&b, 0);
    bb_str(&b, "after");
    bb_u32(&b, GGUF_VT_UINT16);
    uint16_t v16 = 777;
    bb_put(&b, &v16, 2);

    gguf_file *f = NULL;
    CHECKF(gguf_open_memory(b.p, b.n, &f) == M40LLM_OK, "nested: %s", m40llm_last_error());
    if (f) {
        const gguf_value *a;
        int64_t x;
        gguf_str s;
        CHECK(gguf_get_arr(f, "nest", &a) == 0 && a->arr.type == GGUF_VT_ARRAY && a->arr.n == 2);
        CHECK(a->arr.items && a->arr.items[0].type == GGUF_VT_ARRAY);
        CHECK(gguf_arr_i64(&a->arr.items[0], 1, &x) == 0 && x == 2);
        CHECK(gguf_arr_i64(&a->arr.items[1], 0, &x) == 0 && x == 3);
        CHECK(a->arr.items[1].arr.n == 1);
        CHECK(gguf_arr_i64(a, 0, &x) == M40LLM_ERR_TYPE);
        CHECK(gguf_get_arr(f, "nest_s", &a) == 0 && a->arr.n == 2);
        CHECK(gguf_arr_str(&a->arr.items[0], 1, &s) == 0 && gguf_str_eq(s, "bc"));
        CHECK(a->arr.items[1].arr.n == 0 && a->arr.items[1].arr.type == GGUF_VT_STRING);
        uint32_t u;
        CHECK(gguf_get_u32(f, "after", &u) == 0 && u == 777);
        gguf_close(f);
    }
    test_truncation(b.p, b.n, "nested");

    /* nesting beyond the limit is refused, not recursed into */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "deep");
    bb_u32(&b, GGUF_VT_ARRAY);
    for (int i = 0; i < 100; i++) {
        bb_u32(&b, GGUF_VT_ARRAY);
        bb_u64(&b, 1);
    }
    bb_u32(&b, GGUF_VT_UINT8);
    bb_u64(&b, 0);
    expect_error(&b, M40LLM_ERR_FORMAT, "nested deeper than", "deep nesting");

    /* a string array whose count exceeds what the bytes could hold: refused before allocating */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "tokens");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_STRING);
    bb_u64(&b, 1ull << 40);
    bb_str(&b, "x");
    expect_error(&b, M40LLM_ERR_FORMAT, "claims 1099511627776 elements of type string",
                 "huge string array");
    /* a string inside an array that runs past the end */
    b.n = 0;
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "tokens");
    bb_u32(&b, GGUF_VT_ARRAY);
    bb_u32(&b, GGUF_VT_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "x");
    bb_u64(&b, 100);
    bb_put(&b, "0123456789", 10);
    expect_error(&b, M40LLM_ERR_FORMAT, "key 'tokens' (offset 24): item 1 at offset", "item 1");
    free(b.p);
}

static void test_fixtures(void) {
    static const struct {
        const char *rel;
        int64_t n_kv, n_tensors, n_tokens;
    } fx[] = {
        {"reference/synth-bf16.gguf", 24, 21, 512},
        {"reference/synth-f16.gguf", 24, 21, 512},
        {"reference/synth-f32.gguf", 24, 21, 512},
        {"reference/synth-q2_k.gguf", 25, 21, 512},
        {"reference/synth-q3_k_m.gguf", 25, 21, 512},
        {"reference/synth-q4_0.gguf", 24, 21, 512},
        {"reference/synth-q4_1.gguf", 24, 21, 512},
        {"reference/synth-q4_k_m.gguf", 25, 21, 512},
        {"reference/synth-q5_0.gguf", 24, 21, 512},
        {"reference/synth-q5_1.gguf", 24, 21, 512},
        {"reference/synth-q5_k_m.gguf", 25, 21, 512},
        {"reference/synth-q6_k.gguf", 25, 21, 512},
        {"reference/synth-q8_0.gguf", 24, 21, 512},
        {"reference/synth-tied-q8_0.gguf", 24, 20, 512},
        {"tokenizer/ggml-vocab-deepseek-coder.gguf", 25, 0, 32256},
        {"tokenizer/ggml-vocab-gpt-2.gguf", 16, 0, 50257},
        {"tokenizer/ggml-vocab-gpt-neox.gguf", 17, 0, 50432},
        {"tokenizer/ggml-vocab-llama-spm.gguf", 22, 0, 32000},
        {"tokenizer/ggml-vocab-phi-3.gguf", 26, 0, 32064},
        {"tokenizer/ggml-vocab-starcoder.gguf", 19, 0, 49152},
    };
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
        char path[512];
        check_fixture(fx[i].rel, path, sizeof path);
        gguf_file *f = NULL;
        int rc = gguf_open(path, &f);
        CHECKF(rc == M40LLM_OK, "%s: %s", path, m40llm_last_error());
        if (!f) continue;
        CHECKF(gguf_n_kv(f) == fx[i].n_kv && gguf_n_tensors(f) == fx[i].n_tensors,
               "%s: %lld kv, %lld tensors", fx[i].rel, (long long)gguf_n_kv(f),
               (long long)gguf_n_tensors(f));
        const gguf_value *tok;
        CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", &tok) == 0 &&
              (int64_t)tok->arr.n == fx[i].n_tokens);
        gguf_str s;
        CHECK(gguf_arr_str(tok, (uint64_t)fx[i].n_tokens - 1, &s) == 0);
        /* every tensor lies inside the file, aligned */
        for (int64_t j = 0; j < gguf_n_tensors(f); j++) {
            const gguf_tensor *t = gguf_tensor_at(f, j);
            CHECK(t->offset % gguf_alignment(f) == 0 &&
                  gguf_data_offset(f) + t->offset + t->nbytes <= gguf_file_size(f));
            CHECK(gguf_find_tensor(f, "token_embd.weight") != NULL);
        }
        if (fx[i].n_tensors) {
            const gguf_tensor *e = gguf_find_tensor(f, "token_embd.weight");
            CHECK(e && e->ne[1] == fx[i].n_tokens);
        }
        gguf_close(f);
    }
}

/* Names in messages are escaped: control bytes, NUL and invalid UTF-8 as
 * \xNN, so neither a terminal escape nor a NUL reaches the message. */
static void test_escape(void) {
    char buf[64];
    gguf_str s = {9, "llama\0x\x1b["};
    CHECK(!strcmp(gguf_str_escape(s, buf, sizeof buf), "llama\\x00x\\x1B["));
    CHECK(gguf_str_has_nul(s) && !gguf_str_has_nul((gguf_str){5, "llama"}));
    CHECK(!gguf_str_has_nul((gguf_str){0, NULL}));
    s = (gguf_str){7, "a\\b\x7f\r\n\t"};
    CHECK(!strcmp(gguf_str_escape(s, buf, sizeof buf), "a\\\\b\\x7F\\x0D\\x0A\\x09"));
    /* valid UTF-8 stays; C1 controls (U+009B is CSI), overlong, surrogate, cut sequences do not */
    s = (gguf_str){6, "\xc3\xa9\xe2\x82\xac\x21"};
    CHECK(!strcmp(gguf_str_escape(s, buf, sizeof buf), "\xc3\xa9\xe2\x82\xac!"));
    s = (gguf_str){9, "\xc2\x9b\xc0\xaf\xed\xa0\x80\xe2\x82"};
    CHECK(!strcmp(gguf_str_escape(s, buf, sizeof buf),
                  "\\xC2\\x9B\\xC0\\xAF\\xED\\xA0\\x80\\xE2\\x82"));
    /* cut with "..." at a piece boundary, never inside an escape */
    s = (gguf_str){12, "abcdef\x01ghijk"};
    CHECK(!strcmp(gguf_str_escape(s, buf, 10), "abcdef..."));
    CHECK(!strcmp(gguf_str_escape(s, buf, 11), "abcdef..."));
    CHECK(!strcmp(gguf_str_escape(s, buf, 14), "abcdef\\x01..."));
    s = (gguf_str){6, "abcdef"};
    CHECK(!strcmp(gguf_str_escape(s, buf, 7), "abcdef")); /* exact fit: no dots */
    CHECK(!strcmp(gguf_str_escape(s, buf, 6), "ab..."));
    CHECK(!strcmp(gguf_str_escape(s, buf, 1), ""));

    /* the parser's messages use it: a tensor name with an escape and a NUL */
    bb b = {0};
    bb_header(&b, 3, 1, 0);
    static const char name[] = "w\x1b]0;x\x07\0y";
    bb_u64(&b, sizeof name - 1);
    bb_put(&b, name, sizeof name - 1);
    bb_u32(&b, 5);                             /* bad n_dims */
    for (int i = 0; i < 8; i++) bb_u64(&b, 0); /* so the tensor count fits the bytes left */
    expect_error(&b, M40LLM_ERR_FORMAT,
                 "tensor 'w\\x1B]0;x\\x07\\x00y' (offset 24) has 5 dimensions", "escaped name");
    CHECK(!strchr(m40llm_last_error(), 0x1b) && !strchr(m40llm_last_error(), 0x07));
    free(b.p);
}
