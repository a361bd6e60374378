/* The listening socket (--addr), loopback detection for the "no key on a
 * public address" warning, and the API-key check. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "srv_int.h"

static int srv_parse_port(const char *p, const char *addr, int *port) {
    if (!*p) return err_set(M40LLM_ERR_INVALID_ARG, "--addr '%s': the port is missing", addr);
    long v = 0;
    for (const char *q = p; *q; q++) {
        if (!isdigit((unsigned char)*q) || v > 65535)
            return err_set(M40LLM_ERR_INVALID_ARG, "--addr '%s': '%s' is not a port (0-65535)",
                           addr, p);
        v = v * 10 + (*q - '0');
    }
    if (v > 65535)
        return err_set(M40LLM_ERR_INVALID_ARG, "--addr '%s': '%s' is not a port (0-65535)", addr,
                       p);
    *port = (int)v;
    return M40LLM_OK;
}

static int srv_copy_host(const char *h, size_t n, char *host, size_t size, const char *addr) {
    if (n + 1 > size) return err_set(M40LLM_ERR_INVALID_ARG, "--addr '%s': host too long", addr);
    memcpy(host, h, n);
    host[n] = '\0';
    return M40LLM_OK;
}

int server_parse_addr(const char *addr, char *host, size_t size, int *port) {
    *port = SERVER_DEFAULT_PORT;
    if (!addr || !*addr) return srv_copy_host("127.0.0.1", 9, host, size, "");
    if (addr[0] == '[') { /* [v6] or [v6]:port */
        const char *end = strchr(addr, ']');
        if (!end || end == addr + 1)
            return err_set(M40LLM_ERR_INVALID_ARG, "--addr '%s': unbalanced '[' or empty host",
                           addr);
        if (srv_copy_host(addr + 1, (size_t)(end - addr - 1), host, size, addr)) return -1;
        if (!end[1]) return M40LLM_OK;
        if (end[1] != ':')
            return err_set(M40LLM_ERR_INVALID_ARG, "--addr '%s': expected ':PORT' after ']'", addr);
        return srv_parse_port(end + 2, addr, port);
    }
    const char *colon = strchr(addr, ':');
    if (colon && strchr(colon + 1, ':')) /* a bare IPv6 address, no port */
        return srv_copy_host(addr, strlen(addr), host, size, addr);
    if (!colon) {
        if (strspn(addr, "0123456789") == strlen(addr)) { /* just a port */
            if (srv_copy_host("127.0.0.1", 9, host, size, addr)) return -1;
            return srv_parse_port(addr, addr, port);
        }
        return srv_copy_host(addr, strlen(addr), host, size, addr);
    }
    if (colon == addr) { /* ":port": loopback, the safe default */
        if (srv_copy_host("127.0.0.1", 9, host, size, addr)) return -1;
    } else if (srv_copy_host(addr, (size_t)(colon - addr), host, size, addr)) {
        return -1;
    }
    return srv_parse_port(colon + 1, addr, port);
}

bool srv_addr_is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static void srv_format_addr(const struct sockaddr *sa, char *out, size_t n) {
    char h[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof h);
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%d", h, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, h, sizeof h);
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", h, port);
    }
}

int srv_listen(const char *addr, int *fd_out, char *bound, size_t bound_size, bool *loopback) {
    char host[256];
    int port;
    int rc = server_parse_addr(addr, host, sizeof host, &port);
    if (rc) return rc;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(host, ports, &hints, &res);
    if (g)
        return err_set(M40LLM_ERR_INVALID_ARG, "--addr '%s': cannot resolve '%s': %s",
                       addr ? addr : "", host, gai_strerror(g));
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
            err = errno;
            close(fd);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl)) memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        srv_format_addr((const struct sockaddr *)&ss, bound, bound_size);
        *loopback = srv_addr_is_loopback((const struct sockaddr *)&ss);
        *fd_out = fd;
        freeaddrinfo(res);
        return M40LLM_OK;
    }
    freeaddrinfo(res);
    return err_set(M40LLM_ERR_IO, "cannot listen on %s port %d: %s", host, port,
                   strerror(err ? err : EADDRNOTAVAIL));
}

bool srv_key_equal(const char *given, size_t given_len, const char *key, size_t key_len) {
    /* time depends on the key's length only, never on where a byte differs */
    volatile unsigned char d = given_len != key_len;
    for (size_t i = 0; i < key_len; i++)
        d |= (unsigned char)(key[i] ^ (i < given_len ? given[i] : 0));
    return d == 0;
}

bool srv_auth_ok(const char *header, const char *key) {
    if (!key || !*key) return true;
    if (!header) return false;
    while (*header == ' ' || *header == '\t') header++;
    if (strncasecmp(header, "Bearer", 6) || (header[6] != ' ' && header[6] != '\t')) return false;
    const char *t = header + 7;
    while (*t == ' ' || *t == '\t') t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
    return srv_key_equal(t, n, key, strlen(key));
}
