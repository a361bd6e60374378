/* The reference quantizers against llama-quantize: every quantized tensor of
 * the reference fixtures was made from synth-f32.gguf's weights by
 * llama.cpp's (non-imatrix) quantizers; quantizing the same F32 rows here
 * must give the same bytes. Also dequantizes every tensor once (each type
 * through quant_dequantize_row and quant_dot_row). */
#include <stdint.h>

#include "check.h"
#include "gguf.h"
#include "m40llm.h"
#include "quant.h"

static const char *const files[] = {
    "synth-f16.gguf",    "synth-bf16.gguf",   "synth-q8_0.gguf",   "synth-q4_0.gguf",
    "synth-q4_1.gguf",   "synth-q5_0.gguf",   "synth-q5_1.gguf",   "synth-q2_k.gguf",
    "synth-q3_k_m.gguf", "synth-q4_k_m.gguf", "synth-q5_k_m.gguf", "synth-q6_k.gguf",
};

int main(void) {
    char path[1024];
    gguf_file *src = NULL;
    int rc = gguf_open(check_fixture("reference/synth-f32.gguf", path, sizeof path), &src);
    if (rc) SKIP("%s: %s", path, m40llm_last_error());
    int seen[QT_COUNT] = {0};
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        gguf_file *f = NULL;
        char rel[256];
        snprintf(rel, sizeof rel, "reference/%s", files[fi]);
        rc = gguf_open(check_fixture(rel, path, sizeof path), &f);
        CHECKF(rc == M40LLM_OK, "%s: %s", path, m40llm_last_error());
        if (rc) continue;
        int same = 0, tested = 0;
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            char name[128];
            gguf_str_copy(t->name, name, sizeof name);
            if (t->type == QT_F32) continue; /* norms: nothing quantized */
            const gguf_tensor *s = gguf_find_tensor(src, name);
            CHECKF(s && s->type == QT_F32, "%s: no F32 source for %s", files[fi], name);
            if (!s || s->type != QT_F32) continue;
            int64_t n = 1;
            for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d];
            size_t nb = quant_row_size(t->type, n);
            CHECKF(nb == t->nbytes, "%s %s: %zu bytes, expected %zu", files[fi], name, t->nbytes,
                   nb);
            if (nb != t->nbytes) continue;
            uint8_t *q = malloc(nb);
            float *y = malloc((size_t)n * sizeof(float));
            if (!q || !y) {
                free(q);
                free(y);
                CHECK(!"out of memory");
                continue;
            }
            /* whole tensor as one row: every row length is a multiple of 256 here */
            CHECK(quant_quantize_row(t->type, s->data, q, n) == M40LLM_OK);
            tested++;
            if (memcmp(q, t->data, nb) == 0) {
                same++;
            } else {
                size_t k = 0;
                while (k < nb && q[k] == ((const uint8_t *)t->data)[k]) k++;
                CHECKF(0, "%s %s (%s): first differing byte %zu of %zu", files[fi], name,
                       quant_info(t->type)->name, k, nb);
            }
            /* dequantized tensor is close to the source and its dot agrees */
            CHECK(quant_dequantize_row(t->type, t->data, y, n) == M40LLM_OK);
            double se = 0, s2 = 0, dot = 0, mag = 0;
            const float *x = s->data;
            for (int64_t k = 0; k < n; k++) {
                se += ((double)y[k] - x[k]) * ((double)y[k] - x[k]);
                s2 += (double)x[k] * x[k];
                dot += (double)y[k] * x[k];
                mag += fabs((double)y[k] * x[k]);
            }
            float got = quant_dot_row(t->type, t->data, x, n);
            CHECKF(fabs(got - dot) <= 1e-5 * mag, "%s %s: dot %g vs %g", files[fi], name, got, dot);
            CHECKF(sqrt(se / s2) < 0.4, "%s %s: rms error %g", files[fi], name, sqrt(se / s2));
            if (!seen[t->type]++)
                printf("%-5s rms err/rms %.5f (%s)\n", quant_info(t->type)->name, sqrt(se / s2),
                       name);
            free(q);
            free(y);
        }
        printf("%s: %d/%d tensors byte-identical after re-quantizing\n", files[fi], same, tested);
        CHECK(tested > 0);
        gguf_close(f);
    }
    gguf_close(src);
    return check_summary("test_quant_fixtures");
}
