/* HTTP for pull: small API answers, and file downloads with Range resume,
 * retries, a stall timeout, sha256 while downloading and clear errors for
 * a full disk. Everything from the network is untrusted: answers are
 * capped, statuses checked, sizes compared with what was promised. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "err.h"
#include "pull.h"

#define PULL_MAX_REDIRS      10
#define PULL_CONNECT_TIMEOUT 15L
#define PULL_API_TIMEOUT     120L
#define PULL_PROGRESS_EVERY  0.2 /* seconds between progress reports */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long env_long(const char *name, long def, long lo, long hi) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < lo || x > hi ? def : x;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* 0.5 s, 1 s, 2 s, ... at most 8 s */
static void backoff(int attempt) {
    double s = 0.5 * (double)(1 << (attempt < 5 ? attempt : 5));
    sleep_s(s > 8 ? 8 : s);
}

static bool transient_curl(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

static bool transient_http(long s) {
    return s == 408 || s == 429 || s >= 500;
}

void pull_sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdl = 0;
    EVP_Digest(data, len, md, &mdl, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) store_fmt(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

/* The common options: redirects (http/https only), timeouts, a user agent,
 * the bearer token. *hdrs is freed by the caller. */
static CURL *easy_new(const char *url, const char *token, struct curl_slist **hdrs) {
    pthread_once(&curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    *hdrs = NULL;
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)PULL_MAX_REDIRS);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, PULL_CONNECT_TIMEOUT);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    char ua[64];
    store_fmt(ua, sizeof ua, "m40-llm/%s", m40llm_version());
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua); /* copied by libcurl */
    /* a stalled transfer: under 1 byte/s for this long */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, env_long("M40LLM_PULL_STALL_S", 30, 1, 3600));
    if (token && *token) {
        char h[4200];
        if (store_fmt(h, sizeof h, "Authorization: Bearer %s", token) < (int)sizeof h)
            *hdrs = curl_slist_append(NULL, h);
        /* libcurl drops it on a redirect to another host (CURLOPT_UNRESTRICTED_AUTH off) */
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    }
    return c;
}

int pull_http_status_error(const char *url, long status) {
    if (status == 401 || status == 403)
        return err_set(M40LLM_ERR_IO,
                       "%s: HTTP %ld: the model is gated or private; accept its terms on its "
                       "Hugging Face page and set HF_TOKEN to an access token",
                       url, status);
    if (status == 404) return err_set(M40LLM_ERR_NOT_FOUND, "%s: HTTP 404: not found", url);
    if (status == 416)
        return err_set(M40LLM_ERR_IO, "%s: HTTP 416: the server refused the resume range", url);
    return err_set(M40LLM_ERR_IO, "%s: HTTP %ld%s", url, status,
                   status >= 500 ? " (server error)" : "");
}

/* ---- small answers ---- */

typedef struct membuf {
    char *p;
    size_t len, max;
    bool over;
} membuf;

static size_t mem_write(char *data, size_t sz, size_t n, void *user) {
    membuf *m = user;
    size_t add = sz * n;
    if (m->len + add > m->max) {
        m->over = true;
        return 0;
    }
    char *np = realloc(m->p, m->len + add + 1);
    if (!np) return 0;
    memcpy(np + m->len, data, add);
    m->p = np;
    m->len += add;
    m->p[m->len] = '\0';
    return add;
}

int pull_http_get(const char *url, const char *token, size_t cap, char **body, size_t *len,
                  long *status) {
    *body = NULL;
    *len = 0;
    *status = 0;
    int tries = 1 + (int)env_long("M40LLM_PULL_RETRIES", 4, 0, 20);
    for (int attempt = 0;; attempt++) {
        struct curl_slist *hdrs = NULL;
        CURL *c = easy_new(url, token, &hdrs);
        if (!c) return err_set(M40LLM_ERR_OOM, "out of memory (curl)");
        membuf m = {.max = cap};
        char eb[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, eb);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, PULL_API_TIMEOUT);
        CURLcode cc = curl_easy_perform(c);
        long st = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
        curl_easy_cleanup(c);
        curl_slist_free_all(hdrs);
        if (m.over) {
            free(m.p);
            return err_set(M40LLM_ERR_FORMAT, "%s: the answer is larger than %zu bytes", url, cap);
        }
        bool again =
            attempt + 1 < tries && (cc != CURLE_OK ? transient_curl(cc) : transient_http(st));
        if (again) {
            free(m.p);
            backoff(attempt);
            continue;
        }
        if (cc != CURLE_OK) {
            free(m.p);
            return err_set(M40LLM_ERR_IO, "%s: %s%s", url, eb[0] ? eb : curl_easy_strerror(cc),
                           attempt ? " (after retries)" : "");
        }
        *status = st;
        *body = m.p ? m.p : calloc(1, 1);
        *len = m.len;
        return *body ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "out of memory");
    }
}

/* ---- downloads ---- */

typedef struct dl_state {
    pull_download *d;
    CURL *c;
    int fd;
    uint64_t off;   /* bytes in the partial (all hashed) */
    uint64_t start; /* where this request started */
    uint64_t total; /* whole file, 0: unknown */
    EVP_MD_CTX *md;
    bool checked; /* the response's status was looked at */
    long status;
    int write_errno; /* a failed write (ENOSPC, EFBIG) */
    bool range_bad;  /* a 206 that does not start where we asked */
    bool cancelled;
    double t_last, t_start;
    uint64_t off_last;
    double speed;
} dl_state;

static void report(dl_state *s, const char *status, bool done) {
    pull_download *d = s->d;
    if (!d->progress) return;
    char dg[80] = "";
    if (d->expect_sha && *d->expect_sha) store_fmt(dg, sizeof dg, "sha256:%s", d->expect_sha);
    pull_progress p = {.status = status,
                       .file = d->label,
                       .digest = dg[0] ? dg : NULL,
                       .completed = s->off,
                       .total = s->total,
                       .part = d->part,
                       .n_parts = d->n_parts,
                       .speed = s->speed,
                       .done = done};
    if (d->progress(d->user, &p)) s->cancelled = true;
}

/* Rehashes the partial's first bytes (a resumed download). */
static int hash_existing(dl_state *s, uint64_t n) {
    unsigned char *b = malloc(1 << 20);
    if (!b) return err_set(M40LLM_ERR_OOM, "out of memory");
    uint64_t done = 0;
    while (done < n) {
        size_t want = n - done < (1 << 20) ? (size_t)(n - done) : (1 << 20);
        ssize_t r = pread(s->fd, b, want, (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(b);
            return err_set(M40LLM_ERR_IO, "%s: read failed: %s", s->d->partial,
                           r < 0 ? strerror(errno) : "short file");
        }
        EVP_DigestUpdate(s->md, b, (size_t)r);
        done += (uint64_t)r;
    }
    free(b);
    return M40LLM_OK;
}

/* Starts over: empty partial, fresh hash. */
static int restart(dl_state *s) {
    if (ftruncate(s->fd, 0) != 0)
        return err_set(M40LLM_ERR_IO, "%s: cannot truncate: %s", s->d->partial, strerror(errno));
    s->off = 0;
    EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
    return M40LLM_OK;
}

static size_t dl_header(char *data, size_t sz, size_t n, void *user) {
    dl_state *s = user;
    size_t len = sz * n;
    /* each response of a redirect chain starts with its status line */
    if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
        s->checked = false;
        s->range_bad = false;
    } else if (len > 14 && !strncasecmp(data, "Content-Range:", 14)) {
        char buf[160];
        store_fmt(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), data);
        unsigned long long a = 0, b = 0, t = 0;
        if (sscanf(buf + 14, " bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
            if (a != s->start) s->range_bad = true;
            if (!s->d->expect_size) s->total = t;
        }
    }
    return len;
}

/* First body bytes of the final response: decides append or restart. */
static bool dl_check(dl_state *s) {
    s->checked = true;
    curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status == 206) {
        if (s->range_bad) return false;
        return true;
    }
    if (s->status == 200) {
        /* the server ignored the Range: the body is the whole file */
        if (s->off > 0 && restart(s)) return false;
        curl_off_t cl = -1;
        curl_easy_getinfo(s->c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (!s->d->expect_size && cl > 0) s->total = (uint64_t)cl;
        return true;
    }
    return false; /* an error status: its body is not the file */
}

static size_t dl_write(char *data, size_t sz, size_t n, void *user) {
    dl_state *s = user;
    size_t len = sz * n;
    if (!s->checked && !dl_check(s)) return 0;
    if (s->total && s->off + len > s->total) {
        s->range_bad = true; /* more than promised */
        return 0;
    }
    size_t w = 0;
    while (w < len) {
        ssize_t r = pwrite(s->fd, data + w, len - w, (off_t)(s->off + w));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            s->write_errno = r < 0 ? errno : EIO;
            /* keep what was written: the partial stays a prefix of the file */
            if (w) {
                EVP_DigestUpdate(s->md, data, w);
                s->off += w;
            }
            return 0;
        }
        w += (size_t)r;
    }
    EVP_DigestUpdate(s->md, data, len);
    s->off += len;
    s->d->downloaded += len;
    double t = now_s();
    if (t - s->t_last >= PULL_PROGRESS_EVERY) {
        double inst = (double)(s->off - s->off_last) / (t - s->t_last);
        s->speed = s->speed > 0 ? 0.7 * s->speed + 0.3 * inst : inst;
        s->t_last = t;
        s->off_last = s->off;
        report(s, "downloading", false);
        if (s->cancelled) return 0;
    }
    return len;
}

static int space_check(const char *partial, uint64_t need) {
    char dir[STORE_PATH_MAX];
    store_fmt(dir, sizeof dir, "%s", partial);
    char *sl = strrchr(dir, '/');
    if (sl) *sl = '\0';
    struct statvfs v;
    if (statvfs(sl ? dir : ".", &v) != 0) return M40LLM_OK; /* cannot tell: try */
    uint64_t free_b = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
    if (need > free_b)
        return err_set(M40LLM_ERR_IO,
                       "not enough disk space in %s: %" PRIu64 " bytes needed, %" PRIu64 " free",
                       sl ? dir : ".", need, free_b);
    return M40LLM_OK;
}

/* One request from s->off. 0 done, 1 retry, <0 error (set). */
static int dl_attempt(dl_state *s, int attempt, int tries) {
    pull_download *d = s->d;
    struct curl_slist *hdrs = NULL;
    s->c = easy_new(d->url, d->token, &hdrs);
    if (!s->c) return err_set(M40LLM_ERR_OOM, "out of memory (curl)");
    char eb[CURL_ERROR_SIZE] = "";
    s->start = s->off;
    s->checked = false;
    s->range_bad = false;
    s->status = 0;
    s->write_errno = 0;
    curl_easy_setopt(s->c, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(s->c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->c, CURLOPT_HEADERFUNCTION, dl_header);
    curl_easy_setopt(s->c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(s->c, CURLOPT_ERRORBUFFER, eb);
    /* a Range header rather than CURLOPT_RESUME_FROM: libcurl fails that on a
     * 200, while a server ignoring Range should just restart the file */
    char range[48];
    if (s->off > 0) {
        snprintf(range, sizeof range, "%" PRIu64 "-", s->off);
        curl_easy_setopt(s->c, CURLOPT_RANGE, range);
    }
    CURLcode cc = curl_easy_perform(s->c);
    long st = s->status;
    if (!st) curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_cleanup(s->c);
    s->c = NULL;
    curl_slist_free_all(hdrs);
    if (s->cancelled) return err_set(M40LLM_ERR_CANCELLED, "%s: pull cancelled", d->label);
    if (s->write_errno)
        return err_set(
            M40LLM_ERR_IO,
            "writing %s: %s (the %" PRIu64 " bytes downloaded are kept; 'pull' again to resume)",
            d->partial,
            s->write_errno == EFBIG ? "File too large (file size limit)" : strerror(s->write_errno),
            s->off);
    if (s->range_bad)
        return err_set(M40LLM_ERR_IO, "%s: the server sent bytes other than those asked for",
                       d->url);
    bool more = attempt + 1 < tries;
    if (cc == CURLE_OK && st != 200 && st != 206) {
        /* 416 on a complete partial: nothing was left to fetch */
        if (st == 416 && s->total && s->off == s->total) return 0;
        if (more && transient_http(st)) return 1;
        return pull_http_status_error(d->url, st);
    }
    if (cc != CURLE_OK) {
        if (st >= 400 && st != 206) { /* the write callback refused an error body */
            if (more && transient_http(st)) return 1;
            return pull_http_status_error(d->url, st);
        }
        if (more && transient_curl(cc)) return 1;
        return err_set(M40LLM_ERR_IO, "%s: %s%s", d->url, eb[0] ? eb : curl_easy_strerror(cc),
                       attempt ? " (after retries)" : "");
    }
    if (s->total && s->off < s->total)
        return more ? 1 : err_set(M40LLM_ERR_IO, "%s: the transfer ended early", d->url);
    return 0;
}

int pull_http_download(pull_download *d) {
    d->sha256[0] = '\0';
    d->size = 0;
    int fd = open(d->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(M40LLM_ERR_IO, "cannot open %s: %s", d->partial, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    dl_state s = {.d = d, .fd = fd, .total = d->expect_size};
    s.md = EVP_MD_CTX_new();
    if (!s.md) {
        close(fd);
        return err_set(M40LLM_ERR_OOM, "out of memory");
    }
    EVP_DigestInit_ex(s.md, EVP_sha256(), NULL);
    int rc = M40LLM_OK;
    uint64_t have = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    if (d->expect_size && have > d->expect_size) have = 0; /* not a prefix of this file */
    if (have == 0)
        rc = restart(&s);
    else if ((rc = hash_existing(&s, have)) == M40LLM_OK)
        s.off = have;
    if (rc == M40LLM_OK && d->expect_size) rc = space_check(d->partial, d->expect_size - s.off);
    s.t_start = s.t_last = now_s();
    s.off_last = s.off;
    int tries = 1 + (int)env_long("M40LLM_PULL_RETRIES", 4, 0, 20);
    bool complete = d->expect_size && s.off == d->expect_size;
    for (int attempt = 0; rc == M40LLM_OK && !complete; attempt++) {
        report(&s, "downloading", false);
        int r = dl_attempt(&s, attempt, tries);
        if (r < 0)
            rc = r;
        else if (r == 0)
            complete = true;
        else
            backoff(attempt);
    }
    if (rc == M40LLM_OK && fsync(fd) != 0)
        rc = err_set(M40LLM_ERR_IO, "%s: fsync failed: %s", d->partial, strerror(errno));
    close(fd);
    if (rc == M40LLM_OK) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdl = 0;
        EVP_DigestFinal_ex(s.md, md, &mdl);
        for (unsigned i = 0; i < 32; i++) store_fmt(d->sha256 + 2 * i, 3, "%02x", md[i]);
        d->size = s.off;
        report(&s, "verifying sha256 digest", true);
        if (d->expect_size && s.off != d->expect_size) {
            rc = err_set(M40LLM_ERR_IO, "%s: %" PRIu64 " bytes received, %" PRIu64 " expected",
                         d->label, s.off, d->expect_size);
            unlink(d->partial);
        } else if (d->expect_sha && *d->expect_sha && strcmp(d->expect_sha, d->sha256)) {
            rc = err_set(M40LLM_ERR_FORMAT,
                         "%s: sha256 mismatch: expected %s, got %s; the download was removed",
                         d->label, d->expect_sha, d->sha256);
            unlink(d->partial);
        }
    }
    EVP_MD_CTX_free(s.md);
    return rc;
}
