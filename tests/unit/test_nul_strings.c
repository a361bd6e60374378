/* GGUF strings are length-prefixed and may hold NUL bytes: a metadata string
 * used as a C string would silently end there (issue 18, item 9). The
 * tokenizer's pre-tokenizer name and the chat template with their bytes
 * after a NUL are errors that say so, not their prefixes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "check.h"
#include "gguf.h"
#include "tokenizer.h"

static char g_path[512];

/* A metadata-only GGUF; every '#' in the strings becomes a NUL byte. */
static gguf_file *write_open(const char *pre, const char *tmpl, uint8_t **keep) {
    gguf_writer *w = NULL;
    CHECK(gguf_writer_create(&w) == M40LLM_OK);
    if (!w) return NULL;
    static const char *toks[] = {"<unk>", "<s>", "</s>", "a", "b"};
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    CHECK(gguf_writer_write(w, g_path) == M40LLM_OK);
    gguf_writer_free(w);
    FILE *f = fopen(g_path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n);
    CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    for (long i = 0; i < n; i++)
        if (buf[i] == '#') buf[i] = 0;
    gguf_file *g = NULL;
    CHECK(gguf_open_memory(buf, (size_t)n, &g) == M40LLM_OK);
    *keep = buf;
    return g;
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(g_path, sizeof g_path, "%s/m40-nul-%d.gguf", base && *base ? base : "/tmp",
             (int)getpid());
    uint8_t *buf = NULL;
    gguf_file *g = write_open("default#llama3", "{{ 'a' }}#{{ raise_exception('cut') }}", &buf);
    if (g) {
        tokenizer *t = NULL;
        CHECK(tokenizer_load(g, &t) == M40LLM_ERR_FORMAT);
        CHECKF(strstr(m40llm_last_error(), "tokenizer.ggml.pre 'default\\x00llama3'") &&
                   strstr(m40llm_last_error(), "NUL"),
               "%s", m40llm_last_error());
        tokenizer_free(t);
        char *tmpl = (char *)1, *bos = NULL;
        CHECK(chat_model_template(g, &tmpl, &bos, NULL) == M40LLM_ERR_FORMAT);
        CHECKF(strstr(m40llm_last_error(), "tokenizer.chat_template holds a NUL byte (at byte 9"),
               "%s", m40llm_last_error());
        /* the template not asked for: the token text is fine */
        CHECK(chat_model_template(g, NULL, &bos, NULL) == M40LLM_OK);
        CHECK(bos && !strcmp(bos, "<s>"));
        free(bos);
        gguf_close(g);
    }
    free(buf);
    /* the same file without NULs loads */
    g = write_open("default", "{{ 'a' }}", &buf);
    if (g) {
        tokenizer *t = NULL;
        CHECKF(tokenizer_load(g, &t) == M40LLM_OK, "%s", m40llm_last_error());
        tokenizer_free(t);
        char *tmpl = NULL;
        CHECK(chat_model_template(g, &tmpl, NULL, NULL) == M40LLM_OK);
        CHECK(tmpl && !strcmp(tmpl, "{{ 'a' }}"));
        free(tmpl);
        gguf_close(g);
    }
    free(buf);
    unlink(g_path);
    return check_summary("test_nul_strings");
}
