/* Token + position embedding: gather forward, scatter-add backward. */
#include "nn/nn.h"

#include <omp.h>

void ps_nn_embedding_forward(float *out, const int32_t *ids, const float *table, const float *pos,
                             int B, int L, int C)
{
#pragma omp parallel for schedule(static) collapse(2) if ((size_t)B * L * C > 32768)
    for (int b = 0; b < B; b++) {
        for (int l = 0; l < L; l++) {
            float *o = out + ((size_t)b * L + l) * C;
            const float *e = table + (size_t)ids[(size_t)b * L + l] * C;
            const float *p = pos + (size_t)l * C;
            for (int c = 0; c < C; c++)
                o[c] = e[c] + p[c];
        }
    }
}

/* Scatter-add with a deterministic order: the C columns are split among the threads and each
 * thread walks all rows in order, so every output element is summed by one thread in row order
 * (no atomics, same bits for any thread count). */
void ps_nn_embedding_backward(float *dtable, float *dpos, const float *dout, const int32_t *ids,
                              int B, int L, int C, int padding_idx)
{
#pragma omp parallel if ((size_t)B * L * C > 32768)
    {
        int c0, c1;
        ps_nn_split(C, omp_get_num_threads(), omp_get_thread_num(), &c0, &c1);
        for (int b = 0; b < B; b++) {
            for (int l = 0; l < L; l++) {
                int32_t id = ids[(size_t)b * L + l];
                const float *g = dout + ((size_t)b * L + l) * C;
                if (id != padding_idx) {
                    float *t = dtable + (size_t)id * C;
                    for (int c = c0; c < c1; c++)
                        t[c] += g[c];
                }
                if (dpos) {
                    float *p = dpos + (size_t)l * C;
                    for (int c = c0; c < c1; c++)
                        p[c] += g[c];
                }
            }
        }
    }
}
