/* A layer split over several backends (backend_pipe.c). */
#ifndef M40_BACKEND_PIPE_H
#define M40_BACKEND_PIPE_H

#include "backend.h"

#define BACKEND_PIPE_MAX_STAGES 16

typedef struct backend_stage {
    int device;                 /* GPU index of a CUDA stage; -1: a CPU stage */
    int layer_begin, layer_end; /* its layers [begin, end) */
} backend_stage;

/* A backend over n stages whose layer ranges cover the model in order (all
 * CPU or all CUDA), each created with p and its range; p's kv_fraction is
 * shared by the stages on one card. The backend's forward is the unsplit
 * one's: same logits (the CPU's bit for bit), same sequence rules. Errors
 * name the stage (card, layers) that failed, everything freed. */
int backend_pipe_create(const model *m, const backend_params *p, const backend_stage *stages, int n,
                        backend **out);
/* The stages of a split backend (stages may be NULL: the count only); 0
 * for any other backend. */
int backend_pipe_stages(const backend *b, const backend **stages);

#endif
