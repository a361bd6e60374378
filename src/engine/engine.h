/* Library-internal ways into the engine for the CLI, which loads the model
 * and picks the backend itself (model lookup, GPU diagnostics on stderr)
 * before handing them over. The public API is in include/m40llm.h. */
#ifndef M40_ENGINE_H
#define M40_ENGINE_H

#include "backend.h"
#include "m40llm.h"
#include "model.h"
#include "tokenizer.h"

/* An m40llm_model over a loaded model (ownership passes, also on error):
 * reads its tokenizer and chat template. */
int engine_model_wrap(model *m, const char *path, m40llm_model **out);
/* The model and tokenizer inside (owned by mm). */
model *engine_model_model(m40llm_model *mm);
const tokenizer *engine_model_tokenizer(const m40llm_model *mm);

/* An engine over a backend created in paged mode (backend_params.paged)
 * for mm's model; the engine owns b from now on (also on error). p's
 * device, thread, context, sequence, batch and KV fields are taken from b's
 * params. */
int engine_create_on(m40llm_model *mm, backend *b, const m40llm_engine_params *p,
                     m40llm_engine **out);

#endif
