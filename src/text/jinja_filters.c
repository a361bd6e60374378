/* Template filters (`x | name(args)`) with Jinja2's semantics, and the
 * string helpers they share with the str methods. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

#define OOM() err_set(M40LLM_ERR_OOM, "template: out of memory")

const jv *jarg(jv *args, size_t nargs, const char **kw, size_t pos, const char *name) {
    size_t p = 0;
    for (size_t i = 0; i < nargs; i++) {
        if (kw && kw[i]) {
            if (name && !strcmp(kw[i], name)) return &args[i];
        } else if (p++ == pos) {
            return &args[i];
        }
    }
    return NULL;
}

int jargs_check(jeval *ev, const char *fn, size_t nargs, const char **kw, size_t max_pos,
                const char *const *names, int line) {
    size_t pos = 0;
    for (size_t i = 0; i < nargs; i++) {
        if (!kw || !kw[i]) {
            if (++pos > max_pos)
                return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                                  "%s() takes at most %zu positional argument(s)", fn, max_pos);
            continue;
        }
        bool ok = false;
        for (size_t k = 0; names && names[k]; k++) ok |= !strcmp(names[k], kw[i]);
        if (!ok)
            return jeval_fail(ev, M40LLM_ERR_UNSUPPORTED, line,
                              "%s() got an unexpected keyword argument '%s'", fn, kw[i]);
    }
    return M40LLM_OK;
}

static int to_str(jeval *ev, const jv *v, jv *out) {
    return jv_stringify(ev->a, v, out);
}

/* ---- filters ---- */
#define FILTER(name)                                                                               \
    static int f_##name(jeval *ev, jv *in, jv *args, size_t nargs, const char **kw, int line,      \
                        jv *out)

FILTER(trim) {
    static const char *const names[] = {"chars", NULL};
    JTRY(jargs_check(ev, "trim", nargs, kw, 1, names, line));
    return jstr_strip(ev, in, jarg(args, nargs, kw, 0, "chars"), 3, out);
}

FILTER(length) {
    (void)args, (void)nargs, (void)kw;
    switch (in->type) {
    case JV_UNDEF:
        *out = jv_int(0);
        return M40LLM_OK;
    case JV_STR: {
        int64_t c = 0;
        JTRY(jeval_charge(ev, in->s.n / JB_BYTES_PER_STEP));
        for (size_t i = 0; i < in->s.n; i++) c += ((unsigned char)in->s.p[i] & 0xc0) != 0x80;
        *out = jv_int(c);
        return M40LLM_OK;
    }
    case JV_LIST:
        *out = jv_int((int64_t)in->l->n);
        return M40LLM_OK;
    case JV_DICT:
        *out = jv_int((int64_t)in->d->n);
        return M40LLM_OK;
    default:
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "object of type '%s' has no len()",
                          jv_type_name(in));
    }
}

FILTER(tojson) {
    /* transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None,
     * separators=None, sort_keys=False); no HTML escaping */
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    JTRY(jargs_check(ev, "tojson", nargs, kw, 4, names, line));
    const jv *ea = jarg(args, nargs, kw, 0, "ensure_ascii"),
             *ind = jarg(args, nargs, kw, 1, "indent");
    const jv *sep = jarg(args, nargs, kw, 2, "separators"),
             *sk = jarg(args, nargs, kw, 3, "sort_keys");
    jjson_opts o = {.indent = -1};
    o.ensure_ascii = ea && jv_truthy(ea);
    o.sort_keys = sk && jv_truthy(sk);
    if (ind && (ind->type == JV_INT || ind->type == JV_BOOL)) {
        int64_t v = ind->type == JV_INT ? ind->i : ind->b;
        o.indent = v < 0 ? 0 : v > 64 ? 64 : (int)v;
    } else if (ind && ind->type == JV_STR) {
        o.indent_str = ind;
    } else if (ind && ind->type != JV_NONE) {
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "tojson: indent must be int or str");
    }
    if (sep && sep->type == JV_LIST && sep->l->n == 2 && sep->l->items[0].type == JV_STR &&
        sep->l->items[1].type == JV_STR) {
        o.item_sep = &sep->l->items[0];
        o.key_sep = &sep->l->items[1];
    } else if (sep && sep->type != JV_NONE) {
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                          "tojson: separators must be a pair of strings");
    }
    jbuf b = JBUF(ev);
    int rc = jv_to_json(&b, in, &o);
    if (rc != M40LLM_OK) {
        jbuf_free(&b);
        JTRY(jeval_check(ev));
        return jeval_fail(ev, rc, line, "%s", m40llm_last_error());
    }
    return jv_from_buf(ev, &b, out);
}

FILTER(upper) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return jstr_case(ev, in, JCASE_UPPER, out);
}
FILTER(lower) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return jstr_case(ev, in, JCASE_LOWER, out);
}
FILTER(capitalize) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return jstr_case(ev, in, JCASE_CAPITALIZE, out);
}
FILTER(title) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return jstr_case(ev, in, JCASE_JTITLE, out);
}

FILTER(replace) {
    static const char *const names[] = {"old", "new", "count", NULL};
    JTRY(jargs_check(ev, "replace", nargs, kw, 3, names, line));
    const jv *o = jarg(args, nargs, kw, 0, "old"), *n = jarg(args, nargs, kw, 1, "new");
    const jv *c = jarg(args, nargs, kw, 2, "count");
    if (!o || !n) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "replace() needs old and new");
    return jstr_replace(ev, in, o, n, c && c->type == JV_INT ? c->i : -1, out);
}

FILTER(default) {
    static const char *const names[] = {"default_value", "boolean", NULL};
    JTRY(jargs_check(ev, "default", nargs, kw, 2, names, line));
    const jv *d = jarg(args, nargs, kw, 0, "default_value"),
             *b = jarg(args, nargs, kw, 1, "boolean");
    bool use = in->type == JV_UNDEF || (b && jv_truthy(b) && !jv_truthy(in));
    *out = use ? (d ? *d : jv_strn("", 0)) : *in;
    return M40LLM_OK;
}

/* the first or last code point of a string, without listing them all */
static jv str_end_char(const jv *s, bool last) {
    if (s->s.n == 0)
        return jv_undef(last ? "No last item, sequence was empty."
                             : "No first item, sequence was empty.");
    size_t b = 0, e = s->s.n;
    if (last) {
        b = e - 1;
        while (b > 0 && ((unsigned char)s->s.p[b] & 0xc0) == 0x80) b--;
    } else {
        e = 1;
        while (e < s->s.n && ((unsigned char)s->s.p[e] & 0xc0) == 0x80) e++;
    }
    return jv_sub(s, b, e - b);
}

FILTER(first) {
    (void)args, (void)nargs, (void)kw;
    if (in->type == JV_STR) {
        *out = str_end_char(in, false);
        return M40LLM_OK;
    }
    jlist *l;
    JTRY(jeval_to_list(ev, in, line, &l));
    *out = l->n ? l->items[0] : jv_undef("No first item, sequence was empty.");
    return M40LLM_OK;
}

FILTER(last) {
    (void)args, (void)nargs, (void)kw;
    if (in->type == JV_STR) {
        *out = str_end_char(in, true);
        return M40LLM_OK;
    }
    jlist *l;
    JTRY(jeval_to_list(ev, in, line, &l));
    *out = l->n ? l->items[l->n - 1] : jv_undef("No last item, sequence was empty.");
    return M40LLM_OK;
}

/* attribute path "a.b" or an integer, looked up as Jinja's make_attrgetter does */
static int attr_get(jeval *ev, const jv *item, const jv *attr, int line, jv *out) {
    if (attr->type != JV_STR) return jeval_getitem(ev, item, attr, line, out);
    jv cur = *item;
    const char *p = attr->s.p, *end = p + attr->s.n;
    while (p <= end) {
        JTRY(jeval_charge(ev, 1));
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot) dot = end;
        jv key = jv_strn(p, (size_t)(dot - p));
        bool digits = dot > p;
        for (const char *q = p; q < dot; q++) digits &= *q >= '0' && *q <= '9';
        if (digits) key = jv_int(strtoll(p, NULL, 10));
        JTRY(jeval_getitem(ev, &cur, &key, line, &cur));
        p = dot + 1;
    }
    *out = cur;
    return M40LLM_OK;
}

FILTER(join) {
    static const char *const names[] = {"d", "attribute", NULL};
    JTRY(jargs_check(ev, "join", nargs, kw, 2, names, line));
    const jv *d = jarg(args, nargs, kw, 0, "d"), *attr = jarg(args, nargs, kw, 1, "attribute");
    jlist *l;
    JTRY(jeval_to_list(ev, in, line, &l));
    jv sep = jv_strn("", 0);
    if (d) JTRY(to_str(ev, d, &sep));
    jbuf b = JBUF(ev);
    for (size_t i = 0; i < l->n; i++) {
        jv it = l->items[i];
        int rc = jeval_charge(ev, 1);
        if (rc == M40LLM_OK && attr) rc = attr_get(ev, &l->items[i], attr, line, &it);
        if (rc != M40LLM_OK) {
            jbuf_free(&b);
            return rc;
        }
        if (i) jbuf_put_m(&b, sep.s.p, sep.s.n, sep.s.t);
        jv_to_str(&b, &it); /* each piece keeps its marks */
    }
    return jv_from_buf(ev, &b, out);
}

FILTER(items) {
    (void)args, (void)nargs, (void)kw;
    jlist *l = jlist_new(ev->a, 0);
    if (!l) return OOM();
    if (in->type != JV_UNDEF) {
        if (in->type != JV_DICT)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "Can only get item pairs from a mapping.");
        for (size_t i = 0; i < in->d->n; i++) {
            jlist *t = jlist_new(ev->a, 2);
            if (!t) return OOM();
            t->is_tuple = true;
            JTRY(jlist_push(ev->a, t, in->d->keys[i]));
            JTRY(jlist_push(ev->a, t, in->d->vals[i]));
            JTRY(jlist_push(ev->a, l, jv_list(t)));
        }
    }
    *out = jv_list(l);
    return M40LLM_OK;
}

FILTER(list) {
    (void)args, (void)nargs, (void)kw;
    jlist *l, *c;
    JTRY(jeval_to_list(ev, in, line, &l));
    c = jlist_new(ev->a, l->n);
    if (!c) return OOM();
    for (size_t i = 0; i < l->n; i++) JTRY(jlist_push(ev->a, c, l->items[i]));
    *out = jv_list(c);
    return M40LLM_OK;
}

FILTER(string) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return to_str(ev, in, out);
}
FILTER(safe) {
    (void)ev, (void)args, (void)nargs, (void)kw, (void)line;
    *out = *in;
    return M40LLM_OK;
}

FILTER(escape) {
    (void)args, (void)nargs, (void)kw, (void)line;
    jv s;
    JTRY(to_str(ev, in, &s));
    jbuf b = JBUF(ev);
    for (size_t i = 0; i < s.s.n && !b.oom;) {
        size_t run = strcspn_n(s.s.p + i, s.s.n - i, "&<>\"'"); /* written at once */
        jbuf_put(&b, s.s.p + i, run);
        if ((i += run) == s.s.n) break;
        char c = s.s.p[i++];
        jbuf_puts(&b, c == '&'   ? "&amp;"
                      : c == '<' ? "&lt;"
                      : c == '>' ? "&gt;"
                      : c == '"' ? "&#34;"
                                 : "&#39;");
    }
    JTRY(jv_from_buf(ev, &b, out));
    return jv_taint_all(ev, out, jv_tainted(&s));
}

FILTER(int) {
    static const char *const names[] = {"default", "base", NULL};
    JTRY(jargs_check(ev, "int", nargs, kw, 2, names, line));
    const jv *d = jarg(args, nargs, kw, 0, "default"), *bs = jarg(args, nargs, kw, 1, "base");
    int base = bs && bs->type == JV_INT ? (int)bs->i : 10;
    *out = d ? *d : jv_int(0);
    if (in->type == JV_INT)
        *out = *in;
    else if (in->type == JV_BOOL)
        *out = jv_int(in->b);
    else if (in->type == JV_FLOAT && isfinite(in->f))
        *out = jv_int((int64_t)in->f);
    else if (in->type == JV_STR) {
        char tmp[64];
        size_t n = in->s.n < sizeof tmp - 1 ? in->s.n : sizeof tmp - 1;
        memcpy(tmp, in->s.p, n);
        tmp[n] = 0;
        char *end;
        long long v = strtoll(tmp, &end, base);
        while (*end == ' ' || *end == '\t' || *end == '\n') end++;
        if (end != tmp && !*end)
            *out = jv_int(v);
        else {
            double f = strtod(tmp, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n') end++;
            if (end != tmp && !*end && isfinite(f)) *out = jv_int((int64_t)f);
        }
    }
    return M40LLM_OK;
}

FILTER(float) {
    static const char *const names[] = {"default", NULL};
    JTRY(jargs_check(ev, "float", nargs, kw, 1, names, line));
    const jv *d = jarg(args, nargs, kw, 0, "default");
    *out = d ? *d : jv_float(0.0);
    if (jv_is_number(in))
        *out = jv_float(jv_as_double(in));
    else if (in->type == JV_STR) {
        char tmp[64], *end;
        size_t n = in->s.n < sizeof tmp - 1 ? in->s.n : sizeof tmp - 1;
        memcpy(tmp, in->s.p, n);
        tmp[n] = 0;
        double f = strtod(tmp, &end);
        if (end != tmp && !*end) *out = jv_float(f);
    }
    return M40LLM_OK;
}

FILTER(abs) {
    (void)args, (void)nargs, (void)kw;
    if (in->type == JV_INT)
        *out = jv_int(in->i < 0 ? -in->i : in->i);
    else if (in->type == JV_BOOL)
        *out = jv_int(in->b);
    else if (in->type == JV_FLOAT)
        *out = jv_float(fabs(in->f));
    else
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "bad operand type for abs(): '%s'",
                          jv_type_name(in));
    return M40LLM_OK;
}

/* select/reject/selectattr/rejectattr: keep items whose test (or truth) is `want` */
static int select_common(jeval *ev, jv *in, jv *args, size_t nargs, int line, bool by_attr,
                         bool want, jv *out) {
    jlist *l, *r;
    JTRY(jeval_to_list(ev, in, line, &l));
    r = jlist_new(ev->a, 0);
    if (!r) return OOM();
    size_t k = 0;
    const jv *attr = NULL;
    if (by_attr) {
        if (nargs < 1) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "missing attribute name");
        attr = &args[k++];
    }
    const char *test = NULL;
    if (k < nargs) {
        if (args[k].type != JV_STR)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "test name must be a string");
        test = jarena_strndup(ev->a, args[k].s.p, args[k].s.n);
        if (!test) return OOM();
        k++;
    }
    const jtest_def *td = test ? jinja_find_test(test) : NULL;
    if (test && !td)
        return jeval_fail(ev, M40LLM_ERR_UNSUPPORTED, line, "No test named '%s'.", test);
    for (size_t i = 0; i < l->n; i++) {
        jv v = l->items[i];
        JTRY(jeval_charge(ev, 1));
        if (attr) JTRY(attr_get(ev, &l->items[i], attr, line, &v));
        bool ok;
        if (td)
            JTRY(td->fn(ev, &v, args + k, nargs - k, line, &ok));
        else
            ok = jv_truthy(&v);
        JTRY(jeval_check(ev));
        if (ok == want) JTRY(jlist_push(ev->a, r, l->items[i]));
    }
    *out = jv_list(r);
    return M40LLM_OK;
}

FILTER(selectattr) {
    (void)kw;
    return select_common(ev, in, args, nargs, line, true, true, out);
}
FILTER(rejectattr) {
    (void)kw;
    return select_common(ev, in, args, nargs, line, true, false, out);
}
FILTER(select) {
    (void)kw;
    return select_common(ev, in, args, nargs, line, false, true, out);
}
FILTER(reject) {
    (void)kw;
    return select_common(ev, in, args, nargs, line, false, false, out);
}

FILTER(map) {
    jlist *l, *r;
    JTRY(jeval_to_list(ev, in, line, &l));
    r = jlist_new(ev->a, l->n);
    if (!r) return OOM();
    const jv *attr = jarg(args, nargs, kw, 99, "attribute");
    const jv *dflt = jarg(args, nargs, kw, 99, "default");
    const jfilter_def *fd = NULL;
    size_t first_arg = 1;
    if (!attr) {
        const jv *name = jarg(args, nargs, kw, 0, NULL);
        if (!name || name->type != JV_STR)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "map() needs a filter name or attribute=");
        char *fname = jarena_strndup(ev->a, name->s.p, name->s.n);
        if (!fname) return OOM();
        fd = jinja_find_filter(fname);
        if (!fd)
            return jeval_fail(ev, M40LLM_ERR_UNSUPPORTED, line, "No filter named '%s'.", fname);
    }
    for (size_t i = 0; i < l->n; i++) {
        jv v = l->items[i];
        JTRY(jeval_charge(ev, 1));
        if (attr) {
            JTRY(attr_get(ev, &l->items[i], attr, line, &v));
            if (v.type == JV_UNDEF && dflt) v = *dflt;
        } else {
            JTRY(fd->fn(ev, &l->items[i], args + first_arg, nargs - first_arg,
                        kw ? kw + first_arg : NULL, line, &v));
        }
        JTRY(jeval_check(ev));
        JTRY(jlist_push(ev->a, r, v));
    }
    *out = jv_list(r);
    return M40LLM_OK;
}

FILTER(unique) {
    static const char *const names[] = {"case_sensitive", "attribute", NULL};
    JTRY(jargs_check(ev, "unique", nargs, kw, 2, names, line));
    const jv *cs = jarg(args, nargs, kw, 0, "case_sensitive"),
             *attr = jarg(args, nargs, kw, 1, "attribute");
    bool sensitive = cs && jv_truthy(cs);
    jlist *l, *r, *seen;
    JTRY(jeval_to_list(ev, in, line, &l));
    r = jlist_new(ev->a, 0);
    seen = jlist_new(ev->a, 0);
    if (!r || !seen) return OOM();
    for (size_t i = 0; i < l->n; i++) {
        jv key = l->items[i];
        if (attr) JTRY(attr_get(ev, &l->items[i], attr, line, &key));
        if (!sensitive && key.type == JV_STR) JTRY(jstr_case(ev, &key, JCASE_LOWER, &key));
        bool dup = false;
        JTRY(jeval_charge(ev, seen->n + 1));
        for (size_t k = 0; k < seen->n && !dup; k++)
            dup = jv_equal(&seen->items[k], &key, &ev->bud);
        JTRY(jeval_check(ev));
        if (dup) continue;
        JTRY(jlist_push(ev->a, seen, key));
        JTRY(jlist_push(ev->a, r, l->items[i]));
    }
    *out = jv_list(r);
    return M40LLM_OK;
}

FILTER(reverse) {
    (void)args, (void)nargs, (void)kw;
    if (in->type == JV_STR) { /* as s[::-1]: each character keeps its marks */
        jbuf b = JBUF(ev);
        for (size_t e = in->s.n; e > 0 && !b.oom;) {
            size_t s = e - 1;
            while (s > 0 && ((unsigned char)in->s.p[s] & 0xc0) == 0x80) s--;
            jbuf_put_m(&b, in->s.p + s, e - s, in->s.t ? in->s.t + s : NULL);
            e = s;
        }
        return jv_from_buf(ev, &b, out);
    }
    jlist *l, *r;
    JTRY(jeval_to_list(ev, in, line, &l));
    r = jlist_new(ev->a, l->n);
    if (!r) return OOM();
    for (size_t i = l->n; i-- > 0;) JTRY(jlist_push(ev->a, r, l->items[i]));
    *out = jv_list(r);
    return M40LLM_OK;
}

FILTER(sum) {
    static const char *const names[] = {"attribute", "start", NULL};
    JTRY(jargs_check(ev, "sum", nargs, kw, 2, names, line));
    const jv *attr = jarg(args, nargs, kw, 0, "attribute"), *st = jarg(args, nargs, kw, 1, "start");
    jlist *l;
    JTRY(jeval_to_list(ev, in, line, &l));
    jv acc = st ? *st : jv_int(0);
    for (size_t i = 0; i < l->n; i++) {
        jv v = l->items[i];
        JTRY(jeval_charge(ev, 1));
        if (attr) JTRY(attr_get(ev, &l->items[i], attr, line, &v));
        if (!jv_is_number(&v) || !jv_is_number(&acc))
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "sum(): unsupported operand '%s'",
                              jv_type_name(&v));
        if (acc.type != JV_FLOAT && v.type != JV_FLOAT) {
            int64_t r;
            if (__builtin_add_overflow(acc.type == JV_INT ? acc.i : acc.b,
                                       v.type == JV_INT ? v.i : v.b, &r))
                return jeval_int_result(ev, true, 0, line, out);
            acc = jv_int(r);
        } else
            acc = jv_float(jv_as_double(&acc) + jv_as_double(&v));
    }
    *out = acc;
    return M40LLM_OK;
}

FILTER(indent) {
    static const char *const names[] = {"width", "first", "blank", NULL};
    JTRY(jargs_check(ev, "indent", nargs, kw, 3, names, line));
    const jv *w = jarg(args, nargs, kw, 0, "width"), *fi = jarg(args, nargs, kw, 1, "first");
    const jv *bl = jarg(args, nargs, kw, 2, "blank");
    jv pad = jv_strn("    ", 4), s;
    if (w && w->type == JV_STR)
        pad = *w;
    else if (w && w->type == JV_INT) {
        jbuf pb = JBUF(ev);
        for (int64_t i = 0; i < w->i && i < 256; i++) jbuf_putc(&pb, ' ');
        JTRY(jv_from_buf(ev, &pb, &pad));
    }
    JTRY(to_str(ev, in, &s));
    jbuf b = JBUF(ev);
    if (fi && jv_truthy(fi)) jbuf_put(&b, pad.s.p, pad.s.n);
    for (size_t i = 0; i < s.s.n && !b.oom;) {
        const char *nl = memchr(s.s.p + i, '\n', s.s.n - i);
        size_t e = nl ? (size_t)(nl - s.s.p) : s.s.n;
        if (i > 0 && (e > i || (bl && jv_truthy(bl)))) jbuf_put(&b, pad.s.p, pad.s.n);
        jbuf_put(&b, s.s.p + i, e - i);
        if (!nl) break;
        jbuf_putc(&b, '\n');
        i = e + 1;
        if (i == s.s.n) break; /* a final newline does not start a line */
    }
    /* where pads go depends on the text: untrusted as a whole */
    bool tainted = jv_tainted(&s) || jv_tainted(&pad);
    JTRY(jv_from_buf(ev, &b, out));
    return jv_taint_all(ev, out, tainted);
}

FILTER(attr) {
    /* a Python attribute only: dict items are not attributes */
    (void)kw;
    if (nargs < 1 || args[0].type != JV_STR)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "attr() needs an attribute name");
    char *name = jarena_strndup(ev->a, args[0].s.p, args[0].s.n);
    if (!name) return OOM();
    if (in->type == JV_DICT && in->d->kind == JD_PLAIN) {
        if (jinja_find_method(ev, in, name, out)) return M40LLM_OK;
        *out = jv_undef(jeval_hint(ev, "'dict object' has no attribute '%s'%s", name, ""));
        return M40LLM_OK;
    }
    return jeval_getattr(ev, in, name, line, out);
}

/* sort key: the item or its attribute, lower-cased unless case-sensitive */
static int sort_key(jeval *ev, const jv *item, const jv *attr, bool cs, int line, jv *out) {
    *out = *item;
    if (attr) JTRY(attr_get(ev, item, attr, line, out));
    if (!cs && out->type == JV_STR) JTRY(jstr_case(ev, out, JCASE_LOWER, out));
    return M40LLM_OK;
}

/* stable merge sort of items[n] by keys[n] through ti[n], tk[n] (one scratch
 * for all levels); errors on unorderable keys */
static int sort_items(jeval *ev, jv *items, jv *keys, jv *ti, jv *tk, size_t n, bool reverse,
                      int line) {
    if (n < 2) return M40LLM_OK;
    size_t h = n / 2;
    JTRY(sort_items(ev, items, keys, ti, tk, h, reverse, line));
    JTRY(sort_items(ev, items + h, keys + h, ti, tk, n - h, reverse, line));
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        bool lt; /* take the right one only when strictly before the left one */
        JTRY(jeval_compare(ev, JOP_LT, reverse ? &keys[i] : &keys[j], reverse ? &keys[j] : &keys[i],
                           line, &lt));
        size_t src = lt ? j++ : i++;
        ti[k] = items[src];
        tk[k++] = keys[src];
    }
    while (i < h) ti[k] = items[i], tk[k++] = keys[i++];
    while (j < n) ti[k] = items[j], tk[k++] = keys[j++];
    memcpy(items, ti, n * sizeof *ti);
    memcpy(keys, tk, n * sizeof *tk);
    return M40LLM_OK;
}

static int sorted_copy(jeval *ev, jlist *l, const jv *attr, bool cs, bool reverse, int line,
                       jlist **out) {
    jlist *r = jlist_new(ev->a, l->n);
    jv *keys = jarena_array(ev->a, l->n, sizeof *keys);
    jv *ti = jarena_array(ev->a, l->n, sizeof *ti), *tk = jarena_array(ev->a, l->n, sizeof *tk);
    if (!r || !keys || !ti || !tk) return OOM();
    for (size_t i = 0; i < l->n; i++) {
        JTRY(jlist_push(ev->a, r, l->items[i]));
        JTRY(sort_key(ev, &l->items[i], attr, cs, line, &keys[i]));
    }
    JTRY(sort_items(ev, r->items, keys, ti, tk, r->n, reverse, line));
    *out = r;
    return M40LLM_OK;
}

FILTER(sort) {
    static const char *const names[] = {"reverse", "case_sensitive", "attribute", NULL};
    JTRY(jargs_check(ev, "sort", nargs, kw, 3, names, line));
    const jv *rv = jarg(args, nargs, kw, 0, "reverse"),
             *cs = jarg(args, nargs, kw, 1, "case_sensitive");
    const jv *attr = jarg(args, nargs, kw, 2, "attribute");
    jlist *l, *r;
    JTRY(jeval_to_list(ev, in, line, &l));
    JTRY(sorted_copy(ev, l, attr, cs && jv_truthy(cs), rv && jv_truthy(rv), line, &r));
    *out = jv_list(r);
    return M40LLM_OK;
}

FILTER(dictsort) {
    static const char *const names[] = {"case_sensitive", "by", "reverse", NULL};
    JTRY(jargs_check(ev, "dictsort", nargs, kw, 3, names, line));
    const jv *cs = jarg(args, nargs, kw, 0, "case_sensitive"), *by = jarg(args, nargs, kw, 1, "by");
    const jv *rv = jarg(args, nargs, kw, 2, "reverse");
    if (in->type != JV_DICT)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "dictsort needs a mapping");
    bool by_value = by && by->type == JV_STR && by->s.n == 5 && !memcmp(by->s.p, "value", 5);
    jv pairs, idx = jv_int(by_value ? 1 : 0), r;
    JTRY(f_items(ev, in, NULL, 0, NULL, line, &pairs));
    jlist *sorted;
    JTRY(sorted_copy(ev, pairs.l, &idx, cs && jv_truthy(cs), rv && jv_truthy(rv), line, &sorted));
    r = jv_list(sorted);
    *out = r;
    return M40LLM_OK;
}

static int minmax(jeval *ev, jv *in, jv *args, size_t nargs, const char **kw, int line, bool max,
                  jv *out) {
    static const char *const names[] = {"case_sensitive", "attribute", NULL};
    JTRY(jargs_check(ev, max ? "max" : "min", nargs, kw, 2, names, line));
    const jv *cs = jarg(args, nargs, kw, 0, "case_sensitive"),
             *attr = jarg(args, nargs, kw, 1, "attribute");
    jlist *l, *r;
    JTRY(jeval_to_list(ev, in, line, &l));
    if (!l->n) {
        *out = jv_undef("No aggregated item, sequence was empty.");
        return M40LLM_OK;
    }
    JTRY(sorted_copy(ev, l, attr, cs && jv_truthy(cs), false, line, &r));
    *out = max ? r->items[r->n - 1] : r->items[0];
    return M40LLM_OK;
}
FILTER(min) {
    return minmax(ev, in, args, nargs, kw, line, false, out);
}
FILTER(max) {
    return minmax(ev, in, args, nargs, kw, line, true, out);
}

FILTER(round) {
    static const char *const names[] = {"precision", "method", NULL};
    JTRY(jargs_check(ev, "round", nargs, kw, 2, names, line));
    const jv *pr = jarg(args, nargs, kw, 0, "precision"), *me = jarg(args, nargs, kw, 1, "method");
    int64_t p = pr && pr->type == JV_INT ? pr->i : 0;
    if (!jv_is_number(in))
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "round() needs a number, not %s",
                          jv_type_name(in));
    if (in->type != JV_FLOAT && (!me || (me->s.n == 6 && !memcmp(me->s.p, "common", 6)))) {
        *out = jv_int(in->type == JV_INT ? in->i : in->b); /* Python round(int, n) keeps an int */
        return M40LLM_OK;
    }
    double scale = pow(10.0, (double)p), v = jv_as_double(in) * scale;
    if (me && me->type == JV_STR && me->s.n == 4 && !memcmp(me->s.p, "ceil", 4))
        v = ceil(v);
    else if (me && me->type == JV_STR && me->s.n == 5 && !memcmp(me->s.p, "floor", 5))
        v = floor(v);
    else if (me && me->type == JV_STR && !(me->s.n == 6 && !memcmp(me->s.p, "common", 6)))
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "method must be common, ceil or floor");
    else
        v = nearbyint(v); /* Python rounds halves to even */
    *out = jv_float(v / scale);
    return M40LLM_OK;
}

FILTER(format) {
    jv fmt;
    JTRY(to_str(ev, in, &fmt));
    bool has_kw = false;
    for (size_t i = 0; kw && i < nargs; i++) has_kw |= kw[i] != NULL;
    jv a;
    if (has_kw) {
        jdict *d = jdict_new(ev->a, JD_PLAIN);
        if (!d) return OOM();
        for (size_t i = 0; i < nargs; i++)
            if (kw[i]) JTRY(jdict_set(ev->a, d, jv_strn(kw[i], strlen(kw[i])), args[i]));
        a = jv_dict(d);
    } else {
        jlist *t = jlist_new(ev->a, nargs);
        if (!t) return OOM();
        t->is_tuple = true;
        for (size_t i = 0; i < nargs; i++) JTRY(jlist_push(ev->a, t, args[i]));
        a = jv_list(t);
    }
    return jstr_percent(ev, &fmt, &a, line, out);
}

static const jfilter_def filters[] = {
    {"sort", f_sort},
    {"dictsort", f_dictsort},
    {"min", f_min},
    {"max", f_max},
    {"round", f_round},
    {"format", f_format},
    {"trim", f_trim},
    {"length", f_length},
    {"count", f_length},
    {"tojson", f_tojson},
    {"upper", f_upper},
    {"lower", f_lower},
    {"capitalize", f_capitalize},
    {"title", f_title},
    {"replace", f_replace},
    {"default", f_default},
    {"d", f_default},
    {"first", f_first},
    {"last", f_last},
    {"join", f_join},
    {"items", f_items},
    {"list", f_list},
    {"string", f_string},
    {"safe", f_safe},
    {"escape", f_escape},
    {"e", f_escape},
    {"forceescape", f_escape},
    {"int", f_int},
    {"float", f_float},
    {"abs", f_abs},
    {"selectattr", f_selectattr},
    {"rejectattr", f_rejectattr},
    {"select", f_select},
    {"reject", f_reject},
    {"map", f_map},
    {"unique", f_unique},
    {"reverse", f_reverse},
    {"sum", f_sum},
    {"indent", f_indent},
    {"attr", f_attr},
};

const jfilter_def *jinja_find_filter(const char *name) {
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name)) return &filters[i];
    return NULL;
}
