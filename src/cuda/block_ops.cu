/* The transformer block's steps around the matrix products, for the
 * variants of the model description (model.h): the QKV post-processing
 * after a QKV product (bias, per-head q/k RMSNorm, NeoX or adjacent-pair
 * RoPE, KV store), the residual add of an output with a bias or a
 * post-norm, the embedding scale and the final logit soft-capping. The
 * CPU backend's forward_run is the reference for each. */
#include "rope_kv.cuh"

/* ---- plain rope + KV store (no bias, no norms, adjacent pairs): one
 * thread per (entry, pair) ---- */
__global__ void k_rope_store(const float *qkv, int64_t ld, int pairs, qkv_out o) {
    int b = blockIdx.y;
    for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < pairs; p += gridDim.x * blockDim.x) {
        int64_t gr = 2 * (int64_t)p;
        qkv_epilogue(o, NULL, gr, b, qkv[b * ld + gr], qkv[b * ld + gr + 1]);
    }
}

#define QP_THREADS 128
#define QP_MAXHD   256

/* ---- the general form: block (head of [q | k | v], entry) ----
 * v = row + bias; q/k heads: v = rmsnorm(v) * gain, then pair i turns
 * ((2i, 2i+1), or (i, i + n_rot/2) in NeoX order); q to o.q, k/v into
 * the cache. */
__global__ void __launch_bounds__(QP_THREADS) k_qkv_post(const float *qkv, int64_t ld, qkv_out o) {
    __shared__ float v[QP_MAXHD];
    __shared__ float red[32];
    const rope_cfg &rc = o.rope;
    const int hd = rc.hd, h = blockIdx.x, b = blockIdx.y;
    const int region = h < rc.n_head ? 0 : h < rc.n_head + rc.n_kv ? 1 : 2; /* q, k, v */
    const int head = region == 0 ? h : region == 1 ? h - rc.n_head : h - rc.n_head - rc.n_kv;
    const int64_t r0 = (int64_t)h * hd; /* the head's first row of [q | k | v] */
    float ss = 0.0f;
    for (int d = threadIdx.x; d < hd; d += QP_THREADS) {
        float x = qkv[b * ld + r0 + d];
        if (o.bias) x += o.bias[r0 + d];
        v[d] = x;
        ss += x * x;
    }
    const float *gain = region == 0 ? o.q_norm : region == 1 ? o.k_norm : NULL;
    if (gain) { /* (block-uniform branch: dev_block_sum syncs) */
        ss = dev_block_sum(ss, red);
        const float sc = 1.0f / sqrtf(ss / (float)hd + o.eps);
        for (int d = threadIdx.x; d < hd; d += QP_THREADS) v[d] = v[d] * sc * gain[d];
    }
    __syncthreads();
    if (region < 2) {
        const int half = rc.n_rot / 2, pos = o.pos[b];
        for (int i = threadIdx.x; i < half; i += QP_THREADS) {
            const int a = rc.neox ? i : 2 * i, c = rc.neox ? i + half : 2 * i + 1;
            float sn, cs;
            rope_sincos(rc, pos, i, &sn, &cs);
            const float x0 = v[a], x1 = v[c];
            v[a] = x0 * cs - x1 * sn;
            v[c] = x0 * sn + x1 * cs;
        }
        __syncthreads();
    }
    if (region == 0) {
        for (int d = threadIdx.x; d < hd; d += QP_THREADS) o.q[b * o.ldq + r0 + d] = v[d];
        return;
    }
    const kv_view &kv = o.kv;
    const int64_t base = qkv_slot_base(o, b, o.pos[b]) + ((int64_t)head << kv.page_shift) * hd;
    void *dst = region == 1 ? kv.k : kv.v;
    for (int d = threadIdx.x; d < hd; d += QP_THREADS) {
        if (kv.f16)
            ((uint16_t *)dst)[base + d] = dev_to_f16(v[d]);
        else
            ((float *)dst)[base + d] = v[d];
    }
}

extern "C" int launch_rope_store(const float *qkv, int64_t ld, int n, const qkv_out *o,
                                 cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (!qkv || !o || (o->rope.n_head > 0 && !o->q))
        return err_set(M40LLM_ERR_INVALID_ARG, "rope_store: no input or output");
    const rope_cfg &rc = o->rope;
    if (n > 65535 || rc.hd <= 0 || rc.hd % 2 || rc.n_rot > rc.hd || rc.n_rot < 0 || rc.n_rot % 2)
        return err_set(M40LLM_ERR_INVALID_ARG, "rope_store: %d entries, head dim %d, rope dims %d",
                       n, rc.hd, rc.n_rot);
    if ((o->q_norm == NULL) != (o->k_norm == NULL))
        return err_set(M40LLM_ERR_INVALID_ARG, "rope_store: a q norm needs a k norm");
    if (o->bias || o->q_norm || rc.neox) {
        if (rc.hd > QP_MAXHD) /* (the plain kernel below has no such limit) */
            return err_set(M40LLM_ERR_UNSUPPORTED, "rope_store: head dim %d > %d", rc.hd, QP_MAXHD);
        dim3 grid((unsigned)(rc.n_head + 2 * rc.n_kv), (unsigned)n);
        k_qkv_post<<<grid, QP_THREADS, 0, st>>>(qkv, ld, *o);
        CUDA_LAUNCHED("k_qkv_post");
        return M40LLM_OK;
    }
    int pairs = (rc.n_head + 2 * rc.n_kv) * rc.hd / 2;
    dim3 grid((unsigned)((pairs + 127) / 128), (unsigned)n);
    k_rope_store<<<grid, 128, 0, st>>>(qkv, ld, pairs, *o);
    CUDA_LAUNCHED("k_rope_store");
    return M40LLM_OK;
}

/* ---- x += post(y + bias): one block per row ---- */
__global__ void k_residual(float *x, int64_t ldx, float *y, int64_t ldy, const float *bias,
                           const float *post, float eps, int dim) {
    __shared__ float red[32];
    float *xr = x + (int64_t)blockIdx.x * ldx, *yr = y + (int64_t)blockIdx.x * ldy;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float t = yr[i] + (bias ? bias[i] : 0.0f);
        yr[i] = t;
        ss += t * t;
    }
    float sc = 1.0f;
    if (post) {
        ss = dev_block_sum(ss, red);
        sc = 1.0f / sqrtf(ss / (float)dim + eps);
    }
    for (int i = threadIdx.x; i < dim; i += blockDim.x) /* each thread reads what it wrote */
        xr[i] += post ? yr[i] * sc * post[i] : yr[i];
}

extern "C" int launch_residual(float *x, int64_t ldx, float *y, int64_t ldy, const float *bias,
                               const float *post, float eps, int n, int dim, cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (!x || !y || dim <= 0 || ldx < dim || ldy < dim)
        return err_set(M40LLM_ERR_INVALID_ARG, "residual: bad arguments (dim %d)", dim);
    k_residual<<<n, 256, 0, st>>>(x, ldx, y, ldy, bias, post, eps, dim);
    CUDA_LAUNCHED("k_residual");
    return M40LLM_OK;
}

/* ---- x = s * x, x = cap * tanh(x / cap): grid (columns, rows) ---- */
__global__ void k_scale_cap(float *x, int64_t ldx, int dim, float s, float cap) {
    float *r = x + (int64_t)blockIdx.y * ldx;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        r[i] = cap > 0.0f ? cap * tanhf(r[i] / cap) : r[i] * s;
}

static int scale_cap(float *x, int64_t ldx, int n, int dim, float s, float cap, cudaStream_t st) {
    if (n <= 0) return M40LLM_OK;
    if (n > 65535 || !x || dim <= 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "scale: %d rows of %d", n, dim);
    int bx = (dim + 255) / 256;
    dim3 grid((unsigned)(bx < 1024 ? bx : 1024), (unsigned)n);
    k_scale_cap<<<grid, 256, 0, st>>>(x, ldx, dim, s, cap);
    CUDA_LAUNCHED("k_scale_cap");
    return M40LLM_OK;
}

extern "C" int launch_scale(float *x, int64_t ldx, int n, int dim, float s, cudaStream_t st) {
    return scale_cap(x, ldx, n, dim, s, 0.0f, st);
}

extern "C" int launch_softcap(float *x, int64_t ldx, int n, int dim, float cap, cudaStream_t st) {
    if (!(cap > 0.0f)) return err_set(M40LLM_ERR_INVALID_ARG, "softcap: cap %g", (double)cap);
    return scale_cap(x, ldx, n, dim, 1.0f, cap, st);
}
