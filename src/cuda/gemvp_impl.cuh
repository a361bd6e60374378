/* The persistent single-vector decode GEMV (included by gemv_impl.cuh), for
 * the weight types whose dot splits into parts (wraw<T>::parts).
 *
 * The grid holds no more warps than the GPU runs at once, and each warp
 * walks row groups (NR row streams, as in k_gemv) spaced by the number of
 * warps in the grid: a block stages its slice of x (times the norm gain)
 * into shared memory once, whatever the number of rows, and no warp waits
 * at a barrier after that. A warp's work is one flat sequence of steps (a
 * step: the NR rows' next SPL x 32 sub-blocks), and the weights of step
 * i+2 are loaded while step i is computed, chunk by chunk into the
 * registers step i frees, across row groups too, so every lane keeps more
 * than a step of weight loads in flight while it computes.
 *
 * Long inputs of a residual add are cut into K slices (parts added
 * atomically), also to give a small matrix enough warps. Other products
 * whose x is longer than GP_MAXK stay on the block-staged kernel. */
#ifndef M40_GEMVP_IMPL_CUH
#define M40_GEMVP_IMPL_CUH

/* warps per block of the plain products (gp_norm_warps below for the others):
 * 8 stage x half as often as 4 (x is read from L2 once per block),
 * measured 3-13% faster per product on an H200 (7B Q8_0 tg128 348 vs 334
 * tok/s); -DGP_WARPS=n overrides, for measurements */
#ifndef GP_WARPS
#define GP_WARPS 8
#endif
#define GP_MAXK  8192 /* widest x a block stages: 36 KB of shared memory */
#define GP_SLICE 4096 /* widest K slice of a split residual add */

/* Row streams per warp (NR) and 32-sub-block chunks per lane and step
 * (SPL): two rows, each read SPL x 512 contiguous bytes per step (two
 * chunks for the 18/20-byte sub-blocks: 2 rows x 2 chunks measured 2-5%
 * faster than 4 rows x 1 on an H200); two buffers of that must fit in ~100
 * registers without spills on sm_52. A third buffer (3 steps ahead),
 * asking L2 for the next row group ahead or L1 for the next step measured
 * no faster or slower; so did 4 blocks per SM with two chunks per step
 * (64 registers, spills; one chunk: below), and 4-warp blocks at 28 warps
 * per SM (72 registers; 7B tg128 Q4_0 426 vs 464 tok/s). The same walk
 * with the dot replaced by a fold of the loaded bytes (-DGP_NOCOMPUTE, a
 * measurement) streams Q4_0 gate+up at 3500 GB/s against 2660 with it,
 * Q8_0 3890 against 3560 (H200, graph-replayed): DRAM has room left, the
 * Q4_0 dot's issue cost (2.7 instructions a weight) did not hide in the
 * loads' latency. Two cuts of the instruction stream followed, the
 * whole-step walk (FULL, below) and the masked dot (nib_dn_part):
 * H200, graph-replayed, 7B Q4_0 gate+up 25.06 us before them (and the
 * 24-warp blocks), 21.99 with the walk, 21.13 with both; tg128 461/462,
 * 499/498, 512/507 tok/s. One chunk per step for the QKV
 * product (fewer warps, a group per warp or two) measured 7% faster with a
 * block's warps on adjacent groups (1378 vs 1284 GB/s), no faster with the
 * interleaved walk (1288). */
/* Plain products (store, residual add) of the nibble types: one chunk per
 * step and 32 warps per SM (64 registers, no spills on sm_52) measured
 * faster than two chunks at 24 warps (H200, graph-replayed, 7B: wo 6.26
 * vs 6.81 us, 4096-wide 6144-row store 8.82 vs 9.29, down 14.28 vs 14.45);
 * for gate+up, slower (28.3 vs 24.7 us): its warps walk several groups
 * and two chunks per step keep more bytes in flight per warp. */
/* GP_NR, GP_Q4_SPL (gate+up), GP_Q4_PLAIN_SPL, GP_QKV_SPL, GP_WARPS_SM,
 * GP_Q4_PLAIN_WARPS and GP_QKV_WARPS (below) can be set with -D, for
 * measurements (so can GP_NOCOMPUTE, which drops the dot, and
 * GP_NO_NIBDN, which keeps the types' own dot); the defaults are the
 * measured best */
#ifndef GP_NR
#define GP_NR 2
#endif
#ifndef GP_Q4_SPL
#define GP_Q4_SPL 2
#endif
#ifndef GP_Q4_PLAIN_SPL
#define GP_Q4_PLAIN_SPL 1
#endif
#ifndef GP_QKV_SPL
#define GP_QKV_SPL 1
#endif
template <int T, int MODE> struct gp_spl {
    /* (Q4_K: a chunk per step and 24 warps per SM, as for Q8_0: its d and
     * dmin take a register more per chunk, which spills on sm_52 at Q4_0's
     * two chunks or 32 warps) */
    static const bool q4 = T == QT_Q4_0 || T == QT_Q4_1;
    static const int n = !q4                   ? 1
                         : MODE == GEMV_QKV    ? GP_QKV_SPL
                         : MODE == GEMV_SWIGLU ? GP_Q4_SPL
                                               : GP_Q4_PLAIN_SPL;
};

/* blocks per SM the registers are capped for, from a target of 28 warps
 * per SM (72 registers), 24 under the rope epilogue (80 registers, no
 * spills on sm_52; it had 16: H200 7B tg128 Q4_0 441 -> 455 tok/s, Q8_0
 * 340 -> 349), 32 for the nibble types' plain products (one chunk per
 * step) and 16 for the half types (2 x 2 x 64 raw bytes), which need more
 * registers to stay free of spills on sm_52; whole blocks of W warps
 * (n = warps / W, at least 1): 24, 24, 32, 16 warps with 8-warp blocks,
 * one 24-warp block under GP_NORM_WARPS */
#ifndef GP_WARPS_SM
#define GP_WARPS_SM 28
#endif
#ifndef GP_Q4_PLAIN_WARPS
#define GP_Q4_PLAIN_WARPS 32
#endif
#ifndef GP_QKV_WARPS
#define GP_QKV_WARPS 24
#endif
/* Warps per block (W) of the products with a fused RMSNorm (QKV,
 * gate+up) of the 32-element types over x of GP_WIDE_K values or more: one
 * 24-warp block per SM, so x and the norm gain are read from L2 and staged
 * once per SM rather than three times (H200, graph-replayed, 7B Q4_0:
 * gate+up 25.06 -> 23.76 us; tg128 459/462 -> 474/473 tok/s). Narrower x
 * keeps 8-warp blocks (SmolLM2 shape, x of 576: tg128 1430 -> 1338 with
 * 24), as do the plain products (24-warp blocks: wo 6.52 -> 7.15 us, down
 * 13.29 -> 15.10, at 24 warps per SM instead of 32) and the half types
 * (more registers). GP_NORM_WARPS overrides, for measurements. */
#ifndef GP_NORM_WARPS
#define GP_NORM_WARPS 24
#endif
#define GP_WIDE_K 4096
template <int T> struct gp_norm_warps {
    static const int n = T == QT_F16 || T == QT_BF16 ? GP_WARPS : GP_NORM_WARPS;
};

template <int T, int MODE, int W> struct gp_min_blocks {
    static const bool plain = MODE != GEMV_QKV && MODE != GEMV_SWIGLU;
    static const int warps = T == QT_F16 || T == QT_BF16 ? 16
                             : MODE == GEMV_QKV          ? GP_QKV_WARPS
                             : plain && gp_spl<T, MODE>::q4 && gp_spl<T, MODE>::n == 1
                                 ? GP_Q4_PLAIN_WARPS
                                 : GP_WARPS_SM;
    static const int n = warps / W > 0 ? warps / W : 1;
};

/* shared bytes for a slice of n x values: 32 values + their sum + 3 pad
 * per sub-block (36 floats: the lanes' float4 reads hit distinct banks) */
static __host__ __device__ __forceinline__ size_t gp_smem(int n) {
    return (size_t)(n >> 5) * 36 * sizeof(float);
}

/* Stages x[0, n) (times g) with the sub-block sums (gv_stage); returns the
 * RMSNorm scale 1/rms(x) over K values when g is given (then n == K), else
 * 1. Ends with a barrier. */
template <int NT, int DNX>
static __device__ float gp_stage_x(float *xs, float *red, const float *x, const float *g, int n,
                                   int K, float eps) {
    float ssq = gv_stage<NT, 4, DNX>(xs, x, g, n, true, true);
    float sc = 1.0f;
    if (g) sc = 1.0f / sqrtf(dev_block_sum(ssq, red) / (float)K + eps);
    __syncthreads();
    return sc;
}

/* a sub-block's dot parts: the types' own, or (DN) the masked ones (nib_dn_part) */
template <bool DN> struct gp_dot {
    template <class R>
    static __device__ __forceinline__ void part(const R &b, int i, const float4 &xa,
                                                const float4 &xb, float &a0, float &a1) {
        b.part(i, xa, xb, a0, a1);
    }
    template <class R>
    static __device__ __forceinline__ float fin(const R &b, float a0, float a1, float sx) {
        return b.fin(a0, a1, sx);
    }
};
template <> struct gp_dot<true> {
    template <class R>
    static __device__ __forceinline__ void part(const R &b, int i, const float4 &xa,
                                                const float4 &xb, float &a0, float &a1) {
        b.part_dn(i, xa, xb, a0, a1);
    }
    template <class R>
    static __device__ __forceinline__ float fin(const R &b, float a0, float a1, float sx) {
        return b.fin_dn(a0, a1, sx);
    }
};

/* h of the sub-block at byte cs of s, as a load at offset 0 wants it: Q4_K,
 * its block's word of d and dmin (s: 2 bytes a sub-block, 8 sub-blocks a
 * word); Q6_K, its 8 bytes (s: 4 bytes a sub-block) */
template <int T>
static __device__ __forceinline__ const uint8_t *gp_h(const gpu_matrix &m, uint32_t cs) {
    return T == QT_Q4_K ? m.h + ((cs >> 4) << 2) : T == QT_Q6_K ? m.h + 2 * cs : NULL;
}

/* the walk's raw weights: wraw<T>, but Q6_K's own (wraw_q6), whose finish
 * also takes the low half's x sum (half) */
template <int T> struct gp_raw {
    typedef wraw<T> type;
    static const bool half = false;
};
#ifndef GP_NO_NIBDN /* (without the masked dots, Q6_K stays on the other kernels) */
template <> struct gp_raw<QT_Q6_K> {
    typedef wraw_q6 type;
    static const bool half = true;
};
#endif
template <bool DN, bool HALF> struct gp_fin {
    template <class R>
    static __device__ __forceinline__ float f(const R &b, float a0, float a1, float sx, float) {
        return gp_dot<DN>::fin(b, a0, a1, sx);
    }
};
template <> struct gp_fin<true, true> {
    template <class R>
    static __device__ __forceinline__ float f(const R &b, float a0, float a1, float sx, float sx0) {
        return b.fin_dn2(a0, a1, sx, sx0);
    }
};

/* QKV: the entry's cache slot, looked up by one thread of each block while
 * x is staged (its barrier publishes it) */
static __shared__ qkv_slot gp_qslot;

/* One warp's walk over its row groups: two buffers of raw weights; the
 * load cursor (gl, stl) runs two steps ahead of the compute cursor (gc,
 * st). step<P> computes buffer P and refills it as it goes.
 *
 * FULL: every step of the slice is whole (its sub-blocks a multiple of 32
 * SPL), so no lane needs a clamp or a guard; the lane keeps a pointer per
 * row stream and loads at constant offsets from it, and the next group's
 * pointers are the last ones moved by a constant. Without it, a load
 * takes ~30 instructions of address math per chunk and row pair (32-bit
 * offsets added to bases reloaded from the constant bank, the clamp). */
template <int T, int MODE, int NR, int SPL, bool FULL> struct gp_walk {
    /* the masked dot of the nibble types and Q8_0 (nib_dn_part,
     * nib_dn_byte_fma), x staged for it (nib_dn_xscale) */
#ifndef GP_NO_NIBDN
    static const int DN = nib_dn_kind<T>::kind;
#else
    static const int DN = 0;
#endif
    static const int RPW = MODE == GEMV_SWIGLU ? NR / 2 : NR; /* output rows per group */
    const gpu_matrix &w, &w2;
    const float *xs;      /* the block's staged slice */
    int nsb, nst;         /* sub-blocks in the slice, steps per group (32 SPL sub-blocks each) */
    int sbase;            /* the slice's first sub-block */
    int ngroups, gstride; /* (rows < 2^31: the launcher keeps a matrix under 4 GiB) */
    int lane;
    typedef typename gp_raw<T>::type raw;
    raw buf[2][NR][SPL];
    /* the lane's next loads in group gl's rows: byte offsets in q and s
     * (< 4 GiB), moved on by a step's bytes after each step */
    uint32_t cq[NR], cs[NR];
    const uint8_t *pq[NR]; /* FULL: the lane's next q loads as pointers (cq unused) */
    int st, stl;           /* step being computed / loaded, within its group */
    int lim;               /* the last chunk offset in sub-blocks the lane may load in step stl */
    int gc, gl;            /* group being computed / loaded */
    float acc[NR];

    __device__ __forceinline__ gp_walk(const gpu_matrix &w_, const gpu_matrix &w2_)
        : w(w_), w2(w2_) {}

    /* the offsets of group g's rows at the slice's first step */
    __device__ __forceinline__ void rows_of(int g) {
        const uint32_t sb0 = (uint32_t)sbase + (uint32_t)lane;
#pragma unroll
        for (int r = 0; r < NR; r++) {
            const gpu_matrix &m = gv_mat<MODE, NR>(w, w2, r);
            const int64_t row = gv_row_in<MODE, NR>(w, (int64_t)g * RPW, r);
            cq[r] = (uint32_t)(row * m.q_row) + sb0 * (uint32_t)wbytes<T>::q;
            cs[r] = (uint32_t)(row * m.nsb * wbytes<T>::s) + sb0 * (uint32_t)wbytes<T>::s;
            if (FULL) pq[r] = m.q + cq[r];
        }
    }

    /* loads chunk j of row r of the load cursor's step (stl of group gl)
     * into buffer B (in a last, partial step, lanes past the slice re-read
     * its last sub-block; their sums are not used); once the cursor is
     * past the last group, the last step again (no guard on the loads:
     * the matrix bases need not be reloaded per thread) */
    template <int B> __device__ __forceinline__ void load_one(int r, int j) {
        const uint32_t Q = wbytes<T>::q, S = wbytes<T>::s;
        if (FULL) {
            wrow p;
            p.q = pq[r] + j * 32 * Q;
            p.s = gv_mat<MODE, NR>(w, w2, r).s + (cs[r] + j * 32 * S);
            p.h = gp_h<T>(gv_mat<MODE, NR>(w, w2, r), cs[r] + j * 32 * S);
            buf[B][r][j].load(p, 0);
            return;
        }
        const gpu_matrix &m = gv_mat<MODE, NR>(w, w2, r);
        int d = j * 32;
        if (lim < (SPL - 1) * 32) d = min(d, lim); /* the partial last step */
        wrow p;
        p.q = m.q + (cq[r] + (uint32_t)(d * (int)Q));
        p.s = m.s + (cs[r] + (uint32_t)(d * (int)S));
        p.h = gp_h<T>(m, cs[r] + (uint32_t)(d * (int)S));
        buf[B][r][j].load(p, 0);
    }

    /* moves the load cursor on by a step */
    __device__ __forceinline__ void advance() {
        const uint32_t Q = wbytes<T>::q, S = wbytes<T>::s;
        if (gl >= ngroups) return; /* past the end: the last step's loads again (L1 hits) */
        if (++stl == nst) {
            gl += gstride;
            if (gl >= ngroups) return; /* cursor and lim stay on the last step */
            stl = 0;
            if (FULL && gl < ngroups - 1) {
                /* the rows gstride RPW on, back at the first step (the
                 * last group may clamp its rows: rows_of) */
                const int64_t rows = (int64_t)gstride * RPW, back = (int64_t)(nst - 1) * SPL * 32;
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    pq[r] += rows * (int64_t)w.q_row - back * Q;
                    cs[r] += (uint32_t)((rows * w.nsb - back) * S);
                }
            } else {
                rows_of(gl);
            }
        } else {
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (FULL)
                    pq[r] += SPL * 32 * Q;
                else
                    cq[r] += SPL * 32 * Q;
                cs[r] += SPL * 32 * S;
            }
        }
        if (!FULL) lim = nsb - stl * SPL * 32 - 1 - lane; /* (FULL: no clamp) */
    }

    /* a whole step into buffer B */
    template <int B> __device__ __forceinline__ void load_step() {
#pragma unroll
        for (int j = 0; j < SPL; j++)
#pragma unroll
            for (int r = 0; r < NR; r++) load_one<B>(r, j);
        advance();
    }

    /* computes buffer P (step st of group gc) and refills it a chunk at a
     * time with the step two ahead: the registers a chunk frees travel
     * again at once, so more than one step of weights is in flight while
     * the warp computes (H200, graph-replayed, 7B: Q8_0 gate+up 35.1 ->
     * 33.4 us, down 20.1 -> 18.4, Q4_0 down 14.3 -> 13.2; a row's chunk at
     * a time, x read once per row, was slower: Q4_0 gate+up 32.1 us).
     * false: the walk is over */
    template <int P>
    __device__ __forceinline__ bool step(float scale, float *y, int add, bool atomic,
                                         const qkv_out &qo, int64_t row0) {
#pragma unroll
        for (int j = 0; j < SPL; j++) {
            const int s = (st * SPL + j) * 32 + lane;
            const float4 *xv = (const float4 *)(xs + s * 36);
            const float sx = raw::uses_sx && (FULL || s < nsb) ? xs[s * 36 + 32] : 0.0f;
            const float sx0 = gp_raw<T>::half && (FULL || s < nsb) ? xs[s * 36 + 33] : 0.0f;
            if (FULL || s < nsb) {
                float a0[NR], a1[NR];
#pragma unroll
                for (int r = 0; r < NR; r++) a0[r] = a1[r] = 0.0f;
#ifdef GP_NOCOMPUTE /* measurement only: the loads' bytes folded, no dot */
#pragma unroll
                for (int r = 0; r < NR; r++) {
                    uint32_t u[sizeof(raw) / 4], f = 0;
                    memcpy(u, &buf[P][r][j], sizeof u);
#pragma unroll
                    for (int k = 0; k < (int)(sizeof(raw) / 4); k++) f ^= u[k];
                    a0[r] = __uint_as_float(f & 0x3fffffffu);
                }
#else
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const float4 xa = xv[raw::xq(i, 0)], xb = xv[raw::xq(i, 1)];
#pragma unroll
                    for (int r = 0; r < NR; r++)
                        gp_dot<DN != 0>::part(buf[P][r][j], i, xa, xb, a0[r], a1[r]);
                }
#endif
#pragma unroll
                for (int r = 0; r < NR; r++)
                    acc[r] +=
                        gp_fin<DN != 0, gp_raw<T>::half>::f(buf[P][r][j], a0[r], a1[r], sx, sx0);
            }
#pragma unroll
            for (int r = 0; r < NR; r++) load_one<P>(r, j);
        }
        advance();
        if (++st == nst) {
#pragma unroll
            for (int r = 0; r < NR; r++) acc[r] = dev_warp_sum(acc[r]) * scale;
            /* (QKV: the slot k_gemvp staged) */
            gv_store1<MODE, NR>(acc, lane, (int64_t)gc * RPW, w.rows, y, add, atomic, qo, row0,
                                &gp_qslot);
#pragma unroll
            for (int r = 0; r < NR; r++) acc[r] = 0.0f;
            st = 0;
            gc += gstride;
        }
        return gc < ngroups;
    }

    /* the walk, once buffers 0 and 1 hold (or are loading) the first two steps */
    __device__ __forceinline__ void run(float scale, float *y, int add, bool atomic,
                                        const qkv_out &qo, int64_t row0) {
        while (step<0>(scale, y, add, atomic, qo, row0) &&
               step<1>(scale, y, add, atomic, qo, row0)) {
        }
    }
};

template <int T, int MODE, int NR, int SPL, int W, bool FULL>
__global__ void __launch_bounds__(W * 32, gp_min_blocks<T, MODE, W>::n)
    k_gemvp(gpu_matrix w, gpu_matrix w2, const float *x, const float *gamma, float eps, float *y,
            int add, qkv_out qo, int64_t row0, int kspan) {
    extern __shared__ float xs[]; /* [slice / 32][36] */
    __shared__ float red[32];
    const int K = (int)w.cols;
    const int kbeg = (int)blockIdx.y * kspan, kend = kbeg + kspan < K ? kbeg + kspan : K;
    gp_walk<T, MODE, NR, SPL, FULL> wk(w, w2);
    wk.lane = threadIdx.x & 31;
    wk.ngroups = (int)((w.rows + wk.RPW - 1) / wk.RPW);
    wk.gstride = (int)gridDim.x * W;
    /* warp w of block b starts at group w * blocks + b: the groups left over
     * after whole rounds fall to every block alike */
    wk.gc = wk.gl = (int)(threadIdx.x >> 5) * (int)gridDim.x + (int)blockIdx.x;
    wk.xs = xs;
    wk.nsb = (kend - kbeg) >> 5;
    wk.nst = (wk.nsb + 32 * SPL - 1) / (32 * SPL);
    wk.sbase = kbeg >> 5;
    wk.st = wk.stl = 0;
#pragma unroll
    for (int r = 0; r < NR; r++) wk.acc[r] = 0.0f;
    /* a warp without a group loads (and never uses) the last group's first
     * steps: the loads need no guard */
    wk.rows_of(wk.gl < wk.ngroups ? wk.gl : wk.ngroups - 1);
    wk.lim = wk.nsb - 1 - wk.lane;
    wk.template load_step<0>(); /* the first weights travel while x is staged */
    if (MODE == GEMV_QKV && threadIdx.x == W * 32 - 1) /* (a thread with little x to stage) */
        gp_qslot = qkv_slot_load(qo, 0);
    const float scale = gp_stage_x<W * 32, gp_walk<T, MODE, NR, SPL, FULL>::DN>(
        xs, red, x + kbeg, gamma ? gamma + kbeg : NULL, kend - kbeg, K, eps);
    if (wk.gc >= wk.ngroups) return; /* (no barrier follows) */
    wk.template load_step<1>();
    wk.run(scale, y, add, gridDim.y > 1, qo, row0);
}

/* Blocks of this kernel one SM holds with `smem` bytes of x (*per_sm), and
 * the device's SM count; cached per instance and device for the few x
 * widths a model has (a residual add sees two: wo's and down's). */
template <int T, int MODE, int NR, int SPL, int W, bool FULL>
static int gemvp_occupancy(size_t smem, int *per_sm, int *sms) {
    static int cached_dev = -1, cached_sms = 0, cached_n[4];
    static size_t cached_smem[4];
    int dev = 0;
    CUDA_TRY(cudaGetDevice(&dev));
    if (dev != cached_dev) {
        CUDA_TRY(cudaDeviceGetAttribute(&cached_sms, cudaDevAttrMultiProcessorCount, dev));
        memset(cached_smem, 0, sizeof cached_smem);
        cached_dev = dev;
    }
    int i = 0;
    while (i < 3 && cached_smem[i] && cached_smem[i] != smem) i++;
    if (cached_smem[i] != smem) { /* a new width (the 4th slot is reused) */
        int n = 0;
        CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &n, k_gemvp<T, MODE, NR, SPL, W, FULL>, W * 32, smem));
        cached_smem[i] = smem, cached_n[i] = n > 0 ? n : 1;
    }
    *per_sm = cached_n[i];
    *sms = cached_sms;
    return M40LLM_OK;
}

/* Grid math: K slices (residual adds only), then warps per slice: as many
 * as the GPU holds, or fewer that even out the row groups per warp. */
template <int T, int MODE, int W, bool FULL>
static int gemvp_launch(const gemv_args *a, cudaStream_t st) {
    const int NR = GP_NR, SPL = gp_spl<T, MODE>::n;
    const int RPW = MODE == GEMV_SWIGLU ? NR / 2 : NR;
    const int64_t K = a->w->cols, ngroups = (a->w->rows + RPW - 1) / RPW;
    int64_t kspan = K;
    unsigned nsl = 1;
    const bool sliced = a->mode == GEMV_ADD && !a->gamma && K > 1024;
    /* blocks per SM at the widest x a block may stage (a narrower slice
     * needs no more shared memory) */
    int sms = 0, per_sm = 0;
    int rc = gemvp_occupancy<T, MODE, NR, SPL, W, FULL>(
        gp_smem(sliced && K > GP_SLICE ? GP_SLICE : (int)K), &per_sm, &sms);
    if (rc) return rc;
    const int64_t cap = (int64_t)per_sm * sms * W; /* warps resident at once */
    if (sliced) {
        /* slices of whole 1024-element passes: at most GP_SLICE wide, and
         * enough of them for every resident warp to have a row group */
        int64_t passes = (K + 1023) / 1024, want = (cap + ngroups - 1) / ngroups;
        int64_t need = (K + GP_SLICE - 1) / GP_SLICE;
        if (want > passes) want = passes;
        if (want < need) want = need;
        kspan = ((passes + want - 1) / want) * 1024;
        nsl = (unsigned)((K + kspan - 1) / kspan);
    }
    if (FULL && kspan % (1024 * SPL)) return gemvp_launch<T, MODE, W, false>(a, st);
    size_t smem = gp_smem((int)kspan);
    /* gate+up: every resident warp slot filled, so that the SMs share the
     * row groups evenly (the walk interleaves the blocks' warps): its
     * warps walk 4-5 groups each and the SMs' issue is what limits (H200,
     * 7B Q4_0: 2381 -> 2469 GB/s; 359 blocks for 396 slots had left 37 SMs
     * with 2 blocks, 95 with 3). The others, a few groups per warp, are
     * bound by each warp's latency: as many warps as give every warp the
     * same number of groups (filling the slots measured 6-10% slower on
     * QKV, wo and down). */
    int64_t cap_sl = (int64_t)per_sm * sms * W / nsl;
    if (cap_sl < W) cap_sl = W;
    int64_t per_warp = (ngroups + cap_sl - 1) / cap_sl;
    int64_t warps = MODE == GEMV_SWIGLU ? (ngroups < cap_sl ? ngroups : cap_sl)
                                        : (ngroups + per_warp - 1) / per_warp;
    unsigned blocks = (unsigned)((warps + W - 1) / W);
    int forced = a->persist_max_blocks;
    if (forced > 0 && blocks > (unsigned)forced) blocks = (unsigned)forced;
    qkv_out qo;
    memset(&qo, 0, sizeof qo);
    if (a->qkv) qo = *a->qkv;
    gpu_matrix w2 = a->w2 ? *a->w2 : *a->w;
    k_gemvp<T, MODE, NR, SPL, W, FULL><<<dim3(blocks, nsl), W * 32, smem, st>>>(
        *a->w, w2, a->x, a->gamma, a->eps, a->y, gemv_flag(a), qo, a->row0, (int)kspan);
    CUDA_LAUNCHED("k_gemvp");
    return M40LLM_OK;
}

/* The whole-step walk (FULL) for the quantized types (the half types are
 * memory-bound without it), where K is whole steps; for QKV and gate+up
 * only with the wide blocks (K >= GP_WIDE_K). A launcher whose K slices
 * are not whole steps falls back to the general walk. */
template <int T, int MODE> struct gp_full_ok {
    /* (Q8_0 QKV: its pointers would spill on sm_52 under the rope epilogue) */
    static const bool v = T != QT_F16 && T != QT_BF16 && !(T == QT_Q8_0 && MODE == GEMV_QKV);
};
template <int T, int MODE> static bool gp_full(const gemv_args *a) {
    return gp_full_ok<T, MODE>::v && a->w->cols % (1024 * gp_spl<T, MODE>::n) == 0;
}

/* Runs the persistent kernel where it takes the product (a type with a
 * split dot, one vector, x within GP_MAXK unless a residual add); returns
 * 1 where it does not, for the caller's other kernels. */
template <int T, bool PARTS = gp_raw<T>::type::parts> struct gemvp_entry {
    static int run(const gemv_args *, cudaStream_t) { return 1; }
};
template <int T> struct gemvp_entry<T, true> {
    static int run(const gemv_args *a, cudaStream_t st) {
        if (a->nb != 1 || (a->w->cols > GP_MAXK && (a->mode != GEMV_ADD || a->gamma))) return 1;
        if ((uint64_t)a->w->rows * (uint64_t)a->w->q_row >= (1ull << 32))
            return 1; /* the walk's 32-bit row offsets (the scales are smaller) */
        const bool wide = a->w->cols >= GP_WIDE_K;
        const int NW = gp_norm_warps<T>::n;
        if (a->mode == GEMV_SWIGLU)
            return wide ? launch<GEMV_SWIGLU, NW>(a, st)
                        : gemvp_launch<T, GEMV_SWIGLU, GP_WARPS, false>(a, st);
        if (a->mode == GEMV_QKV)
            return wide ? launch<GEMV_QKV, NW>(a, st)
                        : gemvp_launch<T, GEMV_QKV, GP_WARPS, false>(a, st);
        return launch<GV_PLAIN, GP_WARPS>(a, st);
    }
    /* the whole-step walk where the type and K allow it */
    template <int MODE, int W> static int launch(const gemv_args *a, cudaStream_t st) {
        return gp_full<T, MODE>(a) ? gemvp_launch<T, MODE, W, gp_full_ok<T, MODE>::v>(a, st)
                                   : gemvp_launch<T, MODE, W, false>(a, st);
    }
};

#endif
