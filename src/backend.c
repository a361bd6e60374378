#include "backend.h"

#include "err.h"

int backend_validate_batch(const backend *b, const backend_entry *entries, int n) {
    if (n <= 0 || !entries) return err_set(M40LLM_ERR_INVALID_ARG, "empty batch");
    if (n > b->params.n_batch_max)
        return err_set(M40LLM_ERR_INVALID_ARG, "batch of %d entries exceeds n_batch_max %d", n,
                       b->params.n_batch_max);
    const model_config *c = &b->model->cfg;
    for (int i = 0; i < n; i++) {
        const backend_entry *e = &entries[i];
        if (e->seq < 0 || e->seq >= b->params.n_seq_max)
            return err_set(M40LLM_ERR_INVALID_ARG, "entry %d: sequence %d outside 0..%d", i, e->seq,
                           b->params.n_seq_max - 1);
        if (e->token < 0 || e->token >= c->n_vocab)
            return err_set(M40LLM_ERR_INVALID_ARG, "entry %d: token %d outside vocab of %d", i,
                           e->token, c->n_vocab);
        if (e->pos < 0)
            return err_set(M40LLM_ERR_INVALID_ARG, "entry %d: negative position %d", i, e->pos);
        if (e->pos >= b->params.n_ctx)
            return err_set(M40LLM_ERR_CONTEXT_FULL,
                           "entry %d: position %d does not fit the context of %d tokens", i, e->pos,
                           b->params.n_ctx);
        /* positions of a sequence: contiguous from at most its current length */
        int expect = b->ops->seq_len(b, e->seq);
        for (int j = i - 1; j >= 0; j--) {
            if (entries[j].seq == e->seq) {
                expect = entries[j].pos + 1;
                break;
            }
        }
        if (e->pos > expect)
            return err_set(M40LLM_ERR_INVALID_ARG,
                           "entry %d: sequence %d position %d leaves a gap (next is %d)", i, e->seq,
                           e->pos, expect);
    }
    return M40LLM_OK;
}
