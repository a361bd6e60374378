/* Ollama-compatible routes: POST /api/chat, POST /api/generate (NDJSON
 * streaming unless "stream": false), GET /api/tags, POST /api/show,
 * GET /api/ps, GET /api/version. Errors are {"error": "..."}.
 *
 * options.num_ctx is accepted and clamped to the server's --ctx: a smaller
 * value limits the prompt (400 past it) and prompt + answer; a larger one
 * cannot grow the engine's context, so the server's is used. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "srv_int.h"

/* ---- parsing ---- */

static int oll_parse_options(const cJSON *b, gen_spec *g, bool *seeded, api_err *e) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(b, "options");
    if (!o || cJSON_IsNull(o)) return 0;
    if (!cJSON_IsObject(o)) return rq_fail(e, 400, "options", "'options' must be an object");
    double d;
    long long v;
    int rc;
    if ((rc = rq_number(o, "temperature", "options.temperature", 0, 100, &d, e)) < 0) return -1;
    if (rc) g->sampling.temperature = (float)d;
    if ((rc = rq_int(o, "top_k", "options.top_k", 0, 1 << 30, &v, e)) < 0) return -1;
    if (rc) g->sampling.top_k = (int)v;
    if ((rc = rq_number(o, "top_p", "options.top_p", 0, 1, &d, e)) < 0) return -1;
    if (rc) g->sampling.top_p = (float)d;
    if ((rc = rq_number(o, "min_p", "options.min_p", 0, 1, &d, e)) < 0) return -1;
    if (rc) g->sampling.min_p = (float)d;
    if ((rc = rq_number(o, "repeat_penalty", "options.repeat_penalty", 1e-3, 100, &d, e)) < 0)
        return -1;
    if (rc) g->sampling.repeat_penalty = (float)d;
    if ((rc = rq_int(o, "repeat_last_n", "options.repeat_last_n", -1, 1 << 30, &v, e)) < 0)
        return -1;
    if (rc) g->sampling.penalty_last_n = (int)v;
    if ((rc = rq_number(o, "presence_penalty", "options.presence_penalty", -100, 100, &d, e)) < 0)
        return -1;
    if (rc) g->sampling.presence_penalty = (float)d;
    if ((rc = rq_number(o, "frequency_penalty", "options.frequency_penalty", -100, 100, &d, e)) < 0)
        return -1;
    if (rc) g->sampling.frequency_penalty = (float)d;
    /* -1 (Ollama's default) draws a random seed */
    uint64_t seed = 0;
    if ((rc = rq_seed(o, "seed", "options.seed", &seed, e)) < 0) return -1;
    if (rc && seed != UINT64_MAX) {
        *seeded = true;
        g->sampling.seed = seed;
    }
    /* num_predict: -1 no limit, -2 until the context is full */
    if ((rc = rq_int(o, "num_predict", "options.num_predict", -2, 1 << 30, &v, e)) < 0) return -1;
    if (rc) g->max_tokens = v > 0 ? (int)v : 0;
    if ((rc = rq_int(o, "num_ctx", "options.num_ctx", 1, 1 << 30, &v, e)) < 0) return -1;
    if (rc) g->n_ctx = (int)v;
    if (rq_stops(o, "stop", "options.stop", &g->stops, &g->n_stops, e) < 0) return -1;
    return 0;
}

/* Fields shared by /api/chat and /api/generate. */
static int oll_parse_common(const cJSON *b, gen_spec *g, bool *seeded, api_err *e) {
    const char *model = NULL;
    if (rq_string(b, "model", NULL, &model, e) < 0) return -1;
    if (!model || !*model) return rq_fail(e, 400, "model", "model is required");
    snprintf(g->model, sizeof g->model, "%s", model);
    if (srv_parse_keep_alive(b, &g->keep_alive, e) < 0) return -1;
    g->stream = true; /* Ollama streams unless told not to */
    if (rq_bool(b, "stream", NULL, &g->stream, e) < 0) return -1;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(b, "format");
    if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "json"))
        g->format = M40LLM_FORMAT_JSON;
    else if (cJSON_IsObject(fmt) && rq_json_schema(fmt, "format", g, e) < 0)
        return -1;
    else if (fmt && !cJSON_IsNull(fmt) && !cJSON_IsObject(fmt) &&
             !(cJSON_IsString(fmt) && !*fmt->valuestring))
        return rq_fail(e, 400, "format", "'format' must be \"json\" or a JSON schema");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(b, "tools");
    if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0)
        return rq_fail(e, 400, "tools", "tools are not supported");
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(b, "images");
    if (cJSON_IsArray(images) && cJSON_GetArraySize(images) > 0)
        return rq_fail(e, 400, "images", "images are not supported");
    bool lp = false;
    long long top = 0;
    int rc;
    if (rq_bool(b, "logprobs", NULL, &lp, e) < 0) return -1;
    if ((rc = rq_int(b, "top_logprobs", NULL, 0, M40LLM_MAX_LOGPROBS, &top, e)) < 0) return -1;
    g->logprobs = lp || top > 0;
    g->top_logprobs = (int)top;
    return oll_parse_options(b, g, seeded, e);
}

int oll_parse_chat(const cJSON *b, gen_spec *g, bool *seeded, api_err *e) {
    if (oll_parse_common(b, g, seeded, e)) return -1;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(b, "messages");
    if (!msgs || cJSON_IsNull(msgs) || (cJSON_IsArray(msgs) && !cJSON_GetArraySize(msgs))) {
        g->load_only = true; /* Ollama's way to load a model */
        return 0;
    }
    if (!cJSON_IsArray(msgs)) return rq_fail(e, 400, "messages", "'messages' must be an array");
    g->messages = cJSON_CreateArray();
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        char name[64];
        snprintf(name, sizeof name, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return rq_fail(e, 400, name, "'%s' must be an object", name);
        const char *role = NULL, *content = NULL;
        snprintf(name, sizeof name, "messages[%d].role", i);
        if (rq_string(m, "role", name, &role, e) < 0) return -1;
        if (!role) return rq_fail(e, 400, name, "'%s' is required", name);
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
            return rq_fail(e, 400, name,
                           "'%s': role '%.40s' is not supported (system, user, assistant)", name,
                           role);
        snprintf(name, sizeof name, "messages[%d].content", i);
        if (rq_string(m, "content", name, &content, e) < 0) return -1;
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(m, "images");
        if (cJSON_IsArray(im) && cJSON_GetArraySize(im) > 0) {
            snprintf(name, sizeof name, "messages[%d].images", i);
            return rq_fail(e, 400, name, "images are not supported");
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", role);
        cJSON_AddStringToObject(o, "content", content ? content : "");
        cJSON_AddItemToArray(g->messages, o);
        i++;
    }
    return 0;
}

int oll_parse_generate(const cJSON *b, gen_spec *g, bool *seeded, api_err *e) {
    if (oll_parse_common(b, g, seeded, e)) return -1;
    const char *prompt = NULL, *system = NULL, *suffix = NULL;
    if (rq_string(b, "prompt", NULL, &prompt, e) < 0) return -1;
    if (rq_string(b, "system", NULL, &system, e) < 0) return -1;
    if (rq_string(b, "suffix", NULL, &suffix, e) < 0) return -1;
    if (rq_bool(b, "raw", NULL, &g->raw, e) < 0) return -1;
    if (suffix && *suffix) return rq_fail(e, 400, "suffix", "'suffix' is not supported");
    /* "template" and "context" are accepted and ignored: the model's own
     * chat template renders the prompt, and no context ids are returned */
    if (!prompt || !*prompt) {
        g->load_only = true;
        return 0;
    }
    if (!(g->prompt = strdup(prompt))) return rq_fail(e, 503, "prompt", "out of memory");
    if (system && !(g->system = strdup(system))) return rq_fail(e, 503, "system", "out of memory");
    return 0;
}

/* ---- formatting ---- */

void oll_time_now(char *buf, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char d[32];
    strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%09ldZ", d, (long)ts.tv_nsec);
}

static cJSON *oll_strn(const char *s, size_t len) {
    char *t = malloc(len + 1);
    if (!t) return cJSON_CreateString("");
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i]) t[o++] = s[i]; /* cJSON strings end at a NUL */
    t[o] = '\0';
    cJSON *j = cJSON_CreateString(t);
    free(t);
    return j;
}

static cJSON *oll_lp_entry(const lp_tok *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "token", oll_strn(t->text, t->len));
    cJSON_AddNumberToObject(o, "logprob", t->logprob);
    return o;
}

cJSON *oll_logprob(const lp_tok *chosen, const lp_tok *top, int n_top) {
    cJSON *o = oll_lp_entry(chosen);
    if (n_top > 0) {
        cJSON *a = cJSON_AddArrayToObject(o, "top_logprobs");
        for (int i = 0; i < n_top; i++) cJSON_AddItemToArray(a, oll_lp_entry(&top[i]));
    }
    return o;
}

static cJSON *oll_head(const gen_fmt *f, const char *text, size_t len, bool done) {
    cJSON *o = cJSON_CreateObject();
    char ts[48];
    oll_time_now(ts, sizeof ts);
    cJSON_AddStringToObject(o, "model", f->model);
    cJSON_AddStringToObject(o, "created_at", ts);
    if (f->kind == GEN_OLL_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "content", oll_strn(text, len));
    } else {
        cJSON_AddItemToObject(o, "response", oll_strn(text, len));
    }
    cJSON_AddBoolToObject(o, "done", done);
    return o;
}

static char *oll_line(cJSON *o, bool newline) {
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!j || !newline) return j;
    size_t n = strlen(j);
    char *s = realloc(j, n + 2);
    if (!s) {
        free(j);
        return NULL;
    }
    s[n] = '\n';
    s[n + 1] = '\0';
    return s;
}

char *oll_chunk(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs) {
    cJSON *o = oll_head(f, text, len, false);
    if (logprobs) cJSON_AddItemToObject(o, "logprobs", logprobs);
    return oll_line(o, true);
}

static double oll_ns(double s) {
    return s > 0 ? (double)(long long)(s * 1e9) : 0;
}

char *oll_final(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs,
                const char *done_reason, const gen_times *t, bool newline) {
    cJSON *o = oll_head(f, text ? text : "", text ? len : 0, true);
    cJSON_AddStringToObject(o, "done_reason", done_reason);
    cJSON_AddNumberToObject(o, "total_duration", oll_ns(t->total_s));
    cJSON_AddNumberToObject(o, "load_duration", oll_ns(t->load_s));
    cJSON_AddNumberToObject(o, "prompt_eval_count", t->n_prompt);
    cJSON_AddNumberToObject(o, "prompt_eval_duration", oll_ns(t->prompt_s));
    cJSON_AddNumberToObject(o, "eval_count", t->n_gen);
    cJSON_AddNumberToObject(o, "eval_duration", oll_ns(t->gen_s));
    if (logprobs) cJSON_AddItemToObject(o, "logprobs", logprobs);
    return oll_line(o, newline);
}

/* ---- routes ---- */

static int oll_generate_route(http_req *r, gen_kind kind) {
    api_err e = {0};
    cJSON *b = rq_parse(r->body, r->body_len, &e);
    if (!b) return http_send_error(r, &e);
    gen_spec g;
    gen_spec_init(&g, kind);
    bool seeded = false;
    int rc = kind == GEN_OLL_CHAT ? oll_parse_chat(b, &g, &seeded, &e)
                                  : oll_parse_generate(b, &g, &seeded, &e);
    cJSON_Delete(b);
    srv_model *m = NULL;
    if (!rc) rc = srv_model_get(r->s, g.model, g.keep_alive, &m, &e);
    if (rc) {
        gen_spec_free(&g);
        return http_send_error(r, &e);
    }
    return gen_handle(r, &g, seeded, m);
}

int oll_chat(http_req *r) {
    return oll_generate_route(r, GEN_OLL_CHAT);
}
int oll_generate(http_req *r) {
    return oll_generate_route(r, GEN_OLL_GENERATE);
}

/* "135M", "7.2B" */
static void oll_param_size(uint64_t n, char *buf, size_t size) {
    if (n >= 1000000000ull)
        snprintf(buf, size, "%.1fB", (double)n / 1e9);
    else
        snprintf(buf, size, "%.2fM", (double)n / 1e6);
}

static cJSON *oll_details(const srv_model *s) {
    const m40llm_model_info *mi = &s->minfo;
    cJSON *d = cJSON_CreateObject();
    char ps[32];
    oll_param_size(mi->n_params, ps, sizeof ps);
    cJSON_AddStringToObject(d, "parent_model", "");
    cJSON_AddStringToObject(d, "format", "gguf");
    cJSON_AddStringToObject(d, "family", mi->arch ? mi->arch : "");
    cJSON *fam = cJSON_AddArrayToObject(d, "families");
    cJSON_AddItemToArray(fam, cJSON_CreateString(mi->arch ? mi->arch : ""));
    cJSON_AddStringToObject(d, "parameter_size", ps);
    cJSON_AddStringToObject(d, "quantization_level", mi->quant ? mi->quant : "");
    return d;
}

/* the listed name carries a tag, as Ollama's do */
static void oll_name(const srv_model *s, char *buf, size_t n) {
    snprintf(buf, n, "%s%s", s->names.id, strchr(s->names.id, ':') ? "" : ":latest");
}

static void oll_loaded_at(const srv_model *s, char *buf, size_t n) {
    struct tm tm;
    time_t t = (time_t)s->created;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

cJSON *oll_model_json(const srv_model *s, bool ps) {
    char name[300], ts[48];
    oll_name(s, name, sizeof name);
    oll_loaded_at(s, ts, sizeof ts);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", name);
    cJSON_AddStringToObject(m, "model", name);
    if (!ps) {
        cJSON_AddStringToObject(m, "modified_at", ts);
        cJSON_AddNumberToObject(m, "size", (double)s->minfo.file_bytes);
        cJSON_AddItemToObject(m, "details", oll_details(s));
        return m;
    }
    uint64_t size = s->einfo.mem_used ? s->einfo.mem_used : s->minfo.file_bytes;
    cJSON_AddNumberToObject(m, "size", (double)size);
    cJSON_AddItemToObject(m, "details", oll_details(s));
    bool gpu = s->einfo.backend && !strcmp(s->einfo.backend, "cuda");
    cJSON_AddNumberToObject(m, "size_vram", gpu ? (double)size : 0);
    cJSON_AddNumberToObject(m, "context_length", s->einfo.n_ctx);
    return m;
}

int oll_tags(http_req *r) {
    server *s = r->s;
    cJSON *o = cJSON_CreateObject();
    if (s->dynamic)
        cJSON_AddItemToObject(o, "models", srv_models_store_json(s, true));
    else
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "models"),
                             oll_model_json(s->models[0], false));
    return http_send_json(r, 200, o);
}

/* What is loaded; with --model it stays for the server's lifetime. */
int oll_ps(http_req *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "models", srv_models_loaded_json(r->s, true));
    return http_send_json(r, 200, o);
}

int oll_show(http_req *r) {
    server *s = r->s;
    api_err e = {0};
    cJSON *b = rq_parse(r->body, r->body_len, &e);
    if (!b) return http_send_error(r, &e);
    const char *model = NULL;
    /* "name" is the older spelling */
    if (rq_string(b, "model", NULL, &model, &e) < 0 ||
        (!model && rq_string(b, "name", NULL, &model, &e) < 0)) {
        cJSON_Delete(b);
        return http_send_error(r, &e);
    }
    if (!model || !*model) {
        cJSON_Delete(b);
        rq_fail(&e, 400, "model", "model is required");
        return http_send_error(r, &e);
    }
    srv_model *sm = NULL;
    int rc = srv_model_peek(s, model, &sm, &e); /* show does not load a model */
    cJSON_Delete(b);
    if (rc) return http_send_error(r, &e);
    const m40llm_model_info *mi = &sm->minfo;
    const char *arch = mi->arch ? mi->arch : "";
    char ts[48], key[128];
    oll_loaded_at(sm, ts, sizeof ts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "modelfile", "");
    cJSON_AddStringToObject(o, "parameters", "");
    cJSON_AddStringToObject(o, "template", mi->chat_template ? mi->chat_template : "");
    cJSON_AddItemToObject(o, "details", oll_details(sm));
    cJSON *info = cJSON_AddObjectToObject(o, "model_info");
    cJSON_AddStringToObject(info, "general.architecture", arch);
    cJSON_AddStringToObject(info, "general.name", mi->name ? mi->name : "");
    cJSON_AddNumberToObject(info, "general.parameter_count", (double)mi->n_params);
    snprintf(key, sizeof key, "%s.context_length", arch);
    cJSON_AddNumberToObject(info, key, mi->n_ctx_train);
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    cJSON_AddNumberToObject(info, key, mi->n_embd);
    snprintf(key, sizeof key, "%s.block_count", arch);
    cJSON_AddNumberToObject(info, key, mi->n_layer);
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    cJSON_AddNumberToObject(info, key, mi->n_head);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    cJSON_AddNumberToObject(info, key, mi->n_head_kv);
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    cJSON_AddNumberToObject(info, key, mi->n_vocab);
    cJSON *caps = cJSON_AddArrayToObject(o, "capabilities");
    cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
    cJSON_AddStringToObject(o, "modified_at", ts);
    srv_model_put(s, sm);
    return http_send_json(r, 200, o);
}

int oll_version(http_req *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", m40llm_version());
    return http_send_json(r, 200, o);
}
