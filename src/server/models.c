/* The models a server holds. With --model there is one, loaded at start
 * and kept. Without it, a request's "model" names any model of the store
 * or found elsewhere (store_resolve) and it is loaded on demand, Ollama's
 * way: at most --max-models resident, the least recently used idle one
 * unloaded first; each stays loaded keep_alive seconds after its last use
 * (the request's keep_alive, else --keep-alive; 0 unloads at once,
 * negative keeps it); --max-memory refuses (507) a model whose weights and
 * KV cache would not fit beside the others.
 *
 * Slots live in s->models under s->mu. A slot is loaded by the thread that
 * placed it (others asking for the same model wait on s->models_cv); it is
 * unloaded only with no reference (refs counts requests using it), after
 * being taken out of the table, so nothing can reach it meanwhile. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "err.h"
#include "gguf.h"
#include "srv_int.h"
#include "store/store.h"

#define SRV_WAIT_SLOT_S 60.0 /* waiting for a busy slot to free up */

static void srv_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void srv_model_unload(srv_model *m) {
    if (!m) return;
    m40llm_engine_free(m->engine);
    m40llm_model_free(m->model);
    free(m);
}

/* Takes m out of the table (under s->mu). */
static void slot_remove(server *s, srv_model *m) {
    for (int i = 0; i < s->n_models; i++)
        if (s->models[i] == m) {
            s->models[i] = s->models[--s->n_models];
            s->models[s->n_models] = NULL;
            break;
        }
    pthread_cond_broadcast(&s->models_cv);
}

/* The least recently used model nobody uses (under s->mu), or NULL. */
static srv_model *slot_lru_idle(server *s) {
    srv_model *best = NULL;
    for (int i = 0; i < s->n_models; i++) {
        srv_model *m = s->models[i];
        if (m->ready && !m->pinned && m->refs == 0 && (!best || m->last_used < best->last_used))
            best = m;
    }
    return best;
}

static uint64_t slots_mem(server *s) {
    uint64_t t = 0;
    for (int i = 0; i < s->n_models; i++) t += s->models[i]->mem;
    return t;
}

int srv_model_load_into(server *s, srv_model *m) {
    double t0 = srv_now();
    if (s->test_load_delay_ms > 0) srv_sleep_ms(s->test_load_delay_ms);
    int rc = m40llm_model_load(m->path, &m->model);
    if (rc) return err_prefix(rc, "loading %s", m->path);
    if (s->cfg.chat_template &&
        (rc = m40llm_model_set_chat_template(m->model, s->cfg.chat_template))) {
        m40llm_model_free(m->model);
        m->model = NULL;
        return err_prefix(rc, "--chat-template with %s", m->path);
    }
    rc = m40llm_engine_create(m->model, &s->cfg.engine, &m->engine);
    if (rc) {
        m40llm_model_free(m->model);
        m->model = NULL;
        return err_prefix(rc, "creating the engine");
    }
    m40llm_model_get_info(m->model, &m->minfo);
    m40llm_engine_get_info(m->engine, &m->einfo);
    for (int i = 0; i < m->einfo.n_cards; i++) {
        const m40llm_card_share *c = &m->einfo.cards[i];
        fprintf(stderr, "m40-llm serve: GPU %d: layers %d..%d, %.2f GB of weights, %.2f GB held\n",
                c->device, c->layer_begin, c->layer_end - 1, c->weight_bytes / 1e9,
                c->mem_used / 1e9);
    }
    if (m->minfo.name) snprintf(m->names.general, sizeof m->names.general, "%s", m->minfo.name);
    m->created = (long long)time(NULL);
    m->load_s = srv_now() - t0;
    return M40LLM_OK;
}

/* The model a request names: resolved by the store (dynamic mode). */
static srv_model *slot_find(server *s, const char *path) {
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i]->path, path)) return s->models[i];
    return NULL;
}

/* A loaded model (most recently used) for a request that names none. */
static srv_model *slot_mru(server *s) {
    srv_model *best = NULL;
    for (int i = 0; i < s->n_models; i++) {
        srv_model *m = s->models[i];
        if (m->ready && (!best || m->last_used > best->last_used)) best = m;
    }
    return best;
}

static void set_keep_alive(server *s, srv_model *m, double keep_alive) {
    m->keep_alive = isnan(keep_alive) ? s->cfg.keep_alive_s : keep_alive;
}

int srv_model_get(server *s, const char *requested, double keep_alive, srv_model **out,
                  api_err *e) {
    *out = NULL;
    if (!s->dynamic) { /* --model: that one only */
        srv_model *m = s->models[0];
        if (requested && *requested && !srv_model_matches(&m->names, requested)) {
            rq_fail(e, 404, "model", "model '%.200s' not found (this server runs '%.200s')",
                    requested, m->names.id);
            e->code = "model_not_found";
            return -1;
        }
        pthread_mutex_lock(&s->mu);
        m->refs++;
        pthread_mutex_unlock(&s->mu);
        *out = m;
        return 0;
    }
    if (!requested || !*requested) {
        pthread_mutex_lock(&s->mu);
        srv_model *m = slot_mru(s);
        if (m) m->refs++; /* its keep_alive stays what its last named request set */
        pthread_mutex_unlock(&s->mu);
        if (m) {
            *out = m;
            return 0;
        }
        return rq_fail(e, 400, "model", "no model is loaded: name one in 'model'");
    }
    store_model *sm = calloc(1, sizeof *sm);
    if (!sm) return rq_fail(e, 503, NULL, "out of memory");
    /* names as clients send them: "name:latest" is the store's "name" */
    int rc = store_resolve(requested, sm);
    if (rc == M40LLM_OK && sm->origin == STORE_PATH) {
        /* a client may not open files by path */
        rc = err_set(M40LLM_ERR_NOT_FOUND, "not a model of the store");
    }
    if (rc == M40LLM_OK && store_check_single_file(sm)) {
        rq_fail(e, 400, "model", "%.400s", m40llm_last_error());
        free(sm);
        return -1;
    }
    if (rc) {
        rq_fail(e, 404, "model", "model '%.200s' not found: %.300s; pull it first (POST /api/pull)",
                requested, m40llm_last_error());
        e->code = "model_not_found";
        free(sm);
        return -1;
    }
    uint64_t weights = 0, kv = 0;
    if (store_gguf_memory(sm->path, s->cfg.engine.n_ctx, &weights, &kv) != M40LLM_OK) {
        rq_fail(e, 500, "model", "model '%.200s': %.300s", requested, m40llm_last_error());
        free(sm);
        return -1;
    }
    uint64_t need = weights + kv;
    if (s->cfg.max_memory && need > s->cfg.max_memory) {
        rq_fail(e, 507, "model",
                "model '%.200s' needs %llu bytes (weights %llu + KV cache %llu), more than the "
                "%llu bytes of --max-memory",
                requested, (unsigned long long)need, (unsigned long long)weights,
                (unsigned long long)kv, (unsigned long long)s->cfg.max_memory);
        free(sm);
        return -1;
    }
    double give_up = srv_now() + SRV_WAIT_SLOT_S;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->draining) {
            pthread_mutex_unlock(&s->mu);
            free(sm);
            return rq_fail(e, 503, NULL, "the server is shutting down");
        }
        srv_model *m = slot_find(s, sm->path);
        if (m && m->ready) {
            m->refs++;
            set_keep_alive(s, m, keep_alive);
            pthread_mutex_unlock(&s->mu);
            free(sm);
            *out = m;
            return 0;
        }
        bool full = s->n_models >= s->cfg.max_models ||
                    (s->cfg.max_memory && slots_mem(s) + need > s->cfg.max_memory);
        if (!m && !full) break;
        srv_model *victim = m ? NULL : slot_lru_idle(s);
        if (victim) {
            slot_remove(s, victim);
            pthread_mutex_unlock(&s->mu);
            fprintf(stderr, "m40-llm serve: unloaded %s (least recently used; room for %s)\n",
                    victim->names.id, requested);
            srv_model_unload(victim);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (srv_now() >= give_up) {
            pthread_mutex_unlock(&s->mu);
            free(sm);
            return rq_fail(e, 503, NULL,
                           "every model slot is busy (--max-models %d); try again later",
                           s->cfg.max_models);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->models_cv, &s->mu, &ts);
    }
    srv_model *m = calloc(1, sizeof *m);
    if (!m) {
        pthread_mutex_unlock(&s->mu);
        free(sm);
        return rq_fail(e, 503, NULL, "out of memory");
    }
    snprintf(m->path, sizeof m->path, "%s", sm->path);
    srv_names_init(&m->names, NULL, NULL, sm->path, NULL);
    /* listed under its store name (names with '/' are not taken from the argument) */
    snprintf(m->names.id, sizeof m->names.id, "%s", sm->origin == STORE_OWN ? sm->name : requested);
    /* the name it was asked by answers too ("smollm2:135m" for "smollm2:135m:latest") */
    snprintf(m->names.alias, sizeof m->names.alias, "%s", requested);
    m->mem = need;
    m->refs = 1;
    m->last_used = srv_now();
    set_keep_alive(s, m, keep_alive);
    s->models[s->n_models++] = m;
    pthread_mutex_unlock(&s->mu);
    free(sm);
    fprintf(stderr, "m40-llm serve: loading %s (%s)\n", m->names.id, m->path);
    rc = srv_model_load_into(s, m);
    pthread_mutex_lock(&s->mu);
    if (rc) {
        slot_remove(s, m);
        pthread_mutex_unlock(&s->mu);
        int status = rc == M40LLM_ERR_OOM || rc == M40LLM_ERR_NO_DEVICE ? 507 : 500;
        rq_fail(e, status, "model", "model '%.200s' could not be loaded: %.300s", requested,
                m40llm_last_error());
        srv_model_unload(m);
        return -1;
    }
    m->ready = true;
    pthread_cond_broadcast(&s->models_cv);
    pthread_mutex_unlock(&s->mu);
    fprintf(stderr, "m40-llm serve: loaded %s in %.2f s\n", m->names.id, m->load_s);
    *out = m;
    return 0;
}

/* A copy of a GGUF string key ("" when absent or holding a NUL). */
static char *gguf_dup(const gguf_file *g, const char *key) {
    gguf_str v = {0, NULL};
    if (gguf_get_str(g, key, &v) != M40LLM_OK || gguf_str_has_nul(v)) return strdup("");
    char *o = malloc((size_t)v.len + 1);
    if (o) gguf_str_copy(v, o, (size_t)v.len + 1);
    return o;
}

static void shadow_free(srv_model *m) {
    free((char *)m->minfo.name);
    free((char *)m->minfo.arch);
    free((char *)m->minfo.quant);
    free((char *)m->minfo.chat_template);
    free(m);
}

int srv_model_peek(server *s, const char *requested, srv_model **out, api_err *e) {
    *out = NULL;
    if (!s->dynamic || !requested || !*requested) return srv_model_get(s, requested, NAN, out, e);
    store_model *sm = calloc(1, sizeof *sm);
    srv_model *m = calloc(1, sizeof *m);
    if (!sm || !m) {
        free(sm);
        free(m);
        return rq_fail(e, 503, NULL, "out of memory");
    }
    int rc = store_resolve(requested, sm);
    if (rc == M40LLM_OK && sm->origin == STORE_PATH)
        rc = err_set(M40LLM_ERR_NOT_FOUND, "not a model of the store");
    if (rc) {
        rq_fail(e, 404, "model", "model '%.200s' not found: %.300s", requested,
                m40llm_last_error());
        free(sm);
        free(m);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    srv_model *live = slot_find(s, sm->path);
    if (live && live->ready) live->refs++;
    pthread_mutex_unlock(&s->mu);
    if (live && live->ready) {
        free(sm);
        free(m);
        *out = live;
        return 0;
    }
    gguf_file *g = NULL;
    rc = gguf_open(sm->path, &g);
    if (rc) {
        rq_fail(e, 500, "model", "model '%.200s': %.300s", requested, m40llm_last_error());
        free(sm);
        free(m);
        return -1;
    }
    store_fill_facts(sm);
    m->shadow = true;
    m->created = sm->modified;
    snprintf(m->path, sizeof m->path, "%s", sm->path);
    srv_names_init(&m->names, NULL, NULL, sm->path, NULL);
    snprintf(m->names.id, sizeof m->names.id, "%s", sm->origin == STORE_OWN ? sm->name : requested);
    m40llm_model_info *mi = &m->minfo;
    mi->name = gguf_dup(g, "general.name");
    mi->arch = strdup(sm->arch);
    mi->quant = strdup(sm->quant);
    mi->chat_template = gguf_dup(g, "tokenizer.chat_template");
    mi->n_params = sm->n_params;
    mi->file_bytes = sm->size;
    mi->n_ctx_train = (int)sm->n_ctx;
    const struct {
        const char *suffix;
        int *dst;
    } keys[] = {{"embedding_length", &mi->n_embd},
                {"block_count", &mi->n_layer},
                {"attention.head_count", &mi->n_head},
                {"attention.head_count_kv", &mi->n_head_kv}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char key[160];
        int64_t v = 0;
        snprintf(key, sizeof key, "%s.%s", sm->arch, keys[i].suffix);
        if (gguf_get_i64(g, key, &v) == M40LLM_OK && v > 0 && v < (1 << 30)) *keys[i].dst = (int)v;
    }
    const gguf_value *tok = NULL;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &tok) == M40LLM_OK && tok->arr.n < (1u << 30))
        mi->n_vocab = (int)tok->arr.n;
    gguf_close(g);
    free(sm);
    if (!mi->name || !mi->arch || !mi->quant || !mi->chat_template) {
        shadow_free(m);
        return rq_fail(e, 503, NULL, "out of memory");
    }
    *out = m;
    return 0;
}

void srv_model_put(server *s, srv_model *m) {
    if (!m) return;
    if (m->shadow) {
        shadow_free(m);
        return;
    }
    srv_model *drop = NULL;
    pthread_mutex_lock(&s->mu);
    m->last_used = srv_now();
    if (--m->refs == 0 && !m->pinned) {
        if (m->keep_alive == 0) {
            slot_remove(s, m);
            drop = m;
        } else {
            m->expires = m->keep_alive < 0 ? -1 : m->last_used + m->keep_alive;
        }
    }
    pthread_cond_broadcast(&s->models_cv);
    pthread_mutex_unlock(&s->mu);
    if (drop) {
        fprintf(stderr, "m40-llm serve: unloaded %s\n", drop->names.id);
        srv_model_unload(drop);
    }
}

void *srv_reaper(void *arg) {
    server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->draining) {
        srv_model *drop = NULL;
        double now = srv_now();
        for (int i = 0; i < s->n_models && !drop; i++) {
            srv_model *m = s->models[i];
            if (m->ready && !m->pinned && m->refs == 0 && m->expires >= 0 && now >= m->expires)
                drop = m;
        }
        if (drop) {
            slot_remove(s, drop);
            pthread_mutex_unlock(&s->mu);
            fprintf(stderr, "m40-llm serve: unloaded %s (keep_alive over)\n", drop->names.id);
            srv_model_unload(drop);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->models_cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int srv_model_unload_named(server *s, const char *path) {
    pthread_mutex_lock(&s->mu);
    srv_model *m = slot_find(s, path);
    bool drop = m && m->ready && !m->pinned && m->refs == 0;
    if (drop) slot_remove(s, m);
    pthread_mutex_unlock(&s->mu);
    if (drop) srv_model_unload(m);
    return drop;
}

int srv_parse_keep_alive(const cJSON *b, double *out, api_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, "keep_alive");
    *out = NAN;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble))
            return rq_fail(e, 400, "keep_alive", "'keep_alive' is not a duration");
        *out = v->valuedouble < 0 ? -1 : v->valuedouble;
        return 1;
    }
    if (!cJSON_IsString(v)) return rq_fail(e, 400, "keep_alive", "'keep_alive' is not a duration");
    if (srv_parse_duration(v->valuestring, out))
        return rq_fail(
            e, 400, "keep_alive",
            "'keep_alive' is not a duration (\"5m\", \"1h30m\", \"30s\", \"0\", \"-1\")");
    return 1;
}

int server_parse_duration(const char *s, double *out) {
    return srv_parse_duration(s, out);
}

int srv_parse_duration(const char *s, double *out) {
    /* Go's time.Duration text ("1h30m", "300ms") or a number of seconds */
    if (!s || !*s || strlen(s) > 64) return -1;
    bool neg = *s == '-';
    if (neg || *s == '+') s++;
    char *end = NULL;
    double total = strtod(s, &end);
    if (end == s || !isfinite(total)) return -1;
    if (*end) {
        total = 0;
        const char *p = s;
        while (*p) {
            double v = strtod(p, &end);
            if (end == p || !isfinite(v) || v < 0) return -1;
            p = end;
            double unit;
            if (!strncmp(p, "ns", 2))
                unit = 1e-9, p += 2;
            else if (!strncmp(p, "us", 2))
                unit = 1e-6, p += 2;
            else if (!strncmp(p, "ms", 2))
                unit = 1e-3, p += 2;
            else if (*p == 's')
                unit = 1, p++;
            else if (*p == 'm')
                unit = 60, p++;
            else if (*p == 'h')
                unit = 3600, p++;
            else
                return -1;
            total += v * unit;
        }
    }
    if (total < 0) return -1;
    *out = neg && total > 0 ? -1 : total;
    return 0;
}

/* ---- listings ---- */

static void rfc3339(long long t, char *buf, size_t n) {
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

cJSON *srv_models_loaded_json(server *s, bool ollama_ps) {
    cJSON *a = cJSON_CreateArray();
    pthread_mutex_lock(&s->mu);
    double now = srv_now();
    long long wall = (long long)time(NULL);
    for (int i = 0; i < s->n_models; i++) {
        srv_model *m = s->models[i];
        if (!m->ready) continue;
        cJSON *o = ollama_ps ? oll_model_json(m, true) : oai_model_json(m);
        if (ollama_ps) {
            char ts[48];
            double left = m->refs || m->pinned || m->expires < 0 ? -1 : m->expires - now;
            rfc3339(left < 0 ? 32503593599LL : wall + (long long)ceil(left), ts, sizeof ts);
            cJSON_AddStringToObject(o, "expires_at", ts);
        }
        cJSON_AddItemToArray(a, o);
    }
    pthread_mutex_unlock(&s->mu);
    return a;
}

cJSON *srv_models_store_json(server *s, bool ollama) {
    cJSON *a = cJSON_CreateArray();
    store_model *v = NULL;
    int n = 0;
    if (store_list_all(&v, &n) != M40LLM_OK) return a;
    for (int i = 0; i < n; i++) {
        const store_model *m = &v[i];
        cJSON *o = cJSON_CreateObject();
        char ts[48], ps[32];
        rfc3339(m->modified, ts, sizeof ts);
        if (ollama) {
            cJSON_AddStringToObject(o, "name", m->name);
            cJSON_AddStringToObject(o, "model", m->name);
            cJSON_AddStringToObject(o, "modified_at", ts);
            cJSON_AddNumberToObject(o, "size", (double)m->size);
            char dg[80];
            snprintf(dg, sizeof dg, "%s", m->n_parts ? m->parts[0].sha256 : "");
            cJSON_AddStringToObject(o, "digest", dg);
            cJSON *d = cJSON_AddObjectToObject(o, "details");
            cJSON_AddStringToObject(d, "parent_model", "");
            cJSON_AddStringToObject(d, "format", "gguf");
            cJSON_AddStringToObject(d, "family", m->arch);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "families"),
                                 cJSON_CreateString(m->arch));
            if (m->n_params >= 1000000000ull)
                snprintf(ps, sizeof ps, "%.1fB", (double)m->n_params / 1e9);
            else
                snprintf(ps, sizeof ps, "%.2fM", (double)m->n_params / 1e6);
            cJSON_AddStringToObject(d, "parameter_size", ps);
            cJSON_AddStringToObject(d, "quantization_level", m->quant);
            cJSON_AddStringToObject(o, "where", store_origin_str(m->origin));
        } else {
            cJSON_AddStringToObject(o, "id", m->name);
            cJSON_AddStringToObject(o, "object", "model");
            cJSON_AddNumberToObject(o, "created", (double)m->modified);
            cJSON_AddStringToObject(o, "owned_by", store_origin_str(m->origin));
        }
        cJSON_AddItemToArray(a, o);
    }
    free(v);
    return a;
}
