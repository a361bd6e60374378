/* GGUF v2/v3 parser: header, metadata, tensor infos, data section.
 *
 * Every count, length and offset read from the file is checked against the
 * bytes that remain before it is used or allocated for, so a hostile file
 * cannot make the parser read out of bounds or allocate more than a small
 * multiple of its own size. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fileio.h"
#include "gguf_internal.h"
#include "quant.h"

typedef struct gcur {
    const uint8_t *p; /* [size] */
    size_t size;
    size_t pos; /* next byte to read */
} gcur;

/* Smallest encodings, used to bound counts before allocating. */
#define GGUF_MIN_STR   8u             /* u64 length, empty string */
#define GGUF_MIN_KV    (8u + 4u + 1u) /* empty key, type, one-byte value */
#define GGUF_MIN_ARR   (4u + 8u)      /* element type, count */
#define GGUF_MIN_TINFO (8u + 4u + 8u + 4u + 8u)

static uint64_t cur_left(const gcur *c) {
    return (uint64_t)(c->size - c->pos);
}

static int cur_need(const gcur *c, uint64_t n, const char *what) {
    if (n > cur_left(c))
        return err_set(M40LLM_ERR_FORMAT,
                       "%s at offset %zu needs %" PRIu64 " bytes but the file ends at %zu "
                       "(truncated?)",
                       what, c->pos, n, c->size);
    return M40LLM_OK;
}

static int cur_u32(gcur *c, uint32_t *v, const char *what) {
    int rc = cur_need(c, 4, what);
    if (rc) return rc;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return M40LLM_OK;
}

static int cur_u64(gcur *c, uint64_t *v, const char *what) {
    int rc = cur_need(c, 8, what);
    if (rc) return rc;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return M40LLM_OK;
}

static int cur_str(gcur *c, gguf_str *s, const char *what) {
    size_t at = c->pos;
    uint64_t len;
    int rc = cur_u64(c, &len, what);
    if (rc) return rc;
    if (len > cur_left(c))
        return err_set(M40LLM_ERR_FORMAT,
                       "%s at offset %zu has length %" PRIu64 " but only %" PRIu64
                       " bytes remain in the file",
                       what, at, len, cur_left(c));
    s->len = len;
    s->data = (const char *)(c->p + c->pos);
    c->pos += (size_t)len;
    return M40LLM_OK;
}

/* A name for messages, escaped and shortened (keys and tensor names may be
 * huge, binary, or carry terminal escapes); the buffer lives in the caller's
 * block, so use it inside the err_set call. */
#define SHOWN_MAX 128
#define SHOWN(s)  gguf_str_escape((s), (char[SHOWN_MAX]){0}, SHOWN_MAX)

static int parse_array(gcur *c, gguf_value *v, int depth);

/* Reads one value of type t (already read) into v. */
static int parse_value(gcur *c, gguf_vtype t, gguf_value *v, int depth) {
    size_t at = c->pos;
    size_t sz = gguf_vtype_size(t);
    v->type = t;
    int rc;
    if (t == GGUF_VT_STRING) {
        return cur_str(c, &v->str, "string value");
    }
    if (t == GGUF_VT_ARRAY) return parse_array(c, v, depth);
    rc = cur_need(c, sz, "metadata value");
    if (rc) return rc;
    const uint8_t *p = c->p + at;
    c->pos += sz;
    switch (t) {
    case GGUF_VT_UINT8:
        v->u64 = p[0];
        break;
    case GGUF_VT_INT8:
        v->i64 = (int8_t)p[0];
        break;
    case GGUF_VT_BOOL:
        v->b = p[0] != 0;
        break;
    case GGUF_VT_UINT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        v->u64 = x;
        break;
    }
    case GGUF_VT_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        v->i64 = x;
        break;
    }
    case GGUF_VT_UINT32: {
        uint32_t x;
        memcpy(&x, p, 4);
        v->u64 = x;
        break;
    }
    case GGUF_VT_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        v->i64 = x;
        break;
    }
    case GGUF_VT_FLOAT32: {
        float x;
        memcpy(&x, p, 4);
        v->f64 = x;
        break;
    }
    case GGUF_VT_UINT64:
        memcpy(&v->u64, p, 8);
        break;
    case GGUF_VT_INT64:
        memcpy(&v->i64, p, 8);
        break;
    case GGUF_VT_FLOAT64:
        memcpy(&v->f64, p, 8);
        break;
    default:
        return err_set(M40LLM_ERR_FORMAT, "unknown value type %d at offset %zu", (int)t, at);
    }
    return M40LLM_OK;
}

static int parse_array(gcur *c, gguf_value *v, int depth) {
    size_t at = c->pos;
    uint32_t et;
    uint64_t n;
    int rc = cur_u32(c, &et, "array element type");
    if (!rc) rc = cur_u64(c, &n, "array element count");
    if (rc) return rc;
    if (et >= GGUF_VT_COUNT)
        return err_set(M40LLM_ERR_FORMAT, "array at offset %zu has unknown element type %" PRIu32,
                       at, et);
    if (depth >= GGUF_MAX_NESTING)
        return err_set(M40LLM_ERR_FORMAT, "arrays nested deeper than %d at offset %zu",
                       GGUF_MAX_NESTING, at);
    v->type = GGUF_VT_ARRAY;
    v->arr.type = (gguf_vtype)et;
    v->arr.n = 0;
    v->arr.data = c->p + c->pos;
    v->arr.items = NULL;
    size_t esz = gguf_vtype_size((gguf_vtype)et);
    uint64_t min = esz ? esz : (et == GGUF_VT_STRING ? GGUF_MIN_STR : GGUF_MIN_ARR);
    if (n > cur_left(c) / min)
        return err_set(M40LLM_ERR_FORMAT,
                       "array at offset %zu claims %" PRIu64
                       " elements of type %s, more than the %" PRIu64 " bytes left can hold",
                       at, n, gguf_vtype_name((gguf_vtype)et), cur_left(c));
    if (esz) {
        v->arr.n = n;
        c->pos += (size_t)(n * esz);
        return M40LLM_OK;
    }
    if (n == 0) return M40LLM_OK;
    /* n <= file size / 8, so this allocation is bounded by a few times the file size */
    gguf_value *items = calloc((size_t)n, sizeof *items);
    if (!items) return err_set(M40LLM_ERR_OOM, "no memory for %" PRIu64 " array items", n);
    v->arr.items = items;
    v->arr.n = n; /* unparsed items are zeroed, so freeing a partial array is safe */
    for (uint64_t i = 0; i < n; i++) {
        size_t item_at = c->pos;
        rc = parse_value(c, (gguf_vtype)et, &items[i], depth + 1);
        if (rc) return err_prefix(rc, "item %" PRIu64 " at offset %zu", i, item_at);
    }
    return M40LLM_OK;
}

static int index_build(gguf_index *ix, int64_t n, const char *what, gguf_file *f,
                       const gguf_str *(*name_at)(const gguf_file *, int64_t),
                       const uint64_t *offsets, size_t stride) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap <<= 1;
    ix->slots = calloc((size_t)cap, sizeof *ix->slots);
    if (!ix->slots) return err_set(M40LLM_ERR_OOM, "gguf: no memory for the %s index", what);
    ix->cap = cap;
    for (int64_t i = 0; i < n; i++) {
        const gguf_str *s = name_at(f, i);
        uint64_t h = gguf_hash(s->data, s->len) & (cap - 1);
        for (;;) {
            uint32_t slot = ix->slots[h];
            if (!slot) {
                ix->slots[h] = (uint32_t)(i + 1);
                break;
            }
            const gguf_str *o = name_at(f, slot - 1);
            if (o->len == s->len && !memcmp(o->data, s->data, s->len)) {
                uint64_t off = *(const uint64_t *)((const char *)offsets + (size_t)i * stride);
                return err_set(M40LLM_ERR_FORMAT,
                               "gguf: duplicate %s '%s' at offset %" PRIu64 " (first is #%u)", what,
                               SHOWN(*s), off, slot - 1);
            }
            h = (h + 1) & (cap - 1);
        }
    }
    return M40LLM_OK;
}

static int parse_kvs(gguf_file *f, gcur *c) {
    for (int64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kvs[i];
        kv->offset = c->pos;
        int rc = cur_str(c, &kv->key, "metadata key");
        if (rc) return err_prefix(rc, "gguf: metadata entry %" PRId64, i);
        uint32_t t;
        size_t tat = c->pos;
        rc = cur_u32(c, &t, "metadata value type");
        if (rc) return err_prefix(rc, "gguf: key '%s'", SHOWN(kv->key));
        if (t >= GGUF_VT_COUNT)
            return err_set(M40LLM_ERR_FORMAT,
                           "gguf: key '%s' (offset %" PRIu64 "): unknown value type %" PRIu32
                           " at offset %zu",
                           SHOWN(kv->key), kv->offset, t, tat);
        rc = parse_value(c, (gguf_vtype)t, &kv->value, 0);
        if (rc)
            return err_prefix(rc, "gguf: key '%s' (offset %" PRIu64 ")", SHOWN(kv->key),
                              kv->offset);
    }
    return index_build(&f->kv_index, f->n_kv, "metadata key", f, gguf_kv_name_at,
                       f->kvs ? &f->kvs[0].offset : NULL, sizeof(gguf_kv));
}

static int parse_alignment(gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (!kv) return M40LLM_OK;
    const gguf_value *v = &kv->value;
    uint64_t a;
    if (v->type == GGUF_VT_UINT8 || v->type == GGUF_VT_UINT16 || v->type == GGUF_VT_UINT32 ||
        v->type == GGUF_VT_UINT64)
        a = v->u64;
    else if (v->type == GGUF_VT_INT8 || v->type == GGUF_VT_INT16 || v->type == GGUF_VT_INT32 ||
             v->type == GGUF_VT_INT64)
        a = v->i64 < 0 ? 0 : (uint64_t)v->i64;
    else
        return err_set(M40LLM_ERR_FORMAT,
                       "gguf: general.alignment (offset %" PRIu64 ") has type %s, not an integer",
                       kv->offset, gguf_vtype_name(v->type));
    /* bounded so that aligning an offset inside the file cannot overflow */
    if (a == 0 || (a & (a - 1)) || a > (1u << 30))
        return err_set(M40LLM_ERR_FORMAT,
                       "gguf: general.alignment (offset %" PRIu64 ") is %" PRIu64
                       ", not a power of two in 1..2^30",
                       kv->offset, a);
    f->alignment = a;
    return M40LLM_OK;
}

static int parse_tensor_info(gguf_file *f, gcur *c, int64_t i, uint64_t *info_off) {
    gguf_tensor *t = &f->tensors[i];
    size_t at = c->pos;
    *info_off = at;
    int rc = cur_str(c, &t->name, "tensor name");
    if (rc) return err_prefix(rc, "gguf: tensor info %" PRId64, i);
    rc = cur_u32(c, &t->n_dims, "tensor n_dims");
    if (rc) return err_prefix(rc, "gguf: tensor '%s'", SHOWN(t->name));
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return err_set(M40LLM_ERR_FORMAT,
                       "gguf: tensor '%s' (offset %zu) has %" PRIu32 " dimensions, not 1..%d",
                       SHOWN(t->name), at, t->n_dims, GGUF_MAX_DIMS);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        size_t dat = c->pos;
        uint64_t ne;
        rc = cur_u64(c, &ne, "tensor dimension");
        if (rc) return err_prefix(rc, "gguf: tensor '%s'", SHOWN(t->name));
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return err_set(M40LLM_ERR_FORMAT,
                           "gguf: tensor '%s': dimension %" PRIu32 " at offset %zu is %" PRId64
                           ", not positive",
                           SHOWN(t->name), d, dat, (int64_t)ne);
        t->ne[d] = (int64_t)ne;
    }
    uint32_t type;
    size_t type_at = c->pos;
    rc = cur_u32(c, &type, "tensor type");
    if (!rc) rc = cur_u64(c, &t->offset, "tensor data offset");
    if (rc) return err_prefix(rc, "gguf: tensor '%s'", SHOWN(t->name));
    const quant_type_info *q = quant_info((int)type);
    if (type >= QT_COUNT || !q)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "gguf: tensor '%s': unknown tensor type %" PRIu32 " at offset %zu",
                       SHOWN(t->name), type, type_at);
    t->type = (int)type;

    /* element count must fit int64 (ne are all >= 1, so check step by step) */
    int64_t nel = t->ne[0];
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(nel, t->ne[d], &nel))
            return err_set(M40LLM_ERR_FORMAT,
                           "gguf: tensor '%s' (offset %zu): element count [%" PRId64 ", %" PRId64
                           ", %" PRId64 ", %" PRId64 "] overflows 64 bits",
                           SHOWN(t->name), at, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    if (t->ne[0] % q->block_size)
        return err_set(M40LLM_ERR_FORMAT,
                       "gguf: tensor '%s' (offset %zu): row length %" PRId64
                       " is not a multiple of the %s block size %d",
                       SHOWN(t->name), at, t->ne[0], q->name, q->block_size);
    uint64_t nbytes = (uint64_t)(t->ne[0] / q->block_size);
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(nbytes, d ? (uint64_t)t->ne[d] : (uint64_t)q->type_size,
                                   &nbytes))
            return err_set(M40LLM_ERR_FORMAT,
                           "gguf: tensor '%s' (offset %zu): byte size overflows 64 bits",
                           SHOWN(t->name), at);
    if (nbytes > SIZE_MAX)
        return err_set(M40LLM_ERR_FORMAT, "gguf: tensor '%s' (offset %zu) is too large",
                       SHOWN(t->name), at);
    t->nbytes = (size_t)nbytes;
    return M40LLM_OK;
}

typedef struct tspan {
    uint64_t begin, end;
    int64_t i;
} tspan;

static int tspan_cmp(const void *a, const void *b) {
    const tspan *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* stable: the earlier tensor first */
}

/* Tensors must not share bytes: a model built from aliased weights is not
 * one any writer produces, and a file of many tensors at one offset would
 * otherwise describe far more weights than it holds. */
static int check_overlap(gguf_file *f) {
    if (f->n_tensors < 2) return M40LLM_OK;
    tspan *sp = malloc((size_t)f->n_tensors * sizeof *sp); /* n <= file size / 32 */
    if (!sp) return err_set(M40LLM_ERR_OOM, "gguf: no memory to check tensor data ranges");
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        sp[i].begin = t->offset;
        sp[i].end = t->offset + t->nbytes; /* checked against the file size already */
        sp[i].i = i;
    }
    qsort(sp, (size_t)f->n_tensors, sizeof *sp, tspan_cmp);
    int rc = M40LLM_OK;
    int64_t widest = 0; /* of the spans so far, the one that ends last */
    for (int64_t k = 1; k < f->n_tensors && !rc; k++) {
        if (sp[k].begin < sp[widest].end) {
            const gguf_tensor *a = &f->tensors[sp[widest].i], *b = &f->tensors[sp[k].i];
            rc = err_set(M40LLM_ERR_FORMAT,
                         "gguf: tensors '%s' (data offsets [%" PRIu64 "..%" PRIu64
                         ")) and '%s' (data offsets [%" PRIu64 "..%" PRIu64
                         ")) overlap; each tensor needs its own bytes",
                         SHOWN(a->name), sp[widest].begin, sp[widest].end, SHOWN(b->name),
                         sp[k].begin, sp[k].end);
        }
        if (sp[k].end > sp[widest].end) widest = k;
    }
    free(sp);
    return rc;
}

/* Places the data section and checks each tensor's bytes lie inside the file. */
static int place_tensors(gguf_file *f, size_t end_of_infos, const uint64_t *info_offs) {
    uint64_t a = f->alignment;
    f->data_offset = ((uint64_t)end_of_infos + a - 1) / a * a;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset % a)
            return err_set(M40LLM_ERR_FORMAT,
                           "gguf: tensor '%s' (offset %" PRIu64 "): data offset %" PRIu64
                           " is not a multiple of the alignment %" PRIu64,
                           SHOWN(t->name), info_offs[i], t->offset, a);
        uint64_t begin, end;
        if (__builtin_add_overflow(f->data_offset, t->offset, &begin) ||
            __builtin_add_overflow(begin, (uint64_t)t->nbytes, &end))
            return err_set(M40LLM_ERR_FORMAT,
                           "gguf: tensor '%s' (offset %" PRIu64 "): data offset %" PRIu64
                           " + %zu bytes overflows 64 bits (file size %zu)",
                           SHOWN(t->name), info_offs[i], t->offset, t->nbytes, f->size);
        if (end > f->size)
            return err_set(M40LLM_ERR_FORMAT,
                           "gguf: tensor '%s' data [%" PRIu64 "..%" PRIu64
                           ") lies outside the file (size %zu)",
                           SHOWN(t->name), begin, end, f->size);
        t->data = f->base + begin;
    }
    return check_overlap(f);
}

static int parse_file(gguf_file *f) {
    gcur c = {f->base, f->size, 0};
    uint32_t magic;
    int rc = cur_u32(&c, &magic, "magic");
    if (rc) return err_prefix(rc, "gguf");
    if (magic != GGUF_MAGIC)
        return err_set(M40LLM_ERR_FORMAT,
                       "gguf: bad magic 0x%08" PRIx32 " at offset 0 (not a GGUF file)", magic);
    rc = cur_u32(&c, &f->version, "version");
    if (rc) return err_prefix(rc, "gguf");
    if (f->version == 1)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "gguf: version 1 (32-bit counts) is not supported; convert the file to v3");
    if (f->version != 2 && f->version != 3)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "gguf: version %" PRIu32 " at offset 4 is not supported (only 2 and 3%s)",
                       f->version, f->version >= 0x01000000u ? "; big-endian file?" : "");
    uint64_t n_tensors, n_kv;
    rc = cur_u64(&c, &n_tensors, "tensor count");
    if (!rc) rc = cur_u64(&c, &n_kv, "metadata count");
    if (rc) return err_prefix(rc, "gguf");
    if (n_kv > cur_left(&c) / GGUF_MIN_KV)
        return err_set(M40LLM_ERR_FORMAT,
                       "gguf: metadata count %" PRIu64 " at offset 16 is more than the %" PRIu64
                       " bytes left can hold",
                       n_kv, cur_left(&c));
    if (n_tensors > cur_left(&c) / GGUF_MIN_TINFO)
        return err_set(M40LLM_ERR_FORMAT,
                       "gguf: tensor count %" PRIu64 " at offset 8 is more than the %" PRIu64
                       " bytes left can hold",
                       n_tensors, cur_left(&c));
    if (n_kv >= UINT32_MAX || n_tensors >= UINT32_MAX) /* the name indexes hold 32-bit slots */
        return err_set(M40LLM_ERR_UNSUPPORTED, "gguf: more than 2^32 metadata entries or tensors");
    f->n_kv = (int64_t)n_kv;
    f->n_tensors = (int64_t)n_tensors;
    if (n_kv && !(f->kvs = calloc((size_t)n_kv, sizeof *f->kvs)))
        return err_set(M40LLM_ERR_OOM, "gguf: no memory for %" PRIu64 " metadata entries", n_kv);
    rc = parse_kvs(f, &c);
    if (!rc) rc = parse_alignment(f);
    if (rc) return rc;

    if (n_tensors && !(f->tensors = calloc((size_t)n_tensors, sizeof *f->tensors)))
        return err_set(M40LLM_ERR_OOM, "gguf: no memory for %" PRIu64 " tensor infos", n_tensors);
    uint64_t *info_offs = calloc((size_t)n_tensors + 1, sizeof *info_offs);
    if (!info_offs) return err_set(M40LLM_ERR_OOM, "gguf: no memory for tensor infos");
    for (int64_t i = 0; i < f->n_tensors && !rc; i++)
        rc = parse_tensor_info(f, &c, i, &info_offs[i]);
    if (!rc)
        rc = index_build(&f->tensor_index, f->n_tensors, "tensor name", f, gguf_tensor_name_at,
                         info_offs, sizeof *info_offs);
    if (!rc) rc = place_tensors(f, c.pos, info_offs);
    free(info_offs);
    return rc;
}

int gguf_open_memory(const void *data, size_t size, gguf_file **out) {
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "gguf_open_memory: out is NULL");
    *out = NULL;
    if (!data && size) return err_set(M40LLM_ERR_INVALID_ARG, "gguf_open_memory: data is NULL");
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return err_set(M40LLM_ERR_OOM, "gguf: no memory");
    f->base = data;
    f->size = size;
    int rc = parse_file(f);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return M40LLM_OK;
}

int gguf_open(const char *path, gguf_file **out) {
    if (!path || !out) return err_set(M40LLM_ERR_INVALID_ARG, "gguf_open: NULL argument");
    *out = NULL;
    int fd;
    struct stat st;
    int orc = fileio_open_read(path, &fd, &st); /* regular files only; never blocks */
    if (orc) return orc;
    if (st.st_size == 0) {
        close(fd);
        return err_set(M40LLM_ERR_FORMAT, "%s: gguf: the file is empty", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return err_set(M40LLM_ERR_IO, "%s: too large to map", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return err_set(M40LLM_ERR_IO, "%s: mmap: %s", path, strerror(e));
    gguf_file *f = NULL;
    int rc = gguf_open_memory(map, size, &f);
    if (rc) {
        munmap(map, size);
        return err_prefix(rc, "%s", path);
    }
    f->map = map;
    f->map_size = size;
    *out = f;
    return M40LLM_OK;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (int64_t i = 0; f->kvs && i < f->n_kv; i++) gguf_value_free(&f->kvs[i].value);
    free(f->kvs);
    free(f->tensors);
    free(f->kv_index.slots);
    free(f->tensor_index.slots);
    if (f->map) munmap(f->map, f->map_size);
    free(f);
}
