/* The store's directories, locks and atomic writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "store.h"

int store_models_reserve(store_model **v, int n, int *cap) {
    if (n < *cap) return M40LLM_OK;
    int nc = *cap ? *cap * 2 : 8;
    store_model *nv = realloc(*v, (size_t)nc * sizeof *nv);
    if (!nv) return err_set(M40LLM_ERR_OOM, "out of memory");
    *v = nv;
    *cap = nc;
    return M40LLM_OK;
}

int store_fmt(char *out, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return n;
}

int store_home(char *out, size_t size) {
    const char *env = getenv("M40LLM_HOME");
    int n;
    if (env && *env) {
        n = store_fmt(out, size, "%s", env);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return err_set(M40LLM_ERR_NOT_FOUND,
                           "neither $M40LLM_HOME nor $HOME is set: no place for the model store");
        n = store_fmt(out, size, "%s/.m40llm", home);
    }
    if (n < 0 || (size_t)n >= size)
        return err_set(M40LLM_ERR_INVALID_ARG, "the model store's path is too long");
    return M40LLM_OK;
}

int store_mkdirs(const char *dir) {
    char buf[STORE_PATH_MAX];
    if (store_fmt(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return err_set(M40LLM_ERR_INVALID_ARG, "path too long: %.80s...", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return err_set(M40LLM_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
            struct stat st;
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
                return err_set(M40LLM_ERR_IO, "%s is not a directory", buf);
            *p = c;
            if (!c) break;
        }
    }
    return M40LLM_OK;
}

int store_init(const char *home) {
    static const char *const subs[] = {"blobs", "manifests", "locks"};
    char d[STORE_PATH_MAX];
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        store_fmt(d, sizeof d, "%s/%s", home, subs[i]);
        int rc = store_mkdirs(d);
        if (rc) return rc;
    }
    return M40LLM_OK;
}

void store_blob_path(const char *home, const char *sha256, char *out, size_t size) {
    store_fmt(out, size, "%s/blobs/sha256-%s", home, sha256);
}

void store_manifest_path(const char *home, const char *name, char *out, size_t size) {
    char buf[STORE_NAME_MAX + 16];
    store_fmt(buf, sizeof buf, "%s", name);
    char *model, *tag;
    store_name_split(buf, &model, &tag);
    store_fmt(out, size, "%s/manifests/%s/%s.json", home, model, tag);
}

int store_lock(const char *home, const char *key, int *fd) {
    *fd = -1;
    char path[STORE_PATH_MAX];
    store_fmt(path, sizeof path, "%s/locks", home);
    int rc = store_mkdirs(path);
    if (rc) return rc;
    store_fmt(path, sizeof path, "%s/locks/%s.lock", home, key);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) return err_set(M40LLM_ERR_IO, "cannot open the lock %s: %s", path, strerror(errno));
    while (flock(f, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(f);
        return err_set(M40LLM_ERR_IO, "cannot lock %s: %s", path, strerror(e));
    }
    *fd = f;
    return M40LLM_OK;
}

void store_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing drops the flock */
}

static int fsync_dir_of(const char *path) {
    char dir[STORE_PATH_MAX];
    store_fmt(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        store_fmt(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int store_write_atomic(const char *path, const void *data, size_t len) {
    char tmp[STORE_PATH_MAX + 32];
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        store_fmt(tmp, sizeof tmp, "%s.tmp%ld-%d", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return err_set(M40LLM_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    if (fd < 0) return err_set(M40LLM_ERR_IO, "cannot create a temporary beside %s", path);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return err_set(M40LLM_ERR_IO, "%s: write failed: %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return err_set(M40LLM_ERR_IO, "%s: fsync failed: %s", path, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return err_set(M40LLM_ERR_IO, "cannot move %s into place: %s", path, strerror(e));
    }
    fsync_dir_of(path); /* the rename itself survives a crash */
    return M40LLM_OK;
}
