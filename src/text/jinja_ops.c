/* Binary operators and comparisons with Python semantics. Sizes are
 * overflow-checked and every result counts against the render budget. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

#define OOM() err_set(M40LLM_ERR_OOM, "template: out of memory")

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

int jeval_int_result(jeval *ev, bool overflow, int64_t r, int line, jv *out) {
    /* Python ints are unbounded; ours are 64-bit, so overflow is an error */
    if (overflow)
        return jeval_fail(ev, M40LLM_ERR_FORMAT, line, "integer overflow (beyond 64 bits)");
    *out = jv_int(r);
    return M40LLM_OK;
}

static int ipow(jeval *ev, int64_t x, int64_t y, int line, jv *out) {
    if (x == 0 || x == 1) return jeval_int_result(ev, false, y == 0 ? 1 : x, line, out);
    if (x == -1) return jeval_int_result(ev, false, y % 2 ? -1 : 1, line, out);
    int64_t r = 1; /* |x| >= 2 overflows within 64 multiplications */
    for (int64_t i = 0; i < y; i++)
        if (__builtin_mul_overflow(r, x, &r)) return jeval_int_result(ev, true, 0, line, out);
    return jeval_int_result(ev, false, r, line, out);
}

/* A size the memory budget cannot hold (or that does not fit size_t). */
static int too_big(jeval *ev) {
    jbudget_fail(&ev->bud, JB_MEMORY);
    return jeval_check(ev);
}

/* a + b on strings: each byte keeps its mark */
static int concat(jeval *ev, const jv *a, const jv *b, jv *out) {
    if (a->s.n == 0 || b->s.n == 0) {
        *out = a->s.n ? *a : *b;
        return M40LLM_OK;
    }
    size_t n;
    if (!jsize_add(a->s.n, b->s.n, &n) || n == SIZE_MAX) return too_big(ev);
    char *p = jarena_alloc(ev->a, n + 1);
    if (!p) return OOM();
    memcpy(p, a->s.p, a->s.n);
    memcpy(p + a->s.n, b->s.p, b->s.n);
    *out = jv_strn(p, n);
    bool ta = jv_tainted(a), tb = jv_tainted(b);
    if (!ta && !tb) return M40LLM_OK;
    uint8_t *m = jarena_alloc(ev->a, n); /* zeroed: trusted */
    if (!m) return OOM();
    if (ta) memcpy(m, a->s.t, a->s.n);
    if (tb) memcpy(m + a->s.n, b->s.t, b->s.n);
    out->s.t = m;
    return M40LLM_OK;
}

/* seq * k: sizes checked before anything is built (k * len may not fit) */
static int repeat(jeval *ev, const jv *seq, int64_t k, jv *out) {
    bool str = seq->type == JV_STR;
    size_t len = str ? seq->s.n : seq->l->n, total;
    if (k <= 0 || len == 0) { /* empty at once, however large k is */
        if (str) {
            *out = jv_strn("", 0);
            return M40LLM_OK;
        }
        jlist *l = jlist_new(ev->a, 0);
        if (!l) return OOM();
        *out = jv_list(l);
        return M40LLM_OK;
    }
    if ((uint64_t)k > SIZE_MAX || !jsize_mul(len, (size_t)k, &total) || total == SIZE_MAX)
        return too_big(ev);
    if (str) {
        char *p = jarena_alloc(ev->a, total + 1);
        if (!p) return OOM();
        JTRY(jeval_charge(ev, total / JB_BYTES_PER_STEP));
        /* copy by doubling: log2(k) memcpy calls */
        memcpy(p, seq->s.p, len);
        for (size_t have = len; have < total; have *= 2)
            memcpy(p + have, p, have < total - have ? have : total - have);
        *out = jv_strn(p, total);
        if (jv_tainted(seq)) {
            uint8_t *m = jarena_alloc(ev->a, total);
            if (!m) return OOM();
            memcpy(m, seq->s.t, len);
            for (size_t have = len; have < total; have *= 2)
                memcpy(m + have, m, have < total - have ? have : total - have);
            out->s.t = m;
        }
        return M40LLM_OK;
    }
    jlist *l = jlist_new(ev->a, total);
    if (!l) return OOM();
    JTRY(jeval_charge(ev, total));
    for (int64_t i = 0; i < k; i++)
        memcpy(l->items + (size_t)i * len, seq->l->items, len * sizeof(jv));
    l->n = total;
    *out = jv_list(l);
    return M40LLM_OK;
}

static int list_concat(jeval *ev, const jv *a, const jv *b, jv *out) {
    size_t n;
    if (!jsize_add(a->l->n, b->l->n, &n)) return too_big(ev);
    jlist *l = jlist_new(ev->a, n);
    if (!l) return OOM();
    JTRY(jeval_charge(ev, n));
    if (a->l->n) memcpy(l->items, a->l->items, a->l->n * sizeof(jv));
    if (b->l->n) memcpy(l->items + a->l->n, b->l->items, b->l->n * sizeof(jv));
    l->n = n;
    *out = jv_list(l);
    return M40LLM_OK;
}

int jeval_binop(jeval *ev, const char *op, const jv *a, const jv *b, int line, jv *out) {
    if (op[0] == '~') {
        jbuf s = JBUF(ev);
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
            return jeval_int_result(ev, ovf, r, line, out);
        } else if (num) {
            *out = jv_float(fx + fy);
        } else if (a->type == JV_STR && b->type == JV_STR) {
            return concat(ev, a, b, out);
        } else if (a->type == JV_LIST && b->type == JV_LIST) {
            return list_concat(ev, a, b, out);
        } else {
            return binop_err(ev, op, a, b, line);
        }
        return M40LLM_OK;
    case '-':
        if (!num) return binop_err(ev, op, a, b, line);
        if (ints) {
            int64_t r;
            bool ovf = __builtin_sub_overflow(x, y, &r);
            return jeval_int_result(ev, ovf, r, line, out);
        }
        *out = jv_float(fx - fy);
        return M40LLM_OK;
    case '*':
        if (op[1] == '*') {
            if (!num) return binop_err(ev, op, a, b, line);
            if (ints && y >= 0) return ipow(ev, x, y, line, out);
            *out = jv_float(pow(fx, fy));
            return M40LLM_OK;
        }
        if (ints) {
            int64_t r;
            bool ovf = __builtin_mul_overflow(x, y, &r);
            return jeval_int_result(ev, ovf, r, line, out);
        } else if (num) {
            *out = jv_float(fx * fy);
        } else if ((a->type == JV_STR || a->type == JV_LIST) &&
                   (b->type == JV_INT || b->type == JV_BOOL)) {
            return repeat(ev, a, b->type == JV_INT ? b->i : b->b, out);
        } else if ((b->type == JV_STR || b->type == JV_LIST) &&
                   (a->type == JV_INT || a->type == JV_BOOL)) {
            return repeat(ev, b, a->type == JV_INT ? a->i : a->b, out);
        } else {
            return binop_err(ev, op, a, b, line);
        }
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
                return jeval_int_result(ev, ovf, ovf ? 0 : floordiv(x, y), line, out);
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
    JTRY(jeval_charge(ev, 1));
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
        JTRY(jeval_charge(ev, m / JB_BYTES_PER_STEP));
        int c = memcmp(a->s.p, b->s.p, m);
        *out = c ? (c < 0 ? -1 : 1) : (a->s.n < b->s.n ? -1 : a->s.n > b->s.n);
        return M40LLM_OK;
    }
    if (a->type == JV_LIST && b->type == JV_LIST) {
        for (size_t i = 0; i < a->l->n && i < b->l->n; i++) {
            bool eq = jv_equal(&a->l->items[i], &b->l->items[i], &ev->bud);
            JTRY(jeval_check(ev));
            if (eq) continue;
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
        JTRY(jeval_charge(ev, (hay->s.n + needle->s.n) / JB_BYTES_PER_STEP));
        *out = needle->s.n == 0 || jmemmem(hay->s.p, hay->s.n, needle->s.p, needle->s.n) != NULL;
        return M40LLM_OK;
    case JV_LIST:
        *out = false;
        for (size_t i = 0; i < hay->l->n && !*out; i++) {
            *out = jv_equal(needle, &hay->l->items[i], &ev->bud);
            JTRY(jeval_check(ev));
        }
        return M40LLM_OK;
    case JV_DICT:
        *out = jdict_getv(hay->d, needle, &ev->bud) != NULL;
        return jeval_check(ev);
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
    case JOP_NE:
        *out = jv_equal(a, b, &ev->bud) == (op == JOP_EQ);
        return jeval_check(ev);
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
