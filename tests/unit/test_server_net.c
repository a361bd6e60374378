/* Server: --addr parsing, listening, loopback detection, the API-key
 * comparison and the model names a client may send. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "server/srv_int.h"

static int addr_ok(const char *a, const char *host, int port) {
    char h[256];
    int p = -1;
    if (server_parse_addr(a, h, sizeof h, &p)) {
        fprintf(stderr, "'%s': %s\n", a ? a : "(null)", m40llm_last_error());
        return 0;
    }
    if (strcmp(h, host) || p != port) {
        fprintf(stderr, "'%s': got '%s' %d, want '%s' %d\n", a, h, p, host, port);
        return 0;
    }
    return 1;
}

static int addr_bad(const char *a, const char *needle) {
    char h[256];
    int p;
    if (server_parse_addr(a, h, sizeof h, &p) != M40LLM_ERR_INVALID_ARG) return 0;
    return strstr(m40llm_last_error(), needle) != NULL;
}

static void test_addr(void) {
    CHECK(addr_ok(NULL, "127.0.0.1", 8080));
    CHECK(addr_ok("", "127.0.0.1", 8080));
    CHECK(addr_ok("0.0.0.0:8080", "0.0.0.0", 8080)); /* the original design's form */
    CHECK(addr_ok("127.0.0.1:9", "127.0.0.1", 9));
    CHECK(addr_ok(":7000", "127.0.0.1", 7000)); /* no host: loopback */
    CHECK(addr_ok("7001", "127.0.0.1", 7001));
    CHECK(addr_ok("localhost", "localhost", 8080));
    CHECK(addr_ok("[::1]:9000", "::1", 9000));
    CHECK(addr_ok("[::]", "::", 8080));
    CHECK(addr_ok("::1", "::1", 8080));
    CHECK(addr_ok("host:0", "host", 0));
    CHECK(addr_bad("host:", "the port is missing"));
    CHECK(addr_bad("host:65536", "is not a port"));
    CHECK(addr_bad("host:99999999999999999999", "is not a port"));
    CHECK(addr_bad("host:-1", "is not a port"));
    CHECK(addr_bad("host:8o80", "is not a port"));
    CHECK(addr_bad("[::1", "unbalanced"));
    CHECK(addr_bad("[]:80", "empty host"));
    CHECK(addr_bad("[::1]80", "expected ':PORT'"));
}

static void test_listen(void) {
    int fd = -1;
    char bound[160];
    bool lo = false;
    CHECK(srv_listen("127.0.0.1:0", &fd, bound, sizeof bound, &lo) == M40LLM_OK);
    CHECK(fd >= 0 && lo);
    CHECKF(!strncmp(bound, "127.0.0.1:", 10) && strcmp(bound, "127.0.0.1:0"), "%s", bound);
    /* the same port again: in use */
    int fd2 = -1;
    CHECK(srv_listen(bound, &fd2, bound, sizeof bound, &lo) == M40LLM_ERR_IO);
    CHECK(strstr(m40llm_last_error(), "cannot listen on 127.0.0.1 port") != NULL);
    if (fd >= 0) close(fd);
    CHECK(srv_listen("0.0.0.0:0", &fd, bound, sizeof bound, &lo) == M40LLM_OK && !lo);
    if (fd >= 0) close(fd);
    CHECK(srv_listen("no-such-host.invalid:80", &fd, bound, sizeof bound, &lo) ==
          M40LLM_ERR_INVALID_ARG);
}

static void test_loopback(void) {
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
    CHECK(srv_addr_is_loopback((struct sockaddr *)&a4));
    inet_pton(AF_INET, "127.1.2.3", &a4.sin_addr);
    CHECK(srv_addr_is_loopback((struct sockaddr *)&a4));
    inet_pton(AF_INET, "10.0.0.1", &a4.sin_addr);
    CHECK(!srv_addr_is_loopback((struct sockaddr *)&a4));
    inet_pton(AF_INET, "0.0.0.0", &a4.sin_addr);
    CHECK(!srv_addr_is_loopback((struct sockaddr *)&a4));
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    CHECK(srv_addr_is_loopback((struct sockaddr *)&a6));
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
    CHECK(srv_addr_is_loopback((struct sockaddr *)&a6));
    inet_pton(AF_INET6, "::", &a6.sin6_addr);
    CHECK(!srv_addr_is_loopback((struct sockaddr *)&a6));
    inet_pton(AF_INET6, "fe80::1", &a6.sin6_addr);
    CHECK(!srv_addr_is_loopback((struct sockaddr *)&a6));
}

static void test_auth(void) {
    CHECK(srv_key_equal("secret", 6, "secret", 6));
    CHECK(!srv_key_equal("secreT", 6, "secret", 6));
    CHECK(!srv_key_equal("secre", 5, "secret", 6));
    CHECK(!srv_key_equal("secrets", 7, "secret", 6));
    CHECK(!srv_key_equal("", 0, "secret", 6));
    CHECK(!srv_key_equal("secret", 6, "", 0));
    CHECK(srv_key_equal("", 0, "", 0));
    CHECK(srv_auth_ok("Bearer secret", "secret"));
    CHECK(srv_auth_ok("bearer secret", "secret"));
    CHECK(srv_auth_ok("  Bearer   secret  ", "secret"));
    CHECK(!srv_auth_ok("Bearer secre", "secret"));
    CHECK(!srv_auth_ok("Bearer secret2", "secret"));
    CHECK(!srv_auth_ok("Basic secret", "secret"));
    CHECK(!srv_auth_ok("Bearersecret", "secret"));
    CHECK(!srv_auth_ok("secret", "secret"));
    CHECK(!srv_auth_ok("Bearer ", "secret"));
    CHECK(!srv_auth_ok(NULL, "secret"));
    CHECK(srv_auth_ok(NULL, NULL)); /* no key: open */
    CHECK(srv_auth_ok("Bearer x", ""));
}

static void test_names(void) {
    srv_names n;
    const char *path = "/m/SmolLM2-135M-Instruct.Q4_1.gguf";
    srv_names_init(&n, "smollm2", NULL, path, "SmolLM2 135M Instruct");
    CHECK(!strcmp(n.id, "smollm2"));
    CHECK(!strcmp(n.stem, "SmolLM2-135M-Instruct.Q4_1"));
    CHECK(srv_model_matches(&n, "smollm2"));
    CHECK(srv_model_matches(&n, "SMOLLM2:latest"));
    CHECK(srv_model_matches(&n, "SmolLM2-135M-Instruct.Q4_1"));
    CHECK(srv_model_matches(&n, "SmolLM2-135M-Instruct.Q4_1.gguf"));
    CHECK(srv_model_matches(&n, "smollm2-135m-instruct.q4_1:latest"));
    CHECK(srv_model_matches(&n, "SmolLM2 135M Instruct"));
    CHECK(!srv_model_matches(&n, "smollm2:7b"));
    CHECK(!srv_model_matches(&n, "gpt-4"));
    CHECK(!srv_model_matches(&n, ""));
    CHECK(!srv_model_matches(&n, ":latest"));
    CHECK(!srv_model_matches(&n, NULL));
    /* a path to --model: the file's stem is the id; an alias wins */
    srv_names_init(&n, path, NULL, path, NULL);
    CHECK(!strcmp(n.id, "SmolLM2-135M-Instruct.Q4_1"));
    srv_names_init(&n, "x.gguf", NULL, "x.gguf", NULL);
    CHECK(!strcmp(n.id, "x"));
    srv_names_init(&n, "smollm2", "mistral", path, "");
    CHECK(!strcmp(n.id, "mistral"));
    CHECK(srv_model_matches(&n, "mistral:latest"));
    CHECK(srv_model_matches(&n, "SmolLM2-135M-Instruct.Q4_1"));
    CHECK(!srv_model_matches(&n, "smollm2")); /* the alias replaced the given name */
}

int main(void) {
    test_addr();
    test_listen();
    test_loopback();
    test_auth();
    test_names();
    return check_summary("test_server_net");
}
