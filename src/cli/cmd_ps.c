/* m40-llm ps / stop: what a running server has loaded (GET /api/ps), and
 * unloading a model from it (POST /api/generate with keep_alive 0), as
 * `ollama ps` and `ollama stop` do against m40-llm serve or any server
 * speaking Ollama's API. The server is --host, else $M40LLM_HOST, else
 * 127.0.0.1:8080; $M40LLM_API_KEY is sent as the bearer token. */
#include <ctype.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "err.h"

#define PS_DEFAULT_HOST "127.0.0.1:8080"
#define PS_MAX_ANSWER   (4u << 20) /* /api/ps of 64 models is a few KB */

typedef struct ps_buf {
    char *p;
    size_t len;
    bool over;
} ps_buf;

static size_t ps_write(char *data, size_t sz, size_t n, void *user) {
    ps_buf *b = user;
    const size_t add = sz * n;
    if (b->len + add > PS_MAX_ANSWER) {
        b->over = true;
        return 0;
    }
    char *np = realloc(b->p, b->len + add + 1);
    if (!np) return 0;
    memcpy(np + b->len, data, add);
    b->p = np;
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

/* "http://h:p", "https://h:p", "h:p", "h", ":p" or "p" -> "http://h:p"
 * without a trailing slash. */
static int ps_base_url(const char *host, char *out, size_t n) {
    if (!host || !*host) host = PS_DEFAULT_HOST;
    for (const char *c = host; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return err_set(M40LLM_ERR_INVALID_ARG, "host: a blank or control byte in the address");
    const bool scheme = !strncmp(host, "http://", 7) || !strncmp(host, "https://", 8);
    if (!scheme && strstr(host, "://"))
        return err_set(M40LLM_ERR_INVALID_ARG, "host '%s': only http:// and https://", host);
    bool digits = *host != 0;
    for (const char *c = host; *c; c++) digits &= isdigit((unsigned char)*c) != 0;
    int w;
    if (scheme)
        w = snprintf(out, n, "%s", host);
    else if (digits)
        w = snprintf(out, n, "http://127.0.0.1:%s", host);
    else if (*host == ':')
        w = snprintf(out, n, "http://127.0.0.1%s", host);
    else
        w = snprintf(out, n, "http://%s%s", host, strchr(host, ':') ? "" : ":8080");
    if (w < 0 || (size_t)w >= n) return err_set(M40LLM_ERR_INVALID_ARG, "host: too long");
    while (w > 0 && out[w - 1] == '/') out[--w] = '\0';
    return M40LLM_OK;
}

/* One request; *answer (NUL-terminated) is the caller's. */
static int ps_call(const char *base, const char *path, const char *post, char **answer,
                   long *status) {
    *answer = NULL;
    *status = 0;
    char url[1200];
    if (snprintf(url, sizeof url, "%s%s", base, path) >= (int)sizeof url)
        return err_set(M40LLM_ERR_INVALID_ARG, "host: too long");
    CURL *c = curl_easy_init();
    if (!c) return err_set(M40LLM_ERR_OOM, "out of memory (curl)");
    struct curl_slist *h = NULL;
    const char *key = getenv("M40LLM_API_KEY");
    char auth[4200];
    if (key && *key &&
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key) < (int)sizeof auth)
        h = curl_slist_append(h, auth);
    if (post) h = curl_slist_append(h, "Content-Type: application/json");
    ps_buf b = {0};
    char eb[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ps_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, eb);
    if (post) curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    const CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (b.over) {
        free(b.p);
        return err_set(M40LLM_ERR_FORMAT, "%s: an answer over %u bytes", url, PS_MAX_ANSWER);
    }
    if (cc != CURLE_OK) {
        free(b.p);
        return err_set(M40LLM_ERR_IO,
                       "cannot reach the server at %s: %s (is m40-llm serve running? "
                       "--host or M40LLM_HOST names another)",
                       base, eb[0] ? eb : curl_easy_strerror(cc));
    }
    *answer = b.p ? b.p : calloc(1, 1);
    return *answer ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "out of memory");
}

/* A non-200 answer as an error, with the server's own message. */
static int ps_status_error(const char *what, long status, const char *answer) {
    cJSON *j = cJSON_Parse(answer);
    const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
    int rc = err_set(M40LLM_ERR_IO, "%s: HTTP %ld%s%s%s", what, status,
                     cJSON_IsString(m) ? ": " : "", cJSON_IsString(m) ? m->valuestring : "",
                     status == 401 ? " (set M40LLM_API_KEY to the server's --api-key)" : "");
    cJSON_Delete(j);
    return rc;
}

/* GET /api/ps, parsed; its "models" array in *models. */
static int ps_models(const char *base, cJSON **doc, const cJSON **models) {
    char *a = NULL;
    long st = 0;
    int rc = ps_call(base, "/api/ps", NULL, &a, &st);
    if (rc) return rc;
    if (st != 200) {
        rc = ps_status_error("GET /api/ps", st, a);
        free(a);
        return rc;
    }
    *doc = cJSON_Parse(a);
    free(a);
    *models = *doc ? cJSON_GetObjectItemCaseSensitive(*doc, "models") : NULL;
    if (!cJSON_IsArray(*models)) {
        cJSON_Delete(*doc);
        *doc = NULL;
        return err_set(M40LLM_ERR_FORMAT, "GET /api/ps: not an answer with a \"models\" list");
    }
    return M40LLM_OK;
}

static double ps_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : 0;
}

static const char *ps_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Ollama's PROCESSOR column. */
static void ps_processor(double size, double vram, char *out, size_t n) {
    if (vram <= 0)
        snprintf(out, n, "100%% CPU");
    else if (size <= 0 || vram > size)
        snprintf(out, n, "Unknown");
    else if (vram == size)
        snprintf(out, n, "100%% GPU");
    else {
        const int cpu = (int)lround((size - vram) / size * 100);
        snprintf(out, n, "%d%%/%d%% CPU/GPU", cpu, 100 - cpu);
    }
}

/* RFC 3339 ("2026-12-08T10:00:00Z", fractions and offsets as Ollama
 * writes them) to Unix time; false when it is not one. */
static bool ps_parse_time(const char *s, time_t *out) {
    struct tm tm = {0};
    int used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6)
        return false;
    const char *p = s + used;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++) {
        }
    long off = 0;
    if (*p == '+' || *p == '-') {
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return false;
        off = (*p == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
    } else if (*p != 'Z') {
        return false;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm) - off;
    return true;
}

/* Ollama's UNTIL column. */
static void ps_until(const char *expires, char *out, size_t n) {
    time_t t;
    if (!ps_parse_time(expires, &t)) {
        snprintf(out, n, "-");
        return;
    }
    const double left = difftime(t, time(NULL));
    if (left > 50.0 * 365 * 86400)
        snprintf(out, n, "Forever");
    else if (left <= 0)
        snprintf(out, n, "Stopping...");
    else if (left < 60)
        snprintf(out, n, "Less than a minute from now");
    else if (left < 120)
        snprintf(out, n, "About a minute from now");
    else if (left < 3600)
        snprintf(out, n, "%d minutes from now", (int)(left / 60));
    else if (left < 7200)
        snprintf(out, n, "About an hour from now");
    else if (left < 2 * 86400)
        snprintf(out, n, "%d hours from now", (int)(left / 3600));
    else
        snprintf(out, n, "%d days from now", (int)(left / 86400));
}

static int ps_usage(FILE *f, const char *cmd) {
    if (!strcmp(cmd, "stop"))
        fprintf(f, "usage: m40-llm stop MODEL [--host URL]\n"
                   "  unloads MODEL from a running m40-llm serve (or Ollama-compatible server)\n");
    else
        fprintf(f, "usage: m40-llm ps [--host URL] [--json]\n"
                   "  models a running m40-llm serve (or Ollama-compatible server) has loaded\n");
    fprintf(f,
            "  --host URL   the server (default $M40LLM_HOST, else %s);\n"
            "               $M40LLM_API_KEY is sent as its --api-key\n",
            PS_DEFAULT_HOST);
    return f == stdout ? 0 : 2;
}

/* Options common to ps and stop; the one positional argument in *arg. */
static int ps_args(int argc, char **argv, bool *json, const char **arg, char *base, size_t n) {
    const char *host = getenv("M40LLM_HOST");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return ps_usage(stdout, argv[0]) - 1;
        if (!strcmp(a, "--host") && i + 1 < argc) {
            host = argv[++i];
        } else if (!strcmp(a, "--json") && json) {
            *json = true;
        } else if (a[0] != '-' && arg && !*arg) {
            *arg = a;
        } else {
            fprintf(stderr, "m40-llm %s: unexpected argument '%s'\n", argv[0], a);
            return ps_usage(stderr, argv[0]);
        }
    }
    if (arg && !*arg) return ps_usage(stderr, argv[0]);
    int rc = ps_base_url(host, base, n);
    return rc ? cli_fail("--host", rc) + 1 : 0;
}

int cmd_ps(int argc, char **argv) {
    bool json = false;
    char base[1100];
    int r = ps_args(argc, argv, &json, NULL, base, sizeof base);
    if (r) return r < 0 ? 0 : r;
    cJSON *doc = NULL;
    const cJSON *models = NULL;
    int rc = ps_models(base, &doc, &models);
    if (rc) return cli_fail("ps", rc);
    if (json) {
        char *t = cJSON_Print(doc);
        if (t) puts(t);
        free(t);
        cJSON_Delete(doc);
        return cli_finish_output(t ? 0 : 1);
    }
    printf("%-40s %-10s %-16s %-8s %s\n", "NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL");
    const cJSON *m;
    cJSON_ArrayForEach(m, models) {
        const char *name = ps_str(m, "name");
        char size[32], proc[48], until[64];
        const double sz = ps_num(m, "size");
        cli_human_bytes(sz > 0 && sz < 1e19 ? (uint64_t)sz : 0, size, sizeof size);
        ps_processor(sz, ps_num(m, "size_vram"), proc, sizeof proc);
        ps_until(ps_str(m, "expires_at"), until, sizeof until);
        cli_put_name(stdout, name, strlen(name), 40);
        printf(" %-10s %-16s %-8.0f %s\n", size, proc, ps_num(m, "context_length"), until);
    }
    cJSON_Delete(doc);
    return cli_finish_output(0);
}

/* The listed entry a user's name means: the same name, or with ":latest". */
static const cJSON *ps_find(const cJSON *models, const char *name) {
    const size_t n = strlen(name);
    const cJSON *m;
    cJSON_ArrayForEach(m, models) {
        const char *a = ps_str(m, "name"), *b = ps_str(m, "model");
        if (!strcmp(a, name) || !strcmp(b, name)) return m;
        if (!strncmp(a, name, n) && !strcmp(a + n, ":latest")) return m;
    }
    return NULL;
}

int cmd_stop(int argc, char **argv) {
    const char *name = NULL;
    char base[1100];
    int r = ps_args(argc, argv, NULL, &name, base, sizeof base);
    if (r) return r < 0 ? 0 : r;
    cJSON *doc = NULL;
    const cJSON *models = NULL;
    int rc = ps_models(base, &doc, &models);
    if (rc) return cli_fail("stop", rc);
    const cJSON *m = ps_find(models, name);
    if (!m) {
        cJSON_Delete(doc);
        fprintf(stderr, "m40-llm stop: ");
        cli_put_escaped(stderr, name, strlen(name), 0);
        fprintf(stderr, " is not loaded on %s ('m40-llm ps' lists what is)\n", base);
        return 1;
    }
    cJSON *req = cJSON_CreateObject();
    char *body = NULL;
    if (req && cJSON_AddStringToObject(req, "model", ps_str(m, "name")) &&
        cJSON_AddNumberToObject(req, "keep_alive", 0) && cJSON_AddFalseToObject(req, "stream"))
        body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char *listed = strdup(ps_str(m, "name"));
    cJSON_Delete(doc);
    doc = NULL;
    char *a = NULL;
    long st = 0;
    rc = body && listed ? ps_call(base, "/api/generate", body, &a, &st)
                        : err_set(M40LLM_ERR_OOM, "out of memory");
    free(body);
    if (!rc && st != 200) rc = ps_status_error("POST /api/generate", st, a);
    free(a);
    /* a server started with --model keeps it: say so rather than claim it
     * stopped (an unload that cannot be checked counts as done) */
    if (!rc && ps_models(base, &doc, &models)) {
        err_clear();
        doc = NULL;
    } else if (!rc && ps_find(models, listed)) {
        fprintf(stderr, "m40-llm stop: the server keeps ");
        cli_put_escaped(stderr, listed, strlen(listed), 0);
        fprintf(stderr, " loaded (it was started with --model); stop the server instead\n");
        cJSON_Delete(doc);
        free(listed);
        return 1;
    }
    cJSON_Delete(doc);
    free(listed);
    return rc ? cli_fail("stop", rc) : 0;
}
