/* Ollama's store, used in place: manifests/<host>/<namespace>/<model>/<tag>
 * (an OCI image manifest) -> the layer of media type
 * application/vnd.ollama.image.model -> blobs/sha256-<hex>, a GGUF file. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "fileio.h"
#include "json_check.h"
#include "store.h"

#define OLLAMA_MODEL_MEDIA "application/vnd.ollama.image.model"
#define OLLAMA_NS_DEFAULT  "library"

int store_ollama_root(char *out, size_t size) {
    const char *env = getenv("OLLAMA_MODELS");
    const char *home = getenv("HOME");
    int n;
    if (env && *env)
        n = store_fmt(out, size, "%s", env);
    else if (home && *home)
        n = store_fmt(out, size, "%s/.ollama/models", home);
    else
        return err_set(M40LLM_ERR_NOT_FOUND, "no $OLLAMA_MODELS or $HOME");
    if (n < 0 || (size_t)n >= size) return err_set(M40LLM_ERR_INVALID_ARG, "path too long");
    return M40LLM_OK;
}

int store_ollama_parse_manifest(const char *text, size_t len, const char *what, char *sha256,
                                uint64_t *size) {
    sha256[0] = '\0';
    *size = 0;
    if (len > STORE_MANIFEST_CAP)
        return err_set(M40LLM_ERR_FORMAT, "%s: larger than %zu bytes: not an Ollama manifest", what,
                       STORE_MANIFEST_CAP);
    int rc = json_check(text, len, what, 100000);
    if (rc) return rc;
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(o, "layers");
    if (!cJSON_IsObject(o) || !cJSON_IsArray(layers)) {
        cJSON_Delete(o);
        return err_set(M40LLM_ERR_FORMAT, "%s: not an Ollama manifest (no 'layers' list)", what);
    }
    rc = err_set(M40LLM_ERR_NOT_FOUND, "%s: no layer of type %s", what, OLLAMA_MODEL_MEDIA);
    const cJSON *l;
    cJSON_ArrayForEach(l, layers) {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(l, "mediaType");
        if (!cJSON_IsString(mt) || strcmp(mt->valuestring, OLLAMA_MODEL_MEDIA)) continue;
        const cJSON *dg = cJSON_GetObjectItemCaseSensitive(l, "digest");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(l, "size");
        const char *d = cJSON_IsString(dg) ? dg->valuestring : "";
        bool ok = !strncmp(d, "sha256:", 7) && strlen(d + 7) == 64;
        for (size_t i = 7; ok && d[i]; i++)
            ok = isdigit((unsigned char)d[i]) || (d[i] >= 'a' && d[i] <= 'f');
        if (!ok) {
            rc = err_set(M40LLM_ERR_FORMAT, "%s: the model layer's digest is not sha256:<64 hex>",
                         what);
            break;
        }
        memcpy(sha256, d + 7, 65);
        if (cJSON_IsNumber(sz) && sz->valuedouble >= 0 && sz->valuedouble < 9.0e15)
            *size = (uint64_t)sz->valuedouble;
        rc = M40LLM_OK;
        break;
    }
    cJSON_Delete(o);
    return rc;
}

/* A path component as Ollama writes them: no '/', not hidden. */
static bool plain(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/');
}

/* Reads manifests/host/ns/model/tag; fills m when its model blob exists. */
static int load_one(const char *root, const char *host, const char *ns, const char *model,
                    const char *tag, store_model *m) {
    char path[STORE_PATH_MAX];
    store_fmt(path, sizeof path, "%s/manifests/%s/%s/%s/%s", root, host, ns, model, tag);
    char *text = NULL;
    size_t len = 0;
    int rc = fileio_read_file(path, STORE_MANIFEST_CAP, "an Ollama manifest", &text, &len);
    if (rc) return rc;
    char sha[65];
    uint64_t size = 0;
    rc = store_ollama_parse_manifest(text, len, path, sha, &size);
    free(text);
    if (rc) return rc;
    memset(m, 0, sizeof *m);
    store_fmt(m->path, sizeof m->path, "%s/blobs/sha256-%s", root, sha);
    struct stat st;
    if (stat(m->path, &st) != 0 || !S_ISREG(st.st_mode))
        return err_set(M40LLM_ERR_NOT_FOUND, "%s: its model blob %s is missing", path, m->path);
    m->origin = STORE_OLLAMA;
    if (!strcmp(ns, OLLAMA_NS_DEFAULT))
        store_fmt(m->name, sizeof m->name, "ollama:%s:%s", model, tag);
    else
        store_fmt(m->name, sizeof m->name, "ollama:%s/%s:%s", ns, model, tag);
    store_fmt(m->source, sizeof m->source, "%s/%s/%s:%s", host, ns, model, tag);
    m->n_parts = 1;
    store_fmt(m->parts[0].file, sizeof m->parts[0].file, "sha256-%s", sha);
    memcpy(m->parts[0].sha256, sha, 65);
    m->parts[0].size = m->size = (uint64_t)st.st_size;
    m->modified = (long long)st.st_mtime;
    return M40LLM_OK;
}

/* Sorted entries of a directory that are plain names (malloc'd list). */
static int dir_names(const char *dir, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!plain(de->d_name) || strlen(de->d_name) > 200) continue;
        if (*n >= STORE_LIST_MAX) break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            char **nv = realloc(*out, (size_t)cap * sizeof *nv);
            if (!nv) break;
            *out = nv;
        }
        (*out)[(*n)++] = strdup(de->d_name);
        if (!(*out)[*n - 1]) (*n)--;
    }
    closedir(d);
    for (int i = 1; i < *n; i++) /* few entries: insertion sort */
        for (int j = i; j > 0 && strcmp((*out)[j - 1], (*out)[j]) > 0; j--) {
            char *t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
    return 0;
}

static void names_free(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

typedef bool (*ollama_visit)(void *user, const char *root, const char *host, const char *ns,
                             const char *model, const char *tag);

/* Calls visit for every manifests/host/ns/model/tag until it returns false. */
static void walk_ollama(const char *root, ollama_visit visit, void *user) {
    char dir[STORE_PATH_MAX];
    char **hosts, **nss, **models, **tags;
    int nh, nn, nm, nt;
    bool go = true;
    store_fmt(dir, sizeof dir, "%s/manifests", root);
    dir_names(dir, &hosts, &nh);
    for (int h = 0; go && h < nh; h++) {
        store_fmt(dir, sizeof dir, "%s/manifests/%s", root, hosts[h]);
        dir_names(dir, &nss, &nn);
        for (int s = 0; go && s < nn; s++) {
            store_fmt(dir, sizeof dir, "%s/manifests/%s/%s", root, hosts[h], nss[s]);
            dir_names(dir, &models, &nm);
            for (int m = 0; go && m < nm; m++) {
                store_fmt(dir, sizeof dir, "%s/manifests/%s/%s/%s", root, hosts[h], nss[s],
                          models[m]);
                dir_names(dir, &tags, &nt);
                for (int t = 0; go && t < nt; t++)
                    go = visit(user, root, hosts[h], nss[s], models[m], tags[t]);
                names_free(tags, nt);
            }
            names_free(models, nm);
        }
        names_free(nss, nn);
    }
    names_free(hosts, nh);
}

typedef struct list_ctx {
    store_model *v;
    int n, cap;
    int rc;
} list_ctx;

static bool list_visit(void *user, const char *root, const char *host, const char *ns,
                       const char *model, const char *tag) {
    list_ctx *c = user;
    if (c->n >= STORE_LIST_MAX) return false;
    if ((c->rc = store_models_reserve(&c->v, c->n, &c->cap))) return false;
    if (load_one(root, host, ns, model, tag, &c->v[c->n]) == M40LLM_OK) c->n++;
    return true;
}

int store_list_ollama(store_model **out, int *n) {
    *out = NULL;
    *n = 0;
    char root[STORE_PATH_MAX];
    if (store_ollama_root(root, sizeof root)) return M40LLM_OK; /* nowhere to look */
    list_ctx c = {0};
    walk_ollama(root, list_visit, &c);
    if (c.rc) {
        free(c.v);
        return c.rc;
    }
    *out = c.v;
    *n = c.n;
    return M40LLM_OK;
}

typedef struct find_ctx {
    const char *host, *ns, *model, *tag; /* host, ns may be NULL: any */
    store_model *out;
    bool found;
} find_ctx;

static bool find_visit(void *user, const char *root, const char *host, const char *ns,
                       const char *model, const char *tag) {
    find_ctx *c = user;
    if ((c->host && strcmp(c->host, host)) || strcmp(c->ns, ns) || strcmp(c->model, model) ||
        strcmp(c->tag, tag))
        return true;
    c->found = load_one(root, host, ns, model, tag, c->out) == M40LLM_OK;
    return !c->found;
}

int store_find_ollama(const char *spec, store_model *out) {
    const char *s = spec;
    if (!strncmp(s, "ollama:", 7)) s += 7;
    char buf[STORE_NAME_MAX + 16];
    /* the same rules as store names: no "..", no absolute path, no control bytes */
    int rc = store_name_normalize(s, buf, sizeof buf);
    if (rc) return rc;
    char *name, *tag;
    store_name_split(buf, &name, &tag);
    char *parts[3] = {NULL, NULL, NULL};
    int np = 0;
    for (char *p = name; np < 4;) {
        char *sl = strchr(p, '/');
        if (np == 3) return err_set(M40LLM_ERR_INVALID_ARG, "ollama:%s: too many '/'", s);
        parts[np++] = p;
        if (!sl) break;
        *sl = '\0';
        p = sl + 1;
    }
    find_ctx c = {.tag = tag, .out = out};
    c.model = parts[np - 1];
    c.ns = np >= 2 ? parts[np - 2] : OLLAMA_NS_DEFAULT;
    c.host = np == 3 ? parts[0] : NULL;
    char root[STORE_PATH_MAX];
    rc = store_ollama_root(root, sizeof root);
    if (rc) return rc;
    walk_ollama(root, find_visit, &c);
    if (!c.found)
        return err_set(M40LLM_ERR_NOT_FOUND,
                       "Ollama model '%s' not found in %s (or its model layer is missing)", s,
                       root);
    return M40LLM_OK;
}
