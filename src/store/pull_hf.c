/* The slice of the Hugging Face Hub API pull uses: the commit of a
 * revision (/api/models/REPO/revision/main), the file listing with sizes
 * and LFS sha256 (/api/models/REPO/tree/REV?recursive=true) and downloads
 * (/REPO/resolve/REV/FILE). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "err.h"
#include "json_check.h"
#include "pull.h"

/* The one compiled-in registry: Hugging Face itself (an override for
 * mirrors and tests: $M40LLM_HF_ENDPOINT, $HF_ENDPOINT). */
#define HF_DEFAULT_ENDPOINT "https://huggingface.co"

void pull_hf_endpoint(char *out, size_t size) {
    const char *e = getenv("M40LLM_HF_ENDPOINT");
    if (!e || !*e) e = getenv("HF_ENDPOINT");
    if (!e || !*e) e = HF_DEFAULT_ENDPOINT;
    store_fmt(out, size, "%s", e);
    size_t l = strlen(out);
    while (l > 0 && out[l - 1] == '/') out[--l] = '\0';
}

static bool is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return false;
    return true;
}

/* A repository path: no "..", no absolute path, no control or odd bytes. */
static bool safe_path(const char *p) {
    if (!p[0] || p[0] == '/' || strlen(p) >= 256) return false;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\') return false;
    for (const char *c = p; c;) {
        const char *sl = strchr(c, '/');
        size_t l = sl ? (size_t)(sl - c) : strlen(c);
        if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c = sl ? sl + 1 : NULL;
    }
    return true;
}

int pull_hf_parse_tree(const char *text, size_t len, pull_tree_entry **out, int *n) {
    *out = NULL;
    *n = 0;
    int rc = json_check(text, len, "the repository's file listing", 2000000);
    if (rc) return rc;
    cJSON *a = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return err_set(M40LLM_ERR_FORMAT, "the repository's file listing is not a JSON list");
    }
    int cap = cJSON_GetArraySize(a);
    pull_tree_entry *v = calloc(cap > 0 ? (size_t)cap : 1, sizeof *v);
    if (!v) {
        cJSON_Delete(a);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "file") || !cJSON_IsString(path) ||
            !safe_path(path->valuestring))
            continue;
        pull_tree_entry *t = &v[k];
        store_fmt(t->path, sizeof t->path, "%s", path->valuestring);
        if (cJSON_IsNumber(size) && size->valuedouble >= 0 && size->valuedouble < 9.0e15)
            t->size = (uint64_t)size->valuedouble;
        if (cJSON_IsObject(lfs)) {
            const cJSON *oid = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
            const cJSON *ls = cJSON_GetObjectItemCaseSensitive(lfs, "size");
            if (cJSON_IsString(oid) && is_hex(oid->valuestring, 64)) {
                for (int i = 0; i < 64; i++)
                    t->sha256[i] = (char)tolower((unsigned char)oid->valuestring[i]);
                t->sha256[64] = '\0';
            }
            if (cJSON_IsNumber(ls) && ls->valuedouble >= 0 && ls->valuedouble < 9.0e15)
                t->size = (uint64_t)ls->valuedouble;
        }
        k++;
    }
    cJSON_Delete(a);
    *out = v;
    *n = k;
    return M40LLM_OK;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int depth(const char *p) {
    int d = 0;
    for (; *p; p++) d += *p == '/';
    return d;
}

static bool is_gguf(const char *p) {
    size_t l = strlen(p);
    return l > 5 && !strcasecmp(p + l - 5, ".gguf");
}

/* Adds every part of the split model whose part `first` is; or first alone. */
static int take_group(const pull_tree_entry *e, int n, int first, pull_plan *plan) {
    int k, total;
    size_t pl;
    const char *b = base_name(e[first].path);
    plan->n_files = 0;
    if (!store_split_part(b, &k, &total, &pl)) {
        pull_file *f = &plan->files[plan->n_files++];
        store_fmt(f->path, sizeof f->path, "%s", e[first].path);
        memcpy(f->sha256, e[first].sha256, sizeof f->sha256);
        f->size = e[first].size;
        return M40LLM_OK;
    }
    if (total > STORE_MAX_PARTS)
        return err_set(M40LLM_ERR_UNSUPPORTED, "%s: split into %d parts (at most %d)", b, total,
                       STORE_MAX_PARTS);
    size_t dir_len = (size_t)(b - e[first].path);
    for (int want = 1; want <= total; want++) {
        int hit = -1;
        for (int i = 0; i < n && hit < 0; i++) {
            int kk, nn;
            size_t pp;
            const char *bi = base_name(e[i].path);
            if ((size_t)(bi - e[i].path) == dir_len &&
                !strncmp(e[i].path, e[first].path, dir_len) &&
                store_split_part(bi, &kk, &nn, &pp) && kk == want && nn == total && pp == pl &&
                !strncmp(bi, b, pl))
                hit = i;
        }
        if (hit < 0)
            return err_set(M40LLM_ERR_NOT_FOUND,
                           "%s: part %d of %d of the split model is missing from the repository", b,
                           want, total);
        pull_file *f = &plan->files[plan->n_files++];
        store_fmt(f->path, sizeof f->path, "%s", e[hit].path);
        memcpy(f->sha256, e[hit].sha256, sizeof f->sha256);
        f->size = e[hit].size;
    }
    return M40LLM_OK;
}

int pull_hf_select(const pull_tree_entry *e, int n, const char *file, const char *quant,
                   pull_plan *plan) {
    int best = -1;
    if (file) {
        for (int i = 0; i < n && best < 0; i++)
            if (!strcmp(e[i].path, file)) best = i;
        if (best < 0)
            return err_set(M40LLM_ERR_NOT_FOUND, "%s: no such file in the repository", file);
        if (!is_gguf(file)) return err_set(M40LLM_ERR_FORMAT, "%s: not a .gguf file", file);
    } else {
        const char *q = quant && *quant ? quant : "Q4_K_M";
        int n_gguf = 0;
        for (int i = 0; i < n; i++) {
            const char *b = base_name(e[i].path);
            if (!is_gguf(b) || strcasestr(b, "mmproj")) continue; /* vision projectors */
            n_gguf++;
            int k, t;
            size_t pl;
            if (store_split_part(b, &k, &t, &pl) && k != 1) continue;
            if (!store_file_has_quant(b, q)) continue;
            /* top-level files over variants in subfolders, then the shortest name */
            if (best < 0 || depth(e[i].path) < depth(e[best].path) ||
                (depth(e[i].path) == depth(e[best].path) &&
                 strlen(e[i].path) < strlen(e[best].path)))
                best = i;
        }
        if (best < 0)
            return err_set(M40LLM_ERR_NOT_FOUND,
                           "no %s GGUF file in the repository (%d GGUF files%s)", q, n_gguf,
                           n_gguf ? "; name one with hf.co/OWNER/REPO:QUANT" : "");
        store_fmt(plan->quant, sizeof plan->quant, "%s", q);
    }
    return take_group(e, n, best, plan);
}

/* OWNER/REPO: two components of [A-Za-z0-9._-], neither starting with '.' */
static bool valid_repo(const char *r) {
    const char *sl = strchr(r, '/');
    if (!sl || strchr(sl + 1, '/') || sl == r || !sl[1] || strlen(r) > 200) return false;
    for (const char *c = r; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("._-/", *c)) return false;
    return r[0] != '.' && sl[1] != '.' && r[0] != '-' && sl[1] != '-';
}

/* URL-escapes each '/'-separated component of a path into out. */
static int escape_path(const char *path, char *out, size_t size) {
    out[0] = '\0';
    size_t o = 0;
    for (const char *c = path; c;) {
        const char *sl = strchr(c, '/');
        int l = sl ? (int)(sl - c) : (int)strlen(c);
        char *esc = curl_easy_escape(NULL, c, l);
        if (!esc) return err_set(M40LLM_ERR_OOM, "out of memory");
        int w = store_fmt(out + o, size - o, "%s%s", o ? "/" : "", esc);
        curl_free(esc);
        if (w < 0 || (size_t)w >= size - o) return err_set(M40LLM_ERR_INVALID_ARG, "path too long");
        o += (size_t)w;
        c = sl ? sl + 1 : NULL;
    }
    return M40LLM_OK;
}

int pull_hf_plan(const char *repo, const char *file, const char *quant, pull_plan *plan) {
    memset(plan, 0, sizeof *plan);
    if (!valid_repo(repo))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "'%s' is not a Hugging Face repository name (OWNER/REPO)", repo);
    if (file && !safe_path(file))
        return err_set(M40LLM_ERR_INVALID_ARG, "'%s' is not a file path in a repository", file);
    char ep[1024], url[2048];
    pull_hf_endpoint(ep, sizeof ep);
    const char *token = getenv("HF_TOKEN");
    store_fmt(plan->source, sizeof plan->source, "hf.co/%s", repo);
    /* the commit of main, so that every file comes from one revision */
    store_fmt(url, sizeof url, "%s/api/models/%s/revision/main", ep, repo);
    char *body = NULL;
    size_t len = 0;
    long st = 0;
    int rc = pull_http_get(url, token, PULL_API_CAP, &body, &len, &st);
    if (rc) return rc;
    if (st != 200) {
        free(body);
        if (st == 404)
            return err_set(M40LLM_ERR_NOT_FOUND, "%s: HTTP 404: no repository %s", url, repo);
        return pull_http_status_error(url, st);
    }
    cJSON *o = json_check(body, len, "the revision answer", 0) == M40LLM_OK
                   ? cJSON_ParseWithLength(body, len)
                   : NULL;
    free(body);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(o, "sha");
    if (!cJSON_IsString(sha) || strlen(sha->valuestring) >= sizeof plan->revision ||
        !sha->valuestring[0] ||
        strspn(sha->valuestring, "0123456789abcdefABCDEF") != strlen(sha->valuestring)) {
        cJSON_Delete(o);
        return err_set(M40LLM_ERR_FORMAT, "%s: the answer holds no commit ('sha')", url);
    }
    store_fmt(plan->revision, sizeof plan->revision, "%s", sha->valuestring);
    cJSON_Delete(o);
    store_fmt(url, sizeof url, "%s/api/models/%s/tree/%s?recursive=true", ep, repo, plan->revision);
    rc = pull_http_get(url, token, PULL_API_CAP, &body, &len, &st);
    if (rc) return rc;
    if (st != 200) {
        free(body);
        return pull_http_status_error(url, st);
    }
    pull_tree_entry *e = NULL;
    int n = 0;
    rc = pull_hf_parse_tree(body, len, &e, &n);
    free(body);
    if (rc) return err_prefix(rc, "%s", url);
    rc = pull_hf_select(e, n, file, quant, plan);
    free(e);
    if (rc) return err_prefix(rc, "hf.co/%s", repo);
    for (int i = 0; i < plan->n_files; i++) {
        char esc[1024];
        rc = escape_path(plan->files[i].path, esc, sizeof esc);
        if (rc) return rc;
        store_fmt(plan->files[i].url, sizeof plan->files[i].url, "%s/%s/resolve/%s/%s", ep, repo,
                  plan->revision, esc);
    }
    return M40LLM_OK;
}
