/* Top-k selection and target rank over a full score vector (one call per evaluated user).
 *
 * Both functions use the same total order (see metrics.h): score descending, smaller id
 * first on ties, NaN below everything. Keeping one order is what makes "target appears in
 * the top-k list" equivalent to "ps_target_rank(...) <= k". */
#include "popsteer/metrics.h"

#include <math.h>

/* True when item a ranks strictly before item b. */
static inline int ranks_before(const float *scores, int32_t a, int32_t b)
{
    float sa = scores[a], sb = scores[b];
    int na = isnan(sa), nb = isnan(sb);
    if (na || nb) {
        if (na != nb)
            return nb; /* the non-NaN one comes first */
        return a < b;
    }
    if (sa != sb)
        return sa > sb;
    return a < b;
}

/* The heap keeps the worst of the current k best at its root, so a candidate only has to
 * beat the root to enter. */
static void sift_down(const float *scores, int32_t *heap, int n, int pos)
{
    int32_t item = heap[pos];
    for (;;) {
        int child = 2 * pos + 1;
        if (child >= n)
            break;
        if (child + 1 < n && ranks_before(scores, heap[child], heap[child + 1]))
            child++; /* the worse child */
        if (!ranks_before(scores, item, heap[child]))
            break;
        heap[pos] = heap[child];
        pos = child;
    }
    heap[pos] = item;
}

static void sift_up(const float *scores, int32_t *heap, int pos)
{
    int32_t item = heap[pos];
    while (pos > 0) {
        int parent = (pos - 1) / 2;
        if (!ranks_before(scores, heap[parent], item))
            break;
        heap[pos] = heap[parent];
        pos = parent;
    }
    heap[pos] = item;
}

/* Fills the heap with the first k eligible items; returns the id to continue from. */
static int32_t fill_heap(const float *scores, int32_t n_items, int k, const uint8_t *exclude,
                         int32_t *heap, int *n)
{
    int32_t i = 1;
    for (; i <= n_items && *n < k; i++) {
        if (exclude && exclude[i])
            continue;
        heap[*n] = i;
        sift_up(scores, heap, *n);
        (*n)++;
    }
    return i;
}

/* Items are visited in increasing id order, so a newcomer loses every tie against the
 * items already held: it enters only with a strictly greater score than the root's, or
 * with any number when the root is NaN. After the first few hundred items almost nothing
 * enters, so the scan is built around rejecting cheaply: the root score is cached, the
 * exclude mask is read only for candidates, and whole blocks are rejected at once. */
typedef struct heap_scan {
    const float *scores;
    const uint8_t *exclude;
    int32_t *heap;
    int n;
    float root;   /* scores[heap[0]] */
    int root_nan;
} heap_scan;

static void set_root(heap_scan *h)
{
    h->root = h->scores[h->heap[0]];
    h->root_nan = isnan(h->root);
}

static void offer(heap_scan *h, int32_t i)
{
    float s = h->scores[i];
    if (!(s > h->root) && !(h->root_nan && !isnan(s)))
        return;
    if (h->exclude && h->exclude[i])
        return;
    h->heap[0] = i;
    sift_down(h->scores, h->heap, h->n, 0);
    set_root(h);
}

/* True when any of the BLOCK scores exceeds root; no early exit, so the compiler can use
 * SIMD compares (about 2x faster than item-by-item on cache-resident scores). */
enum { BLOCK = 16 };
static inline int block_has_candidate(const float *s, float root)
{
    int any = 0;
    for (int j = 0; j < BLOCK; j++)
        any |= s[j] > root;
    return any;
}

static void scan_rest(heap_scan *h, int32_t n_items, int32_t from)
{
    set_root(h);
    int32_t i = from;
    while (i <= n_items) {
        int32_t end = i + BLOCK - 1 <= n_items ? i + BLOCK - 1 : n_items;
        /* A NaN root admits any number, so blocks can only be skipped against a real root. */
        if (end - i + 1 == BLOCK && !h->root_nan && !block_has_candidate(h->scores + i, h->root)) {
            i = end + 1;
            continue;
        }
        for (; i <= end; i++)
            offer(h, i);
    }
}

void ps_topk(const float *scores, int32_t n_items, int k, const uint8_t *exclude, int32_t *out)
{
    if (k <= 0)
        return;
    int n = 0; /* heap size, stored in out[0..n) */
    int32_t next = fill_heap(scores, n_items, k, exclude, out, &n);
    if (n == k) {
        heap_scan h = { scores, exclude, out, n, 0.0f, 0 };
        scan_rest(&h, n_items, next);
    }
    /* Heap sort: repeatedly move the worst to the back, leaving out[] best first. */
    for (int end = n - 1; end > 0; end--) {
        int32_t worst = out[0];
        out[0] = out[end];
        out[end] = worst;
        sift_down(scores, out, end, 0);
    }
    for (int j = n; j < k; j++)
        out[j] = 0;
}

/* Items before the target in id order win ties (>=); items after need a strictly greater
 * score. Comparisons with a NaN are false, which is exactly "NaN ranks last" when the
 * target is a number. Branch-free bodies so the compiler can vectorise them. */
static int32_t count_before_numeric(const float *scores, int32_t n_items, int32_t target,
                                    const uint8_t *exclude)
{
    float t = scores[target];
    int32_t c = 0;
    if (exclude) {
        for (int32_t i = 1; i < target; i++)
            c += (scores[i] >= t) & (exclude[i] == 0);
        for (int32_t i = target + 1; i <= n_items; i++)
            c += (scores[i] > t) & (exclude[i] == 0);
    } else {
        for (int32_t i = 1; i < target; i++)
            c += scores[i] >= t;
        for (int32_t i = target + 1; i <= n_items; i++)
            c += scores[i] > t;
    }
    return c;
}

/* A NaN target is beaten by every number and by NaNs with smaller ids. */
static int32_t count_before_nan(const float *scores, int32_t n_items, int32_t target,
                                const uint8_t *exclude)
{
    int32_t c = 0;
    for (int32_t i = 1; i <= n_items; i++) {
        if (i == target || (exclude && exclude[i]))
            continue;
        if (!isnan(scores[i]) || i < target)
            c++;
    }
    return c;
}

int32_t ps_target_rank(const float *scores, int32_t n_items, int32_t target, const uint8_t *exclude)
{
    if (target < 1 || target > n_items)
        return 0;
    if (isnan(scores[target]))
        return 1 + count_before_nan(scores, n_items, target, exclude);
    return 1 + count_before_numeric(scores, n_items, target, exclude);
}
