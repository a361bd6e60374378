/* String operations shared by filters and str methods: case mapping,
 * strip, replace, and Python's printf-style formatting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

#define OOM() err_set(M40LLM_ERR_OOM, "template: out of memory")

static int to_str(jeval *ev, const jv *v, jv *out) {
    return jv_stringify(ev->a, v, out);
}

int jstr_case(jeval *ev, const jv *in, jcase_mode mode, jv *out) {
    jv s;
    JTRY(to_str(ev, in, &s));
    jbuf b = {0};
    bool word_start = true, prev_cased = false;
    for (size_t i = 0; i < s.s.n;) {
        uint32_t c;
        i += utf8_decode(s.s.p + i, s.s.n - i, &c);
        uint32_t r = c;
        switch (mode) {
        case JCASE_UPPER:
            if (c == 0xdf) { /* German sharp s upper-cases to two letters */
                jbuf_puts(&b, "SS");
                continue;
            }
            r = jcase_upper(c);
            break;
        case JCASE_LOWER:
            r = jcase_lower(c);
            break;
        case JCASE_CAPITALIZE:
            r = word_start ? jcase_upper(c) : jcase_lower(c);
            word_start = false;
            break;
        case JCASE_TITLE: /* Python str.title(): letters after an uncased char start words */
            r = prev_cased ? jcase_lower(c) : jcase_upper(c);
            prev_cased = jcase_is_cased(c);
            break;
        case JCASE_JTITLE: /* Jinja's title filter: words start after [-\s({[<] */
            r = word_start ? jcase_upper(c) : jcase_lower(c);
            word_start =
                c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || jv_is_space_cp(c);
            break;
        }
        utf8_put(&b, r);
    }
    return jv_from_buf(ev, &b, out);
}

static bool in_chars(const jv *chars, uint32_t c) {
    if (!chars) return jv_is_space_cp(c);
    for (size_t i = 0; i < chars->s.n;) {
        uint32_t k;
        i += utf8_decode(chars->s.p + i, chars->s.n - i, &k);
        if (k == c) return true;
    }
    return false;
}

int jstr_strip(jeval *ev, const jv *in, const jv *chars, int which, jv *out) {
    jv s, cs;
    JTRY(to_str(ev, in, &s));
    if (chars && (chars->type == JV_NONE || chars->type == JV_UNDEF)) chars = NULL;
    if (chars) {
        JTRY(to_str(ev, chars, &cs));
        chars = &cs;
    }
    size_t b = 0, e = s.s.n;
    if (which & 1)
        while (b < e) {
            uint32_t c;
            size_t k = utf8_decode(s.s.p + b, e - b, &c);
            if (!in_chars(chars, c)) break;
            b += k;
        }
    if (which & 2)
        while (e > b) {
            size_t st = e - 1;
            while (st > b && ((unsigned char)s.s.p[st] & 0xc0) == 0x80) st--;
            uint32_t c;
            utf8_decode(s.s.p + st, e - st, &c);
            if (!in_chars(chars, c)) break;
            e = st;
        }
    *out = jv_strn(s.s.p + b, e - b);
    return M40LLM_OK;
}

int jstr_replace(jeval *ev, const jv *in, const jv *old, const jv *rep, int64_t count, jv *out) {
    jv s, o, r;
    JTRY(to_str(ev, in, &s));
    JTRY(to_str(ev, old, &o));
    JTRY(to_str(ev, rep, &r));
    jbuf b = {0};
    size_t i = 0;
    int64_t done = 0;
    if (o.s.n == 0) { /* Python inserts the replacement around every character */
        for (; i <= s.s.n; done++) {
            if (count >= 0 && done >= count) break;
            jbuf_put(&b, r.s.p, r.s.n);
            if (i == s.s.n) {
                i++;
                break;
            }
            size_t e = i + 1;
            while (e < s.s.n && ((unsigned char)s.s.p[e] & 0xc0) == 0x80) e++;
            jbuf_put(&b, s.s.p + i, e - i);
            i = e;
        }
        if (i < s.s.n) jbuf_put(&b, s.s.p + i, s.s.n - i);
        return jv_from_buf(ev, &b, out);
    }
    while (i < s.s.n && (count < 0 || done < count)) {
        const char *hit = memmem(s.s.p + i, s.s.n - i, o.s.p, o.s.n);
        if (!hit) break;
        jbuf_put(&b, s.s.p + i, (size_t)(hit - (s.s.p + i)));
        jbuf_put(&b, r.s.p, r.s.n);
        i = (size_t)(hit - s.s.p) + o.s.n;
        done++;
    }
    jbuf_put(&b, s.s.p + i, s.s.n - i);
    return jv_from_buf(ev, &b, out);
}

/* One conversion of `fmt % args`: spec holds "%[flags][width][.prec]" */
static int percent_one(jeval *ev, jbuf *b, const char *spec, char type, const jv *v, int line) {
    char cfmt[48], tmp[512];
    if (type == 's' || type == 'r' || type == 'a') {
        jbuf s = {0};
        if (type == 's')
            jv_to_str(&s, v);
        else
            jv_repr(&s, v);
        /* width/precision apply to the text: pass it through %s */
        snprintf(cfmt, sizeof cfmt, "%ss", spec);
        const char *text = s.p ? s.p : "";
        int n = snprintf(NULL, 0, cfmt, text);
        char *o = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (o) {
            snprintf(o, (size_t)n + 1, cfmt, text);
            jbuf_put(b, o, (size_t)n);
        }
        free(o);
        free(s.p);
        return o ? M40LLM_OK : OOM();
    }
    if (v->type == JV_UNDEF) return jeval_undef_error(ev, v, line);
    if (!jv_is_number(v))
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                          "%%%c format: a real number is required, not %s", type, jv_type_name(v));
    if (type == 'd' || type == 'i' || type == 'u' || type == 'x' || type == 'X' || type == 'o' ||
        type == 'c') {
        long long i = v->type == JV_FLOAT ? (long long)v->f : v->type == JV_INT ? v->i : v->b;
        if (type == 'c') {
            utf8_put(b, (uint32_t)i);
            return M40LLM_OK;
        }
        snprintf(cfmt, sizeof cfmt, "%sll%c", spec, type == 'i' || type == 'u' ? 'd' : type);
        snprintf(tmp, sizeof tmp, cfmt, i);
    } else {
        snprintf(cfmt, sizeof cfmt, "%s%c", spec, type);
        snprintf(tmp, sizeof tmp, cfmt, jv_as_double(v));
    }
    jbuf_puts(b, tmp);
    return M40LLM_OK;
}

int jstr_percent(jeval *ev, const jv *fmt, const jv *args, int line, jv *out) {
    const char *f = fmt->s.p, *end = f + fmt->s.n;
    bool tuple = args->type == JV_LIST && args->l->is_tuple;
    size_t argi = 0, nargs = tuple ? args->l->n : 1;
    jbuf b = {0};
    int rc = M40LLM_OK;
    while (f < end && rc == M40LLM_OK) {
        const char *pc = memchr(f, '%', (size_t)(end - f));
        if (!pc) {
            jbuf_put(&b, f, (size_t)(end - f));
            break;
        }
        jbuf_put(&b, f, (size_t)(pc - f));
        f = pc + 1;
        const jv *v = NULL;
        if (f < end && *f == '(') { /* %(key)s takes the value from a dict */
            const char *close = memchr(f, ')', (size_t)(end - f));
            if (!close || args->type != JV_DICT) {
                rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "format requires a mapping");
                break;
            }
            v = jdict_get(args->d, f + 1, (size_t)(close - f - 1));
            if (!v) {
                rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "KeyError: '%.*s'",
                                (int)(close - f - 1), f + 1);
                break;
            }
            f = close + 1;
        }
        char spec[32] = "%";
        size_t k = 1;
        while (f < end && strchr("-+ #0123456789.", *f) && k < sizeof spec - 1) spec[k++] = *f++;
        spec[k] = '\0';
        if (f >= end) {
            rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "incomplete format");
            break;
        }
        char type = *f++;
        if (type == '%') {
            jbuf_putc(&b, '%');
            continue;
        }
        if (!strchr("sradiuxXocfFeEgG", type)) {
            rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "unsupported format character '%c'", type);
            break;
        }
        if (!v) {
            if (argi >= nargs) {
                rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                                "not enough arguments for format string");
                break;
            }
            v = tuple ? &args->l->items[argi] : args;
            argi++;
        }
        rc = percent_one(ev, &b, spec, type, v, line);
    }
    if (rc == M40LLM_OK && tuple && argi < nargs)
        rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                        "not all arguments converted during string formatting");
    if (rc != M40LLM_OK) {
        free(b.p);
        return rc;
    }
    return jv_from_buf(ev, &b, out);
}

/* str.format(): {} / {0} / {name} fields, {{ and }} escapes; a field's
 * format spec may be empty or one of s, d (conversion is str()). */
int jstr_format(jeval *ev, const jv *fmt, jv *args, size_t nargs, const char **kw, int line,
                jv *out) {
    const char *s = fmt->s.p, *end = s + fmt->s.n;
    size_t auto_i = 0;
    jbuf b = {0};
    int rc = M40LLM_OK;
    while (s < end && rc == M40LLM_OK) {
        char c = *s;
        if ((c == '{' || c == '}') && s + 1 < end && s[1] == c) {
            jbuf_putc(&b, c);
            s += 2;
            continue;
        }
        if (c == '}') {
            rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "Single '}' encountered in format string");
            break;
        }
        if (c != '{') {
            jbuf_putc(&b, c);
            s++;
            continue;
        }
        const char *close = memchr(s, '}', (size_t)(end - s));
        if (!close) {
            rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "Single '{' encountered in format string");
            break;
        }
        const char *name = s + 1, *colon = memchr(name, ':', (size_t)(close - name));
        size_t nlen = (size_t)((colon ? colon : close) - name);
        if (colon &&
            !(close - colon == 1 || (close - colon == 2 && (colon[1] == 's' || colon[1] == 'd')))) {
            rc = jeval_fail(ev, M40LLM_ERR_UNSUPPORTED, line,
                            "str.format(): format spec '%.*s' is not supported",
                            (int)(close - colon - 1), colon + 1);
            break;
        }
        const jv *v = NULL;
        if (nlen == 0) {
            v = jarg(args, nargs, kw, auto_i++, NULL);
        } else if (name[0] >= '0' && name[0] <= '9') {
            v = jarg(args, nargs, kw, (size_t)strtoul(name, NULL, 10), NULL);
        } else {
            for (size_t i = 0; kw && i < nargs && !v; i++)
                if (kw[i] && strlen(kw[i]) == nlen && !memcmp(kw[i], name, nlen)) v = &args[i];
        }
        if (!v) {
            rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                            "str.format(): no argument for field '{%.*s}'", (int)nlen, name);
            break;
        }
        jv_to_str(&b, v);
        s = close + 1;
    }
    if (rc != M40LLM_OK) {
        free(b.p);
        return rc;
    }
    return jv_from_buf(ev, &b, out);
}
