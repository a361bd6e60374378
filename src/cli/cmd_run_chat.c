/* The interactive chat of `m40-llm run` on a terminal: libedit line editing
 * and history, slash commands, Ctrl-C stopping the current answer. */
#include <errno.h>
#include <histedit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "cmd_run.h"
#include "fileio.h"

static const char *chat_prompt(EditLine *el) {
    (void)el;
    return ">>> ";
}

/* Ctrl-C at the prompt arrives as a key (ISIG is off while editing): the
 * line is dropped and el_gets returns as on end of file, with this flag set. */
static bool chat_ctrl_c;

static unsigned char chat_on_ctrl_c(EditLine *el, int ch) {
    (void)el;
    (void)ch;
    chat_ctrl_c = true;
    return CC_EOF;
}

static void chat_help(void) {
    printf("Commands:\n"
           "  /bye                   exit\n"
           "  /clear                 forget the conversation\n"
           "  /set PARAMETER VALUE   temperature, top_k, top_p, min_p, repeat_penalty, seed,\n"
           "                         num_predict, system, stop, verbose (on|off)\n"
           "  /show                  the current parameters\n"
           "  /?, /help              this help\n"
           "Ctrl-C stops an answer; at the prompt it clears the line, twice exits. Ctrl-D "
           "exits.\n");
}

static void chat_show(const run_ctx *r) {
    const sampler_params *s = &r->gp.sampling;
    printf("temperature %g, top_k %d, top_p %g, min_p %g, repeat_penalty %g, seed %llu, "
           "num_predict %d, context %d, %s\n",
           s->temp, s->top_k, s->top_p, s->min_p, s->repeat_penalty, (unsigned long long)s->seed,
           r->gp.max_tokens, r->n_ctx, r->raw ? "raw" : "chat template");
    if (conv_system(r->conv)) printf("system: %s\n", conv_system(r->conv));
    for (int i = 0; i < r->n_stops; i++) printf("stop: \"%s\"\n", r->stops[i]);
}

static bool chat_float(const char *v, float lo, float hi, float *out) {
    char *end = NULL;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi)) {
        printf("'%s' is not a number in %g..%g\n", v, lo, hi);
        return false;
    }
    *out = (float)d;
    return true;
}

static bool chat_int(const char *v, long lo, long hi, long *out) {
    char *end = NULL;
    long d = strtol(v, &end, 10);
    if (end == v || *end || d < lo || d > hi) {
        printf("'%s' is not an integer in %ld..%ld\n", v, lo, hi);
        return false;
    }
    *out = d;
    return true;
}

/* Stop strings typed with /set live as long as the chat. */
static char *chat_stop_copies[RUN_MAX_STOPS];

static void chat_set(run_ctx *r, char *args) {
    char *name = args + strspn(args, " \t");
    char *val = name + strcspn(name, " \t");
    if (*val) *val++ = '\0';
    val += strspn(val, " \t");
    size_t vl = strlen(val);
    while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\t')) val[--vl] = '\0';
    sampler_params *s = &r->gp.sampling;
    long l;
    if (!*name) {
        printf("usage: /set PARAMETER VALUE (see /?)\n");
    } else if (!strcmp(name, "system")) {
        run_set_system(r, val);
        printf(r->raw ? "A system message needs a chat template (raw mode).\n"
               : *val ? "Set system message.\n"
                      : "Removed the system message.\n");
    } else if (!*val) {
        printf("/set %s needs a value\n", name);
    } else if (!strcmp(name, "temperature") || !strcmp(name, "temp")) {
        if (chat_float(val, 0, 100, &s->temp)) printf("Set temperature to %g.\n", s->temp);
    } else if (!strcmp(name, "top_k")) {
        if (chat_int(val, 0, 1 << 30, &l)) printf("Set top_k to %d.\n", s->top_k = (int)l);
    } else if (!strcmp(name, "top_p")) {
        if (chat_float(val, 0, 1, &s->top_p)) printf("Set top_p to %g.\n", s->top_p);
    } else if (!strcmp(name, "min_p")) {
        if (chat_float(val, 0, 1, &s->min_p)) printf("Set min_p to %g.\n", s->min_p);
    } else if (!strcmp(name, "repeat_penalty")) {
        float rp = 0; /* it divides logits: 0 is not a value (1 = off) */
        if (!chat_float(val, 0, 100, &rp))
            ; /* chat_float said why */
        else if (rp <= 0)
            printf("repeat_penalty must be in (0, 100] (1 = off)\n");
        else
            printf("Set repeat_penalty to %g.\n", s->repeat_penalty = rp);
    } else if (!strcmp(name, "seed")) {
        if (cli_parse_u64(val, &s->seed)) /* the same range as --seed */
            printf("Set seed to %llu.\n", (unsigned long long)s->seed);
        else
            printf("'%s' is not a number in 0..2^64-1\n", val);
    } else if (!strcmp(name, "num_predict") || !strcmp(name, "n")) {
        if (!strcmp(val, "0")) /* the generator reads 0 as "no limit" */
            printf("num_predict must be at least 1 (-1 = no limit)\n");
        else if (chat_int(val, -1, 1 << 30, &l))
            printf("Set num_predict to %d.\n", r->gp.max_tokens = (int)l);
    } else if (!strcmp(name, "stop")) {
        if (r->n_stops == RUN_MAX_STOPS) {
            printf("at most %d stop strings\n", RUN_MAX_STOPS);
            return;
        }
        char *c = strdup(val);
        if (!c) return;
        for (int i = 0; i < RUN_MAX_STOPS; i++)
            if (!chat_stop_copies[i]) {
                chat_stop_copies[i] = c;
                break;
            }
        r->stops[r->n_stops++] = c;
        r->gp.n_stops = r->n_stops;
        printf("Added stop string \"%s\".\n", c);
    } else if (!strcmp(name, "verbose")) {
        r->verbose = !strcmp(val, "on") || !strcmp(val, "1") || !strcmp(val, "true");
        printf("Timings %s.\n", r->verbose ? "on" : "off");
    } else {
        printf("unknown parameter '%s' (see /?)\n", name);
    }
}

/* Handles a slash command; returns false for /bye. */
static bool chat_command(run_ctx *r, char *line) {
    char *cmd = line + 1;
    char *args = cmd + strcspn(cmd, " \t");
    if (*args) *args++ = '\0';
    if (!strcmp(cmd, "bye") || !strcmp(cmd, "exit") || !strcmp(cmd, "quit")) return false;
    if (!strcmp(cmd, "clear")) {
        run_clear(r);
        printf("Cleared the conversation.\n");
    } else if (!strcmp(cmd, "set")) {
        chat_set(r, args);
    } else if (!strcmp(cmd, "show")) {
        chat_show(r);
    } else if (!strcmp(cmd, "?") || !strcmp(cmd, "help")) {
        chat_help();
    } else {
        printf("unknown command '/%s' (/? for help)\n", cmd);
    }
    return true;
}

/* The history file: $M40LLM_HISTORY ("" = none), else
 * ~/.cache/m40-llm/history (directories created as needed). */
static bool chat_history_path(char *buf, size_t n) {
    const char *env = getenv("M40LLM_HISTORY");
    if (env) {
        snprintf(buf, n, "%s", env);
        return *env != '\0';
    }
    const char *home = getenv("HOME");
    if (!home || !*home) return false;
    snprintf(buf, n, "%s/.cache", home);
    mkdir(buf, 0755);
    snprintf(buf, n, "%s/.cache/m40-llm", home);
    mkdir(buf, 0755);
    snprintf(buf, n, "%s/.cache/m40-llm/history", home);
    return true;
}

/* libedit reads $EDITRC or ~/.editrc with a plain open(): a FIFO there
 * would block the chat before its first prompt. */
static bool chat_editrc_ok(void) {
    char path[1024];
    const char *env = getenv("EDITRC"), *home = getenv("HOME");
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.editrc", home);
    else
        return true;
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return true;
    fprintf(stderr, "m40-llm run: %s is %s; not read\n", path, fileio_kind(st.st_mode));
    return false;
}

int run_chat(run_ctx *r) {
    EditLine *el = el_init("m40-llm", stdin, stdout, stderr);
    History *h = history_init();
    if (!el || !h) {
        fprintf(stderr, "m40-llm run: cannot set up line editing\n");
        if (el) el_end(el);
        if (h) history_end(h);
        return 1;
    }
    HistEvent ev;
    history(h, &ev, H_SETSIZE, 1000);
    history(h, &ev, H_SETUNIQUE, 1);
    char hist_path[1024];
    bool have_hist = chat_history_path(hist_path, sizeof hist_path);
    struct stat hst; /* libedit would block on a FIFO or read a device */
    if (have_hist && stat(hist_path, &hst) == 0 && !S_ISREG(hst.st_mode)) {
        fprintf(stderr, "m40-llm run: the history file %s is %s; history is not kept\n", hist_path,
                fileio_kind(hst.st_mode));
        have_hist = false;
    }
    if (have_hist) history(h, &ev, H_LOAD, hist_path); /* absent on first use */
    el_set(el, EL_EDITOR, "emacs");
    el_set(el, EL_PROMPT, chat_prompt);
    el_set(el, EL_HIST, history, h);
    if (chat_editrc_ok()) el_source(el, NULL);
    el_set(el, EL_SETTY, "-d", "-isig", NULL);
    /* the wide call keeps these static strings; el_set would copy them
     * with wcsdup and never free the copies */
    el_wset(el, EL_ADDFN, L"m40-interrupt", L"drop the line (twice: exit)", chat_on_ctrl_c);
    el_set(el, EL_BIND, "^C", "m40-interrupt", NULL);
    fputs("Chatting with ", stdout);
    if (r->m->cfg.name[0]) /* the model's own name: escaped */
        cli_put_escaped(stdout, r->m->cfg.name, strlen(r->m->cfg.name), 0);
    else
        fputs("the model", stdout);
    fputs(". /? for help, /bye or Ctrl-D to exit.\n", stdout);
    fflush(stdout);
    int status = 0, interrupts = 0;
    for (;;) {
        int count = 0;
        run_interrupted = 0;
        chat_ctrl_c = false;
        errno = 0;
        const char *in = el_gets(el, &count);
        if (!in) {
            if (chat_ctrl_c || run_interrupted || errno == EINTR) {
                /* Ctrl-C at the prompt: the line is dropped; twice in a row exits. */
                if (++interrupts >= 2) {
                    printf("\n");
                    break;
                }
                printf("^C\n(Ctrl-C again, Ctrl-D or /bye to exit)\n");
                fflush(stdout);
                continue;
            }
            printf("\n"); /* Ctrl-D */
            break;
        }
        interrupts = 0;
        char *line = strdup(in);
        if (!line) {
            status = 1;
            break;
        }
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = '\0';
        char *p = line + strspn(line, " \t");
        if (!*p) {
            free(line);
            continue;
        }
        history(h, &ev, H_ENTER, p);
        bool go = true;
        if (p[0] == '/' && p[1] != '/')
            go = chat_command(r, p);
        else
            run_turn(r, p[0] == '/' ? p + 1 : p); /* "//text" sends "/text" */
        free(line);
        fflush(stdout);
        if (!go) break;
    }
    if (have_hist && history(h, &ev, H_SAVE, hist_path) < 0)
        fprintf(stderr, "m40-llm run: cannot save the history to %s\n", hist_path);
    el_end(el);
    history_end(h);
    for (int i = 0; i < RUN_MAX_STOPS; i++) {
        free(chat_stop_copies[i]);
        chat_stop_copies[i] = NULL;
    }
    return status;
}
