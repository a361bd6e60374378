/* Template tests (`x is name`), global functions (raise_exception,
 * strftime_now, range, namespace, dict) and the Python str/dict methods that
 * chat templates call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_int.h"

#define OOM() err_set(M40LLM_ERR_OOM, "template: out of memory")

/* ---- tests ---- */
#define TEST(name)                                                                                 \
    static int t_##name(jeval *ev, const jv *in, jv *args, size_t nargs, int line, bool *out)
#define UNUSED_TEST_ARGS (void)ev, (void)args, (void)nargs, (void)line

TEST(defined) {
    UNUSED_TEST_ARGS;
    *out = in->type != JV_UNDEF;
    return M40LLM_OK;
}
TEST(undefined) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_UNDEF;
    return M40LLM_OK;
}
TEST(none) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_NONE;
    return M40LLM_OK;
}
TEST(boolean) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_BOOL;
    return M40LLM_OK;
}
TEST(true) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_BOOL && in->b;
    return M40LLM_OK;
}
TEST(false) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_BOOL && !in->b;
    return M40LLM_OK;
}
TEST(integer) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_INT;
    return M40LLM_OK;
}
TEST(float) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_FLOAT;
    return M40LLM_OK;
}
TEST(number) {
    UNUSED_TEST_ARGS;
    *out = jv_is_number(in);
    return M40LLM_OK;
}
TEST(string) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_STR;
    return M40LLM_OK;
}
TEST(mapping) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_DICT && in->d->kind == JD_PLAIN;
    return M40LLM_OK;
}
TEST(iterable) {
    /* Undefined iterates (as empty) in Jinja2, so it counts */
    UNUSED_TEST_ARGS;
    *out = in->type == JV_STR || in->type == JV_LIST || in->type == JV_UNDEF ||
           (in->type == JV_DICT && in->d->kind != JD_NAMESPACE);
    return M40LLM_OK;
}
TEST(sequence) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_STR || in->type == JV_LIST || in->type == JV_UNDEF ||
           (in->type == JV_DICT && in->d->kind == JD_PLAIN);
    return M40LLM_OK;
}
TEST(callable) {
    UNUSED_TEST_ARGS;
    *out = in->type == JV_FUNC || in->type == JV_MACRO;
    return M40LLM_OK;
}
TEST(escaped) {
    UNUSED_TEST_ARGS;
    *out = false;
    return M40LLM_OK;
}

static int int_of(jeval *ev, const jv *v, int line, int64_t *out) {
    if (v->type == JV_INT)
        *out = v->i;
    else if (v->type == JV_BOOL)
        *out = v->b;
    else if (v->type == JV_UNDEF)
        return jeval_undef_error(ev, v, line);
    else
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "expected an integer, got %s",
                          jv_type_name(v));
    return M40LLM_OK;
}
TEST(odd) {
    int64_t i = 0;
    (void)args, (void)nargs;
    JTRY(int_of(ev, in, line, &i));
    *out = i % 2 != 0;
    return M40LLM_OK;
}
TEST(even) {
    int64_t i = 0;
    (void)args, (void)nargs;
    JTRY(int_of(ev, in, line, &i));
    *out = i % 2 == 0;
    return M40LLM_OK;
}
TEST(divisibleby) {
    int64_t i = 0, d = 0;
    if (nargs < 1) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "divisibleby needs a number");
    JTRY(int_of(ev, in, line, &i));
    JTRY(int_of(ev, &args[0], line, &d));
    if (d == 0)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "integer division or modulo by zero");
    *out = i % d == 0;
    return M40LLM_OK;
}
TEST(sameas) {
    if (nargs < 1) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "sameas needs a value");
    /* identity: singletons compare by value, containers by reference */
    const jv *o = &args[0];
    if (in->type != o->type)
        *out = false;
    else if (in->type == JV_LIST)
        *out = in->l == o->l;
    else if (in->type == JV_DICT)
        *out = in->d == o->d;
    else
        *out = jv_equal(in, o, &ev->bud);
    return M40LLM_OK;
}
static int cmp_test(jeval *ev, jcmp_op op, const jv *in, jv *args, size_t nargs, int line,
                    bool *out) {
    if (nargs < 1) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "comparison test needs a value");
    return jeval_compare(ev, op, in, &args[0], line, out);
}
TEST(eq) {
    return cmp_test(ev, JOP_EQ, in, args, nargs, line, out);
}
TEST(ne) {
    return cmp_test(ev, JOP_NE, in, args, nargs, line, out);
}
TEST(lt) {
    return cmp_test(ev, JOP_LT, in, args, nargs, line, out);
}
TEST(le) {
    return cmp_test(ev, JOP_LE, in, args, nargs, line, out);
}
TEST(gt) {
    return cmp_test(ev, JOP_GT, in, args, nargs, line, out);
}
TEST(ge) {
    return cmp_test(ev, JOP_GE, in, args, nargs, line, out);
}
TEST(in) {
    return cmp_test(ev, JOP_IN, in, args, nargs, line, out);
}
static int case_test(jeval *ev, const jv *in, jcase_mode m, bool *out) {
    jv s, t;
    JTRY(jv_stringify(ev->a, in, &s));
    JTRY(jstr_case(ev, &s, m, &t));
    *out = jv_equal(&s, &t, &ev->bud);
    return M40LLM_OK;
}
TEST(lower) {
    (void)args, (void)nargs, (void)line;
    return case_test(ev, in, JCASE_LOWER, out);
}
TEST(upper) {
    (void)args, (void)nargs, (void)line;
    return case_test(ev, in, JCASE_UPPER, out);
}

static const jtest_def tests[] = {
    {"defined", t_defined},
    {"undefined", t_undefined},
    {"none", t_none},
    {"boolean", t_boolean},
    {"true", t_true},
    {"false", t_false},
    {"integer", t_integer},
    {"float", t_float},
    {"number", t_number},
    {"string", t_string},
    {"mapping", t_mapping},
    {"iterable", t_iterable},
    {"sequence", t_sequence},
    {"callable", t_callable},
    {"escaped", t_escaped},
    {"odd", t_odd},
    {"even", t_even},
    {"divisibleby", t_divisibleby},
    {"sameas", t_sameas},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"==", t_eq},
    {"ne", t_ne},
    {"!=", t_ne},
    {"lt", t_lt},
    {"lessthan", t_lt},
    {"<", t_lt},
    {"le", t_le},
    {"<=", t_le},
    {"gt", t_gt},
    {"greaterthan", t_gt},
    {">", t_gt},
    {"ge", t_ge},
    {">=", t_ge},
    {"in", t_in},
    {"lower", t_lower},
    {"upper", t_upper},
};

const jtest_def *jinja_find_test(const char *name) {
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!strcmp(tests[i].name, name)) return &tests[i];
    return NULL;
}

/* ---- global functions ---- */
#define FUNC(name)                                                                                 \
    static int g_##name(jeval *ev, const jv *self, jv *args, size_t nargs, const char **kw,        \
                        int line, jv *out)

FUNC(raise_exception) {
    (void)self, (void)kw, (void)out, (void)line;
    jv msg = jv_strn("", 0);
    if (nargs > 0) JTRY(jv_stringify(ev->a, &args[0], &msg));
    return err_set(M40LLM_ERR_INVALID_ARG, "%.*s", (int)msg.s.n, msg.s.p);
}

FUNC(strftime_now) {
    (void)self, (void)kw;
    if (nargs < 1 || args[0].type != JV_STR)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "strftime_now() needs a format string");
    char fmt[256], res[512];
    snprintf(fmt, sizeof fmt, "%.*s", (int)args[0].s.n, args[0].s.p);
    time_t t = ev->now ? (time_t)ev->now : time(NULL);
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "strftime_now(): bad time");
    size_t n = fmt[0] ? strftime(res, sizeof res, fmt, &tm) : 0;
    char *p = jarena_strndup(ev->a, res, n);
    if (!p) return OOM();
    *out = jv_strn(p, n);
    return jv_taint_all(ev, out, jv_tainted(&args[0]));
}

FUNC(range) {
    (void)self, (void)kw;
    int64_t a = 0, b = 0, step = 1;
    if (nargs < 1 || nargs > 3)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "range expected 1 to 3 arguments, got %zu",
                          nargs);
    int64_t v[3];
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type != JV_INT && args[i].type != JV_BOOL)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "'%s' object cannot be interpreted as an integer",
                              jv_type_name(&args[i]));
        v[i] = args[i].type == JV_INT ? args[i].i : args[i].b;
    }
    if (nargs == 1)
        b = v[0];
    else
        a = v[0], b = v[1];
    if (nargs == 3) step = v[2];
    if (step == 0) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "range() arg 3 must not be zero");
    /* in unsigned arithmetic: b - a and the steps may not fit int64 */
    uint64_t span = step > 0 ? (b > a ? (uint64_t)b - (uint64_t)a : 0)
                             : (a > b ? (uint64_t)a - (uint64_t)b : 0);
    uint64_t ustep = step > 0 ? (uint64_t)step : (uint64_t)0 - (uint64_t)step;
    uint64_t n = span / ustep + (span % ustep != 0);
    if (n > 100000) /* the sandbox's MAX_RANGE */
        return jeval_fail(
            ev, M40LLM_ERR_FORMAT, line,
            "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    JTRY(jeval_charge(ev, n));
    jlist *l = jlist_new(ev->a, (size_t)n);
    if (!l) return OOM();
    for (uint64_t i = 0; i < n; i++) /* every value lies between a and b */
        JTRY(jlist_push(ev->a, l, jv_int((int64_t)((uint64_t)a + i * (uint64_t)step))));
    *out = jv_list(l);
    return M40LLM_OK;
}

static int make_dict(jeval *ev, jdict_kind kind, jv *args, size_t nargs, const char **kw, int line,
                     jv *out) {
    jdict *d = jdict_new(ev->a, kind);
    if (!d) return OOM();
    for (size_t i = 0; i < nargs; i++) {
        if (kw && kw[i]) {
            JTRY(jdict_set(ev->a, d, jv_strn(kw[i], strlen(kw[i])), args[i]));
        } else if (args[i].type == JV_DICT) {
            for (size_t k = 0; k < args[i].d->n; k++)
                JTRY(jdict_set(ev->a, d, args[i].d->keys[k], args[i].d->vals[k]));
        } else {
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "positional argument of type '%s' cannot initialize a mapping",
                              jv_type_name(&args[i]));
        }
    }
    *out = jv_dict(d);
    return M40LLM_OK;
}
FUNC(namespace) {
    (void)self;
    return make_dict(ev, JD_NAMESPACE, args, nargs, kw, line, out);
}
FUNC(dict) {
    (void)self;
    return make_dict(ev, JD_PLAIN, args, nargs, kw, line, out);
}

typedef struct jglobal {
    const char *name;
    jfunc_fn fn;
} jglobal;
static const jglobal globals[] = {
    {"raise_exception", g_raise_exception},
    {"strftime_now", g_strftime_now},
    {"range", g_range},
    {"namespace", g_namespace},
    {"dict", g_dict},
};

bool jinja_find_global(const char *name, jv *out) {
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (!strcmp(globals[i].name, name)) {
            *out = (jv){.type = JV_FUNC};
            out->fn.fn = globals[i].fn;
            out->fn.name = globals[i].name;
            return true;
        }
    return false;
}

/* ---- methods ---- */
#define METHOD(name) FUNC(name)

METHOD(str_strip) {
    (void)kw, (void)line;
    return jstr_strip(ev, self, nargs ? &args[0] : NULL, 3, out);
}
METHOD(str_lstrip) {
    (void)kw, (void)line;
    return jstr_strip(ev, self, nargs ? &args[0] : NULL, 1, out);
}
METHOD(str_rstrip) {
    (void)kw, (void)line;
    return jstr_strip(ev, self, nargs ? &args[0] : NULL, 2, out);
}
METHOD(str_upper) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return jstr_case(ev, self, JCASE_UPPER, out);
}
METHOD(str_lower) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return jstr_case(ev, self, JCASE_LOWER, out);
}
METHOD(str_title) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return jstr_case(ev, self, JCASE_TITLE, out);
}
METHOD(str_capitalize) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return jstr_case(ev, self, JCASE_CAPITALIZE, out);
}

METHOD(str_replace) {
    if (nargs < 2)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "replace() takes at least 2 arguments");
    const jv *c = jarg(args, nargs, kw, 2, "count");
    return jstr_replace(ev, self, &args[0], &args[1], c && c->type == JV_INT ? c->i : -1, out);
}

static bool is_space_at(const char *s, size_t n, size_t i, size_t *len) {
    uint32_t c;
    *len = utf8_decode(s + i, n - i, &c);
    return jv_is_space_cp(c);
}

METHOD(str_split) {
    const jv *sep = jarg(args, nargs, kw, 0, "sep"), *ms = jarg(args, nargs, kw, 1, "maxsplit");
    int64_t maxsplit = ms && ms->type == JV_INT ? ms->i : -1;
    const char *s = self->s.p;
    size_t n = self->s.n, i = 0, k;
    /* whitespace is decoded character by character; a separator is searched */
    JTRY(jeval_charge(ev, !sep || sep->type == JV_NONE ? n : n / JB_BYTES_PER_STEP));
    jlist *l = jlist_new(ev->a, 0);
    if (!l) return OOM();
    if (!sep || sep->type == JV_NONE) {
        /* runs of whitespace separate; none at the ends */
        while (i < n) {
            while (i < n && is_space_at(s, n, i, &k)) i += k;
            if (i >= n) break;
            size_t b = i;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                size_t e = n;
                while (e > b) {
                    size_t st = e - 1;
                    while (st > b && ((unsigned char)s[st] & 0xc0) == 0x80) st--;
                    if (!is_space_at(s, n, st, &k)) break;
                    e = st;
                }
                JTRY(jlist_push(ev->a, l, jv_sub(self, b, e - b)));
                break;
            }
            while (i < n && !is_space_at(s, n, i, &k)) i += k;
            JTRY(jlist_push(ev->a, l, jv_sub(self, b, i - b)));
        }
    } else {
        if (sep->type != JV_STR)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "must be str or None, not %s",
                              jv_type_name(sep));
        if (sep->s.n == 0) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "empty separator");
        for (;;) {
            const char *hit = (maxsplit < 0 || (int64_t)l->n < maxsplit)
                                  ? jmemmem(s + i, n - i, sep->s.p, sep->s.n)
                                  : NULL;
            if (!hit) {
                JTRY(jlist_push(ev->a, l, jv_sub(self, i, n - i)));
                break;
            }
            JTRY(jlist_push(ev->a, l, jv_sub(self, i, (size_t)(hit - (s + i)))));
            JTRY(jeval_charge(ev, 1 + sep->s.n / JB_BYTES_PER_STEP));
            i = (size_t)(hit - s) + sep->s.n;
        }
        /* pieces keep their bytes' marks, unless an untrusted separator cut them */
        if (jv_tainted(sep))
            for (size_t p = 0; p < l->n; p++) JTRY(jv_taint_all(ev, &l->items[p], true));
    }
    *out = jv_list(l);
    return M40LLM_OK;
}

static int affix(jeval *ev, const jv *self, jv *args, size_t nargs, int line, bool end, jv *out) {
    if (nargs < 1)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "%s() takes at least 1 argument",
                          end ? "endswith" : "startswith");
    const jv *a = &args[0];
    size_t cnt = a->type == JV_LIST ? a->l->n : 1;
    bool r = false;
    for (size_t i = 0; i < cnt && !r; i++) {
        const jv *p = a->type == JV_LIST ? &a->l->items[i] : a;
        if (p->type != JV_STR)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "%s first arg must be str or a tuple of str, not %s",
                              end ? "endswith" : "startswith", jv_type_name(p));
        JTRY(jeval_charge(ev, p->s.n / JB_BYTES_PER_STEP + 1));
        if (p->s.n <= self->s.n)
            r = !memcmp(self->s.p + (end ? self->s.n - p->s.n : 0), p->s.p, p->s.n);
    }
    *out = jv_bool(r);
    return M40LLM_OK;
}
METHOD(str_startswith) {
    (void)kw;
    return affix(ev, self, args, nargs, line, false, out);
}
METHOD(str_endswith) {
    (void)kw;
    return affix(ev, self, args, nargs, line, true, out);
}

METHOD(str_find) {
    (void)kw;
    if (nargs < 1 || args[0].type != JV_STR)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "find() needs a string");
    JTRY(jeval_charge(ev, (self->s.n + args[0].s.n) / JB_BYTES_PER_STEP));
    const char *hit =
        args[0].s.n ? jmemmem(self->s.p, self->s.n, args[0].s.p, args[0].s.n) : self->s.p;
    int64_t cp = -1;
    if (hit) {
        cp = 0;
        for (const char *q = self->s.p; q < hit; q++) cp += ((unsigned char)*q & 0xc0) != 0x80;
    }
    *out = jv_int(cp);
    return M40LLM_OK;
}

METHOD(str_count) {
    (void)kw;
    if (nargs < 1 || args[0].type != JV_STR || args[0].s.n == 0)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "count() needs a non-empty string");
    JTRY(jeval_charge(ev, (self->s.n + args[0].s.n) / JB_BYTES_PER_STEP));
    int64_t c = 0;
    for (size_t i = 0; i < self->s.n;) {
        const char *hit = jmemmem(self->s.p + i, self->s.n - i, args[0].s.p, args[0].s.n);
        if (!hit) break;
        JTRY(jeval_charge(ev, 1 + args[0].s.n / JB_BYTES_PER_STEP)); /* a search per hit */
        c++;
        i = (size_t)(hit - self->s.p) + args[0].s.n;
    }
    *out = jv_int(c);
    return M40LLM_OK;
}

METHOD(str_join) {
    (void)kw;
    if (nargs < 1)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "join() takes exactly one argument");
    jlist *l;
    JTRY(jeval_to_list(ev, &args[0], line, &l));
    jbuf b = JBUF(ev);
    for (size_t i = 0; i < l->n; i++) {
        int rc = jeval_charge(ev, 1);
        if (rc == M40LLM_OK && l->items[i].type != JV_STR)
            rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                            "sequence item %zu: expected str instance, %s found", i,
                            jv_type_name(&l->items[i]));
        if (rc != M40LLM_OK) {
            jbuf_free(&b);
            return rc;
        }
        if (i) jbuf_put_m(&b, self->s.p, self->s.n, self->s.t);
        jbuf_put_m(&b, l->items[i].s.p, l->items[i].s.n, l->items[i].s.t);
    }
    return jv_from_buf(ev, &b, out);
}

METHOD(str_format) {
    return jstr_format(ev, self, args, nargs, kw, line, out);
}

static int str_pred(jeval *ev, const jv *self, int kind, jv *out) {
    JTRY(jeval_charge(ev, self->s.n)); /* decoded character by character */
    bool r = self->s.n > 0;
    for (size_t i = 0; i < self->s.n && r;) {
        uint32_t c;
        i += utf8_decode(self->s.p + i, self->s.n - i, &c);
        if (kind == 0)
            r = c >= '0' && c <= '9';
        else if (kind == 1)
            r = jv_is_space_cp(c);
        else
            r = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= 0x80 && jcase_is_cased(c));
    }
    *out = jv_bool(r);
    return M40LLM_OK;
}
METHOD(str_isdigit) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return str_pred(ev, self, 0, out);
}
METHOD(str_isspace) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return str_pred(ev, self, 1, out);
}
METHOD(str_isalpha) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return str_pred(ev, self, 2, out);
}

METHOD(dict_get) {
    (void)kw;
    if (nargs < 1)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "get expected at least 1 argument");
    const jv *v = jdict_getv(self->d, &args[0], &ev->bud);
    *out = v ? *v : nargs > 1 ? args[1] : jv_none();
    return jeval_check(ev);
}

static int dict_view(jeval *ev, const jv *self, int which, jv *out) {
    jlist *l = jlist_new(ev->a, self->d->n);
    if (!l) return OOM();
    for (size_t i = 0; i < self->d->n; i++) {
        jv v = which == 0 ? self->d->keys[i] : self->d->vals[i];
        if (which == 2) {
            jlist *t = jlist_new(ev->a, 2);
            if (!t) return OOM();
            t->is_tuple = true;
            JTRY(jlist_push(ev->a, t, self->d->keys[i]));
            JTRY(jlist_push(ev->a, t, self->d->vals[i]));
            v = jv_list(t);
        }
        JTRY(jlist_push(ev->a, l, v));
    }
    *out = jv_list(l);
    return M40LLM_OK;
}
METHOD(dict_keys) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return dict_view(ev, self, 0, out);
}
METHOD(dict_values) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return dict_view(ev, self, 1, out);
}
METHOD(dict_items) {
    (void)args, (void)nargs, (void)kw, (void)line;
    return dict_view(ev, self, 2, out);
}

METHOD(loop_cycle) {
    (void)kw;
    if (nargs < 1) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "no items for cycling given");
    const jv *i0 = jdict_get(self->d, "index0", 6, &ev->bud);
    *out = args[(size_t)(i0 && i0->type == JV_INT ? i0->i : 0) % nargs];
    return M40LLM_OK;
}

typedef struct jmethod {
    jv_type type; /* JV_STR, JV_DICT (plain) or JV_MACRO standing for `loop` */
    const char *name;
    jfunc_fn fn;
} jmethod;

static const jmethod methods[] = {
    {JV_STR, "strip", g_str_strip},
    {JV_STR, "lstrip", g_str_lstrip},
    {JV_STR, "rstrip", g_str_rstrip},
    {JV_STR, "upper", g_str_upper},
    {JV_STR, "lower", g_str_lower},
    {JV_STR, "title", g_str_title},
    {JV_STR, "capitalize", g_str_capitalize},
    {JV_STR, "replace", g_str_replace},
    {JV_STR, "split", g_str_split},
    {JV_STR, "startswith", g_str_startswith},
    {JV_STR, "endswith", g_str_endswith},
    {JV_STR, "find", g_str_find},
    {JV_STR, "count", g_str_count},
    {JV_STR, "join", g_str_join},
    {JV_STR, "isdigit", g_str_isdigit},
    {JV_STR, "isspace", g_str_isspace},
    {JV_STR, "isalpha", g_str_isalpha},
    {JV_STR, "format", g_str_format},
    {JV_DICT, "get", g_dict_get},
    {JV_DICT, "keys", g_dict_keys},
    {JV_DICT, "values", g_dict_values},
    {JV_DICT, "items", g_dict_items},
    {JV_MACRO, "cycle", g_loop_cycle},
};

bool jinja_find_method(jeval *ev, const jv *obj, const char *name, jv *out) {
    jv_type t = obj->type;
    if (t == JV_DICT && obj->d->kind == JD_LOOP)
        t = JV_MACRO;
    else if (t == JV_DICT && obj->d->kind != JD_PLAIN)
        return false;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (methods[i].type != t || strcmp(methods[i].name, name)) continue;
        jv *self = jarena_alloc(ev->a, sizeof *self);
        if (!self) return false;
        *self = *obj;
        *out = (jv){.type = JV_FUNC};
        out->fn.fn = methods[i].fn;
        out->fn.name = methods[i].name;
        out->fn.self = self;
        return true;
    }
    return false;
}
