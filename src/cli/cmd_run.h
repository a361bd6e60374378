/* State shared by `m40-llm run` (cmd_run.c: options, one-shot prompts) and
 * its interactive chat (cmd_run_chat.c). */
#ifndef M40_CMD_RUN_H
#define M40_CMD_RUN_H

#include <signal.h>
#include <stdbool.h>

#include "backend.h"
#include "m40llm.h"
#include "conversation.h"
#include "generate.h"
#include "model.h"
#include "tokenizer.h"

#define RUN_MAX_STOPS 16

typedef struct run_ctx {
    m40llm_model *mm;     /* the model, its tokenizer (owned) */
    m40llm_engine *eng;   /* one sequence; owns the backend */
    const model *m;       /* inside mm */
    const tokenizer *tok; /* inside mm */
    const char *backend_name;
    int n_ctx;
    gen_params gp;                    /* sampling, -n, --stop (the request's parameters) */
    const char *stops[RUN_MAX_STOPS]; /* [n_stops] --stop strings (argv) */
    int n_stops;
    conv *conv;       /* template, messages or raw transcript (NULL before setup) */
    bool raw;         /* no template: the prompt is sent as written */
    bool warned;      /* the template fallback warning was printed */
    bool verbose;     /* timings to stderr */
    int format;       /* --format: M40LLM_FORMAT_TEXT or _JSON */
    bool interrupted; /* the last answer was stopped by Ctrl-C */
    char *system;     /* --system until the conversation exists (malloc'd) or NULL */
} run_ctx;

/* Set by the SIGINT handler; generation polls it. */
extern volatile sig_atomic_t run_interrupted;
/* Installs the SIGINT handler (no SA_RESTART, so reads return EINTR). */
void run_install_sigint(void);

/* One user turn: renders the conversation (or extends the raw transcript),
 * generates, streams the answer to stdout and records it. Returns 0, or 1
 * after printing an error (the turn is then forgotten). */
int run_turn(run_ctx *r, const char *user_text);
/* Forgets the conversation and the cached prefixes (the system message stays). */
void run_clear(run_ctx *r);
/* Sets the system message (NULL/"" removes it) and rebuilds the messages. */
void run_set_system(run_ctx *r, const char *text);

/* The interactive chat on a terminal; returns the exit status. */
int run_chat(run_ctx *r);

#endif
