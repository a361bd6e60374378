/* Loads a model from GGUF: the architecture layer (src/model/arch/) reads
 * the hyperparameters and the block's switches from the metadata and binds
 * every weight tensor, checked (presence, dimensions, element type) against
 * the config, so a backend can trust every pointer and row size it is
 * given; this file holds what every architecture shares. */
#include "model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model/arch/arch.h"
#include "quant.h"

static int read_config(const gguf_file *g, model_config *c, const arch_def **arch) {
    memset(c, 0, sizeof *c);
    gguf_str s;
    int rc = gguf_get_str(g, "general.architecture", &s);
    if (rc == M40LLM_ERR_NOT_FOUND)
        return err_set(M40LLM_ERR_NOT_FOUND,
                       "required metadata key general.architecture is missing");
    if (rc != M40LLM_OK)
        return err_set(M40LLM_ERR_TYPE, "metadata key general.architecture: expected a string");
    /* GGUF strings are length-prefixed: compared by length, shown escaped, so
     * "llama\0..." is neither taken nor reported as llama */
    const arch_def *a = arch_find(s);
    if (!a) {
        char name[128];
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "unsupported architecture '%s' (general.architecture; supported: %s)",
                       gguf_str_escape(s, name, sizeof name), arch_names());
    }
    /* a mixture-of-experts file of a dense architecture's name (llama:
     * Mixtral) is read as its MoE variant; other architectures say so */
    int64_t experts = 0;
    if ((rc = arch_expert_count(g, a->name, &experts))) return rc;
    if (experts > 0 && a->moe_variant) a = a->moe_variant;
    *arch = a;
    snprintf(c->arch, sizeof c->arch, "%s", a->name);
    /* only for display: escaped, so it cannot end early or drive a terminal */
    if (gguf_get_str(g, "general.name", &s) == M40LLM_OK)
        gguf_str_escape(s, c->name, sizeof c->name);
    if ((rc = arch_read_common(g, a->name, c))) return rc;
    if ((rc = a->config(g, c))) return rc;
    if (experts > 0 && c->n_expert == 0)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "mixture-of-experts models of architecture %s (%s.expert_count = %" PRId64
                       ") are not supported (qwen3moe, llama/mixtral are)",
                       a->name, a->name, experts);
    return M40LLM_OK;
}

/* Layer of a "blk.N." tensor name; -1 for any other name. Saturates, so a
 * huge N still compares as beyond every block count. */
static int64_t layer_of(gguf_str name) {
    if (name.len < 6 || memcmp(name.data, "blk.", 4) != 0) return -1;
    int64_t n = 0;
    uint64_t i = 4;
    for (; i < name.len && name.data[i] >= '0' && name.data[i] <= '9'; i++)
        n = n > INT32_MAX ? n : n * 10 + (name.data[i] - '0');
    if (i == 4 || i >= name.len || name.data[i] != '.') return -1;
    return n;
}

/* block_count against the tensors present, before anything is allocated per
 * layer: no tensor may name a layer beyond it, and every layer must have the
 * architecture's required weights. The presence loop stops at the first gap,
 * so a huge count in a small file costs no more than the tensors that are
 * there. */
static int check_layers(const gguf_file *g, const model_config *c, const arch_def *a) {
    int64_t top = -1;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        int64_t il = layer_of(t->name);
        if (il >= c->n_layer) {
            char name[128];
            return err_set(M40LLM_ERR_FORMAT,
                           "tensor %s is beyond %s.block_count %d (layers 0..%d): the "
                           "metadata and the tensors disagree",
                           gguf_str_escape(t->name, name, sizeof name), a->name, c->n_layer,
                           c->n_layer - 1);
        }
        if (il > top) top = il;
    }
    for (int il = 0; il < c->n_layer; il++) {
        for (const char *const *k = a->required; *k; k++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", il, *k);
            if (gguf_find_tensor(g, name)) continue;
            if (top < 0)
                return err_set(M40LLM_ERR_NOT_FOUND,
                               "tensor %s is missing (%s.block_count is %d; the file has no "
                               "blk.* tensors)",
                               name, a->name, c->n_layer);
            return err_set(M40LLM_ERR_NOT_FOUND,
                           "tensor %s is missing (%s.block_count is %d; the highest layer "
                           "with tensors is %" PRId64 ")",
                           name, a->name, c->n_layer, top);
        }
    }
    return M40LLM_OK;
}

/* The vocabulary sizes the metadata states must match token_embd's rows:
 * the tokenizer must not produce ids the embedding does not have. */
static int check_vocab(const gguf_file *g, const char *arch, int n_vocab) {
    char key[96];
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    int64_t v;
    int rc = gguf_get_i64(g, key, &v);
    if (rc == M40LLM_OK && v != n_vocab)
        return err_set(M40LLM_ERR_SHAPE, "%s is %" PRId64 " but token_embd.weight has %d rows", key,
                       v, n_vocab);
    if (rc != M40LLM_OK && rc != M40LLM_ERR_NOT_FOUND)
        return err_set(M40LLM_ERR_TYPE, "metadata key %s: expected an integer", key);
    const gguf_value *toks;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) == M40LLM_OK &&
        toks->arr.n > (uint64_t)n_vocab)
        return err_set(M40LLM_ERR_SHAPE,
                       "tokenizer.ggml.tokens holds %" PRIu64
                       " tokens but token_embd.weight has only %d rows",
                       toks->arr.n, n_vocab);
    return M40LLM_OK;
}

/* A vector of n_rot / 2 positive finite F32 frequency divisors. */
static int bind_factors(const gguf_file *g, const char *name, model *m, model_tensor *t) {
    const int n = m->cfg.n_rot / 2;
    int rc = arch_bind(g, name, n, 0, t);
    if (rc) return rc;
    if (t->type != QT_F32) return err_set(M40LLM_ERR_TYPE, "tensor %s: expected F32", name);
    for (int i = 0; i < n; i++) {
        float f;
        memcpy(&f, (const char *)t->data + (size_t)i * 4, 4);
        if (!(f > 0.0f) || !isfinite(f))
            return err_set(M40LLM_ERR_FORMAT, "tensor %s: element %d is %g, expected positive",
                           name, i, f);
    }
    return M40LLM_OK;
}

/* rope_freqs.weight (llama3 scaling): n_rot / 2 positive finite F32
 * divisors of the rotation frequencies; where present in that form, every
 * layer uses them. LongRoPE: rope_factors_long/short.weight, both
 * required. */
static int bind_rope_freqs(const gguf_file *g, model *m) {
    model_config *c = &m->cfg;
    if (c->rope_scaling == MODEL_ROPE_SCALING_LONGROPE) {
        int rc = bind_factors(g, "rope_factors_long.weight", m, &m->rope_freqs);
        return rc ? rc : bind_factors(g, "rope_factors_short.weight", m, &m->rope_freqs_short);
    }
    /* only a vector of the right length and type is taken as the factors;
     * any other tensor of that name stays ignored, as it always was */
    const gguf_tensor *gt = gguf_find_tensor(g, "rope_freqs.weight");
    if (!gt || gt->type != QT_F32 || gt->n_dims != 1 || gt->ne[0] != c->n_rot / 2) return M40LLM_OK;
    int rc = arch_bind(g, "rope_freqs.weight", c->n_rot / 2, 0, &m->rope_freqs);
    if (rc) return rc;
    for (int i = 0; i < c->n_rot / 2; i++) {
        float f;
        memcpy(&f, (const char *)m->rope_freqs.data + (size_t)i * 4, 4);
        if (!(f > 0.0f) || !isfinite(f))
            return err_set(M40LLM_ERR_FORMAT,
                           "tensor rope_freqs.weight: element %d is %g, expected positive", i, f);
    }
    c->rope_scaling = MODEL_ROPE_SCALING_FACTORS;
    return M40LLM_OK;
}

void model_layer_tensors(model_layer *L, model_tensor *out[MODEL_LAYER_TENSORS]) {
    model_tensor *ts[MODEL_LAYER_TENSORS] = {&L->attn_norm,
                                             &L->wq,
                                             &L->wk,
                                             &L->wv,
                                             &L->wo,
                                             &L->ffn_norm,
                                             &L->w_gate,
                                             &L->w_up,
                                             &L->w_down,
                                             &L->bq,
                                             &L->bk,
                                             &L->bv,
                                             &L->bo,
                                             &L->q_norm,
                                             &L->k_norm,
                                             &L->post_attn_norm,
                                             &L->post_ffn_norm,
                                             &L->router,
                                             &L->gate_exps,
                                             &L->up_exps,
                                             &L->down_exps};
    memcpy(out, ts, sizeof ts);
}

static uint64_t tensor_elems(const model_tensor *t) {
    uint64_t n = 1;
    for (int i = 0; i < 4; i++) n *= (uint64_t)(t->ne[i] > 0 ? t->ne[i] : 1);
    return t->data ? n : 0;
}

/* Of an expert tensor's n (elements or bytes), the part n_used of its
 * n_expert experts hold; all of any other tensor. */
static uint64_t active_part(const model *m, const model_tensor *t, uint64_t n) {
    if (t->ne[2] <= 1) return n;
    return n / (uint64_t)t->ne[2] * (uint64_t)m->cfg.n_expert_used;
}

uint64_t model_active_bytes(const model *m) {
    uint64_t b = m->weight_bytes;
    for (int il = 0; il < m->cfg.n_layer; il++) {
        model_tensor *ts[MODEL_LAYER_TENSORS];
        model_layer_tensors(&m->layers[il], ts);
        for (int j = 0; j < MODEL_LAYER_TENSORS; j++)
            b -= ts[j]->nbytes - active_part(m, ts[j], ts[j]->nbytes);
    }
    return b;
}

void model_param_counts(const model *m, uint64_t *total, uint64_t *active) {
    uint64_t n = tensor_elems(&m->tok_embd) + tensor_elems(&m->output_norm);
    if (!m->tied_output) n += tensor_elems(&m->output);
    n += tensor_elems(&m->rope_freqs) + tensor_elems(&m->rope_freqs_short);
    uint64_t a = n;
    for (int il = 0; il < m->cfg.n_layer; il++) {
        /* every slot, optional ones (biases, norms) included; views of a
         * fused tensor add up to it */
        model_tensor *ts[MODEL_LAYER_TENSORS];
        model_layer_tensors(&m->layers[il], ts);
        for (int j = 0; j < MODEL_LAYER_TENSORS; j++) {
            const uint64_t e = tensor_elems(ts[j]);
            n += e;
            a += active_part(m, ts[j], e);
        }
    }
    if (total) *total = n;
    if (active) *active = a;
}

static void free_tensor_name(model_tensor *t) {
    free((void *)t->name);
    t->name = NULL;
}

static void free_model(model *m, bool close_gguf) {
    if (!m) return;
    if (m->layers) {
        for (int i = 0; i < m->cfg.n_layer; i++) {
            model_tensor *ts[MODEL_LAYER_TENSORS];
            model_layer_tensors(&m->layers[i], ts);
            for (int j = 0; j < MODEL_LAYER_TENSORS; j++) free_tensor_name(ts[j]);
        }
        free(m->layers);
    }
    if (!m->tied_output) free_tensor_name(&m->output);
    free_tensor_name(&m->tok_embd);
    free_tensor_name(&m->output_norm);
    free_tensor_name(&m->rope_freqs);
    free_tensor_name(&m->rope_freqs_short);
    if (close_gguf) gguf_close(m->gguf);
    free(m);
}

int model_from_gguf(gguf_file *g, model **out) {
    *out = NULL;
    if (!g) return err_set(M40LLM_ERR_INVALID_ARG, "model_from_gguf: no file");
    model *m = calloc(1, sizeof *m);
    if (!m) return err_set(M40LLM_ERR_OOM, "out of memory");
    m->tied_output = true; /* until output.weight is bound: free_model must not free it twice */
    const arch_def *a = NULL;
    int rc = read_config(g, &m->cfg, &a);
    if (rc) goto fail;
    model_config *c = &m->cfg;

    const gguf_tensor *te = gguf_find_tensor(g, "token_embd.weight");
    if (!te) {
        rc = err_set(M40LLM_ERR_NOT_FOUND, "tensor token_embd.weight is missing");
        goto fail;
    }
    if (te->ne[1] < 1 || te->ne[1] > INT32_MAX) {
        rc = err_set(M40LLM_ERR_SHAPE, "tensor token_embd.weight: vocabulary of %" PRId64 " rows",
                     te->ne[1]);
        goto fail;
    }
    c->n_vocab = (int)te->ne[1];
    if ((rc = check_vocab(g, a->name, c->n_vocab))) goto fail;
    if ((rc = check_layers(g, c, a))) goto fail;
    if ((rc = arch_bind(g, "token_embd.weight", c->n_embd, c->n_vocab, &m->tok_embd))) goto fail;
    if ((rc = arch_bind(g, "output_norm.weight", c->n_embd, 0, &m->output_norm))) goto fail;
    if (gguf_find_tensor(g, "output.weight")) {
        if ((rc = arch_bind(g, "output.weight", c->n_embd, c->n_vocab, &m->output))) goto fail;
        m->tied_output = false;
    } else {
        m->output = m->tok_embd; /* shares the name pointer: freed once */
    }
    if ((rc = bind_rope_freqs(g, m))) goto fail;
    /* n_layer <= tensors / (required per layer) now, and tensors cannot
     * overlap (gguf_parse), so this and every per-layer allocation a backend
     * makes is bounded by the file's own size */
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = err_set(M40LLM_ERR_OOM, "out of memory for %d layers", c->n_layer);
        goto fail;
    }
    uint64_t bytes = m->tok_embd.nbytes + m->output_norm.nbytes + m->rope_freqs.nbytes +
                     m->rope_freqs_short.nbytes;
    if (!m->tied_output) bytes += m->output.nbytes;
    for (int il = 0; il < c->n_layer; il++) {
        model_layer *L = &m->layers[il];
        L->rope_base = c->rope_freq_base;
        L->rope_freq_scale = c->rope_freq_scale;
        L->rope_factors = model_has(&m->rope_freqs);
        if ((rc = a->layer(g, m, il, L))) goto fail;
        model_tensor *ts[MODEL_LAYER_TENSORS];
        model_layer_tensors(L, ts);
        for (int j = 0; j < MODEL_LAYER_TENSORS; j++) bytes += ts[j]->nbytes;
    }
    m->weight_bytes = bytes;
    m->gguf = g;
    *out = m;
    return M40LLM_OK;
fail:
    free_model(m, false);
    return rc;
}

int model_load(const char *path, model **out) {
    *out = NULL;
    if (!path) return err_set(M40LLM_ERR_INVALID_ARG, "model_load: no path");
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g); /* its messages already name the file */
    if (rc) return rc;
    rc = model_from_gguf(g, out);
    if (rc) {
        gguf_close(g);
        return err_prefix(rc, "%s", path);
    }
    return M40LLM_OK;
}

void model_free(model *m) {
    free_model(m, true);
}
