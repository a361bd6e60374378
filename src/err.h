/* Error reporting shared by every module: set a thread-local message and
 * return the status, so call sites read `return err_set(M40LLM_ERR_IO, ...)`. */
#ifndef M40_ERR_H
#define M40_ERR_H

#include "m40llm.h"

#if defined(__GNUC__)
#define ERR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ERR_PRINTF(a, b)
#endif

/* Formats the message into the thread-local buffer and returns status. */
int err_set(int status, const char *fmt, ...) ERR_PRINTF(2, 3);
/* Prepends "prefix: " to the current message; returns status unchanged. */
int err_prefix(int status, const char *fmt, ...) ERR_PRINTF(2, 3);
void err_clear(void);

#endif
