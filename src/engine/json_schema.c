/* JSON schemas for JSON mode: the compiler and the automaton (see
 * json_schema.h). */
#include "json_schema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "err.h"

#define JS_MAX_NODES 4096
#define JS_MAX_TEXT  4096 /* bytes of one enum value or key, written compactly */

enum { K_ANY, K_ANY_OBJECT, K_OBJECT, K_ARRAY, K_STRING, K_NUMBER, K_INTEGER, K_ENUM, K_ANYOF };

typedef struct js_node {
    int kind;
    int n;             /* object: properties; enum: values; anyOf: alternatives */
    char **text;       /* [n] object: keys as JSON strings with quotes; enum: values, compact */
    uint32_t *len;     /* [n] */
    int32_t *child;    /* [n] object: property schemas; anyOf: alternatives; array: [1] items */
    uint8_t *required; /* [n] object */
    int min_items, max_items;
    uint8_t first[32];  /* bytes a value of it can start with */
    int8_t first_state; /* 0 not computed, 1 computing, 2 done */
    char where[96];     /* its JSON pointer, for messages */
} js_node;

struct json_schema {
    js_node *nodes;
    int n, cap;
    int root;
};

/* ---- compiling ---- */

typedef struct jc {
    json_schema *s;
    const cJSON *doc;
    const cJSON **src; /* [JS_MAX_NODES] the schema object each node came from (NULL: made) */
    int depth;
} jc;

static int js_new(jc *c, int kind, const cJSON *src, const char *where) {
    json_schema *s = c->s;
    if (s->n == JS_MAX_NODES)
        return err_set(M40LLM_ERR_INVALID_ARG, "JSON schema: more than %d parts", JS_MAX_NODES), -1;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        js_node *n = realloc(s->nodes, (size_t)cap * sizeof *n);
        if (!n) return err_set(M40LLM_ERR_OOM, "out of memory"), -1;
        s->nodes = n;
        s->cap = cap;
    }
    js_node *nd = &s->nodes[s->n];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->max_items = 65535;
    snprintf(nd->where, sizeof nd->where, "%s", *where ? where : "/");
    c->src[s->n] = src;
    return s->n++;
}

static int js_fail(const char *where, const char *fmt, const char *what) {
    return err_set(M40LLM_ERR_INVALID_ARG, "JSON schema at %s: %s%s", *where ? where : "/", fmt,
                   what ? what : ""),
           -1;
}

static bool in_list(const char *k, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(k, *list)) return true;
    return false;
}

/* keywords with no effect on which values are valid */
static const char *const js_ignored[] = {"title",           "description",      "default",
                                         "examples",        "$schema",          "$id",
                                         "$comment",        "format",           "deprecated",
                                         "readOnly",        "writeOnly",        "contentMediaType",
                                         "contentEncoding", "propertyOrdering", "$defs",
                                         "definitions",     "strict",           NULL};
static const char *const js_handled[] = {
    "type",     "properties", "required", "additionalProperties",
    "items",    "minItems",   "maxItems", "enum",
    "const",    "anyOf",      "oneOf",    "$ref",
    "nullable", NULL};

/* The node of a schema value at where (memoized: $ref cycles end here). */
static int js_compile(jc *c, const cJSON *sch, const char *where);

/* "#", "#/$defs/Name", "#/definitions/Name/..." in this document */
static const cJSON *js_resolve(const jc *c, const char *ref) {
    if (ref[0] != '#') return NULL;
    const cJSON *cur = c->doc;
    const char *p = ref + 1;
    while (*p == '/') {
        char tok[256];
        size_t n = 0;
        for (p++; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~' && (p[1] == '0' || p[1] == '1')) ch = *++p == '0' ? '~' : '/';
            if (n + 1 >= sizeof tok) return NULL;
            tok[n++] = ch;
        }
        tok[n] = '\0';
        cur = cJSON_IsObject(cur) ? cJSON_GetObjectItemCaseSensitive(cur, tok) : NULL;
        if (!cur) return NULL;
    }
    return *p ? NULL : cur;
}

/* Adds the compact text of a value (enum) or a key (as a JSON string). */
static int js_add_text(js_node *nd, const cJSON *v, const char *key, const char *where) {
    char *t = NULL;
    if (key) {
        cJSON *s = cJSON_CreateString(key);
        t = s ? cJSON_PrintUnformatted(s) : NULL;
        cJSON_Delete(s);
    } else {
        t = cJSON_PrintUnformatted(v);
    }
    if (!t) return err_set(M40LLM_ERR_OOM, "out of memory"), -1;
    const size_t n = strlen(t);
    if (n > JS_MAX_TEXT || n == 0) {
        free(t);
        return js_fail(where, "a value or key longer than 4096 bytes", NULL);
    }
    nd->text[nd->n] = t;
    nd->len[nd->n] = (uint32_t)n;
    nd->n++;
    return 0;
}

static int js_alloc_set(js_node *nd, int n) {
    nd->text = calloc((size_t)n + 1, sizeof *nd->text);
    nd->len = calloc((size_t)n + 1, sizeof *nd->len);
    nd->child = calloc((size_t)n + 1, sizeof *nd->child);
    nd->required = calloc((size_t)n + 1, 1);
    return nd->text && nd->len && nd->child && nd->required
               ? 0
               : (err_set(M40LLM_ERR_OOM, "out of memory"), -1);
}

static int js_enum(jc *c, const cJSON *vals, const cJSON *src, const char *where) {
    const int n = cJSON_GetArraySize(vals);
    if (n < 1 || n > JSON_SCHEMA_MAX_SET) return js_fail(where, "enum needs 1 to 256 values", NULL);
    int id = js_new(c, K_ENUM, src, where);
    if (id < 0 || js_alloc_set(&c->s->nodes[id], n)) return -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, vals) {
        if (js_add_text(&c->s->nodes[id], v, NULL, where)) return -1;
    }
    return id;
}

static int js_literals(jc *c, const char *json, const char *where) {
    cJSON *v = cJSON_Parse(json);
    if (!v) return err_set(M40LLM_ERR_OOM, "out of memory"), -1;
    int id = js_enum(c, v, NULL, where);
    cJSON_Delete(v);
    return id;
}

static int js_count(const cJSON *sch, const char *k, int *out, const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sch, k);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 65535 ||
        v->valuedouble != floor(v->valuedouble))
        return js_fail(where, "must be an integer 0..65535: ", k);
    *out = (int)v->valuedouble;
    return 0;
}

/* An object schema with properties. */
static int js_object(jc *c, const cJSON *sch, const cJSON *props, const char *where) {
    const int n = cJSON_GetArraySize(props);
    if (n > JSON_SCHEMA_MAX_SET) return js_fail(where, "more than 256 properties", NULL);
    int id = js_new(c, K_OBJECT, NULL, where);
    if (id < 0 || js_alloc_set(&c->s->nodes[id], n)) return -1;
    const cJSON *p;
    int i = 0;
    cJSON_ArrayForEach(p, props) {
        char w[512];
        snprintf(w, sizeof w, "%s/properties/%s", where, p->string);
        if (js_add_text(&c->s->nodes[id], NULL, p->string, w)) return -1;
        int ch = js_compile(c, p, w);
        if (ch < 0) return -1;
        c->s->nodes[id].child[i++] = ch;
    }
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(sch, "required");
    if (req && !cJSON_IsArray(req)) return js_fail(where, "required must be a list of names", NULL);
    const cJSON *r;
    cJSON_ArrayForEach(r, req) {
        if (!cJSON_IsString(r)) return js_fail(where, "required must be a list of names", NULL);
        int k = 0;
        while (k < n && strcmp(cJSON_GetArrayItem(props, k)->string, r->valuestring)) k++;
        if (k == n)
            return js_fail(where,
                           "a required property that is not in properties: ", r->valuestring);
        c->s->nodes[id].required[k] = 1;
    }
    return id;
}

/* A node of one type from the schema's keywords. */
static int js_typed(jc *c, const cJSON *sch, const char *type, const char *where) {
    if (!strcmp(type, "null")) return js_literals(c, "[null]", where);
    if (!strcmp(type, "boolean")) return js_literals(c, "[true,false]", where);
    if (!strcmp(type, "string")) return js_new(c, K_STRING, NULL, where);
    if (!strcmp(type, "number")) return js_new(c, K_NUMBER, NULL, where);
    if (!strcmp(type, "integer")) return js_new(c, K_INTEGER, NULL, where);
    if (!strcmp(type, "object")) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(sch, "properties");
        if (props && !cJSON_IsObject(props))
            return js_fail(where, "properties must be an object", NULL);
        if (props) return js_object(c, sch, props, where);
        const cJSON *ap = cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties");
        if (ap && !cJSON_IsBool(ap))
            return js_fail(where, "additionalProperties as a schema without properties", NULL);
        if (cJSON_IsFalse(ap)) return js_object(c, sch, NULL, where); /* only {} */
        return js_new(c, K_ANY_OBJECT, NULL, where);
    }
    if (!strcmp(type, "array")) {
        int id = js_new(c, K_ARRAY, NULL, where);
        if (id < 0 || js_alloc_set(&c->s->nodes[id], 1)) return -1;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(sch, "items");
        char w[512];
        snprintf(w, sizeof w, "%s/items", where);
        int ch = items ? js_compile(c, items, w) : js_new(c, K_ANY, NULL, w);
        if (ch < 0) return -1;
        js_node *nd = &c->s->nodes[id];
        nd->child[0] = ch;
        if (js_count(sch, "minItems", &nd->min_items, where) ||
            js_count(sch, "maxItems", &nd->max_items, where))
            return -1;
        if (nd->min_items > nd->max_items) return js_fail(where, "minItems > maxItems", NULL);
        return id;
    }
    return js_fail(where, "unknown type ", type);
}

/* anyOf over ids already made */
static int js_anyof(jc *c, const int32_t *alt, int n, const char *where) {
    int id = js_new(c, K_ANYOF, NULL, where);
    if (id < 0 || js_alloc_set(&c->s->nodes[id], n)) return -1;
    memcpy(c->s->nodes[id].child, alt, (size_t)n * sizeof *alt);
    c->s->nodes[id].n = n;
    return id;
}

static int js_compile_body(jc *c, const cJSON *sch, const char *where) {
    if (cJSON_IsTrue(sch)) return js_new(c, K_ANY, sch, where);
    if (!cJSON_IsObject(sch)) return js_fail(where, "a schema must be an object or true", NULL);
    const cJSON *k;
    cJSON_ArrayForEach(k, sch) {
        if (!in_list(k->string, js_ignored) && !in_list(k->string, js_handled))
            return js_fail(where, "this keyword is not supported: ", k->string);
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(sch, "$ref");
    if (ref) {
        const cJSON *t = cJSON_IsString(ref) ? js_resolve(c, ref->valuestring) : NULL;
        if (!t)
            return js_fail(where, "a $ref that does not point into this schema: ",
                           cJSON_IsString(ref) ? ref->valuestring : "?");
        return js_compile(c, t, cJSON_IsString(ref) ? ref->valuestring : where);
    }
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(sch, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(sch, "const");
    int id = -1;
    if (en) {
        if (!cJSON_IsArray(en)) return js_fail(where, "enum must be a list", NULL);
        id = js_enum(c, en, NULL, where);
    } else if (cn) {
        cJSON *one = cJSON_CreateArray();
        if (!one || !cJSON_AddItemReferenceToArray(one, (cJSON *)cn)) {
            cJSON_Delete(one);
            return err_set(M40LLM_ERR_OOM, "out of memory"), -1;
        }
        id = js_enum(c, one, NULL, where);
        cJSON_Delete(one);
    } else {
        const cJSON *any = cJSON_GetObjectItemCaseSensitive(sch, "anyOf");
        if (!any) any = cJSON_GetObjectItemCaseSensitive(sch, "oneOf");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(sch, "type");
        if (any) {
            const int n = cJSON_GetArraySize(any);
            if (!cJSON_IsArray(any) || n < 1 || n > 64)
                return js_fail(where, "anyOf / oneOf needs 1 to 64 schemas", NULL);
            int32_t alt[64];
            for (int i = 0; i < n; i++) {
                char w[512];
                snprintf(w, sizeof w, "%s/anyOf/%d", where, i);
                if ((alt[i] = js_compile(c, cJSON_GetArrayItem(any, i), w)) < 0) return -1;
            }
            id = n == 1 ? alt[0] : js_anyof(c, alt, n, where);
        } else if (cJSON_IsString(ty)) {
            id = js_typed(c, sch, ty->valuestring, where);
        } else if (cJSON_IsArray(ty)) {
            const int n = cJSON_GetArraySize(ty);
            if (n < 1 || n > 7) return js_fail(where, "type lists 1 to 7 types", NULL);
            int32_t alt[7];
            for (int i = 0; i < n; i++) {
                const cJSON *t = cJSON_GetArrayItem(ty, i);
                if (!cJSON_IsString(t)) return js_fail(where, "type must name types", NULL);
                if ((alt[i] = js_typed(c, sch, t->valuestring, where)) < 0) return -1;
            }
            id = n == 1 ? alt[0] : js_anyof(c, alt, n, where);
        } else if (ty) {
            return js_fail(where, "type must be a name or a list of names", NULL);
        } else if (cJSON_GetObjectItemCaseSensitive(sch, "properties")) {
            id = js_typed(c, sch, "object", where);
        } else if (cJSON_GetObjectItemCaseSensitive(sch, "items")) {
            id = js_typed(c, sch, "array", where);
        } else {
            id = js_new(c, K_ANY, NULL, where);
        }
    }
    if (id >= 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sch, "nullable"))) {
        int32_t alt[2] = {id, js_literals(c, "[null]", where)};
        id = alt[1] < 0 ? -1 : js_anyof(c, alt, 2, where);
    }
    return id;
}

static int js_compile(jc *c, const cJSON *sch, const char *where) {
    for (int i = 0; i < c->s->n; i++) /* compiled already (or being compiled: a cycle) */
        if (c->src[i] == sch && c->s->nodes[i].kind == K_ANYOF && c->s->nodes[i].n == 1) return i;
    /* a placeholder first, so a $ref back to sch finds it: an anyOf of one
     * that is pointed at the real node once it is made */
    int ph = js_new(c, K_ANYOF, sch, where);
    if (ph < 0) return -1;
    if (++c->depth > 64) return js_fail(where, "nested more than 64 deep", NULL);
    int32_t *one = calloc(2, sizeof *one);
    if (!one) return err_set(M40LLM_ERR_OOM, "out of memory"), -1;
    c->s->nodes[ph].child = one;
    c->s->nodes[ph].n = 1;
    int id = js_compile_body(c, sch, where);
    c->depth--;
    if (id < 0) return -1;
    c->s->nodes[ph].child[0] = id;
    return ph;
}

static void bs_set(uint8_t *b, unsigned c) {
    b[c >> 3] |= (uint8_t)(1u << (c & 7));
}
static bool bs_has(const uint8_t *b, unsigned c) {
    return b[c >> 3] >> (c & 7) & 1;
}

/* The bytes each node's values start with; anyOf alternatives must start
 * differently (the automaton picks one by the first byte). */
static int js_first(json_schema *s, int id, int depth) {
    js_node *nd = &s->nodes[id];
    if (nd->first_state == 2) return 0;
    /* (never reached: a walk from a node only meets nodes compiled inside it,
     * at most 64 deep; a bound all the same, as HTTP threads have small stacks) */
    if (depth > 256) return js_fail(nd->where, "anyOf / $ref chains more than 256 long", NULL);
    if (nd->first_state == 1)
        return js_fail(nd->where, "an anyOf / $ref that refers to itself before any value", NULL);
    nd->first_state = 1;
    uint8_t f[32] = {0};
    switch (nd->kind) {
    case K_ANY:
        for (const char *p = "{[\"-0123456789tfn"; *p; p++) bs_set(f, (uint8_t)*p);
        break;
    case K_ANY_OBJECT:
    case K_OBJECT:
        bs_set(f, '{');
        break;
    case K_ARRAY:
        bs_set(f, '[');
        break;
    case K_STRING:
        bs_set(f, '"');
        break;
    case K_NUMBER:
    case K_INTEGER:
        for (const char *p = "-0123456789"; *p; p++) bs_set(f, (uint8_t)*p);
        break;
    case K_ENUM:
        for (int i = 0; i < nd->n; i++) bs_set(f, (uint8_t)nd->text[i][0]);
        break;
    default: /* K_ANYOF */
        for (int i = 0; i < nd->n; i++) {
            const int ch = s->nodes[id].child[i];
            if (js_first(s, ch, depth + 1)) return -1;
            nd = &s->nodes[id];
            for (int b = 0; b < 32; b++) {
                if (f[b] & s->nodes[ch].first[b]) {
                    char what[64];
                    snprintf(what, sizeof what, "alternative %d", i);
                    return js_fail(nd->where,
                                   "anyOf / oneOf alternatives that can start with the same "
                                   "byte (they must be of different kinds): ",
                                   what);
                }
                f[b] |= s->nodes[ch].first[b];
            }
        }
    }
    nd = &s->nodes[id];
    memcpy(nd->first, f, sizeof f);
    nd->first_state = 2;
    return 0;
}

void json_schema_free(json_schema *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        js_node *nd = &s->nodes[i];
        if (nd->text)
            for (int k = 0; k < nd->n; k++) free(nd->text[k]);
        free(nd->text);
        free(nd->len);
        free(nd->child);
        free(nd->required);
    }
    free(s->nodes);
    free(s);
}

/* follows anyOf-of-one placeholders */
static int js_real(const json_schema *s, int id) {
    for (int k = 0; k < s->n && s->nodes[id].kind == K_ANYOF && s->nodes[id].n == 1; k++)
        id = s->nodes[id].child[0]; /* (bounded: a cycle is js_first's to report) */
    return id;
}

int json_schema_compile(const char *text, size_t len, json_schema **out) {
    *out = NULL;
    cJSON *doc = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (!doc) return err_set(M40LLM_ERR_INVALID_ARG, "JSON schema: not JSON");
    json_schema *s = calloc(1, sizeof *s);
    const cJSON **src = calloc(JS_MAX_NODES, sizeof *src);
    int rc = s && src ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "out of memory");
    if (!rc) {
        jc c = {.s = s, .doc = doc, .src = src};
        s->root = js_compile(&c, doc, "");
        if (s->root < 0) rc = M40LLM_ERR_INVALID_ARG;
    }
    /* a root that allows anything ({}, true): the answer is an object, one of its instances */
    if (!rc && s->nodes[js_real(s, s->root)].kind == K_ANY)
        s->nodes[js_real(s, s->root)].kind = K_ANY_OBJECT;
    for (int i = 0; !rc && i < s->n; i++)
        if (js_first(s, i, 0)) rc = M40LLM_ERR_INVALID_ARG;
    if (!rc) {
        const int k = s->nodes[js_real(s, s->root)].kind;
        if (k != K_OBJECT && k != K_ANY_OBJECT)
            rc = err_set(M40LLM_ERR_INVALID_ARG,
                         "JSON schema: the root must be an object (\"type\": \"object\")");
    }
    free(src);
    cJSON_Delete(doc);
    if (rc) {
        if (rc == M40LLM_ERR_INVALID_ARG && !strstr(m40llm_last_error(), "JSON schema"))
            err_prefix(rc, "JSON schema");
        json_schema_free(s);
        return rc;
    }
    *out = s;
    return M40LLM_OK;
}

/* ---- the automaton ---- */

enum {
    ST_START, /* a value of the frame's node */
    O_OPEN,   /* after '{' */
    O_KEY,    /* a key, against the candidates */
    O_COLON,
    O_AFTER, /* after a property's value */
    O_COMMA, /* after ',' */
    A_OPEN,  /* after '[' */
    A_AFTER, /* after an item */
    A_ITEM,  /* after ',' */
    T_STR,
    T_NUM,
    T_ENUM, /* against the enum's texts */
    T_ANY,  /* a free value (any) */
};

void json_sa_init(json_sa *a, const json_schema *s) {
    memset(a, 0, sizeof *a);
    a->s = s;
    a->depth = 1;
    a->f[0] = (json_sa_frame){s->root, ST_START, 0, -1};
}

bool json_sa_done(const json_sa *a) {
    return a->done;
}

static bool sa_is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool sa_ws(json_sa *a) {
    if (a->ws >= JSON_PDA_MAX_WS) return false;
    a->ws++;
    return true;
}

static bool sa_push(json_sa *a, int node) {
    if (a->depth == JSON_SA_MAX_DEPTH) return false;
    a->f[a->depth++] = (json_sa_frame){node, ST_START, 0, -1};
    return true;
}

static void sa_pop(json_sa *a) {
    if (--a->depth == 0) a->done = true;
}

/* The properties that may come after property last: the next ones up to and
 * including the first required one. False when none may. */
static bool sa_keys(json_sa *a, const js_node *nd, int last) {
    memset(a->alive, 0, sizeof a->alive);
    bool any = false;
    for (int j = last + 1; j < nd->n; j++) {
        a->alive[j >> 6] |= 1ull << (j & 63);
        any = true;
        if (nd->required[j]) break;
    }
    a->pos = 1; /* the opening quote */
    return any;
}

static bool sa_can_close(const js_node *nd, int last) {
    for (int j = last + 1; j < nd->n; j++)
        if (nd->required[j]) return false;
    return true;
}

/* Keeps the candidates whose text goes on with c at pos; false if none. */
static bool sa_narrow(json_sa *a, const js_node *nd, uint8_t c) {
    bool any = false;
    for (int w = 0; w < JSON_SCHEMA_MAX_SET / 64; w++)
        for (uint64_t m = a->alive[w]; m; m &= m - 1) {
            const int k = w * 64 + __builtin_ctzll(m);
            if (nd->len[k] > a->pos && (uint8_t)nd->text[k][a->pos] == c)
                any = true;
            else
                a->alive[w] &= ~(1ull << (k & 63));
        }
    return any;
}

/* A candidate fully matched (-1 none). */
static int sa_complete(const json_sa *a, const js_node *nd) {
    for (int w = 0; w < JSON_SCHEMA_MAX_SET / 64; w++)
        for (uint64_t m = a->alive[w]; m; m &= m - 1) {
            const int k = w * 64 + __builtin_ctzll(m);
            if (nd->len[k] == a->pos) return k;
        }
    return -1;
}

static bool sa_step(json_sa *a, uint8_t c) {
    const json_schema *s = a->s;
    for (;;) { /* again when a value ends at c: c is its container's */
        if (a->done) return sa_is_ws(c) && sa_ws(a);
        json_sa_frame *f = &a->f[a->depth - 1];
        const js_node *nd = &s->nodes[f->node];
        const bool ws = sa_is_ws(c);
        switch (f->st) {
        case ST_START:
            if (ws) return sa_ws(a);
            a->ws = 0;
            while (nd->kind == K_ANYOF) { /* the alternative that starts with c */
                int pick = -1;
                for (int i = 0; i < nd->n && pick < 0; i++)
                    if (bs_has(s->nodes[nd->child[i]].first, c)) pick = nd->child[i];
                if (pick < 0) return false;
                f->node = pick;
                nd = &s->nodes[pick];
            }
            if (!bs_has(nd->first, c)) return false;
            switch (nd->kind) {
            case K_OBJECT:
                f->st = O_OPEN;
                f->last = -1;
                return true;
            case K_ARRAY:
                f->st = A_OPEN;
                f->count = 0;
                return true;
            case K_STRING:
                f->st = T_STR;
                a->sub = a->spos = 0;
                return true;
            case K_NUMBER:
            case K_INTEGER:
                f->st = T_NUM;
                return json_num_start(&a->sub, c);
            case K_ENUM:
                memset(a->alive, 0, sizeof a->alive);
                for (int k = 0; k < nd->n; k++)
                    if ((uint8_t)nd->text[k][0] == c) a->alive[k >> 6] |= 1ull << (k & 63);
                a->pos = 1; /* (a one-byte value is a digit: it ends at what follows) */
                f->st = T_ENUM;
                return true;
            default: /* K_ANY, K_ANY_OBJECT */
                json_pda_init_value(&a->any);
                f->st = T_ANY;
                return json_pda_feed_value(&a->any, c) == 1;
            }
        case O_OPEN:
        case O_COMMA:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c == '"') {
                if (!sa_keys(a, nd, f->last)) return false;
                f->st = O_KEY;
                return true;
            }
            if (c == '}' && f->st == O_OPEN && sa_can_close(nd, -1)) {
                sa_pop(a);
                return true;
            }
            return false;
        case O_KEY: {
            if (!sa_narrow(a, nd, c)) return false;
            a->pos++;
            const int k = sa_complete(a, nd);
            if (k >= 0) {
                f->last = (int16_t)k;
                f->st = O_COLON;
            }
            return true;
        }
        case O_COLON:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c != ':') return false;
            f->st = O_AFTER;
            return sa_push(a, nd->child[f->last]);
        case O_AFTER:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c == ',') {
                if (!sa_keys(a, nd, f->last)) return false;
                f->st = O_COMMA;
                return true;
            }
            if (c == '}' && sa_can_close(nd, f->last)) {
                sa_pop(a);
                return true;
            }
            return false;
        case A_OPEN:
        case A_ITEM:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c == ']' && f->st == A_OPEN && nd->min_items == 0) {
                sa_pop(a);
                return true;
            }
            if (f->count >= nd->max_items) return false;
            f->count++;
            f->st = A_AFTER;
            if (!sa_push(a, nd->child[0])) return false;
            continue; /* c starts the item */
        case A_AFTER:
            if (ws) return sa_ws(a);
            a->ws = 0;
            if (c == ',' && f->count < nd->max_items) {
                f->st = A_ITEM;
                return true;
            }
            if (c == ']' && f->count >= nd->min_items) {
                sa_pop(a);
                return true;
            }
            return false;
        case T_STR: {
            const int r = json_str_feed(&a->sub, &a->spos, c);
            if (r > 0) sa_pop(a);
            return r >= 0;
        }
        case T_NUM: {
            const int r = json_num_feed(&a->sub, c, nd->kind == K_INTEGER);
            if (r != 0) return r > 0;
            sa_pop(a); /* complete: c follows it */
            continue;
        }
        case T_ENUM: {
            uint64_t before[JSON_SCHEMA_MAX_SET / 64];
            memcpy(before, a->alive, sizeof before);
            if (sa_narrow(a, nd, c)) {
                a->pos++;
                const int k = sa_complete(a, nd);
                /* a whole value that is not a number cannot go on */
                if (k >= 0) {
                    const char last = nd->text[k][nd->len[k] - 1];
                    if (last < '0' || last > '9') sa_pop(a);
                }
                return true;
            }
            memcpy(a->alive, before, sizeof before);
            if (sa_complete(a, nd) < 0) return false;
            sa_pop(a); /* a complete number: c follows it */
            continue;
        }
        default: { /* T_ANY */
            const int r = json_pda_feed_value(&a->any, c);
            if (r < 0) return false;
            if (r == 0) {
                sa_pop(a);
                continue;
            }
            if (json_pda_done(&a->any)) sa_pop(a);
            return true;
        }
        }
    }
}

bool json_sa_feed(json_sa *a, uint8_t c) {
    json_sa t = *a;
    if (!sa_step(&t, c)) return false;
    *a = t;
    return true;
}

bool json_sa_feed_all(json_sa *a, const uint8_t *b, size_t n) {
    json_sa t = *a;
    for (size_t i = 0; i < n; i++)
        if (!sa_step(&t, b[i])) return false;
    *a = t;
    return true;
}
