/* JSON schemas for JSON mode: the compiler (see json_schema.h; the
 * automaton is json_sa.c). */
#include "json_schema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "json_schema_int.h"

#define JS_MAX_NODES 4096
#define JS_MAX_TEXT  4096 /* bytes of one enum value or key, written compactly */

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

/* A value's match with a type name (NULL: any). */
static bool js_is_type(const cJSON *v, const char *type) {
    if (!type) return true;
    if (!strcmp(type, "string")) return cJSON_IsString(v);
    if (!strcmp(type, "number")) return cJSON_IsNumber(v);
    if (!strcmp(type, "integer"))
        return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    if (!strcmp(type, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(type, "null")) return cJSON_IsNull(v);
    if (!strcmp(type, "object")) return cJSON_IsObject(v);
    return !strcmp(type, "array") && cJSON_IsArray(v);
}

/* Whether v (an enum value) matches the schema's type (a name or a list; absent: any). */
static bool js_type_ok(const cJSON *v, const cJSON *ty) {
    if (cJSON_IsString(ty)) return js_is_type(v, ty->valuestring);
    if (!cJSON_IsArray(ty)) return true;
    const cJSON *t;
    cJSON_ArrayForEach(t, ty) {
        if (cJSON_IsString(t) && js_is_type(v, t->valuestring)) return true;
    }
    return false;
}

/* Numbers anywhere in v that cJSON cannot write back exactly (infinite, or
 * past 2^53: it would print another value). */
static bool js_inexact(const cJSON *v) {
    if (cJSON_IsNumber(v))
        return !isfinite(v->valuedouble) || fabs(v->valuedouble) >= 9007199254740992.0;
    const cJSON *k;
    cJSON_ArrayForEach(k, v) {
        if (js_inexact(k)) return true;
    }
    return false;
}

/* The values of vals of the schema's type ty (NULL: all), plus null when
 * nullable and not there yet. */
static int js_enum(jc *c, const cJSON *vals, const cJSON *ty, bool nullable, const char *where) {
    const int n = cJSON_GetArraySize(vals);
    if (n < 1 || n > JSON_SCHEMA_MAX_SET) return js_fail(where, "enum needs 1 to 256 values", NULL);
    int id = js_new(c, K_ENUM, NULL, where);
    if (id < 0 || js_alloc_set(&c->s->nodes[id], n + 1)) return -1;
    const cJSON *v;
    bool has_null = false;
    cJSON_ArrayForEach(v, vals) {
        if (js_inexact(v))
            return js_fail(where, "an enum number that is not finite or beyond 2^53", NULL);
        for (const cJSON *w = vals->child; w != v; w = w->next)
            if (cJSON_Compare(v, w, true)) return js_fail(where, "an enum value twice", NULL);
        if (!js_type_ok(v, ty)) continue; /* not an instance of the type beside it */
        has_null |= cJSON_IsNull(v);
        if (js_add_text(&c->s->nodes[id], v, NULL, where)) return -1;
    }
    if (nullable && !has_null) {
        cJSON *nl = cJSON_CreateNull();
        int rc = nl ? js_add_text(&c->s->nodes[id], nl, NULL, where)
                    : (err_set(M40LLM_ERR_OOM, "out of memory"), -1);
        cJSON_Delete(nl);
        if (rc) return -1;
    }
    if (c->s->nodes[id].n == 0)
        return js_fail(where, "no enum value is of the type beside it", NULL);
    return id;
}

static int js_literals(jc *c, const char *json, const char *where) {
    cJSON *v = cJSON_Parse(json);
    if (!v) return err_set(M40LLM_ERR_OOM, "out of memory"), -1;
    int id = js_enum(c, v, NULL, false, where);
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
    const char *names[JSON_SCHEMA_MAX_SET];
    const cJSON *p;
    int i = 0;
    cJSON_ArrayForEach(p, props) {
        for (int k = 0; k < i; k++) /* (cJSON keeps both; validators take the last) */
            if (!strcmp(names[k], p->string))
                return js_fail(where, "a property named twice: ", p->string);
        names[i] = p->string;
        char w[512];
        snprintf(w, sizeof w, "%s/properties/%s", where, p->string);
        if (js_add_text(&c->s->nodes[id], NULL, p->string, w)) return -1;
        int ch = js_compile(c, p, w);
        if (ch < 0) return -1;
        c->s->nodes[id].child[i++] = ch;
    }
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(sch, "required");
    if (req && (!cJSON_IsArray(req) || cJSON_GetArraySize(req) > n))
        return js_fail(where, "required must list names of properties, each once", NULL);
    const cJSON *r;
    cJSON_ArrayForEach(r, req) {
        if (!cJSON_IsString(r)) return js_fail(where, "required must be a list of names", NULL);
        int k = 0;
        while (k < n && strcmp(names[k], r->valuestring)) k++;
        if (k == n)
            return js_fail(where,
                           "a required property that is not in properties: ", r->valuestring);
        if (c->s->nodes[id].required[k])
            return js_fail(where, "a property required twice: ", r->valuestring);
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
        if (cJSON_GetObjectItemCaseSensitive(sch, "required"))
            return js_fail(where, "required without properties is not supported", NULL);
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

/* keyword bits of js_handled, in its order */
enum {
    KW_TYPE = 1 << 0,
    KW_PROPS = 1 << 1,
    KW_REQ = 1 << 2,
    KW_ADDL = 1 << 3,
    KW_ITEMS = 1 << 4,
    KW_MINI = 1 << 5,
    KW_MAXI = 1 << 6,
    KW_ENUM = 1 << 7,
    KW_CONST = 1 << 8,
    KW_ANYOF = 1 << 9,
    KW_ONEOF = 1 << 10,
    KW_REF = 1 << 11,
    KW_NULLABLE = 1 << 12,
    KW_OBJECT = KW_PROPS | KW_REQ | KW_ADDL,
    KW_ARRAY = KW_ITEMS | KW_MINI | KW_MAXI,
};

/* Refuses the keywords of have outside allowed: a branch that would drop
 * them would accept values the schema does not. */
static int js_only(const cJSON *sch, unsigned have, unsigned allowed, const char *branch,
                   const char *where) {
    if (!(have & ~allowed)) return 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, sch) {
        for (int i = 0; js_handled[i]; i++)
            if (!strcmp(k->string, js_handled[i]) && (have & ~allowed & (1u << i))) {
                char what[160];
                snprintf(what, sizeof what, "%s beside %s", k->string, branch);
                return js_fail(where, "not supported: ", what);
            }
    }
    return 0;
}

static int js_compile_body(jc *c, const cJSON *sch, const char *where) {
    if (cJSON_IsTrue(sch)) return js_new(c, K_ANY, sch, where);
    if (!cJSON_IsObject(sch)) return js_fail(where, "a schema must be an object or true", NULL);
    unsigned have = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, sch) {
        int i = 0;
        while (js_handled[i] && strcmp(k->string, js_handled[i])) i++;
        if (js_handled[i])
            have |= 1u << i;
        else if (!in_list(k->string, js_ignored))
            return js_fail(where, "this keyword is not supported: ", k->string);
    }
    const bool nullable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sch, "nullable"));
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(sch, "type");
    int id = -1;
    if (have & KW_REF) {
        if (js_only(sch, have, KW_REF, "$ref", where)) return -1;
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(sch, "$ref");
        const cJSON *t = cJSON_IsString(ref) ? js_resolve(c, ref->valuestring) : NULL;
        if (!t)
            return js_fail(where, "a $ref that does not point into this schema: ",
                           cJSON_IsString(ref) ? ref->valuestring : "?");
        return js_compile(c, t, ref->valuestring);
    }
    if (have & (KW_ENUM | KW_CONST)) {
        if ((have & KW_ENUM) && (have & KW_CONST))
            return js_fail(where, "not supported: enum beside const", NULL);
        if (js_only(sch, have, KW_ENUM | KW_CONST | KW_TYPE | KW_NULLABLE, "enum / const", where))
            return -1;
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(sch, "enum");
        if (en) {
            if (!cJSON_IsArray(en)) return js_fail(where, "enum must be a list", NULL);
            return js_enum(c, en, ty, nullable, where);
        }
        cJSON *one = cJSON_CreateArray();
        if (!one || !cJSON_AddItemReferenceToArray(
                        one, (cJSON *)cJSON_GetObjectItemCaseSensitive(sch, "const"))) {
            cJSON_Delete(one);
            return err_set(M40LLM_ERR_OOM, "out of memory"), -1;
        }
        id = js_enum(c, one, ty, nullable, where);
        cJSON_Delete(one);
        return id;
    }
    if (have & (KW_ANYOF | KW_ONEOF)) {
        const unsigned branch = have & KW_ANYOF ? KW_ANYOF : KW_ONEOF;
        if (js_only(sch, have, branch | KW_NULLABLE, branch == KW_ANYOF ? "anyOf" : "oneOf", where))
            return -1;
        const cJSON *any =
            cJSON_GetObjectItemCaseSensitive(sch, have & KW_ANYOF ? "anyOf" : "oneOf");
        const int n = cJSON_GetArraySize(any);
        if (!cJSON_IsArray(any) || n < 1 || n > 64)
            return js_fail(where, "anyOf / oneOf needs 1 to 64 schemas", NULL);
        int32_t alt[65];
        for (int i = 0; i < n; i++) {
            char w[512];
            snprintf(w, sizeof w, "%s/anyOf/%d", where, i);
            if ((alt[i] = js_compile(c, cJSON_GetArrayItem(any, i), w)) < 0) return -1;
        }
        if (nullable && (alt[n] = js_literals(c, "[null]", where)) < 0) return -1;
        const int na = n + (nullable ? 1 : 0);
        return na == 1 ? alt[0] : js_anyof(c, alt, na, where);
    }
    if (cJSON_IsString(ty)) {
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
    } else if ((have & KW_OBJECT) && (have & KW_ARRAY)) { /* no type: from the keywords */
        return js_fail(where, "keywords of objects and of arrays without a type", NULL);
    } else if (have & KW_OBJECT) {
        id = js_typed(c, sch, "object", where);
    } else if (have & KW_ARRAY) {
        id = js_typed(c, sch, "array", where);
    } else {
        id = js_new(c, K_ANY, NULL, where);
    }
    if (id >= 0 && nullable) {
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
