/* MODEL arguments: one resolution for every command (run, serve, bench,
 * show, perplexity, tokenize, template) and for serve's requests. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "err.h"
#include "store.h"

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The model directories of earlier versions (plain GGUF files by name).
 * 1 found, 0 not found, <0 ambiguous (error set). */
static int search_dir(const char *dir, const char *name, char *path, size_t size) {
    store_fmt(path, size, "%s/%s", dir, name);
    if (is_file(path)) return 1;
    store_fmt(path, size, "%s/%s.gguf", dir, name);
    if (is_file(path)) return 1;
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t nl = strlen(name);
    char found[512] = "";
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcasecmp(de->d_name + l - 5, ".gguf") || strncasecmp(de->d_name, name, nl))
            continue;
        if (n++ == 0) store_fmt(found, sizeof found, "%s", de->d_name);
    }
    closedir(d);
    if (n > 1)
        return err_set(M40LLM_ERR_INVALID_ARG, "model name '%s' matches %d files in %s", name, n,
                       dir);
    if (n == 0) return 0;
    store_fmt(path, size, "%s/%s", dir, found);
    return 1;
}

static int legacy_search(const char *name, char *path, size_t size) {
    char dirs[2][STORE_PATH_MAX];
    int nd = 0;
    const char *env = getenv("M40LLM_MODELS");
    if (env && *env) store_fmt(dirs[nd++], sizeof dirs[0], "%s", env);
    const char *home = getenv("HOME");
    if (home && *home) store_fmt(dirs[nd++], sizeof dirs[0], "%s/.cache/m40-llm/models", home);
    for (int i = 0; i < nd; i++) {
        int rc = search_dir(dirs[i], name, path, size);
        if (rc) return rc;
    }
    return 0;
}

static int as_path(const char *spec, store_model *out) {
    if ((size_t)store_fmt(out->path, sizeof out->path, "%s", spec) >= sizeof out->path)
        return err_set(M40LLM_ERR_INVALID_ARG, "model path is longer than %zu bytes: %.60s...",
                       sizeof out->path - 1, spec);
    out->origin = STORE_PATH;
    store_fmt(out->name, sizeof out->name, "%.*s", (int)sizeof out->name - 1, spec);
    return M40LLM_OK;
}

static bool has_prefix(const char *s, const char *p) {
    return !strncmp(s, p, strlen(p));
}

int store_resolve(const char *spec, store_model *out) {
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return err_set(M40LLM_ERR_INVALID_ARG, "no model given");
    int rc;
    if (has_prefix(spec, "ollama:")) {
        rc = store_find_ollama(spec, out);
        if (rc == M40LLM_OK) store_fill_facts(out);
        return rc;
    }
    if (has_prefix(spec, "llama:")) {
        rc = store_find_llama_cache(spec, out);
        if (rc == M40LLM_OK) store_fill_facts(out);
        return rc;
    }
    char home[STORE_PATH_MAX], norm[STORE_NAME_MAX + 16];
    bool have_home = store_home(home, sizeof home) == M40LLM_OK;
    if (has_prefix(spec, "hf:")) {
        rc = store_find_hf(spec, out);
        if (rc == M40LLM_OK) {
            store_fill_facts(out);
            return rc;
        }
        /* pulled into the store as hf.co/OWNER/REPO:QUANT */
        char alt[STORE_NAME_MAX + 16];
        store_fmt(alt, sizeof alt, "hf.co/%s", spec + 3);
        if (have_home && store_name_normalize(alt, norm, sizeof norm) == M40LLM_OK &&
            store_manifest_read(home, norm, out) == M40LLM_OK)
            return M40LLM_OK;
        return store_find_hf(spec, out); /* its message again */
    }
    /* a special file here is taken as the path, so that opening it says
     * what it is ("is a FIFO") instead of searching the model store */
    struct stat st;
    if (stat(spec, &st) == 0 && !S_ISDIR(st.st_mode)) return as_path(spec, out);
    bool pathlike = spec[0] == '/' || has_prefix(spec, "./") || has_prefix(spec, "../") ||
                    (strlen(spec) > 5 && !strcasecmp(spec + strlen(spec) - 5, ".gguf"));
    if (pathlike) return as_path(spec, out);
    bool valid = store_name_normalize(spec, norm, sizeof norm) == M40LLM_OK;
    if (valid && have_home) {
        rc = store_manifest_read(home, norm, out);
        if (rc == M40LLM_OK) {
            if (!is_file(out->path))
                return err_set(M40LLM_ERR_NOT_FOUND,
                               "model '%s': its file %s is missing from the store; pull it again",
                               norm, out->path);
            return M40LLM_OK;
        }
        if (rc != M40LLM_ERR_NOT_FOUND) return rc; /* a broken manifest: say so */
        memset(out, 0, sizeof *out);
    }
    if (!strchr(spec, '/')) {
        rc = legacy_search(spec, out->path, sizeof out->path);
        if (rc < 0) return rc;
        if (rc > 0) {
            out->origin = STORE_PATH;
            store_fmt(out->name, sizeof out->name, "%s", spec);
            return M40LLM_OK;
        }
    }
    if (strchr(spec, '/') && !valid) return as_path(spec, out);
    if (!valid) return store_name_normalize(spec, norm, sizeof norm); /* says why */
    return err_set(M40LLM_ERR_NOT_FOUND,
                   "model '%s' is neither a file nor in the model store (%s); 'm40-llm pull %s' "
                   "downloads it, 'm40-llm list' shows the models there are",
                   spec, have_home ? home : "$M40LLM_HOME", spec);
}

int store_check_single_file(const store_model *m) {
    int k = 1, n = m->n_parts;
    size_t pl;
    const char *base = strrchr(m->path, '/');
    base = base ? base + 1 : m->path;
    const char *file = m->n_parts ? m->parts[0].file : base;
    if (n <= 1 && !store_split_part(file, &k, &n, &pl)) n = 1;
    if (n > 1)
        return err_set(M40LLM_ERR_UNSUPPORTED,
                       "model '%s' is split into %d files; this engine loads a model from one "
                       "GGUF file (merge the parts with llama.cpp's llama-gguf-split --merge)",
                       m->name, n);
    return M40LLM_OK;
}

static int append(store_model **all, int *n, store_model *more, int m) {
    if (!m) {
        free(more);
        return M40LLM_OK;
    }
    store_model *nv = realloc(*all, (size_t)(*n + m) * sizeof *nv);
    if (!nv) {
        free(more);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    memcpy(nv + *n, more, (size_t)m * sizeof *nv);
    free(more);
    *all = nv;
    *n += m;
    return M40LLM_OK;
}

int store_list_all(store_model **out, int *n) {
    *out = NULL;
    *n = 0;
    char home[STORE_PATH_MAX];
    store_model *v = NULL;
    int k = 0, rc = M40LLM_OK;
    if (store_home(home, sizeof home) == M40LLM_OK) {
        rc = store_list_own(home, true, &v, &k);
        if (rc == M40LLM_OK) rc = append(out, n, v, k);
    }
    int (*const others[])(store_model **, int *) = {store_list_ollama, store_list_hf,
                                                    store_list_llama_cache};
    for (size_t i = 0; rc == M40LLM_OK && i < sizeof others / sizeof others[0]; i++) {
        int start = *n;
        rc = others[i](&v, &k);
        if (rc == M40LLM_OK) rc = append(out, n, v, k);
        for (int j = start; rc == M40LLM_OK && j < *n; j++) store_fill_facts(&(*out)[j]);
    }
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}
