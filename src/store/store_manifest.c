/* Manifests: one small JSON file per model name, written atomically; read
 * as untrusted input (a manifest may have been edited, truncated or
 * replaced): size capped, JSON pre-checked, every field's type checked. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "fileio.h"
#include "json_check.h"
#include "store.h"

#define MANIFEST_SCHEMA   1
#define MANIFEST_MAX_SIZE 9007199254740992.0 /* 2^53: larger is not an exact JSON number */
#define LIST_MAX_DEPTH    8

static bool is_hex64(const char *s) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) return false;
    return i == 64;
}

static void time_utc(long long t, char *buf, size_t n) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int store_manifest_format(const store_model *m, char **out) {
    *out = NULL;
    cJSON *o = cJSON_CreateObject(), *parts = cJSON_CreateArray();
    if (!o || !parts) {
        cJSON_Delete(o);
        cJSON_Delete(parts);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    char added[40];
    time_utc(m->modified, added, sizeof added);
    cJSON_AddNumberToObject(o, "schema_version", MANIFEST_SCHEMA);
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "source", m->source);
    cJSON_AddStringToObject(o, "revision", m->revision);
    cJSON_AddStringToObject(o, "file", m->n_parts ? m->parts[0].file : "");
    cJSON_AddStringToObject(o, "sha256", m->n_parts ? m->parts[0].sha256 : "");
    cJSON_AddNumberToObject(o, "size", (double)m->size);
    for (int i = 0; i < m->n_parts; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "file", m->parts[i].file);
        cJSON_AddStringToObject(p, "sha256", m->parts[i].sha256);
        cJSON_AddNumberToObject(p, "size", (double)m->parts[i].size);
        cJSON_AddItemToArray(parts, p);
    }
    cJSON_AddItemToObject(o, "parts", parts);
    cJSON_AddStringToObject(o, "architecture", m->arch);
    cJSON_AddNumberToObject(o, "parameters", (double)m->n_params);
    cJSON_AddStringToObject(o, "quantization", m->quant);
    cJSON_AddNumberToObject(o, "context_length", (double)m->n_ctx);
    cJSON_AddStringToObject(o, "added", added);
    *out = cJSON_Print(o);
    cJSON_Delete(o);
    return *out ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "out of memory");
}

/* A string member: 1 copied, 0 absent (when optional), <0 error. */
static int get_str(const cJSON *o, const char *key, bool required, char *out, size_t cap,
                   const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    out[0] = '\0';
    if (!v || cJSON_IsNull(v)) {
        if (!required) return 0;
        return err_set(M40LLM_ERR_FORMAT, "%s: the field '%s' is missing", what, key);
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return err_set(M40LLM_ERR_FORMAT, "%s: the field '%s' is not a string", what, key);
    size_t l = strlen(v->valuestring);
    if (l >= cap)
        return err_set(M40LLM_ERR_FORMAT, "%s: the field '%s' is longer than %zu bytes", what, key,
                       cap - 1);
    for (size_t i = 0; i < l; i++)
        if ((unsigned char)v->valuestring[i] < 0x20)
            return err_set(M40LLM_ERR_FORMAT, "%s: the field '%s' holds a control character", what,
                           key);
    memcpy(out, v->valuestring, l + 1);
    return 1;
}

/* A non-negative integer member below 2^53. */
static int get_u64(const cJSON *o, const char *key, bool required, uint64_t *out,
                   const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!v || cJSON_IsNull(v)) {
        if (!required) return 0;
        return err_set(M40LLM_ERR_FORMAT, "%s: the field '%s' is missing", what, key);
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!(d >= 0 && d <= MANIFEST_MAX_SIZE) || d != (double)(uint64_t)d)
        return err_set(M40LLM_ERR_FORMAT, "%s: the field '%s' is not a non-negative integer", what,
                       key);
    *out = (uint64_t)d;
    return 1;
}

int store_manifest_parse(const char *text, size_t len, const char *home, const char *what,
                         store_model *m) {
    memset(m, 0, sizeof *m);
    if (len > STORE_MANIFEST_CAP)
        return err_set(M40LLM_ERR_FORMAT, "%s: larger than %zu bytes: not a manifest", what,
                       STORE_MANIFEST_CAP);
    int rc = json_check(text, len, what, 100000);
    if (rc) return rc;
    char *copy = malloc(len + 1); /* the text need not be NUL-terminated */
    if (!copy) return err_set(M40LLM_ERR_OOM, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    cJSON *o = cJSON_ParseWithLength(copy, len);
    free(copy);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return err_set(M40LLM_ERR_FORMAT, "%s: not a JSON object (truncated or not a manifest)",
                       what);
    }
    char norm[STORE_NAME_MAX + 16];
    uint64_t u = 0, schema = 0;
    rc = get_u64(o, "schema_version", true, &schema, what);
    if (rc >= 0 && schema != MANIFEST_SCHEMA)
        rc = err_set(M40LLM_ERR_UNSUPPORTED, "%s: schema_version %" PRIu64 " (this build reads %d)",
                     what, schema, MANIFEST_SCHEMA);
    if (rc >= 0) rc = get_str(o, "name", true, m->name, sizeof m->name, what);
    if (rc >= 0 && store_name_normalize(m->name, norm, sizeof norm))
        rc = err_prefix(M40LLM_ERR_FORMAT, "%s", what);
    if (rc >= 0) rc = get_str(o, "source", false, m->source, sizeof m->source, what);
    if (rc >= 0) rc = get_str(o, "revision", false, m->revision, sizeof m->revision, what);
    if (rc >= 0) rc = get_str(o, "architecture", false, m->arch, sizeof m->arch, what);
    if (rc >= 0) rc = get_str(o, "quantization", false, m->quant, sizeof m->quant, what);
    if (rc >= 0) rc = get_u64(o, "parameters", false, &m->n_params, what);
    if (rc >= 0) rc = get_u64(o, "context_length", false, &u, what);
    m->n_ctx = (int64_t)u;
    char added[64] = "";
    if (rc >= 0) rc = get_str(o, "added", false, added, sizeof added, what);
    if (rc >= 0 && added[0]) {
        struct tm tm = {0};
        const char *end = strptime(added, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end)
            rc = err_set(M40LLM_ERR_FORMAT, "%s: the field 'added' is not a UTC time", what);
        else
            m->modified = (long long)timegm(&tm);
    }
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(o, "parts");
    if (rc >= 0 && !cJSON_IsArray(parts))
        rc = err_set(M40LLM_ERR_FORMAT, "%s: the field 'parts' is %s", what,
                     parts ? "not an array" : "missing");
    int np = rc >= 0 ? cJSON_GetArraySize(parts) : 0;
    if (rc >= 0 && (np < 1 || np > STORE_MAX_PARTS))
        rc = err_set(M40LLM_ERR_FORMAT, "%s: 'parts' must list 1 to %d files, not %d", what,
                     STORE_MAX_PARTS, np);
    for (int i = 0; rc >= 0 && i < np; i++) {
        const cJSON *p = cJSON_GetArrayItem(parts, i);
        store_part *sp = &m->parts[i];
        char pw[300];
        store_fmt(pw, sizeof pw, "%s: parts[%d]", what, i);
        if (!cJSON_IsObject(p)) {
            rc = err_set(M40LLM_ERR_FORMAT, "%s is not an object", pw);
            break;
        }
        rc = get_str(p, "file", true, sp->file, sizeof sp->file, pw);
        if (rc >= 0 && (strchr(sp->file, '/') || !sp->file[0]))
            rc = err_set(M40LLM_ERR_FORMAT, "%s: 'file' must be a plain file name", pw);
        if (rc >= 0) rc = get_str(p, "sha256", true, sp->sha256, sizeof sp->sha256, pw);
        if (rc >= 0 && !is_hex64(sp->sha256))
            rc = err_set(M40LLM_ERR_FORMAT, "%s: 'sha256' is not 64 lower-case hex digits", pw);
        if (rc >= 0) rc = get_u64(p, "size", true, &sp->size, pw);
        if (rc >= 0) m->size += sp->size;
    }
    cJSON_Delete(o);
    if (rc < 0) return rc;
    m->n_parts = np;
    store_fmt(m->name, sizeof m->name, "%s", norm);
    m->origin = STORE_OWN;
    store_blob_path(home, m->parts[0].sha256, m->path, sizeof m->path);
    return M40LLM_OK;
}

int store_manifest_read(const char *home, const char *name, store_model *out) {
    char path[STORE_PATH_MAX];
    store_manifest_path(home, name, path, sizeof path);
    char *text = NULL;
    size_t len = 0;
    int rc = fileio_read_file(path, STORE_MANIFEST_CAP, "a manifest", &text, &len);
    if (rc) return rc;
    rc = store_manifest_parse(text, len, home, path, out);
    free(text);
    if (rc) return rc;
    char norm[STORE_NAME_MAX + 16];
    if (store_name_normalize(name, norm, sizeof norm) == M40LLM_OK && strcmp(norm, out->name))
        return err_set(M40LLM_ERR_FORMAT, "%s: names the model '%s', not '%s'", path, out->name,
                       norm);
    return M40LLM_OK;
}

int store_manifest_write(const char *home, const store_model *m) {
    char path[STORE_PATH_MAX];
    store_manifest_path(home, m->name, path, sizeof path);
    char dir[STORE_PATH_MAX];
    store_fmt(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    int rc = store_mkdirs(dir);
    if (rc) return rc;
    char *text = NULL;
    rc = store_manifest_format(m, &text);
    if (rc) return rc;
    rc = store_write_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

/* ---- listing ---- */

typedef struct model_vec {
    store_model *v;
    int n, cap;
} model_vec;

static int vec_push(model_vec *mv, const store_model *m) {
    if (mv->n >= STORE_LIST_MAX) return M40LLM_OK; /* listing is capped, not an error */
    int rc = store_models_reserve(&mv->v, mv->n, &mv->cap);
    if (rc) return rc;
    mv->v[mv->n++] = *m;
    return M40LLM_OK;
}

static void walk(const char *home, const char *dir, const char *rel, int depth, bool warn,
                 model_vec *mv, int *rc) {
    if (depth > LIST_MAX_DEPTH || *rc) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) && !*rc) {
        if (de->d_name[0] == '.') continue;
        char path[STORE_PATH_MAX], sub[STORE_NAME_MAX + 32];
        if (store_fmt(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        if (store_fmt(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
            (int)sizeof sub)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            walk(home, path, sub, depth + 1, warn, mv, rc);
            continue;
        }
        size_t l = strlen(sub);
        /* model/tag.json; temporaries (tag.json.tmpN) are not manifests */
        if (!S_ISREG(st.st_mode) || l < 6 || strcmp(sub + l - 5, ".json")) continue;
        sub[l - 5] = '\0';
        char *slash = strrchr(sub, '/');
        if (!slash) continue;
        *slash = ':';
        store_model *m = calloc(1, sizeof *m);
        if (!m) {
            *rc = err_set(M40LLM_ERR_OOM, "out of memory");
            break;
        }
        int r = store_manifest_read(home, sub, m);
        struct stat bs;
        if (r == M40LLM_OK && stat(m->path, &bs) != 0)
            r = err_set(M40LLM_ERR_NOT_FOUND, "%s: its file %s is missing", path, m->path);
        if (r == M40LLM_OK)
            *rc = vec_push(mv, m);
        else if (warn)
            fprintf(stderr, "m40-llm: warning: skipping %s\n", m40llm_last_error());
        free(m);
    }
    closedir(d);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const store_model *)a)->name, ((const store_model *)b)->name);
}

int store_list_own(const char *home, bool warn, store_model **out, int *n) {
    *out = NULL;
    *n = 0;
    char dir[STORE_PATH_MAX];
    store_fmt(dir, sizeof dir, "%s/manifests", home);
    model_vec mv = {0};
    int rc = 0;
    walk(home, dir, "", 0, warn, &mv, &rc);
    if (rc) {
        free(mv.v);
        return rc;
    }
    if (mv.n) qsort(mv.v, (size_t)mv.n, sizeof *mv.v, by_name);
    *out = mv.v;
    *n = mv.n;
    return M40LLM_OK;
}

/* ---- removal ---- */

/* Removes now-empty directories between the manifest and manifests/. */
static void prune_dirs(const char *home, const char *manifest) {
    char top[STORE_PATH_MAX], dir[STORE_PATH_MAX];
    store_fmt(top, sizeof top, "%s/manifests", home);
    store_fmt(dir, sizeof dir, "%s", manifest);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash) break;
        *slash = '\0';
        if (strlen(dir) <= strlen(top) || rmdir(dir) != 0) break;
    }
}

int store_remove(const char *home, const char *name) {
    char norm[STORE_NAME_MAX + 16];
    int rc = store_name_normalize(name, norm, sizeof norm);
    if (rc) return rc;
    int lk = -1;
    rc = store_lock(home, "store", &lk); /* no pull registers a blob while we collect */
    if (rc) return rc;
    store_model *m = calloc(1, sizeof *m);
    if (!m) {
        store_unlock(lk);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    rc = store_manifest_read(home, norm, m);
    if (rc == M40LLM_ERR_NOT_FOUND)
        rc = err_set(M40LLM_ERR_NOT_FOUND, "model '%s' is not in the store (%s)", norm, home);
    char path[STORE_PATH_MAX];
    store_manifest_path(home, norm, path, sizeof path);
    /* a broken manifest may still be removed */
    if (rc == M40LLM_ERR_FORMAT || rc == M40LLM_ERR_UNSUPPORTED) rc = M40LLM_OK;
    if (rc == M40LLM_OK && unlink(path) != 0)
        rc = err_set(M40LLM_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    if (rc == M40LLM_OK) {
        prune_dirs(home, path);
        store_model *all = NULL;
        int n = 0;
        if (store_list_own(home, false, &all, &n) == M40LLM_OK) {
            for (int i = 0; i < m->n_parts; i++) {
                bool used = false;
                for (int j = 0; j < n && !used; j++)
                    for (int k = 0; k < all[j].n_parts && !used; k++)
                        used = !strcmp(all[j].parts[k].sha256, m->parts[i].sha256);
                if (!used) {
                    char blob[STORE_PATH_MAX];
                    store_blob_path(home, m->parts[i].sha256, blob, sizeof blob);
                    unlink(blob);
                }
            }
        }
        free(all);
    }
    free(m);
    store_unlock(lk);
    return rc;
}

int store_copy(const char *home, const char *src, const char *dst) {
    char s[STORE_NAME_MAX + 16], d[STORE_NAME_MAX + 16];
    int rc = store_name_normalize(src, s, sizeof s);
    if (rc == M40LLM_OK) rc = store_name_normalize(dst, d, sizeof d);
    if (rc) return rc;
    store_model *m = calloc(1, sizeof *m);
    if (!m) return err_set(M40LLM_ERR_OOM, "out of memory");
    int lk = -1;
    rc = store_lock(home, "store", &lk); /* rm does not collect the blobs meanwhile */
    if (rc == M40LLM_OK) {
        rc = store_manifest_read(home, s, m);
        if (rc == M40LLM_ERR_NOT_FOUND)
            rc = err_set(M40LLM_ERR_NOT_FOUND, "model '%s' is not in the store (%s)", s, home);
    }
    if (rc == M40LLM_OK) {
        store_fmt(m->name, sizeof m->name, "%s", d);
        m->modified = (long long)time(NULL);
        rc = store_manifest_write(home, m);
    }
    store_unlock(lk);
    free(m);
    return rc;
}
