/* CPU backend against the float64 reference logits of every model in
 * tests/fixtures/reference: tier A (FP32 KV cache) and tier B (F16 KV cache)
 * of the fixture README, plus the 16-token exact greedy continuation.
 * Arguments: another fixture folder under tests/fixtures (arch: the
 * transformers-made models of tools/make_arch_fixtures.py) and the number of
 * models it must hold. */
#include <cjson/cJSON.h>
#include <dirent.h>

#include "backend.h"
#include "check.h"
#include "model.h"

#define N_GREEDY 16

typedef struct ref_case {
    char name[128];
    int tokens[256];
    int n_tokens;
    int greedy[N_GREEDY];
    int n_vocab;
} ref_case;

static int int_array(const cJSON *root, const char *key, int *out, int max) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsArray(a)) return -1;
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (n >= max || !cJSON_IsNumber(it)) return -1;
        out[n++] = it->valueint;
    }
    return n;
}

static int load_case(const char *dir, const char *json_name, ref_case *rc) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, json_name);
    char *text = check_read_file(path, NULL);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return -1;
    snprintf(rc->name, sizeof rc->name, "%.*s", (int)(strlen(json_name) - strlen(".tokens.json")),
             json_name);
    rc->n_tokens = int_array(root, "tokens", rc->tokens, 256);
    int ng = int_array(root, "greedy_next_exact", rc->greedy, N_GREEDY);
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(root, "n_vocab");
    rc->n_vocab = cJSON_IsNumber(nv) ? nv->valueint : -1;
    cJSON_Delete(root);
    return rc->n_tokens > 0 && ng == N_GREEDY && rc->n_vocab > 0 ? 0 : -1;
}

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* Runs one case with one KV type; returns max |d| and RMS through out args. */
static void run_case(const char *dir, const ref_case *rc, backend_kv_type kv, double tol_max,
                     double tol_rms) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.gguf", dir, rc->name);
    model *m = NULL;
    int st = model_load(path, &m);
    CHECKF(st == 0, "%s: %s", rc->name, m40llm_last_error());
    if (st) return;
    CHECK(m->cfg.n_vocab == rc->n_vocab);
    const int T = rc->n_tokens, V = rc->n_vocab;
    snprintf(path, sizeof path, "%s/%s.exact.bin", dir, rc->name);
    size_t size = 0;
    float *ref = (float *)check_read_file(path, &size);
    CHECKF(ref && size == (size_t)T * V * sizeof(float), "%s: reference file %s", rc->name, path);
    backend_params p = {
        .n_ctx = 128, .n_seq_max = 1, .n_batch_max = 64, .n_threads = 2, .kv_type = kv};
    backend *b = NULL;
    st = backend_cpu_create(m, &p, &b);
    CHECKF(st == 0, "%s: %s", rc->name, m40llm_last_error());
    float *lg = calloc((size_t)T * V, sizeof(float));
    backend_entry *e = calloc((size_t)T, sizeof *e);
    if (st == 0 && ref && size == (size_t)T * V * sizeof(float) && lg && e) {
        for (int i = 0; i < T; i++) e[i] = (backend_entry){0, i, rc->tokens[i], true};
        st = backend_forward(b, e, T, lg);
        CHECKF(st == 0, "%s: forward: %s", rc->name, m40llm_last_error());
        double mx = 0, ss = 0;
        int argmax_bad = 0;
        for (int r = 0; r < T; r++) {
            const float *g = lg + (size_t)r * V, *x = ref + (size_t)r * V;
            for (int t = 0; t < V; t++) {
                double d = fabs((double)g[t] - x[t]);
                if (d > mx || d != d) mx = d;
                ss += d * d;
            }
            int ra = argmax(x, V);
            float second = -INFINITY;
            for (int t = 0; t < V; t++)
                if (t != ra && x[t] > second) second = x[t];
            if (x[ra] - second > 2e-4f && argmax(g, V) != ra) argmax_bad++;
        }
        double rms = sqrt(ss / ((double)T * V));
        printf("%-18s kv=%s  max|d| = %.3e  RMS = %.3e\n", rc->name,
               kv == BACKEND_KV_F16 ? "f16" : "f32", mx, rms);
        CHECKF(mx <= tol_max, "%s: max |d| %.3e > %.1e", rc->name, mx, tol_max);
        CHECKF(rms <= tol_rms, "%s: RMS %.3e > %.1e", rc->name, rms, tol_rms);
        CHECKF(argmax_bad == 0, "%s: argmax differs at %d positions", rc->name, argmax_bad);

        /* greedy: one token per forward, lowest id on ties */
        int next = argmax(lg + (size_t)(T - 1) * V, V), gen[N_GREEDY];
        for (int s = 0; s < N_GREEDY; s++) {
            gen[s] = next;
            if (s + 1 == N_GREEDY) break;
            backend_entry one = {0, T + s, next, true};
            if ((st = backend_forward(b, &one, 1, lg))) break;
            next = argmax(lg, V);
        }
        CHECKF(st == 0, "%s: greedy: %s", rc->name, m40llm_last_error());
        int same = st == 0 && !memcmp(gen, rc->greedy, sizeof gen);
        CHECKF(same, "%s: greedy continuation differs from greedy_next_exact", rc->name);
        if (!same) {
            for (int s = 0; s < N_GREEDY; s++) fprintf(stderr, " %d/%d", gen[s], rc->greedy[s]);
            fputc('\n', stderr);
        }
    }
    free(e);
    free(lg);
    free(ref);
    backend_destroy(b);
    model_free(m);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "reference";
    const int want = argc > 2 ? atoi(argv[2]) : 14;
    char dir[512];
    check_fixture(sub, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) SKIP("no fixture directory %s", dir);
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t len = strlen(de->d_name), sl = strlen(".tokens.json");
        if (len > sl && !strcmp(de->d_name + len - sl, ".tokens.json"))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    CHECKF(n >= want, "expected %d models in %s, found %d", want, dir, n);
    for (int i = 0; i < n; i++) {
        ref_case rc;
        int ok = load_case(dir, names[i], &rc) == 0;
        CHECKF(ok, "cannot parse %s", names[i]);
        if (ok) {
            run_case(dir, &rc, BACKEND_KV_F32, 1e-4, 2e-5);
            run_case(dir, &rc, BACKEND_KV_F16, 5e-3, 1e-3);
        }
        free(names[i]);
    }
    return check_summary("test_reference");
}
