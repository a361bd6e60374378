/* GGUF v2/v3 reader (mmap, every length/offset bounds-checked) and v3 writer.
 *
 * All strings returned point into the mapping and are NOT NUL-terminated:
 * use gguf_str {len, data}. Errors name what is wrong and the byte offset. */
#ifndef M40_GGUF_H
#define M40_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "m40llm.h"

#define GGUF_MAGIC             0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS          4

typedef enum gguf_vtype {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
} gguf_vtype;

typedef struct gguf_str {
    uint64_t len;     /* bytes, no terminator */
    const char *data; /* into the mapping */
} gguf_str;

/* A metadata value. Scalars are decoded; arrays keep their packed bytes for
 * fixed-size element types and a parsed item list for strings and arrays. */
typedef struct gguf_value {
    gguf_vtype type;
    union {
        uint64_t u64; /* UINT8..UINT64 widened */
        int64_t i64;  /* INT8..INT64 widened */
        double f64;   /* FLOAT32/FLOAT64 widened */
        bool b;
        gguf_str str;
        struct {
            gguf_vtype type;          /* element type */
            uint64_t n;               /* element count */
            const uint8_t *data;      /* packed LE elements (fixed-size types), may be unaligned */
            struct gguf_value *items; /* [n] for STRING and ARRAY elements, else NULL */
        } arr;
    };
} gguf_value;

typedef struct gguf_kv {
    gguf_str key;
    gguf_value value;
    uint64_t offset; /* byte offset of the key in the file (for messages) */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims = 1 */
    int type;                  /* ggml type id (quant.h) */
    uint64_t offset;           /* relative to the data section */
    const void *data;          /* into the mapping */
    size_t nbytes;             /* bytes of the tensor's data */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and mmaps a file, parses header, metadata and tensor infos, checks
 * every tensor lies inside the file. */
int gguf_open(const char *path, gguf_file **out);
/* Parses a buffer the caller keeps alive (tests, fuzzing). On failure *out
 * is NULL and the status is FORMAT (malformed/truncated), UNSUPPORTED
 * (version 1, unknown tensor type) or OOM. */
int gguf_open_memory(const void *data, size_t size, gguf_file **out);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f); /* file offset of the data section */
uint64_t gguf_file_size(const gguf_file *f);

int64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key); /* NULL if absent */

/* Typed getters. Return M40LLM_ERR_NOT_FOUND if the key is absent (no error
 * message set, so callers can apply defaults), M40LLM_ERR_TYPE if the value
 * cannot be represented (integers of any width are accepted when in range;
 * floats accept FLOAT32/FLOAT64). */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* An ARRAY value; out points into the file object. */
int gguf_get_arr(const gguf_file *f, const char *key, const gguf_value **out);

/* Element access for ARRAY values (index checked). */
int gguf_arr_i64(const gguf_value *arr, uint64_t i, int64_t *out); /* any integer element type */
int gguf_arr_f32(const gguf_value *arr, uint64_t i, float *out);   /* float or integer elements */
int gguf_arr_str(const gguf_value *arr, uint64_t i, gguf_str *out);
/* Element i as a value of the element type (scalars decoded, strings and
 * nested arrays copied by value from items[i]); works for every element type. */
int gguf_arr_value(const gguf_value *arr, uint64_t i, gguf_value *out);

int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); /* NULL if absent */

/* Helpers */
const char *gguf_vtype_name(gguf_vtype t);
bool gguf_str_eq(gguf_str s, const char *cstr);
/* Copies into buf (always NUL-terminated, truncated to bufsize-1). Only for
 * strings known to hold no NUL (gguf_str_has_nul): a C string would silently
 * end at the first one. */
char *gguf_str_copy(gguf_str s, char *buf, size_t bufsize);
/* True when s holds a NUL byte, so it cannot be used as a C string. */
bool gguf_str_has_nul(gguf_str s);
/* Writes s into buf for messages and terminals: printable ASCII and valid
 * UTF-8 as they are; NUL, control bytes (C0, DEL, C1), invalid UTF-8 and
 * backslash as \xNN / \\. Ends with "..." when cut to fit bufsize
 * (>= 8 to hold anything). Returns buf. */
char *gguf_str_escape(gguf_str s, char *buf, size_t bufsize);

/* ---- writer (GGUF v3) ---- */
typedef struct gguf_writer gguf_writer;

/* Produces a tensor's bytes at write time (for models too large to hold). */
typedef int (*gguf_fill_fn)(void *ctx, void *dst, size_t nbytes);

int gguf_writer_create(gguf_writer **out);
void gguf_writer_free(gguf_writer *w);
int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment);
/* Keys and values (strings, arrays, string arrays) are copied. Setting an
 * existing key replaces it in place (key order is insertion order).
 * set_alignment also writes general.alignment; set_u32 of that key goes
 * through the same check (power of two). */
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Array of fixed-size elements (type UINT8..FLOAT64 except STRING/ARRAY). */
int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype type, const void *data,
                        uint64_t n);
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* data is NOT copied: it must stay valid until gguf_writer_write returns.
 * nbytes must equal the size implied by type and ne. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                           const int64_t *ne, const void *data, size_t nbytes);
int gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, int type, uint32_t n_dims,
                              const int64_t *ne, gguf_fill_fn fill, void *ctx);
/* Writes through fileio_out (fileio.h): a new temporary beside path
 * ("path.tmp-PID-N", created with O_EXCL, never an existing file) renamed
 * over path when everything was written; a symbolic link at path stays and
 * the file it names is replaced. On any error the temporary is removed and
 * path is left as it was (absent, or its old contents). A path that exists
 * and is not a regular file (a device, a FIFO) is written in place instead:
 * nothing is renamed or removed, and a failed write leaves what was written
 * so far. */
int gguf_writer_write(gguf_writer *w, const char *path);

#endif
