/* Server: OpenAI and Ollama responses and streamed chunks, byte for byte
 * where the protocol fixes it ("data: ...\n\n", NDJSON lines) and field by
 * field otherwise. */
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "server/srv_int.h"

/* "data: {json}\n\n" -> the object (NULL when the framing is wrong) */
static cJSON *sse(char *s) {
    cJSON *j = NULL;
    size_t n = s ? strlen(s) : 0;
    if (n > 8 && !strncmp(s, "data: ", 6) && !strcmp(s + n - 2, "\n\n") && s[n - 3] != '\n')
        j = cJSON_ParseWithLength(s + 6, n - 8);
    free(s);
    return j;
}

static const char *str(const cJSON *o, const char *path) {
    /* "a.b.0.c": members and array indexes */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *c = o;
    for (char *t = strtok(buf, "."); t && c; t = strtok(NULL, "."))
        c = (*t >= '0' && *t <= '9') ? cJSON_GetArrayItem(c, atoi(t)) : cJSON_GetObjectItem(c, t);
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static const cJSON *get(const cJSON *o, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *c = o;
    for (char *t = strtok(buf, "."); t && c; t = strtok(NULL, "."))
        c = (*t >= '0' && *t <= '9') ? cJSON_GetArrayItem(c, atoi(t)) : cJSON_GetObjectItem(c, t);
    return c;
}

static double num(const cJSON *o, const char *path) {
    const cJSON *c = get(o, path);
    return cJSON_IsNumber(c) ? c->valuedouble : -12345;
}

static void test_oai_chunks(void) {
    gen_fmt f = {.kind = GEN_OAI_CHAT, .id = "chatcmpl-1", .created = 1700000000, .model = "m"};
    cJSON *j = sse(oai_chat_chunk(&f, "assistant", "", 0, NULL, NULL));
    CHECK(j != NULL);
    CHECK(!strcmp(str(j, "object"), "chat.completion.chunk") &&
          !strcmp(str(j, "id"), "chatcmpl-1"));
    CHECK(num(j, "created") == 1700000000 && !strcmp(str(j, "model"), "m"));
    CHECK(!strcmp(str(j, "choices.0.delta.role"), "assistant"));
    CHECK(!strcmp(str(j, "choices.0.delta.content"), ""));
    CHECK(cJSON_IsNull(get(j, "choices.0.finish_reason")) &&
          cJSON_IsNull(get(j, "choices.0.logprobs")));
    CHECK(num(j, "choices.0.index") == 0);
    CHECK(get(j, "usage") == NULL); /* only when include_usage */
    cJSON_Delete(j);

    const char text[] = "a \"quoted\"\nline \xc3\xa9";
    j = sse(oai_chat_chunk(&f, NULL, text, strlen(text), NULL, NULL));
    CHECK(j && !strcmp(str(j, "choices.0.delta.content"), text) && !get(j, "choices.0.delta.role"));
    cJSON_Delete(j);
    /* a NUL byte in the text is dropped, not a cut string */
    j = sse(oai_chat_chunk(&f, NULL, "ab\0cd", 5, NULL, NULL));
    CHECK(j && !strcmp(str(j, "choices.0.delta.content"), "abcd"));
    cJSON_Delete(j);

    f.include_usage = true;
    j = sse(oai_chat_chunk(&f, NULL, NULL, 0, NULL, "length"));
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(get(j, "choices.0"), "delta")) == 0);
    CHECK(!strcmp(str(j, "choices.0.finish_reason"), "length") && cJSON_IsNull(get(j, "usage")));
    cJSON_Delete(j);
    gen_usage u = {.prompt = 10, .completion = 4, .cached = 8};
    j = sse(oai_usage_chunk(&f, &u));
    CHECK(j && cJSON_IsArray(get(j, "choices")) && cJSON_GetArraySize(get(j, "choices")) == 0);
    CHECK(num(j, "usage.prompt_tokens") == 10 && num(j, "usage.completion_tokens") == 4 &&
          num(j, "usage.total_tokens") == 14 &&
          num(j, "usage.prompt_tokens_details.cached_tokens") == 8);
    CHECK(!strcmp(str(j, "object"), "chat.completion.chunk"));
    cJSON_Delete(j);

    gen_fmt c = {.kind = GEN_OAI_COMPLETION, .id = "cmpl-1", .created = 1, .model = "m"};
    j = sse(oai_compl_chunk(&c, "xy", 2, NULL, NULL));
    CHECK(j && !strcmp(str(j, "object"), "text_completion") &&
          !strcmp(str(j, "choices.0.text"), "xy"));
    CHECK(cJSON_IsNull(get(j, "choices.0.finish_reason")));
    cJSON_Delete(j);
    j = sse(oai_compl_chunk(&c, "", 0, NULL, "stop"));
    CHECK(j && !strcmp(str(j, "choices.0.text"), "") &&
          !strcmp(str(j, "choices.0.finish_reason"), "stop"));
    cJSON_Delete(j);
}

static void test_oai_responses(void) {
    gen_fmt f = {.kind = GEN_OAI_CHAT, .id = "chatcmpl-2", .created = 5, .model = "mm"};
    gen_usage u = {.prompt = 3, .completion = 2, .cached = 0};
    char *s = oai_chat_response(&f, "Paris.", 6, NULL, "stop", &u);
    cJSON *j = cJSON_Parse(s);
    free(s);
    CHECK(j && !strcmp(str(j, "object"), "chat.completion"));
    CHECK(!strcmp(str(j, "choices.0.message.role"), "assistant") &&
          !strcmp(str(j, "choices.0.message.content"), "Paris."));
    CHECK(!strcmp(str(j, "choices.0.finish_reason"), "stop") && num(j, "usage.total_tokens") == 5);
    CHECK(num(j, "usage.prompt_tokens_details.cached_tokens") == 0);
    cJSON_Delete(j);

    /* chat logprobs: token, logprob, bytes, top_logprobs */
    lp_tok chosen = {"\xc3\xa9t\xc3\xa9", 5, -0.25f};
    lp_tok top[2] = {{"\xc3\xa9t\xc3\xa9", 5, -0.25f}, {"x", 1, -2.5f}};
    cJSON *lp = cJSON_CreateArray();
    cJSON_AddItemToArray(lp, oai_chat_logprob(&chosen, top, 2));
    s = oai_chat_response(&f, "\xc3\xa9t\xc3\xa9", 5, lp, "length", &u);
    j = cJSON_Parse(s);
    free(s);
    const cJSON *e = get(j, "choices.0.logprobs.content.0");
    CHECK(e && !strcmp(str(e, "token"), "\xc3\xa9t\xc3\xa9") && num(e, "logprob") == -0.25);
    CHECK(cJSON_GetArraySize(get(e, "bytes")) == 5 && num(e, "bytes.0") == 0xc3 &&
          num(e, "bytes.2") == 't');
    CHECK(cJSON_GetArraySize(get(e, "top_logprobs")) == 2 &&
          !strcmp(str(e, "top_logprobs.1.token"), "x"));
    CHECK(num(e, "top_logprobs.1.logprob") == -2.5 &&
          cJSON_GetArraySize(get(e, "top_logprobs.1.bytes")) == 1);
    cJSON_Delete(j);

    /* completions logprobs: parallel arrays, text offsets */
    gen_fmt c = {.kind = GEN_OAI_COMPLETION, .id = "cmpl-2", .created = 5, .model = "mm"};
    cJSON *clp = NULL;
    lp_tok a = {"He", 2, -0.5f}, b = {"llo", 3, -1.0f};
    lp_tok ta[2] = {{"He", 2, -0.5f}, {"Hi", 2, -1.5f}};
    oai_compl_logprob_add(&clp, &a, ta, 2, 0);
    oai_compl_logprob_add(&clp, &b, NULL, 0, 2);
    s = oai_compl_response(&c, "Hello", 5, clp, "stop", &u);
    j = cJSON_Parse(s);
    free(s);
    const cJSON *l = get(j, "choices.0.logprobs");
    CHECK(!strcmp(str(l, "tokens.0"), "He") && !strcmp(str(l, "tokens.1"), "llo"));
    CHECK(num(l, "token_logprobs.1") == -1.0 && num(l, "text_offset.0") == 0 &&
          num(l, "text_offset.1") == 2);
    CHECK(num(l, "top_logprobs.0.Hi") == -1.5 && cJSON_GetArraySize(get(l, "top_logprobs.1")) == 0);
    CHECK(!strcmp(str(j, "choices.0.text"), "Hello") &&
          !strcmp(str(j, "object"), "text_completion"));
    cJSON_Delete(j);
}

static void test_ollama(void) {
    gen_fmt f = {.kind = GEN_OLL_CHAT, .model = "m:latest"};
    char *s = oll_chunk(&f, "Hi", 2, NULL);
    size_t n = strlen(s);
    CHECK(n > 2 && s[n - 1] == '\n' && !memchr(s, '\n', n - 1)); /* one NDJSON line */
    cJSON *j = cJSON_Parse(s);
    free(s);
    CHECK(j && !strcmp(str(j, "model"), "m:latest") &&
          !strcmp(str(j, "message.role"), "assistant"));
    CHECK(!strcmp(str(j, "message.content"), "Hi") && cJSON_IsFalse(get(j, "done")));
    const char *ts = str(j, "created_at");
    /* 2024-01-02T03:04:05.123456789Z */
    CHECK(ts && strlen(ts) == 30 && ts[10] == 'T' && ts[19] == '.' && ts[29] == 'Z');
    cJSON_Delete(j);

    gen_times t = {
        .total_s = 1.5, .load_s = 0, .prompt_s = 0.25, .gen_s = 1.0, .n_prompt = 7, .n_gen = 9};
    s = oll_final(&f, "", 0, NULL, "stop", &t, true);
    CHECK(s[strlen(s) - 1] == '\n');
    j = cJSON_Parse(s);
    free(s);
    CHECK(cJSON_IsTrue(get(j, "done")) && !strcmp(str(j, "done_reason"), "stop"));
    CHECK(num(j, "total_duration") == 1500000000.0 &&
          num(j, "prompt_eval_duration") == 250000000.0);
    CHECK(num(j, "eval_duration") == 1e9 && num(j, "prompt_eval_count") == 7 &&
          num(j, "eval_count") == 9);
    CHECK(num(j, "load_duration") == 0);
    cJSON_Delete(j);

    gen_fmt g = {.kind = GEN_OLL_GENERATE, .model = "m"};
    lp_tok chosen = {"a", 1, -0.1f}, top[1] = {{"a", 1, -0.1f}};
    cJSON *lp = cJSON_CreateArray();
    cJSON_AddItemToArray(lp, oll_logprob(&chosen, top, 1));
    s = oll_final(&g, "whole answer", 12, lp, "length", &t, false);
    CHECK(s[strlen(s) - 1] == '}');
    j = cJSON_Parse(s);
    free(s);
    CHECK(!strcmp(str(j, "response"), "whole answer") && !get(j, "message"));
    CHECK(!strcmp(str(j, "done_reason"), "length") && !strcmp(str(j, "logprobs.0.token"), "a"));
    CHECK(num(j, "logprobs.0.top_logprobs.0.logprob") < -0.09);
    cJSON_Delete(j);
}

int main(void) {
    test_oai_chunks();
    test_oai_responses();
    test_ollama();
    return check_summary("test_server_format");
}
