/* libFuzzer target: JSON mode's two automata. The input is a schema, a NUL
 * byte, then an answer. The schema is compiled (json_schema_compile: any
 * bytes, refused or not, without a memory error or leak); the answer's bytes
 * go one at a time through the schema's automaton, when it compiled, and
 * through the any-object one (json_pda). Traps when either breaks its
 * contract: a refused byte that changes the state, or a complete answer
 * that is not a JSON object cJSON parses, or bytes after it that are not
 * whitespace. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json_pda.h"
#include "json_sa.h"

static void check_done(const uint8_t *a, size_t n) {
    cJSON *j = cJSON_ParseWithLength((const char *)a, n);
    if (!cJSON_IsObject(j)) __builtin_trap();
    cJSON_Delete(j);
}

static bool is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    const size_t ns = nul ? (size_t)(nul - data) : size;
    const uint8_t *ans = nul ? nul + 1 : data + size;
    const size_t na = nul ? size - ns - 1 : 0;
    json_schema *s = NULL;
    static json_sa a, b; /* (too big for a fuzzer's stack frame to copy often) */
    if (json_schema_compile((const char *)data, ns, &s) == 0) {
        json_sa_init(&a, s);
        size_t end = 0;
        for (size_t i = 0; i < na; i++) {
            b = a;
            const bool was_done = json_sa_done(&a);
            if (!json_sa_feed(&a, ans[i])) {
                if (memcmp(&a, &b, sizeof a)) __builtin_trap();
                break;
            }
            if (was_done && !is_ws(ans[i])) __builtin_trap();
            if (!was_done && json_sa_done(&a)) end = i + 1;
        }
        if (end) check_done(ans, end);
        json_schema_free(s);
    }
    json_pda p, q;
    json_pda_init(&p);
    size_t end = 0;
    for (size_t i = 0; i < na; i++) {
        q = p;
        const bool was_done = json_pda_done(&p);
        if (!json_pda_feed(&p, ans[i])) {
            if (memcmp(&p, &q, sizeof p)) __builtin_trap();
            break;
        }
        if (was_done && !is_ws(ans[i])) __builtin_trap();
        if (!was_done && json_pda_done(&p)) end = i + 1;
    }
    if (end) check_done(ans, end);
    return 0;
}
