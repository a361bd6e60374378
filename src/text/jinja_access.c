/* Attribute, item and slice access with Jinja2's lookup rules, and
 * iteration over values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

/* ---- attribute and item access ---- */
int jeval_getattr(jeval *ev, const jv *obj, const char *name, int line, jv *out) {
    if (obj->type == JV_UNDEF) return jeval_undef_error(ev, obj, line);
    if (obj->type == JV_DICT && obj->d->kind != JD_PLAIN) {
        const jv *v = jdict_get(obj->d, name, strlen(name), &ev->bud);
        if (v) {
            *out = *v;
            return M40LLM_OK;
        }
    }
    /* Python attribute first (dict.items is the method), then the item */
    if (jinja_find_method(ev, obj, name, out)) return M40LLM_OK;
    if (obj->type == JV_DICT && obj->d->kind == JD_PLAIN) {
        const jv *v = jdict_get(obj->d, name, strlen(name), &ev->bud);
        if (v) {
            *out = *v;
            return M40LLM_OK;
        }
    }
    if (obj->type == JV_NONE)
        *out = jv_undef(jeval_hint(ev, "'None' has no attribute '%s'%s", name, ""));
    else
        *out =
            jv_undef(jeval_hint(ev, "'%s object' has no attribute '%s'", jv_type_name(obj), name));
    return M40LLM_OK;
}

static size_t utf8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) c++;
    return c;
}

static bool utf8_cont(char c) {
    return ((unsigned char)c & 0xc0) == 0x80;
}

/* byte offset of code point k in s (as utf8_count counts: stray continuation
 * bytes before the first code point belong to none) */
static size_t utf8_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (i < n && utf8_cont(s[i])) i++;
    for (; i < n && k > 0; k--) {
        i++;
        while (i < n && utf8_cont(s[i])) i++;
    }
    return i;
}

int jeval_getitem(jeval *ev, const jv *obj, const jv *key, int line, jv *out) {
    if (obj->type == JV_UNDEF) return jeval_undef_error(ev, obj, line);
    if (obj->type == JV_DICT && obj->d->kind == JD_PLAIN) {
        const jv *v = jdict_getv(obj->d, key, &ev->bud);
        if (v) {
            *out = *v;
            return M40LLM_OK;
        }
    } else if ((obj->type == JV_LIST || obj->type == JV_STR) &&
               (key->type == JV_INT || key->type == JV_BOOL)) {
        int64_t i = key->type == JV_INT ? key->i : key->b;
        if (obj->type == JV_STR) JTRY(jeval_charge(ev, obj->s.n / JB_BYTES_PER_STEP));
        size_t len = obj->type == JV_LIST ? obj->l->n : utf8_count(obj->s.p, obj->s.n);
        if (i < 0) i += (int64_t)len;
        if (i >= 0 && (size_t)i < len) {
            if (obj->type == JV_LIST) {
                *out = obj->l->items[i];
            } else {
                size_t b = utf8_offset(obj->s.p, obj->s.n, (size_t)i);
                size_t e = utf8_offset(obj->s.p, obj->s.n, (size_t)i + 1);
                *out = jv_sub(obj, b, e - b);
            }
            return M40LLM_OK;
        }
        *out = jv_undef(jeval_hint(ev, "%s object has no element %s", jv_type_name(obj), ""));
        return M40LLM_OK;
    }
    if (key->type == JV_STR) {
        char *name = jarena_strndup(ev->a, key->s.p, key->s.n);
        if (!name) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        return jeval_getattr(ev, obj, name, line, out);
    }
    jbuf kb = JBUF(ev);
    jv_repr(&kb, key);
    *out = jv_undef(
        jeval_hint(ev, "'%s object' has no attribute %s", jv_type_name(obj), kb.p ? kb.p : ""));
    jbuf_free(&kb);
    return M40LLM_OK;
}

static int slice_bound(jeval *ev, const jv *v, int line, bool *has, int64_t *out) {
    *has = false;
    if (v->type == JV_NONE || v->type == JV_UNDEF) return M40LLM_OK;
    if (v->type != JV_INT && v->type != JV_BOOL)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                          "slice indices must be integers or None, not %s", jv_type_name(v));
    *has = true;
    *out = v->type == JV_INT ? v->i : v->b;
    return M40LLM_OK;
}

int jeval_slice(jeval *ev, const jv *obj, const jv *lo, const jv *hi, const jv *st, int line,
                jv *out) {
    if (obj->type == JV_UNDEF) return jeval_undef_error(ev, obj, line);
    if (obj->type != JV_LIST && obj->type != JV_STR)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "'%s' object is not subscriptable",
                          jv_type_name(obj));
    bool hlo, hhi, hst;
    int64_t a = 0, b = 0, step = 1;
    JTRY(slice_bound(ev, lo, line, &hlo, &a));
    JTRY(slice_bound(ev, hi, line, &hhi, &b));
    JTRY(slice_bound(ev, st, line, &hst, &step));
    if (step == 0) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "slice step cannot be zero");
    if (obj->type == JV_STR) JTRY(jeval_charge(ev, obj->s.n / JB_BYTES_PER_STEP));
    int64_t len =
        obj->type == JV_LIST ? (int64_t)obj->l->n : (int64_t)utf8_count(obj->s.p, obj->s.n);
    /* Python's slice.indices() */
    if (!hlo)
        a = step > 0 ? 0 : len - 1;
    else {
        if (a < 0) a += len;
        if (a < 0) a = step > 0 ? 0 : -1;
        if (a > len) a = step > 0 ? len : len - 1;
        if (a == len && step < 0) a = len - 1;
    }
    if (!hhi)
        b = step > 0 ? len : -1;
    else {
        if (b < 0) b += len;
        if (b < 0) b = step > 0 ? 0 : -1;
        if (b > len) b = len;
    }
    if (obj->type == JV_LIST) {
        jlist *l = jlist_new(ev->a, 0);
        if (!l) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        for (int64_t i = a; step > 0 ? i < b : i > b; i += step) {
            JTRY(jlist_push(ev->a, l, obj->l->items[i]));
            if (step > 0 ? i > INT64_MAX - step : i < INT64_MIN - step) break;
        }
        l->is_tuple = obj->l->is_tuple;
        *out = jv_list(l);
        return M40LLM_OK;
    }
    const char *p = obj->s.p;
    size_t n = obj->s.n;
    if (step == 1) { /* a contiguous range keeps the bytes where they are */
        size_t from = a < b ? utf8_offset(p, n, (size_t)a) : 0;
        size_t to = a < b ? utf8_offset(p + from, n - from, (size_t)(b - a)) + from : 0;
        *out = jv_sub(obj, from, to - from);
        return M40LLM_OK;
    }
    /* code point by code point, a cursor walking from a in steps */
    jbuf sb = JBUF(ev);
    size_t pos = a >= 0 && a < len ? utf8_offset(p, n, (size_t)a) : 0;
    for (int64_t i = a; (step > 0 ? i < b : i > b) && !sb.oom;) {
        size_t e = pos + 1;
        while (e < n && utf8_cont(p[e])) e++;
        jbuf_put_m(&sb, p + pos, e - pos, obj->s.t ? obj->s.t + pos : NULL);
        int64_t next;
        if (__builtin_add_overflow(i, step, &next) || (step > 0 ? next >= b : next <= b)) break;
        if (step > 0) {
            pos = utf8_offset(p + pos, n - pos, (size_t)step) + pos;
        } else {
            uint64_t back = (uint64_t)(-(step + 1)) + 1;     /* -step, even for INT64_MIN */
            for (uint64_t k = 0; k < back && pos > 0; k++) { /* back one code point */
                pos--;
                while (pos > 0 && utf8_cont(p[pos])) pos--;
            }
        }
        i = next;
    }
    return jv_from_buf(ev, &sb, out);
}

int jeval_to_list(jeval *ev, const jv *v, int line, jlist **out) {
    if (v->type == JV_LIST) {
        *out = v->l;
        return M40LLM_OK;
    }
    jlist *l = jlist_new(ev->a, 0);
    if (!l) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    if (v->type == JV_UNDEF) {
        /* Jinja2's Undefined iterates as empty */
    } else if (v->type == JV_DICT && v->d->kind == JD_PLAIN) {
        for (size_t i = 0; i < v->d->n; i++) JTRY(jlist_push(ev->a, l, v->d->keys[i]));
    } else if (v->type == JV_STR) {
        for (size_t i = 0; i < v->s.n;) {
            size_t e = i + 1;
            while (e < v->s.n && ((unsigned char)v->s.p[e] & 0xc0) == 0x80) e++;
            JTRY(jlist_push(ev->a, l, jv_sub(v, i, e - i)));
            i = e;
        }
    } else {
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "'%s' object is not iterable",
                          jv_type_name(v));
    }
    *out = l;
    return M40LLM_OK;
}
