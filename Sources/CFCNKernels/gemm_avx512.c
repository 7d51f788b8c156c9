// SGEMM AVX-512 path (x86-64): MR x 32 register tile, 2 zmm per row of C.
//
// Every function carries the target attribute, so no -mavx512f build flag is needed; the
// dispatcher only calls them when the CPU reports avx512f.
#include "fcn_kernels.h"
#include "gemm_internal.h"
#include "gemm_avx512_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

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

// One k step of a ROWS x 32 tile: 2 loads of B, ROWS broadcasts of A, 2*ROWS FMAs. The
// packed A panel is always MR wide (zero rows past the edge), so pa advances by MR.
#define FCN_K_STEP(ROWS)                                                \
    do {                                                                \
        __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16); \
        _Pragma("clang loop unroll(full)")                              \
        for (int i = 0; i < ROWS; i++) {                                \
            __m512 av = _mm512_set1_ps(pa[i]);                          \
            acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);                 \
            acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);                 \
        }                                                               \
        pa += MR;                                                       \
        pb += NR;                                                       \
    } while (0)

// ROWS x 32 microkernel over packed panels (ROWS = MR for full panels; 8 and 4 for the last
// panel of an M that is not a multiple of MR, so e.g. M = 64 = 4*14 + 8 wastes no FMAs).
// While it runs it prefetches `pfRows` rows of 128 bytes (pf, pf + pfStride, ...) into L2:
// the source of the next B panel when B is packed panel by panel (see macro_packing_b), so
// DRAM reads overlap the FMAs.
#define FCN_DEFINE_KERNEL(NAME, ROWS)                                                           \
static TGT void NAME(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,      \
                     int mr, int nr, float alpha, float beta,                                     \
                     const float *rb, const float *cb, int relu,                                  \
                     const char *pf, ptrdiff_t pfStride, ptrdiff_t pfRows) {                      \
    __m512 acc0[ROWS], acc1[ROWS];                                                                \
    _Pragma("clang loop unroll(full)")                                                            \
    for (int i = 0; i < ROWS; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); } \
    for (int i = 0; i < ROWS; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);        \
    for (int i = 0; i < ROWS; i++) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);   \
    ptrdiff_t p = 0;                                                                              \
    ptrdiff_t np = pfRows < kc ? pfRows : kc;                                                     \
    for (; p < np; p++) {                                                                         \
        _mm_prefetch(pf, _MM_HINT_T1);                                                            \
        _mm_prefetch(pf + 64, _MM_HINT_T1);                                                       \
        _mm_prefetch(pf + 127, _MM_HINT_T1);                                                      \
        pf += pfStride;                                                                           \
        FCN_K_STEP(ROWS);                                                                         \
    }                                                                                             \
    _Pragma("clang loop unroll_count(4)")                                                         \
    for (; p < kc; p++) FCN_K_STEP(ROWS);                                                         \
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                                 \
    __mmask16 m0 = mask_n(nr), m1 = mask_n(nr - 16);                                              \
    __m512 cb0 = cb ? _mm512_maskz_loadu_ps(m0, cb) : _mm512_setzero_ps();                        \
    __m512 cb1 = cb ? _mm512_maskz_loadu_ps(m1, cb + 16) : _mm512_setzero_ps();                   \
    _Pragma("clang loop unroll(full)")                                                            \
    for (int i = 0; i < ROWS; i++) {                                                              \
        if (i < mr) {                                                                             \
            float *ci = c + i * ldc;                                                              \
            __m512 r = rb ? _mm512_set1_ps(rb[i]) : _mm512_setzero_ps();                          \
            _mm512_mask_storeu_ps(ci, m0, epi(acc0[i], va, beta, vb, ci, m0, _mm512_add_ps(cb0, r), relu));      \
            _mm512_mask_storeu_ps(ci + 16, m1, epi(acc1[i], va, beta, vb, ci + 16, m1, _mm512_add_ps(cb1, r), relu)); \
        }                                                                                         \
    }                                                                                             \
}

FCN_DEFINE_KERNEL(kernel_full, MR)
FCN_DEFINE_KERNEL(kernel_8, 8)
FCN_DEFINE_KERNEL(kernel_4, 4)

// MR x COLS microkernel for a narrow last panel (nr <= COLS columns of an N that is not a
// multiple of NR: 289 Winograd tiles leave one, a 65 x 65 plane one pixel): the MR rows are
// the lanes of one vector and each column is one FMA per k step, where `kernel_full` spends
// 2 * MR whatever nr. Each element gets the same FMAs in the same order and the same
// write-back as in `kernel_full` (alpha, then beta * C by FMA, then + (cb[j] + rb[i]), ReLU
// as max(0, v) keeping NaN and -0), so the bits do not depend on the panel width.
#define FCN_DEFINE_NARROW(NAME, COLS)                                                           \
static TGT void NAME(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,      \
                     int mr, int nr, float alpha, float beta,                                     \
                     const float *rb, const float *cb, int relu) {                                \
    __m512 acc[COLS];                                                                             \
    _Pragma("clang loop unroll(full)")                                                            \
    for (int j = 0; j < COLS; j++) acc[j] = _mm512_setzero_ps();                                  \
    const __mmask16 rows = (__mmask16)((1u << MR) - 1u);                                          \
    _Pragma("clang loop unroll_count(2)")                                                         \
    for (ptrdiff_t p = 0; p < kc; p++) {                                                          \
        __m512 av = _mm512_maskz_loadu_ps(rows, pa + p * MR);                                     \
        _Pragma("clang loop unroll(full)")                                                        \
        for (int j = 0; j < COLS; j++)                                                            \
            acc[j] = _mm512_fmadd_ps(av, _mm512_set1_ps(pb[p * NR + j]), acc[j]);                  \
    }                                                                                             \
    float t[COLS][16] __attribute__((aligned(64)));                                               \
    _Pragma("clang loop unroll(full)")                                                            \
    for (int j = 0; j < COLS; j++) _mm512_store_ps(t[j], acc[j]);                                 \
    for (int i = 0; i < mr; i++) {                                                                \
        float *ci = c + i * ldc;                                                                  \
        float r = rb ? rb[i] : 0.0f;                                                              \
        for (int j = 0; j < nr; j++) {                                                            \
            float v = t[j][i] * alpha;                                                            \
            if (beta != 0.0f) v = __builtin_fmaf(beta, ci[j], v);                                 \
            float b = (cb ? cb[j] : 0.0f) + r;                                                    \
            v = v + b;                                                                            \
            if (relu) v = v < 0.0f ? 0.0f : v;                                                    \
            ci[j] = v;                                                                            \
        }                                                                                         \
    }                                                                                             \
}

FCN_DEFINE_NARROW(kernel_narrow_2, 2)
FCN_DEFINE_NARROW(kernel_narrow_4, 4)
FCN_DEFINE_NARROW(kernel_narrow_8, 8)

// The narrow kernel of the fewest columns that covers `nr` <= 8.
static TGT void kernel_narrow(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                              int mr, int nr, float alpha, float beta, const float *rb, const float *cb, int relu) {
    if (nr <= 2) kernel_narrow_2(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu);
    else if (nr <= 4) kernel_narrow_4(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu);
    else kernel_narrow_8(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu);
}

// MR x 16 microkernel for a last panel of 9 to 16 columns (a thread's share of 289 Winograd
// tiles ends on one): one load of B, MR broadcasts and MR FMAs per k step, half of
// `kernel_full`'s. Each element gets the FMAs and the write-back of `kernel_full`'s first
// vector, so the same bits.
static TGT void kernel_half(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                            int mr, int nr, float alpha, float beta,
                            const float *rb, const float *cb, int relu) {
    __m512 acc0[MR];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) acc0[i] = _mm512_setzero_ps();
#pragma clang loop unroll_count(4)
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(pb);
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) acc0[i] = _mm512_fmadd_ps(_mm512_set1_ps(pa[i]), b0, acc0[i]);
        pa += MR;
        pb += NR;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 m0 = mask_n(nr);
    __m512 cb0 = cb ? _mm512_maskz_loadu_ps(m0, cb) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
            float *ci = c + i * ldc;
            __m512 r = rb ? _mm512_set1_ps(rb[i]) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(ci, m0, epi(acc0[i], va, beta, vb, ci, m0, _mm512_add_ps(cb0, r), relu));
        }
    }
}

// The microkernel for an edge of `mr` rows: the smallest of 4, 8, MR rows that covers it;
// a panel of at most 8 columns runs the narrow kernels instead, one of 9 to 24 the half one
// (and a narrow one past column 16).
static TGT void kernel(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                       int mr, int nr, float alpha, float beta,
                       const float *rb, const float *cb, int relu,
                       const char *pf, ptrdiff_t pfStride, ptrdiff_t pfRows) {
    if (nr <= 8) {
        kernel_narrow(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu);
        return;
    }
    if (nr <= 16) {
        kernel_half(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu);
        return;
    }
    if (nr <= 24) {
        // 17 ... 24 columns: the half kernel, then the narrow one on the rest (at most 22
        // FMAs per k step instead of 28); same bits per element.
        kernel_half(kc, pa, pb, c, ldc, mr, 16, alpha, beta, rb, cb, relu);
        kernel_narrow(kc, pa, pb + 16, c + 16, ldc, mr, nr - 16, alpha, beta, rb, cb ? cb + 16 : 0, relu);
        return;
    }
    if (mr > 8 || MR <= 8)
        kernel_full(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu, pf, pfStride, pfRows);
    else if (mr > 4)
        kernel_8(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu, pf, pfStride, pfRows);
    else
        kernel_4(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu, pf, pfStride, pfRows);
}

static TGT void macro(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *pa,
                      const float *pb, float beta, float *c, ptrdiff_t ldc,
                      const float *rb, const float *cb, int relu);

// Variant reading A unpacked (row-major, leading dimension lda) for blocks with few columns:
// the weights of fc6/fc7 (100 M floats) are then streamed once from memory instead of being
// packed for a handful of B panels. Full MR-row panels only (no reads past row MR-1).
#define FCN_K_STEP_UA(ROWS)                                             \
    do {                                                                \
        __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16); \
        _Pragma("clang loop unroll(full)")                              \
        for (int i = 0; i < ROWS; i++) {                                \
            __m512 av = _mm512_set1_ps(pa[i * lda]);                    \
            acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);                 \
            acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);                 \
        }                                                               \
        pa += 1;                                                        \
        pb += NR;                                                       \
    } while (0)

static TGT void kernel_ua(ptrdiff_t kc, const float *pa, ptrdiff_t lda, const float *pb, float *c, ptrdiff_t ldc,
                          int nr, float alpha, float beta, const float *rb, const float *cb, int relu) {
    __m512 acc0[MR], acc1[MR];
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); }
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
#pragma clang loop unroll_count(4)
    for (ptrdiff_t p = 0; p < kc; p++) {
        if ((p & 15) == 0)
            for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(pa + i * lda) + 1024, _MM_HINT_T0);
        FCN_K_STEP_UA(MR);
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 m0 = mask_n(nr), m1 = mask_n(nr - 16);
    __m512 cb0 = cb ? _mm512_maskz_loadu_ps(m0, cb) : _mm512_setzero_ps();
    __m512 cb1 = cb ? _mm512_maskz_loadu_ps(m1, cb + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
        __m512 r = rb ? _mm512_set1_ps(rb[i]) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(ci, m0, epi(acc0[i], va, beta, vb, ci, m0, _mm512_add_ps(cb0, r), relu));
        _mm512_mask_storeu_ps(ci + 16, m1, epi(acc1[i], va, beta, vb, ci + 16, m1, _mm512_add_ps(cb1, r), relu));
    }
}

// C[mc, nc] (+)= A[mc, kc] (unpacked, lda) * packed B block (nc columns in NR panels).
// Row panels outer, column panels inner, so each A panel is read from memory once and then
// from L1; the B block (kc x nc, small) stays in L2. The last mc % MR rows are packed into
// `edge` (MR * kc floats) and run through the ordinary kernels.
static TGT void macro_ua(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *a, ptrdiff_t lda,
                         const float *pb, float *edge, float beta, float *c, ptrdiff_t ldc,
                         const float *rb, const float *cb, int relu) {
    ptrdiff_t full = mc / MR * MR;
    for (ptrdiff_t i = 0; i < full; i += MR) {
        // The kernels prefetch A rows 1 KiB ahead of use, so the first 1 KiB of
        // each row of the next row panel would be DRAM misses: fetch them into L2 now,
        // while this panel computes.
        if (i + MR < mc) {
            ptrdiff_t rows = mc - (i + MR) < MR ? mc - (i + MR) : MR;
            ptrdiff_t bytes = kc * 4 < 1024 ? kc * 4 : 1024;
            for (ptrdiff_t r = 0; r < rows; r++) {
                const char *row = (const char *)(a + (i + MR + r) * lda);
                for (ptrdiff_t o = 0; o < bytes; o += 64) _mm_prefetch(row + o, _MM_HINT_T1);
            }
        }
        for (ptrdiff_t j = 0; j < nc; j += NR) {
            int nr = nc - j < NR ? (int)(nc - j) : NR;
            kernel_ua(kc, a + i * lda, lda, pb + j * kc, c + i * ldc + j, ldc, nr, alpha, beta,
                      rb ? rb + i : 0, cb ? cb + j : 0, relu);
        }
    }
    if (full < mc) {
        pack_a(0, a, lda, full, 0, mc - full, kc, edge);
        macro(mc - full, nc, kc, alpha, edge, pb, beta, c + full * ldc, ldc, rb ? rb + full : 0, cb, relu);
    }
}

// Indirect variant for convolution panels read straight from the image: B row p (32 floats)
// starts at brow[p] (unaligned, anywhere in the input) instead of the packed panel.
#define FCN_K_STEP_IND(ROWS)                                            \
    do {                                                                \
        const float *bp = brow[p];                                      \
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16); \
        _Pragma("clang loop unroll(full)")                              \
        for (int i = 0; i < ROWS; i++) {                                \
            __m512 av = _mm512_set1_ps(pa[i]);                          \
            acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);                 \
            acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);                 \
        }                                                               \
        pa += MR;                                                       \
    } while (0)

#define FCN_DEFINE_KERNEL_IND(NAME, ROWS)                                                       \
static TGT void NAME(ptrdiff_t kc, const float *pa, const float *const *brow, float *c, ptrdiff_t ldc, \
                     int mr, float alpha, float beta, const float *rb, int relu) {                 \
    __m512 acc0[ROWS], acc1[ROWS];                                                                \
    _Pragma("clang loop unroll(full)")                                                            \
    for (int i = 0; i < ROWS; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); } \
    for (int i = 0; i < ROWS; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);        \
    for (int i = 0; i < ROWS; i++) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);   \
    _Pragma("clang loop unroll_count(4)")                                                         \
    for (ptrdiff_t p = 0; p < kc; p++) FCN_K_STEP_IND(ROWS);                                      \
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                                 \
    const __mmask16 m0 = 0xFFFF;                                                                  \
    _Pragma("clang loop unroll(full)")                                                            \
    for (int i = 0; i < ROWS; i++) {                                                              \
        if (i < mr) {                                                                             \
            float *ci = c + i * ldc;                                                              \
            __m512 r = rb ? _mm512_set1_ps(rb[i]) : _mm512_setzero_ps();                          \
            _mm512_storeu_ps(ci, epi(acc0[i], va, beta, vb, ci, m0, r, relu));                    \
            _mm512_storeu_ps(ci + 16, epi(acc1[i], va, beta, vb, ci + 16, m0, r, relu));          \
        }                                                                                         \
    }                                                                                             \
}

FCN_DEFINE_KERNEL_IND(kernel_ind_full, MR)
FCN_DEFINE_KERNEL_IND(kernel_ind_8, 8)
FCN_DEFINE_KERNEL_IND(kernel_ind_4, 4)

// `kernel` with no prefetch (the tile kernel of the plain macro-kernel).
static inline TGT void kernel_no_prefetch(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                                          int mr, int nr, float alpha, float beta,
                                          const float *rb, const float *cb, int relu) {
    kernel(kc, pa, pb, c, ldc, mr, nr, alpha, beta, rb, cb, relu, 0, 0, 0);
}

FCN_DEFINE_MACRO(TGT, macro, kernel_no_prefetch, MR, NR)

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

// One 32-pixel panel of an FCN_B_IM2COL source times all mc rows of packed A, without
// packing B: when the panel lies in one output row and every tap of it inside the input
// (stride 1), B row p of the panel is 32 contiguous input values, so the kernels read them
// in place through a table of row pointers (kept in `table`, kc pointers). Returns 0 (and
// does nothing) for any other panel; the caller then packs it.
static TGT int macro_conv_direct(const void *srcv, ptrdiff_t mc, ptrdiff_t kc, float alpha, const float *pa,
                                 ptrdiff_t p0, ptrdiff_t j0, ptrdiff_t w, void *table, float beta,
                                 float *c, ptrdiff_t ldc, const float *rb, const float *cb, int relu) {
    const fcn_b_source *src = (const fcn_b_source *)srcv;
    const fcn_conv_geometry *g = &src->g;
    if (src->kind != FCN_B_IM2COL || g->sw != 1 || w != NR || cb) return 0;
    const int64_t H = g->height, W = g->width, plane = H * W, kw = g->kw, kh = g->kh, taps = kh * kw;
    int64_t oh = j0 / g->out_w, ow = j0 % g->out_w;
    if (ow + NR > g->out_w) return 0; // crosses an output row
    int64_t ih0 = oh * g->sh - g->pad_top, iw0 = ow - g->pad_left;
    if (ih0 < 0 || ih0 + (kh - 1) * g->dh >= H || iw0 < 0 || iw0 + (kw - 1) * g->dw + NR > W) return 0;
    const float **brow = (const float **)table;
    int64_t ci = p0 / taps, i = p0 % taps / kw, j = p0 % kw;
    const float *xp = src->x + ci * plane + (ih0 + i * g->dh) * W + iw0;
    for (ptrdiff_t p = 0; p < kc;) {
        for (; j < kw && p < kc; j++, p++) brow[p] = xp + j * g->dw;
        j = 0;
        if (++i == kh) { i = 0; ci++; xp = src->x + ci * plane + ih0 * W + iw0; } else { xp += g->dh * W; }
        // The next panel continues this row: fetch its part ahead of use.
        _mm_prefetch((const char *)(xp + NR), _MM_HINT_T1);
        _mm_prefetch((const char *)(xp + NR) + 64, _MM_HINT_T1);
        _mm_prefetch((const char *)(xp + NR) + 128, _MM_HINT_T1);
    }
    for (ptrdiff_t r = 0; r < mc; r += MR) {
        int mr = mc - r < MR ? (int)(mc - r) : MR;
        const float *par = pa + r * kc;
        float *cr = c + r * ldc;
        const float *rbr = rb ? rb + r : 0;
        if (mr > 8)
            kernel_ind_full(kc, par, brow, cr, ldc, mr, alpha, beta, rbr, relu);
        else if (mr > 4)
            kernel_ind_8(kc, par, brow, cr, ldc, mr, alpha, beta, rbr, relu);
        else
            kernel_ind_4(kc, par, brow, cr, ldc, mr, alpha, beta, rbr, relu);
    }
    return 1;
}

int fcn_gemm_kernel_avx512(fcn_gemm_kernel *k) {
    k->pack_b_conv = fcn_avx512_pack_b_conv;
    k->macro_conv_direct = macro_conv_direct;
    k->macro_unpacked_a = macro_ua;
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
