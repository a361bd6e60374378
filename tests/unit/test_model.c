/* Model loading: a valid tiny llama GGUF (written with the GGUF writer) gives
 * the right config; each kind of defect gives the right status and a message
 * naming the key or tensor. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"

enum { EMBD = 32, HEADS = 4, KV_HEADS = 2, HD = 8, FF = 64, VOCAB = 40, LAYERS = 2 };

typedef struct spec {
    const char *arch;
    const char *skip_key;    /* metadata key left out */
    const char *skip_tensor; /* tensor left out */
    const char *bad_tensor;  /* tensor written with ne1 + 8 rows */
    const char *q81_tensor;  /* tensor stored as Q8_1 (no dequantizer) */
    bool with_output;
    bool kv_heads;            /* write head_count_kv */
    const char *rope_scaling; /* NULL: none written */
    float eps;                /* RMSNorm epsilon; 0: 1e-6 */
} spec;

static float g_data[1 << 16]; /* enough for the largest tensor (VOCAB * EMBD, FF * EMBD) */
static uint8_t g_q81[(FF * EMBD + 8 * EMBD) / 32 * 36];

static int add(gguf_writer *w, const spec *s, const char *name, int64_t ne0, int64_t ne1) {
    if (s->skip_tensor && !strcmp(s->skip_tensor, name)) return 0;
    if (s->bad_tensor && !strcmp(s->bad_tensor, name)) ne1 += 8;
    int64_t ne[2] = {ne0, ne1 ? ne1 : 1};
    uint32_t nd = ne1 ? 2 : 1;
    if (s->q81_tensor && !strcmp(s->q81_tensor, name))
        return gguf_writer_add_tensor(w, name, QT_Q8_1, nd, ne, g_q81,
                                      (size_t)(ne[0] * ne[1] / 32 * 36));
    return gguf_writer_add_tensor(w, name, QT_F32, nd, ne, g_data,
                                  (size_t)(ne[0] * ne[1]) * sizeof(float));
}

static void key_u32(gguf_writer *w, const spec *s, const char *key, uint32_t v) {
    if (!s->skip_key || strcmp(s->skip_key, key)) gguf_writer_set_u32(w, key, v);
}

/* Writes a model per spec to path; returns the writer's status. */
static int write_model(const spec *s, const char *path) {
    gguf_writer *w = NULL;
    int rc = gguf_writer_create(&w);
    if (rc) return rc;
    gguf_writer_set_str(w, "general.architecture", s->arch ? s->arch : "llama");
    gguf_writer_set_str(w, "general.name", "tiny test");
    key_u32(w, s, "llama.block_count", LAYERS);
    key_u32(w, s, "llama.embedding_length", EMBD);
    key_u32(w, s, "llama.feed_forward_length", FF);
    key_u32(w, s, "llama.attention.head_count", HEADS);
    if (s->kv_heads) key_u32(w, s, "llama.attention.head_count_kv", KV_HEADS);
    key_u32(w, s, "llama.context_length", 256);
    key_u32(w, s, "llama.rope.dimension_count", HD);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 50000.0f);
    if (!s->skip_key || strcmp(s->skip_key, "llama.attention.layer_norm_rms_epsilon"))
        gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", s->eps ? s->eps : 1e-6f);
    if (s->rope_scaling) {
        gguf_writer_set_str(w, "llama.rope.scaling.type", s->rope_scaling);
        gguf_writer_set_f32(w, "llama.rope.scaling.factor", 4.0f);
    }
    int kvd = (s->kv_heads ? KV_HEADS : HEADS) * HD;
    rc = add(w, s, "token_embd.weight", EMBD, VOCAB);
    if (!rc) rc = add(w, s, "output_norm.weight", EMBD, 0);
    if (!rc && s->with_output) rc = add(w, s, "output.weight", EMBD, VOCAB);
    for (int l = 0; l < LAYERS && !rc; l++) {
        struct {
            const char *n;
            int64_t a, b;
        } t[] = {{"attn_norm", EMBD, 0}, {"attn_q", EMBD, EMBD},      {"attn_k", EMBD, kvd},
                 {"attn_v", EMBD, kvd},  {"attn_output", EMBD, EMBD}, {"ffn_norm", EMBD, 0},
                 {"ffn_gate", EMBD, FF}, {"ffn_up", EMBD, FF},        {"ffn_down", FF, EMBD}};
        for (size_t i = 0; i < sizeof t / sizeof t[0] && !rc; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, t[i].n);
            rc = add(w, s, name, t[i].a, t[i].b);
        }
    }
    if (!rc) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}

static char g_path[256];

/* Writes and loads; returns the load status (the model is freed). */
static int try_load(const spec *s, model **keep) {
    int rc = write_model(s, g_path);
    CHECKF(rc == 0, "writer: %s", m40llm_last_error());
    model *m = NULL;
    rc = model_load(g_path, &m);
    if (keep)
        *keep = m;
    else
        model_free(m);
    return rc;
}

static bool says(const char *a, const char *b) {
    const char *msg = m40llm_last_error();
    bool ok = strstr(msg, a) && (!b || strstr(msg, b));
    if (!ok) fprintf(stderr, "  message was: %s\n", msg);
    return ok;
}

int main(void) {
    for (size_t i = 0; i < sizeof g_data / sizeof g_data[0]; i++)
        g_data[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    snprintf(g_path, sizeof g_path, "/tmp/m40llm_test_model_%d.gguf", (int)getpid());

    /* valid, GQA, output present */
    model *m = NULL;
    spec ok = {.with_output = true, .kv_heads = true};
    CHECKF(try_load(&ok, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        const model_config *c = &m->cfg;
        CHECK(!strcmp(c->arch, "llama") && !strcmp(c->name, "tiny test"));
        CHECK(c->n_layer == LAYERS && c->n_embd == EMBD && c->n_ff == FF);
        CHECK(c->n_head == HEADS && c->n_head_kv == KV_HEADS && c->head_dim == HD);
        CHECK(c->n_rot == HD && c->n_vocab == VOCAB && c->n_ctx_train == 256);
        CHECK(c->rope_freq_base == 50000.0f && c->rope_freq_scale == 1.0f);
        CHECK(c->rms_eps == 1e-6f);
        CHECK(!m->tied_output && m->output.data != m->tok_embd.data);
        CHECK(!strcmp(m->layers[1].w_down.name, "blk.1.ffn_down.weight"));
        CHECK(m->layers[1].w_down.ne[0] == FF && m->layers[1].w_down.ne[1] == EMBD);
        CHECK(m->layers[0].wk.row_bytes == EMBD * sizeof(float));
        uint64_t bytes =
            (uint64_t)(2 * VOCAB * EMBD + EMBD) * 4 +
            LAYERS *
                (uint64_t)(2 * EMBD + 2 * EMBD * EMBD + 2 * EMBD * KV_HEADS * HD + 3 * EMBD * FF) *
                4;
        CHECK(m->weight_bytes == bytes);
        model_free(m);
    }

    /* tied output; head_count_kv absent = n_head; linear rope scaling */
    spec tied = {.with_output = false, .kv_heads = false, .rope_scaling = "linear"};
    m = NULL;
    CHECKF(try_load(&tied, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(m->tied_output && m->output.data == m->tok_embd.data);
        CHECK(m->cfg.n_head_kv == HEADS);
        CHECK(m->cfg.rope_freq_scale == 0.25f);
        model_free(m);
    }
    spec none = {.with_output = true, .kv_heads = true, .rope_scaling = "none"};
    m = NULL;
    CHECK(try_load(&none, &m) == 0 && m && m->cfg.rope_freq_scale == 1.0f);
    model_free(m);

    spec yarn = {.with_output = true, .kv_heads = true, .rope_scaling = "yarn"};
    CHECK(try_load(&yarn, NULL) == M40LLM_ERR_UNSUPPORTED);
    CHECK(says("yarn", NULL));

    spec inf_eps = {.with_output = true, .kv_heads = true, .eps = INFINITY};
    CHECK(try_load(&inf_eps, NULL) == M40LLM_ERR_FORMAT);
    CHECK(says("layer_norm_rms_epsilon", "finite"));

    spec arch = {.arch = "gpt2", .with_output = true, .kv_heads = true};
    CHECK(try_load(&arch, NULL) == M40LLM_ERR_UNSUPPORTED);
    CHECK(says("gpt2", "architecture"));

    spec miss_t = {.with_output = true, .kv_heads = true, .skip_tensor = "blk.1.ffn_up.weight"};
    CHECK(try_load(&miss_t, NULL) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("blk.1.ffn_up.weight", "missing"));
    CHECK(says(g_path, NULL)); /* the file is named too */

    spec miss_n = {.with_output = true, .kv_heads = true, .skip_tensor = "output_norm.weight"};
    CHECK(try_load(&miss_n, NULL) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("output_norm.weight", NULL));

    spec shape = {.with_output = true, .kv_heads = true, .bad_tensor = "blk.0.attn_k.weight"};
    CHECK(try_load(&shape, NULL) == M40LLM_ERR_SHAPE);
    CHECK(says("blk.0.attn_k.weight", "expected shape [32, 16], found [32, 24]"));

    spec shape_out = {.with_output = true, .kv_heads = true, .bad_tensor = "output.weight"};
    CHECK(try_load(&shape_out, NULL) == M40LLM_ERR_SHAPE);
    CHECK(says("output.weight", "[32, 40]"));

    spec q81 = {.with_output = true, .kv_heads = true, .q81_tensor = "blk.1.ffn_gate.weight"};
    CHECK(try_load(&q81, NULL) == M40LLM_ERR_UNSUPPORTED);
    CHECK(says("blk.1.ffn_gate.weight", "Q8_1"));

    spec key = {.with_output = true, .kv_heads = true, .skip_key = "llama.embedding_length"};
    CHECK(try_load(&key, NULL) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("llama.embedding_length", NULL));

    spec eps = {.with_output = true,
                .kv_heads = true,
                .skip_key = "llama.attention.layer_norm_rms_epsilon"};
    CHECK(try_load(&eps, NULL) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("layer_norm_rms_epsilon", NULL));

    /* a missing file is an I/O error naming the path */
    m = NULL;
    CHECK(model_load("/nonexistent/model.gguf", &m) != 0 && m == NULL);
    CHECK(says("/nonexistent/model.gguf", NULL));

    unlink(g_path);
    return check_summary("test_model");
}
