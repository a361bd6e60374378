/* Template parser: tokens to a syntax tree, following Jinja2's grammar and
 * operator precedence (filters bind tighter than arithmetic; `not x is y` is
 * `not (x is y)`). Filters and tests are resolved here, so an unknown one
 * fails at compile time with its name, as in Jinja2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_parse.h"

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

int jparse_fail(jparser *P, const char *what) {
    char b[64];
    return err_set(M40LLM_ERR_UNSUPPORTED, "template line %d: %s (at %s)", cur(P)->line, what,
                   tok_desc(cur(P), b, sizeof b));
}

int jparse_expect_op(jparser *P, const char *s) {
    if (skip_op(P, s)) return M40LLM_OK;
    char what[64];
    snprintf(what, sizeof what, "expected '%s'", s);
    return jparse_fail(P, what);
}
int jparse_expect_type(jparser *P, jtok_type t, const char *what) {
    if (cur(P)->type != t) return jparse_fail(P, what);
    P->i++;
    return M40LLM_OK;
}

jexpr *jparse_node(jparser *P, jexpr_kind k, int line) {
    jexpr *e = jarena_alloc(&P->t->arena, sizeof *e);
    if (e) {
        e->kind = k;
        e->line = line;
    }
    return e;
}

char *jparse_tok_str(jparser *P, const jtok *t) {
    return jarena_strndup(&P->t->arena, t->s, t->n);
}

/* growable array of expression pointers in the template arena */

int jparse_vec_push(jparser *P, jvec *v, jexpr *e, const char *kw) {
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

static int parse_unary(jparser *P, bool with_filter, jexpr **out);
static int parse_primary(jparser *P, jexpr **out);
static int parse_postfix(jparser *P, jexpr *e, jexpr **out);

static bool tuple_end(jparser *P, const char *extra_end) {
    jtok *t = cur(P);
    return t->type == JT_VAR_END || t->type == JT_BLOCK_END || t->type == JT_EOF ||
           tok_is(t, JT_OP, ")") || (extra_end && tok_is(t, JT_NAME, extra_end));
}

/* expr or expr, expr, ... (a tuple) */
int jparse_tuple(jparser *P, bool with_cond, const char *extra_end, bool explicit_parens,
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
        JTRY(jparse_expr(P, with_cond, &e));
        JTRY(jparse_vec_push(P, &v, e, NULL));
    }
    if (v.n == 1 && !comma) {
        *out = v.v[0];
        return M40LLM_OK;
    }
    if (v.n == 0 && !explicit_parens) return jparse_fail(P, "expected an expression");
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
        if (v.n) JTRY(jparse_expect_op(P, ","));
        if (is_op(P, ")")) break;
        if (is_op(P, "*") || is_op(P, "**"))
            return jparse_fail(P, "*args and **kwargs are not supported");
        const char *kw = NULL;
        if (cur(P)->type == JT_NAME && tok_is(peek(P, 1), JT_OP, "=")) {
            kw = jparse_tok_str(P, cur(P));
            P->i += 2;
        }
        jexpr *a;
        JTRY(jparse_expr(P, true, &a));
        JTRY(jparse_vec_push(P, &v, a, kw));
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
    if (cur(P)->type != JT_NAME) return jparse_fail(P, "expected a filter name");
    NODE(e, JE_FILTER, line);
    e->name = jparse_tok_str(P, cur(P));
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

int jparse_filters(jparser *P, jexpr *in, bool leading_bar, jexpr **out) {
    if (leading_bar) JTRY(jparse_expect_op(P, "|"));
    JTRY(parse_filter(P, in, &in));
    while (skip_op(P, "|")) JTRY(parse_filter(P, in, &in));
    *out = in;
    return M40LLM_OK;
}

static int parse_test(jparser *P, jexpr *in, jexpr **out) {
    /* after 'is' */
    int line = cur(P)->line;
    bool neg = skip_name(P, "not");
    if (cur(P)->type != JT_NAME) return jparse_fail(P, "expected a test name");
    NODE(e, JE_TEST, line);
    e->name = jparse_tok_str(P, cur(P));
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
        if (is_name(P, "is")) return jparse_fail(P, "You cannot chain multiple tests with is");
        jexpr *a;
        JTRY(parse_primary(P, &a));
        JTRY(parse_postfix(P, a, &a));
        jvec v = {0};
        JTRY(jparse_vec_push(P, &v, a, NULL));
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
        if (cur(P)->type != JT_NAME) return jparse_fail(P, "expected an attribute name after '.'");
        NODE(e, JE_GETATTR, line);
        e->a = obj;
        e->name = jparse_tok_str(P, cur(P));
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
            if (++np > 2) return jparse_fail(P, "too many ':' in a slice");
            continue;
        }
        if (is_op(P, "]")) break;
        if (parts[np]) return jparse_fail(P, "expected ']'");
        JTRY(jparse_expr(P, true, &parts[np]));
    }
    P->i++;
    if (!slice) {
        if (!parts[0]) return jparse_fail(P, "expected a subscript");
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
        e->name = jparse_tok_str(P, t);
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
        JTRY(jparse_tuple(P, true, NULL, true, out));
        return jparse_expect_op(P, ")");
    }
    if (skip_op(P, "[")) {
        NODE(e, JE_LIST, line);
        jvec v = {0};
        while (!is_op(P, "]")) {
            if (v.n) JTRY(jparse_expect_op(P, ","));
            if (is_op(P, "]")) break;
            jexpr *a;
            JTRY(jparse_expr(P, true, &a));
            JTRY(jparse_vec_push(P, &v, a, NULL));
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
            if (v.n) JTRY(jparse_expect_op(P, ","));
            if (is_op(P, "}")) break;
            jexpr *k, *val;
            JTRY(jparse_expr(P, true, &k));
            JTRY(jparse_expect_op(P, ":"));
            JTRY(jparse_expr(P, true, &val));
            JTRY(jparse_vec_push(P, &v, k, NULL));
            JTRY(jparse_vec_push(P, &v, val, NULL));
        }
        P->i++;
        e->items = v.v;
        e->n = v.n;
        *out = e;
        return M40LLM_OK;
    }
    return jparse_fail(P, "unexpected token in an expression");
}

static int parse_unary(jparser *P, bool with_filter, jexpr **out) {
    int line = cur(P)->line;
    if (P->depth > JPARSE_MAX_DEPTH) return jparse_fail(P, "expression nested too deeply");
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
        if (v.n == 16) return jparse_fail(P, "comparison chain too long");
        ops[v.n] = (jcmp_op)op;
        jexpr *r;
        JTRY(parse_binary(P, 0, &r));
        JTRY(jparse_vec_push(P, &v, r, NULL));
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
        if (++P->depth > JPARSE_MAX_DEPTH) return jparse_fail(P, "expression nested too deeply");
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
int jparse_expr(jparser *P, bool with_cond, jexpr **out) {
    if (++P->depth > JPARSE_MAX_DEPTH) return jparse_fail(P, "expression nested too deeply");
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
        if (skip_name(P, "else")) JTRY(jparse_expr(P, true, &c->c));
        e = c;
    }
    *out = e;
    return M40LLM_OK;
}

/* for/set targets: name, name.attr (set only), or names separated by commas */
int jparse_target(jparser *P, bool with_ns, jexpr **out) {
    int line = cur(P)->line;
    bool paren = skip_op(P, "(");
    jvec v = {0};
    do {
        if (cur(P)->type != JT_NAME) return jparse_fail(P, "expected a variable name");
        NODE(e, JE_NAME, cur(P)->line);
        e->name = jparse_tok_str(P, cur(P));
        P->i++;
        if (with_ns && v.n == 0 && !paren && is_op(P, ".")) {
            P->i++;
            if (cur(P)->type != JT_NAME) return jparse_fail(P, "expected an attribute name");
            NODE(g, JE_GETATTR, line);
            g->a = e;
            g->name = jparse_tok_str(P, cur(P));
            P->i++;
            *out = g;
            return M40LLM_OK;
        }
        JTRY(jparse_vec_push(P, &v, e, NULL));
    } while (skip_op(P, ","));
    if (paren) JTRY(jparse_expect_op(P, ")"));
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
