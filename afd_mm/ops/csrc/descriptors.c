/*
 * g(h) and v(h) of a float32 NCHW feature map in one pass (AFD, spec
 * section 2): for every sample b and channel c, the row h[b, c, :] of the
 * P = H * W positions is read once, its mean goes to g[b, c] and its
 * squares (or absolute values) are added to v[b, :], which stays in the
 * core's L1 cache. PyTorch needs two passes over the map for the two
 * reductions, and a temporary for the squares.
 *
 * Called through ctypes by afd_mm/ops/descriptors.py (module.c makes the
 * library an extension module that setuptools builds and Python finds).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* one code path per vector width, chosen at load time (x86-64, GCC/clang) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define AFD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AFD_CLONES
#endif

/*
 * x (B, C, P), contiguous:
 *   g[b, c] = mean_p x[b, c, p]                                (B, C)
 *   v[b, p] = mean_c x[b, c, p]^2  (|x[b, c, p]| if absolute)   (B, P)
 */
AFD_CLONES void afd_map_descriptors_f32(const float *x, int64_t batch,
                                        int64_t channels, int64_t positions,
                                        int absolute, float *g, float *v)
{
    const float inv_p = 1.0f / (float)positions;
    const float inv_c = 1.0f / (float)channels;
    for (int64_t b = 0; b < batch; ++b) {
        float *vb = v + b * positions;
        memset(vb, 0, (size_t)positions * sizeof(float));
        for (int64_t c = 0; c < channels; ++c) {
            const float *row = x + (b * channels + c) * positions;
            float sum = 0.0f;
            if (absolute) {
#pragma omp simd reduction(+ : sum)
                for (int64_t p = 0; p < positions; ++p) {
                    sum += row[p];
                    vb[p] += fabsf(row[p]);
                }
            } else {
#pragma omp simd reduction(+ : sum)
                for (int64_t p = 0; p < positions; ++p) {
                    sum += row[p];
                    vb[p] += row[p] * row[p];
                }
            }
            g[b * channels + c] = sum * inv_p;
        }
        for (int64_t p = 0; p < positions; ++p)
            vb[p] *= inv_c;
    }
}
