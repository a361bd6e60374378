/* The chat page of `m40-llm serve` (webui.c): index.html at / for
 * browsers, its scripts, style and icon under /webui/, all compiled into
 * the binary (cmake/webui.cmake writes webui_files[]). */
#ifndef M40_WEBUI_H
#define M40_WEBUI_H

#include <stdbool.h>
#include <stddef.h>

typedef struct webui_file {
    const char *name;          /* "index.html", "app.js", ... */
    const unsigned char *data; /* [len] (plus a NUL not counted) */
    size_t len;
} webui_file;

extern const webui_file webui_files[];
extern const size_t webui_n_files;

/* The embedded file called name, or NULL. */
const webui_file *webui_find(const char *name);
/* Its Content-Type, from the name's extension. */
const char *webui_content_type(const char *name);
/* Whether an Accept header value asks for HTML (a browser navigating). */
bool webui_accepts_html(const char *accept);

#endif
