/* libFuzzer target: compile arbitrary bytes as a chat template and render it
 * with a conversation that reaches tool-call branches, so that memory errors,
 * undefined behaviour, runaway recursion or leaks in the engine crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "jinja.h"

static cJSON *fuzz_vars;

static const char fuzz_vars_json[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    "{\"role\": \"user\", \"content\": \"Weather in Paris?\"},"
    "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"call_1\","
    "\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
    "\"arguments\": {\"city\": \"Paris\", \"days\": 2}}}]},"
    "{\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"21.5\"},"
    "{\"role\": \"assistant\", \"content\": \"<think>x</think>Warm.\"}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
    "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}],"
    "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_vars) fuzz_vars = cJSON_Parse(fuzz_vars_json);
    jinja_template *t = NULL;
    if (jinja_parse((const char *)data, size, &t) != M40LLM_OK) return 0;
    char *out = NULL;
    jinja_render_opts opts = {.now = 1721995200};
    if (jinja_render(t, fuzz_vars, &opts, &out, NULL) == M40LLM_OK) free(out);
    jinja_free(t);
    return 0;
}
