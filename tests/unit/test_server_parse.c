/* Server: request bodies -> generation specs (OpenAI and Ollama), with
 * 400s that name the offending field, and error bodies in each API's shape. */
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "server/srv_int.h"

typedef int (*parse_fn)(const cJSON *, gen_spec *, bool *, api_err *);

/* Parses body with fn into g (freed by the caller); returns the parser's result. */
static int parse(parse_fn fn, gen_kind kind, const char *body, gen_spec *g, bool *seeded,
                 api_err *e) {
    memset(e, 0, sizeof *e);
    gen_spec_init(g, kind);
    *seeded = false;
    cJSON *b = rq_parse(body, strlen(body), e);
    if (!b) return -2;
    int rc = fn(b, g, seeded, e);
    cJSON_Delete(b);
    return rc;
}

/* The body fails with 400 naming param, and the message holds needle. */
static int fails(parse_fn fn, gen_kind kind, const char *body, const char *param,
                 const char *needle) {
    gen_spec g;
    bool seeded;
    api_err e;
    int rc = parse(fn, kind, body, &g, &seeded, &e);
    gen_spec_free(&g);
    int ok = rc == -1 && e.status == 400 && !strcmp(e.param, param) && strstr(e.msg, needle);
    if (!ok)
        fprintf(stderr, "body %s: rc %d status %d param '%s' msg '%s'\n", body, rc, e.status,
                e.param, e.msg);
    return ok;
}

static void test_rq_parse(void) {
    api_err e;
    CHECK(!rq_parse("", 0, &e) && e.status == 400 && strstr(e.msg, "empty"));
    CHECK(!rq_parse("[1]", 3, &e) && strstr(e.msg, "must be a JSON object"));
    CHECK(!rq_parse("{", 1, &e) && strstr(e.msg, "not valid JSON"));
    CHECK(!rq_parse("{} x", 4, &e) && strstr(e.msg, "text after the value"));
    const char *nul = "{\"a\": \"x\\u0000y\"}";
    CHECK(!rq_parse(nul, strlen(nul), &e) && strstr(e.msg, "\\u0000"));
    CHECK(!rq_parse("{\"a\": \"x\0y\"}", 12, &e) && strstr(e.msg, "NUL byte"));
    char deep[4096];
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"a\":", 4);
    n += 4;
    for (int i = 0; i < 2000; i++) deep[n++] = '[';
    for (int i = 0; i < 2000; i++) deep[n++] = ']';
    deep[n++] = '}';
    CHECK(!rq_parse(deep, n, &e) && strstr(e.msg, "nested deeper"));
    cJSON *ok = rq_parse("{\"a\": 1}\n", 9, &e);
    CHECK(ok != NULL);
    cJSON_Delete(ok);
}

static void test_oai_chat(void) {
    gen_spec g;
    bool seeded;
    api_err e;
    int rc = parse(oai_parse_chat, GEN_OAI_CHAT,
                   "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
                   &g, &seeded, &e);
    CHECK(rc == 0 && !seeded && !g.stream && !strcmp(g.model, "m"));
    /* OpenAI's defaults, not the engine's */
    CHECK(g.sampling.temperature == 1.0f && g.sampling.top_p == 1.0f && g.sampling.top_k == 0 &&
          g.sampling.min_p == 0.0f && g.sampling.repeat_penalty == 1.0f);
    CHECK(g.max_tokens == 0 && g.n_stops == 0 && !g.logprobs);
    CHECK(cJSON_GetArraySize(g.messages) == 1);
    gen_spec_free(&g);

    rc = parse(
        oai_parse_chat, GEN_OAI_CHAT,
        "{\"messages\": [{\"role\": \"developer\", \"content\": \"be brief\"},"
        " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"},"
        " {\"type\": \"text\", \"text\": \"b\"}]}, {\"role\": \"assistant\", \"content\": null}],"
        " \"temperature\": 0, \"top_p\": 0.5, \"top_k\": 7, \"min_p\": 0.1,"
        " \"repeat_penalty\": 1.2, \"presence_penalty\": -1, \"frequency_penalty\": 2,"
        " \"max_tokens\": 5, \"max_completion_tokens\": 9, \"stop\": [\"x\", \"\", \"yz\"],"
        " \"seed\": -3, \"n\": 1, \"stream\": true, \"stream_options\": {\"include_usage\": true},"
        " \"logprobs\": true, \"top_logprobs\": 3, \"tools\": [], \"user\": \"u\","
        " \"ignore_eos\": true}",
        &g, &seeded, &e);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK(g.sampling.temperature == 0.0f && g.sampling.top_p == 0.5f && g.sampling.top_k == 7);
    CHECK(g.sampling.min_p == 0.1f && g.sampling.repeat_penalty == 1.2f);
    CHECK(g.sampling.presence_penalty == -1.0f && g.sampling.frequency_penalty == 2.0f);
    CHECK(g.max_tokens == 9); /* max_completion_tokens wins */
    CHECK(g.n_stops == 2 && !strcmp(g.stops[0], "x") && !strcmp(g.stops[1], "yz"));
    CHECK(seeded && g.sampling.seed == (uint64_t)-3);
    CHECK(g.stream && g.include_usage && g.logprobs == 1 && g.top_logprobs == 3 && g.ignore_eos);
    cJSON *m0 = cJSON_GetArrayItem(g.messages, 0), *m1 = cJSON_GetArrayItem(g.messages, 1);
    cJSON *m2 = cJSON_GetArrayItem(g.messages, 2);
    CHECK(!strcmp(cJSON_GetObjectItem(m0, "role")->valuestring, "system"));
    CHECK(!strcmp(cJSON_GetObjectItem(m1, "content")->valuestring, "a\nb"));
    CHECK(!strcmp(cJSON_GetObjectItem(m2, "content")->valuestring, ""));
    gen_spec_free(&g);

    const char *msgs = "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]";
    char b[512];
#define BODY(extra) (snprintf(b, sizeof b, "{%s, %s}", msgs, extra), b)
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"temperature\": \"hot\""), "temperature",
                "must be a number"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"temperature\": 2.5"), "temperature",
                "must be in [0, 2]"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"top_k\": 1.5"), "top_k", "integer"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"n\": 2"), "n", "only n=1"));
    CHECK(
        fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"max_tokens\": 0"), "max_tokens", "must be in"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"max_tokens\": \"5\""), "max_tokens",
                "integer"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"stop\": [1]"), "stop", "array of strings"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"stop\": 3"), "stop", "string or an array"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"stream\": \"yes\""), "stream",
                "true or false"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"stream_options\": 1"), "stream_options",
                "object"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"top_logprobs\": 2"), "top_logprobs",
                "needs 'logprobs'"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"logprobs\": true, \"top_logprobs\": 21"),
                "top_logprobs", "must be in [0, 20]"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"model\": 5"), "model", "must be a string"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"seed\": 1.5"), "seed", "integer"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"seed\": 1e20"), "seed", "[-2^63, 2^64)"));
    CHECK(parse(oai_parse_chat, GEN_OAI_CHAT, BODY("\"seed\": 9223372036854775808"), &g, &seeded,
                &e) == 0 &&
          seeded && g.sampling.seed == 9223372036854775808ull);
    gen_spec_free(&g);
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"tools\": [{\"type\": \"function\"}]"),
                "tools", "not supported"));
    CHECK(parse(oai_parse_chat, GEN_OAI_CHAT, BODY("\"logit_bias\": {\"7\": -100, \"12\": 2.5}"),
                &g, &seeded, &e) == 0 &&
          g.n_logit_bias == 2 && g.logit_bias[0].token == 7 && g.logit_bias[0].bias == -100 &&
          g.logit_bias[1].token == 12 && g.logit_bias[1].bias == 2.5f);
    gen_spec_free(&g);
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"logit_bias\": {\"x7\": 1}"), "logit_bias",
                "is not a token id"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"logit_bias\": {\"-1\": 1}"), "logit_bias",
                "is not a token id"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"logit_bias\": {\"7\": 101}"), "logit_bias",
                "[-100, 100]"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"logit_bias\": [1]"), "logit_bias",
                "must be an object"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"response_format\": {\"type\": \"xml\"}"),
                "response_format", "not supported"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT,
                BODY("\"response_format\": {\"type\": \"json_schema\"}"),
                "response_format.json_schema", "must be an object"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT,
                BODY("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": "
                     "{\"name\": \"x\", \"schema\": {\"type\": \"string\"}}}"),
                "response_format.json_schema.schema", "root must be an object"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT,
                BODY("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": "
                     "{\"name\": \"x\", \"schema\": {\"type\": \"object\", \"properties\": "
                     "{\"a\": {\"type\": \"string\", \"pattern\": \"^x\"}}}}}"),
                "response_format.json_schema.schema", "not supported: pattern"));
    CHECK(parse(oai_parse_chat, GEN_OAI_CHAT,
                BODY("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": "
                     "{\"name\": \"x\", \"schema\": {\"type\": \"object\", \"properties\": "
                     "{\"a\": {\"type\": \"integer\"}}, \"required\": [\"a\"]}}}"),
                &g, &seeded, &e) == 0 &&
          g.format == M40LLM_FORMAT_JSON && g.json_schema && strstr(g.json_schema, "integer"));
    gen_spec_free(&g);
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, BODY("\"response_format\": \"json\""),
                "response_format", "must be an object"));
    CHECK(parse(oai_parse_chat, GEN_OAI_CHAT,
                BODY("\"response_format\": {\"type\": \"json_object\"}"), &g, &seeded, &e) == 0 &&
          g.format == M40LLM_FORMAT_JSON);
    gen_spec_free(&g);
    CHECK(parse(oai_parse_chat, GEN_OAI_CHAT, BODY("\"response_format\": {\"type\": \"text\"}"), &g,
                &seeded, &e) == 0 &&
          g.format == M40LLM_FORMAT_TEXT);
    gen_spec_free(&g);
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, "{}", "messages", "is required"));
    CHECK(
        fails(oai_parse_chat, GEN_OAI_CHAT, "{\"messages\": {}}", "messages", "must be an array"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, "{\"messages\": []}", "messages", "at least one"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, "{\"messages\": [\"hi\"]}", "messages[0]",
                "must be an object"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT,
                "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"tool\", "
                "\"content\": \"b\"}]}",
                "messages[1].role", "not supported"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT, "{\"messages\": [{\"content\": \"a\"}]}",
                "messages[0].role", "must be a string"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT,
                "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages[0].content",
                "must be a string"));
    CHECK(fails(oai_parse_chat, GEN_OAI_CHAT,
                "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}",
                "messages[0].content", "only text parts"));
#undef BODY
}

static void test_oai_completion(void) {
    gen_spec g;
    bool seeded;
    api_err e;
    CHECK(parse(oai_parse_completion, GEN_OAI_COMPLETION, "{\"prompt\": \"Once\"}", &g, &seeded,
                &e) == 0 &&
          g.prompt && !strcmp(g.prompt, "Once") && !g.ids);
    gen_spec_free(&g);
    CHECK(parse(oai_parse_completion, GEN_OAI_COMPLETION,
                "{\"prompt\": [\"Once\"], \"logprobs\": 2}", &g, &seeded, &e) == 0 &&
          !strcmp(g.prompt, "Once") && g.logprobs == 1 && g.top_logprobs == 2);
    gen_spec_free(&g);
    CHECK(parse(oai_parse_completion, GEN_OAI_COMPLETION,
                "{\"prompt\": [1, 2, 3], \"logprobs\": 0}", &g, &seeded, &e) == 0 &&
          g.n_ids == 3 && g.ids[2] == 3 && g.logprobs == 1 && g.top_logprobs == 0);
    gen_spec_free(&g);
    CHECK(parse(oai_parse_completion, GEN_OAI_COMPLETION, "{\"prompt\": [[4, 5]]}", &g, &seeded,
                &e) == 0 &&
          g.n_ids == 2 && g.ids[0] == 4);
    gen_spec_free(&g);
    CHECK(fails(oai_parse_completion, GEN_OAI_COMPLETION, "{}", "prompt", "is required"));
    CHECK(fails(oai_parse_completion, GEN_OAI_COMPLETION, "{\"prompt\": [\"a\", \"b\"]}", "prompt",
                "one prompt"));
    CHECK(fails(oai_parse_completion, GEN_OAI_COMPLETION, "{\"prompt\": [1, -2]}", "prompt",
                "integers >= 0"));
    CHECK(fails(oai_parse_completion, GEN_OAI_COMPLETION, "{\"prompt\": 5}", "prompt",
                "must be a string"));
    CHECK(fails(oai_parse_completion, GEN_OAI_COMPLETION, "{\"prompt\": \"a\", \"echo\": true}",
                "echo", "not supported"));
    CHECK(fails(oai_parse_completion, GEN_OAI_COMPLETION, "{\"prompt\": \"a\", \"best_of\": 3}",
                "best_of", "best_of=1"));
    CHECK(fails(oai_parse_completion, GEN_OAI_COMPLETION, "{\"prompt\": \"a\", \"logprobs\": true}",
                "logprobs", "integer"));
}

static void test_oll(void) {
    gen_spec g;
    bool seeded;
    api_err e;
    int rc = parse(
        oll_parse_chat, GEN_OLL_CHAT,
        "{\"model\": \"m:latest\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", &g,
        &seeded, &e);
    CHECK(rc == 0 && g.stream && !g.load_only && !seeded); /* streaming by default */
    CHECK(g.sampling.temperature == 0.8f && g.sampling.top_k == 40 && g.sampling.top_p == 0.9f &&
          g.sampling.repeat_penalty == 1.1f && g.sampling.penalty_last_n == 64);
    gen_spec_free(&g);
    rc = parse(oll_parse_chat, GEN_OLL_CHAT,
               "{\"model\": \"m\", \"stream\": false, \"format\": \"\", \"keep_alive\": \"5m\","
               " \"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", "
               "\"content\": \"u\"}],"
               " \"options\": {\"temperature\": 0, \"top_k\": 3, \"top_p\": 0.7, \"min_p\": 0.2,"
               " \"num_predict\": 12, \"num_ctx\": 256, \"seed\": 42, \"stop\": [\"\\n\"],"
               " \"repeat_penalty\": 1.0, \"repeat_last_n\": 0, \"presence_penalty\": 0.5,"
               " \"frequency_penalty\": 0.25, \"num_thread\": 8, \"mirostat\": 0}}",
               &g, &seeded, &e);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK(!g.stream && seeded && g.sampling.seed == 42 && g.max_tokens == 12 && g.n_ctx == 256);
    CHECK(g.sampling.temperature == 0.0f && g.sampling.top_k == 3 && g.sampling.top_p == 0.7f &&
          g.sampling.min_p == 0.2f && g.sampling.repeat_penalty == 1.0f &&
          g.sampling.penalty_last_n == 0 && g.sampling.presence_penalty == 0.5f &&
          g.sampling.frequency_penalty == 0.25f);
    CHECK(g.n_stops == 1 && !strcmp(g.stops[0], "\n") && cJSON_GetArraySize(g.messages) == 2);
    gen_spec_free(&g);
    /* seed -1: random; num_predict -1 / -2: no limit */
    rc = parse(oll_parse_generate, GEN_OLL_GENERATE,
               "{\"model\": \"m\", \"prompt\": \"p\", \"system\": \"s\", \"raw\": true,"
               " \"template\": \"ignored\", \"context\": [1, 2], \"options\": {\"seed\": -1, "
               "\"num_predict\": -2}}",
               &g, &seeded, &e);
    CHECK(rc == 0 && !seeded && g.max_tokens == 0 && g.raw && !strcmp(g.prompt, "p") &&
          !strcmp(g.system, "s"));
    gen_spec_free(&g);
    /* no prompt or messages: "load the model" */
    CHECK(parse(oll_parse_generate, GEN_OLL_GENERATE, "{\"model\": \"m\"}", &g, &seeded, &e) == 0 &&
          g.load_only);
    gen_spec_free(&g);
    CHECK(parse(oll_parse_chat, GEN_OLL_CHAT, "{\"model\": \"m\", \"messages\": []}", &g, &seeded,
                &e) == 0 &&
          g.load_only);
    gen_spec_free(&g);
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT, "{\"messages\": []}", "model", "model is required"));
    CHECK(
        fails(oll_parse_generate, GEN_OLL_GENERATE, "{\"model\": 3}", "model", "must be a string"));
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT,
                "{\"model\": \"m\", \"options\": {\"temperature\": \"x\"}}", "options.temperature",
                "must be a number"));
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT, "{\"model\": \"m\", \"options\": {\"num_ctx\": 0}}",
                "options.num_ctx", "must be in"));
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT, "{\"model\": \"m\", \"options\": [1]}", "options",
                "must be an object"));
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT, "{\"model\": \"m\", \"options\": {\"stop\": [5]}}",
                "options.stop", "array of strings"));
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT,
                "{\"model\": \"m\", \"format\": {\"type\": \"array\"}}", "format",
                "root must be an object"));
    CHECK(parse(oll_parse_chat, GEN_OLL_CHAT,
                "{\"model\": \"m\", \"format\": {\"type\": \"object\"}}", &g, &seeded, &e) == 0 &&
          g.format == M40LLM_FORMAT_JSON && g.json_schema);
    gen_spec_free(&g);
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT, "{\"model\": \"m\", \"format\": \"xml\"}", "format",
                "must be \"json\" or a JSON schema"));
    CHECK(parse(oll_parse_chat, GEN_OLL_CHAT, "{\"model\": \"m\", \"format\": \"json\"}", &g,
                &seeded, &e) == 0 &&
          g.format == M40LLM_FORMAT_JSON);
    gen_spec_free(&g);
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT, "{\"model\": \"m\", \"stream\": 1}", "stream",
                "true or false"));
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT, "{\"model\": \"m\", \"messages\": {}}", "messages",
                "must be an array"));
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT,
                "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"a\", "
                "\"images\": [\"xx\"]}]}",
                "messages[0].images", "not supported"));
    CHECK(fails(oll_parse_chat, GEN_OLL_CHAT,
                "{\"model\": \"m\", \"messages\": [{\"role\": \"tool\", \"content\": \"a\"}]}",
                "messages[0].role", "not supported"));
    CHECK(fails(oll_parse_generate, GEN_OLL_GENERATE, "{\"model\": \"m\", \"prompt\": 1}", "prompt",
                "must be a string"));
    CHECK(fails(oll_parse_generate, GEN_OLL_GENERATE,
                "{\"model\": \"m\", \"prompt\": \"a\", \"suffix\": \"b\"}", "suffix",
                "not supported"));
}

static void test_error_bodies(void) {
    api_err e;
    rq_fail(&e, 400, "temperature", "'%s' must be a number", "temperature");
    char *s = rq_error_body(API_OPENAI, &e);
    cJSON *j = cJSON_Parse(s);
    cJSON *err = cJSON_GetObjectItem(j, "error");
    CHECK(cJSON_IsObject(err));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "message")->valuestring,
                  "'temperature' must be a number"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "type")->valuestring, "invalid_request_error"));
    CHECK(!strcmp(cJSON_GetObjectItem(err, "param")->valuestring, "temperature"));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    cJSON_Delete(j);
    free(s);
    s = rq_error_body(API_OLLAMA, &e);
    j = cJSON_Parse(s);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "error")) && cJSON_GetArraySize(j) == 1);
    cJSON_Delete(j);
    free(s);
    /* library statuses map onto HTTP ones */
    struct {
        int rc, status;
    } map[] = {{M40LLM_ERR_CONTEXT_FULL, 400}, {M40LLM_ERR_INVALID_ARG, 400},
               {M40LLM_ERR_BUSY, 503},         {M40LLM_ERR_NOT_FOUND, 404},
               {M40LLM_ERR_INTERNAL, 500},     {M40LLM_ERR_CUDA, 500}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        rq_fail_status(&e, map[i].rc, NULL);
        CHECKF(e.status == map[i].status, "rc %d -> %d", map[i].rc, e.status);
    }
    rq_fail(&e, 503, NULL, "busy");
    s = rq_error_body(API_OPENAI, &e);
    CHECK(strstr(s, "\"type\":\"server_error\"") && strstr(s, "\"param\":null"));
    free(s);
}

int main(void) {
    test_rq_parse();
    test_oai_chat();
    test_oai_completion();
    test_oll();
    test_error_bodies();
    return check_summary("test_server_parse");
}
