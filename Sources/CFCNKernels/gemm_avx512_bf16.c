// GEMM with bfloat16 operands and float32 accumulation (x86-64, AVX512_BF16): the
// FCN_ISA_AVX512_BF16 path, for inference at reduced precision (Compute.precision).
//
// Contract: C = alpha * bf16(A) * bf16(B) + beta * C, then row/column bias and ReLU, exactly as
// fcn_sgemm_macro, except that every element of A and B is first rounded to bfloat16 (round
// to nearest even; 8 significant bits) and products are summed in float32 by VDPBF16PS, two
// k steps per instruction (so the order of the sum differs from the float32 kernels).
// The relative error of a sum is about 2^-8 of the sum of |a b| terms; gemm tests hold it to
// a float64 sum of the rounded operands, and convolution tests to float32 within that bound.
//
// Layouts (what makes this a drop-in ISA of the engine):
//   packed A  same panels as the AVX-512 float32 path (MR = 14 rows, panel q at q * MR * kc
//             floats), but a panel holds ceil(kc / 2) k pairs of MR 32-bit words, word i of
//             pair t = (bf16 a[i][2t], bf16 a[i][2t+1]) (low half first; the second zero when
//             kc is odd): half of the panel's floats are used. Packed by packing float32 and
//             converting in place (fcn_sgemm_bf16_panels, also used for Winograd's U).
//   packed B  the float32 AVX-512 panels (NR = 32), so every B packer of that path (images,
//             Winograd V) serves unchanged; the macro-kernel converts each panel to k pairs
//             in chunks of KCH rows on the stack (amortised over the mc / MR row panels).
#include "fcn_kernels.h"
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

enum { MR = 14, NR = 32, KCH = 512 };

#define TGT __attribute__((target("avx512f,avx512bw,avx512bf16,fma")))

static inline TGT __mmask16 mask_n(ptrdiff_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n > 0 ? n : 0)) - 1u);
}

// Lane j of the result = (bf16 lo[j], bf16 hi[j]) for j < 16: two float32 rows interleaved
// as k pairs. cvtne2ps puts hi's 16 values above lo's; the permutation pairs them.
static inline TGT __m512i pair_rows(__m512 lo, __m512 hi) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    return _mm512_permutexvar_epi16(idx, both);
}

// Converts `panels` float32 A panels of MR rows and depth kc (p-major, panel q at q * MR * kc)
// to the k-pair layout in place. Each pair's MR words are written at or below the floats
// they are read from (word t * MR + i <= 2t * MR + i), and each pair is loaded before it is
// stored, so the pass may overwrite its input.
static TGT void to_pairs(float *panels, ptrdiff_t count, ptrdiff_t kc) {
    const __mmask16 m = mask_n(MR);
    for (ptrdiff_t q = 0; q < count; q++) {
        float *pan = panels + q * MR * kc;
        uint32_t *dst = (uint32_t *)pan;
        for (ptrdiff_t t = 0; 2 * t < kc; t++) {
            __m512 lo = _mm512_maskz_loadu_ps(m, pan + 2 * t * MR);
            __m512 hi = 2 * t + 1 < kc ? _mm512_maskz_loadu_ps(m, pan + (2 * t + 1) * MR) : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(dst + t * MR, m, pair_rows(lo, hi));
        }
    }
}

static fcn_gemm_kernel f32; // the AVX-512 float32 path: its packers are reused

static TGT void pack_a(int transA, const float *a, ptrdiff_t lda, ptrdiff_t i0, ptrdiff_t p0,
                       ptrdiff_t mc, ptrdiff_t kc, float *dst) {
    f32.pack_a(transA, a, lda, i0, p0, mc, kc, dst);
    to_pairs(dst, (mc + MR - 1) / MR, kc);
}

// One KCH-row chunk (kk rows, from `pb`) of a packed float32 B panel as k pairs in `dst`
// (ceil(kk / 2) x 32 words; an odd last row is paired with zero).
static inline TGT void panel_pairs(const float *pb, ptrdiff_t kk, uint32_t *dst) {
    ptrdiff_t t = 0;
    for (; 2 * t + 1 < kk; t++) {
        const float *r = pb + 2 * t * NR;
        _mm512_storeu_si512(dst + t * NR, pair_rows(_mm512_loadu_ps(r), _mm512_loadu_ps(r + NR)));
        _mm512_storeu_si512(dst + t * NR + 16, pair_rows(_mm512_loadu_ps(r + 16), _mm512_loadu_ps(r + NR + 16)));
    }
    if (2 * t < kk) {
        const float *r = pb + 2 * t * NR;
        _mm512_storeu_si512(dst + t * NR, pair_rows(_mm512_loadu_ps(r), _mm512_setzero_ps()));
        _mm512_storeu_si512(dst + t * NR + 16, pair_rows(_mm512_loadu_ps(r + 16), _mm512_setzero_ps()));
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

// ROWS x 32 tile over `pairs` k pairs: per pair 2 loads of B, ROWS broadcasts of A pairs and
// 2 * ROWS VDPBF16PS (each two multiply-adds per lane). `epilogue`: add the biases and apply
// ReLU (the last k chunk only).
#define FCN_DEFINE_BF16_KERNEL(NAME, ROWS)                                                      \
static TGT void NAME(ptrdiff_t pairs, const uint32_t *pa, const uint32_t *pb, float *c, ptrdiff_t ldc, \
                     int mr, int nr, float alpha, float beta, const float *rb, const float *cb,   \
                     int relu) {                                                                  \
    __m512 acc0[ROWS], acc1[ROWS];                                                                \
    _Pragma("clang loop unroll(full)")                                                            \
    for (int i = 0; i < ROWS; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); } \
    _Pragma("clang loop unroll_count(2)")                                                         \
    for (ptrdiff_t t = 0; t < pairs; t++) {                                                       \
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(pb), b1 = (__m512bh)_mm512_loadu_si512(pb + 16); \
        _Pragma("clang loop unroll(full)")                                                        \
        for (int i = 0; i < ROWS; i++) {                                                          \
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)pa[i]);                                \
            acc0[i] = _mm512_dpbf16_ps(acc0[i], av, b0);                                          \
            acc1[i] = _mm512_dpbf16_ps(acc1[i], av, b1);                                          \
        }                                                                                         \
        pa += MR;                                                                                 \
        pb += NR;                                                                                 \
    }                                                                                             \
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);                                 \
    __mmask16 m0 = mask_n(nr), m1 = mask_n(nr - 16);                                              \
    __m512 cb0 = cb ? _mm512_maskz_loadu_ps(m0, cb) : _mm512_setzero_ps();                        \
    __m512 cb1 = cb ? _mm512_maskz_loadu_ps(m1, cb + 16) : _mm512_setzero_ps();                   \
    _Pragma("clang loop unroll(full)")                                                            \
    for (int i = 0; i < ROWS; i++) {                                                              \
        if (i < mr) {                                                                             \
            float *ci = c + i * ldc;                                                              \
            __m512 r = rb ? _mm512_set1_ps(rb[i]) : _mm512_setzero_ps();                          \
            _mm512_mask_storeu_ps(ci, m0, epi(acc0[i], va, beta, vb, ci, m0, _mm512_add_ps(cb0, r), relu)); \
            _mm512_mask_storeu_ps(ci + 16, m1, epi(acc1[i], va, beta, vb, ci + 16, m1, _mm512_add_ps(cb1, r), relu)); \
        }                                                                                         \
    }                                                                                             \
}

FCN_DEFINE_BF16_KERNEL(kernel_full, MR)
FCN_DEFINE_BF16_KERNEL(kernel_8, 8)
FCN_DEFINE_BF16_KERNEL(kernel_4, 4)

// Every row panel of C[mc, nr] (c at column j) times one k chunk [k0, k0 + kk) of a B panel
// held as pairs in `buf`; `beta` for this chunk; biases and ReLU with the last chunk only.
static inline TGT void row_panels(ptrdiff_t mc, ptrdiff_t kc, ptrdiff_t k0, ptrdiff_t kk, float alpha, const float *pa,
                                  const uint32_t *buf, float beta, float *c, ptrdiff_t ldc, const float *rb,
                                  const float *cb, int nr, int relu) {
    ptrdiff_t pairs = (kk + 1) / 2;
    int last = k0 + kk == kc;
    for (ptrdiff_t i = 0; i < mc; i += MR) {
        int mr = mc - i < MR ? (int)(mc - i) : MR;
        const uint32_t *pai = (const uint32_t *)(pa + i * kc) + k0 / 2 * MR;
        const float *rbi = last && rb ? rb + i : 0, *cbl = last ? cb : 0;
        int r = last ? relu : 0;
        if (mr > 8)
            kernel_full(pairs, pai, buf, c + i * ldc, ldc, mr, nr, alpha, beta, rbi, cbl, r);
        else if (mr > 4)
            kernel_8(pairs, pai, buf, c + i * ldc, ldc, mr, nr, alpha, beta, rbi, cbl, r);
        else
            kernel_4(pairs, pai, buf, c + i * ldc, ldc, mr, nr, alpha, beta, rbi, cbl, r);
    }
}

// C[mc, nc] from packed A (k pairs) and packed float32 B: per B panel and KCH chunk of k,
// convert the chunk to pairs, then every row panel over it. Later chunks add to C (beta 1);
// biases and ReLU come with the last.
static TGT void macro(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *pa,
                      const float *pb, float beta, float *c, ptrdiff_t ldc,
                      const float *rb, const float *cb, int relu) {
    uint32_t buf[KCH / 2 * NR] __attribute__((aligned(64)));
    for (ptrdiff_t j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? (int)(nc - j) : NR;
        for (ptrdiff_t k0 = 0; k0 < kc; k0 += KCH) {
            ptrdiff_t kk = kc - k0 < KCH ? kc - k0 : KCH;
            panel_pairs(pb + j * kc + k0 * NR, kk, buf);
            row_panels(mc, kc, k0, kk, alpha, pa, buf, k0 == 0 ? beta : 1.0f, c + j, ldc, rb, cb ? cb + j : 0, nr, relu);
        }
    }
}

// Rows of C [mc, nc] times B read from a non-transposed matrix (b, ldb; rows p0.., columns
// j0..): each NR-column panel is packed straight to k pairs chunk by chunk (no float32 copy),
// prefetching the same rows of the next panel into L2 meanwhile (a pointwise layer's B
// panel is 32 floats from each of kc rows a plane apart: too many streams for the hardware
// prefetchers). Transposed B goes through the float32 packer and `macro`.
static TGT void macro_packing_b(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *pa,
                                int transB, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,
                                float *fbuf, float beta, float *c, ptrdiff_t ldc,
                                const float *rb, const float *cb, int relu) {
    if (transB) {
        for (ptrdiff_t j = 0; j < nc; j += NR) {
            ptrdiff_t w = nc - j < NR ? nc - j : NR;
            f32.pack_b(transB, b, ldb, p0, j0 + j, kc, w, fbuf);
            macro(mc, w, kc, alpha, pa, fbuf, beta, c + j, ldc, rb, cb ? cb + j : 0, relu);
        }
        return;
    }
    uint32_t buf[KCH / 2 * NR] __attribute__((aligned(64)));
    for (ptrdiff_t j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? (int)(nc - j) : NR;
        __mmask16 m0 = mask_n(nr), m1 = mask_n(nr - 16);
        int pf = j + 2 * NR <= nc;
        for (ptrdiff_t k0 = 0; k0 < kc; k0 += KCH) {
            ptrdiff_t kk = kc - k0 < KCH ? kc - k0 : KCH, pairs = (kk + 1) / 2;
            const float *src = b + (p0 + k0) * ldb + j0 + j;
            for (ptrdiff_t t = 0; t < pairs; t++) {
                const float *r0 = src + 2 * t * ldb, *r1 = r0 + ldb;
                int two = 2 * t + 1 < kk;
                if (pf) {
                    _mm_prefetch((const char *)(r0 + NR), _MM_HINT_T1);
                    _mm_prefetch((const char *)(r0 + NR + 16), _MM_HINT_T1);
                    if (two) {
                        _mm_prefetch((const char *)(r1 + NR), _MM_HINT_T1);
                        _mm_prefetch((const char *)(r1 + NR + 16), _MM_HINT_T1);
                    }
                }
                __m512 a0 = _mm512_maskz_loadu_ps(m0, r0), a1 = _mm512_maskz_loadu_ps(m1, r0 + 16);
                __m512 b0 = two ? _mm512_maskz_loadu_ps(m0, r1) : _mm512_setzero_ps();
                __m512 b1 = two ? _mm512_maskz_loadu_ps(m1, r1 + 16) : _mm512_setzero_ps();
                _mm512_store_si512(buf + t * NR, pair_rows(a0, b0));
                _mm512_store_si512(buf + t * NR + 16, pair_rows(a1, b1));
            }
            row_panels(mc, kc, k0, kk, alpha, pa, buf, k0 == 0 ? beta : 1.0f, c + j, ldc, rb, cb ? cb + j : 0, nr, relu);
        }
    }
}

int fcn_gemm_kernel_avx512_bf16(fcn_gemm_kernel *k) {
    if (!fcn_gemm_kernel_avx512(&f32)) return 0;
    *k = f32;
    k->pack_a = pack_a;
    k->macro = macro;
    k->macro_packing_b = macro_packing_b;
    k->macro_conv_direct = 0;  // B panels read in place are float32
    k->macro_unpacked_a = 0;   // A must be paired
    return 1;
}

void fcn_sgemm_bf16_panels(float *panels, ptrdiff_t count, ptrdiff_t kc) { to_pairs(panels, count, kc); }

#else
int fcn_gemm_kernel_avx512_bf16(fcn_gemm_kernel *k) { (void)k; return 0; }
void fcn_sgemm_bf16_panels(float *panels, ptrdiff_t count, ptrdiff_t kc) { (void)panels; (void)count; (void)kc; }
#endif
