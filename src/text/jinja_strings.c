/* String operations shared by filters and str methods: case mapping,
 * strip, replace, and Python's printf-style formatting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

#define OOM() err_set(M40LLM_ERR_OOM, "template: out of memory")

const char *jmemmem(const char *h, size_t n, const char *nd, size_t m) {
    if (m == 0) return h;
    /* growing windows, overlapping by m - 1 bytes: a search costs about the
     * distance to its hit, also where memmem's cost is the whole haystack
     * (sanitizer interceptors check it all), so repeated searches stay linear */
    size_t win = m < SIZE_MAX / 4 ? 2 * m + 64 : SIZE_MAX, off = 0;
    while (off < n && n - off >= m) {
        size_t len = n - off < win ? n - off : win;
        const char *r = memmem(h + off, len, nd, m);
        if (r || len == n - off) return r;
        off += len - m + 1;
        if (win <= SIZE_MAX / 2) win *= 2;
    }
    return NULL;
}

static int to_str(jeval *ev, const jv *v, jv *out) {
    return jv_stringify(ev->a, v, out);
}

int jstr_case(jeval *ev, const jv *in, jcase_mode mode, jv *out) {
    jv s;
    JTRY(to_str(ev, in, &s));
    JTRY(jeval_charge(ev, s.s.n / JB_BYTES_PER_STEP));
    jbuf b = JBUF(ev);
    bool word_start = true, prev_cased = false;
    for (size_t i = 0; i < s.s.n && !b.oom;) {
        if (mode == JCASE_UPPER || mode == JCASE_LOWER) { /* ASCII runs mapped at once */
            size_t run = 0;
            while (i + run < s.s.n && (unsigned char)s.s.p[i + run] < 0x80) run++;
            char *p = run ? jbuf_extend(&b, run) : NULL;
            for (size_t k = 0; p && k < run; k++) {
                char ch = s.s.p[i + k];
                p[k] = mode == JCASE_UPPER ? (ch >= 'a' && ch <= 'z' ? ch - 32 : ch)
                                           : (ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
            }
            if ((i += run) == s.s.n || b.oom) break;
        }
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
    /* a mapped character may depend on its neighbours: untrusted as a whole */
    JTRY(jv_from_buf(ev, &b, out));
    return jv_taint_all(ev, out, jv_tainted(&s));
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
    /* each stripped character is compared with every one of `chars` */
    uint64_t per = chars ? chars->s.n / JB_BYTES_PER_STEP + 1 : 1;
    if (which & 1)
        while (b < e) {
            uint32_t c;
            size_t k = utf8_decode(s.s.p + b, e - b, &c);
            JTRY(jeval_charge(ev, per));
            if (!in_chars(chars, c)) break;
            b += k;
        }
    if (which & 2)
        while (e > b) {
            size_t st = e - 1;
            while (st > b && ((unsigned char)s.s.p[st] & 0xc0) == 0x80) st--;
            uint32_t c;
            utf8_decode(s.s.p + st, e - st, &c);
            JTRY(jeval_charge(ev, per));
            if (!in_chars(chars, c)) break;
            e = st;
        }
    /* the kept bytes keep their marks; untrusted `chars` chose them */
    *out = jv_sub(&s, b, e - b);
    return jv_taint_all(ev, out, chars && jv_tainted(chars));
}

int jstr_replace(jeval *ev, const jv *in, const jv *old, const jv *rep, int64_t count, jv *out) {
    jv s, o, r;
    JTRY(to_str(ev, in, &s));
    JTRY(to_str(ev, old, &o));
    JTRY(to_str(ev, rep, &r));
    JTRY(jeval_charge(ev, s.s.n / JB_BYTES_PER_STEP));
    /* where replacements land depends on every input: untrusted as a whole */
    bool tainted = jv_tainted(&s) || jv_tainted(&o) || jv_tainted(&r);
    jbuf b = JBUF(ev);
    size_t i = 0;
    int64_t done = 0;
    if (o.s.n == 0) { /* Python inserts the replacement around every character */
        for (; i <= s.s.n && !b.oom; done++) {
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
        JTRY(jv_from_buf(ev, &b, out));
        return jv_taint_all(ev, out, tainted);
    }
    while (i < s.s.n && (count < 0 || done < count) && !b.oom) {
        const char *hit = jmemmem(s.s.p + i, s.s.n - i, o.s.p, o.s.n);
        if (!hit || !jbudget_scan(&ev->bud, o.s.n)) break; /* a search per hit */
        jbuf_put(&b, s.s.p + i, (size_t)(hit - (s.s.p + i)));
        jbuf_put(&b, r.s.p, r.s.n);
        i = (size_t)(hit - s.s.p) + o.s.n;
        done++;
    }
    jbuf_put(&b, s.s.p + i, s.s.n - i);
    JTRY(jv_from_buf(ev, &b, out));
    return jv_taint_all(ev, out, tainted);
}

/* One conversion of `fmt % args`, parsed: %[flags][width][.prec]type */
typedef struct pct_spec {
    char flags[8]; /* of "-+ #0", NUL-terminated */
    uint64_t width, prec;
    bool has_prec;
    char type;
} pct_spec;

/* digits as a number, saturating (the budget check below rejects it) */
static uint64_t pct_digits(const char **f, const char *end) {
    uint64_t v = 0;
    for (; *f < end && **f >= '0' && **f <= '9'; (*f)++)
        v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (uint64_t)(**f - '0');
    return v;
}

static size_t cp_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* text (a string value's bytes and marks) cut to prec code points and padded
 * with spaces to width code points, as Python's %s does */
static void pct_text(jbuf *b, const pct_spec *sp, const char *s, size_t n, const uint8_t *t) {
    size_t cps = cp_count(s, n);
    if (sp->has_prec && sp->prec < cps) { /* keep code points 0 .. prec-1 */
        size_t i = 0, k = 0;
        for (; i < n; i++)
            if (((unsigned char)s[i] & 0xc0) != 0x80 && k++ == sp->prec) break;
        n = i;
        cps = (size_t)sp->prec;
    }
    size_t pad = sp->width > cps ? (size_t)sp->width - cps : 0;
    bool left = strchr(sp->flags, '-') != NULL;
    char *p;
    if (!left && pad && (p = jbuf_extend(b, pad))) memset(p, ' ', pad);
    jbuf_put_m(b, s, n, t);
    if (left && pad && (p = jbuf_extend(b, pad))) memset(p, ' ', pad);
}

static int pct_snprintf(char *buf, size_t size, const char *cfmt, const pct_spec *sp, bool integer,
                        long long i, double d) {
    int w = (int)sp->width, pr = (int)sp->prec; /* both checked against the budget */
    if (integer)
        return sp->has_prec ? snprintf(buf, size, cfmt, w, pr, i) : snprintf(buf, size, cfmt, w, i);
    return sp->has_prec ? snprintf(buf, size, cfmt, w, pr, d) : snprintf(buf, size, cfmt, w, d);
}

/* a number through snprintf, the width and precision passed as arguments,
 * into exactly the room it needs */
static void pct_number(jbuf *b, const pct_spec *sp, bool integer, long long i, double d) {
    char cfmt[24], flags[8];
    bool decimal = sp->type == 'd' || sp->type == 'i' || sp->type == 'u';
    size_t k = 0;
    for (const char *f = sp->flags; *f; f++) /* '#' with %d is undefined in C */
        if (!(decimal && *f == '#')) flags[k++] = *f;
    flags[k] = '\0';
    snprintf(cfmt, sizeof cfmt, "%%%s*%s%s%c", flags, sp->has_prec ? ".*" : "", integer ? "ll" : "",
             decimal ? 'd' : sp->type);
    int n = pct_snprintf(NULL, 0, cfmt, sp, integer, i, d);
    char *p = n > 0 ? jbuf_extend(b, (size_t)n) : NULL;
    if (p) pct_snprintf(p, (size_t)n + 1, cfmt, sp, integer, i, d);
}

static int percent_one(jeval *ev, jbuf *b, const pct_spec *sp, const jv *v, int line) {
    char type = sp->type;
    /* widths and precisions are output sizes: beyond the budget they are
     * errors (and never cut to what a fixed buffer holds) */
    uint64_t lim = ev->bud.mem_max < INT32_MAX ? ev->bud.mem_max : INT32_MAX;
    if (sp->width > lim || (sp->has_prec && sp->prec > lim))
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                          "%%%c format: width or precision %llu is beyond the memory budget of "
                          "%zu bytes",
                          type, (unsigned long long)(sp->width > lim ? sp->width : sp->prec),
                          ev->bud.mem_max);
    /* what does fit the budget but not what is left of it fails before formatting */
    if (sp->width > ev->bud.mem_max - ev->bud.mem_used) jbudget_fail(&ev->bud, JB_MEMORY);
    JTRY(jeval_charge(ev, (sp->width + (sp->has_prec ? sp->prec : 0)) / JB_BYTES_PER_STEP + 1));
    if (type == 's' || type == 'r' || type == 'a') {
        if (type == 's' && v->type == JV_STR) {
            pct_text(b, sp, v->s.p, v->s.n, v->s.t);
            return M40LLM_OK;
        }
        jbuf s = JBUF(ev);
        if (type == 's')
            jv_to_str(&s, v);
        else
            jv_repr(&s, v);
        pct_text(b, sp, s.p ? s.p : "", s.n, s.m);
        bool oom = s.oom;
        jbuf_free(&s);
        return oom ? OOM() : M40LLM_OK;
    }
    if (v->type == JV_UNDEF) return jeval_undef_error(ev, v, line);
    if (type == 'c') { /* a code point, or a one-character string */
        if (v->type == JV_STR && cp_count(v->s.p, v->s.n) == 1) {
            pct_text(b, sp, v->s.p, v->s.n, v->s.t);
            return M40LLM_OK;
        }
        if (v->type != JV_INT && v->type != JV_BOOL)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "%%c requires int or char");
        int64_t c = v->type == JV_INT ? v->i : v->b;
        if (c < 0 || c > 0x10ffff)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "%%c arg not in range(0x110000)");
        char u[4];
        pct_text(b, sp, u, utf8_encode((uint32_t)c, u), NULL);
        return M40LLM_OK;
    }
    if (!jv_is_number(v))
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                          "%%%c format: a real number is required, not %s", type, jv_type_name(v));
    if (strchr("diuxXo", type)) {
        long long i;
        if (v->type != JV_FLOAT) {
            i = v->type == JV_INT ? v->i : v->b;
        } else if (type == 'x' || type == 'X' || type == 'o') {
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "%%%c format: an integer is required, not float", type);
        } else if (!(v->f > -9223372036854775808.0 && v->f < 9223372036854775808.0)) {
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "%%%c format: %s cannot be an integer of 64 bits", type,
                              isnan(v->f) ? "NaN" : "this float");
        } else {
            i = (long long)v->f;
        }
        pct_number(b, sp, true, i, 0);
    } else {
        pct_number(b, sp, false, 0, jv_as_double(v));
    }
    return M40LLM_OK;
}

/* Parses one conversion after its '%' (and any "(key)"); f moves past it. */
static int pct_parse(jeval *ev, const char **f, const char *end, int line, pct_spec *sp) {
    size_t k = 0;
    *sp = (pct_spec){0};
    while (*f < end && strchr("-+ #0", **f) && **f) {
        if (k < sizeof sp->flags - 1 && !strchr(sp->flags, **f)) sp->flags[k++] = **f;
        (*f)++;
    }
    sp->width = pct_digits(f, end);
    if (*f < end && **f == '.') {
        (*f)++;
        sp->has_prec = true;
        sp->prec = pct_digits(f, end);
    }
    while (*f < end && strchr("hlL", **f) && **f) (*f)++; /* length modifiers: ignored */
    if (*f >= end) return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "incomplete format");
    sp->type = *(*f)++;
    if (sp->type == '*')
        return jeval_fail(ev, M40LLM_ERR_UNSUPPORTED, line, "'*' widths are not supported");
    if (sp->type != '%' && (!sp->type || !strchr("sradiuxXocfFeEgG", sp->type)))
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "unsupported format character '%c'",
                          sp->type);
    return M40LLM_OK;
}

int jstr_percent(jeval *ev, const jv *fmt, const jv *args, int line, jv *out) {
    const char *f = fmt->s.p, *end = f + fmt->s.n;
    bool tuple = args->type == JV_LIST && args->l->is_tuple;
    size_t argi = 0, nargs = tuple ? args->l->n : 1;
    jbuf b = JBUF(ev);
    int rc = M40LLM_OK;
    while (f < end && rc == M40LLM_OK && !b.oom) {
        const char *pc = memchr(f, '%', (size_t)(end - f));
        size_t lit = (size_t)((pc ? pc : end) - f);
        jbuf_put_m(&b, f, lit, fmt->s.t ? fmt->s.t + (f - fmt->s.p) : NULL);
        if (!pc) break;
        f = pc + 1;
        const jv *v = NULL;
        if (f < end && *f == '(') { /* %(key)s takes the value from a dict */
            const char *close = memchr(f, ')', (size_t)(end - f));
            if (!close || args->type != JV_DICT) {
                rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "format requires a mapping");
                break;
            }
            v = jdict_get(args->d, f + 1, (size_t)(close - f - 1), &ev->bud);
            if ((rc = jeval_check(ev)) != M40LLM_OK) break;
            if (!v) {
                rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "KeyError: '%.*s'",
                                (int)(close - f - 1), f + 1);
                break;
            }
            f = close + 1;
        }
        pct_spec sp;
        if ((rc = pct_parse(ev, &f, end, line, &sp)) != M40LLM_OK) break;
        if (sp.type == '%') {
            jbuf_putc(&b, '%');
            continue;
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
        rc = percent_one(ev, &b, &sp, v, line);
    }
    if (rc == M40LLM_OK && tuple && argi < nargs)
        rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                        "not all arguments converted during string formatting");
    if (rc != M40LLM_OK) {
        jbuf_free(&b);
        return rc;
    }
    /* formatting with untrusted text (format or argument): untrusted as a whole */
    bool tainted = jbuf_tainted(&b, 0) || jv_tainted(fmt);
    JTRY(jv_from_buf(ev, &b, out));
    return jv_taint_all(ev, out, tainted);
}

/* str.format(): {} / {0} / {name} fields, {{ and }} escapes; a field's
 * format spec may be empty or one of s, d (conversion is str()). */
int jstr_format(jeval *ev, const jv *fmt, jv *args, size_t nargs, const char **kw, int line,
                jv *out) {
    const char *s = fmt->s.p, *end = s + fmt->s.n;
    size_t auto_i = 0;
    jbuf b = JBUF(ev);
    int rc = M40LLM_OK;
    while (s < end && rc == M40LLM_OK && !b.oom) {
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
        jbuf_free(&b);
        return rc;
    }
    bool tainted = jbuf_tainted(&b, 0) || jv_tainted(fmt);
    JTRY(jv_from_buf(ev, &b, out));
    return jv_taint_all(ev, out, tainted);
}
