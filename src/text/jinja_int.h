/* Internals of the template engine shared by jinja_*.c: arena, values,
 * tokens, syntax tree, and the evaluator's entry points for filters. */
#ifndef M40_JINJA_INT_H
#define M40_JINJA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "jinja.h"

/* ---- budget: what one render may build and do ----
 * Every value a render builds (arena blocks, live buffers, taint masks) counts
 * against mem_max, and every unit of evaluator work (a node, a statement, a
 * loop iteration, a container item visited, JB_BYTES_PER_STEP bytes scanned)
 * against max_steps, so any template ends quickly. Exceeding either sets the
 * sticky `exceeded`; the evaluator then fails with jbudget_error(). */
typedef enum { JB_OK = 0, JB_MEMORY, JB_STEPS } jbudget_kind;
typedef struct jbudget {
    size_t mem_used, mem_max;  /* bytes held now / allowed */
    size_t mem_peak;           /* most bytes held at once */
    uint64_t steps, max_steps; /* work done / allowed */
    jbudget_kind exceeded;     /* first budget exceeded, JB_OK while none */
    int line;                  /* template line being evaluated */
    int fail_line;             /* line where `exceeded` was set */
} jbudget;

enum { JB_BYTES_PER_STEP = 16 };

/* All accept b == NULL (no limit: parse-time allocations). They return false
 * when the budget is (or already was) exceeded. */
bool jbudget_mem(jbudget *b, size_t n); /* reserve n more bytes */
void jbudget_release(jbudget *b, size_t n);
bool jbudget_charge(jbudget *b, uint64_t steps);
static inline bool jbudget_scan(jbudget *b, size_t bytes) {
    return jbudget_charge(b, bytes / JB_BYTES_PER_STEP + 1);
}
/* Marks `kind` exceeded (first one wins). */
void jbudget_fail(jbudget *b, jbudget_kind kind);
/* The message for b->exceeded ("template line N: memory budget of ... exceeded");
 * returns M40LLM_ERR_FORMAT. */
int jbudget_error(const jbudget *b);

/* Overflow-checked size arithmetic: false when the result does not fit. */
static inline bool jsize_add(size_t a, size_t b, size_t *r) {
    return !__builtin_add_overflow(a, b, r);
}
static inline bool jsize_mul(size_t a, size_t b, size_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}

/* ---- arena: everything of one parse or one render is freed at once ---- */
typedef struct jarena_block jarena_block;
typedef struct jarena {
    jarena_block *head; /* newest block first */
    jbudget *bud;       /* render arenas: blocks count against it; NULL = unbounded */
} jarena;

void *jarena_alloc(jarena *a, size_t n);                  /* zeroed; NULL on OOM or budget */
void *jarena_array(jarena *a, size_t n, size_t size);     /* n * size bytes, overflow-checked */
char *jarena_strndup(jarena *a, const char *s, size_t n); /* NUL-terminated copy */
void jarena_free(jarena *a);

/* ---- growable byte buffer (malloc), with a per-byte taint mask ---- */
typedef struct jbuf {
    char *p;    /* [cap] bytes; p[n] is NUL */
    uint8_t *m; /* [cap] 1 = byte from an untrusted string; NULL until the first such byte */
    size_t n, cap;
    bool oom;     /* an allocation or the budget failed: the contents are incomplete */
    jbudget *bud; /* growth counts against it; NULL = unbounded */
} jbuf;
#define JBUF(ev) ((jbuf){.bud = &(ev)->bud})
void jbuf_put(jbuf *b, const char *s, size_t n); /* trusted bytes */
/* bytes with their taint m[n] (NULL = trusted) */
void jbuf_put_m(jbuf *b, const char *s, size_t n, const uint8_t *m);
void jbuf_puts(jbuf *b, const char *s);
void jbuf_putc(jbuf *b, char c);
void jbuf_printf(jbuf *b, const char *fmt, ...) ERR_PRINTF(2, 3);
/* n writable bytes appended at the end (trusted), or NULL (oom set). */
char *jbuf_extend(jbuf *b, size_t n);
/* Marks bytes [from, n) untrusted. */
void jbuf_taint(jbuf *b, size_t from);
/* Whether any of bytes [from, n) is untrusted. */
bool jbuf_tainted(const jbuf *b, size_t from);
void jbuf_free(jbuf *b); /* frees and returns its bytes to the budget */

/* ---- values ---- */
typedef enum jv_type {
    JV_UNDEF,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* also tuples (is_tuple) */
    JV_DICT, /* also namespace() objects and `loop` */
    JV_FUNC, /* a global function or a bound method */
    JV_MACRO,
} jv_type;

struct jlist;
struct jdict;
struct jstmt;
struct jeval;
typedef struct jv jv;
typedef int (*jfunc_fn)(struct jeval *ev, const jv *self, jv *args, size_t nargs,
                        const char **kwnames, int line, jv *out);

struct jv {
    jv_type type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p; /* [n] bytes, not NUL-terminated */
            size_t n;
            const uint8_t *t; /* [n] 1 = byte from an untrusted string; NULL = all trusted */
        } s;
        struct jlist *l;
        struct jdict *d;
        struct {
            jfunc_fn fn;
            const char *name;
            const jv *self; /* bound receiver (methods), else NULL */
        } fn;
        struct {
            const struct jstmt *stmt; /* the {% macro %} statement */
            void *scope;              /* frame it was defined in (closure) */
        } macro;
    };
    /* JV_UNDEF: what was looked up, for the error when it is used:
     * "'x' is undefined" or "'dict object' has no attribute 'x'". */
    const char *undef_hint;
};

typedef struct jlist {
    jv *items; /* [n] */
    size_t n, cap;
    bool is_tuple;
} jlist;

typedef enum { JD_PLAIN, JD_NAMESPACE, JD_LOOP } jdict_kind;
typedef struct jdict {
    jv *keys, *vals; /* [n] each, insertion order */
    size_t n, cap;
    jdict_kind kind;
} jdict;

static inline jv jv_undef(const char *hint) {
    jv v = {.type = JV_UNDEF};
    v.undef_hint = hint;
    return v;
}
static inline jv jv_none(void) {
    return (jv){.type = JV_NONE};
}
static inline jv jv_bool(bool b) {
    return (jv){.type = JV_BOOL, .b = b};
}
static inline jv jv_int(int64_t i) {
    return (jv){.type = JV_INT, .i = i};
}
static inline jv jv_float(double f) {
    return (jv){.type = JV_FLOAT, .f = f};
}
static inline jv jv_strn(const char *p, size_t n) { /* trusted */
    jv v = {.type = JV_STR};
    v.s.p = p;
    v.s.n = n;
    return v;
}
static inline jv jv_strt(const char *p, size_t n, const uint8_t *t) {
    jv v = jv_strn(p, n);
    v.s.t = t;
    return v;
}
/* s[off, off + n) with the same bytes' taint */
static inline jv jv_sub(const jv *s, size_t off, size_t n) {
    return jv_strt(s->s.p + off, n, s->s.t ? s->s.t + off : NULL);
}
/* whether any byte of the string v is untrusted */
bool jv_tainted(const jv *v);

jlist *jlist_new(jarena *a, size_t cap);
int jlist_push(jarena *a, jlist *l, jv v);
jdict *jdict_new(jarena *a, jdict_kind kind);
int jdict_set(jarena *a, jdict *d, jv key, jv val);
/* Adds an entry without looking for the key (a JSON object's, which cJSON
 * keeps in order; with duplicate keys the first is found, as cJSON does). */
int jdict_append(jarena *a, jdict *d, jv key, jv val);
/* Lookups scan the entries, charging the budget (may be NULL) per entry. */
const jv *jdict_get(const jdict *d, const char *key, size_t klen, jbudget *bud);
const jv *jdict_getv(const jdict *d, const jv *key, jbudget *bud);
jv jv_list(jlist *l);
jv jv_dict(jdict *d);

const char *jv_type_name(const jv *v); /* Python type name: 'str', 'dict', ... */
bool jv_truthy(const jv *v);
/* Python ==; charges bud per node visited (shared sub-lists can make a
 * small value a huge tree) and answers false once it is exceeded. */
bool jv_equal(const jv *a, const jv *b, jbudget *bud);
bool jv_is_number(const jv *v); /* int, float or bool */
double jv_as_double(const jv *v);
/* str(v) appended to b; Python's str() for scalars, repr() for containers.
 * A string keeps its taint byte for byte; a container's text is untrusted as a
 * whole when it holds any untrusted string (key or value). Work is charged to
 * b->bud and stops once b is oom. */
void jv_to_str(jbuf *b, const jv *v);
void jv_repr(jbuf *b, const jv *v);
void jv_format_float(jbuf *b, double f); /* Python repr(float) */
/* str(v) as a value (strings returned as they are). */
int jv_stringify(jarena *a, const jv *v, jv *out);
/* Converts a cJSON tree; dicts keep key order. With `untrusted` every string
 * (values and keys) is marked untrusted. */
int jv_from_json(struct jeval *ev, const cJSON *j, bool untrusted, jv *out);

typedef struct jjson_opts {
    int indent;           /* < 0: none (one line) */
    const jv *indent_str; /* a string used instead of `indent` spaces, or NULL */
    bool ensure_ascii;
    bool sort_keys;
    const jv *item_sep, *key_sep; /* strings; NULL: Python's defaults */
} jjson_opts;
/* json.dumps(v, ...); error (M40LLM_ERR_FORMAT) on values JSON cannot hold.
 * The text is untrusted as a whole when v holds any untrusted string. */
int jv_to_json(jbuf *b, const jv *v, const jjson_opts *o);

/* UTF-8 helpers */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp); /* bytes used (>=1) */
size_t utf8_encode(uint32_t cp, char out[4]);              /* bytes written (cp's low 21 bits) */
void utf8_put(jbuf *b, uint32_t cp);
bool jv_is_space_cp(uint32_t cp); /* Python str.isspace() */
uint32_t jcase_upper(uint32_t cp);
uint32_t jcase_lower(uint32_t cp);
bool jcase_is_cased(uint32_t cp);

/* ---- tokens ---- */
typedef enum jtok_type {
    JT_EOF,
    JT_DATA,
    JT_VAR_BEGIN,
    JT_VAR_END,
    JT_BLOCK_BEGIN,
    JT_BLOCK_END,
    JT_NAME,
    JT_STRING,
    JT_INT,
    JT_FLOAT,
    JT_OP,
} jtok_type;

typedef struct jtok {
    jtok_type type;
    int line;
    const char *s; /* DATA/NAME/STRING/OP text (decoded for strings), [n] bytes */
    size_t n;
    int64_t i; /* INT */
    double f;  /* FLOAT */
} jtok;

/* Tokenizes src (newlines normalized, whitespace control applied). */
int jinja_lex(jarena *a, const char *src, size_t len, jtok **toks, size_t *ntoks);

/* ---- syntax tree ---- */
typedef enum jexpr_kind {
    JE_CONST,
    JE_NAME,
    JE_GETATTR, /* a.name */
    JE_GETITEM, /* a[b] */
    JE_SLICE,   /* a[b:c:d], missing parts NULL */
    JE_CALL,    /* a(items...) */
    JE_FILTER,  /* a | name(items...) */
    JE_TEST,    /* a is [not] name(items...) */
    JE_NOT,
    JE_NEG,
    JE_POS,
    JE_BINOP, /* op: + - * / // % ** ~ */
    JE_AND,
    JE_OR,
    JE_COMPARE, /* a, then items[k] compared with ops[k] */
    JE_COND,    /* b if a else c */
    JE_LIST,
    JE_TUPLE,
    JE_DICT, /* items: key, value, key, value ... */
} jexpr_kind;

typedef enum { JOP_EQ, JOP_NE, JOP_LT, JOP_LE, JOP_GT, JOP_GE, JOP_IN, JOP_NOTIN } jcmp_op;

struct jfilter_def;
struct jtest_def;
typedef struct jexpr {
    jexpr_kind kind;
    int line;
    jv cval;          /* JE_CONST */
    const char *name; /* NAME, GETATTR attribute, FILTER/TEST name, BINOP op text */
    struct jexpr *a, *b, *c, *d;
    struct jexpr **items; /* [n] list/tuple/dict items, call arguments */
    const char **kwnames; /* [n] keyword of each argument, NULL for positional */
    size_t n;
    jcmp_op *ops; /* [n] JE_COMPARE */
    bool negated; /* JE_TEST: `is not` */
    const struct jfilter_def *filter;
    const struct jtest_def *test;
} jexpr;

typedef enum jstmt_kind {
    JS_TEXT,
    JS_OUTPUT,
    JS_IF,
    JS_FOR,
    JS_SET,
    JS_SET_BLOCK,
    JS_MACRO,
    JS_WITH,
    JS_FILTER_BLOCK, /* {% filter f %}body{% endfilter %}: expr filters JINJA_BLOCK_VAR */
    JS_CALL_BLOCK,   /* {% call(params) m(args) %}body{% endcall %}: body is `caller` */
    JS_BREAK,
    JS_CONTINUE,
} jstmt_kind;

/* Name bound to a block's rendered text while its filters run (a name no
 * template can spell). */
#define JINJA_BLOCK_VAR "\x01block"

typedef struct jbody {
    struct jstmt **items; /* [n] */
    size_t n, cap;
} jbody;

typedef struct jstmt {
    jstmt_kind kind;
    int line;
    const char *text; /* TEXT: [len] bytes */
    size_t len;
    jexpr *expr;   /* OUTPUT value, IF condition, FOR iterable, SET value, SET_BLOCK and
                      FILTER_BLOCK filters (or NULL), CALL_BLOCK call */
    jexpr *target; /* FOR/SET target: NAME, TUPLE of NAMEs, or GETATTR (ns.x) */
    jexpr *cond;   /* FOR: `if` filter */
    jbody body, else_body;
    const char *name;    /* MACRO name */
    const char **params; /* MACRO: [n_params] parameter names */
    jexpr **defaults;    /* MACRO: [n_params] default or NULL */
    size_t n_params;
    jexpr **with_targets; /* WITH: [n_params] names with values in `defaults` */
} jstmt;

struct jinja_template {
    jarena arena;
    jbody root;
};

int jinja_parse_tokens(jinja_template *t, jtok *toks, size_t ntoks);

/* ---- filters, tests, globals, methods (jinja_filters.c) ---- */
typedef struct jfilter_def {
    const char *name;
    int (*fn)(struct jeval *ev, jv *in, jv *args, size_t nargs, const char **kw, int line, jv *out);
} jfilter_def;
typedef struct jtest_def {
    const char *name;
    int (*fn)(struct jeval *ev, const jv *in, jv *args, size_t nargs, int line, bool *out);
} jtest_def;

const jfilter_def *jinja_find_filter(const char *name);
const jtest_def *jinja_find_test(const char *name);
/* Global function by name, or NULL. */
bool jinja_find_global(const char *name, jv *out);
/* Bound method `obj.name` for str/dict/loop objects; false if none. */
bool jinja_find_method(struct jeval *ev, const jv *obj, const char *name, jv *out);

/* ---- evaluator (jinja_eval.c) ---- */
typedef struct jeval {
    jarena *a;           /* render arena (a->bud is &bud) */
    jbudget bud;         /* memory and steps of this render */
    int64_t now;         /* strftime_now time */
    int depth;           /* macro call depth, to stop runaway recursion */
    int edepth;          /* expression evaluation depth (long operator chains) */
    jv caller;           /* set by a call block for the macro it calls (JV_UNDEF when none) */
    const uint8_t *ones; /* [ones_n] bytes of 1: the mask shared by wholly untrusted strings */
    size_t ones_n;
    size_t input; /* bytes of the variables (string bytes + a value's size per value) */
} jeval;

/* Binary operator `op` (+ - * / // % ** ~) with Python semantics. */
int jeval_binop(jeval *ev, const char *op, const jv *a, const jv *b, int line, jv *out);
/* An int result, or the overflow error (our ints are 64-bit). */
int jeval_int_result(jeval *ev, bool overflow, int64_t r, int line, jv *out);
/* Charges steps; the budget error when it is exceeded. */
int jeval_charge(jeval *ev, uint64_t steps);
/* The budget error if a budget was exceeded, else M40LLM_OK. */
int jeval_check(const jeval *ev);
/* A mask of at least n untrusted bytes (shared, read-only), NULL on failure. */
const uint8_t *jeval_ones(jeval *ev, size_t n);
/* Marks the string *v untrusted as a whole (when `yes`). */
int jv_taint_all(jeval *ev, jv *v, bool yes);

/* Errors raised at render time, "line N: ..." prefixed. */
int jeval_fail(jeval *ev, int status, int line, const char *fmt, ...) ERR_PRINTF(4, 5);
/* Fails with Jinja2's UndefinedError text for an undefined value that was used. */
int jeval_undef_error(jeval *ev, const jv *v, int line);
/* Calls a callable value (function, bound method, macro). */
int jeval_call(jeval *ev, const jv *callee, jv *args, size_t nargs, const char **kwnames, int line,
               jv *out);
/* obj.name / obj[key] with Jinja2's getattr/getitem fallbacks. */
int jeval_getattr(jeval *ev, const jv *obj, const char *name, int line, jv *out);
int jeval_getitem(jeval *ev, const jv *obj, const jv *key, int line, jv *out);
/* Iterates: lists, tuples, dict keys, string characters; undefined is empty. */
int jeval_to_list(jeval *ev, const jv *v, int line, jlist **out);
/* obj[lo:hi:step] on lists and strings (by code point); none = omitted. */
int jeval_slice(jeval *ev, const jv *obj, const jv *lo, const jv *hi, const jv *st, int line,
                jv *out);
/* An arena copy of fmt formatted with a and b (for undefined-value messages). */
const char *jeval_hint(jeval *ev, const char *fmt, const char *a, const char *b);
/* Python's printf-style `fmt % args` (args: one value, a tuple, or a dict). */
int jstr_percent(jeval *ev, const jv *fmt, const jv *args, int line, jv *out);
/* Python's str.format() with plain {} / {0} / {name} fields. */
int jstr_format(jeval *ev, const jv *fmt, jv *args, size_t nargs, const char **kw, int line,
                jv *out);
/* Python comparison (==, <, in, ...); errors on unorderable types. */
int jeval_compare(jeval *ev, jcmp_op op, const jv *a, const jv *b, int line, bool *out);

/* ---- helpers shared by filters and builtins (jinja_filters.c) ---- */
/* Argument `pos` (positional) or keyword `name`; NULL if not given. */
const jv *jarg(jv *args, size_t nargs, const char **kw, size_t pos, const char *name);
/* Fails naming an argument the function does not take. */
int jargs_check(jeval *ev, const char *fn, size_t nargs, const char **kw, size_t max_pos,
                const char *const *names, int line);
/* A string value of b's bytes and taint in the arena; frees b. ev (may be
 * NULL) lends the shared mask to a wholly untrusted result. */
int jv_from_jbuf(jarena *a, jeval *ev, jbuf *b, jv *out);
int jv_from_buf(jeval *ev, jbuf *b, jv *out); /* jv_from_jbuf(ev->a, ev, ...) */
typedef enum { JCASE_UPPER, JCASE_LOWER, JCASE_CAPITALIZE, JCASE_TITLE, JCASE_JTITLE } jcase_mode;
int jstr_case(jeval *ev, const jv *s, jcase_mode mode, jv *out);
/* strip: which = 1 left, 2 right, 3 both; chars NULL/none = whitespace */
int jstr_strip(jeval *ev, const jv *s, const jv *chars, int which, jv *out);
int jstr_replace(jeval *ev, const jv *s, const jv *old, const jv *rep, int64_t count, jv *out);
/* Length of the prefix of s[n] holding none of the bytes of `reject`. */
static inline size_t strcspn_n(const char *s, size_t n, const char *reject) {
    size_t i = 0;
    while (i < n && (s[i] == '\0' || !strchr(reject, s[i]))) i++;
    return i;
}
/* memmem(h, n, nd, m) whose cost is about the distance to the hit */
const char *jmemmem(const char *h, size_t n, const char *nd, size_t m);

#define JTRY(x)                                                                                    \
    do {                                                                                           \
        int jtry_rc_ = (x);                                                                        \
        if (jtry_rc_ != M40LLM_OK) return jtry_rc_;                                                \
    } while (0)

#endif
