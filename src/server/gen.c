/* Generation requests: prompt ids, submission to the engine, the engine's
 * event callback, and the two ways out: a streamed response (SSE for
 * OpenAI, NDJSON for Ollama) or a wait for the whole answer.
 *
 * The engine calls gen_on_event on its own thread. It only copies the
 * event into the job's queue under the job's mutex and signals the
 * connection's thread; everything else (detokenizing logprob tokens,
 * JSON, writing) happens on the connection's thread, which waits on the
 * condition variable in 100 ms slices and checks between them whether the
 * client hung up (then it cancels at once). The queue is capped: a client
 * that reads more slowly than the engine writes is cancelled rather than
 * buffered without bound, and one that stops reading is dropped by the
 * connection timeout (http.c), which cancels its request. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "srv_int.h"

#define GEN_MAX_PENDING   ((size_t)4 << 20) /* bytes queued for one slow client */
#define GEN_WAIT_SLICE_MS 100

typedef struct gen_event {
    int32_t token;             /* -1 on the final event */
    float logprob;             /* the chosen token's */
    int top_off, n_top;        /* [n_top] alternatives at tops[top_off] */
    size_t text_off, text_len; /* its text at text[text_off] */
    m40llm_finish_reason finish;
    double t; /* monotonic seconds of arrival */
} gen_event;

typedef struct gen_queue {
    gen_event *ev; /* [n] of cap */
    int n, cap;
    char *text; /* [len] of cap_text */
    size_t len, cap_text;
    m40llm_token_logprob *tops; /* [n_tops] of cap_tops */
    int n_tops, cap_tops;
} gen_queue;

struct gen_job {
    server *s;
    /* the model it runs on: a reference, given back with the engine request
     * as soon as the answer is complete (gen_job_let_go), else when the job
     * goes; NULL after (req too, under s->mu) */
    srv_model *m;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gen_queue in;  /* appended by the engine thread (under mu) */
    bool finished; /* the final event arrived (under mu) */
    bool overflow; /* the client read too slowly: cancelled (under mu) */
    m40llm_request *req;
    int refs;             /* the HTTP request + a streaming response (under s->mu) */
    gen_job *prev, *next; /* s->jobs (under s->mu) */
    struct MHD_Connection *conn;
    int fd; /* client socket, for hang-up checks */
    unsigned timeout_s;
    gen_spec spec;
    gen_fmt fmt;
    /* the connection's thread only */
    gen_queue work; /* events taken from `in` */
    char *out;      /* [out_len] formatted, sent up to out_off */
    size_t out_len, out_off, out_cap;
    char *text; /* [text_len] the answer (non-streamed) */
    size_t text_len, text_cap;
    size_t text_bytes; /* bytes of answer so far (completion text_offset) */
    cJSON *lp;         /* non-streamed logprobs */
    bool began, ended, done;
    m40llm_finish_reason finish;
    double t_last; /* the previous token event */
    metrics_hist itl;
    m40llm_request_result res; /* final once done: the answer's and the log's counts */
    char error[256];           /* res.error's text (the request's own goes with it) */
};

/* ---- spec ---- */

void gen_spec_init(gen_spec *g, gen_kind kind) {
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->keep_alive = NAN;
    m40llm_request_params p;
    m40llm_request_default_params(&p);
    g->sampling = p.sampling;
    g->sampling.seed = 0;
    if (kind == GEN_OAI_CHAT || kind == GEN_OAI_COMPLETION) {
        g->sampling.temperature = 1.0f;
        g->sampling.top_k = 0;
        g->sampling.top_p = 1.0f;
        g->sampling.min_p = 0.0f;
        g->sampling.repeat_penalty = 1.0f;
    } else { /* Ollama's documented defaults */
        g->sampling.temperature = 0.8f;
        g->sampling.top_k = 40;
        g->sampling.top_p = 0.9f;
        g->sampling.min_p = 0.0f;
        g->sampling.repeat_penalty = 1.1f;
        g->sampling.penalty_last_n = 64;
    }
    g->sampling.presence_penalty = 0.0f;
    g->sampling.frequency_penalty = 0.0f;
}

void gen_spec_free(gen_spec *g) {
    cJSON_Delete(g->messages);
    free(g->prompt);
    free(g->ids);
    free(g->system);
    free(g->json_schema);
    free(g->logit_bias);
    for (int i = 0; i < g->n_stops; i++) free(g->stops[i]);
    free(g->stops);
    memset(g, 0, sizeof *g);
}

/* ---- the queue ---- */

static size_t gen_queue_bytes(const gen_queue *q) {
    return q->len + (size_t)q->n * sizeof(gen_event) +
           (size_t)q->n_tops * sizeof(m40llm_token_logprob);
}

static int gen_queue_push(gen_queue *q, const m40llm_event *ev, double t) {
    if (q->n == q->cap) {
        int cap = q->cap ? q->cap * 2 : 32;
        gen_event *e = realloc(q->ev, (size_t)cap * sizeof *e);
        if (!e) return -1;
        q->ev = e;
        q->cap = cap;
    }
    size_t tl = ev->text ? ev->text_len : 0;
    if (q->len + tl > q->cap_text) {
        size_t cap = (q->len + tl) * 2 + 256;
        char *x = realloc(q->text, cap);
        if (!x) return -1;
        q->text = x;
        q->cap_text = cap;
    }
    int nt = ev->top && ev->n_top > 0 ? ev->n_top : 0;
    if (nt > M40LLM_MAX_LOGPROBS) nt = M40LLM_MAX_LOGPROBS;
    if (q->n_tops + nt > q->cap_tops) {
        int cap = (q->n_tops + nt) * 2 + 16;
        m40llm_token_logprob *x = realloc(q->tops, (size_t)cap * sizeof *x);
        if (!x) return -1;
        q->tops = x;
        q->cap_tops = cap;
    }
    gen_event *e = &q->ev[q->n++];
    e->token = ev->token;
    e->logprob = ev->chosen.logprob;
    e->top_off = q->n_tops;
    e->n_top = nt;
    if (nt) memcpy(q->tops + q->n_tops, ev->top, (size_t)nt * sizeof *ev->top);
    q->n_tops += nt;
    e->text_off = q->len;
    e->text_len = tl;
    if (tl) memcpy(q->text + q->len, ev->text, tl);
    q->len += tl;
    e->finish = ev->finish;
    e->t = t;
    return 0;
}

static void gen_queue_free(gen_queue *q) {
    free(q->ev);
    free(q->text);
    free(q->tops);
    memset(q, 0, sizeof *q);
}

/* The engine thread: copy, signal, nothing else. */
static int gen_on_event(void *user, const m40llm_event *ev) {
    gen_job *j = user;
    double t = srv_now();
    int keep = 1;
    pthread_mutex_lock(&j->mu);
    bool last = ev->finish != M40LLM_FINISH_NONE;
    if (j->overflow) {
        keep = 0;
    } else if (!last && gen_queue_bytes(&j->in) > GEN_MAX_PENDING) {
        j->overflow = true; /* the client does not keep up: stop generating for it */
        keep = 0;
    }
    if ((keep || last) && gen_queue_push(&j->in, ev, t)) {
        j->overflow = true;
        keep = 0;
    }
    if (last) j->finished = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return keep;
}

/* ---- the job's life ---- */

/* The job lets go of its engine request (no events after that) and gives
 * its model back, once: as soon as the answer is complete, before the last
 * of it is sent (gen_consume), so that the client's next call finds the
 * model idle with its keep_alive running (/api/ps; keep_alive 0 has
 * unloaded it); else, when the job goes. What the answer and the log line
 * need was copied into the job first (j->res, j->error). */
static void gen_job_let_go(gen_job *j) {
    server *s = j->s;
    pthread_mutex_lock(&s->mu); /* gen_cancel_all reads req under it */
    m40llm_request *req = j->req;
    srv_model *m = j->m;
    j->req = NULL;
    j->m = NULL;
    pthread_mutex_unlock(&s->mu);
    m40llm_request_free(req);
    srv_model_put(s, m); /* NULL: already given back */
}

static void gen_job_free(gen_job *j) {
    gen_job_let_go(j);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    gen_queue_free(&j->in);
    gen_queue_free(&j->work);
    gen_spec_free(&j->spec);
    cJSON_Delete(j->lp);
    free(j->out);
    free(j->text);
    free(j);
}

static void gen_job_release(gen_job *j) {
    server *s = j->s;
    pthread_mutex_lock(&s->mu);
    bool last = --j->refs == 0;
    if (last) {
        if (j->prev)
            j->prev->next = j->next;
        else if (s->jobs == j)
            s->jobs = j->next;
        if (j->next) j->next->prev = j->prev;
        s->n_jobs--;
    }
    pthread_mutex_unlock(&s->mu);
    if (last) gen_job_free(j);
}

/* MHD frees a streamed response: its reference goes. */
void gen_stream_release(void *cls) {
    gen_job_release(cls);
}

void gen_cancel_all(server *s) {
    pthread_mutex_lock(&s->mu);
    s->hard_stop = true;
    for (gen_job *j = s->jobs; j; j = j->next)
        if (j->req) m40llm_request_cancel(j->req);
    pthread_mutex_unlock(&s->mu);
}

void gen_request_done(http_req *r, bool ok) {
    gen_job *j = r->job;
    if (!j) return;
    r->job = NULL;
    /* the counts for the log: the final ones kept at the end of the answer
     * (the request is gone then), else the request's so far */
    m40llm_request_result res = j->res;
    if (j->req) {
        if (!ok) { /* the client went away: free its blocks now */
            m40llm_request_cancel(j->req);
            m40llm_request_wait(j->req, 2000); /* its final counts, for the log */
        }
        m40llm_request_get_result(j->req, &res);
    }
    if (j->req || j->done) {
        r->n_in = res.n_prompt;
        r->n_out = res.n_generated;
        r->ttft_s = res.n_generated > 0 ? res.ttft_s : -1;
    }
    gen_job_release(j);
}

/* ---- waiting ---- */

/* Whether the client closed its end (or the socket failed). */
static bool gen_client_gone(const gen_job *j) {
    if (j->fd < 0) return false;
    struct pollfd p = {.fd = j->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* Moves the queued events into j->work (emptied first); waits for some
 * while there are none. 0, or -1 when the client hung up (the request is
 * cancelled). */
static int gen_take(gen_job *j) {
    j->work.n = 0;
    j->work.len = 0;
    j->work.n_tops = 0;
    pthread_mutex_lock(&j->mu);
    while (j->in.n == 0 && !j->finished) {
        pthread_mutex_unlock(&j->mu);
        if (gen_client_gone(j)) {
            m40llm_request_cancel(j->req);
            return -1;
        }
        pthread_mutex_lock(&j->mu);
        if (j->in.n || j->finished) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += GEN_WAIT_SLICE_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    gen_queue tmp = j->in; /* swap: the engine fills the emptied buffers */
    j->in = j->work;
    j->work = tmp;
    bool fin = j->finished;
    pthread_mutex_unlock(&j->mu);
    /* a final event lost to a failed allocation: end anyway */
    if (fin && (j->work.n == 0 || j->work.ev[j->work.n - 1].finish == M40LLM_FINISH_NONE)) {
        m40llm_event last = {.text = "", .token = -1, .finish = M40LLM_FINISH_ERROR};
        if (gen_queue_push(&j->work, &last, srv_now())) return -1;
    }
    return 0;
}

/* ---- formatting the events ---- */

static int gen_out(gen_job *j, char *s) {
    if (!s) return -1;
    size_t n = strlen(s);
    if (j->out_len + n > j->out_cap) {
        size_t cap = (j->out_len + n) * 2;
        char *o = realloc(j->out, cap);
        if (!o) {
            free(s);
            return -1;
        }
        j->out = o;
        j->out_cap = cap;
    }
    memcpy(j->out + j->out_len, s, n);
    j->out_len += n;
    free(s);
    return 0;
}

static int gen_text_add(gen_job *j, const char *t, size_t n) {
    if (j->text_len + n + 1 > j->text_cap) {
        size_t cap = (j->text_len + n + 1) * 2;
        char *x = realloc(j->text, cap);
        if (!x) return -1;
        j->text = x;
        j->text_cap = cap;
    }
    memcpy(j->text + j->text_len, t, n);
    j->text_len += n;
    j->text[j->text_len] = '\0';
    return 0;
}

/* The logprob entry of a token event in the API's shape (NULL if none). */
static cJSON *gen_logprob(gen_job *j, const gen_event *ev) {
    if (!j->spec.logprobs || ev->token < 0) return NULL;
    const m40llm_model *m = j->m->model;
    lp_tok chosen, top[M40LLM_MAX_LOGPROBS];
    char *texts[M40LLM_MAX_LOGPROBS + 1] = {0};
    size_t lens[M40LLM_MAX_LOGPROBS + 1] = {0};
    int n_top = ev->n_top < j->spec.top_logprobs ? ev->n_top : j->spec.top_logprobs;
    for (int i = 0; i <= n_top; i++) {
        int32_t id = i == 0 ? ev->token : j->work.tops[ev->top_off + i - 1].token;
        if (m40llm_detokenize(m, &id, 1, 1, &texts[i], &lens[i])) texts[i] = NULL;
        lp_tok *t = i == 0 ? &chosen : &top[i - 1];
        t->text = texts[i] ? texts[i] : "";
        t->len = texts[i] ? lens[i] : 0;
        t->logprob = i == 0 ? ev->logprob : j->work.tops[ev->top_off + i - 1].logprob;
    }
    cJSON *o = NULL;
    switch (j->spec.kind) {
    case GEN_OAI_CHAT:
        o = oai_chat_logprob(&chosen, top, n_top);
        break;
    case GEN_OAI_COMPLETION:
        oai_compl_logprob_add(&o, &chosen, top, n_top, (long long)j->text_bytes);
        break;
    default:
        o = oll_logprob(&chosen, top, n_top);
        break;
    }
    for (int i = 0; i <= n_top; i++) free(texts[i]);
    return o;
}

/* Appends one token's logprob entry to the non-streamed answer's. */
static void gen_lp_keep(gen_job *j, cJSON *e) {
    if (!e) return;
    if (j->spec.kind == GEN_OAI_COMPLETION) {
        if (!j->lp) {
            j->lp = e;
            return;
        }
        static const char *keys[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
        for (int k = 0; k < 4; k++) {
            cJSON *src = cJSON_GetObjectItem(e, keys[k]);
            cJSON *it = cJSON_DetachItemFromArray(src, 0);
            if (it) cJSON_AddItemToArray(cJSON_GetObjectItem(j->lp, keys[k]), it);
        }
        cJSON_Delete(e);
        return;
    }
    if (!j->lp) j->lp = cJSON_CreateArray();
    cJSON_AddItemToArray(j->lp, e);
}

static const char *gen_finish_str(m40llm_finish_reason f) {
    return f == M40LLM_FINISH_STOP ? "stop" : "length";
}

static void gen_times_of(const gen_job *j, gen_times *t) {
    t->total_s = j->res.total_s;
    t->load_s = 0; /* the model stays loaded */
    t->prompt_s = j->res.prompt_s;
    t->gen_s = j->res.gen_s;
    t->n_prompt = j->res.n_prompt;
    t->n_gen = j->res.n_generated;
}

/* Why a request ended without an answer (the message of an error chunk). */
static void gen_failure(gen_job *j, api_err *e) {
    bool overflow;
    pthread_mutex_lock(&j->mu);
    overflow = j->overflow;
    pthread_mutex_unlock(&j->mu);
    if (j->finish == M40LLM_FINISH_ERROR)
        rq_fail(e, 500, NULL, "generation failed: %s",
                j->res.error ? j->res.error : "internal error");
    else if (overflow)
        rq_fail(e, 503, NULL, "the client did not read the stream fast enough; cancelled");
    else
        rq_fail(e, 503, NULL, "the server is shutting down; the request was cancelled");
}

/* The end of a stream: final chunk(s), or an error chunk. */
static int gen_stream_end(gen_job *j) {
    const gen_fmt *f = &j->fmt;
    bool oai = f->kind == GEN_OAI_CHAT || f->kind == GEN_OAI_COMPLETION;
    if (j->finish == M40LLM_FINISH_CANCELLED || j->finish == M40LLM_FINISH_ERROR) {
        api_err e = {0};
        gen_failure(j, &e);
        char *body = rq_error_body(oai ? API_OPENAI : API_OLLAMA, &e);
        if (!body) return -1;
        size_t n = strlen(body);
        char *s = malloc(n + 16);
        if (s) snprintf(s, n + 16, oai ? "data: %s\n\n" : "%s\n", body);
        free(body);
        if (gen_out(j, s)) return -1;
        return oai ? gen_out(j, strdup("data: [DONE]\n\n")) : 0;
    }
    const char *fin = gen_finish_str(j->finish);
    if (!oai) {
        gen_times t;
        gen_times_of(j, &t);
        return gen_out(j, oll_final(f, "", 0, NULL, fin, &t, true));
    }
    int rc = f->kind == GEN_OAI_CHAT ? gen_out(j, oai_chat_chunk(f, NULL, NULL, 0, NULL, fin))
                                     : gen_out(j, oai_compl_chunk(f, "", 0, NULL, fin));
    if (!rc && f->include_usage) {
        gen_usage u = {j->res.n_prompt, j->res.n_generated, j->res.n_cached};
        rc = gen_out(j, oai_usage_chunk(f, &u));
    }
    return rc ? rc : gen_out(j, strdup("data: [DONE]\n\n"));
}

/* Consumes j->work: per event a chunk (streaming) or the answer grows. */
static int gen_consume(gen_job *j) {
    for (int i = 0; i < j->work.n; i++) {
        const gen_event *ev = &j->work.ev[i];
        const char *text = j->work.text + ev->text_off;
        if (ev->token >= 0) {
            if (j->t_last > 0) metrics_hist_observe(&j->itl, ev->t - j->t_last);
            j->t_last = ev->t;
        }
        cJSON *lp = gen_logprob(j, ev);
        j->text_bytes += ev->text_len;
        if (j->spec.stream) {
            if (ev->text_len || lp) {
                char *c;
                if (j->fmt.kind == GEN_OAI_COMPLETION) {
                    c = oai_compl_chunk(&j->fmt, text, ev->text_len, lp, NULL);
                } else {
                    cJSON *arr = NULL;
                    if (lp) {
                        arr = cJSON_CreateArray();
                        cJSON_AddItemToArray(arr, lp);
                    }
                    c = j->fmt.kind == GEN_OAI_CHAT
                            ? oai_chat_chunk(&j->fmt, NULL, text, ev->text_len, arr, NULL)
                            : oll_chunk(&j->fmt, text, ev->text_len, arr);
                }
                if (gen_out(j, c)) return -1;
            }
        } else {
            if (ev->text_len && gen_text_add(j, text, ev->text_len)) {
                cJSON_Delete(lp);
                return -1;
            }
            gen_lp_keep(j, lp);
        }
        if (ev->finish != M40LLM_FINISH_NONE) {
            j->finish = ev->finish;
            j->done = true;
            /* the counts and timings are final once the request is (just after this event) */
            m40llm_request_wait(j->req, -1);
            m40llm_request_get_result(j->req, &j->res);
            if (j->res.error) {
                snprintf(j->error, sizeof j->error, "%s", j->res.error);
                j->res.error = j->error;
            }
            metrics_observe_request(&j->s->metrics, j->res.n_generated > 0 ? j->res.ttft_s : -1.0,
                                    j->res.total_s, j->res.queue_s, &j->itl);
            /* the answer is complete (what is left to send is formatting):
             * the model is free again before the client has the last of it */
            gen_job_let_go(j);
            if (j->spec.stream && gen_stream_end(j)) return -1;
            j->ended = true;
        }
    }
    return 0;
}

/* ---- the streamed response (MHD's content reader, the connection's thread) ---- */

ssize_t gen_stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    gen_job *j = cls;
    (void)pos;
    for (;;) {
        if (j->out_off < j->out_len) {
            size_t n = j->out_len - j->out_off;
            if (n > max) n = max;
            memcpy(buf, j->out + j->out_off, n);
            j->out_off += n;
            /* writing: a client that stops reading times out */
            http_set_timeout(j->conn, j->timeout_s);
            return (ssize_t)n;
        }
        j->out_off = j->out_len = 0;
        if (j->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!j->began) {
            j->began = true;
            if (j->fmt.kind == GEN_OAI_CHAT &&
                gen_out(j, oai_chat_chunk(&j->fmt, "assistant", "", 0, NULL, NULL)))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        /* waiting on the engine (a queue, a long prompt) is not the client's idleness */
        http_set_timeout(j->conn, 0);
        if (gen_take(j) || gen_consume(j)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

/* ---- building the prompt ---- */

static int gen_chat_ids(srv_model *sm, cJSON *messages, int n_ctx, gen_spec *g, api_err *e) {
    char *json = cJSON_PrintUnformatted(messages);
    if (!json) return rq_fail(e, 503, "messages", "out of memory");
    int rc = m40llm_chat_tokens(sm->model, json, strlen(json), n_ctx, &g->ids, &g->n_ids);
    free(json);
    return rc ? rq_fail_status(e, rc, "messages") : 0;
}

/* g->ids / g->n_ids: the prompt, checked against n_ctx. */
static int gen_prompt(srv_model *sm, gen_spec *g, int n_ctx, api_err *e) {
    const char *param = g->kind == GEN_OAI_CHAT || g->kind == GEN_OLL_CHAT ? "messages" : "prompt";
    if (g->messages) {
        if (gen_chat_ids(sm, g->messages, n_ctx, g, e)) return -1;
    } else if (g->kind == GEN_OLL_GENERATE && !g->raw) {
        cJSON *msgs = cJSON_CreateArray();
        if (g->system) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "system");
            cJSON_AddStringToObject(m, "content", g->system);
            cJSON_AddItemToArray(msgs, m);
        }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", g->prompt);
        cJSON_AddItemToArray(msgs, m);
        int rc = gen_chat_ids(sm, msgs, n_ctx, g, e);
        cJSON_Delete(msgs);
        if (rc) return -1;
    } else if (g->prompt) {
        /* a completion prompt is the client's own text: control-token texts count */
        int rc = m40llm_tokenize(sm->model, g->prompt, strlen(g->prompt), 1, 1, &g->ids, &g->n_ids);
        if (rc) return rq_fail_status(e, rc, param);
    } else {
        for (size_t i = 0; i < g->n_ids; i++)
            if (g->ids[i] >= sm->minfo.n_vocab)
                return rq_fail(e, 400, param, "token id %d is out of range (vocabulary of %d)",
                               g->ids[i], sm->minfo.n_vocab);
    }
    if (g->n_ids == 0) return rq_fail(e, 400, param, "the prompt is empty");
    if (g->n_ids > (size_t)n_ctx) {
        rq_fail(e, 400, param, "the prompt has %zu tokens, more than the context of %d tokens",
                g->n_ids, n_ctx);
        e->code = "context_length_exceeded";
        return -1;
    }
    return 0;
}

/* ---- the request ---- */

static void gen_fmt_init(server *s, const gen_spec *g, gen_fmt *f) {
    memset(f, 0, sizeof *f);
    f->kind = g->kind;
    uint64_t a = srv_random(s), b = srv_random(s);
    snprintf(f->id, sizeof f->id, "%s%016llx%08llx",
             g->kind == GEN_OAI_CHAT ? "chatcmpl-" : "cmpl-", (unsigned long long)a,
             (unsigned long long)(b & 0xffffffffu));
    f->created = (long long)time(NULL);
    snprintf(f->model, sizeof f->model, "%s", g->model);
    f->include_usage = g->stream && g->include_usage;
}

/* Ollama's answer to a request without a prompt: the model is loaded. */
static int gen_load_only(http_req *r, gen_spec *g, const srv_model *m) {
    gen_fmt f;
    gen_fmt_init(r->s, g, &f);
    gen_times t = {0};
    pthread_mutex_lock(&r->s->mu);
    const bool pinned = m->pinned;
    pthread_mutex_unlock(&r->s->mu);
    /* keep_alive 0 unloads it (Ollama's "unload"), but not --model's */
    const char *why = g->keep_alive == 0 && !pinned ? "unload" : "load";
    char *s = oll_final(&f, "", 0, NULL, why, &t, g->stream);
    gen_spec_free(g);
    if (!s) return MHD_NO;
    return http_send(r, 200, "application/json", s, strlen(s));
}

/* Waits for the whole answer and sends it. */
static int gen_respond_whole(http_req *r, gen_job *j) {
    http_set_timeout(j->conn, 0);
    while (!j->done) {
        if (gen_take(j)) return MHD_NO; /* the client left: close */
        if (gen_consume(j)) {
            m40llm_request_cancel(j->req);
            api_err e;
            rq_fail(&e, 503, NULL, "out of memory");
            return http_send_error(r, &e);
        }
    }
    http_set_timeout(j->conn, j->timeout_s);
    if (j->finish == M40LLM_FINISH_CANCELLED || j->finish == M40LLM_FINISH_ERROR) {
        api_err e = {0};
        gen_failure(j, &e);
        return http_send_error(r, &e);
    }
    const char *fin = gen_finish_str(j->finish);
    gen_usage u = {j->res.n_prompt, j->res.n_generated, j->res.n_cached};
    const char *text = j->text ? j->text : "";
    cJSON *lp = j->lp;
    j->lp = NULL;
    char *body;
    switch (j->fmt.kind) {
    case GEN_OAI_CHAT:
        body = oai_chat_response(&j->fmt, text, j->text_len, lp, fin, &u);
        break;
    case GEN_OAI_COMPLETION:
        body = oai_compl_response(&j->fmt, text, j->text_len, lp, fin, &u);
        break;
    default: {
        gen_times t;
        gen_times_of(j, &t);
        body = oll_final(&j->fmt, text, j->text_len, lp, fin, &t, false);
    }
    }
    if (!body) return MHD_NO;
    return http_send(r, 200, "application/json", body, strlen(body));
}

int gen_handle(http_req *r, gen_spec *g, bool seeded, srv_model *m) {
    server *s = r->s;
    api_err e = {0};
    if (g->load_only) {
        int ret = gen_load_only(r, g, m);
        srv_model_put(s, m); /* keep_alive 0 unloads it now, as Ollama does */
        return ret;
    }
    if (!seeded) g->sampling.seed = srv_random(s);
    int n_ctx = m->einfo.n_ctx;
    if (g->n_ctx > 0 && g->n_ctx < n_ctx) n_ctx = g->n_ctx;
    if (gen_prompt(m, g, n_ctx, &e)) {
        gen_spec_free(g);
        srv_model_put(s, m);
        return http_send_error(r, &e);
    }
    if (n_ctx < m->einfo.n_ctx) { /* a smaller num_ctx bounds prompt + answer */
        int room = n_ctx - (int)g->n_ids;
        if (room < 1) room = 1;
        if (g->max_tokens <= 0 || g->max_tokens > room) g->max_tokens = room;
    }
    gen_job *j = calloc(1, sizeof *j);
    if (!j) {
        gen_spec_free(g);
        srv_model_put(s, m);
        rq_fail(&e, 503, NULL, "out of memory");
        return http_send_error(r, &e);
    }
    j->s = s;
    j->m = m;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->spec = *g; /* taken */
    memset(g, 0, sizeof *g);
    j->conn = r->conn;
    j->fd = http_client_fd(r);
    j->timeout_s = (unsigned)s->cfg.conn_timeout_s;
    metrics_hist_init_itl(&j->itl);
    gen_fmt_init(s, &j->spec, &j->fmt);
    j->refs = 1;

    pthread_mutex_lock(&s->mu);
    if (s->draining) {
        pthread_mutex_unlock(&s->mu);
        gen_job_free(j);
        rq_fail(&e, 503, NULL, "the server is shutting down");
        return http_send_error(r, &e);
    }
    j->next = s->jobs; /* listed before submitting: a shutdown sweep cannot miss it */
    if (s->jobs) s->jobs->prev = j;
    s->jobs = j;
    s->n_jobs++;
    pthread_mutex_unlock(&s->mu);
    r->job = j;

    m40llm_request_params p;
    m40llm_request_default_params(&p);
    p.prompt = j->spec.ids;
    p.n_prompt = j->spec.n_ids;
    p.sampling = j->spec.sampling;
    p.max_tokens = j->spec.max_tokens;
    p.stops = (const char *const *)j->spec.stops;
    p.n_stops = j->spec.n_stops;
    p.logprobs = j->spec.logprobs;
    p.top_logprobs = j->spec.top_logprobs;
    p.special = 0;
    p.ignore_eos = j->spec.ignore_eos;
    p.format = j->spec.format;
    p.json_schema = j->spec.json_schema;
    p.logit_bias = j->spec.logit_bias;
    p.n_logit_bias = j->spec.n_logit_bias;
    p.on_event = gen_on_event;
    p.user = j;
    m40llm_request *req = NULL;
    int rc = m40llm_submit(m->engine, &p, &req);
    if (rc) {
        rq_fail_status(&e, rc, rc == M40LLM_ERR_CONTEXT_FULL ? "messages" : NULL);
        if (rc == M40LLM_ERR_BUSY) e.code = "server_busy";
        r->job = NULL;
        gen_job_release(j);
        return http_send_error(r, &e);
    }
    pthread_mutex_lock(&s->mu);
    j->req = req;
    if (s->hard_stop) m40llm_request_cancel(req);
    pthread_mutex_unlock(&s->mu);

    if (!j->spec.stream) return gen_respond_whole(r, j);
    pthread_mutex_lock(&s->mu);
    j->refs++; /* the response's */
    pthread_mutex_unlock(&s->mu);
    const bool oai = j->spec.kind == GEN_OAI_CHAT || j->spec.kind == GEN_OAI_COMPLETION;
    return http_send_stream(r, oai ? "text/event-stream" : "application/x-ndjson", j);
}
