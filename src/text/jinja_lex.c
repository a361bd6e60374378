/* Template lexer: splits source into data and tag tokens, applying
 * Jinja2's whitespace rules (`-` markers, trim_blocks, lstrip_blocks) and
 * keep_trailing_newline=False, and tokenizes the expressions inside tags. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

typedef struct jlexer {
    jarena *a;
    const char *s; /* normalized source [n] */
    size_t n, pos;
    int line;
    jtok *toks;
    size_t nt, cap;
    bool line_starting; /* the previous tag ended with a newline (lstrip_blocks) */
} jlexer;

static int lex_fail(jlexer *L, const char *fmt, const char *arg) {
    return err_set(M40LLM_ERR_UNSUPPORTED, "template line %d: %s%s", L->line, fmt, arg ? arg : "");
}

static int emit(jlexer *L, jtok t) {
    if (L->nt == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        jtok *p = jarena_alloc(L->a, cap * sizeof *p);
        if (!p) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        if (L->nt) memcpy(p, L->toks, L->nt * sizeof *p);
        L->toks = p;
        L->cap = cap;
    }
    t.line = t.line ? t.line : L->line;
    L->toks[L->nt++] = t;
    return M40LLM_OK;
}

/* Bytes of the whitespace character at s[i] (Python's \s: Unicode spaces
 * too), or 0. */
static size_t ws_at(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
    if (c < 0x80) return (c >= 0x1c && c <= 0x1f) ? 1 : 0;
    uint32_t cp;
    size_t k = utf8_decode(s + i, n - i, &cp);
    return k > 1 && jv_is_space_cp(cp) ? k : 0;
}

/* Start of the whitespace character ending at s[e) (not before b), or e. */
static size_t ws_before(const char *s, size_t b, size_t e) {
    if (e <= b) return e;
    size_t st = e - 1;
    while (st > b && ((unsigned char)s[st] & 0xc0) == 0x80 && e - st < 4) st--;
    size_t k = ws_at(s, e, st);
    return k && st + k == e ? st : e;
}
static bool is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
static bool is_ident(char c) {
    return is_ident_start(c) || is_digit(c);
}

static void advance(jlexer *L, size_t to) {
    for (; L->pos < to; L->pos++)
        if (L->s[L->pos] == '\n') L->line++;
}

static void skip_ws(jlexer *L) {
    size_t p = L->pos;
    size_t k;
    while (p < L->n && (k = ws_at(L->s, L->n, p)) > 0) p += k;
    advance(L, p);
}

static bool at(const jlexer *L, const char *lit) {
    size_t k = strlen(lit);
    return L->pos + k <= L->n && memcmp(L->s + L->pos, lit, k) == 0;
}

/* Emits text [b, e) as data after the whitespace rules that the following
 * tag imposes: sign '-' strips all trailing whitespace; otherwise a block or
 * comment tag (lstrip) drops blanks between the line start and the tag. */
static int emit_data(jlexer *L, size_t b, size_t e, char kind, char sign) {
    size_t end = e;
    if (sign == '-') {
        for (size_t st; (st = ws_before(L->s, b, end)) < end;) end = st;
    } else if (sign != '+' && kind != '{') {
        size_t l = e;
        while (l > b && L->s[l - 1] != '\n') l--;
        bool blank = l < e;
        for (size_t i = l, k; i < e && blank; i += k)
            if ((k = ws_at(L->s, e, i)) == 0) blank = false;
        if (blank && (l > b || L->line_starting)) end = l;
    }
    int line = L->line;
    advance(L, e);
    if (end > b) return emit(L, (jtok){.type = JT_DATA, .line = line, .s = L->s + b, .n = end - b});
    return M40LLM_OK;
}

/* After a tag end: sign '-' strips whitespace, '+' keeps it, otherwise
 * trim_blocks drops one newline (block and comment tags only). */
static void after_tag(jlexer *L, char sign, bool block) {
    if (sign == '-') {
        skip_ws(L);
    } else if (sign != '+' && block && L->pos < L->n && L->s[L->pos] == '\n') {
        advance(L, L->pos + 1);
    }
    L->line_starting = L->pos > 0 && L->s[L->pos - 1] == '\n';
}

static int lex_string(jlexer *L) {
    char q = L->s[L->pos];
    size_t p = L->pos + 1;
    jbuf b = {0};
    while (p < L->n && L->s[p] != q) {
        char c = L->s[p];
        if (c != '\\' || p + 1 >= L->n) {
            jbuf_putc(&b, c);
            p++;
            continue;
        }
        char e = L->s[p + 1];
        p += 2;
        static const char esc[] = "nrtabfv\\'\"\n", map[] = "\n\r\t\a\b\f\v\\'\"";
        const char *simple = e ? strchr(esc, e) : NULL;
        if (simple) {
            if (e != '\n') jbuf_putc(&b, map[simple - esc]); /* backslash-newline: nothing */
        } else if (e >= '0' && e <= '7') {
            unsigned v = (unsigned)(e - '0');
            for (int k = 0; k < 2 && p < L->n && L->s[p] >= '0' && L->s[p] <= '7'; k++, p++)
                v = v * 8 + (unsigned)(L->s[p] - '0');
            utf8_put(&b, v);
        } else if (e == 'x' || e == 'u' || e == 'U') {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (int k = 0; k < nd; k++, p++) {
                char h = p < L->n ? L->s[p] : 0;
                int d = is_digit(h)              ? h - '0'
                        : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                 : -1;
                if (d < 0) {
                    free(b.p);
                    return lex_fail(L, "truncated \\x/\\u escape in a string literal", NULL);
                }
                v = v * 16 + (uint32_t)d;
            }
            utf8_put(&b, v);
        } else {
            /* Python keeps unknown escapes as written */
            jbuf_putc(&b, '\\');
            jbuf_putc(&b, e);
        }
    }
    if (p >= L->n) {
        free(b.p);
        return lex_fail(L, "unterminated string literal", NULL);
    }
    int line = L->line;
    char *s = jarena_strndup(L->a, b.p ? b.p : "", b.n);
    size_t n = b.n;
    bool oom = b.oom;
    free(b.p);
    if (!s || oom) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    advance(L, p + 1);
    return emit(L, (jtok){.type = JT_STRING, .line = line, .s = s, .n = n});
}

static int lex_number(jlexer *L) {
    size_t p = L->pos;
    char buf[128];
    size_t k = 0;
    bool is_float = false;
    while (p < L->n &&
           (is_digit(L->s[p]) || (L->s[p] == '_' && p + 1 < L->n && is_digit(L->s[p + 1])))) {
        if (L->s[p] != '_' && k < sizeof buf - 8) buf[k++] = L->s[p];
        p++;
    }
    if (p + 1 < L->n && L->s[p] == '.' && is_digit(L->s[p + 1])) {
        is_float = true;
        buf[k++] = L->s[p++];
        while (p < L->n && (is_digit(L->s[p]) || L->s[p] == '_')) {
            if (L->s[p] != '_' && k < sizeof buf - 8) buf[k++] = L->s[p];
            p++;
        }
    }
    if (p < L->n && (L->s[p] == 'e' || L->s[p] == 'E')) {
        size_t q = p + 1;
        if (q < L->n && (L->s[q] == '+' || L->s[q] == '-')) q++;
        if (q < L->n && is_digit(L->s[q])) {
            is_float = true;
            buf[k++] = 'e';
            if (L->s[p + 1] == '-') buf[k++] = '-';
            p = q;
            while (p < L->n && is_digit(L->s[p]) && k < sizeof buf - 1) buf[k++] = L->s[p++];
        }
    }
    buf[k] = '\0';
    jtok t = {.type = is_float ? JT_FLOAT : JT_INT};
    if (is_float)
        t.f = strtod(buf, NULL);
    else {
        errno = 0;
        t.i = strtoll(buf, NULL, 10);
        if (errno == ERANGE) return lex_fail(L, "integer literal beyond 64 bits: ", buf);
    }
    advance(L, p);
    return emit(L, t);
}

static const char *const lex_ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "/",
                                      "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                      "<",  ">",  "=",  ".",  ":",  "|",  ",", ";"};

/* Tokens inside {{ }} or {% %} up to and including the end marker. */
static int lex_tag(jlexer *L, bool block) {
    int depth = 0;
    for (;;) {
        skip_ws(L);
        if (L->pos >= L->n)
            return lex_fail(L, "unexpected end of template, expected end of ",
                            block ? "block tag '%}'" : "print tag '}}'");
        if (depth == 0) {
            char sign = 0;
            size_t len = 0;
            if (block) {
                if (at(L, "-%}"))
                    sign = '-', len = 3;
                else if (at(L, "+%}"))
                    sign = '+', len = 3;
                else if (at(L, "%}"))
                    len = 2;
            } else {
                if (at(L, "-}}"))
                    sign = '-', len = 3;
                else if (at(L, "}}"))
                    len = 2;
            }
            if (len) {
                JTRY(emit(L, (jtok){.type = block ? JT_BLOCK_END : JT_VAR_END}));
                advance(L, L->pos + len);
                after_tag(L, sign, block);
                return M40LLM_OK;
            }
        }
        char c = L->s[L->pos];
        if (is_ident_start(c)) {
            size_t p = L->pos;
            while (p < L->n && is_ident(L->s[p])) p++;
            JTRY(emit(L, (jtok){.type = JT_NAME, .s = L->s + L->pos, .n = p - L->pos}));
            advance(L, p);
        } else if (is_digit(c)) {
            JTRY(lex_number(L));
        } else if (c == '\'' || c == '"') {
            JTRY(lex_string(L));
        } else {
            const char *op = NULL;
            for (size_t i = 0; i < sizeof lex_ops / sizeof lex_ops[0] && !op; i++)
                if (at(L, lex_ops[i])) op = lex_ops[i];
            if (!op) {
                char what[8] = {c, '\'', 0};
                return lex_fail(L, "unexpected character '", what);
            }
            if (*op == '(' || *op == '[' || *op == '{') depth++;
            if ((*op == ')' || *op == ']' || *op == '}') && depth > 0) depth--;
            JTRY(emit(L, (jtok){.type = JT_OP, .s = op, .n = strlen(op)}));
            advance(L, L->pos + strlen(op));
        }
    }
}

/* `{% raw %}...{% endraw %}`: the body is data, untouched. Called with pos
 * just after "{%" and its sign; returns 1 if this was not a raw tag. */
static int lex_raw(jlexer *L) {
    size_t p = L->pos;
    for (size_t k; p < L->n && (k = ws_at(L->s, L->n, p)) > 0;) p += k;
    if (!(p + 3 <= L->n && memcmp(L->s + p, "raw", 3) == 0 &&
          (p + 3 == L->n || !is_ident(L->s[p + 3]))))
        return 1;
    p += 3;
    for (size_t k; p < L->n && (k = ws_at(L->s, L->n, p)) > 0;) p += k;
    advance(L, p);
    if (at(L, "-%}")) {
        advance(L, L->pos + 3);
        skip_ws(L);
    } else if (at(L, "%}")) {
        advance(L, L->pos + 2); /* no trim_blocks after raw, as in Jinja2 */
    } else {
        return lex_fail(L, "expected '%}' after 'raw'", NULL);
    }
    size_t body = L->pos;
    for (size_t q = body; q + 1 < L->n; q++) {
        if (L->s[q] != '{' || L->s[q + 1] != '%') continue;
        size_t r = q + 2;
        char sign = 0;
        if (r < L->n && (L->s[r] == '-' || L->s[r] == '+')) sign = L->s[r++];
        for (size_t k; r < L->n && (k = ws_at(L->s, L->n, r)) > 0;) r += k;
        if (!(r + 6 <= L->n && memcmp(L->s + r, "endraw", 6) == 0)) continue;
        r += 6;
        for (size_t k; r < L->n && (k = ws_at(L->s, L->n, r)) > 0;) r += k;
        char esign = 0;
        if (r < L->n && (L->s[r] == '-' || L->s[r] == '+')) esign = L->s[r++];
        if (!(r + 2 <= L->n && L->s[r] == '%' && L->s[r + 1] == '}')) continue;
        L->line_starting = body > 0 && L->s[body - 1] == '\n';
        JTRY(emit_data(L, body, q, '%', sign));
        advance(L, r + 2);
        after_tag(L, esign, true);
        return M40LLM_OK;
    }
    return lex_fail(L, "missing '{% endraw %}'", NULL);
}

/* Jinja2 joins source.splitlines() with "\n": every line break becomes \n
 * and one final line break is dropped (keep_trailing_newline=False). */
static char *normalize(jarena *a, const char *src, size_t len, size_t *out_n) {
    char *d = jarena_alloc(a, len + 1);
    if (!d) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '\r') {
            if (i + 1 < len && src[i + 1] == '\n') i++;
            d[n++] = '\n';
        } else if (c == '\v' || c == '\f' || c == 0x1c || c == 0x1d || c == 0x1e) {
            d[n++] = '\n';
        } else if (c == 0xc2 && i + 1 < len && (unsigned char)src[i + 1] == 0x85) {
            d[n++] = '\n';
            i++;
        } else if (c == 0xe2 && i + 2 < len && (unsigned char)src[i + 1] == 0x80 &&
                   ((unsigned char)src[i + 2] == 0xa8 || (unsigned char)src[i + 2] == 0xa9)) {
            d[n++] = '\n';
            i += 2;
        } else {
            d[n++] = (char)c;
        }
    }
    if (n > 0 && d[n - 1] == '\n') n--;
    d[n] = '\0';
    *out_n = n;
    return d;
}

int jinja_lex(jarena *a, const char *src, size_t len, jtok **toks, size_t *ntoks) {
    jlexer L = {.a = a, .line = 1, .line_starting = true};
    L.s = normalize(a, src, len, &L.n);
    if (!L.s) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    while (L.pos < L.n) {
        size_t t = L.pos;
        while (t + 1 < L.n &&
               !(L.s[t] == '{' && (L.s[t + 1] == '{' || L.s[t + 1] == '%' || L.s[t + 1] == '#')))
            t++;
        if (t + 1 >= L.n) {
            JTRY(emit_data(&L, L.pos, L.n, '{', '+'));
            break;
        }
        char kind = L.s[t + 1];
        char sign = t + 2 < L.n && (L.s[t + 2] == '-' || L.s[t + 2] == '+') ? L.s[t + 2] : 0;
        JTRY(emit_data(&L, L.pos, t, kind, sign));
        advance(&L, t + 2 + (sign ? 1 : 0));
        if (kind == '#') {
            const char *e = NULL;
            for (size_t q = L.pos; q + 1 < L.n && !e; q++)
                if (L.s[q] == '#' && L.s[q + 1] == '}') e = L.s + q;
            if (!e) return lex_fail(&L, "missing end of comment tag '#}'", NULL);
            size_t q = (size_t)(e - L.s);
            char esign = q > L.pos && (L.s[q - 1] == '-' || L.s[q - 1] == '+') ? L.s[q - 1] : 0;
            advance(&L, q + 2);
            after_tag(&L, esign, true);
        } else if (kind == '%') {
            int r = lex_raw(&L);
            if (r == 1) {
                JTRY(emit(&L, (jtok){.type = JT_BLOCK_BEGIN}));
                JTRY(lex_tag(&L, true));
            } else if (r != M40LLM_OK) {
                return r;
            }
        } else {
            JTRY(emit(&L, (jtok){.type = JT_VAR_BEGIN}));
            JTRY(lex_tag(&L, false));
        }
    }
    JTRY(emit(&L, (jtok){.type = JT_EOF}));
    *toks = L.toks;
    *ntoks = L.nt;
    return M40LLM_OK;
}
