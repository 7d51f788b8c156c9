// fcn_strassen: the element-wise steps of one level of Strassen's algorithm.
//
// Contract: C [m, n] = A [m, k] x B [k, n] (row-major, m and k even) is computed from the
// 2 x 2 blocks A_ij [m/2, k/2] and B_ij [k/2, nh] (nh = ceil(n / 2); the right column blocks
// of an odd n read a zero column) as seven products P_e = A'_e x B'_e with
//   e:    0          1          2       3       4          5          6
//   A'_e  A11 + A22  A21 + A22  A11     A22     A11 + A12  A21 - A11  A12 - A22
//   B'_e  B11 + B22  B11        B12-B22 B21-B11 B22        B11 + B12  B21 + B22
// and C11 = P0 + P3 - P4 + P6, C12 = P2 + P4, C21 = P1 + P3, C22 = P0 - P1 + P2 + P5:
// 7 block products instead of 8. These routines form A'_e and B'_e and combine the P_e; the
// products run on the SGEMM engine. Portable C (the loops vectorise), no FMA contraction.
#ifndef FCN_STRASSEN_H
#define FCN_STRASSEN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Rows r0 ..< r1 of A'_e (e in 0 ..< 7) from a (row-major, leading dimension lda, m x k):
/// out[(r - r0) * ldo + j] for j < k/2.
void fcn_strassen_a(const float *a, int64_t lda, int64_t m, int64_t k, int e, int64_t r0, int64_t r1, float *out,
                    int64_t ldo);

/// Rows r0 ..< r1 (of k/2) of every B'_e from b (row-major, leading dimension ldb, k x n):
/// B'_e row r at out[e * estride + r * nh + j], j < nh = ceil(n / 2).
void fcn_strassen_b(const float *b, int64_t ldb, int64_t k, int64_t n, int64_t r0, int64_t r1, float *out,
                    int64_t estride);

/// Rows r0 ..< r1 (of m/2) of C's four blocks from the products P_e [m/2, nh] at
/// p[e * estride + r * nh + j]: C (leading dimension ldc, m x n) gets the sums plus
/// bias[row] (when bias), clamped at 0 when relu; only columns < n are written.
void fcn_strassen_combine(const float *p, int64_t estride, int64_t m, int64_t n, int64_t r0, int64_t r1,
                          const float *bias, int relu, float *c, int64_t ldc);

#ifdef __cplusplus
}
#endif
#endif
