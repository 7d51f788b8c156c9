// fcn_pointwise: memory-bound kernels of swift-fcn outside the GEMM (pooling, reductions).
//
// Contract: plain pointers and sizes, one plane or one run per call (the caller threads);
// an AVX-512 path is chosen at run time where it pays, with a portable C path otherwise.
// Results are identical on every path (same comparisons, same order for the pool; the sum
// is a float sum whose association differs between paths, within float rounding).
#ifndef FCN_POINTWISE_H
#define FCN_POINTWISE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 2x2 stride-2 max pool (no padding, dilation 1) of one plane x [H, W] into y [outH, outW],
/// outH = H/2 or (H+1)/2 (ceil mode: the last window row/column may be one cell thin).
/// Each window is scanned (0,0), (0,1), (1,0), (1,1); a value replaces the running max when
/// it is greater or NaN (PyTorch's CPU rule: first max wins ties, NaN propagates). `idx`
/// (optional) receives the flat index h*W + w of the chosen cell.
void fcn_maxpool2x2_plane(const float *x, int64_t H, int64_t W, float *y, int64_t outH, int64_t outW,
                          int32_t *idx);

/// Sum of x[0 ..< n] (several accumulators; order differs from a sequential sum).
float fcn_sum(const float *x, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
