/* Server: the Prometheus text of /metrics: every sample line well formed,
 * counters and gauges from the engine's stats, cumulative histogram
 * buckets, escaped labels, GPU series only with a GPU. */
#include <ctype.h>
#include <string.h>

#include "check.h"
#include "server/srv_int.h"

/* Every line is a comment or NAME{LABELS} VALUE; returns the bad line's number (0: none). */
static int well_formed(const char *t) {
    int line = 0;
    while (*t) {
        line++;
        const char *e = strchr(t, '\n');
        if (!e) return line; /* the text ends with a newline */
        if (*t != '#') {
            const char *p = t;
            if (strncmp(p, "m40llm:", 7)) return line;
            while (p < e && (isalnum((unsigned char)*p) || *p == '_' || *p == ':')) p++;
            if (*p != '{') return line;
            /* labels: k="v" pairs; quotes may be escaped */
            p++;
            while (p < e && *p != '}') {
                while (p < e && (isalnum((unsigned char)*p) || *p == '_')) p++;
                if (p + 1 >= e || p[0] != '=' || p[1] != '"') return line;
                p += 2;
                while (p < e && *p != '"') p += *p == '\\' ? 2 : 1;
                if (p >= e) return line;
                p++;
                if (*p == ',') p++;
            }
            if (p >= e || p[1] != ' ') return line;
            char *end = NULL;
            strtod(p + 2, &end);
            if (end != e) return line;
        }
        t = e + 1;
    }
    return 0;
}

static double value(const char *t, const char *series) {
    const char *p = strstr(t, series);
    if (!p) return -1;
    p += strlen(series);
    if (*p != ' ') return -1;
    return strtod(p + 1, NULL);
}

int main(void) {
    metrics m;
    metrics_init(&m);
    metrics_hist h;
    metrics_hist_init_itl(&h);
    metrics_hist_observe(&h, 0.02);
    metrics_hist_observe(&h, 0.03);
    metrics_hist_observe(&h, 200.0); /* past the last bound: +Inf only */
    metrics_observe_request(&m, 0.05, 1.2, 0.001, &h);
    metrics_observe_request(&m, -1, 0.4, 0.5, NULL); /* no token: no TTFT */

    m40llm_engine_stats st = {0};
    st.running = 2;
    st.waiting = 1;
    st.kv_blocks_used = 3;
    st.kv_blocks_free = 6;
    st.kv_blocks_cached = 1;
    st.prefix_queries = 100;
    st.prefix_hits = 64;
    st.prompt_tokens = 1234;
    st.generated_tokens = 567;
    st.preemptions = 2;
    st.finished[M40LLM_FINISH_STOP] = 5;
    st.finished[M40LLM_FINISH_LENGTH] = 3;
    st.finished[M40LLM_FINISH_CONTEXT] = 1;
    st.finished[M40LLM_FINISH_CANCELLED] = 4;
    m40llm_engine_info ei = {0};
    ei.kv_blocks_total = 10;

    char *t = metrics_render(&m, "a\"b\\c", &st, &ei, NULL, 0);
    CHECK(t != NULL);
    int bad = well_formed(t);
    CHECKF(bad == 0, "line %d is not a Prometheus sample", bad);
    const char *L = "{model_name=\"a\\\"b\\\\c\"}";
    char s[256];
#define V(name) (snprintf(s, sizeof s, "m40llm:%s%s", name, L), value(t, s))
    CHECK(V("num_requests_running") == 2 && V("num_requests_waiting") == 1);
    CHECK(V("kv_blocks_used") == 3 && V("kv_blocks_free") == 6 && V("kv_blocks_total") == 10);
    CHECK(V("kv_cache_usage_perc") == 0.3);
    CHECK(V("prefix_cache_queries_total") == 100 && V("prefix_cache_hits_total") == 64);
    CHECK(V("prompt_tokens_total") == 1234 && V("generation_tokens_total") == 567);
    CHECK(V("num_preemptions_total") == 2);
    CHECK(strstr(t, "# TYPE m40llm:prompt_tokens_total counter\n"));
    CHECK(strstr(t, "# TYPE m40llm:num_requests_running gauge\n"));
    CHECK(value(t, "m40llm:request_success_total{model_name=\"a\\\"b\\\\c\",finished_reason="
                   "\"length\"}") == 4);
    CHECK(
        value(
            t,
            "m40llm:request_success_total{model_name=\"a\\\"b\\\\c\",finished_reason=\"abort\"}") ==
        4);
    CHECK(
        value(
            t,
            "m40llm:request_success_total{model_name=\"a\\\"b\\\\c\",finished_reason=\"stop\"}") ==
        5);
    /* histograms: cumulative buckets, +Inf = count */
    CHECK(strstr(t, "# TYPE m40llm:time_to_first_token_seconds histogram\n"));
    CHECK(V("time_to_first_token_seconds_count") == 1 &&
          V("e2e_request_latency_seconds_count") == 2);
    CHECK(V("inter_token_latency_seconds_count") == 3 &&
          V("request_queue_time_seconds_count") == 2);
    CHECK(V("e2e_request_latency_seconds_sum") > 1.59 &&
          V("e2e_request_latency_seconds_sum") < 1.61);
    CHECK(
        value(
            t,
            "m40llm:inter_token_latency_seconds_bucket{model_name=\"a\\\"b\\\\c\",le=\"0.025\"}") ==
        1);
    CHECK(
        value(
            t,
            "m40llm:inter_token_latency_seconds_bucket{model_name=\"a\\\"b\\\\c\",le=\"0.05\"}") ==
        2);
    CHECK(
        value(t,
              "m40llm:inter_token_latency_seconds_bucket{model_name=\"a\\\"b\\\\c\",le=\"80\"}") ==
        2);
    CHECK(
        value(
            t,
            "m40llm:inter_token_latency_seconds_bucket{model_name=\"a\\\"b\\\\c\",le=\"+Inf\"}") ==
        3);
    CHECK(
        value(
            t,
            "m40llm:time_to_first_token_seconds_bucket{model_name=\"a\\\"b\\\\c\",le=\"0.04\"}") ==
        0);
    CHECK(
        value(
            t,
            "m40llm:time_to_first_token_seconds_bucket{model_name=\"a\\\"b\\\\c\",le=\"0.06\"}") ==
        1);
    CHECK(!strstr(t, "gpu_")); /* no GPU: no GPU series */
    free(t);

    /* while loading: no engine series, the histograms still there */
    t = metrics_render(&m, "m", NULL, NULL, NULL, 0);
    CHECK(t && well_formed(t) == 0 && !strstr(t, "num_requests_running") &&
          strstr(t, "m40llm:e2e_request_latency_seconds_count{model_name=\"m\"} 2\n"));
    free(t);

    /* a GPU: memory, temperature, power, clocks, labelled by index */
    m40llm_gpu_info g = {0};
    g.mem_total = 24ull << 30;
    g.mem_free = 4ull << 30;
    g.temperature_c = 71;
    g.power_mw = 187250;
    g.sm_clock_mhz = 1114;
    g.sm_clock_max_mhz = 1114;
    t = metrics_render(&m, "m", &st, &ei, &g, 1);
    CHECK(t && well_formed(t) == 0);
    CHECK(value(t, "m40llm:gpu_memory_used_bytes{gpu=\"1\"}") == (double)(20ull << 30));
    CHECK(value(t, "m40llm:gpu_temperature_celsius{gpu=\"1\"}") == 71);
    CHECK(value(t, "m40llm:gpu_power_watts{gpu=\"1\"}") == 187.25);
    CHECK(value(t, "m40llm:gpu_sm_clock_mhz{gpu=\"1\"}") == 1114);
    free(t);
    /* a layer split: each card's layers and memory, by card and stage */
    ei.n_cards = 2;
    ei.cards[0] = (m40llm_card_share){0, 0, 20, 3000000000ull, 9000000000ull};
    ei.cards[1] = (m40llm_card_share){0, 20, 32, 2000000000ull, 7500000000ull};
    t = metrics_render(&m, "m", &st, &ei, NULL, 0);
    CHECK(t && well_formed(t) == 0);
    CHECK(value(t, "m40llm:card_layers{model_name=\"m\",gpu=\"0\",stage=\"0\"}") == 20);
    CHECK(value(t, "m40llm:card_layers{model_name=\"m\",gpu=\"0\",stage=\"1\"}") == 12);
    CHECK(value(t, "m40llm:card_memory_bytes{model_name=\"m\",gpu=\"0\",stage=\"1\"}") ==
          7500000000.0);
    CHECK(t && strstr(t, "# TYPE m40llm:card_layers gauge\n") &&
          strstr(t, "# TYPE m40llm:card_memory_bytes gauge\n"));
    free(t);
    ei.n_cards = 0;
    g.temperature_c = -1;
    g.power_mw = -1;
    t = metrics_render(&m, "m", &st, &ei, &g, 0);
    CHECK(t && !strstr(t, "gpu_temperature") && !strstr(t, "gpu_power") &&
          strstr(t, "m40llm:gpu_memory_used_bytes{gpu=\"0\"}"));
    free(t);
    metrics_destroy(&m);
    return check_summary("test_server_metrics");
}
