/* Safe file access: regular files only, bounded reads, and output written
 * through a temporary that is renamed into place (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

const char *fileio_kind(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

static int open_error(const char *path, int e) {
    return err_set(e == ENOENT ? M40LLM_ERR_NOT_FOUND : M40LLM_ERR_IO, "%s: %s", path, strerror(e));
}

static int not_regular(const char *path, mode_t mode) {
    return err_set(M40LLM_ERR_IO, "%s: is %s, not a regular file", path, fileio_kind(mode));
}

int fileio_open_read(const char *path, int *fd_out, struct stat *st_out) {
    if (fd_out) *fd_out = -1;
    if (!path || !fd_out) return err_set(M40LLM_ERR_INVALID_ARG, "fileio_open_read: NULL argument");
    if (!*path) return err_set(M40LLM_ERR_INVALID_ARG, "empty file name");
    /* stat first: merely opening some devices has effects (a tape rewinds) */
    struct stat st;
    if (stat(path, &st) != 0) return open_error(path, errno);
    if (!S_ISREG(st.st_mode)) return not_regular(path, st.st_mode);
    /* O_NONBLOCK: a FIFO swapped in after the stat must not block open() */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return open_error(path, errno);
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(M40LLM_ERR_IO, "%s: stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return not_regular(path, st.st_mode);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return err_set(M40LLM_ERR_IO, "%s: fcntl: %s", path, strerror(e));
    }
    *fd_out = fd;
    if (st_out) *st_out = st;
    return M40LLM_OK;
}

/* "1 MiB", "64 MiB", "1000 bytes" */
static const char *size_str(size_t n, char *buf, size_t size) {
    if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
        snprintf(buf, size, "%zu MiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(buf, size, "%zu KiB", n >> 10);
    else
        snprintf(buf, size, "%zu bytes", n);
    return buf;
}

static int too_large(const char *name, size_t cap, const char *what) {
    char s[32];
    return err_set(M40LLM_ERR_INVALID_ARG, "%s: larger than the %s limit for %s", name,
                   size_str(cap, s, sizeof s), what ? what : "this input");
}

int fileio_read_fd(int fd, const char *name, size_t cap, const char *what, char **out,
                   size_t *len) {
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!out || fd < 0) return err_set(M40LLM_ERR_INVALID_ARG, "fileio_read_fd: bad argument");
    if (!name) name = "input";
    if (cap > SIZE_MAX - 2) cap = SIZE_MAX - 2;
    size_t size = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        /* room for one byte past the cap (to notice it) and the NUL */
        if (n + 1 >= size) {
            size_t want = size ? size * 2 : 65536;
            if (want > cap + 2) want = cap + 2;
            char *nb = want > size ? realloc(buf, want) : NULL;
            if (!nb) {
                free(buf);
                return err_set(M40LLM_ERR_OOM, "%s: out of memory reading %zu bytes", name, n);
            }
            buf = nb;
            size = want;
        }
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r > 0) {
            n += (size_t)r;
            if (n > cap) {
                free(buf);
                return too_large(name, cap, what);
            }
        } else if (r == 0) {
            break;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* a non-blocking descriptor handed over by the parent */
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, -1) < 0) {
                int e = errno;
                free(buf);
                if (e == EINTR) /* Ctrl-C while waiting for input */
                    return err_set(M40LLM_ERR_CANCELLED, "%s: read interrupted", name);
                return err_set(M40LLM_ERR_IO, "%s: poll: %s", name, strerror(e));
            }
        } else {
            int e = errno;
            free(buf);
            if (e == EINTR) return err_set(M40LLM_ERR_CANCELLED, "%s: read interrupted", name);
            return err_set(M40LLM_ERR_IO, "%s: read failed: %s", name, strerror(e));
        }
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return M40LLM_OK;
}

int fileio_read_file(const char *path, size_t cap, const char *what, char **out, size_t *len) {
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "fileio_read_file: out is NULL");
    int fd;
    struct stat st = {0};
    int rc = fileio_open_read(path, &fd, &st);
    if (rc) return rc;
    if ((uint64_t)st.st_size > (uint64_t)cap) {
        close(fd);
        return too_large(path, cap, what);
    }
    rc = fileio_read_fd(fd, path, cap, what, out, len);
    close(fd);
    return rc;
}

/* ---- output through a temporary ---- */

static void out_free(fileio_out *o) {
    free(o->path);
    free(o->tmp);
    free(o->target);
    memset(o, 0, sizeof *o);
}

/* Creates "<target>.tmp-<pid>-<n>" with O_EXCL; retries on a name in use. */
static int make_temp(fileio_out *o, const struct stat *existing) {
    static atomic_uint counter;
    size_t n = strlen(o->target) + 48;
    o->tmp = malloc(n);
    if (!o->tmp) return err_set(M40LLM_ERR_OOM, "%s: out of memory", o->path);
    for (int tries = 0; tries < 100; tries++) {
        unsigned k = atomic_fetch_add(&counter, 1);
        snprintf(o->tmp, n, "%s.tmp-%ld-%u", o->target, (long)getpid(), k);
        /* 0666 less the umask, as a new file would get; an existing
         * target's permissions are copied below */
        int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) {
            int e = errno;
            free(o->tmp);
            o->tmp = NULL;
            return err_set(M40LLM_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                           o->path, strerror(e));
        }
        if (existing) (void)fchmod(fd, existing->st_mode & 0777); /* best effort; never setuid/setgid/sticky */
        o->f = fdopen(fd, "wb");
        if (!o->f) {
            int e = errno;
            close(fd);
            unlink(o->tmp);
            free(o->tmp);
            o->tmp = NULL;
            return err_set(M40LLM_ERR_IO, "%s: %s", o->path, strerror(e));
        }
        return M40LLM_OK;
    }
    free(o->tmp);
    o->tmp = NULL;
    return err_set(M40LLM_ERR_IO, "%s: no free temporary name beside it", o->path);
}

int fileio_out_open(const char *path, fileio_out *o) {
    if (!o) return err_set(M40LLM_ERR_INVALID_ARG, "fileio_out_open: NULL argument");
    memset(o, 0, sizeof *o);
    if (!path) return err_set(M40LLM_ERR_INVALID_ARG, "fileio_out_open: NULL argument");
    if (!*path) return err_set(M40LLM_ERR_INVALID_ARG, "empty output file name");
    o->path = strdup(path);
    if (!o->path) return err_set(M40LLM_ERR_OOM, "%s: out of memory", path);
    struct stat st;
    int rc;
    /* renaming over a symbolic link would replace the link: write beside
     * the file it names instead */
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        o->target = realpath(path, NULL);
        if (!o->target) {
            rc = err_set(M40LLM_ERR_IO, "%s: a symbolic link whose target cannot be used: %s", path,
                         strerror(errno));
            out_free(o);
            return rc;
        }
    } else {
        o->target = strdup(path);
        if (!o->target) {
            out_free(o);
            return err_set(M40LLM_ERR_OOM, "%s: out of memory", path);
        }
    }
    bool exists = stat(o->target, &st) == 0;
    if (!exists && errno != ENOENT) {
        rc = err_set(M40LLM_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (exists && S_ISDIR(st.st_mode)) {
        rc = err_set(M40LLM_ERR_IO, "%s: is a directory", path);
    } else if (exists && !S_ISREG(st.st_mode)) {
        /* a device or FIFO: written in place, never replaced or removed */
        int fd = open(o->target, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            rc = err_set(M40LLM_ERR_IO, "%s: %s", path, strerror(errno));
        } else if (!(o->f = fdopen(fd, "wb"))) {
            rc = err_set(M40LLM_ERR_IO, "%s: %s", path, strerror(errno));
            close(fd);
        } else {
            rc = M40LLM_OK;
        }
    } else {
        rc = make_temp(o, exists ? &st : NULL);
    }
    if (rc) out_free(o);
    return rc;
}

int fileio_out_commit(fileio_out *o) {
    if (!o || !o->f) {
        if (o) out_free(o);
        return err_set(M40LLM_ERR_INVALID_ARG, "fileio_out_commit: not open");
    }
    int rc = M40LLM_OK;
    errno = 0;
    if (fflush(o->f) != 0 || ferror(o->f))
        rc = err_set(M40LLM_ERR_IO, "%s: write failed: %s", o->path, strerror(errno ? errno : EIO));
    if (fclose(o->f) != 0 && rc == M40LLM_OK)
        rc = err_set(M40LLM_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
    o->f = NULL;
    if (rc == M40LLM_OK && o->tmp && rename(o->tmp, o->target) != 0)
        rc = err_set(M40LLM_ERR_IO, "%s: cannot move the finished file into place: %s", o->path,
                     strerror(errno));
    if (rc && o->tmp) unlink(o->tmp); /* only what this module created */
    out_free(o);
    return rc;
}

void fileio_out_abort(fileio_out *o) {
    if (!o) return;
    if (o->f) fclose(o->f);
    o->f = NULL;
    if (o->tmp) unlink(o->tmp);
    out_free(o);
}
