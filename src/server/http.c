/* The HTTP daemon: libmicrohttpd in thread-per-connection mode, routing,
 * authentication, CORS, body limits and responses.
 *
 * Why one thread per connection rather than suspend/resume on a thread
 * pool: a streamed response's content reader can simply block on the
 * job's condition variable in short slices (gen.c) and check between
 * slices whether the client hung up, so a disconnect is noticed within
 * 100 ms even while the request waits in the engine's queue or its prompt
 * is being evaluated (a suspended connection is not polled by MHD, so it
 * would only be noticed at the next token); there is no window between
 * "nothing to send" and "suspend" for a wake-up to fall into; and a slow
 * client blocks only its own thread. Threads are bounded by the connection
 * limit and have small stacks; the engine does the heavy work on its own
 * thread either way.
 *
 * Requests: the first call of the access handler (headers only) routes,
 * authenticates and refuses early (401, 404, 405, 413 from Content-Length,
 * 503 while loading); later calls collect the body up to --max-body
 * (beyond it the rest is read and dropped, then 413); the last call runs
 * the route. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "srv_int.h"

enum { M_GET = 1, M_POST = 2, M_DELETE = 4 }; /* GET routes answer HEAD too */

typedef struct srv_route {
    const char *path;
    bool prefix;      /* path is a prefix (/v1/models/{id}) */
    unsigned methods; /* M_GET | M_POST | M_DELETE */
    api_kind api;     /* error shape */
    bool needs_model; /* 503 until the model is loaded */
    route_fn fn;
} srv_route;

static const srv_route http_routes[] = {
    {"/", false, M_GET, API_OLLAMA, false, webui_root},
    {"/webui/", true, M_GET, API_OPENAI, false, webui_asset},
    {"/health", false, M_GET, API_OPENAI, false, ext_health},
    {"/metrics", false, M_GET, API_OPENAI, false, ext_metrics},
    {"/v1/chat/completions", false, M_POST, API_OPENAI, true, oai_chat},
    {"/v1/completions", false, M_POST, API_OPENAI, true, oai_completions},
    {"/v1/models", false, M_GET, API_OPENAI, true, oai_models},
    {"/v1/models/", true, M_GET, API_OPENAI, true, oai_models},
    {"/api/chat", false, M_POST, API_OLLAMA, true, oll_chat},
    {"/api/generate", false, M_POST, API_OLLAMA, true, oll_generate},
    {"/api/tags", false, M_GET, API_OLLAMA, true, oll_tags},
    {"/api/show", false, M_POST, API_OLLAMA, true, oll_show},
    {"/api/ps", false, M_GET, API_OLLAMA, true, oll_ps},
    {"/api/version", false, M_GET, API_OLLAMA, false, oll_version},
    {"/api/pull", false, M_POST, API_OLLAMA, false, oll_pull},
    {"/api/delete", false, M_DELETE, API_OLLAMA, false, oll_delete},
    {"/api/copy", false, M_POST, API_OLLAMA, false, oll_copy},
    {"/tokenize", false, M_POST, API_OPENAI, true, ext_tokenize},
    {"/detokenize", false, M_POST, API_OPENAI, true, ext_detokenize},
    {"/props", false, M_GET, API_OPENAI, true, ext_props},
};

#define HTTP_STREAM_BLOCK (16 * 1024)
#define HTTP_MAX_DISCARD  ((size_t)64 << 20) /* past the cap, then the connection is closed */
#define HTTP_STACK_SIZE   ((size_t)2 << 20)
#define HTTP_CONN_MEMORY  ((size_t)64 << 10)
#define HTTP_SNDBUF       (64 * 1024) /* bytes; the kernel doubles it */

static const srv_route *http_find_route(const char *url) {
    for (size_t i = 0; i < sizeof http_routes / sizeof http_routes[0]; i++) {
        const srv_route *rt = &http_routes[i];
        if (rt->prefix ? !strncmp(url, rt->path, strlen(rt->path)) && url[strlen(rt->path)]
                       : !strcmp(url, rt->path))
            return rt;
    }
    return NULL;
}

/* ---- responses ---- */

static void http_headers(http_req *r, struct MHD_Response *resp) {
    const char *origin = r->s->cfg.cors_origin;
    if (origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
        if (strcmp(origin, "*")) MHD_add_response_header(resp, "Vary", "Origin");
    }
}

static int http_queue(http_req *r, int status, struct MHD_Response *resp) {
    if (!resp) return MHD_NO;
    http_headers(r, resp);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->queued = true;
        r->status = status;
    }
    return ret;
}

int http_send(http_req *r, int status, const char *ctype, char *body, size_t len) {
    struct MHD_Response *resp =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    return http_queue(r, status, resp);
}

int http_send_json(http_req *r, int status, cJSON *j) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) return MHD_NO;
    return http_send(r, status, "application/json", s, strlen(s));
}

static int http_send_error_hdr(http_req *r, const api_err *e, const char *hname, const char *hval) {
    char *body = rq_error_body(r->api, e);
    if (!body) return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (e->status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (e->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (hname) MHD_add_response_header(resp, hname, hval);
    return http_queue(r, e->status, resp);
}

int http_send_error(http_req *r, const api_err *e) {
    return http_send_error_hdr(r, e, NULL, NULL);
}

int http_send_response(http_req *r, int status, struct MHD_Response *resp) {
    return http_queue(r, status, resp);
}

int http_send_stream(http_req *r, const char *ctype, gen_job *job) {
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, gen_stream_reader, job, gen_stream_release);
    if (!resp) {
        gen_stream_release(job);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    return http_queue(r, 200, resp);
}

int http_client_fd(http_req *r) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

void http_set_timeout(struct MHD_Connection *c, unsigned seconds) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, seconds);
}

/* ---- the first call: route, authenticate, refuse early ---- */

static int http_preflight(http_req *r) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                            "GET, POST, DELETE, HEAD, OPTIONS");
    const char *h =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            h && *h ? h : "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    return http_queue(r, 204, resp);
}

static int http_begin(http_req *r, const char *method) {
    server *s = r->s;
    api_err e = {0};
    const srv_route *rt = http_find_route(r->url);
    r->route = rt;
    r->api = rt ? rt->api : !strncmp(r->url, "/api/", 5) ? API_OLLAMA : API_OPENAI;
    bool is_options = !strcmp(method, "OPTIONS");
    /* a browser's preflight carries no credentials */
    if (is_options && s->cfg.cors_origin) return http_preflight(r);
    /* /health and the web page's files need no key (webui.c says why) */
    if (!(rt && (rt->fn == ext_health || webui_public(r, rt->fn))) &&
        !srv_auth_ok(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization"),
                     s->cfg.api_key)) {
        rq_fail(&e, 401, NULL, "a valid API key is required (Authorization: Bearer KEY)");
        e.code = "invalid_api_key";
        return http_send_error(r, &e);
    }
    if (!rt) {
        rq_fail(&e, 404, NULL, "no route %.100s %.200s", method, r->url);
        return http_send_error(r, &e);
    }
    unsigned m = !strcmp(method, "GET") || !strcmp(method, "HEAD") ? M_GET
                 : !strcmp(method, "POST")                         ? M_POST
                 : !strcmp(method, "DELETE")                       ? M_DELETE
                                                                   : 0;
    if (!(rt->methods & m)) {
        rq_fail(&e, 405, NULL, "method %.100s is not allowed on %.200s", method, r->url);
        return http_send_error_hdr(r, &e, "Allow",
                                   rt->methods == M_GET      ? "GET, HEAD"
                                   : rt->methods == M_DELETE ? "DELETE"
                                                             : "POST");
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end = NULL;
        unsigned long long v = strtoull(cl, &end, 10);
        if (end != cl && v > s->cfg.max_body) {
            rq_fail(&e, 413, NULL,
                    "the request body (%llu bytes) is larger than the limit of %zu bytes", v,
                    s->cfg.max_body);
            return http_send_error(r, &e);
        }
    }
    if (rt->needs_model) {
        server_state st = (server_state)atomic_load(&s->state);
        if (st == SERVER_LOADING) {
            rq_fail(&e, 503, NULL, "the model is loading");
            return http_send_error(r, &e);
        }
        if (st == SERVER_FAILED) {
            rq_fail(&e, 503, NULL, "the model failed to load: %s", s->error);
            return http_send_error(r, &e);
        }
    }
    return MHD_YES;
}

/* Appends a piece of the body (or drops it past the cap). */
static int http_body(http_req *r, const char *data, size_t n) {
    size_t cap = r->s->cfg.max_body;
    if (r->too_big || r->body_len + n > cap) {
        if (!r->too_big) {
            r->too_big = true;
            r->discarded = r->body_len;
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
        }
        r->discarded += n;
        return r->discarded > HTTP_MAX_DISCARD ? MHD_NO : MHD_YES;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t c = (r->body_len + n + 1) * 2;
        if (c > cap + 1) c = cap + 1;
        char *b = realloc(r->body, c);
        if (!b) return MHD_NO;
        r->body = b;
        r->body_cap = c;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->s = s;
        r->conn = c;
        r->url = url;
        r->t0 = srv_now();
        r->n_in = r->n_out = -1;
        r->ttft_s = -1;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        *con_cls = r;
        return (enum MHD_Result)http_begin(r, method);
    }
    if (r->queued) { /* answered early: drop what still comes */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        int ok = http_body(r, upload, *upload_size);
        *upload_size = 0;
        return (enum MHD_Result)ok;
    }
    if (r->too_big) {
        api_err e;
        rq_fail(&e, 413, NULL, "the request body (%zu bytes) is larger than the limit of %zu bytes",
                r->discarded, s->cfg.max_body);
        return (enum MHD_Result)http_send_error(r, &e);
    }
    return (enum MHD_Result)r->route->fn(r);
}

static void http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
    (void)c;
    server *s = cls;
    http_req *r = *con_cls;
    if (!r) return;
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    gen_request_done(r, ok);
    const char *note = NULL;
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        break;
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        note = "timeout";
        break;
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        note = "shutdown";
        break;
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        note = "client gone";
        break;
    default:
        note = r->queued ? "client gone" : "closed";
        break;
    }
    if (!r->queued) r->status = 0;
    srv_log_request(s, r, note);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

/* A new connection: its kernel send buffer is capped, so a client that
 * stops reading holds at most that much there (and is noticed: MHD's write
 * stalls, the connection times out, its request is cancelled) instead of
 * the megabytes Linux's autotuning would let it take. */
static void http_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                            enum MHD_ConnectionNotificationCode code) {
    (void)cls;
    (void)socket_ctx;
    if (code != MHD_CONNECTION_NOTIFY_STARTED) return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int size = HTTP_SNDBUF;
    if (ci) setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

int http_start(server *s) {
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC;
    // clang-format off
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_access, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY,
        MHD_OPTION_THREAD_STACK_SIZE, HTTP_STACK_SIZE,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, http_connection, s,
        MHD_OPTION_END);
    // clang-format on
    return s->mhd ? 0 : -1;
}
