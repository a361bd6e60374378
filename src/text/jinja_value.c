/* Template values: containers, Python-compatible printing, equality and
 * truthiness, JSON out. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

/* ---- containers ---- */
#define OOM() err_set(M40LLM_ERR_OOM, "template: out of memory")

jlist *jlist_new(jarena *a, size_t cap) {
    jlist *l = jarena_alloc(a, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        l->items = jarena_array(a, cap, sizeof(jv));
        if (!l->items) return NULL;
        l->cap = cap;
    }
    return l;
}

/* a new capacity for n items that no longer fit: doubled, overflow-checked */
static bool grow_cap(jarena *a, size_t cap, size_t *out) {
    if (cap > SIZE_MAX / 2 / sizeof(jv)) {
        jbudget_fail(a->bud, JB_MEMORY);
        return false;
    }
    *out = cap ? cap * 2 : 8;
    return true;
}

int jlist_push(jarena *a, jlist *l, jv v) {
    if (l->n == l->cap) {
        size_t cap;
        if (!grow_cap(a, l->cap, &cap)) return OOM();
        jv *items = jarena_array(a, cap, sizeof(jv));
        if (!items) return OOM();
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

const jv *jdict_getv(const jdict *d, const jv *key, jbudget *bud) {
    if (!jbudget_charge(bud, d->n + 1)) return NULL;
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(&d->keys[i], key, bud)) return &d->vals[i];
    return NULL;
}

const jv *jdict_get(const jdict *d, const char *key, size_t klen, jbudget *bud) {
    if (!jbudget_charge(bud, d->n + 1)) return NULL;
    for (size_t i = 0; i < d->n; i++)
        if (d->keys[i].type == JV_STR && d->keys[i].s.n == klen &&
            memcmp(d->keys[i].s.p, key, klen) == 0)
            return jbudget_scan(bud, klen) ? &d->vals[i] : NULL;
    return NULL;
}

int jdict_set(jarena *a, jdict *d, jv key, jv val) {
    if (!jbudget_charge(a->bud, d->n + 1)) return OOM();
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(&d->keys[i], &key, a->bud)) {
            d->vals[i] = val;
            return M40LLM_OK;
        }
    return jdict_append(a, d, key, val);
}

int jdict_append(jarena *a, jdict *d, jv key, jv val) {
    if (d->n == d->cap) {
        size_t cap;
        if (!grow_cap(a, d->cap, &cap)) return OOM();
        jv *k = jarena_array(a, cap, sizeof(jv)), *v = jarena_array(a, cap, sizeof(jv));
        if (!k || !v) return OOM();
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

static bool equal_at(const jv *a, const jv *b, int depth, jbudget *bud);
bool jv_equal(const jv *a, const jv *b, jbudget *bud) {
    return equal_at(a, b, 0, bud);
}

static bool equal_at(const jv *a, const jv *b, int depth, jbudget *bud) {
    if (!jbudget_charge(bud, 1)) return false;
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
        return a->s.n == b->s.n && jbudget_scan(bud, a->s.n) && memcmp(a->s.p, b->s.p, a->s.n) == 0;
    case JV_LIST:
        if (a->l->n != b->l->n || a->l->is_tuple != b->l->is_tuple) return false;
        if (a->l == b->l) return true; /* the same list (shared sub-lists stay cheap) */
        for (size_t i = 0; i < a->l->n; i++)
            if (depth >= JV_MAX_NEST || !equal_at(&a->l->items[i], &b->l->items[i], depth + 1, bud))
                return false;
        return true;
    case JV_DICT:
        if (a->d->kind != JD_PLAIN || b->d->kind != JD_PLAIN) return a->d == b->d;
        if (a->d->n != b->d->n) return false;
        if (a->d == b->d) return true;
        for (size_t i = 0; i < a->d->n; i++) {
            const jv *o = jdict_getv(b->d, &a->d->keys[i], bud);
            if (!o || depth >= JV_MAX_NEST || !equal_at(&a->d->vals[i], o, depth + 1, bud))
                return false;
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

/* `tainted` is set when an untrusted string is printed: a container's text
 * is then untrusted as a whole (quotes and escapes depend on the content). */
static void repr_str(jbuf *b, const jv *v, bool *tainted) {
    const char *s = v->s.p;
    size_t n = v->s.n;
    if (jv_tainted(v)) *tainted = true;
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    jbuf_putc(b, q);
    for (size_t i = 0; i < n && !b->oom; i++) {
        size_t run = 0; /* printable bytes other than quotes and backslashes go at once */
        while (i + run < n && (unsigned char)s[i + run] >= 0x20 && s[i + run] != 0x7f &&
               s[i + run] != q && s[i + run] != '\\')
            run++;
        if (run) {
            jbuf_put(b, s + i, run);
            if ((i += run) == n) break;
        }
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

static void repr_at(jbuf *b, const jv *v, int depth, bool *tainted);
void jv_repr(jbuf *b, const jv *v) {
    size_t start = b->n;
    bool tainted = false;
    repr_at(b, v, 0, &tainted);
    if (tainted) jbuf_taint(b, start);
}

static void repr_at(jbuf *b, const jv *v, int depth, bool *tainted) {
    /* a value can be a small DAG of shared lists printing as a huge tree:
     * every node costs a step and printing stops at the budget */
    if (b->oom || !jbudget_charge(b->bud, 1)) return;
    if (depth > JV_MAX_NEST && (v->type == JV_LIST || v->type == JV_DICT)) {
        jbuf_puts(b, "...");
        return;
    }
    switch (v->type) {
    case JV_STR:
        repr_str(b, v, tainted);
        return;
    case JV_LIST: {
        bool t = v->l->is_tuple;
        jbuf_putc(b, t ? '(' : '[');
        for (size_t i = 0; i < v->l->n && !b->oom; i++) {
            if (i) jbuf_puts(b, ", ");
            repr_at(b, &v->l->items[i], depth + 1, tainted);
        }
        if (t && v->l->n == 1) jbuf_putc(b, ',');
        jbuf_putc(b, t ? ')' : ']');
        return;
    }
    case JV_DICT:
        if (v->d->kind == JD_NAMESPACE) jbuf_puts(b, "<Namespace ");
        jbuf_putc(b, '{');
        for (size_t i = 0; i < v->d->n && !b->oom; i++) {
            if (i) jbuf_puts(b, ", ");
            repr_at(b, &v->d->keys[i], depth + 1, tainted);
            jbuf_puts(b, ": ");
            repr_at(b, &v->d->vals[i], depth + 1, tainted);
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
        jbuf_put_m(b, v->s.p, v->s.n, v->s.t);
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
    jbuf b = {.bud = a->bud};
    jv_to_str(&b, v);
    return jv_from_jbuf(a, NULL, &b, out);
}

/* ---- JSON out (Python json.dumps) ---- */
typedef struct jjson_ctx {
    jbuf *b;
    const jjson_opts *o;
    bool tainted; /* an untrusted string (or separator) was written */
} jjson_ctx;

static void json_str(jjson_ctx *c, const jv *v) {
    jbuf *b = c->b;
    const char *s = v->s.p;
    size_t n = v->s.n;
    if (jv_tainted(v)) c->tainted = true;
    jbuf_putc(b, '"');
    for (size_t i = 0; i < n && !b->oom;) {
        size_t run = 0; /* bytes written as they are go at once */
        while (i + run < n && (unsigned char)s[i + run] >= 0x20 && s[i + run] != '"' &&
               s[i + run] != '\\' && !(c->o->ensure_ascii && (unsigned char)s[i + run] >= 0x7f))
            run++;
        if (run) {
            jbuf_put(b, s + i, run);
            if ((i += run) == n) break;
        }
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            jbuf_putc(b, '\\');
            jbuf_putc(b, (char)ch);
            i++;
        } else if (ch < 0x20) {
            const char *e = ch == '\n'   ? "\\n"
                            : ch == '\r' ? "\\r"
                            : ch == '\t' ? "\\t"
                            : ch == '\b' ? "\\b"
                            : ch == '\f' ? "\\f"
                                         : NULL;
            if (e)
                jbuf_puts(b, e);
            else
                jbuf_printf(b, "\\u%04x", ch);
            i++;
        } else if (c->o->ensure_ascii && ch >= 0x7f) {
            uint32_t cp;
            i += utf8_decode(s + i, n - i, &cp);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                jbuf_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                jbuf_printf(b, "\\u%04x", cp);
            }
        } else {
            jbuf_putc(b, (char)ch);
            i++;
        }
    }
    jbuf_putc(b, '"');
}

/* a separator or indent given as a template string */
static void json_text(jjson_ctx *c, const jv *v) {
    if (jv_tainted(v)) c->tainted = true;
    jbuf_put(c->b, v->s.p, v->s.n);
}

static void json_newline(jjson_ctx *c, int level) {
    jbuf_putc(c->b, '\n');
    if (!c->o->indent_str) {
        size_t n = (size_t)c->o->indent * (size_t)level; /* both small: at most 64 * 501 */
        char *p = n ? jbuf_extend(c->b, n) : NULL;
        if (p) memset(p, ' ', n);
        return;
    }
    for (int i = 0; i < level && !c->b->oom; i++) json_text(c, c->o->indent_str);
}

/* the order in which a dict's keys are written: insertion, or sorted by key
 * bytes (insertion sort, every comparison a step); NULL on OOM or budget */
static size_t *key_order(jjson_ctx *c, const jdict *d) {
    jbudget *bud = c->b->bud;
    if (!jbudget_mem(bud, d->n * sizeof(size_t))) return NULL;
    size_t *order = malloc(d->n * sizeof *order);
    if (!order) {
        jbudget_release(bud, d->n * sizeof(size_t));
        return NULL;
    }
    for (size_t i = 0; i < d->n; i++) order[i] = i;
    if (c->o->sort_keys)
        for (size_t i = 1; i < d->n; i++)
            for (size_t k = i; k > 0; k--) {
                const jv *x = &d->keys[order[k - 1]], *y = &d->keys[order[k]];
                if (x->type != JV_STR || y->type != JV_STR) break;
                size_t m = x->s.n < y->s.n ? x->s.n : y->s.n;
                if (!jbudget_scan(bud, m)) {
                    jbudget_release(bud, d->n * sizeof(size_t));
                    free(order);
                    return NULL;
                }
                int cmp = memcmp(x->s.p, y->s.p, m);
                if (cmp < 0 || (cmp == 0 && x->s.n <= y->s.n)) break;
                size_t t = order[k];
                order[k] = order[k - 1];
                order[k - 1] = t;
            }
    return order;
}

static int json_val(jjson_ctx *c, const jv *v, int level) {
    jbuf *b = c->b;
    const jjson_opts *o = c->o;
    if (level > JV_MAX_NEST) return err_set(M40LLM_ERR_FORMAT, "tojson: value nested too deeply");
    /* shared sub-lists can make a small value a huge tree: stop at the budget */
    if (b->oom || !jbudget_charge(b->bud, 1))
        return err_set(M40LLM_ERR_OOM, "tojson: out of memory");
    bool pretty = o->indent >= 0 || o->indent_str;
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
        json_str(c, v);
        return M40LLM_OK;
    case JV_LIST:
        if (v->l->n == 0) {
            jbuf_puts(b, "[]");
            return M40LLM_OK;
        }
        jbuf_putc(b, '[');
        for (size_t i = 0; i < v->l->n; i++) {
            if (i) o->item_sep ? json_text(c, o->item_sep) : jbuf_puts(b, pretty ? "," : ", ");
            if (pretty) json_newline(c, level + 1);
            JTRY(json_val(c, &v->l->items[i], level + 1));
        }
        if (pretty) json_newline(c, level);
        jbuf_putc(b, ']');
        return M40LLM_OK;
    case JV_DICT: {
        const jdict *d = v->d;
        if (d->n == 0) {
            jbuf_puts(b, "{}");
            return M40LLM_OK;
        }
        size_t *order = key_order(c, d);
        if (!order) return err_set(M40LLM_ERR_OOM, "tojson: out of memory");
        jbuf_putc(b, '{');
        int rc = M40LLM_OK;
        for (size_t i = 0; i < d->n && rc == M40LLM_OK; i++) {
            const jv *k = &d->keys[order[i]];
            if (i) o->item_sep ? json_text(c, o->item_sep) : jbuf_puts(b, pretty ? "," : ", ");
            if (pretty) json_newline(c, level + 1);
            if (k->type == JV_STR) {
                json_str(c, k);
            } else if (k->type == JV_INT || k->type == JV_FLOAT || k->type == JV_BOOL ||
                       k->type == JV_NONE) {
                /* Python writes non-string keys as their JSON text in quotes */
                jbuf_putc(b, '"');
                json_val(c, k, level + 1);
                jbuf_putc(b, '"');
            } else {
                rc = err_set(M40LLM_ERR_FORMAT,
                             "tojson: keys must be str, int, float, bool "
                             "or None, not %s",
                             jv_type_name(k));
                break;
            }
            o->key_sep ? json_text(c, o->key_sep) : jbuf_puts(b, ": ");
            rc = json_val(c, &d->vals[order[i]], level + 1);
        }
        jbudget_release(b->bud, d->n * sizeof(size_t));
        free(order);
        JTRY(rc);
        if (pretty) json_newline(c, level);
        jbuf_putc(b, '}');
        return M40LLM_OK;
    }
    default:
        return err_set(M40LLM_ERR_FORMAT, "tojson: Object of type %s is not JSON serializable",
                       jv_type_name(v));
    }
}

int jv_to_json(jbuf *b, const jv *v, const jjson_opts *o) {
    size_t start = b->n;
    jjson_ctx c = {.b = b, .o = o};
    JTRY(json_val(&c, v, 0));
    if (c.tainted) jbuf_taint(b, start);
    return M40LLM_OK;
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

size_t utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

void utf8_put(jbuf *b, uint32_t cp) {
    char t[4];
    jbuf_put(b, t, utf8_encode(cp, t));
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
