// SGEMM AVX-512 path (x86-64): MR x 32 register tile, 2 zmm per row of C.
//
// Every function carries the target attribute, so no -mavx512f build flag is needed; the
// dispatcher only calls them when the CPU reports avx512f.
#include "fcn_kernels.h"
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#ifndef FCN_AVX512_MR
#define FCN_AVX512_MR 14
#endif
enum { MR = FCN_AVX512_MR, NR = 32 };

#define TGT __attribute__((target("avx512f,fma"))) // only AVX-512F is required (what dispatch checks)

static inline TGT __mmask16 mask_n(ptrdiff_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n > 0 ? n : 0)) - 1u);
}

// In-register transpose of 16 vectors of 16 floats.
static inline TGT void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) {
        __m512d a0 = _mm512_castps_pd(t[4 * g]), a1 = _mm512_castps_pd(t[4 * g + 1]);
        __m512d a2 = _mm512_castps_pd(t[4 * g + 2]), a3 = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    // u[4g + c] holds, in 128-bit block b, column 4b + c of rows 4g..4g+3.
    for (int cc = 0; cc < 4; cc++) {
        __m512 xlo = _mm512_shuffle_f32x4(u[cc], u[4 + cc], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 xhi = _mm512_shuffle_f32x4(u[cc], u[4 + cc], _MM_SHUFFLE(3, 2, 3, 2));
        __m512 ylo = _mm512_shuffle_f32x4(u[8 + cc], u[12 + cc], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 yhi = _mm512_shuffle_f32x4(u[8 + cc], u[12 + cc], _MM_SHUFFLE(3, 2, 3, 2));
        r[cc] = _mm512_shuffle_f32x4(xlo, ylo, _MM_SHUFFLE(2, 0, 2, 0));
        r[4 + cc] = _mm512_shuffle_f32x4(xlo, ylo, _MM_SHUFFLE(3, 1, 3, 1));
        r[8 + cc] = _mm512_shuffle_f32x4(xhi, yhi, _MM_SHUFFLE(2, 0, 2, 0));
        r[12 + cc] = _mm512_shuffle_f32x4(xhi, yhi, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

// Packs a source whose packed "rows" (W of them per panel) are strided by rs and whose depth
// p is contiguous: loads 16 x 16 tiles, transposes them and stores W-wide groups.
// Rows past `rows` read as zero; `lanes` (<= 16) values are written per group at
// dst + p * W + off, so the padding of a panel is written too.
static inline TGT void pack_transposing(const float *src, ptrdiff_t rs, ptrdiff_t rows,
                                        ptrdiff_t kc, int W, int off, int lanes, float *dst) {
    __mmask16 rowStore = mask_n(lanes);
    for (ptrdiff_t p = 0; p < kc; p += 16) {
        ptrdiff_t kk = kc - p < 16 ? kc - p : 16;
        __mmask16 km = mask_n(kk);
        __m512 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < rows ? _mm512_maskz_loadu_ps(km, src + i * rs + p) : _mm512_setzero_ps();
        transpose16(r);
        for (int q = 0; q < kk; q++) _mm512_mask_storeu_ps(dst + (p + q) * W + off, rowStore, r[q]);
    }
}

static TGT void pack_a(int transA, const float *a, ptrdiff_t lda, ptrdiff_t i0, ptrdiff_t p0,
                       ptrdiff_t mc, ptrdiff_t kc, float *dst) {
    const float *src = FCN_A_AT(a, transA, lda, i0, p0);
    for (ptrdiff_t i = 0; i < mc; i += MR) {
        ptrdiff_t h = mc - i < MR ? mc - i : MR;
        if (transA) {
            // Rows of op(A) are contiguous per p: one masked copy of MR values per p.
            __mmask16 m = mask_n(h);
            const float *s = src + i;
            for (ptrdiff_t p = 0; p < kc; p++)
                _mm512_mask_storeu_ps(dst + p * MR, mask_n(MR), _mm512_maskz_loadu_ps(m, s + p * lda));
        } else {
            pack_transposing(src + i * lda, lda, h, kc, MR, 0, MR, dst);
        }
        dst += MR * kc;
    }
}

static TGT void pack_b(int transB, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,
                       ptrdiff_t kc, ptrdiff_t nc, float *dst) {
    const float *src = FCN_B_AT(b, transB, ldb, p0, j0);
    for (ptrdiff_t j = 0; j < nc; j += NR) {
        ptrdiff_t w = nc - j < NR ? nc - j : NR;
        if (!transB) {
            const float *s = src + j;
            if (w == NR) {
                for (ptrdiff_t p = 0; p < kc; p++) {
                    _mm512_storeu_ps(dst + p * NR, _mm512_loadu_ps(s + p * ldb));
                    _mm512_storeu_ps(dst + p * NR + 16, _mm512_loadu_ps(s + p * ldb + 16));
                }
            } else {
                __mmask16 m0 = mask_n(w), m1 = mask_n(w - 16);
                for (ptrdiff_t p = 0; p < kc; p++) {
                    _mm512_storeu_ps(dst + p * NR, _mm512_maskz_loadu_ps(m0, s + p * ldb));
                    _mm512_storeu_ps(dst + p * NR + 16, _mm512_maskz_loadu_ps(m1, s + p * ldb + 16));
                }
            }
        } else {
            const float *s = src + j * ldb;
            ptrdiff_t w0 = w < 16 ? w : 16, w1 = w - 16 > 0 ? w - 16 : 0;
            pack_transposing(s, ldb, w0, kc, NR, 0, 16, dst);
            if (w1 > 0) {
                pack_transposing(s + 16 * ldb, ldb, w1, kc, NR, 16, 16, dst);
            } else {
                for (ptrdiff_t p = 0; p < kc; p++) _mm512_storeu_ps(dst + p * NR + 16, _mm512_setzero_ps());
            }
        }
        dst += NR * kc;
    }
}

static inline TGT __m512 epi(__m512 acc, __m512 va, float beta, __m512 vb, const float *cp, __mmask16 m,
                             __m512 bias, int relu) {
    __m512 v = _mm512_mul_ps(acc, va);
    if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cp), v);
    v = _mm512_add_ps(v, bias);
    if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v); // NaN stays NaN
    return v;
}

// One k step of the MR x 32 tile: 2 loads of B, MR broadcasts of A, 2*MR FMAs.
#define FCN_K_STEP()                                                    \
    do {                                                                \
        __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16); \
        _Pragma("clang loop unroll(full)")                              \
        for (int i = 0; i < MR; i++) {                                  \
            __m512 av = _mm512_set1_ps(pa[i]);                          \
            acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);                 \
            acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);                 \
        }                                                               \
        pa += MR;                                                       \
        pb += NR;                                                       \
    } while (0)

// MR x 32 microkernel over packed panels. While it runs it prefetches `pfRows` rows of
// 128 bytes (pf, pf + pfStride, ...) into L2: the source of the next B panel when B is
// packed panel by panel (see macro_packing_b), so DRAM reads overlap the FMAs.
static TGT void kernel(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                       int mr, int nr, float alpha, float beta,
                       const float *rb, const float *cb, int relu,
                       const char *pf, ptrdiff_t pfStride, ptrdiff_t pfRows) {
    __m512 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); }
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
    ptrdiff_t p = 0;
    ptrdiff_t np = pfRows < kc ? pfRows : kc;
    for (; p < np; p++) {
        _mm_prefetch(pf, _MM_HINT_T1);
        _mm_prefetch(pf + 64, _MM_HINT_T1);
        _mm_prefetch(pf + 127, _MM_HINT_T1);
        pf += pfStride;
        FCN_K_STEP();
    }
#pragma clang loop unroll_count(4)
    for (; p < kc; p++) FCN_K_STEP();
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 m0 = mask_n(nr), m1 = mask_n(nr - 16);
    __m512 cb0 = cb ? _mm512_maskz_loadu_ps(m0, cb) : _mm512_setzero_ps();
    __m512 cb1 = cb ? _mm512_maskz_loadu_ps(m1, cb + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
            float *ci = c + i * ldc;
            __m512 r = rb ? _mm512_set1_ps(rb[i]) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(ci, m0, epi(acc0[i], va, beta, vb, ci, m0, _mm512_add_ps(cb0, r), relu));
            _mm512_mask_storeu_ps(ci + 16, m1, epi(acc1[i], va, beta, vb, ci + 16, m1, _mm512_add_ps(cb1, r), relu));
        }
    }
}

static TGT void macro(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *pa,
                      const float *pb, float beta, float *c, ptrdiff_t ldc,
                      const float *rb, const float *cb, int relu) {
    for (ptrdiff_t j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? (int)(nc - j) : NR;
        for (ptrdiff_t i = 0; i < mc; i += MR) {
            int mr = mc - i < MR ? (int)(mc - i) : MR;
            kernel(kc, pa + i * kc, pb + j * kc, c + i * ldc + j, ldc, mr, nr, alpha, beta,
                   rb ? rb + i : 0, cb ? cb + j : 0, relu, 0, 0, 0);
        }
    }
}

// Macro-kernel that packs B one NR-column panel at a time into `buf` (kc * NR floats) right
// before using it, prefetching the next panel's source during the FMAs of the current one.
// Used when the A block is the whole M range of a tile (B would not be reused anyway).
static TGT void macro_packing_b(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *pa,
                                int transB, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,
                                float *buf, float beta, float *c, ptrdiff_t ldc,
                                const float *rb, const float *cb, int relu) {
    ptrdiff_t panels = (mc + MR - 1) / MR;
    for (ptrdiff_t j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? (int)(nc - j) : NR;
        pack_b(transB, b, ldb, p0, j0 + j, kc, nr, buf);
        // Next panel's rows (non-transposed B: kc rows of 128 bytes), split over the kernels.
        int pfOn = !transB && j + 2 * NR <= nc;
        const char *next = pfOn ? (const char *)(b + p0 * ldb + j0 + j + NR) : (const char *)b;
        ptrdiff_t q = 0;
        for (ptrdiff_t i = 0; i < mc; i += MR, q++) {
            int mr = mc - i < MR ? (int)(mc - i) : MR;
            ptrdiff_t r0 = kc * q / panels, r1 = kc * (q + 1) / panels;
            kernel(kc, pa + i * kc, buf, c + i * ldc + j, ldc, mr, nr, alpha, beta,
                   rb ? rb + i : 0, cb ? cb + j : 0, relu,
                   pfOn ? next + r0 * ldb * 4 : next, ldb * 4, pfOn ? r1 - r0 : 0);
        }
    }
}

int fcn_gemm_kernel_avx512(fcn_gemm_kernel *k) {
    k->mr = MR;
    k->nr = NR;
    k->pack_a = pack_a;
    k->pack_b = pack_b;
    k->macro = macro;
    k->macro_packing_b = macro_packing_b;
    return 1;
}

#else
int fcn_gemm_kernel_avx512(fcn_gemm_kernel *k) { (void)k; return 0; }
#endif
