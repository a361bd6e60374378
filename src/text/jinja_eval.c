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
    JTRY(jeval_charge(ev, f->n + 1));
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], name)) {
            f->vals[i] = v;
            return M40LLM_OK;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8; /* names are the template's: few */
        const char **nn = jarena_array(ev->a, cap, sizeof *nn);
        jv *nv = jarena_array(ev->a, cap, sizeof *nv);
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
    for (; f; f = f->parent) {
        jbudget_charge(&ev->bud, f->n + 1); /* eval() reports an excess */
        for (size_t i = f->n; i-- > 0;)
            if (!strcmp(f->names[i], name)) return f->vals[i];
    }
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

int jeval_check(const jeval *ev) {
    return ev->bud.exceeded ? jbudget_error(&ev->bud) : M40LLM_OK;
}

int jeval_charge(jeval *ev, uint64_t steps) {
    return jbudget_charge(&ev->bud, steps) ? M40LLM_OK : jbudget_error(&ev->bud);
}

int jeval_undef_error(jeval *ev, const jv *v, int line) {
    return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "%s",
                      v->undef_hint ? v->undef_hint : "value is undefined");
}

/* ---- expressions ---- */
static int eval(jeval *ev, jframe *f, const jexpr *e, jv *out);

static int eval_args(jeval *ev, jframe *f, const jexpr *e, jv **args) {
    *args = NULL;
    if (!e->n) return M40LLM_OK;
    *args = jarena_array(ev->a, e->n, sizeof(jv));
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
    /* matching arguments to parameters is nargs * n_params name comparisons */
    JTRY(jeval_charge(ev, 1 + (uint64_t)nargs * (s->n_params + 1)));
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
    jbuf b = JBUF(ev);
    ev->depth++;
    int rc = exec_body(ev, f, &s->body, &b);
    ev->depth--;
    if (rc == M40LLM_OK) return jv_from_buf(ev, &b, out);
    if (rc > 0) rc = jeval_fail(ev, M40LLM_ERR_FORMAT, line, "break/continue outside a loop");
    jbuf_free(&b);
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
    ev->bud.line = e->line;
    JTRY(jeval_charge(ev, 1));
    ev->edepth++;
    int rc = eval_node(ev, f, e, out);
    ev->edepth--;
    /* a budget exceeded anywhere below (maybe reported as out of memory, or
     * not at all by a helper that just stopped) is the error */
    return ev->bud.exceeded ? jbudget_error(&ev->bud) : rc;
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
                return jeval_int_result(ev, i == INT64_MIN, i == INT64_MIN ? 0 : -i, e->line, out);
            *out = jv_int(i);
        }
        return M40LLM_OK;
    case JE_BINOP:
        JTRY(eval(ev, f, e->a, &a));
        JTRY(eval(ev, f, e->b, &b));
        return jeval_binop(ev, e->name, &a, &b, e->line, out);
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
        ev->bud.line = s->line;
        JTRY(jeval_charge(ev, 1));
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
        jbuf b = JBUF(ev);
        int rc = exec_body(ev, f, &s->body, &b);
        if (rc != M40LLM_OK) {
            jbuf_free(&b);
            return rc;
        }
        JTRY(jv_from_buf(ev, &b, &v));
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
        ev->bud.line = b->items[i]->line;
        JTRY(jeval_charge(ev, 1));
        int rc = exec_stmt(ev, f, b->items[i], out);
        if (ev->bud.exceeded) return jbudget_error(&ev->bud);
        if (rc != M40LLM_OK) return rc;
        if (out->oom) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    }
    return M40LLM_OK;
}

/* Whether name is in the NULL-terminated list. */
static bool listed(const char *const *names, const char *name) {
    for (; names && *names; names++)
        if (!strcmp(*names, name)) return true;
    return false;
}

/* The render's variables in the root scope, untrusted ones marked. */
static int bind_vars(jeval *ev, jframe *root, const cJSON *vars, const jinja_render_opts *opts) {
    const cJSON *it;
    if (vars) cJSON_ArrayForEach(it, vars) {
            jv v;
            bool untrusted = it->string && opts && listed(opts->untrusted_vars, it->string);
            JTRY(jv_from_json(ev, it, untrusted, &v));
            const char *name =
                it->string ? jarena_strndup(ev->a, it->string, strlen(it->string)) : NULL;
            if (!name) return err_set(M40LLM_ERR_OOM, "template: out of memory");
            JTRY(frame_set(ev, root, name, v));
        }
    return M40LLM_OK;
}

static int render(jeval *ev, const jinja_template *t, const cJSON *vars,
                  const jinja_render_opts *opts, jbuf *b) {
    jframe *root = frame_new(ev, NULL);
    if (!root) return err_set(M40LLM_ERR_OOM, "template: out of memory");
    int brc = bind_vars(ev, root, vars, opts);
    if (brc != M40LLM_OK && ev->bud.exceeded == JB_MEMORY)
        return err_set(M40LLM_ERR_FORMAT,
                       "template: memory budget exceeded: the variables need more than %zu "
                       "bytes (%.1f MiB, jinja_render_opts.max_memory); not rendering",
                       ev->bud.mem_max, (double)ev->bud.mem_max / (1 << 20));
    if (brc != M40LLM_OK) return ev->bud.exceeded ? jbudget_error(&ev->bud) : brc;
    /* the default budgets grow with the variables, so a long conversation
     * has room, up to a ceiling that keeps any render well under a second;
     * a template's own growth is what they bound */
    size_t in = ev->input, extra;
    if (!(opts && opts->max_memory)) {
        if (!(jsize_mul(in, 16, &extra) && jsize_add(extra, JINJA_DEFAULT_MEMORY, &extra)))
            extra = SIZE_MAX;
        ev->bud.mem_max = extra < JINJA_DEFAULT_MEMORY_CAP ? extra : JINJA_DEFAULT_MEMORY_CAP;
    }
    if (!(opts && opts->max_steps)) {
        ev->bud.max_steps = in < (JINJA_DEFAULT_STEPS_CAP - JINJA_DEFAULT_STEPS) / 4
                                ? JINJA_DEFAULT_STEPS + 4 * (uint64_t)in
                                : JINJA_DEFAULT_STEPS_CAP;
    }
    int rc = exec_body(ev, root, &t->root, b);
    if (rc > 0) rc = err_set(M40LLM_ERR_FORMAT, "template: break/continue outside a loop");
    if (rc == M40LLM_OK && b->oom) rc = err_set(M40LLM_ERR_OOM, "template: out of memory");
    if (ev->bud.exceeded) rc = jbudget_error(&ev->bud);
    return rc;
}

int jinja_render_ex(const jinja_template *t, const cJSON *vars, const jinja_render_opts *opts,
                    char **out, size_t *out_len, uint8_t **out_untrusted) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (out_untrusted) *out_untrusted = NULL;
    if (!t) return err_set(M40LLM_ERR_INVALID_ARG, "template: no template");
    if (vars && !cJSON_IsObject(vars))
        return err_set(M40LLM_ERR_INVALID_ARG, "template: variables must be a JSON object");
    jarena arena = {0};
    jeval ev = {.a = &arena, .now = opts ? opts->now : 0};
    arena.bud = &ev.bud;
    /* while the variables are converted, an explicit budget or the ceiling
     * of the default one applies (a huge messages array fails cleanly) */
    ev.bud.mem_max = opts && opts->max_memory ? opts->max_memory : JINJA_DEFAULT_MEMORY_CAP;
    ev.bud.max_steps = opts && opts->max_steps ? opts->max_steps : JINJA_DEFAULT_STEPS_CAP;
    jbuf b = JBUF(&ev);
    int rc = render(&ev, t, vars, opts, &b);
    if (opts && opts->stats)
        *opts->stats = (jinja_render_stats){.memory_peak = ev.bud.mem_peak,
                                            .max_memory = ev.bud.mem_max,
                                            .steps = ev.bud.steps,
                                            .max_steps = ev.bud.max_steps};
    if (rc == M40LLM_OK && !b.p) {
        b.p = calloc(1, 1);
        if (!b.p) rc = err_set(M40LLM_ERR_OOM, "template: out of memory");
    }
    jarena_free(&arena);
    if (rc != M40LLM_OK) {
        jbuf_free(&b);
        return rc;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    if (out_untrusted && jbuf_tainted(&b, 0))
        *out_untrusted = b.m;
    else
        free(b.m);
    return M40LLM_OK;
}

int jinja_render(const jinja_template *t, const cJSON *vars, const jinja_render_opts *opts,
                 char **out, size_t *out_len) {
    return jinja_render_ex(t, vars, opts, out, out_len, NULL);
}
