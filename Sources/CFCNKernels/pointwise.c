// Pooling and reductions: portable C, plus AVX-512 paths chosen at run time.
// See include/fcn_pointwise.h for the contract.
#include "fcn_pointwise.h"
#include "fcn_kernels.h"

static int have_avx512(void) {
    static int v = -1;
    int r = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (r < 0) {
        r = (fcn_cpu_isa_flags() & FCN_ISA_AVX512) ? 1 : 0;
        __atomic_store_n(&v, r, __ATOMIC_RELAXED);
    }
    return r;
}

// MARK: Max pool 2x2 stride 2

// Windows [j0, j1) of output row `oh` (all with two input columns), scalar.
static inline void pool_row_scalar(const float *r0, const float *r1, int two_rows, int64_t base, int64_t W,
                                   float *o, int32_t *io, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; j++) {
        int64_t c = 2 * j;
        float m = r0[c];
        int64_t k = c;
        float b = r0[c + 1];
        if (b > m || b != b) { m = b; k = c + 1; }
        if (two_rows) {
            float d = r1[c];
            if (d > m || d != d) { m = d; k = c + W; }
            float e = r1[c + 1];
            if (e > m || e != e) { m = e; k = c + 1 + W; }
        }
        o[j] = m;
        if (io) io[j] = (int32_t)(base + k);
    }
}

// Right-edge window with one input column (ceil mode, odd W).
static inline void pool_edge(const float *r0, const float *r1, int two_rows, int64_t base, int64_t W,
                             float *o, int32_t *io, int64_t j) {
    int64_t c = 2 * j;
    float m = r0[c];
    int64_t k = c;
    if (two_rows) {
        float d = r1[c];
        if (d > m || d != d) { m = d; k = c + W; }
    }
    o[j] = m;
    if (io) io[j] = (int32_t)(base + k);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define TGT512 __attribute__((target("avx512f")))

// 16 windows at once: even/odd columns of two rows, the scalar comparisons as masks.
static TGT512 int64_t pool_row_avx512(const float *r0, const float *r1, int two_rows, int64_t base, int64_t W,
                                      float *o, int32_t *io, int64_t full) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int64_t j = 0;
    // The two input rows of the next output row, one row ahead (prefetches never fault, so
    // the last row may point past the plane): pooling is bound by memory latency otherwise.
    const int64_t pfd = 2 * W * (int64_t)sizeof(float); // bytes
    for (; j + 16 <= full; j += 16) {
        int64_t c = 2 * j;
        uintptr_t a0 = (uintptr_t)(r0 + c) + (uintptr_t)pfd, a1 = (uintptr_t)(r1 + c) + (uintptr_t)pfd;
        _mm_prefetch((const char *)a0, _MM_HINT_T0);
        _mm_prefetch((const char *)(a0 + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)a1, _MM_HINT_T0);
        _mm_prefetch((const char *)(a1 + 64), _MM_HINT_T0);
        __m512 x0 = _mm512_loadu_ps(r0 + c), x1 = _mm512_loadu_ps(r0 + c + 16);
        __m512 m = _mm512_permutex2var_ps(x0, even, x1);
        __m512 b = _mm512_permutex2var_ps(x0, odd, x1);
        __m512i k = _mm512_setzero_si512();
        __mmask16 t = _mm512_cmp_ps_mask(b, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
        m = _mm512_mask_mov_ps(m, t, b);
        k = _mm512_mask_mov_epi32(k, t, _mm512_set1_epi32(1));
        if (two_rows) {
            __m512 y0 = _mm512_loadu_ps(r1 + c), y1 = _mm512_loadu_ps(r1 + c + 16);
            __m512 d = _mm512_permutex2var_ps(y0, even, y1);
            __m512 e = _mm512_permutex2var_ps(y0, odd, y1);
            t = _mm512_cmp_ps_mask(d, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
            m = _mm512_mask_mov_ps(m, t, d);
            k = _mm512_mask_mov_epi32(k, t, _mm512_set1_epi32((int)W));
            t = _mm512_cmp_ps_mask(e, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(e, e, _CMP_UNORD_Q);
            m = _mm512_mask_mov_ps(m, t, e);
            k = _mm512_mask_mov_epi32(k, t, _mm512_set1_epi32((int)W + 1));
        }
        _mm512_storeu_ps(o + j, m);
        if (io) {
            __m512i at = _mm512_add_epi32(_mm512_set1_epi32((int)(base + c)), lane2);
            _mm512_storeu_si512(io + j, _mm512_add_epi32(at, k));
        }
    }
    return j;
}
#endif

void fcn_maxpool2x2_plane(const float *x, int64_t H, int64_t W, float *y, int64_t outH, int64_t outW,
                          int32_t *idx) {
    int64_t full = W / 2 < outW ? W / 2 : outW; // windows with two columns
    int vec = have_avx512();
    for (int64_t oh = 0; oh < outH; oh++) {
        int64_t r = 2 * oh;
        const float *r0 = x + r * W;
        int two_rows = r + 1 < H;
        const float *r1 = two_rows ? r0 + W : r0;
        float *o = y + oh * outW;
        int32_t *io = idx ? idx + oh * outW : 0;
        int64_t base = r * W, j = 0;
#if defined(__x86_64__)
        if (vec) j = pool_row_avx512(r0, r1, two_rows, base, W, o, io, full);
#else
        (void)vec;
#endif
        pool_row_scalar(r0, r1, two_rows, base, W, o, io, j, full);
        if (full < outW) pool_edge(r0, r1, two_rows, base, W, o, io, full);
    }
}

// MARK: Sum

#if defined(__x86_64__)
static TGT512 float sum_avx512(const float *x, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + i + 48));
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
    if (i < n) a1 = _mm512_add_ps(a1, _mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1u), x + i));
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
#endif

float fcn_sum(const float *x, int64_t n) {
#if defined(__x86_64__)
    if (have_avx512()) return sum_avx512(x, n);
#endif
    float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) a[l] += x[i + l];
    for (; i < n; i++) a[i & 7] += x[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}
