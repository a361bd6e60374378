/* Template evaluator: scopes, expressions with Python semantics, statements,
 * and the render entry point. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

enum { JX_BREAK = 1, JX_CONTINUE = 2 }; /* statement results besides OK/errors */
enum { JEVAL_MAX_DEPTH = 64 };
/* Limits no chat template comes near; they turn runaway loops into errors. */
#define JEVAL_DEFAULT_STEPS 1000000ull
#define JEVAL_MAX_OUTPUT    (256u << 20)

/* A scope: variables set in it; lookups walk to the parent. A for-loop
 * iteration, a macro call and a with-block each get their own. */
typedef struct jframe {
    struct jframe *parent;
    const char **names; /* [n] */
    jv *vals;           /* [n] */
    size_t n, cap;
} jframe;

static jframe *frame_new(jeval *ev, jframe *parent) {
    jframe *f = jarena_alloc(ev->a, sizeof *f);
    if (f) f->parent = parent;
    return f;
}

static int frame_set(jeval *ev, jframe *f, const char *name, jv v) {
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            f->vals[i] = v;
            return M40LLM_OK;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        const char **nn = jarena_alloc(ev->a, cap * sizeof *nn);
        jv *nv = jarena_alloc(ev->a, cap * sizeof *nv);
        if (!nn || !nv) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        if (f->n) {
            memcpy(nn, f->names, f->n * sizeof *nn);
            memcpy(nv, f->vals, f->n * sizeof *nv);
        }
        f->names = nn;
        f->vals = nv;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n] = v;
    f->n++;
    return M40LLM_OK;
}

const char *jeval_hint(jeval *ev, const char *fmt, const char *a, const char *b) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, fmt, a, b);
    return jarena_strndup(ev->a, tmp, strlen(tmp));
}

static jv frame_lookup(jeval *ev, jframe *f, const char *name) {
    for (; f; f = f->parent)
        for (size_t i = f->n; i-- > 0;)
            if (!strcmp(f->names[i], name)) return f->vals[i];
    jv g;
    if (jinja_find_global(name, &g)) return g;
    return jv_undef(jeval_hint(ev, "'%s' is undefined", name, ""));
}

int jeval_fail(jeval *ev, int status, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    (void)ev;
    return err_set(status, "template line %d: %s", line, msg);
}

int jeval_undef_error(jeval *ev, const jv *v, int line) {
    return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "%s",
                      v->undef_hint ? v->undef_hint : "value is undefined");
}

/* ---- operators ---- */
static int64_t floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static int binop_err(jeval *ev, const char *op, const jv *a, const jv *b, int line) {
    if (a->type == JV_UNDEF) return jeval_undef_error(ev, a, line);
    if (b->type == JV_UNDEF) return jeval_undef_error(ev, b, line);
    return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                      "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a),
                      jv_type_name(b));
}

/* Python ints are unbounded; ours are 64-bit, so overflow is an error */
static int int_result(jeval *ev, bool overflow, int64_t r, int line, jv *out) {
    if (overflow)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "integer overflow (beyond 64 bits)");
    *out = jv_int(r);
    return M40LLM_OK;
}

static int ipow(jeval *ev, int64_t x, int64_t y, int line, jv *out) {
    if (x == 0 || x == 1) return int_result(ev, false, y == 0 ? 1 : x, line, out);
    if (x == -1) return int_result(ev, false, y % 2 ? -1 : 1, line, out);
    int64_t r = 1;
    for (int64_t i = 0; i < y; i++)
        if (__builtin_mul_overflow(r, x, &r)) return int_result(ev, true, 0, line, out);
    return int_result(ev, false, r, line, out);
}

static int repeat(jeval *ev, const jv *seq, int64_t k, jv *out) {
    if (k > 0 && (uint64_t)k * (seq->type == JV_STR ? seq->s.n : seq->l->n) > (64u << 20))
        return err_set(M40LLM_ERR_FORMAT, "template: repetition result too large");
    if (seq->type == JV_STR) {
        size_t n = k > 0 ? seq->s.n * (size_t)k : 0;
        char *p = jarena_alloc(ev->a, n + 1);
        if (!p) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        for (int64_t i = 0; i < k; i++) memcpy(p + (size_t)i * seq->s.n, seq->s.p, seq->s.n);
        *out = jv_strn(p, n);
        return M40LLM_OK;
    }
    jlist *l = jlist_new(ev->a, 0);
    if (!l) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < seq->l->n; j++) JTRY(jlist_push(ev->a, l, seq->l->items[j]));
    *out = jv_list(l);
    return M40LLM_OK;
}

static int binop(jeval *ev, const char *op, const jv *a, const jv *b, int line, jv *out) {
    if (op[0] == '~') {
        jbuf s = {0};
        jv_to_str(&s, a);
        jv_to_str(&s, b);
        return jv_from_buf(ev, &s, out);
    }
    bool num = jv_is_number(a) && jv_is_number(b);
    bool ints = num && a->type != JV_FLOAT && b->type != JV_FLOAT;
    int64_t x = ints ? (a->type == JV_INT ? a->i : a->b) : 0;
    int64_t y = ints ? (b->type == JV_INT ? b->i : b->b) : 0;
    double fx = num ? jv_as_double(a) : 0, fy = num ? jv_as_double(b) : 0;
    switch (op[0]) {
    case '+':
        if (ints) {
            int64_t r;
            bool ovf = __builtin_add_overflow(x, y, &r);
            return int_result(ev, ovf, r, line, out);
        } else if (num)
            *out = jv_float(fx + fy);
        else if (a->type == JV_STR && b->type == JV_STR) {
            char *p = jarena_alloc(ev->a, a->s.n + b->s.n + 1);
            if (!p) return err_set(M40LLM_ERR_OOM, "template: out of memory");
            memcpy(p, a->s.p, a->s.n);
            memcpy(p + a->s.n, b->s.p, b->s.n);
            *out = jv_strn(p, a->s.n + b->s.n);
        } else if (a->type == JV_LIST && b->type == JV_LIST) {
            jlist *l = jlist_new(ev->a, a->l->n + b->l->n);
            if (!l) return err_set(M40LLM_ERR_OOM, "template: out of memory");
            for (size_t i = 0; i < a->l->n; i++) JTRY(jlist_push(ev->a, l, a->l->items[i]));
            for (size_t i = 0; i < b->l->n; i++) JTRY(jlist_push(ev->a, l, b->l->items[i]));
            *out = jv_list(l);
        } else
            return binop_err(ev, op, a, b, line);
        return M40LLM_OK;
    case '-':
        if (!num) return binop_err(ev, op, a, b, line);
        if (ints) {
            int64_t r;
            bool ovf = __builtin_sub_overflow(x, y, &r);
            return int_result(ev, ovf, r, line, out);
        }
        *out = jv_float(fx - fy);
        return M40LLM_OK;
    case '*':
        if (op[1] == '*') {
            if (!num) return binop_err(ev, op, a, b, line);
            if (ints && y >= 0) {
                return ipow(ev, x, y, line, out);
            } else {
                *out = jv_float(pow(fx, fy));
            }
            return M40LLM_OK;
        }
        if (ints) {
            int64_t r;
            bool ovf = __builtin_mul_overflow(x, y, &r);
            return int_result(ev, ovf, r, line, out);
        } else if (num)
            *out = jv_float(fx * fy);
        else if ((a->type == JV_STR || a->type == JV_LIST) &&
                 (b->type == JV_INT || b->type == JV_BOOL))
            return repeat(ev, a, b->type == JV_INT ? b->i : b->b, out);
        else if ((b->type == JV_STR || b->type == JV_LIST) &&
                 (a->type == JV_INT || a->type == JV_BOOL))
            return repeat(ev, b, a->type == JV_INT ? a->i : a->b, out);
        else
            return binop_err(ev, op, a, b, line);
        return M40LLM_OK;
    case '/':
        if (!num) return binop_err(ev, op, a, b, line);
        if (fy == 0)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              op[1] == '/' ? "integer division or modulo by zero"
                                           : "division by zero");
        if (op[1] == '/') {
            if (ints) {
                bool ovf = x == INT64_MIN && y == -1;
                return int_result(ev, ovf, ovf ? 0 : floordiv(x, y), line, out);
            }
            *out = jv_float(floor(fx / fy));
        } else {
            *out = jv_float(fx / fy);
        }
        return M40LLM_OK;
    case '%':
        if (a->type == JV_STR) return jstr_percent(ev, a, b, line, out);
        if (!num) return binop_err(ev, op, a, b, line);
        if (fy == 0)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "integer division or modulo by zero");
        if (ints) {
            *out = jv_int(y == -1 ? 0 : x - floordiv(x, y) * y);
        } else {
            double r = fmod(fx, fy);
            if (r != 0 && ((r < 0) != (fy < 0))) r += fy;
            *out = jv_float(r);
        }
        return M40LLM_OK;
    }
    return jeval_fail(ev, M40LLM_ERR_INTERNAL, line, "unknown operator %s", op);
}

static int order_cmp(jeval *ev, const jv *a, const jv *b, const char *op, int line, int *out) {
    if (jv_is_number(a) && jv_is_number(b)) {
        double x = jv_as_double(a), y = jv_as_double(b);
        if (a->type != JV_FLOAT && b->type != JV_FLOAT) {
            int64_t i = a->type == JV_INT ? a->i : a->b, k = b->type == JV_INT ? b->i : b->b;
            *out = i < k ? -1 : i > k;
        } else {
            *out = x < y ? -1 : x > y;
        }
        return M40LLM_OK;
    }
    if (a->type == JV_STR && b->type == JV_STR) {
        size_t m = a->s.n < b->s.n ? a->s.n : b->s.n;
        int c = memcmp(a->s.p, b->s.p, m);
        *out = c ? (c < 0 ? -1 : 1) : (a->s.n < b->s.n ? -1 : a->s.n > b->s.n);
        return M40LLM_OK;
    }
    if (a->type == JV_LIST && b->type == JV_LIST) {
        for (size_t i = 0; i < a->l->n && i < b->l->n; i++) {
            if (jv_equal(&a->l->items[i], &b->l->items[i])) continue;
            return order_cmp(ev, &a->l->items[i], &b->l->items[i], op, line, out);
        }
        *out = a->l->n < b->l->n ? -1 : a->l->n > b->l->n;
        return M40LLM_OK;
    }
    if (a->type == JV_UNDEF) return jeval_undef_error(ev, a, line);
    if (b->type == JV_UNDEF) return jeval_undef_error(ev, b, line);
    return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                      "'%s' not supported between instances of '%s' and '%s'", op, jv_type_name(a),
                      jv_type_name(b));
}

static int contains(jeval *ev, const jv *needle, const jv *hay, int line, bool *out) {
    switch (hay->type) {
    case JV_STR:
        if (needle->type != JV_STR)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "'in <string>' requires string as left operand, not %s",
                              jv_type_name(needle));
        *out = needle->s.n == 0 || memmem(hay->s.p, hay->s.n, needle->s.p, needle->s.n) != NULL;
        return M40LLM_OK;
    case JV_LIST:
        *out = false;
        for (size_t i = 0; i < hay->l->n && !*out; i++) *out = jv_equal(needle, &hay->l->items[i]);
        return M40LLM_OK;
    case JV_DICT:
        *out = jdict_getv(hay->d, needle) != NULL;
        return M40LLM_OK;
    case JV_UNDEF:
        *out = false;
        return M40LLM_OK;
    default:
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "argument of type '%s' is not iterable",
                          jv_type_name(hay));
    }
}

int jeval_compare(jeval *ev, jcmp_op op, const jv *a, const jv *b, int line, bool *out) {
    static const char *const names[] = {"==", "!=", "<", "<=", ">", ">="};
    int c = 0;
    switch (op) {
    case JOP_EQ:
        *out = jv_equal(a, b);
        return M40LLM_OK;
    case JOP_NE:
        *out = !jv_equal(a, b);
        return M40LLM_OK;
    case JOP_IN:
        return contains(ev, a, b, line, out);
    case JOP_NOTIN:
        JTRY(contains(ev, a, b, line, out));
        *out = !*out;
        return M40LLM_OK;
    default:
        break;
    }
    JTRY(order_cmp(ev, a, b, names[op], line, &c));
    *out = op == JOP_LT ? c < 0 : op == JOP_LE ? c <= 0 : op == JOP_GT ? c > 0 : c >= 0;
    return M40LLM_OK;
}

/* ---- expressions ---- */
static int eval(jeval *ev, jframe *f, const jexpr *e, jv *out);

static int eval_args(jeval *ev, jframe *f, const jexpr *e, jv **args) {
    *args = NULL;
    if (!e->n) return M40LLM_OK;
    *args = jarena_alloc(ev->a, e->n * sizeof(jv));
    if (!*args) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    for (size_t i = 0; i < e->n; i++) JTRY(eval(ev, f, e->items[i], &(*args)[i]));
    return M40LLM_OK;
}

static int exec_body(jeval *ev, jframe *f, const jbody *b, jbuf *out);

static int call_macro(jeval *ev, const jv *m, jv *args, size_t nargs, const char **kw, int line,
                      jv *out) {
    const jstmt *s = m->macro.stmt;
    if (ev->depth >= JEVAL_MAX_DEPTH)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "macro '%s' recursed too deeply", s->name);
    jframe *f = frame_new(ev, m->macro.scope);
    if (!f) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    if (ev->caller.type == JV_MACRO) { /* the body of the call block that called us */
        JTRY(frame_set(ev, f, "caller", ev->caller));
        ev->caller = jv_undef(NULL);
    }
    bool *set = jarena_alloc(ev->a, s->n_params + 1);
    if (!set) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    size_t pos = 0;
    for (size_t i = 0; i < nargs; i++) {
        size_t k = s->n_params;
        if (kw && kw[i]) {
            for (k = 0; k < s->n_params && strcmp(s->params[k], kw[i]); k++) {
            }
            if (k == s->n_params)
                return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                                  "macro '%s' takes no keyword argument '%s'", s->name, kw[i]);
        } else {
            k = pos++;
            if (k >= s->n_params)
                return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                                  "macro '%s' takes not more than %zu argument(s)", s->name,
                                  s->n_params);
        }
        JTRY(frame_set(ev, f, s->params[k], args[i]));
        set[k] = true;
    }
    for (size_t k = 0; k < s->n_params; k++) {
        if (set[k]) continue;
        jv v = jv_undef(jeval_hint(ev, "'%s' is undefined", s->params[k], ""));
        if (s->defaults[k]) JTRY(eval(ev, f, s->defaults[k], &v));
        JTRY(frame_set(ev, f, s->params[k], v));
    }
    jbuf b = {0};
    ev->depth++;
    int rc = exec_body(ev, f, &s->body, &b);
    ev->depth--;
    if (rc == M40LLM_OK && b.oom) rc = err_set(M40LLM_ERR_OOM, "template: out of memory");
    if (rc == M40LLM_OK) {
        char *p = jarena_strndup(ev->a, b.p ? b.p : "", b.n);
        if (!p)
            rc = err_set(M40LLM_ERR_OOM, "template: out of memory");
        else
            *out = jv_strn(p, b.n);
    } else if (rc > 0) {
        rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "break/continue outside a loop");
    }
    free(b.p);
    return rc;
}

int jeval_call(jeval *ev, const jv *callee, jv *args, size_t nargs, const char **kwnames, int line,
               jv *out) {
    if (callee->type == JV_FUNC)
        return callee->fn.fn(ev, callee->fn.self, args, nargs, kwnames, line, out);
    if (callee->type == JV_MACRO) return call_macro(ev, callee, args, nargs, kwnames, line, out);
    if (callee->type == JV_UNDEF) /* a function or method this engine does not provide */
        return jeval_fail(ev, M40LLM_ERR_UNSUPPORTED, line, "%s (cannot call it)",
                          callee->undef_hint ? callee->undef_hint : "value is undefined");
    return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "'%s' object is not callable",
                      jv_type_name(callee));
}

static int eval_node(jeval *ev, jframe *f, const jexpr *e, jv *out);
enum { JEVAL_MAX_EXPR_DEPTH = 2000 };

/* Chains such as a + b + c ... parse into trees as deep as they are long,
 * so evaluation depth is bounded here rather than by the parser. */
static int eval(jeval *ev, jframe *f, const jexpr *e, jv *out) {
    if (ev->edepth >= JEVAL_MAX_EXPR_DEPTH)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, e->line, "expression nested too deeply");
    ev->edepth++;
    int rc = eval_node(ev, f, e, out);
    ev->edepth--;
    return rc;
}

static int eval_node(jeval *ev, jframe *f, const jexpr *e, jv *out) {
    jv a, b;
    switch (e->kind) {
    case JE_CONST:
        *out = e->cval;
        return M40LLM_OK;
    case JE_NAME:
        *out = frame_lookup(ev, f, e->name);
        return M40LLM_OK;
    case JE_GETATTR:
        JTRY(eval(ev, f, e->a, &a));
        return jeval_getattr(ev, &a, e->name, e->line, out);
    case JE_GETITEM:
        JTRY(eval(ev, f, e->a, &a));
        JTRY(eval(ev, f, e->b, &b));
        return jeval_getitem(ev, &a, &b, e->line, out);
    case JE_SLICE: {
        jv lo = jv_none(), hi = jv_none(), st = jv_none();
        JTRY(eval(ev, f, e->a, &a));
        if (e->b) JTRY(eval(ev, f, e->b, &lo));
        if (e->c) JTRY(eval(ev, f, e->c, &hi));
        if (e->d) JTRY(eval(ev, f, e->d, &st));
        return jeval_slice(ev, &a, &lo, &hi, &st, e->line, out);
    }
    case JE_CALL: {
        jv *args;
        JTRY(eval(ev, f, e->a, &a));
        JTRY(eval_args(ev, f, e, &args));
        return jeval_call(ev, &a, args, e->n, e->kwnames, e->line, out);
    }
    case JE_FILTER: {
        jv *args;
        JTRY(eval(ev, f, e->a, &a));
        JTRY(eval_args(ev, f, e, &args));
        return e->filter->fn(ev, &a, args, e->n, e->kwnames, e->line, out);
    }
    case JE_TEST: {
        jv *args;
        bool r;
        JTRY(eval(ev, f, e->a, &a));
        JTRY(eval_args(ev, f, e, &args));
        JTRY(e->test->fn(ev, &a, args, e->n, e->line, &r));
        *out = jv_bool(r != e->negated);
        return M40LLM_OK;
    }
    case JE_NOT:
        JTRY(eval(ev, f, e->a, &a));
        *out = jv_bool(!jv_truthy(&a));
        return M40LLM_OK;
    case JE_NEG:
    case JE_POS:
        JTRY(eval(ev, f, e->a, &a));
        if (a.type == JV_UNDEF) return jeval_undef_error(ev, &a, e->line);
        if (!jv_is_number(&a))
            return jeval_fail(ev, M40LLM_ERR_FORMAT, e->line, "bad operand type for unary %c: '%s'",
                              e->kind == JE_NEG ? '-' : '+', jv_type_name(&a));
        if (a.type == JV_FLOAT)
            *out = jv_float(e->kind == JE_NEG ? -a.f : a.f);
        else {
            int64_t i = a.type == JV_INT ? a.i : a.b;
            if (e->kind == JE_NEG)
                return int_result(ev, i == INT64_MIN, i == INT64_MIN ? 0 : -i, e->line, out);
            *out = jv_int(i);
        }
        return M40LLM_OK;
    case JE_BINOP:
        JTRY(eval(ev, f, e->a, &a));
        JTRY(eval(ev, f, e->b, &b));
        return binop(ev, e->name, &a, &b, e->line, out);
    case JE_AND:
    case JE_OR:
        JTRY(eval(ev, f, e->a, &a));
        if (jv_truthy(&a) == (e->kind == JE_OR)) {
            *out = a;
            return M40LLM_OK;
        }
        return eval(ev, f, e->b, out);
    case JE_COMPARE: {
        JTRY(eval(ev, f, e->a, &a));
        for (size_t i = 0; i < e->n; i++) {
            bool r;
            JTRY(eval(ev, f, e->items[i], &b));
            JTRY(jeval_compare(ev, e->ops[i], &a, &b, e->line, &r));
            if (!r) {
                *out = jv_bool(false);
                return M40LLM_OK;
            }
            a = b;
        }
        *out = jv_bool(true);
        return M40LLM_OK;
    }
    case JE_COND:
        JTRY(eval(ev, f, e->a, &a));
        if (jv_truthy(&a)) return eval(ev, f, e->b, out);
        if (e->c) return eval(ev, f, e->c, out);
        *out = jv_undef("the inline if-expression evaluated to false and no else section was "
                        "defined");
        return M40LLM_OK;
    case JE_LIST:
    case JE_TUPLE: {
        jlist *l = jlist_new(ev->a, e->n);
        if (!l) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        l->is_tuple = e->kind == JE_TUPLE;
        for (size_t i = 0; i < e->n; i++) {
            JTRY(eval(ev, f, e->items[i], &a));
            JTRY(jlist_push(ev->a, l, a));
        }
        *out = jv_list(l);
        return M40LLM_OK;
    }
    case JE_DICT: {
        jdict *d = jdict_new(ev->a, JD_PLAIN);
        if (!d) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        for (size_t i = 0; i + 1 < e->n; i += 2) {
            JTRY(eval(ev, f, e->items[i], &a));
            JTRY(eval(ev, f, e->items[i + 1], &b));
            JTRY(jdict_set(ev->a, d, a, b));
        }
        *out = jv_dict(d);
        return M40LLM_OK;
    }
    }
    return jeval_fail(ev, M40LLM_ERR_INTERNAL, e->line, "unknown expression node");
}

/* ---- statements ---- */
static int assign(jeval *ev, jframe *f, const jexpr *target, jv v, int line) {
    if (target->kind == JE_NAME) return frame_set(ev, f, target->name, v);
    if (target->kind == JE_GETATTR) {
        jv ns = frame_lookup(ev, f, target->a->name);
        if (ns.type != JV_DICT || ns.d->kind != JD_NAMESPACE)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                              "cannot assign attribute on non-namespace object");
        return jdict_set(ev->a, ns.d, jv_strn(target->name, strlen(target->name)), v);
    }
    /* tuple unpacking */
    jlist *l;
    if (v.type != JV_LIST && v.type != JV_STR)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "cannot unpack non-iterable %s object",
                          jv_type_name(&v));
    JTRY(jeval_to_list(ev, &v, line, &l));
    if (l->n != target->n)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line,
                          "cannot unpack %zu values into %zu variables", l->n, target->n);
    for (size_t i = 0; i < l->n; i++) JTRY(assign(ev, f, target->items[i], l->items[i], line));
    return M40LLM_OK;
}

/* `loop` keys; their values are rewritten in place on every iteration */
static const char *const loop_keys[] = {"index",  "index0",   "revindex", "revindex0",
                                        "first",  "last",     "length",   "depth",
                                        "depth0", "previtem", "nextitem"};
enum { LOOP_NKEYS = sizeof loop_keys / sizeof loop_keys[0] };

static int exec_for(jeval *ev, jframe *f, const jstmt *s, jbuf *out) {
    jv it;
    jlist *src, *items;
    JTRY(eval(ev, f, s->expr, &it));
    JTRY(jeval_to_list(ev, &it, s->line, &src));
    /* one scope reused by every iteration (emptied each time), so a long loop
     * does not grow the arena; sets inside the body still end with it */
    jframe *it_f = frame_new(ev, f);
    if (!it_f) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    items = src;
    if (s->cond) {
        items = jlist_new(ev->a, src->n);
        if (!items) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        for (size_t i = 0; i < src->n; i++) {
            jv c;
            it_f->n = 0;
            JTRY(assign(ev, it_f, s->target, src->items[i], s->line));
            JTRY(eval(ev, it_f, s->cond, &c));
            if (jv_truthy(&c)) JTRY(jlist_push(ev->a, items, src->items[i]));
        }
    }
    size_t n = items->n;
    jdict *loop = jdict_new(ev->a, JD_LOOP);
    if (!loop) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    for (size_t k = 0; k < LOOP_NKEYS; k++)
        JTRY(jdict_set(ev->a, loop, jv_strn(loop_keys[k], strlen(loop_keys[k])), jv_none()));
    for (size_t i = 0; i < n; i++) {
        if (++ev->steps > ev->max_steps)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, s->line,
                              "more than %llu loop iterations; stopping the render",
                              (unsigned long long)ev->max_steps);
        jv *lv = loop->vals;
        lv[0] = jv_int((int64_t)i + 1);
        lv[1] = jv_int((int64_t)i);
        lv[2] = jv_int((int64_t)(n - i));
        lv[3] = jv_int((int64_t)(n - i - 1));
        lv[4] = jv_bool(i == 0);
        lv[5] = jv_bool(i + 1 == n);
        lv[6] = jv_int((int64_t)n);
        lv[7] = jv_int(1);
        lv[8] = jv_int(0);
        lv[9] = i > 0 ? items->items[i - 1] : jv_undef("there is no previous item");
        lv[10] = i + 1 < n ? items->items[i + 1] : jv_undef("there is no next item");
        it_f->n = 0;
        JTRY(frame_set(ev, it_f, "loop", jv_dict(loop)));
        JTRY(assign(ev, it_f, s->target, items->items[i], s->line));
        int rc = exec_body(ev, it_f, &s->body, out);
        if (rc == JX_BREAK) break;
        if (rc != M40LLM_OK && rc != JX_CONTINUE) return rc;
    }
    if (n == 0) return exec_body(ev, f, &s->else_body, out);
    return M40LLM_OK;
}

static int exec_stmt(jeval *ev, jframe *f, const jstmt *s, jbuf *out) {
    jv v;
    switch (s->kind) {
    case JS_TEXT:
        jbuf_put(out, s->text, s->len);
        return M40LLM_OK;
    case JS_OUTPUT:
        JTRY(eval(ev, f, s->expr, &v));
        jv_to_str(out, &v);
        return M40LLM_OK;
    case JS_IF:
        JTRY(eval(ev, f, s->expr, &v));
        return exec_body(ev, f, jv_truthy(&v) ? &s->body : &s->else_body, out);
    case JS_FOR:
        return exec_for(ev, f, s, out);
    case JS_SET:
        JTRY(eval(ev, f, s->expr, &v));
        return assign(ev, f, s->target, v, s->line);
    case JS_SET_BLOCK:
    case JS_FILTER_BLOCK: {
        jbuf b = {0};
        int rc = exec_body(ev, f, &s->body, &b);
        char *p = rc == M40LLM_OK ? jarena_strndup(ev->a, b.p ? b.p : "", b.n) : NULL;
        size_t n = b.n;
        free(b.p);
        if (rc != M40LLM_OK) return rc;
        if (!p) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        v = jv_strn(p, n);
        if (s->expr) { /* the block's filters, applied to its text */
            jframe *bf = frame_new(ev, f);
            if (!bf) return err_set(M40LLM_ERR_OOM, "template: out of memory");
            JTRY(frame_set(ev, bf, JINJA_BLOCK_VAR, v));
            JTRY(eval(ev, bf, s->expr, &v));
        }
        if (s->kind == JS_FILTER_BLOCK) {
            jv_to_str(out, &v);
            return M40LLM_OK;
        }
        return frame_set(ev, f, s->target->name, v);
    }
    case JS_CALL_BLOCK: {
        jv callee, *args, caller = {.type = JV_MACRO};
        caller.macro.stmt = s;
        caller.macro.scope = f;
        JTRY(eval(ev, f, s->expr->a, &callee));
        JTRY(eval_args(ev, f, s->expr, &args));
        if (callee.type != JV_MACRO)
            return jeval_fail(ev, M40LLM_ERR_FORMAT, s->line, "a call block needs a macro, not %s",
                              jv_type_name(&callee));
        ev->caller = caller;
        int rc = jeval_call(ev, &callee, args, s->expr->n, s->expr->kwnames, s->line, &v);
        ev->caller = jv_undef(NULL);
        JTRY(rc);
        jv_to_str(out, &v);
        return M40LLM_OK;
    }
    case JS_MACRO:
        v = (jv){.type = JV_MACRO};
        v.macro.stmt = s;
        v.macro.scope = f;
        return frame_set(ev, f, s->name, v);
    case JS_WITH: {
        jframe *w = frame_new(ev, f);
        if (!w) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        for (size_t i = 0; i < s->n_params; i++) {
            JTRY(eval(ev, f, s->defaults[i], &v));
            JTRY(assign(ev, w, s->with_targets[i], v, s->line));
        }
        return exec_body(ev, w, &s->body, out);
    }
    case JS_BREAK:
        return JX_BREAK;
    case JS_CONTINUE:
        return JX_CONTINUE;
    }
    return jeval_fail(ev, M40LLM_ERR_INTERNAL, s->line, "unknown statement");
}

static int exec_body(jeval *ev, jframe *f, const jbody *b, jbuf *out) {
    for (size_t i = 0; i < b->n; i++) {
        int rc = exec_stmt(ev, f, b->items[i], out);
        if (rc != M40LLM_OK) return rc;
        if (out->oom) return err_set(M40LLM_ERR_OOM, "template: out of memory");
        if (out->n > JEVAL_MAX_OUTPUT)
            return err_set(M40LLM_ERR_FORMAT, "template: output larger than %u MiB",
                           JEVAL_MAX_OUTPUT >> 20);
    }
    return M40LLM_OK;
}

int jinja_render(const jinja_template *t, const cJSON *vars, const jinja_render_opts *opts,
                 char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return err_set(M40LLM_ERR_INVALID_ARG, "template: no template");
    if (vars && !cJSON_IsObject(vars))
        return err_set(M40LLM_ERR_INVALID_ARG, "template: variables must be a JSON object");
    jarena arena = {0};
    jeval ev = {.a = &arena, .now = opts ? opts->now : 0};
    ev.max_steps =
        opts && opts->max_loop_iterations ? opts->max_loop_iterations : JEVAL_DEFAULT_STEPS;
    jbuf b = {0};
    int rc = M40LLM_OK;
    jframe *root = frame_new(&ev, NULL);
    if (!root) rc = err_set(M40LLM_ERR_OOM, "template: out of memory");
    const cJSON *it;
    if (vars) cJSON_ArrayForEach(it, vars) {
            jv v;
            if (rc != M40LLM_OK) break;
            rc = jv_from_json(&arena, it, &v);
            const char *name =
                it->string ? jarena_strndup(&arena, it->string, strlen(it->string)) : NULL;
            if (rc == M40LLM_OK && name) rc = frame_set(&ev, root, name, v);
        }
    if (rc == M40LLM_OK) rc = exec_body(&ev, root, &t->root, &b);
    if (rc > 0) rc = err_set(M40LLM_ERR_FORMAT, "template: break/continue outside a loop");
    if (rc == M40LLM_OK && !b.p) {
        b.p = calloc(1, 1);
        if (!b.p) rc = err_set(M40LLM_ERR_OOM, "template: out of memory");
    }
    jarena_free(&arena);
    if (rc != M40LLM_OK) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return M40LLM_OK;
}
