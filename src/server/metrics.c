/* GET /metrics: Prometheus text format (0.0.4), names prefixed "m40llm:"
 * after vLLM's ("vllm:"), so dashboards made for it need only the prefix
 * changed. Engine gauges and counters come from m40llm_engine_get_stats;
 * the latency histograms are kept here, fed by each finished request. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_int.h"

static const double metrics_ttft_bounds[] = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                             0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                             20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double metrics_itl_bounds[] = {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
                                            0.1,   0.15,   0.2,   0.3,    0.4,  0.5,   0.75, 1.0,
                                            2.5,   5.0,    7.5,   10.0,   20.0, 40.0,  80.0};
static const double metrics_e2e_bounds[] = {0.3,  0.5,  0.8,  1.0,   1.5,   2.0,   2.5,
                                            5.0,  10.0, 15.0, 20.0,  30.0,  40.0,  50.0,
                                            60.0, 120., 240., 480.0, 960.0, 1920., 7680.};
static const double metrics_queue_bounds[] = {0.001, 0.005, 0.01, 0.05,  0.1,   0.3,  0.5,
                                              1.0,   2.5,   5.0,  10.0,  20.0,  40.0, 80.0,
                                              160.0, 320.0, 640., 1280., 2560., 7680.};

#define NB(a) ((int)(sizeof(a) / sizeof(a)[0]))

static void metrics_hist_init(metrics_hist *h, const double *b, int n) {
    memset(h, 0, sizeof *h);
    h->bounds = b;
    h->n = n;
}

void metrics_hist_init_itl(metrics_hist *h) {
    metrics_hist_init(h, metrics_itl_bounds, NB(metrics_itl_bounds));
}

void metrics_init(metrics *m) {
    pthread_mutex_init(&m->mu, NULL);
    metrics_hist_init(&m->ttft, metrics_ttft_bounds, NB(metrics_ttft_bounds));
    metrics_hist_init_itl(&m->itl);
    metrics_hist_init(&m->e2e, metrics_e2e_bounds, NB(metrics_e2e_bounds));
    metrics_hist_init(&m->queue, metrics_queue_bounds, NB(metrics_queue_bounds));
}

void metrics_destroy(metrics *m) {
    pthread_mutex_destroy(&m->mu);
}

void metrics_hist_observe(metrics_hist *h, double v) {
    int i = 0;
    while (i < h->n && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

static void metrics_hist_add(metrics_hist *dst, const metrics_hist *src) {
    if (!src || src->n != dst->n) return;
    for (int i = 0; i <= dst->n; i++) dst->counts[i] += src->counts[i];
    dst->sum += src->sum;
    dst->count += src->count;
}

void metrics_observe_request(metrics *m, double ttft, double e2e, double queue,
                             const metrics_hist *itl) {
    pthread_mutex_lock(&m->mu);
    if (ttft >= 0) metrics_hist_observe(&m->ttft, ttft);
    if (e2e >= 0) metrics_hist_observe(&m->e2e, e2e);
    if (queue >= 0) metrics_hist_observe(&m->queue, queue);
    metrics_hist_add(&m->itl, itl);
    pthread_mutex_unlock(&m->mu);
}

/* ---- text ---- */

typedef struct mbuf {
    char *s; /* [len] of cap */
    size_t len, cap;
    bool failed;
} mbuf;

static void mb_printf(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb_printf(mbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *x = realloc(b->s, cap);
        if (!x) {
            b->failed = true;
            return;
        }
        b->s = x;
        b->cap = cap;
    }
}

static void mb_family(mbuf *b, const char *name, const char *type, const char *help) {
    mb_printf(b, "# HELP m40llm:%s %s\n# TYPE m40llm:%s %s\n", name, help, name, type);
}

static void mb_sample(mbuf *b, const char *name, const char *labels, double v) {
    /* integers print exactly; others with full precision */
    if (v == (double)(long long)v && v < 9e15 && v > -9e15)
        mb_printf(b, "m40llm:%s{%s} %lld\n", name, labels, (long long)v);
    else
        mb_printf(b, "m40llm:%s{%s} %.9g\n", name, labels, v);
}

static void mb_gauge(mbuf *b, const char *name, const char *help, const char *labels, double v) {
    mb_family(b, name, "gauge", help);
    mb_sample(b, name, labels, v);
}

static void mb_counter(mbuf *b, const char *name, const char *help, const char *labels, double v) {
    mb_family(b, name, "counter", help);
    mb_sample(b, name, labels, v);
}

static void mb_hist(mbuf *b, const char *name, const char *help, const char *labels,
                    const metrics_hist *h) {
    mb_family(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i <= h->n; i++) {
        cum += h->counts[i];
        if (i < h->n)
            mb_printf(b, "m40llm:%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, h->bounds[i],
                      (unsigned long long)cum);
        else
            mb_printf(b, "m40llm:%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
                      (unsigned long long)cum);
    }
    mb_printf(b, "m40llm:%s_sum{%s} %.9g\n", name, labels, h->sum);
    mb_printf(b, "m40llm:%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

/* model_name="..." with \, " and newline escaped */
static void metrics_label(char *out, size_t n, const char *key, const char *v) {
    size_t o = (size_t)snprintf(out, n, "%s=\"", key);
    for (const char *p = v; *p && o + 3 < n; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    if (o + 2 > n) o = n - 2;
    out[o++] = '"';
    out[o] = '\0';
}

char *metrics_render(metrics *m, const char *model, const m40llm_engine_stats *st,
                     const m40llm_engine_info *ei, const m40llm_gpu_info *gpu, int gpu_index) {
    mbuf b = {0};
    char lab[600], lab2[700];
    metrics_label(lab, sizeof lab, "model_name", model ? model : "");
    if (st) {
        mb_gauge(&b, "num_requests_running", "Requests running on the engine.", lab, st->running);
        mb_gauge(&b, "num_requests_waiting", "Requests waiting for the engine.", lab, st->waiting);
        int total = ei ? ei->kv_blocks_total : 0;
        mb_gauge(&b, "kv_cache_usage_perc", "KV-cache usage: blocks held by requests / all (0-1).",
                 lab, total > 0 ? (double)st->kv_blocks_used / total : 0.0);
        mb_gauge(&b, "kv_blocks_used", "KV-cache blocks held by running requests.", lab,
                 st->kv_blocks_used);
        mb_gauge(&b, "kv_blocks_cached", "KV-cache blocks kept for prefix reuse (evictable).", lab,
                 st->kv_blocks_cached);
        mb_gauge(&b, "kv_blocks_free", "KV-cache blocks free.", lab, st->kv_blocks_free);
        mb_gauge(&b, "kv_blocks_total", "KV-cache blocks in the pool.", lab, total);
        mb_counter(&b, "prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
                   lab, (double)st->prefix_queries);
        mb_counter(&b, "prefix_cache_hits_total", "Prompt tokens found in the prefix cache.", lab,
                   (double)st->prefix_hits);
        mb_counter(&b, "prompt_tokens_total", "Prompt tokens processed.", lab,
                   (double)st->prompt_tokens);
        mb_counter(&b, "generation_tokens_total", "Tokens generated.", lab,
                   (double)st->generated_tokens);
        mb_counter(&b, "num_preemptions_total", "Sequences preempted (recomputed later).", lab,
                   (double)st->preemptions);
        mb_counter(&b, "engine_steps_total", "Batched forward steps run.", lab, (double)st->steps);
        mb_family(&b, "request_success_total", "counter", "Requests finished, by reason.");
        static const struct {
            const char *reason;
            int a, b;
        } fin[] = {{"stop", M40LLM_FINISH_STOP, -1},
                   {"length", M40LLM_FINISH_LENGTH, M40LLM_FINISH_CONTEXT},
                   {"abort", M40LLM_FINISH_CANCELLED, -1},
                   {"error", M40LLM_FINISH_ERROR, -1}};
        for (size_t i = 0; i < sizeof fin / sizeof fin[0]; i++) {
            uint64_t v = st->finished[fin[i].a] + (fin[i].b >= 0 ? st->finished[fin[i].b] : 0);
            snprintf(lab2, sizeof lab2, "%s,finished_reason=\"%s\"", lab, fin[i].reason);
            mb_sample(&b, "request_success_total", lab2, (double)v);
        }
    }
    /* each card's part of the model (a layer split: one per stage) */
    for (int i = 0; ei && i < ei->n_cards; i++) {
        const m40llm_card_share *c = &ei->cards[i];
        snprintf(lab2, sizeof lab2, "%s,gpu=\"%d\",stage=\"%d\"", lab, c->device, i);
        if (i == 0)
            mb_family(&b, "card_layers", "gauge", "Layers of the model on each card (stage).");
        mb_sample(&b, "card_layers", lab2, c->layer_end - c->layer_begin);
    }
    for (int i = 0; ei && i < ei->n_cards; i++) {
        const m40llm_card_share *c = &ei->cards[i];
        snprintf(lab2, sizeof lab2, "%s,gpu=\"%d\",stage=\"%d\"", lab, c->device, i);
        if (i == 0)
            mb_family(&b, "card_memory_bytes", "gauge",
                      "Bytes the model holds on each card: weights, KV blocks, buffers.");
        mb_sample(&b, "card_memory_bytes", lab2, (double)c->mem_used);
    }
    pthread_mutex_lock(&m->mu);
    mb_hist(&b, "time_to_first_token_seconds", "Time to the first token.", lab, &m->ttft);
    mb_hist(&b, "inter_token_latency_seconds", "Time between token events of a request.", lab,
            &m->itl);
    mb_hist(&b, "e2e_request_latency_seconds", "Time from submission to the last token.", lab,
            &m->e2e);
    mb_hist(&b, "request_queue_time_seconds", "Time from submission to the first step.", lab,
            &m->queue);
    pthread_mutex_unlock(&m->mu);
    if (gpu) {
        snprintf(lab2, sizeof lab2, "gpu=\"%d\"", gpu_index);
        mb_gauge(&b, "gpu_memory_used_bytes", "GPU memory in use (all processes).", lab2,
                 (double)(gpu->mem_total - gpu->mem_free));
        mb_gauge(&b, "gpu_memory_total_bytes", "GPU memory.", lab2, (double)gpu->mem_total);
        if (gpu->temperature_c >= 0)
            mb_gauge(&b, "gpu_temperature_celsius", "GPU temperature.", lab2, gpu->temperature_c);
        if (gpu->power_mw >= 0)
            mb_gauge(&b, "gpu_power_watts", "GPU power draw.", lab2, gpu->power_mw / 1000.0);
        if (gpu->sm_clock_mhz >= 0)
            mb_gauge(&b, "gpu_sm_clock_mhz", "GPU SM clock.", lab2, gpu->sm_clock_mhz);
        if (gpu->sm_clock_max_mhz > 0)
            mb_gauge(&b, "gpu_sm_clock_max_mhz", "GPU SM clock limit.", lab2,
                     gpu->sm_clock_max_mhz);
    }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : strdup("");
}
