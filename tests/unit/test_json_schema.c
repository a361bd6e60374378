/* JSON mode with a schema: what the compiler refuses (with the keyword and
 * place named), and which answers the automaton accepts byte by byte for
 * schemas of every supported kind (properties in order, optional ones
 * left out, required ones not; enums with numbers that end only at what
 * follows them; integers; arrays with bounds; anyOf picked by the first
 * byte; nullable; $ref with recursion; free values), a refused byte
 * leaving the state as it was. */
#include <stdio.h>
#include <string.h>

#include "../../src/engine/json_sa.h"
#include "check.h"
#include "m40llm.h"

static json_schema *compile(const char *text) {
    json_schema *s = NULL;
    int rc = json_schema_compile(text, strlen(text), &s);
    CHECKF(rc == M40LLM_OK, "compile %s: %s", text, m40llm_last_error());
    return s;
}

static bool refused(const char *text, const char *why) {
    json_schema *s = NULL;
    int rc = json_schema_compile(text, strlen(text), &s);
    json_schema_free(s);
    const bool ok = rc == M40LLM_ERR_INVALID_ARG && !s && strstr(m40llm_last_error(), why);
    if (!ok) printf("  %s: rc %d, '%s' (wanted '%s')\n", text, rc, m40llm_last_error(), why);
    return ok;
}

static int accepts(const json_schema *s, const char *doc) {
    json_sa a;
    json_sa_init(&a, s);
    for (const char *p = doc; *p; p++)
        if (!json_sa_feed(&a, (uint8_t)*p)) return 0;
    return json_sa_done(&a);
}

static void test_refused(void) {
    CHECK(refused("[1]", "a schema must be an object"));
    CHECK(refused("{\"type\": \"string\"}", "root must be an object"));
    CHECK(refused("{\"type\": \"array\"}", "root must be an object"));
    CHECK(refused("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\", "
                  "\"pattern\": \"x\"}}}",
                  "/properties/a: this keyword is not supported: pattern"));
    CHECK(refused("{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\", "
                  "\"minimum\": 0}}}",
                  "not supported: minimum"));
    CHECK(refused("{\"type\": \"object\", \"allOf\": []}", "not supported: allOf"));
    CHECK(refused("{\"type\": \"object\", \"properties\": {\"a\": {\"anyOf\": [{\"type\": "
                  "\"integer\"}, {\"type\": \"number\"}]}}}",
                  "start with the same byte"));
    CHECK(refused("{\"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#/$defs/none\"}}}",
                  "a $ref that does not point into this schema: #/$defs/none"));
    CHECK(refused("{\"type\": \"object\", \"properties\": {\"a\": {}}, \"required\": [\"b\"]}",
                  "required property that is not in properties: b"));
    CHECK(refused("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"date\"}}}",
                  "unknown type date"));
    CHECK(refused("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"array\", "
                  "\"minItems\": 3, \"maxItems\": 2}}}",
                  "minItems > maxItems"));
    CHECK(refused("{\"type\": \"object\", \"properties\": {\"a\": {\"enum\": []}}}",
                  "enum needs 1 to 256 values"));
    CHECK(refused("{\"$ref\": \"#\"}", "refers to itself"));
    CHECK(refused("{\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}}",
                  "additionalProperties as a schema"));
    CHECK(refused("not json", "not JSON"));
    /* keywords a branch would drop: refused rather than ignored */
    CHECK(refused("{\"type\": \"object\", \"required\": [\"a\"]}", "required without properties"));
    CHECK(refused("{\"properties\": {\"x\": {\"required\": [\"q\"]}}}",
                  "required without properties"));
    CHECK(refused("{\"properties\": {\"x\": {\"type\": \"string\", \"anyOf\": [{\"type\": "
                  "\"number\"}]}}}",
                  "not supported: type beside anyOf"));
    CHECK(refused("{\"properties\": {\"x\": {\"$ref\": \"#/$defs/C\", \"enum\": [\"r\"]}}, "
                  "\"$defs\": {\"C\": {\"enum\": [\"r\", \"g\"]}}}",
                  "not supported: enum beside $ref"));
    CHECK(refused("{\"properties\": {\"x\": {\"enum\": [1], \"items\": {}}}}",
                  "not supported: items beside enum / const"));
    CHECK(refused("{\"properties\": {\"x\": {\"items\": {}, \"required\": []}}}",
                  "keywords of objects and of arrays without a type"));
    CHECK(refused("{\"properties\": {\"a\": {}, \"a\": {\"type\": \"integer\"}}}",
                  "a property named twice: a"));
    CHECK(refused("{\"properties\": {\"a\": {}}, \"required\": [\"a\", \"a\"]}",
                  "required must list names of properties, each once"));
    CHECK(refused("{\"properties\": {\"a\": {}, \"b\": {}}, \"required\": [\"a\", \"a\"]}",
                  "a property required twice: a"));
    CHECK(refused("{\"properties\": {\"x\": {\"enum\": [1e400]}}}", "not finite or beyond"));
    CHECK(refused("{\"properties\": {\"x\": {\"enum\": [9007199254740993]}}}",
                  "not finite or beyond"));
    CHECK(refused("{\"properties\": {\"x\": {\"enum\": [1, 1]}}}", "an enum value twice"));
    CHECK(refused("{\"properties\": {\"x\": {\"type\": \"string\", \"enum\": [1]}}}",
                  "no enum value is of the type beside it"));
    CHECK(refused("{\"properties\": {\"x\": {\"enum\": [1], \"const\": 1}}}", "enum beside const"));
    /* a long required list is refused at once (it once cost seconds) */
    static char big[400000];
    int n = snprintf(big, sizeof big, "{\"properties\": {\"p\": {}}, \"required\": [");
    for (int i = 0; i < 40000; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "%s\"p\"", i ? "," : "");
    snprintf(big + n, sizeof big - (size_t)n, "]}");
    CHECK(refused(big, "each once"));
}

/* ok: instances; bad: not instances; narrow: instances outside what the
 * answers are written as (properties in the schema's order, no others,
 * compact enum values, integers without a fraction or exponent), refused
 * by design */
typedef struct cases {
    const char *schema;
    const char *ok[8];
    const char *bad[10];
    const char *narrow[4];
} cases;

static const cases k_cases[] = {
    {"{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}, \"age\": "
     "{\"type\": \"integer\"}, \"nick\": {\"type\": \"string\"}}, \"required\": [\"name\", "
     "\"age\"]}",
     {"{\"name\":\"a\",\"age\":3}", "{ \"name\" : \"\\u00e9\" , \"age\" : -0 , \"nick\":\"x\" }",
      "\n{\"name\":\"\",\"age\":10}\n"},
     {"{\"name\":\"a\"}", "{\"name\":\"a\",\"age\":3.5}", "{}", "{\"name\":1,\"age\":3}",
      "{\"name\":\"a\",\"age\":3,}", "{\"nick\":\"x\"}", "{\"name\":\"a\",\"age\":1e-3}"},
     {"{\"age\":3,\"name\":\"a\"}", "{\"name\":\"a\",\"age\":1e3}",
      "{\"name\":\"a\",\"age\":3,\"other\":1}"}},
    {"{\"properties\": {\"c\": {\"enum\": [\"red\", \"green\", 1, 12, null, true, {\"a\": 1}]}}}",
     {"{\"c\":\"red\"}", "{\"c\":1}", "{\"c\":12 }", "{\"c\":null}", "{\"c\":true}",
      "{\"c\":{\"a\":1}}", "{}"},
     {"{\"c\":\"blue\"}", "{\"c\":123}", "{\"c\":2}", "{\"c\":\"re\"}", "{\"c\":false}",
      "{\"c\":\"red\" \"x\"}"},
     {"{\"c\":{\"a\": 1}}"}},
    {"{\"type\": \"object\", \"properties\": {\"t\": {\"type\": \"array\", \"items\": "
     "{\"type\": \"boolean\"}, \"minItems\": 1, \"maxItems\": 2}}, \"required\": [\"t\"]}",
     {"{\"t\":[true]}", "{\"t\":[ false , true ]}"},
     {"{\"t\":[]}", "{\"t\":[true,true,true]}", "{\"t\":[1]}", "{\"t\":[true,]}", "{\"t\":true}"},
     {NULL}},
    {"{\"type\": \"object\", \"properties\": {\"v\": {\"anyOf\": [{\"type\": \"number\"}, "
     "{\"type\": \"null\"}, {\"type\": \"string\"}]}, \"w\": {\"type\": \"integer\", "
     "\"nullable\": true}, \"k\": {\"const\": \"x\"}}, \"required\": [\"v\", \"w\", \"k\"]}",
     {"{\"v\":2.5e-3,\"w\":null,\"k\":\"x\"}", "{\"v\":null,\"w\":7,\"k\":\"x\"}",
      "{\"v\":\"s\",\"w\":-1,\"k\":\"x\"}"},
     {"{\"v\":true,\"w\":1,\"k\":\"x\"}", "{\"v\":1,\"w\":1.5,\"k\":\"x\"}",
      "{\"v\":1,\"w\":1,\"k\":\"y\"}"},
     {NULL}},
    {"{\"$defs\": {\"Node\": {\"type\": \"object\", \"properties\": {\"v\": {\"type\": "
     "\"integer\"}, \"next\": {\"anyOf\": [{\"$ref\": \"#/$defs/Node\"}, {\"type\": "
     "\"null\"}]}}, \"required\": [\"v\", \"next\"]}}, \"$ref\": \"#/$defs/Node\"}",
     {"{\"v\":1,\"next\":null}", "{\"v\":1,\"next\":{\"v\":2,\"next\":{\"v\":3,\"next\":null}}}"},
     {"{\"v\":1}", "{\"v\":1,\"next\":{\"v\":2}}", "{\"v\":1,\"next\":[]}"},
     {NULL}},
    {"{\"type\": \"object\", \"properties\": {\"any\": {}, \"obj\": {\"type\": \"object\"}, "
     "\"list\": {\"type\": \"array\"}, \"t\": true}, \"additionalProperties\": false}",
     {"{\"any\":[1,{\"a\":null}],\"obj\":{\"x\":[]},\"list\":[1,\"a\"],\"t\":-5}", "{\"any\":3}",
      "{\"any\":3 ,\"t\":\"x\"}", "{\"obj\":{}}"},
     {"{\"obj\":[]}", "{\"list\":{}}", "{\"any\":}", "{\"any\":01}"},
     {NULL}},
    {"{\"type\": \"object\"}", {"{}", "{\"a\":[1,2,{\"b\":null}]}"}, {"[]", "{\"a\"}"}, {NULL}},
    {"{}", {"{}", "{\"a\":1}"}, {"[]", "1", "\"s\""}, {NULL}},
    {"{\"properties\": {\"x\": {\"minItems\": 2}, \"e\": {\"type\": [\"string\", \"null\"], "
     "\"enum\": [\"a\", 1, null]}, \"n\": {\"enum\": [\"b\"], \"nullable\": true}}}",
     {"{\"x\":[1,2]}", "{\"e\":\"a\"}", "{\"e\":null}", "{\"n\":null}", "{\"n\":\"b\"}"},
     {"{\"x\":[]}", "{\"x\":[1]}", "{\"e\":1}", "{\"n\":\"a\"}"},
     {"{\"x\":{}}"}},
    {"true", {"{}"}, {"null"}, {NULL}},
    {"{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}",
     {"{}", " { } "},
     {"{\"a\":1}"},
     {NULL}},
};

static void test_instances(void) {
    int n_ok = 0, n_bad = 0, n_narrow = 0;
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) {
        json_schema *s = compile(k_cases[i].schema);
        if (!s) continue;
        for (int k = 0; k < 8 && k_cases[i].ok[k]; k++, n_ok++)
            CHECKF(accepts(s, k_cases[i].ok[k]), "schema %zu: refused %s", i, k_cases[i].ok[k]);
        for (int k = 0; k < 10 && k_cases[i].bad[k]; k++, n_bad++)
            CHECKF(!accepts(s, k_cases[i].bad[k]), "schema %zu: accepted %s", i, k_cases[i].bad[k]);
        for (int k = 0; k < 4 && k_cases[i].narrow[k]; k++, n_narrow++)
            CHECKF(!accepts(s, k_cases[i].narrow[k]), "schema %zu: accepted %s", i,
                   k_cases[i].narrow[k]);
        json_schema_free(s);
    }
    printf("  %d instances accepted, %d non-instances refused, %d instances outside the written "
           "form refused\n",
           n_ok, n_bad, n_narrow);
}

static void test_state(void) {
    json_schema *s = compile("{\"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": "
                             "\"string\"}}, \"required\": [\"a\"]}");
    if (!s) return;
    json_sa a, b;
    json_sa_init(&a, s);
    CHECK(json_sa_feed_all(&a, (const uint8_t *)"{\"a\":12", 7));
    b = a;
    CHECK(!json_sa_feed(&a, '.') && !memcmp(&a, &b, sizeof a));
    CHECK(!json_sa_feed_all(&a, (const uint8_t *)"3,\"c", 4) && !memcmp(&a, &b, sizeof a));
    CHECK(json_sa_feed_all(&a, (const uint8_t *)"3,\"b\":\"x\"", 9) && !json_sa_done(&a));
    CHECK(json_sa_feed(&a, '}') && json_sa_done(&a));
    CHECK(json_sa_feed(&a, '\n') && !json_sa_feed(&a, 'x'));
    json_schema_free(s);
    /* recursion is bounded by the automaton's depth */
    s = compile("{\"$defs\": {\"N\": {\"type\": \"object\", \"properties\": {\"n\": {\"$ref\": "
                "\"#/$defs/N\"}}}}, \"$ref\": \"#/$defs/N\"}");
    if (!s) return;
    json_sa_init(&a, s);
    int depth = 0;
    while (json_sa_feed_all(&a, (const uint8_t *)"{\"n\":", 5)) depth++;
    CHECKF(depth == JSON_SA_MAX_DEPTH - 1, "nested %d deep", depth);
    json_schema_free(s);
}

int main(void) {
    test_refused();
    test_instances();
    test_state();
    return check_summary("test_json_schema");
}
