/* Untrusted-text tracking: which bytes of a string came from an untrusted
 * variable (jinja_render_opts.untrusted_vars), so that a caller can tell the
 * template's own text from text it only copied.
 *
 * A string value carries an optional mask (jv.s.t, NULL = all trusted).
 * Concatenation, join, slicing and strip keep each byte's mark; any other
 * operation whose output depends on an untrusted byte marks all of its output
 * untrusted, which is the safe direction: over-marking only turns the
 * template's own special-token text in such a value into plain text. Numbers
 * and booleans carry no mark (their text cannot spell a control token), nor
 * does control flow: a branch taken because of untrusted data still emits
 * the template's own, trusted, text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_int.h"

#define OOM() err_set(M40LLM_ERR_OOM, "template: out of memory")

bool jv_tainted(const jv *v) {
    return v->type == JV_STR && v->s.t && v->s.n && memchr(v->s.t, 1, v->s.n) != NULL;
}

const uint8_t *jeval_ones(jeval *ev, size_t n) {
    if (n <= ev->ones_n && ev->ones) return ev->ones;
    /* grown geometrically; earlier masks stay valid (the arena keeps them) */
    size_t cap = ev->ones_n > SIZE_MAX / 2 ? n : ev->ones_n * 2;
    if (cap < n) cap = n;
    if (cap < 256) cap = 256;
    uint8_t *m = jarena_alloc(ev->a, cap);
    if (!m) return NULL;
    memset(m, 1, cap);
    ev->ones = m;
    ev->ones_n = cap;
    return m;
}

int jv_taint_all(jeval *ev, jv *v, bool yes) {
    if (!yes || v->type != JV_STR || v->s.n == 0) return M40LLM_OK;
    const uint8_t *m = jeval_ones(ev, v->s.n);
    if (!m) return OOM();
    v->s.t = m;
    return M40LLM_OK;
}

int jv_from_jbuf(jarena *a, jeval *ev, jbuf *b, jv *out) {
    char *p = b->oom ? NULL : jarena_strndup(a, b->p ? b->p : "", b->n);
    const uint8_t *t = NULL;
    size_t n = b->n;
    if (p && jbuf_tainted(b, 0)) {
        if (ev && !memchr(b->m, 0, n)) { /* wholly untrusted: share the ones mask */
            t = jeval_ones(ev, n);
        } else {
            uint8_t *m = jarena_alloc(a, n);
            if (m) memcpy(m, b->m, n);
            t = m;
        }
        if (!t) p = NULL;
    }
    jbuf_free(b);
    if (!p) return OOM();
    *out = jv_strt(p, n, t);
    return M40LLM_OK;
}

int jv_from_buf(jeval *ev, jbuf *b, jv *out) {
    return jv_from_jbuf(ev->a, ev, b, out);
}

/* ---- the render's variables ---- */
/* an arena copy of s as a string value, untrusted as a whole when asked */
static int json_str_val(jeval *ev, const char *s, bool untrusted, jv *out) {
    size_t n = strlen(s);
    char *p = jarena_strndup(ev->a, s, n);
    if (!p) return OOM();
    *out = jv_strn(p, n);
    return jv_taint_all(ev, out, untrusted);
}

int jv_from_json(jeval *ev, const cJSON *j, bool untrusted, jv *out) {
    jarena *a = ev->a;
    if (!jbudget_charge(&ev->bud, 1)) return jeval_check(ev);
    ev->input += sizeof(jv) + (cJSON_IsString(j) ? strlen(j->valuestring) : 0) +
                 (j && j->string ? strlen(j->string) : 0);
    if (cJSON_IsNull(j) || !j) {
        *out = jv_none();
    } else if (cJSON_IsBool(j)) {
        *out = jv_bool(cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        /* JSON has one number type; integral values become Python ints */
        if (d == floor(d) && fabs(d) < 9.0e15)
            *out = jv_int((int64_t)d);
        else
            *out = jv_float(d);
    } else if (cJSON_IsString(j)) {
        return json_str_val(ev, j->valuestring, untrusted, out);
    } else if (cJSON_IsArray(j)) {
        jlist *l = jlist_new(a, (size_t)cJSON_GetArraySize(j));
        if (!l) return OOM();
        const cJSON *it;
        cJSON_ArrayForEach(it, j) {
            jv v;
            JTRY(jv_from_json(ev, it, untrusted, &v));
            JTRY(jlist_push(a, l, v));
        }
        *out = jv_list(l);
    } else if (cJSON_IsObject(j)) {
        jdict *d = jdict_new(a, JD_PLAIN);
        if (!d) return OOM();
        const cJSON *it;
        cJSON_ArrayForEach(it, j) {
            jv v, key;
            JTRY(jv_from_json(ev, it, untrusted, &v));
            JTRY(json_str_val(ev, it->string ? it->string : "", untrusted, &key));
            JTRY(jdict_append(a, d, key, v));
        }
        *out = jv_dict(d);
    } else {
        return err_set(M40LLM_ERR_TYPE, "template variables: unsupported JSON value");
    }
    return M40LLM_OK;
}
