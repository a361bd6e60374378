/* Output and input checks shared by the commands: escaping model-supplied
 * text for the terminal, standard output write errors, standard input
 * with a size cap, and the checks cJSON cannot make on messages JSON. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "err.h"
#include "fileio.h"
#include "json_check.h"

/* Length of a complete, valid UTF-8 sequence at p (2..4), or 0; overlong
 * forms, surrogates and values past U+10FFFF are not valid. */
static size_t utf8_seq(const unsigned char *p, size_t n, unsigned *cp) {
    unsigned c = p[0];
    size_t need = c >= 0xC2 && c <= 0xDF   ? 2
                  : c >= 0xE0 && c <= 0xEF ? 3
                  : c >= 0xF0 && c <= 0xF4 ? 4
                                           : 0;
    if (!need || need > n) return 0;
    unsigned v = c & (0x7F >> need);
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    if ((need == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
        (need == 4 && (v < 0x10000 || v > 0x10FFFF)))
        return 0;
    *cp = v;
    return need;
}

size_t cli_put_escaped(FILE *o, const char *s, size_t n, char quote) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp = 0;
        size_t k;
        if (c == '\n') {
            w += (size_t)fprintf(o, "\\n");
        } else if (c == '\t') {
            w += (size_t)fprintf(o, "\\t");
        } else if (c == '\r') {
            w += (size_t)fprintf(o, "\\r");
        } else if (quote && (c == '\\' || c == (unsigned char)quote)) {
            w += (size_t)fprintf(o, "\\%c", c);
        } else if (c < 0x20 || c == 0x7F) {
            w += (size_t)fprintf(o, "\\x%02x", c); /* ESC and the other C0 controls */
        } else if (c < 0x80) {
            fputc(c, o);
            w++;
        } else if ((k = utf8_seq((const unsigned char *)s + i, n - i, &cp))) {
            if (cp <= 0x9F) { /* C1 controls: some terminals act on them */
                w += (size_t)fprintf(o, "\\u%04x", cp);
            } else {
                fwrite(s + i, 1, k, o);
                w += k;
            }
            i += k - 1;
        } else {
            w += (size_t)fprintf(o, "\\x%02x", c); /* not UTF-8 (a lone 0x9b is CSI) */
        }
    }
    return w;
}

void cli_put_name(FILE *o, const char *s, size_t n, int width) {
    size_t w = cli_put_escaped(o, s, n, 0);
    for (; width > 0 && w < (size_t)width; w++) fputc(' ', o);
}

/* ---- standard output ---- */

static int out_errno; /* the first failed write to stdout */

bool cli_flush_stdout(void) {
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return true;
    if (!out_errno) out_errno = errno ? errno : EIO;
    return false;
}

int cli_finish_output(int status) {
    if (cli_flush_stdout() && !out_errno) return status;
    fprintf(stderr, "m40-llm: error writing output: %s\n", strerror(out_errno));
    return status ? status : 1;
}

/* ---- standard input ---- */

int cli_read_stdin(size_t cap, const char *what, char **out, size_t *len) {
    return fileio_read_fd(STDIN_FILENO, "standard input", cap, what, out, len);
}

/* ---- messages JSON ---- */

int cli_json_check(const char *text, size_t len, const char *name) {
    return json_check(text, len, name, JSON_CHECK_MAX_VALUES);
}
