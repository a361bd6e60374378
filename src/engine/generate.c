/* Generation loop: prefix reuse, chunked prefill, sampling, streamed text
 * through the UTF-8-safe detokenizer and the stop-string matcher. */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

struct gen_session {
    backend *b;
    const tokenizer *t;
    int seq;
    int n_ctx;
    int n_vocab;       /* logits row length (model) */
    int n_text_vocab;  /* ids the tokenizer can render: min(model, tokenizer vocab) */
    int32_t *hist;     /* [n_ctx] tokens whose K/V the cache holds */
    int n_hist;        /* valid entries of hist */
    float *logits;     /* [n_vocab] last row */
    backend_entry *ev; /* [n_batch_max] prefill entries */
    tokenizer_stream *stream;
    bool stream_special; /* stream renders control tokens' text */
};

static double gen_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *gen_stop_reason_str(gen_stop_reason r) {
    switch (r) {
    case GEN_STOP_EOG:
        return "eos";
    case GEN_STOP_STRING:
        return "stop";
    case GEN_STOP_LENGTH:
        return "length";
    case GEN_STOP_CONTEXT:
        return "context";
    case GEN_STOP_CANCELLED:
        return "cancelled";
    default:
        return "";
    }
}

const char *gen_finish_reason(gen_stop_reason r) {
    return r == GEN_STOP_LENGTH || r == GEN_STOP_CONTEXT ? "length" : "stop";
}

gen_params gen_default_params(void) {
    gen_params p;
    memset(&p, 0, sizeof p);
    p.sampling = sampler_default_params();
    p.max_tokens = -1;
    return p;
}

int gen_common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

int gen_session_create(backend *b, const tokenizer *t, int seq, gen_session **out) {
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "gen_session_create: out is NULL");
    *out = NULL;
    if (!b || !t)
        return err_set(M40LLM_ERR_INVALID_ARG, "gen_session_create: NULL backend/tokenizer");
    if (seq < 0 || seq >= b->params.n_seq_max)
        return err_set(M40LLM_ERR_INVALID_ARG, "gen_session_create: sequence %d outside 0..%d", seq,
                       b->params.n_seq_max - 1);
    gen_session *s = calloc(1, sizeof *s);
    if (!s) return err_set(M40LLM_ERR_OOM, "gen_session_create: out of memory");
    s->b = b;
    s->t = t;
    s->seq = seq;
    s->n_ctx = b->params.n_ctx;
    s->n_vocab = b->model->cfg.n_vocab;
    /* GGUFs may pad the embedding past the token list; those rows have no
     * text, so they must never be sampled */
    const int32_t tv = tokenizer_n_vocab(t);
    s->n_text_vocab = tv > 0 && tv < s->n_vocab ? tv : s->n_vocab;
    s->hist = malloc((size_t)s->n_ctx * sizeof *s->hist);
    s->logits = malloc((size_t)s->n_vocab * sizeof *s->logits);
    s->ev = malloc((size_t)b->params.n_batch_max * sizeof *s->ev);
    int rc = tokenizer_stream_create(t, 0, &s->stream);
    if (rc || !s->hist || !s->logits || !s->ev) {
        gen_session_free(s);
        return rc ? rc : err_set(M40LLM_ERR_OOM, "gen_session_create: out of memory");
    }
    b->ops->seq_clear(b, seq);
    *out = s;
    return M40LLM_OK;
}

void gen_session_free(gen_session *s) {
    if (!s) return;
    tokenizer_stream_free(s->stream);
    free(s->hist);
    free(s->logits);
    free(s->ev);
    free(s);
}

void gen_session_reset(gen_session *s) {
    if (!s) return;
    s->n_hist = 0;
    s->b->ops->seq_clear(s->b, s->seq);
}

const int32_t *gen_session_tokens(const gen_session *s, int *n) {
    if (n) *n = s ? s->n_hist : 0;
    return s ? s->hist : NULL;
}

int gen_session_n_ctx(const gen_session *s) {
    return s ? s->n_ctx : 0;
}

/* Samples from the last logits row, never a padding id without text. */
static int32_t gen_sample(gen_session *s, sampler *smp) {
    for (int i = s->n_text_vocab; i < s->n_vocab; i++) s->logits[i] = -INFINITY;
    return sampler_sample(smp, s->logits);
}

static bool gen_cancelled(const gen_params *p) {
    return p->cancel && *p->cancel;
}
static bool gen_abort(void *p) {
    return gen_cancelled(p);
}

/* Output side of one call: stop matcher in front of the callback. */
typedef struct gen_out {
    stop_matcher *stop;
    gen_text_fn cb;
    void *ctx;
    bool cb_stopped; /* the callback returned false */
} gen_out;

/* Feeds decoded text; returns true when generation must end (stop string or
 * callback refusal) and sets *reason. */
static bool gen_emit(gen_out *o, const char *text, size_t len, gen_stop_reason *reason) {
    const char *e = NULL;
    size_t el = 0;
    bool matched = len ? stop_matcher_feed(o->stop, text, len, &e, &el) : false;
    if (el && o->cb && !o->cb_stopped && !o->cb(o->ctx, e, el)) {
        o->cb_stopped = true;
        *reason = GEN_STOP_CANCELLED;
        return true;
    }
    if (matched) {
        *reason = GEN_STOP_STRING;
        return true;
    }
    return false;
}

/* Evaluates prompt[from..n) in chunks; the last entry asks for output.
 * Returns with s->n_hist at the evaluated length (also on error/cancel). */
static int gen_prefill(gen_session *s, const int32_t *prompt, int from, int n, bool argmax,
                       int32_t *picked, const gen_params *p, bool *cancelled) {
    const int nb = s->b->params.n_batch_max;
    for (int i = from; i < n; i += nb) {
        if (gen_cancelled(p)) {
            *cancelled = true;
            return M40LLM_OK;
        }
        int m = n - i < nb ? n - i : nb;
        for (int j = 0; j < m; j++)
            s->ev[j] = (backend_entry){s->seq, i + j, prompt[i + j], i + j == n - 1};
        /* a long chunk (CPU) is abandoned between layers when cancelled */
        if (p->cancel) backend_set_abort(s->b, gen_abort, (void *)p);
        int rc = argmax && i + m == n ? s->b->ops->forward_argmax(s->b, s->ev, m, picked)
                                      : backend_forward(s->b, s->ev, m, s->logits);
        backend_set_abort(s->b, NULL, NULL);
        if (rc == M40LLM_ERR_CANCELLED && gen_cancelled(p)) {
            err_clear();
            *cancelled = true;
            return M40LLM_OK;
        }
        if (rc) return err_prefix(rc, "prefill of positions %d..%d", i, i + m - 1);
        memcpy(s->hist + i, prompt + i, (size_t)m * sizeof *prompt);
        s->n_hist = i + m;
    }
    return M40LLM_OK;
}

static int gen_check_prompt(const gen_session *s, const int32_t *prompt, int n) {
    if (!prompt || n < 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "generate: the prompt has no tokens");
    if (n > s->n_ctx)
        return err_set(M40LLM_ERR_CONTEXT_FULL,
                       "the prompt is %d tokens but the context holds only %d", n, s->n_ctx);
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= s->n_vocab)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "generate: prompt token %d (id %d) is outside the vocabulary of %d", i,
                           prompt[i], s->n_vocab);
    return M40LLM_OK;
}

int gen_generate(gen_session *s, const int32_t *prompt, int n_prompt, const gen_params *p,
                 gen_text_fn cb, void *cb_ctx, gen_stats *stats) {
    const double t0 = gen_now();
    gen_stats st;
    memset(&st, 0, sizeof st);
    if (stats) *stats = st;
    if (!s || !p) return err_set(M40LLM_ERR_INVALID_ARG, "gen_generate: NULL session/params");
    int rc = gen_check_prompt(s, prompt, n_prompt);
    if (rc) return rc;

    const sampler_params *sp = &p->sampling;
    /* Greedy without penalties needs only the argmax, which the backend can
     * compute where the logits are. */
    const bool argmax = sp->temp <= 0 && s->b->ops->forward_argmax &&
                        s->n_text_vocab == s->n_vocab && /* padding ids must be masked */
                        (sp->repeat_penalty == 1.0f || sp->penalty_last_n == 0) &&
                        sp->freq_penalty == 0 && sp->presence_penalty == 0;
    sampler *smp = NULL;
    stop_matcher *stop = NULL;
    rc = sampler_create(sp, s->n_vocab, &smp);
    if (!rc) rc = stop_matcher_create(p->stops, p->stops ? p->n_stops : 0, &stop);
    if (rc) goto out;
    for (int i = 0; i < n_prompt; i++) sampler_accept(smp, prompt[i]);

    /* Reuse the cached prefix; at least the last prompt token is evaluated
     * again, since its logits are needed. */
    int keep = gen_common_prefix(s->hist, s->n_hist, prompt, n_prompt);
    if (keep >= n_prompt) keep = n_prompt - 1;
    s->n_hist = keep;
    st.n_prompt = n_prompt;
    st.n_reused = keep;
    bool cancelled = false;
    int32_t tok = -1;
    rc = gen_prefill(s, prompt, keep, n_prompt, argmax, &tok, p, &cancelled);
    st.n_prompt_eval = s->n_hist - keep;
    st.t_prompt_s = gen_now() - t0;
    if (rc) goto out;
    if (cancelled) {
        st.reason = GEN_STOP_CANCELLED;
        goto out;
    }
    if (!argmax) tok = gen_sample(s, smp);
    st.ttft_s = gen_now() - t0;
    const double tg0 = gen_now();
    int n_decode = 0;

    gen_out o = {stop, cb, cb_ctx, false};
    if (p->special != s->stream_special) {
        tokenizer_stream *ns = NULL;
        rc = tokenizer_stream_create(s->t, p->special ? TOKENIZER_DECODE_SPECIAL : 0, &ns);
        if (rc) goto out;
        tokenizer_stream_free(s->stream);
        s->stream = ns;
        s->stream_special = p->special;
    }
    tokenizer_stream_reset(s->stream);
    const char *text = NULL;
    size_t len = 0;
    for (;;) {
        if (tokenizer_is_eog(s->t, tok)) {
            st.reason = GEN_STOP_EOG;
            break;
        }
        st.n_gen++;
        sampler_accept(smp, tok);
        rc = tokenizer_stream_push(s->stream, tok, &text, &len);
        if (rc) goto out;
        if (gen_emit(&o, text, len, &st.reason)) break;
        if (p->max_tokens > 0 && st.n_gen >= p->max_tokens) {
            st.reason = GEN_STOP_LENGTH;
            break;
        }
        if (gen_cancelled(p)) {
            st.reason = GEN_STOP_CANCELLED;
            break;
        }
        if (s->n_hist >= s->n_ctx) {
            st.reason = GEN_STOP_CONTEXT;
            break;
        }
        backend_entry e = {s->seq, s->n_hist, tok, true};
        rc = argmax ? s->b->ops->forward_argmax(s->b, &e, 1, &tok)
                    : backend_forward(s->b, &e, 1, s->logits);
        if (rc) {
            rc = err_prefix(rc, "decoding position %d", s->n_hist);
            goto out;
        }
        s->hist[s->n_hist++] = e.token;
        n_decode++;
        if (!argmax) tok = gen_sample(s, smp);
    }
    /* Text still held: an incomplete character, then a possible stop prefix. */
    if (st.reason != GEN_STOP_STRING && !o.cb_stopped) {
        gen_stop_reason r = st.reason;
        rc = tokenizer_stream_flush(s->stream, &text, &len);
        if (rc) goto out;
        if (gen_emit(&o, text, len, &r)) {
            if (r == GEN_STOP_STRING) st.reason = r;
        } else {
            const char *e = NULL;
            size_t el = 0;
            stop_matcher_flush(stop, &e, &el);
            if (el && cb) cb(cb_ctx, e, el);
        }
    }
    st.t_gen_s = gen_now() - tg0;
    st.gen_tps = n_decode > 0 && st.t_gen_s > 0 ? n_decode / st.t_gen_s : 0;
out:
    st.prompt_tps =
        st.n_prompt_eval > 0 && st.t_prompt_s > 0 ? st.n_prompt_eval / st.t_prompt_s : 0;
    if (stats) *stats = st;
    sampler_free(smp);
    stop_matcher_free(stop);
    return rc;
}
