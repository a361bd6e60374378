/* m40-llm public C API.
 *
 * One header for libm40llm. Every function that can fail returns an
 * m40llm_status (0 = ok, negative = error) and leaves a human-readable
 * message in m40llm_last_error() (thread-local). Nothing in the library
 * exits the process. */
#ifndef M40LLM_H
#define M40LLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum m40llm_status {
    M40LLM_OK = 0,
    M40LLM_ERR_INVALID_ARG = -1,   /* a bad argument from the caller */
    M40LLM_ERR_IO = -2,            /* open/read/write/mmap failed */
    M40LLM_ERR_FORMAT = -3,        /* malformed or truncated file */
    M40LLM_ERR_UNSUPPORTED = -4,   /* unknown architecture, tensor type, ... */
    M40LLM_ERR_OOM = -5,           /* host or device allocation failed */
    M40LLM_ERR_NOT_FOUND = -6,     /* key, tensor or file absent */
    M40LLM_ERR_TYPE = -7,          /* value has another type than asked */
    M40LLM_ERR_CUDA = -8,          /* a CUDA runtime / cuBLAS call failed */
    M40LLM_ERR_NO_DEVICE = -9,     /* no usable GPU (none, or driver too old) */
    M40LLM_ERR_CONTEXT_FULL = -10, /* sequence longer than the KV cache */
    M40LLM_ERR_CANCELLED = -11,    /* stopped by the caller */
    M40LLM_ERR_SHAPE = -12,        /* tensor shape does not match the config */
    M40LLM_ERR_INTERNAL = -13,
} m40llm_status;

/* Message of the last error raised on this thread ("" if none). */
const char *m40llm_last_error(void);
/* Short fixed name of a status code ("ok", "format error", ...). */
const char *m40llm_status_str(int status);
/* Library version string. */
const char *m40llm_version(void);

#ifdef __cplusplus
}
#endif
#endif
