/* Template parser: tokens to a syntax tree, following Jinja2's grammar and
 * operator precedence (filters bind tighter than arithmetic; `not x is y` is
 * `not (x is y)`). Filters and tests are resolved here, so an unknown one
 * fails at compile time with its name, as in Jinja2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

typedef struct jparser {
    jinja_template *t;
    jtok *tk; /* [n], the last is JT_EOF */
    size_t n, i;
    int depth; /* nesting of expressions and blocks, bounded to protect the stack */
} jparser;

enum { JPARSE_MAX_DEPTH = 200 };

static jtok *cur(jparser *P) {
    return &P->tk[P->i];
}
static jtok *peek(jparser *P, size_t k) {
    return P->i + k < P->n ? &P->tk[P->i + k] : &P->tk[P->n - 1];
}
static bool tok_is(const jtok *t, jtok_type type, const char *s) {
    return t->type == type && (!s || (t->n == strlen(s) && memcmp(t->s, s, t->n) == 0));
}
static bool is_op(jparser *P, const char *s) {
    return tok_is(cur(P), JT_OP, s);
}
static bool is_name(jparser *P, const char *s) {
    return tok_is(cur(P), JT_NAME, s);
}
static bool skip_op(jparser *P, const char *s) {
    if (!is_op(P, s)) return false;
    P->i++;
    return true;
}
static bool skip_name(jparser *P, const char *s) {
    if (!is_name(P, s)) return false;
    P->i++;
    return true;
}

static const char *tok_desc(const jtok *t, char *buf, size_t n) {
    switch (t->type) {
    case JT_EOF:
        return "end of template";
    case JT_DATA:
        return "template data";
    case JT_VAR_BEGIN:
        return "'{{'";
    case JT_VAR_END:
        return "'}}'";
    case JT_BLOCK_BEGIN:
        return "'{%'";
    case JT_BLOCK_END:
        return "'%}'";
    case JT_STRING:
        return "string literal";
    case JT_INT:
        return "integer";
    case JT_FLOAT:
        return "float";
    default:
        snprintf(buf, n, "'%.*s'", (int)(t->n < 40 ? t->n : 40), t->s);
        return buf;
    }
}

static int pfail(jparser *P, const char *what) {
    char b[64];
    return err_set(M40LLM_ERR_UNSUPPORTED, "template line %d: %s (at %s)", cur(P)->line, what,
                   tok_desc(cur(P), b, sizeof b));
}

static int expect_op(jparser *P, const char *s) {
    if (skip_op(P, s)) return M40LLM_OK;
    char what[64];
    snprintf(what, sizeof what, "expected '%s'", s);
    return pfail(P, what);
}
static int expect_type(jparser *P, jtok_type t, const char *what) {
    if (cur(P)->type != t) return pfail(P, what);
    P->i++;
    return M40LLM_OK;
}

static jexpr *node(jparser *P, jexpr_kind k, int line) {
    jexpr *e = jarena_alloc(&P->t->arena, sizeof *e);
    if (e) {
        e->kind = k;
        e->line = line;
    }
    return e;
}
#define NODE(var, kind, line)                                                                      \
    jexpr *var = node(P, kind, line);                                                              \
    if (!var) return err_set(M40LLM_ERR_OOM, "template: out of memory")

static char *tok_str(jparser *P, const jtok *t) {
    return jarena_strndup(&P->t->arena, t->s, t->n);
}

/* growable array of expression pointers in the template arena */
typedef struct {
    jexpr **v;
    const char **kw;
    size_t n, cap;
} jvec;
static int vec_push(jparser *P, jvec *v, jexpr *e, const char *kw) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        jexpr **nv = jarena_alloc(&P->t->arena, cap * sizeof *nv);
        const char **nk = jarena_alloc(&P->t->arena, cap * sizeof *nk);
        if (!nv || !nk) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        if (v->n) {
            memcpy(nv, v->v, v->n * sizeof *nv);
            memcpy(nk, v->kw, v->n * sizeof *nk);
        }
        v->v = nv;
        v->kw = nk;
        v->cap = cap;
    }
    v->v[v->n] = e;
    v->kw[v->n] = kw;
    v->n++;
    return M40LLM_OK;
}

static int parse_expr(jparser *P, bool with_cond, jexpr **out);
static int parse_unary(jparser *P, bool with_filter, jexpr **out);
static int parse_primary(jparser *P, jexpr **out);
static int parse_postfix(jparser *P, jexpr *e, jexpr **out);

static bool tuple_end(jparser *P, const char *extra_end) {
    jtok *t = cur(P);
    return t->type == JT_VAR_END || t->type == JT_BLOCK_END || t->type == JT_EOF ||
           tok_is(t, JT_OP, ")") || (extra_end && tok_is(t, JT_NAME, extra_end));
}

/* expr or expr, expr, ... (a tuple) */
static int parse_tuple(jparser *P, bool with_cond, const char *extra_end, bool explicit_parens,
                       jexpr **out) {
    int line = cur(P)->line;
    jvec v = {0};
    bool comma = false;
    for (;;) {
        if (v.n && !skip_op(P, ",")) break;
        if (v.n) comma = true;
        if (v.n && tuple_end(P, extra_end)) break;
        if (explicit_parens && v.n == 0 && is_op(P, ")")) break;
        jexpr *e = NULL;
        JTRY(parse_expr(P, with_cond, &e));
        JTRY(vec_push(P, &v, e, NULL));
    }
    if (v.n == 1 && !comma) {
        *out = v.v[0];
        return M40LLM_OK;
    }
    if (v.n == 0 && !explicit_parens) return pfail(P, "expected an expression");
    NODE(e, JE_TUPLE, line);
    e->items = v.v;
    e->n = v.n;
    *out = e;
    return M40LLM_OK;
}

static int parse_call_args(jparser *P, jexpr *e) {
    /* at '(' */
    P->i++;
    jvec v = {0};
    while (!is_op(P, ")")) {
        if (v.n) JTRY(expect_op(P, ","));
        if (is_op(P, ")")) break;
        if (is_op(P, "*") || is_op(P, "**"))
            return pfail(P, "*args and **kwargs are not supported");
        const char *kw = NULL;
        if (cur(P)->type == JT_NAME && tok_is(peek(P, 1), JT_OP, "=")) {
            kw = tok_str(P, cur(P));
            P->i += 2;
        }
        jexpr *a;
        JTRY(parse_expr(P, true, &a));
        JTRY(vec_push(P, &v, a, kw));
    }
    P->i++;
    e->items = v.v;
    e->kwnames = v.kw;
    e->n = v.n;
    return M40LLM_OK;
}

static int parse_filter(jparser *P, jexpr *in, jexpr **out) {
    /* after '|' */
    int line = cur(P)->line;
    if (cur(P)->type != JT_NAME) return pfail(P, "expected a filter name");
    NODE(e, JE_FILTER, line);
    e->name = tok_str(P, cur(P));
    P->i++;
    e->a = in;
    e->filter = jinja_find_filter(e->name);
    if (!e->filter)
        return err_set(M40LLM_ERR_UNSUPPORTED, "template line %d: No filter named '%s'.", line,
                       e->name);
    if (is_op(P, "(")) JTRY(parse_call_args(P, e));
    *out = e;
    return M40LLM_OK;
}

static int parse_test(jparser *P, jexpr *in, jexpr **out) {
    /* after 'is' */
    int line = cur(P)->line;
    bool neg = skip_name(P, "not");
    if (cur(P)->type != JT_NAME) return pfail(P, "expected a test name");
    NODE(e, JE_TEST, line);
    e->name = tok_str(P, cur(P));
    P->i++;
    e->a = in;
    e->negated = neg;
    e->test = jinja_find_test(e->name);
    if (!e->test)
        return err_set(M40LLM_ERR_UNSUPPORTED, "template line %d: No test named '%s'.", line,
                       e->name);
    jtok *t = cur(P);
    if (is_op(P, "(")) {
        JTRY(parse_call_args(P, e));
    } else if ((t->type == JT_NAME || t->type == JT_STRING || t->type == JT_INT ||
                t->type == JT_FLOAT || tok_is(t, JT_OP, "[") || tok_is(t, JT_OP, "{")) &&
               !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
        if (is_name(P, "is")) return pfail(P, "You cannot chain multiple tests with is");
        jexpr *a;
        JTRY(parse_primary(P, &a));
        JTRY(parse_postfix(P, a, &a));
        jvec v = {0};
        JTRY(vec_push(P, &v, a, NULL));
        e->items = v.v;
        e->kwnames = v.kw;
        e->n = 1;
    }
    *out = e;
    return M40LLM_OK;
}

static int parse_subscript(jparser *P, jexpr *obj, jexpr **out) {
    int line = cur(P)->line;
    if (skip_op(P, ".")) {
        if (cur(P)->type == JT_INT) {
            NODE(e, JE_GETITEM, line);
            NODE(k, JE_CONST, line);
            k->cval = jv_int(cur(P)->i);
            P->i++;
            e->a = obj;
            e->b = k;
            *out = e;
            return M40LLM_OK;
        }
        if (cur(P)->type != JT_NAME) return pfail(P, "expected an attribute name after '.'");
        NODE(e, JE_GETATTR, line);
        e->a = obj;
        e->name = tok_str(P, cur(P));
        P->i++;
        *out = e;
        return M40LLM_OK;
    }
    P->i++; /* '[' */
    jexpr *parts[3] = {NULL, NULL, NULL};
    int np = 0;
    bool slice = false;
    for (;;) {
        if (is_op(P, ":")) {
            slice = true;
            P->i++;
            if (++np > 2) return pfail(P, "too many ':' in a slice");
            continue;
        }
        if (is_op(P, "]")) break;
        if (parts[np]) return pfail(P, "expected ']'");
        JTRY(parse_expr(P, true, &parts[np]));
    }
    P->i++;
    if (!slice) {
        if (!parts[0]) return pfail(P, "expected a subscript");
        NODE(e, JE_GETITEM, line);
        e->a = obj;
        e->b = parts[0];
        *out = e;
        return M40LLM_OK;
    }
    NODE(e, JE_SLICE, line);
    e->a = obj;
    e->b = parts[0];
    e->c = parts[1];
    e->d = parts[2];
    *out = e;
    return M40LLM_OK;
}

static int parse_postfix(jparser *P, jexpr *e, jexpr **out) {
    for (;;) {
        if (is_op(P, ".") || is_op(P, "[")) {
            JTRY(parse_subscript(P, e, &e));
        } else if (is_op(P, "(")) {
            NODE(c, JE_CALL, cur(P)->line);
            c->a = e;
            JTRY(parse_call_args(P, c));
            e = c;
        } else {
            break;
        }
    }
    *out = e;
    return M40LLM_OK;
}

static int parse_filter_expr(jparser *P, jexpr *e, jexpr **out) {
    for (;;) {
        if (skip_op(P, "|")) {
            JTRY(parse_filter(P, e, &e));
        } else if (skip_name(P, "is")) {
            JTRY(parse_test(P, e, &e));
        } else if (is_op(P, "(")) {
            NODE(c, JE_CALL, cur(P)->line);
            c->a = e;
            JTRY(parse_call_args(P, c));
            e = c;
        } else {
            break;
        }
    }
    *out = e;
    return M40LLM_OK;
}

static int parse_primary(jparser *P, jexpr **out) {
    jtok *t = cur(P);
    int line = t->line;
    if (t->type == JT_NAME) {
        static const char *const names[] = {"true", "false", "none", "True", "False", "None"};
        for (int k = 0; k < 6; k++)
            if (tok_is(t, JT_NAME, names[k])) {
                NODE(e, JE_CONST, line);
                e->cval = k % 3 == 2 ? jv_none() : jv_bool(k % 3 == 0);
                P->i++;
                *out = e;
                return M40LLM_OK;
            }
        NODE(e, JE_NAME, line);
        e->name = tok_str(P, t);
        P->i++;
        *out = e;
        return M40LLM_OK;
    }
    if (t->type == JT_STRING) {
        /* adjacent literals concatenate, as in Python */
        jbuf b = {0};
        while (cur(P)->type == JT_STRING) {
            jbuf_put(&b, cur(P)->s, cur(P)->n);
            P->i++;
        }
        NODE(e, JE_CONST, line);
        char *s = jarena_strndup(&P->t->arena, b.p ? b.p : "", b.n);
        e->cval = jv_strn(s ? s : "", s ? b.n : 0);
        bool oom = b.oom || !s;
        free(b.p);
        if (oom) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        *out = e;
        return M40LLM_OK;
    }
    if (t->type == JT_INT || t->type == JT_FLOAT) {
        NODE(e, JE_CONST, line);
        e->cval = t->type == JT_INT ? jv_int(t->i) : jv_float(t->f);
        P->i++;
        *out = e;
        return M40LLM_OK;
    }
    if (skip_op(P, "(")) {
        JTRY(parse_tuple(P, true, NULL, true, out));
        return expect_op(P, ")");
    }
    if (skip_op(P, "[")) {
        NODE(e, JE_LIST, line);
        jvec v = {0};
        while (!is_op(P, "]")) {
            if (v.n) JTRY(expect_op(P, ","));
            if (is_op(P, "]")) break;
            jexpr *a;
            JTRY(parse_expr(P, true, &a));
            JTRY(vec_push(P, &v, a, NULL));
        }
        P->i++;
        e->items = v.v;
        e->n = v.n;
        *out = e;
        return M40LLM_OK;
    }
    if (skip_op(P, "{")) {
        NODE(e, JE_DICT, line);
        jvec v = {0};
        while (!is_op(P, "}")) {
            if (v.n) JTRY(expect_op(P, ","));
            if (is_op(P, "}")) break;
            jexpr *k, *val;
            JTRY(parse_expr(P, true, &k));
            JTRY(expect_op(P, ":"));
            JTRY(parse_expr(P, true, &val));
            JTRY(vec_push(P, &v, k, NULL));
            JTRY(vec_push(P, &v, val, NULL));
        }
        P->i++;
        e->items = v.v;
        e->n = v.n;
        *out = e;
        return M40LLM_OK;
    }
    return pfail(P, "unexpected token in an expression");
}

static int parse_unary(jparser *P, bool with_filter, jexpr **out) {
    int line = cur(P)->line;
    if (P->depth > JPARSE_MAX_DEPTH) return pfail(P, "expression nested too deeply");
    jexpr *e;
    if (skip_op(P, "-") || (is_op(P, "+") && (P->i++, true))) {
        bool neg = tok_is(&P->tk[P->i - 1], JT_OP, "-");
        NODE(u, neg ? JE_NEG : JE_POS, line);
        P->depth++;
        int rc = parse_unary(P, false, &u->a);
        P->depth--;
        JTRY(rc);
        e = u;
    } else {
        JTRY(parse_primary(P, &e));
    }
    JTRY(parse_postfix(P, e, &e));
    if (with_filter) JTRY(parse_filter_expr(P, e, &e));
    *out = e;
    return M40LLM_OK;
}

/* Binary levels, loosest first within arithmetic: + -, ~, * / // %, ** */
static const char *const bin_levels[4][4] = {
    {"+", "-", NULL}, {"~", NULL}, {"*", "/", "//", "%"}, {"**", NULL}};

static int parse_binary(jparser *P, int level, jexpr **out) {
    if (level == 4) return parse_unary(P, true, out);
    jexpr *l;
    JTRY(parse_binary(P, level + 1, &l));
    for (;;) {
        const char *op = NULL;
        for (int k = 0; k < 4 && bin_levels[level][k]; k++)
            if (is_op(P, bin_levels[level][k])) op = bin_levels[level][k];
        if (!op) break;
        int line = cur(P)->line;
        P->i++;
        NODE(b, JE_BINOP, line);
        b->name = op;
        b->a = l;
        JTRY(parse_binary(P, level + 1, &b->b));
        l = b;
    }
    *out = l;
    return M40LLM_OK;
}

static int parse_compare(jparser *P, jexpr **out) {
    int line = cur(P)->line;
    jexpr *l;
    JTRY(parse_binary(P, 0, &l));
    static const char *const cmp[] = {"==", "!=", "<", "<=", ">", ">="};
    jvec v = {0};
    jcmp_op ops[16];
    for (;;) {
        int op = -1;
        for (int k = 0; k < 6; k++)
            if (is_op(P, cmp[k])) op = k;
        if (op >= 0) {
            P->i++;
        } else if (skip_name(P, "in")) {
            op = JOP_IN;
        } else if (is_name(P, "not") && tok_is(peek(P, 1), JT_NAME, "in")) {
            P->i += 2;
            op = JOP_NOTIN;
        } else {
            break;
        }
        if (v.n == 16) return pfail(P, "comparison chain too long");
        ops[v.n] = (jcmp_op)op;
        jexpr *r;
        JTRY(parse_binary(P, 0, &r));
        JTRY(vec_push(P, &v, r, NULL));
    }
    if (v.n == 0) {
        *out = l;
        return M40LLM_OK;
    }
    NODE(c, JE_COMPARE, line);
    c->a = l;
    c->items = v.v;
    c->n = v.n;
    c->ops = jarena_alloc(&P->t->arena, v.n * sizeof *c->ops);
    if (!c->ops) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    memcpy(c->ops, ops, v.n * sizeof *ops);
    *out = c;
    return M40LLM_OK;
}

static int parse_not(jparser *P, jexpr **out) {
    if (is_name(P, "not")) {
        NODE(e, JE_NOT, cur(P)->line);
        P->i++;
        if (++P->depth > JPARSE_MAX_DEPTH) return pfail(P, "expression nested too deeply");
        int rc = parse_not(P, &e->a);
        P->depth--;
        JTRY(rc);
        *out = e;
        return M40LLM_OK;
    }
    return parse_compare(P, out);
}

static int parse_logic(jparser *P, bool is_or, jexpr **out) {
    jexpr *l;
    JTRY(is_or ? parse_logic(P, false, &l) : parse_not(P, &l));
    while (is_name(P, is_or ? "or" : "and")) {
        NODE(b, is_or ? JE_OR : JE_AND, cur(P)->line);
        P->i++;
        b->a = l;
        JTRY(is_or ? parse_logic(P, false, &b->b) : parse_not(P, &b->b));
        l = b;
    }
    *out = l;
    return M40LLM_OK;
}

static int parse_expr_inner(jparser *P, bool with_cond, jexpr **out);
static int parse_expr(jparser *P, bool with_cond, jexpr **out) {
    if (++P->depth > JPARSE_MAX_DEPTH) return pfail(P, "expression nested too deeply");
    int rc = parse_expr_inner(P, with_cond, out);
    P->depth--;
    return rc;
}

static int parse_expr_inner(jparser *P, bool with_cond, jexpr **out) {
    jexpr *e;
    JTRY(parse_logic(P, true, &e));
    while (with_cond && is_name(P, "if")) {
        NODE(c, JE_COND, cur(P)->line);
        P->i++;
        c->b = e;
        JTRY(parse_logic(P, true, &c->a));
        if (skip_name(P, "else")) JTRY(parse_expr(P, true, &c->c));
        e = c;
    }
    *out = e;
    return M40LLM_OK;
}

/* for/set targets: name, name.attr (set only), or names separated by commas */
static int parse_target(jparser *P, bool with_ns, jexpr **out) {
    int line = cur(P)->line;
    bool paren = skip_op(P, "(");
    jvec v = {0};
    do {
        if (cur(P)->type != JT_NAME) return pfail(P, "expected a variable name");
        NODE(e, JE_NAME, cur(P)->line);
        e->name = tok_str(P, cur(P));
        P->i++;
        if (with_ns && v.n == 0 && !paren && is_op(P, ".")) {
            P->i++;
            if (cur(P)->type != JT_NAME) return pfail(P, "expected an attribute name");
            NODE(g, JE_GETATTR, line);
            g->a = e;
            g->name = tok_str(P, cur(P));
            P->i++;
            *out = g;
            return M40LLM_OK;
        }
        JTRY(vec_push(P, &v, e, NULL));
    } while (skip_op(P, ","));
    if (paren) JTRY(expect_op(P, ")"));
    if (v.n == 1 && !paren) {
        *out = v.v[0];
        return M40LLM_OK;
    }
    NODE(t, JE_TUPLE, line);
    t->items = v.v;
    t->n = v.n;
    *out = t;
    return M40LLM_OK;
}

/* ---- statements ---- */
static int body_push(jparser *P, jbody *b, jstmt *s) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        jstmt **v = jarena_alloc(&P->t->arena, cap * sizeof *v);
        if (!v) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        if (b->n) memcpy(v, b->items, b->n * sizeof *v);
        b->items = v;
        b->cap = cap;
    }
    b->items[b->n++] = s;
    return M40LLM_OK;
}

static jstmt *stmt(jparser *P, jstmt_kind k, int line) {
    jstmt *s = jarena_alloc(&P->t->arena, sizeof *s);
    if (s) {
        s->kind = k;
        s->line = line;
    }
    return s;
}
#define STMT(var, kind, line)                                                                      \
    jstmt *var = stmt(P, kind, line);                                                              \
    if (!var) return err_set(M40LLM_ERR_OOM, "template: out of memory")

/* Parses statements until a block tag named in `ends` (NULL-terminated);
 * leaves the cursor on that name. */
static int parse_body(jparser *P, jbody *body, const char *const *ends);

static int block_end(jparser *P) {
    return expect_type(P, JT_BLOCK_END, "expected '%}'");
}

static int end_tag(jparser *P, const char *name) {
    if (!skip_name(P, name)) return pfail(P, "unexpected tag");
    return block_end(P);
}

static int parse_for(jparser *P, jstmt *s) {
    JTRY(parse_target(P, false, &s->target));
    if (!skip_name(P, "in")) return pfail(P, "expected 'in' in a for loop");
    JTRY(parse_tuple(P, false, "recursive", false, &s->expr));
    if (skip_name(P, "if")) JTRY(parse_expr(P, true, &s->cond));
    if (is_name(P, "recursive")) return pfail(P, "recursive loops are not supported");
    JTRY(block_end(P));
    static const char *const ends[] = {"endfor", "else", NULL};
    JTRY(parse_body(P, &s->body, ends));
    if (skip_name(P, "else")) {
        JTRY(block_end(P));
        static const char *const ends2[] = {"endfor", NULL};
        JTRY(parse_body(P, &s->else_body, ends2));
    }
    return end_tag(P, "endfor");
}

static int parse_if(jparser *P, jstmt *s) {
    JTRY(parse_tuple(P, false, NULL, false, &s->expr));
    JTRY(block_end(P));
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    JTRY(parse_body(P, &s->body, ends));
    if (is_name(P, "elif")) {
        STMT(e, JS_IF, cur(P)->line);
        P->i++;
        JTRY(parse_if(P, e));
        return body_push(P, &s->else_body, e); /* the nested if consumed endif */
    }
    if (skip_name(P, "else")) {
        JTRY(block_end(P));
        static const char *const ends2[] = {"endif", NULL};
        JTRY(parse_body(P, &s->else_body, ends2));
    }
    return end_tag(P, "endif");
}

static int parse_set(jparser *P, jstmt *s) {
    JTRY(parse_target(P, true, &s->target));
    if (skip_op(P, "=")) {
        JTRY(parse_tuple(P, true, NULL, false, &s->expr));
        return block_end(P);
    }
    if (s->target->kind != JE_NAME) return pfail(P, "a block set needs a plain variable name");
    if (is_op(P, "|")) return pfail(P, "filters on a block set are not supported");
    s->kind = JS_SET_BLOCK;
    JTRY(block_end(P));
    static const char *const ends[] = {"endset", NULL};
    JTRY(parse_body(P, &s->body, ends));
    return end_tag(P, "endset");
}

static int parse_macro(jparser *P, jstmt *s) {
    if (cur(P)->type != JT_NAME) return pfail(P, "expected a macro name");
    s->name = tok_str(P, cur(P));
    P->i++;
    JTRY(expect_op(P, "("));
    jvec names = {0}, defs = {0};
    while (!is_op(P, ")")) {
        if (names.n) JTRY(expect_op(P, ","));
        if (is_op(P, ")")) break;
        if (cur(P)->type != JT_NAME) return pfail(P, "expected a parameter name");
        NODE(n, JE_NAME, cur(P)->line);
        n->name = tok_str(P, cur(P));
        P->i++;
        jexpr *d = NULL;
        if (skip_op(P, "=")) JTRY(parse_expr(P, true, &d));
        JTRY(vec_push(P, &names, n, n->name));
        JTRY(vec_push(P, &defs, d, NULL));
    }
    P->i++;
    s->params = names.kw;
    s->defaults = defs.v;
    s->n_params = names.n;
    JTRY(block_end(P));
    static const char *const ends[] = {"endmacro", NULL};
    JTRY(parse_body(P, &s->body, ends));
    return end_tag(P, "endmacro");
}

static int parse_with(jparser *P, jstmt *s) {
    jvec names = {0}, vals = {0};
    while (cur(P)->type != JT_BLOCK_END) {
        if (names.n) JTRY(expect_op(P, ","));
        jexpr *t, *v;
        JTRY(parse_target(P, false, &t));
        JTRY(expect_op(P, "="));
        JTRY(parse_expr(P, true, &v));
        JTRY(vec_push(P, &names, t, NULL));
        JTRY(vec_push(P, &vals, v, NULL));
    }
    s->with_targets = names.v;
    s->defaults = vals.v;
    s->n_params = names.n;
    JTRY(block_end(P));
    static const char *const ends[] = {"endwith", NULL};
    JTRY(parse_body(P, &s->body, ends));
    return end_tag(P, "endwith");
}

static int parse_statement_inner(jparser *P, jbody *body);
static int parse_statement(jparser *P, jbody *body) {
    if (++P->depth > JPARSE_MAX_DEPTH) return pfail(P, "blocks nested too deeply");
    int rc = parse_statement_inner(P, body);
    P->depth--;
    return rc;
}

static int parse_statement_inner(jparser *P, jbody *body) {
    jtok *t = cur(P);
    int line = t->line;
    if (t->type != JT_NAME) return pfail(P, "expected a tag name");
    char name[48];
    snprintf(name, sizeof name, "%.*s", (int)(t->n < 40 ? t->n : 40), t->s);
    P->i++;
    STMT(s, JS_TEXT, line);
    if (!strcmp(name, "for")) {
        s->kind = JS_FOR;
        JTRY(parse_for(P, s));
    } else if (!strcmp(name, "if")) {
        s->kind = JS_IF;
        JTRY(parse_if(P, s));
    } else if (!strcmp(name, "set")) {
        s->kind = JS_SET;
        JTRY(parse_set(P, s));
    } else if (!strcmp(name, "macro")) {
        s->kind = JS_MACRO;
        JTRY(parse_macro(P, s));
    } else if (!strcmp(name, "with")) {
        s->kind = JS_WITH;
        JTRY(parse_with(P, s));
    } else if (!strcmp(name, "break") || !strcmp(name, "continue")) {
        s->kind = name[0] == 'b' ? JS_BREAK : JS_CONTINUE;
        JTRY(block_end(P));
    } else {
        return err_set(M40LLM_ERR_UNSUPPORTED, "template line %d: Encountered unknown tag '%s'.",
                       line, name);
    }
    return body_push(P, body, s);
}

static int parse_body(jparser *P, jbody *body, const char *const *ends) {
    for (;;) {
        jtok *t = cur(P);
        if (t->type == JT_EOF) {
            if (!ends) return M40LLM_OK;
            return err_set(M40LLM_ERR_UNSUPPORTED,
                           "template line %d: Unexpected end of template. Jinja was looking "
                           "for the tag '%s'.",
                           t->line, ends[0]);
        }
        if (t->type == JT_DATA) {
            STMT(s, JS_TEXT, t->line);
            s->text = t->s;
            s->len = t->n;
            JTRY(body_push(P, body, s));
            P->i++;
        } else if (t->type == JT_VAR_BEGIN) {
            STMT(s, JS_OUTPUT, t->line);
            P->i++;
            JTRY(parse_tuple(P, true, NULL, false, &s->expr));
            JTRY(expect_type(P, JT_VAR_END, "expected '}}'"));
            JTRY(body_push(P, body, s));
        } else if (t->type == JT_BLOCK_BEGIN) {
            P->i++;
            for (size_t k = 0; ends && ends[k]; k++)
                if (is_name(P, ends[k])) return M40LLM_OK;
            JTRY(parse_statement(P, body));
        } else {
            return pfail(P, "unexpected token");
        }
    }
}

int jinja_parse_tokens(jinja_template *t, jtok *toks, size_t ntoks) {
    jparser P = {.t = t, .tk = toks, .n = ntoks};
    return parse_body(&P, &t->root, NULL);
}

int jinja_parse(const char *src, size_t len, jinja_template **out) {
    *out = NULL;
    if (!src) return err_set(M40LLM_ERR_INVALID_ARG, "template: no source");
    jinja_template *t = calloc(1, sizeof *t);
    if (!t) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    jtok *toks;
    size_t n;
    int rc = jinja_lex(&t->arena, src, len, &toks, &n);
    if (rc == M40LLM_OK) rc = jinja_parse_tokens(t, toks, n);
    if (rc != M40LLM_OK) {
        jinja_free(t);
        return rc;
    }
    *out = t;
    return M40LLM_OK;
}

void jinja_free(jinja_template *t) {
    if (!t) return;
    jarena_free(&t->arena);
    free(t);
}
