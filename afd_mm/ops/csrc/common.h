/* What afd_mm's C kernels share. */
#ifndef AFD_MM_COMMON_H
#define AFD_MM_COMMON_H

/* one code path per vector width, chosen at load time (x86-64, GCC/clang) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define AFD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AFD_CLONES
#endif
/* helpers are inlined into each clone, and so built for its vector width */
#if defined(__GNUC__) || defined(__clang__)
#define AFD_INLINE __attribute__((always_inline))
#else
#define AFD_INLINE
#endif

#endif /* AFD_MM_COMMON_H */
