// CFCNKernels: the C hot loops of swift-fcn.
//
// Contract: plain pointers, sizes and strides; no Swift types. Row-major matrices.
// Every function here has a portable path; ISA-specific paths (AVX-512, AVX2+FMA on
// x86-64, NEON on arm64) are chosen at run time, so the package needs no build flags.
#ifndef FCN_KERNELS_H
#define FCN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "fcn_im2col.h"
#include "fcn_pointwise.h"
#include "fcn_optimizer.h"
#include "fcn_winograd.h"
#include "fcn_strassen.h"
#include "fcn_mpi.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Returns a bit set of the ISAs this CPU supports (FCN_ISA_* flags).
enum {
    FCN_ISA_PORTABLE = 1,
    FCN_ISA_AVX2_FMA = 2,
    FCN_ISA_AVX512 = 4,
    FCN_ISA_NEON = 8,
    /// AVX-512 with AVX512_BF16: the GEMM path with bfloat16 operands (reduced precision,
    /// inference only; gemm_avx512_bf16.c). Never a float32 path.
    FCN_ISA_AVX512_BF16 = 16,
};
int fcn_cpu_isa_flags(void);

// MARK: SGEMM building blocks (packing + macro-kernel; blocking and threads are in Swift)
//
// The engine computes C = alpha * op(A) * op(B) + beta * C block by block:
//   op(A) block [mc, kc] is packed into MR-row panels: panel q holds rows q*MR..q*MR+MR-1,
//   stored p-major (kc groups of MR values), zero-padded to MR rows; panel q starts at q*MR*kc.
//   op(B) block [kc, nc] is packed into NR-column panels the same way (kc groups of NR values).
// `isa` is ONE FCN_ISA_* flag; the packed layout depends on it through MR and NR.

/// Register tile of the microkernel for `isa`: *mr x *nr. Returns 0 when `isa` has no
/// kernel in this build or on this CPU (then nothing is written).
int fcn_sgemm_kernel_shape(int isa, int *mr, int *nr);

/// Packs op(A)[i0 ..< i0+mc, p0 ..< p0+kc] into `dst` (capacity roundup(mc, MR) * kc floats).
/// A is stored [m, lda] (transA == 0) or [k, lda] (transA != 0).
void fcn_sgemm_pack_a(int isa, int transA, const float *a, ptrdiff_t lda,
                      ptrdiff_t i0, ptrdiff_t p0, ptrdiff_t mc, ptrdiff_t kc, float *dst);

/// Packs op(B)[p0 ..< p0+kc, j0 ..< j0+nc] into `dst` (capacity roundup(nc, NR) * kc floats).
/// B is stored [k, ldb] (transB == 0) or [n, ldb] (transB != 0).
void fcn_sgemm_pack_b(int isa, int transB, const float *b, ptrdiff_t ldb,
                      ptrdiff_t p0, ptrdiff_t j0, ptrdiff_t kc, ptrdiff_t nc, float *dst);

/// Multiplies packed blocks into C[mc, nc] (c points at the block's top-left element):
///   C = alpha * packA * packB + beta * C   (beta == 0: C is not read)
/// then C += rowBias[i] (if rowBias) + colBias[j] (if colBias),
/// and C = max(C, 0) if relu. rowBias/colBias point at the block's first row/column.
void fcn_sgemm_macro(int isa, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha,
                     const float *packA, const float *packB, float beta,
                     float *c, ptrdiff_t ldc,
                     const float *rowBias, const float *colBias, int relu);

/// Like fcn_sgemm_macro, but packs op(B)[p0 ..< p0+kc, j0 ..< j0+nc] one NR-column panel at a
/// time into `buf` (capacity kc * NR floats) just before use (prefetching the next panel).
/// For blocks where the packed A covers all rows of the tile, so packed B would not be reused.
void fcn_sgemm_macro_packing_b(int isa, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha,
                               const float *packA, int transB, const float *b, ptrdiff_t ldb,
                               ptrdiff_t p0, ptrdiff_t j0, float *buf, float beta,
                               float *c, ptrdiff_t ldc,
                               const float *rowBias, const float *colBias, int relu);

/// Converts `count` A panels packed in the float32 layout of FCN_ISA_AVX512 (MR = 14 rows,
/// depth kc, panel q at q * 14 * kc floats) to the layout of FCN_ISA_AVX512_BF16, in place
/// (A transformed outside the packers, e.g. Winograd's U). No-op where that path is absent.
void fcn_sgemm_bf16_panels(float *panels, ptrdiff_t count, ptrdiff_t kc);

/// Whether `isa` has fcn_sgemm_macro_unpacked_a.
int fcn_sgemm_has_unpacked_a(int isa);

/// fcn_sgemm_macro with A read in place: `a` points at A[i0, p0] of a row-major,
/// non-transposed A with leading dimension lda (no packing). For blocks with few columns,
/// where packing A would cost more than its reuse saves. `edge`: MR * kc floats of scratch.
/// Only for ISAs where fcn_sgemm_has_unpacked_a is true.
void fcn_sgemm_macro_unpacked_a(int isa, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *a,
                                ptrdiff_t lda, const float *packB, float *edge, float beta, float *c, ptrdiff_t ldc,
                                const float *rowBias, const float *colBias, int relu);

// MARK: Implicit-GEMM B operands (convolution lowering without a column matrix)
//
// A B source describes op(B) without storing it: the packing routines read it straight
// from the input image. Kinds:
//   FCN_B_MATRIX    op(B) from a stored matrix (b, ldb, transB), as fcn_sgemm_pack_b
//   FCN_B_IM2COL    op(B) = cols    [K, P]: the column matrix of image x (fcn_im2col.h), K = taps
//                   (channels*kh*kw), P = output pixels (out_h*out_w)   -- conv forward
//   FCN_B_IM2COL_T  op(B) = cols^T  [P, K]                              -- conv weight gradient
// `tmp` is scratch of kc * NR floats owned by the calling thread (FCN_B_IM2COL_T only).
enum { FCN_B_MATRIX = 0, FCN_B_IM2COL = 1, FCN_B_IM2COL_T = 2 };

typedef struct {
    int kind;
    int transB;
    const float *b;
    ptrdiff_t ldb;
    fcn_conv_geometry g;
    const float *x;
    float *tmp;
} fcn_b_source;

/// fcn_sgemm_pack_b for any B source: packs op(B)[p0 ..< p0+kc, j0 ..< j0+nc] into `dst`.
void fcn_sgemm_pack_b_src(int isa, const fcn_b_source *src, ptrdiff_t p0, ptrdiff_t j0,
                          ptrdiff_t kc, ptrdiff_t nc, float *dst);

/// fcn_sgemm_macro_packing_b for any B source (`buf`: kc * NR floats).
void fcn_sgemm_macro_packing_b_src(int isa, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha,
                                   const float *packA, const fcn_b_source *src,
                                   ptrdiff_t p0, ptrdiff_t j0, float *buf, float beta,
                                   float *c, ptrdiff_t ldc,
                                   const float *rowBias, const float *colBias, int relu);

#ifdef __cplusplus
}
#endif
#endif
