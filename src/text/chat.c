/* Chat layer over the template engine: variables as transformers passes
 * them, the ChatML fallback and the built-in templates. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "err.h"
#include "fileio.h"
#include "jinja.h"

_Static_assert(FILEIO_CAP_TEMPLATE == JINJA_MAX_SOURCE,
               "a template file is read up to the largest source the engine parses");

const char chat_template_chatml[] =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/* Llama 2 chat: system prompt folded into the first user turn. */
static const char tmpl_llama2[] =
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = '<<SYS>>\\n' + messages[0]['content'] | trim + '\\n<</SYS>>\\n\\n' %}"
    "{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}"
    "{{- bos_token + '[INST] ' + (system_message if loop.first else '') + message['content'] | trim"
    " + ' [/INST]' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{- ' ' + message['content'] | trim + ' ' + eos_token }}"
    "{%- endif %}"
    "{%- endfor %}";

static const char tmpl_llama3[] =
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] "
    "| trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}";

/* Mistral [INST]: a system prompt is prefixed to the first user turn. */
static const char tmpl_mistral[] =
    "{{- bos_token }}"
    "{%- set ns = namespace(system='') %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{%- set ns.system = message['content'] + '\\n\\n' %}"
    "{%- elif message['role'] == 'user' %}"
    "{{- '[INST] ' + ns.system + message['content'] + ' [/INST]' }}{%- set ns.system = '' %}"
    "{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}"
    "{%- endif %}"
    "{%- endfor %}";

static const char tmpl_phi3[] =
    "{%- for message in messages %}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- else %}{{- eos_token }}"
    "{%- endif %}";

/* Gemma has no system role: its text goes before the next user turn. */
static const char tmpl_gemma[] =
    "{{- bos_token }}"
    "{%- set ns = namespace(system='') %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}"
    "{%- set ns.system = message['content'] | trim + '\\n\\n' %}"
    "{%- else %}"
    "{{- '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + "
    "'\\n' + (ns.system if message['role'] == 'user' else '') + message['content'] | trim + "
    "'<end_of_turn>\\n' }}"
    "{%- if message['role'] == 'user' %}{%- set ns.system = '' %}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}";

static const char tmpl_zephyr[] =
    "{%- for message in messages %}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}";

static const struct {
    const char *name;
    const char *text;
} builtins[] = {
    {"chatml", chat_template_chatml}, {"llama2", tmpl_llama2}, {"llama3", tmpl_llama3},
    {"mistral", tmpl_mistral},        {"phi3", tmpl_phi3},     {"gemma", tmpl_gemma},
    {"zephyr", tmpl_zephyr},
};

const char *chat_builtin_template(const char *name) {
    for (size_t i = 0; name && i < sizeof builtins / sizeof builtins[0]; i++)
        if (!strcmp(builtins[i].name, name)) return builtins[i].text;
    return NULL;
}

const char *chat_builtin_names(void) {
    return "chatml, llama2, llama3, mistral, phi3, gemma, zephyr";
}

/* Variables whose strings are the conversation's text, never the template's:
 * their bytes are marked untrusted in the rendered prompt. */
static const char *const chat_untrusted_vars[] = {"messages", "tools", NULL};

/* One render of template_text over the conversation, with its mask. */
static int render_prompt(const char *template_text, const cJSON *messages,
                         bool add_generation_prompt, const char *bos_token, const char *eos_token,
                         int64_t now, chat_prompt *out) {
    jinja_template *t = NULL;
    int rc = jinja_parse(template_text, strlen(template_text), &t);
    if (rc != M40LLM_OK) return rc;
    cJSON *vars = cJSON_CreateObject();
    if (!vars) {
        jinja_free(t);
        return err_set(M40LLM_ERR_OOM, "chat: out of memory");
    }
    /* a reference keeps the caller's array; the object does not own it */
    cJSON_AddItemReferenceToObject(vars, "messages", (cJSON *)messages);
    cJSON_AddBoolToObject(vars, "add_generation_prompt", add_generation_prompt);
    cJSON_AddStringToObject(vars, "bos_token", bos_token ? bos_token : "");
    cJSON_AddStringToObject(vars, "eos_token", eos_token ? eos_token : "");
    cJSON_AddNullToObject(vars, "tools");
    jinja_render_opts opts = {.now = now, .untrusted_vars = chat_untrusted_vars};
    rc = jinja_render_ex(t, vars, &opts, &out->text, &out->len, &out->untrusted);
    cJSON_Delete(vars);
    jinja_free(t);
    return rc;
}

int chat_render_prompt(const char *template_text, const cJSON *messages, bool add_generation_prompt,
                       const char *bos_token, const char *eos_token, int64_t now, chat_prompt *out,
                       bool *fell_back) {
    *out = (chat_prompt){0};
    if (fell_back) *fell_back = false;
    if (!cJSON_IsArray(messages))
        return err_set(M40LLM_ERR_INVALID_ARG, "chat: messages must be a JSON array");
    if (!fell_back) {
        if (!template_text) return err_set(M40LLM_ERR_INVALID_ARG, "chat: no template");
        return render_prompt(template_text, messages, add_generation_prompt, bos_token, eos_token,
                             now, out);
    }
    if (template_text && *template_text) {
        int rc = render_prompt(template_text, messages, add_generation_prompt, bos_token, eos_token,
                               now, out);
        if (rc != M40LLM_ERR_UNSUPPORTED) return rc;
        /* keep the reason for the caller's warning */
        char why[512];
        snprintf(why, sizeof why, "%s", m40llm_last_error());
        rc = render_prompt(chat_template_chatml, messages, add_generation_prompt, bos_token,
                           eos_token, now, out);
        if (rc != M40LLM_OK) return rc;
        *fell_back = true;
        err_set(M40LLM_ERR_UNSUPPORTED, "%s", why);
        return M40LLM_OK;
    }
    int rc = render_prompt(chat_template_chatml, messages, add_generation_prompt, bos_token,
                           eos_token, now, out);
    if (rc == M40LLM_OK) {
        *fell_back = true;
        err_set(M40LLM_ERR_NOT_FOUND, "the model has no chat template");
    }
    return rc;
}

void chat_prompt_free(chat_prompt *p) {
    if (!p) return;
    free(p->text);
    free(p->untrusted);
    *p = (chat_prompt){0};
}

/* The text of a prompt render, its mask dropped. */
static int text_only(int rc, chat_prompt *p, char **out) {
    *out = rc == M40LLM_OK ? p->text : NULL;
    free(p->untrusted);
    return rc;
}

int chat_render_at(const char *template_text, const cJSON *messages, bool add_generation_prompt,
                   const char *bos_token, const char *eos_token, int64_t now, char **out) {
    chat_prompt p;
    int rc = chat_render_prompt(template_text, messages, add_generation_prompt, bos_token,
                                eos_token, now, &p, NULL);
    return text_only(rc, &p, out);
}

int chat_render(const char *template_text, const cJSON *messages, bool add_generation_prompt,
                const char *bos_token, const char *eos_token, char **out) {
    return chat_render_at(template_text, messages, add_generation_prompt, bos_token, eos_token, 0,
                          out);
}

int chat_render_or_fallback(const char *template_text, const cJSON *messages,
                            bool add_generation_prompt, const char *bos_token,
                            const char *eos_token, char **out, bool *fell_back) {
    chat_prompt p;
    int rc = chat_render_prompt(template_text, messages, add_generation_prompt, bos_token,
                                eos_token, 0, &p, fell_back);
    return text_only(rc, &p, out);
}

int chat_template_for(const char *name_or_path, char **out) {
    *out = NULL;
    if (!name_or_path || !*name_or_path)
        return err_set(M40LLM_ERR_INVALID_ARG, "chat template: empty name");
    const char *b = chat_builtin_template(name_or_path);
    if (b) {
        *out = strdup(b);
        return *out ? M40LLM_OK : err_set(M40LLM_ERR_OOM, "chat template: out of memory");
    }
    char *buf = NULL;
    size_t n = 0;
    /* regular files only, at most FILEIO_CAP_TEMPLATE bytes */
    int rc = fileio_read_file(name_or_path, FILEIO_CAP_TEMPLATE, "a chat template", &buf, &n);
    if (rc == M40LLM_ERR_NOT_FOUND)
        return err_prefix(rc, "chat template: not a built-in (%s) and not a file",
                          chat_builtin_names());
    if (rc) return err_prefix(rc, "chat template");
    if (strlen(buf) != n) {
        free(buf);
        return err_set(M40LLM_ERR_FORMAT, "chat template '%s': contains a NUL byte", name_or_path);
    }
    *out = buf;
    return M40LLM_OK;
}
