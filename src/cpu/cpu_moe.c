/* The mixture-of-experts FFN of the CPU reference: router logits (a product
 * like any other), softmax over all experts, the top k with the lowest
 * index first among equal logits, the k weights renormalised where the model
 * says so; then, expert by expert in increasing id, the entries routed to it
 * are gathered and run through its gate/up/act/down, and each result is
 * added, weighted, into its entry's sum. An entry's sum therefore takes its
 * experts in increasing id whatever else is in the batch, and every product
 * gives a row the same result whatever batch it is in (cpu_matmul.c): the
 * output is bit-identical for any batching, as for a dense FFN. */
#include <math.h>
#include <stdlib.h>

#include "cpu_internal.h"
#include "err.h"

/* Total order: larger logit first, NaN after every number, then lower id. */
static int cand_cmp(const void *pa, const void *pb) {
    const cpu_moe_cand *a = pa, *b = pb;
    const bool an = isnan(a->logit), bn = isnan(b->logit);
    if (an != bn) return an ? 1 : -1;
    if (!an && a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* exp(l - mx) of a logit against the largest: 0 for NaN, 1 for l == mx */
static double moe_exp(float l, double mx) {
    if (isnan(l)) return 0.0;
    return (double)l == mx ? 1.0 : exp((double)l - mx);
}

void cpu_moe_route(const float *logits, int n_expert, int k, bool norm, cpu_moe_cand *scratch,
                   int32_t *ids, float *w) {
    for (int e = 0; e < n_expert; e++) scratch[e] = (cpu_moe_cand){logits[e], e};
    qsort(scratch, (size_t)n_expert, sizeof *scratch, cand_cmp);
    /* softmax over all experts in double (transformers: float32 of the
     * float64 logits); renormalised, the full sum cancels. A NaN logit
     * counts as -inf (weight 0, with or without renormalisation), and a
     * logit equal to the largest as exp(0), infinities too */
    const double mx = scratch[0].logit;
    double all = 0.0, sel = 0.0;
    for (int e = 0; e < n_expert; e++) all += moe_exp(logits[e], mx);
    for (int r = 0; r < k; r++) sel += moe_exp(scratch[r].logit, mx);
    const double den = norm ? sel : all;
    for (int r = 0; r < k; r++) {
        ids[r] = scratch[r].id;
        w[r] = den > 0.0 ? (float)(moe_exp(scratch[r].logit, mx) / den) : 0.0f;
    }
}

int cpu_moe_ffn(cpu_backend *cb, int il, const float *x, int n, float *out) {
    const model *m = cb->base.model;
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[il];
    const int E = c->n_embd, X = c->n_expert, K = c->n_expert_used, F = c->n_ff_exp;
    int rc = cpu_matmul(cb, &L->router, x, E, n, cb->moe_logits, X, CPU_MM_STORE);
    if (rc) return rc;
    /* routes, then (entry, slot) pairs ordered by expert (counting sort,
     * entries in increasing order within an expert) */
    int32_t *count = cb->moe_count; /* [X + 1]: start of each expert's pairs */
    memset(count, 0, (size_t)(X + 1) * sizeof *count);
    for (int i = 0; i < n; i++) {
        int32_t *ids = cb->moe_ids + (size_t)i * K;
        cpu_moe_route(cb->moe_logits + (size_t)i * X, X, K, c->expert_norm, cb->moe_cand, ids,
                      cb->moe_w + (size_t)i * K);
        for (int r = 0; r < K; r++) count[ids[r] + 1]++;
    }
    for (int e = 0; e < X; e++) count[e + 1] += count[e];
    for (int i = 0; i < n; i++)
        for (int r = 0; r < K; r++) {
            const int32_t e = cb->moe_ids[(size_t)i * K + r];
            cb->moe_order[count[e]++] = i * K + r;
        }
    /* count[e] is now the end of expert e's pairs, the start of e + 1's */
    memset(out, 0, (size_t)n * E * sizeof *out);
    int32_t start = 0;
    for (int e = 0; e < X; e++) {
        const int32_t end = count[e], ng = end - start;
        if (ng == 0) continue;
        for (int j = 0; j < ng; j++) {
            const int i = cb->moe_order[start + j] / K;
            memcpy(cb->moe_x + (size_t)j * E, x + (size_t)i * E, (size_t)E * sizeof *x);
        }
        const model_tensor g = model_expert(&L->gate_exps, e), u = model_expert(&L->up_exps, e),
                           d = model_expert(&L->down_exps, e);
        rc = cpu_matmul_ffn_in(cb, &g, &u, cb->moe_x, ng);
        if (!rc) rc = cpu_matmul(cb, &d, cb->hb, F, ng, cb->moe_y, E, CPU_MM_STORE);
        if (rc) return err_prefix(rc, "expert %d", e);
        for (int j = 0; j < ng; j++) {
            const int32_t pair = cb->moe_order[start + j];
            const float wt = cb->moe_w[pair];
            float *o = out + (size_t)(pair / K) * E;
            const float *y = cb->moe_y + (size_t)j * E;
            for (int t = 0; t < E; t++) o[t] += wt * y[t];
        }
        cb->moe_hits[(size_t)il * X + e] += (uint64_t)ng;
        start = end;
    }
    return M40LLM_OK;
}
