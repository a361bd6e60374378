/* Parser internals shared by the expression parser (jinja_parse.c) and
 * the statement parser (jinja_parse_stmt.c). */
#ifndef M40_JINJA_PARSE_H
#define M40_JINJA_PARSE_H

#include <string.h>

#include "jinja_int.h"

typedef struct jparser {
    jinja_template *t;
    jtok *tk; /* [n], the last is JT_EOF */
    size_t n, i;
    int depth; /* nesting of expressions and blocks, bounded to protect the stack */
} jparser;

enum { JPARSE_MAX_DEPTH = 200 };

static inline jtok *cur(jparser *P) {
    return &P->tk[P->i];
}
static inline jtok *peek(jparser *P, size_t k) {
    return P->i + k < P->n ? &P->tk[P->i + k] : &P->tk[P->n - 1];
}
static inline bool tok_is(const jtok *t, jtok_type type, const char *s) {
    return t->type == type && (!s || (t->n == strlen(s) && memcmp(t->s, s, t->n) == 0));
}
static inline bool is_op(jparser *P, const char *s) {
    return tok_is(cur(P), JT_OP, s);
}
static inline bool is_name(jparser *P, const char *s) {
    return tok_is(cur(P), JT_NAME, s);
}
static inline bool skip_op(jparser *P, const char *s) {
    if (!is_op(P, s)) return false;
    P->i++;
    return true;
}
static inline bool skip_name(jparser *P, const char *s) {
    if (!is_name(P, s)) return false;
    P->i++;
    return true;
}

/* Fails with "template line N: what (at TOKEN)". */
int jparse_fail(jparser *P, const char *what);
int jparse_expect_op(jparser *P, const char *s);
int jparse_expect_type(jparser *P, jtok_type t, const char *what);
jexpr *jparse_node(jparser *P, jexpr_kind k, int line);
char *jparse_tok_str(jparser *P, const jtok *t);
#define NODE(var, kind, line)                                                                      \
    jexpr *var = jparse_node(P, kind, line);                                                       \
    if (!var) return err_set(M40LLM_ERR_OOM, "template: out of memory")

/* growable array of expression pointers (with keyword names) in the template arena */
typedef struct {
    jexpr **v;
    const char **kw;
    size_t n, cap;
} jvec;
int jparse_vec_push(jparser *P, jvec *v, jexpr *e, const char *kw);

/* An expression; with_cond allows `a if c else b`. */
int jparse_expr(jparser *P, bool with_cond, jexpr **out);
/* expr or expr, expr, ... (a tuple); stops at extra_end (a name) too. */
int jparse_tuple(jparser *P, bool with_cond, const char *extra_end, bool explicit_parens,
                 jexpr **out);
/* One or more filters applied to `in`: "name(args) | name ..." (after a
 * '|' when leading_bar). Used by filter blocks and block sets. */
int jparse_filters(jparser *P, jexpr *in, bool leading_bar, jexpr **out);
/* for/set targets: name, name.attr (with_ns), or names separated by commas. */
int jparse_target(jparser *P, bool with_ns, jexpr **out);

#endif
