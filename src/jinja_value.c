/* Template values: arena, buffers, containers, Python-compatible printing,
 * equality and truthiness, JSON in and out. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

/* ---- arena ---- */
struct jarena_block {
    jarena_block *next;
    size_t used, cap;
    max_align_t data[]; /* [cap] bytes */
};

enum { JARENA_BLOCK = 64 * 1024 };

void *jarena_alloc(jarena *a, size_t n) {
    size_t al = sizeof(max_align_t);
    n = (n + al - 1) / al * al;
    if (n == 0) n = al;
    jarena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > JARENA_BLOCK / 2 ? n : JARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
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

char *jarena_strndup(jarena *a, const char *s, size_t n) {
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
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- buffer ---- */
void jbuf_put(jbuf *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
void jbuf_puts(jbuf *b, const char *s) {
    jbuf_put(b, s, strlen(s));
}
void jbuf_putc(jbuf *b, char c) {
    jbuf_put(b, &c, 1);
}
void jbuf_printf(jbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) jbuf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---- containers ---- */
jlist *jlist_new(jarena *a, size_t cap) {
    jlist *l = jarena_alloc(a, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        l->items = jarena_alloc(a, cap * sizeof(jv));
        if (!l->items) return NULL;
        l->cap = cap;
    }
    return l;
}

int jlist_push(jarena *a, jlist *l, jv v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jv *items = jarena_alloc(a, cap * sizeof(jv));
        if (!items) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        if (l->n) memcpy(items, l->items, l->n * sizeof(jv));
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return M40LLM_OK;
}

jdict *jdict_new(jarena *a, jdict_kind kind) {
    jdict *d = jarena_alloc(a, sizeof *d);
    if (d) d->kind = kind;
    return d;
}

const jv *jdict_getv(const jdict *d, const jv *key) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(&d->keys[i], key)) return &d->vals[i];
    return NULL;
}

const jv *jdict_get(const jdict *d, const char *key, size_t klen) {
    for (size_t i = 0; i < d->n; i++)
        if (d->keys[i].type == JV_STR && d->keys[i].s.n == klen &&
            memcmp(d->keys[i].s.p, key, klen) == 0)
            return &d->vals[i];
    return NULL;
}

int jdict_set(jarena *a, jdict *d, jv key, jv val) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(&d->keys[i], &key)) {
            d->vals[i] = val;
            return M40LLM_OK;
        }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jv *k = jarena_alloc(a, cap * sizeof(jv)), *v = jarena_alloc(a, cap * sizeof(jv));
        if (!k || !v) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        if (d->n) {
            memcpy(k, d->keys, d->n * sizeof(jv));
            memcpy(v, d->vals, d->n * sizeof(jv));
        }
        d->keys = k;
        d->vals = v;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = val;
    d->n++;
    return M40LLM_OK;
}

jv jv_list(jlist *l) {
    return (jv){.type = JV_LIST, .l = l};
}
jv jv_dict(jdict *d) {
    return (jv){.type = JV_DICT, .d = d};
}

/* ---- type queries ---- */
const char *jv_type_name(const jv *v) {
    switch (v->type) {
    case JV_UNDEF:
        return "Undefined";
    case JV_NONE:
        return "NoneType";
    case JV_BOOL:
        return "bool";
    case JV_INT:
        return "int";
    case JV_FLOAT:
        return "float";
    case JV_STR:
        return "str";
    case JV_LIST:
        return v->l->is_tuple ? "tuple" : "list";
    case JV_DICT:
        return v->d->kind == JD_NAMESPACE ? "Namespace"
               : v->d->kind == JD_LOOP    ? "LoopContext"
                                          : "dict";
    case JV_FUNC:
        return "function";
    case JV_MACRO:
        return "Macro";
    }
    return "object";
}

bool jv_truthy(const jv *v) {
    switch (v->type) {
    case JV_UNDEF:
    case JV_NONE:
        return false;
    case JV_BOOL:
        return v->b;
    case JV_INT:
        return v->i != 0;
    case JV_FLOAT:
        return v->f != 0.0;
    case JV_STR:
        return v->s.n != 0;
    case JV_LIST:
        return v->l->n != 0;
    case JV_DICT:
        return v->d->kind != JD_PLAIN || v->d->n != 0;
    default:
        return true;
    }
}

bool jv_is_number(const jv *v) {
    return v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_BOOL;
}

double jv_as_double(const jv *v) {
    return v->type == JV_FLOAT ? v->f : v->type == JV_INT ? (double)v->i : v->b ? 1.0 : 0.0;
}

enum { JV_MAX_NEST = 500 }; /* values nested deeper are cut off, protecting the stack */

static bool equal_at(const jv *a, const jv *b, int depth);
bool jv_equal(const jv *a, const jv *b) {
    return equal_at(a, b, 0);
}

static bool equal_at(const jv *a, const jv *b, int depth) {
    /* Python: bool is an int, so True == 1 and 0 == False; other types never
     * compare equal across kinds */
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT) {
            int64_t x = a->type == JV_INT ? a->i : a->b, y = b->type == JV_INT ? b->i : b->b;
            return x == y;
        }
        return jv_as_double(a) == jv_as_double(b);
    }
    if (a->type != b->type) return false;
    switch (a->type) {
    case JV_UNDEF:
    case JV_NONE:
        return true;
    case JV_STR:
        return a->s.n == b->s.n && memcmp(a->s.p, b->s.p, a->s.n) == 0;
    case JV_LIST:
        if (a->l->n != b->l->n || a->l->is_tuple != b->l->is_tuple) return false;
        for (size_t i = 0; i < a->l->n; i++)
            if (depth >= JV_MAX_NEST || !equal_at(&a->l->items[i], &b->l->items[i], depth + 1))
                return false;
        return true;
    case JV_DICT:
        if (a->d->kind != JD_PLAIN || b->d->kind != JD_PLAIN) return a->d == b->d;
        if (a->d->n != b->d->n) return false;
        for (size_t i = 0; i < a->d->n; i++) {
            const jv *o = jdict_getv(b->d, &a->d->keys[i]);
            if (!o || depth >= JV_MAX_NEST || !equal_at(&a->d->vals[i], o, depth + 1)) return false;
        }
        return true;
    case JV_FUNC:
        return a->fn.fn == b->fn.fn && a->fn.self == b->fn.self;
    case JV_MACRO:
        return a->macro.stmt == b->macro.stmt;
    default:
        return false;
    }
}

/* ---- printing ---- */
void jv_format_float(jbuf *b, double f) {
    if (isnan(f)) return jbuf_puts(b, "nan");
    if (isinf(f)) return jbuf_puts(b, f < 0 ? "-inf" : "inf");
    /* shortest digits that read back as the same double, like Python's repr */
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d.ddde[+-]XX: split into digits and decimal exponent */
    char digits[32];
    size_t nd = 0;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') neg = true, p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (neg) jbuf_putc(b, '-');
    if (exp < -4 || exp >= 16) {
        jbuf_putc(b, digits[0]);
        if (nd > 1) {
            jbuf_putc(b, '.');
            jbuf_put(b, digits + 1, nd - 1);
        }
        jbuf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        jbuf_puts(b, "0.");
        for (int i = -1; i > exp; i--) jbuf_putc(b, '0');
        jbuf_put(b, digits, nd);
    } else {
        for (int i = 0; i <= exp; i++) jbuf_putc(b, (size_t)i < nd ? digits[i] : '0');
        jbuf_putc(b, '.');
        if ((size_t)exp + 1 < nd)
            jbuf_put(b, digits + exp + 1, nd - (size_t)exp - 1);
        else
            jbuf_putc(b, '0');
    }
}

static void repr_str(jbuf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    jbuf_putc(b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == (unsigned char)q || c == '\\') {
            jbuf_putc(b, '\\');
            jbuf_putc(b, (char)c);
        } else if (c == '\n') {
            jbuf_puts(b, "\\n");
        } else if (c == '\r') {
            jbuf_puts(b, "\\r");
        } else if (c == '\t') {
            jbuf_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            jbuf_printf(b, "\\x%02x", c);
        } else {
            jbuf_putc(b, (char)c);
        }
    }
    jbuf_putc(b, q);
}

static void repr_at(jbuf *b, const jv *v, int depth);
void jv_repr(jbuf *b, const jv *v) {
    repr_at(b, v, 0);
}

static void repr_at(jbuf *b, const jv *v, int depth) {
    if (depth > JV_MAX_NEST && (v->type == JV_LIST || v->type == JV_DICT)) {
        jbuf_puts(b, "...");
        return;
    }
    switch (v->type) {
    case JV_STR:
        repr_str(b, v->s.p, v->s.n);
        return;
    case JV_LIST: {
        bool t = v->l->is_tuple;
        jbuf_putc(b, t ? '(' : '[');
        for (size_t i = 0; i < v->l->n; i++) {
            if (i) jbuf_puts(b, ", ");
            repr_at(b, &v->l->items[i], depth + 1);
        }
        if (t && v->l->n == 1) jbuf_putc(b, ',');
        jbuf_putc(b, t ? ')' : ']');
        return;
    }
    case JV_DICT:
        if (v->d->kind == JD_NAMESPACE) jbuf_puts(b, "<Namespace ");
        jbuf_putc(b, '{');
        for (size_t i = 0; i < v->d->n; i++) {
            if (i) jbuf_puts(b, ", ");
            repr_at(b, &v->d->keys[i], depth + 1);
            jbuf_puts(b, ": ");
            repr_at(b, &v->d->vals[i], depth + 1);
        }
        jbuf_putc(b, '}');
        if (v->d->kind == JD_NAMESPACE) jbuf_putc(b, '>');
        return;
    default:
        jv_to_str(b, v);
    }
}

void jv_to_str(jbuf *b, const jv *v) {
    switch (v->type) {
    case JV_UNDEF:
        return;
    case JV_NONE:
        jbuf_puts(b, "None");
        return;
    case JV_BOOL:
        jbuf_puts(b, v->b ? "True" : "False");
        return;
    case JV_INT:
        jbuf_printf(b, "%lld", (long long)v->i);
        return;
    case JV_FLOAT:
        jv_format_float(b, v->f);
        return;
    case JV_STR:
        jbuf_put(b, v->s.p, v->s.n);
        return;
    case JV_LIST:
    case JV_DICT:
        jv_repr(b, v);
        return;
    case JV_FUNC:
        jbuf_printf(b, "<function %s>", v->fn.name);
        return;
    case JV_MACRO:
        jbuf_puts(b, "<Macro>");
        return;
    }
}

int jv_stringify(jarena *a, const jv *v, jv *out) {
    if (v->type == JV_STR) {
        *out = *v;
        return M40LLM_OK;
    }
    jbuf b = {0};
    jv_to_str(&b, v);
    if (b.oom) {
        free(b.p);
        return err_set(M40LLM_ERR_OOM, "template: out of memory");
    }
    char *p = jarena_strndup(a, b.p ? b.p : "", b.n);
    size_t n = b.n;
    free(b.p);
    if (!p) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    *out = jv_strn(p, n);
    return M40LLM_OK;
}

/* ---- JSON in ---- */
/* an arena copy of s as a string value */
static int json_str_val(jarena *a, const char *s, jv *out) {
    size_t n = strlen(s);
    char *p = jarena_strndup(a, s, n);
    if (!p) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    *out = jv_strn(p, n);
    return M40LLM_OK;
}

int jv_from_json(jarena *a, const cJSON *j, jv *out) {
    if (cJSON_IsNull(j) || !j) {
        *out = jv_none();
    } else if (cJSON_IsBool(j)) {
        *out = jv_bool(cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        /* JSON has one number type; integral values become Python ints */
        if (d == floor(d) && fabs(d) < 9.0e15)
            *out = jv_int((int64_t)d);
        else
            *out = jv_float(d);
    } else if (cJSON_IsString(j)) {
        return json_str_val(a, j->valuestring, out);
    } else if (cJSON_IsArray(j)) {
        jlist *l = jlist_new(a, (size_t)cJSON_GetArraySize(j));
        if (!l) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        const cJSON *it;
        cJSON_ArrayForEach(it, j) {
            jv v;
            JTRY(jv_from_json(a, it, &v));
            JTRY(jlist_push(a, l, v));
        }
        *out = jv_list(l);
    } else if (cJSON_IsObject(j)) {
        jdict *d = jdict_new(a, JD_PLAIN);
        if (!d) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        const cJSON *it;
        cJSON_ArrayForEach(it, j) {
            jv v;
            JTRY(jv_from_json(a, it, &v));
            jv key;
            JTRY(json_str_val(a, it->string ? it->string : "", &key));
            JTRY(jdict_set(a, d, key, v));
        }
        *out = jv_dict(d);
    } else {
        return err_set(M40LLM_ERR_TYPE, "template variables: unsupported JSON value");
    }
    return M40LLM_OK;
}

/* ---- JSON out (Python json.dumps) ---- */
static void json_str(jbuf *b, const char *s, size_t n, bool ascii) {
    jbuf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            jbuf_putc(b, '\\');
            jbuf_putc(b, (char)c);
            i++;
        } else if (c < 0x20) {
            const char *e = c == '\n'   ? "\\n"
                            : c == '\r' ? "\\r"
                            : c == '\t' ? "\\t"
                            : c == '\b' ? "\\b"
                            : c == '\f' ? "\\f"
                                        : NULL;
            if (e)
                jbuf_puts(b, e);
            else
                jbuf_printf(b, "\\u%04x", c);
            i++;
        } else if (ascii && c >= 0x7f) {
            uint32_t cp;
            i += utf8_decode(s + i, n - i, &cp);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                jbuf_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                jbuf_printf(b, "\\u%04x", cp);
            }
        } else {
            jbuf_putc(b, (char)c);
            i++;
        }
    }
    jbuf_putc(b, '"');
}

static void json_newline(jbuf *b, const jjson_opts *o, int level) {
    jbuf_putc(b, '\n');
    for (int i = 0; i < level; i++) {
        if (o->indent_str)
            jbuf_puts(b, o->indent_str);
        else
            for (int k = 0; k < o->indent; k++) jbuf_putc(b, ' ');
    }
}

static int json_val(jbuf *b, const jv *v, const jjson_opts *o, int level) {
    if (level > JV_MAX_NEST) return err_set(M40LLM_ERR_FORMAT, "tojson: value nested too deeply");
    bool pretty = o->indent >= 0 || o->indent_str;
    const char *isep = o->item_sep ? o->item_sep : pretty ? "," : ", ";
    const char *ksep = o->key_sep ? o->key_sep : ": ";
    switch (v->type) {
    case JV_NONE:
        jbuf_puts(b, "null");
        return M40LLM_OK;
    case JV_BOOL:
        jbuf_puts(b, v->b ? "true" : "false");
        return M40LLM_OK;
    case JV_INT:
        jbuf_printf(b, "%lld", (long long)v->i);
        return M40LLM_OK;
    case JV_FLOAT:
        if (isnan(v->f))
            jbuf_puts(b, "NaN");
        else if (isinf(v->f))
            jbuf_puts(b, v->f < 0 ? "-Infinity" : "Infinity");
        else
            jv_format_float(b, v->f);
        return M40LLM_OK;
    case JV_STR:
        json_str(b, v->s.p, v->s.n, o->ensure_ascii);
        return M40LLM_OK;
    case JV_LIST:
        if (v->l->n == 0) {
            jbuf_puts(b, "[]");
            return M40LLM_OK;
        }
        jbuf_putc(b, '[');
        for (size_t i = 0; i < v->l->n; i++) {
            if (i) jbuf_puts(b, isep);
            if (pretty) json_newline(b, o, level + 1);
            JTRY(json_val(b, &v->l->items[i], o, level + 1));
        }
        if (pretty) json_newline(b, o, level);
        jbuf_putc(b, ']');
        return M40LLM_OK;
    case JV_DICT: {
        const jdict *d = v->d;
        if (d->n == 0) {
            jbuf_puts(b, "{}");
            return M40LLM_OK;
        }
        size_t *order = malloc(d->n * sizeof *order);
        if (!order) return err_set(M40LLM_ERR_OOM, "tojson: out of memory");
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (o->sort_keys) /* insertion sort by key bytes (keys are few) */
            for (size_t i = 1; i < d->n; i++)
                for (size_t k = i; k > 0; k--) {
                    const jv *x = &d->keys[order[k - 1]], *y = &d->keys[order[k]];
                    if (x->type != JV_STR || y->type != JV_STR) break;
                    size_t m = x->s.n < y->s.n ? x->s.n : y->s.n;
                    int c = memcmp(x->s.p, y->s.p, m);
                    if (c < 0 || (c == 0 && x->s.n <= y->s.n)) break;
                    size_t t = order[k];
                    order[k] = order[k - 1];
                    order[k - 1] = t;
                }
        jbuf_putc(b, '{');
        int rc = M40LLM_OK;
        for (size_t i = 0; i < d->n && rc == M40LLM_OK; i++) {
            const jv *k = &d->keys[order[i]];
            if (i) jbuf_puts(b, isep);
            if (pretty) json_newline(b, o, level + 1);
            if (k->type == JV_STR) {
                json_str(b, k->s.p, k->s.n, o->ensure_ascii);
            } else if (k->type == JV_INT || k->type == JV_FLOAT || k->type == JV_BOOL ||
                       k->type == JV_NONE) {
                /* Python writes non-string keys as their JSON text in quotes */
                jbuf_putc(b, '"');
                json_val(b, k, o, level + 1);
                jbuf_putc(b, '"');
            } else {
                rc = err_set(M40LLM_ERR_FORMAT,
                             "tojson: keys must be str, int, float, bool "
                             "or None, not %s",
                             jv_type_name(k));
                break;
            }
            jbuf_puts(b, ksep);
            rc = json_val(b, &d->vals[order[i]], o, level + 1);
        }
        free(order);
        JTRY(rc);
        if (pretty) json_newline(b, o, level);
        jbuf_putc(b, '}');
        return M40LLM_OK;
    }
    default:
        return err_set(M40LLM_ERR_FORMAT, "tojson: Object of type %s is not JSON serializable",
                       jv_type_name(v));
    }
}

int jv_to_json(jbuf *b, const jv *v, const jjson_opts *o) {
    return json_val(b, v, o, 0);
}

/* ---- UTF-8 ---- */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80 || n < 2) {
        *cp = u[0];
        return 1;
    }
    int len = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : u[0] >= 0xc0 ? 2 : 1;
    if ((size_t)len > n || len == 1) {
        *cp = u[0];
        return 1;
    }
    uint32_t c = u[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80) {
            *cp = u[0];
            return 1;
        }
        c = (c << 6) | (u[i] & 0x3f);
    }
    *cp = c;
    return (size_t)len;
}

void utf8_put(jbuf *b, uint32_t cp) {
    char t[4];
    if (cp < 0x80) {
        jbuf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        t[0] = (char)(0xc0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3f));
        jbuf_put(b, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xe0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[2] = (char)(0x80 | (cp & 0x3f));
        jbuf_put(b, t, 3);
    } else {
        t[0] = (char)(0xf0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[3] = (char)(0x80 | (cp & 0x3f));
        jbuf_put(b, t, 4);
    }
}

bool jv_is_space_cp(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Case mapping for the scripts chat text commonly holds (Latin-1, Latin
 * Extended-A, Greek, Cyrillic); other characters are left unchanged. */
uint32_t jcase_upper(uint32_t c) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0x80) return c;
    if ((c >= 0xe0 && c <= 0xfe && c != 0xf7)) return c - 32;
    if (c == 0xff) return 0x178;
    if (c == 0xb5) return 0x39c;
    if (c >= 0x100 && c <= 0x17e && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149) {
        bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
        if (odd_upper ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
        return c;
    }
    if (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2) return c - 32;
    if (c == 0x3c2) return 0x3a3;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    return c;
}

uint32_t jcase_lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
    if (c == 0x178) return 0xff;
    if (c >= 0x100 && c <= 0x17e && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149) {
        bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
        if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
        return c;
    }
    if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    return c;
}

bool jcase_is_cased(uint32_t c) {
    /* lowercase letters with no single-letter uppercase still count */
    if (c == 0xdf || c == 0x138 || c == 0x149 || c == 0x17f) return true;
    return jcase_upper(c) != c || jcase_lower(c) != c;
}
