/* Subcommands of the m40-llm executable: one file each, cmd_NAME(argc, argv)
 * with argv[0] = the command name; returns the process exit status. */
#ifndef M40_CLI_H
#define M40_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int cmd_show(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_dump_tensor(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_stop(int argc, char **argv);

/* Prints "m40-llm: <what>: <last library error>" to stderr; returns 1. */
int cli_fail(const char *what, int status);
/* Reads standard input to its end, at most cap bytes (FILEIO_CAP_*; what
 * names the content in the error), into a NUL-terminated buffer (caller
 * frees); *len (may be NULL) gets the byte count. Library status. */
int cli_read_stdin(size_t cap, const char *what, char **out, size_t *len);
/* Prints n bytes of model-supplied text with control bytes escaped (\n,
 * \t, \r, \xHH for C0/DEL and bytes that are not UTF-8, \uHHHH for C1
 * controls), so no text can drive the terminal; with quote nonzero, quote
 * and backslash are escaped too. Returns the bytes written. */
size_t cli_put_escaped(FILE *o, const char *s, size_t n, char quote);
/* Text a model produced (an answer, a rendered template): on a terminal
 * with control bytes other than newline and tab escaped, else unchanged. */
void cli_put_text(FILE *o, const char *s, size_t n);
/* cli_put_escaped without quoting, padded with blanks to width bytes. */
void cli_put_name(FILE *o, const char *s, size_t n, int width);
/* Flushes stdout; false (and the error remembered) when a write failed. */
bool cli_flush_stdout(void);
/* At exit: reports a failed write to stdout ("m40-llm: error writing
 * output: REASON") and turns status 0 into 1; else returns status. */
int cli_finish_output(int status);
/* The checks cJSON cannot make on messages JSON text of len bytes
 * (json_check.h): a NUL byte or a "\u0000" escape (cJSON would cut the
 * string there), nesting past cJSON's limit (named, not reported as a syntax
 * error) and more than JSON_CHECK_MAX_VALUES values (cJSON would need ~64
 * bytes each). name is the file in messages. Library status. */
int cli_json_check(const char *text, size_t len, const char *name);
/* "1.3 GB", "138 MB" (powers of 1000, as ollama list). */
void cli_human_bytes(uint64_t b, char *out, size_t n);
/* Parses decimal digits only (no sign, blanks or overflow) into *out;
 * false, leaving *out alone, otherwise. */
bool cli_parse_u64(const char *s, uint64_t *out);
/* Parses a non-negative int option value; prints an error and returns -1 on bad input. */
long cli_parse_long(const char *opt, const char *val, long min, long max);

#endif
