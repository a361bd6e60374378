/* Rotary embedding and the store of k/v into the paged KV cache: the
 * epilogue of the QKV projection (adjacent pairs, llama "normal" mode),
 * shared by the decode GEMV and the prefill rope kernel, and the angle
 * every rope kernel uses (linear scaling, frequency factors, YaRN). */
#ifndef M40_ROPE_KV_CUH
#define M40_ROPE_KV_CUH

#include "cuda_internal.h"
#include "dev_common.cuh"

/* An entry's position and the cache offset of its row for KV head 0
 * (page table looked up): what the epilogue loads before it can store.
 * The decode GEMV loads it while its first weights travel, so no warp
 * waits on the two dependent loads at its end. */
struct qkv_slot {
    int pos;
    int64_t base; /* element offset of (page, head 0, pos % PAGE, d 0) */
};

/* the cache offset of an entry's row for KV head 0 at position pos */
static __device__ __forceinline__ int64_t qkv_slot_base(const qkv_out &o, int b, int pos) {
    const kv_view &kv = o.kv;
    const int sh = kv.page_shift;
    int page = kv.page_table[(int64_t)o.seq[b] * kv.pages_per_seq + (pos >> sh)];
    return (((int64_t)page * kv.n_kv << sh) + (pos & ((1 << sh) - 1))) * o.rope.hd;
}

static __device__ __forceinline__ qkv_slot qkv_slot_load(const qkv_out &o, int b) {
    qkv_slot s;
    s.pos = o.pos[b];
    s.base = qkv_slot_base(o, b, s.pos);
    return s;
}

/* sin and cos of pair i's angle at position pos (rope_cfg). The CPU
 * backend computes the angle in double (cpu_rope_table): in float it
 * drifts with the position (~8e-3 rad for pair 0 near 1e5 positions), as
 * llama.cpp's does. */
static __device__ __forceinline__ void rope_sincos(const rope_cfg &rc, int pos, int i, float *sn,
                                                   float *cs) {
    const float f = powf(rc.base, -(float)(2 * i) / (float)rc.n_rot);
    float theta;
    if (rc.yarn) {
        /* extrapolated below pair yarn_lo, interpolated above yarn_hi */
        float span = rc.yarn_hi - rc.yarn_lo;
        float ramp = ((float)i - rc.yarn_lo) / (span > 0.001f ? span : 0.001f);
        float mix = 1.0f - fminf(fmaxf(ramp, 0.0f), 1.0f);
        float ex = (float)pos * f;
        theta = ex * rc.scale * (1.0f - mix) + ex * mix;
    } else {
        theta = (float)pos * rc.scale * f;
        if (rc.factors) theta /= rc.factors[i];
    }
    sincosf(theta, sn, cs);
    if (rc.mscale > 0.0f && rc.mscale != 1.0f) {
        *sn *= rc.mscale;
        *cs *= rc.mscale;
    }
}

/* Row gr of [q | k | v] (gr even) and gr+1 of entry b hold v0, v1; pos is
 * the entry's position and base() its slot's base (qkv_slot_base), asked
 * for only by k and v rows. */
template <class Base>
static __device__ __forceinline__ void qkv_epilogue_core(const qkv_out &o, int pos, Base base,
                                                         int64_t gr, int b, float v0, float v1) {
    const rope_cfg &rc = o.rope;
    int hd = rc.hd;
    int64_t nq = (int64_t)rc.n_head * hd, nk = (int64_t)rc.n_kv * hd;
    int region = gr < nq ? 0 : gr < nq + nk ? 1 : 2; /* q, k, v */
    int64_t rr = gr - (region == 0 ? 0 : region == 1 ? nq : nq + nk);
    int head = (int)(rr / hd), d = (int)(rr % hd);
    if (region < 2 && d < rc.n_rot) {
        /* adjacent pair (d, d+1) */
        float sn, cs;
        rope_sincos(rc, pos, d / 2, &sn, &cs);
        float a = v0 * cs - v1 * sn, c = v0 * sn + v1 * cs;
        v0 = a;
        v1 = c;
    }
    if (region == 0) {
        o.q[b * o.ldq + rr] = v0;
        o.q[b * o.ldq + rr + 1] = v1;
        return;
    }
    const kv_view &kv = o.kv;
    int64_t off = base() + ((int64_t)head << kv.page_shift) * hd + d;
    void *dst = region == 1 ? kv.k : kv.v;
    if (kv.f16) {
        ((uint16_t *)dst)[off] = dev_to_f16(v0);
        ((uint16_t *)dst)[off + 1] = dev_to_f16(v1);
    } else {
        ((float *)dst)[off] = v0;
        ((float *)dst)[off + 1] = v1;
    }
}

/* the same with the slot already loaded (sl: qkv_slot_load), or (sl NULL)
 * looked up here */
static __device__ __forceinline__ void qkv_epilogue(const qkv_out &o, const qkv_slot *sl,
                                                    int64_t gr, int b, float v0, float v1) {
    if (sl) {
        qkv_epilogue_core(
            o, sl->pos, [&] { return sl->base; }, gr, b, v0, v1);
    } else {
        const int pos = o.pos[b];
        qkv_epilogue_core(
            o, pos, [&] { return qkv_slot_base(o, b, pos); }, gr, b, v0, v1);
    }
}

#endif
