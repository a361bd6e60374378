/* m40-llm show FILE [--json] [--full]: header, model summary, every metadata
 * key with its type and value, and the tensor table of a GGUF file.
 *
 * Long arrays (more than SHOW_ARRAY_HEAD items) and long strings are
 * abbreviated unless --full; --json keeps the same rule, and its
 * "array_lengths" object always gives the true length of every array. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_backend.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "err.h"
#include "store/store.h"

#define SHOW_ARRAY_HEAD 16  /* array items shown when abbreviating */
#define SHOW_STRING_MAX 200 /* string bytes shown in text mode when abbreviating */

typedef struct show_opts {
    bool json, full;
} show_opts;

/* Model summary from the conventional "<arch>.*" keys; -1 where absent. */
typedef struct show_summary {
    char arch[64];
    int64_t layers, embd, heads, kv_heads, ff, ctx, vocab;
    int64_t experts, experts_used; /* <arch>.expert_count / expert_used_count */
    int64_t n_params;              /* sum of tensor element counts */
    int64_t n_params_active;       /* of those, what one token uses (the model loads; MoE) */
    char features[384]; /* the architecture's special features, or why it does not load */
    bool loads;         /* the model loads (features holds them) */
} show_summary;

static int64_t arch_key(const gguf_file *f, const char *arch, const char *suffix) {
    char key[160];
    int64_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_i64(f, key, &v) == M40LLM_OK ? v : -1;
}

static void summarize(const gguf_file *f, show_summary *s) {
    gguf_str a = {0, NULL};
    s->arch[0] = '\0';
    if (gguf_get_str(f, "general.architecture", &a) == M40LLM_OK) {
        /* raw, to find "<arch>." keys (printed escaped); with a NUL it would
         * pass for its prefix ("llama"), so escaped: it then finds none */
        if (gguf_str_has_nul(a))
            gguf_str_escape(a, s->arch, sizeof s->arch);
        else
            gguf_str_copy(a, s->arch, sizeof s->arch);
    }
    s->layers = arch_key(f, s->arch, "block_count");
    s->embd = arch_key(f, s->arch, "embedding_length");
    s->heads = arch_key(f, s->arch, "attention.head_count");
    s->kv_heads = arch_key(f, s->arch, "attention.head_count_kv");
    if (s->kv_heads < 0) s->kv_heads = s->heads; /* absent means no GQA */
    s->ff = arch_key(f, s->arch, "feed_forward_length");
    s->ctx = arch_key(f, s->arch, "context_length");
    s->experts = arch_key(f, s->arch, "expert_count");
    s->experts_used = arch_key(f, s->arch, "expert_used_count");
    s->n_params_active = -1;
    const gguf_value *tok;
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &tok) == M40LLM_OK)
        s->vocab = (int64_t)tok->arr.n;
    else if (emb && emb->n_dims >= 2)
        s->vocab = emb->ne[1];
    else
        s->vocab = arch_key(f, s->arch, "vocab_size");
    s->n_params = 0;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        s->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
}

/* ---- text output ---- */

/* Prints a string quoted, escaping control bytes, cut to max bytes (0: all). */
static void print_quoted(FILE *o, gguf_str s, uint64_t max) {
    uint64_t n = max && s.len > max ? max : s.len;
    fputc('"', o);
    cli_put_escaped(o, s.data, (size_t)n, '"');
    fputc('"', o);
    if (n < s.len) fprintf(o, "... (%" PRIu64 " bytes)", s.len);
}

static void print_value(FILE *o, const gguf_value *v, const show_opts *op);

static void print_array(FILE *o, const gguf_value *v, const show_opts *op) {
    uint64_t n = v->arr.n;
    uint64_t shown = op->full || n <= SHOW_ARRAY_HEAD ? n : SHOW_ARRAY_HEAD / 2;
    fputc('[', o);
    for (uint64_t i = 0; i < shown; i++) {
        if (i) fputs(", ", o);
        gguf_value item;
        if (gguf_arr_value(v, i, &item) != M40LLM_OK) break;
        print_value(o, &item, op);
    }
    if (shown < n) fprintf(o, ", ... (%" PRIu64 " items)", n);
    fputc(']', o);
}

static void print_value(FILE *o, const gguf_value *v, const show_opts *op) {
    switch (v->type) {
    case GGUF_VT_UINT8:
    case GGUF_VT_UINT16:
    case GGUF_VT_UINT32:
    case GGUF_VT_UINT64:
        fprintf(o, "%" PRIu64, v->u64);
        break;
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64:
        fprintf(o, "%" PRId64, v->i64);
        break;
    case GGUF_VT_FLOAT32:
        fprintf(o, "%.9g", v->f64);
        break;
    case GGUF_VT_FLOAT64:
        fprintf(o, "%.17g", v->f64);
        break;
    case GGUF_VT_BOOL:
        fputs(v->b ? "true" : "false", o);
        break;
    case GGUF_VT_STRING:
        print_quoted(o, v->str, op->full ? 0 : SHOW_STRING_MAX);
        break;
    case GGUF_VT_ARRAY:
        print_array(o, v, op);
        break;
    default:
        fputs("?", o);
        break;
    }
}

/* "array[string]" or "uint32" */
static const char *type_label(const gguf_value *v, char *buf, size_t n) {
    if (v->type != GGUF_VT_ARRAY) return gguf_vtype_name(v->type);
    snprintf(buf, n, "array[%s]", gguf_vtype_name(v->arr.type));
    return buf;
}

static void shape_str(const gguf_tensor *t, char *buf, size_t n) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < t->n_dims && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

/* Where a named model comes from (nothing for a plain path). */
static void show_origin(FILE *o, const store_model *m) {
    if (m->origin == STORE_PATH) return;
    fputs("name:       ", o);
    cli_put_escaped(o, m->name, strlen(m->name), 0);
    fprintf(o, "\nwhere:      %s\n", store_origin_str(m->origin));
    if (m->source[0]) {
        fputs("source:     ", o);
        cli_put_escaped(o, m->source, strlen(m->source), 0);
        fputc('\n', o);
    }
    if (m->revision[0]) fprintf(o, "revision:   %s\n", m->revision);
    for (int i = 0; i < m->n_parts; i++)
        if (m->parts[i].sha256[0]) fprintf(o, "sha256:     %s\n", m->parts[i].sha256);
    if (m->n_parts > 1) fprintf(o, "parts:      %d\n", m->n_parts);
}

/* A string key shown whole in the header (license), escaped. */
static void show_key_line(FILE *o, const gguf_file *f, const char *key, const char *label) {
    gguf_str v;
    if (gguf_get_str(f, key, &v) != M40LLM_OK) return;
    fprintf(o, "  %-13s ", label);
    cli_put_escaped(o, v.data, (size_t)v.len, 0);
    fputc('\n', o);
}

static void show_text(FILE *o, const char *path, const gguf_file *f, const show_summary *s,
                      const show_opts *op, const store_model *m) {
    show_origin(o, m);
    fprintf(o, "file:       %s\n", path);
    fprintf(o, "version:    %" PRIu32 "\n", gguf_version(f));
    fprintf(o, "alignment:  %" PRIu64 "\n", gguf_alignment(f));
    fprintf(o, "size:       %" PRIu64 " bytes (data section at offset %" PRIu64 ")\n",
            gguf_file_size(f), gguf_data_offset(f));
    fprintf(o, "metadata:   %" PRId64 " keys\n", gguf_n_kv(f));
    fprintf(o, "tensors:    %" PRId64 " (%.2f M parameters)\n", gguf_n_tensors(f),
            (double)s->n_params / 1e6);
    if (s->arch[0] && s->layers >= 0) {
        fputs("\nmodel:\n  architecture  ", o);
        cli_put_escaped(o, s->arch, strlen(s->arch), 0); /* from the file */
        fputc('\n', o);
        const struct {
            const char *name;
            int64_t v;
        } rows[] = {
            {"layers", s->layers},     {"embd", s->embd},       {"heads", s->heads},
            {"kv heads", s->kv_heads}, {"ff", s->ff},           {"vocab", s->vocab},
            {"context", s->ctx},       {"experts", s->experts}, {"experts used", s->experts_used}};
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
            if (rows[i].v >= 0) fprintf(o, "  %-13s %" PRId64 "\n", rows[i].name, rows[i].v);
        if (s->experts > 0 && s->n_params_active >= 0 && s->n_params_active < s->n_params)
            fprintf(o, "  %-13s %.2f M parameters per token (of %.2f M)\n", "active",
                    (double)s->n_params_active / 1e6, (double)s->n_params / 1e6);
        fprintf(o, "  %-13s %s\n", "quantization", m->quant[0] ? m->quant : "unknown");
        /* escaped: an error message may quote text from the file */
        fprintf(o, "  %-13s ", s->loads ? "features" : "loads");
        if (!s->loads) fputs("no: ", o);
        cli_put_escaped(o, s->features, strlen(s->features), 0);
        fputc('\n', o);
        fprintf(o, "  %-13s %s\n", "chat template",
                gguf_find_kv(f, "tokenizer.chat_template") ? "yes (tokenizer.chat_template)"
                                                           : "none");
        show_key_line(o, f, "general.license", "license");
    }
    fprintf(o, "\nmetadata:\n");
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        char tl[40];
        fputs("  ", o);
        cli_put_name(o, kv->key.data, (size_t)kv->key.len, 40); /* names are escaped too */
        fprintf(o, " %-14s ", type_label(&kv->value, tl, sizeof tl));
        print_value(o, &kv->value, op);
        fputc('\n', o);
    }
    fprintf(o, "\ntensors:\n  %5s  %-36s %-5s %-24s %12s %12s\n", "#", "name", "type", "shape",
            "offset", "bytes");
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char shape[128];
        shape_str(t, shape, sizeof shape);
        fprintf(o, "  %5" PRId64 "  ", i);
        cli_put_name(o, t->name.data, (size_t)t->name.len, 36);
        fprintf(o, " %-5s %-24s %12" PRIu64 " %12zu\n", quant_info(t->type)->name, shape, t->offset,
                t->nbytes);
    }
}

/* ---- JSON output ---- */

/* A NUL-terminated copy with invalid UTF-8 replaced by U+FFFD (JSON must be UTF-8). */
static char *utf8_clean(gguf_str s) {
    char *out = malloc((size_t)s.len * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s.data;
    for (uint64_t i = 0; i < s.len;) {
        unsigned c = p[i];
        int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n > 0 && i + (uint64_t)n <= s.len && c != 0;
        for (int k = 1; ok && k < n; k++) ok = (p[i + k] & 0xc0) == 0x80;
        if (ok && n > 1) { /* reject overlong forms, surrogates and values past U+10FFFF */
            uint32_t cp = c & (0x7f >> n);
            for (int k = 1; k < n; k++) cp = cp << 6 | (p[i + k] & 0x3f);
            ok = !(cp < (n == 2   ? 0x80u
                         : n == 3 ? 0x800u
                                  : 0x10000u) ||
                   (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff);
        }
        if (ok) {
            memcpy(out + o, p + i, (size_t)n);
            o += (size_t)n;
            i += (uint64_t)n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

static cJSON *json_str(gguf_str s) {
    char *c = utf8_clean(s);
    cJSON *j = cJSON_CreateString(c ? c : "");
    free(c);
    return j;
}

/* Numbers beyond 2^53 do not survive a double: give them as strings. */
static cJSON *json_u64(uint64_t v) {
    if (v <= (1ull << 53)) return cJSON_CreateNumber((double)v);
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateString(buf);
}
static cJSON *json_i64(int64_t v) {
    if (v >= -(1ll << 53) && v <= (1ll << 53)) return cJSON_CreateNumber((double)v);
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_CreateString(buf);
}

static cJSON *json_value(const gguf_value *v, const show_opts *op) {
    switch (v->type) {
    case GGUF_VT_UINT8:
    case GGUF_VT_UINT16:
    case GGUF_VT_UINT32:
    case GGUF_VT_UINT64:
        return json_u64(v->u64);
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64:
        return json_i64(v->i64);
    case GGUF_VT_FLOAT32:
    case GGUF_VT_FLOAT64:
        return cJSON_CreateNumber(v->f64);
    case GGUF_VT_BOOL:
        return cJSON_CreateBool(v->b);
    case GGUF_VT_STRING:
        return json_str(v->str);
    case GGUF_VT_ARRAY:
        break;
    default:
        return cJSON_CreateNull();
    }
    cJSON *a = cJSON_CreateArray();
    uint64_t n = op->full || v->arr.n <= SHOW_ARRAY_HEAD ? v->arr.n : SHOW_ARRAY_HEAD;
    for (uint64_t i = 0; a && i < n; i++) {
        gguf_value item;
        if (gguf_arr_value(v, i, &item) != M40LLM_OK) break;
        cJSON_AddItemToArray(a, json_value(&item, op));
    }
    return a;
}

/* cJSON's text with DEL and the C1 controls (U+0080..U+009F, which some
 * terminals obey as escapes) written as \u escapes too: cJSON escapes only
 * bytes below 0x20. Outside strings its text is ASCII, so bytes are enough. */
static void put_json(FILE *o, const char *txt) {
    for (const unsigned char *p = (const unsigned char *)txt; *p; p++) {
        if (*p == 0x7f) {
            fputs("\\u007f", o);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fprintf(o, "\\u%04x", p[1]);
            p++;
        } else {
            fputc(*p, o);
        }
    }
}

static int show_json(FILE *o, const gguf_file *f, const show_summary *s, const show_opts *op,
                     const store_model *sm) {
    cJSON *root = cJSON_CreateObject();
    if (sm->origin != STORE_PATH) {
        cJSON *st = cJSON_AddObjectToObject(root, "model");
        cJSON_AddStringToObject(st, "name", sm->name);
        cJSON_AddStringToObject(st, "where", store_origin_str(sm->origin));
        cJSON_AddStringToObject(st, "path", sm->path);
        cJSON_AddStringToObject(st, "source", sm->source);
        cJSON_AddStringToObject(st, "revision", sm->revision);
        cJSON_AddStringToObject(st, "sha256", sm->n_parts ? sm->parts[0].sha256 : "");
        cJSON_AddNumberToObject(st, "size", (double)sm->size);
        cJSON_AddNumberToObject(st, "parts", sm->n_parts);
    }
    cJSON_AddNumberToObject(root, "version", gguf_version(f));
    cJSON_AddNumberToObject(root, "alignment", (double)gguf_alignment(f));
    cJSON_AddNumberToObject(root, "data_offset", (double)gguf_data_offset(f));
    cJSON_AddNumberToObject(root, "file_size", (double)gguf_file_size(f));
    if (s->arch[0] && s->layers >= 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "summary");
        cJSON_AddStringToObject(m, "architecture", s->arch);
        const struct {
            const char *name;
            int64_t v;
        } rows[] = {
            {"layers", s->layers},     {"embd", s->embd},       {"heads", s->heads},
            {"kv_heads", s->kv_heads}, {"ff", s->ff},           {"vocab", s->vocab},
            {"context", s->ctx},       {"experts", s->experts}, {"experts_used", s->experts_used}};
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
            if (rows[i].v >= 0) cJSON_AddNumberToObject(m, rows[i].name, (double)rows[i].v);
        cJSON_AddNumberToObject(m, "params", (double)s->n_params);
        if (s->n_params_active >= 0)
            cJSON_AddNumberToObject(m, "params_active", (double)s->n_params_active);
        cJSON_AddStringToObject(m, "quantization", sm->quant[0] ? sm->quant : "unknown");
        cJSON_AddBoolToObject(m, "loads", s->loads);
        cJSON_AddStringToObject(m, s->loads ? "features" : "load_error", s->features);
    }
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON *types = cJSON_AddObjectToObject(root, "metadata_types");
    cJSON *lens = cJSON_AddObjectToObject(root, "array_lengths");
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        char *key = utf8_clean(kv->key);
        char tl[40];
        if (!key) continue;
        cJSON_AddItemToObject(meta, key, json_value(&kv->value, op));
        cJSON_AddStringToObject(types, key, type_label(&kv->value, tl, sizeof tl));
        if (kv->value.type == GGUF_VT_ARRAY)
            cJSON_AddItemToObject(lens, key, json_u64(kv->value.arr.n));
        free(key);
    }
    cJSON *ts = cJSON_AddArrayToObject(root, "tensors");
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToObject(j, "name", json_str(t->name));
        cJSON_AddStringToObject(j, "type", quant_info(t->type)->name);
        cJSON *shape = cJSON_AddArrayToObject(j, "shape");
        for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(shape, json_i64(t->ne[d]));
        cJSON_AddItemToObject(j, "offset", json_u64(t->offset));
        cJSON_AddItemToObject(j, "size", json_u64(t->nbytes));
        cJSON_AddItemToArray(ts, j);
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) {
        fprintf(stderr, "m40-llm: show: out of memory building JSON\n");
        return 1;
    }
    put_json(o, txt);
    fputc('\n', o);
    cJSON_free(txt);
    return 0;
}

static void show_usage(FILE *o) {
    fprintf(o,
            "usage: m40-llm show FILE [--json] [--full]\n"
            "  FILE: a GGUF path, or a model name looked up as for run\n"
            "  prints the header, a model summary (layers, embd, heads, kv heads, ff, vocab),\n"
            "  every metadata key with type and value, and the tensor table\n"
            "  (name, type, shape, offset in the data section, bytes).\n"
            "  --json  one JSON object: {version, alignment, data_offset, file_size, summary,\n"
            "          metadata:{key:value}, metadata_types:{key:type},\n"
            "          array_lengths:{key:n}, tensors:[{name,type,shape,offset,size}]}\n"
            "  --full  print arrays and strings whole; by default arrays longer than %d\n"
            "          items show their first items (text: %d, JSON: %d) and text strings are\n"
            "          cut at %d bytes\n",
            SHOW_ARRAY_HEAD, SHOW_ARRAY_HEAD / 2, SHOW_ARRAY_HEAD, SHOW_STRING_MAX);
}

int cmd_show(int argc, char **argv) {
    show_opts op = {false, false};
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            op.json = true;
        } else if (!strcmp(argv[i], "--full")) {
            op.full = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            show_usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "m40-llm: show: unexpected argument '%s'\n", argv[i]);
            show_usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        show_usage(stderr);
        return 2;
    }
    /* FILE may also name a model (store, ollama:, hf:), as for run */
    store_model *sm = calloc(1, sizeof *sm);
    if (!sm) return cli_fail("show", err_set(M40LLM_ERR_OOM, "out of memory"));
    int rc = store_resolve(path, sm);
    gguf_file *f = NULL;
    if (rc == M40LLM_OK) rc = gguf_open(sm->path, &f);
    if (rc) {
        free(sm);
        return cli_fail("show", rc);
    }
    store_fill_facts(sm);
    show_summary s;
    summarize(f, &s);
    /* the normalized description's features, from a second (cheap) mapping */
    model *md = NULL;
    s.loads = model_load(sm->path, &md) == M40LLM_OK;
    if (s.loads) {
        model_describe_features(md, s.features, sizeof s.features);
        uint64_t total = 0, active = 0;
        model_param_counts(md, &total, &active);
        s.n_params_active = (int64_t)active;
    } else
        snprintf(s.features, sizeof s.features, "%s", m40llm_last_error());
    model_free(md);
    err_clear();
    int ret = 0;
    if (op.json)
        ret = show_json(stdout, f, &s, &op, sm);
    else
        show_text(stdout, sm->path, f, &s, &op, sm);
    gguf_close(f);
    free(sm);
    if (!cli_flush_stdout()) ret = 1; /* main reports why */
    return ret;
}
