/* What the tokenizer asks of the architecture layer, without model.h. */
#ifndef M40_MODEL_ARCH_VOCAB_H
#define M40_MODEL_ARCH_VOCAB_H

#include <stdbool.h>

#include "gguf.h"

/* True when the file's architecture keeps its turn markers in CONTROL
 * tokens, so that its USER_DEFINED tokens are plain vocabulary pieces
 * (tokenizer_vocab.plain_user_defined); false for others and unknown ones. */
bool arch_plain_user_defined(const gguf_file *g);

#endif
