/* libFuzzer target: parse arbitrary bytes as GGUF and touch everything the
 * reader hands out, so out-of-bounds pointers or lengths trip ASan. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"

static volatile uint64_t fuzz_sink; /* keeps the reads from being optimized out */

static void touch(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint64_t h = 0;
    for (uint64_t i = 0; i < n; i++) h = h * 31 + b[i];
    fuzz_sink += h;
}

static void walk_value(const gguf_value *v) {
    if (v->type == GGUF_VT_STRING) touch(v->str.data, v->str.len);
    if (v->type != GGUF_VT_ARRAY) return;
    for (uint64_t i = 0; i < v->arr.n; i++) {
        gguf_value item;
        if (gguf_arr_value(v, i, &item) != 0) continue;
        walk_value(&item);
        int64_t x;
        float f;
        gguf_str s;
        (void)gguf_arr_i64(v, i, &x);
        (void)gguf_arr_f32(v, i, &f);
        (void)gguf_arr_str(v, i, &s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    if (gguf_open_memory(data, size, &f) != 0) return 0;
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        touch(kv->key.data, kv->key.len);
        walk_value(&kv->value);
        char key[256];
        gguf_str_copy(kv->key, key, sizeof key);
        /* lookups by name must find the entry (or an earlier one with an embedded NUL) */
        if (!memchr(kv->key.data, 0, kv->key.len) && kv->key.len < sizeof key &&
            gguf_find_kv(f, key) != kv)
            __builtin_trap();
        uint32_t u;
        int64_t x;
        float fl;
        bool b;
        gguf_str s;
        const gguf_value *a;
        (void)gguf_get_u32(f, key, &u);
        (void)gguf_get_i64(f, key, &x);
        (void)gguf_get_f32(f, key, &fl);
        (void)gguf_get_bool(f, key, &b);
        (void)gguf_get_str(f, key, &s);
        (void)gguf_get_arr(f, key, &a);
    }
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        touch(t->name.data, t->name.len);
        touch(t->data, t->nbytes);
        if ((const uint8_t *)t->data < data || (const uint8_t *)t->data + t->nbytes > data + size)
            __builtin_trap();
    }
    gguf_close(f);
    return 0;
}
