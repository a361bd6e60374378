/* Builds a tokenizer from the tokenizer.ggml.* metadata of a GGUF file. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model/arch/arch_vocab.h"
#include "tokenizer_int.h"

/* Reads a string array; pointers go into the file mapping. */
static int tok_load_strs(const gguf_file *f, const char *key, bool required, const char ***strs,
                         uint32_t **lens, int32_t *n) {
    const gguf_value *arr = NULL;
    *strs = NULL;
    *lens = NULL;
    *n = 0;
    int rc = gguf_get_arr(f, key, &arr);
    if (rc == M40LLM_ERR_NOT_FOUND && !required) return M40LLM_OK;
    if (rc == M40LLM_ERR_NOT_FOUND)
        return err_set(rc, "tokenizer: metadata key %s is missing", key);
    if (rc) return err_prefix(rc, "tokenizer: %s", key);
    if (arr->arr.type != GGUF_VT_STRING)
        return err_set(M40LLM_ERR_TYPE, "tokenizer: %s is an array of %s, expected strings", key,
                       gguf_vtype_name(arr->arr.type));
    if (arr->arr.n > 0x7FFFFFFF)
        return err_set(M40LLM_ERR_FORMAT, "tokenizer: %s is too long", key);
    *n = (int32_t)arr->arr.n;
    *strs = malloc(sizeof **strs * (arr->arr.n ? arr->arr.n : 1));
    *lens = malloc(sizeof **lens * (arr->arr.n ? arr->arr.n : 1));
    if (!*strs || !*lens) return err_set(M40LLM_ERR_OOM, "tokenizer: out of memory for %s", key);
    for (int32_t i = 0; i < *n; i++) {
        gguf_str s;
        rc = gguf_arr_str(arr, (uint64_t)i, &s);
        if (rc) return err_prefix(rc, "tokenizer: %s[%d]", key, i);
        if (s.len > 0xFFFFFF)
            return err_set(M40LLM_ERR_FORMAT, "tokenizer: %s[%d] is %llu bytes long", key, i,
                           (unsigned long long)s.len);
        (*strs)[i] = s.data ? s.data : "";
        (*lens)[i] = (uint32_t)s.len;
    }
    return M40LLM_OK;
}

/* A per-token numeric array that must match the token count. */
static const gguf_value *tok_load_per_token(const gguf_file *f, const char *key, int32_t n,
                                            int *rc) {
    const gguf_value *arr = NULL;
    *rc = gguf_get_arr(f, key, &arr);
    if (*rc == M40LLM_ERR_NOT_FOUND) {
        *rc = M40LLM_OK;
        return NULL;
    }
    if (*rc) {
        *rc = err_prefix(*rc, "tokenizer: %s", key);
        return NULL;
    }
    if (arr->arr.n != (uint64_t)n) {
        *rc = err_set(M40LLM_ERR_FORMAT, "tokenizer: %s has %llu entries for %d tokens", key,
                      (unsigned long long)arr->arr.n, n);
        return NULL;
    }
    return arr;
}

static int tok_load_id(const gguf_file *f, const char *key, int32_t *id) {
    uint32_t v;
    int rc = gguf_get_u32(f, key, &v);
    if (rc == M40LLM_ERR_NOT_FOUND) return M40LLM_OK;
    if (rc) return err_prefix(rc, "tokenizer: %s", key);
    if (v > 0x7FFFFFFF)
        return err_set(M40LLM_ERR_FORMAT, "tokenizer: %s = %u is not a token id", key, v);
    *id = (int32_t)v;
    return M40LLM_OK;
}

static int tok_load_flag(const gguf_file *f, const char *key, int *flag) {
    bool b;
    int rc = gguf_get_bool(f, key, &b);
    if (rc == M40LLM_ERR_NOT_FOUND) return M40LLM_OK;
    if (rc) return err_prefix(rc, "tokenizer: %s", key);
    *flag = b ? 1 : 0;
    return M40LLM_OK;
}

int tokenizer_load(const gguf_file *f, tokenizer **out) {
    if (!f || !out) return err_set(M40LLM_ERR_INVALID_ARG, "tokenizer_load: NULL argument");
    *out = NULL;
    tokenizer_vocab v;
    tokenizer_vocab_init(&v);
    char model[32], pre[64] = "", name[128] = "";
    gguf_str s;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &s);
    if (rc == M40LLM_ERR_NOT_FOUND)
        return err_set(rc, "tokenizer: metadata key tokenizer.ggml.model is missing");
    if (rc) return err_prefix(rc, "tokenizer: tokenizer.ggml.model");
    gguf_str_copy(s, model, sizeof model);
    if (gguf_str_eq(s, "llama")) {
        v.type = TOKENIZER_SPM;
    } else if (gguf_str_eq(s, "gpt2")) {
        v.type = TOKENIZER_BPE;
    } else {
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "tokenizer.ggml.model = '%s' is not supported (only 'llama' and 'gpt2')",
                       model);
    }
    rc = gguf_get_str(f, "tokenizer.ggml.pre", &s);
    if (rc == M40LLM_OK && gguf_str_has_nul(s)) {
        char shown[96];
        return err_set(M40LLM_ERR_FORMAT, "tokenizer.ggml.pre '%s' holds a NUL byte",
                       gguf_str_escape(s, shown, sizeof shown));
    }
    if (rc == M40LLM_OK)
        gguf_str_copy(s, pre, sizeof pre);
    else if (rc != M40LLM_ERR_NOT_FOUND)
        return err_prefix(rc, "tokenizer: tokenizer.ggml.pre");
    if (gguf_get_str(f, "general.name", &s) == M40LLM_OK) gguf_str_escape(s, name, sizeof name);
    v.pre = pre;
    v.model_name = name;
    v.plain_user_defined = arch_plain_user_defined(f);

    const char **tokens = NULL, **merges = NULL;
    uint32_t *tok_lens = NULL, *merge_lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    rc = tok_load_strs(f, "tokenizer.ggml.tokens", true, &tokens, &tok_lens, &v.n_tokens);
    if (!rc && v.type == TOKENIZER_BPE)
        rc = tok_load_strs(f, "tokenizer.ggml.merges", true, &merges, &merge_lens, &v.n_merges);
    const gguf_value *sc = NULL, *ty = NULL;
    if (!rc) sc = tok_load_per_token(f, "tokenizer.ggml.scores", v.n_tokens, &rc);
    if (!rc) ty = tok_load_per_token(f, "tokenizer.ggml.token_type", v.n_tokens, &rc);
    if (!rc && sc) {
        scores = malloc(sizeof *scores * (size_t)v.n_tokens);
        if (!scores) rc = err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
        for (int32_t i = 0; !rc && i < v.n_tokens; i++)
            if ((rc = gguf_arr_f32(sc, (uint64_t)i, &scores[i])))
                rc = err_prefix(rc, "tokenizer: tokenizer.ggml.scores[%d]", i);
    }
    if (!rc && ty) {
        types = malloc(sizeof *types * (size_t)v.n_tokens);
        if (!types) rc = err_set(M40LLM_ERR_OOM, "tokenizer: out of memory");
        for (int32_t i = 0; !rc && i < v.n_tokens; i++) {
            int64_t x;
            if ((rc = gguf_arr_i64(ty, (uint64_t)i, &x)))
                rc = err_prefix(rc, "tokenizer: tokenizer.ggml.token_type[%d]", i);
            else
                types[i] = x >= 0 && x <= TOKEN_TYPE_BYTE ? (int32_t)x : TOKEN_TYPE_UNDEFINED;
        }
    }
    if (!rc) rc = tok_load_id(f, "tokenizer.ggml.bos_token_id", &v.bos);
    if (!rc) rc = tok_load_id(f, "tokenizer.ggml.eos_token_id", &v.eos);
    if (!rc) rc = tok_load_id(f, "tokenizer.ggml.eot_token_id", &v.eot);
    if (!rc) rc = tok_load_id(f, "tokenizer.ggml.eom_token_id", &v.eom);
    if (!rc) rc = tok_load_id(f, "tokenizer.ggml.unknown_token_id", &v.unk);
    if (!rc) rc = tok_load_id(f, "tokenizer.ggml.padding_token_id", &v.pad);
    if (!rc) rc = tok_load_flag(f, "tokenizer.ggml.add_bos_token", &v.add_bos);
    if (!rc) rc = tok_load_flag(f, "tokenizer.ggml.add_eos_token", &v.add_eos);
    if (!rc) rc = tok_load_flag(f, "tokenizer.ggml.add_space_prefix", &v.add_space_prefix);
    if (!rc) {
        v.tokens = tokens;
        v.token_lens = tok_lens;
        v.merges = merges;
        v.merge_lens = merge_lens;
        v.scores = scores;
        v.token_types = types;
        rc = tokenizer_create(&v, out);
    }
    free(tokens);
    free(tok_lens);
    free(merges);
    free(merge_lens);
    free(scores);
    free(types);
    return rc;
}
