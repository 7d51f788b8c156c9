// SGEMM AVX2+FMA path (x86-64): 6 x 16 register tile, 2 ymm per row of C.
// Functions carry the target attribute; the dispatcher calls them only on avx2+fma CPUs.
#include "fcn_kernels.h"
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

enum { MR = 6, NR = 16 };

#define TGT __attribute__((target("avx2,fma")))

FCN_DEFINE_PACK_A(TGT, pack_a, MR)

static TGT void pack_b(int transB, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,
                       ptrdiff_t kc, ptrdiff_t nc, float *dst) {
    const float *src = FCN_B_AT(b, transB, ldb, p0, j0);
    if (transB) {
        fcn_pack_generic(src, ldb, 1, nc, kc, NR, dst);
        return;
    }
    ptrdiff_t full = nc / NR * NR;
    for (ptrdiff_t j = 0; j < full; j += NR) {
        const float *s = src + j;
        for (ptrdiff_t p = 0; p < kc; p++) {
            _mm256_storeu_ps(dst + p * NR, _mm256_loadu_ps(s + p * ldb));
            _mm256_storeu_ps(dst + p * NR + 8, _mm256_loadu_ps(s + p * ldb + 8));
        }
        dst += NR * kc;
    }
    if (full < nc) fcn_pack_generic(src + full, 1, ldb, nc - full, kc, NR, dst);
}

static inline TGT __m256i mask8(int n) {
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

static inline TGT __m256 epi(__m256 acc, __m256 va, float beta, __m256 vb, const float *cp, __m256i m,
                             __m256 bias, int relu) {
    __m256 v = _mm256_mul_ps(acc, va);
    if (beta != 0.0f) v = _mm256_fmadd_ps(vb, _mm256_maskload_ps(cp, m), v);
    v = _mm256_add_ps(v, bias);
    if (relu) v = _mm256_max_ps(_mm256_setzero_ps(), v); // NaN stays NaN
    return v;
}

static TGT void kernel(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                       int mr, int nr, float alpha, float beta,
                       const float *rb, const float *cb, int relu) {
    __m256 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) { acc0[i] = _mm256_setzero_ps(); acc1[i] = _mm256_setzero_ps(); }
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
#pragma clang loop unroll_count(4)
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(pb), b1 = _mm256_loadu_ps(pb + 8);
    #pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(pa + i);
            acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
        }
        pa += MR;
        pb += NR;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    __m256i m0 = mask8(nr), m1 = mask8(nr - 8);
    __m256 cb0 = cb ? _mm256_maskload_ps(cb, m0) : _mm256_setzero_ps();
    __m256 cb1 = cb ? _mm256_maskload_ps(cb + 8, m1) : _mm256_setzero_ps();
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
            float *ci = c + i * ldc;
            __m256 r = rb ? _mm256_set1_ps(rb[i]) : _mm256_setzero_ps();
            _mm256_maskstore_ps(ci, m0, epi(acc0[i], va, beta, vb, ci, m0, _mm256_add_ps(cb0, r), relu));
            _mm256_maskstore_ps(ci + 8, m1, epi(acc1[i], va, beta, vb, ci + 8, m1, _mm256_add_ps(cb1, r), relu));
        }
    }
}

FCN_DEFINE_MACRO(TGT, macro, kernel, MR, NR)

int fcn_gemm_kernel_avx2(fcn_gemm_kernel *k) {
    k->mr = MR;
    k->nr = NR;
    k->pack_a = pack_a;
    k->pack_b = pack_b;
    k->macro = macro;
    return 1;
}

#else
int fcn_gemm_kernel_avx2(fcn_gemm_kernel *k) { (void)k; return 0; }
#endif
