/* Requests: their lifetime, and what happens to a computed row of logits:
 * sampling, log-probabilities, streamed text through the UTF-8-safe
 * detokenizer and the stop-string matcher, events, the final result. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "err.h"

void engine_request_unref(m40llm_request *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
    sampler_free(r->smp);
    json_gate_free(r->gate);
    json_schema_free(r->schema);
    free(r->masked);
    tokenizer_stream_free(r->stream);
    stop_matcher_free(r->stop);
    for (int i = 0; i < r->p.n_stops; i++) free(r->stops[i]);
    free(r->stops);
    free(r->bias);
    free(r->tokens);
    free(r->blocks);
    free(r->text);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

bool engine_request_greedy(const m40llm_engine *e, const m40llm_request *r) {
    const m40llm_sampling *s = &r->p.sampling;
    return s->temperature <= 0 && r->p.format == M40LLM_FORMAT_TEXT && !r->p.n_logit_bias &&
           (s->repeat_penalty == 1.0f || s->penalty_last_n == 0) && s->frequency_penalty == 0 &&
           s->presence_penalty == 0 && !r->p.logprobs && !r->p.top_logprobs &&
           e->model->n_text_vocab == e->model->m->cfg.n_vocab;
}

int engine_request_start(m40llm_engine *e, m40llm_request *r) {
    const m40llm_sampling *s = &r->p.sampling;
    sampler_params sp = {
        .temp = s->temperature,
        .top_k = s->top_k,
        .top_p = s->top_p,
        .min_p = s->min_p,
        .repeat_penalty = s->repeat_penalty,
        .freq_penalty = s->frequency_penalty,
        .presence_penalty = s->presence_penalty,
        .penalty_last_n = s->penalty_last_n,
        .seed = s->seed,
    };
    int rc = sampler_create(&sp, e->model->m->cfg.n_vocab, &r->smp);
    if (!rc)
        rc = tokenizer_stream_create(e->model->tok, r->p.special ? TOKENIZER_DECODE_SPECIAL : 0,
                                     &r->stream);
    if (!rc) rc = stop_matcher_create((const char *const *)r->stops, r->p.n_stops, &r->stop);
    if (!rc && r->p.format == M40LLM_FORMAT_JSON) {
        const int nv = e->model->m->cfg.n_vocab;
        if (!e->json_vocab) /* the scheduler thread: no lock */
            rc = json_vocab_build(e->model->tok, e->model->n_text_vocab, &e->json_vocab);
        if (!rc) rc = json_gate_create(e->json_vocab, r->schema, &r->gate);
        if (!rc && !(r->masked = malloc((size_t)nv * sizeof *r->masked)))
            rc = err_set(M40LLM_ERR_OOM, "out of memory");
    }
    if (rc) return rc;
    for (int i = 0; i < r->n_tokens; i++) sampler_accept(r->smp, r->tokens[i]);
    return M40LLM_OK;
}

/* Records the text for the poll interface, then calls the request's
 * callback unless the caller freed it; a 0 return cancels the request. */
static void deliver(m40llm_request *r, const m40llm_event *ev) {
    pthread_mutex_lock(&r->mu);
    size_t n = ev->text_len;
    if (n && r->text_len + n + 1 > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < r->text_len + n + 1) cap *= 2;
        char *nt = realloc(r->text, cap);
        if (nt) {
            r->text = nt;
            r->text_cap = cap;
        }
    }
    if (n && r->text_len + n + 1 <= r->text_cap) { /* out of memory drops only the copy */
        memcpy(r->text + r->text_len, ev->text, n);
        r->text_len += n;
        r->text[r->text_len] = '\0';
    }
    r->res.n_generated = r->n_gen;
    if (!r->p.on_event || atomic_load(&r->detached)) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    r->in_cb = true;
    pthread_mutex_unlock(&r->mu);
    int keep = r->p.on_event(r->p.user, ev);
    pthread_mutex_lock(&r->mu);
    r->in_cb = false;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (!keep) atomic_store(&r->cancel, true);
}

/* log-softmax of the row at temperature 1: the chosen token's and the top k. */
static void logprobs(m40llm_engine *e, const float *row, int32_t tok, int k,
                     m40llm_token_logprob *chosen, m40llm_token_logprob *top, int *n_top) {
    const int nv = e->model->n_text_vocab;
    float mx = -INFINITY;
    for (int i = 0; i < nv; i++)
        if (row[i] > mx) mx = row[i];
    double sum = 0;
    for (int i = 0; i < nv; i++) sum += exp((double)row[i] - mx);
    const double lse = mx + log(sum);
    chosen->token = tok;
    chosen->logprob = (float)((double)row[tok] - lse);
    int n = 0;
    for (int i = 0; i < nv && k > 0; i++) {
        float v = row[i];
        if (isnan(v) || (n == k && v <= top[n - 1].logprob)) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && top[j - 1].logprob < v) {
            top[j] = top[j - 1];
            j--;
        }
        top[j].token = i;
        top[j].logprob = v;
    }
    for (int i = 0; i < n; i++) top[i].logprob = (float)((double)top[i].logprob - lse);
    *n_top = n;
}

m40llm_finish_reason engine_request_token(m40llm_engine *e, m40llm_request *r, float *row,
                                          int32_t id) {
    const double now = engine_now();
    const int nv = e->model->m->cfg.n_vocab;
    int32_t tok = id;
    if (row) {
        /* GGUFs may pad the embedding past the token list: never sample those */
        for (int i = e->model->n_text_vocab; i < nv; i++) row[i] = -INFINITY;
        for (int i = 0; i < r->p.n_logit_bias; i++) row[r->bias[i].token] += r->bias[i].bias;
        tok = sampler_sample(r->smp, row);
        if (r->gate && !json_gate_allows(r->gate, tok)) {
            /* drawn again from the tokens that keep the answer JSON: kept
             * or redrawn, each comes with its masked probability (exactly so
             * without top-k / top-p / min-p, which the two draws apply to
             * different rows); logprobs are then the masked row's */
            if (json_gate_mask(r->gate, row, r->masked, nv) == 0) {
                snprintf(r->error, sizeof r->error,
                         "JSON mode: no token of the vocabulary continues the answer");
                return M40LLM_FINISH_ERROR;
            }
            row = r->masked;
            tok = sampler_sample(r->smp, row);
        }
        if (r->gate) json_gate_accept(r->gate, tok);
    }
    if (r->n_gen == 0 && r->t_first_tok == 0) r->t_first_tok = now;
    r->t_last_tok = now;
    if (!r->p.ignore_eos && tokenizer_is_eog(e->model->tok, tok)) return M40LLM_FINISH_STOP;
    r->n_gen++;
    e->st.generated_tokens++;
    sampler_accept(r->smp, tok);
    r->tokens[r->n_tokens++] = tok;

    m40llm_event ev = {.text = "", .token = tok};
    m40llm_token_logprob top[M40LLM_MAX_LOGPROBS];
    if (row && (r->p.logprobs || r->p.top_logprobs)) {
        logprobs(e, row, tok, r->p.top_logprobs, &ev.chosen, top, &ev.n_top);
        ev.top = top;
    }
    const char *text = NULL, *emit = NULL;
    size_t len = 0, emit_len = 0;
    if (tokenizer_stream_push(r->stream, tok, &text, &len)) {
        snprintf(r->error, sizeof r->error, "detokenizing: %s", m40llm_last_error());
        return M40LLM_FINISH_ERROR;
    }
    bool matched = len ? stop_matcher_feed(r->stop, text, len, &emit, &emit_len) : false;
    ev.text = emit_len ? emit : "";
    ev.text_len = emit_len;
    deliver(r, &ev);
    if (matched) {
        r->stop_hit = true;
        return M40LLM_FINISH_STOP;
    }
    if (r->gate && json_gate_done(r->gate)) return M40LLM_FINISH_STOP; /* the object closed */
    if (r->p.max_tokens > 0 && r->n_gen >= r->p.max_tokens) return M40LLM_FINISH_LENGTH;
    if (r->n_tokens - 1 >= r->n_ctx) return M40LLM_FINISH_CONTEXT;
    return M40LLM_FINISH_NONE;
}

void engine_request_finish(m40llm_engine *e, m40llm_request *r, m40llm_finish_reason why,
                           const char *error) {
    const double now = engine_now();
    /* text still held: an incomplete character, then a possible stop prefix */
    char *tail = NULL;
    size_t tail_len = 0;
    if (r->stream && r->stop && !r->stop_hit) {
        const char *t = NULL, *emit = NULL;
        size_t len = 0, emit_len = 0;
        if (!tokenizer_stream_flush(r->stream, &t, &len) && len) {
            bool matched = stop_matcher_feed(r->stop, t, len, &emit, &emit_len);
            if (emit_len && (tail = malloc(emit_len))) {
                memcpy(tail, emit, emit_len);
                tail_len = emit_len;
            }
            if (matched) {
                r->stop_hit = true;
                if (why == M40LLM_FINISH_LENGTH || why == M40LLM_FINISH_CONTEXT)
                    why = M40LLM_FINISH_STOP;
            }
        }
        if (!r->stop_hit) {
            stop_matcher_flush(r->stop, &emit, &emit_len);
            if (emit_len) {
                char *nt = realloc(tail, tail_len + emit_len);
                if (nt) {
                    memcpy(nt + tail_len, emit, emit_len);
                    tail = nt;
                    tail_len += emit_len;
                }
            }
        }
    }
    if (error) snprintf(r->error, sizeof r->error, "%s", error);
    r->t_done = now;
    m40llm_event ev = {.text = tail ? tail : "", .text_len = tail_len, .token = -1, .finish = why};
    deliver(r, &ev);
    free(tail);
    e->st.finished[why]++;

    sampler_free(r->smp);
    json_gate_free(r->gate);
    free(r->masked);
    tokenizer_stream_free(r->stream);
    stop_matcher_free(r->stop);
    r->gate = NULL;
    r->masked = NULL;
    r->smp = NULL;
    r->stream = NULL;
    r->stop = NULL;
    r->state = REQ_DONE;

    pthread_mutex_lock(&r->mu);
    m40llm_request_result *o = &r->res;
    o->finish = why;
    o->stop_string = r->stop_hit;
    o->n_generated = r->n_gen;
    o->total_s = now - r->t_submit;
    if (r->t_first_sched > 0) o->queue_s = r->t_first_sched - r->t_submit;
    if (r->t_first_tok > 0) {
        o->ttft_s = r->t_first_tok - r->t_submit;
        o->prompt_s = r->t_first_tok - r->t_first_sched;
        o->gen_s = now - r->t_first_tok;
    }
    o->error = r->error[0] ? r->error : NULL;
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}
