/* Token sampler.
 *
 * The chain is llama.cpp's default order:
 *   penalties (repetition, frequency, presence over the last penalty_last_n tokens)
 *   -> top-k -> top-p -> min-p -> temperature -> draw.
 * Filtering uses the untempered distribution (temperature comes last), so
 * temperature only reshapes the probabilities of the tokens that survive.
 * temp <= 0 is greedy: argmax of the penalised logits, lowest id on ties.
 *
 * Candidates are ordered by (logit descending, id ascending), a total order,
 * so every filter and the draw are deterministic for a given seed.
 *
 * Efficiency for large vocabularies (150k): all buffers live in the sampler
 * (no allocation per call); penalty counts are kept incrementally as tokens
 * are accepted; top-k is a one-pass heap selection, not a sort; top-p without
 * top-k buckets the candidates by logit and sorts only the bucket where the
 * kept mass crosses p; min-p is a threshold applied before any sorting. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

struct sampler {
    sampler_params p;
    int n_vocab;
    uint64_t rng[4]; /* xoshiro256** state */

    /* penalty history */
    int32_t *ring;     /* [window] last accepted tokens (window > 0) */
    int window;        /* ring capacity; 0 when the penalties are off or use the whole history */
    int ring_len;      /* tokens in the ring (<= window) */
    int ring_head;     /* index of the oldest token */
    int32_t *count;    /* [n_vocab] occurrences inside the window */
    int32_t *seen;     /* [n_vocab] distinct tokens with count > 0 */
    int32_t *seen_pos; /* [n_vocab] index in seen, -1 if absent */
    int n_seen;

    /* per-call work */
    float *logit;  /* [n_vocab] penalised logits */
    int32_t *cand; /* [n_vocab] candidate ids */
    float *prob;   /* [n_vocab] unnormalised probabilities of cand (same order) */
    int32_t *tmp;  /* [n_vocab] scratch ids for top-p */
};

sampler_params sampler_default_params(void) {
    sampler_params p = {
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .freq_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = 0,
    };
    return p;
}

/* ---- RNG: splitmix64 seeds xoshiro256** ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(sampler *s) {
    return (double)(xoshiro_next(s->rng) >> 11) * 0x1.0p-53;
}

static void rng_seed(sampler *s) {
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

/* ---- lifecycle ---- */

int sampler_create(const sampler_params *p, int n_vocab, sampler **out) {
    if (!out) return err_set(M40LLM_ERR_INVALID_ARG, "sampler_create: out is NULL");
    *out = NULL;
    if (!p) return err_set(M40LLM_ERR_INVALID_ARG, "sampler_create: params is NULL");
    if (n_vocab <= 0)
        return err_set(M40LLM_ERR_INVALID_ARG, "sampler_create: n_vocab %d must be > 0", n_vocab);
    if (p->penalty_last_n < -1)
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "sampler_create: penalty_last_n %d (use -1 for the whole history)",
                       p->penalty_last_n);
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p) || !isfinite(p->repeat_penalty) ||
        p->repeat_penalty <= 0.0f || !isfinite(p->freq_penalty) || !isfinite(p->presence_penalty))
        return err_set(M40LLM_ERR_INVALID_ARG,
                       "sampler_create: bad parameter (temp %g, top_p %g, min_p %g, repeat %g, "
                       "freq %g, presence %g)",
                       p->temp, p->top_p, p->min_p, p->repeat_penalty, p->freq_penalty,
                       p->presence_penalty);
    sampler *s = calloc(1, sizeof *s);
    if (!s) return err_set(M40LLM_ERR_OOM, "sampler_create: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->window = p->penalty_last_n > 0 ? p->penalty_last_n : 0;
    size_t n = (size_t)n_vocab;
    s->count = calloc(n, sizeof *s->count);
    s->seen = malloc(n * sizeof *s->seen);
    s->seen_pos = malloc(n * sizeof *s->seen_pos);
    s->logit = malloc(n * sizeof *s->logit);
    s->cand = malloc(n * sizeof *s->cand);
    s->prob = malloc(n * sizeof *s->prob);
    s->tmp = malloc(n * sizeof *s->tmp);
    if (s->window > 0) s->ring = malloc((size_t)s->window * sizeof *s->ring);
    if (!s->count || !s->seen || !s->seen_pos || !s->logit || !s->cand || !s->prob || !s->tmp ||
        (s->window > 0 && !s->ring)) {
        sampler_free(s);
        return err_set(M40LLM_ERR_OOM, "sampler_create: out of memory for n_vocab %d", n_vocab);
    }
    sampler_reset(s);
    *out = s;
    return M40LLM_OK;
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->ring);
    free(s->count);
    free(s->seen);
    free(s->seen_pos);
    free(s->logit);
    free(s->cand);
    free(s->prob);
    free(s->tmp);
    free(s);
}

void sampler_reset(sampler *s) {
    if (!s) return;
    memset(s->count, 0, (size_t)s->n_vocab * sizeof *s->count);
    for (int i = 0; i < s->n_vocab; i++) s->seen_pos[i] = -1;
    s->n_seen = 0;
    s->ring_len = 0;
    s->ring_head = 0;
    rng_seed(s);
}

/* ---- penalty history ---- */

static void count_add(sampler *s, int32_t t) {
    if (s->count[t]++ == 0) {
        s->seen_pos[t] = s->n_seen;
        s->seen[s->n_seen++] = t;
    }
}

static void count_remove(sampler *s, int32_t t) {
    if (--s->count[t] == 0) {
        /* swap-remove from the distinct list */
        int i = s->seen_pos[t];
        int32_t last = s->seen[--s->n_seen];
        s->seen[i] = last;
        s->seen_pos[last] = i;
        s->seen_pos[t] = -1;
    }
}

void sampler_accept(sampler *s, int32_t token) {
    if (!s || token < 0 || token >= s->n_vocab || s->p.penalty_last_n == 0) return;
    if (s->window > 0) {
        if (s->ring_len == s->window) {
            count_remove(s, s->ring[s->ring_head]);
            s->ring[s->ring_head] = token;
            s->ring_head = (s->ring_head + 1) % s->window;
        } else {
            s->ring[(s->ring_head + s->ring_len++) % s->window] = token;
        }
    }
    count_add(s, token);
}

static bool penalties_active(const sampler *s) {
    return s->p.penalty_last_n != 0 && (s->p.repeat_penalty != 1.0f || s->p.freq_penalty != 0.0f ||
                                        s->p.presence_penalty != 0.0f);
}

static void apply_penalties(sampler *s) {
    const float rep = s->p.repeat_penalty, fr = s->p.freq_penalty, pr = s->p.presence_penalty;
    for (int i = 0; i < s->n_seen; i++) {
        int32_t t = s->seen[i];
        float l = s->logit[t];
        /* llama.cpp: a repeated token is made less likely whatever its sign */
        l = l <= 0.0f ? l * rep : l / rep;
        l -= (float)s->count[t] * fr + pr;
        s->logit[t] = l;
    }
}

/* ---- selection ---- */

/* a ranks before b: higher logit, then lower id (a total order) */
static inline bool rank_before(const float *lg, int32_t a, int32_t b) {
    return lg[a] > lg[b] || (lg[a] == lg[b] && a < b);
}

int32_t sampler_argmax(const float *logits, int n) {
    if (!logits || n <= 0) return -1;
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best] || (isnan(logits[best]) && !isnan(logits[i]))) best = i;
    return best;
}

static void insertion_sort(const float *lg, int32_t *c, int n) {
    for (int i = 1; i < n; i++) {
        int32_t v = c[i];
        int j = i - 1;
        while (j >= 0 && rank_before(lg, v, c[j])) {
            c[j + 1] = c[j];
            j--;
        }
        c[j + 1] = v;
    }
}

static inline void swap32(int32_t *a, int32_t *b) {
    int32_t t = *a;
    *a = *b;
    *b = t;
}

/* Sorts c[0..n) in rank order: quicksort with median-of-three, recursing on
 * the smaller part (O(log n) stack), insertion sort for short runs. */
static void sort_range(const float *lg, int32_t *c, int n) {
    while (n > 16) {
        int mid = n / 2;
        if (rank_before(lg, c[mid], c[0])) swap32(&c[mid], &c[0]);
        if (rank_before(lg, c[n - 1], c[0])) swap32(&c[n - 1], &c[0]);
        if (rank_before(lg, c[n - 1], c[mid])) swap32(&c[n - 1], &c[mid]);
        int32_t pivot = c[mid];
        int i = 0, j = n - 1;
        while (i <= j) {
            while (rank_before(lg, c[i], pivot)) i++;
            while (rank_before(lg, pivot, c[j])) j--;
            if (i <= j) swap32(&c[i++], &c[j--]);
        }
        if (j + 1 < n - i) {
            sort_range(lg, c, j + 1);
            c += i;
            n -= i;
        } else {
            sort_range(lg, c + i, n - i);
            n = j + 1;
        }
    }
    insertion_sort(lg, c, n);
}

/* The k best ids of the vocabulary, in rank order, into c[0..k). A heap of
 * the k best seen so far with the worst at its root: most tokens cost one
 * comparison against the root, so this is one pass over the logits. */
static void heap_sift_down(const float *lg, int32_t *h, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && rank_before(lg, h[w], h[l])) w = l;
        if (r < k && rank_before(lg, h[w], h[r])) w = r;
        if (w == i) return;
        swap32(&h[i], &h[w]);
        i = w;
    }
}

static void top_k_select(const float *lg, int nv, int k, int32_t *c) {
    for (int i = 0; i < k; i++) c[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--) heap_sift_down(lg, c, k, i);
    for (int i = k; i < nv; i++)
        if (rank_before(lg, i, c[0])) {
            c[0] = i;
            heap_sift_down(lg, c, k, 0);
        }
    sort_range(lg, c, k);
}

/* top-p over an unsorted candidate list c[0..n) whose weights e[i] =
 * exp(logit - lmax) are known: keeps the smallest rank prefix with mass >=
 * target. Candidates are bucketed by logit; buckets above the one where the
 * mass crosses target are kept whole (unsorted), and only the crossing bucket
 * is sorted. Returns the new n (candidates compacted to the front). */
#define TOPP_BUCKETS 512
static int top_p_unsorted(sampler *s, int n, float lmax, double target) {
    const float *lg = s->logit;
    int32_t *c = s->cand;
    float *e = s->prob;
    float lmin = lmax;
    for (int i = 0; i < n; i++)
        if (lg[c[i]] < lmin && lg[c[i]] > -INFINITY) lmin = lg[c[i]];
    double mass[TOPP_BUCKETS] = {0};
    const float range = lmax - lmin;
    const float scale = range > 0.0f ? (float)(TOPP_BUCKETS - 1) / range : 0.0f;
    for (int i = 0; i < n; i++) {
        float d = lmax - lg[c[i]];
        int b = d <= range ? (int)(d * scale) : TOPP_BUCKETS - 1;
        mass[b] += e[i];
    }
    int bx = 0;
    double cum = 0.0;
    while (bx < TOPP_BUCKETS && cum + mass[bx] < target) cum += mass[bx++];
    if (bx == TOPP_BUCKETS) return n; /* rounding: the whole set is needed */

    /* keep buckets < bx in place, move bucket bx to the scratch list */
    int w = 0, nb = 0;
    int32_t *tmp = s->tmp;
    for (int i = 0; i < n; i++) {
        float d = lmax - lg[c[i]];
        int b = d <= range ? (int)(d * scale) : TOPP_BUCKETS - 1;
        if (b < bx) {
            c[w] = c[i];
            e[w++] = e[i];
        } else if (b == bx) {
            tmp[nb++] = c[i];
        }
    }
    sort_range(lg, tmp, nb);
    for (int i = 0; i < nb; i++) {
        c[w] = tmp[i];
        e[w] = expf(lg[tmp[i]] - lmax);
        cum += e[w++];
        if (cum >= target) break;
    }
    return w;
}

int32_t sampler_sample(sampler *s, const float *logits) {
    if (!s || !logits) return -1;
    const int nv = s->n_vocab;
    float *lg = s->logit;
    for (int i = 0; i < nv; i++) lg[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    if (penalties_active(s)) apply_penalties(s);

    int32_t best = sampler_argmax(lg, nv);
    /* greedy, or nothing to weigh against (all -inf, or +inf present) */
    if (s->p.temp <= 0.0f || s->p.top_k == 1 || !isfinite(lg[best])) return best;
    const float lmax = lg[best];

    /* top-k */
    int32_t *c = s->cand;
    float *e = s->prob;
    int n = nv;
    bool sorted = false;
    if (s->p.top_k > 0 && s->p.top_k < nv) {
        n = s->p.top_k;
        top_k_select(lg, nv, n, c);
        sorted = true;
    } else {
        for (int i = 0; i < nv; i++) c[i] = i;
    }

    /* weights at temperature 1; their sum over the top-k set is top-p's normaliser */
    const bool top_p = s->p.top_p < 1.0f;
    double z = 0.0;
    for (int i = 0; i < n; i++) {
        e[i] = expf(lg[c[i]] - lmax);
        z += e[i];
    }

    /* min-p: p >= min_p * p_max  <=>  e >= min_p. Applying it before top-p
     * gives the chain's result: top-p keeps a rank prefix and min-p another,
     * so the result is their intersection, with top-p's cut measured against
     * the whole top-k mass z (computed above). Compaction keeps the order. */
    if (s->p.min_p > 0.0f) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (e[i] >= s->p.min_p) {
                c[m] = c[i];
                e[m++] = e[i];
            }
        n = m;
    }

    /* top-p: the smallest rank prefix whose mass reaches top_p * z */
    if (top_p && n > 1) {
        double target = (double)s->p.top_p * z;
        if (sorted) {
            double cum = 0.0;
            for (int i = 0; i < n; i++) {
                cum += e[i];
                if (cum >= target) {
                    n = i + 1;
                    break;
                }
            }
        } else {
            n = top_p_unsorted(s, n, lmax, target);
        }
    }

    /* temperature, then draw */
    if (s->p.temp != 1.0f) {
        const float inv_t = 1.0f / s->p.temp;
        for (int i = 0; i < n; i++) e[i] = expf((lg[c[i]] - lmax) * inv_t);
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += e[i];
    double u = rng_uniform(s) * sum, cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += e[i];
        if (u < cum) return c[i];
    }
    /* rounding left u at the very top: the last candidate with mass */
    for (int i = n - 1; i >= 0; i--)
        if (e[i] > 0.0f) return c[i];
    return best;
}
