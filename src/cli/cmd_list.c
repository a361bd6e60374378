/* m40-llm list [--json]: the models of the store and those found in
 * Ollama's store, the Hugging Face cache and llama.cpp's cache, as a table
 * like `ollama list` (NAME, ID, SIZE, QUANT, PARAMS, ARCH, MODIFIED, WHERE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "store/store.h"

static void human_params(uint64_t n, char *out, size_t size) {
    if (!n)
        snprintf(out, size, "-");
    else if (n >= 1000000000ull)
        snprintf(out, size, "%.1fB", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(out, size, "%.0fM", (double)n / 1e6);
    else
        snprintf(out, size, "%.0fK", (double)n / 1e3);
}

static void human_age(long long t, char *out, size_t size) {
    long long d = (long long)time(NULL) - t;
    if (t <= 0) {
        snprintf(out, size, "-");
        return;
    }
    if (d < 0) d = 0;
    const struct {
        long long s;
        const char *u;
    } us[] = {{365 * 86400LL, "year"}, {30 * 86400LL, "month"}, {7 * 86400LL, "week"},
              {86400, "day"},          {3600, "hour"},          {60, "minute"}};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++)
        if (d >= us[i].s) {
            long long k = d / us[i].s;
            snprintf(out, size, "%lld %s%s ago", k, us[i].u, k > 1 ? "s" : "");
            return;
        }
    snprintf(out, size, d < 5 ? "just now" : "%lld seconds ago", d);
}

static int list_json(const store_model *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const store_model *m = &v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddStringToObject(o, "where", store_origin_str(m->origin));
        cJSON_AddStringToObject(o, "path", m->path);
        cJSON_AddStringToObject(o, "source", m->source);
        cJSON_AddStringToObject(o, "sha256", m->n_parts ? m->parts[0].sha256 : "");
        cJSON_AddNumberToObject(o, "size", (double)m->size);
        cJSON_AddNumberToObject(o, "parts", m->n_parts);
        cJSON_AddStringToObject(o, "quantization", m->quant);
        cJSON_AddNumberToObject(o, "parameters", (double)m->n_params);
        cJSON_AddStringToObject(o, "architecture", m->arch);
        cJSON_AddNumberToObject(o, "context_length", (double)m->n_ctx);
        cJSON_AddNumberToObject(o, "modified", (double)m->modified);
        cJSON_AddItemToArray(a, o);
    }
    char *t = cJSON_Print(a);
    cJSON_Delete(a);
    if (!t) return 1;
    fputs(t, stdout);
    fputc('\n', stdout);
    cJSON_free(t);
    return 0;
}

int cmd_list(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: m40-llm list [--json]\n"
                   "  models of the store ($M40LLM_HOME, default ~/.m40llm) and those found in\n"
                   "  Ollama's store ($OLLAMA_MODELS or ~/.ollama/models), the Hugging Face cache\n"
                   "  ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub) and llama.cpp's\n"
                   "  cache ($LLAMA_CACHE); WHERE says which. Every NAME works as MODEL.\n");
            return 0;
        } else {
            fprintf(stderr, "m40-llm: list: unexpected argument '");
            cli_put_escaped(stderr, argv[i], strlen(argv[i]), 0);
            fprintf(stderr, "'\n");
            return 2;
        }
    }
    store_model *v = NULL;
    int n = 0;
    int rc = store_list_all(&v, &n);
    if (rc) return cli_fail("list", rc);
    int ret = 0;
    if (json) {
        ret = list_json(v, n);
    } else {
        int w = 4;
        for (int i = 0; i < n; i++)
            if ((int)strlen(v[i].name) > w) w = (int)strlen(v[i].name);
        if (w > 60) w = 60;
        printf("%-*s  %-12s  %-8s  %-7s  %-6s  %-8s  %-15s  %s\n", w, "NAME", "ID", "SIZE", "QUANT",
               "PARAMS", "ARCH", "MODIFIED", "WHERE");
        for (int i = 0; i < n; i++) {
            const store_model *m = &v[i];
            char size[32], params[32], age[40], id[13];
            cli_human_bytes(m->size, size, sizeof size);
            human_params(m->n_params, params, sizeof params);
            human_age(m->modified, age, sizeof age);
            snprintf(id, sizeof id, "%.12s",
                     m->n_parts && m->parts[0].sha256[0] ? m->parts[0].sha256 : "-");
            /* names from other tools' directories: escaped */
            cli_put_name(stdout, m->name, strlen(m->name), w);
            printf("  %-12s  %-8s  %-7s  %-6s  ", id, size, m->quant[0] ? m->quant : "-", params);
            cli_put_name(stdout, m->arch[0] ? m->arch : "-", strlen(m->arch[0] ? m->arch : "-"), 8);
            printf("  %-15s  %s\n", age, store_origin_str(m->origin));
        }
    }
    free(v);
    if (!cli_flush_stdout()) ret = 1;
    return ret;
}
