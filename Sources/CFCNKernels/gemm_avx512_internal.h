// Shared by the SGEMM AVX-512 files (gemm_avx512.c, gemm_avx512_conv.c): the register
// tile, the target attribute, lane masks and the 16 x 16 transposing packer. x86-64 only.
#ifndef FCN_GEMM_AVX512_INTERNAL_H
#define FCN_GEMM_AVX512_INTERNAL_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

enum { MR = 14, NR = 32 };

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
        for (int i = 0; i < 16; i++) {
            // Rows are far apart (a weight row is K floats): prefetch 256 bytes ahead in each.
            if (i < rows) _mm_prefetch((const char *)(src + i * rs + p) + 256, _MM_HINT_T0);
            r[i] = i < rows ? _mm512_maskz_loadu_ps(km, src + i * rs + p) : _mm512_setzero_ps();
        }
        transpose16(r);
        for (int q = 0; q < kk; q++) _mm512_mask_storeu_ps(dst + (p + q) * W + off, rowStore, r[q]);
    }
}

// One 32-wide panel of a convolution B source packed (gemm_avx512_conv.c); 0 when the
// generic packer must do it.
TGT int fcn_avx512_pack_b_conv(const void *srcv, ptrdiff_t p0, ptrdiff_t j0, ptrdiff_t kc, ptrdiff_t w, float *dst);

#endif
#endif
