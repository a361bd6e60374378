/* The CPU backend against a naive float64 forward pass written here, on a
 * tiny random model covering what the reference fixtures do not: partial
 * rotary dims (n_rot < head_dim), linear RoPE scaling, non-unit norm weights,
 * 3 query heads per KV head, tied output. */
#include <stdint.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "cpu/cpu_internal.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"

enum { E = 48, NH = 6, NKV = 2, HD = 8, NROT = 4, FF = 64, V = 50, NL = 2, T = 20 };
#define BASE  10000.0
#define SCALE 0.5 /* 1 / rope.scaling.factor */
#define EPS   1e-5

/* weights as written: ne = {n_in, n_out}, data[o * n_in + i] */
static float tok[V * E], onorm[E];
static float anorm[NL][E], fnorm[NL][E], wq[NL][E * E], wk[NL][E * NKV * HD], wv[NL][E * NKV * HD],
    wo[NL][E * E], wg[NL][E * FF], wu[NL][E * FF], wd[NL][FF * E];

static uint64_t rng = 12345;
static float rnd(float scale) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return scale * ((float)(rng >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
}
static void fill(float *a, int n, float scale, float offset) {
    for (int i = 0; i < n; i++) a[i] = offset + rnd(scale);
}

static void matvec(double *y, const float *w, const double *x, int n_in, int n_out) {
    for (int o = 0; o < n_out; o++) {
        double s = 0;
        for (int i = 0; i < n_in; i++) s += (double)w[(size_t)o * n_in + i] * x[i];
        y[o] = s;
    }
}

static void rmsnorm(double *y, const double *x, const float *w) {
    double ss = 0;
    for (int i = 0; i < E; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / E + EPS);
    for (int i = 0; i < E; i++) y[i] = x[i] * s * w[i];
}

static void rope(double *v, int pos) {
    for (int p = 0; p < NROT / 2; p++) {
        double th = pos * SCALE * pow(BASE, -2.0 * p / NROT);
        double a = v[2 * p], b = v[2 * p + 1];
        v[2 * p] = a * cos(th) - b * sin(th);
        v[2 * p + 1] = a * sin(th) + b * cos(th);
    }
}

/* logits [T][V] for tokens[0..T) */
static void naive(const int *tokens, double *logits) {
    static double x[T][E], kc[NL][T][NKV * HD], vc[NL][T][NKV * HD];
    double h[E], q[E], att[E], o[E], g[FF], u[FF];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < E; i++) x[t][i] = tok[tokens[t] * E + i];
    for (int l = 0; l < NL; l++) {
        for (int t = 0; t < T; t++) { /* causal: position t sees 0..t, computed in order */
            rmsnorm(h, x[t], anorm[l]);
            matvec(q, wq[l], h, E, E);
            matvec(kc[l][t], wk[l], h, E, NKV * HD);
            matvec(vc[l][t], wv[l], h, E, NKV * HD);
            for (int hh = 0; hh < NH; hh++) rope(q + hh * HD, t);
            for (int kh = 0; kh < NKV; kh++) rope(kc[l][t] + kh * HD, t);
            for (int hh = 0; hh < NH; hh++) {
                int kh = hh / (NH / NKV);
                double sc[T], mx = -1e300, sum = 0;
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < HD; i++) d += q[hh * HD + i] * kc[l][s][kh * HD + i];
                    sc[s] = d / sqrt((double)HD);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < HD; i++) {
                    double a = 0;
                    for (int s = 0; s <= t; s++) a += sc[s] / sum * vc[l][s][kh * HD + i];
                    att[hh * HD + i] = a;
                }
            }
            matvec(o, wo[l], att, E, E);
            for (int i = 0; i < E; i++) x[t][i] += o[i];
            rmsnorm(h, x[t], fnorm[l]);
            matvec(g, wg[l], h, E, FF);
            matvec(u, wu[l], h, E, FF);
            for (int i = 0; i < FF; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            matvec(o, wd[l], g, FF, E);
            for (int i = 0; i < E; i++) x[t][i] += o[i];
        }
    }
    for (int t = 0; t < T; t++) {
        rmsnorm(h, x[t], onorm);
        matvec(logits + (size_t)t * V, tok, h, E, V);
    }
}

static int add(gguf_writer *w, const char *name, const float *d, int64_t n0, int64_t n1) {
    int64_t ne[2] = {n0, n1};
    return gguf_writer_add_tensor(w, name, QT_F32, n1 ? 2 : 1, ne, d,
                                  (size_t)(n0 * (n1 ? n1 : 1)) * sizeof(float));
}

static int write_model(const char *path) {
    gguf_writer *w = NULL;
    int rc = gguf_writer_create(&w);
    if (rc) return rc;
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", NL);
    gguf_writer_set_u32(w, "llama.embedding_length", E);
    gguf_writer_set_u32(w, "llama.feed_forward_length", FF);
    gguf_writer_set_u32(w, "llama.attention.head_count", NH);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", NKV);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", NROT);
    gguf_writer_set_u32(w, "llama.context_length", 64);
    gguf_writer_set_f32(w, "llama.rope.freq_base", (float)BASE);
    gguf_writer_set_str(w, "llama.rope.scaling.type", "linear");
    gguf_writer_set_f32(w, "llama.rope.scaling.factor", (float)(1.0 / SCALE));
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)EPS);
    rc = add(w, "token_embd.weight", tok, E, V);
    if (!rc) rc = add(w, "output_norm.weight", onorm, E, 0);
    for (int l = 0; l < NL && !rc; l++) {
        char n[64];
#define ADD(suffix, arr, a, b)                                                                     \
    if (!rc) {                                                                                     \
        snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix);                                      \
        rc = add(w, n, arr[l], a, b);                                                              \
    }
        ADD("attn_norm", anorm, E, 0);
        ADD("attn_q", wq, E, E);
        ADD("attn_k", wk, E, NKV * HD);
        ADD("attn_v", wv, E, NKV * HD);
        ADD("attn_output", wo, E, E);
        ADD("ffn_norm", fnorm, E, 0);
        ADD("ffn_gate", wg, E, FF);
        ADD("ffn_up", wu, E, FF);
        ADD("ffn_down", wd, FF, E);
#undef ADD
    }
    if (!rc) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}

/* The backend's inline F16 decoder (F16 KV cache) equals the quant module's
 * for every bit pattern. */
static void check_f16_decoder(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = cpu_f16_to_f32((uint16_t)h), b = quant_f16_to_f32((uint16_t)h);
        if (isnan(b) ? !isnan(a) : memcmp(&a, &b, 4) != 0) bad++;
    }
    CHECKF(bad == 0, "%d half patterns decode differently", bad);
}

int main(void) {
    check_f16_decoder();
    fill(tok, V * E, 1.0f, 0);
    fill(onorm, E, 0.5f, 1.0f);
    for (int l = 0; l < NL; l++) {
        fill(anorm[l], E, 0.5f, 1.0f);
        fill(fnorm[l], E, 0.5f, 1.0f);
        fill(wq[l], E * E, 0.3f, 0);
        fill(wk[l], E * NKV * HD, 0.3f, 0);
        fill(wv[l], E * NKV * HD, 0.3f, 0);
        fill(wo[l], E * E, 0.15f, 0);
        fill(wg[l], E * FF, 0.15f, 0);
        fill(wu[l], E * FF, 0.15f, 0);
        fill(wd[l], FF * E, 0.15f, 0);
    }
    char path[128];
    snprintf(path, sizeof path, "/tmp/m40llm_test_naive_%d.gguf", (int)getpid());
    CHECKF(write_model(path) == 0, "writer: %s", m40llm_last_error());
    model *m = NULL;
    int st = model_load(path, &m);
    unlink(path);
    CHECKF(st == 0, "%s", m40llm_last_error());
    if (st) return check_summary("test_cpu_naive");
    CHECK(m->tied_output && m->cfg.n_rot == NROT && m->cfg.rope_freq_scale == (float)SCALE);

    int tokens[T];
    for (int t = 0; t < T; t++) tokens[t] = (t * 7 + 3) % V;
    static double ref[T * V];
    naive(tokens, ref);

    backend_params p = {.n_ctx = 32, .n_seq_max = 1, .n_batch_max = T, .n_threads = 2};
    backend *b = NULL;
    CHECKF(backend_cpu_create(m, &p, &b) == 0, "%s", m40llm_last_error());
    static float lg[T * V];
    backend_entry e[T];
    for (int t = 0; t < T; t++) e[t] = (backend_entry){0, t, tokens[t], true};
    CHECKF(b && backend_forward(b, e, T, lg) == 0, "%s", m40llm_last_error());
    double mx = 0, rms = 0, mag = 0;
    for (int i = 0; i < T * V; i++) {
        double d = fabs(lg[i] - ref[i]);
        if (d > mx || d != d) mx = d;
        rms += d * d;
        mag += ref[i] * ref[i];
    }
    rms = sqrt(rms / (T * V));
    printf("naive float64 vs cpu backend: max|d| = %.3e, RMS = %.3e (logit RMS %.3f)\n", mx, rms,
           sqrt(mag / (T * V)));
    CHECK(mx <= 1e-4 && rms <= 2e-5);
    CHECK(sqrt(mag / (T * V)) > 0.1); /* the comparison is not of near-zero logits */
    backend_destroy(b);
    model_free(m);
    return check_summary("test_cpu_naive");
}
