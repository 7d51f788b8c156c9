// Internal to CFCNKernels: what the SGEMM files share, below all of them.
//
// Layers (each includes only what is below it):
//   gemm.c                      the dispatcher: the public fcn_sgemm_* entry points (fcn_kernels.h),
//                               the kernel table per ISA, implicit-GEMM B sources (convolutions)
//   gemm_portable.c gemm_avx2.c gemm_avx512.c gemm_neon.c gemm_avx512_bf16.c
//                               one register-tile kernel each, registered in a fcn_gemm_kernel
//   gemm_internal.h im2col.c    the table type, generic packing, the macro-kernel loop, the
//                               scalar tile write-back; the im2col rows
#ifndef FCN_GEMM_INTERNAL_H
#define FCN_GEMM_INTERNAL_H

#include <stddef.h>

typedef void (*fcn_pack_a_fn)(int transA, const float *a, ptrdiff_t lda, ptrdiff_t i0, ptrdiff_t p0,
                              ptrdiff_t mc, ptrdiff_t kc, float *dst);
typedef void (*fcn_pack_b_fn)(int transB, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,
                              ptrdiff_t kc, ptrdiff_t nc, float *dst);
typedef void (*fcn_macro_fn)(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha,
                             const float *pa, const float *pb, float beta, float *c, ptrdiff_t ldc,
                             const float *rowBias, const float *colBias, int relu);

typedef void (*fcn_macro_packing_b_fn)(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *pa,
                                       int transB, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,
                                       float *buf, float beta, float *c, ptrdiff_t ldc,
                                       const float *rowBias, const float *colBias, int relu);

// Packs one NR-wide panel (w <= NR valid columns, the rest zero) of a convolution B source
// (FCN_B_IM2COL or FCN_B_IM2COL_T); returns 0 when this ISA has no fast path for the source
// (the caller then uses the generic packer).
typedef int (*fcn_pack_b_conv_fn)(const void *src, ptrdiff_t p0, ptrdiff_t j0, ptrdiff_t kc, ptrdiff_t w,
                                  float *dst);

// Multiplies packed A (mc rows) by one NR-wide convolution panel read in place from the image,
// when the panel allows it (see gemm_avx512.c); returns 0 otherwise. `table`: kc pointers.
typedef int (*fcn_macro_conv_direct_fn)(const void *src, ptrdiff_t mc, ptrdiff_t kc, float alpha, const float *pa,
                                        ptrdiff_t p0, ptrdiff_t j0, ptrdiff_t w, void *table, float beta,
                                        float *c, ptrdiff_t ldc, const float *rowBias, const float *colBias,
                                        int relu);

// fcn_sgemm_macro with A read unpacked (row-major, lda, not transposed); `edge` holds
// MR * kc floats for the last partial row panel.
typedef void (*fcn_macro_unpacked_a_fn)(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *a,
                                        ptrdiff_t lda, const float *pb, float *edge, float beta, float *c,
                                        ptrdiff_t ldc, const float *rowBias, const float *colBias, int relu);

typedef struct {
    int mr, nr;
    fcn_pack_a_fn pack_a;
    fcn_pack_b_fn pack_b;
    fcn_macro_fn macro;
    fcn_macro_packing_b_fn macro_packing_b; // optional (NULL: generic panel loop)
    fcn_pack_b_conv_fn pack_b_conv;         // optional (NULL: generic im2col packer)
    fcn_macro_conv_direct_fn macro_conv_direct; // optional (NULL: always pack)
    fcn_macro_unpacked_a_fn macro_unpacked_a;   // optional (NULL: the caller packs A)
} fcn_gemm_kernel;

// Each returns 1 and fills *k when the ISA is compiled in (the caller checks the CPU and
// zeroes *k first, so optional entries left unset are NULL).
int fcn_gemm_kernel_portable(fcn_gemm_kernel *k);
int fcn_gemm_kernel_avx2(fcn_gemm_kernel *k);
int fcn_gemm_kernel_avx512(fcn_gemm_kernel *k);
int fcn_gemm_kernel_neon(fcn_gemm_kernel *k);
int fcn_gemm_kernel_avx512_bf16(fcn_gemm_kernel *k);

// Generic packing: element (r, p) of the [rows, kc] source block is src[r * rs + p * ps].
// Writes panels of W values (zero-padded) p-major, as described in fcn_kernels.h.
// Static inline so each ISA file instantiates it with a constant W under its own target.
static inline void fcn_pack_generic(const float *src, ptrdiff_t rs, ptrdiff_t ps,
                                    ptrdiff_t rows, ptrdiff_t kc, int W, float *dst) {
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += W) {
        ptrdiff_t h = rows - r0 < W ? rows - r0 : W;
        const float *s = src + r0 * rs;
        if (ps == 1) {
            // Source rows contiguous in p: walk each row once (stride W in dst).
            for (ptrdiff_t r = 0; r < h; r++) {
                const float *sr = s + r * rs;
                float *d = dst + r;
                for (ptrdiff_t p = 0; p < kc; p++) d[p * W] = sr[p];
            }
        } else {
            for (ptrdiff_t p = 0; p < kc; p++) {
                const float *sp = s + p * ps;
                float *d = dst + p * W;
                for (ptrdiff_t r = 0; r < h; r++) d[r] = sp[r * rs];
            }
        }
        if (h < W)
            for (ptrdiff_t p = 0; p < kc; p++)
                for (ptrdiff_t r = h; r < W; r++) dst[p * W + r] = 0.0f;
        dst += (ptrdiff_t)W * kc;
    }
}

// Element (i, p) of op(A) for A stored row-major with leading dimension lda.
#define FCN_A_RS(transA, lda) ((transA) ? 1 : (lda))
#define FCN_A_PS(transA, lda) ((transA) ? (lda) : 1)
#define FCN_A_AT(a, transA, lda, i0, p0) ((transA) ? (a) + (p0) * (lda) + (i0) : (a) + (i0) * (lda) + (p0))
// Element (p, j) of op(B): as columns j (the packed "rows") and depth p.
#define FCN_B_RS(transB, ldb) ((transB) ? (ldb) : 1)
#define FCN_B_PS(transB, ldb) ((transB) ? 1 : (ldb))
#define FCN_B_AT(b, transB, ldb, p0, j0) ((transB) ? (b) + (j0) * (ldb) + (p0) : (b) + (p0) * (ldb) + (j0))

// pack_a (fcn_pack_a_fn) by the generic packer, MR rows per panel, under attribute ATTR
// (a target attribute, or nothing).
#define FCN_DEFINE_PACK_A(ATTR, NAME, MR)                                                               \
    static ATTR void NAME(int transA, const float *a, ptrdiff_t lda, ptrdiff_t i0, ptrdiff_t p0,        \
                          ptrdiff_t mc, ptrdiff_t kc, float *dst) {                                     \
        fcn_pack_generic(FCN_A_AT(a, transA, lda, i0, p0), FCN_A_RS(transA, lda), FCN_A_PS(transA, lda), \
                         mc, kc, MR, dst);                                                              \
    }

// pack_b (fcn_pack_b_fn) by the generic packer, NR columns per panel.
#define FCN_DEFINE_PACK_B(ATTR, NAME, NR)                                                               \
    static ATTR void NAME(int transB, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,        \
                          ptrdiff_t kc, ptrdiff_t nc, float *dst) {                                     \
        fcn_pack_generic(FCN_B_AT(b, transB, ldb, p0, j0), FCN_B_RS(transB, ldb), FCN_B_PS(transB, ldb), \
                         nc, kc, NR, dst);                                                              \
    }

// The macro-kernel (fcn_macro_fn) of an ISA: C[mc, nc] from packed A (MR-row panels) and
// packed B (NR-column panels), one KERNEL call per register tile, column panels outer (the
// B panel stays in L1 while the A panels stream past it). KERNEL(kc, pa, pb, c, ldc, mr, nr,
// alpha, beta, rowBias, colBias, relu) computes one tile of mr <= MR rows, nr <= NR columns.
#define FCN_DEFINE_MACRO(ATTR, NAME, KERNEL, MR, NR)                                                  \
    static ATTR void NAME(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *pa,     \
                          const float *pb, float beta, float *c, ptrdiff_t ldc,                       \
                          const float *rb, const float *cb, int relu) {                               \
        for (ptrdiff_t j = 0; j < nc; j += NR) {                                                      \
            int nr = nc - j < NR ? (int)(nc - j) : NR;                                                \
            for (ptrdiff_t i = 0; i < mc; i += MR) {                                                  \
                int mr = mc - i < MR ? (int)(mc - i) : MR;                                            \
                KERNEL(kc, pa + i * kc, pb + j * kc, c + i * ldc + j, ldc, mr, nr, alpha, beta,      \
                       rb ? rb + i : 0, cb ? cb + j : 0, relu);                                       \
            }                                                                                         \
        }                                                                                             \
    }

// Scalar write-back of one register tile `acc` (row stride `ld`) into C rows 0 ..< mr,
// columns 0 ..< nr: alpha * acc + beta * C (C not read when beta == 0), + rb[i] + cb[j],
// then ReLU keeping NaN (the ISAs without vector write-backs).
static inline void fcn_store_tile(const float *acc, int ld, float *c, ptrdiff_t ldc, int mr, int nr,
                                  float alpha, float beta, const float *rb, const float *cb, int relu) {
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        float rbi = rb ? rb[i] : 0.0f;
        for (int j = 0; j < nr; j++) {
            float v = alpha * acc[i * ld + j];
            if (beta != 0.0f) v += beta * ci[j];
            v += rbi;
            if (cb) v += cb[j];
            if (relu && !(v > 0.0f)) v = v != v ? v : 0.0f;
            ci[j] = v;
        }
    }
}

#endif
