/* Chat templates: every fixture case in tests/fixtures/templates/cases.json
 * renders byte-for-byte as Jinja2 did (or fails where Jinja2 raised), plus
 * unit tests of the template engine. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "check.h"
#include "jinja.h"

/* 2024-07-26 12:00 UTC: the fixtures' strftime_now date in any time zone */
#define FIXTURE_NOW 1721995200

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = '\0';
    fclose(f);
    return b;
}

static void show_diff(const char *exp, const char *got) {
    size_t i = 0;
    while (exp[i] && exp[i] == got[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  first difference at byte %zu\n  expected: ...%.80s\n  got:      ...%.80s\n",
            i, exp + from, got + from);
}

static void test_fixtures(void) {
    char path[512];
    char *json = read_file(check_fixture("templates/cases.json", path, sizeof path));
    CHECKF(json != NULL, "cannot read %s", path);
    if (!json) return;
    cJSON *cases = cJSON_Parse(json);
    free(json);
    CHECK(cJSON_IsArray(cases));
    int total = 0, passed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *tname = cJSON_GetStringValue(cJSON_GetObjectItem(c, "template"));
        const char *cname = cJSON_GetStringValue(cJSON_GetObjectItem(c, "case"));
        const char *bos = cJSON_GetStringValue(cJSON_GetObjectItem(c, "bos_token"));
        const char *eos = cJSON_GetStringValue(cJSON_GetObjectItem(c, "eos_token"));
        const char *expected = cJSON_GetStringValue(cJSON_GetObjectItem(c, "expected"));
        bool agp = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        bool want_err = cJSON_IsTrue(cJSON_GetObjectItem(c, "error"));
        char rel[300];
        snprintf(rel, sizeof rel, "templates/%s.jinja", tname ? tname : "?");
        char *tmpl = read_file(check_fixture(rel, path, sizeof path));
        total++;
        if (!tmpl) {
            CHECKF(false, "cannot read %s", path);
            continue;
        }
        char *out = NULL;
        int rc = chat_render_at(tmpl, cJSON_GetObjectItem(c, "messages"), agp, bos, eos,
                                FIXTURE_NOW, &out);
        bool ok;
        if (want_err) {
            ok = rc == M40LLM_ERR_INVALID_ARG;
            CHECKF(ok, "%s/%s: expected the template to raise, got rc %d", tname, cname, rc);
        } else {
            ok = rc == M40LLM_OK && expected && out && !strcmp(out, expected);
            CHECKF(ok, "%s/%s: rc %d %s", tname, cname, rc, rc ? m40llm_last_error() : "");
            if (!ok && rc == M40LLM_OK && expected && out) show_diff(expected, out);
        }
        passed += ok;
        free(out);
        free(tmpl);
    }
    cJSON_Delete(cases);
    printf("template fixtures: %d/%d\n", passed, total);
    CHECK(total == 55);
}

int main(void) {
    test_fixtures();
    return check_summary("test_templates");
}
