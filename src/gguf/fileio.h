/* Safe file access for every path the library and the CLI open.
 *
 * Reading: a path must name a regular file. It is opened non-blocking (a
 * FIFO would otherwise block open() until a writer appears) and checked
 * with fstat before anything is read; special files are refused with a
 * message naming the path and what it is ("is a FIFO"). Whole-file and
 * whole-stream reads stop at a cap chosen per kind of content, so that
 * /dev/zero or a huge file cannot exhaust memory.
 *
 * Writing: an output file is written to a new temporary file beside the
 * target (same directory, created with O_EXCL, so no existing path is
 * reused) and renamed over the target only when everything was written.
 * On any error only that temporary is removed. An existing target that is
 * not a regular file (a character device, a FIFO) is written in place and
 * never removed or replaced. */
#ifndef M40_FILEIO_H
#define M40_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

/* Read caps, by kind of content. */
/* chat template: 512 KiB, JINJA_MAX_SOURCE (a larger one could not be parsed) */
#define FILEIO_CAP_TEMPLATE ((size_t)512 << 10)
#define FILEIO_CAP_JSON     ((size_t)64 << 20)  /* messages JSON: 64 MiB */
#define FILEIO_CAP_PROMPT   ((size_t)64 << 20)  /* a prompt from stdin: 64 MiB */
#define FILEIO_CAP_TEXT     ((size_t)256 << 20) /* text / token-id files: 256 MiB */

/* "a FIFO", "a directory", "a character device", ... for a st_mode. */
const char *fileio_kind(mode_t mode);

/* Opens path read-only (O_CLOEXEC) after checking that it is a regular
 * file; *fd gets the descriptor (blocking mode), *st its fstat (st may be
 * NULL). Errors: M40LLM_ERR_NOT_FOUND (absent), M40LLM_ERR_IO ("PATH: is a
 * FIFO, not a regular file", permission, ...). */
int fileio_open_read(const char *path, int *fd, struct stat *st);

/* Reads a whole regular file into a NUL-terminated malloc'd buffer; *len
 * (may be NULL) gets the byte count, which differs from strlen when the
 * file holds NUL bytes. what ("a chat template") names the content in the
 * error when the file is larger than cap bytes (M40LLM_ERR_INVALID_ARG). */
int fileio_read_file(const char *path, size_t cap, const char *what, char **out, size_t *len);

/* The same for an already open descriptor (standard input, a pipe): reads
 * to end of file, at most cap bytes. name ("standard input") is used in
 * messages. A read interrupted by a signal (EINTR: a handler installed
 * without SA_RESTART, as for Ctrl-C) returns M40LLM_ERR_CANCELLED. */
int fileio_read_fd(int fd, const char *name, size_t cap, const char *what, char **out, size_t *len);

/* An output file being written (see the comment at the top). */
typedef struct fileio_out {
    FILE *f;      /* write here */
    char *path;   /* the target, as given */
    char *tmp;    /* the temporary (NULL when writing in place) */
    char *target; /* what is renamed over: path, or a symbolic link's target */
} fileio_out;

/* Creates the temporary (the permission bits of an existing regular
 * target, without setuid, setgid and sticky; else 0666 less the umask)
 * or opens a non-regular target in place. */
int fileio_out_open(const char *path, fileio_out *o);
/* Flushes, checks every write, closes and renames the temporary over the
 * target. On failure the temporary is removed and the error says why
 * ("OUT: write failed: No space left on device"). Frees o in every case. */
int fileio_out_commit(fileio_out *o);
/* Closes and removes the temporary (never the target); frees o. */
void fileio_out_abort(fileio_out *o);

#endif
