/* m40-llm serve [--addr 127.0.0.1:8080] [--model MODEL] [options]
 *
 * Starts the HTTP server (src/server/): it listens at once, loads the model
 * on a thread (/health says "loading" meanwhile) and serves the OpenAI and
 * Ollama APIs until SIGINT or SIGTERM, then stops accepting connections,
 * lets running requests finish for --grace seconds, cancels the rest and
 * exits 0. Exit 1 when the model is missing or fails to load, 2 on bad
 * options. The signals are blocked in every thread and taken here with
 * sigtimedwait, so no handler runs inside the server's threads. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"
#include "cli_backend.h"
#include "chat.h"
#include "err.h"
#include "server/server.h"

static int serve_usage(FILE *f) {
    fprintf(
        f,
        "usage: m40-llm serve [--addr HOST:PORT] [--model MODEL] [options]\n"
        "  --addr A               host:port, [v6]:port, :port or port (default 127.0.0.1:8080;\n"
        "                         port 0 picks a free one)\n"
        "  --model MODEL          GGUF path or a model name (also: serve MODEL); without it,\n"
        "                         requests name any model of the store (m40-llm list) and it\n"
        "                         is loaded on demand\n"
        "  --max-models N         models resident at once without --model (default 1; the\n"
        "                         least recently used idle one is unloaded first)\n"
        "  --keep-alive DURATION  how long a model stays loaded after its last request\n"
        "                         (default 5m; 0 unloads at once; negative keeps it)\n"
        "  --max-memory BYTES     what resident models may take (weights + KV cache; K/M/G);\n"
        "                         a model that cannot fit is refused with 507\n"
        "  --alias NAME           the model id clients see and may send\n"
        "  --api-key KEY          require 'Authorization: Bearer KEY' (or $M40LLM_API_KEY)\n"
        "  --ctx N                context per sequence (default min(4096, trained))\n"
        "  --max-seqs N           sequences running at once (default 128)\n"
        "  --max-batch-tokens N   entries per forward step (default max(512, max-seqs))\n"
        "  --max-queue N          requests waiting before 503 (default 1024)\n"
        "  --kv f16|f32           KV-cache type (default f16)\n"
        "  --kv-memory B|F        KV pool: bytes (K/M/G suffixes) or a fraction of free GPU "
        "memory\n"
        "  --kv-block N           positions per KV block (default: the backend's)\n"
        "  --no-prefix-cache      do not reuse KV blocks across requests\n"
        "  --device cpu|cuda[:N]  (default: CUDA if usable, else CPU)\n"
        "  --gpus LIST            several GPUs, \"0,1\" or \"all\": the layers split over them\n"
        "                         (default: one, or all usable when no one card has room)\n"
        "  --split layer          how (\"row\" is not implemented yet)\n"
        "  --tensor-split L       each card's share of the layers, e.g. 3,1 (default: free "
        "memory)\n"
        "  --threads N            CPU backend threads (default: all cores)\n"
        "  --cors ORIGIN          send CORS headers for ORIGIN ('*' for any)\n"
        "  --no-webui             no chat page at / for browsers (/ answers text as for API "
        "clients)\n"
        "  --max-body BYTES       request body limit (default 8M)\n"
        "  --max-connections N    open connections (default 256)\n"
        "  --timeout SECONDS      drop an idle or stalled client (default 30)\n"
        "  --log-format text|json one line per request on stderr (default text)\n"
        "  --grace SECONDS        on SIGINT/SIGTERM, time for running requests (default 10)\n"
        "  --chat-template NAME|FILE  chat with this template instead of the model's own\n"
        "                         (with --model; built-in:\n"
        "                         %s)\n",
        chat_builtin_names());
    return f == stdout ? 0 : 2;
}

/* "123", "64K", "512M", "8G" (also KiB, MiB, GiB; powers of 1024) */
static int serve_parse_bytes(const char *v, uint64_t *out) {
    if (!v) return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || errno || v[0] == '-') return -1;
    uint64_t mul = 1;
    if (!strcasecmp(end, "k") || !strcasecmp(end, "kib") || !strcasecmp(end, "kb"))
        mul = 1ull << 10;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mib") || !strcasecmp(end, "mb"))
        mul = 1ull << 20;
    else if (!strcasecmp(end, "g") || !strcasecmp(end, "gib") || !strcasecmp(end, "gb"))
        mul = 1ull << 30;
    else if (*end)
        return -1;
    if (n > UINT64_MAX / mul) return -1;
    *out = (uint64_t)n * mul;
    return 0;
}

static int serve_bad(const char *opt, const char *v, const char *what) {
    fprintf(stderr, "m40-llm serve: %s: '%s' is not %s\n", opt, v ? v : "", what);
    return -1;
}

/* --chat-template NAME|FILE: its source in *out, rendered once for one user
 * message so that a template that cannot work fails before the port opens
 * (the model's BOS/EOS texts are checked again at load). Nonzero after a
 * message. */
static int serve_template(const char *arg, const char *model_arg, char **out) {
    *out = NULL;
    if (!model_arg) {
        fprintf(stderr, "m40-llm serve: --chat-template needs --model (it replaces that model's "
                        "template)\n");
        return -1;
    }
    char *src = NULL;
    int rc = chat_template_for(arg, &src);
    cJSON *msgs = rc ? NULL : cJSON_Parse("[{\"role\":\"user\",\"content\":\"Hello\"}]");
    char *text = NULL;
    if (!rc) {
        rc = msgs ? chat_render(src, msgs, true, NULL, NULL, &text)
                  : err_set(M40LLM_ERR_OOM, "out of memory");
        if (rc) err_prefix(rc, "'%s' on one user message", arg);
    }
    cJSON_Delete(msgs);
    free(text);
    if (rc) {
        free(src);
        cli_fail("--chat-template", rc);
        return -1;
    }
    *out = src;
    return 0;
}

/* --kv-memory: a fraction (0 < F <= 1, written with a '.') or bytes */
static int serve_parse_kv_memory(const char *v, m40llm_engine_params *p) {
    if (v && strchr(v, '.')) {
        char *end = NULL;
        double f = strtod(v, &end);
        if (end == v || *end || !isfinite(f) || f <= 0 || f > 1)
            return serve_bad("--kv-memory", v, "a fraction in (0, 1] or a byte count");
        p->kv_fraction = f;
        return 0;
    }
    uint64_t b = 0;
    if (serve_parse_bytes(v, &b) || b == 0)
        return serve_bad("--kv-memory", v, "a fraction in (0, 1] or a byte count");
    p->kv_bytes = b;
    return 0;
}

/* Waits for SIGINT/SIGTERM or a failed load; 0 after a signal, 1 on failure. */
static int serve_wait(server *s, const sigset_t *set, const char *model_arg) {
    bool announced = false;
    for (;;) {
        struct timespec ts = {0, 200 * 1000000L};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) return 0;
        server_state st = server_get_state(s);
        if (st == SERVER_FAILED) {
            fprintf(stderr, "m40-llm serve: ");
            cli_put_escaped(stderr, server_error(s), strlen(server_error(s)), 0);
            fputc('\n', stderr);
            return 1;
        }
        if (st == SERVER_READY && !announced) {
            announced = true;
            fprintf(stderr, "m40-llm serve: ready: ");
            cli_put_escaped(stderr, model_arg, strlen(model_arg), 0);
            fprintf(stderr, " at http://%s\n", server_bound_addr(s));
        }
    }
}

int cmd_serve(int argc, char **argv) {
    server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    m40llm_engine_default_params(&cfg.engine);
    cfg.max_models = 1;
    cfg.keep_alive_s = 300; /* Ollama's default: 5 minutes */
    const char *model_arg = NULL, *key = NULL;
    backend_gpus gpus = {0};
    int gi;
    double grace = 10;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return serve_usage(stdout);
        } else if (!strcmp(a, "--addr") || !strcmp(a, "--host")) {
            char host[256];
            int port;
            if (!v) goto bad;
            if (server_parse_addr(v, host, sizeof host, &port)) {
                fprintf(stderr, "m40-llm serve: %s\n", m40llm_last_error());
                goto bad;
            }
            cfg.addr = v;
        } else if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            if (!v) goto bad;
            model_arg = v;
        } else if (!strcmp(a, "--max-models")) {
            if ((n = cli_parse_long(a, v, 1, 64)) < 0) goto bad;
            cfg.max_models = (int)n;
        } else if (!strcmp(a, "--keep-alive")) {
            if (!v || server_parse_duration(v, &cfg.keep_alive_s)) {
                serve_bad(a, v, "a duration (5m, 1h30m, 30s, 0, -1)");
                goto bad;
            }
        } else if (!strcmp(a, "--max-memory")) {
            if (serve_parse_bytes(v, &cfg.max_memory) || !cfg.max_memory) {
                serve_bad(a, v, "a byte count (K/M/G suffixes)");
                goto bad;
            }
        } else if (!strcmp(a, "--alias")) {
            if (!v || !*v) goto bad;
            cfg.alias = v;
        } else if (!strcmp(a, "--api-key")) {
            if (!v) goto bad;
            key = v;
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            if ((n = cli_parse_long(a, v, 8, 1 << 20)) < 0) goto bad;
            cfg.engine.n_ctx = (int)n;
        } else if (!strcmp(a, "--max-seqs")) {
            if ((n = cli_parse_long(a, v, 1, 4096)) < 0) goto bad;
            cfg.engine.max_seqs = (int)n;
        } else if (!strcmp(a, "--max-batch-tokens")) {
            if ((n = cli_parse_long(a, v, 1, 1 << 20)) < 0) goto bad;
            cfg.engine.max_batch_tokens = (int)n;
        } else if (!strcmp(a, "--max-queue")) {
            if ((n = cli_parse_long(a, v, 1, 1 << 20)) < 0) goto bad;
            cfg.engine.max_queue = (int)n;
        } else if (!strcmp(a, "--kv")) {
            if (!v || (strcmp(v, "f16") && strcmp(v, "f32"))) {
                serve_bad(a, v, "f16 or f32");
                goto bad;
            }
            cfg.engine.kv_type = !strcmp(v, "f32") ? M40LLM_KV_F32 : M40LLM_KV_F16;
        } else if (!strcmp(a, "--kv-memory")) {
            if (serve_parse_kv_memory(v, &cfg.engine)) goto bad;
        } else if (!strcmp(a, "--kv-block")) {
            if ((n = cli_parse_long(a, v, 1, 4096)) < 0) goto bad;
            cfg.engine.kv_block = (int)n;
        } else if (!strcmp(a, "--no-webui")) {
            cfg.no_webui = true;
            takes = false;
        } else if (!strcmp(a, "--no-prefix-cache")) {
            cfg.engine.no_prefix_cache = 1;
            takes = false;
        } else if ((gi = cli_gpu_option("serve", a, v, &gpus)) != 0) {
            if (gi < 0) goto bad;
            cfg.engine.gpus = gpus.list;
            cfg.engine.split = gpus.split;
            cfg.engine.tensor_split = gpus.tensor_split;
        } else if (!strcmp(a, "--device")) {
            if (!v || cli_check_device(v)) goto bad;
            cfg.engine.device = v;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if ((n = cli_parse_long(a, v, 1, 1024)) < 0) goto bad;
            cfg.engine.n_threads = (int)n;
        } else if (!strcmp(a, "--cors")) {
            if (!v || !*v || strpbrk(v, "\r\n")) {
                serve_bad(a, v, "an origin");
                goto bad;
            }
            cfg.cors_origin = v;
        } else if (!strcmp(a, "--max-body")) {
            uint64_t b = 0;
            if (serve_parse_bytes(v, &b) || b == 0 || b > (1ull << 34)) {
                serve_bad(a, v, "a byte count (K/M/G suffixes)");
                goto bad;
            }
            cfg.max_body = (size_t)b;
        } else if (!strcmp(a, "--max-connections")) {
            if ((n = cli_parse_long(a, v, 1, 100000)) < 0) goto bad;
            cfg.max_connections = (int)n;
        } else if (!strcmp(a, "--timeout")) {
            if ((n = cli_parse_long(a, v, 1, 86400)) < 0) goto bad;
            cfg.conn_timeout_s = (int)n;
        } else if (!strcmp(a, "--log-format")) {
            if (!v || (strcmp(v, "text") && strcmp(v, "json"))) {
                serve_bad(a, v, "text or json");
                goto bad;
            }
            cfg.log_format = !strcmp(v, "json") ? SERVER_LOG_JSON : SERVER_LOG_TEXT;
        } else if (!strcmp(a, "--grace")) {
            char *end = NULL;
            grace = v ? strtod(v, &end) : -1;
            if (!v || end == v || *end || !isfinite(grace) || grace < 0 || grace > 86400) {
                serve_bad(a, v, "a number of seconds");
                goto bad;
            }
        } else if (!strcmp(a, "--chat-template")) {
            if (!v) goto bad;
            cfg.chat_template = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "m40-llm serve: unknown option %s\n", a);
            goto bad;
        } else {
            takes = false;
            if (model_arg) {
                fprintf(stderr, "m40-llm serve: one model only ('%s' and '%s')\n", model_arg, a);
                goto bad;
            }
            model_arg = a;
        }
        if (takes) i++;
    }
    char *tmpl = NULL; /* --chat-template's source, checked before the port opens */
    if (cfg.chat_template && serve_template(cfg.chat_template, model_arg, &tmpl)) return 2;
    cfg.chat_template = tmpl;
    if (!key || !*key) key = getenv("M40LLM_API_KEY");
    cfg.api_key = key && *key ? key : NULL;

    char path[1024] = "";
    int rc = model_arg ? cli_resolve_model(model_arg, path, sizeof path) : M40LLM_OK;
    if (rc) {
        cli_fail("model", rc);
        fprintf(stderr, "m40-llm serve: pass the path of a GGUF file, or run 'm40-llm pull ");
        cli_put_escaped(stderr, model_arg, strlen(model_arg), 0);
        fprintf(stderr, "' first\n");
        return 1;
    }
    cfg.model_path = model_arg ? path : NULL;
    cfg.model_name = model_arg;

    /* the server's threads inherit the mask: the signals come only here */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    server *s = NULL;
    rc = server_start(&cfg, &s);
    free(tmpl); /* the server holds its own copy */
    if (rc) return cli_fail("serve", rc);
    fprintf(stderr, "m40-llm serve: listening on http://%s; ", server_bound_addr(s));
    if (model_arg) {
        fputs("loading ", stderr);
        cli_put_escaped(stderr, path, strlen(path), 0);
    } else {
        fprintf(stderr, "models load on demand (at most %d at once)", cfg.max_models);
    }
    fputc('\n', stderr);
    if (!server_is_loopback(s) && !cfg.api_key)
        fprintf(stderr,
                "m40-llm serve: warning: %s is not a loopback address and no --api-key is set: "
                "anyone who can reach it can use the model\n",
                server_bound_addr(s));
    int ret = serve_wait(s, &set, model_arg ? model_arg : "models of the store");
    if (ret == 0)
        fprintf(stderr, "m40-llm serve: stopping (up to %g s for running requests)\n", grace);
    server_stop(s, grace);
    if (ret == 0) fprintf(stderr, "m40-llm serve: stopped\n");
    return ret;
bad:
    serve_usage(stderr);
    return 2;
}
