/* GGUF reader accessors: lookups, typed getters, array element access. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gguf_internal.h"

size_t gguf_vtype_size(gguf_vtype t) {
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_INT8:
    case GGUF_VT_BOOL:
        return 1;
    case GGUF_VT_UINT16:
    case GGUF_VT_INT16:
        return 2;
    case GGUF_VT_UINT32:
    case GGUF_VT_INT32:
    case GGUF_VT_FLOAT32:
        return 4;
    case GGUF_VT_UINT64:
    case GGUF_VT_INT64:
    case GGUF_VT_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

const char *gguf_vtype_name(gguf_vtype t) {
    static const char *const names[GGUF_VT_COUNT] = {
        "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
        "bool",  "string", "array",  "uint64", "int64",  "float64",
    };
    if ((unsigned)t >= GGUF_VT_COUNT) return "?";
    return names[t];
}

/* FNV-1a: names are short, and this needs no seed or tables. */
uint64_t gguf_hash(const char *s, uint64_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

const gguf_str *gguf_kv_name_at(const gguf_file *f, int64_t i) {
    return &f->kvs[i].key;
}

const gguf_str *gguf_tensor_name_at(const gguf_file *f, int64_t i) {
    return &f->tensors[i].name;
}

int64_t gguf_index_find(const gguf_index *ix, const char *s, uint64_t len,
                        const gguf_str *(*name_at)(const gguf_file *, int64_t),
                        const gguf_file *f) {
    if (!ix->slots) return -1;
    uint64_t h = gguf_hash(s, len) & (ix->cap - 1);
    for (;;) {
        uint32_t slot = ix->slots[h];
        if (!slot) return -1;
        const gguf_str *o = name_at(f, slot - 1);
        if (o->len == len && !memcmp(o->data, s, len)) return slot - 1;
        h = (h + 1) & (ix->cap - 1);
    }
}

void gguf_value_free(gguf_value *v) {
    if (v->type != GGUF_VT_ARRAY || !v->arr.items) return;
    if (v->arr.type == GGUF_VT_ARRAY)
        for (uint64_t i = 0; i < v->arr.n; i++) gguf_value_free(&v->arr.items[i]);
    free(v->arr.items);
    v->arr.items = NULL;
}

uint32_t gguf_version(const gguf_file *f) {
    return f->version;
}
uint64_t gguf_alignment(const gguf_file *f) {
    return f->alignment;
}
uint64_t gguf_data_offset(const gguf_file *f) {
    return f->data_offset;
}
uint64_t gguf_file_size(const gguf_file *f) {
    return f->size;
}
int64_t gguf_n_kv(const gguf_file *f) {
    return f->n_kv;
}
int64_t gguf_n_tensors(const gguf_file *f) {
    return f->n_tensors;
}

const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i) {
    if (!f || i < 0 || i >= f->n_kv) return NULL;
    return &f->kvs[i];
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    if (!f || i < 0 || i >= f->n_tensors) return NULL;
    return &f->tensors[i];
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    if (!f || !key) return NULL;
    int64_t i = gguf_index_find(&f->kv_index, key, strlen(key), gguf_kv_name_at, f);
    return i < 0 ? NULL : &f->kvs[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f || !name) return NULL;
    int64_t i = gguf_index_find(&f->tensor_index, name, strlen(name), gguf_tensor_name_at, f);
    return i < 0 ? NULL : &f->tensors[i];
}

static bool vt_is_signed(gguf_vtype t) {
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}
static bool vt_is_unsigned(gguf_vtype t) {
    return t == GGUF_VT_UINT8 || t == GGUF_VT_UINT16 || t == GGUF_VT_UINT32 || t == GGUF_VT_UINT64;
}

static int get_kv(const gguf_file *f, const char *key, const gguf_kv **out) {
    if (!f || !key) return err_set(M40LLM_ERR_INVALID_ARG, "gguf: NULL file or key");
    *out = gguf_find_kv(f, key);
    return *out ? M40LLM_OK : M40LLM_ERR_NOT_FOUND; /* no message: callers apply defaults */
}

static int type_error(const gguf_kv *kv, const char *want) {
    char key[128];
    return err_set(M40LLM_ERR_TYPE, "gguf: key '%s' (offset %" PRIu64 ") has type %s, not %s",
                   gguf_str_escape(kv->key, key, sizeof key), kv->offset,
                   gguf_vtype_name(kv->value.type), want);
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = NULL;
    int rc = get_kv(f, key, &kv);
    if (rc) return rc;
    const gguf_value *v = &kv->value;
    if (vt_is_unsigned(v->type) && v->u64 <= UINT32_MAX) {
        *out = (uint32_t)v->u64;
        return M40LLM_OK;
    }
    if (vt_is_signed(v->type) && v->i64 >= 0 && v->i64 <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)v->i64;
        return M40LLM_OK;
    }
    return type_error(kv, "an integer in 0..2^32-1");
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = NULL;
    int rc = get_kv(f, key, &kv);
    if (rc) return rc;
    const gguf_value *v = &kv->value;
    if (vt_is_unsigned(v->type) && v->u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->u64;
        return M40LLM_OK;
    }
    if (vt_is_signed(v->type)) {
        *out = v->i64;
        return M40LLM_OK;
    }
    return type_error(kv, "an integer in the i64 range");
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = NULL;
    int rc = get_kv(f, key, &kv);
    if (rc) return rc;
    if (kv->value.type != GGUF_VT_FLOAT32 && kv->value.type != GGUF_VT_FLOAT64)
        return type_error(kv, "float32 or float64");
    *out = (float)kv->value.f64;
    return M40LLM_OK;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = NULL;
    int rc = get_kv(f, key, &kv);
    if (rc) return rc;
    if (kv->value.type != GGUF_VT_BOOL) return type_error(kv, "bool");
    *out = kv->value.b;
    return M40LLM_OK;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = NULL;
    int rc = get_kv(f, key, &kv);
    if (rc) return rc;
    if (kv->value.type != GGUF_VT_STRING) return type_error(kv, "string");
    *out = kv->value.str;
    return M40LLM_OK;
}

int gguf_get_arr(const gguf_file *f, const char *key, const gguf_value **out) {
    const gguf_kv *kv = NULL;
    int rc = get_kv(f, key, &kv);
    if (rc) return rc;
    if (kv->value.type != GGUF_VT_ARRAY) return type_error(kv, "array");
    *out = &kv->value;
    return M40LLM_OK;
}

static int arr_check(const gguf_value *arr, uint64_t i) {
    if (!arr || arr->type != GGUF_VT_ARRAY)
        return err_set(M40LLM_ERR_INVALID_ARG, "gguf: not an array value");
    if (i >= arr->arr.n)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "gguf: array index %" PRIu64 " out of range (%" PRIu64 " elements)", i,
                       arr->arr.n);
    return M40LLM_OK;
}

int gguf_arr_i64(const gguf_value *arr, uint64_t i, int64_t *out) {
    int rc = arr_check(arr, i);
    if (rc) return rc;
    const uint8_t *p = arr->arr.data + i * gguf_vtype_size(arr->arr.type);
    switch (arr->arr.type) {
    case GGUF_VT_UINT8:
        *out = p[0];
        return M40LLM_OK;
    case GGUF_VT_INT8:
        *out = (int8_t)p[0];
        return M40LLM_OK;
    case GGUF_VT_UINT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        *out = x;
        return M40LLM_OK;
    }
    case GGUF_VT_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        *out = x;
        return M40LLM_OK;
    }
    case GGUF_VT_UINT32: {
        uint32_t x;
        memcpy(&x, p, 4);
        *out = x;
        return M40LLM_OK;
    }
    case GGUF_VT_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        *out = x;
        return M40LLM_OK;
    }
    case GGUF_VT_UINT64: {
        uint64_t x;
        memcpy(&x, p, 8);
        if (x > (uint64_t)INT64_MAX) break;
        *out = (int64_t)x;
        return M40LLM_OK;
    }
    case GGUF_VT_INT64:
        memcpy(out, p, 8);
        return M40LLM_OK;
    default:
        break;
    }
    return err_set(M40LLM_ERR_TYPE, "gguf: array element %" PRIu64 " (type %s) is not an i64", i,
                   gguf_vtype_name(arr->arr.type));
}

int gguf_arr_f32(const gguf_value *arr, uint64_t i, float *out) {
    int rc = arr_check(arr, i);
    if (rc) return rc;
    const uint8_t *p = arr->arr.data + i * gguf_vtype_size(arr->arr.type);
    if (arr->arr.type == GGUF_VT_FLOAT32) {
        memcpy(out, p, 4);
        return M40LLM_OK;
    }
    if (arr->arr.type == GGUF_VT_FLOAT64) {
        double d;
        memcpy(&d, p, 8);
        *out = (float)d;
        return M40LLM_OK;
    }
    if (arr->arr.type == GGUF_VT_UINT64) {
        uint64_t x;
        memcpy(&x, p, 8);
        *out = (float)x;
        return M40LLM_OK;
    }
    int64_t x;
    if (vt_is_signed(arr->arr.type) || vt_is_unsigned(arr->arr.type)) {
        rc = gguf_arr_i64(arr, i, &x);
        if (rc) return rc;
        *out = (float)x;
        return M40LLM_OK;
    }
    return err_set(M40LLM_ERR_TYPE, "gguf: array element %" PRIu64 " (type %s) is not a number", i,
                   gguf_vtype_name(arr->arr.type));
}

int gguf_arr_str(const gguf_value *arr, uint64_t i, gguf_str *out) {
    int rc = arr_check(arr, i);
    if (rc) return rc;
    if (arr->arr.type != GGUF_VT_STRING)
        return err_set(M40LLM_ERR_TYPE, "gguf: array element %" PRIu64 " (type %s) is not a string",
                       i, gguf_vtype_name(arr->arr.type));
    *out = arr->arr.items[i].str;
    return M40LLM_OK;
}

int gguf_arr_value(const gguf_value *arr, uint64_t i, gguf_value *out) {
    int rc = arr_check(arr, i);
    if (rc) return rc;
    if (arr->arr.items) {
        *out = arr->arr.items[i];
        return M40LLM_OK;
    }
    gguf_vtype t = arr->arr.type;
    const uint8_t *p = arr->arr.data + i * gguf_vtype_size(t);
    memset(out, 0, sizeof *out);
    out->type = t;
    if (t == GGUF_VT_BOOL) {
        out->b = p[0] != 0;
    } else if (t == GGUF_VT_FLOAT32) {
        float x;
        memcpy(&x, p, 4);
        out->f64 = x;
    } else if (t == GGUF_VT_FLOAT64) {
        memcpy(&out->f64, p, 8);
    } else if (t == GGUF_VT_UINT64) {
        memcpy(&out->u64, p, 8);
    } else if (vt_is_unsigned(t)) {
        int64_t x;
        gguf_arr_i64(arr, i, &x); /* u8..u32 always fit */
        out->u64 = (uint64_t)x;
    } else if (vt_is_signed(t)) {
        gguf_arr_i64(arr, i, &out->i64);
    } else {
        /* STRING/ARRAY elements always have items; anything else cannot be parsed */
        return err_set(M40LLM_ERR_INTERNAL, "gguf: array of %s without items", gguf_vtype_name(t));
    }
    return M40LLM_OK;
}

bool gguf_str_has_nul(gguf_str s) {
    return s.len && memchr(s.data, 0, s.len) != NULL;
}

/* Length of the well-formed UTF-8 sequence at p (n bytes left), or 0 when it
 * is malformed, overlong, a surrogate or a C1 control (terminals act on those). */
static size_t utf8_printable(const uint8_t *p, uint64_t n) {
    size_t len;
    uint32_t cp;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2, cp = p[0] & 0x1Fu;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3, cp = p[0] & 0x0Fu;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4, cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp <= 0x9F)
        return 0;
    return len;
}

char *gguf_str_escape(gguf_str s, char *buf, size_t bufsize) {
    if (!buf || bufsize == 0) return buf;
    const uint8_t *p = (const uint8_t *)s.data;
    const size_t room = bufsize - 1;
    size_t o = 0, cut = 0; /* cut: the last piece boundary that leaves room for "..." */
    for (uint64_t i = 0; i < s.len;) {
        char esc[5];
        const char *piece = esc;
        size_t n = 1, adv = 1, u;
        if (p[i] >= 0x20 && p[i] < 0x7F && p[i] != '\\') {
            piece = (const char *)p + i;
        } else if (p[i] == '\\') {
            piece = "\\\\";
            n = 2;
        } else if (p[i] >= 0x80 && (u = utf8_printable(p + i, s.len - i)) != 0) {
            piece = (const char *)p + i;
            n = adv = u;
        } else {
            snprintf(esc, sizeof esc, "\\x%02X", p[i]);
            n = 4;
        }
        if (o + n > room) { /* does not fit: end at the last boundary with "..." */
            o = cut;
            for (int k = 0; k < 3 && o < room; k++) buf[o++] = '.';
            break;
        }
        memcpy(buf + o, piece, n);
        o += n;
        i += adv;
        if (o + 3 <= room) cut = o;
    }
    buf[o] = '\0';
    return buf;
}

bool gguf_str_eq(gguf_str s, const char *cstr) {
    if (!cstr) return false;
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || !memcmp(s.data, cstr, n));
}

char *gguf_str_copy(gguf_str s, char *buf, size_t bufsize) {
    if (!buf || bufsize == 0) return buf;
    size_t n = s.len < bufsize - 1 ? (size_t)s.len : bufsize - 1;
    if (n) memcpy(buf, s.data, n);
    buf[n] = '\0';
    return buf;
}
