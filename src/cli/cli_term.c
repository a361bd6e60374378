/* Generated and rendered text on a terminal. A model file chooses its
 * vocabulary and its chat template, so the text `run` streams and
 * `template` prints may hold escape sequences (ESC ]0; retitles the
 * window, ESC [2J clears it). On a terminal those bytes are shown escaped;
 * into a pipe or a file the text goes unchanged. */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

void cli_put_text(FILE *o, const char *s, size_t n) {
    if (!isatty(fileno(o))) {
        fwrite(s, 1, n, o);
        return;
    }
    /* newlines and tabs are layout; every other control is escaped */
    size_t a = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\n' && s[i] != '\t') continue;
        cli_put_escaped(o, s + a, i - a, 0);
        if (i < n) fputc(s[i], o);
        a = i + 1;
    }
}
