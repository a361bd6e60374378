/* OpenAI-compatible routes: POST /v1/chat/completions, POST /v1/completions,
 * GET /v1/models[/{id}]. Parsing follows OpenAI's field names and ranges
 * (top_k, min_p, repeat_penalty and ignore_eos are accepted as extensions,
 * as vLLM and llama.cpp do); responses
 * and SSE chunks are shaped exactly as OpenAI sends them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv_int.h"

/* ---- parsing ---- */

/* Sampling fields shared by both routes. */

/* logit_bias: {"token id": bias in [-100, 100]} (the ids as decimal strings,
 * as OpenAI sends them); ids past the vocabulary are refused at submit. */
static int oai_logit_bias(const cJSON *lb, gen_spec *g, api_err *e) {
    if (!lb || cJSON_IsNull(lb)) return 0;
    if (!cJSON_IsObject(lb))
        return rq_fail(e, 400, "logit_bias", "'logit_bias' must be an object of token ids");
    const int n = cJSON_GetArraySize(lb);
    if (n > M40LLM_MAX_LOGIT_BIAS)
        return rq_fail(e, 400, "logit_bias", "at most %d entries in 'logit_bias'",
                       M40LLM_MAX_LOGIT_BIAS);
    if (n == 0) return 0;
    g->logit_bias = calloc((size_t)n, sizeof *g->logit_bias);
    if (!g->logit_bias) return rq_fail(e, 503, "logit_bias", "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, lb) {
        const char *k = it->string;
        char *end = NULL;
        long id = strtol(k, &end, 10);
        if (!*k || *end || k[0] == '-' || k[0] == '+' || k[0] == ' ' || id > INT32_MAX)
            return rq_fail(e, 400, "logit_bias", "'logit_bias' key '%.40s' is not a token id", k);
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= -100) || !(it->valuedouble <= 100))
            return rq_fail(e, 400, "logit_bias",
                           "'logit_bias' value of %.40s must be in [-100, 100]", k);
        g->logit_bias[g->n_logit_bias++] = (m40llm_logit_bias){(int32_t)id, (float)it->valuedouble};
    }
    return 0;
}

static int oai_parse_sampling(const cJSON *b, gen_spec *g, bool *seeded, api_err *e) {
    double d;
    long long v;
    int rc;
    if ((rc = rq_number(b, "temperature", NULL, 0, 2, &d, e)) < 0) return -1;
    if (rc) g->sampling.temperature = (float)d;
    if ((rc = rq_number(b, "top_p", NULL, 0, 1, &d, e)) < 0) return -1;
    if (rc) g->sampling.top_p = (float)d;
    if ((rc = rq_int(b, "top_k", NULL, 0, 1 << 30, &v, e)) < 0) return -1;
    if (rc) g->sampling.top_k = (int)v;
    if ((rc = rq_number(b, "min_p", NULL, 0, 1, &d, e)) < 0) return -1;
    if (rc) g->sampling.min_p = (float)d;
    if ((rc = rq_number(b, "repeat_penalty", NULL, 1e-3, 100, &d, e)) < 0) return -1;
    if (rc) g->sampling.repeat_penalty = (float)d;
    if ((rc = rq_number(b, "presence_penalty", NULL, -2, 2, &d, e)) < 0) return -1;
    if (rc) g->sampling.presence_penalty = (float)d;
    if ((rc = rq_number(b, "frequency_penalty", NULL, -2, 2, &d, e)) < 0) return -1;
    if (rc) g->sampling.frequency_penalty = (float)d;
    if ((rc = rq_seed(b, "seed", NULL, &g->sampling.seed, e)) < 0) return -1;
    *seeded = rc == 1;
    /* max_completion_tokens replaces the older max_tokens */
    if ((rc = rq_int(b, "max_tokens", NULL, 1, 1 << 30, &v, e)) < 0) return -1;
    if (rc) g->max_tokens = (int)v;
    if ((rc = rq_int(b, "max_completion_tokens", NULL, 1, 1 << 30, &v, e)) < 0) return -1;
    if (rc) g->max_tokens = (int)v;
    if ((rc = rq_int(b, "n", NULL, 1, 1 << 30, &v, e)) < 0) return -1;
    if (rc && v != 1) return rq_fail(e, 400, "n", "only n=1 is supported (got %lld)", v);
    if (rq_stops(b, "stop", NULL, &g->stops, &g->n_stops, e) < 0) return -1;
    if (oai_logit_bias(cJSON_GetObjectItemCaseSensitive(b, "logit_bias"), g, e) < 0) return -1;
    if (rq_bool(b, "stream", NULL, &g->stream, e) < 0) return -1;
    if (rq_bool(b, "ignore_eos", NULL, &g->ignore_eos, e) < 0) return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(b, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return rq_fail(e, 400, "stream_options", "'stream_options' must be an object");
        if (rq_bool(so, "include_usage", "stream_options.include_usage", &g->include_usage, e) < 0)
            return -1;
    }
    const char *model = NULL;
    if (rq_string(b, "model", NULL, &model, e) < 0) return -1;
    if (model) snprintf(g->model, sizeof g->model, "%s", model);
    /* what this server cannot do is refused, not silently ignored */
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(b, "tools");
    if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0)
        return rq_fail(e, 400, "tools", "tools (function calling) are not supported");
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(b, "response_format");
    if (rf && !cJSON_IsNull(rf)) {
        const char *type = NULL;
        if (!cJSON_IsObject(rf) || rq_string(rf, "type", "response_format.type", &type, e) < 0)
            return rq_fail(e, 400, "response_format", "'response_format' must be an object");
        if (type && !strcmp(type, "json_object")) {
            g->format = M40LLM_FORMAT_JSON;
        } else if (type && !strcmp(type, "json_schema")) {
            const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
            if (!cJSON_IsObject(js))
                return rq_fail(e, 400, "response_format.json_schema",
                               "'response_format.json_schema' must be an object");
            if (rq_json_schema(cJSON_GetObjectItemCaseSensitive(js, "schema"),
                               "response_format.json_schema.schema", g, e) < 0)
                return -1;
        } else if (type && strcmp(type, "text")) {
            return rq_fail(e, 400, "response_format",
                           "response_format '%s' is not supported (\"text\", \"json_object\" or "
                           "\"json_schema\")",
                           type);
        }
    }
    return 0;
}

/* Content: a string, null, or an array of {"type": "text", "text": ...}. */
static int oai_content_text(const cJSON *c, int idx, char **out, api_err *e) {
    char name[64];
    snprintf(name, sizeof name, "messages[%d].content", idx);
    if (!c || cJSON_IsNull(c))
        return (*out = strdup("")) ? 0 : rq_fail(e, 503, name, "out of memory");
    if (cJSON_IsString(c))
        return (*out = strdup(c->valuestring)) ? 0 : rq_fail(e, 503, name, "out of memory");
    if (!cJSON_IsArray(c))
        return rq_fail(e, 400, name, "'%s' must be a string or an array of text parts", name);
    size_t len = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type");
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") || !cJSON_IsString(x))
            return rq_fail(
                e, 400, name,
                "'%s': only text parts ({\"type\": \"text\", \"text\": ...}) are supported", name);
        len += strlen(x->valuestring) + 1;
    }
    char *s = malloc(len + 1);
    if (!s) return rq_fail(e, 503, name, "out of memory");
    size_t o = 0;
    cJSON_ArrayForEach(p, c) {
        const char *x = cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
        if (o) s[o++] = '\n';
        size_t l = strlen(x);
        memcpy(s + o, x, l);
        o += l;
    }
    s[o] = '\0';
    *out = s;
    return 0;
}

/* messages -> [{role, content: string}] for m40llm_chat_tokens. */
static int oai_messages(const cJSON *msgs, cJSON **out, api_err *e) {
    if (!msgs || cJSON_IsNull(msgs)) return rq_fail(e, 400, "messages", "'messages' is required");
    if (!cJSON_IsArray(msgs)) return rq_fail(e, 400, "messages", "'messages' must be an array");
    if (cJSON_GetArraySize(msgs) == 0)
        return rq_fail(e, 400, "messages", "'messages' must hold at least one message");
    cJSON *arr = cJSON_CreateArray();
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        char name[64];
        snprintf(name, sizeof name, "messages[%d]", i);
        if (!cJSON_IsObject(m)) {
            cJSON_Delete(arr);
            return rq_fail(e, 400, name, "'%s' must be an object", name);
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(name, sizeof name, "messages[%d].role", i);
        if (!cJSON_IsString(role)) {
            cJSON_Delete(arr);
            return rq_fail(e, 400, name, "'%s' must be a string", name);
        }
        const char *r = role->valuestring;
        if (!strcmp(r, "developer")) r = "system"; /* OpenAI's newer name for it */
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")) {
            cJSON_Delete(arr);
            return rq_fail(e, 400, name,
                           "'%s': role '%.40s' is not supported (system, user, assistant)", name,
                           r);
        }
        char *text = NULL;
        if (oai_content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), i, &text, e)) {
            cJSON_Delete(arr);
            return -1;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", r);
        cJSON_AddStringToObject(o, "content", text);
        free(text);
        cJSON_AddItemToArray(arr, o);
        i++;
    }
    *out = arr;
    return 0;
}

int oai_parse_chat(const cJSON *b, gen_spec *g, bool *seeded, api_err *e) {
    if (oai_parse_sampling(b, g, seeded, e)) return -1;
    if (oai_messages(cJSON_GetObjectItemCaseSensitive(b, "messages"), &g->messages, e)) return -1;
    bool lp = false;
    long long top = 0;
    int rc;
    if (rq_bool(b, "logprobs", NULL, &lp, e) < 0) return -1;
    if ((rc = rq_int(b, "top_logprobs", NULL, 0, M40LLM_MAX_LOGPROBS, &top, e)) < 0) return -1;
    if (rc && !lp) return rq_fail(e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    g->logprobs = lp;
    g->top_logprobs = (int)top;
    return 0;
}

/* prompt: a string, an array of one string, token ids, or an array of one
 * array of token ids. */
static int oai_prompt(const cJSON *p, gen_spec *g, api_err *e) {
    if (!p || cJSON_IsNull(p)) return rq_fail(e, 400, "prompt", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 &&
        (cJSON_IsString(p->child) || cJSON_IsArray(p->child)))
        p = p->child;
    else if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 1 && !cJSON_IsNumber(p->child))
        return rq_fail(e, 400, "prompt", "only one prompt per request is supported");
    if (cJSON_IsString(p)) {
        g->prompt = strdup(p->valuestring);
        return g->prompt ? 0 : rq_fail(e, 503, "prompt", "out of memory");
    }
    if (!cJSON_IsArray(p))
        return rq_fail(e, 400, "prompt", "'prompt' must be a string or an array of token ids");
    int n = cJSON_GetArraySize(p);
    if (n == 0) return rq_fail(e, 400, "prompt", "'prompt' is empty");
    g->ids = malloc((size_t)n * sizeof *g->ids);
    if (!g->ids) return rq_fail(e, 503, "prompt", "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, p) {
        if (!cJSON_IsNumber(t) || t->valuedouble != (double)(int32_t)t->valuedouble ||
            t->valuedouble < 0)
            return rq_fail(e, 400, "prompt", "'prompt' token ids must be integers >= 0");
        g->ids[g->n_ids++] = (int32_t)t->valuedouble;
    }
    return 0;
}

int oai_parse_completion(const cJSON *b, gen_spec *g, bool *seeded, api_err *e) {
    if (oai_parse_sampling(b, g, seeded, e)) return -1;
    if (oai_prompt(cJSON_GetObjectItemCaseSensitive(b, "prompt"), g, e)) return -1;
    long long v = 0;
    int rc;
    bool echo = false;
    const char *suffix = NULL;
    if ((rc = rq_int(b, "logprobs", NULL, 0, M40LLM_MAX_LOGPROBS, &v, e)) < 0) return -1;
    if (rc) {
        g->logprobs = 1;
        g->top_logprobs = (int)v;
    }
    if (rq_bool(b, "echo", NULL, &echo, e) < 0) return -1;
    if (echo) return rq_fail(e, 400, "echo", "'echo' is not supported");
    if (rq_string(b, "suffix", NULL, &suffix, e) < 0) return -1;
    if (suffix && *suffix) return rq_fail(e, 400, "suffix", "'suffix' is not supported");
    if ((rc = rq_int(b, "best_of", NULL, 1, 1 << 30, &v, e)) < 0) return -1;
    if (rc && v != 1) return rq_fail(e, 400, "best_of", "only best_of=1 is supported");
    return 0;
}

/* ---- formatting ---- */

/* A JSON string of len bytes (NUL bytes dropped: cJSON strings end there). */
static cJSON *oai_strn(const char *s, size_t len) {
    char *t = malloc(len + 1);
    if (!t) return cJSON_CreateString("");
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i]) t[o++] = s[i];
    t[o] = '\0';
    cJSON *j = cJSON_CreateString(t);
    free(t);
    return j;
}

static cJSON *oai_bytes(const char *s, size_t len) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < len; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)s[i]));
    return a;
}

static cJSON *oai_lp_entry(const lp_tok *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "token", oai_strn(t->text, t->len));
    cJSON_AddNumberToObject(o, "logprob", t->logprob);
    cJSON_AddItemToObject(o, "bytes", oai_bytes(t->text, t->len));
    return o;
}

cJSON *oai_chat_logprob(const lp_tok *chosen, const lp_tok *top, int n_top) {
    cJSON *o = oai_lp_entry(chosen);
    cJSON *a = cJSON_AddArrayToObject(o, "top_logprobs");
    for (int i = 0; i < n_top; i++) cJSON_AddItemToArray(a, oai_lp_entry(&top[i]));
    return o;
}

int oai_compl_logprob_add(cJSON **lp, const lp_tok *chosen, const lp_tok *top, int n_top,
                          long long text_offset) {
    if (!*lp) {
        *lp = cJSON_CreateObject();
        cJSON_AddArrayToObject(*lp, "tokens");
        cJSON_AddArrayToObject(*lp, "token_logprobs");
        cJSON_AddArrayToObject(*lp, "top_logprobs");
        cJSON_AddArrayToObject(*lp, "text_offset");
    }
    cJSON_AddItemToArray(cJSON_GetObjectItem(*lp, "tokens"), oai_strn(chosen->text, chosen->len));
    cJSON_AddItemToArray(cJSON_GetObjectItem(*lp, "token_logprobs"),
                         cJSON_CreateNumber(chosen->logprob));
    cJSON *tops = cJSON_CreateObject();
    for (int i = 0; i < n_top; i++) {
        cJSON *s = oai_strn(top[i].text, top[i].len);
        /* two tokens may share a text: the first (more likely) one stays */
        if (!cJSON_GetObjectItemCaseSensitive(tops, s->valuestring))
            cJSON_AddNumberToObject(tops, s->valuestring, top[i].logprob);
        cJSON_Delete(s);
    }
    cJSON_AddItemToArray(cJSON_GetObjectItem(*lp, "top_logprobs"), tops);
    cJSON_AddItemToArray(cJSON_GetObjectItem(*lp, "text_offset"),
                         cJSON_CreateNumber((double)text_offset));
    return 0;
}

cJSON *oai_usage_json(const gen_usage *u) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "prompt_tokens", u->prompt);
    cJSON_AddNumberToObject(o, "completion_tokens", u->completion);
    cJSON_AddNumberToObject(o, "total_tokens", u->prompt + u->completion);
    cJSON *d = cJSON_AddObjectToObject(o, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", u->cached);
    return o;
}

static cJSON *oai_head(const gen_fmt *f, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", f->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)f->created);
    cJSON_AddStringToObject(o, "model", f->model);
    cJSON_AddStringToObject(o, "system_fingerprint", "m40llm");
    return o;
}

static void oai_finish(cJSON *choice, const char *finish) {
    if (finish)
        cJSON_AddStringToObject(choice, "finish_reason", finish);
    else
        cJSON_AddNullToObject(choice, "finish_reason");
}

static void oai_logprobs_field(cJSON *choice, cJSON *logprobs) {
    if (logprobs)
        cJSON_AddItemToObject(choice, "logprobs", logprobs);
    else
        cJSON_AddNullToObject(choice, "logprobs");
}

/* "data: " + JSON + "\n\n"; o is deleted */
static char *oai_sse(cJSON *o) {
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!j) return NULL;
    size_t n = strlen(j);
    char *s = malloc(n + 9);
    if (s) {
        memcpy(s, "data: ", 6);
        memcpy(s + 6, j, n);
        memcpy(s + 6 + n, "\n\n", 3);
    }
    free(j);
    return s;
}

char *oai_chat_chunk(const gen_fmt *f, const char *role, const char *text, size_t len,
                     cJSON *logprobs, const char *finish) {
    cJSON *o = oai_head(f, "chat.completion.chunk");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
    if (role) cJSON_AddStringToObject(delta, "role", role);
    if (text) cJSON_AddItemToObject(delta, "content", oai_strn(text, len));
    if (logprobs) {
        cJSON *lp = cJSON_CreateObject();
        cJSON_AddItemToObject(lp, "content", logprobs);
        logprobs = lp;
    }
    oai_logprobs_field(ch, logprobs);
    oai_finish(ch, finish);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    if (f->include_usage) cJSON_AddNullToObject(o, "usage");
    return oai_sse(o);
}

char *oai_compl_chunk(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs,
                      const char *finish) {
    cJSON *o = oai_head(f, "text_completion");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToObject(ch, "text", oai_strn(text ? text : "", text ? len : 0));
    cJSON_AddNumberToObject(ch, "index", 0);
    oai_logprobs_field(ch, logprobs);
    oai_finish(ch, finish);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    if (f->include_usage) cJSON_AddNullToObject(o, "usage");
    return oai_sse(o);
}

char *oai_usage_chunk(const gen_fmt *f, const gen_usage *u) {
    cJSON *o = oai_head(f, f->kind == GEN_OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToObject(o, "usage", oai_usage_json(u));
    return oai_sse(o);
}

static char *oai_print(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *oai_chat_response(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs,
                        const char *finish, const gen_usage *u) {
    cJSON *o = oai_head(f, "chat.completion");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddItemToObject(msg, "content", oai_strn(text, len));
    cJSON_AddNullToObject(msg, "refusal");
    if (logprobs) {
        cJSON *lp = cJSON_CreateObject();
        cJSON_AddItemToObject(lp, "content", logprobs);
        logprobs = lp;
    }
    oai_logprobs_field(ch, logprobs);
    oai_finish(ch, finish);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    cJSON_AddItemToObject(o, "usage", oai_usage_json(u));
    return oai_print(o);
}

char *oai_compl_response(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs,
                         const char *finish, const gen_usage *u) {
    cJSON *o = oai_head(f, "text_completion");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToObject(ch, "text", oai_strn(text, len));
    cJSON_AddNumberToObject(ch, "index", 0);
    oai_logprobs_field(ch, logprobs);
    oai_finish(ch, finish);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    cJSON_AddItemToObject(o, "usage", oai_usage_json(u));
    return oai_print(o);
}

/* ---- routes ---- */

static int oai_generate(http_req *r, gen_kind kind) {
    api_err e = {0};
    cJSON *b = rq_parse(r->body, r->body_len, &e);
    if (!b) return http_send_error(r, &e);
    gen_spec g;
    gen_spec_init(&g, kind);
    bool seeded = false;
    int rc = kind == GEN_OAI_CHAT ? oai_parse_chat(b, &g, &seeded, &e)
                                  : oai_parse_completion(b, &g, &seeded, &e);
    cJSON_Delete(b);
    srv_model *m = NULL;
    if (!rc) rc = srv_model_get(r->s, g.model, g.keep_alive, &m, &e);
    if (rc) {
        gen_spec_free(&g);
        return http_send_error(r, &e);
    }
    if (!g.model[0]) snprintf(g.model, sizeof g.model, "%s", m->names.id);
    return gen_handle(r, &g, seeded, m);
}

int oai_chat(http_req *r) {
    return oai_generate(r, GEN_OAI_CHAT);
}
int oai_completions(http_req *r) {
    return oai_generate(r, GEN_OAI_COMPLETION);
}

cJSON *oai_model_json(const srv_model *s) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->names.id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "m40-llm");
    cJSON_AddNumberToObject(m, "max_model_len", s->einfo.n_ctx);
    return m;
}

/* Without --model: the loaded models, then every other one there is. */
static cJSON *oai_models_all(server *s) {
    cJSON *loaded = srv_models_loaded_json(s, false), *all = srv_models_store_json(s, false);
    cJSON *it, *out = cJSON_CreateArray();
    while ((it = cJSON_DetachItemFromArray(loaded, 0))) cJSON_AddItemToArray(out, it);
    while ((it = cJSON_DetachItemFromArray(all, 0))) {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
        bool dup = false;
        const cJSON *o;
        cJSON_ArrayForEach(o, out) {
            const char *oid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
            if (id && oid && !strcmp(id, oid)) dup = true;
        }
        if (dup)
            cJSON_Delete(it);
        else
            cJSON_AddItemToArray(out, it);
    }
    cJSON_Delete(loaded);
    cJSON_Delete(all);
    return out;
}

/* GET /v1/models and /v1/models/{id} */
int oai_models(http_req *r) {
    server *s = r->s;
    const char *url = r->url;
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/v1/models/")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        if (s->dynamic) {
            cJSON_AddItemToObject(o, "data", oai_models_all(s));
        } else {
            cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), oai_model_json(s->models[0]));
        }
        return http_send_json(r, 200, o);
    }
    const char *id = url + strlen("/v1/models/");
    api_err e = {0};
    if (s->dynamic) { /* the listed entry of that id, without loading it */
        cJSON *all = oai_models_all(s), *hit = NULL, *o;
        cJSON_ArrayForEach(o, all) {
            const char *oid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
            if (oid && !strcasecmp(oid, id)) hit = o;
        }
        if (hit) hit = cJSON_DetachItemViaPointer(all, hit);
        cJSON_Delete(all);
        if (hit) return http_send_json(r, 200, hit);
        rq_fail(&e, 404, "model", "model '%.200s' not found", id);
        e.code = "model_not_found";
        return http_send_error(r, &e);
    }
    srv_model *m = NULL;
    if (srv_model_get(s, id, NAN, &m, &e)) return http_send_error(r, &e);
    cJSON *j = oai_model_json(m);
    srv_model_put(s, m);
    return http_send_json(r, 200, j);
}
