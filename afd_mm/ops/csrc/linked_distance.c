/*
 * L_AFD's distances D[b, t, s] and their gradients wrt the student value
 * maps, for float32 maps whose sizes are integer ratios of each other
 * ('l2' or 'cosine'; the formulas of distance._LinkedDistance, spec
 * section 3). One call replaces the batched matrix products, block means
 * and block sums of the PyTorch path, and makes no temporary larger than a
 * few maps of one sample: nothing of the size of the teacher values, nor a
 * stacked copy of the student maps.
 *
 * For student s, teacher t, x = A v_s the student map resized to the
 * teacher's size (A: block means when the student map is larger,
 * replication when it is smaller), m = max(|x|, 1e-12), u the unit teacher
 * value with P positions:
 *   l2:     D = (|x|^2 / m^2 + |u|^2 - 2 <x, u> / m) / P, clamped at 0
 *   cosine: D = 1 - <x, u> / m
 * where <x, u> = <v_s, A^T u> (A^T u: u summed over each block) when A
 * replicates, and |x| = sqrt(r) |v_s| for r copies. With c = alpha / B,
 * dL/dx = a x + b u per (b, t, s), and dL/dv_s = sum_t A^T (a x + b u).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum { EQUAL = 0, DOWN = 1, UP = 2 };

static inline AFD_INLINE float dot(const float *a, const float *b, int64_t n)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i)
        sum += a[i] * b[i];
    return sum;
}

static inline AFD_INLINE void axpy(float *y, float a, const float *x,
                                   int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i)
        y[i] += a * x[i];
}

/* out (h, w) = sums of the (kh, kw) blocks of x (h kh, w kw) */
static inline AFD_INLINE void block_sums(const float *x, int64_t h,
                                         int64_t w, int64_t kh, int64_t kw,
                                         float *out)
{
    const int64_t xw = w * kw;
    for (int64_t i = 0; i < h; ++i) {
        float *row = out + i * w;
        const float *in = x + i * kh * xw;
        if (kw == 2) {
#pragma omp simd
            for (int64_t j = 0; j < w; ++j)
                row[j] = in[2 * j] + in[2 * j + 1];
        } else {
            for (int64_t j = 0; j < w; ++j) {
                float sum = 0.0f;
                for (int64_t c = 0; c < kw; ++c)
                    sum += in[j * kw + c];
                row[j] = sum;
            }
        }
        for (int64_t a = 1; a < kh; ++a) {
            const float *next = in + a * xw;
            if (kw == 2) {
#pragma omp simd
                for (int64_t j = 0; j < w; ++j)
                    row[j] += next[2 * j] + next[2 * j + 1];
            } else {
                for (int64_t j = 0; j < w; ++j) {
                    float sum = 0.0f;
                    for (int64_t c = 0; c < kw; ++c)
                        sum += next[j * kw + c];
                    row[j] += sum;
                }
            }
        }
    }
}

/* out (h / kh, w / kw) = means of the (kh, kw) blocks of x (h, w) */
static inline AFD_INLINE void block_means(const float *x, int64_t h,
                                          int64_t w, int64_t kh, int64_t kw,
                                          float *out)
{
    const int64_t p = (h / kh) * (w / kw);
    const float inv = 1.0f / (float)(kh * kw);
    block_sums(x, h / kh, w / kw, kh, kw, out);
#pragma omp simd
    for (int64_t q = 0; q < p; ++q)
        out[q] *= inv;
}

/* g (h, w) += y (h / kh, w / kw) spread evenly over each (kh, kw) block */
static inline AFD_INLINE void spread_add(float *g, int64_t h, int64_t w,
                                         int64_t kh, int64_t kw,
                                         const float *y)
{
    const int64_t ow = w / kw;
    const float inv = 1.0f / (float)(kh * kw);
    for (int64_t i = 0; i < h; ++i) {
        const float *in = y + (i / kh) * ow;
        float *out = g + i * w;
        if (kw == 2) {
#pragma omp simd
            for (int64_t j = 0; j < ow; ++j) {
                out[2 * j] += in[j] * inv;
                out[2 * j + 1] += in[j] * inv;
            }
        } else {
            for (int64_t j = 0; j < ow; ++j)
                for (int64_t c = 0; c < kw; ++c)
                    out[j * kw + c] += in[j] * inv;
        }
    }
}

/*
 * B samples, T teachers in nG distinct sizes, S students in nH distinct
 * sizes; every pair of sizes an integer ratio in both dims (checked by the
 * caller).
 *   g_hw (2 nG), h_hw (2 nH): the (H, W) of each teacher / student size;
 *   t_g (T), s_h (S): the size of each teacher / student;
 *   u[t] + b * u_stride[t]: teacher t's unit value at sample b (P floats);
 *   v[s] + b * P_s: student s's value map at sample b;
 *   grad[s] + b * grad_stride[s]: where dL/dv_s of sample b goes, or
 *   grad == NULL for no gradient;
 *   alpha (B, T, S), dist (B, T, S), contiguous.
 * Returns 0, or -1 when its scratch memory could not be allocated.
 */
AFD_CLONES int afd_linked_distance_f32(
    int64_t B, int64_t T, int64_t S, int64_t nG, const int64_t *g_hw,
    const int64_t *t_g, const float *const *u, const int64_t *u_stride,
    int64_t nH, const int64_t *h_hw, const int64_t *s_h,
    const float *const *v, float *const *grad, const int64_t *grad_stride,
    const float *alpha, int cosine, float *dist)
{
    /* per (student, teacher size): kind, blocks and offsets in scratch */
    (void)nH; /* h_hw holds nH sizes; s_h indexes them */
    const int64_t pairs = S * nG;
    int64_t *kind = malloc((size_t)pairs * 4 * sizeof(int64_t));
    float *stats = malloc((size_t)pairs * 5 * sizeof(float));
    if (!kind || !stats) {
        free(kind);
        free(stats);
        return -1;
    }
    int64_t *kh = kind + pairs, *kw = kind + 2 * pairs;
    int64_t *offset = kind + 3 * pairs;
    float *denom = stats, *unclamped = stats + pairs;
    float *w_sq = stats + 2 * pairs;
    float *coef_x = stats + 3 * pairs, *root = stats + 4 * pairs;
    int64_t scratch = 0, max_ps = 1;
    for (int64_t s = 0; s < S; ++s) {
        const int64_t h = h_hw[2 * s_h[s]], w = h_hw[2 * s_h[s] + 1];
        if (h * w > max_ps)
            max_ps = h * w;
        for (int64_t G = 0; G < nG; ++G) {
            const int64_t th = g_hw[2 * G], tw = g_hw[2 * G + 1];
            const int64_t k = s * nG + G;
            if (h == th && w == tw) {
                kind[k] = EQUAL;
                kh[k] = kw[k] = 1;
            } else if (h >= th && w >= tw) {
                kind[k] = DOWN;
                kh[k] = h / th;
                kw[k] = w / tw;
                offset[k] = scratch;
                scratch += 2 * th * tw; /* x and y = A^T (a x + b u) */
            } else {
                kind[k] = UP;
                kh[k] = th / h;
                kw[k] = tw / w;
            }
            root[k] = kind[k] == UP ? sqrtf((float)(kh[k] * kw[k])) : 1.0f;
        }
    }
    float *buf = malloc((size_t)(scratch + max_ps) * sizeof(float));
    if (!buf) {
        free(kind);
        free(stats);
        return -1;
    }
    float *sums = buf + scratch; /* A^T u for one teacher, one size */
    const float inv_b = 1.0f / (float)B;

    for (int64_t b = 0; b < B; ++b) {
        const float *ab = alpha + b * T * S;
        float *db = dist + b * T * S;
        for (int64_t s = 0; s < S; ++s) {
            const int64_t h = h_hw[2 * s_h[s]], w = h_hw[2 * s_h[s] + 1];
            const float *vs = v[s] + b * h * w;
            const float v_norm = sqrtf(dot(vs, vs, h * w));
            for (int64_t G = 0; G < nG; ++G) {
                const int64_t k = s * nG + G;
                float norm = v_norm * root[k];
                if (kind[k] == DOWN) {
                    float *x = buf + offset[k];
                    const int64_t p = (h / kh[k]) * (w / kw[k]);
                    block_means(vs, h, w, kh[k], kw[k], x);
                    norm = sqrtf(dot(x, x, p));
                    memset(x + p, 0, (size_t)p * sizeof(float));
                }
                denom[k] = norm >= 1e-12f ? norm : 1e-12f;
                unclamped[k] = norm >= 1e-12f ? 1.0f : 0.0f;
                w_sq[k] = (norm / denom[k]) * (norm / denom[k]);
                coef_x[k] = 0.0f;
            }
            if (grad)
                memset(grad[s] + b * grad_stride[s], 0,
                       (size_t)(h * w) * sizeof(float));
        }
        for (int64_t t = 0; t < T; ++t) {
            const int64_t G = t_g[t];
            const int64_t th = g_hw[2 * G], tw = g_hw[2 * G + 1];
            const int64_t positions = th * tw;
            const float *ut = u[t] + b * u_stride[t];
            const float u_sq = dot(ut, ut, positions);
            int64_t summed = -1; /* the student size `sums` holds */
            for (int64_t s = 0; s < S; ++s) {
                const int64_t k = s * nG + G;
                const int64_t h = h_hw[2 * s_h[s]], w = h_hw[2 * s_h[s] + 1];
                const float *vs = v[s] + b * h * w;
                float wu;
                if (kind[k] == UP) {
                    if (summed != s_h[s]) {
                        block_sums(ut, h, w, kh[k], kw[k], sums);
                        summed = s_h[s];
                    }
                    wu = dot(vs, sums, h * w);
                } else if (kind[k] == DOWN) {
                    wu = dot(buf + offset[k], ut, positions);
                } else {
                    wu = dot(vs, ut, positions);
                }
                wu /= denom[k];
                float d;
                if (cosine) {
                    d = 1.0f - wu;
                } else {
                    d = (w_sq[k] + u_sq - 2.0f * wu) / (float)positions;
                    d = d > 0.0f ? d : 0.0f;
                }
                db[t * S + s] = d;
                if (!grad)
                    continue;
                const float c = ab[t * S + s] * inv_b;
                float a, bu;
                if (cosine) {
                    a = c * unclamped[k] * wu / (denom[k] * denom[k]);
                    bu = -c / denom[k];
                } else {
                    const float q = c * (2.0f / (float)positions) / denom[k];
                    a = q * (1.0f - (w_sq[k] - wu) * unclamped[k]) / denom[k];
                    bu = -q;
                }
                coef_x[k] += a;
                if (kind[k] == UP)
                    axpy(grad[s] + b * grad_stride[s], bu, sums, h * w);
                else if (kind[k] == DOWN)
                    axpy(buf + offset[k] + positions, bu, ut, positions);
                else
                    axpy(grad[s] + b * grad_stride[s], bu, ut, positions);
            }
        }
        if (!grad)
            continue;
        for (int64_t s = 0; s < S; ++s) {
            const int64_t h = h_hw[2 * s_h[s]], w = h_hw[2 * s_h[s] + 1];
            const float *vs = v[s] + b * h * w;
            float *gs = grad[s] + b * grad_stride[s];
            for (int64_t G = 0; G < nG; ++G) {
                const int64_t k = s * nG + G;
                if (kind[k] == DOWN) { /* A^T (a x + y) */
                    const int64_t p = (h / kh[k]) * (w / kw[k]);
                    float *x = buf + offset[k];
                    axpy(x + p, coef_x[k], x, p);
                    spread_add(gs, h, w, kh[k], kw[k], x + p);
                } else { /* A^T A v = v, or r v for r copies */
                    axpy(gs, coef_x[k] * (float)(kh[k] * kw[k]), vs, h * w);
                }
            }
        }
    }
    free(buf);
    free(kind);
    free(stats);
    return 0;
}
