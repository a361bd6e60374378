/* GGUF files already on disk in the Hugging Face hub cache
 * (models--OWNER--REPO/snapshots/<revision>/...gguf, symbolic links into
 * the repository's blobs/) and in llama.cpp's cache directory, used in
 * place. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fileio.h"
#include "store.h"

#define HF_MAX_DEPTH 4

/* Quantization names looked for in file names (whole words), longest
 * first within a family. */
static const char *const hf_quants[] = {
    "Q4_K_M", "Q4_K_S",  "Q4_K_L", "Q5_K_M", "Q5_K_S", "Q5_K_L",  "Q3_K_M", "Q3_K_S",
    "Q3_K_L", "Q3_K_XL", "Q2_K_L", "Q2_K_S", "Q2_K",   "Q6_K_L",  "Q6_K",   "Q8_0",
    "Q4_0",   "Q4_1",    "Q5_0",   "Q5_1",   "IQ4_XS", "IQ4_NL",  "IQ3_M",  "IQ3_S",
    "IQ3_XS", "IQ3_XXS", "IQ2_M",  "IQ2_S",  "IQ2_XS", "IQ2_XXS", "IQ1_M",  "IQ1_S",
    "F16",    "BF16",    "F32",    "Q4_K",   "Q5_K",   "Q3_K",
};

static const char *quant_of_file(const char *file) {
    for (size_t i = 0; i < sizeof hf_quants / sizeof hf_quants[0]; i++)
        if (store_file_has_quant(file, hf_quants[i])) return hf_quants[i];
    return NULL;
}

static bool ends_gguf(const char *s) {
    size_t l = strlen(s);
    return l > 5 && !strcasecmp(s + l - 5, ".gguf");
}

/* A file that stands for a model: a GGUF, not part 2.. of a split one. */
static bool model_file(const char *name) {
    int k, n;
    size_t pl;
    if (!ends_gguf(name)) return false;
    return !store_split_part(name, &k, &n, &pl) || k == 1;
}

int store_hf_root(char *out, size_t size) {
    const char *cache = getenv("HF_HUB_CACHE"), *hfhome = getenv("HF_HOME"), *home = getenv("HOME");
    int n;
    if (cache && *cache)
        n = store_fmt(out, size, "%s", cache);
    else if (hfhome && *hfhome)
        n = store_fmt(out, size, "%s/hub", hfhome);
    else if (home && *home)
        n = store_fmt(out, size, "%s/.cache/huggingface/hub", home);
    else
        return err_set(M40LLM_ERR_NOT_FOUND, "no $HF_HUB_CACHE, $HF_HOME or $HOME");
    if (n < 0 || (size_t)n >= size) return err_set(M40LLM_ERR_INVALID_ARG, "path too long");
    return M40LLM_OK;
}

static int llama_root(char *out, size_t size) {
    const char *env = getenv("LLAMA_CACHE"), *home = getenv("HOME");
    int n;
    if (env && *env)
        n = store_fmt(out, size, "%s", env);
    else if (home && *home)
        n = store_fmt(out, size, "%s/.cache/llama.cpp", home);
    else
        return err_set(M40LLM_ERR_NOT_FOUND, "no $LLAMA_CACHE or $HOME");
    if (n < 0 || (size_t)n >= size) return err_set(M40LLM_ERR_INVALID_ARG, "path too long");
    return M40LLM_OK;
}

/* The snapshot directory of a cached repository: the one refs/main names,
 * else the most recently modified. */
static bool pick_snapshot(const char *repo_dir, char *out, size_t size, char *rev,
                          size_t rev_size) {
    char p[STORE_PATH_MAX];
    store_fmt(p, sizeof p, "%s/refs/main", repo_dir);
    /* read as any file here: capped, and a FIFO is refused rather than waited on */
    char ref[96] = "", *text = NULL;
    size_t len = 0;
    if (fileio_read_file(p, 256, "a revision ref", &text, &len) == M40LLM_OK) {
        store_fmt(ref, sizeof ref, "%s", text);
        ref[strcspn(ref, "\r\n")] = '\0';
        free(text);
    }
    struct stat st;
    bool ok_ref = ref[0] && !strchr(ref, '/') && ref[0] != '.';
    if (ok_ref) {
        store_fmt(out, size, "%s/snapshots/%s", repo_dir, ref);
        if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
            store_fmt(rev, rev_size, "%s", ref);
            return true;
        }
    }
    store_fmt(p, sizeof p, "%s/snapshots", repo_dir);
    DIR *d = opendir(p);
    if (!d) return false;
    long long best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char s[STORE_PATH_MAX];
        if (store_fmt(s, sizeof s, "%s/%s", p, de->d_name) >= (int)sizeof s) continue;
        if (stat(s, &st) != 0 || !S_ISDIR(st.st_mode) || (long long)st.st_mtime <= best) continue;
        best = (long long)st.st_mtime;
        store_fmt(out, size, "%s", s);
        store_fmt(rev, rev_size, "%s", de->d_name);
    }
    closedir(d);
    return best >= 0;
}

typedef bool (*file_visit)(void *user, const char *path, const char *rel);

/* Every regular file (links followed) under dir, depth-limited, sorted per
 * directory level by readdir order; visit returns false to stop. */
static bool walk_files(const char *dir, const char *rel, int depth, file_visit visit, void *user) {
    if (depth > HF_MAX_DEPTH) return true;
    DIR *d = opendir(dir);
    if (!d) return true;
    bool go = true;
    struct dirent *de;
    while (go && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[STORE_PATH_MAX], r[512];
        if (store_fmt(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        if (store_fmt(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= (int)sizeof r)
            continue;
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode))
            go = walk_files(path, r, depth + 1, visit, user);
        else if (S_ISREG(st.st_mode))
            go = visit(user, path, r);
    }
    closedir(d);
    return go;
}

/* Fills m for a GGUF found at path (rel: its path in the repository). */
static void fill_found(store_model *m, store_origin origin, const char *path, const char *rel) {
    memset(m, 0, sizeof *m);
    m->origin = origin;
    store_fmt(m->path, sizeof m->path, "%s", path);
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    m->n_parts = 1;
    store_fmt(m->parts[0].file, sizeof m->parts[0].file, "%s", base);
    struct stat st;
    if (stat(path, &st) == 0) {
        m->size = m->parts[0].size = (uint64_t)st.st_size;
        m->modified = (long long)st.st_mtime;
    }
    /* the cache links snapshots to blobs named by their sha256 */
    char target[STORE_PATH_MAX];
    ssize_t tl = readlink(path, target, sizeof target - 1);
    if (tl > 0) {
        target[tl] = '\0';
        const char *b = strrchr(target, '/');
        b = b ? b + 1 : target;
        bool hex = strlen(b) == 64;
        for (const char *c = b; hex && *c; c++)
            hex = isxdigit((unsigned char)*c) && !isupper((unsigned char)*c);
        if (hex) store_fmt(m->parts[0].sha256, sizeof m->parts[0].sha256, "%s", b);
    }
}

/* "models--OWNER--REPO" -> "OWNER/REPO" */
static bool repo_of_dir(const char *d, char *out, size_t size) {
    if (strncmp(d, "models--", 8)) return false;
    const char *sep = strstr(d + 8, "--");
    if (!sep || sep == d + 8 || !sep[2]) return false;
    return store_fmt(out, size, "%.*s/%s", (int)(sep - d - 8), d + 8, sep + 2) < (int)size;
}

typedef struct hf_list_ctx {
    store_model *v;
    int n, cap, rc;
    store_origin origin;
    const char *repo;     /* OWNER/REPO (HF), during hf_list_repo */
    const char *revision; /* snapshot, during hf_list_repo */
} hf_list_ctx;

static bool hf_list_visit(void *user, const char *path, const char *rel) {
    hf_list_ctx *c = user;
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (!model_file(base)) return true;
    if (c->n >= STORE_LIST_MAX) return false;
    if ((c->rc = store_models_reserve(&c->v, c->n, &c->cap))) return false;
    store_model *m = &c->v[c->n++];
    fill_found(m, c->origin, path, rel);
    char stem[256];
    store_fmt(stem, sizeof stem, "%.*s", (int)(strlen(base) - 5), base);
    if (c->origin == STORE_HF) {
        const char *q = quant_of_file(base);
        char tag[256];
        store_fmt(tag, sizeof tag, "%s", q ? q : stem);
        for (char *t = tag; *t; t++) *t = (char)tolower((unsigned char)*t);
        store_fmt(m->name, sizeof m->name, "hf:%s:%s", c->repo, tag);
        store_fmt(m->source, sizeof m->source, "hf.co/%s/%s", c->repo, rel);
        store_fmt(m->revision, sizeof m->revision, "%s", c->revision);
    } else {
        store_fmt(m->name, sizeof m->name, "llama:%s", stem);
        store_fmt(m->source, sizeof m->source, "%s", path);
    }
    return true;
}

/* Lists the GGUFs of one cached repository directory into c. */
static void hf_list_repo(const char *root, const char *dname, hf_list_ctx *c) {
    char repo[300], dir[STORE_PATH_MAX], snap[STORE_PATH_MAX], rev[96];
    if (!repo_of_dir(dname, repo, sizeof repo)) return;
    store_fmt(dir, sizeof dir, "%s/%s", root, dname);
    if (!pick_snapshot(dir, snap, sizeof snap, rev, sizeof rev)) return;
    c->repo = repo;
    c->revision = rev;
    walk_files(snap, "", 0, hf_list_visit, c);
}

int store_list_hf(store_model **out, int *n) {
    *out = NULL;
    *n = 0;
    char root[STORE_PATH_MAX];
    if (store_hf_root(root, sizeof root)) return M40LLM_OK;
    DIR *d = opendir(root);
    if (!d) return M40LLM_OK;
    hf_list_ctx c = {.origin = STORE_HF};
    struct dirent *de;
    while (!c.rc && (de = readdir(d))) hf_list_repo(root, de->d_name, &c);
    closedir(d);
    if (c.rc) {
        free(c.v);
        return c.rc;
    }
    *out = c.v;
    *n = c.n;
    return M40LLM_OK;
}

/* Picks, among the listed files of one repository, the one spec asks for:
 * a file path, a quantization, or the only file. */
static int hf_pick(const hf_list_ctx *c, const char *want_file, const char *want_quant,
                   const char *spec, store_model *out) {
    int hit = -1, n_hit = 0;
    for (int i = 0; i < c->n; i++) {
        const char *f = c->v[i].parts[0].file;
        /* source is hf.co/OWNER/REPO/PATH */
        const char *rel = c->v[i].source;
        for (int k = 0; k < 3 && rel; k++) rel = strchr(rel, '/') ? strchr(rel, '/') + 1 : NULL;
        if (!rel) rel = f;
        bool ok = want_file    ? !strcasecmp(rel, want_file) || !strcasecmp(f, want_file)
                  : want_quant ? store_file_has_quant(f, want_quant)
                               : true;
        if (ok && n_hit++ == 0) hit = i;
    }
    if (!want_file && !want_quant && n_hit > 1) /* several files: the default quantization */
        return hf_pick(c, NULL, "Q4_K_M", spec, out);
    if (hit < 0)
        return err_set(M40LLM_ERR_NOT_FOUND, "%s: the cached repository has no %s file%s%s", spec,
                       want_file    ? want_file
                       : want_quant ? want_quant
                                    : "GGUF",
                       c->n ? "; it has " : "", c->n ? c->v[0].parts[0].file : "");
    *out = c->v[hit];
    return M40LLM_OK;
}

int store_find_hf(const char *spec, store_model *out) {
    const char *s = spec;
    if (!strncmp(s, "hf:", 3))
        s += 3;
    else if (!strncmp(s, "hf.co/", 6))
        s += 6;
    char norm[STORE_NAME_MAX + 16];
    int rc = store_name_normalize(s, norm, sizeof norm); /* validation: no "..", no '/' first */
    if (rc) return rc;
    char buf[STORE_NAME_MAX + 16], *file = NULL, *quant = NULL;
    store_fmt(buf, sizeof buf, "%s", s);
    char *slash1 = strchr(buf, '/');
    char *slash2 = slash1 ? strchr(slash1 + 1, '/') : NULL;
    if (!slash1) return err_set(M40LLM_ERR_INVALID_ARG, "hf:%s: expected hf:OWNER/REPO[:QUANT]", s);
    if (slash2) {
        *slash2 = '\0';
        file = slash2 + 1;
    } else {
        char *colon = strchr(buf, ':');
        if (colon) {
            *colon = '\0';
            quant = colon + 1;
        }
    }
    char root[STORE_PATH_MAX];
    rc = store_hf_root(root, sizeof root);
    if (rc) return rc;
    *slash1 = '\0';
    char dname[STORE_PATH_MAX];
    store_fmt(dname, sizeof dname, "models--%s--%s", buf, slash1 + 1);
    *slash1 = '/';
    DIR *d = opendir(root);
    bool found = false;
    if (d) {
        struct dirent *de;
        while (!found && (de = readdir(d))) {
            if (strcasecmp(de->d_name, dname)) continue;
            hf_list_ctx c = {.origin = STORE_HF};
            hf_list_repo(root, de->d_name, &c);
            found = true;
            rc = c.rc ? c.rc : hf_pick(&c, file, quant, spec, out);
            free(c.v);
        }
        closedir(d);
    }
    if (!found)
        return err_set(M40LLM_ERR_NOT_FOUND,
                       "%s is not in the Hugging Face cache (%s); 'm40-llm pull hf.co/%s' "
                       "downloads it",
                       spec, root, s);
    return rc;
}

int store_list_llama_cache(store_model **out, int *n) {
    *out = NULL;
    *n = 0;
    char root[STORE_PATH_MAX];
    if (llama_root(root, sizeof root)) return M40LLM_OK;
    hf_list_ctx c = {.origin = STORE_LLAMA_CACHE};
    /* flat: llama.cpp writes OWNER_REPO_FILE.gguf into it */
    DIR *d = opendir(root);
    if (!d) return M40LLM_OK;
    struct dirent *de;
    while (!c.rc && (de = readdir(d))) {
        char path[STORE_PATH_MAX];
        struct stat st;
        if (de->d_name[0] == '.' ||
            store_fmt(path, sizeof path, "%s/%s", root, de->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (!hf_list_visit(&c, path, de->d_name)) break;
    }
    closedir(d);
    if (c.rc) {
        free(c.v);
        return c.rc;
    }
    *out = c.v;
    *n = c.n;
    return M40LLM_OK;
}

int store_find_llama_cache(const char *spec, store_model *out) {
    const char *s = !strncmp(spec, "llama:", 6) ? spec + 6 : spec;
    store_model *v = NULL;
    int n = 0, rc = store_list_llama_cache(&v, &n);
    if (rc) return rc;
    size_t sl = strlen(s);
    rc = err_set(M40LLM_ERR_NOT_FOUND, "%s is not in llama.cpp's cache ($LLAMA_CACHE)", spec);
    for (int i = 0; i < n; i++) {
        const char *f = v[i].parts[0].file;
        if (!strcasecmp(f, s) || (strlen(f) == sl + 5 && !strncasecmp(f, s, sl))) {
            *out = v[i];
            rc = M40LLM_OK;
            break;
        }
    }
    free(v);
    return rc;
}
