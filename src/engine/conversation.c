/* Conversation state and the messages -> prompt ids path (conversation.h). */
#include "conversation.h"

#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "err.h"

struct conv {
    const tokenizer *tok; /* borrowed */
    char *tmpl;           /* template source; NULL = raw mode */
    char *bos, *eos;      /* special-token texts for the template ("" when absent) */
    char *system;         /* system message or NULL */
    cJSON *messages;      /* chat mode: [n] {"role","content"}, system first */
    bool pending;         /* the last user message waits for its answer */
    char *pending_text;   /* raw mode: that user message */
    char *transcript;     /* raw mode: everything sent and generated so far, or NULL */
    uint8_t *untrusted;   /* [strlen(transcript)] 1 = written by the model, NULL = none:
                             its answers never become control tokens */
    char *fallback_why;   /* why the last render used ChatML, or NULL */
};

static char *dup_or_empty(const char *s) {
    return strdup(s ? s : "");
}

int conv_create(const tokenizer *tok, const char *tmpl, const char *bos, const char *eos,
                conv **out) {
    *out = NULL;
    if (!tok) return err_set(M40LLM_ERR_INVALID_ARG, "conversation: no tokenizer");
    conv *c = calloc(1, sizeof *c);
    if (!c) return err_set(M40LLM_ERR_OOM, "out of memory");
    c->tok = tok;
    if (tmpl) {
        c->tmpl = strdup(tmpl);
        c->bos = dup_or_empty(bos);
        c->eos = dup_or_empty(eos);
        c->messages = cJSON_CreateArray();
        if (!c->tmpl || !c->bos || !c->eos || !c->messages) {
            conv_free(c);
            return err_set(M40LLM_ERR_OOM, "out of memory");
        }
    }
    *out = c;
    return M40LLM_OK;
}

void conv_free(conv *c) {
    if (!c) return;
    free(c->tmpl);
    free(c->bos);
    free(c->eos);
    free(c->system);
    cJSON_Delete(c->messages);
    free(c->pending_text);
    free(c->transcript);
    free(c->untrusted);
    free(c->fallback_why);
    free(c);
}

bool conv_is_raw(const conv *c) {
    return c->tmpl == NULL;
}
const char *conv_system(const conv *c) {
    return c->system;
}
const char *conv_fallback(const conv *c) {
    return c->fallback_why;
}

static cJSON *make_message(const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    if (!cJSON_AddStringToObject(m, "role", role) ||
        !cJSON_AddStringToObject(m, "content", content)) {
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

static bool is_role(const cJSON *msg, const char *role) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "role");
    return cJSON_IsString(r) && !strcmp(r->valuestring, role);
}

int conv_set_system(conv *c, const char *text) {
    char *sys = text && *text ? strdup(text) : NULL;
    if (text && *text && !sys) return err_set(M40LLM_ERR_OOM, "out of memory");
    free(c->system);
    c->system = sys;
    if (!c->messages) return M40LLM_OK;
    if (is_role(cJSON_GetArrayItem(c->messages, 0), "system"))
        cJSON_DeleteItemFromArray(c->messages, 0);
    if (c->system) {
        cJSON *m = make_message("system", c->system);
        if (!m || !cJSON_InsertItemInArray(c->messages, 0, m)) {
            cJSON_Delete(m);
            return err_set(M40LLM_ERR_OOM, "out of memory");
        }
    }
    return M40LLM_OK;
}

void conv_clear(conv *c) {
    if (c->messages) {
        cJSON_Delete(c->messages);
        c->messages = cJSON_CreateArray();
        if (c->system && c->messages) {
            cJSON *m = make_message("system", c->system);
            if (m) cJSON_AddItemToArray(c->messages, m);
        }
    }
    free(c->pending_text);
    free(c->transcript);
    free(c->untrusted);
    c->pending_text = NULL;
    c->transcript = NULL;
    c->untrusted = NULL;
    c->pending = false;
}

int conv_add_user(conv *c, const char *text) {
    if (!text) return err_set(M40LLM_ERR_INVALID_ARG, "conversation: no user text");
    if (c->pending)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "conversation: the last user message has no answer yet");
    if (c->messages) {
        cJSON *m = make_message("user", text);
        if (!m || !cJSON_AddItemToArray(c->messages, m)) {
            cJSON_Delete(m);
            return err_set(M40LLM_ERR_OOM, "out of memory");
        }
    } else if (!(c->pending_text = strdup(text))) {
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    c->pending = true;
    return M40LLM_OK;
}

int conv_undo_user(conv *c) {
    if (!c->pending)
        return err_set(M40LLM_ERR_INVALID_ARG, "conversation: no user message to undo");
    if (c->messages) cJSON_DeleteItemFromArray(c->messages, cJSON_GetArraySize(c->messages) - 1);
    free(c->pending_text);
    c->pending_text = NULL;
    c->pending = false;
    return M40LLM_OK;
}

static char *str_cat3(const char *a, const char *b, const char *c) {
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
    char *s = malloc(la + lb + lc + 1);
    if (!s) return NULL;
    if (la) memcpy(s, a, la);
    if (lb) memcpy(s + la, b, lb);
    if (lc) memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

int conv_add_assistant(conv *c, const char *text) {
    if (!c->pending)
        return err_set(M40LLM_ERR_INVALID_ARG, "conversation: no user message to answer");
    if (!text) text = "";
    c->pending = false;
    if (c->messages) {
        cJSON *m = make_message("assistant", text);
        if (!m || !cJSON_AddItemToArray(c->messages, m)) {
            cJSON_Delete(m);
            return err_set(M40LLM_ERR_OOM, "out of memory");
        }
        return M40LLM_OK;
    }
    /* transcript = earlier transcript + the user's text (trusted) + answer */
    size_t old = c->transcript ? strlen(c->transcript) : 0;
    size_t tl = old + strlen(c->pending_text), al = strlen(text);
    char *t = str_cat3(c->transcript, c->pending_text, text);
    uint8_t *m = t ? calloc(tl + al + 1, 1) : NULL;
    if (m) {
        if (c->untrusted) memcpy(m, c->untrusted, old);
        memset(m + tl, 1, al);
    }
    free(c->transcript);
    free(c->untrusted);
    free(c->pending_text);
    c->pending_text = NULL;
    c->transcript = m ? t : NULL; /* out of memory: start over rather than trust it */
    c->untrusted = m;
    if (!m) {
        free(t);
        return err_set(M40LLM_ERR_OOM, "out of memory: the conversation starts over");
    }
    return M40LLM_OK;
}

static int fail(conv_step *failed, conv_step step, int rc) {
    if (failed) *failed = step;
    return rc;
}

/* Raw mode: transcript + pending text, the model's bytes marked. */
static int render_raw(const conv *c, chat_prompt *out) {
    memset(out, 0, sizeof *out);
    out->text = str_cat3(c->transcript, c->pending_text, NULL);
    out->len = out->text ? strlen(out->text) : 0;
    if (out->text && c->untrusted) {
        out->untrusted = calloc(out->len + 1, 1);
        if (out->untrusted) memcpy(out->untrusted, c->untrusted, strlen(c->transcript));
    }
    if (!out->text || (c->untrusted && !out->untrusted)) {
        chat_prompt_free(out);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    return M40LLM_OK;
}

/* The tail every render shares: tokenize over the mask, drop a doubled
 * BOS, check empty and too long. Consumes p. */
static int tokenize_prompt(const conv *c, chat_prompt *p, int n_ctx, int32_t **ids, size_t *n,
                           conv_step *failed) {
    int32_t *v = NULL;
    size_t len = 0;
    int rc = tokenizer_encode_masked(c->tok, p->text, p->len, p->untrusted,
                                     TOKENIZER_ADD_SPECIAL | TOKENIZER_PARSE_SPECIAL, &v, &len);
    chat_prompt_free(p);
    if (rc) return fail(failed, CONV_FAIL_TOKENIZE, rc);
    /* A template that writes bos_token itself plus add_bos would double it. */
    int32_t bos = tokenizer_bos(c->tok);
    if (len >= 2 && bos >= 0 && v[0] == bos && v[1] == bos) memmove(v, v + 1, --len * sizeof *v);
    if (len == 0) {
        free(v);
        return fail(failed, CONV_FAIL_EMPTY,
                    err_set(M40LLM_ERR_INVALID_ARG, "the prompt is empty"));
    }
    if (n_ctx > 0 && len > (size_t)n_ctx) {
        free(v);
        return fail(failed, CONV_FAIL_TOO_LONG,
                    err_set(M40LLM_ERR_CONTEXT_FULL,
                            "the prompt is %zu tokens but the context holds only %d", len, n_ctx));
    }
    *ids = v;
    *n = len;
    return M40LLM_OK;
}

/* Renders messages with c's template, remembering a ChatML fallback. */
static int render_chat(conv *c, const cJSON *messages, chat_prompt *out) {
    bool fell_back = false;
    int rc = chat_render_prompt(c->tmpl, messages, true, c->bos, c->eos, 0, out, &fell_back);
    free(c->fallback_why);
    c->fallback_why = NULL;
    if (!rc && fell_back) {
        const char *why = m40llm_last_error();
        c->fallback_why = strdup(why && *why ? why : "unsupported template");
        if (!c->fallback_why) {
            chat_prompt_free(out);
            return err_set(M40LLM_ERR_OOM, "out of memory");
        }
    }
    return rc;
}

int conv_prompt(conv *c, int n_ctx, int32_t **ids, size_t *n, conv_step *failed) {
    *ids = NULL;
    *n = 0;
    fail(failed, CONV_OK, 0);
    chat_prompt p;
    int rc = c->messages ? render_chat(c, c->messages, &p) : render_raw(c, &p);
    if (rc) return fail(failed, CONV_FAIL_RENDER, rc);
    return tokenize_prompt(c, &p, n_ctx, ids, n, failed);
}

/* A checked copy of an OpenAI-style messages array: role and content only. */
static int check_messages(const cJSON *messages, cJSON **out) {
    *out = NULL;
    if (!cJSON_IsArray(messages))
        return err_set(M40LLM_ERR_TYPE, "messages: must be an array of {role, content} objects");
    if (cJSON_GetArraySize(messages) == 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "messages: the array is empty");
    cJSON *copy = cJSON_CreateArray();
    if (!copy) return err_set(M40LLM_ERR_OOM, "out of memory");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        int rc = M40LLM_OK;
        if (!cJSON_IsObject(m))
            rc = err_set(M40LLM_ERR_TYPE, "messages[%d]: must be an object", i);
        else if (!role)
            rc = err_set(M40LLM_ERR_INVALID_ARG, "messages[%d].role: missing", i);
        else if (!cJSON_IsString(role))
            rc = err_set(M40LLM_ERR_TYPE, "messages[%d].role: must be a string", i);
        else if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                 strcmp(role->valuestring, "assistant"))
            /* the role is client text: named, not quoted */
            rc = err_set(M40LLM_ERR_INVALID_ARG,
                         "messages[%d].role: must be \"system\", \"user\" or \"assistant\"", i);
        else if (!content)
            rc = err_set(M40LLM_ERR_INVALID_ARG, "messages[%d].content: missing", i);
        else if (!cJSON_IsString(content))
            rc = err_set(M40LLM_ERR_TYPE, "messages[%d].content: must be a string", i);
        cJSON *item = rc ? NULL : make_message(role->valuestring, content->valuestring);
        if (!rc && (!item || !cJSON_AddItemToArray(copy, item))) {
            cJSON_Delete(item);
            rc = err_set(M40LLM_ERR_OOM, "out of memory");
        }
        if (rc) {
            cJSON_Delete(copy);
            return rc;
        }
        i++;
    }
    *out = copy;
    return M40LLM_OK;
}

int conv_render_messages(conv *c, const cJSON *messages, int n_ctx, int32_t **ids, size_t *n,
                         conv_step *failed) {
    *ids = NULL;
    *n = 0;
    fail(failed, CONV_OK, 0);
    if (!c->tmpl)
        return fail(failed, CONV_FAIL_INPUT,
                    err_set(M40LLM_ERR_INVALID_ARG, "messages need a chat template (raw mode)"));
    cJSON *copy = NULL;
    int rc = check_messages(messages, &copy);
    if (rc) return fail(failed, CONV_FAIL_INPUT, rc);
    chat_prompt p;
    rc = render_chat(c, copy, &p);
    cJSON_Delete(copy);
    if (rc) return fail(failed, CONV_FAIL_RENDER, rc);
    return tokenize_prompt(c, &p, n_ctx, ids, n, failed);
}
