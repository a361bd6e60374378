/* The chat page: GET / answers a browser (an Accept header that names
 * text/html) with index.html, and every other client with Ollama's
 * "is running" text as before (ext_root), so Ollama clients probing / see
 * no change; GET /webui/NAME serves the page's other files. All of them
 * are compiled in (cmake/webui.cmake) and need no API key: they are the
 * same for everyone and hold no data; the page itself then sends the key
 * the user typed with each API request. --no-webui turns both off.
 *
 * The page shows model output, which is untrusted: its Content-Security-
 * Policy lets it load and connect to its own origin only, and forbids
 * inline scripts, plugins, framing and foreign form targets, so even a
 * rendering bug cannot run injected script or send data elsewhere. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv_int.h"
#include "webui.h"

#define WEBUI_PREFIX "/webui/"

static const char webui_csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

const webui_file *webui_find(const char *name) {
    for (size_t i = 0; i < webui_n_files; i++)
        if (!strcmp(webui_files[i].name, name)) return &webui_files[i];
    return NULL;
}

const char *webui_content_type(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg")) return "image/svg+xml";
    return "application/octet-stream";
}

bool webui_accepts_html(const char *accept) {
    return accept && strcasestr(accept, "text/html") != NULL;
}

static bool webui_wants_page(const http_req *r) {
    return webui_accepts_html(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept"));
}

bool webui_public(const http_req *r, route_fn fn) {
    if (r->s->cfg.no_webui) return false;
    if (fn == webui_asset) return true;
    return fn == webui_root && webui_wants_page(r);
}

static int webui_send(http_req *r, const webui_file *f) {
    /* the bytes are static: MHD sends them without a copy */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", webui_content_type(f->name));
    MHD_add_response_header(resp, "Content-Security-Policy", webui_csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    /* revalidate, so a newer binary's page is picked up at once */
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "Vary", "Accept");
    return http_send_response(r, 200, resp);
}

int webui_root(http_req *r) {
    const webui_file *f = webui_find("index.html");
    if (r->s->cfg.no_webui || !f || !webui_wants_page(r)) return ext_root(r);
    return webui_send(r, f);
}

int webui_asset(http_req *r) {
    const char *name = r->url + strlen(WEBUI_PREFIX);
    const webui_file *f = r->s->cfg.no_webui ? NULL : webui_find(name);
    if (!f) {
        api_err e = {0};
        rq_fail(&e, 404, NULL, "no route GET %.200s%s", r->url,
                r->s->cfg.no_webui ? " (the web page is off: --no-webui)" : "");
        return http_send_error(r, &e);
    }
    return webui_send(r, f);
}
