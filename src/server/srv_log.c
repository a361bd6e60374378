/* One line per request on stderr: method, path, status, tokens in/out,
 * time to first token and duration; --log-format json writes the same as
 * one JSON object per line. Each line goes out in one write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "srv_int.h"

/* The path as sent, with bytes that could drive a terminal or break the
 * JSON line (controls, non-ASCII: a path may hold any byte) as \xHH. */
static void srv_log_path(const char *p, char *out, size_t n) {
    size_t o = 0;
    for (; *p && o + 5 < n; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

void srv_log_request(server *s, const http_req *r, const char *note) {
    double dur = srv_now() - r->t0;
    char line[1024], path[400];
    srv_log_path(r->path, path, sizeof path);
    if (s->cfg.log_format == SERVER_LOG_JSON) {
        cJSON *o = cJSON_CreateObject();
        char ts[48];
        oll_time_now(ts, sizeof ts);
        cJSON_AddStringToObject(o, "time", ts);
        cJSON_AddStringToObject(o, "method", r->method);
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddNumberToObject(o, "status", r->status);
        if (r->n_in >= 0) cJSON_AddNumberToObject(o, "prompt_tokens", r->n_in);
        if (r->n_out >= 0) cJSON_AddNumberToObject(o, "completion_tokens", r->n_out);
        if (r->ttft_s >= 0)
            cJSON_AddNumberToObject(o, "ttft_s", (double)(long long)(r->ttft_s * 1e6) / 1e6);
        cJSON_AddNumberToObject(o, "duration_s", (double)(long long)(dur * 1e6) / 1e6);
        if (note) cJSON_AddStringToObject(o, "note", note);
        char *j = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!j) return;
        snprintf(line, sizeof line, "%s\n", j);
        free(j);
    } else {
        char tok[64] = "", ttft[32] = "";
        if (r->n_in >= 0) snprintf(tok, sizeof tok, " in=%d out=%d", r->n_in, r->n_out);
        if (r->ttft_s >= 0) snprintf(ttft, sizeof ttft, " ttft=%.3fs", r->ttft_s);
        snprintf(line, sizeof line, "m40-llm serve: %s %s %d%s%s %.3fs%s%s%s\n", r->method, path,
                 r->status, tok, ttft, dur, note ? " (" : "", note ? note : "", note ? ")" : "");
    }
    /* one write: lines of concurrent requests never interleave */
    ssize_t w = write(STDERR_FILENO, line, strlen(line));
    (void)w;
}
