/* m40-llm run MODEL [PROMPT] [options]
 *
 * Answers one prompt (from the command line, or from standard input when it
 * is not a terminal) or, on a terminal without PROMPT, holds an interactive
 * chat (cmd_run_chat.c). Models with a chat template get it (messages:
 * optional system, then user) unless --raw; --chat-template overrides. */
#include "cmd_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "engine/engine.h"
#include "cli.h"
#include "cli_backend.h"
#include "err.h"
#include "fileio.h"

volatile sig_atomic_t run_interrupted = 0;

/* The first Ctrl-C asks the generation to stop (checked before each forward
 * call); a second one before it has stopped ends the program, since a long
 * prefill chunk may take a while. */
static void run_on_sigint(int sig) {
    if (run_interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    run_interrupted = 1;
}

void run_install_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = run_on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns EINTR */
    sigaction(SIGINT, &sa, NULL);
}

static int usage(FILE *f) {
    fprintf(f,
            "usage: m40-llm run MODEL [PROMPT] [options]\n"
            "  PROMPT absent: interactive chat on a terminal, else read from stdin\n"
            "  -n N                 tokens to generate (default -1: until the end of the answer)\n"
            "  --temp T             temperature (0 = greedy; default 0.8)\n"
            "  --top-k K            (default 40, 0 = off)\n"
            "  --top-p P            (default 0.95, 1 = off)\n"
            "  --min-p P            (default 0.05, 0 = off)\n"
            "  --repeat-penalty R   (default 1 = off)\n"
            "  --seed S             (default: random)\n"
            "  --ctx N              context length (default min(4096, trained))\n"
            "  --threads N          CPU threads\n"
            "  --system TEXT        system message\n"
            "  --stop STR           stop string (repeatable; not printed)\n"
            "  --format json        the answer is one JSON object\n"
            "  --raw                no chat template: the prompt is sent as written\n"
            "  --chat-template NAME|FILE  use this template (built-in: %s)\n"
            "  --device cpu|cuda[:N]\n" CLI_GPU_USAGE "  --verbose            timings to stderr\n",
            chat_builtin_names());
    return f == stdout ? 0 : 2;
}

static bool parse_float(const char *opt, const char *v, float lo, float hi, float *out) {
    char *end = NULL;
    double d = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || !isfinite(d) || d < lo || d > hi) {
        fprintf(stderr, "m40-llm run: %s: '%s' is not a number in %g..%g\n", opt, v ? v : "", lo,
                hi);
        return false;
    }
    *out = (float)d;
    return true;
}

/* ---- one turn ---- */

typedef struct run_sink {
    char *text; /* answer so far */
    size_t len, cap;
    bool ok;
    bool write_failed; /* stdout could not be written (main reports why) */
} run_sink;

/* On the engine's thread: prints the answer as it comes. */
static int run_on_event(void *ctx, const m40llm_event *ev) {
    run_sink *s = ctx;
    if (!ev->text_len) return 1;
    cli_put_text(stdout, ev->text, ev->text_len); /* escapes shown, not obeyed, on a terminal */
    if (!cli_flush_stdout()) {
        s->write_failed = true;
        return 0; /* nobody can read the answer: stop generating */
    }
    if (s->len + ev->text_len + 1 > s->cap) {
        size_t cap = (s->len + ev->text_len + 1) * 2;
        char *n = realloc(s->text, cap);
        if (!n) {
            s->ok = false;
            return 1; /* keep printing; the history just misses this text */
        }
        s->text = n;
        s->cap = cap;
    }
    memcpy(s->text + s->len, ev->text, ev->text_len);
    s->len += ev->text_len;
    s->text[s->len] = '\0';
    return 1;
}

/* Prints the template fallback warning once per run. */
static void run_warn_fallback(run_ctx *r) {
    const char *why = conv_fallback(r->conv); /* may quote the model's template */
    if (!why || r->warned) return;
    fputs("m40-llm: warning: the chat template cannot be used (", stderr);
    cli_put_escaped(stderr, why, strlen(why), 0);
    fputs("); using ChatML\n", stderr);
    r->warned = true;
}

/* Reports why the prompt could not be built. */
static int run_prompt_error(const run_ctx *r, conv_step step, int rc) {
    switch (step) {
    case CONV_FAIL_EMPTY:
        fprintf(stderr, "m40-llm run: the prompt is empty\n");
        return 1;
    case CONV_FAIL_TOO_LONG: /* the message holds only numbers */
        fprintf(stderr, "m40-llm run: %s; use a larger --ctx%s\n", m40llm_last_error(),
                r->raw ? "" : " or /clear");
        return 1;
    case CONV_FAIL_TOKENIZE:
        return cli_fail("tokenizing the prompt", rc);
    default:
        return cli_fail(r->raw ? "prompt" : "chat template", rc);
    }
}

static const char *run_stop_name(const m40llm_request_result *res) {
    switch (res->finish) {
    case M40LLM_FINISH_STOP:
        return res->stop_string ? "stop" : "eos";
    case M40LLM_FINISH_LENGTH:
        return "length";
    case M40LLM_FINISH_CONTEXT:
        return "context";
    case M40LLM_FINISH_CANCELLED:
        return "cancelled";
    default:
        return "error";
    }
}

static void run_print_stats(const run_ctx *r, const m40llm_request_result *st) {
    if (!r->verbose) return;
    const int eval = st->n_prompt - st->n_cached;
    const double gen_tps =
        st->n_generated > 1 && st->gen_s > 0 ? (st->n_generated - 1) / st->gen_s : 0;
    fprintf(stderr,
            "\nprompt: %d tokens (%d reused, %d evaluated) in %.3f s, %.2f tok/s\n"
            "generation: %d tokens in %.3f s, %.2f tok/s\n"
            "time to first token: %.3f s; stop: %s; backend: %s\n",
            st->n_prompt, st->n_cached, eval, st->prompt_s,
            st->prompt_s > 0 ? eval / st->prompt_s : 0, st->n_generated, st->gen_s, gen_tps,
            st->ttft_s, run_stop_name(st), r->backend_name);
}

/* Submits the prompt and waits for the answer, which the callback prints;
 * Ctrl-C cancels it. */
static int run_generate(run_ctx *r, const int32_t *ids, size_t n, run_sink *sink,
                        m40llm_request_result *res) {
    const sampler_params *sp = &r->gp.sampling;
    m40llm_request_params rp;
    m40llm_request_default_params(&rp);
    rp.prompt = ids;
    rp.n_prompt = n;
    rp.sampling.temperature = sp->temp;
    rp.sampling.top_k = sp->top_k;
    rp.sampling.top_p = sp->top_p;
    rp.sampling.min_p = sp->min_p;
    rp.sampling.repeat_penalty = sp->repeat_penalty;
    rp.sampling.frequency_penalty = sp->freq_penalty;
    rp.sampling.presence_penalty = sp->presence_penalty;
    rp.sampling.penalty_last_n = sp->penalty_last_n;
    rp.sampling.seed = sp->seed;
    rp.max_tokens = r->gp.max_tokens;
    rp.stops = r->gp.stops;
    rp.n_stops = r->gp.n_stops;
    rp.format = r->format;
    rp.on_event = run_on_event;
    rp.user = sink;
    m40llm_request *req = NULL;
    int rc = m40llm_submit(r->eng, &rp, &req);
    if (rc) return rc;
    while (!m40llm_request_wait(req, 20))
        if (run_interrupted) m40llm_request_cancel(req);
    m40llm_request_get_result(req, res);
    m40llm_request_free(req);
    if (res->finish == M40LLM_FINISH_ERROR)
        return err_set(M40LLM_ERR_INTERNAL, "%s", res->error ? res->error : "generation failed");
    return M40LLM_OK;
}

int run_turn(run_ctx *r, const char *user_text) {
    int rc = conv_add_user(r->conv, user_text);
    if (rc) return cli_fail("prompt", rc);
    /* Message contents are untrusted, so text a user types never becomes a
     * control token (a forged turn); --raw text is the user's own prompt and
     * trusted, but the model's earlier answers in the transcript are not. */
    int32_t *ids = NULL;
    size_t n = 0;
    conv_step step = CONV_OK;
    rc = conv_prompt(r->conv, r->n_ctx, &ids, &n, &step);
    if (step != CONV_FAIL_RENDER) run_warn_fallback(r);
    if (rc) {
        conv_undo_user(r->conv);
        return run_prompt_error(r, step, rc);
    }
    run_sink sink = {NULL, 0, 0, true, false};
    m40llm_request_result st;
    run_interrupted = 0;
    rc = run_generate(r, ids, n, &sink, &st);
    free(ids);
    if (rc) {
        free(sink.text);
        conv_undo_user(r->conv);
        fprintf(stdout, "\n");
        return cli_fail("generation", rc);
    }
    if (sink.write_failed) {
        free(sink.text);
        conv_undo_user(r->conv);
        return 1;
    }
    const char *answer = sink.text ? sink.text : "";
    if (!sink.len || sink.text[sink.len - 1] != '\n') fputc('\n', stdout);
    cli_flush_stdout();
    if (st.finish == M40LLM_FINISH_CONTEXT)
        fprintf(stderr, "m40-llm run: the context (%d tokens) is full%s\n", r->n_ctx,
                r->raw ? "" : "; /clear starts over");
    r->interrupted = st.finish == M40LLM_FINISH_CANCELLED && run_interrupted;
    if (r->interrupted) fprintf(stderr, "(interrupted)\n");
    run_print_stats(r, &st);
    conv_add_assistant(r->conv, answer); /* out of memory: the history starts over */
    free(sink.text);
    run_interrupted = 0;
    return 0;
}

void run_set_system(run_ctx *r, const char *text) {
    if (conv_set_system(r->conv, text)) cli_fail("system message", M40LLM_ERR_OOM);
}

void run_clear(run_ctx *r) {
    conv_clear(r->conv);
    m40llm_engine_clear_prefix_cache(r->eng);
}

/* ---- setup ---- */

/* Chooses the template: --chat-template, else the model's own; none => raw. */
static int run_setup_template(run_ctx *r, const char *chat_template) {
    char *tmpl = NULL, *bos = NULL, *eos = NULL;
    int rc = chat_model_template(r->m->gguf, &tmpl, &bos, &eos);
    if (rc) return cli_fail("reading the chat template", rc);
    if (chat_template) {
        free(tmpl);
        tmpl = NULL;
        rc = chat_template_for(chat_template, &tmpl);
        if (rc) {
            free(bos);
            free(eos);
            return cli_fail("--chat-template", rc);
        }
    }
    if (r->raw || !tmpl) {
        free(tmpl);
        tmpl = NULL;
        r->raw = true;
        if (r->verbose) fprintf(stderr, "m40-llm run: no chat template; raw completion\n");
        if (r->system)
            fprintf(stderr, "m40-llm run: warning: --system needs a chat template; ignored\n");
    }
    rc = conv_create(r->tok, tmpl, bos, eos, &r->conv);
    free(tmpl);
    free(bos);
    free(eos);
    if (!rc) rc = conv_set_system(r->conv, r->system);
    free(r->system); /* the conversation holds it from now on */
    r->system = NULL;
    return rc ? cli_fail("chat", rc) : 0;
}

static void run_free(run_ctx *r) {
    conv_free(r->conv);
    m40llm_engine_free(r->eng);
    m40llm_model_free(r->mm);
    free(r->system);
}

int cmd_run(int argc, char **argv) {
    run_ctx r;
    memset(&r, 0, sizeof r);
    r.gp = gen_default_params();
    r.gp.sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    const char *model_name = NULL, *prompt = NULL, *device = NULL, *chat_template = NULL;
    backend_gpus gpus = {0};
    int gi;
    long n_ctx = 0, threads = cli_default_threads(), n_predict = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        sampler_params *sp = &r.gp.sampling;
        bool takes = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            free(r.system);
            return usage(stdout);
        } else if (!strcmp(a, "--raw")) {
            r.raw = true;
            takes = false;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            r.verbose = true;
            takes = false;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--num-predict")) {
            if ((n_predict = cli_parse_long(a, v, -1, 1 << 30)) < -1) goto bad;
            if (!v || (n_predict == -1 && strcmp(v, "-1"))) goto bad;
            if (n_predict == 0) { /* the generator reads 0 as "no limit" */
                fprintf(stderr, "m40-llm run: -n 0: give at least 1 token (-1 = no limit)\n");
                goto bad;
            }
        } else if (!strcmp(a, "--temp")) {
            if (!parse_float(a, v, 0, 100, &sp->temp)) goto bad;
        } else if (!strcmp(a, "--top-k")) {
            long k = cli_parse_long(a, v, 0, 1 << 30);
            if (k < 0) goto bad;
            sp->top_k = (int)k;
        } else if (!strcmp(a, "--top-p")) {
            if (!parse_float(a, v, 0, 1, &sp->top_p)) goto bad;
        } else if (!strcmp(a, "--min-p")) {
            if (!parse_float(a, v, 0, 1, &sp->min_p)) goto bad;
        } else if (!strcmp(a, "--repeat-penalty")) {
            /* the penalty divides logits: 0 is not a value (1 = off) */
            if (!parse_float(a, v, 0, 100, &sp->repeat_penalty)) goto bad;
            if (sp->repeat_penalty <= 0) {
                fprintf(stderr,
                        "m40-llm run: --repeat-penalty: '%s' is not in (0, 100] (1 = off)\n", v);
                goto bad;
            }
        } else if (!strcmp(a, "--seed")) {
            if (!v || !cli_parse_u64(v, &sp->seed)) {
                fprintf(stderr, "m40-llm run: --seed: '%s' is not a number in 0..2^64-1\n",
                        v ? v : "");
                goto bad;
            }
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            if ((n_ctx = cli_parse_long(a, v, 8, 1 << 20)) < 0) goto bad;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if ((threads = cli_parse_long(a, v, 1, 1024)) < 0) goto bad;
        } else if (!strcmp(a, "--system")) {
            if (!v) goto bad;
            free(r.system);
            r.system = strdup(v);
        } else if (!strcmp(a, "--stop")) {
            if (!v) goto bad;
            if (r.n_stops == RUN_MAX_STOPS) {
                fprintf(stderr, "m40-llm run: at most %d --stop strings\n", RUN_MAX_STOPS);
                goto bad;
            }
            r.stops[r.n_stops++] = v;
        } else if (!strcmp(a, "--chat-template")) {
            if (!v) goto bad;
            chat_template = v;
        } else if (!strcmp(a, "--format")) {
            if (!v || strcmp(v, "json")) {
                fprintf(stderr, "m40-llm run: --format: '%s' is not json\n", v ? v : "");
                goto bad;
            }
            r.format = M40LLM_FORMAT_JSON;
        } else if ((gi = cli_gpu_option("run", a, v, &gpus)) != 0) {
            if (gi < 0) goto bad;
        } else if (!strcmp(a, "--device")) {
            if (!v || cli_check_device(v)) goto bad;
            device = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "m40-llm run: unknown option %s\n", a);
            goto bad;
        } else {
            takes = false;
            if (!model_name) {
                model_name = a;
            } else if (!prompt) {
                prompt = a;
            } else {
                fprintf(stderr, "m40-llm run: one PROMPT only (quote it)\n");
                goto bad;
            }
        }
        if (takes) i++;
    }
    if (!model_name) goto bad;
    r.gp.max_tokens = (int)n_predict;
    r.gp.stops = r.stops;
    r.gp.n_stops = r.n_stops;
    r.gp.cancel = &run_interrupted;

    char path[1024];
    int rc = cli_resolve_model(model_name, path, sizeof path);
    if (rc) {
        free(r.system);
        return cli_fail("model", rc);
    }
    model *m = NULL;
    rc = model_load(path, &m);
    if (rc) {
        free(r.system);
        return cli_fail("loading model", rc);
    }
    r.m = m;
    int ret = 1;
    if (!n_ctx)
        n_ctx = m->cfg.n_ctx_train > 0 && m->cfg.n_ctx_train < 4096 ? m->cfg.n_ctx_train : 4096;
    else
        cli_warn_ctx(m, n_ctx);
    r.n_ctx = (int)n_ctx;
    /* one sequence; its KV pool is that sequence's context (lazily filled on the CPU) */
    backend_params bp = {.n_ctx = (int)n_ctx,
                         .n_seq_max = 1,
                         .n_batch_max = n_ctx < 512 ? (int)n_ctx : 512,
                         .n_threads = (int)threads,
                         .kv_type = BACKEND_KV_F32,
                         .paged = true};
    backend *b = NULL;
    if ((rc = cli_create_backend(m, device, &gpus, &bp, &b))) {
        model_free(m);
        r.m = NULL;
        cli_fail("creating backend", rc);
        goto out;
    }
    r.backend_name = b->ops->name;
    if ((rc = engine_model_wrap(m, path, &r.mm))) { /* the tokenizer is loaded here */
        backend_destroy(b);
        r.m = NULL;
        cli_fail("loading the tokenizer", rc);
        goto out;
    }
    r.tok = engine_model_tokenizer(r.mm);
    if ((rc = engine_create_on(r.mm, b, NULL, &r.eng))) {
        cli_fail("creating the engine", rc);
        goto out;
    }
    if (run_setup_template(&r, chat_template)) goto out;
    if (r.verbose) {
        fputs("m40-llm run: ", stderr);
        cli_put_escaped(stderr, r.m->cfg.name, strlen(r.m->cfg.name), 0); /* from the file */
        fprintf(stderr, ", %s backend, context %ld, %s\n", r.backend_name, n_ctx,
                r.raw ? "raw" : "chat template");
    }
    run_install_sigint();
    if (prompt) {
        if (strspn(prompt, " \t\r\n") == strlen(prompt))
            fprintf(stderr, "m40-llm run: the prompt is empty\n");
        else
            ret = run_turn(&r, prompt);
    } else if (isatty(STDIN_FILENO)) {
        ret = run_chat(&r);
    } else {
        char *in = NULL;
        size_t l = 0;
        if ((rc = cli_read_stdin(FILEIO_CAP_PROMPT, "a prompt", &in, &l))) {
            cli_fail("reading the prompt", rc);
            goto out;
        }
        /* a prompt is text: a NUL byte is refused rather than cutting it there */
        if (strlen(in) < l) {
            fprintf(stderr,
                    "m40-llm run: the prompt on stdin holds a NUL byte (at byte %zu); prompts are "
                    "text without NUL bytes\n",
                    strlen(in));
            free(in);
            goto out;
        }
        if (!r.raw)
            while (l && (in[l - 1] == '\n' || in[l - 1] == '\r')) in[--l] = '\0';
        if (strspn(in, " \t\r\n") == l)
            fprintf(stderr, "m40-llm run: no prompt on stdin (give PROMPT or pipe text)\n");
        else
            ret = run_turn(&r, in);
        free(in);
    }
out:
    run_free(&r);
    /* a one-shot answer stopped by Ctrl-C exits as the shell expects of SIGINT */
    if (ret == 0 && r.interrupted && (prompt || !isatty(STDIN_FILENO))) ret = 130;
    return ret;
bad:
    free(r.system);
    usage(stderr);
    return 2;
}
