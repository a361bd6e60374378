/* Loads a `llama`-architecture model from GGUF: hyperparameters from the
 * metadata, then every weight tensor looked up by its GGUF name and checked
 * (presence, dimensions, element type) against the config, so a backend can
 * trust every pointer and row size it is given. */
#include "model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "quant.h"

/* Reads "<arch>.<suffix>" as a positive int. Required keys report their
 * absence; optional ones leave *out unchanged. */
static int cfg_int(const gguf_file *g, const char *arch, const char *suffix, bool required,
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

static int cfg_float(const gguf_file *g, const char *arch, const char *suffix, bool required,
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

static int read_config(const gguf_file *g, model_config *c) {
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
    if (!gguf_str_eq(s, "llama")) {
        char name[128];
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "unsupported architecture '%s' (general.architecture; supported: llama)",
                       gguf_str_escape(s, name, sizeof name));
    }
    snprintf(c->arch, sizeof c->arch, "llama");
    /* only for display: escaped, so it cannot end early or drive a terminal */
    if (gguf_get_str(g, "general.name", &s) == M40LLM_OK)
        gguf_str_escape(s, c->name, sizeof c->name);
    const char *a = "llama";
    if ((rc = cfg_int(g, a, "block_count", true, &c->n_layer))) return rc;
    if ((rc = cfg_int(g, a, "embedding_length", true, &c->n_embd))) return rc;
    if ((rc = cfg_int(g, a, "feed_forward_length", true, &c->n_ff))) return rc;
    if ((rc = cfg_int(g, a, "attention.head_count", true, &c->n_head))) return rc;
    if ((rc = cfg_int(g, a, "context_length", true, &c->n_ctx_train))) return rc;
    c->n_head_kv = c->n_head;
    if ((rc = cfg_int(g, a, "attention.head_count_kv", false, &c->n_head_kv))) return rc;
    if (c->n_embd % c->n_head)
        return err_set(
            M40LLM_ERR_UNSUPPORTED,
            "llama.embedding_length %d is not a multiple of llama.attention.head_count %d",
            c->n_embd, c->n_head);
    c->head_dim = c->n_embd / c->n_head;
    if (c->n_head % c->n_head_kv)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "llama.attention.head_count %d is not a multiple of "
                       "llama.attention.head_count_kv %d",
                       c->n_head, c->n_head_kv);
    /* separate key/value head sizes exist in GGUF but not in llama models we run */
    int key_len = c->head_dim, val_len = c->head_dim;
    if ((rc = cfg_int(g, a, "attention.key_length", false, &key_len))) return rc;
    if ((rc = cfg_int(g, a, "attention.value_length", false, &val_len))) return rc;
    if (key_len != c->head_dim || val_len != c->head_dim)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "attention key/value length %d/%d differs from embedding_length / "
                       "head_count = %d",
                       key_len, val_len, c->head_dim);
    c->n_rot = c->head_dim;
    if ((rc = cfg_int(g, a, "rope.dimension_count", false, &c->n_rot))) return rc;
    if (c->n_rot > c->head_dim || c->n_rot % 2)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "llama.rope.dimension_count %d must be even and <= head size %d", c->n_rot,
                       c->head_dim);
    c->rope_freq_base = 10000.0f;
    if ((rc = cfg_float(g, a, "rope.freq_base", false, &c->rope_freq_base))) return rc;
    if ((rc = cfg_float(g, a, "attention.layer_norm_rms_epsilon", true, &c->rms_eps))) return rc;

    /* rope scaling: only linear (positions divided by the factor) is supported */
    c->rope_freq_scale = 1.0f;
    float factor = 0.0f;
    if ((rc = cfg_float(g, a, "rope.scaling.factor", false, &factor))) return rc;
    if (factor == 0.0f && (rc = cfg_float(g, a, "rope.scale_linear", false, &factor))) return rc;
    bool scaled = true;
    if (gguf_get_str(g, "llama.rope.scaling.type", &s) == M40LLM_OK) {
        if (gguf_str_eq(s, "none")) {
            scaled = false;
        } else if (!gguf_str_eq(s, "linear")) {
            char type[64];
            return err_set(M40LLM_ERR_UNSUPPORTED,
                           "llama.rope.scaling.type '%s' is not supported (none, linear)",
                           gguf_str_escape(s, type, sizeof type));
        }
    }
    if (scaled && factor > 0.0f) c->rope_freq_scale = 1.0f / factor;

    /* Mixtral-style files are `llama` with experts: say so instead of
     * reporting the dense FFN tensors missing */
    int64_t experts = 0;
    rc = gguf_get_i64(g, "llama.expert_count", &experts);
    if (rc != M40LLM_OK && rc != M40LLM_ERR_NOT_FOUND)
        return err_set(M40LLM_ERR_TYPE, "metadata key llama.expert_count: expected an integer");
    if (experts < 0)
        return err_set(M40LLM_ERR_FORMAT,
                       "metadata key llama.expert_count: value %" PRId64 " out of range", experts);
    if (experts > 0)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "mixture-of-experts models (llama.expert_count = %" PRId64
                       ") are not supported",
                       experts);
    return M40LLM_OK;
}

/* The nine weights of every layer, in model_layer order. */
enum { LAYER_TENSORS = 9 };
static const char *const layer_suffix[LAYER_TENSORS] = {
    "attn_norm", "attn_q",   "attn_k", "attn_v",   "attn_output",
    "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down",
};

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
 * layer: no tensor may name a layer beyond it, and every layer must have its
 * nine weights. The presence loop stops at the first gap, so a huge count in
 * a small file costs no more than the tensors that are there. */
static int check_layers(const gguf_file *g, const model_config *c) {
    int64_t top = -1;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        int64_t il = layer_of(t->name);
        if (il >= c->n_layer) {
            char name[128];
            return err_set(M40LLM_ERR_FORMAT,
                           "tensor %s is beyond llama.block_count %d (layers 0..%d): the "
                           "metadata and the tensors disagree",
                           gguf_str_escape(t->name, name, sizeof name), c->n_layer, c->n_layer - 1);
        }
        if (il > top) top = il;
    }
    for (int il = 0; il < c->n_layer; il++) {
        for (int k = 0; k < LAYER_TENSORS; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", il, layer_suffix[k]);
            if (gguf_find_tensor(g, name)) continue;
            if (top < 0)
                return err_set(M40LLM_ERR_NOT_FOUND,
                               "tensor %s is missing (llama.block_count is %d; the file has no "
                               "blk.* tensors)",
                               name, c->n_layer);
            return err_set(M40LLM_ERR_NOT_FOUND,
                           "tensor %s is missing (llama.block_count is %d; the highest layer "
                           "with tensors is %" PRId64 ")",
                           name, c->n_layer, top);
        }
    }
    return M40LLM_OK;
}

/* The vocabulary sizes the metadata states must match token_embd's rows:
 * the tokenizer must not produce ids the embedding does not have. */
static int check_vocab(const gguf_file *g, int n_vocab) {
    int64_t v;
    int rc = gguf_get_i64(g, "llama.vocab_size", &v);
    if (rc == M40LLM_OK && v != n_vocab)
        return err_set(M40LLM_ERR_SHAPE,
                       "llama.vocab_size is %" PRId64 " but token_embd.weight has %d rows", v,
                       n_vocab);
    if (rc != M40LLM_OK && rc != M40LLM_ERR_NOT_FOUND)
        return err_set(M40LLM_ERR_TYPE, "metadata key llama.vocab_size: expected an integer");
    const gguf_value *toks;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) == M40LLM_OK &&
        toks->arr.n > (uint64_t)n_vocab)
        return err_set(M40LLM_ERR_SHAPE,
                       "tokenizer.ggml.tokens holds %" PRIu64
                       " tokens but token_embd.weight has only %d rows",
                       toks->arr.n, n_vocab);
    return M40LLM_OK;
}

static void shape_str(const int64_t *ne, int n, char *buf, size_t size) {
    size_t o = 0;
    o += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%" PRId64, i ? ", " : "", ne[i]);
    if (o < size) snprintf(buf + o, size - o, "]");
}

/* Finds a tensor and checks its type is computable and its shape is exactly
 * {ne0} (n1 == 0) or {ne0, ne1}. */
static int bind_tensor(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1,
                       model_tensor *t) {
    const gguf_tensor *gt = gguf_find_tensor(g, name);
    if (!gt) return err_set(M40LLM_ERR_NOT_FOUND, "tensor %s is missing", name);
    int want_dims = ne1 ? 2 : 1;
    int64_t want[4] = {ne0, ne1 ? ne1 : 1, 1, 1};
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
    if (gt->nbytes < row * (size_t)want[1])
        return err_set(M40LLM_ERR_FORMAT, "tensor %s: %zu bytes of data, %zu expected", name,
                       gt->nbytes, row * (size_t)want[1]);
    char *copy = malloc(gt->name.len + 1);
    if (!copy) return err_set(M40LLM_ERR_OOM, "out of memory");
    gguf_str_copy(gt->name, copy, gt->name.len + 1);
    t->name = copy;
    t->type = gt->type;
    memcpy(t->ne, gt->ne, sizeof t->ne);
    t->data = gt->data;
    t->nbytes = row * (size_t)want[1];
    t->row_bytes = row;
    return M40LLM_OK;
}

static int bind_layer(const gguf_file *g, const model_config *c, int il, model_layer *L) {
    const int64_t E = c->n_embd, q_dim = (int64_t)c->n_head * c->head_dim,
                  kv_dim = (int64_t)c->n_head_kv * c->head_dim, F = c->n_ff;
    struct {
        int64_t ne0, ne1;
        model_tensor *t;
    } want[LAYER_TENSORS] = {
        {E, 0, &L->attn_norm}, {E, q_dim, &L->wq}, {E, kv_dim, &L->wk},
        {E, kv_dim, &L->wv},   {q_dim, E, &L->wo}, {E, 0, &L->ffn_norm},
        {E, F, &L->w_gate},    {E, F, &L->w_up},   {F, E, &L->w_down},
    };
    for (int i = 0; i < LAYER_TENSORS; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, layer_suffix[i]);
        int rc = bind_tensor(g, name, want[i].ne0, want[i].ne1, want[i].t);
        if (rc) return rc;
    }
    return M40LLM_OK;
}

static void free_tensor_name(model_tensor *t) {
    free((void *)t->name);
    t->name = NULL;
}

static void free_model(model *m, bool close_gguf) {
    if (!m) return;
    if (m->layers) {
        for (int i = 0; i < m->cfg.n_layer; i++) {
            model_layer *L = &m->layers[i];
            model_tensor *ts[] = {&L->attn_norm, &L->wq,     &L->wk,   &L->wv,    &L->wo,
                                  &L->ffn_norm,  &L->w_gate, &L->w_up, &L->w_down};
            for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) free_tensor_name(ts[j]);
        }
        free(m->layers);
    }
    if (!m->tied_output) free_tensor_name(&m->output);
    free_tensor_name(&m->tok_embd);
    free_tensor_name(&m->output_norm);
    if (close_gguf) gguf_close(m->gguf);
    free(m);
}

int model_from_gguf(gguf_file *g, model **out) {
    *out = NULL;
    if (!g) return err_set(M40LLM_ERR_INVALID_ARG, "model_from_gguf: no file");
    model *m = calloc(1, sizeof *m);
    if (!m) return err_set(M40LLM_ERR_OOM, "out of memory");
    m->tied_output = true; /* until output.weight is bound: free_model must not free it twice */
    int rc = read_config(g, &m->cfg);
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
    if ((rc = check_vocab(g, c->n_vocab))) goto fail;
    if ((rc = check_layers(g, c))) goto fail;
    if ((rc = bind_tensor(g, "token_embd.weight", c->n_embd, c->n_vocab, &m->tok_embd))) goto fail;
    if ((rc = bind_tensor(g, "output_norm.weight", c->n_embd, 0, &m->output_norm))) goto fail;
    if (gguf_find_tensor(g, "output.weight")) {
        if ((rc = bind_tensor(g, "output.weight", c->n_embd, c->n_vocab, &m->output))) goto fail;
        m->tied_output = false;
    } else {
        m->output = m->tok_embd; /* shares the name pointer: freed once */
    }
    /* n_layer <= tensors / 9 now, and tensors cannot overlap (gguf_parse), so
     * this and every per-layer allocation a backend makes is bounded by the
     * file's own size */
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) {
        rc = err_set(M40LLM_ERR_OOM, "out of memory for %d layers", c->n_layer);
        goto fail;
    }
    uint64_t bytes = m->tok_embd.nbytes + m->output_norm.nbytes;
    if (!m->tied_output) bytes += m->output.nbytes;
    for (int il = 0; il < c->n_layer; il++) {
        model_layer *L = &m->layers[il];
        if ((rc = bind_layer(g, c, il, L))) goto fail;
        bytes += L->attn_norm.nbytes + L->wq.nbytes + L->wk.nbytes + L->wv.nbytes + L->wo.nbytes +
                 L->ffn_norm.nbytes + L->w_gate.nbytes + L->w_up.nbytes + L->w_down.nbytes;
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
