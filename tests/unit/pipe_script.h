/* The fixed sequence of forward calls the layer-split tests run on a split
 * and an unsplit backend (test_pipe on the CPU, test_gpu_split on a GPU):
 * a prompt chunk, sequences interleaved with a decode, a batch that
 * revisits a position, a greedy step of all sequences. */
#ifndef M40_PIPE_SCRIPT_H
#define M40_PIPE_SCRIPT_H

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_pipe.h"
#include "check.h"

enum { CTX = 64, NSEQ = 3, NB = 32 };

/* a fixed sequence of calls; every call's logits appended to out */
static inline int script(backend *b, int V, float *out, int32_t *ids) {
    int n_rows = 0, rc = 0;
    if (b->params.paged) /* blocks of 16: sequence s gets blocks s*4 .. s*4+3 */
        for (int s = 0; s < NSEQ && !rc; s++) {
            int32_t bl[4] = {s * 4, s * 4 + 1, s * 4 + 2, s * 4 + 3};
            rc = b->ops->seq_set_blocks(b, s, bl, 4, 0);
        }
    backend_entry e[NB];
    /* a 20-token prompt chunk of sequence 0, logits on 3 rows */
    for (int i = 0; i < 20; i++) e[i] = (backend_entry){0, i, 5 + 7 * i % 200, i % 9 == 0};
    if (!rc) rc = backend_forward(b, e, 20, out + (size_t)n_rows * V);
    n_rows += 3;
    /* sequences 1 and 2 interleaved with a decode of 0 */
    for (int i = 0; i < 8; i++) e[i] = (backend_entry){1 + i % 2, i / 2, 30 + i, true};
    e[8] = (backend_entry){0, 20, 77, true};
    if (!rc) rc = backend_forward(b, e, 9, out + (size_t)n_rows * V);
    n_rows += 9;
    /* a batch that revisits: sequence 1 at 4, 5, then back to 3 */
    e[0] = (backend_entry){1, 4, 11, true};
    e[1] = (backend_entry){1, 5, 12, true};
    e[2] = (backend_entry){1, 3, 13, true};
    e[3] = (backend_entry){2, 4, 14, true};
    if (!rc) rc = backend_forward(b, e, 4, out + (size_t)n_rows * V);
    n_rows += 4;
    /* greedy ids of a decode step of all three */
    for (int s = 0; s < NSEQ; s++) e[s] = (backend_entry){s, b->ops->seq_len(b, s), 40 + s, true};
    if (!rc) rc = b->ops->forward_argmax(b, e, NSEQ, ids);
    CHECKF(rc == 0, "script on %s: %s", b->ops->name, m40llm_last_error());
    return n_rows;
}

/* Stages that split L layers on device dev: two halves (ns 2), or one
 * stage per layer (ns == L). */
static inline void script_stages(int L, int ns, int dev, backend_stage *st) {
    for (int s = 0; s < ns; s++)
        st[s] = ns == 2 ? (backend_stage){dev, s ? L / 2 : 0, s ? L : L / 2}
                        : (backend_stage){dev, s, s + 1};
}

/* Runs the script on the split b and checks its logits and ids against the
 * unsplit one's (ref, rid: rows rows), bit for bit, and its lengths. */
static inline void script_check(backend *b, backend *one, int V, const float *ref,
                                const int32_t *rid, int rows, const char *what) {
    float *got = calloc((size_t)16 * V, sizeof *got);
    int32_t gid[NSEQ];
    script(b, V, got, gid);
    CHECKF(got && !memcmp(ref, got, sizeof(float) * rows * V) && !memcmp(rid, gid, sizeof gid),
           "%s: logits differ from the unsplit backend", what);
    for (int s = 0; s < NSEQ; s++) CHECK(b->ops->seq_len(b, s) == one->ops->seq_len(one, s));
    free(got);
}

#endif
