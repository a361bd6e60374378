/* Routes outside the two APIs: GET / (Ollama's liveness text), GET /health,
 * GET /metrics, POST /tokenize, POST /detokenize, GET /props (what
 * llama.cpp's server offers under those names). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_int.h"

int ext_root(http_req *r) {
    static const char msg[] = "m40-llm is running";
    char *s = strdup(msg);
    return http_send(r, 200, "text/plain; charset=utf-8", s, s ? strlen(s) : 0);
}

int ext_health(http_req *r) {
    server *s = r->s;
    cJSON *o = cJSON_CreateObject();
    server_state st = (server_state)atomic_load(&s->state);
    pthread_mutex_lock(&s->mu);
    bool draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    int code = 503;
    if (st == SERVER_LOADING) {
        cJSON_AddStringToObject(o, "status", "loading");
    } else if (st == SERVER_FAILED) {
        cJSON_AddStringToObject(o, "status", "error");
        cJSON_AddStringToObject(o, "error", s->error);
    } else if (draining) { /* a load balancer stops sending new work here */
        cJSON_AddStringToObject(o, "status", "shutting down");
    } else {
        cJSON_AddStringToObject(o, "status", "ok");
        code = 200;
    }
    return http_send_json(r, code, o);
}

/* The model of a request that may name one ("model"; else the --model one
 * or the most recently used); NULL with e filled. */
static srv_model *ext_model(http_req *r, const cJSON *body, api_err *e) {
    const char *name = NULL;
    if (body && rq_string(body, "model", NULL, &name, e) < 0) return NULL;
    srv_model *m = NULL;
    if (srv_model_get(r->s, name, NAN, &m, e)) return NULL;
    return m;
}

int ext_metrics(http_req *r) {
    server *s = r->s;
    m40llm_engine_stats st;
    m40llm_gpu_info gi;
    api_err e = {0};
    /* engine and einfo are only read once published */
    srv_model *m = atomic_load(&s->state) == SERVER_READY ? ext_model(r, NULL, &e) : NULL;
    bool gpu = false;
    int device = 0;
    if (m) {
        device = m->einfo.device;
        m40llm_engine_get_stats(m->engine, &st);
        /* the GPU the engine runs on; no series at all on the CPU */
        if (m->einfo.backend && !strcmp(m->einfo.backend, "cuda") && m->einfo.device >= 0)
            gpu = m40llm_gpu_query(m->einfo.device, &gi) == M40LLM_OK;
    }
    char *text = metrics_render(&s->metrics, m ? m->names.id : "", m ? &st : NULL,
                                m ? &m->einfo : NULL, gpu ? &gi : NULL, device);
    srv_model_put(s, m);
    if (!text) return MHD_NO;
    return http_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
}

/* {"content": text, "add_special": false, "parse_special": true,
 *  "with_pieces": false} -> {"tokens": [ids] or [{"id", "piece"}]} */
int ext_tokenize(http_req *r) {
    api_err e = {0};
    cJSON *b = rq_parse(r->body, r->body_len, &e);
    if (!b) return http_send_error(r, &e);
    srv_model *s = ext_model(r, b, &e);
    if (!s) {
        cJSON_Delete(b);
        return http_send_error(r, &e);
    }
    const char *text = NULL;
    bool add_special = false, parse_special = true, pieces = false;
    if (rq_string(b, "content", NULL, &text, &e) < 0 ||
        rq_bool(b, "add_special", NULL, &add_special, &e) < 0 ||
        rq_bool(b, "parse_special", NULL, &parse_special, &e) < 0 ||
        rq_bool(b, "with_pieces", NULL, &pieces, &e) < 0 ||
        (!text && rq_fail(&e, 400, "content", "'content' is required"))) {
        cJSON_Delete(b);
        srv_model_put(r->s, s);
        return http_send_error(r, &e);
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = m40llm_tokenize(s->model, text, strlen(text), add_special, parse_special, &ids, &n);
    cJSON_Delete(b);
    if (rc) {
        srv_model_put(r->s, s);
        rq_fail_status(&e, rc, "content");
        return http_send_error(r, &e);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n; i++) {
        if (!pieces) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
            continue;
        }
        char *t = NULL;
        size_t l = 0;
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "id", ids[i]);
        if (m40llm_detokenize(s->model, &ids[i], 1, 1, &t, &l) == M40LLM_OK)
            cJSON_AddStringToObject(p, "piece", t);
        else
            cJSON_AddStringToObject(p, "piece", "");
        free(t);
        cJSON_AddItemToArray(a, p);
    }
    free(ids);
    srv_model_put(r->s, s);
    return http_send_json(r, 200, o);
}

/* {"tokens": [ids]} -> {"content": text} */
int ext_detokenize(http_req *r) {
    api_err e = {0};
    cJSON *b = rq_parse(r->body, r->body_len, &e);
    if (!b) return http_send_error(r, &e);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "tokens");
    srv_model *s = cJSON_IsArray(t) ? ext_model(r, b, &e) : NULL;
    if (cJSON_IsArray(t) && !s) {
        cJSON_Delete(b);
        return http_send_error(r, &e);
    }
    if (!cJSON_IsArray(t)) {
        cJSON_Delete(b);
        rq_fail(&e, 400, "tokens", "'tokens' must be an array of token ids");
        return http_send_error(r, &e);
    }
    int n = cJSON_GetArraySize(t);
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) {
        cJSON_Delete(b);
        srv_model_put(r->s, s);
        return MHD_NO;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, t) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (d < 0 || d >= s->minfo.n_vocab || d != (double)(int32_t)d) {
            free(ids);
            cJSON_Delete(b);
            rq_fail(&e, 400, "tokens", "'tokens[%d]' is not a token id (0..%d)", i,
                    s->minfo.n_vocab - 1);
            srv_model_put(r->s, s);
            return http_send_error(r, &e);
        }
        ids[i++] = (int32_t)d;
    }
    cJSON_Delete(b);
    char *text = NULL;
    size_t len = 0;
    int rc = m40llm_detokenize(s->model, ids, (size_t)n, 1, &text, &len);
    free(ids);
    srv_model_put(r->s, s);
    if (rc) {
        rq_fail_status(&e, rc, "tokens");
        return http_send_error(r, &e);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", text);
    free(text);
    return http_send_json(r, 200, o);
}

int ext_props(http_req *r) {
    server *s = r->s;
    api_err e = {0};
    srv_model *m = ext_model(r, NULL, &e);
    if (!m) return http_send_error(r, &e);
    const m40llm_engine_info *ei = &m->einfo;
    const m40llm_model_info *mi = &m->minfo;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", m->names.id);
    cJSON_AddStringToObject(o, "model_path", mi->path ? mi->path : "");
    cJSON_AddStringToObject(o, "model_name", mi->name ? mi->name : "");
    cJSON_AddStringToObject(o, "architecture", mi->arch ? mi->arch : "");
    cJSON_AddStringToObject(o, "quantization", mi->quant ? mi->quant : "");
    cJSON_AddNumberToObject(o, "n_params", (double)mi->n_params);
    cJSON_AddNumberToObject(o, "n_ctx", ei->n_ctx);
    cJSON_AddNumberToObject(o, "n_ctx_train", mi->n_ctx_train);
    cJSON_AddNumberToObject(o, "n_vocab", mi->n_vocab);
    cJSON_AddStringToObject(o, "chat_template", mi->chat_template ? mi->chat_template : "");
    cJSON_AddNumberToObject(o, "max_seqs", ei->max_seqs);
    cJSON_AddNumberToObject(o, "total_slots", ei->max_seqs); /* llama.cpp's name */
    cJSON_AddNumberToObject(o, "max_batch_tokens", ei->max_batch_tokens);
    cJSON_AddNumberToObject(o, "max_queue", ei->max_queue);
    cJSON_AddStringToObject(o, "backend", ei->backend ? ei->backend : "");
    cJSON_AddNumberToObject(o, "device", ei->device);
    cJSON *kv = cJSON_AddObjectToObject(o, "kv_cache");
    cJSON_AddStringToObject(kv, "type", ei->kv_type == M40LLM_KV_F32 ? "f32" : "f16");
    cJSON_AddNumberToObject(kv, "block_tokens", ei->kv_block);
    cJSON_AddNumberToObject(kv, "blocks_total", ei->kv_blocks_total);
    cJSON_AddNumberToObject(kv, "pool_bytes", (double)ei->kv_pool_bytes);
    cJSON_AddBoolToObject(kv, "prefix_cache", !s->cfg.engine.no_prefix_cache);
    cJSON *dg = cJSON_AddObjectToObject(o, "default_generation_settings");
    cJSON_AddNumberToObject(dg, "n_ctx", ei->n_ctx);
    cJSON_AddStringToObject(o, "build_info", m40llm_version());
    srv_model_put(s, m);
    return http_send_json(r, 200, o);
}
