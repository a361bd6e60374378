#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERR_MSG_MAX 1024

static _Thread_local char err_msg[ERR_MSG_MAX];

int err_set(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    return status;
}

int err_prefix(int status, const char *fmt, ...) {
    char old[ERR_MSG_MAX];
    char pre[ERR_MSG_MAX];
    va_list ap;
    memcpy(old, err_msg, sizeof old);
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    /* both halves fit: the message is cut at ERR_MSG_MAX by design */
    size_t n = strnlen(pre, sizeof pre - 1);
    memcpy(err_msg, pre, n);
    size_t rest = sizeof err_msg - n - 1;
    if (rest >= 2) {
        memcpy(err_msg + n, ": ", 2);
        n += 2;
        size_t m = strnlen(old, rest - 2);
        memcpy(err_msg + n, old, m);
        n += m;
    }
    err_msg[n] = '\0';
    return status;
}

void err_clear(void) {
    err_msg[0] = '\0';
}

const char *m40llm_last_error(void) {
    return err_msg;
}

const char *m40llm_version(void) {
    return "0.1.0";
}

const char *m40llm_status_str(int status) {
    switch (status) {
    case M40LLM_OK:
        return "ok";
    case M40LLM_ERR_INVALID_ARG:
        return "invalid argument";
    case M40LLM_ERR_IO:
        return "i/o error";
    case M40LLM_ERR_FORMAT:
        return "format error";
    case M40LLM_ERR_UNSUPPORTED:
        return "unsupported";
    case M40LLM_ERR_OOM:
        return "out of memory";
    case M40LLM_ERR_NOT_FOUND:
        return "not found";
    case M40LLM_ERR_TYPE:
        return "type mismatch";
    case M40LLM_ERR_CUDA:
        return "cuda error";
    case M40LLM_ERR_NO_DEVICE:
        return "no device";
    case M40LLM_ERR_CONTEXT_FULL:
        return "context full";
    case M40LLM_ERR_CANCELLED:
        return "cancelled";
    case M40LLM_ERR_SHAPE:
        return "shape mismatch";
    case M40LLM_ERR_INTERNAL:
        return "internal error";
    case M40LLM_ERR_BUSY:
        return "busy";
    default:
        return "unknown status";
    }
}
