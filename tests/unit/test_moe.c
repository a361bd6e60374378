/* Mixture-of-experts on the CPU: the routing (top-k with the lowest index
 * first among equal logits, softmax weights renormalised or not, NaN logits
 * still give k distinct experts), the expert views and the active-size
 * counts of the description, and batch invariance on the transformers
 * fixtures of tests/fixtures/arch: 8 sequences prefilled and decoded
 * together give bit-identical logits to each sequence run alone, while
 * their tokens go to different experts. The numerics against transformers
 * are test_arch_reference's. */
#include <math.h>

#include "backend.h"
#include "check.h"
#include "cpu/cpu_internal.h"
#include "model.h"

enum { NSEQ = 8, STEPS = 6, MAX_V = 512 };

static void route(const float *l, int n, int k, bool norm, int32_t *ids, float *w) {
    cpu_moe_cand scratch[64];
    cpu_moe_route(l, n, k, norm, scratch, ids, w);
}

static void test_route(void) {
    int32_t ids[8];
    float w[8];
    /* exact ties: the lowest index first, inside and at the boundary */
    const float tie[6] = {1.0f, 3.0f, 2.0f, 3.0f, 2.0f, 0.0f};
    route(tie, 6, 3, true, ids, w);
    CHECKF(ids[0] == 1 && ids[1] == 3 && ids[2] == 2, "ids %d %d %d", ids[0], ids[1], ids[2]);
    CHECK(w[0] == w[1] && w[0] > w[2]);
    CHECK(fabs((double)w[0] + w[1] + w[2] - 1.0) < 1e-6);
    /* weights: softmax of the selected logits (renormalised) */
    const double e3 = exp(3.0), e2 = exp(2.0);
    CHECK(fabs(w[0] - e3 / (2 * e3 + e2)) < 1e-7 && fabs(w[2] - e2 / (2 * e3 + e2)) < 1e-7);
    /* not renormalised: softmax over all six */
    route(tie, 6, 3, false, ids, w);
    const double all = exp(1.0) + 2 * e3 + 2 * e2 + 1.0;
    CHECK(fabs(w[0] - e3 / all) < 1e-7 && fabs(w[2] - e2 / all) < 1e-7);
    /* all equal: experts 0..k-1 */
    const float flat[5] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    route(flat, 5, 4, true, ids, w);
    CHECK(ids[0] == 0 && ids[1] == 1 && ids[2] == 2 && ids[3] == 3 && w[3] == 0.25f);
    /* a near tie one ulp apart: the larger wins whatever its index */
    const float near[3] = {1.0f, 0.0f, 0x1.000002p+0f};
    route(near, 3, 1, true, ids, w);
    CHECK(ids[0] == 2 && w[0] == 1.0f);
    /* NaN logits: still k distinct experts, numbers first */
    const float bad[4] = {NAN, 1.0f, NAN, -INFINITY};
    route(bad, 4, 3, true, ids, w);
    CHECKF(ids[0] == 1 && ids[1] == 3 && ids[2] == 0, "ids %d %d %d", ids[0], ids[1], ids[2]);
    /* ... and they weigh 0 with or without renormalisation: one bad logit
     * does not turn every weight into NaN */
    CHECKF(w[0] == 1.0f && w[1] == 0.0f && w[2] == 0.0f, "w %g %g %g", w[0], w[1], w[2]);
    route(bad, 4, 2, false, ids, w);
    CHECKF(ids[0] == 1 && w[0] == 1.0f && w[1] == 0.0f, "w %g %g", w[0], w[1]);
    const float nan1[3] = {0.0f, NAN, 0.0f};
    route(nan1, 3, 1, false, ids, w);
    CHECKF(ids[0] == 0 && w[0] == 0.5f, "one NaN of three: w %g", w[0]);
    /* every logit NaN: weight 0 (the layer adds nothing); all -inf: equal */
    const float nans[3] = {NAN, NAN, NAN}, ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
    route(nans, 3, 2, true, ids, w);
    CHECK(ids[0] == 0 && ids[1] == 1 && w[0] == 0.0f && w[1] == 0.0f);
    route(ninf, 3, 2, false, ids, w);
    CHECKF(fabs(w[0] - 1.0 / 3) < 1e-7 && w[0] == w[1], "all -inf: w %g %g", w[0], w[1]);
    /* k = n: every expert once, in logit order */
    const float all4[4] = {0.1f, 0.4f, 0.3f, 0.2f};
    route(all4, 4, 4, false, ids, w);
    CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3 && ids[3] == 0);
    CHECK(fabs((double)w[0] + w[1] + w[2] + w[3] - 1.0) < 1e-6);
}

/* The description's expert views and sizes, on a fixture. */
static void test_views(const model *m) {
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[1];
    CHECK(L->gate_exps.ne[0] == c->n_embd && L->gate_exps.ne[1] == c->n_ff_exp &&
          L->gate_exps.ne[2] == c->n_expert);
    CHECK(L->down_exps.ne[0] == c->n_ff_exp && L->down_exps.ne[1] == c->n_embd);
    CHECK(L->gate_exps.expert_bytes * (size_t)c->n_expert == L->gate_exps.nbytes);
    const model_tensor v = model_expert(&L->down_exps, c->n_expert - 1);
    CHECK((const char *)v.data + v.nbytes == (const char *)L->down_exps.data + L->down_exps.nbytes);
    CHECK(v.ne[2] == 1 && v.nbytes == L->down_exps.expert_bytes);
    /* active: every expert tensor counts n_expert_used of its n_expert slices */
    uint64_t exps = 0;
    for (int il = 0; il < c->n_layer; il++) {
        const model_layer *l = &m->layers[il];
        exps += l->gate_exps.nbytes + l->up_exps.nbytes + l->down_exps.nbytes;
    }
    const uint64_t want =
        m->weight_bytes - exps / (uint64_t)c->n_expert * (uint64_t)(c->n_expert - c->n_expert_used);
    CHECKF(model_active_bytes(m) == want, "active bytes %llu, expected %llu",
           (unsigned long long)model_active_bytes(m), (unsigned long long)want);
    uint64_t total = 0, active = 0;
    model_param_counts(m, &total, &active);
    CHECK(active < total && total > 0);
    CHECK(model_features(m) & MODEL_FEAT_MOE);
}

static backend *make(const model *m) {
    backend_params p = {.n_ctx = 64,
                        .n_seq_max = NSEQ,
                        .n_batch_max = 128,
                        .n_threads = 2,
                        .kv_type = BACKEND_KV_F32};
    backend *b = NULL;
    int st = backend_cpu_create(m, &p, &b);
    CHECKF(st == 0, "create: %s", m40llm_last_error());
    return b;
}

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* Sequence s: a prompt of 3 + s tokens from the fixture's own, then STEPS
 * greedy tokens. out[s] gets the logits of the prompt's last token and of
 * every decode step, [1 + STEPS][V]. Alone: one sequence per call. Together:
 * all prompts in one call, then one call per step with all 8 sequences. */
static int run(backend *b, const int *tokens, int V, bool together, float *out, int *experts_hit) {
    const model *m = b->model;
    cpu_backend *cb = (cpu_backend *)b;
    static backend_entry e[128];
    static float lg[NSEQ * MAX_V];
    int next[NSEQ], st;
    for (int s = 0; s < NSEQ; s++) b->ops->seq_clear(b, s);
    /* prompts */
    int n = 0;
    for (int s = 0; s < NSEQ; s++) {
        const int len = 3 + s;
        for (int i = 0; i < len; i++)
            e[n++] = (backend_entry){s, i, tokens[5 * s + i], i == len - 1};
        if (!together || s == NSEQ - 1) {
            if ((st = backend_forward(b, e, n, lg))) return st;
            const int first = together ? 0 : s, rows = together ? NSEQ : 1;
            for (int r = 0; r < rows; r++) {
                memcpy(out + (size_t)(first + r) * (1 + STEPS) * V, lg + (size_t)r * V,
                       (size_t)V * sizeof(float));
                next[first + r] = argmax(lg + (size_t)r * V, V);
            }
            n = 0;
        }
    }
    /* decode */
    for (int t = 0; t < STEPS; t++) {
        const size_t hits = (size_t)m->cfg.n_layer * m->cfg.n_expert;
        memset(cb->moe_hits, 0, hits * sizeof *cb->moe_hits);
        for (int s = 0; s < NSEQ; s++) {
            e[n++] = (backend_entry){s, 3 + s + t, next[s], true};
            if (!together || s == NSEQ - 1) {
                if ((st = backend_forward(b, e, n, lg))) return st;
                const int first = together ? 0 : s;
                for (int r = 0; r < n; r++) {
                    float *o = out + ((size_t)(first + r) * (1 + STEPS) + 1 + t) * V;
                    memcpy(o, lg + (size_t)r * V, (size_t)V * sizeof(float));
                    next[first + r] = argmax(o, V);
                }
                n = 0;
            }
        }
        /* the experts layer 0 used in this step, over all 8 sequences */
        int used = 0;
        for (int x = 0; x < m->cfg.n_expert; x++) used += cb->moe_hits[x] > 0;
        experts_hit[t] = used;
    }
    return 0;
}

static void test_batched(const char *name) {
    char path[512], rel[128];
    snprintf(rel, sizeof rel, "arch/%s.gguf", name);
    check_fixture(rel, path, sizeof path);
    model *m = NULL;
    int st = model_load(path, &m);
    CHECKF(st == 0, "%s: %s", name, m40llm_last_error());
    if (st) return;
    test_views(m);
    const int V = m->cfg.n_vocab;
    CHECK(V <= MAX_V);
    /* 48 token ids spread over the vocabulary */
    int tokens[48];
    for (int i = 0; i < 48; i++) tokens[i] = (i * 37 + 11) % V;
    const size_t per = (size_t)NSEQ * (1 + STEPS) * V;
    float *alone = calloc(per, sizeof(float)), *together = calloc(per, sizeof(float));
    int hit_alone[STEPS] = {0}, hit_together[STEPS] = {0};
    backend *b = make(m);
    if (b && alone && together) {
        st = run(b, tokens, V, false, alone, hit_alone);
        CHECKF(st == 0, "%s alone: %s", name, m40llm_last_error());
        st = st ? st : run(b, tokens, V, true, together, hit_together);
        CHECKF(st == 0, "%s together: %s", name, m40llm_last_error());
        CHECKF(st == 0 && !memcmp(alone, together, per * sizeof(float)),
               "%s: 8 sequences decoded together differ from each alone", name);
        /* different experts: more in one batched step than one token uses */
        for (int t = 0; t < STEPS; t++)
            CHECKF(hit_together[t] > m->cfg.n_expert_used, "%s step %d: %d experts hit", name, t,
                   hit_together[t]);
        int finite = 1;
        for (size_t i = 0; i < per; i++) finite &= isfinite(together[i]) != 0;
        CHECK(finite);
    }
    backend_destroy(b);
    free(alone);
    free(together);
    model_free(m);
}

int main(void) {
    test_route();
    const char *names[] = {"qwen3moe-f32", "qwen3moe-q8_0", "qwen3moe-nonorm-q8_0", "mixtral-f32",
                           "mixtral-q8_0"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) test_batched(names[i]);
    return check_summary("test_moe");
}
