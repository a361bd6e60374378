/* RoPE, Q/K/V biases and q/k norms, KV-cache stores and causal GQA
 * attention (optionally windowed and soft-capped) of the CPU backend. */
#include <math.h>

#include "cpu_internal.h"
#include "model_rope.h"
#include "quant.h"

/* RoPE angles: pair i of each head rotated by
 * theta = pos * freq_scale * base^(-2i/n_rot) [/ rope_freqs[i]], first n_rot
 * dims only, one table per distinct (base, scale, factors) of the layers.
 * Angles in double: at long contexts pos * freq is large and float loses the
 * fractional part. */
void cpu_rope_table(cpu_backend *cb, const backend_entry *e, int n) {
    const model *m = cb->base.model;
    const model_config *c = &m->cfg;
    const int half = c->n_rot / 2;
    for (int set = 0; set < cb->n_rope_sets; set++) {
        int il = 0; /* the first layer of the set holds its parameters */
        while (cb->lv[il].rope_set != set) il++;
        const model_layer *L = &m->layers[il];
        const float *ff = L->rope_factors ? cb->rope_freqs : NULL;
        const bool yarn = c->rope_scaling == MODEL_ROPE_SCALING_YARN;
        const double ms = model_rope_mscale(c); /* YaRN's, LongRoPE's attention factor */
        double lo = 0, hi = 0;
        if (yarn) model_yarn_range(c, L->rope_base, &lo, &hi);
        for (int i = 0; i < n; i++) {
            float *cs = cb->rope + ((size_t)set * cb->base.params.n_batch_max + i) * c->n_rot;
            for (int p = 0; p < half; p++) {
                double theta, mscale = ms;
                if (yarn) {
                    /* extrapolated below dimension pair lo, interpolated above hi */
                    double ex = (double)e[i].pos * pow((double)L->rope_base, -2.0 * p / c->n_rot);
                    double ramp = (p - lo) / (hi - lo > 0.001 ? hi - lo : 0.001);
                    double mix = 1.0 - (ramp < 0 ? 0 : ramp > 1 ? 1 : ramp);
                    theta = ex * L->rope_freq_scale * (1 - mix) + ex * mix;
                } else {
                    theta = (double)e[i].pos * L->rope_freq_scale *
                            pow((double)L->rope_base, -2.0 * p / c->n_rot);
                    if (ff) theta /= (double)ff[p];
                }
                cs[2 * p] = (float)(cos(theta) * mscale);
                cs[2 * p + 1] = (float)(sin(theta) * mscale);
            }
        }
    }
}

/* Pair p is (2p, 2p+1) in llama.cpp's "normal" ordering and (p, p + half)
 * in NeoX ordering; the rotation is the same. */
void cpu_rope(cpu_backend *cb, int n, int il) {
    const model_config *c = &cb->base.model->cfg;
    const int half = c->n_rot / 2, hd = c->head_dim;
    const bool neox = c->rope_kind == MODEL_ROPE_NEOX;
    const int stride = neox ? 1 : 2, other = neox ? half : 1;
    const float *table =
        cb->rope + (size_t)cb->lv[il].rope_set * cb->base.params.n_batch_max * (size_t)c->n_rot;
    for (int i = 0; i < n; i++) {
        const float *cs = table + (size_t)i * c->n_rot;
        float *q = cb->q + (size_t)i * cb->q_dim, *k = cb->k + (size_t)i * cb->kv_dim;
        for (int h = 0; h < c->n_head + c->n_head_kv; h++) {
            float *v = h < c->n_head ? q + (size_t)h * hd : k + (size_t)(h - c->n_head) * hd;
            for (int p = 0; p < half; p++) {
                float *a = v + p * stride, *b = a + other;
                float x0 = *a, x1 = *b, co = cs[2 * p], si = cs[2 * p + 1];
                *a = x0 * co - x1 * si;
                *b = x0 * si + x1 * co;
            }
        }
    }
}

static void add_bias(float *y, const float *b, int n) {
    for (int d = 0; d < n; d++) y[d] += b[d];
}

void cpu_qkv_post(cpu_backend *cb, int n, int il) {
    const model_config *c = &cb->base.model->cfg;
    const cpu_layer_vecs *lv = &cb->lv[il];
    const int hd = c->head_dim;
    for (int i = 0; i < n; i++) {
        float *q = cb->q + (size_t)i * cb->q_dim, *k = cb->k + (size_t)i * cb->kv_dim,
              *v = cb->v + (size_t)i * cb->kv_dim;
        if (lv->bq) {
            add_bias(q, lv->bq, cb->q_dim);
            add_bias(k, lv->bk, cb->kv_dim);
            add_bias(v, lv->bv, cb->kv_dim);
        }
        if (lv->q_norm) {
            for (int h = 0; h < c->n_head; h++)
                cpu_rmsnorm(q + (size_t)h * hd, q + (size_t)h * hd, lv->q_norm, hd, c->rms_eps);
            for (int h = 0; h < c->n_head_kv; h++)
                cpu_rmsnorm(k + (size_t)h * hd, k + (size_t)h * hd, lv->k_norm, hd, c->rms_eps);
        }
    }
}

void cpu_kv_store(cpu_backend *cb, const backend_entry *e, int n, int il) {
    const int kd = cb->kv_dim;
    for (int i = 0; i < n; i++) {
        const cpu_seq *s = &cb->seqs[e[i].seq];
        const int bi = e[i].pos / cb->kv_block;
        const size_t off = (size_t)(e[i].pos % cb->kv_block) * kd;
        const float *k = cb->k + (size_t)i * kd, *v = cb->v + (size_t)i * kd;
        if (cb->base.params.kv_type == BACKEND_KV_F16) {
            uint16_t *kc = (uint16_t *)cpu_kv_rows(cb, s, bi, il, 0) + off;
            uint16_t *vc = (uint16_t *)cpu_kv_rows(cb, s, bi, il, 1) + off;
            for (int d = 0; d < kd; d++) {
                kc[d] = quant_f32_to_f16(k[d]);
                vc[d] = quant_f32_to_f16(v[d]);
            }
        } else {
            memcpy((float *)cpu_kv_rows(cb, s, bi, il, 0) + off, k, (size_t)kd * sizeof(float));
            memcpy((float *)cpu_kv_rows(cb, s, bi, il, 1) + off, v, (size_t)kd * sizeof(float));
        }
    }
}

typedef struct att_job {
    cpu_backend *cb;
    const backend_entry *e;
    int il;
} att_job;

/* One (entry, query head) per item. Keys are walked in position order,
 * block by block: each score and each step of the V sum is the same
 * operation as over one contiguous cache, so the logits do not depend on
 * the block size or on which blocks a sequence holds. */
static void att_worker(void *ctx, int64_t begin, int64_t end, int thread) {
    att_job *j = ctx;
    cpu_backend *cb = j->cb;
    const model_config *c = &cb->base.model->cfg;
    const int hd = c->head_dim, group = c->n_head / c->n_head_kv, kb = cb->kv_block;
    const bool f16 = cb->base.params.kv_type == BACKEND_KV_F16;
    const float scale = c->attn_scale, cap = c->attn_softcap;
    const int window = cb->base.model->layers[j->il].n_swa;
    const size_t kd = (size_t)cb->kv_dim;
    float *sc = cb->scores + (size_t)thread * cb->base.params.n_ctx;
    float *kr = cb->kvrow + (size_t)thread * 2 * hd, *vr = kr + hd;
    for (int64_t it = begin; it < end; it++) {
        int i = (int)(it / c->n_head), h = (int)(it % c->n_head), kvh = h / group;
        const backend_entry *e = &j->e[i];
        const cpu_seq *s = &cb->seqs[e->seq];
        const float *q = cb->q + (size_t)i * cb->q_dim + (size_t)h * hd;
        const size_t head = (size_t)kvh * hd;
        const int n_keys = e->pos + 1;
        /* keys t_lo..pos: all of them, or the window's on a sliding layer */
        const int t_lo = window && n_keys > window ? n_keys - window : 0;
        for (int t0 = t_lo - t_lo % kb; t0 < n_keys; t0 += kb) {
            const int lo = t0 > t_lo ? t0 : t_lo, bi = t0 / kb;
            const int nt = n_keys - t0 < kb ? n_keys - t0 : kb, skip = lo - t0;
            if (f16) {
                const uint16_t *k16 = (const uint16_t *)cpu_kv_rows(cb, s, bi, j->il, 0) + head;
                for (int t = skip; t < nt; t++) {
                    for (int d = 0; d < hd; d++) kr[d] = cpu_f16_to_f32(k16[t * kd + d]);
                    cpu_attn_scores(q, kr, 0, 1, hd, scale, sc + t0 + t);
                }
            } else {
                const float *k32 = (const float *)cpu_kv_rows(cb, s, bi, j->il, 0) + head;
                cpu_attn_scores(q, k32 + (size_t)skip * kd, kd, nt - skip, hd, scale, sc + lo);
            }
        }
        if (cap > 0.0f)
            for (int t = t_lo; t < n_keys; t++) sc[t] = cap * tanhf(sc[t] / cap);
        float mx = -INFINITY;
        for (int t = t_lo; t < n_keys; t++)
            if (sc[t] > mx) mx = sc[t];
        float sum = 0.0f;
        for (int t = t_lo; t < n_keys; t++) {
            sc[t] = expf(sc[t] - mx);
            sum += sc[t];
        }
        float inv = 1.0f / sum;
        for (int t = t_lo; t < n_keys; t++) sc[t] *= inv;
        float *out = cb->att + (size_t)i * cb->q_dim + (size_t)h * hd;
        for (int d = 0; d < hd; d++) out[d] = 0.0f;
        for (int t0 = t_lo - t_lo % kb; t0 < n_keys; t0 += kb) {
            const int lo = t0 > t_lo ? t0 : t_lo, bi = t0 / kb;
            const int nt = n_keys - t0 < kb ? n_keys - t0 : kb, skip = lo - t0;
            if (f16) {
                const uint16_t *v16 = (const uint16_t *)cpu_kv_rows(cb, s, bi, j->il, 1) + head;
                for (int t = skip; t < nt; t++) {
                    for (int d = 0; d < hd; d++) vr[d] = cpu_f16_to_f32(v16[t * kd + d]);
                    cpu_attn_accum(out, vr, 0, sc + t0 + t, 1, hd);
                }
            } else {
                const float *v32 = (const float *)cpu_kv_rows(cb, s, bi, j->il, 1) + head;
                cpu_attn_accum(out, v32 + (size_t)skip * kd, kd, sc + lo, nt - skip, hd);
            }
        }
    }
}

void cpu_attention(cpu_backend *cb, const backend_entry *e, int n, int il) {
    att_job j = {cb, e, il};
    threadpool_for_dynamic(cb->pool, (int64_t)n * cb->base.model->cfg.n_head, 1, 4, att_worker, &j);
}
