/* Template bombs: hostile templates (a GGUF's chat template is untrusted)
 * must each end within a second with a clear error, inside the render's
 * memory budget, never crash, hang or take the machine's memory. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "chat.h"
#include "check.h"
#include "jinja.h"
#include "m40llm.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double now_s(void) {
    return clock_s(CLOCK_MONOTONIC);
}

/* expect: NULL = a budget error; "=TEXT" = renders TEXT; else an error whose
 * message contains it */
typedef struct bomb {
    const char *name, *tmpl, *expect;
} bomb;

static const bomb bombs[] = {
    /* the reproducers of issue 18 */
    {"repeat wraps 2^64", "{{ \"abcd\" * 4611686018427387904 }}", NULL},
    {"empty repeat", "{{ \"\" * 9223372036854775807 }}", "="},
    {"empty list repeat", "{{ [] * 9223372036854775807 }}", "=[]"},
    {"percent width s", "{{ \"%999999999s\" % \"x\" }}", "beyond the memory budget"},
    {"percent width d", "{{ \"%999999999d\" % 1 }}", "beyond the memory budget"},
    /* repetition: every size overflow-checked */
    {"repeat int64 max", "{{ 'ab' * 9223372036854775807 }}", NULL},
    {"repeat int on the left", "{{ 9223372036854775807 * 'ab' }}", NULL},
    {"list repeat wraps", "{{ [1, 2] * 4611686018427387904 }}", NULL},
    {"list repeat big", "{{ (['x'] * 100000000)|length }}", NULL},
    {"repeat negative", "{{ 'ab' * -9223372036854775807 - 1 }}", "unsupported operand"},
    {"repeat negative 2", "[{{ 'ab' * (-9223372036854775807 - 1) }}]", "=[]"},
    {"list repeat negative", "{{ [1] * -5 }}", "=[]"},
    {"repeat one budget", "{{ ('x' * 9000000)|length }}", NULL},
    /* growth by doubling */
    {"string doubling ns",
     "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
     "{% endfor %}{{ ns.s|length }}",
     NULL},
    {"string doubling tilde",
     "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}{{ ns.s|length }}",
     NULL},
    {"string doubling macro",
     "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}"
     "{% endmacro %}{{ d('x', 60) }}",
     NULL},
    {"list doubling",
     "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}"
     "{% endfor %}{{ ns.l|length }}",
     NULL},
    {"list doubling repeat",
     "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l * 2 %}"
     "{% endfor %}{{ ns.l|length }}",
     NULL},
    {"list append copying",
     "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}"
     "{% endfor %}{{ ns.l|length }}",
     NULL},
    {"dict growth",
     "{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = dict(ns.d, {i: i}) %}"
     "{% endfor %}{{ ns.d|length }}",
     NULL},
    {"replace growth",
     "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s.replace('x', "
     "'xx') %}{% endfor %}{{ ns.s|length }}",
     NULL},
    {"replace filter growth",
     "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s|replace('', "
     "'x') %}{% endfor %}{{ ns.s|length }}",
     NULL},
    {"set block doubling",
     "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set b %}{{ ns.s }}{{ ns.s }}"
     "{% endset %}{% set ns.s = b %}{% endfor %}{{ ns.s|length }}",
     NULL},
    {"format doubling",
     "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = '%s%s' % (ns.s, "
     "ns.s) %}{% endfor %}{{ ns.s|length }}",
     NULL},
    {"str.format doubling",
     "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = '{}{}'.format(ns.s, "
     "ns.s) %}{% endfor %}{{ ns.s|length }}",
     NULL},
    {"join doubling",
     "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = [ns.s, ns.s]|join %}"
     "{% endfor %}{{ ns.s|length }}",
     NULL},
    /* join of huge lists */
    {"join huge list", "{{ (range(100000)|list * 1000)|join(',')|length }}", NULL},
    {"join huge items", "{{ (['x' * 1000] * 100000)|join|length }}", NULL},
    {"str join huge", "{{ ','.join(['x' * 1000] * 100000)|length }}", NULL},
    /* % and format widths: errors beyond the budget, never cut */
    {"percent precision f", "{{ '%.999999999f' % 1.5 }}", "beyond the memory budget"},
    {"percent width overflow", "{{ '%99999999999999999999999s' % 'x' }}",
     "beyond the memory budget"},
    {"percent width x", "{{ '%-999999999x' % 255 }}", "beyond the memory budget"},
    {"percent width within, repeated", "{{ ('%5000000s' % 'x') * 10 }}", NULL},
    {"format filter width", "{{ '%999999999s'|format('x') }}", "beyond the memory budget"},
    {"percent width near budget", "{{ ('%8000000d' % 1)|length }}", NULL},
    {"percent c range", "{{ '%c' % 99999999 }}", "range(0x110000)"},
    {"percent d of huge float", "{{ '%d' % 1e300 }}", "64 bits"},
    {"percent d of nan", "{{ '%d' % (1e308 * 10 - 1e308 * 10) }}", "NaN"},
    {"percent width output", "{{ ('%1000000s' % 'x')|length }}", "=1000000"},
    /* ranges and loops */
    {"range huge", "{{ range(9223372036854775807)|length }}", "MAX_RANGE"},
    {"range step", "{{ range(-9223372036854775807, 9223372036854775807, 3)|length }}", "MAX_RANGE"},
    {"nested loops",
     "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", NULL},
    {"triple loops",
     "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}"
     "{% endfor %}{% endfor %}",
     NULL},
    {"loop counter",
     "{% set x = namespace(n=0) %}{% for i in range(100000) %}{% for j in range(100000) %}"
     "{% set x.n = x.n + 1 %}{% endfor %}{% endfor %}{{ x.n }}",
     NULL},
    {"loop output", "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", NULL},
    {"loop scans",
     "{% set s = 'x' * 4000000 %}{% for i in range(100000) %}{% if 'y' in s %}"
     "{% endif %}{% endfor %}",
     NULL},
    {"loop equal",
     "{% set s = 'x' * 4000000 %}{% set t = 'x' * 4000000 %}{% for i in range(100000) %}"
     "{% if s == t %}{% endif %}{% endfor %}",
     NULL},
    {"loop index scan",
     "{% set s = 'é' * 2000000 %}{% for i in range(100000) %}{{ s[i] }}{% endfor %}", NULL},
    {"loop length scan",
     "{% set s = 'x' * 4000000 %}{% for i in range(100000) %}{% if s|length %}{% endif %}"
     "{% endfor %}",
     NULL},
    {"loop over string", "{% for c in 'x' * 4000000 %}{% endfor %}", NULL},
    /* recursion */
    {"recursive macro", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "deeply"},
    {"recursive macro fan-out",
     "{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
     "{{ m(60) }}",
     NULL},
    {"macro many calls",
     "{% macro m() %}x{% endmacro %}{% for i in range(100000) %}{% for j in range(100) %}"
     "{{ m() }}{% endfor %}{% endfor %}",
     NULL},
    /* shared structure: a small value that is a huge tree */
    {"tojson of a DAG",
     "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}"
     "{% endfor %}{{ ns.l|tojson }}",
     NULL},
    {"repr of a DAG",
     "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}"
     "{% endfor %}{{ ns.l }}",
     NULL},
    {"equality of DAGs",
     "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] "
     "%}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
     NULL},
    {"order of DAGs",
     "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] "
     "%}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a < ns.b }}",
     NULL},
    {"membership in DAGs",
     "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}{% set ns.a = [ns.a, ns.a] "
     "%}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a in [ns.b] }}",
     NULL},
    {"tojson big", "{{ ([range(100000)|list] * 10)|tojson(indent=64)|length }}", NULL},
    {"tojson sorted keys",
     "{% set ns = namespace(d={}) %}{% for i in range(3000) %}{% set ns.d = dict(ns.d, "
     "{(10000 - i)|string: i}) %}{% endfor %}{{ ns.d|tojson(sort_keys=true)|length }}",
     NULL},
    /* filters that iterate */
    {"unique quadratic", "{{ range(20000)|unique|list|length }}", NULL},
    {"strip with huge chars", "{% set s = ' ' * 1000000 %}{{ (s ~ 'x' ~ s)|trim(s) }}", NULL},
    {"select in", "{% set s = 'x' * 1000000 %}{{ ([s] * 100000)|select('in', s)|list|length }}",
     NULL},
    {"map upper", "{{ (['x' * 100000] * 1000)|map('upper')|list|length }}", NULL},
    {"indent growth", "{{ ('\\n' * 1000000)|indent(256, true, true)|length }}", NULL},
    {"escape growth", "{{ ('<' * 4000000)|e|length }}", NULL},
    {"split pieces", "{{ (',' * 4000000).split(',')|length }}", NULL},
    {"split whitespace", "{{ (' ' * 300000).split()|length }}", "=0"},
    {"sort huge", "{{ (range(100000)|list * 10)|sort|length }}", NULL},
    {"sort within the budget", "{{ (range(20000)|reverse|sort)[0] }}", "=0"},
    {"dictsort big",
     "{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = dict(ns.d, {i: "
     "i}) %}{% endfor %}{{ ns.d|dictsort|length }}",
     NULL},
    {"count huge",
     "{% set s = 'ab' * 2000000 %}{% for i in range(10000) %}{{ s.count('b') }}"
     "{% endfor %}",
     NULL},
    {"slice step",
     "{% set s = 'é' * 1000000 %}{% for i in range(1000) %}{{ s[::-3]|length }}"
     "{% endfor %}",
     NULL},
    {"slice huge step",
     "{{ 'abc'[::9223372036854775807] }}{{ 'abc'[::-9223372036854775807] }}"
     "{{ [1, 2][1::9223372036854775807] }}",
     "=ac[2]"},
    {"slice min step", "{{ 'abc'[::-9223372036854775807 - 1] }}", "=c"},
    /* deep nesting */
    {"long operator chain", NULL, "nested too deeply"},
    {"deep parentheses", NULL, "nested too deeply"},
};

/* the two generated templates (NULL tmpl above) */
static char *generated(const char *name) {
    size_t cap = 256 * 1024, k = 0;
    char *t = malloc(cap);
    if (!t) return NULL;
    if (!strcmp(name, "long operator chain")) {
        k += (size_t)snprintf(t, cap, "{{ 'x'");
        for (int i = 0; i < 3000; i++) k += (size_t)snprintf(t + k, cap - k, " ~ 'x'");
    } else {
        k += (size_t)snprintf(t, cap, "{{ ");
        for (int i = 0; i < 5000; i++) t[k++] = '(';
        t[k++] = '1';
        for (int i = 0; i < 5000; i++) t[k++] = ')';
    }
    snprintf(t + k, cap - k, " }}");
    return t;
}

static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_bombs(void) {
    cJSON *vars = cJSON_Parse("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    long rss0 = max_rss_kb();
    double worst = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        const bomb *b = &bombs[i];
        char *gen = b->tmpl ? NULL : generated(b->name);
        const char *src = b->tmpl ? b->tmpl : gen;
        jinja_template *t = NULL;
        char *out = NULL;
        jinja_render_stats st = {0};
        int rc;
        double dt, cpu;
        /* wall time is what counts; one that is long only because this thread
         * waited for a CPU (busy machine: its CPU time is under half of it)
         * is measured again */
        for (int try = 0;; try++) {
            double t0 = now_s(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
            jinja_render_opts o = {.stats = &st};
            rc = jinja_parse(src, strlen(src), &t);
            if (rc == M40LLM_OK) rc = jinja_render(t, vars, &o, &out, NULL);
            dt = now_s() - t0;
            cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
            if (dt < 1.0 || cpu > dt / 2 || try == 2) break;
            free(out);
            jinja_free(t);
            out = NULL;
            t = NULL;
        }
        const char *msg = rc ? m40llm_last_error() : "";
        if (dt > worst) worst = dt, worst_name = b->name;
        if (getenv("M40LLM_TEST_VERBOSE")) /* one line a bomb */
            printf("%8.4f s %9llu steps %9zu peak  %s\n", dt, (unsigned long long)st.steps,
                   st.memory_peak, b->name);
        CHECKF(dt < 1.0, "%s: took %.3f s (%.3f s of CPU)", b->name, dt, cpu);
        CHECKF(st.memory_peak <= st.max_memory, "%s: held %zu bytes, budget %zu", b->name,
               st.memory_peak, st.max_memory);
        CHECKF(st.steps <= st.max_steps, "%s: %llu steps, budget %llu", b->name,
               (unsigned long long)st.steps, (unsigned long long)st.max_steps);
        if (!b->expect) {
            char size[32];
            bool mem = strstr(msg, "memory budget") != NULL;
            snprintf(size, sizeof size, "%llu",
                     mem ? (unsigned long long)st.max_memory : (unsigned long long)st.max_steps);
            CHECKF(rc == M40LLM_ERR_FORMAT && strstr(msg, "budget exceeded") && strstr(msg, size),
                   "%s: rc %d, '%s' (want a budget error naming %s)", b->name, rc, msg, size);
        } else if (b->expect[0] == '=') {
            CHECKF(rc == M40LLM_OK && out && !strcmp(out, b->expect + 1),
                   "%s: rc %d %s, output '%.40s' (want '%s')", b->name, rc, msg, out ? out : "",
                   b->expect + 1);
        } else {
            CHECKF(rc != M40LLM_OK && strstr(msg, b->expect), "%s: rc %d, '%s' (want '%s')",
                   b->name, rc, msg, b->expect);
        }
        CHECK((rc == M40LLM_OK) == (out != NULL));
        free(out);
        jinja_free(t);
        free(gen);
    }
    /* whatever they tried, the process stayed small (ASan's quarantine keeps
     * freed memory, so only plain builds can tell) */
    long grew_mb = (max_rss_kb() - rss0) / 1024;
    if (!getenv("M40LLM_SANITIZED"))
        CHECKF(grew_mb < 128, "the bombs grew the process by %ld MiB", grew_mb);
    printf("template bombs: %zu, slowest %.3f s (%s), max RSS grew %ld MiB\n",
           sizeof bombs / sizeof bombs[0], worst, worst_name, grew_mb);
    cJSON_Delete(vars);
}

/* The budgets are the caller's to set, and the error names the one hit. */
static void test_budget_options(void) {
    jinja_template *t = NULL;
    const char *src = "{% for i in range(N) %}{{ 'y' * 1000 }}{% endfor %}";
    CHECK(jinja_parse(src, strlen(src), &t) == M40LLM_OK);
    char *out = NULL;
    cJSON *vars = cJSON_Parse("{\"N\": 2000}");
    jinja_render_stats st;
    jinja_render_opts o = {.max_memory = 1 << 20, .stats = &st};
    CHECK(jinja_render(t, vars, &o, &out, NULL) == M40LLM_ERR_FORMAT);
    CHECK(strstr(m40llm_last_error(), "memory budget exceeded") != NULL);
    CHECK(strstr(m40llm_last_error(), "1048576 bytes") != NULL);
    CHECK(strstr(m40llm_last_error(), "line 1") != NULL);
    CHECK(st.max_memory == 1 << 20 && st.memory_peak <= 1 << 20);
    o = (jinja_render_opts){.max_steps = 5000, .stats = &st};
    CHECK(jinja_render(t, vars, &o, &out, NULL) == M40LLM_ERR_FORMAT);
    CHECK(strstr(m40llm_last_error(), "step budget exceeded: more than 5000 ") != NULL);
    CHECK(st.max_steps == 5000 && st.steps <= 5000);
    /* within the defaults it renders; the defaults grow with the variables */
    o = (jinja_render_opts){.stats = &st};
    CHECK(jinja_render(t, vars, &o, &out, NULL) == M40LLM_OK);
    CHECK(out && strlen(out) == 2000000);
    CHECK(st.max_memory > JINJA_DEFAULT_MEMORY && st.max_steps > JINJA_DEFAULT_STEPS);
    CHECK(st.memory_peak <= st.max_memory);
    free(out);
    cJSON_Delete(vars);
    jinja_free(t);
}

/* The default budgets grow with the variables only up to their ceilings
 * (JINJA_DEFAULT_*_CAP): a huge message with a loop bomb ends within a
 * second of CPU and holds at most the memory ceiling, and variables too big
 * for the ceiling fail cleanly while they are converted. */
static void test_budget_ceilings(void) {
    static const char nested[] =
        "{% for m in messages %}{{ m.content|length }}{% endfor %}"
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    jinja_template *t = NULL;
    CHECK(jinja_parse(nested, strlen(nested), &t) == M40LLM_OK);
    size_t sizes[] = {(size_t)60 << 20, (size_t)4 << 20};
    char *big = malloc(sizes[0] + 1);
    memset(big, 'a', sizes[0]);
    for (int k = 0; k < 2; k++) {
        big[sizes[k]] = '\0';
        cJSON *vars = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(vars, "messages");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddItemToObject(m, "content", cJSON_CreateStringReference(big));
        cJSON_AddItemToArray(msgs, m);
        static const char *const untrusted[] = {"messages", NULL};
        jinja_render_stats st = {0};
        char *out = NULL;
        int rc = 0;
        double cpu = 0;
        long rss0 = max_rss_kb();
        for (int try = 0; try < 3; try++) { /* CPU time: a busy machine cannot inflate it */
            jinja_render_opts o = {.untrusted_vars = untrusted, .stats = &st};
            double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
            rc = jinja_render(t, vars, &o, &out, NULL);
            cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
            if (cpu < 1.0) break;
        }
        long grew_mb = (max_rss_kb() - rss0) / 1024;
        const char *msg = m40llm_last_error();
        printf("%zu MiB message, nested range: %.3f s CPU, %llu steps, peak %zu bytes, "
               "RSS grew %ld MiB: %s\n",
               sizes[k] >> 20, cpu, (unsigned long long)st.steps, st.memory_peak, grew_mb, msg);
        CHECKF(rc == M40LLM_ERR_FORMAT && strstr(msg, "budget exceeded"), "%zu MiB: rc %d '%s'",
               sizes[k] >> 20, rc, msg);
        CHECK(out == NULL);
        CHECKF(cpu < (getenv("M40LLM_SANITIZED") ? 5.0 : 1.0), "%zu MiB: %.3f s of CPU",
               sizes[k] >> 20, cpu);
        CHECK(st.max_memory <= JINJA_DEFAULT_MEMORY_CAP && st.memory_peak <= st.max_memory);
        CHECK(st.max_steps <= JINJA_DEFAULT_STEPS_CAP && st.steps <= st.max_steps);
        if (k == 0) /* 60 MiB of text (and its mask) cannot fit 64 MiB */
            CHECKF(strstr(msg, "the variables need more than") != NULL, "%s", msg);
        else /* 4 MiB fits; the loop meets the step ceiling */
            CHECKF(strstr(msg, "step budget exceeded: more than 5000000 ") != NULL, "%s", msg);
        if (!getenv("M40LLM_SANITIZED"))
            CHECKF(grew_mb < 96, "%zu MiB message: RSS grew %ld MiB", sizes[k] >> 20, grew_mb);
        cJSON_Delete(vars);
    }
    /* a messages array of 2M values: the conversion fails at the ceiling */
    cJSON *vars = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(vars, "messages");
    for (int i = 0; i < 2000000; i++) cJSON_AddItemToArray(msgs, cJSON_CreateNumber(0));
    jinja_render_stats st = {0};
    jinja_render_opts o = {.stats = &st};
    char *out = NULL;
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    int rc = jinja_render(t, vars, &o, &out, NULL);
    double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    CHECKF(rc == M40LLM_ERR_FORMAT && strstr(m40llm_last_error(), "budget exceeded"),
           "2M values: rc %d '%s'", rc, m40llm_last_error());
    CHECK(st.memory_peak <= JINJA_DEFAULT_MEMORY_CAP && st.steps <= JINJA_DEFAULT_STEPS_CAP);
    printf("2M-value messages: %.3f s CPU, %llu steps, peak %zu bytes: %s\n", cpu,
           (unsigned long long)st.steps, st.memory_peak, m40llm_last_error());
    cJSON_Delete(vars);
    free(big);
    jinja_free(t);
}

/* A long conversation fits the default budget (it grows with the input). */
static void test_long_conversation(void) {
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    cJSON *msgs = cJSON_CreateArray();
    for (int i = 0; i < 4; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", i % 2 ? "assistant" : "user");
        cJSON_AddStringToObject(m, "content", big);
        cJSON_AddItemToArray(msgs, m);
    }
    char *out = NULL;
    double t0 = now_s();
    int rc = chat_render(chat_template_chatml, msgs, true, "", "", &out);
    double dt = now_s() - t0;
    CHECKF(rc == M40LLM_OK, "4 MiB conversation: %s", m40llm_last_error());
    CHECK(out && strlen(out) > 4 * n);
    CHECKF(dt < 2.0, "4 MiB conversation took %.3f s", dt);
    free(out);
    cJSON_Delete(msgs);
    free(big);
}

/* A huge source is refused before parsing (which takes memory in proportion);
 * the chat layer then falls back to ChatML. */
static void test_source_limit(void) {
    size_t n = JINJA_MAX_SOURCE + 1;
    char *src = malloc(n + 1);
    for (size_t i = 0; i < n; i++) src[i] = "{{ x }}"[i % 7];
    src[n] = '\0';
    jinja_template *t = (jinja_template *)src; /* must come back NULL */
    double t0 = now_s();
    CHECK(jinja_parse(src, n, &t) == M40LLM_ERR_UNSUPPORTED && t == NULL);
    CHECK(now_s() - t0 < 0.1);
    CHECK(strstr(m40llm_last_error(), "512 KiB") != NULL);
    CHECK(jinja_parse(src, JINJA_MAX_SOURCE - JINJA_MAX_SOURCE % 7, &t) == M40LLM_OK);
    jinja_free(t);
    cJSON *msgs = cJSON_Parse("[{\"role\": \"user\", \"content\": \"hi\"}]");
    char *out = NULL;
    bool fell_back = false;
    CHECK(chat_render_or_fallback(src, msgs, true, "", "", &out, &fell_back) == M40LLM_OK);
    CHECK(fell_back && out && strstr(out, "<|im_start|>user\nhi"));
    free(out);
    cJSON_Delete(msgs);
    free(src);
}

/* The reproducer through the chat layer (what `run` does with a
 * model's template): an error, not a crash, and no fallback. */
static void test_chat_reproducer(void) {
    cJSON *msgs = cJSON_Parse("[{\"role\": \"user\", \"content\": \"hi\"}]");
    char *out = NULL;
    bool fell_back = true;
    int rc = chat_render_or_fallback("{{ \"abcd\" * 4611686018427387904 }}", msgs, true, "<s>",
                                     "</s>", &out, &fell_back);
    CHECK(rc == M40LLM_ERR_FORMAT && out == NULL && !fell_back);
    CHECK(strstr(m40llm_last_error(), "memory budget exceeded") != NULL);
    cJSON_Delete(msgs);
}

/* Searches run in growing windows (jmemmem): hits on every side of a window
 * edge are found, and only once. */
static void test_search_windows(void) {
    static const int pos[] = {0, 1, 63, 64, 65, 70, 71, 127, 128, 200, 455, 456, 1000, 4095, 70000};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        char tmpl[512];
        snprintf(tmpl, sizeof tmpl,
                 "{%% set s = 'a' * %d ~ 'needle' ~ 'a' * 9 %%}{{ s.find('needle') }} "
                 "{{ s.count('needle') }} {{ s.split('needle')|map('length')|join(',') }} "
                 "{{ 'needle' in s }} {{ s.replace('needle', 'X')|length }} "
                 "{{ (s * 3).count('aneedlea') }}",
                 pos[i]);
        jinja_template *t = NULL;
        char *out = NULL, want[128];
        CHECK(jinja_parse(tmpl, strlen(tmpl), &t) == M40LLM_OK);
        CHECK(jinja_render(t, NULL, NULL, &out, NULL) == M40LLM_OK);
        snprintf(want, sizeof want, "%d 1 %d,9 True %d %d", pos[i], pos[i], pos[i] + 10,
                 pos[i] ? 3 : 2);
        CHECKF(out && !strcmp(out, want), "needle at %d: '%s', want '%s'", pos[i], out ? out : "",
               want);
        free(out);
        jinja_free(t);
    }
}

int main(void) {
    test_budget_ceilings(); /* first: its RSS check needs a low peak before it */
    test_search_windows();
    test_bombs();
    test_budget_options();
    test_long_conversation();
    test_chat_reproducer();
    test_source_limit();
    return check_summary("test_jinja_budget");
}
