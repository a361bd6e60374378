/* What `list`, manifests and serve's memory check need from a GGUF file,
 * read with the GGUF parser (header, metadata and tensor table only). */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "gguf.h"
#include "quant.h"
#include "store.h"

/* llama.cpp's general.file_type values, as its tools name them */
static const char *ftype_name(uint32_t ft) {
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",      [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",
        [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L",  [14] = "Q4_K_S",  [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S", [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL", [26] = "IQ3_S",  [27] = "IQ3_M",
        [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS", [31] = "IQ1_M",  [32] = "BF16",
    };
    return ft < sizeof names / sizeof names[0] ? names[ft] : NULL;
}

static int64_t arch_int(const gguf_file *g, const char *arch, const char *suffix) {
    char key[160];
    int64_t v = 0;
    store_fmt(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_i64(g, key, &v) == M40LLM_OK && v > 0 ? v : 0;
}

static void facts_from(const gguf_file *g, store_model *m) {
    gguf_str s;
    m->arch[0] = '\0';
    if (gguf_get_str(g, "general.architecture", &s) == M40LLM_OK) {
        if (gguf_str_has_nul(s))
            gguf_str_escape(s, m->arch, sizeof m->arch);
        else
            gguf_str_copy(s, m->arch, sizeof m->arch);
    }
    m->n_ctx = m->arch[0] ? arch_int(g, m->arch, "context_length") : 0;
    uint64_t params = 0, bytes[64] = {0};
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        uint64_t n = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) n *= (uint64_t)(t->ne[d] > 0 ? t->ne[d] : 1);
        params += n;
        /* 2-D weights decide the quantization when general.file_type is absent */
        if (t->n_dims >= 2 && t->type >= 0 && t->type < 64) bytes[t->type] += t->nbytes;
    }
    m->n_params = params;
    uint32_t ft = 0;
    const char *q = gguf_get_u32(g, "general.file_type", &ft) == M40LLM_OK ? ftype_name(ft) : NULL;
    if (!q) {
        int best = 0;
        for (int t = 1; t < 64; t++)
            if (bytes[t] > bytes[best]) best = t;
        const quant_type_info *qi = quant_info(best);
        q = qi ? qi->name : "unknown";
    }
    store_fmt(m->quant, sizeof m->quant, "%s", q);
}

int store_gguf_facts(const char *path, store_model *m) {
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g);
    if (rc) return rc;
    facts_from(g, m);
    gguf_close(g);
    return M40LLM_OK;
}

int store_gguf_memory(const char *path, int n_ctx, uint64_t *weights, uint64_t *kv) {
    *weights = *kv = 0;
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g);
    if (rc) return rc;
    store_model m;
    memset(&m, 0, sizeof m);
    facts_from(g, &m);
    uint64_t w = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) w += gguf_tensor_at(g, i)->nbytes;
    int64_t layers = arch_int(g, m.arch, "block_count");
    int64_t embd = arch_int(g, m.arch, "embedding_length");
    int64_t heads = arch_int(g, m.arch, "attention.head_count");
    int64_t kv_heads = arch_int(g, m.arch, "attention.head_count_kv");
    if (!kv_heads) kv_heads = heads;
    int64_t ctx = n_ctx > 0 ? n_ctx : (m.n_ctx > 0 && m.n_ctx < 4096 ? m.n_ctx : 4096);
    gguf_close(g);
    /* K and V, f16, for every layer and position */
    uint64_t head_dim = heads ? (uint64_t)(embd / heads) : 0;
    *weights = w;
    *kv = (uint64_t)layers * (uint64_t)ctx * (uint64_t)kv_heads * head_dim * 2 * 2;
    return M40LLM_OK;
}

void store_fill_facts(store_model *m) {
    if (m->arch[0] && m->quant[0]) return;
    store_model f;
    memset(&f, 0, sizeof f);
    if (store_gguf_facts(m->path, &f) != M40LLM_OK) return;
    store_fmt(m->arch, sizeof m->arch, "%s", f.arch);
    store_fmt(m->quant, sizeof m->quant, "%s", f.quant);
    m->n_params = f.n_params;
    m->n_ctx = f.n_ctx;
}
