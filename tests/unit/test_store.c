/* The model store's parsers and rules (src/store/): name validation,
 * manifests (round trip, hostile files, random mutations), Ollama
 * manifests, the Hugging Face file listing and the choice of files
 * (quantization words, split parts), store writes and listing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "store/pull.h"
#include "store/store.h"

static int norm(const char *in, char *out) {
    return store_name_normalize(in, out, STORE_NAME_MAX + 16);
}

static void test_names(void) {
    char o[STORE_NAME_MAX + 16];
    CHECK(norm("SmolLM2:135M", o) == M40LLM_OK && !strcmp(o, "smollm2:135m"));
    CHECK(norm("mistral", o) == M40LLM_OK && !strcmp(o, "mistral:latest"));
    CHECK(norm("hf.co/Owner/Repo:Q4_K_M", o) == M40LLM_OK && !strcmp(o, "hf.co/owner/repo:q4_k_m"));
    CHECK(norm("a.b-c_d/e:1.0", o) == M40LLM_OK);
    const struct {
        const char *in, *why;
    } bad[] = {
        {"", "empty"},
        {"../x", "'..' is not allowed"},
        {"a/../b", "'..' is not allowed"},
        {"a/./b", "'.' is not allowed"},
        {"/abs", "absolute path"},
        {"a\x01", "control character 0x01"},
        {"a\x7f", "control character 0x7f"},
        {"a\tb", "control character 0x09"},
        {"a//b", "empty name component"},
        {"a/", "ends with '/'"},
        {".x", "may not start with '.'"},
        {"-x", "may not start with '-'"},
        {"x:", "empty tag"},
        {"x:.y", "may not start with '.'"},
        {"x:a/b", "'/' in the tag"},
        {"a:b:c", "more than one ':'"},
        {"a b", "' ' is not allowed"},
        {"a\\b", "'\\' is not allowed"},
        {"caf\xc3\xa9", "only ASCII"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = norm(bad[i].in, o);
        CHECKF(rc == M40LLM_ERR_INVALID_ARG && strstr(m40llm_last_error(), bad[i].why), "%zu: %s",
               i, m40llm_last_error());
    }
    char longn[400];
    memset(longn, 'a', sizeof longn - 1);
    longn[sizeof longn - 1] = '\0';
    CHECK(norm(longn, o) == M40LLM_ERR_INVALID_ARG && strstr(m40llm_last_error(), "longer than"));
    longn[150] = '\0';
    CHECK(norm(longn, o) == M40LLM_ERR_INVALID_ARG); /* one component over 100 bytes */
}

static void test_file_rules(void) {
    CHECK(store_file_has_quant("model-Q4_K_M.gguf", "Q4_K_M"));
    CHECK(store_file_has_quant("model.q4_k_m.gguf", "Q4_K_M"));
    CHECK(!store_file_has_quant("model-Q4_K_M.gguf", "Q4_K"));
    CHECK(!store_file_has_quant("model-IQ4_XS.gguf", "Q4_XS"));
    CHECK(store_file_has_quant("x-Q8_0-00001-of-00002.gguf", "Q8_0"));
    int k = 0, n = 0;
    size_t pl = 0;
    CHECK(store_split_part("big-Q4_K_M-00002-of-00003.gguf", &k, &n, &pl) && k == 2 && n == 3 &&
          pl == strlen("big-Q4_K_M"));
    CHECK(!store_split_part("big-00004-of-00003.gguf", &k, &n, &pl));
    CHECK(!store_split_part("big-00000-of-00003.gguf", &k, &n, &pl));
    CHECK(!store_split_part("big-0001-of-0003.gguf", &k, &n, &pl));
    CHECK(!store_split_part("-00001-of-00003.gguf", &k, &n, &pl));
}

static store_model sample(void) {
    store_model m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "smollm2:135m");
    snprintf(m.source, sizeof m.source, "hf.co/o/r");
    snprintf(m.revision, sizeof m.revision, "abc123");
    m.n_parts = 2;
    for (int i = 0; i < 2; i++) {
        snprintf(m.parts[i].file, sizeof m.parts[i].file, "f-0000%d-of-00002.gguf", i + 1);
        memset(m.parts[i].sha256, 'a' + i, 64);
        m.parts[i].size = 1000 + (uint64_t)i;
    }
    m.size = 2001;
    snprintf(m.arch, sizeof m.arch, "llama");
    snprintf(m.quant, sizeof m.quant, "Q4_K_M");
    m.n_params = 134515008;
    m.n_ctx = 8192;
    m.modified = 1700000000;
    return m;
}

static int parse(const char *text, store_model *out) {
    return store_manifest_parse(text, strlen(text), "/home", "M", out);
}

/* Cheap deterministic generator for the mutations. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_manifest(void) {
    store_model m = sample(), r;
    char *text = NULL;
    CHECK(store_manifest_format(&m, &text) == M40LLM_OK && text);
    CHECK(parse(text, &r) == M40LLM_OK);
    CHECK(!strcmp(r.name, "smollm2:135m") && r.n_parts == 2 && r.size == 2001);
    CHECK(!strcmp(r.parts[1].sha256, m.parts[1].sha256) && r.parts[1].size == 1001);
    CHECK(!strcmp(r.arch, "llama") && !strcmp(r.quant, "Q4_K_M") && r.n_params == 134515008);
    CHECK(r.n_ctx == 8192 && r.modified == 1700000000 && !strcmp(r.revision, "abc123"));
    char want[200];
    snprintf(want, sizeof want, "/home/blobs/sha256-%s", m.parts[0].sha256);
    CHECK(!strcmp(r.path, want));

    /* hostile manifests: a clear error each, never a crash */
    const struct {
        const char *text, *why;
    } bad[] = {
        {"", "not a JSON object"},
        {"[]", "not a JSON object"},
        {"{\"schema_version\":1", "not a JSON object"},
        {"{}", "'schema_version' is missing"},
        {"{\"schema_version\":2}", "schema_version 2"},
        {"{\"schema_version\":\"1\"}", "not a non-negative integer"},
        {"{\"schema_version\":1,\"name\":5}", "'name' is not a string"},
        {"{\"schema_version\":1,\"name\":\"../x\"}", "'..' is not allowed"},
        {"{\"schema_version\":1,\"name\":\"x\"}", "'parts' is missing"},
        {"{\"schema_version\":1,\"name\":\"x\",\"parts\":{}}", "'parts' is not an array"},
        {"{\"schema_version\":1,\"name\":\"x\",\"parts\":[]}", "1 to 64 files"},
        {"{\"schema_version\":1,\"name\":\"x\",\"parts\":[5]}", "parts[0] is not an object"},
        {"{\"schema_version\":1,\"name\":\"x\",\"parts\":[{\"file\":\"a/b\"}]}", "plain file name"},
        {"{\"schema_version\":1,\"name\":\"x\",\"parts\":[{\"file\":\"a\",\"sha256\":\"AB\"}]}",
         "64 lower-case hex"},
        {"{\"schema_version\":1,\"name\":\"x\",\"parts\":[{\"file\":\"a\",\"sha256\":"
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"size\":-1}]}",
         "not a non-negative integer"},
        {"{\"schema_version\":1,\"name\":\"x\",\"parts\":[{\"file\":\"a\",\"sha256\":"
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"size\":1.5}]}",
         "not a non-negative integer"},
        {"{\"schema_version\":1,\"name\":\"x\",\"parts\":[{\"file\":\"a\",\"sha256\":"
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"size\":1e300}]}",
         "not a non-negative integer"},
        {"{\"schema_version\":1,\"name\":\"x\",\"architecture\":\"a\\u0001\"}",
         "control character"},
        {"{\"schema_version\":1,\"name\":\"x\",\"added\":\"yesterday\"}", "not a UTC time"},
        {"{\"schema_version\":1,\"name\":\"x\",\"quantization\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaa\"}",
         "longer than 31 bytes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i].text, &r);
        CHECKF(rc < 0 && strstr(m40llm_last_error(), bad[i].why), "%zu: %s", i,
               m40llm_last_error());
        CHECK(!strncmp(m40llm_last_error(), "M", 1)); /* names the file */
    }
    /* a NUL inside, deep nesting, a huge file */
    char nul[] = "{\"schema_version\":1,\"name\":\"x\0y\"}";
    CHECK(store_manifest_parse(nul, sizeof nul - 1, "/h", "M", &r) == M40LLM_ERR_FORMAT);
    size_t big = STORE_MANIFEST_CAP + 10;
    char *huge = malloc(big + 1);
    memset(huge, '[', big);
    huge[big] = '\0';
    CHECK(store_manifest_parse(huge, big, "/h", "M", &r) == M40LLM_ERR_FORMAT &&
          strstr(m40llm_last_error(), "larger than"));
    CHECK(store_manifest_parse(huge, 100000, "/h", "M", &r) == M40LLM_ERR_FORMAT);
    free(huge);

    /* random mutations of a good manifest: parse or fail, never crash */
    size_t tl = strlen(text);
    char *buf = malloc(tl + 64);
    int ok = 0, failed = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, text, tl + 1);
        size_t len = tl;
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd() % len;
            switch (rnd() % 4) {
            case 0:
                buf[at] = (char)(rnd() & 0xff);
                break; /* a random byte */
            case 1:
                len = at + 1;
                break; /* truncated */
            case 2:
                buf[at] = "{}[]\",:0-e"[rnd() % 10];
                break; /* a JSON byte */
            case 3:
                memmove(buf + at, buf + at + 1, len - at);
                len--;
                break;
            }
            if (!len) len = 1;
        }
        if (store_manifest_parse(buf, len, "/h", "M", &r) == M40LLM_OK) {
            ok++;
            CHECK(r.n_parts >= 1 && r.n_parts <= STORE_MAX_PARTS && strlen(r.path) > 0);
        } else {
            failed++;
            CHECK(m40llm_last_error()[0] != '\0');
        }
    }
    CHECK(ok + failed == 3000 && failed > 1000);
    free(buf);
    free(text);
}

static void test_ollama(void) {
    char sha[65];
    uint64_t size = 0;
    const char *good =
        "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:00\"},\"layers\":["
        "{\"mediaType\":\"application/vnd.ollama.image.template\",\"digest\":\"sha256:11\"},"
        "{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":42}]}";
    CHECK(store_ollama_parse_manifest(good, strlen(good), "M", sha, &size) == M40LLM_OK);
    CHECK(!strcmp(sha, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    CHECK(size == 42);
    const struct {
        const char *text, *why;
    } bad[] = {
        {"", "no 'layers' list"},
        {"{\"layers\":{}}", "no 'layers' list"},
        {"{\"layers\":[{\"mediaType\":5}]}", "no layer of type"},
        {"{\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\"}]}",
         "not sha256:<64 hex>"},
        {"{\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":"
         "\"sha256:../../../../etc/passwd\"}]}",
         "not sha256:<64 hex>"},
        {"{\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":"
         "\"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"}]}",
         "not sha256:<64 hex>"},
        {"{\"layers\":[", "no 'layers' list"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = store_ollama_parse_manifest(bad[i].text, strlen(bad[i].text), "M", sha, &size);
        CHECKF(rc < 0 && strstr(m40llm_last_error(), bad[i].why), "%zu: %s", i,
               m40llm_last_error());
    }
    /* mutations */
    size_t gl = strlen(good);
    char *buf = malloc(gl + 1);
    for (int it = 0; it < 2000; it++) {
        memcpy(buf, good, gl + 1);
        size_t len = gl;
        for (int e = 0; e < 3; e++) {
            size_t at = rnd() % len;
            if (rnd() & 1)
                buf[at] = (char)(rnd() & 0xff);
            else
                len = at + 1;
        }
        int rc = store_ollama_parse_manifest(buf, len, "M", sha, &size);
        CHECK(rc == M40LLM_OK ? strlen(sha) == 64 : m40llm_last_error()[0] != '\0');
    }
    free(buf);
}

static void test_hf_tree(void) {
    const char *tree =
        "[{\"type\":\"file\",\"path\":\"README.md\",\"size\":12,\"oid\":\"x\"},"
        "{\"type\":\"directory\",\"path\":\"sub\"},"
        "{\"type\":\"file\",\"path\":\"m-Q8_0.gguf\",\"size\":5,\"lfs\":{\"oid\":"
        "\"1111111111111111111111111111111111111111111111111111111111111111\",\"size\":100}},"
        "{\"type\":\"file\",\"path\":\"sub/m-Q4_K_M.gguf\",\"size\":7,\"lfs\":{\"oid\":"
        "\"2222222222222222222222222222222222222222222222222222222222222222\",\"size\":200}},"
        "{\"type\":\"file\",\"path\":\"m-Q4_K_M-00002-of-00002.gguf\",\"size\":1,\"lfs\":{\"oid\":"
        "\"3333333333333333333333333333333333333333333333333333333333333333\",\"size\":300}},"
        "{\"type\":\"file\",\"path\":\"m-Q4_K_M-00001-of-00002.gguf\",\"size\":1,\"lfs\":{\"oid\":"
        "\"4444444444444444444444444444444444444444444444444444444444444444\",\"size\":400}},"
        "{\"type\":\"file\",\"path\":\"mmproj-Q4_K_M.gguf\",\"size\":1},"
        "{\"type\":\"file\",\"path\":\"../evil-Q4_K_M.gguf\",\"size\":1},"
        "{\"type\":\"file\",\"path\":\"/abs-Q4_K_M.gguf\",\"size\":1},"
        "{\"type\":\"file\",\"path\":5},"
        "{\"type\":\"file\",\"path\":\"m-Q6_K.gguf\",\"size\":9,\"lfs\":{\"oid\":\"short\"}}]";
    pull_tree_entry *e = NULL;
    int n = 0;
    CHECK(pull_hf_parse_tree(tree, strlen(tree), &e, &n) == M40LLM_OK);
    CHECK(n == 7); /* the directory, ../, /abs and the number are dropped */
    pull_plan plan;
    memset(&plan, 0, sizeof plan);
    CHECK(pull_hf_select(e, n, NULL, "Q8_0", &plan) == M40LLM_OK && plan.n_files == 1);
    CHECK(!strcmp(plan.files[0].path, "m-Q8_0.gguf") && plan.files[0].size == 100);
    CHECK(plan.files[0].sha256[0] == '1');
    /* Q4_K_M: the split model (shorter path than sub/), both parts in order */
    memset(&plan, 0, sizeof plan);
    CHECK(pull_hf_select(e, n, NULL, NULL, &plan) == M40LLM_OK && plan.n_files == 2);
    CHECK(!strcmp(plan.files[0].path, "m-Q4_K_M-00001-of-00002.gguf"));
    CHECK(!strcmp(plan.files[1].path, "m-Q4_K_M-00002-of-00002.gguf"));
    CHECK(plan.files[1].sha256[0] == '3' && plan.files[1].size == 300);
    /* a file by path; one that is not an LFS file has no sha256 */
    memset(&plan, 0, sizeof plan);
    CHECK(pull_hf_select(e, n, "sub/m-Q4_K_M.gguf", NULL, &plan) == M40LLM_OK);
    CHECK(plan.n_files == 1 && plan.files[0].sha256[0] == '2');
    memset(&plan, 0, sizeof plan);
    CHECK(pull_hf_select(e, n, "m-Q6_K.gguf", NULL, &plan) == M40LLM_OK);
    CHECK(plan.files[0].sha256[0] == '\0' && plan.files[0].size == 9);
    CHECK(pull_hf_select(e, n, "README.md", NULL, &plan) == M40LLM_ERR_FORMAT);
    CHECK(pull_hf_select(e, n, "nope.gguf", NULL, &plan) == M40LLM_ERR_NOT_FOUND);
    CHECK(pull_hf_select(e, n, NULL, "Q2_K", &plan) == M40LLM_ERR_NOT_FOUND &&
          strstr(m40llm_last_error(), "no Q2_K GGUF file"));
    /* the second part alone picks the whole group */
    memset(&plan, 0, sizeof plan);
    CHECK(pull_hf_select(e, n, "m-Q4_K_M-00002-of-00002.gguf", NULL, &plan) == M40LLM_OK &&
          plan.n_files == 2);
    free(e);
    /* hostile listings */
    const char *bad[] = {"", "{}", "[", "[[[[", "\"x\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(pull_hf_parse_tree(bad[i], strlen(bad[i]), &e, &n) == M40LLM_ERR_FORMAT);
    CHECK(pull_hf_parse_tree("[]", 2, &e, &n) == M40LLM_OK && n == 0);
    free(e);
}

static void test_store_dir(void) {
    char tmpl[] = "/tmp/m40llm-store-XXXXXX";
    char *home = mkdtemp(tmpl);
    CHECK(home != NULL);
    if (!home) return;
    CHECK(store_init(home) == M40LLM_OK);
    store_model m = sample(), r;
    CHECK(store_manifest_write(home, &m) == M40LLM_OK);
    snprintf(m.name, sizeof m.name, "ns/other:v1");
    CHECK(store_manifest_write(home, &m) == M40LLM_OK);
    char p[STORE_PATH_MAX];
    store_manifest_path(home, "ns/other:v1", p, sizeof p);
    struct stat st;
    CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode));
    CHECK(store_manifest_read(home, "ns/other:v1", &r) == M40LLM_OK && r.n_parts == 2);
    CHECK(store_manifest_read(home, "absent", &r) == M40LLM_ERR_NOT_FOUND);
    /* list skips manifests whose blobs are missing; with the blobs both show */
    store_model *v = NULL;
    int n = -1;
    CHECK(store_list_own(home, false, &v, &n) == M40LLM_OK && n == 0);
    free(v);
    for (int i = 0; i < 2; i++) {
        store_blob_path(home, m.parts[i].sha256, p, sizeof p);
        FILE *f = fopen(p, "w");
        CHECK(f != NULL);
        if (f) fclose(f);
    }
    CHECK(store_list_own(home, false, &v, &n) == M40LLM_OK && n == 2);
    CHECK(n == 2 && !strcmp(v[0].name, "ns/other:v1") && !strcmp(v[1].name, "smollm2:135m"));
    free(v);
    /* rm keeps blobs another name uses, then removes them with the last one */
    CHECK(store_remove(home, "smollm2:135m") == M40LLM_OK);
    store_blob_path(home, m.parts[0].sha256, p, sizeof p);
    CHECK(access(p, F_OK) == 0);
    CHECK(store_remove(home, "ns/other:v1") == M40LLM_OK);
    CHECK(access(p, F_OK) != 0);
    CHECK(store_remove(home, "ns/other:v1") == M40LLM_ERR_NOT_FOUND);
    CHECK(store_remove(home, "../x") == M40LLM_ERR_INVALID_ARG);
    /* locks: taken twice in sequence */
    int a = -1;
    CHECK(store_lock(home, "k", &a) == M40LLM_OK && a >= 0);
    store_unlock(a);
    CHECK(store_lock(home, "k", &a) == M40LLM_OK);
    store_unlock(a);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    CHECK(system(cmd) == 0);
}

int main(void) {
    test_names();
    test_file_rules();
    test_manifest();
    test_ollama();
    test_hf_tree();
    test_store_dir();
    return check_summary("test_store");
}
