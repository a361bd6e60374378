/* The render budget (memory and steps), the arena and the growable buffer:
 * every allocation of a render goes through here, so none escapes the budget. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

/* ---- budget ---- */
void jbudget_fail(jbudget *b, jbudget_kind kind) {
    if (!b || b->exceeded) return;
    b->exceeded = kind;
    b->fail_line = b->line;
}

bool jbudget_mem(jbudget *b, size_t n) {
    if (!b) return true;
    if (b->exceeded) return false;
    if (n > b->mem_max - b->mem_used) {
        jbudget_fail(b, JB_MEMORY);
        return false;
    }
    b->mem_used += n;
    if (b->mem_used > b->mem_peak) b->mem_peak = b->mem_used;
    return true;
}

void jbudget_release(jbudget *b, size_t n) {
    if (b) b->mem_used -= n < b->mem_used ? n : b->mem_used;
}

bool jbudget_charge(jbudget *b, uint64_t steps) {
    if (!b) return true;
    if (b->exceeded) return false;
    if (steps > b->max_steps - b->steps) {
        jbudget_fail(b, JB_STEPS);
        return false;
    }
    b->steps += steps;
    return true;
}

int jbudget_error(const jbudget *b) {
    char where[48] = "template";
    if (b->fail_line > 0) snprintf(where, sizeof where, "template line %d", b->fail_line);
    if (b->exceeded == JB_STEPS)
        return err_set(M40LLM_ERR_FORMAT,
                       "%s: step budget exceeded: more than %llu evaluation steps "
                       "(jinja_render_opts.max_steps); stopping the render",
                       where, (unsigned long long)b->max_steps);
    return err_set(M40LLM_ERR_FORMAT,
                   "%s: memory budget exceeded: the values it builds need more than %zu bytes "
                   "(%.1f MiB, jinja_render_opts.max_memory); stopping the render",
                   where, b->mem_max, (double)b->mem_max / (1 << 20));
}

/* ---- arena ---- */
struct jarena_block {
    jarena_block *next;
    size_t used, cap;
    max_align_t data[]; /* [cap] bytes */
};

enum { JARENA_BLOCK = 64 * 1024 };

void *jarena_alloc(jarena *a, size_t n) {
    size_t al = sizeof(max_align_t), bytes;
    if (n > SIZE_MAX - 2 * al) {
        jbudget_fail(a->bud, JB_MEMORY);
        return NULL;
    }
    n = (n + al - 1) / al * al;
    if (n == 0) n = al;
    jarena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > JARENA_BLOCK / 2 ? n : JARENA_BLOCK;
        if (!jsize_add(sizeof *b, cap, &bytes)) {
            jbudget_fail(a->bud, JB_MEMORY);
            return NULL;
        }
        if (!jbudget_mem(a->bud, bytes)) return NULL;
        b = malloc(bytes);
        if (!b) {
            jbudget_release(a->bud, bytes);
            return NULL;
        }
        b->used = 0;
        b->cap = cap;
        if (n > JARENA_BLOCK / 2 && a->head) {
            /* big allocations get their own block behind the current one, so
             * the current block's free space stays usable */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void *jarena_array(jarena *a, size_t n, size_t size) {
    size_t bytes;
    if (!jsize_mul(n, size, &bytes)) {
        jbudget_fail(a->bud, JB_MEMORY);
        return NULL;
    }
    return jarena_alloc(a, bytes);
}

char *jarena_strndup(jarena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) {
        jbudget_fail(a->bud, JB_MEMORY);
        return NULL;
    }
    char *p = jarena_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void jarena_free(jarena *a) {
    jarena_block *b = a->head;
    while (b) {
        jarena_block *next = b->next;
        jbudget_release(a->bud, sizeof *b + b->cap);
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- buffer ---- */
static bool jbuf_fail(jbuf *b) {
    b->oom = true;
    return false;
}

/* room for n more bytes and the NUL; the mask (when there is one) grows along */
static bool jbuf_reserve(jbuf *b, size_t n) {
    size_t need, cap;
    if (b->oom) return false;
    if (!jsize_add(b->n, n, &need) || !jsize_add(need, 1, &need)) {
        jbudget_fail(b->bud, JB_MEMORY);
        return jbuf_fail(b);
    }
    if (need <= b->cap) return true;
    cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    size_t per = b->m ? 2 : 1; /* bytes held per byte of capacity */
    /* doubling past the budget takes what is left of it instead (never the
     * exact size: growing by a few bytes at a time copies quadratically) */
    size_t room = b->bud ? (b->bud->mem_max - b->bud->mem_used) / per : SIZE_MAX;
    if (cap - b->cap > room && need - b->cap <= room) cap = b->cap + room;
    if (cap - b->cap > SIZE_MAX / per) {
        jbudget_fail(b->bud, JB_MEMORY);
        return jbuf_fail(b);
    }
    if (!jbudget_mem(b->bud, (cap - b->cap) * per)) return jbuf_fail(b);
    char *p = realloc(b->p, cap);
    if (!p) {
        jbudget_release(b->bud, (cap - b->cap) * per);
        return jbuf_fail(b);
    }
    b->p = p;
    if (b->m) {
        uint8_t *m = realloc(b->m, cap);
        if (!m) {
            jbudget_release(b->bud, (cap - b->cap) * per);
            return jbuf_fail(b);
        }
        b->m = m;
    }
    b->cap = cap;
    return true;
}

/* the mask, all trusted so far, created at the first untrusted byte */
static bool jbuf_mask(jbuf *b) {
    if (b->m) return true;
    if (!jbudget_mem(b->bud, b->cap)) return jbuf_fail(b);
    b->m = calloc(b->cap ? b->cap : 1, 1);
    if (!b->m) {
        jbudget_release(b->bud, b->cap);
        return jbuf_fail(b);
    }
    return true;
}

void jbuf_put_m(jbuf *b, const char *s, size_t n, const uint8_t *m) {
    if (b->oom || n == 0) return;
    /* a step per write and per 16 bytes: loops that build text character by
     * character are bounded by the step budget through here */
    if (!jbudget_scan(b->bud, n)) {
        b->oom = true;
        return;
    }
    bool tainted = m && memchr(m, 1, n);
    if (!jbuf_reserve(b, n) || (tainted && !jbuf_mask(b))) return;
    memcpy(b->p + b->n, s, n);
    if (b->m) {
        if (tainted)
            memcpy(b->m + b->n, m, n);
        else
            memset(b->m + b->n, 0, n);
    }
    b->n += n;
    b->p[b->n] = '\0';
}

void jbuf_put(jbuf *b, const char *s, size_t n) {
    jbuf_put_m(b, s, n, NULL);
}
void jbuf_puts(jbuf *b, const char *s) {
    jbuf_put(b, s, strlen(s));
}
void jbuf_putc(jbuf *b, char c) {
    jbuf_put(b, &c, 1);
}

void jbuf_printf(jbuf *b, const char *fmt, ...) {
    /* short texts only (numbers, escapes): longer output is a caller's bug */
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) jbuf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

char *jbuf_extend(jbuf *b, size_t n) {
    if (b->oom || !jbudget_scan(b->bud, n)) {
        b->oom = true;
        return NULL;
    }
    if (!jbuf_reserve(b, n)) return NULL;
    char *p = b->p + b->n;
    if (b->m) memset(b->m + b->n, 0, n);
    b->n += n;
    b->p[b->n] = '\0';
    return p;
}

void jbuf_taint(jbuf *b, size_t from) {
    if (b->oom || from >= b->n || !jbuf_mask(b)) return;
    memset(b->m + from, 1, b->n - from);
}

bool jbuf_tainted(const jbuf *b, size_t from) {
    return b->m && from < b->n && memchr(b->m + from, 1, b->n - from) != NULL;
}

void jbuf_free(jbuf *b) {
    jbudget_release(b->bud, b->cap * (b->m ? 2 : 1));
    free(b->p);
    free(b->m);
    b->p = NULL;
    b->m = NULL;
    b->n = b->cap = 0;
}
