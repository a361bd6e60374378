/* The HTTP server of `m40-llm serve`: OpenAI- and Ollama-compatible routes,
 * /health, /metrics and a few extras over one engine (include/m40llm.h).
 *
 * server_start binds the address and answers at once (/health says
 * "loading") while a thread loads the model and creates the engine; the
 * caller (cmd_serve.c) watches server_state and stops the server with a
 * grace period. Functions return an m40llm status with the message in
 * m40llm_last_error(); nothing here exits the process. */
#ifndef M40_SERVER_H
#define M40_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "m40llm.h"

#define SERVER_DEFAULT_PORT     8080
#define SERVER_DEFAULT_MAX_BODY ((size_t)8 << 20)

typedef struct server server;

typedef enum server_log_format { SERVER_LOG_TEXT = 0, SERVER_LOG_JSON = 1 } server_log_format;

typedef struct server_config {
    const char *addr;          /* "host:port", "[v6]:port", ":port", "host"; NULL: 127.0.0.1:8080 */
    const char *model_path;    /* the GGUF file to load; NULL: models load on demand by name */
    const char *model_name;    /* the name the user gave (--model), or NULL */
    const char *alias;         /* --alias: the model id clients see; NULL: from the name */
    const char *api_key;       /* NULL or "": no authentication */
    const char *cors_origin;   /* NULL: no CORS headers */
    const char *chat_template; /* template source replacing the models' own; NULL: theirs */
    size_t max_body;           /* request body cap in bytes; 0: SERVER_DEFAULT_MAX_BODY */
    int max_connections;       /* 0: 256 */
    int conn_timeout_s;        /* idle or stalled client; 0: 30 */
    server_log_format log_format;
    int max_models;      /* models resident at once without --model; 0: 1 */
    double keep_alive_s; /* default keep_alive (seconds; < 0 forever; 0 unloads at once) */
    uint64_t max_memory; /* bytes the resident models may take (weights + KV); 0: no limit */
    bool no_webui;       /* --no-webui: GET / answers browsers with text too */
    m40llm_engine_params engine;
} server_config;

typedef enum server_state {
    SERVER_LOADING = 0, /* listening; the model is being loaded */
    SERVER_READY,       /* serving */
    SERVER_FAILED,      /* the model or engine could not be created (server_error says why) */
} server_state;

/* Parses an --addr value into host (numeric or a name, without brackets) and
 * port. ":port" and "" mean loopback (127.0.0.1); a host without a port gets
 * SERVER_DEFAULT_PORT. M40LLM_ERR_INVALID_ARG naming what is wrong. */
int server_parse_addr(const char *addr, char *host, size_t host_size, int *port);

/* A duration as Ollama's keep_alive takes it: "5m", "1h30m", "300ms", a
 * number of seconds; negative means forever (-1). 0, or -1 when malformed. */
int server_parse_duration(const char *s, double *out);

/* Binds and listens, starts the HTTP daemon and the loading thread. */
int server_start(const server_config *cfg, server **out);
server_state server_get_state(server *s);
/* Why loading failed (valid while s lives); "" otherwise. */
const char *server_error(server *s);
/* The address actually bound, e.g. "127.0.0.1:8080" or "[::1]:8080". */
const char *server_bound_addr(const server *s);
/* Whether that address is a loopback one (else, without a key, anyone on
 * the network may use the server: the caller warns). */
bool server_is_loopback(const server *s);
/* Stops accepting connections, lets running generations finish for at most
 * grace_s seconds, cancels the rest, closes every connection and frees
 * everything (engine and model included). s may be NULL. */
void server_stop(server *s, double grace_s);

#endif
