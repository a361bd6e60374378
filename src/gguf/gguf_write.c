/* GGUF v3 writer. Metadata (keys, strings, arrays) is copied when set;
 * tensor data is referenced or produced by a callback at write time. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "fileio.h"
#include "gguf_internal.h"
#include "quant.h"

typedef struct wkv {
    char *key;
    gguf_vtype type;
    uint8_t raw[8]; /* scalar value, little-endian, gguf_vtype_size(type) bytes */
    char *str;      /* STRING value */
    gguf_vtype arr_type;
    uint64_t arr_n;
    void *arr_data;  /* [arr_n] packed elements of a fixed-size type */
    char **arr_strs; /* [arr_n] for string arrays */
} wkv;

typedef struct wtensor {
    char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    size_t nbytes;
    const void *data; /* or fill/ctx */
    gguf_fill_fn fill;
    void *ctx;
    uint64_t offset; /* relative to the data section, set by gguf_writer_write */
} wtensor;

struct gguf_writer {
    wkv *kvs; /* [n_kv] */
    size_t n_kv, cap_kv;
    wtensor *tensors; /* [n_tensors] */
    size_t n_tensors, cap_tensors;
    uint32_t alignment;
};

static void wkv_clear(wkv *kv) {
    free(kv->str);
    free(kv->arr_data);
    for (uint64_t i = 0; kv->arr_strs && i < kv->arr_n; i++) free(kv->arr_strs[i]);
    free(kv->arr_strs);
    kv->str = NULL;
    kv->arr_data = NULL;
    kv->arr_strs = NULL;
    kv->arr_n = 0;
}

int gguf_writer_create(gguf_writer **out) {
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "gguf_writer_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return err_set(M40LLM_ERR_OOM, "gguf writer: no memory");
    (*out)->alignment = GGUF_DEFAULT_ALIGNMENT;
    return M40LLM_OK;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        wkv_clear(&w->kvs[i]);
        free(w->kvs[i].key);
    }
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* Finds or appends the entry for key, emptied and ready for a new value. */
static int kv_slot(gguf_writer *w, const char *key, wkv **out) {
    if (!w || !key) return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: NULL writer or key");
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, key)) {
            wkv_clear(&w->kvs[i]);
            *out = &w->kvs[i];
            return M40LLM_OK;
        }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *k = realloc(w->kvs, cap * sizeof *k);
        if (!k) return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for key '%s'", key);
        w->kvs = k;
        w->cap_kv = cap;
    }
    wkv *kv = &w->kvs[w->n_kv];
    memset(kv, 0, sizeof *kv);
    if (!(kv->key = strdup(key)))
        return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for key '%s'", key);
    w->n_kv++;
    *out = kv;
    return M40LLM_OK;
}

static int set_scalar(gguf_writer *w, const char *key, gguf_vtype t, const void *v) {
    wkv *kv;
    int rc = kv_slot(w, key, &kv);
    if (rc) return rc;
    kv->type = t;
    memcpy(kv->raw, v, gguf_vtype_size(t));
    return M40LLM_OK;
}

int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment) {
    if (!w) return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: NULL writer");
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > (1u << 30))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "gguf writer: alignment %" PRIu32 " is not a power of two in 1..2^30",
                       alignment);
    w->alignment = alignment;
    return set_scalar(w, "general.alignment", GGUF_VT_UINT32, &alignment);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    /* the alignment key decides the layout, so route it through the checked setter */
    if (key && !strcmp(key, "general.alignment")) return gguf_writer_set_alignment(w, v);
    return set_scalar(w, key, GGUF_VT_UINT32, &v);
}
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    return set_scalar(w, key, GGUF_VT_INT32, &v);
}
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) {
    return set_scalar(w, key, GGUF_VT_UINT64, &v);
}
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    return set_scalar(w, key, GGUF_VT_FLOAT32, &v);
}
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, GGUF_VT_BOOL, &b);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    if (!v) return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: NULL string for key '%s'", key);
    wkv *kv;
    int rc = kv_slot(w, key, &kv);
    if (rc) return rc;
    kv->type = GGUF_VT_STRING;
    if (!(kv->str = strdup(v)))
        return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for key '%s'", key);
    return M40LLM_OK;
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype type, const void *data,
                        uint64_t n) {
    size_t esz = gguf_vtype_size(type);
    if (!esz)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "gguf writer: key '%s': array element type %d is not fixed-size",
                       key ? key : "(null)", (int)type);
    if (n && !data)
        return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: key '%s': NULL array data",
                       key ? key : "(null)");
    if (n > SIZE_MAX / esz)
        return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: key '%s': array too large", key);
    wkv *kv;
    int rc = kv_slot(w, key, &kv);
    if (rc) return rc;
    kv->type = GGUF_VT_ARRAY;
    kv->arr_type = type;
    if (n) {
        if (!(kv->arr_data = malloc((size_t)n * esz)))
            return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for array '%s'", key);
        memcpy(kv->arr_data, data, (size_t)n * esz);
    }
    kv->arr_n = n;
    return M40LLM_OK;
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    if (n && !strs)
        return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string array",
                       key ? key : "(null)");
    if (n > SIZE_MAX / sizeof(char *))
        return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: key '%s': array too large", key);
    wkv *kv;
    int rc = kv_slot(w, key, &kv);
    if (rc) return rc;
    kv->type = GGUF_VT_ARRAY;
    kv->arr_type = GGUF_VT_STRING;
    if (!n) return M40LLM_OK;
    if (!(kv->arr_strs = calloc((size_t)n, sizeof *kv->arr_strs)))
        return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for array '%s'", key);
    kv->arr_n = n; /* set first so a partial copy is freed by wkv_clear */
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i])
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "gguf writer: key '%s': string %" PRIu64 " is NULL", key, i);
        if (!(kv->arr_strs[i] = strdup(strs[i])))
            return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for array '%s'", key);
    }
    return M40LLM_OK;
}

static int add_tensor(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                      const int64_t *ne, wtensor *proto) {
    if (!w || !name || !ne) return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    const quant_type_info *q = quant_info(type);
    if (!q)
        return err_set(M40LLM_ERR_UNSUPPORTED, "gguf writer: tensor '%s': unknown type %d", name,
                       type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': %" PRIu32 " dimensions, not 1..%d", name, n_dims,
                       GGUF_MAX_DIMS);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: duplicate tensor '%s'", name);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) proto->ne[d] = 1;
    uint64_t nbytes = 0;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "gguf writer: tensor '%s': dimension %" PRIu32 " is %" PRId64, name, d,
                           ne[d]);
        proto->ne[d] = ne[d];
    }
    if (ne[0] % q->block_size)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "gguf writer: tensor '%s': row length %" PRId64
                       " is not a multiple of the %s block size %d",
                       name, ne[0], q->name, q->block_size);
    nbytes = (uint64_t)(ne[0] / q->block_size);
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(nbytes, d ? (uint64_t)proto->ne[d] : (uint64_t)q->type_size,
                                   &nbytes) ||
            nbytes > SIZE_MAX)
            return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: tensor '%s' is too large", name);
    if (proto->fill == NULL && proto->nbytes != nbytes)
        return err_set(
            M40LLM_ERR_INVALID_ARG,
            "gguf writer: tensor '%s': %zu bytes given, its type and shape need %" PRIu64, name,
            proto->nbytes, nbytes);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        wtensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t) return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for tensor '%s'", name);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    proto->nbytes = (size_t)nbytes;
    proto->type = type;
    proto->n_dims = n_dims;
    if (!(proto->name = strdup(name)))
        return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for tensor '%s'", name);
    w->tensors[w->n_tensors++] = *proto;
    return M40LLM_OK;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                           const int64_t *ne, const void *data, size_t nbytes) {
    if (!data && nbytes)
        return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': NULL data",
                       name ? name : "(null)");
    wtensor t = {0};
    t.data = data;
    t.nbytes = nbytes;
    return add_tensor(w, name, type, n_dims, ne, &t);
}

int gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                              const int64_t *ne, gguf_fill_fn fill, void *ctx) {
    if (!fill)
        return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': NULL fill function",
                       name ? name : "(null)");
    wtensor t = {0};
    t.fill = fill;
    t.ctx = ctx;
    return add_tensor(w, name, type, n_dims, ne, &t);
}

/* ---- serialization ---- */

typedef struct wout {
    FILE *fp;
    uint64_t pos; /* bytes written so far */
    bool failed;
} wout;

static void put(wout *o, const void *p, size_t n) {
    if (o->failed || !n) return;
    if (fwrite(p, 1, n, o->fp) != n) o->failed = true;
    o->pos += n;
}
static void put_u32(wout *o, uint32_t v) {
    put(o, &v, 4);
}
static void put_u64(wout *o, uint64_t v) {
    put(o, &v, 8);
}
static void put_str(wout *o, const char *s) {
    size_t n = strlen(s);
    put_u64(o, n);
    put(o, s, n);
}
static void put_pad(wout *o, uint64_t alignment) {
    static const uint8_t zeros[256];
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad && !o->failed) {
        size_t n = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        put(o, zeros, n);
        pad -= n;
    }
}

static void put_kv(wout *o, const wkv *kv) {
    put_str(o, kv->key);
    put_u32(o, (uint32_t)kv->type);
    if (kv->type == GGUF_VT_STRING) {
        put_str(o, kv->str);
    } else if (kv->type == GGUF_VT_ARRAY) {
        put_u32(o, (uint32_t)kv->arr_type);
        put_u64(o, kv->arr_n);
        if (kv->arr_type == GGUF_VT_STRING)
            for (uint64_t i = 0; i < kv->arr_n; i++) put_str(o, kv->arr_strs[i]);
        else
            put(o, kv->arr_data, (size_t)kv->arr_n * gguf_vtype_size(kv->arr_type));
    } else {
        put(o, kv->raw, gguf_vtype_size(kv->type));
    }
}

static int write_body(gguf_writer *w, wout *o, const char *path) {
    uint64_t a = w->alignment;
    uint64_t off = 0;
    size_t max_fill = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        t->offset = off;
        off = (off + t->nbytes + a - 1) / a * a;
        if (t->fill && t->nbytes > max_fill) max_fill = t->nbytes;
    }
    put_u32(o, GGUF_MAGIC);
    put_u32(o, 3);
    put_u64(o, w->n_tensors);
    put_u64(o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) put_kv(o, &w->kvs[i]);
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        put_str(o, t->name);
        put_u32(o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(o, (uint64_t)t->ne[d]);
        put_u32(o, (uint32_t)t->type);
        put_u64(o, t->offset);
    }
    put_pad(o, a);
    void *buf = NULL;
    if (max_fill && !(buf = malloc(max_fill)))
        return err_set(M40LLM_ERR_OOM, "gguf writer: no memory for a %zu-byte tensor buffer",
                       max_fill);
    int rc = M40LLM_OK;
    for (size_t i = 0; i < w->n_tensors && !o->failed; i++) {
        const wtensor *t = &w->tensors[i];
        put_pad(o, a); /* the data section starts aligned, so this lands on t->offset */
        if (t->fill) {
            rc = t->fill(t->ctx, buf, t->nbytes);
            if (rc) {
                rc = err_prefix(rc, "gguf writer: filling tensor '%s'", t->name);
                break;
            }
            put(o, buf, t->nbytes);
        } else {
            put(o, t->data, t->nbytes);
        }
    }
    free(buf);
    if (rc) return rc;
    if (o->failed) return err_set(M40LLM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return M40LLM_OK;
}

int gguf_writer_write(gguf_writer *w, const char *path) {
    if (!w || !path) return err_set(M40LLM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    /* a temporary beside path, renamed over it when complete: a failed
     * write leaves path as it was and removes nothing the writer did not make */
    fileio_out f;
    int rc = fileio_out_open(path, &f);
    if (rc) return rc;
    wout o = {f.f, 0, false};
    rc = write_body(w, &o, path);
    if (rc) {
        fileio_out_abort(&f);
        return rc;
    }
    return fileio_out_commit(&f);
}
