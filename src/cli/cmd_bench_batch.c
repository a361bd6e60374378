/* m40-llm bench MODEL --batch 1,8,32,64 [-p 128] [-n 128] [-r 3] ...
 *
 * Aggregate decode speed at the engine level, as llama.cpp's batched-bench
 * reports it, through the public engine API (the path the server runs): for
 * each batch size B, B requests with distinct random prompts of P tokens
 * (no prefix-cache help), greedy, ignore_eos, N tokens each, submitted at
 * once. Every token event is timed in the callback. Per B:
 *   prefill t/s   B*P / (first submit -> the last request's first token)
 *   decode t/s    tokens generated while all B decode (the last request's
 *                 first token -> the first request's last token) / that time
 *   per seq t/s   decode / B (= decode steps per second)
 *   TFLOP/s       2 * active params * decode t/s / 1e12 (every parameter a
 *                 token uses taken as one FMA: an approximation, FP32 here)
 *   GB/s          weight bytes a step reads * steps per second (weights read
 *                 once a step; of a mixture of experts, the experts routed to,
 *                 estimated: step_weight_bytes)
 * and the mean time to first token. One engine, sized for the largest B,
 * serves every B; each B gets an untimed warm-up run first. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_backend.h"
#include "cmd_bench.h"
#include "gpu_diag.h"
#include "m40llm.h"

#define BATCH_MAX     4096 /* the engine's max_seqs limit */
#define BATCH_LIST    64   /* sizes in one --batch list */
#define WARMUP_TOKENS 4    /* tokens per request in the untimed warm-up */

typedef struct bb_seq { /* one request's events, written on the engine thread */
    double t_submit;
    double *t; /* [cap] monotonic seconds of each token event */
    int n, cap;
} bb_seq;

typedef struct bb_rep { /* one repetition at one batch size */
    double prefill_ts, decode_ts, ttft_s, e2e_ts, window_s;
    long window_tokens;
} bb_rep;

typedef struct bb_ev { /* one token event */
    double t;
    int seq;
} bb_ev;

static int ev_cmp(const void *a, const void *b) {
    const bb_ev *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t ? 1 : (x->seq > y->seq) - (x->seq < y->seq);
}

typedef struct bb_run { /* what the repetitions share */
    m40llm_engine *e;
    int n_vocab, P, N;
    uint64_t rng;
    int32_t *prompts;              /* [max B * P] */
    double *times;                 /* [max B * N] */
    bb_seq *seqs;                  /* [max B] */
    bb_ev *ev;                     /* [max B * N] */
    long *step_of;                 /* [max B] the step of each request's latest event */
    m40llm_request **rq;           /* [max B] */
    m40llm_request_params *params; /* [max B] */
    int preempted;                 /* over all timed runs */
} bb_run;

typedef struct bb_fig { /* mean and sample standard deviation */
    double mean, sd;
} bb_fig;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int on_event(void *user, const m40llm_event *ev) {
    bb_seq *s = user;
    double t = now_s(); /* first: the event's time, not after our bookkeeping */
    if (ev->token >= 0 && s->n < s->cap) s->t[s->n++] = t;
    return 1;
}

/* Parses "1,8,32" into sizes[]; prints why and returns -1 when malformed. */
static int parse_batches(const char *v, int *sizes, int *n) {
    *n = 0;
    const char *s = v ? v : "";
    for (;;) {
        char *end;
        long b = 0;
        bool ok = *s >= '0' && *s <= '9';
        if (ok) {
            b = strtol(s, &end, 10);
            ok = (*end == ',' || *end == '\0') && b >= 1 && b <= BATCH_MAX && *n < BATCH_LIST;
        }
        if (!ok) {
            fprintf(stderr,
                    "m40-llm bench: --batch: '%s' is not a list of batch sizes (1..%d, "
                    "comma-separated, at most %d)\n",
                    v ? v : "", BATCH_MAX, BATCH_LIST);
            return -1;
        }
        sizes[(*n)++] = (int)b;
        if (*end == '\0') return 0;
        s = end + 1;
    }
}

/* Submits B requests of P random tokens, n_gen out each, and waits for all.
 * rep (may be NULL: warm-up) gets the figures. Exit status. */
static int run_batch(bb_run *r, int B, int n_gen, bb_rep *rep) {
    const int P = r->P;
    for (long i = 0; i < (long)B * P; i++)
        r->prompts[i] = (int32_t)(rng_next(&r->rng) % (uint64_t)r->n_vocab);
    for (int i = 0; i < B; i++) {
        bb_seq *s = &r->seqs[i];
        *s = (bb_seq){.t = r->times + (size_t)i * r->N, .cap = n_gen};
        m40llm_request_params *p = &r->params[i];
        m40llm_request_default_params(p);
        p->prompt = r->prompts + (size_t)i * P;
        p->n_prompt = (size_t)P;
        p->sampling.temperature = 0; /* greedy */
        p->max_tokens = n_gen;
        p->ignore_eos = 1;
        p->on_event = on_event;
        p->user = s;
    }
    /* all at once: one at a time, a fast engine could finish the first
     * before the last is queued, and there would be no batch to measure */
    const double t0 = now_s();
    for (int i = 0; i < B; i++) r->seqs[i].t_submit = t0;
    int rc = m40llm_submit_many(r->e, r->params, B, r->rq);
    if (rc) {
        cli_fail("submit", rc);
        return 1;
    }
    int preempted = 0;
    for (int i = 0; i < B; i++) {
        m40llm_request_wait(r->rq[i], -1);
        m40llm_request_result res;
        m40llm_request_get_result(r->rq[i], &res);
        preempted += res.n_preempted;
        if (!rc && (res.finish != M40LLM_FINISH_LENGTH || r->seqs[i].n != n_gen)) {
            fprintf(stderr,
                    "m40-llm bench: request %d of %d ended '%s' after %d of %d tokens%s%s\n", i + 1,
                    B, m40llm_finish_reason_str(res.finish), r->seqs[i].n, n_gen,
                    res.error ? ": " : "", res.error ? res.error : "");
            rc = 1;
        }
        m40llm_request_free(r->rq[i]);
    }
    if (rc || !rep) return rc ? 1 : 0;
    r->preempted += preempted;

    /* the events in time order, cut into engine steps: each request gets at
     * most one token a step, so a request seen again starts the next step */
    const long ne = (long)B * n_gen;
    for (int i = 0; i < B; i++)
        for (int k = 0; k < n_gen; k++) r->ev[(long)i * n_gen + k] = (bb_ev){r->seqs[i].t[k], i};
    qsort(r->ev, (size_t)ne, sizeof *r->ev, ev_cmp);
    double first_max = 0, last_min = INFINITY, last_max = 0, ttft = 0;
    for (int i = 0; i < B; i++) {
        const bb_seq *s = &r->seqs[i];
        first_max = fmax(first_max, s->t[0]);
        last_min = fmin(last_min, s->t[n_gen - 1]);
        last_max = fmax(last_max, s->t[n_gen - 1]);
        ttft += s->t[0] - s->t_submit;
        r->step_of[i] = -1;
    }
    /* steady window: after the step that gave the last request its first
     * token (ending at t_a) up to the step that gave the first request its
     * last token (ending at t_b) */
    long step = 0, win = 0;
    int s_a = -1, s_b = -1;
    double t_a = 0, t_b = 0;
    for (long j = 0; j < ne; j++) {
        const bb_ev *v = &r->ev[j];
        if (r->step_of[v->seq] == step) step++;
        r->step_of[v->seq] = step;
        if (v->t == first_max && s_a < 0) s_a = (int)step;
        if (v->t == last_min && s_b < 0) s_b = (int)step;
        bool ends = j + 1 == ne || r->step_of[r->ev[j + 1].seq] == step;
        if (ends && step == s_a) t_a = v->t;
        if (ends && step == s_b) t_b = v->t;
        if (s_a >= 0 && step > s_a && (s_b < 0 || step <= s_b)) win++;
    }
    *rep = (bb_rep){
        .prefill_ts = (double)B * P / (first_max - t0),
        .ttft_s = ttft / B,
        .e2e_ts = (double)B * n_gen / (last_max - t0),
        .window_s = s_b > s_a ? t_b - t_a : 0,
        .window_tokens = s_b > s_a ? win : 0,
    };
    rep->decode_ts = rep->window_tokens > 0 && rep->window_s > 0 ? win / rep->window_s : 0;
    return 0;
}

/* Mean and sd over reps of the double at byte offset off of each bb_rep,
 * skipping zeros (a repetition with no steady window). */
static bb_fig fig(const bb_rep *reps, int n, size_t off) {
    double s = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&reps[i] + off);
        if (v <= 0) continue;
        s += v;
        s2 += v * v;
        k++;
    }
    bb_fig f = {k ? s / k : 0, 0};
    if (k > 1) f.sd = sqrt(fmax(0, (s2 - s * s / k) / (k - 1)));
    return f;
}

#define FIG(reps, n, field) fig(reps, n, offsetof(bb_rep, field))

static int usage(FILE *f) {
    fprintf(f, "usage: m40-llm bench MODEL --batch 1,8,32,64 [-p 128] [-n 128] [-r 3] "
               "[--threads N] [--device cpu|cuda[:N]] [--ctx N] [--kv f16|f32] "
               "[--max-batch-tokens N] [--json]\n"
               "       [--gpus LIST [--split layer] [--tensor-split L]]\n");
    return f == stdout ? 0 : 2;
}

bool bench_wants_batch(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--batch")) return true;
    return false;
}

static void json_fig(cJSON *o, const char *name, bb_fig f, double scale) {
    char k[64];
    snprintf(k, sizeof k, "avg_%s", name);
    cJSON_AddNumberToObject(o, k, f.mean * scale);
    snprintf(k, sizeof k, "stddev_%s", name);
    cJSON_AddNumberToObject(o, k, f.sd * scale);
}

/* Weight bytes one decode step of B sequences reads: every dense weight
 * once; of a mixture-of-experts model's expert tensors, the experts at least
 * one of the B tokens is routed to. The engine does not report its routing:
 * estimated for tokens routed uniformly and independently (an expert missed
 * by all B with probability (1 - k/n)^B); exact for B = 1. */
static double step_weight_bytes(const m40llm_model_info *mi, int B) {
    if (!mi->n_expert) return (double)mi->weight_bytes;
    const double hit = 1.0 - pow(1.0 - (double)mi->n_expert_used / mi->n_expert, B);
    return (double)(mi->weight_bytes - mi->expert_bytes) + (double)mi->expert_bytes * hit;
}

static void print_json(const m40llm_model_info *mi, const m40llm_engine_info *ei, const int *bs,
                       int nb, const bb_rep *reps, int R, int P, int N, int preempted) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "mode", "batch");
    cJSON_AddStringToObject(root, "model", mi->name);
    cJSON_AddStringToObject(root, "model_file", mi->path);
    cJSON_AddStringToObject(root, "arch", mi->arch);
    cJSON_AddStringToObject(root, "quant", mi->quant);
    cJSON_AddNumberToObject(root, "n_params", (double)mi->n_params);
    cJSON_AddNumberToObject(root, "weight_bytes", (double)mi->weight_bytes);
    cJSON_AddNumberToObject(root, "n_params_active", (double)mi->n_params_active);
    cJSON_AddNumberToObject(root, "active_weight_bytes", (double)mi->active_weight_bytes);
    cJSON_AddNumberToObject(root, "n_expert", mi->n_expert);
    cJSON_AddNumberToObject(root, "n_expert_used", mi->n_expert_used);
    cJSON *sh = cJSON_AddObjectToObject(root, "shape");
    cJSON_AddNumberToObject(sh, "n_layer", mi->n_layer);
    cJSON_AddNumberToObject(sh, "n_embd", mi->n_embd);
    cJSON_AddNumberToObject(sh, "n_head", mi->n_head);
    cJSON_AddNumberToObject(sh, "n_head_kv", mi->n_head_kv);
    cJSON_AddNumberToObject(sh, "n_vocab", mi->n_vocab);
    cJSON *en = cJSON_AddObjectToObject(root, "engine");
    cJSON_AddStringToObject(en, "backend", ei->backend);
    cJSON_AddNumberToObject(en, "device", ei->device);
    gpu_diag_facts gf;
    if (ei->device >= 0) gpu_diag_probe(&gf);
    cJSON_AddStringToObject(en, "device_name",
                            ei->device < 0 ? "cpu"
                            : ei->device < gf.n_gpu && ei->device < GPU_DIAG_MAX
                                ? gf.gpu[ei->device].name
                                : "");
    cJSON_AddNumberToObject(en, "n_ctx", ei->n_ctx);
    cJSON_AddNumberToObject(en, "max_seqs", ei->max_seqs);
    cJSON_AddNumberToObject(en, "max_batch_tokens", ei->max_batch_tokens);
    cJSON_AddStringToObject(en, "kv_type", ei->kv_type == M40LLM_KV_F32 ? "f32" : "f16");
    cJSON_AddNumberToObject(en, "kv_block", ei->kv_block);
    cJSON_AddNumberToObject(en, "kv_blocks_total", ei->kv_blocks_total);
    cJSON_AddNumberToObject(en, "kv_pool_bytes", (double)ei->kv_pool_bytes);
    cJSON_AddNumberToObject(en, "mem_used_bytes", (double)ei->mem_used);
    cJSON_AddNumberToObject(root, "n_prompt", P);
    cJSON_AddNumberToObject(root, "n_gen", N);
    cJSON_AddNumberToObject(root, "repetitions", R);
    cJSON_AddNumberToObject(root, "preemptions", preempted);
    cJSON_AddStringToObject(root, "tflops_note",
                            "approximation: 2 * n_params_active * aggregate decode tok/s / 1e12");
    if (mi->n_expert)
        cJSON_AddStringToObject(root, "gb_note",
                                "experts read per step estimated for uniform routing");
    cJSON *arr = cJSON_AddArrayToObject(root, "batches");
    for (int b = 0; b < nb; b++) {
        const bb_rep *rp = reps + (size_t)b * R;
        const int B = bs[b];
        bb_fig dec = FIG(rp, R, decode_ts);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "batch", B);
        cJSON_AddNumberToObject(o, "generated_tokens", (double)B * N);
        json_fig(o, "prefill_ts", FIG(rp, R, prefill_ts), 1);
        json_fig(o, "decode_ts", dec, 1);
        json_fig(o, "decode_ts_per_seq", dec, 1.0 / B);
        json_fig(o, "ttft_ms", FIG(rp, R, ttft_s), 1e3);
        json_fig(o, "e2e_ts", FIG(rp, R, e2e_ts), 1);
        cJSON_AddNumberToObject(o, "avg_tflops",
                                2.0 * (double)mi->n_params_active * dec.mean / 1e12);
        cJSON_AddNumberToObject(o, "weight_bytes_per_step", step_weight_bytes(mi, B));
        cJSON_AddNumberToObject(o, "avg_gb_per_s", step_weight_bytes(mi, B) * dec.mean / B / 1e9);
        cJSON *smp = cJSON_AddArrayToObject(o, "samples");
        for (int r = 0; r < R; r++) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddNumberToObject(s, "prefill_ts", rp[r].prefill_ts);
            cJSON_AddNumberToObject(s, "decode_ts", rp[r].decode_ts);
            cJSON_AddNumberToObject(s, "ttft_ms", rp[r].ttft_s * 1e3);
            cJSON_AddNumberToObject(s, "e2e_ts", rp[r].e2e_ts);
            cJSON_AddNumberToObject(s, "window_s", rp[r].window_s);
            cJSON_AddNumberToObject(s, "window_tokens", (double)rp[r].window_tokens);
            cJSON_AddItemToArray(smp, s);
        }
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(root);
    if (s) puts(s);
    free(s);
    cJSON_Delete(root);
}

static void print_table(const m40llm_model_info *mi, const m40llm_engine_info *ei, const int *bs,
                        int nb, const bb_rep *reps, int R, int P, int N, int n_threads) {
    fputs("model: ", stdout);
    cli_put_escaped(stdout, mi->name, strlen(mi->name), 0); /* the model's own name */
    printf(" (%s), %.1f MiB, %.1f M params\n", mi->quant, mi->weight_bytes / 1048576.0,
           mi->n_params / 1e6);
    if (mi->n_expert)
        printf("mixture of experts: %d of %d per token, %.1f M params and %.1f MiB of weights "
               "active per token (embedding table whole); GB/s counts the experts a step reads, "
               "estimated for uniform routing\n",
               mi->n_expert_used, mi->n_expert, mi->n_params_active / 1e6,
               mi->active_weight_bytes / 1048576.0);
    printf("engine: %s", ei->backend);
    if (ei->device >= 0)
        printf(":%d", ei->device);
    else
        printf(", %d threads", n_threads);
    printf(", max_seqs %d, max_batch_tokens %d, ctx %d, KV %s (%d blocks of %d), memory used "
           "%.1f MiB\n",
           ei->max_seqs, ei->max_batch_tokens, ei->n_ctx,
           ei->kv_type == M40LLM_KV_F32 ? "f32" : "f16", ei->kv_blocks_total, ei->kv_block,
           ei->mem_used / 1048576.0);
    printf("each of B requests: %d prompt tokens, %d generated (greedy, ignore_eos); %d "
           "repetitions\n",
           P, N, R);
    printf("decode t/s: all B sequences decoding; TFLOP/s ~ 2 x active params x t/s; GB/s: "
           "weights a step reads x steps/s\n\n");
    printf(
        "|    B | prefill t/s | TTFT ms |          decode t/s | seq t/s | TFLOP/s |    GB/s |\n"
        "|------|-------------|---------|---------------------|---------|---------|---------|\n");
    for (int b = 0; b < nb; b++) {
        const bb_rep *rp = reps + (size_t)b * R;
        const int B = bs[b];
        bb_fig dec = FIG(rp, R, decode_ts);
        printf("| %4d | %11.2f | %7.2f | %9.2f ± %7.2f | %7.2f | %7.3f | %7.2f |\n", B,
               FIG(rp, R, prefill_ts).mean, FIG(rp, R, ttft_s).mean * 1e3, dec.mean, dec.sd,
               dec.mean / B, 2.0 * (double)mi->n_params_active * dec.mean / 1e12,
               step_weight_bytes(mi, B) * dec.mean / B / 1e9);
    }
}

int cmd_bench_batch(int argc, char **argv) {
    const char *model_name = NULL, *device = NULL;
    backend_gpus gpus = {0};
    int gi;
    long P = 128, N = 128, R = 3, threads = cli_default_threads(), ctx = 0, mbt = 0;
    bool json = false, kv32 = false;
    int bs[BATCH_LIST], nb = 0;
    for (int i = 1; i < argc; i++) /* before --batch's value: `bench --batch --help` */
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = !strcmp(a, "-p")                              ? &P
                    : !strcmp(a, "-n")                            ? &N
                    : !strcmp(a, "-r")                            ? &R
                    : !strcmp(a, "--threads") || !strcmp(a, "-t") ? &threads
                    : !strcmp(a, "--ctx") || !strcmp(a, "-c")     ? &ctx
                    : !strcmp(a, "--max-batch-tokens")            ? &mbt
                                                                  : NULL;
        if (dst) {
            /* a prompt token, two generated (one decode step), one repetition */
            long lo = dst == &P || dst == &R || dst == &threads ? 1 : dst == &N ? 2 : 0;
            long hi = dst == &mbt ? 65535 : 1 << 20;
            if ((*dst = cli_parse_long(a, v, lo, hi)) < 0) return 2;
            i++;
        } else if (!strcmp(a, "--batch")) {
            if (parse_batches(v, bs, &nb)) return usage(stderr);
            i++;
        } else if ((gi = cli_gpu_option("bench", a, v, &gpus)) != 0) {
            if (gi < 0) return 2;
            i++;
        } else if (!strcmp(a, "--device")) {
            if (!v || cli_check_device(v)) return 2;
            device = argv[++i];
        } else if (!strcmp(a, "--kv")) {
            if (!v || (strcmp(v, "f16") && strcmp(v, "f32"))) {
                fprintf(stderr, "m40-llm bench: --kv: '%s' is not f32 or f16\n", v ? v : "");
                return usage(stderr);
            }
            kv32 = !strcmp(argv[++i], "f32");
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "m40-llm bench: unknown option %s\n", a);
            return usage(stderr);
        } else if (model_name) {
            fprintf(stderr, "m40-llm bench: one MODEL only ('%s' is extra)\n", a);
            return usage(stderr);
        } else {
            model_name = a;
        }
    }
    if (!model_name) {
        fprintf(stderr, "m40-llm bench: no MODEL given\n");
        return usage(stderr);
    }
    const long need = P + N; /* positions one sequence uses */
    if (ctx && ctx < need) {
        fprintf(stderr, "m40-llm bench: --ctx %ld is smaller than -p %ld + -n %ld = %ld\n", ctx, P,
                N, need);
        return 2;
    }
    int maxb = 0;
    for (int b = 0; b < nb; b++) maxb = bs[b] > maxb ? bs[b] : maxb;

    char path[1024];
    int rc = cli_resolve_model(model_name, path, sizeof path);
    if (rc) return cli_fail("model", rc);
    m40llm_model *mm = NULL;
    if ((rc = m40llm_model_load(path, &mm))) return cli_fail("model", rc);
    m40llm_model_info mi;
    m40llm_model_get_info(mm, &mi);
    if (mi.n_ctx_train > 0 && need > mi.n_ctx_train) {
        fprintf(stderr,
                "m40-llm bench: -p %ld + -n %ld = %ld positions, more than the model's trained "
                "context of %d\n",
                P, N, need, mi.n_ctx_train);
        m40llm_model_free(mm);
        return 2;
    }

    m40llm_engine_params ep;
    m40llm_engine_default_params(&ep);
    ep.device = device;
    ep.gpus = gpus.list;
    ep.split = gpus.split;
    ep.tensor_split = gpus.tensor_split;
    ep.n_threads = (int)threads;
    ep.n_ctx = (int)(ctx ? ctx : need);
    ep.max_seqs = maxb;
    ep.max_queue = maxb;
    ep.max_batch_tokens = (int)mbt;
    ep.kv_type = kv32 ? M40LLM_KV_F32 : M40LLM_KV_F16;
    bb_run run = {.n_vocab = mi.n_vocab, .P = (int)P, .N = (int)N, .rng = 42};
    bb_rep *reps = calloc((size_t)nb * R, sizeof *reps);
    run.prompts = malloc((size_t)maxb * P * sizeof *run.prompts);
    run.times = malloc((size_t)maxb * N * sizeof *run.times);
    run.seqs = calloc((size_t)maxb, sizeof *run.seqs);
    run.rq = calloc((size_t)maxb, sizeof *run.rq);
    run.params = calloc((size_t)maxb, sizeof *run.params);
    run.ev = malloc((size_t)maxb * N * sizeof *run.ev);
    run.step_of = malloc((size_t)maxb * sizeof *run.step_of);
    int ret = 1;
    if (!reps || !run.prompts || !run.times || !run.seqs || !run.rq || !run.params || !run.ev ||
        !run.step_of) {
        fprintf(stderr, "m40-llm bench: out of memory\n");
        goto out;
    }
    if ((rc = m40llm_engine_create(mm, &ep, &run.e))) {
        cli_fail("engine", rc);
        goto out;
    }
    m40llm_engine_info ei;
    m40llm_engine_get_info(run.e, &ei);
    for (int b = 0; b < nb; b++) {
        /* warm-up: touches the weights, builds the step shapes of this B */
        if (run_batch(&run, bs[b], N < WARMUP_TOKENS ? (int)N : WARMUP_TOKENS, NULL)) goto out;
        for (int r = 0; r < R; r++)
            if (run_batch(&run, bs[b], (int)N, &reps[(size_t)b * R + r])) goto out;
        bb_fig dec = FIG(reps + (size_t)b * R, (int)R, decode_ts);
        if (dec.mean <= 0)
            fprintf(stderr,
                    "m40-llm bench: B=%d: no step had all %d sequences decoding (the first "
                    "finished before the last started): raise -n or --max-batch-tokens\n",
                    bs[b], bs[b]);
        if (!json) fprintf(stderr, "B=%d: %.2f t/s aggregate decode\n", bs[b], dec.mean);
    }
    m40llm_engine_get_info(run.e, &ei); /* memory used after the runs */
    if (run.preempted)
        fprintf(stderr,
                "m40-llm bench: %d preemptions (the KV pool was too small): figures include "
                "recomputation\n",
                run.preempted);
    if (json)
        print_json(&mi, &ei, bs, nb, reps, (int)R, (int)P, (int)N, run.preempted);
    else
        print_table(&mi, &ei, bs, nb, reps, (int)R, (int)P, (int)N, (int)threads);
    ret = 0;
out:
    m40llm_engine_free(run.e);
    m40llm_model_free(mm);
    free(reps);
    free(run.prompts);
    free(run.times);
    free(run.seqs);
    free(run.rq);
    free(run.params);
    free(run.ev);
    free(run.step_of);
    return ret;
}
