/* src/gguf/fileio.c: special files refused without blocking, read caps, and
 * output through a temporary that never removes what it did not create. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fileio.h"
#include "jinja.h"
#include "m40llm.h"

static char dir[64];

static const char *at(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

static void put_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static bool error_has(const char *text) {
    const char *e = m40llm_last_error();
    bool ok = e && strstr(e, text);
    if (!ok) fprintf(stderr, "  error was: %s (wanted \"%s\")\n", e ? e : "(none)", text);
    return ok;
}

/* Entries of the test directory whose name contains ".tmp-". */
static int temporaries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp-")) n++;
    if (d) closedir(d);
    return n;
}

static void test_open_read(void) {
    char p[128];
    int fd = -1;
    struct stat st;
    put_file(at("plain", p, sizeof p), "abc", 3);
    CHECK(fileio_open_read(p, &fd, &st) == M40LLM_OK && fd >= 0 && st.st_size == 3);
    /* the descriptor is blocking again */
    CHECK(fd >= 0 && !(fcntl(fd, F_GETFL) & O_NONBLOCK));
    if (fd >= 0) close(fd);

    CHECK(fileio_open_read(at("absent", p, sizeof p), &fd, NULL) == M40LLM_ERR_NOT_FOUND);
    CHECK(fd == -1 && error_has("absent"));
    CHECK(fileio_open_read(dir, &fd, NULL) == M40LLM_ERR_IO && error_has("is a directory"));
    CHECK(fileio_open_read("/dev/null", &fd, NULL) == M40LLM_ERR_IO &&
          error_has("/dev/null: is a character device"));
    /* a FIFO without a writer would block a plain open() for ever (alarm) */
    CHECK(mkfifo(at("fifo", p, sizeof p), 0600) == 0);
    CHECK(fileio_open_read(p, &fd, NULL) == M40LLM_ERR_IO && error_has("fifo: is a FIFO"));
    CHECK(fileio_open_read("", &fd, NULL) == M40LLM_ERR_INVALID_ARG);
    CHECK(strcmp(fileio_kind(S_IFSOCK), "a socket") == 0);
}

static void test_read_file(void) {
    char p[128], *buf = NULL;
    size_t len = 0;
    put_file(at("nul", p, sizeof p), "a\0b", 3);
    CHECK(fileio_read_file(p, 16, "x", &buf, &len) == M40LLM_OK && len == 3);
    CHECK(buf && !memcmp(buf, "a\0b", 4)); /* NUL-terminated after the data */
    free(buf);
    /* exactly the cap is fine, one byte more is refused and named */
    put_file(at("eight", p, sizeof p), "12345678", 8);
    CHECK(fileio_read_file(p, 8, "a test file", &buf, &len) == M40LLM_OK && len == 8);
    free(buf);
    CHECK(fileio_read_file(p, 7, "a test file", &buf, &len) == M40LLM_ERR_INVALID_ARG);
    CHECK(buf == NULL && error_has("eight: larger than the 7 bytes limit for a test file"));
    CHECK(fileio_read_file(p, (size_t)1 << 20, "a template", &buf, NULL) == M40LLM_OK);
    free(buf);
    put_file(at("empty", p, sizeof p), "", 0);
    CHECK(fileio_read_file(p, 4, "x", &buf, &len) == M40LLM_OK && len == 0 && buf && !*buf);
    free(buf);
    CHECK(fileio_read_file("/dev/zero", 4, "x", &buf, &len) == M40LLM_ERR_IO);
    /* a template file is read up to the largest source the engine parses */
    CHECK(FILEIO_CAP_TEMPLATE == JINJA_MAX_SOURCE);
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) {
    (void)sig;
    got_signal = 1;
}

static void test_read_fd(void) {
    char *buf = NULL;
    size_t len = 0;
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    CHECK(write(pfd[1], "hello\0world", 11) == 11);
    close(pfd[1]);
    CHECK(fileio_read_fd(pfd[0], "pipe", 11, "x", &buf, &len) == M40LLM_OK && len == 11);
    CHECK(buf && !memcmp(buf, "hello\0world", 12));
    free(buf);
    close(pfd[0]);
    /* an endless stream stops at the cap */
    int z = open("/dev/zero", O_RDONLY);
    CHECK(z >= 0);
    CHECK(fileio_read_fd(z, "standard input", (size_t)3 << 20, "a prompt", &buf, &len) ==
          M40LLM_ERR_INVALID_ARG);
    CHECK(buf == NULL && error_has("standard input: larger than the 3 MiB limit for a prompt"));
    close(z);

    /* a signal while waiting for input on a non-blocking descriptor (poll)
     * cancels the read, as in a blocking read() */
    struct sigaction sa = {.sa_handler = on_signal}, old;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART, as for Ctrl-C */
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
    CHECK(pipe(pfd) == 0);
    CHECK(fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK) == 0);
    pid_t kid = fork();
    if (kid == 0) {
        usleep(200 * 1000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    CHECK(fileio_read_fd(pfd[0], "standard input", 16, "x", &buf, &len) == M40LLM_ERR_CANCELLED);
    CHECK(buf == NULL && got_signal && error_has("standard input: read interrupted"));
    if (kid > 0) waitpid(kid, NULL, 0);
    close(pfd[0]);
    close(pfd[1]);
    sigaction(SIGUSR1, &old, NULL);
}

static void write_all(fileio_out *o, const char *s) {
    fputs(s, o->f);
}

static void read_back(const char *path, char *buf, size_t n) {
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t r = fread(buf, 1, n - 1, f);
    buf[r] = '\0';
    fclose(f);
}

static void test_out(void) {
    char p[128], q[128], got[64];
    fileio_out o;
    struct stat st;
    /* a new file appears only at commit */
    CHECK(fileio_out_open(at("new.bin", p, sizeof p), &o) == M40LLM_OK && o.f);
    write_all(&o, "one");
    CHECK(access(p, F_OK) != 0 && temporaries() == 1);
    CHECK(fileio_out_commit(&o) == M40LLM_OK);
    read_back(p, got, sizeof got);
    CHECK(!strcmp(got, "one") && temporaries() == 0);

    /* replacing keeps the old permissions; an abort leaves the old file */
    CHECK(chmod(p, 0640) == 0);
    CHECK(fileio_out_open(p, &o) == M40LLM_OK);
    write_all(&o, "two");
    CHECK(fileio_out_commit(&o) == M40LLM_OK);
    read_back(p, got, sizeof got);
    CHECK(!strcmp(got, "two") && stat(p, &st) == 0 && (st.st_mode & 0777) == 0640);
    CHECK(fileio_out_open(p, &o) == M40LLM_OK);
    write_all(&o, "three");
    fileio_out_abort(&o);
    read_back(p, got, sizeof got);
    CHECK(!strcmp(got, "two") && temporaries() == 0);
    /* permission bits only: a setuid/setgid/sticky target's bits are not
     * given to a file with new contents */
    CHECK(chmod(p, 07755) == 0);
    CHECK(fileio_out_open(p, &o) == M40LLM_OK);
    write_all(&o, "two");
    CHECK(fileio_out_commit(&o) == M40LLM_OK);
    CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0755);
    CHECK(chmod(p, 0640) == 0);

    /* a symbolic link stays a link; the file it names is replaced */
    CHECK(symlink(p, at("link", q, sizeof q)) == 0);
    CHECK(fileio_out_open(q, &o) == M40LLM_OK);
    write_all(&o, "four");
    CHECK(fileio_out_commit(&o) == M40LLM_OK);
    read_back(p, got, sizeof got);
    CHECK(!strcmp(got, "four") && lstat(q, &st) == 0 && S_ISLNK(st.st_mode));

    /* a device is written in place: the error is reported and nothing is
     * removed, neither the device nor the link to it */
    CHECK(symlink("/dev/full", at("full", q, sizeof q)) == 0);
    CHECK(fileio_out_open(q, &o) == M40LLM_OK);
    write_all(&o, "data");
    CHECK(fileio_out_commit(&o) == M40LLM_ERR_IO && error_has("No space left on device"));
    CHECK(lstat(q, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode));
    CHECK(fileio_out_open(q, &o) == M40LLM_OK);
    fileio_out_abort(&o);
    CHECK(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode) && temporaries() == 0);

    /* a FIFO with a reader gets the data in place */
    int r = open(at("fifo", q, sizeof q), O_RDONLY | O_NONBLOCK);
    CHECK(r >= 0);
    CHECK(fileio_out_open(q, &o) == M40LLM_OK);
    write_all(&o, "piped");
    CHECK(fileio_out_commit(&o) == M40LLM_OK);
    char pb[16] = {0};
    CHECK(r >= 0 && read(r, pb, sizeof pb - 1) == 5 && !strcmp(pb, "piped"));
    if (r >= 0) close(r);
    CHECK(lstat(q, &st) == 0 && S_ISFIFO(st.st_mode));

    CHECK(fileio_out_open(dir, &o) == M40LLM_ERR_IO && error_has("is a directory"));
    CHECK(fileio_out_open(at("no/such/dir", q, sizeof q), &o) == M40LLM_ERR_IO);
    CHECK(temporaries() == 0);
}

static void cleanup(void) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    alarm(60); /* a blocking open() fails the test instead of hanging it */
    snprintf(dir, sizeof dir, "/tmp/m40-fileio-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_open_read();
    test_read_file();
    test_read_fd();
    test_out();
    cleanup();
    return check_summary("test_fileio");
}
