/* Pre-parse checks of untrusted JSON text: NUL, depth, value count. */
#include <stdbool.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "json_check.h"

int json_check(const char *text, size_t len, const char *name, size_t max_values) {
    if (!max_values) max_values = JSON_CHECK_MAX_VALUES;
    const char *nul = memchr(text, '\0', len);
    if (nul)
        return err_set(M40LLM_ERR_FORMAT, "%s: a NUL byte at byte %zu (JSON text cannot hold one)",
                       name, (size_t)(nul - text));
    int depth = 0;
    bool in_str = false;
    /* values: the top one, one more for each ',' between elements or members,
     * and one for the first item of each container (counted at its '[' or
     * '{', so an empty container counts once too many: a bound, not a count) */
    size_t values = 1;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '"') {
                in_str = false;
            } else if (c == '\\' && i + 1 < len) {
                /* cJSON would end the string at a decoded NUL, cutting it silently */
                if (text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4))
                    return err_set(M40LLM_ERR_FORMAT,
                                   "%s: \"\\u0000\" at byte %zu: strings cannot hold a NUL "
                                   "character",
                                   name, i);
                i++; /* the escaped character cannot end the string */
            }
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{' || c == ',') {
            if (c != ',' && ++depth > CJSON_NESTING_LIMIT)
                return err_set(M40LLM_ERR_FORMAT,
                               "%s: nested deeper than the limit of %d levels (at byte %zu)", name,
                               CJSON_NESTING_LIMIT, i);
            if (++values > max_values)
                return err_set(M40LLM_ERR_FORMAT,
                               "%s: more than %zu JSON values (at byte %zu); refusing to parse it",
                               name, max_values, i);
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return M40LLM_OK;
}
