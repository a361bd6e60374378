/* Request bodies: the checks before cJSON, typed members with errors that
 * name the field, and error bodies in each API's shape. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_check.h"
#include "json_schema.h"
#include "srv_int.h"

/* values a request body may hold: a long conversation has a few thousand */
#define RQ_MAX_VALUES 200000

int rq_fail(api_err *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    e->code = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int rq_json_schema(const cJSON *schema, const char *param, gen_spec *g, api_err *e) {
    if (!cJSON_IsObject(schema)) return rq_fail(e, 400, param, "'%s' must be an object", param);
    char *t = cJSON_PrintUnformatted(schema);
    if (!t) return rq_fail(e, 503, param, "out of memory");
    json_schema *c = NULL;
    int rc = json_schema_compile(t, strlen(t), &c);
    json_schema_free(c);
    if (rc) {
        free(t);
        return rc == M40LLM_ERR_OOM ? rq_fail(e, 503, param, "out of memory")
                                    : rq_fail(e, 400, param, "%s", m40llm_last_error());
    }
    free(g->json_schema);
    g->json_schema = t;
    g->format = M40LLM_FORMAT_JSON;
    return 0;
}

int rq_fail_status(api_err *e, int rc, const char *param) {
    const char *msg = m40llm_last_error();
    if (!msg || !*msg) msg = m40llm_status_str(rc);
    int status = 500;
    switch (rc) {
    case M40LLM_ERR_CONTEXT_FULL:
    case M40LLM_ERR_INVALID_ARG:
    case M40LLM_ERR_TYPE:
    case M40LLM_ERR_FORMAT:
        status = 400;
        break;
    case M40LLM_ERR_NOT_FOUND:
        status = 404;
        break;
    case M40LLM_ERR_BUSY:
    case M40LLM_ERR_OOM:
        status = 503;
        break;
    default:
        break;
    }
    rq_fail(e, status, param, "%s", msg);
    if (rc == M40LLM_ERR_CONTEXT_FULL) e->code = "context_length_exceeded";
    return -1;
}

char *rq_error_body(api_kind api, const api_err *e) {
    cJSON *j = cJSON_CreateObject();
    if (api == API_OLLAMA) {
        cJSON_AddStringToObject(j, "error", e->msg);
    } else {
        cJSON *o = cJSON_AddObjectToObject(j, "error");
        cJSON_AddStringToObject(o, "message", e->msg);
        const char *type = e->status >= 500   ? "server_error"
                           : e->status == 401 ? "authentication_error"
                           : e->status == 404 ? "not_found_error"
                                              : "invalid_request_error";
        cJSON_AddStringToObject(o, "type", type);
        if (e->param[0])
            cJSON_AddStringToObject(o, "param", e->param);
        else
            cJSON_AddNullToObject(o, "param");
        if (e->code)
            cJSON_AddStringToObject(o, "code", e->code);
        else
            cJSON_AddNullToObject(o, "code");
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

cJSON *rq_parse(const char *body, size_t len, api_err *e) {
    if (!body || len == 0) {
        rq_fail(e, 400, NULL, "the request body is empty; a JSON object is expected");
        return NULL;
    }
    if (json_check(body, len, "request body", RQ_MAX_VALUES)) {
        rq_fail(e, 400, NULL, "%s", m40llm_last_error());
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        rq_fail(e, 400, NULL, "the request body is not valid JSON (near byte %zu)", at);
        return NULL;
    }
    /* only blanks may follow the value */
    for (const char *p = end; p && p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(j);
            rq_fail(e, 400, NULL,
                    "the request body is not valid JSON (text after the value at byte %zu)",
                    (size_t)(p - body));
            return NULL;
        }
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        rq_fail(e, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

static const cJSON *rq_member(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int rq_string(const cJSON *o, const char *key, const char *name, const char **out, api_err *e) {
    const cJSON *v = rq_member(o, key);
    if (!name) name = key;
    if (!v) return 0;
    if (!cJSON_IsString(v)) return rq_fail(e, 400, name, "'%s' must be a string", name);
    *out = v->valuestring;
    return 1;
}

int rq_bool(const cJSON *o, const char *key, const char *name, bool *out, api_err *e) {
    const cJSON *v = rq_member(o, key);
    if (!name) name = key;
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return rq_fail(e, 400, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

int rq_number(const cJSON *o, const char *key, const char *name, double lo, double hi, double *out,
              api_err *e) {
    const cJSON *v = rq_member(o, key);
    if (!name) name = key;
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return rq_fail(e, 400, name, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return rq_fail(e, 400, name, "'%s' must be in [%g, %g] (got %g)", name, lo, hi,
                       v->valuedouble);
    *out = v->valuedouble;
    return 1;
}

int rq_int(const cJSON *o, const char *key, const char *name, long long lo, long long hi,
           long long *out, api_err *e) {
    const cJSON *v = rq_member(o, key);
    if (!name) name = key;
    if (!v) return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d != floor(d))
        return rq_fail(e, 400, name, "'%s' must be an integer", name);
    if (d < (double)lo || d > (double)hi)
        return rq_fail(e, 400, name, "'%s' must be in [%lld, %lld] (got %.0f)", name, lo, hi, d);
    *out = (long long)d;
    return 1;
}

static int rq_add_stop(char ***stops, int *n, const char *s, const char *name, api_err *e) {
    if (!*s) return 0; /* an empty stop string would stop at once: ignored */
    if (*n >= RQ_MAX_STOPS) return rq_fail(e, 400, name, "at most %d stop strings", RQ_MAX_STOPS);
    char **a = realloc(*stops, (size_t)(*n + 1) * sizeof *a);
    if (!a) return rq_fail(e, 503, name, "out of memory");
    *stops = a;
    if (!(a[*n] = strdup(s))) return rq_fail(e, 503, name, "out of memory");
    (*n)++;
    return 0;
}

int rq_stops(const cJSON *o, const char *key, const char *name, char ***stops, int *n, api_err *e) {
    const cJSON *v = rq_member(o, key);
    if (!name) name = key;
    if (!v) return 0;
    if (cJSON_IsString(v)) return rq_add_stop(stops, n, v->valuestring, name, e) ? -1 : 1;
    if (!cJSON_IsArray(v))
        return rq_fail(e, 400, name, "'%s' must be a string or an array of strings", name);
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsString(it))
            return rq_fail(e, 400, name, "'%s' must be a string or an array of strings", name);
        if (rq_add_stop(stops, n, it->valuestring, name, e)) return -1;
    }
    return 1;
}

int rq_seed(const cJSON *o, const char *key, const char *name, uint64_t *out, api_err *e) {
    const cJSON *v = rq_member(o, key);
    if (!name) name = key;
    if (!v) return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d != floor(d))
        return rq_fail(e, 400, name, "'%s' must be an integer", name);
    /* 2^64 and -2^63 are exact doubles */
    if (d < -9223372036854775808.0 || d >= 18446744073709551616.0)
        return rq_fail(e, 400, name, "'%s' must be in [-2^63, 2^64)", name);
    *out = d < 0 ? (uint64_t)(int64_t)d : (uint64_t)d;
    return 1;
}
