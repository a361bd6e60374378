/* The chat template and special-token texts that a GGUF model records. */
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "err.h"

static int dup_str(gguf_str s, char **out) {
    *out = malloc(s.len + 1);
    if (!*out) return err_set(M40LLM_ERR_OOM, "chat: out of memory");
    memcpy(*out, s.data, s.len);
    (*out)[s.len] = '\0';
    return M40LLM_OK;
}

/* text of the token whose id the metadata key holds; NULL if absent */
static int token_text(const gguf_file *f, const char *id_key, char **out) {
    *out = NULL;
    uint32_t id;
    if (gguf_get_u32(f, id_key, &id) != M40LLM_OK) return M40LLM_OK;
    const gguf_value *toks;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &toks) != M40LLM_OK) return M40LLM_OK;
    gguf_str s;
    if (id >= toks->arr.n || gguf_arr_str(toks, id, &s) != M40LLM_OK)
        return err_set(M40LLM_ERR_FORMAT, "%s = %u is not a token id (vocab has %llu)", id_key, id,
                       (unsigned long long)toks->arr.n);
    return dup_str(s, out);
}

int chat_model_template(const gguf_file *f, char **tmpl, char **bos, char **eos) {
    char *t = NULL, *b = NULL, *e = NULL;
    gguf_str s;
    int rc = M40LLM_OK;
    if (tmpl && gguf_get_str(f, "tokenizer.chat_template", &s) == M40LLM_OK) rc = dup_str(s, &t);
    if (rc == M40LLM_OK && bos) rc = token_text(f, "tokenizer.ggml.bos_token_id", &b);
    if (rc == M40LLM_OK && eos) rc = token_text(f, "tokenizer.ggml.eos_token_id", &e);
    if (rc != M40LLM_OK) {
        free(t);
        free(b);
        free(e);
        return rc;
    }
    if (tmpl) *tmpl = t;
    if (bos) *bos = b;
    if (eos) *eos = e;
    return M40LLM_OK;
}
