/* Statement parser: {% for %}, {% if %}, {% set %}, {% macro %},
 * {% with %}, loop controls, and the template body; unknown tags fail
 * naming the tag. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_parse.h"

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
    return jparse_expect_type(P, JT_BLOCK_END, "expected '%}'");
}

static int end_tag(jparser *P, const char *name) {
    if (!skip_name(P, name)) return jparse_fail(P, "unexpected tag");
    return block_end(P);
}

static int parse_for(jparser *P, jstmt *s) {
    JTRY(jparse_target(P, false, &s->target));
    if (!skip_name(P, "in")) return jparse_fail(P, "expected 'in' in a for loop");
    JTRY(jparse_tuple(P, false, "recursive", false, &s->expr));
    if (skip_name(P, "if")) JTRY(jparse_expr(P, true, &s->cond));
    if (is_name(P, "recursive")) return jparse_fail(P, "recursive loops are not supported");
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
    JTRY(jparse_tuple(P, false, NULL, false, &s->expr));
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
    JTRY(jparse_target(P, true, &s->target));
    if (skip_op(P, "=")) {
        JTRY(jparse_tuple(P, true, NULL, false, &s->expr));
        return block_end(P);
    }
    if (s->target->kind != JE_NAME)
        return jparse_fail(P, "a block set needs a plain variable name");
    s->kind = JS_SET_BLOCK;
    if (is_op(P, "|")) {
        NODE(blk, JE_NAME, cur(P)->line);
        blk->name = JINJA_BLOCK_VAR;
        JTRY(jparse_filters(P, blk, true, &s->expr));
    }
    JTRY(block_end(P));
    static const char *const ends[] = {"endset", NULL};
    JTRY(parse_body(P, &s->body, ends));
    return end_tag(P, "endset");
}

static int parse_params(jparser *P, jstmt *s) {
    /* after '(' */
    jvec names = {0}, defs = {0};
    while (!is_op(P, ")")) {
        if (names.n) JTRY(jparse_expect_op(P, ","));
        if (is_op(P, ")")) break;
        if (cur(P)->type != JT_NAME) return jparse_fail(P, "expected a parameter name");
        NODE(n, JE_NAME, cur(P)->line);
        n->name = jparse_tok_str(P, cur(P));
        P->i++;
        jexpr *d = NULL;
        if (skip_op(P, "=")) JTRY(jparse_expr(P, true, &d));
        JTRY(jparse_vec_push(P, &names, n, n->name));
        JTRY(jparse_vec_push(P, &defs, d, NULL));
    }
    P->i++;
    s->params = names.kw;
    s->defaults = defs.v;
    s->n_params = names.n;
    return M40LLM_OK;
}

static int parse_macro(jparser *P, jstmt *s) {
    if (cur(P)->type != JT_NAME) return jparse_fail(P, "expected a macro name");
    s->name = jparse_tok_str(P, cur(P));
    P->i++;
    JTRY(jparse_expect_op(P, "("));
    JTRY(parse_params(P, s));
    JTRY(block_end(P));
    static const char *const ends[] = {"endmacro", NULL};
    JTRY(parse_body(P, &s->body, ends));
    return end_tag(P, "endmacro");
}

static int parse_with(jparser *P, jstmt *s) {
    jvec names = {0}, vals = {0};
    while (cur(P)->type != JT_BLOCK_END) {
        if (names.n) JTRY(jparse_expect_op(P, ","));
        jexpr *t, *v;
        JTRY(jparse_target(P, false, &t));
        JTRY(jparse_expect_op(P, "="));
        JTRY(jparse_expr(P, true, &v));
        JTRY(jparse_vec_push(P, &names, t, NULL));
        JTRY(jparse_vec_push(P, &vals, v, NULL));
    }
    s->with_targets = names.v;
    s->defaults = vals.v;
    s->n_params = names.n;
    JTRY(block_end(P));
    static const char *const ends[] = {"endwith", NULL};
    JTRY(parse_body(P, &s->body, ends));
    return end_tag(P, "endwith");
}

static int parse_filter_block(jparser *P, jstmt *s) {
    NODE(blk, JE_NAME, cur(P)->line);
    blk->name = JINJA_BLOCK_VAR;
    JTRY(jparse_filters(P, blk, false, &s->expr));
    JTRY(block_end(P));
    static const char *const ends[] = {"endfilter", NULL};
    JTRY(parse_body(P, &s->body, ends));
    return end_tag(P, "endfilter");
}

static int parse_call_block(jparser *P, jstmt *s) {
    s->name = "caller";
    if (skip_op(P, "(")) JTRY(parse_params(P, s));
    JTRY(jparse_expr(P, true, &s->expr));
    if (s->expr->kind != JE_CALL) return jparse_fail(P, "expected a macro call after 'call'");
    JTRY(block_end(P));
    static const char *const ends[] = {"endcall", NULL};
    JTRY(parse_body(P, &s->body, ends));
    return end_tag(P, "endcall");
}

static int parse_statement_inner(jparser *P, jbody *body);
static int parse_statement(jparser *P, jbody *body) {
    if (++P->depth > JPARSE_MAX_DEPTH) return jparse_fail(P, "blocks nested too deeply");
    int rc = parse_statement_inner(P, body);
    P->depth--;
    return rc;
}

static int parse_statement_inner(jparser *P, jbody *body) {
    jtok *t = cur(P);
    int line = t->line;
    if (t->type != JT_NAME) return jparse_fail(P, "expected a tag name");
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
    } else if (!strcmp(name, "filter")) {
        s->kind = JS_FILTER_BLOCK;
        JTRY(parse_filter_block(P, s));
    } else if (!strcmp(name, "call")) {
        s->kind = JS_CALL_BLOCK;
        JTRY(parse_call_block(P, s));
    } else if (!strcmp(name, "generation")) {
        /* transformers' AssistantTracker marks assistant text for masks; when
         * rendering a prompt the block is just its body */
        s->kind = JS_WITH;
        JTRY(block_end(P));
        static const char *const ends[] = {"endgeneration", NULL};
        JTRY(parse_body(P, &s->body, ends));
        JTRY(end_tag(P, "endgeneration"));
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
            JTRY(jparse_tuple(P, true, NULL, false, &s->expr));
            JTRY(jparse_expect_type(P, JT_VAR_END, "expected '}}'"));
            JTRY(body_push(P, body, s));
        } else if (t->type == JT_BLOCK_BEGIN) {
            P->i++;
            for (size_t k = 0; ends && ends[k]; k++)
                if (is_name(P, ends[k])) return M40LLM_OK;
            JTRY(parse_statement(P, body));
        } else {
            return jparse_fail(P, "unexpected token");
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
    /* parsing takes some 50 bytes a source byte: bound it before it starts */
    if (len > JINJA_MAX_SOURCE)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "template: %zu bytes, more than a chat template's %d KiB limit", len,
                       JINJA_MAX_SOURCE >> 10);
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
