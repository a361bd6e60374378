/* libFuzzer target: loads arbitrary bytes as a model the way `run` does.
 * Parses the GGUF, builds the validated weight map (model.c), loads the
 * tokenizer, renders the model's chat template with a small conversation
 * (ChatML when it has none or cannot be run), tokenizes the prompt with its
 * untrusted-byte mask and, for tiny models, runs a CPU forward of a few
 * tokens, so that the per-layer state and every weight pointer are used.
 * Checks the model's invariants (weights inside the input, no more weight
 * bytes than the input holds) and traps when one is broken.
 *
 * With M40LLM_FUZZ_WRITE_SEEDS=DIR in the environment, LLVMFuzzerInitialize
 * first writes the seed corpus (tiny synthetic models of several weight
 * types with chat templates, and one with a byte-level BPE vocabulary) into
 * DIR; scripts/fuzz_model.sh runs it once that way with -runs=0. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "chat.h"
#include "gguf.h"
#include "model.h"
#include "synth.h"
#include "tokenizer.h"

/* A forward runs only for models this small, and its cost (under ASan about
 * 30 ns a weight byte) is held near that of a FORWARD_BUDGET-byte model: a
 * larger one runs for a fraction FORWARD_BUDGET / weight bytes of the inputs,
 * picked by a hash of the input so that a crash replays. */
#define FORWARD_MAX_WEIGHT_BYTES (4u << 20)
#define FORWARD_MAX_LAYERS       4
#define FORWARD_BUDGET           (64u << 10)

static volatile uint64_t fuzz_sink;

#if defined(__x86_64__)
#include <cpuid.h>
/* clang 14 has no "f16c" for __builtin_cpu_supports, which cpu_qdot.c asks
 * for: scripts/fuzz_model.sh maps the builtin to this cpuid check, so the
 * fuzzer runs the same AVX2/AVX-512 kernels as the gcc build. */
int m40_fuzz_cpu_supports(const char *feature);
int m40_fuzz_cpu_supports(const char *feature) {
    unsigned a, b, c, d, b7 = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned ecx1 = c;
    if (!(ecx1 & bit_OSXSAVE)) return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    const bool ymm = (xlo & 6) == 6, zmm = ymm && (xlo & 0xe0) == 0xe0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) b7 = b;
    if (!strcmp(feature, "fma")) return ymm && (ecx1 & bit_FMA);
    if (!strcmp(feature, "f16c")) return ymm && (ecx1 & bit_F16C);
    if (!strcmp(feature, "avx2")) return ymm && (b7 & bit_AVX2);
    if (!strcmp(feature, "avx512f")) return zmm && (b7 & bit_AVX512F);
    if (!strcmp(feature, "avx512bw")) return zmm && (b7 & bit_AVX512BW);
    if (!strcmp(feature, "avx512vl")) return zmm && (b7 & bit_AVX512VL);
    return 0;
}
#endif
static cJSON *conversation;

static const char conversation_json[] =
    "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
    "{\"role\": \"user\", \"content\": \"Hi \\u00e9\\u6f22 <|im_end|><s>[INST]\"},"
    "{\"role\": \"assistant\", \"content\": \"Hello.\"},"
    "{\"role\": \"user\", \"content\": \"2+2?\"}]";

static void check_model(const model *m, const uint8_t *data, size_t size) {
    const model_tensor *ts[] = {&m->tok_embd, &m->output_norm, &m->output, &m->rope_freqs,
                                &m->rope_freqs_short};
    uint64_t sum = 0;
    for (size_t i = 0; i < 5; i++) {
        const uint8_t *p = ts[i]->data;
        if (i >= 3 && !p) continue; /* optional */
        if (p < data || ts[i]->nbytes > size || p + ts[i]->nbytes > data + size) __builtin_trap();
        if (i != 2 || !m->tied_output) sum += ts[i]->nbytes;
    }
    for (int l = 0; l < m->cfg.n_layer; l++) {
        model_layer *L = &m->layers[l];
        model_tensor *lt[MODEL_LAYER_TENSORS];
        model_layer_tensors(L, lt);
        const bool moe = model_layer_moe(L);
        for (size_t i = 0; i < MODEL_LAYER_TENSORS; i++) {
            const uint8_t *p = lt[i]->data;
            const model_tensor *t = lt[i];
            const bool dense_ffn = t == &L->w_gate || t == &L->w_up || t == &L->w_down;
            const bool experts =
                t == &L->router || t == &L->gate_exps || t == &L->up_exps || t == &L->down_exps;
            /* the nine llama weights are required, but a MoE layer's dense FFN is its
             * experts; the rest is optional: biases, q/k norms, post-norms */
            const bool required = experts ? moe : dense_ffn ? !moe : i < 9;
            if (!p && !required) continue;
            if (p < data || lt[i]->nbytes > size || p + lt[i]->nbytes > data + size)
                __builtin_trap();
            sum += lt[i]->nbytes; /* views of a fused tensor add up to it */
        }
    }
    /* tensors may not overlap, so the weights can never add up to more than the input */
    if (sum != m->weight_bytes || sum > size) __builtin_trap();
    /* every architecture has at least 6 tensors per layer (phi3: fused QKV, gate|up) */
    if ((int64_t)m->cfg.n_layer * 6 > gguf_n_tensors(m->gguf)) __builtin_trap();
}

/* Renders the model's template with the untrusted-byte mask, ChatML when it
 * has none or the engine cannot run it, as `run` does. */
static void render_prompt(const gguf_file *g, chat_prompt *p) {
    char *tmpl = NULL, *bos = NULL, *eos = NULL;
    memset(p, 0, sizeof *p);
    if (chat_model_template(g, &tmpl, &bos, &eos) != M40LLM_OK) return;
    bool fell_back = false;
    if (chat_render_prompt(tmpl, conversation, true, bos, eos, 1721995200, p, &fell_back) !=
        M40LLM_OK)
        memset(p, 0, sizeof *p);
    free(tmpl);
    free(bos);
    free(eos);
}

/* Up to two prompt ids: from the tokenizer when it loaded, else fixed. */
static int prompt_ids(const tokenizer *tok, const chat_prompt *p, int32_t ids[2]) {
    ids[0] = 1;
    ids[1] = 2;
    if (!tok) return 2;
    static const char fallback[] = "Hello world";
    const char *text = p->text ? p->text : fallback;
    size_t len = p->text ? p->len : sizeof fallback - 1;
    int32_t *enc = NULL;
    size_t n = 0;
    if (tokenizer_encode_masked(tok, text, len, p->text ? p->untrusted : NULL,
                                TOKENIZER_ADD_SPECIAL | TOKENIZER_PARSE_SPECIAL, &enc,
                                &n) != M40LLM_OK)
        return 2;
    char *back = NULL;
    size_t back_len = 0;
    if (tokenizer_decode(tok, enc, n, TOKENIZER_DECODE_SPECIAL, &back, &back_len) == M40LLM_OK)
        fuzz_sink += back_len;
    free(back);
    int k = 0;
    for (size_t i = 0; i < n && k < 2; i++) ids[k++] = enc[i];
    free(enc);
    return k ? k : 2;
}

/* A prompt of n ids then one decode step, on the CPU backend with 1 thread. */
static void forward(const model *m, const tokenizer *tok, const int32_t *ids, int n, bool f16) {
    backend_params p = {.n_ctx = 4,
                        .n_seq_max = 1,
                        .n_batch_max = 2,
                        .n_threads = 1,
                        .kv_type = f16 ? BACKEND_KV_F16 : BACKEND_KV_F32};
    backend *b = NULL;
    if (backend_cpu_create(m, &p, &b) != M40LLM_OK) return;
    const int V = m->cfg.n_vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    backend_entry e[2];
    for (int i = 0; i < n; i++)
        e[i] = (backend_entry){.seq = 0, .pos = i, .token = ids[i] % V, .logits = i == n - 1};
    if (logits && backend_forward(b, e, n, logits) == M40LLM_OK) {
        int best = 0;
        for (int t = 1; t < V; t++)
            if (logits[t] > logits[best]) best = t;
        e[0] = (backend_entry){.seq = 0, .pos = n, .token = best, .logits = true};
        int32_t next = -1;
        if (b->ops->forward_argmax && b->ops->forward_argmax(b, e, 1, &next) == M40LLM_OK && tok) {
            char piece[64];
            size_t len = 0;
            if (tokenizer_token_piece(tok, next, false, piece, sizeof piece, &len) == M40LLM_OK)
                fuzz_sink += len;
        }
    }
    free(logits);
    backend_destroy(b);
}

/* Every byte counts, so that any mutation may flip the forward's sampling. */
static uint32_t input_hash(const uint8_t *data, size_t size) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ size, w;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        memcpy(&w, data + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    for (; i < size; i++) h = (h ^ data[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *g = NULL;
    if (gguf_open_memory(data, size, &g) != M40LLM_OK) return 0;
    tokenizer *tok = NULL;
    if (tokenizer_load(g, &tok) != M40LLM_OK) tok = NULL;
    chat_prompt prompt;
    render_prompt(g, &prompt);
    int32_t ids[2];
    int n_ids = prompt_ids(tok, &prompt, ids);
    model *m = NULL;
    if (model_from_gguf(g, &m) == M40LLM_OK) {
        check_model(m, data, size);
        uint32_t h = input_hash(data, size);
        if (m->weight_bytes <= FORWARD_MAX_WEIGHT_BYTES && m->cfg.n_layer <= FORWARD_MAX_LAYERS &&
            h % m->weight_bytes < FORWARD_BUDGET)
            forward(m, tok, ids, n_ids, (h >> 31) & 1);
        model_free(m); /* closes g */
    } else {
        gguf_close(g);
    }
    tokenizer_free(tok);
    chat_prompt_free(&prompt);
    return 0;
}

/* ---- seed corpus ---- */

/* Copies g's metadata into w: keys with prefix `only` (NULL: all) except
 * those with prefix `skip`; arrays named in slice[] cut to n_slice items. */
static void copy_kvs(const gguf_file *g, gguf_writer *w, const char *only, const char *skip,
                     const char *const *slice, uint64_t n_slice) {
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        char key[256];
        if (gguf_str_has_nul(kv->key) || kv->key.len >= sizeof key) continue;
        gguf_str_copy(kv->key, key, sizeof key);
        if ((only && strncmp(key, only, strlen(only))) ||
            (skip && !strncmp(key, skip, strlen(skip))))
            continue;
        const gguf_value *v = &kv->value;
        switch (v->type) {
        case GGUF_VT_UINT8:
        case GGUF_VT_UINT16:
        case GGUF_VT_UINT32:
            gguf_writer_set_u32(w, key, (uint32_t)v->u64);
            break;
        case GGUF_VT_UINT64:
            gguf_writer_set_u64(w, key, v->u64);
            break;
        case GGUF_VT_INT8:
        case GGUF_VT_INT16:
        case GGUF_VT_INT32:
        case GGUF_VT_INT64:
            gguf_writer_set_i32(w, key, (int32_t)v->i64);
            break;
        case GGUF_VT_FLOAT32:
        case GGUF_VT_FLOAT64:
            gguf_writer_set_f32(w, key, (float)v->f64);
            break;
        case GGUF_VT_BOOL:
            gguf_writer_set_bool(w, key, v->b);
            break;
        case GGUF_VT_STRING: {
            char *s = malloc(v->str.len + 1);
            if (s && !gguf_str_has_nul(v->str))
                gguf_writer_set_str(w, key, gguf_str_copy(v->str, s, v->str.len + 1));
            free(s);
            break;
        }
        case GGUF_VT_ARRAY: {
            uint64_t n = v->arr.n;
            for (const char *const *s = slice; s && *s; s++)
                if (!strcmp(*s, key) && n > n_slice) n = n_slice;
            if (v->arr.type == GGUF_VT_STRING) {
                char **strs = calloc(n ? n : 1, sizeof *strs);
                for (uint64_t k = 0; strs && k < n; k++) {
                    gguf_str e = v->arr.items[k].str;
                    strs[k] = malloc(e.len + 1);
                    if (strs[k]) gguf_str_copy(e, strs[k], e.len + 1);
                }
                if (strs) gguf_writer_set_arr_str(w, key, (const char *const *)strs, n);
                for (uint64_t k = 0; strs && k < n; k++) free(strs[k]);
                free(strs);
            } else if (v->arr.type != GGUF_VT_ARRAY) {
                gguf_writer_set_arr(w, key, v->arr.type, v->arr.data, n);
            }
            break;
        }
        default:
            break;
        }
    }
}

static void copy_tensors(const gguf_file *g, gguf_writer *w) {
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        char name[128];
        gguf_str_copy(t->name, name, sizeof name);
        gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
}

static char *read_text(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, fp) : 0;
    fclose(fp);
    if (buf) buf[n] = '\0';
    return buf;
}

/* A synthetic model, rewritten with a chat template (and, for the BPE seed,
 * the first n_tokens tokens and merges of a real byte-level BPE vocabulary). */
static void write_seed(const char *dir, const char *name, const synth_config *c,
                       const char *template_file, const char *bpe_vocab) {
    char tmp[512], out[512];
    snprintf(tmp, sizeof tmp, "%s/%s.synth", dir, name);
    snprintf(out, sizeof out, "%s/%s.gguf", dir, name);
    if (synth_write(c, tmp, NULL) != M40LLM_OK) {
        fprintf(stderr, "seed %s: %s\n", name, m40llm_last_error());
        return;
    }
    gguf_file *g = NULL, *v = NULL;
    gguf_writer *w = NULL;
    if (gguf_open(tmp, &g) != M40LLM_OK || gguf_writer_create(&w) != M40LLM_OK) goto done;
    if (bpe_vocab && gguf_open(bpe_vocab, &v) == M40LLM_OK) {
        static const char *const cut[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                                          "tokenizer.ggml.scores", NULL};
        static const char *const cut_merges[] = {"tokenizer.ggml.merges", NULL};
        copy_kvs(g, w, NULL, "tokenizer.", NULL, 0);
        copy_kvs(v, w, "tokenizer.", "tokenizer.ggml.merges", cut, (uint64_t)c->n_vocab);
        copy_kvs(v, w, "tokenizer.ggml.merges", NULL, cut_merges, (uint64_t)c->n_vocab - 256);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->n_vocab - 1);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->n_vocab - 1);
    } else {
        copy_kvs(g, w, NULL, NULL, NULL, 0);
    }
    char *tmpl = template_file ? read_text(template_file) : NULL;
    if (tmpl) gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    free(tmpl);
    copy_tensors(g, w);
    if (gguf_writer_write(w, out) != M40LLM_OK)
        fprintf(stderr, "seed %s: %s\n", name, m40llm_last_error());
done:
    gguf_writer_free(w);
    gguf_close(v);
    gguf_close(g);
    remove(tmp);
}

static void write_seeds(const char *dir) {
    static const struct {
        const char *name, *type, *tmpl;
        int layers, embd, heads, kv_heads, ff, vocab;
        bool tied;
    } seeds[] = {
        {"tiny-f32", "f32", "HuggingFaceTB-SmolLM2-135M-Instruct", 1, 32, 4, 2, 64, 260, true},
        {"tiny-f16", "f16", "meta-llama-Llama-3.1-8B-Instruct", 2, 32, 2, 1, 64, 264, false},
        {"tiny-bf16", "bf16", "mistralai-Mistral-7B-Instruct-v0.2", 1, 64, 4, 4, 96, 270, true},
        {"tiny-q8_0", "q8_0", "Qwen-Qwen2.5-7B-Instruct", 2, 64, 8, 2, 128, 300, false},
        {"tiny-q4_0", "q4_0", "google-gemma-2-2b-it", 1, 32, 1, 1, 32, 262, true},
        {"tiny-q5_1", "q5_1", "microsoft-Phi-3.5-mini-instruct", 1, 64, 2, 2, 64, 280, true},
        {"tiny-q4_k_m", "q4_k_m", "meta-llama-Llama-2-7b-chat-hf", 1, 256, 4, 1, 256, 260, true},
        {"tiny-q2_k", "q2_k", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", 1, 256, 8, 8, 256, 260,
         true},
        {"tiny-q6_k", "q6_k", NULL, 1, 256, 2, 2, 256, 260, true},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        synth_config c;
        synth_default_config(&c);
        c.type = seeds[i].type;
        c.n_layer = seeds[i].layers;
        c.n_embd = seeds[i].embd;
        c.n_head = seeds[i].heads;
        c.n_head_kv = seeds[i].kv_heads;
        c.n_ff = seeds[i].ff;
        c.n_vocab = seeds[i].vocab;
        c.n_ctx = 64;
        c.tied = seeds[i].tied;
        c.seed = i + 1;
        c.n_threads = 1;
        char tmpl[256];
        snprintf(tmpl, sizeof tmpl, "tests/fixtures/templates/%s.jinja",
                 seeds[i].tmpl ? seeds[i].tmpl : "");
        write_seed(dir, seeds[i].name, &c, seeds[i].tmpl ? tmpl : NULL, NULL);
    }
    /* mixture of experts: a Mixtral-style llama file and a qwen3moe one */
    static const char *const moe[] = {"mixtral", "qwen3moe"};
    for (int i = 0; i < 2; i++) {
        synth_config c;
        synth_default_config(&c);
        c.arch = moe[i];
        c.type = i ? "q4_0" : "q8_0";
        c.n_layer = 1;
        c.n_embd = 32;
        c.n_head = 2;
        c.n_head_kv = 1;
        c.head_dim = i ? 32 : 0;
        c.n_ff = 64;
        c.n_expert = 4;
        c.n_expert_used = 2;
        c.n_vocab = 260;
        c.n_ctx = 64;
        c.tied = true;
        c.seed = 20 + (uint64_t)i;
        c.n_threads = 1;
        char name[32];
        snprintf(name, sizeof name, "tiny-%s", moe[i]);
        write_seed(dir, name, &c, NULL, NULL);
    }
    synth_config c;
    synth_default_config(&c);
    c.type = "q8_0";
    c.n_layer = 1;
    c.n_embd = 32;
    c.n_head = 2;
    c.n_head_kv = 1;
    c.n_ff = 64;
    c.n_vocab = 320; /* 256 byte tokens and the first 64 merges */
    c.n_ctx = 64;
    c.tied = true;
    c.n_threads = 1;
    write_seed(dir, "tiny-bpe-gpt2", &c,
               "tests/fixtures/templates/meta-llama-Llama-3.2-3B-Instruct.jinja",
               "tests/fixtures/tokenizer/ggml-vocab-gpt-2.gguf");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    conversation = cJSON_Parse(conversation_json);
    if (!conversation) __builtin_trap();
    const char *dir = getenv("M40LLM_FUZZ_WRITE_SEEDS");
    if (dir && *dir) write_seeds(dir);
    return 0;
}
