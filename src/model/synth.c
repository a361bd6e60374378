/* Synthetic GGUF writer (llama, mixtral, qwen3moe): shapes, type recipes,
 * vocabulary, and the parallel generate-and-quantize fill of each tensor. */
#include "synth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "gguf.h"
#include "quant.h"

/* The architecture asked for; NULL is llama. */
static const char *synth_arch(const synth_config *c) {
    return c->arch ? c->arch : "llama";
}

void synth_default_config(synth_config *c) {
    memset(c, 0, sizeof *c);
    synth_preset("tiny", c);
    c->std = 0.02f;
    c->type = "f32";
    c->seed = 1;
}

int synth_preset(const char *name, synth_config *c) {
    if (!name || !c) return err_set(M40LLM_ERR_INVALID_ARG, "synth_preset: NULL argument");
    /* the dense presets: a plain llama */
    if (!strcmp(name, "tiny") || !strcmp(name, "mistral-7b") || !strcmp(name, "smollm2-135m")) {
        c->arch = "llama";
        c->head_dim = c->n_expert = c->n_expert_used = c->n_ff_exp = 0;
    }
    if (!strcmp(name, "tiny")) {
        c->n_layer = 2, c->n_embd = 256, c->n_head = 8, c->n_head_kv = 4, c->n_ff = 512;
        c->n_vocab = 512, c->n_ctx = 2048, c->rope_base = 10000.0f, c->rms_eps = 1e-5f;
        c->tied = false;
    } else if (!strcmp(name, "mistral-7b")) {
        /* Mistral-7B-Instruct v0.2: 32k context with rope theta 1e6 */
        c->n_layer = 32, c->n_embd = 4096, c->n_head = 32, c->n_head_kv = 8, c->n_ff = 14336;
        c->n_vocab = 32000, c->n_ctx = 32768, c->rope_base = 1000000.0f, c->rms_eps = 1e-5f;
        c->tied = false;
    } else if (!strcmp(name, "smollm2-135m")) {
        c->n_layer = 30, c->n_embd = 576, c->n_head = 9, c->n_head_kv = 3, c->n_ff = 1536;
        c->n_vocab = 49152, c->n_ctx = 8192, c->rope_base = 100000.0f, c->rms_eps = 1e-5f;
        c->tied = true;
    } else if (!strcmp(name, "mixtral-8x7b")) {
        /* Mixtral-8x7B-Instruct v0.1: top-2 of 8 experts of 14336 */
        c->arch = "mixtral", c->head_dim = 0, c->n_ff_exp = 0;
        c->n_layer = 32, c->n_embd = 4096, c->n_head = 32, c->n_head_kv = 8, c->n_ff = 14336;
        c->n_expert = 8, c->n_expert_used = 2;
        c->n_vocab = 32000, c->n_ctx = 32768, c->rope_base = 1000000.0f, c->rms_eps = 1e-5f;
        c->tied = false;
    } else if (!strcmp(name, "qwen3-30b-a3b")) {
        /* Qwen3-30B-A3B: heads of 128 (attention 4096 wide), 8 of 128 experts of 768 */
        c->arch = "qwen3moe";
        c->n_layer = 48, c->n_embd = 2048, c->n_head = 32, c->n_head_kv = 4, c->head_dim = 128;
        c->n_ff = 6144, c->n_expert = 128, c->n_expert_used = 8, c->n_ff_exp = 768;
        c->n_vocab = 151936, c->n_ctx = 40960, c->rope_base = 1000000.0f, c->rms_eps = 1e-6f;
        c->tied = false;
    } else {
        return err_set(M40LLM_ERR_NOT_FOUND,
                       "synth: unknown preset '%s' (mistral-7b, smollm2-135m, tiny, "
                       "mixtral-8x7b, qwen3-30b-a3b)",
                       name);
    }
    return M40LLM_OK;
}

/* ---- type recipes ---- */

typedef struct synth_recipe {
    const char *name;
    int base;      /* ggml type of the 2D weights */
    int file_type; /* llama_ftype written to general.file_type */
    bool mix;      /* llama.cpp's _M mix: Q6_K for output and some attn_v/ffn_down */
} synth_recipe;

static const synth_recipe synth_recipes[] = {
    {"f32", QT_F32, 0, false},    {"f16", QT_F16, 1, false},     {"bf16", QT_BF16, 32, false},
    {"q8_0", QT_Q8_0, 7, false},  {"q4_0", QT_Q4_0, 2, false},   {"q4_1", QT_Q4_1, 3, false},
    {"q5_0", QT_Q5_0, 8, false},  {"q5_1", QT_Q5_1, 9, false},   {"q2_k", QT_Q2_K, 10, false},
    {"q3_k", QT_Q3_K, 11, false}, {"q4_k", QT_Q4_K, 14, false},  {"q5_k", QT_Q5_K, 16, false},
    {"q6_k", QT_Q6_K, 18, false}, {"q4_k_m", QT_Q4_K, 15, true}, {"q5_k_m", QT_Q5_K, 17, true},
};

static const synth_recipe *find_recipe(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof synth_recipes / sizeof synth_recipes[0]; i++)
        if (!strcasecmp(name, synth_recipes[i].name)) return &synth_recipes[i];
    return NULL;
}

int synth_file_type(const char *recipe) {
    const synth_recipe *r = find_recipe(recipe);
    return r ? r->file_type : -1;
}

/* llama.cpp's layer choice for the _M mixes: the first and last eighth of
 * the layers and every third one in between get more bits. */
static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

int synth_tensor_type(const synth_config *c, const char *kind, int layer, int64_t ne0,
                      int *out_type) {
    const synth_recipe *r = find_recipe(c->type);
    if (!r) return err_set(M40LLM_ERR_UNSUPPORTED, "synth: unknown type '%s'", c->type);
    int t = r->base;
    if (!strcmp(kind, "ffn_gate_inp.weight")) {
        *out_type = QT_F32; /* the router: llama.cpp never quantizes it */
        return M40LLM_OK;
    }
    if (r->mix) {
        /* the tensor that produces the logits: output, or the embedding when tied */
        bool is_output =
            !strcmp(kind, "output.weight") || (c->tied && !strcmp(kind, "token_embd.weight"));
        bool more = (!strcmp(kind, "attn_v.weight") || !strcmp(kind, "ffn_down.weight") ||
                     !strcmp(kind, "ffn_down_exps.weight")) &&
                    layer >= 0 && use_more_bits(layer, c->n_layer);
        if (is_output || more) t = QT_Q6_K;
        /* llama.cpp: an 8-expert model (Mixtral) gets Q8_0 attention K
         * and V, a small price in bytes */
        if (c->n_expert == 8 && (!strcmp(kind, "attn_k.weight") || !strcmp(kind, "attn_v.weight")))
            t = QT_Q8_0;
    }
    /* rows that do not split into whole blocks: llama.cpp's fallbacks
     * (Q2_K/Q3_K fall back to IQ4_NL there, which this project lacks: Q4_0) */
    if (ne0 % quant_info(t)->block_size != 0) {
        switch (t) {
        case QT_Q4_K:
            t = QT_Q5_0;
            break;
        case QT_Q5_K:
            t = QT_Q5_1;
            break;
        case QT_Q6_K:
            t = QT_Q8_0;
            break;
        case QT_Q2_K:
        case QT_Q3_K:
            t = QT_Q4_0;
            break;
        default:
            break;
        }
        if (ne0 % quant_info(t)->block_size != 0) t = QT_F16;
    }
    *out_type = t;
    return M40LLM_OK;
}

int synth_validate(const synth_config *c) {
    if (!c) return err_set(M40LLM_ERR_INVALID_ARG, "synth: NULL config");
    if (c->n_layer < 1 || c->n_embd < 1 || c->n_head < 1 || c->n_head_kv < 1 || c->n_ff < 1 ||
        c->n_ctx < 1)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "synth: layers %d, embd %d, heads %d, kv heads %d, ff %d, ctx %d must all "
                       "be >= 1",
                       c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->n_ff, c->n_ctx);
    const char *arch = synth_arch(c);
    const bool moe = !strcmp(arch, "mixtral") || !strcmp(arch, "qwen3moe");
    if (!moe && strcmp(arch, "llama"))
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "synth: unknown architecture '%s' (llama, mixtral, qwen3moe)", arch);
    if (moe && (c->n_expert < 1 || c->n_expert_used < 1 || c->n_expert_used > c->n_expert))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "synth: %s needs experts >= 1 and 1 <= experts used <= experts (%d, %d)",
                       arch, c->n_expert, c->n_expert_used);
    if (!moe && (c->n_expert || c->n_expert_used))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "synth: llama is dense: experts for a llama file come with --arch mixtral");
    if (c->head_dim < 0 || c->n_ff_exp < 0 || c->n_ff_exp > (1 << 24) || c->head_dim > (1 << 16))
        return err_set(M40LLM_ERR_INVALID_ARG, "synth: head dim %d, expert ff %d out of range",
                       c->head_dim, c->n_ff_exp);
    if (c->n_ff_exp && strcmp(arch, "qwen3moe"))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "synth: an expert width of its own is qwen3moe's (mixtral: --ff)");
    if (!c->head_dim && c->n_embd % c->n_head != 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "synth: embd %d is not a multiple of heads %d",
                       c->n_embd, c->n_head);
    const int hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
    if (hd % 2 != 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "synth: head dim %d must be even (rotary pairs)",
                       hd);
    if (c->n_head % c->n_head_kv != 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "synth: heads %d is not a multiple of kv heads %d",
                       c->n_head, c->n_head_kv);
    if (c->n_vocab < 260)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "synth: vocab %d < 260 (3 control tokens, 256 byte tokens, pieces)",
                       c->n_vocab);
    if (!(c->std > 0.0f) || !(c->rms_eps > 0.0f) || !(c->rope_base > 0.0f))
        return err_set(M40LLM_ERR_INVALID_ARG, "synth: std %g, eps %g, rope base %g must be > 0",
                       c->std, c->rms_eps, c->rope_base);
    const synth_recipe *r = find_recipe(c->type);
    if (!r)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "synth: unknown type '%s' (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k "
                       "q4_k q5_k q6_k q4_k_m q5_k_m)",
                       c->type ? c->type : "(null)");
    const int check[] = {r->base, QT_Q6_K, QT_Q5_0, QT_Q5_1, QT_Q8_0, QT_Q4_0, QT_F16};
    for (size_t i = 0; i < sizeof check / sizeof check[0]; i++) {
        const quant_type_info *qi = quant_info(check[i]);
        if (!qi || !qi->can_quantize)
            return err_set(M40LLM_ERR_UNSUPPORTED, "synth: no quantizer for %s (type %d)",
                           qi ? qi->name : "?", check[i]);
    }
    return M40LLM_OK;
}

/* ---- vocabulary ---- */

typedef struct synth_vocab {
    char **tokens;  /* [n] NUL-terminated pieces */
    float *scores;  /* [n] */
    int32_t *types; /* [n] 1 normal, 2 unknown, 3 control, 6 byte */
    int n;
} synth_vocab;

static void vocab_free(synth_vocab *v) {
    if (v->tokens)
        for (int i = 0; i < v->n; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
}

static int vocab_push(synth_vocab *v, const char *s, int type, float score) {
    char *d = strdup(s);
    if (!d) return err_set(M40LLM_ERR_OOM, "synth: out of memory for the vocabulary");
    v->tokens[v->n] = d;
    v->types[v->n] = type;
    v->scores[v->n++] = score;
    return M40LLM_OK;
}

/* SentencePiece layout: <unk> <s> </s>, the 256 byte tokens, then "▁", the
 * printable ASCII characters, and words over a-z by increasing length, each
 * as "▁word" and "word". Every piece's prefixes come earlier, so SPM merges
 * can reach it; scores decrease with the index so shorter pieces rank first. */
static int vocab_build(int n, synth_vocab *v) {
    static const char SP[] = "\xE2\x96\x81"; /* U+2581, SentencePiece's space */
    memset(v, 0, sizeof *v);
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->scores = malloc((size_t)n * sizeof *v->scores);
    v->types = malloc((size_t)n * sizeof *v->types);
    if (!v->tokens || !v->scores || !v->types)
        return err_set(M40LLM_ERR_OOM, "synth: out of memory for a %d-token vocabulary", n);
    int rc = vocab_push(v, "<unk>", 2, 0.0f);
    if (!rc) rc = vocab_push(v, "<s>", 3, 0.0f);
    if (!rc) rc = vocab_push(v, "</s>", 3, 0.0f);
    char buf[64];
    for (int b = 0; b < 256 && !rc; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        rc = vocab_push(v, buf, 6, 0.0f);
    }
    int first_piece = v->n;
#define PIECE(s) (rc = vocab_push(v, (s), 1, (float)-(v->n - first_piece)))
    if (!rc && v->n < n) PIECE(SP);
    for (int ch = '!'; ch <= '~' && !rc && v->n < n; ch++) {
        buf[0] = (char)ch, buf[1] = 0;
        PIECE(buf);
    }
    /* words of length L over a-z, enumerated like an odometer */
    for (int len = 1; !rc && v->n < n && len < 16; len++) {
        for (int pass = 0; pass < 2 && !rc && v->n < n; pass++) {
            if (pass == 1 && len == 1) continue; /* single letters already exist */
            char word[24];
            memset(word, 'a', (size_t)len);
            word[len] = 0;
            for (;;) {
                if (pass == 0)
                    snprintf(buf, sizeof buf, "%s%s", SP, word);
                else
                    snprintf(buf, sizeof buf, "%s", word);
                PIECE(buf);
                if (rc || v->n >= n) break;
                int i = len - 1;
                while (i >= 0 && word[i] == 'z') word[i--] = 'a';
                if (i < 0) break;
                word[i]++;
            }
        }
    }
#undef PIECE
    return rc;
}

/* ---- tensors ---- */

typedef struct synth_state synth_state;

typedef struct synth_tensor {
    synth_state *st;
    char name[64];
    int type;
    int64_t ne0, ne1; /* row length, rows (ne1 = 1 for norms) */
    int64_t ne2;      /* experts (3-D expert tensors), else 1 */
    int n_dims;       /* 1 (norms), 2, or 3 (expert tensors) */
    bool ones;        /* norm weights: all 1 */
    uint64_t hash;    /* FNV-1a of the name: the tensor's RNG stream */
} synth_tensor;

struct synth_state {
    const synth_config *c;
    synth_tensor *t; /* [n_tensors] */
    int n_tensors;
    int n_threads;
    int64_t max_ne0;
    uint64_t bytes_total, bytes_done;
    int filled;
    float *rowbuf;         /* [n_threads * max_ne0] */
    struct fill_job *jobs; /* [n_threads] */
    pthread_t *tid;        /* [n_threads] */
};

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One row of N(0, std^2)-like values. Each value is a sum of four 16-bit
 * uniforms from one splitmix64 output (Irwin-Hall, n = 4): mean and variance
 * exact, tails cut at 3.46 sigma, no transcendental call per value. */
static void gen_row(uint64_t seed, uint64_t tensor_hash, int64_t row, float std, float *dst,
                    int64_t n) {
    uint64_t s = mix64(seed ^ mix64(tensor_hash + 0x9E3779B97F4A7C15ull * (uint64_t)(row + 1)));
    /* sum of four uniforms on 0..65535 has mean 131070 and sd 65536/sqrt(3) */
    const float scale = std * (1.7320508075688772f / 65536.0f);
    for (int64_t i = 0; i < n; i++) {
        s += 0x9E3779B97F4A7C15ull;
        uint64_t x = mix64(s);
        uint32_t sum = (uint32_t)(x & 0xFFFF) + (uint32_t)((x >> 16) & 0xFFFF) +
                       (uint32_t)((x >> 32) & 0xFFFF) + (uint32_t)(x >> 48);
        dst[i] = ((float)sum - 131070.0f) * scale;
    }
}

typedef struct fill_job {
    synth_tensor *t;
    uint8_t *dst; /* the whole tensor */
    size_t row_bytes;
    int64_t r0, r1; /* rows [r0, r1) */
    float *row;     /* [ne0] scratch */
    bool started;   /* runs on its own thread */
    int rc;
    char msg[256];
} fill_job;

static void *fill_worker(void *arg) {
    fill_job *j = arg;
    const synth_tensor *t = j->t;
    const synth_config *c = t->st->c;
    for (int64_t r = j->r0; r < j->r1; r++) {
        gen_row(c->seed, t->hash, r, c->std, j->row, t->ne0);
        int rc = quant_quantize_row(t->type, j->row, j->dst + (size_t)r * j->row_bytes, t->ne0);
        if (rc) {
            j->rc = rc;
            snprintf(j->msg, sizeof j->msg, "%s", m40llm_last_error());
            break;
        }
    }
    return NULL;
}

static int synth_fill(void *ctx, void *dst, size_t nbytes) {
    synth_tensor *t = ctx;
    synth_state *st = t->st;
    size_t row_bytes = quant_row_size(t->type, t->ne0);
    const int64_t rows = t->ne1 * t->ne2;
    if (row_bytes * (size_t)rows != nbytes)
        return err_set(M40LLM_ERR_INTERNAL, "synth: tensor '%s': %zu bytes asked, %zu expected",
                       t->name, nbytes, row_bytes * (size_t)rows);
    int rc = M40LLM_OK;
    if (t->ones) {
        float *f = dst; /* norms are F32 */
        for (int64_t i = 0; i < t->ne0 * rows; i++) f[i] = 1.0f;
    } else {
        int nt = st->n_threads;
        if (nt > rows) nt = (int)rows;
        fill_job *jobs = st->jobs;
        pthread_t *tid = st->tid;
        int64_t per = (rows + nt - 1) / nt;
        for (int i = 0; i < nt; i++) {
            int64_t r0 = per * i, r1 = r0 + per > rows ? rows : r0 + per;
            jobs[i] = (fill_job){t,     dst,       row_bytes,
                                 r0,    r1,        st->rowbuf + (size_t)i * st->max_ne0,
                                 false, M40LLM_OK, ""};
            /* thread 0's share runs on the calling thread */
            jobs[i].started = i > 0 && pthread_create(&tid[i], NULL, fill_worker, &jobs[i]) == 0;
        }
        fill_worker(&jobs[0]);
        for (int i = 1; i < nt; i++) {
            if (jobs[i].started)
                pthread_join(tid[i], NULL);
            else
                fill_worker(&jobs[i]); /* no thread: do it here */
        }
        for (int i = 0; i < nt && !rc; i++)
            if (jobs[i].rc) rc = err_set(jobs[i].rc, "quantizing %s: %s", t->name, jobs[i].msg);
    }
    st->bytes_done += nbytes;
    st->filled++;
    if (!rc && st->c->progress)
        st->c->progress(st->c->progress_ctx, st->filled, st->n_tensors, t->name, t->type,
                        st->bytes_done, st->bytes_total);
    return rc;
}

/* Adds one tensor description; kind is the name without "blk.N.". ne2 > 0:
 * an expert tensor of ne2 experts. */
static int add_tensor3(synth_state *st, int layer, const char *kind, int64_t ne0, int64_t ne1,
                       int64_t ne2, bool norm) {
    synth_tensor *t = &st->t[st->n_tensors++];
    t->st = st;
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "blk.%d.%s", layer, kind);
    else
        snprintf(t->name, sizeof t->name, "%s", kind);
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->ne2 = ne2 > 0 ? ne2 : 1;
    t->n_dims = ne2 > 0 ? 3 : norm ? 1 : 2;
    t->ones = norm;
    t->hash = fnv1a(t->name);
    if (norm) {
        t->type = QT_F32;
    } else {
        int rc = synth_tensor_type(st->c, kind, layer, ne0, &t->type);
        if (rc) return rc;
    }
    if (ne0 > st->max_ne0) st->max_ne0 = ne0;
    st->bytes_total += quant_row_size(t->type, ne0) * (uint64_t)ne1 * (uint64_t)t->ne2;
    return M40LLM_OK;
}

static int add_tensor(synth_state *st, int layer, const char *kind, int64_t ne0, int64_t ne1,
                      bool norm) {
    return add_tensor3(st, layer, kind, ne0, ne1, 0, norm);
}

/* Tensors per layer at most (qwen3moe: 12), and outside the layers. */
enum { SYNTH_LAYER_TENSORS = 12, SYNTH_OTHER_TENSORS = 3 };

static int build_tensors(synth_state *st) {
    const synth_config *c = st->c;
    const bool qwen = !strcmp(synth_arch(c), "qwen3moe");
    const int64_t E = c->n_embd, HD = c->head_dim ? c->head_dim : c->n_embd / c->n_head,
                  Q = HD * c->n_head, KV = HD * c->n_head_kv, X = c->n_expert,
                  FX = c->n_ff_exp ? c->n_ff_exp : c->n_ff;
    int rc = add_tensor(st, -1, "token_embd.weight", E, c->n_vocab, false);
    for (int l = 0; l < c->n_layer && !rc; l++) {
        if (!rc) rc = add_tensor(st, l, "attn_norm.weight", E, 1, true);
        if (!rc) rc = add_tensor(st, l, "attn_q.weight", E, Q, false);
        if (!rc) rc = add_tensor(st, l, "attn_k.weight", E, KV, false);
        if (!rc) rc = add_tensor(st, l, "attn_v.weight", E, KV, false);
        if (qwen && !rc) rc = add_tensor(st, l, "attn_q_norm.weight", HD, 1, true);
        if (qwen && !rc) rc = add_tensor(st, l, "attn_k_norm.weight", HD, 1, true);
        if (!rc) rc = add_tensor(st, l, "attn_output.weight", Q, E, false);
        if (!rc) rc = add_tensor(st, l, "ffn_norm.weight", E, 1, true);
        if (X) {
            if (!rc) rc = add_tensor(st, l, "ffn_gate_inp.weight", E, X, false);
            if (!rc) rc = add_tensor3(st, l, "ffn_gate_exps.weight", E, FX, X, false);
            if (!rc) rc = add_tensor3(st, l, "ffn_up_exps.weight", E, FX, X, false);
            if (!rc) rc = add_tensor3(st, l, "ffn_down_exps.weight", FX, E, X, false);
        } else {
            if (!rc) rc = add_tensor(st, l, "ffn_gate.weight", E, c->n_ff, false);
            if (!rc) rc = add_tensor(st, l, "ffn_up.weight", E, c->n_ff, false);
            if (!rc) rc = add_tensor(st, l, "ffn_down.weight", c->n_ff, E, false);
        }
    }
    if (!rc) rc = add_tensor(st, -1, "output_norm.weight", E, 1, true);
    if (!rc && !c->tied) rc = add_tensor(st, -1, "output.weight", E, c->n_vocab, false);
    return rc;
}

/* "<arch>.<suffix>" = v */
static int set_arch_u32(gguf_writer *w, const char *arch, const char *suffix, int v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_writer_set_u32(w, key, (uint32_t)v);
}

static int set_arch_f32(gguf_writer *w, const char *arch, const char *suffix, float v) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_writer_set_f32(w, key, v);
}

static int set_metadata(gguf_writer *w, const synth_config *c, const synth_vocab *v) {
    /* mixtral is a llama file with experts, as llama.cpp writes it */
    const char *a = strcmp(synth_arch(c), "qwen3moe") ? "llama" : "qwen3moe";
    const int hd = c->head_dim ? c->head_dim : c->n_embd / c->n_head;
    char name[160], moe[64] = "";
    if (c->n_expert)
        snprintf(moe, sizeof moe, "-X%dx%d-FX%d", c->n_expert, c->n_expert_used,
                 c->n_ff_exp ? c->n_ff_exp : c->n_ff);
    if (c->name)
        snprintf(name, sizeof name, "%s", c->name);
    else
        snprintf(name, sizeof name, "synth-%s-L%d-E%d-H%d-KV%d-F%d%s-V%d-%s%s", synth_arch(c),
                 c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->n_ff, moe, c->n_vocab,
                 c->tied ? "tied-" : "", c->type);
    int rc = gguf_writer_set_str(w, "general.architecture", a);
    if (!rc) rc = gguf_writer_set_str(w, "general.name", name);
    if (!rc) rc = set_arch_u32(w, a, "context_length", c->n_ctx);
    if (!rc) rc = set_arch_u32(w, a, "embedding_length", c->n_embd);
    if (!rc) rc = set_arch_u32(w, a, "block_count", c->n_layer);
    if (!rc) rc = set_arch_u32(w, a, "feed_forward_length", c->n_ff);
    if (!rc) rc = set_arch_u32(w, a, "attention.head_count", c->n_head);
    if (!rc) rc = set_arch_u32(w, a, "attention.head_count_kv", c->n_head_kv);
    if (!rc && c->head_dim) rc = set_arch_u32(w, a, "attention.key_length", hd);
    if (!rc && c->head_dim) rc = set_arch_u32(w, a, "attention.value_length", hd);
    if (!rc) rc = set_arch_u32(w, a, "rope.dimension_count", hd);
    if (!rc) rc = set_arch_f32(w, a, "rope.freq_base", c->rope_base);
    if (!rc) rc = set_arch_f32(w, a, "attention.layer_norm_rms_epsilon", c->rms_eps);
    if (!rc) rc = set_arch_u32(w, a, "vocab_size", c->n_vocab);
    if (!rc && c->n_expert) rc = set_arch_u32(w, a, "expert_count", c->n_expert);
    if (!rc && c->n_expert) rc = set_arch_u32(w, a, "expert_used_count", c->n_expert_used);
    if (!rc && c->n_ff_exp) rc = set_arch_u32(w, a, "expert_feed_forward_length", c->n_ff_exp);
    if (!rc) rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (!rc) rc = gguf_writer_set_str(w, "tokenizer.ggml.pre", "default");
    if (!rc)
        rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                     (uint64_t)v->n);
    if (!rc)
        rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, v->scores,
                                 (uint64_t)v->n);
    if (!rc)
        rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, v->types,
                                 (uint64_t)v->n);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (!rc) rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (!rc) rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    if (!rc) rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", true);
    if (!rc) rc = gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (!rc) rc = gguf_writer_set_u32(w, "general.file_type", (uint32_t)synth_file_type(c->type));
    return rc;
}

int synth_write(const synth_config *c, const char *path, uint64_t *out_bytes) {
    int rc = synth_validate(c);
    if (rc) return rc;
    if (!path) return err_set(M40LLM_ERR_INVALID_ARG, "synth: NULL output path");
    synth_state st = {.c = c};
    synth_vocab v = {0};
    gguf_writer *w = NULL;
    st.n_threads = c->n_threads > 0 ? c->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (st.n_threads < 1) st.n_threads = 1;
    if (st.n_threads > 256) st.n_threads = 256;
    st.t = calloc((size_t)c->n_layer * SYNTH_LAYER_TENSORS + SYNTH_OTHER_TENSORS, sizeof *st.t);
    if (!st.t) {
        rc = err_set(M40LLM_ERR_OOM, "synth: out of memory for %d layers", c->n_layer);
        goto done;
    }
    if ((rc = build_tensors(&st))) goto done;
    st.rowbuf = malloc((size_t)st.n_threads * (size_t)st.max_ne0 * sizeof(float));
    st.jobs = calloc((size_t)st.n_threads, sizeof *st.jobs);
    st.tid = calloc((size_t)st.n_threads, sizeof *st.tid);
    if (!st.rowbuf || !st.jobs || !st.tid) {
        rc = err_set(M40LLM_ERR_OOM, "synth: out of memory for row buffers");
        goto done;
    }
    if ((rc = vocab_build(c->n_vocab, &v))) goto done;
    if ((rc = gguf_writer_create(&w))) goto done;
    if ((rc = set_metadata(w, c, &v))) goto done;
    for (int i = 0; i < st.n_tensors && !rc; i++) {
        synth_tensor *t = &st.t[i];
        int64_t ne[3] = {t->ne0, t->ne1, t->ne2};
        rc = gguf_writer_add_tensor_fn(w, t->name, t->type, (uint32_t)t->n_dims, ne, synth_fill, t);
    }
    if (rc) goto done;
    if ((rc = gguf_writer_write(w, path))) goto done;
    if (out_bytes) {
        struct stat sb;
        *out_bytes = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    }
done:
    gguf_writer_free(w);
    vocab_free(&v);
    free(st.rowbuf);
    free(st.jobs);
    free(st.tid);
    free(st.t);
    return rc;
}
