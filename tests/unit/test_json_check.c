/* json_check: the pre-parse checks of untrusted JSON text (NUL, "\u0000",
 * depth, value count) that keep cJSON from cutting strings or taking
 * gigabytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "json_check.h"
#include "m40llm.h"

static int chk(const char *s, size_t max) {
    return json_check(s, strlen(s), "m.json", max);
}

int main(void) {
    CHECK(chk("[{\"role\": \"user\", \"content\": \"a, [b] {c} \\\" ,,\"}]", 0) == M40LLM_OK);
    CHECK(chk("[]", 0) == M40LLM_OK);
    /* NUL byte and \u0000 */
    CHECK(json_check("[\"a\0b\"]", 7, "m.json", 0) == M40LLM_ERR_FORMAT);
    CHECK(strstr(m40llm_last_error(), "m.json: a NUL byte at byte 3") != NULL);
    CHECK(chk("[\"a\\u0000\"]", 0) == M40LLM_ERR_FORMAT);
    CHECK(strstr(m40llm_last_error(), "\\u0000\" at byte 3") != NULL);
    CHECK(chk("[\"a\\\\u0000\"]", 0) == M40LLM_OK); /* an escaped backslash, then text */
    /* depth: cJSON's limit, named */
    char deep[2 * CJSON_NESTING_LIMIT + 8];
    memset(deep, '[', CJSON_NESTING_LIMIT + 1);
    memset(deep + CJSON_NESTING_LIMIT + 1, ']', CJSON_NESTING_LIMIT + 1);
    deep[2 * CJSON_NESTING_LIMIT + 2] = '\0';
    CHECK(chk(deep, 0) == M40LLM_ERR_FORMAT);
    CHECK(strstr(m40llm_last_error(), "nested deeper than the limit") != NULL);
    deep[CJSON_NESTING_LIMIT] = '0';
    CHECK(chk(deep + 1, 0) == M40LLM_OK);
    /* value count: at most max_values; strings' commas do not count */
    CHECK(chk("[0,0,0]", 4) == M40LLM_OK);
    CHECK(chk("[0,0,0,0]", 4) == M40LLM_ERR_FORMAT);
    CHECK(strstr(m40llm_last_error(), "m.json: more than 4 JSON values (at byte 6)") != NULL);
    CHECK(chk("[\",,,,,,\"]", 4) == M40LLM_OK);
    CHECK(chk("{\"a\": [1], \"b\": {\"c\": 2}}", 5) == M40LLM_OK);
    CHECK(chk("{\"a\": [1], \"b\": {\"c\": 2}}", 4) == M40LLM_ERR_FORMAT);
    /* the count bounds what cJSON builds */
    const char *samples[] = {"[1,[2,3],{\"a\":[4,{\"b\":5}]},\"x\"]", "{\"a\":1,\"b\":[true,null]}", "7"};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        cJSON *j = cJSON_Parse(samples[i]);
        size_t n = 0;
        for (size_t max = 1; max < 64 && !n; max++)
            if (chk(samples[i], max) == M40LLM_OK) n = max;
        int nodes = 0;
        /* count cJSON nodes */
        cJSON *stack[64];
        int sp = 0;
        stack[sp++] = j;
        while (sp) {
            cJSON *c = stack[--sp];
            nodes++;
            for (cJSON *k = c->child; k; k = k->next) stack[sp++] = k;
        }
        CHECKF(n == (size_t)nodes, "%s: %zu counted, %d nodes", samples[i], n, nodes);
        cJSON_Delete(j);
    }
    /* 64 MiB of "0," is refused at once, by default at 1M values */
    size_t len = (size_t)64 << 20;
    char *zeros = malloc(len);
    zeros[0] = '[';
    for (size_t i = 1; i < len; i++) zeros[i] = i % 2 ? '0' : ',';
    zeros[len - 1] = ']';
    clock_t c0 = clock();
    CHECK(json_check(zeros, len, "zeros.json", 0) == M40LLM_ERR_FORMAT);
    double dt = (double)(clock() - c0) / CLOCKS_PER_SEC;
    CHECKF(strstr(m40llm_last_error(), "zeros.json: more than 1000000 JSON values") != NULL, "%s",
           m40llm_last_error());
    CHECKF(dt < 0.5, "%.3f s", dt);
    free(zeros);
    return check_summary("test_json_check");
}
