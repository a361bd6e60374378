/* The server's life: listen first, load the model on a thread (so /health
 * can say "loading"), serve, and stop with a grace period. Also the model
 * names clients may use, and the random source for seeds and ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "srv_int.h"

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t srv_random(server *s) {
    /* splitmix64 over an atomic counter seeded from the kernel */
    uint64_t z = atomic_fetch_add(&s->rng, 0x9E3779B97F4A7C15ull) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- model names ---- */

static void srv_set(char *dst, size_t n, const char *src, size_t len) {
    if (len >= n) len = n - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

void srv_names_init(srv_names *n, const char *model_arg, const char *alias, const char *path,
                    const char *general_name) {
    memset(n, 0, sizeof *n);
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path ? path : "";
    srv_set(n->file, sizeof n->file, base, strlen(base));
    size_t bl = strlen(base);
    if (bl > 5 && !strcasecmp(base + bl - 5, ".gguf")) bl -= 5;
    srv_set(n->stem, sizeof n->stem, base, bl);
    if (general_name) srv_set(n->general, sizeof n->general, general_name, strlen(general_name));
    if (alias) srv_set(n->alias, sizeof n->alias, alias, strlen(alias));
    /* the id clients see: --alias, else the name given to --model (not a path), else the file */
    if (alias && *alias)
        srv_set(n->id, sizeof n->id, alias, strlen(alias));
    else if (model_arg && *model_arg && !strchr(model_arg, '/') &&
             !(strlen(model_arg) > 5 && !strcasecmp(model_arg + strlen(model_arg) - 5, ".gguf")))
        srv_set(n->id, sizeof n->id, model_arg, strlen(model_arg));
    else
        srv_set(n->id, sizeof n->id, n->stem, strlen(n->stem));
}

/* equal ignoring case and a ":latest" tag on either side */
static bool srv_name_eq(const char *a, size_t al, const char *b) {
    size_t bl = strlen(b);
    if (!bl) return false;
    if (bl > 7 && !strcasecmp(b + bl - 7, ":latest")) bl -= 7;
    return al == bl && !strncasecmp(a, b, al);
}

bool srv_model_matches(const srv_names *n, const char *req) {
    if (!req || !*req) return false;
    size_t l = strlen(req);
    if (l > 7 && !strcasecmp(req + l - 7, ":latest")) l -= 7;
    return srv_name_eq(req, l, n->id) || srv_name_eq(req, l, n->file) ||
           srv_name_eq(req, l, n->stem) || srv_name_eq(req, l, n->general) ||
           srv_name_eq(req, l, n->alias);
}

/* ---- loading ---- */

static void srv_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --model: the one model, loaded while the server already answers */
static void *srv_loader(void *arg) {
    server *s = arg;
    srv_model *m = s->models[0];
    int rc = srv_model_load_into(s, m);
    if (rc) {
        snprintf(s->error, sizeof s->error, "%s", m40llm_last_error());
        atomic_store(&s->state, SERVER_FAILED);
        return NULL;
    }
    /* the rest of the names was set before the daemon started (and may be read now) */
    pthread_mutex_lock(&s->mu);
    m->ready = true;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->state, SERVER_READY); /* publishes everything above */
    return NULL;
}

/* ---- start / stop ---- */

static char *srv_dup(const char *s) {
    return s ? strdup(s) : NULL;
}

static void srv_free(server *s) {
    for (int i = 0; i < s->n_models; i++) srv_model_unload(s->models[i]);
    metrics_destroy(&s->metrics);
    pthread_cond_destroy(&s->models_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->s_addr);
    free(s->s_model_path);
    free(s->s_model_name);
    free(s->s_alias);
    free(s->s_key);
    free(s->s_cors);
    free(s->s_tmpl);
    free(s->s_dev);
    free(s);
}

int server_start(const server_config *cfg, server **out) {
    *out = NULL;
    if (!cfg) return err_set(M40LLM_ERR_INVALID_ARG, "server_start: no configuration");
    server *s = calloc(1, sizeof *s);
    if (!s) return err_set(M40LLM_ERR_OOM, "out of memory");
    s->cfg = *cfg;
    s->cfg.addr = s->s_addr = srv_dup(cfg->addr);
    s->cfg.model_path = s->s_model_path = srv_dup(cfg->model_path);
    s->cfg.model_name = s->s_model_name = srv_dup(cfg->model_name);
    s->cfg.alias = s->s_alias = srv_dup(cfg->alias);
    s->cfg.api_key = s->s_key = cfg->api_key && *cfg->api_key ? srv_dup(cfg->api_key) : NULL;
    s->cfg.cors_origin = s->s_cors = srv_dup(cfg->cors_origin);
    s->cfg.chat_template = s->s_tmpl = srv_dup(cfg->chat_template);
    s->cfg.engine.device = s->s_dev = srv_dup(cfg->engine.device);
    if (!s->cfg.max_body) s->cfg.max_body = SERVER_DEFAULT_MAX_BODY;
    if (s->cfg.max_connections <= 0) s->cfg.max_connections = 256;
    if (s->cfg.conn_timeout_s <= 0) s->cfg.conn_timeout_s = 30;
    if (s->cfg.max_models <= 0) s->cfg.max_models = 1;
    if (s->cfg.max_models > SRV_MAX_MODELS) s->cfg.max_models = SRV_MAX_MODELS;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->models_cv, NULL);
    metrics_init(&s->metrics);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    atomic_store(&s->rng, seed);
    s->dynamic = !s->cfg.model_path;
    if (!s->dynamic) {
        srv_model *m = calloc(1, sizeof *m);
        if (!m) {
            srv_free(s);
            return err_set(M40LLM_ERR_OOM, "out of memory");
        }
        snprintf(m->path, sizeof m->path, "%s", s->cfg.model_path);
        /* until the model is loaded, the names come from the command line */
        srv_names_init(&m->names, s->cfg.model_name, s->cfg.alias, s->cfg.model_path, NULL);
        m->pinned = true;
        m->keep_alive = m->expires = -1;
        s->models[s->n_models++] = m;
    }
    atomic_store(&s->state, s->dynamic ? SERVER_READY : SERVER_LOADING);
    /* test hook: hold the load back so a test can see /health say "loading" */
    const char *delay = getenv("M40LLM_TEST_SERVE_LOAD_DELAY_MS");
    if (delay) s->test_load_delay_ms = atoi(delay);
    s->listen_fd = -1;
    bool loopback = true;
    int rc = srv_listen(s->cfg.addr, &s->listen_fd, s->bound, sizeof s->bound, &loopback);
    if (rc) {
        srv_free(s);
        return rc;
    }
    s->loopback = loopback;
    if (http_start(s)) {
        close(s->listen_fd);
        srv_free(s);
        return err_set(M40LLM_ERR_INTERNAL, "cannot start the HTTP server (libmicrohttpd)");
    }
    if (s->dynamic) {
        if (pthread_create(&s->reaper, NULL, srv_reaper, s) == 0) s->reaper_started = true;
    } else if (pthread_create(&s->loader, NULL, srv_loader, s)) {
        snprintf(s->error, sizeof s->error, "cannot start the loading thread");
        atomic_store(&s->state, SERVER_FAILED);
    } else {
        s->loader_started = true;
    }
    *out = s;
    return M40LLM_OK;
}

server_state server_get_state(server *s) {
    return (server_state)atomic_load(&s->state);
}
const char *server_error(server *s) {
    return s->error;
}
const char *server_bound_addr(const server *s) {
    return s->bound;
}
bool server_is_loopback(const server *s) {
    return s->loopback;
}

static int srv_running_jobs(server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_jobs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void server_stop(server *s, double grace_s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->draining = true; /* new generations get 503 */
    pthread_cond_broadcast(&s->models_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->reaper_started) pthread_join(s->reaper, NULL);
    if (s->mhd) {
        MHD_socket fd = MHD_quiesce_daemon(s->mhd); /* no new connections */
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
    if (s->loader_started) pthread_join(s->loader, NULL);
    double end = srv_now() + (grace_s > 0 ? grace_s : 0);
    while (srv_running_jobs(s) > 0 && srv_now() < end) srv_sleep_ms(20);
    if (srv_running_jobs(s) > 0) {
        gen_cancel_all(s);
        /* cancelled streams end at the engine's next step */
        double stop = srv_now() + 5;
        while (srv_running_jobs(s) > 0 && srv_now() < stop) srv_sleep_ms(20);
    }
    if (s->mhd) MHD_stop_daemon(s->mhd); /* closes what is left, joins the threads */
    srv_free(s);
}
