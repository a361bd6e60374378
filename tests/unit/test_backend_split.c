/* Several GPUs in one box: --gpus and --tensor-split parsing, the layer
 * planner (against a brute-force search of the least moved boundaries) and
 * the weight bytes of a stage on every fixture model. */
#include <dirent.h>
#include <string.h>

#include "backend_split.h"
#include "check.h"

/* status st with a message containing each of the given parts */
#define CHECK_ERR(call, st, ...)                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        const char *parts_[] = {__VA_ARGS__};                                                      \
        CHECKF(rc_ == (st), "%s: %d, expected %d (%s)", #call, rc_, (st), m40llm_last_error());    \
        for (size_t i_ = 0; i_ < sizeof parts_ / sizeof *parts_; i_++)                             \
            CHECKF(strstr(m40llm_last_error(), parts_[i_]), "%s: \"%s\" lacks \"%s\"", #call,      \
                   m40llm_last_error(), parts_[i_]);                                               \
    } while (0)

static void test_gpus(void) {
    int d[BACKEND_MAX_GPUS], n = -1;
    CHECK(backend_parse_gpus("all", 3, false, d, &n) == 0 && n == 3 && d[0] == 0 && d[2] == 2);
    CHECK(backend_parse_gpus("all", 20, false, d, &n) == 0 && n == BACKEND_MAX_GPUS && d[15] == 15);
    CHECK(backend_parse_gpus("2,0,1", 3, false, d, &n) == 0 && n == 3 && d[0] == 2 && d[1] == 0 &&
          d[2] == 1);
    CHECK(backend_parse_gpus("007", 8, false, d, &n) == 0 && n == 1 && d[0] == 7);
    CHECK(backend_parse_gpus("0,0", 1, true, d, &n) == 0 && n == 2 && d[0] == 0 && d[1] == 0);
    CHECK(backend_parse_gpus("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", 16, false, d, &n) == 0 &&
          n == 16 && d[15] == 15);

    const int INV = M40LLM_ERR_INVALID_ARG, NODEV = M40LLM_ERR_NO_DEVICE;
    CHECK_ERR(backend_parse_gpus("", 2, false, d, &n), INV, "--gpus", "empty");
    CHECK(n == 0);
    CHECK_ERR(backend_parse_gpus(NULL, 2, false, d, &n), INV, "empty");
    CHECK_ERR(backend_parse_gpus("0,,1", 2, false, d, &n), INV, "\"0,,1\"", "item 2 is empty");
    CHECK_ERR(backend_parse_gpus("0,", 2, false, d, &n), INV, "\"0,\"", "item 2 is empty");
    CHECK_ERR(backend_parse_gpus(",1", 2, false, d, &n), INV, "\",1\"", "item 1 is empty");
    const char *bad[] = {"-1", "+1", " 1", "1 ", "1.5", "x", "0x1", "1,a", "ALL", "all,0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char q[32];
        snprintf(q, sizeof q, "\"%s\"", bad[i]);
        CHECK_ERR(backend_parse_gpus(bad[i], 2, false, d, &n), INV, q, "not a GPU index");
    }
    CHECK_ERR(backend_parse_gpus("1000", 2, false, d, &n), INV, "\"1000\"", "more than 3 digits");
    CHECK_ERR(backend_parse_gpus("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,0", 16, true, d, &n), INV,
              "more than 16 GPUs");
    CHECK_ERR(backend_parse_gpus("0,0", 2, false, d, &n), INV, "\"0,0\"", "GPU 0 is named twice");
    CHECK_ERR(backend_parse_gpus("1,0,1", 2, false, d, &n), INV, "GPU 1 is named twice");
    CHECK(n == 0);
    CHECK_ERR(backend_parse_gpus("3", 2, false, d, &n), NODEV,
              "no GPU 3: this machine has 2 (0..1)");
    CHECK_ERR(backend_parse_gpus("0,1", 1, false, d, &n), NODEV, "no GPU 1", "has 1 (GPU 0)");
    CHECK_ERR(backend_parse_gpus("0", 0, false, d, &n), NODEV, "no GPU is usable");
    CHECK_ERR(backend_parse_gpus("all", 0, false, d, &n), NODEV, "no GPU is usable");
    /* a typo is a typo on any machine */
    CHECK_ERR(backend_parse_gpus("0,,", 0, false, d, &n), INV, "empty");
}

static void test_tensor_split(void) {
    double p[BACKEND_MAX_GPUS];
    CHECK(backend_parse_tensor_split("3,1", 2, p) == 0 && p[0] == 0.75 && p[1] == 0.25);
    CHECK(backend_parse_tensor_split("1,1,2", 3, p) == 0 && p[0] == 0.25 && p[1] == 0.25 &&
          p[2] == 0.5);
    CHECK(backend_parse_tensor_split("0,7", 2, p) == 0 && p[0] == 0 && p[1] == 1);
    CHECK(backend_parse_tensor_split(".5,1e0", 2, p) == 0 && fabs(p[0] - 1.0 / 3) < 1e-15 &&
          fabs(p[1] - 2.0 / 3) < 1e-15);
    CHECK(backend_parse_tensor_split("1e308,1e308", 2, p) == 0 && p[0] == 0.5 && p[1] == 0.5);
    CHECK(backend_parse_tensor_split("5", 1, p) == 0 && p[0] == 1);
    CHECK(backend_parse_tensor_split("2.5e-1,75E-2", 2, p) == 0 && p[0] == 0.25 && p[1] == 0.75);

    const int INV = M40LLM_ERR_INVALID_ARG;
    CHECK_ERR(backend_parse_tensor_split("3,1", 3, p), INV, "\"3,1\"", "2 values for 3 GPUs");
    CHECK_ERR(backend_parse_tensor_split("3,1,1", 2, p), INV, "3 values for 2 GPUs");
    CHECK_ERR(backend_parse_tensor_split("", 2, p), INV, "--tensor-split", "empty");
    CHECK_ERR(backend_parse_tensor_split(NULL, 2, p), INV, "empty");
    CHECK_ERR(backend_parse_tensor_split("1,,1", 3, p), INV, "\"1,,1\"", "item 2 is empty");
    CHECK_ERR(backend_parse_tensor_split("1,", 2, p), INV, "item 2 is empty");
    CHECK_ERR(backend_parse_tensor_split(",1", 2, p), INV, "item 1 is empty");
    const char *bad[] = {"-1", "+1",    " 1", "1 ", "inf", "nan", "0x1", "1e999",
                         "1e", "1.2.3", ".",  "e5", "1-2", "INF", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char list[32], q[48];
        snprintf(list, sizeof list, "1,%s", bad[i]);
        snprintf(q, sizeof q, "\"%s\" is not a finite number", bad[i]);
        CHECK_ERR(backend_parse_tensor_split(list, 2, p), INV, q);
    }
    CHECK_ERR(backend_parse_tensor_split("1,1,5", 2, p), INV, "3 values for 2 GPUs");
    CHECK_ERR(backend_parse_tensor_split("0,0", 2, p), INV, "\"0,0\"", "zero");
    CHECK_ERR(backend_parse_tensor_split("0", 0, p), INV, "0 GPUs");
    CHECK_ERR(backend_parse_tensor_split("1", 17, p), INV, "17 GPUs");
}

static bool plan_is(int n_layer, const double *w, int n, const int *want) {
    int b[BACKEND_MAX_GPUS + 1];
    if (backend_plan_layers(n_layer, w, n, b)) return false;
    return !memcmp(b, want, (size_t)(n + 1) * sizeof *b);
}

/* The rounded boundaries, computed here as the header says. */
static void rounded(int n_layer, const double *w, int n, int *r) {
    double total = 0, acc = 0;
    for (int i = 0; i < n; i++) total += w[i];
    for (int i = 0; i <= n; i++) {
        r[i] = (int)floor(n_layer * (acc / total) + 0.5);
        if (i < n) acc += w[i];
    }
}

/* Least total distance |b[i] - r[i]| over every valid split (stages >= 1). */
static int best_cost(int n_layer, int n, const int *r, int i, int prev) {
    if (i == n) return 0;
    int best = 1 << 30;
    for (int v = prev + 1; v <= n_layer - (n - i); v++) {
        int c = abs(v - r[i]) + best_cost(n_layer, n, r, i + 1, v);
        if (c < best) best = c;
    }
    return best;
}

static uint32_t rng = 12345;
static double rnd(void) {
    rng = rng * 1664525u + 1013904223u;
    return (rng >> 8) / 16777216.0;
}

static void test_plan(void) {
    CHECK(plan_is(32, (double[]){1, 1}, 2, (int[]){0, 16, 32}));
    CHECK(plan_is(32, (double[]){3, 1}, 2, (int[]){0, 24, 32}));
    CHECK(plan_is(80, (double[]){1, 1, 1}, 3, (int[]){0, 27, 53, 80}));
    CHECK(plan_is(80, (double[]){5e9, 5e9, 5e9}, 3, (int[]){0, 27, 53, 80}));
    CHECK(plan_is(2, (double[]){1, 0}, 2, (int[]){0, 1, 2}));
    CHECK(plan_is(2, (double[]){0, 1}, 2, (int[]){0, 1, 2}));
    CHECK(plan_is(5, (double[]){9, 0.1, 3, 0, 2}, 5, (int[]){0, 1, 2, 3, 4, 5}));
    CHECK(plan_is(7, (double[]){1}, 1, (int[]){0, 7}));
    CHECK(plan_is(3, (double[]){1, 1}, 2, (int[]){0, 2, 3})); /* 1.5: halves up */
    /* the zero-weight cards take their layers from both sides alike */
    CHECK(plan_is(10, (double[]){5, 0, 0, 5}, 4, (int[]){0, 4, 5, 6, 10}));
    /* a tie between two moves: the earlier stage gives (lower median) */
    CHECK(plan_is(10, (double[]){5, 0, 5}, 3, (int[]){0, 4, 5, 10}));
    CHECK(plan_is(10, (double[]){0, 0, 1}, 3, (int[]){0, 1, 2, 10}));
    CHECK(plan_is(10, (double[]){1, 0, 0}, 3, (int[]){0, 8, 9, 10}));
    CHECK(plan_is(32, (double[]){1e308, 1e308}, 2, (int[]){0, 16, 32}));

    int b[8];
    const int INV = M40LLM_ERR_INVALID_ARG;
    CHECK_ERR(backend_plan_layers(2, (double[]){1, 1, 1}, 3, b), INV, "3 cards for 2 layers");
    CHECK_ERR(backend_plan_layers(4, (double[]){1}, 0, b), INV, "0 cards");
    CHECK_ERR(backend_plan_layers(4, (double[]){1, -1}, 2, b), INV, "weight 1 is -1");
    CHECK_ERR(backend_plan_layers(4, (double[]){NAN, 1}, 2, b), INV, "weight 0 is nan");
    CHECK_ERR(backend_plan_layers(4, (double[]){1, INFINITY}, 2, b), INV, "weight 1 is inf");
    CHECK_ERR(backend_plan_layers(4, (double[]){0, 0}, 2, b), INV, "all 2 weights are zero");

    /* random weights (a fifth of them zero, magnitudes over 1e6) */
    int fails = 0, kept = 0, searched = 0;
    for (int n_layer = 1; n_layer <= 120; n_layer++) {
        for (int rep = 0; rep < 40; rep++) {
            int n = 1 + (int)(rnd() * (n_layer < BACKEND_MAX_GPUS ? n_layer : BACKEND_MAX_GPUS));
            double w[BACKEND_MAX_GPUS];
            int got[BACKEND_MAX_GPUS + 1], r[BACKEND_MAX_GPUS + 1];
            for (int i = 0; i < n; i++) w[i] = rnd() < 0.2 ? 0 : pow(10, 6 * rnd());
            if (n == 1) w[0] = 1;
            w[(int)(rnd() * n)] += 1; /* never all zero */
            if (backend_plan_layers(n_layer, w, n, got)) {
                fails++;
                continue;
            }
            bool ok = got[0] == 0 && got[n] == n_layer;
            for (int i = 0; i < n; i++) ok = ok && got[i + 1] > got[i];
            rounded(n_layer, w, n, r);
            bool valid = true, same = true;
            int cost = 0;
            for (int i = 0; i < n; i++) valid = valid && r[i + 1] > r[i];
            for (int i = 0; i <= n; i++) same = same && got[i] == r[i];
            for (int i = 1; i < n; i++) cost += abs(got[i] - r[i]);
            if (valid) {
                ok = ok && same;
                kept++;
            }
            if (n_layer <= 12 && n <= 6) {
                ok = ok && cost == best_cost(n_layer, n, r, 1, 0);
                searched++;
            }
            CHECKF(ok, "%d layers over %d cards: bad split", n_layer, n);
        }
    }
    CHECK(fails == 0);
    CHECKF(kept > 300 && searched > 200 && kept < 120 * 40, "kept %d, searched %d", kept, searched);
}

/* Every fixture: the whole model is weight_bytes; one layer is the file's
 * blk.<i>.* tensors (so fused views count once); a split in two holds it
 * all, plus the RoPE tables twice and a tied head's embedding twice. */
static int test_stage_bytes_dir(const char *sub) {
    char dir[512], path[1024];
    check_fixture(sub, dir, sizeof dir);
    DIR *dp = opendir(dir);
    CHECKF(dp != NULL, "no fixture directory %s", dir);
    if (!dp) return 0;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".gguf")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        model *m = NULL;
        int st = model_load(path, &m);
        CHECKF(st == 0, "%s: %s", path, m40llm_last_error());
        if (st) continue;
        count++;
        const int L = m->cfg.n_layer;
        const uint64_t rope = m->rope_freqs.nbytes + m->rope_freqs_short.nbytes;
        const uint64_t tied = m->tied_output ? m->tok_embd.nbytes : 0;
        CHECKF(backend_stage_weight_bytes(m, 0, L) == m->weight_bytes, "%s", path);
        uint64_t file_total = 0, layer[64] = {0};
        for (int64_t i = 0; i < gguf_n_tensors(m->gguf); i++) {
            const gguf_tensor *t = gguf_tensor_at(m->gguf, i);
            file_total += t->nbytes;
            char name[16] = {0};
            memcpy(name, t->name.data, t->name.len < 15 ? t->name.len : 15);
            int il = -1;
            if (sscanf(name, "blk.%d.", &il) == 1 && il >= 0 && il < 64) layer[il] += t->nbytes;
        }
        CHECKF(file_total == m->weight_bytes, "%s: file %llu, model %llu", path,
               (unsigned long long)file_total, (unsigned long long)m->weight_bytes);
        for (int il = 0; il < L && il < 64; il++) {
            uint64_t want = layer[il] + rope;
            if (il == 0) want += m->tok_embd.nbytes;
            if (il == L - 1) want += m->output_norm.nbytes + (il > 0 ? m->output.nbytes : 0);
            if (il == L - 1 && il == 0 && !m->tied_output) want += m->output.nbytes;
            CHECKF(backend_stage_weight_bytes(m, il, il + 1) == want, "%s layer %d", path, il);
        }
        for (int k = 1; k < L; k++)
            CHECKF(backend_stage_weight_bytes(m, 0, k) + backend_stage_weight_bytes(m, k, L) ==
                       m->weight_bytes + rope + tied,
                   "%s split at %d", path, k);
        CHECK(backend_stage_weight_bytes(m, -1, 1) == 0 &&
              backend_stage_weight_bytes(m, 0, L + 1) == 0);
        CHECK(backend_stage_weight_bytes(m, 1, 1) == 0);
        model_free(m);
    }
    closedir(dp);
    return count;
}

int main(void) {
    test_gpus();
    test_tensor_split();
    test_plan();
    int n_ref = test_stage_bytes_dir("reference"), n_arch = test_stage_bytes_dir("arch");
    CHECKF(n_ref >= 10 && n_arch >= 10, "fixtures: %d reference, %d arch", n_ref, n_arch);
    CHECK(backend_stage_weight_bytes(NULL, 0, 1) == 0);
    return check_summary("test_backend_split");
}
