/* The architecture layer on small GGUFs written here: each architecture's
 * description (switches, per-layer windows and RoPE bases, fused tensors as
 * views), the feature line `show` prints, and the errors of untrusted input
 * (unknown architecture, missing tensors and keys, bad types and values,
 * LongRoPE's keys and tensors), the mixture-of-experts ones (qwen3moe, llama
 * files with experts read as mixtral) and what they refuse, then a CPU
 * forward of each with finite logits. The numerics are checked against transformers by
 * test_arch_reference (tests/fixtures/arch). */
#include <math.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "err.h"
#include "gguf.h"
#include "model.h"
#include "model_rope.h"
#include "quant.h"

enum { E = 32, H = 4, HKV = 2, HD = E / H, FF = 64, V = 48 };

typedef struct spec {
    const char *arch;
    int layers;
    bool bias, qk_norm, post_norms, fused;
    const char *drop;  /* a tensor not written */
    const char *extra; /* one more tensor of [ne0] F32 elements */
    int64_t extra_ne0;
    float extra_value;     /* its elements */
    const char *rope_type; /* <arch>.rope.scaling.type */
    int window, pattern;   /* <arch>.attention.sliding_window / _pattern; 0: absent */
    float softcap;         /* <arch>.attn_logit_softcapping; 0: absent */
    bool softcap_str;      /* that key as a string */
    int key_length;        /* <arch>.attention.key_length; 0: absent */
    int experts, used;     /* <arch>.expert_count / expert_used_count; 0: absent */
    int ff_exp;            /* <arch>.expert_feed_forward_length; 0: absent */
    int gating;            /* <arch>.expert_gating_func; 0: absent */
    int longrope;          /* LongRoPE: original context 16 and factor tensors (long 2, short 1.5);
                            * 2: without the short ones, 3: a long factor 0 */
    bool no_norm;          /* <arch>.expert_weights_norm = false */
    int shared1;           /* <arch>.expert_shared_count + 1; 0: absent */
    int moe_x;             /* > 0: router and expert tensors of that many experts, no dense FFN */
} spec;

static float g_data[V * FF * 3];
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

static int add_layer_tensor3(gguf_writer *w, const spec *s, int l, const char *n, int64_t a,
                             int64_t b, int64_t c) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", l, n);
    if (s->drop && !strcmp(s->drop, name)) return 0;
    return add3(w, name, a, b, c);
}

static int add_layer_tensor(gguf_writer *w, const spec *s, int l, const char *n, int64_t a,
                            int64_t b) {
    return add_layer_tensor3(w, s, l, n, a, b, 0);
}

static int write_model(const spec *s) {
    gguf_writer *w = NULL;
    int rc = gguf_writer_create(&w);
    if (rc) return rc;
    const char *a = s->arch;
    char k[128];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a, suffix), k)
    gguf_writer_set_str(w, "general.architecture", a);
    gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)s->layers);
    gguf_writer_set_u32(w, KEY("embedding_length"), E);
    gguf_writer_set_u32(w, KEY("feed_forward_length"), FF);
    gguf_writer_set_u32(w, KEY("attention.head_count"), H);
    gguf_writer_set_u32(w, KEY("attention.head_count_kv"), HKV);
    gguf_writer_set_u32(w, KEY("context_length"), 256);
    gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    gguf_writer_set_f32(w, KEY("rope.freq_base"), 500000.0f);
    if (s->key_length) gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)s->key_length);
    if (s->rope_type) gguf_writer_set_str(w, KEY("rope.scaling.type"), s->rope_type);
    if (s->window) gguf_writer_set_u32(w, KEY("attention.sliding_window"), (uint32_t)s->window);
    if (s->pattern)
        gguf_writer_set_u32(w, KEY("attention.sliding_window_pattern"), (uint32_t)s->pattern);
    if (s->softcap_str) gguf_writer_set_str(w, KEY("attn_logit_softcapping"), "50");
    if (s->softcap) gguf_writer_set_f32(w, KEY("attn_logit_softcapping"), s->softcap);
    if (s->experts) gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)s->experts);
    if (s->used) gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)s->used);
    if (s->ff_exp) gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)s->ff_exp);
    if (s->gating) gguf_writer_set_u32(w, KEY("expert_gating_func"), (uint32_t)s->gating);
    if (s->no_norm) gguf_writer_set_bool(w, KEY("expert_weights_norm"), false);
    if (s->shared1) gguf_writer_set_u32(w, KEY("expert_shared_count"), (uint32_t)s->shared1 - 1);
#undef KEY
    const int64_t hd = s->key_length ? s->key_length : E / H, Q = H * hd, KV = HKV * hd;
    rc = add(w, "token_embd.weight", E, V);
    if (!rc) rc = add(w, "output_norm.weight", E, 0);
    /* an impossible head size is refused from the metadata alone */
    for (int l = 0; l < s->layers && !rc && Q <= 16 * E; l++) {
        rc = add_layer_tensor(w, s, l, "attn_norm.weight", E, 0);
        if (s->fused) {
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_qkv.weight", E, Q + 2 * KV);
            if (!rc) rc = add_layer_tensor(w, s, l, "ffn_up.weight", E, 2 * FF);
        } else {
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_q.weight", E, Q);
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_k.weight", E, KV);
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_v.weight", E, KV);
        }
        if (!rc) rc = add_layer_tensor(w, s, l, "attn_output.weight", Q, E);
        if (!rc) rc = add_layer_tensor(w, s, l, "ffn_norm.weight", E, 0);
        if (s->moe_x) {
            const int64_t X = s->moe_x, F = s->ff_exp ? s->ff_exp : FF;
            if (!rc) rc = add_layer_tensor(w, s, l, "ffn_gate_inp.weight", E, X);
            if (!rc) rc = add_layer_tensor3(w, s, l, "ffn_gate_exps.weight", E, F, X);
            if (!rc) rc = add_layer_tensor3(w, s, l, "ffn_up_exps.weight", E, F, X);
            if (!rc) rc = add_layer_tensor3(w, s, l, "ffn_down_exps.weight", F, E, X);
        } else {
            if (!s->fused && !rc) rc = add_layer_tensor(w, s, l, "ffn_gate.weight", E, FF);
            if (!s->fused && !rc) rc = add_layer_tensor(w, s, l, "ffn_up.weight", E, FF);
            if (!rc) rc = add_layer_tensor(w, s, l, "ffn_down.weight", FF, E);
        }
        if (s->bias) {
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_q.bias", Q, 0);
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_k.bias", KV, 0);
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_v.bias", KV, 0);
        }
        if (s->qk_norm) {
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_q_norm.weight", hd, 0);
            if (!rc) rc = add_layer_tensor(w, s, l, "attn_k_norm.weight", hd, 0);
        }
        if (s->post_norms) {
            if (!rc) rc = add_layer_tensor(w, s, l, "post_attention_norm.weight", E, 0);
            if (!rc) rc = add_layer_tensor(w, s, l, "post_ffw_norm.weight", E, 0);
        }
    }
    static float lfac[HD / 2], sfac[HD / 2];
    if (!rc && s->longrope) {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.original_context_length", s->arch);
        gguf_writer_set_u32(w, key, 16);
        int64_t ne[1] = {HD / 2};
        for (int i = 0; i < HD / 2; i++) lfac[i] = s->longrope == 3 && i == 1 ? 0.0f : 2.0f;
        for (int i = 0; i < HD / 2; i++) sfac[i] = 1.5f;
        rc =
            gguf_writer_add_tensor(w, "rope_factors_long.weight", QT_F32, 1, ne, lfac, sizeof lfac);
        if (!rc && s->longrope != 2)
            rc = gguf_writer_add_tensor(w, "rope_factors_short.weight", QT_F32, 1, ne, sfac,
                                        sizeof sfac);
    }
    static float extra[256];
    if (!rc && s->extra) {
        for (int i = 0; i < 256; i++) extra[i] = s->extra_value;
        int64_t ne[1] = {s->extra_ne0};
        rc = gguf_writer_add_tensor(w, s->extra, QT_F32, 1, ne, extra,
                                    (size_t)s->extra_ne0 * sizeof(float));
    }
    snprintf(g_path, sizeof g_path, "/tmp/m40llm_test_arch_%d.gguf", (int)getpid());
    if (!rc) rc = gguf_writer_write(w, g_path);
    gguf_writer_free(w);
    return rc;
}

/* Loads the spec's model: status, and *out on success. */
static int load(const spec *s, model **out) {
    *out = NULL;
    int rc = write_model(s);
    CHECKF(rc == 0, "writing: %s", m40llm_last_error());
    if (rc) return -1000;
    rc = model_load(g_path, out);
    remove(g_path);
    return rc;
}

static bool says(const char *a, const char *b) {
    const char *e = m40llm_last_error();
    bool ok = strstr(e, a) && (!b || strstr(e, b));
    if (!ok) fprintf(stderr, "  message was: %s\n", e);
    return ok;
}

/* A short CPU forward: every logit finite. */
static void forward_ok(const model *m, const char *what) {
    backend_params p = {
        .n_ctx = 32, .n_seq_max = 1, .n_batch_max = 24, .n_threads = 2, .kv_type = BACKEND_KV_F32};
    backend *b = NULL;
    int rc = backend_cpu_create(m, &p, &b);
    CHECKF(rc == 0, "%s: %s", what, m40llm_last_error());
    if (rc) return;
    static float lg[24 * V];
    backend_entry e[24];
    for (int i = 0; i < 24; i++) e[i] = (backend_entry){0, i, (i * 7 + 1) % V, true};
    rc = backend_forward(b, e, 24, lg);
    CHECKF(rc == 0, "%s: forward: %s", what, m40llm_last_error());
    int bad = 0;
    for (int i = 0; i < 24 * V; i++) bad += !isfinite(lg[i]);
    CHECKF(bad == 0, "%s: %d non-finite logits", what, bad);
    backend_destroy(b);
}

static void test_descriptions(void) {
    model *m = NULL;
    char d[384];
    /* qwen2: biases required, NeoX */
    spec q2 = {.arch = "qwen2", .layers = 2, .bias = true};
    CHECKF(load(&q2, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(m->cfg.rope_kind == MODEL_ROPE_NEOX && model_has(&m->layers[1].bv));
        CHECK(model_features(m) == (MODEL_FEAT_QKV_BIAS | MODEL_FEAT_ROPE_NEOX));
        forward_ok(m, "qwen2");
        model_free(m);
    }
    /* qwen3: q/k norms over a head size of its own (attention wider than E) */
    /* phi3 LongRoPE: the long factors beyond the original context of 16,
     * the short ones within it; the attention factor by transformers'
     * default, sqrt(1 + ln(256 / 16) / ln 16) */
    spec lr = {.arch = "phi3", .layers = 2, .fused = true, .longrope = 1};
    CHECKF(load(&lr, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(m->cfg.rope_scaling == MODEL_ROPE_SCALING_LONGROPE && m->layers[1].rope_factors);
        CHECK(m->cfg.rope_orig_ctx == 16 && fabsf(m->cfg.rope_attn_factor - sqrtf(2.0f)) < 1e-6f);
        CHECK(model_rope_factors(m, 17) == &m->rope_freqs &&
              model_rope_factors(m, 16) == &m->rope_freqs_short);
        CHECK(model_rope_mscale(&m->cfg) == m->cfg.rope_attn_factor);
        model_describe_features(m, d, sizeof d);
        CHECKF(strstr(d, "LongRoPE from 16 (attention factor 1.414)"), "%s", d);
        forward_ok(m, "phi3 LongRoPE");
        model_free(m);
    }
    spec q3 = {.arch = "qwen3", .layers = 2, .qk_norm = true, .key_length = 16};
    CHECKF(load(&q3, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(m->cfg.head_dim == 16 && m->layers[0].wq.ne[1] == H * 16);
        CHECK(model_features(m) & MODEL_FEAT_WIDE_ATTN);
        forward_ok(m, "qwen3");
        model_free(m);
    }
    /* gemma3: five of six layers windowed with base 10000, the sixth global */
    spec g3 = {.arch = "gemma3", .layers = 6, .qk_norm = true, .post_norms = true, .window = 4};
    CHECKF(load(&g3, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(m->cfg.n_swa_layers == 5 && m->layers[5].n_swa == 0 && m->layers[0].n_swa == 4);
        CHECK(m->layers[5].rope_base == 500000.0f && m->layers[2].rope_base == 10000.0f);
        CHECK(m->cfg.act == MODEL_ACT_GELU_TANH && fabsf(m->cfg.embd_scale - sqrtf(E)) < 1e-6f);
        model_describe_features(m, d, sizeof d);
        CHECKF(strstr(d, "sliding window 4 on 5 of 6 layers") &&
                   strstr(d, "RoPE base 500000 (global) / 10000 (local)"),
               "%s", d);
        forward_ok(m, "gemma3");
        model_free(m);
    }
    /* a stated pattern */
    spec g3p = {.arch = "gemma3",
                .layers = 3,
                .qk_norm = true,
                .post_norms = true,
                .window = 4,
                .pattern = 3};
    CHECKF(load(&g3p, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(m->cfg.n_swa_layers == 2 && m->layers[2].n_swa == 0);
        model_free(m);
    }
    /* gemma2: every other layer, soft-capping */
    spec g2 = {.arch = "gemma2", .layers = 3, .post_norms = true, .window = 4, .softcap = 50};
    CHECKF(load(&g2, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(m->layers[0].n_swa == 4 && m->layers[1].n_swa == 0 && m->layers[2].n_swa == 4);
        CHECK(m->cfg.attn_softcap == 50.0f && m->cfg.final_softcap == 0.0f);
        model_describe_features(m, d, sizeof d);
        CHECKF(strstr(d, "sliding window 4 on 2 of 3 layers, soft-cap 50/0"), "%s", d);
        forward_ok(m, "gemma2");
        model_free(m);
    }
    /* phi3: fused tensors as views of the right rows */
    spec p3 = {.arch = "phi3", .layers = 2, .fused = true, .window = 8};
    CHECKF(load(&p3, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        const model_layer *L = &m->layers[1];
        CHECK(L->wq.ne[1] == E && L->wk.ne[1] == HKV * HD && L->wv.ne[1] == HKV * HD);
        CHECK((const char *)L->wk.data == (const char *)L->wq.data + (size_t)E * L->wq.row_bytes);
        CHECK((const char *)L->w_up.data ==
              (const char *)L->w_gate.data + (size_t)FF * L->w_gate.row_bytes);
        CHECK(L->w_gate.ne[1] == FF && strstr(L->w_up.name, "ffn_up.weight[up]"));
        CHECK(m->cfg.n_swa_layers == 2);
        forward_ok(m, "phi3");
        model_free(m);
    }
    /* llama with llama3 factors: taken, every layer uses them */
    spec l3 = {.arch = "llama",
               .layers = 2,
               .extra = "rope_freqs.weight",
               .extra_ne0 = HD / 2,
               .extra_value = 2.0f};
    CHECKF(load(&l3, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(m->cfg.rope_scaling == MODEL_ROPE_SCALING_FACTORS && m->layers[1].rope_factors);
        CHECK(model_features(m) == MODEL_FEAT_ROPE_FACTORS);
        forward_ok(m, "llama3");
        model_free(m);
    }
}

/* qwen3moe, and a llama file with experts (Mixtral), as descriptions. */
static void test_moe(void) {
    model *m = NULL;
    char d[384];
    spec q = {.arch = "qwen3moe",
              .layers = 2,
              .qk_norm = true,
              .key_length = 16,
              .experts = 4,
              .used = 2,
              .ff_exp = 32,
              .moe_x = 4};
    CHECKF(load(&q, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        const model_config *c = &m->cfg;
        const model_layer *L = &m->layers[1];
        CHECK(c->n_expert == 4 && c->n_expert_used == 2 && c->n_ff_exp == 32 && c->expert_norm);
        CHECK(c->rope_kind == MODEL_ROPE_NEOX && model_layer_moe(L) && !model_has(&L->w_gate));
        CHECK(L->router.ne[0] == E && L->router.ne[1] == 4 && L->gate_exps.ne[1] == 32 &&
              L->gate_exps.ne[2] == 4 && L->down_exps.ne[0] == 32 && L->down_exps.ne[1] == E);
        CHECK(L->up_exps.expert_bytes == (size_t)E * 32 * sizeof(float));
        CHECK(model_features(m) ==
              (MODEL_FEAT_MOE | MODEL_FEAT_QK_NORM | MODEL_FEAT_ROPE_NEOX | MODEL_FEAT_WIDE_ATTN));
        CHECK(!strcmp(model_feature_name(MODEL_FEAT_MOE), "mixture of experts"));
        model_describe_features(m, d, sizeof d);
        CHECKF(strstr(d, "mixture of experts: 2 of 4 per token (weights renormalised), expert "
                         "FFN 32"),
               "%s", d);
        /* 2 of 4 experts: the expert tensors count half */
        const uint64_t exps = 2 * 3 * (uint64_t)E * 32 * 4 * sizeof(float);
        CHECK(model_active_bytes(m) == m->weight_bytes - exps / 2);
        forward_ok(m, "qwen3moe");
        model_free(m);
    }
    spec qn = q;
    qn.no_norm = true;
    qn.shared1 = 1; /* an explicit count of 0 shared experts, as llama.cpp's converters write */
    CHECKF(load(&qn, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(!m->cfg.expert_norm);
        model_free(m);
    }
    /* llama with experts: Mixtral; the expert width is feed_forward_length */
    spec mx = {.arch = "llama", .layers = 2, .experts = 4, .used = 2, .moe_x = 4, .window = 8};
    CHECKF(load(&mx, &m) == 0, "%s", m40llm_last_error());
    if (m) {
        CHECK(!strcmp(m->cfg.arch, "llama") && m->cfg.n_ff_exp == FF && m->cfg.expert_norm);
        CHECK(model_features(m) == (MODEL_FEAT_MOE | MODEL_FEAT_SWA));
        CHECK(m->cfg.n_swa_layers == 2);
        forward_ok(m, "mixtral");
        model_free(m);
    }
}

static void test_moe_errors(void) {
    model *m = NULL;
    spec q2 = {.arch = "qwen2", .layers = 1, .bias = true, .experts = 4, .used = 2};
    CHECK(load(&q2, &m) == M40LLM_ERR_UNSUPPORTED && !m);
    CHECK(says("mixture-of-experts models of architecture qwen2", "qwen2.expert_count = 4"));
    spec nokeys = {.arch = "qwen3moe", .layers = 1, .qk_norm = true, .moe_x = 4};
    CHECK(load(&nokeys, &m) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("qwen3moe.expert_count is missing", NULL));
    spec sig = {.arch = "qwen3moe",
                .layers = 1,
                .qk_norm = true,
                .experts = 4,
                .used = 2,
                .gating = 2,
                .moe_x = 4};
    CHECK(load(&sig, &m) == M40LLM_ERR_UNSUPPORTED);
    CHECK(says("qwen3moe.expert_gating_func 2", "softmax"));
    spec shexp = sig;
    shexp.gating = 0;
    shexp.extra = "blk.0.ffn_up_shexp.weight";
    shexp.extra_ne0 = E;
    CHECK(load(&shexp, &m) == M40LLM_ERR_UNSUPPORTED);
    CHECK(says("shared expert", NULL));
    spec shc = sig;
    shc.gating = 0;
    shc.shared1 = 2; /* one shared expert */
    CHECK(load(&shc, &m) == M40LLM_ERR_UNSUPPORTED);
    CHECK(says("qwen3moe.expert_shared_count 1", "shared experts"));
    /* Mixtral always renormalises */
    spec mxn = {.arch = "llama", .layers = 1, .experts = 4, .used = 2, .moe_x = 4, .no_norm = true};
    CHECK(load(&mxn, &m) == M40LLM_ERR_UNSUPPORTED);
    CHECK(says("llama.expert_weights_norm false", NULL));
    spec drop = sig;
    drop.gating = 0;
    drop.drop = "blk.0.ffn_up_exps.weight";
    CHECK(load(&drop, &m) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("blk.0.ffn_up_exps.weight is missing", NULL));
    spec width = sig;
    width.gating = 0;
    width.ff_exp = 32;
    width.extra = NULL;
    CHECK(load(&width, &m) == 0);
    model_free(m);
    m = NULL;
    /* llama.cpp's early Mixtral files: one tensor per expert */
    spec legacy = {.arch = "llama",
                   .layers = 1,
                   .experts = 4,
                   .used = 2,
                   .extra = "blk.0.ffn_gate.0.weight",
                   .extra_ne0 = E};
    CHECK(load(&legacy, &m) == M40LLM_ERR_UNSUPPORTED);
    CHECK(says("one tensor per expert", NULL));
    /* a router of the wrong width */
    spec narrow = {.arch = "llama", .layers = 1, .experts = 8, .used = 2, .moe_x = 4};
    CHECK(load(&narrow, &m) == M40LLM_ERR_SHAPE);
    CHECK(says("blk.0.ffn_gate_inp.weight: expected shape [32, 8], found [32, 4]", NULL));
}

static void test_errors(void) {
    model *m = NULL;
    spec unk = {.arch = "mamba", .layers = 1};
    CHECK(load(&unk, &m) == M40LLM_ERR_UNSUPPORTED && !m);
    CHECK(says("unsupported architecture 'mamba'", "qwen2, qwen3, gemma2, gemma3, phi3"));
    spec nob = {.arch = "qwen2", .layers = 2, .bias = true, .drop = "blk.1.attn_k.bias"};
    CHECK(load(&nob, &m) == M40LLM_ERR_NOT_FOUND && !m);
    CHECK(says("blk.1.attn_k.bias is missing", "qwen2.block_count"));
    spec noqk = {.arch = "gemma3", .layers = 1, .post_norms = true};
    CHECK(load(&noqk, &m) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("blk.0.attn_q_norm.weight is missing", NULL));
    spec part = {.arch = "llama", .layers = 1, .extra = "blk.0.attn_q.bias", .extra_ne0 = E};
    CHECK(load(&part, &m) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("some of attn_q/k/v.bias", NULL));
    /* YaRN needs its original context (and a factor); unknown types are named */
    spec yarn = {.arch = "qwen2", .layers = 1, .bias = true, .rope_type = "yarn"};
    CHECK(load(&yarn, &m) == M40LLM_ERR_FORMAT);
    CHECK(says("YaRN needs a factor > 1", NULL));
    /* LongRoPE: its original context is required, both factor sets, each
     * factor positive */
    spec lrope = {.arch = "qwen2", .layers = 1, .bias = true, .rope_type = "longrope"};
    CHECK(load(&lrope, &m) != M40LLM_OK);
    CHECK(says("qwen2.rope.scaling.original_context_length", NULL));
    spec lr = {.arch = "phi3",
               .layers = 1,
               .fused = true,
               .extra = "rope_factors_long.weight",
               .extra_ne0 = HD / 2,
               .extra_value = 1.0f};
    CHECK(load(&lr, &m) != M40LLM_OK);
    CHECK(says("phi3.rope.scaling.original_context_length", NULL));
    spec lr2 = {.arch = "phi3", .layers = 1, .fused = true, .longrope = 2};
    CHECK(load(&lr2, &m) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("rope_factors_short.weight", NULL));
    spec lr3 = {.arch = "phi3", .layers = 1, .fused = true, .longrope = 3};
    CHECK(load(&lr3, &m) == M40LLM_ERR_FORMAT);
    CHECK(says("rope_factors_long.weight", "element 1"));
    spec neg = {.arch = "gemma2", .layers = 1, .post_norms = true, .softcap = -1.0f};
    CHECK(load(&neg, &m) == M40LLM_ERR_FORMAT);
    CHECK(says("gemma2.attn_logit_softcapping", "positive"));
    spec str = {.arch = "gemma2", .layers = 1, .post_norms = true, .softcap_str = true};
    CHECK(load(&str, &m) == M40LLM_ERR_TYPE);
    CHECK(says("gemma2.attn_logit_softcapping: expected a float", NULL));
    spec zero = {.arch = "llama",
                 .layers = 1,
                 .extra = "rope_freqs.weight",
                 .extra_ne0 = HD / 2,
                 .extra_value = 0.0f};
    CHECK(load(&zero, &m) == M40LLM_ERR_FORMAT);
    CHECK(says("rope_freqs.weight: element 0", NULL));
    spec wide = {.arch = "qwen3", .layers = 1, .qk_norm = true, .key_length = 1 << 29};
    CHECK(load(&wide, &m) == M40LLM_ERR_FORMAT);
    CHECK(says("attention too wide", NULL));
    spec fused_missing = {
        .arch = "phi3", .layers = 1, .fused = true, .drop = "blk.0.attn_qkv.weight"};
    CHECK(load(&fused_missing, &m) == M40LLM_ERR_NOT_FOUND);
    CHECK(says("blk.0.attn_qkv.weight is missing", NULL));
    model_free(m);
}

int main(void) {
    for (size_t i = 0; i < sizeof g_data / sizeof g_data[0]; i++)
        g_data[i] = 0.05f * (float)sin((double)i * 0.7);
    test_descriptions();
    test_errors();
    test_moe();
    test_moe_errors();
    return check_summary("test_arch");
}
