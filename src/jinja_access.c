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
        const jv *v = jdict_get(obj->d, name, strlen(name));
        if (v) {
            *out = *v;
            return M40LLM_OK;
        }
    }
    /* Python attribute first (dict.items is the method), then the item */
    if (jinja_find_method(ev, obj, name, out)) return M40LLM_OK;
    if (obj->type == JV_DICT && obj->d->kind == JD_PLAIN) {
        const jv *v = jdict_get(obj->d, name, strlen(name));
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

/* byte offset of code point k in s */
static size_t utf8_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    for (; i < n && k > 0; k--) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80) i++;
    }
    return i;
}

int jeval_getitem(jeval *ev, const jv *obj, const jv *key, int line, jv *out) {
    if (obj->type == JV_UNDEF) return jeval_undef_error(ev, obj, line);
    if (obj->type == JV_DICT && obj->d->kind == JD_PLAIN) {
        const jv *v = jdict_getv(obj->d, key);
        if (v) {
            *out = *v;
            return M40LLM_OK;
        }
    } else if ((obj->type == JV_LIST || obj->type == JV_STR) &&
               (key->type == JV_INT || key->type == JV_BOOL)) {
        int64_t i = key->type == JV_INT ? key->i : key->b;
        size_t len = obj->type == JV_LIST ? obj->l->n : utf8_count(obj->s.p, obj->s.n);
        if (i < 0) i += (int64_t)len;
        if (i >= 0 && (size_t)i < len) {
            if (obj->type == JV_LIST) {
                *out = obj->l->items[i];
            } else {
                size_t b = utf8_offset(obj->s.p, obj->s.n, (size_t)i);
                size_t e = utf8_offset(obj->s.p, obj->s.n, (size_t)i + 1);
                *out = jv_strn(obj->s.p + b, e - b);
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
    jbuf kb = {0};
    jv_repr(&kb, key);
    *out = jv_undef(
        jeval_hint(ev, "'%s object' has no attribute %s", jv_type_name(obj), kb.p ? kb.p : ""));
    free(kb.p);
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
        for (int64_t i = a; step > 0 ? i < b : i > b; i += step)
            JTRY(jlist_push(ev->a, l, obj->l->items[i]));
        l->is_tuple = obj->l->is_tuple;
        *out = jv_list(l);
        return M40LLM_OK;
    }
    /* byte offset of every code point, so the slice is linear in its length */
    size_t *off = jarena_alloc(ev->a, ((size_t)len + 1) * sizeof *off);
    if (!off) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    for (size_t i = 0, k = 0; i <= obj->s.n; i++)
        if (i == obj->s.n || ((unsigned char)obj->s.p[i] & 0xc0) != 0x80) off[k++] = i;
    jbuf sb = {0};
    for (int64_t i = a; step > 0 ? i < b : i > b; i += step)
        jbuf_put(&sb, obj->s.p + off[i], off[i + 1] - off[i]);
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
            JTRY(jlist_push(ev->a, l, jv_strn(v->s.p + i, e - i)));
            i = e;
        }
    } else {
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "'%s' object is not iterable",
                          jv_type_name(v));
    }
    *out = l;
    return M40LLM_OK;
}
