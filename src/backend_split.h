/* Several GPUs in one box (issue 23): the option values that pick the cards
 * (--gpus) and their shares (--tensor-split), and the planner that gives
 * each card a contiguous range of layers. Pure host code, no device calls:
 * the caller passes the number of usable cards and their free memory. */
#ifndef M40_BACKEND_SPLIT_H
#define M40_BACKEND_SPLIT_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

#define BACKEND_MAX_GPUS 16

/* "all" -> 0..n_available-1 (the first BACKEND_MAX_GPUS of them on a larger
 * machine); "0,1" -> those indices in that order. devs: [BACKEND_MAX_GPUS];
 * *n: entries written. Errors (M40LLM_ERR_INVALID_ARG, message naming the
 * text): empty, an empty item ("0,,1", "0,", ",1"), anything but decimal
 * digits in an item (signs, spaces, "1.5", "x"), a number with more than 3
 * digits, more than BACKEND_MAX_GPUS items. M40LLM_ERR_NO_DEVICE:
 * n_available == 0 ("no GPU is usable"), or an index >= n_available ("no
 * GPU 3: this machine has 2 (0..1)"). A card named twice is
 * M40LLM_ERR_INVALID_ARG ("GPU 0 is named twice") unless allow_dup (tests
 * run two contexts on one card: "0,0"). A malformed list is reported as
 * such before the machine's cards are looked at. On error *n is 0. */
int backend_parse_gpus(const char *list, int n_available, bool allow_dup, int *devs, int *n);

/* "3,1" -> props {0.75, 0.25} (normalised to sum 1) for n_gpus cards
 * (1..BACKEND_MAX_GPUS). props: [n_gpus]. Errors (M40LLM_ERR_INVALID_ARG):
 * item count != n_gpus (both named), empty items, a value that is not a
 * finite number >= 0 (digits, '.', an exponent; strtod must consume the
 * whole item; no sign, space, "inf", "nan" or hex), all zero. */
int backend_parse_tensor_split(const char *list, int n_gpus, double *props);

/* Contiguous layer ranges for n stages in proportion to weights[0..n)
 * (free memory of each card, or --tensor-split): stage i runs layers
 * begin[i] .. begin[i+1]-1, begin[0] = 0, begin[n] = n_layer, every stage
 * at least one layer. begin: [n + 1]. Rounding: begin[i] = the nearest
 * integer (halves up) to n_layer * (sum of weights before i) / (sum of
 * all), then pushed up/down just enough that every stage keeps >= 1 layer
 * (the least total distance over all boundaries, the earlier stages
 * smaller where two are as near; rounded boundaries that already do are
 * kept): a stage of weight 0 still gets one layer (a card named in --gpus runs
 * something; the caller drops it from the list to leave it idle). Errors
 * (M40LLM_ERR_INVALID_ARG): n < 1, n > n_layer ("3 cards for 2 layers"),
 * a weight negative or not finite, all weights zero. */
int backend_plan_layers(int n_layer, const double *weights, int n, int *begin);

/* Bytes of weights of the layers [l0, l1) of m, plus the token embedding
 * when l0 == 0 and the output head (output.weight, or the embedding again
 * when tied and l0 > 0: that card needs its own copy for the logits; the
 * output norm) when l1 == n_layer, plus the RoPE factor tables in every
 * stage (each card's layers rotate with them): what a stage holds. Fused
 * tensors' views (phi3) count once, as in m->weight_bytes, so the range
 * [0, n_layer) gives m->weight_bytes. 0 for a bad range (l0 < 0,
 * l1 > n_layer, l0 >= l1) or no model. */
uint64_t backend_stage_weight_bytes(const model *m, int l0, int l1);

#endif
