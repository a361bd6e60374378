/* Subcommands of the m40-llm executable: one file each, cmd_NAME(argc, argv)
 * with argv[0] = the command name; returns the process exit status. */
#ifndef M40_CLI_H
#define M40_CLI_H

#include <stdbool.h>
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

/* Prints "m40-llm: <what>: <last library error>" to stderr; returns 1. */
int cli_fail(const char *what, int status);
/* Reads a whole stream into a NUL-terminated buffer (caller frees); NULL on
 * a read error or out of memory. *len (when len is not NULL) gets the byte
 * count, which differs from strlen when the data holds NUL bytes. */
char *cli_read_all(FILE *f, size_t *len);
/* Parses decimal digits only (no sign, blanks or overflow) into *out;
 * false, leaving *out alone, otherwise. */
bool cli_parse_u64(const char *s, uint64_t *out);
/* Parses a non-negative int option value; prints an error and returns -1 on bad input. */
long cli_parse_long(const char *opt, const char *val, long min, long max);

#endif
