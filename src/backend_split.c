#include "backend_split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Length of the comma-separated item at p (up to the next ',' or the end). */
static size_t item_len(const char *p) {
    const char *e = strchr(p, ',');
    return e ? (size_t)(e - p) : strlen(p);
}

int backend_parse_gpus(const char *list, int n_available, bool allow_dup, int *devs, int *n) {
    if (n) *n = 0;
    if (!devs || !n) return err_set(M40LLM_ERR_INVALID_ARG, "backend_parse_gpus: no output");
    if (n_available < 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "backend_parse_gpus: %d GPUs available",
                       n_available);
    if (!list || !*list)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "--gpus \"\": empty list (\"all\", or indices such as \"0,1\")");
    if (!strcmp(list, "all")) {
        if (n_available == 0)
            return err_set(M40LLM_ERR_NO_DEVICE, "--gpus \"all\": no GPU is usable");
        int k = n_available < BACKEND_MAX_GPUS ? n_available : BACKEND_MAX_GPUS;
        for (int i = 0; i < k; i++) devs[i] = i;
        *n = k;
        return M40LLM_OK;
    }
    /* the whole text first: a typo is reported as one whatever the machine */
    int idx[BACKEND_MAX_GPUS], k = 0;
    for (const char *p = list;; p++) {
        size_t len = item_len(p);
        if (len == 0)
            return err_set(M40LLM_ERR_INVALID_ARG, "--gpus \"%s\": item %d is empty", list, k + 1);
        for (size_t i = 0; i < len; i++)
            if (!is_digit(p[i]))
                return err_set(M40LLM_ERR_INVALID_ARG,
                               "--gpus \"%s\": \"%.*s\" is not a GPU index (decimal digits)", list,
                               (int)len, p);
        if (len > 3)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "--gpus \"%s\": GPU index \"%.*s\" has more than 3 digits", list,
                           (int)len, p);
        if (k == BACKEND_MAX_GPUS)
            return err_set(M40LLM_ERR_INVALID_ARG, "--gpus \"%s\": more than %d GPUs", list,
                           BACKEND_MAX_GPUS);
        int v = 0;
        for (size_t i = 0; i < len; i++) v = v * 10 + (p[i] - '0');
        idx[k++] = v;
        p += len;
        if (!*p) break;
    }
    if (n_available == 0)
        return err_set(M40LLM_ERR_NO_DEVICE, "--gpus \"%s\": no GPU is usable", list);
    for (int i = 0; i < k; i++) {
        if (idx[i] >= n_available) {
            if (n_available == 1)
                return err_set(M40LLM_ERR_NO_DEVICE,
                               "--gpus \"%s\": no GPU %d: this machine has 1 (GPU 0)", list,
                               idx[i]);
            return err_set(M40LLM_ERR_NO_DEVICE,
                           "--gpus \"%s\": no GPU %d: this machine has %d (0..%d)", list, idx[i],
                           n_available, n_available - 1);
        }
        for (int j = 0; j < i && !allow_dup; j++)
            if (idx[j] == idx[i])
                return err_set(M40LLM_ERR_INVALID_ARG, "--gpus \"%s\": GPU %d is named twice", list,
                               idx[i]);
    }
    memcpy(devs, idx, (size_t)k * sizeof *idx);
    *n = k;
    return M40LLM_OK;
}

/* One share of --tensor-split: digits, '.', an exponent. Leading signs,
 * spaces, "inf", "nan" and hex are what strtod would also take; the first
 * character and the character set rule them out. */
static bool parse_share(const char *p, size_t len, double *out) {
    char buf[64];
    if (len == 0 || len >= sizeof buf || !(is_digit(p[0]) || p[0] == '.')) return false;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(p[i]) && !strchr(".eE+-", p[i])) return false;
    memcpy(buf, p, len);
    buf[len] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + len || !isfinite(v) || v < 0) return false;
    *out = v;
    return true;
}

int backend_parse_tensor_split(const char *list, int n_gpus, double *props) {
    if (!props) return err_set(M40LLM_ERR_INVALID_ARG, "backend_parse_tensor_split: no output");
    if (n_gpus < 1 || n_gpus > BACKEND_MAX_GPUS)
        return err_set(M40LLM_ERR_INVALID_ARG, "--tensor-split for %d GPUs (1..%d)", n_gpus,
                       BACKEND_MAX_GPUS);
    if (!list || !*list)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "--tensor-split \"\": empty list (one share per GPU, such as \"3,1\")");
    int count = 1;
    for (const char *p = list; *p; p++) count += *p == ',';
    if (count != n_gpus)
        return err_set(M40LLM_ERR_INVALID_ARG, "--tensor-split \"%s\": %d values for %d GPUs", list,
                       count, n_gpus);
    double v[BACKEND_MAX_GPUS], max = 0;
    const char *p = list;
    for (int i = 0; i < count; i++) {
        size_t len = item_len(p);
        if (len == 0)
            return err_set(M40LLM_ERR_INVALID_ARG, "--tensor-split \"%s\": item %d is empty", list,
                           i + 1);
        if (!parse_share(p, len, &v[i]))
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "--tensor-split \"%s\": \"%.*s\" is not a finite number >= 0", list,
                           (int)len, p);
        if (v[i] > max) max = v[i];
        p += len + 1;
    }
    if (max == 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "--tensor-split \"%s\": every share is zero", list);
    /* scaled by the largest first: "1e308,1e308" would sum to infinity */
    double sum = 0;
    for (int i = 0; i < count; i++) sum += v[i] / max;
    for (int i = 0; i < count; i++) props[i] = v[i] / max / sum;
    return M40LLM_OK;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int backend_plan_layers(int n_layer, const double *weights, int n, int *begin) {
    if (!weights || !begin) return err_set(M40LLM_ERR_INVALID_ARG, "backend_plan_layers: no array");
    if (n < 1) return err_set(M40LLM_ERR_INVALID_ARG, "layer split over %d cards", n);
    if (n > n_layer)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "%d cards for %d layers: every card needs at least one layer", n, n_layer);
    double max = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(weights[i]) || weights[i] < 0)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "layer split: weight %d is %g, expected a finite number >= 0", i,
                           weights[i]);
        if (weights[i] > max) max = weights[i];
    }
    if (max == 0) return err_set(M40LLM_ERR_INVALID_ARG, "layer split: all %d weights are zero", n);
    const int m = n - 1; /* inner boundaries begin[1..n-1] */
    int *t = malloc(3 * (size_t)(m > 0 ? m : 1) * sizeof *t);
    if (!t) return err_set(M40LLM_ERR_OOM, "out of memory for a split over %d cards", n);
    int *blk_start = t + m, *scratch = t + 2 * m;
    /* scaled by the largest first, so that the sum stays finite */
    double total = 0, acc = 0;
    for (int i = 0; i < n; i++) total += weights[i] / max;
    for (int i = 1; i < n; i++) {
        acc += weights[i - 1] / max;
        /* stage sizes >= 1 <=> begin[i] - i non-decreasing within 0..n_layer-n */
        t[i - 1] = (int)floor((double)n_layer * (acc / total) + 0.5) - i;
    }
    /* The rounded boundaries moved as little as possible (least total
     * distance) to satisfy that: isotonic L1 regression, pool adjacent
     * violators with the lower median of each pool. Rounded boundaries
     * that already leave every stage a layer are kept as they are. */
    int nb = 0;
    for (int i = 0; i < m; i++) {
        blk_start[nb] = i;
        begin[nb] = t[i]; /* begin[] holds the pools' values meanwhile */
        nb++;
        while (nb > 1 && begin[nb - 2] > begin[nb - 1]) {
            int s = blk_start[nb - 2], len = i + 1 - s;
            memcpy(scratch, t + s, (size_t)len * sizeof *t);
            qsort(scratch, (size_t)len, sizeof *scratch, cmp_int);
            nb--;
            begin[nb - 1] = scratch[(len - 1) / 2];
        }
    }
    /* each pool's value, clamped to the range, to its members */
    for (int b = 0; b < nb; b++) {
        int v = begin[b], end = b + 1 < nb ? blk_start[b + 1] : m;
        if (v < 0) v = 0;
        if (v > n_layer - n) v = n_layer - n;
        for (int i = blk_start[b]; i < end; i++) scratch[i] = v;
    }
    begin[0] = 0;
    for (int i = 1; i < n; i++) begin[i] = scratch[i - 1] + i;
    begin[n] = n_layer;
    free(t);
    return M40LLM_OK;
}

uint64_t backend_stage_weight_bytes(const model *m, int l0, int l1) {
    if (!m || !m->layers || l0 < 0 || l1 > m->cfg.n_layer || l0 >= l1) return 0;
    uint64_t b = m->rope_freqs.nbytes + m->rope_freqs_short.nbytes;
    if (l0 == 0) b += m->tok_embd.nbytes;
    if (l1 == m->cfg.n_layer) {
        b += m->output_norm.nbytes;
        /* tied: the embedding is the head; a stage without layer 0 holds it for that alone */
        if (!m->tied_output || l0 > 0) b += m->output.nbytes;
    }
    for (int il = l0; il < l1; il++) {
        /* every slot, as model_from_gguf sums weight_bytes: the views of a
         * fused tensor add up to it. The cast: the slot list only takes addresses */
        model_tensor *ts[MODEL_LAYER_TENSORS];
        model_layer_tensors((model_layer *)&m->layers[il], ts);
        for (int j = 0; j < MODEL_LAYER_TENSORS; j++)
            if (model_has(ts[j])) b += ts[j]->nbytes;
    }
    return b;
}
