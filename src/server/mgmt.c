/* Ollama's model management routes, which the front ends people use with
 * Ollama call: POST /api/pull (progress streamed as NDJSON), DELETE
 * /api/delete, POST /api/copy, over the model store (src/store/).
 *
 * A pull runs on its own thread; its progress callback only appends a line
 * to the job's buffer and signals. The connection's thread sends the lines
 * (MHD content reader, waiting in 100 ms slices and checking between them
 * whether the client hung up: then the pull is cancelled). */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "err.h"
#include "srv_int.h"
#include "store/pull.h"
#include "store/store.h"

#define PULL_BUF_MAX  ((size_t)1 << 20) /* progress held for a slow reader */
#define PULL_SLICE_MS 100
#define PULL_EVERY_S  0.25 /* seconds between download progress lines */

typedef struct pull_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf; /* NDJSON lines not yet sent: [off, len) */
    size_t len, off, cap;
    bool finished, cancel;
    int status; /* HTTP status of a failure, else 200 */
    char err[700];
    int refs; /* the thread, the request (+ a streamed response) */
    int fd;   /* the client's socket */
    double last_line;
    char spec[600];
} pull_job;

static double pull_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pull_job_release(pull_job *j) {
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->buf);
    free(j);
}

/* Appends one JSON object as a line (under j->mu); progress may be dropped. */
static void pull_emit(pull_job *j, cJSON *o, bool droppable) {
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!t) return;
    size_t l = strlen(t);
    if (droppable && j->len - j->off + l > PULL_BUF_MAX) {
        free(t);
        return;
    }
    if (j->off && j->off == j->len) j->off = j->len = 0;
    if (j->len + l + 2 > j->cap) {
        size_t c = (j->len + l + 2) * 2;
        char *nb = realloc(j->buf, c);
        if (!nb) {
            free(t);
            return;
        }
        j->buf = nb;
        j->cap = c;
    }
    memcpy(j->buf + j->len, t, l);
    j->buf[j->len + l] = '\n';
    j->len += l + 1;
    free(t);
    pthread_cond_broadcast(&j->cv);
}

static int pull_on_progress(void *user, const pull_progress *p) {
    pull_job *j = user;
    pthread_mutex_lock(&j->mu);
    bool cancel = j->cancel;
    double t = pull_now();
    if (!p->file) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", p->status);
        pull_emit(j, o, false);
    } else if (p->done || strcmp(p->status, "downloading") || t - j->last_line >= PULL_EVERY_S) {
        j->last_line = t;
        cJSON *o = cJSON_CreateObject();
        char st[120];
        /* Ollama's shape: "pulling <digest prefix>" with digest, total, completed */
        if (strcmp(p->status, "downloading"))
            snprintf(st, sizeof st, "%s", p->status); /* "verifying sha256 digest" */
        else
            snprintf(st, sizeof st, "pulling %.12s", p->digest ? p->digest + 7 : p->file);
        cJSON_AddStringToObject(o, "status", st);
        if (p->digest) cJSON_AddStringToObject(o, "digest", p->digest);
        cJSON_AddStringToObject(o, "file", p->file);
        cJSON_AddNumberToObject(o, "total", (double)p->total);
        cJSON_AddNumberToObject(o, "completed", (double)p->completed);
        pull_emit(j, o, !p->done);
    }
    pthread_mutex_unlock(&j->mu);
    return cancel;
}

static int pull_status_of(int rc) {
    switch (rc) {
    case M40LLM_ERR_NOT_FOUND:
        return 404;
    case M40LLM_ERR_INVALID_ARG:
    case M40LLM_ERR_UNSUPPORTED:
        return 400;
    default:
        return 500;
    }
}

static void *pull_thread(void *arg) {
    pull_job *j = arg;
    pull_opts o = {.progress = pull_on_progress, .user = j};
    pull_result res;
    int rc = pull_model(j->spec, &o, &res);
    pthread_mutex_lock(&j->mu);
    if (rc) {
        j->status = pull_status_of(rc);
        snprintf(j->err, sizeof j->err, "%s", m40llm_last_error());
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", j->err);
        pull_emit(j, e, false);
    }
    j->finished = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pull_job_release(j);
    return NULL;
}

static bool pull_client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* Waits up to one slice for something to send (under j->mu). */
static void pull_wait_slice(pull_job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += PULL_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->cv, &j->mu, &ts);
}

static ssize_t pull_reader(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    pull_job *j = cls;
    pthread_mutex_lock(&j->mu);
    while (j->off == j->len && !j->finished) {
        if (pull_client_gone(j->fd)) {
            j->cancel = true;
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        pull_wait_slice(j);
    }
    if (j->off == j->len) {
        pthread_mutex_unlock(&j->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = j->len - j->off < max ? j->len - j->off : max;
    memcpy(out, j->buf + j->off, n);
    j->off += n;
    pthread_mutex_unlock(&j->mu);
    return (ssize_t)n;
}

static void pull_response_done(void *cls) {
    pull_job *j = cls;
    pthread_mutex_lock(&j->mu);
    j->cancel = true; /* a client gone mid-way stops the download */
    pthread_mutex_unlock(&j->mu);
    pull_job_release(j);
}

/* {"model"|"name"} of a body, or NULL with e filled. */
static const char *mgmt_model(const cJSON *b, const char *key, api_err *e) {
    const char *m = NULL;
    if (rq_string(b, key, NULL, &m, e) < 0) return NULL;
    if (!m && !strcmp(key, "model") && rq_string(b, "name", NULL, &m, e) < 0) return NULL;
    if (!m || !*m) {
        rq_fail(e, 400, key, "%s is required", key);
        return NULL;
    }
    return m;
}

int oll_pull(http_req *r) {
    api_err e = {0};
    cJSON *b = rq_parse(r->body, r->body_len, &e);
    if (!b) return http_send_error(r, &e);
    bool stream = true;
    const char *model = mgmt_model(b, "model", &e);
    if (!model || rq_bool(b, "stream", NULL, &stream, &e) < 0) {
        cJSON_Delete(b);
        return http_send_error(r, &e);
    }
    pull_job *j = calloc(1, sizeof *j);
    if (!j) {
        cJSON_Delete(b);
        return MHD_NO;
    }
    snprintf(j->spec, sizeof j->spec, "%s", model);
    cJSON_Delete(b);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->fd = http_client_fd(r);
    j->status = 200;
    j->refs = 2; /* the thread and this request */
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, pull_thread, j)) {
        pthread_attr_destroy(&at);
        j->refs = 1;
        pull_job_release(j);
        rq_fail(&e, 503, NULL, "cannot start the pull");
        return http_send_error(r, &e);
    }
    pthread_attr_destroy(&at);
    if (!stream) {
        http_set_timeout(r->conn, 0);
        pthread_mutex_lock(&j->mu);
        while (!j->finished) {
            if (pull_client_gone(j->fd)) j->cancel = true;
            pull_wait_slice(j);
        }
        int status = j->status;
        char msg[700];
        snprintf(msg, sizeof msg, "%s", j->err);
        pthread_mutex_unlock(&j->mu);
        pull_job_release(j);
        http_set_timeout(r->conn, (unsigned)r->s->cfg.conn_timeout_s);
        if (status != 200) {
            rq_fail(&e, status, "model", "%s", msg);
            return http_send_error(r, &e);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "success");
        return http_send_json(r, 200, o);
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 * 1024, pull_reader, j, pull_response_done);
    if (!resp) {
        pull_response_done(j);
        return MHD_NO;
    }
    /* the download may be slow to report: no idle timeout while it runs */
    http_set_timeout(r->conn, 0);
    MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return http_send_response(r, 200, resp);
}

/* Names of other tools' models: never deleted here. */
static bool mgmt_foreign(const char *name) {
    return !strncmp(name, "ollama:", 7) || !strncmp(name, "hf:", 3) || !strncmp(name, "llama:", 6);
}

int oll_delete(http_req *r) {
    api_err e = {0};
    cJSON *b = rq_parse(r->body, r->body_len, &e);
    if (!b) return http_send_error(r, &e);
    const char *model = mgmt_model(b, "model", &e);
    char home[STORE_PATH_MAX];
    int rc = M40LLM_OK;
    if (model && mgmt_foreign(model)) {
        rq_fail(&e, 400, "model",
                "'%.200s' belongs to another tool; m40-llm does not delete files it does not own",
                model);
        model = NULL;
    }
    if (!model) {
        cJSON_Delete(b);
        return http_send_error(r, &e);
    }
    store_model *sm = calloc(1, sizeof *sm);
    rc = sm ? store_home(home, sizeof home) : err_set(M40LLM_ERR_OOM, "out of memory");
    char norm[STORE_NAME_MAX + 16];
    if (rc == M40LLM_OK) rc = store_name_normalize(model, norm, sizeof norm);
    if (rc == M40LLM_OK && store_manifest_read(home, norm, sm) == M40LLM_OK)
        srv_model_unload_named(r->s, sm->path); /* idle: unloaded first */
    if (rc == M40LLM_OK) rc = store_remove(home, model);
    free(sm);
    cJSON_Delete(b);
    if (rc) {
        rq_fail(&e,
                rc == M40LLM_ERR_NOT_FOUND     ? 404
                : rc == M40LLM_ERR_INVALID_ARG ? 400
                                               : 500,
                "model", "%s", m40llm_last_error());
        return http_send_error(r, &e);
    }
    return http_send(r, 200, NULL, NULL, 0);
}

int oll_copy(http_req *r) {
    api_err e = {0};
    cJSON *b = rq_parse(r->body, r->body_len, &e);
    if (!b) return http_send_error(r, &e);
    const char *src = mgmt_model(b, "source", &e);
    const char *dst = src ? mgmt_model(b, "destination", &e) : NULL;
    char home[STORE_PATH_MAX];
    int rc = dst ? store_home(home, sizeof home) : -1;
    if (rc == M40LLM_OK) rc = store_copy(home, src, dst);
    cJSON_Delete(b);
    if (rc > 0 || (rc < 0 && !dst)) return http_send_error(r, &e);
    if (rc) {
        rq_fail(&e,
                rc == M40LLM_ERR_NOT_FOUND     ? 404
                : rc == M40LLM_ERR_INVALID_ARG ? 400
                                               : 500,
                "source", "%s", m40llm_last_error());
        return http_send_error(r, &e);
    }
    return http_send(r, 200, NULL, NULL, 0);
}
