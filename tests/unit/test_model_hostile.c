/* Hostile model files (issue 18, items 3 and 9): metadata that disagrees
 * with the tensors present, tensors that share bytes, and strings with
 * embedded NULs or control bytes. Each file is written with the GGUF writer,
 * read into memory and, where the writer cannot express the defect, patched
 * there; every case must fail with the right status and a message naming the
 * problem, quickly and without large allocations. */
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"

enum { EMBD = 32, HEADS = 4, FF = 64, VOCAB = 40 };

typedef struct spec {
    uint32_t block_count;  /* llama.block_count */
    int layers;            /* layers whose tensors are written */
    const char *extra;     /* one more [EMBD] F32 tensor, any name */
    const char *arch;      /* general.architecture; NULL: llama */
    const char *name;      /* general.name; NULL: tiny */
    const char *rope_type; /* llama.rope.scaling.type; NULL: absent */
    int64_t experts;       /* llama.expert_count; 0: absent */
    int64_t experts_used;  /* llama.expert_used_count; 0: absent */
    int moe_x;             /* > 0: MoE layers with tensors of that many experts, no dense FFN */
    int down_x;            /* experts in ffn_down_exps; 0: moe_x */
    uint32_t vocab_size;   /* llama.vocab_size; 0: absent */
    uint32_t n_tokens;     /* tokenizer.ggml.tokens entries; 0: absent */
} spec;

enum { MAX_X = 4 };                     /* experts a written MoE layer may hold */
static float g_data[EMBD * FF * MAX_X]; /* the largest tensor (an expert tensor) */
static char g_path[256];

static int add3(gguf_writer *w, const char *name, int64_t ne0, int64_t ne1, int64_t ne2) {
    int64_t ne[3] = {ne0, ne1 ? ne1 : 1, ne2 ? ne2 : 1};
    return gguf_writer_add_tensor(w, name, QT_F32,
                                  ne2   ? 3
                                  : ne1 ? 2
                                        : 1,
                                  ne, g_data, (size_t)(ne[0] * ne[1] * ne[2]) * sizeof(float));
}

static int add(gguf_writer *w, const char *name, int64_t ne0, int64_t ne1) {
    return add3(w, name, ne0, ne1, 0);
}

static int write_model(const spec *s) {
    gguf_writer *w = NULL;
    int rc = gguf_writer_create(&w);
    if (rc) return rc;
    gguf_writer_set_str(w, "general.architecture", s->arch ? s->arch : "llama");
    gguf_writer_set_str(w, "general.name", s->name ? s->name : "tiny");
    gguf_writer_set_u32(w, "llama.block_count", s->block_count);
    gguf_writer_set_u32(w, "llama.embedding_length", EMBD);
    gguf_writer_set_u32(w, "llama.feed_forward_length", FF);
    gguf_writer_set_u32(w, "llama.attention.head_count", HEADS);
    gguf_writer_set_u32(w, "llama.context_length", 256);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (s->rope_type) gguf_writer_set_str(w, "llama.rope.scaling.type", s->rope_type);
    if (s->experts) gguf_writer_set_u32(w, "llama.expert_count", (uint32_t)s->experts);
    if (s->experts_used)
        gguf_writer_set_u32(w, "llama.expert_used_count", (uint32_t)s->experts_used);
    if (s->vocab_size) gguf_writer_set_u32(w, "llama.vocab_size", s->vocab_size);
    if (s->n_tokens) {
        static char text[VOCAB * 2][16];
        static const char *toks[VOCAB * 2];
        for (uint32_t i = 0; i < s->n_tokens; i++) {
            snprintf(text[i], sizeof text[i], "t%u", i);
            toks[i] = text[i];
        }
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, s->n_tokens);
    }
    rc = add(w, "token_embd.weight", EMBD, VOCAB);
    if (!rc) rc = add(w, "output_norm.weight", EMBD, 0);
    for (int l = 0; l < s->layers && !rc; l++) {
        struct {
            const char *n;
            int64_t a, b;
        } t[] = {{"attn_norm", EMBD, 0}, {"attn_q", EMBD, EMBD},      {"attn_k", EMBD, EMBD},
                 {"attn_v", EMBD, EMBD}, {"attn_output", EMBD, EMBD}, {"ffn_norm", EMBD, 0},
                 {"ffn_gate", EMBD, FF}, {"ffn_up", EMBD, FF},        {"ffn_down", FF, EMBD}};
        const size_t n_t = sizeof t / sizeof t[0] - (s->moe_x ? 3 : 0);
        char name[64];
        for (size_t i = 0; i < n_t && !rc; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, t[i].n);
            rc = add(w, name, t[i].a, t[i].b);
        }
        if (s->moe_x && !rc) {
            snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", l);
            rc = add(w, name, EMBD, s->moe_x);
            snprintf(name, sizeof name, "blk.%d.ffn_gate_exps.weight", l);
            if (!rc) rc = add3(w, name, EMBD, FF, s->moe_x);
            snprintf(name, sizeof name, "blk.%d.ffn_up_exps.weight", l);
            if (!rc) rc = add3(w, name, EMBD, FF, s->moe_x);
            snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", l);
            if (!rc) rc = add3(w, name, FF, EMBD, s->down_x ? s->down_x : s->moe_x);
        }
    }
    if (!rc && s->extra) rc = add(w, s->extra, EMBD, 0);
    if (!rc) rc = gguf_writer_write(w, g_path);
    gguf_writer_free(w);
    return rc;
}

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *size = buf ? (size_t)n : 0;
    return buf;
}

/* The file of a spec, in memory. */
static uint8_t *build(const spec *s, size_t *size) {
    int rc = write_model(s);
    CHECKF(rc == 0, "writer: %s", m40llm_last_error());
    uint8_t *buf = rc ? NULL : read_all(g_path, size);
    CHECK(buf != NULL);
    return buf;
}

/* Parses and loads a buffer as a model; returns the first failing status. */
static int load_mem(const uint8_t *buf, size_t size) {
    gguf_file *g = NULL;
    int rc = gguf_open_memory(buf, size, &g);
    if (rc) return rc;
    model *m = NULL;
    rc = model_from_gguf(g, &m);
    if (rc)
        gguf_close(g);
    else
        model_free(m); /* owns g */
    return rc;
}

static int load_spec(const spec *s) {
    size_t size = 0;
    uint8_t *buf = build(s, &size);
    int rc = buf ? load_mem(buf, size) : -1;
    free(buf);
    return rc;
}

static bool says(const char *a, const char *b) {
    const char *msg = m40llm_last_error();
    bool ok = strstr(msg, a) && (!b || strstr(msg, b));
    if (!ok) fprintf(stderr, "  message was: %s\n", msg);
    return ok;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long maxrss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Item 3: a huge block_count over the tensors of two layers must fail in
 * milliseconds without allocating per-layer state for the count. Runs first,
 * while the process's peak RSS is still small. */
static void test_huge_counts(void) {
    static const uint32_t counts[] = {1u << 24, 1u << 30, 3};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        spec s = {.block_count = counts[i], .layers = 2};
        size_t size = 0;
        uint8_t *buf = build(&s, &size);
        if (!buf) continue;
        long rss0 = maxrss_kb();
        double t0 = cpu_s(); /* CPU time: a busy machine cannot inflate it */
        int rc = load_mem(buf, size);
        double dt = cpu_s() - t0;
        long grew_kb = maxrss_kb() - rss0;
        CHECKF(rc == M40LLM_ERR_NOT_FOUND, "block_count %u: status %d", counts[i], rc);
        CHECK(says("blk.2.attn_norm.weight", "missing"));
        CHECK(says("block_count", NULL));
        CHECKF(dt < 1.0, "block_count %u took %.3f s of CPU", counts[i], dt);
        CHECKF(grew_kb < 32 * 1024, "block_count %u: peak RSS grew by %ld KiB", counts[i], grew_kb);
        free(buf);
    }
}

/* Item 9: block_count smaller than the tensors say. */
static void test_extra_layers(void) {
    spec s = {.block_count = 2, .layers = 2, .extra = "blk.2.attn_q.weight"};
    CHECK(load_spec(&s) == M40LLM_ERR_FORMAT);
    CHECK(says("blk.2.attn_q.weight", "beyond llama.block_count 2"));

    /* thirteen layers of tensors, block_count 12 */
    spec s12 = {.block_count = 12, .layers = 13};
    CHECK(load_spec(&s12) == M40LLM_ERR_FORMAT);
    CHECK(says("blk.12.attn_norm.weight", "beyond llama.block_count 12"));

    /* a layer number too large for any integer type */
    spec big = {
        .block_count = 2, .layers = 2, .extra = "blk.99999999999999999999999.attn_q.weight"};
    CHECK(load_spec(&big) == M40LLM_ERR_FORMAT);
    CHECK(says("blk.99999999999999999999999.attn_q.weight", "beyond"));

    /* no layer tensors at all */
    spec none = {.block_count = 4, .layers = 0};
    CHECK(load_spec(&none) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("blk.0.attn_norm.weight is missing", "no blk.* tensors"));

    /* names that are not "blk.N." stay allowed (e.g. rope_freqs.weight) */
    spec other = {.block_count = 2, .layers = 2, .extra = "blk.x.attn_q.weight"};
    CHECKF(load_spec(&other) == 0, "%s", m40llm_last_error());
    spec rope = {.block_count = 2, .layers = 2, .extra = "rope_freqs.weight"};
    CHECKF(load_spec(&rope) == 0, "%s", m40llm_last_error());

    /* an escape sequence in a tensor name is shown escaped */
    spec esc = {.block_count = 2, .layers = 2, .extra = "blk.7.x\x1b]0;pwned\x07"};
    CHECK(load_spec(&esc) == M40LLM_ERR_FORMAT);
    CHECK(says("blk.7.x\\x1B]0;pwned\\x07", "beyond"));
    CHECK(!strchr(m40llm_last_error(), 0x1b));
}

/* Byte position of a tensor's data-offset field in the file. */
static size_t offset_field(const gguf_file *g, const uint8_t *base, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t) return 0;
    return (size_t)((const uint8_t *)t->name.data - base) + t->name.len + 4 + 8 * t->n_dims + 4;
}

/* Item 9: tensors whose data ranges overlap. */
static void test_overlap(void) {
    spec s = {.block_count = 1, .layers = 1};
    size_t size = 0;
    uint8_t *buf = build(&s, &size);
    if (!buf) return;
    gguf_file *g = NULL;
    CHECKF(gguf_open_memory(buf, size, &g) == 0, "%s", m40llm_last_error());
    if (!g) {
        free(buf);
        return;
    }
    int64_t n = gguf_n_tensors(g);
    size_t *fields = calloc((size_t)n, sizeof *fields);
    for (int64_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        fields[i] =
            (size_t)((const uint8_t *)t->name.data - buf) + t->name.len + 4 + 8 * t->n_dims + 4;
    }
    size_t q_at = offset_field(g, buf, "blk.0.attn_q.weight");
    size_t k_at = offset_field(g, buf, "blk.0.attn_k.weight");
    uint64_t q_off = gguf_find_tensor(g, "blk.0.attn_q.weight")->offset;
    gguf_close(g);

    /* every offset zero: the first two tensors overlap */
    uint8_t *zero = malloc(size);
    memcpy(zero, buf, size);
    for (int64_t i = 0; i < n; i++) memset(zero + fields[i], 0, 8);
    CHECK(load_mem(zero, size) == M40LLM_ERR_FORMAT);
    CHECK(says("'token_embd.weight'", "'output_norm.weight'"));
    CHECK(says("overlap", NULL));

    /* one tensor moved 64 bytes into another */
    memcpy(zero, buf, size);
    uint64_t k_off = q_off + 64;
    memcpy(zero + k_at, &k_off, 8);
    CHECK(load_mem(zero, size) == M40LLM_ERR_FORMAT);
    CHECK(says("'blk.0.attn_q.weight'", "'blk.0.attn_k.weight'"));

    /* the same two the other way round: still both named, lower offset first */
    memcpy(zero, buf, size);
    memcpy(zero + q_at, &k_off, 8);
    memcpy(zero + k_at, &q_off, 8);
    CHECK(load_mem(zero, size) == M40LLM_ERR_FORMAT);
    CHECK(says("'blk.0.attn_k.weight' (data offsets [", "'blk.0.attn_q.weight'"));

    /* the untouched file loads */
    CHECKF(load_mem(buf, size) == 0, "%s", m40llm_last_error());
    free(zero);
    free(fields);
    free(buf);
}

/* Replaces the first `marker` byte in the file's bytes of `text` with `with`. */
static void patch_str(uint8_t *buf, size_t size, const char *text, char marker, char with) {
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= size; i++) {
        if (memcmp(buf + i, text, n) != 0) continue;
        char *m = memchr(buf + i, marker, n);
        if (m) *m = with;
        return;
    }
    CHECKF(0, "text %s not found in the file", text);
}

/* Item 9: GGUF strings are length-prefixed; an embedded NUL must not make a
 * string compare or print as its C-string prefix. */
static void test_strings(void) {
    spec s = {.block_count = 1, .layers = 1, .arch = "llama#evil"};
    size_t size = 0;
    uint8_t *buf = build(&s, &size);
    if (buf) {
        patch_str(buf, size, "llama#evil", '#', '\0');
        CHECK(load_mem(buf, size) == M40LLM_ERR_UNSUPPORTED);
        CHECK(says("architecture 'llama\\x00evil'", NULL));
        free(buf);
    }
    spec r = {.block_count = 1, .layers = 1, .rope_type = "linear#"};
    buf = build(&r, &size);
    if (buf) {
        patch_str(buf, size, "linear#", '#', '\0');
        CHECK(load_mem(buf, size) == M40LLM_ERR_UNSUPPORTED);
        CHECK(says("rope.scaling.type 'linear\\x00'", NULL));
        free(buf);
    }
    /* the name is for display: kept, but escaped */
    spec nm = {.block_count = 1, .layers = 1, .name = "tiny#\x1b[2J"};
    buf = build(&nm, &size);
    if (buf) {
        patch_str(buf, size, "tiny#", '#', '\0');
        gguf_file *g = NULL;
        model *m = NULL;
        CHECK(gguf_open_memory(buf, size, &g) == 0);
        CHECKF(g && model_from_gguf(g, &m) == 0, "%s", m40llm_last_error());
        if (m) {
            CHECKF(!strcmp(m->cfg.name, "tiny\\x00\\x1B[2J"), "name %s", m->cfg.name);
            CHECK(!strcmp(m->cfg.arch, "llama"));
            model_free(m);
        } else {
            gguf_close(g);
        }
        free(buf);
    }
}

/* Counts the metadata states that the tensors must agree with. */
static void test_vocab(void) {
    spec ok = {.block_count = 1, .layers = 1, .vocab_size = VOCAB, .n_tokens = VOCAB};
    CHECKF(load_spec(&ok) == 0, "%s", m40llm_last_error());
    spec fewer = {.block_count = 1, .layers = 1, .n_tokens = VOCAB - 8}; /* padded embedding */
    CHECKF(load_spec(&fewer) == 0, "%s", m40llm_last_error());

    spec vs = {.block_count = 1, .layers = 1, .vocab_size = 1u << 30};
    CHECK(load_spec(&vs) == M40LLM_ERR_SHAPE);
    CHECK(says("llama.vocab_size is 1073741824", "40 rows"));

    spec toks = {.block_count = 1, .layers = 1, .n_tokens = VOCAB + 1};
    CHECK(load_spec(&toks) == M40LLM_ERR_SHAPE);
    CHECK(says("tokenizer.ggml.tokens holds 41 tokens", "40 rows"));
}

/* Mixture-of-experts metadata that disagrees with itself or the tensors:
 * refused with the key or tensor named, before anything is sized by it. */
static void test_experts(void) {
    spec ok = {.block_count = 2, .layers = 2, .experts = 4, .experts_used = 2, .moe_x = 4};
    CHECKF(load_spec(&ok) == 0, "%s", m40llm_last_error());

    spec dense = {.block_count = 1, .layers = 1, .experts = 8, .experts_used = 2};
    CHECK(load_spec(&dense) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("blk.0.ffn_gate_inp.weight is missing", NULL));
    spec no_used = {.block_count = 1, .layers = 1, .experts = 4, .moe_x = 4};
    CHECK(load_spec(&no_used) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("llama.expert_used_count is missing", NULL));
    spec more = {.block_count = 1, .layers = 1, .experts = 4, .experts_used = 5, .moe_x = 4};
    CHECK(load_spec(&more) == M40LLM_ERR_FORMAT);
    CHECK(says("llama.expert_used_count 5 exceeds llama.expert_count 4", NULL));
    spec down = {
        .block_count = 1, .layers = 1, .experts = 4, .experts_used = 2, .moe_x = 4, .down_x = 3};
    CHECK(load_spec(&down) == M40LLM_ERR_SHAPE);
    CHECK(says("blk.0.ffn_down_exps.weight: expected shape [64, 32, 4], found [64, 32, 3]", NULL));

    /* counts far beyond the tensors: the router's shape refuses them, fast
     * and without an allocation of their size */
    static const int64_t huge[][2] = {{1 << 30, 2}, {1 << 30, 1 << 30}, {4000000000LL, 2}};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        spec s = {.block_count = 1,
                  .layers = 1,
                  .experts = huge[i][0],
                  .experts_used = huge[i][1],
                  .moe_x = 4};
        size_t size = 0;
        uint8_t *buf = build(&s, &size);
        if (!buf) continue;
        long rss0 = maxrss_kb();
        double t0 = cpu_s();
        int rc = load_mem(buf, size);
        double dt = cpu_s() - t0;
        long grew_kb = maxrss_kb() - rss0;
        if (huge[i][0] > (1 << 30)) {
            CHECKF(rc == M40LLM_ERR_FORMAT, "expert_count %lld: status %d", (long long)huge[i][0],
                   rc);
            CHECK(says("llama.expert_count", "out of range"));
        } else {
            CHECKF(rc == M40LLM_ERR_SHAPE, "expert_count %lld: status %d", (long long)huge[i][0],
                   rc);
            CHECK(says("blk.0.ffn_gate_inp.weight: expected shape [32, 1073741824], found [32, 4]",
                       NULL));
        }
        CHECKF(dt < 1.0, "expert_count %lld took %.3f s of CPU", (long long)huge[i][0], dt);
        CHECKF(grew_kb < 32 * 1024, "expert_count %lld: peak RSS grew by %ld KiB",
               (long long)huge[i][0], grew_kb);
        free(buf);
    }
}

int main(void) {
    for (size_t i = 0; i < sizeof g_data / sizeof g_data[0]; i++)
        g_data[i] = (float)(i % 7) * 0.01f;
    snprintf(g_path, sizeof g_path, "/tmp/m40llm_test_model_hostile_%d.gguf", (int)getpid());
    test_huge_counts();
    test_extra_layers();
    test_overlap();
    test_strings();
    test_vocab();
    test_experts();
    unlink(g_path);
    return check_summary("test_model_hostile");
}
