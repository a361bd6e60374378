/* Internals of the engine (engine.c: API and thread; engine_sched.c: one
 * scheduling step; engine_request.c: requests, sampling and output;
 * engine_model.c: models, tokenizing, chat prompts). */
#ifndef M40_ENGINE_INT_H
#define M40_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "json_gate.h"
#include "json_schema.h"
#include "kv_pool.h"
#include "m40llm.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

struct m40llm_model {
    model *m;
    tokenizer *tok;
    char *tmpl;      /* the model's chat template, NULL when it has none */
    char *bos, *eos; /* special-token texts for the template, may be NULL */
    char *path;
    char *name;
    char quant[16];
    uint64_t n_params;        /* all weights' elements */
    uint64_t n_params_active; /* those one token uses (less the experts it is not routed to) */
    uint64_t file_bytes;
    int n_text_vocab; /* ids with text: min(model vocab, tokenizer vocab) */
};

typedef enum req_state {
    REQ_WAITING = 0, /* queued (new, or preempted: to recompute) */
    REQ_RUNNING,     /* holds a backend sequence and KV blocks */
    REQ_DONE,        /* finished; the final event was sent */
} req_state;

struct m40llm_request {
    pthread_mutex_t mu;   /* guards text, res, state, done (readers on other threads) */
    pthread_cond_t cv;    /* signalled when finished and after each callback */
    atomic_int refs;      /* the caller + the engine while it holds the request */
    atomic_bool cancel;   /* asked to stop */
    atomic_bool detached; /* the caller freed it: deliver no more events */
    bool in_cb;           /* the engine thread is inside the callback (mu) */

    /* what was asked (immutable after submit) */
    m40llm_request_params p;
    char **stops;            /* [p.n_stops] copies */
    m40llm_logit_bias *bias; /* [p.n_logit_bias] copy */
    int n_ctx;

    /* scheduling state (engine thread only) */
    req_state state;
    int slot;        /* backend sequence while running, -1 otherwise */
    int32_t *tokens; /* [n_ctx + 1] prompt, then the generated tokens */
    int n_tokens;    /* known tokens */
    int n_computed;  /* of them, with K/V in the cache */
    int32_t *blocks; /* [max_blocks] block table */
    int n_blocks;
    int n_hashed;       /* leading full blocks registered in (or taken from) the prefix cache */
    uint64_t last_hash; /* chain hash of block n_hashed-1 (0: none) */
    bool table_dirty;   /* the backend's copy of the table is stale */
    uint64_t admit_seq; /* admission order: the youngest is preempted first */
    bool admitted_once;
    uint64_t sched_step; /* the last step that scheduled it */
    int chunk;           /* tokens it computes in this step */
    int out_row;         /* row of this step's logits */
    sampler *smp;
    json_gate *gate;     /* JSON mode */
    json_schema *schema; /* JSON mode with a schema: compiled at submit */
    float *masked;       /* [n_vocab] JSON mode: the row with the refused tokens at -inf */
    tokenizer_stream *stream;
    stop_matcher *stop;
    bool stop_hit; /* a stop string matched: nothing held is shown */
    int n_gen;
    double t_submit, t_first_sched, t_first_tok, t_last_tok, t_done;

    /* results (mu) */
    char *text;
    size_t text_len, text_cap;
    m40llm_request_result res;
    char error[256];
    bool done;
};

struct m40llm_engine {
    m40llm_model *model;
    backend *b;
    m40llm_engine_params p;
    m40llm_engine_info info;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;        /* incoming queue, stats, stop */
    pthread_cond_t cv;         /* new work or stop */
    m40llm_request **incoming; /* [max_queue] submitted, not yet taken by the thread */
    int n_incoming;
    int n_queued; /* waiting in total (incoming + the thread's queue), for max_queue */
    bool stop;
    bool clear_cache;     /* m40llm_engine_clear_prefix_cache was called */
    atomic_bool stopping; /* stop, readable without mu (the abort hook) */
    m40llm_engine_stats stats;

    /* scheduler state (engine thread) */
    kv_pool pool;
    int max_blocks;           /* blocks per sequence: ceil(n_ctx / block) */
    m40llm_request **waiting; /* [max_queue + max_seqs] FIFO; preempted go first */
    int n_waiting, cap_waiting;
    m40llm_request **running; /* [max_seqs] by admission order */
    int n_running;
    int *free_slots, n_free_slots;
    uint64_t next_admit;
    backend_entry *entries;     /* [max_batch_tokens] */
    m40llm_request **step_reqs; /* [max_seqs] requests in this step's batch */
    m40llm_request **entry_req; /* [max_batch_tokens] owner of each entry with logits */
    float *logits;              /* [max_seqs][n_vocab] */
    int32_t *ids;               /* [max_seqs] argmax rows */
    float *lp;                  /* [n_vocab] log-softmax scratch */
    json_vocab *json_vocab;     /* every token's bytes, made for the first JSON request */
    m40llm_engine_stats st;     /* the thread's counters, published into stats */
};

double engine_now(void);

/* engine_request.c */
/* Frees the request's memory when the last reference goes. */
void engine_request_unref(m40llm_request *r);
/* Prepares a request for its first admission: sampler (with the prompt in
 * its penalty history), detokenizer stream, stop matcher. */
int engine_request_start(m40llm_engine *e, m40llm_request *r);
/* Handles the logits row (NULL: the argmax id) of a request's last computed
 * token: samples, streams the text, checks stops. Returns why it must
 * finish, or M40LLM_FINISH_NONE to go on. The row is modified (padding ids
 * masked). */
m40llm_finish_reason engine_request_token(m40llm_engine *e, m40llm_request *r, float *row,
                                          int32_t id);
/* Finishes with a reason: flushes held text, sends the final event,
 * publishes the result. Frees nothing of the engine's (blocks: the caller). */
void engine_request_finish(m40llm_engine *e, m40llm_request *r, m40llm_finish_reason why,
                           const char *error);
/* Whether a step may use forward_argmax for this request's row. */
bool engine_request_greedy(const m40llm_engine *e, const m40llm_request *r);

/* engine_sched.c */
/* One step: takes cancellations, schedules, runs a forward, handles the
 * outputs. Returns false when there was nothing to do. */
bool engine_step(m40llm_engine *e);
/* Finishes every request (CANCELLED) and returns their blocks. */
void engine_cancel_all(m40llm_engine *e);
/* Takes the submitted requests into the thread's waiting queue (e->mu held). */
void engine_take_incoming(m40llm_engine *e);

#endif
