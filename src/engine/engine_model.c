/* m40llm_model: a loaded GGUF (weights, tokenizer, chat template) and the
 * text-side calls of the public API (tokenize, detokenize, chat prompts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat.h"
#include "conversation.h"
#include "engine.h"
#include "engine_int.h"
#include "err.h"
#include "json_check.h"
#include "quant.h"

/* llama.cpp's general.file_type values, as its tools name them */
static const char *ftype_name(int ft) {
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",      [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",
        [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L",  [14] = "Q4_K_S",  [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S", [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL", [26] = "IQ3_S",  [27] = "IQ3_M",
        [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS", [31] = "IQ1_M",  [32] = "BF16",
    };
    if (ft >= 0 && ft < (int)(sizeof names / sizeof names[0]) && names[ft]) return names[ft];
    return NULL;
}

/* The file type's name, else the type holding most weight bytes. */
static void model_quant_label(const model *m, char *out, size_t cap) {
    uint32_t ft = 0;
    const char *n = NULL;
    if (!gguf_get_u32(m->gguf, "general.file_type", &ft)) n = ftype_name((int)ft);
    if (!n) {
        size_t bytes[64] = {0};
        for (int i = 0; i < m->cfg.n_layer; i++) {
            const model_layer *L = &m->layers[i];
            const model_tensor *ts[] = {&L->wq,      &L->wk,       &L->wv,     &L->wo,
                                        &L->w_gate,  &L->w_up,     &L->w_down, &L->gate_exps,
                                        &L->up_exps, &L->down_exps};
            for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++)
                if (ts[k]->type >= 0 && ts[k]->type < 64) bytes[ts[k]->type] += ts[k]->nbytes;
        }
        int best = 0;
        for (int t = 1; t < 64; t++)
            if (bytes[t] > bytes[best]) best = t;
        const quant_type_info *qi = quant_info(best);
        n = qi ? qi->name : "unknown";
    }
    snprintf(out, cap, "%s", n);
}

int engine_model_wrap(model *m, const char *path, m40llm_model **out) {
    *out = NULL;
    m40llm_model *mm = calloc(1, sizeof *mm);
    if (!mm) {
        model_free(m);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    mm->m = m;
    int rc = tokenizer_load(m->gguf, &mm->tok);
    if (!rc) rc = chat_model_template(m->gguf, &mm->tmpl, &mm->bos, &mm->eos);
    if (rc) {
        m40llm_model_free(mm);
        return rc;
    }
    mm->path = strdup(path ? path : "");
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path ? path : "model";
    mm->name = strdup(m->cfg.name[0] ? m->cfg.name : base);
    if (!mm->path || !mm->name) {
        m40llm_model_free(mm);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    model_quant_label(m, mm->quant, sizeof mm->quant);
    model_param_counts(m, &mm->n_params, &mm->n_params_active);
    mm->file_bytes = gguf_file_size(m->gguf);
    const int32_t tv = tokenizer_n_vocab(mm->tok);
    mm->n_text_vocab = tv > 0 && tv < m->cfg.n_vocab ? tv : m->cfg.n_vocab;
    *out = mm;
    return M40LLM_OK;
}

int m40llm_model_load(const char *path, m40llm_model **out) {
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_model_load: out is NULL");
    *out = NULL;
    if (!path) return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_model_load: no path");
    model *m = NULL;
    int rc = model_load(path, &m);
    if (rc) return rc;
    return engine_model_wrap(m, path, out);
}

void m40llm_model_free(m40llm_model *mm) {
    if (!mm) return;
    tokenizer_free(mm->tok);
    model_free(mm->m);
    free(mm->tmpl);
    free(mm->bos);
    free(mm->eos);
    free(mm->path);
    free(mm->name);
    free(mm);
}

int m40llm_model_set_chat_template(m40llm_model *mm, const char *source) {
    if (!mm || !source || !*source)
        return err_set(M40LLM_ERR_INVALID_ARG, "chat template: none given");
    /* rendered once now, so that a bad template fails here and not in
     * every request */
    cJSON *msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"Hello\"}]");
    if (!msgs) return err_set(M40LLM_ERR_OOM, "out of memory");
    char *text = NULL;
    int rc = chat_render(source, msgs, true, mm->bos, mm->eos, &text);
    cJSON_Delete(msgs);
    free(text);
    if (rc) return err_prefix(rc, "chat template");
    char *t = strdup(source);
    if (!t) return err_set(M40LLM_ERR_OOM, "out of memory");
    free(mm->tmpl);
    mm->tmpl = t;
    return M40LLM_OK;
}

void m40llm_model_get_info(const m40llm_model *mm, m40llm_model_info *o) {
    memset(o, 0, sizeof *o);
    if (!mm) return;
    const model_config *c = &mm->m->cfg;
    o->name = mm->name;
    o->path = mm->path;
    o->arch = c->arch;
    o->quant = mm->quant;
    o->chat_template = mm->tmpl;
    o->n_params = mm->n_params;
    o->n_params_active = mm->n_params_active;
    o->file_bytes = mm->file_bytes;
    o->weight_bytes = mm->m->weight_bytes;
    o->active_weight_bytes = model_active_bytes(mm->m);
    o->n_expert = c->n_expert;
    o->n_expert_used = c->n_expert_used;
    for (int il = 0; il < c->n_layer; il++) {
        const model_layer *L = &mm->m->layers[il];
        o->expert_bytes += L->gate_exps.nbytes + L->up_exps.nbytes + L->down_exps.nbytes;
    }
    o->n_ctx_train = c->n_ctx_train;
    o->n_vocab = c->n_vocab;
    o->n_embd = c->n_embd;
    o->n_layer = c->n_layer;
    o->n_head = c->n_head;
    o->n_head_kv = c->n_head_kv;
}

int m40llm_tokenize(const m40llm_model *mm, const char *text, size_t len, int add_special,
                    int parse_special, int32_t **ids, size_t *n) {
    if (!mm || (!text && len) || !ids || !n)
        return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_tokenize: NULL argument");
    unsigned f =
        (add_special ? TOKENIZER_ADD_SPECIAL : 0) | (parse_special ? TOKENIZER_PARSE_SPECIAL : 0);
    return tokenizer_encode(mm->tok, text ? text : "", len, f, ids, n);
}

int m40llm_detokenize(const m40llm_model *mm, const int32_t *ids, size_t n, int special,
                      char **text, size_t *len) {
    if (!mm || (!ids && n) || !text)
        return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_detokenize: NULL argument");
    *text = NULL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tokenizer_n_vocab(mm->tok))
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "token %zu (id %d) is outside the vocabulary of %d", i, ids[i],
                           tokenizer_n_vocab(mm->tok));
    char *raw = NULL, *clean = NULL;
    size_t rl = 0, cl = 0;
    int rc = tokenizer_decode(mm->tok, ids, n, special ? TOKENIZER_DECODE_SPECIAL : 0, &raw, &rl);
    size_t bad = 0;
    if (!rc) rc = tokenizer_utf8_sanitize(raw, rl, &clean, &cl, &bad);
    free(raw);
    if (rc) return rc;
    *text = clean;
    if (len) *len = cl;
    return M40LLM_OK;
}

int m40llm_chat_tokens(const m40llm_model *mm, const char *messages_json, size_t len, int n_ctx,
                       int32_t **ids, size_t *n) {
    if (!mm || !messages_json || !ids || !n)
        return err_set(M40LLM_ERR_INVALID_ARG, "m40llm_chat_tokens: NULL argument");
    *ids = NULL;
    *n = 0;
    int rc = json_check(messages_json, len, "messages", 0);
    if (rc) return rc;
    cJSON *msgs = cJSON_ParseWithLength(messages_json, len);
    if (!msgs) return err_set(M40LLM_ERR_FORMAT, "messages: malformed JSON");
    /* a conversation per call: rendering records its fallback reason in it */
    conv *c = NULL;
    rc = conv_create(mm->tok, mm->tmpl ? mm->tmpl : chat_template_chatml, mm->bos, mm->eos, &c);
    if (!rc) rc = conv_render_messages(c, msgs, n_ctx, ids, n, NULL);
    conv_free(c);
    cJSON_Delete(msgs);
    return rc;
}

model *engine_model_model(m40llm_model *mm) {
    return mm ? mm->m : NULL;
}

const tokenizer *engine_model_tokenizer(const m40llm_model *mm) {
    return mm ? mm->tok : NULL;
}
