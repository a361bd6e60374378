/* pull: what a spec names (alias, hf.co/..., URL), then each file into a
 * blob (skipped when the store has it), the GGUF validated, the manifest
 * written last. A lock per model name makes concurrent pulls of one model
 * wait for each other; a lock per partial keeps two names that share a
 * file from writing it at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "gguf.h"
#include "model/arch/arch.h"
#include "pull.h"

static const pull_alias aliases[] = {
    {"mistral", "TheBloke/Mistral-7B-Instruct-v0.2-GGUF", "mistral-7b-instruct-v0.2.Q4_K_M.gguf",
     "llama", "Mistral 7B Instruct v0.2, Q4_K_M (4.4 GB)"},
    {"llama3.2:1b", "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
     "llama", "Llama 3.2 1B Instruct, Q4_K_M (0.8 GB)"},
    {"llama3.1:8b", "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
     "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "llama", "Llama 3.1 8B Instruct, Q4_K_M (4.9 GB)"},
    {"qwen2.5:7b", "bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "qwen2",
     "Qwen2.5 7B Instruct, Q4_K_M (4.7 GB)"},
    {"gemma3:270m", "ggml-org/gemma-3-270m-it-GGUF", "gemma-3-270m-it-Q8_0.gguf", "gemma3",
     "Gemma 3 270M instruction-tuned, Q8_0 (0.3 GB)"},
    {"smollm2:135m", "bartowski/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_K_M.gguf",
     "llama", "SmolLM2 135M Instruct, Q4_K_M (0.1 GB)"},
    {"tinyllama", "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
     "llama", "TinyLlama 1.1B Chat v1.0, Q4_K_M (0.7 GB)"},
    {NULL, NULL, NULL, NULL, NULL},
};

const pull_alias *pull_aliases(void) {
    return aliases;
}

const pull_alias *pull_find_alias(const char *name) {
    char norm[STORE_NAME_MAX + 16], a[STORE_NAME_MAX + 16];
    if (store_name_normalize(name, norm, sizeof norm)) return NULL;
    for (const pull_alias *p = aliases; p->name; p++)
        if (!store_name_normalize(p->name, a, sizeof a) && !strcmp(a, norm)) return p;
    return NULL;
}

bool pull_arch_supported(const char *arch) {
    if (!arch) return false;
    gguf_str s = {strlen(arch), arch};
    return arch_find(s) != NULL; /* what the model loader reads (src/model/arch/) */
}

/* ---- what a spec names ---- */

typedef struct pull_target {
    char name[STORE_NAME_MAX + 16]; /* default store name */
    pull_plan plan;
} pull_target;

static void lower(char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

/* A file name's stem (no directory, .gguf or split suffix) as a name
 * component: other characters become '-', lower case. */
static void stem_name(const char *file, char *out, size_t size) {
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    int k, n;
    size_t pl = strlen(b);
    if (!store_split_part(b, &k, &n, &pl) && pl > 5 && !strcasecmp(b + pl - 5, ".gguf")) pl -= 5;
    size_t o = 0;
    for (size_t i = 0; i < pl && o + 1 < size && o < 100; i++) {
        char c = b[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out[o++] = ok ? c : '-';
    }
    out[o] = '\0';
    while (out[0] == '.' || out[0] == '-') memmove(out, out + 1, strlen(out));
    if (!out[0]) store_fmt(out, size, "model");
    lower(out);
}

/* A store tag from a file name: its quantization, else the stem. */
static void tag_of_file(const char *file, char *tag, size_t size) {
    static const char *const q[] = {"Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M", "Q3_K_S",
                                    "Q3_K_L", "Q2_K",   "Q6_K",   "Q8_0",   "Q4_0",   "Q4_1",
                                    "Q5_0",   "Q5_1",   "F16",    "BF16",   "F32"};
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        if (store_file_has_quant(b, q[i])) {
            store_fmt(tag, size, "%s", q[i]);
            lower(tag);
            return;
        }
    stem_name(b, tag, size);
}

static int target_url(const char *url, pull_target *t) {
    if (strlen(url) >= sizeof t->plan.files[0].url)
        return err_set(M40LLM_ERR_INVALID_ARG, "URL longer than %zu bytes",
                       sizeof t->plan.files[0].url - 1);
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return err_set(M40LLM_ERR_INVALID_ARG, "the URL holds a blank or control character");
    pull_file *f = &t->plan.files[0];
    t->plan.n_files = 1;
    store_fmt(f->url, sizeof f->url, "%s", url);
    store_fmt(t->plan.source, sizeof t->plan.source, "%.*s", (int)sizeof t->plan.source - 1, url);
    /* the file name: the path's last component, without query or fragment */
    const char *p = strstr(url, "://") + 3;
    p = strchr(p, '/') ? strchr(p, '/') : "/model.gguf";
    size_t l = strcspn(p, "?#");
    const char *b = p + l;
    while (b > p && b[-1] != '/') b--;
    size_t bl = (size_t)(p + l - b);
    if (!bl || bl >= sizeof f->path) {
        b = "model.gguf";
        bl = strlen(b);
    }
    store_fmt(f->path, sizeof f->path, "%.*s", (int)bl, b);
    char stem[128];
    stem_name(f->path, stem, sizeof stem);
    store_fmt(t->name, sizeof t->name, "%s:latest", stem);
    return M40LLM_OK;
}

static int target_hf(const char *rest, pull_target *t) {
    /* OWNER/REPO[:QUANT] or OWNER/REPO/PATH.gguf */
    char buf[600];
    if (strlen(rest) >= sizeof buf) return err_set(M40LLM_ERR_INVALID_ARG, "name too long");
    store_fmt(buf, sizeof buf, "%s", rest);
    char *s1 = strchr(buf, '/');
    char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    const char *file = NULL, *quant = NULL;
    if (s2) {
        *s2 = '\0';
        file = s2 + 1;
    } else {
        char *colon = strchr(buf, ':');
        if (colon) {
            *colon = '\0';
            quant = colon + 1;
        }
    }
    int rc = pull_hf_plan(buf, file, quant, &t->plan);
    if (rc) return rc;
    char tag[128];
    if (file)
        tag_of_file(file, tag, sizeof tag);
    else
        store_fmt(tag, sizeof tag, "%s", t->plan.quant);
    lower(tag);
    store_fmt(t->name, sizeof t->name, "hf.co/%s:%s", buf, tag);
    lower(t->name);
    return M40LLM_OK;
}

static int resolve_target(const char *spec, bool force, pull_target *t) {
    memset(t, 0, sizeof *t);
    const pull_alias *a = pull_find_alias(spec);
    if (a) {
        if (!pull_arch_supported(a->arch) && !force)
            return err_set(M40LLM_ERR_UNSUPPORTED,
                           "'%s' (%s) is a '%s' model, which this engine cannot run yet (it runs "
                           "%s); nothing was downloaded (--force pulls it anyway)",
                           a->name, a->about, a->arch, arch_names());
        char path[600];
        store_fmt(path, sizeof path, "%s/%s", a->repo, a->file);
        int rc = target_hf(path, t);
        if (rc) return rc;
        return store_name_normalize(a->name, t->name, sizeof t->name);
    }
    if (!strncmp(spec, "hf.co/", 6)) return target_hf(spec + 6, t);
    if (!strncmp(spec, "hf:", 3)) return target_hf(spec + 3, t);
    if (!strncmp(spec, "https://", 8) || !strncmp(spec, "http://", 7)) return target_url(spec, t);
    char norm[STORE_NAME_MAX + 16];
    int rc = store_name_normalize(spec, norm, sizeof norm);
    if (rc) return rc;
    return err_set(M40LLM_ERR_NOT_FOUND,
                   "'%s' is not a known model: pull an alias ('m40-llm pull --aliases' lists "
                   "them), hf.co/OWNER/REPO[:QUANT], hf.co/OWNER/REPO/FILE.gguf or an https:// URL",
                   spec);
}

/* ---- the pull ---- */

static void say(const pull_opts *o, const char *status) {
    if (!o || !o->progress) return;
    pull_progress p = {.status = status};
    o->progress(o->user, &p);
}

static bool blob_ok(const char *path, uint64_t size) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (!size || (uint64_t)st.st_size == size);
}

/* One file into blobs/: nothing to do when the blob is there. */
static int fetch_file(const char *home, const pull_file *f, int part, int n_parts,
                      const pull_opts *o, store_part *sp, pull_result *res, bool *fresh) {
    char blob[STORE_PATH_MAX];
    *fresh = false;
    store_fmt(sp->file, sizeof sp->file, "%s",
              strrchr(f->path, '/') ? strrchr(f->path, '/') + 1 : f->path);
    if (f->sha256[0]) {
        store_blob_path(home, f->sha256, blob, sizeof blob);
        if (blob_ok(blob, f->size)) {
            memcpy(sp->sha256, f->sha256, 65);
            struct stat st;
            stat(blob, &st);
            sp->size = (uint64_t)st.st_size;
            if (o && o->progress) {
                char dg[80];
                snprintf(dg, sizeof dg, "sha256:%s", f->sha256);
                pull_progress p = {.status = "downloading",
                                   .file = sp->file,
                                   .digest = dg,
                                   .completed = sp->size,
                                   .total = sp->size,
                                   .part = part,
                                   .n_parts = n_parts,
                                   .done = true};
                o->progress(o->user, &p);
            }
            return M40LLM_OK;
        }
    }
    /* the partial is named by the expected hash, else by the URL */
    char key[80], partial[STORE_PATH_MAX];
    if (f->sha256[0]) {
        store_fmt(key, sizeof key, "sha256-%s", f->sha256);
    } else {
        char h[65];
        pull_sha256_hex(f->url, strlen(f->url), h);
        store_fmt(key, sizeof key, "url-%.32s", h);
    }
    store_fmt(partial, sizeof partial, "%s/blobs/%s.partial", home, key);
    int lk = -1;
    int rc = store_lock(home, key, &lk);
    if (rc) return rc;
    if (f->sha256[0] && blob_ok(blob, f->size)) { /* another pull finished it meanwhile */
        store_unlock(lk);
        return fetch_file(home, f, part, n_parts, o, sp, res, fresh);
    }
    pull_download d = {.url = f->url,
                       .token = getenv("HF_TOKEN"),
                       .partial = partial,
                       .expect_sha = f->sha256,
                       .expect_size = f->size,
                       .label = sp->file,
                       .part = part,
                       .n_parts = n_parts,
                       .progress = o ? o->progress : NULL,
                       .user = o ? o->user : NULL};
    rc = pull_http_download(&d);
    res->downloaded += d.downloaded;
    if (rc == M40LLM_OK) {
        store_blob_path(home, d.sha256, blob, sizeof blob);
        if (rename(partial, blob) != 0)
            rc = err_set(M40LLM_ERR_IO, "cannot move %s into place: %s", partial, strerror(errno));
    }
    store_unlock(lk);
    if (rc) return rc;
    memcpy(sp->sha256, d.sha256, 65);
    sp->size = d.size;
    *fresh = true;
    return M40LLM_OK;
}

int pull_model(const char *spec, const pull_opts *o, pull_result *res) {
    memset(res, 0, sizeof *res);
    if (!spec || !*spec) return err_set(M40LLM_ERR_INVALID_ARG, "no model to pull");
    char home[STORE_PATH_MAX];
    int rc = store_home(home, sizeof home);
    if (rc == M40LLM_OK) rc = store_init(home);
    if (rc) return rc;
    /* a name given for the result is checked before anything is downloaded */
    char want[STORE_NAME_MAX + 16] = "";
    if (o && o->name && (rc = store_name_normalize(o->name, want, sizeof want))) return rc;
    say(o, "pulling manifest");
    pull_target *t = calloc(1, sizeof *t);
    store_model *m = calloc(1, sizeof *m);
    if (!t || !m) {
        free(t);
        free(m);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    rc = resolve_target(spec, o && o->force, t);
    if (rc == M40LLM_OK && want[0]) store_fmt(t->name, sizeof t->name, "%s", want);
    if (rc == M40LLM_OK) rc = store_name_normalize(t->name, m->name, sizeof m->name);
    char key[80];
    int lk = -1;
    if (rc == M40LLM_OK) {
        char h[65];
        pull_sha256_hex(m->name, strlen(m->name), h);
        store_fmt(key, sizeof key, "name-%.32s", h);
        rc = store_lock(home, key, &lk);
    }
    bool fresh[STORE_MAX_PARTS] = {false};
    res->already = true;
    for (int i = 0; rc == M40LLM_OK && i < t->plan.n_files; i++) {
        rc = fetch_file(home, &t->plan.files[i], i + 1, t->plan.n_files, o, &m->parts[i], res,
                        &fresh[i]);
        if (rc == M40LLM_OK) {
            m->n_parts = i + 1;
            m->size += m->parts[i].size;
            if (fresh[i]) res->already = false;
        }
    }
    /* every part must be a GGUF this build can parse before anything is registered */
    for (int i = 0; rc == M40LLM_OK && i < m->n_parts; i++) {
        char blob[STORE_PATH_MAX];
        store_blob_path(home, m->parts[i].sha256, blob, sizeof blob);
        store_model f;
        memset(&f, 0, sizeof f);
        rc = store_gguf_facts(blob, &f);
        if (rc) {
            rc = err_prefix(M40LLM_ERR_FORMAT, "%s is not a valid GGUF model", m->parts[i].file);
            for (int j = 0; j < m->n_parts; j++)
                if (fresh[j]) {
                    store_blob_path(home, m->parts[j].sha256, blob, sizeof blob);
                    unlink(blob); /* this pull made it; nothing refers to it */
                }
            break;
        }
        if (i == 0) {
            store_fmt(m->arch, sizeof m->arch, "%s", f.arch);
            store_fmt(m->quant, sizeof m->quant, "%s", f.quant);
            m->n_ctx = f.n_ctx;
        }
        m->n_params += f.n_params;
    }
    if (rc == M40LLM_OK) {
        say(o, "writing manifest");
        m->origin = STORE_OWN;
        store_fmt(m->source, sizeof m->source, "%s", t->plan.source);
        store_fmt(m->revision, sizeof m->revision, "%s", t->plan.revision);
        m->modified = (long long)time(NULL);
        int glk = -1;
        rc = store_lock(home, "store", &glk); /* not while rm collects blobs */
        if (rc == M40LLM_OK) rc = store_manifest_write(home, m);
        store_unlock(glk);
    }
    store_unlock(lk);
    if (rc == M40LLM_OK) {
        store_fmt(res->name, sizeof res->name, "%s", m->name);
        res->size = m->size;
        say(o, "success");
    }
    free(t);
    free(m);
    return rc;
}
