/* The registry of architectures and the GGUF reading they share: keys read
 * with their type and range checked, tensors bound with their shape and
 * type checked, views of fused tensors, the standard layer binding. */
#include "model/arch/arch.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "quant.h"

/* by general.architecture; arch_mixtral is reached through arch_llama */
static const arch_def *const arch_all[] = {&arch_llama,  &arch_qwen2, &arch_qwen3,   &arch_gemma2,
                                           &arch_gemma3, &arch_phi3,  &arch_qwen3moe};
enum { ARCH_COUNT = sizeof arch_all / sizeof arch_all[0] };

const arch_def *arch_find(gguf_str name) {
    /* compared by length: "llama\0..." is not llama */
    for (int i = 0; i < ARCH_COUNT; i++)
        if (gguf_str_eq(name, arch_all[i]->name)) return arch_all[i];
    return NULL;
}

bool arch_plain_user_defined(const gguf_file *g) {
    gguf_str s;
    if (gguf_get_str(g, "general.architecture", &s) != M40LLM_OK) return false;
    const arch_def *a = arch_find(s);
    return a && a->plain_user_defined;
}

const char *arch_names(void) {
    return "llama, qwen2, qwen3, gemma2, gemma3, phi3, qwen3moe; mixtral as llama with experts";
}

int arch_key_int(const gguf_file *g, const char *arch, const char *suffix, bool required,
                 int *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    int rc = gguf_get_i64(g, key, &v);
    if (rc == M40LLM_ERR_NOT_FOUND) {
        if (!required) return M40LLM_OK;
        return err_set(M40LLM_ERR_NOT_FOUND, "required metadata key %s is missing", key);
    }
    if (rc != M40LLM_OK)
        return err_set(M40LLM_ERR_TYPE, "metadata key %s: expected an integer", key);
    if (v <= 0 || v > (1 << 30))
        return err_set(M40LLM_ERR_FORMAT, "metadata key %s: value %" PRId64 " out of range", key,
                       v);
    *out = (int)v;
    return M40LLM_OK;
}

int arch_key_float(const gguf_file *g, const char *arch, const char *suffix, bool required,
                   float *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v;
    int rc = gguf_get_f32(g, key, &v);
    if (rc == M40LLM_ERR_NOT_FOUND) {
        if (!required) return M40LLM_OK;
        return err_set(M40LLM_ERR_NOT_FOUND, "required metadata key %s is missing", key);
    }
    if (rc != M40LLM_OK) return err_set(M40LLM_ERR_TYPE, "metadata key %s: expected a float", key);
    if (!(v > 0.0f) || !isfinite(v))
        return err_set(M40LLM_ERR_FORMAT, "metadata key %s: value %g must be positive and finite",
                       key, v);
    *out = v;
    return M40LLM_OK;
}

/* YaRN's keys, as llama.cpp writes them: the original context is required,
 * the betas and the attention factor have the paper's defaults. */
static int read_yarn(const gguf_file *g, const char *a, model_config *c, float factor) {
    int rc;
    if (!(factor > 1.0f))
        return err_set(M40LLM_ERR_FORMAT, "%s.rope.scaling.factor %g: YaRN needs a factor > 1", a,
                       factor);
    c->rope_scaling = MODEL_ROPE_SCALING_YARN;
    c->rope_freq_scale = 1.0f / factor;
    /* required: guessing it from context_length (llama.cpp does) would
     * move every frequency of a file that meant another one */
    if ((rc = arch_key_int(g, a, "rope.scaling.original_context_length", false, &c->yarn_orig_ctx)))
        return rc;
    if (!c->yarn_orig_ctx)
        return err_set(
            M40LLM_ERR_UNSUPPORTED,
            "%s.rope.scaling.type 'yarn' without %s.rope.scaling.original_context_length "
            "is not supported",
            a, a);
    c->yarn_beta_fast = 32.0f;
    c->yarn_beta_slow = 1.0f;
    if ((rc = arch_key_float(g, a, "rope.scaling.yarn_beta_fast", false, &c->yarn_beta_fast)))
        return rc;
    if ((rc = arch_key_float(g, a, "rope.scaling.yarn_beta_slow", false, &c->yarn_beta_slow)))
        return rc;
    if (!(c->yarn_beta_fast > c->yarn_beta_slow))
        return err_set(M40LLM_ERR_FORMAT, "%s: YaRN beta_fast %g must exceed beta_slow %g", a,
                       c->yarn_beta_fast, c->yarn_beta_slow);
    c->yarn_attn_factor = (float)(1.0 + 0.1 * log((double)factor));
    return arch_key_float(g, a, "rope.scaling.attn_factor", false, &c->yarn_attn_factor);
}

/* LongRoPE (phi3): its original context (required) and attention factor;
 * the two factor tensors are bound by model.c. */
int arch_read_longrope(const gguf_file *g, const char *a, model_config *c) {
    int rc = arch_key_int(g, a, "rope.scaling.original_context_length", true, &c->rope_orig_ctx);
    if (rc) return rc;
    const double s = (double)c->n_ctx_train / c->rope_orig_ctx;
    c->rope_attn_factor =
        s <= 1.0 ? 1.0f : (float)sqrt(1.0 + log(s) / log((double)c->rope_orig_ctx));
    if ((rc = arch_key_float(g, a, "rope.scaling.attn_factor", false, &c->rope_attn_factor)))
        return rc;
    c->rope_scaling = MODEL_ROPE_SCALING_LONGROPE;
    return M40LLM_OK;
}

/* Linear, YaRN and LongRoPE scaling are read here; llama3 factors come as
 * the rope_freqs tensor (bound by model.c); other types are refused by name. */
static int read_rope_scaling(const gguf_file *g, const char *a, model_config *c) {
    c->rope_freq_scale = 1.0f;
    float factor = 0.0f;
    int rc;
    if ((rc = arch_key_float(g, a, "rope.scaling.factor", false, &factor))) return rc;
    if (factor == 0.0f && (rc = arch_key_float(g, a, "rope.scale_linear", false, &factor)))
        return rc;
    bool scaled = true;
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    gguf_str s;
    rc = gguf_get_str(g, key, &s);
    if (rc != M40LLM_OK && rc != M40LLM_ERR_NOT_FOUND)
        return err_set(M40LLM_ERR_TYPE, "metadata key %s: expected a string", key);
    if (rc == M40LLM_OK) {
        if (gguf_str_eq(s, "none")) {
            scaled = false;
        } else if (gguf_str_eq(s, "yarn")) {
            return read_yarn(g, a, c, factor);
        } else if (gguf_str_eq(s, "longrope")) {
            return arch_read_longrope(g, a, c);
        } else if (!gguf_str_eq(s, "linear")) {
            char type[64];
            return err_set(M40LLM_ERR_UNSUPPORTED,
                           "%s '%s' is not supported (none, linear, yarn, longrope; llama3 "
                           "through rope_freqs)",
                           key, gguf_str_escape(s, type, sizeof type));
        }
    }
    if (scaled && factor > 0.0f) {
        c->rope_freq_scale = 1.0f / factor;
        c->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
    }
    return M40LLM_OK;
}

int arch_read_common(const gguf_file *g, const char *a, model_config *c) {
    int rc;
    if ((rc = arch_key_int(g, a, "block_count", true, &c->n_layer))) return rc;
    if ((rc = arch_key_int(g, a, "embedding_length", true, &c->n_embd))) return rc;
    if ((rc = arch_key_int(g, a, "feed_forward_length", true, &c->n_ff))) return rc;
    if ((rc = arch_key_int(g, a, "attention.head_count", true, &c->n_head))) return rc;
    if ((rc = arch_key_int(g, a, "context_length", true, &c->n_ctx_train))) return rc;
    c->n_head_kv = c->n_head;
    if ((rc = arch_key_int(g, a, "attention.head_count_kv", false, &c->n_head_kv))) return rc;
    if (c->n_head % c->n_head_kv)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "%s.attention.head_count %d is not a multiple of "
                       "%s.attention.head_count_kv %d",
                       a, c->n_head, a, c->n_head_kv);
    /* the head size: key_length where given (qwen3, gemma: not n_embd / n_head) */
    int key_len = 0, val_len = 0;
    if ((rc = arch_key_int(g, a, "attention.key_length", false, &key_len))) return rc;
    if ((rc = arch_key_int(g, a, "attention.value_length", false, &val_len))) return rc;
    if (key_len == 0 && c->n_embd % c->n_head)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "%s.embedding_length %d is not a multiple of %s.attention.head_count %d "
                       "and %s.attention.key_length is absent",
                       a, c->n_embd, a, c->n_head, a);
    c->head_dim = key_len ? key_len : c->n_embd / c->n_head;
    if (val_len && val_len != c->head_dim)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "%s.attention.value_length %d differs from the key length %d", a, val_len,
                       c->head_dim);
    if ((int64_t)c->n_head * c->head_dim > (1 << 20))
        return err_set(M40LLM_ERR_FORMAT, "%s: %d heads of %d: attention too wide", a, c->n_head,
                       c->head_dim);
    c->n_rot = c->head_dim;
    if ((rc = arch_key_int(g, a, "rope.dimension_count", false, &c->n_rot))) return rc;
    if (c->n_rot > c->head_dim || c->n_rot % 2)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "%s.rope.dimension_count %d must be even and <= head size %d", a, c->n_rot,
                       c->head_dim);
    c->rope_freq_base = 10000.0f;
    if ((rc = arch_key_float(g, a, "rope.freq_base", false, &c->rope_freq_base))) return rc;
    if ((rc = arch_key_float(g, a, "attention.layer_norm_rms_epsilon", true, &c->rms_eps)))
        return rc;
    if ((rc = read_rope_scaling(g, a, c))) return rc;
    /* the llama block's switches; an architecture changes what differs */
    c->act = MODEL_ACT_SILU;
    c->rope_kind = MODEL_ROPE_NORM;
    c->norm_w_offset = 0.0f;
    c->embd_scale = 1.0f;
    /* as the CPU and CUDA backends computed it before: the same float */
    c->attn_scale = (float)(1.0 / sqrt((double)c->head_dim));
    /* an explicit override (granite-style key), wherever present */
    if ((rc = arch_key_float(g, a, "attention.scale", false, &c->attn_scale))) return rc;

    return M40LLM_OK;
}

int arch_expert_count(const gguf_file *g, const char *a, int64_t *out) {
    char key[96];
    snprintf(key, sizeof key, "%s.expert_count", a);
    *out = 0;
    int rc = gguf_get_i64(g, key, out);
    if (rc == M40LLM_ERR_NOT_FOUND) {
        *out = 0;
        return M40LLM_OK;
    }
    if (rc != M40LLM_OK)
        return err_set(M40LLM_ERR_TYPE, "metadata key %s: expected an integer", key);
    if (*out < 0)
        return err_set(M40LLM_ERR_FORMAT, "metadata key %s: value %" PRId64 " out of range", key,
                       *out);
    return M40LLM_OK;
}

int arch_read_experts(const gguf_file *g, const char *a, model_config *c) {
    int rc;
    if ((rc = arch_key_int(g, a, "expert_count", true, &c->n_expert))) return rc;
    if ((rc = arch_key_int(g, a, "expert_used_count", true, &c->n_expert_used))) return rc;
    if (c->n_expert_used > c->n_expert)
        return err_set(M40LLM_ERR_FORMAT, "%s.expert_used_count %d exceeds %s.expert_count %d", a,
                       c->n_expert_used, a, c->n_expert);
    c->n_ff_exp = c->n_ff;
    if ((rc = arch_key_int(g, a, "expert_feed_forward_length", false, &c->n_ff_exp))) return rc;
    char key[96];
    snprintf(key, sizeof key, "%s.expert_weights_norm", a);
    c->expert_norm = true; /* llama.cpp's qwen3moe and llama MoE always renormalise */
    rc = gguf_get_bool(g, key, &c->expert_norm);
    if (rc != M40LLM_OK && rc != M40LLM_ERR_NOT_FOUND)
        return err_set(M40LLM_ERR_TYPE, "metadata key %s: expected a bool", key);
    /* llama.cpp's gating functions: 0 none, 1 softmax, 2 sigmoid (deepseek);
     * its converters write a shared-expert count of 0 for models without */
    int64_t gating = 1, shared = 0;
    snprintf(key, sizeof key, "%s.expert_gating_func", a);
    rc = gguf_get_i64(g, key, &gating);
    if (rc != M40LLM_OK && rc != M40LLM_ERR_NOT_FOUND)
        return err_set(M40LLM_ERR_TYPE, "metadata key %s: expected an integer", key);
    if (gating != 1)
        return err_set(M40LLM_ERR_UNSUPPORTED, "%s %" PRId64 " is not supported (1: softmax)", key,
                       gating);
    snprintf(key, sizeof key, "%s.expert_shared_count", a);
    rc = gguf_get_i64(g, key, &shared);
    if (rc != M40LLM_OK && rc != M40LLM_ERR_NOT_FOUND)
        return err_set(M40LLM_ERR_TYPE, "metadata key %s: expected an integer", key);
    if (shared != 0)
        return err_set(M40LLM_ERR_UNSUPPORTED, "%s %" PRId64 ": shared experts are not supported",
                       key, shared);
    return M40LLM_OK;
}

static void shape_str(const int64_t *ne, int n, char *buf, size_t size) {
    size_t o = 0;
    o += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%" PRId64, i ? ", " : "", ne[i]);
    if (o < size) snprintf(buf + o, size - o, "]");
}

/* want[] is {ne0} (ne1 == ne2 == 0), {ne0, ne1} (ne2 == 0) or {ne0, ne1, ne2}. */
static int bind_found(const gguf_tensor *gt, const char *name, int64_t ne0, int64_t ne1,
                      int64_t ne2, model_tensor *t) {
    int want_dims = ne2 ? 3 : ne1 ? 2 : 1;
    int64_t want[4] = {ne0, ne1 ? ne1 : 1, ne2 ? ne2 : 1, 1};
    bool ok = true;
    for (int i = 0; i < 4; i++) ok = ok && gt->ne[i] == want[i];
    int found_dims = (int)gt->n_dims;
    if (found_dims < 1 || found_dims > 4) found_dims = 4;
    if (!ok) {
        char e[96], f[96];
        shape_str(want, want_dims, e, sizeof e);
        shape_str(gt->ne, found_dims, f, sizeof f);
        return err_set(M40LLM_ERR_SHAPE, "tensor %s: expected shape %s, found %s", name, e, f);
    }
    const quant_type_info *qi = quant_info(gt->type);
    if (!qi || !qi->can_dequant)
        return err_set(M40LLM_ERR_UNSUPPORTED, "tensor %s: unsupported type %s (id %d)", name,
                       qi ? qi->name : "unknown", gt->type);
    size_t row = quant_row_size(gt->type, ne0);
    if (row == 0)
        return err_set(M40LLM_ERR_SHAPE,
                       "tensor %s: row length %" PRId64
                       " is not a multiple of the %s block size %d",
                       name, ne0, qi->name, qi->block_size);
    size_t matrix = 0, total = 0;
    if (__builtin_mul_overflow(row, (size_t)want[1], &matrix) ||
        __builtin_mul_overflow(matrix, (size_t)want[2], &total))
        return err_set(M40LLM_ERR_FORMAT, "tensor %s: size overflows", name);
    if (gt->nbytes < total)
        return err_set(M40LLM_ERR_FORMAT, "tensor %s: %zu bytes of data, %zu expected", name,
                       gt->nbytes, total);
    char *copy = malloc(gt->name.len + 1);
    if (!copy) return err_set(M40LLM_ERR_OOM, "out of memory");
    gguf_str_copy(gt->name, copy, gt->name.len + 1);
    t->name = copy;
    t->type = gt->type;
    memcpy(t->ne, gt->ne, sizeof t->ne);
    t->data = gt->data;
    t->nbytes = total;
    t->row_bytes = row;
    t->expert_bytes = matrix;
    return M40LLM_OK;
}

int arch_bind(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1, model_tensor *t) {
    const gguf_tensor *gt = gguf_find_tensor(g, name);
    if (!gt) return err_set(M40LLM_ERR_NOT_FOUND, "tensor %s is missing", name);
    return bind_found(gt, name, ne0, ne1, 0, t);
}

int arch_bind_opt(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1, model_tensor *t) {
    const gguf_tensor *gt = gguf_find_tensor(g, name);
    if (!gt) return M40LLM_OK;
    return bind_found(gt, name, ne0, ne1, 0, t);
}

int arch_bind_experts(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1,
                      int64_t n_expert, model_tensor *t) {
    const gguf_tensor *gt = gguf_find_tensor(g, name);
    if (!gt) return err_set(M40LLM_ERR_NOT_FOUND, "tensor %s is missing", name);
    return bind_found(gt, name, ne0, ne1, n_expert, t);
}

int arch_view(const model_tensor *p, int64_t row0, int64_t rows, const char *tag, model_tensor *v) {
    if (row0 < 0 || rows < 1 || row0 + rows > p->ne[1])
        return err_set(M40LLM_ERR_SHAPE, "tensor %s: rows %" PRId64 "..%" PRId64 " of %" PRId64,
                       p->name, row0, row0 + rows, p->ne[1]);
    size_t len = strlen(p->name) + strlen(tag) + 3;
    char *name = malloc(len);
    if (!name) return err_set(M40LLM_ERR_OOM, "out of memory");
    snprintf(name, len, "%s[%s]", p->name, tag);
    *v = *p;
    v->name = name;
    v->ne[1] = rows;
    v->data = (const uint8_t *)p->data + (size_t)row0 * p->row_bytes;
    v->nbytes = (size_t)rows * p->row_bytes;
    v->expert_bytes = v->nbytes;
    return M40LLM_OK;
}

int arch_bind_layer(const gguf_file *g, const model_config *c, int il, unsigned flags,
                    model_layer *L) {
    const int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim,
                  KV = (int64_t)c->n_head_kv * c->head_dim, F = c->n_ff, HD = c->head_dim;
    char n[96];
    int rc;
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", il, s), n)
    if ((rc = arch_bind(g, NAME("attn_norm.weight"), E, 0, &L->attn_norm))) return rc;
    if (flags & ARCH_FUSED_QKV) {
        model_tensor qkv = {0};
        if ((rc = arch_bind(g, NAME("attn_qkv.weight"), E, Q + 2 * KV, &qkv))) return rc;
        rc = arch_view(&qkv, 0, Q, "q", &L->wq);
        if (!rc) rc = arch_view(&qkv, Q, KV, "k", &L->wk);
        if (!rc) rc = arch_view(&qkv, Q + KV, KV, "v", &L->wv);
        free((void *)qkv.name);
        if (rc) return rc;
    } else {
        if ((rc = arch_bind(g, NAME("attn_q.weight"), E, Q, &L->wq))) return rc;
        if ((rc = arch_bind(g, NAME("attn_k.weight"), E, KV, &L->wk))) return rc;
        if ((rc = arch_bind(g, NAME("attn_v.weight"), E, KV, &L->wv))) return rc;
    }
    if ((rc = arch_bind(g, NAME("attn_output.weight"), Q, E, &L->wo))) return rc;
    if ((rc = arch_bind(g, NAME("ffn_norm.weight"), E, 0, &L->ffn_norm))) return rc;
    if (flags & ARCH_MOE) {
        const int64_t X = c->n_expert, FX = c->n_ff_exp;
        if ((rc = arch_bind(g, NAME("ffn_gate_inp.weight"), E, X, &L->router))) return rc;
        if ((rc = arch_bind_experts(g, NAME("ffn_gate_exps.weight"), E, FX, X, &L->gate_exps)))
            return rc;
        if ((rc = arch_bind_experts(g, NAME("ffn_up_exps.weight"), E, FX, X, &L->up_exps)))
            return rc;
        if ((rc = arch_bind_experts(g, NAME("ffn_down_exps.weight"), FX, E, X, &L->down_exps)))
            return rc;
    } else if (flags & ARCH_FUSED_GATE_UP) {
        model_tensor gu = {0};
        if ((rc = arch_bind(g, NAME("ffn_up.weight"), E, 2 * F, &gu))) return rc;
        rc = arch_view(&gu, 0, F, "gate", &L->w_gate);
        if (!rc) rc = arch_view(&gu, F, F, "up", &L->w_up);
        free((void *)gu.name);
        if (rc) return rc;
    } else {
        if ((rc = arch_bind(g, NAME("ffn_gate.weight"), E, F, &L->w_gate))) return rc;
        if ((rc = arch_bind(g, NAME("ffn_up.weight"), E, F, &L->w_up))) return rc;
    }
    if (!(flags & ARCH_MOE) && (rc = arch_bind(g, NAME("ffn_down.weight"), F, E, &L->w_down)))
        return rc;
    int (*bias)(const gguf_file *, const char *, int64_t, int64_t, model_tensor *) =
        flags & ARCH_QKV_BIAS ? arch_bind : arch_bind_opt;
    if ((rc = bias(g, NAME("attn_q.bias"), Q, 0, &L->bq))) return rc;
    if ((rc = bias(g, NAME("attn_k.bias"), KV, 0, &L->bk))) return rc;
    if ((rc = bias(g, NAME("attn_v.bias"), KV, 0, &L->bv))) return rc;
    if ((rc = arch_bind_opt(g, NAME("attn_output.bias"), E, 0, &L->bo))) return rc;
    const int n_bias = model_has(&L->bq) + model_has(&L->bk) + model_has(&L->bv);
    if (n_bias != 0 && n_bias != 3)
        return err_set(M40LLM_ERR_NOT_FOUND,
                       "layer %d has some of attn_q/k/v.bias but not all three", il);
    if (flags & ARCH_QK_NORM) {
        if ((rc = arch_bind(g, NAME("attn_q_norm.weight"), HD, 0, &L->q_norm))) return rc;
        if ((rc = arch_bind(g, NAME("attn_k_norm.weight"), HD, 0, &L->k_norm))) return rc;
    }
    if (flags & ARCH_POST_NORMS) {
        if ((rc = arch_bind(g, NAME("post_attention_norm.weight"), E, 0, &L->post_attn_norm)))
            return rc;
        if ((rc = arch_bind(g, NAME("post_ffw_norm.weight"), E, 0, &L->post_ffn_norm))) return rc;
    }
#undef NAME
    return M40LLM_OK;
}

void arch_set_swa(model_config *c, model_layer *L, int il, int window, int pattern) {
    if (window <= 0) return;
    if (pattern <= 1 || il % pattern < pattern - 1) {
        L->n_swa = window;
        c->n_swa = window;
        c->n_swa_layers++;
    }
}
