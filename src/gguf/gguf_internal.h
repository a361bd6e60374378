/* Private parts of the GGUF reader shared by gguf_parse.c and gguf_meta.c. */
#ifndef M40_GGUF_INTERNAL_H
#define M40_GGUF_INTERNAL_H

#include "gguf.h"

/* Nested arrays deeper than this are rejected: real files use depth 1, and
 * the bound keeps the recursive parser's stack use small on hostile input. */
#define GGUF_MAX_NESTING 8

/* Open-addressing hash from name to index; slots hold index + 1 (0 = empty). */
typedef struct gguf_index {
    uint32_t *slots; /* [cap] */
    uint64_t cap;    /* power of two, >= 2 * entries */
} gguf_index;

struct gguf_file {
    const uint8_t *base; /* [size] file bytes (mapping or caller buffer) */
    size_t size;
    void *map; /* mmap base to unmap, NULL for gguf_open_memory */
    size_t map_size;

    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* aligned end of the tensor infos */

    int64_t n_kv;
    gguf_kv *kvs; /* [n_kv] */
    int64_t n_tensors;
    gguf_tensor *tensors; /* [n_tensors] */

    gguf_index kv_index;
    gguf_index tensor_index;
};

/* Byte size of a fixed-size value type; 0 for STRING, ARRAY and unknown types. */
size_t gguf_vtype_size(gguf_vtype t);
uint64_t gguf_hash(const char *s, uint64_t len);
/* Looks a name up; returns its index or -1. names(i) yields entry i's name. */
int64_t gguf_index_find(const gguf_index *ix, const char *s, uint64_t len,
                        const gguf_str *(*name_at)(const gguf_file *, int64_t), const gguf_file *f);
const gguf_str *gguf_kv_name_at(const gguf_file *f, int64_t i);
const gguf_str *gguf_tensor_name_at(const gguf_file *f, int64_t i);
/* Frees arrays owned by a value (recursively); the value itself is not freed. */
void gguf_value_free(gguf_value *v);

#endif
