/* The two halves of `m40-llm bench`: cmd_bench.c (pp/tg on the backend, as
 * llama-bench) hands over to cmd_bench_batch.c when --batch is given. */
#ifndef M40_CMD_BENCH_H
#define M40_CMD_BENCH_H

#include <stdbool.h>

/* True when argv holds --batch (the engine-level batched benchmark). */
bool bench_wants_batch(int argc, char **argv);
/* m40-llm bench MODEL --batch LIST ...; argv[0] = "bench". Exit status. */
int cmd_bench_batch(int argc, char **argv);

#endif
