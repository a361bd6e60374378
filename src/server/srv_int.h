/* Internals shared by the server's files (src/server/): the server state,
 * one HTTP request, a generation job, errors in each API's shape, request
 * parsing helpers, response formatting and metrics.
 *
 * Threads: libmicrohttpd runs one thread per connection (http.c says why);
 * the engine calls gen.c's event callback on its own thread, which only
 * appends to the job's queue and signals the connection's thread. */
#ifndef M40_SRV_INT_H
#define M40_SRV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "m40llm.h"
#include "server.h"

/* ===== errors, in the shape of the API that was called ===== */

typedef enum api_kind {
    API_OPENAI = 0, /* {"error": {"message", "type", "param", "code"}} */
    API_OLLAMA = 1, /* {"error": "message"} */
} api_kind;

typedef struct api_err {
    int status;       /* HTTP status */
    char param[64];   /* the offending field ("" when none) */
    const char *code; /* OpenAI error code (static) or NULL */
    char msg[600];
} api_err;

/* Fills e (printf-style message) and returns -1. */
int rq_fail(api_err *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The error of a library call (status rc, message m40llm_last_error()) as
 * an HTTP error: CONTEXT_FULL/INVALID_ARG/TYPE/FORMAT 400, NOT_FOUND 404,
 * BUSY 503, OOM 503, else 500. Returns -1. */
int rq_fail_status(api_err *e, int rc, const char *param);
/* The error body in the API's shape (malloc'd, NUL-terminated). */
char *rq_error_body(api_kind api, const api_err *e);

/* ===== request JSON ===== */

/* json_check (NUL, \u0000, depth, value count) then cJSON: the body must be
 * one object. NULL with e filled (400) otherwise. */
cJSON *rq_parse(const char *body, size_t len, api_err *e);
/* Typed members: 0 absent (or null), 1 present (*out set), -1 wrong type or
 * out of range (e filled, naming `name`, which is key when NULL). */
int rq_string(const cJSON *o, const char *key, const char *name, const char **out, api_err *e);
int rq_bool(const cJSON *o, const char *key, const char *name, bool *out, api_err *e);
int rq_number(const cJSON *o, const char *key, const char *name, double lo, double hi, double *out,
              api_err *e);
int rq_int(const cJSON *o, const char *key, const char *name, long long lo, long long hi,
           long long *out, api_err *e);
/* A seed: an integer in [-2^63, 2^64), negative ones as two's complement. */
int rq_seed(const cJSON *o, const char *key, const char *name, uint64_t *out, api_err *e);
/* A stop string or an array of them (at most RQ_MAX_STOPS; "" ignored):
 * appended to *stops (malloc'd copies). */
#define RQ_MAX_STOPS 16
int rq_stops(const cJSON *o, const char *key, const char *name, char ***stops, int *n, api_err *e);

/* ===== what a generation request asks for (parsed, not yet tokenized) ===== */

typedef enum gen_kind {
    GEN_OAI_CHAT = 0,   /* POST /v1/chat/completions */
    GEN_OAI_COMPLETION, /* POST /v1/completions */
    GEN_OLL_CHAT,       /* POST /api/chat */
    GEN_OLL_GENERATE,   /* POST /api/generate */
} gen_kind;

typedef struct gen_spec {
    gen_kind kind;
    bool stream;
    bool include_usage; /* OpenAI stream_options.include_usage */
    char model[256];    /* the model name as the client gave it (echoed back) */
    cJSON *messages;    /* chat: [{role, content: string}] normalized (owned) */
    char *prompt;       /* completion / generate text (owned) */
    int32_t *ids;       /* [n_ids] prompt token ids given by the client (owned) */
    size_t n_ids;       /* or, after gen_prompt, the prompt's ids */
    bool raw;           /* Ollama generate: no template */
    char *system;       /* Ollama generate: system message (owned) */
    m40llm_sampling sampling;
    int max_tokens; /* <= 0: until a stop or a full context */
    char **stops;   /* [n_stops] (owned) */
    int n_stops;
    int logprobs;      /* 1: the chosen token's logprob */
    int top_logprobs;  /* 0..M40LLM_MAX_LOGPROBS alternatives a token */
    int n_ctx;         /* Ollama num_ctx; 0: the server's */
    bool ignore_eos;   /* go on past end-of-generation tokens (vLLM's extension, benchmarks) */
    bool load_only;    /* Ollama: no prompt/messages = "load the model" */
    int format;        /* M40LLM_FORMAT_TEXT, or _JSON (response_format, format) */
    char *json_schema; /* with _JSON: the schema's text (json_schema, format {...}) (owned) */
    m40llm_logit_bias *logit_bias; /* [n_logit_bias] OpenAI logit_bias (owned) */
    int n_logit_bias;
    double keep_alive; /* Ollama keep_alive in seconds (< 0 forever); NAN: the server's */
} gen_spec;

/* OpenAI's defaults (temperature 1, top_p 1, no top_k/min_p/penalties) or
 * Ollama's (0.8, top_k 40, top_p 0.9, repeat_penalty 1.1 over 64). The
 * seed is left 0: the caller draws a random one unless one is given. */
void gen_spec_init(gen_spec *g, gen_kind kind);
void gen_spec_free(gen_spec *g);
/* JSON mode with a schema: g->json_schema gets its text once it compiles
 * (json_schema.h); else 400 naming param and why. 0 or -1. */
int rq_json_schema(const cJSON *schema, const char *param, gen_spec *g, api_err *e);

/* Body -> spec (pure: no model needed). 0, or -1 with e filled. *seeded
 * tells whether the request gave a seed. */
int oai_parse_chat(const cJSON *body, gen_spec *g, bool *seeded, api_err *e);
int oai_parse_completion(const cJSON *body, gen_spec *g, bool *seeded, api_err *e);
int oll_parse_chat(const cJSON *body, gen_spec *g, bool *seeded, api_err *e);
int oll_parse_generate(const cJSON *body, gen_spec *g, bool *seeded, api_err *e);

/* ===== response formatting (pure) ===== */

typedef struct gen_fmt {
    gen_kind kind;
    char id[48];        /* "chatcmpl-..." / "cmpl-..." */
    long long created;  /* unix seconds */
    char model[256];    /* echoed */
    bool include_usage; /* streamed chunks carry "usage": null, then a usage chunk */
} gen_fmt;

typedef struct gen_usage {
    int prompt, completion, cached; /* tokens */
} gen_usage;

typedef struct gen_times {
    double total_s, load_s, prompt_s, gen_s; /* seconds */
    int n_prompt, n_gen;
} gen_times;

/* One token and its logprob, its text from the tokenizer. */
typedef struct lp_tok {
    const char *text;
    size_t len;
    float logprob;
} lp_tok;

/* chat: {"token", "logprob", "bytes", "top_logprobs": [...]} */
cJSON *oai_chat_logprob(const lp_tok *chosen, const lp_tok *top, int n_top);
/* completions: appends to {"tokens", "token_logprobs", "top_logprobs",
 * "text_offset"} (created when *lp is NULL) */
int oai_compl_logprob_add(cJSON **lp, const lp_tok *chosen, const lp_tok *top, int n_top,
                          long long text_offset);
cJSON *oai_usage_json(const gen_usage *u);
/* SSE chunks "data: {...}\n\n" (malloc'd); logprobs (may be NULL) is taken.
 * Chat: role (may be NULL) and/or content; finish NULL while running. */
char *oai_chat_chunk(const gen_fmt *f, const char *role, const char *text, size_t len,
                     cJSON *logprobs, const char *finish);
char *oai_compl_chunk(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs,
                      const char *finish);
char *oai_usage_chunk(const gen_fmt *f, const gen_usage *u);
/* Whole responses (JSON text, malloc'd); logprobs (may be NULL) is taken. */
char *oai_chat_response(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs,
                        const char *finish, const gen_usage *u);
char *oai_compl_response(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs,
                         const char *finish, const gen_usage *u);
/* Ollama: {"token", "logprob", "top_logprobs": [{"token", "logprob"}]} */
cJSON *oll_logprob(const lp_tok *chosen, const lp_tok *top, int n_top);
/* NDJSON lines (malloc'd, ending "\n"): a running chunk, and the final
 * object (done: true, done_reason, durations in ns); for a non-streamed
 * answer the final object carries the whole text (final: without "\n"). */
char *oll_chunk(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs);
char *oll_final(const gen_fmt *f, const char *text, size_t len, cJSON *logprobs,
                const char *done_reason, const gen_times *t, bool newline);
/* RFC 3339 UTC time with nanoseconds, as Ollama writes it. */
void oll_time_now(char *buf, size_t n);

/* ===== metrics ===== */

#define METRICS_MAX_BUCKETS 32

typedef struct metrics_hist {
    const double *bounds;                     /* [n] upper bounds, increasing */
    int n;                                    /* buckets without +Inf */
    uint64_t counts[METRICS_MAX_BUCKETS + 1]; /* per bucket (not cumulative); [n] = +Inf */
    double sum;
    uint64_t count;
} metrics_hist;

typedef struct metrics {
    pthread_mutex_t mu;
    metrics_hist ttft, itl, e2e, queue; /* seconds */
} metrics;

void metrics_init(metrics *m);
void metrics_destroy(metrics *m);
void metrics_hist_observe(metrics_hist *h, double v);
/* An empty histogram with the inter-token latency buckets (a request keeps
 * one and adds it to the server's when it ends). */
void metrics_hist_init_itl(metrics_hist *h);
/* One finished request: TTFT (< 0: none), end-to-end, queue time, and
 * the histogram of the gaps between its token events (may be NULL). */
void metrics_observe_request(metrics *m, double ttft, double e2e, double queue,
                             const metrics_hist *itl);
/* The Prometheus text: engine counters and gauges (st, ei may be NULL while
 * loading), the histograms, and the GPU series when gpu is not NULL.
 * model labels the series (escaped). malloc'd. */
char *metrics_render(metrics *m, const char *model, const m40llm_engine_stats *st,
                     const m40llm_engine_info *ei, const m40llm_gpu_info *gpu, int gpu_index);

/* ===== the server ===== */

/* Names a client may use for the loaded model (compared case-insensitively,
 * with or without a ":latest" tag). */
typedef struct srv_names {
    char id[256];      /* the listed id: --alias, else the --model name, else the file stem */
    char file[256];    /* file name */
    char stem[256];    /* file name without .gguf */
    char general[256]; /* general.name */
    char alias[256];
} srv_names;

bool srv_model_matches(const srv_names *n, const char *requested);

/* A model the server holds (models.c says how they come and go). */
typedef struct srv_model {
    srv_names names;
    char path[4096]; /* the GGUF */
    m40llm_model *model;
    m40llm_engine *engine;
    m40llm_model_info minfo;
    m40llm_engine_info einfo;
    long long created; /* unix time it was loaded */
    double load_s;     /* seconds the load took */
    uint64_t mem;      /* estimated bytes: weights + KV cache */
    /* under server.mu */
    int refs;          /* requests using it */
    bool ready;        /* loaded (else being loaded by the thread that placed it) */
    bool pinned;       /* --model: kept for the server's life */
    double last_used;  /* monotonic seconds */
    double keep_alive; /* seconds after the last use; < 0 forever */
    double expires;    /* monotonic seconds, when refs is 0; < 0 never */
    bool shadow;       /* facts read from the GGUF, nothing loaded (srv_model_peek) */
} srv_model;

#define SRV_MAX_MODELS 64

/* Fills names from the model argument, alias, path and general.name. */
void srv_names_init(srv_names *n, const char *model_arg, const char *alias, const char *path,
                    const char *general_name);

typedef struct gen_job gen_job;

struct server {
    server_config cfg; /* strings point into the copies below */
    char *s_addr, *s_model_path, *s_model_name, *s_alias, *s_key, *s_cors, *s_tmpl, *s_dev;
    pthread_mutex_t mu;
    atomic_int state;                  /* server_state; READY published after model/engine */
    char error[600];                   /* why loading failed */
    bool dynamic;                      /* no --model: models load on demand (models.c) */
    srv_model *models[SRV_MAX_MODELS]; /* [n_models], under mu; [0] the --model one */
    int n_models;
    pthread_cond_t models_cv; /* a model was loaded or released (with mu) */
    pthread_t reaper;         /* unloads models whose keep_alive is over */
    bool reaper_started;
    int test_load_delay_ms; /* test hook ($M40LLM_TEST_SERVE_LOAD_DELAY_MS) */
    struct MHD_Daemon *mhd;
    int listen_fd;   /* ours until quiesced */
    char bound[160]; /* "host:port" */
    bool loopback;   /* bound to a loopback address */
    pthread_t loader;
    bool loader_started;
    bool draining;  /* shutting down: no new generations (under mu) */
    bool hard_stop; /* grace over: cancel every generation (under mu) */
    gen_job *jobs;  /* running generations (list under mu) */
    int n_jobs;
    metrics metrics;
    atomic_uint_fast64_t rng; /* state for seeds and ids */
};

/* Binds and listens on addr (server_parse_addr); bound gets the address
 * in use ("127.0.0.1:8080", "[::1]:8080"), loopback whether it is one. */
struct sockaddr;
int srv_listen(const char *addr, int *fd, char *bound, size_t bound_size, bool *loopback);
bool srv_addr_is_loopback(const struct sockaddr *sa);
/* Constant-time comparison (its time depends on key_len only). */
bool srv_key_equal(const char *given, size_t given_len, const char *key, size_t key_len);
/* An Authorization header value "Bearer KEY" (scheme in any case) against
 * key; true when key is NULL or "". */
bool srv_auth_ok(const char *header, const char *key);

uint64_t srv_random(server *s);
double srv_now(void); /* monotonic seconds */

/* ===== one HTTP request ===== */

typedef struct http_req {
    server *s;
    struct MHD_Connection *conn;
    const struct srv_route *route;
    api_kind api;
    char method[8];
    const char *url; /* the path (MHD's copy, valid during the request) */
    char path[160];  /* for the log (cut) */
    char *body;      /* [body_len] + NUL */
    size_t body_len, body_cap;
    size_t discarded; /* body bytes dropped past the cap */
    bool too_big;     /* the body passed the cap: 413 at its end */
    bool queued;      /* a response was queued */
    int status;       /* of the response */
    double t0;        /* monotonic start */
    gen_job *job;     /* a generation, released when the request ends */
    bool logged;
    int n_in, n_out; /* tokens, for the log (-1: none) */
    double ttft_s;   /* -1: none */
} http_req;

typedef int (*route_fn)(http_req *r);

/* Responses (each returns an MHD_Result). body is taken (malloc'd). */
int http_send(http_req *r, int status, const char *ctype, char *body, size_t len);
int http_send_json(http_req *r, int status, cJSON *j); /* j is deleted */
int http_send_error(http_req *r, const api_err *e);
int http_send_stream(http_req *r, const char *ctype, gen_job *job);
/* A response built by the caller (taken: destroyed after queueing). */
int http_send_response(http_req *r, int status, struct MHD_Response *resp);
/* Starts the daemon on s->listen_fd (0, or -1). */
int http_start(server *s);
/* The connection's socket for hang-up checks (-1 if unknown). */
int http_client_fd(http_req *r);
/* Sets the connection's inactivity timeout (0: none) while a generation
 * waits on the engine, and restores it before a write. */
void http_set_timeout(struct MHD_Connection *c, unsigned seconds);

/* Routes. */
int oai_chat(http_req *r);
int oai_completions(http_req *r);
int oai_models(http_req *r);
int oll_chat(http_req *r);
int oll_generate(http_req *r);
int oll_tags(http_req *r);
int oll_show(http_req *r);
int oll_ps(http_req *r);
int oll_version(http_req *r);
int oll_pull(http_req *r);
int oll_delete(http_req *r);
int oll_copy(http_req *r);
int ext_root(http_req *r);
int ext_health(http_req *r);
int ext_metrics(http_req *r);
int ext_tokenize(http_req *r);
int ext_detokenize(http_req *r);
int ext_props(http_req *r);
/* The web page (webui.c): GET / for browsers (else ext_root) and
 * GET /webui/NAME; webui_public: route fn serves r without the API key. */
int webui_root(http_req *r);
int webui_asset(http_req *r);
bool webui_public(const http_req *r, route_fn fn);

/* ===== models (models.c) ===== */

/* The model a request names, loaded if need be, with a reference the
 * caller gives back with srv_model_put. With --model: that one (404 for
 * another name). Without: any model store_resolve finds (404 otherwise);
 * requested NULL or "": the most recently used loaded one. keep_alive NAN:
 * --keep-alive. 0, or -1 with e filled (404, 503 busy, 507 too big). */
int srv_model_get(server *s, const char *requested, double keep_alive, srv_model **out, api_err *e);
void srv_model_put(server *s, srv_model *m);
/* As srv_model_get, but a model that is not loaded is not loaded: *out is
 * then a shadow holding only names and minfo read from its GGUF (no model
 * or engine), freed by srv_model_put. For /api/show. */
int srv_model_peek(server *s, const char *requested, srv_model **out, api_err *e);
/* Loads m->path into m (model, engine, infos); library status. */
int srv_model_load_into(server *s, srv_model *m);
void srv_model_unload(srv_model *m); /* frees m; NULL is fine */
/* Unloads the idle model of this path now; 1 when one was unloaded. */
int srv_model_unload_named(server *s, const char *path);
void *srv_reaper(void *arg);
/* Ollama's keep_alive member: 0 absent (*out NAN), 1 set, -1 bad (e). */
int srv_parse_keep_alive(const cJSON *b, double *out, api_err *e);
/* "5m", "1h30m", "300ms", "-1", "0", "30" (seconds): 0, or -1. */
int srv_parse_duration(const char *s, double *out);
/* Loaded models as /api/ps (ollama_ps) or /v1/models entries. */
cJSON *srv_models_loaded_json(server *s, bool ollama_ps);
/* Every model of the store and found elsewhere, as /api/tags or /v1/models entries. */
cJSON *srv_models_store_json(server *s, bool ollama);
/* One model's entry: Ollama's /api/tags or /api/ps shape, OpenAI's. */
cJSON *oll_model_json(const srv_model *m, bool ps);
cJSON *oai_model_json(const srv_model *m);

/* ===== generation (gen.c) ===== */

/* Runs a parsed request on model m: prompt ids, submit, then a streamed
 * response or a wait for the whole answer. Takes g's contents and the
 * reference to m (given back when the job ends). */
int gen_handle(http_req *r, gen_spec *g, bool seeded, srv_model *m);
/* The connection ended (ok: it completed normally): cancels a job still
 * running, records its counts in r for the log, releases r's reference. */
void gen_request_done(http_req *r, bool ok);
/* MHD's content reader of a streamed job (the connection's thread), and
 * the release of the response's reference when MHD frees it. */
ssize_t gen_stream_reader(void *cls, uint64_t pos, char *buf, size_t max);
void gen_stream_release(void *cls);
/* At the end of the grace period: cancels every running job. */
void gen_cancel_all(server *s);

/* The request log line (text or JSON) to stderr. */
void srv_log_request(server *s, const http_req *r, const char *note);

#endif
