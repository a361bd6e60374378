/* The chat template and special-token texts that a GGUF model records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "err.h"

/* what: the metadata it came from, for the error. A C string would end at a
 * NUL byte, silently dropping the rest of a template. */
static int dup_str(gguf_str s, const char *what, char **out) {
    *out = NULL;
    if (gguf_str_has_nul(s)) {
        const char *nul = memchr(s.data, 0, s.len);
        return err_set(M40LLM_ERR_FORMAT, "%s holds a NUL byte (at byte %zu of %llu)", what,
                       (size_t)(nul - s.data), (unsigned long long)s.len);
    }
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
    char what[96];
    snprintf(what, sizeof what, "the text of token %u (%s)", id, id_key);
    return dup_str(s, what, out);
}

int chat_model_template(const gguf_file *f, char **tmpl, char **bos, char **eos) {
    char *t = NULL, *b = NULL, *e = NULL;
    gguf_str s;
    int rc = M40LLM_OK;
    if (tmpl && gguf_get_str(f, "tokenizer.chat_template", &s) == M40LLM_OK)
        rc = dup_str(s, "tokenizer.chat_template", &t);
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
