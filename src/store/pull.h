/* `m40-llm pull` (and serve's POST /api/pull): a model from Hugging Face
 * (an alias, hf.co/OWNER/REPO[:QUANT], hf.co/OWNER/REPO/FILE.gguf) or a
 * URL into the store.
 *
 * Downloads go through libcurl (redirects followed, HTTP Range resume from
 * blobs/<...>.partial, retries with backoff on transient errors, a stall
 * timeout); the sha256 is computed while downloading (OpenSSL EVP) and
 * checked before the blob is renamed into place; the GGUF is opened and
 * validated before the manifest is written. The Hugging Face endpoint is
 * $M40LLM_HF_ENDPOINT, else $HF_ENDPOINT, else Hugging Face itself; HF_TOKEN
 * is sent as a bearer token. Tunables: $M40LLM_PULL_RETRIES (default 4),
 * $M40LLM_PULL_STALL_S (seconds without a byte, default 30). */
#ifndef M40_PULL_H
#define M40_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define PULL_API_CAP ((size_t)16 << 20) /* API answers (file listings): 16 MiB at most */

/* What pull reports while it runs. */
typedef struct pull_progress {
    const char *status;        /* "pulling manifest", "downloading", "verifying sha256 digest",
                                * "writing manifest", "success" */
    const char *file;          /* the file being downloaded (NULL outside downloads) */
    const char *digest;        /* "sha256:<hex>" when known, else NULL */
    uint64_t completed, total; /* bytes of that file (total 0: unknown) */
    int part, n_parts;         /* 1-based */
    double speed;              /* bytes a second (recent) */
    bool done;                 /* the last report of this file */
} pull_progress;
/* Returns nonzero to cancel the pull (M40LLM_ERR_CANCELLED). */
typedef int (*pull_progress_fn)(void *user, const pull_progress *p);

typedef struct pull_opts {
    const char *name; /* the store name to register; NULL: from the spec */
    bool force;       /* pull an alias whose architecture the engine cannot run yet */
    pull_progress_fn progress;
    void *user;
} pull_opts;

typedef struct pull_result {
    char name[STORE_NAME_MAX + 16]; /* registered under */
    uint64_t size;                  /* bytes of the model */
    uint64_t downloaded;            /* bytes transferred by this pull */
    bool already;                   /* everything was already there */
} pull_result;

int pull_model(const char *spec, const pull_opts *o, pull_result *res);

/* ---- aliases (pull.c) ---- */
typedef struct pull_alias {
    const char *name;  /* "smollm2:135m" */
    const char *repo;  /* OWNER/REPO on Hugging Face */
    const char *file;  /* the GGUF (the first part when split) */
    const char *arch;  /* general.architecture of that file */
    const char *about; /* one line */
} pull_alias;
/* The built-in aliases (a NULL name ends the table). */
const pull_alias *pull_aliases(void);
/* The alias a name stands for ("mistral", "mistral:latest"), or NULL. */
const pull_alias *pull_find_alias(const char *name);
/* Whether the engine runs models of this architecture. */
bool pull_arch_supported(const char *arch);

/* ---- Hugging Face (pull_hf.c) ---- */
typedef struct pull_file {
    char path[256];  /* path in the repository, or the URL's file name */
    char url[2048];  /* where to download it */
    char sha256[65]; /* expected (LFS oid), "" when unknown */
    uint64_t size;   /* expected, 0 when unknown */
} pull_file;

typedef struct pull_plan {
    char source[512];  /* hf.co/OWNER/REPO, or the URL */
    char revision[96]; /* commit, "" for a URL */
    char quant[32];    /* what was asked for (tag of the default name) */
    pull_file files[STORE_MAX_PARTS];
    int n_files;
} pull_plan;

/* The Hugging Face base URL (no trailing '/'). */
void pull_hf_endpoint(char *out, size_t size);
/* One entry of a repository listing. */
typedef struct pull_tree_entry {
    char path[256];
    char sha256[65]; /* lfs.oid ("" when not an LFS file) */
    uint64_t size;
} pull_tree_entry;
/* Parses /api/models/REPO/tree/REV?recursive=true (untrusted: entries with
 * odd paths or types are skipped, a malformed answer is an error). */
int pull_hf_parse_tree(const char *text, size_t len, pull_tree_entry **out, int *n);
/* Picks the files of file (a path) or of quant among the entries: all parts
 * of a split model. Fills plan->files[].path/sha256/size. */
int pull_hf_select(const pull_tree_entry *e, int n, const char *file, const char *quant,
                   pull_plan *plan);
/* Resolves the revision, lists the files and fills plan (URLs included). */
int pull_hf_plan(const char *repo, const char *file, const char *quant, pull_plan *plan);

/* ---- HTTP (pull_http.c) ---- */
/* GET of a small answer (at most cap bytes) with retries; *status gets the
 * HTTP status (the body of an error status is still returned). */
int pull_http_get(const char *url, const char *token, size_t cap, char **body, size_t *len,
                  long *status);
/* Message for an HTTP error status of url (sets the error, returns a status). */
int pull_http_status_error(const char *url, long status);

typedef struct pull_download {
    const char *url;
    const char *token;      /* bearer token or NULL */
    const char *partial;    /* the .partial file (resumed when present) */
    const char *expect_sha; /* "" or NULL: unknown */
    uint64_t expect_size;   /* 0: unknown */
    const char *label;      /* the file name, for progress and messages */
    int part, n_parts;
    pull_progress_fn progress;
    void *user;
    /* out */
    char sha256[65];     /* of the whole file */
    uint64_t size;       /* bytes of the whole file */
    uint64_t downloaded; /* bytes transferred */
} pull_download;
/* Downloads into d->partial; on success the partial is complete, fsynced,
 * and its sha256 checked against expect_sha (a mismatch removes it and
 * names both hashes). Out of disk space keeps it for a later resume. */
int pull_http_download(pull_download *d);

/* sha256 of len bytes as 64 lower-case hex digits. */
void pull_sha256_hex(const void *data, size_t len, char out[65]);

#endif
