/* Synthetic models: tiny models of every recipe are written, read back with
 * the GGUF reader and checked (metadata, vocabulary, tensor types and shapes,
 * weight statistics) and loaded by the model loader and run by the CPU
 * backend; the Q4_K_M layer choice on the Mistral-7B shape; mixture-of-
 * experts files (mixtral, qwen3moe: keys, 3-D expert tensors, the F32
 * router) that load and run, and the Qwen3-30B-A3B preset's shape; the
 * file is the same for any thread count; bad configurations fail cleanly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "backend.h"
#include "gguf.h"
#include "model.h"
#include "m40llm.h"
#include "quant.h"
#include "synth.h"

static char tmpdir[256];

static const char *tmp_path(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

static uint32_t get_u32(gguf_file *g, const char *key) {
    uint32_t v = 0xFFFFFFFFu;
    CHECKF(gguf_get_u32(g, key, &v) == M40LLM_OK, "key %s", key);
    return v;
}

static bool str_is(gguf_file *g, const char *key, const char *want) {
    gguf_str s;
    return gguf_get_str(g, key, &s) == M40LLM_OK && gguf_str_eq(s, want);
}

static int cmp_str(const void *a, const void *b) {
    const gguf_str *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->data, y->data, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void check_vocab(gguf_file *g, int n_vocab) {
    const gguf_value *tok = NULL, *ty = NULL, *sc = NULL;
    CHECK(gguf_get_arr(g, "tokenizer.ggml.tokens", &tok) == M40LLM_OK);
    CHECK(gguf_get_arr(g, "tokenizer.ggml.token_type", &ty) == M40LLM_OK);
    CHECK(gguf_get_arr(g, "tokenizer.ggml.scores", &sc) == M40LLM_OK);
    if (!tok || !ty || !sc) return;
    CHECK(tok->arr.n == (uint64_t)n_vocab && ty->arr.n == (uint64_t)n_vocab &&
          sc->arr.n == (uint64_t)n_vocab);
    CHECK(ty->arr.type == GGUF_VT_INT32 && sc->arr.type == GGUF_VT_FLOAT32);
    gguf_str s;
    int64_t t;
    CHECK(gguf_arr_str(tok, 0, &s) == 0 && gguf_str_eq(s, "<unk>"));
    CHECK(gguf_arr_str(tok, 1, &s) == 0 && gguf_str_eq(s, "<s>"));
    CHECK(gguf_arr_str(tok, 2, &s) == 0 && gguf_str_eq(s, "</s>"));
    CHECK(gguf_arr_str(tok, 3, &s) == 0 && gguf_str_eq(s, "<0x00>"));
    CHECK(gguf_arr_str(tok, 258, &s) == 0 && gguf_str_eq(s, "<0xFF>"));
    CHECK(gguf_arr_str(tok, 259, &s) == 0 && gguf_str_eq(s, "\xE2\x96\x81"));
    CHECK(gguf_arr_i64(ty, 0, &t) == 0 && t == 2);
    CHECK(gguf_arr_i64(ty, 1, &t) == 0 && t == 3);
    CHECK(gguf_arr_i64(ty, 100, &t) == 0 && t == 6);
    CHECK(gguf_arr_i64(ty, (uint64_t)n_vocab - 1, &t) == 0 && t == 1);
    /* pieces are unique */
    gguf_str *all = malloc((size_t)n_vocab * sizeof *all);
    for (int i = 0; i < n_vocab; i++) gguf_arr_str(tok, (uint64_t)i, &all[i]);
    qsort(all, (size_t)n_vocab, sizeof *all, cmp_str);
    int dups = 0;
    for (int i = 1; i < n_vocab; i++) dups += cmp_str(&all[i - 1], &all[i]) == 0;
    CHECKF(dups == 0, "%d duplicate pieces", dups);
    free(all);
}

/* Standard deviation of a dequantized tensor. */
static double tensor_std(const gguf_tensor *t) {
    int64_t n = t->ne[0] * t->ne[1];
    float *f = malloc((size_t)n * sizeof *f);
    size_t rb = quant_row_size(t->type, t->ne[0]);
    for (int64_t r = 0; r < t->ne[1]; r++)
        CHECK(quant_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, f + r * t->ne[0],
                                   t->ne[0]) == M40LLM_OK);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) s += f[i], s2 += (double)f[i] * f[i];
    free(f);
    double m = s / n;
    return sqrt(s2 / n - m * m);
}

static void check_model(const synth_config *c, const char *path) {
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g);
    CHECKF(rc == M40LLM_OK, "%s: %s", path, m40llm_last_error());
    if (rc) return;
    CHECK(str_is(g, "general.architecture", "llama"));
    CHECK(str_is(g, "tokenizer.ggml.model", "llama"));
    CHECK(get_u32(g, "llama.block_count") == (uint32_t)c->n_layer);
    CHECK(get_u32(g, "llama.embedding_length") == (uint32_t)c->n_embd);
    CHECK(get_u32(g, "llama.feed_forward_length") == (uint32_t)c->n_ff);
    CHECK(get_u32(g, "llama.attention.head_count") == (uint32_t)c->n_head);
    CHECK(get_u32(g, "llama.attention.head_count_kv") == (uint32_t)c->n_head_kv);
    CHECK(get_u32(g, "llama.rope.dimension_count") == (uint32_t)(c->n_embd / c->n_head));
    CHECK(get_u32(g, "llama.context_length") == (uint32_t)c->n_ctx);
    CHECK(get_u32(g, "llama.vocab_size") == (uint32_t)c->n_vocab);
    CHECK(get_u32(g, "general.file_type") == (uint32_t)synth_file_type(c->type));
    CHECK(get_u32(g, "tokenizer.ggml.bos_token_id") == 1);
    CHECK(get_u32(g, "tokenizer.ggml.eos_token_id") == 2);
    float f = 0;
    CHECK(gguf_get_f32(g, "llama.rope.freq_base", &f) == 0 && f == c->rope_base);
    CHECK(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f) == 0 && f == c->rms_eps);
    bool b = false;
    CHECK(gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == 0 && b);
    check_vocab(g, c->n_vocab);

    int64_t want_tensors = 9LL * c->n_layer + (c->tied ? 2 : 3);
    CHECKF(gguf_n_tensors(g) == want_tensors, "%s: %lld tensors", c->type,
           (long long)gguf_n_tensors(g));
    CHECK((gguf_find_tensor(g, "output.weight") == NULL) == c->tied);
    const int64_t kv = (int64_t)c->n_embd / c->n_head * c->n_head_kv;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        char name[80];
        gguf_str_copy(t->name, name, sizeof name);
        const char *kind = name;
        int layer = -1;
        if (!strncmp(name, "blk.", 4)) {
            layer = atoi(name + 4);
            kind = strchr(name + 4, '.') + 1;
        }
        if (strstr(kind, "norm")) {
            CHECKF(t->type == QT_F32 && t->n_dims == 1 && t->ne[0] == c->n_embd, "%s", name);
            const float *w = t->data;
            CHECK(w[0] == 1.0f && w[t->ne[0] - 1] == 1.0f);
            continue;
        }
        int want = -1;
        CHECK(synth_tensor_type(c, kind, layer, t->ne[0], &want) == M40LLM_OK);
        CHECKF(t->type == want, "%s %s: type %d, want %d", c->type, name, t->type, want);
        int64_t ne0 = c->n_embd, ne1 = c->n_embd;
        if (!strcmp(kind, "token_embd.weight") || !strcmp(kind, "output.weight")) ne1 = c->n_vocab;
        if (!strcmp(kind, "attn_k.weight") || !strcmp(kind, "attn_v.weight")) ne1 = kv;
        if (!strcmp(kind, "ffn_gate.weight") || !strcmp(kind, "ffn_up.weight")) ne1 = c->n_ff;
        if (!strcmp(kind, "ffn_down.weight")) ne0 = c->n_ff;
        CHECKF(t->n_dims == 2 && t->ne[0] == ne0 && t->ne[1] == ne1, "%s: shape %lld x %lld", name,
               (long long)t->ne[0], (long long)t->ne[1]);
    }
    const gguf_tensor *up = gguf_find_tensor(g, "blk.0.ffn_up.weight");
    CHECK(up != NULL);
    if (up) {
        double sd = tensor_std(up);
        CHECKF(fabs(sd - c->std) < 0.12 * c->std, "%s: std %.5f, asked %.5f", c->type, sd,
               (double)c->std);
    }
    gguf_close(g);
}

/* The model loader accepts the file and the CPU backend runs it. */
static void check_loads_and_runs(const synth_config *c, const char *path) {
    model *m = NULL;
    int rc = model_load(path, &m);
    CHECKF(rc == M40LLM_OK, "model_load %s: %s", path, m40llm_last_error());
    if (rc) return;
    CHECK(m->cfg.n_layer == c->n_layer && m->cfg.n_embd == c->n_embd &&
          m->cfg.n_head == c->n_head && m->cfg.n_head_kv == c->n_head_kv &&
          m->cfg.n_ff == c->n_ff && m->cfg.n_vocab == c->n_vocab &&
          m->cfg.n_ctx_train == c->n_ctx && m->cfg.rope_freq_base == c->rope_base);
    CHECK(m->tied_output == c->tied);
    backend_params bp = {.n_ctx = 16, .n_seq_max = 1, .n_batch_max = 4, .n_threads = 2};
    backend *b = NULL;
    rc = backend_cpu_create(m, &bp, &b);
    CHECKF(rc == M40LLM_OK, "backend_cpu_create: %s", m40llm_last_error());
    if (!rc) {
        backend_entry e[4];
        for (int i = 0; i < 4; i++) e[i] = (backend_entry){0, i, 1 + 37 * i, i == 3};
        float *logits = malloc((size_t)c->n_vocab * sizeof *logits);
        rc = backend_forward(b, e, 4, logits);
        CHECKF(rc == M40LLM_OK, "%s forward: %s", c->type, m40llm_last_error());
        int finite = 0;
        for (int i = 0; i < c->n_vocab && !rc; i++) finite += isfinite(logits[i]) != 0;
        CHECKF(rc || finite == c->n_vocab, "%s: %d finite logits", c->type, finite);
        free(logits);
        backend_destroy(b);
    }
    model_free(m);
}

static void test_recipes(void) {
    const char *types[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1",   "q5_0",
                           "q5_1", "q2_k", "q3_k", "q4_k", "q6_k", "q4_k_m", "q5_k_m"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        for (int tied = 0; tied < 2; tied++) {
            if (tied && strcmp(types[i], "q4_k_m") && strcmp(types[i], "q8_0")) continue;
            synth_config c;
            synth_default_config(&c);
            c.type = types[i];
            c.tied = tied;
            c.n_layer = 3;
            c.n_vocab = 700;
            c.std = 0.05f;
            c.n_threads = 2;
            char path[512], name[64];
            snprintf(name, sizeof name, "m-%s%s.gguf", types[i], tied ? "-tied" : "");
            uint64_t bytes = 0;
            int rc = synth_write(&c, tmp_path(name, path, sizeof path), &bytes);
            CHECKF(rc == M40LLM_OK, "%s: %s", types[i], m40llm_last_error());
            if (rc) continue;
            CHECK(bytes > 100000);
            check_model(&c, path);
            check_loads_and_runs(&c, path);
            unlink(path);
        }
    }
}

static void test_q4_k_m_layers(void) {
    synth_config c;
    synth_default_config(&c);
    synth_preset("mistral-7b", &c);
    c.type = "q4_k_m";
    int q6_down = 0, q6_v = 0, t;
    for (int l = 0; l < 32; l++) {
        CHECK(synth_tensor_type(&c, "ffn_down.weight", l, c.n_ff, &t) == 0);
        q6_down += t == QT_Q6_K;
        bool more = l < 4 || l >= 28 || (l - 4) % 3 == 2;
        CHECKF((t == QT_Q6_K) == more, "layer %d ffn_down type %d", l, t);
        CHECK(synth_tensor_type(&c, "attn_v.weight", l, c.n_embd, &t) == 0);
        q6_v += t == QT_Q6_K;
        CHECK(synth_tensor_type(&c, "attn_q.weight", l, c.n_embd, &t) == 0 && t == QT_Q4_K);
    }
    CHECK(q6_down == 16 && q6_v == 16);
    CHECK(synth_tensor_type(&c, "output.weight", -1, c.n_embd, &t) == 0 && t == QT_Q6_K);
    CHECK(synth_tensor_type(&c, "token_embd.weight", -1, c.n_embd, &t) == 0 && t == QT_Q4_K);
    /* rows of 576 (SmolLM2) do not split into 256-blocks: llama.cpp's fallbacks */
    synth_preset("smollm2-135m", &c);
    CHECK(c.tied);
    CHECK(synth_tensor_type(&c, "token_embd.weight", -1, 576, &t) == 0 && t == QT_Q8_0);
    CHECK(synth_tensor_type(&c, "attn_q.weight", 5, 576, &t) == 0 && t == QT_Q5_0);
    CHECK(synth_tensor_type(&c, "ffn_down.weight", 4, 1536, &t) == 0 && t == QT_Q4_K);
    CHECK(synth_tensor_type(&c, "ffn_down.weight", 5, 1536, &t) == 0 && t == QT_Q6_K);
    CHECK(synth_file_type("q4_k_m") == 15 && synth_file_type("q4_0") == 2 &&
          synth_file_type("bf16") == 32 && synth_file_type("nope") == -1);
}

/* mixtral and qwen3moe files: their keys and expert tensors, loaded and run. */
static void test_moe(void) {
    static const struct {
        const char *arch, *type;
        int head_dim, ff_exp;
    } cases[] = {
        {"mixtral", "q8_0", 0, 0}, {"qwen3moe", "q4_k_m", 64, 96}, {"qwen3moe", "f16", 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        synth_config c;
        synth_default_config(&c);
        c.arch = cases[i].arch;
        c.type = cases[i].type;
        c.n_layer = 2;
        c.head_dim = cases[i].head_dim;
        c.n_expert = 6;
        c.n_expert_used = 2;
        c.n_ff_exp = cases[i].ff_exp;
        c.n_threads = 2;
        char path[512];
        int rc = synth_write(&c, tmp_path("moe.gguf", path, sizeof path), NULL);
        CHECKF(rc == M40LLM_OK, "%s: %s", c.arch, m40llm_last_error());
        if (rc) continue;
        const bool qwen = !strcmp(c.arch, "qwen3moe");
        const char *a = qwen ? "qwen3moe" : "llama";
        const int64_t fx = c.n_ff_exp ? c.n_ff_exp : c.n_ff;
        gguf_file *g = NULL;
        CHECK(gguf_open(path, &g) == M40LLM_OK);
        if (g) {
            char key[96];
            CHECK(str_is(g, "general.architecture", a));
            snprintf(key, sizeof key, "%s.expert_count", a);
            CHECK(get_u32(g, key) == 6);
            snprintf(key, sizeof key, "%s.expert_used_count", a);
            CHECK(get_u32(g, key) == 2);
            const gguf_tensor *t = gguf_find_tensor(g, "blk.1.ffn_down_exps.weight");
            CHECK(t && t->n_dims == 3 && t->ne[0] == fx && t->ne[1] == c.n_embd && t->ne[2] == 6);
            t = gguf_find_tensor(g, "blk.0.ffn_gate_inp.weight");
            CHECK(t && t->type == QT_F32 && t->ne[0] == c.n_embd && t->ne[1] == 6);
            CHECK(!gguf_find_tensor(g, "blk.0.ffn_gate.weight"));
            CHECK(!qwen == !gguf_find_tensor(g, "blk.0.attn_q_norm.weight"));
            gguf_close(g);
        }
        model *m = NULL;
        rc = model_load(path, &m);
        CHECKF(rc == M40LLM_OK, "%s: %s", c.arch, m40llm_last_error());
        if (m) {
            CHECK(m->cfg.n_expert == 6 && m->cfg.n_expert_used == 2 && m->cfg.n_ff_exp == fx);
            CHECK(m->cfg.head_dim == (c.head_dim ? c.head_dim : c.n_embd / c.n_head));
            CHECK(model_features(m) & MODEL_FEAT_MOE);
            model_free(m);
        }
        check_loads_and_runs(&c, path);
        unlink(path);
    }
    /* Qwen3-30B-A3B: the shape, and its tensor types (not written: 17 GB) */
    synth_config c;
    synth_default_config(&c);
    CHECK(synth_preset("qwen3-30b-a3b", &c) == M40LLM_OK);
    c.type = "q4_k_m";
    CHECK(!strcmp(c.arch, "qwen3moe") && c.n_layer == 48 && c.n_embd == 2048 && c.n_head == 32 &&
          c.n_head_kv == 4 && c.head_dim == 128 && c.n_expert == 128 && c.n_expert_used == 8 &&
          c.n_ff_exp == 768 && c.n_vocab == 151936);
    CHECK(synth_validate(&c) == M40LLM_OK);
    int t;
    CHECK(synth_tensor_type(&c, "ffn_gate_inp.weight", 0, 2048, &t) == 0 && t == QT_F32);
    CHECK(synth_tensor_type(&c, "ffn_down_exps.weight", 0, 768, &t) == 0 && t == QT_Q6_K);
    CHECK(synth_tensor_type(&c, "ffn_down_exps.weight", 7, 768, &t) == 0 && t == QT_Q4_K);
    CHECK(synth_tensor_type(&c, "ffn_up_exps.weight", 0, 2048, &t) == 0 && t == QT_Q4_K);
    CHECK(synth_tensor_type(&c, "attn_v.weight", 0, 2048, &t) == 0 && t == QT_Q6_K);
    CHECK(synth_tensor_type(&c, "attn_k.weight", 0, 2048, &t) == 0 && t == QT_Q4_K);
    /* Mixtral 8x7B's _M mix: Q8_0 attention K and V on every layer (llama.cpp's
     * rule for 8-expert models), the rest as for a dense model */
    synth_config mx;
    synth_default_config(&mx);
    CHECK(synth_preset("mixtral-8x7b", &mx) == M40LLM_OK);
    mx.type = "q4_k_m";
    CHECK(mx.n_expert == 8);
    for (int l = 0; l < 32; l += 7) {
        CHECK(synth_tensor_type(&mx, "attn_k.weight", l, 4096, &t) == 0 && t == QT_Q8_0);
        CHECK(synth_tensor_type(&mx, "attn_v.weight", l, 4096, &t) == 0 && t == QT_Q8_0);
        CHECK(synth_tensor_type(&mx, "attn_q.weight", l, 4096, &t) == 0 && t == QT_Q4_K);
    }
    mx.type = "q4_0"; /* a plain type stays plain */
    CHECK(synth_tensor_type(&mx, "attn_v.weight", 0, 4096, &t) == 0 && t == QT_Q4_0);
    /* bad MoE configurations */
    c.n_expert_used = 129;
    CHECK(synth_validate(&c) == M40LLM_ERR_INVALID_ARG);
    synth_default_config(&c);
    c.n_expert = 4; /* a dense llama with experts */
    CHECK(synth_validate(&c) == M40LLM_ERR_INVALID_ARG);
    c.arch = "mixtral";
    c.n_expert_used = 2;
    CHECK(synth_validate(&c) == M40LLM_OK);
    c.n_ff_exp = 64; /* mixtral's expert width is --ff */
    CHECK(synth_validate(&c) == M40LLM_ERR_INVALID_ARG);
    c.arch = "mamba";
    CHECK(synth_validate(&c) == M40LLM_ERR_UNSUPPORTED);
}

static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int x = fgetc(fa), y = fgetc(fb);
        if (x != y) same = false;
        if (x == EOF || y == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_determinism(void) {
    synth_config c;
    synth_default_config(&c);
    c.type = "q4_k";
    char p1[512], p3[512], ps[512];
    c.n_threads = 1;
    CHECK(synth_write(&c, tmp_path("t1.gguf", p1, sizeof p1), NULL) == M40LLM_OK);
    c.n_threads = 3;
    CHECK(synth_write(&c, tmp_path("t3.gguf", p3, sizeof p3), NULL) == M40LLM_OK);
    c.seed = 2;
    CHECK(synth_write(&c, tmp_path("ts.gguf", ps, sizeof ps), NULL) == M40LLM_OK);
    CHECK(same_file(p1, p3));
    CHECK(!same_file(p1, ps));
    unlink(p1);
    unlink(p3);
    unlink(ps);
}

static void test_bad_config(void) {
    synth_config c;
    synth_default_config(&c);
    char p[512];
    tmp_path("bad.gguf", p, sizeof p);
    c.n_head = 7; /* 256 % 7 != 0 */
    CHECK(synth_write(&c, p, NULL) == M40LLM_ERR_INVALID_ARG);
    synth_default_config(&c);
    c.n_head_kv = 3;
    CHECK(synth_write(&c, p, NULL) == M40LLM_ERR_INVALID_ARG);
    synth_default_config(&c);
    c.type = "q9_9";
    CHECK(synth_write(&c, p, NULL) == M40LLM_ERR_UNSUPPORTED);
    CHECK(strstr(m40llm_last_error(), "q9_9") != NULL);
    synth_default_config(&c);
    c.n_vocab = 100;
    CHECK(synth_write(&c, p, NULL) == M40LLM_ERR_INVALID_ARG);
    CHECK(access(p, F_OK) != 0);
    CHECK(synth_preset("gpt-5", &c) == M40LLM_ERR_NOT_FOUND);
    /* an unwritable path: error, no file */
    synth_default_config(&c);
    CHECK(synth_write(&c, "/nonexistent-dir/x.gguf", NULL) == M40LLM_ERR_IO);
}

/* The writer never touches a path it did not make: an existing OUT.tmp (a
 * fixed temporary name before) and a file a symlink there points to stay as
 * they were, and a failed write leaves OUT's old contents. */
static void test_writer_paths(void) {
    synth_config c;
    synth_default_config(&c);
    char out[512], tmp[600], victim[512];
    tmp_path("w.gguf", out, sizeof out);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    tmp_path("victim", victim, sizeof victim);
    FILE *f = fopen(victim, "w");
    CHECK(f && fputs("keep me", f) >= 0 && fclose(f) == 0);
    CHECK(symlink(victim, tmp) == 0);
    CHECK(synth_write(&c, out, NULL) == M40LLM_OK);
    char buf[16] = {0};
    f = fopen(victim, "r");
    CHECK(f && fread(buf, 1, sizeof buf - 1, f) == 7 && fclose(f) == 0);
    CHECK(!strcmp(buf, "keep me"));
    char link[512] = {0};
    CHECK(readlink(tmp, link, sizeof link - 1) > 0 && !strcmp(link, victim));
    /* a bad config after a good write: OUT keeps the good model */
    struct stat before, after;
    CHECK(stat(out, &before) == 0);
    c.type = "q9_9";
    CHECK(synth_write(&c, out, NULL) == M40LLM_ERR_UNSUPPORTED);
    CHECK(stat(out, &after) == 0 && after.st_size == before.st_size);
    unlink(tmp);
    unlink(victim);
    unlink(out);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/m40-synth-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) SKIP("cannot create a temporary directory");
    test_recipes();
    test_q4_k_m_layers();
    test_moe();
    test_determinism();
    test_bad_config();
    test_writer_paths();
    rmdir(tmpdir);
    return check_summary("test_synth");
}
