/* The local model store and the models found where other tools keep theirs.
 *
 * Layout under $M40LLM_HOME (default ~/.m40llm):
 *   blobs/sha256-<hex>            content-addressed files (GGUF, or a split part)
 *   blobs/sha256-<hex>.partial    a download in progress (resumed by the next pull)
 *   blobs/url-<hex>.partial       one whose sha256 is not known in advance
 *   manifests/<model>/<tag>.json  one small JSON manifest per model name
 *   locks/                        flock files: concurrent pulls of one model wait
 *
 * A model name is MODEL[:TAG] (tag "latest" when absent), lower case,
 * MODEL being '/'-separated components of [a-z0-9._-]. Nothing reaches the
 * manifests until its blobs are complete, checked and validated as GGUF, and
 * a manifest is written atomically (write, fsync, rename), so a half-written
 * model is never listed or run.
 *
 * Found in place, never copied or deleted: Ollama's store ($OLLAMA_MODELS or
 * ~/.ollama/models), the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or
 * ~/.cache/huggingface/hub) and llama.cpp's cache ($LLAMA_CACHE or
 * ~/.cache/llama.cpp). Every file read here is untrusted: sizes are capped
 * and every field is checked. Functions return an m40llm status with the
 * message in m40llm_last_error(). */
#ifndef M40_STORE_H
#define M40_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "m40llm.h"

#define STORE_NAME_MAX     200               /* bytes of a model name */
#define STORE_PATH_MAX     4096              /* bytes of a path */
#define STORE_MAX_PARTS    64                /* files of a split model */
#define STORE_MANIFEST_CAP ((size_t)1 << 20) /* manifests are small: 1 MiB at most */
#define STORE_LIST_MAX     4096              /* models listed at most, per origin */

typedef enum store_origin {
    STORE_OWN = 0,     /* $M40LLM_HOME */
    STORE_OLLAMA,      /* Ollama's store */
    STORE_HF,          /* the Hugging Face cache */
    STORE_LLAMA_CACHE, /* llama.cpp's cache */
    STORE_PATH,        /* a file named by its path */
} store_origin;

/* "store", "ollama", "hf-cache", "llama-cache", "path" */
const char *store_origin_str(store_origin o);

/* One file of a model. */
typedef struct store_part {
    char file[256];  /* file name at the source */
    char sha256[65]; /* lower-case hex; "" when unknown */
    uint64_t size;
} store_part;

/* A model: from a manifest, or found in another tool's store. */
typedef struct store_model {
    char name[STORE_NAME_MAX +
              16]; /* "smollm2:135m", "ollama:llama3.2:1b", "hf:owner/repo:q4_k_m" */
    store_origin origin;
    char path[STORE_PATH_MAX]; /* the GGUF to open (the first part of a split model) */
    char source[512];          /* where it came from (URL, hf.co/OWNER/REPO) */
    char revision[96];         /* the source's revision, "" when none */
    store_part parts[STORE_MAX_PARTS];
    int n_parts;
    uint64_t size; /* bytes of all parts */
    char arch[64];
    char quant[32];
    uint64_t n_params;
    int64_t n_ctx;      /* trained context length, 0 when unknown */
    long long modified; /* unix seconds (added to the store, or the file's mtime) */
} store_model;

/* snprintf for paths and names that are cut at the buffer's size (callers
 * compare the result with the size where a cut would matter). */
/* Room for one more model in a listing's array v[n] of capacity *cap
 * (doubling); M40LLM_ERR_OOM with the message set, v unchanged. */
int store_models_reserve(store_model **v, int n, int *cap);
int store_fmt(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- names (store_name.c) ---- */

/* Validates and normalizes a model name ("SmolLM2:135M" -> "smollm2:135m",
 * "mistral" -> "mistral:latest"). M40LLM_ERR_INVALID_ARG with a message
 * saying what is wrong: empty, too long, an absolute path, a ".." or "."
 * component, a control character, a character outside [A-Za-z0-9._-/:]. */
int store_name_normalize(const char *in, char *out, size_t out_size);
/* Splits a normalized name into model and tag (pointers into buf). */
void store_name_split(char *buf, char **model, char **tag);

/* ---- the store (store.c) ---- */

/* $M40LLM_HOME, else $HOME/.m40llm, into out. */
int store_home(char *out, size_t size);
/* Creates blobs/, manifests/ and locks/ under the home (mode 0755). */
int store_init(const char *home);
/* blobs/sha256-<hex> of a store. */
void store_blob_path(const char *home, const char *sha256, char *out, size_t size);
/* manifests/<model>/<tag>.json of a normalized name. */
void store_manifest_path(const char *home, const char *name, char *out, size_t size);

/* Takes an exclusive flock on locks/<key>.lock (key: [a-z0-9._-], e.g. a
 * hash), waiting for another process that holds it. *fd for store_unlock. */
int store_lock(const char *home, const char *key, int *fd);
void store_unlock(int fd);

/* Writes len bytes to path atomically: a temporary beside it (O_EXCL),
 * fsync, rename over path, fsync of the directory. */
int store_write_atomic(const char *path, const void *data, size_t len);
/* mkdir -p of a directory (0755). */
int store_mkdirs(const char *dir);

/* ---- manifests (store_manifest.c) ---- */

/* Manifest JSON text of m (malloc'd). */
int store_manifest_format(const store_model *m, char **out);
/* Parses a manifest (untrusted: every field's type and range is checked);
 * blob paths are made under home. what names the file in errors. */
int store_manifest_parse(const char *text, size_t len, const char *home, const char *what,
                         store_model *out);
/* Reads manifests/<name>.json: M40LLM_ERR_NOT_FOUND when there is none. */
int store_manifest_read(const char *home, const char *name, store_model *out);
int store_manifest_write(const char *home, const store_model *m);
/* A second name dst for the store model src (a new manifest over the same
 * blobs; dst is replaced when it exists). */
int store_copy(const char *home, const char *src, const char *dst);
/* Removes the manifest of name, then every blob no other manifest uses. */
int store_remove(const char *home, const char *name);
/* Every manifest of the store, sorted by name (*out malloc'd). Unreadable
 * manifests are skipped with a warning on stderr when warn. */
int store_list_own(const char *home, bool warn, store_model **out, int *n);

/* ---- GGUF facts (store_gguf.c) ---- */

/* Opens path with the GGUF parser and fills arch, quant, n_params, n_ctx
 * (the rest of m untouched). Errors: the parser's (not a GGUF, truncated). */
int store_gguf_facts(const char *path, store_model *m);

/* What the model needs in memory: weights plus a KV cache (f16) of n_ctx
 * positions (0: the trained context, capped at 4096). */
int store_gguf_memory(const char *path, int n_ctx, uint64_t *weights, uint64_t *kv);

/* ---- models of other tools (discover_ollama.c, discover_hf.c) ---- */

/* Ollama's models directory ($OLLAMA_MODELS or ~/.ollama/models). */
int store_ollama_root(char *out, size_t size);
/* Parses one Ollama manifest: the digest of its model layer (media type
 * application/vnd.ollama.image.model) into sha256 (64 hex) and its size. */
int store_ollama_parse_manifest(const char *text, size_t len, const char *what, char *sha256,
                                uint64_t *size);
/* Models of Ollama's store (the GGUF blob they point at must exist). */
int store_list_ollama(store_model **out, int *n);
/* "ollama:NAME[:TAG]" (NAME: model, ns/model or host/ns/model). */
int store_find_ollama(const char *spec, store_model *out);

/* The Hugging Face hub cache directory. */
int store_hf_root(char *out, size_t size);
int store_list_hf(store_model **out, int *n);
/* "hf:OWNER/REPO[:QUANT]" or "hf:OWNER/REPO/FILE.gguf" from the cache. */
int store_find_hf(const char *spec, store_model *out);
/* llama.cpp's cache: every *.gguf in it ("llama:STEM"). */
int store_list_llama_cache(store_model **out, int *n);
int store_find_llama_cache(const char *spec, store_model *out);

/* True when a file name (no directory) holds the quantization quant as a
 * word ("model-Q4_K_M.gguf" has "q4_k_m" but not "q4_k"). */
bool store_file_has_quant(const char *file, const char *quant);
/* Split GGUF parts "NAME-0000k-of-0000N.gguf": k and N (1 <= k <= N), the
 * length of NAME; false for another name. */
bool store_split_part(const char *file, int *k, int *n, size_t *prefix_len);

/* ---- one function for every MODEL argument (store_resolve.c) ---- */

/* Resolves MODEL: "ollama:..." / "hf:..." / "llama:...", a file path, a
 * store name, a file in the legacy model directories ($M40LLM_MODELS,
 * ~/.cache/m40-llm/models). out gets the model (path, origin, facts from a
 * manifest; discovered models get their facts from the GGUF). */
int store_resolve(const char *spec, store_model *out);

/* M40LLM_ERR_UNSUPPORTED for a model the loader cannot open as one file
 * (split into parts); M40LLM_OK otherwise. */
int store_check_single_file(const store_model *m);

/* Every model: the store, then Ollama, the HF cache and llama.cpp's cache
 * (*out malloc'd). Discovered GGUFs are opened for their facts. */
int store_list_all(store_model **out, int *n);

/* The model's GGUF facts when the manifest does not hold them. */
void store_fill_facts(store_model *m);

#endif
