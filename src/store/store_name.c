/* Model names: validation and normalization (the name becomes a path under
 * manifests/, so nothing in it may leave that directory). Also the file-name
 * rules shared by pull and discovery: quantization words and split parts. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "store.h"

#define STORE_COMPONENT_MAX 100

const char *store_origin_str(store_origin o) {
    switch (o) {
    case STORE_OWN:
        return "store";
    case STORE_OLLAMA:
        return "ollama";
    case STORE_HF:
        return "hf-cache";
    case STORE_LLAMA_CACHE:
        return "llama-cache";
    case STORE_PATH:
        return "path";
    }
    return "?";
}

static bool name_char(unsigned char c) {
    return isalnum(c) || c == '.' || c == '_' || c == '-';
}

/* One '/'-free component [start, end): non-empty, not "." or "..", no
 * leading '.' or '-' (hidden files, options). */
static int check_component(const char *in, const char *c, size_t len, const char *what) {
    if (len == 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "invalid model name '%s': empty %s", in, what);
    if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "invalid model name '%s': '%.*s' is not allowed in a name", in, (int)len, c);
    if (c[0] == '.' || c[0] == '-')
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "invalid model name '%s': a %s may not start with '%c'", in, what, c[0]);
    if (len > STORE_COMPONENT_MAX)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "invalid model name '%.60s...': a %s is longer than %d bytes", in, what,
                       STORE_COMPONENT_MAX);
    return M40LLM_OK;
}

int store_name_normalize(const char *in, char *out, size_t out_size) {
    if (!in || !*in) return err_set(M40LLM_ERR_INVALID_ARG, "invalid model name: empty");
    size_t n = strlen(in);
    /* control characters first: the message must not print them raw */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)in[i] < 0x20 || (unsigned char)in[i] == 0x7f)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "invalid model name: control character 0x%02x at byte %zu",
                           (unsigned char)in[i], i);
    if (n > STORE_NAME_MAX)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "invalid model name '%.60s...': longer than %d bytes", in, STORE_NAME_MAX);
    if (in[0] == '/')
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "invalid model name '%s': an absolute path is not a model name", in);
    const char *colon = strrchr(in, ':');
    size_t mlen = colon ? (size_t)(colon - in) : n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (name_char(c) || (c == '/' && i < mlen) || in + i == colon) continue;
        if (c == ':')
            return err_set(M40LLM_ERR_INVALID_ARG, "invalid model name '%s': more than one ':'",
                           in);
        if (c == '/')
            return err_set(M40LLM_ERR_INVALID_ARG, "invalid model name '%s': '/' in the tag", in);
        if (c >= 0x80)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "invalid model name '%s': only ASCII letters, digits and . _ - / : are "
                           "allowed",
                           in);
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "invalid model name '%s': '%c' is not allowed (letters, digits and . _ - / "
                       ":)",
                       in, c);
    }
    const char *p = in;
    while (p < in + mlen) {
        const char *slash = memchr(p, '/', (size_t)(in + mlen - p));
        const char *end = slash ? slash : in + mlen;
        int rc = check_component(in, p, (size_t)(end - p), "name component");
        if (rc) return rc;
        if (!slash) break;
        p = slash + 1;
        if (p == in + mlen)
            return err_set(M40LLM_ERR_INVALID_ARG, "invalid model name '%s': ends with '/'", in);
    }
    const char *tag = colon ? colon + 1 : "latest";
    int rc = check_component(in, tag, strlen(tag), "tag");
    if (rc) return rc;
    if (mlen + 1 + strlen(tag) + 1 > out_size)
        return err_set(M40LLM_ERR_INVALID_ARG, "invalid model name '%.60s': too long", in);
    size_t o = 0;
    for (size_t i = 0; i < mlen; i++) out[o++] = (char)tolower((unsigned char)in[i]);
    out[o++] = ':';
    for (const char *t = tag; *t; t++) out[o++] = (char)tolower((unsigned char)*t);
    out[o] = '\0';
    return M40LLM_OK;
}

void store_name_split(char *buf, char **model, char **tag) {
    char *c = strrchr(buf, ':');
    *model = buf;
    if (c) {
        *c = '\0';
        *tag = c + 1;
    } else {
        *tag = (char *)"latest";
    }
}

bool store_file_has_quant(const char *file, const char *quant) {
    size_t fl = strlen(file), ql = strlen(quant);
    if (!ql || ql > fl) return false;
    for (size_t i = 0; i + ql <= fl; i++) {
        if (strncasecmp(file + i, quant, ql)) continue;
        /* a whole word: "Q4_K" must not match inside "Q4_K_M" */
        char before = i ? file[i - 1] : '.';
        char after = file[i + ql];
        if (!isalnum((unsigned char)before) && before != '_' &&
            (after == '.' || after == '-' || after == '\0'))
            return true;
    }
    return false;
}

bool store_split_part(const char *file, int *k, int *n, size_t *prefix_len) {
    /* NAME-00001-of-00003.gguf: 5 digits each, as llama.cpp's gguf-split writes */
    static const size_t tail = sizeof "-00001-of-00003.gguf" - 1;
    size_t l = strlen(file);
    if (l <= tail) return false;
    const char *t = file + l - tail;
    if (t[0] != '-' || strncmp(t + 6, "-of-", 4) || strcasecmp(t + 15, ".gguf")) return false;
    int a = 0, b = 0;
    for (int i = 0; i < 5; i++) {
        if (!isdigit((unsigned char)t[1 + i]) || !isdigit((unsigned char)t[10 + i])) return false;
        a = a * 10 + (t[1 + i] - '0');
        b = b * 10 + (t[10 + i] - '0');
    }
    if (a < 1 || b < 1 || a > b) return false;
    *k = a;
    *n = b;
    *prefix_len = l - tail;
    return true;
}
