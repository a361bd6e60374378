/* m40-tok-bench: times tokenizer_encode on long texts, the host work on the
 * time-to-first-token path of a prompt whose prefix is already cached.
 *
 *   m40-tok-bench MODEL.gguf [--file TEXT] [--tokens N,N...] [--reps N] [--seed N]
 *
 * Texts: generated English words (about 1,000 and 10,000 tokens by default,
 * --tokens to change), plus --file's bytes. Each text is encoded twice per
 * round: "plain" (TOKENIZER_ADD_SPECIAL | TOKENIZER_PARSE_SPECIAL, all text
 * trusted) and "masked" (all bytes marked untrusted, as a chat message's
 * content is). Prints the median over --reps rounds of µs per call and ns per
 * output token, and a hash of the ids: a faster tokenizer must print the
 * same hash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "gguf.h"
#include "tokenizer.h"

static const char *const tb_words[] = {
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "I",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "time",
    "people",
    "year",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "quickly",
    "beautiful",
    "understanding",
    "Tokenization",
    "inference",
    "throughput",
    "latency",
    "representation",
    "Maxwell",
    "engineering",
    "unbelievable",
    "internationalization",
    "characteristics",
};
#define TB_N_WORDS (sizeof tb_words / sizeof tb_words[0])

static double tb_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static uint64_t tb_rng(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* n_words random words with some punctuation, capitals and line breaks. */
static char *tb_gen_text(size_t n_words, uint64_t seed, size_t *len) {
    size_t cap = n_words * 24 + 16, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    uint64_t r = seed;
    for (size_t i = 0; i < n_words; i++) {
        const char *w = tb_words[tb_rng(&r) % TB_N_WORDS];
        size_t k = strlen(w);
        memcpy(s + n, w, k);
        n += k;
        uint64_t p = tb_rng(&r) % 100;
        const char *sep = p < 6 ? ", " : p < 10 ? ". " : p < 11 ? ".\n\n" : p < 12 ? "; " : " ";
        memcpy(s + n, sep, strlen(sep));
        n += strlen(sep);
    }
    s[n] = '\0';
    *len = n;
    return s;
}

static uint64_t tb_hash_ids(const int32_t *ids, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the ids' bytes */
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            h = (h ^ (((uint32_t)ids[i] >> (8 * b)) & 0xFF)) * 1099511628211ull;
    return h;
}

static int tb_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times one encode mode; returns 0 or an error code. */
static int tb_run(const tokenizer *t, const char *label, const char *text, size_t len,
                  const uint8_t *mask, unsigned flags, int reps) {
    double *us = malloc(sizeof *us * (size_t)reps);
    if (!us) return M40LLM_ERR_OOM;
    size_t n = 0;
    uint64_t h = 0;
    for (int r = 0; r < reps; r++) {
        int32_t *ids = NULL;
        double t0 = tb_now_us();
        int rc = tokenizer_encode_masked(t, text, len, mask, flags, &ids, &n);
        us[r] = tb_now_us() - t0;
        if (rc) {
            fprintf(stderr, "m40-tok-bench: encode: %s\n", m40llm_last_error());
            free(us);
            return rc;
        }
        h = tb_hash_ids(ids, n);
        free(ids);
    }
    qsort(us, (size_t)reps, sizeof *us, tb_cmp_double);
    double med = us[reps / 2];
    printf("%-14s %-6s %9zu %8zu %11.1f %9.1f  %016llx\n", label, mask ? "masked" : "plain", len, n,
           med, n ? med * 1e3 / (double)n : 0.0, (unsigned long long)h);
    free(us);
    return 0;
}

static int tb_text(const tokenizer *t, const char *label, const char *text, size_t len, int reps) {
    uint8_t *mask = malloc(len ? len : 1);
    if (!mask) return M40LLM_ERR_OOM;
    memset(mask, 1, len);
    const unsigned f = TOKENIZER_ADD_SPECIAL | TOKENIZER_PARSE_SPECIAL;
    int rc = tb_run(t, label, text, len, NULL, f, reps);
    if (!rc) rc = tb_run(t, label, text, len, mask, f, reps);
    free(mask);
    return rc;
}

static char *tb_read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    while (s) {
        if (n == cap) {
            char *p = realloc(s, cap *= 2);
            if (!p) {
                free(s);
                s = NULL;
                break;
            }
            s = p;
        }
        size_t k = fread(s + n, 1, cap - n, fp);
        if (!k) break;
        n += k;
    }
    fclose(fp);
    *len = n;
    return s;
}

int main(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *sizes = "1000,10000";
    int reps = 15;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            sizes = argv[++i];
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            fprintf(stderr, "usage: m40-tok-bench MODEL.gguf [--file TEXT] [--tokens N,N...] "
                            "[--reps N] [--seed N]\n");
            return 2;
        }
    }
    if (!model || reps < 1) {
        fprintf(stderr, "m40-tok-bench: a model path (and --reps >= 1) is needed\n");
        return 2;
    }
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    double t0 = tb_now_us();
    int rc = gguf_open(model, &f);
    if (!rc) rc = tokenizer_load(f, &t);
    double load_ms = (tb_now_us() - t0) / 1e3;
    gguf_close(f);
    if (rc) {
        fprintf(stderr, "m40-tok-bench: %s: %s\n", model, m40llm_last_error());
        return 1;
    }
    printf("%s: %s vocab of %d tokens, loaded in %.1f ms\n", model,
           tokenizer_get_type(t) == TOKENIZER_SPM ? "SPM" : "BPE", tokenizer_n_vocab(t), load_ms);
    printf("%-14s %-6s %9s %8s %11s %9s  %s\n", "text", "mode", "bytes", "tokens", "us/call",
           "ns/token", "ids hash");
    /* words per token of this vocab, from a sample, to size the texts */
    size_t slen = 0, sn = 0;
    char *sample = tb_gen_text(2000, seed, &slen);
    int32_t *sids = NULL;
    if (!sample || tokenizer_encode(t, sample, slen, 0, &sids, &sn) || !sn) rc = 1;
    free(sids);
    free(sample);
    for (const char *p = sizes; !rc && *p;) {
        char *end;
        unsigned long want = strtoul(p, &end, 10);
        if (end == p) break;
        p = *end == ',' ? end + 1 : end;
        size_t len = 0, words = (size_t)((double)want * 2000.0 / (double)sn + 0.5);
        char *text = tb_gen_text(words ? words : 1, seed, &len);
        if (!text) {
            rc = 1;
            break;
        }
        char label[32];
        snprintf(label, sizeof label, "words-%lu", want);
        rc = tb_text(t, label, text, len, reps);
        free(text);
    }
    if (!rc && file) {
        size_t len = 0;
        char *text = tb_read_file(file, &len);
        if (!text) {
            fprintf(stderr, "m40-tok-bench: cannot read %s\n", file);
            rc = 1;
        } else {
            rc = tb_text(t, "file", text, len, reps);
            free(text);
        }
    }
    tokenizer_free(t);
    return rc ? 1 : 0;
}
