// fcn_winograd: the transforms of the Winograd F(2x2, 3x3) convolution (Lavin & Gray, 2016).
//
// Contract: a 3x3, stride-1, dilation-1 cross-correlation y = conv(x, w) of one image
// (x [C, H, W], y [Cout, outH, outW], zero padding pad_top/pad_left, outH/outW given) is
// computed on 2x2 output tiles: tile (ty, tx) covers output rows 2ty, 2ty+1 and columns
// 2tx, 2tx+1 and reads the 4x4 input patch at (2ty - pad_top, 2tx - pad_left) (cells outside
// x read 0). With d the patch, g a 3x3 kernel and
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1],
// the tile is A^T [ sum_c (G g G^T) .* (B^T d B) ] A: 16 products per tile and channel pair
// instead of 36. The 16 elements e = 4*row + col of the transformed domain are independent
// GEMMs M_e [Cout, tiles] = U_e [Cout, C] x V_e [C, tiles], run by the SGEMM engine on
// its packed layouts; these routines produce U and V and turn M back into y. Every factor is
// 0, +-1 or +-1/2, so the transforms add only a few roundings per value.
// `isa` (input and output transforms): one FCN_ISA_* flag available on this CPU, or 0 for
// the fastest one (the paths give identical bits; tests run each).
// Tiles are numbered in raster order, t = ty * tiles_w + tx; a chunk holds tiles
// t0 ..< t0 + nt. The routines are portable C with AVX-512 and AVX2 instances chosen at run
// time (the same arithmetic in the same order on every path: results are bit-identical).
#ifndef FCN_WINOGRAD_H
#define FCN_WINOGRAD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// U_e[co, ci] = (G g G^T)[e] for every kernel g = w[co, ci] (w [cout, cin, 3, 3]), written
/// in the SGEMM engine's packed-A layout for row panels q0 ..< q1 of mr output channels:
/// U_e[co, ci] lands at u[e * estride + (co / mr) * mr * cin + ci * mr + co % mr]
/// (estride >= roundup(cout, mr) * cin); rows past cout are set to 0.
void fcn_winograd_f2_weights(const float *w, int64_t cout, int64_t cin, int64_t mr, int64_t q0, int64_t q1,
                             float *u, int64_t estride);

/// V_e for channels c0 ..< c1 and the chunk's tiles, written in the SGEMM engine's packed-B
/// layout (panels of nr tiles, each panel channel-major: nr values per channel): tile i of
/// the chunk (0 <= i < nt), channel c of element e lands at
///   v[e * estride + (i / nr) * nr * C + c * nr + i % nr],
/// estride >= roundup(nt, nr) * C. Lanes of the last panel past nt are set to 0.
/// scratch: 12 * (tiles_w + 2) floats owned by the calling thread.
void fcn_winograd_f2_input(int isa, const float *x, int64_t C, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left,
                           int64_t tiles_w, int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr,
                           float *v, int64_t estride, float *scratch);

/// y[co] for output channels co0 ..< co1 from the chunk's products: element e of tile i and
/// channel co is m[e * estride + co * ldm + i]. Adds bias[co] (when bias) and clamps at 0
/// when relu; writes only the output cells inside outH x outW.
/// scratch: 4 * tiles_w floats owned by the calling thread.
void fcn_winograd_f2_output(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                            int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                            float *y, int64_t outH, int64_t outW, float *scratch);

/// fcn_winograd_f2_output followed by a 2x2 stride-2 max pool (the tiles are the pool
/// windows): y [Cout, poolH, poolW] (poolH = outH / 2 or ceil(outH / 2), likewise poolW)
/// gets, for each tile inside it, the largest of the tile's cells inside outH x outW (a NaN
/// wins), after bias and ReLU. Used by the inference-only fused conv + ReLU + max pool.
/// scratch: tiles_w floats owned by the calling thread.
void fcn_winograd_f2_output_pool(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                                 int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                                 float *y, int64_t outH, int64_t outW, int64_t poolH, int64_t poolW, float *scratch);

// MARK: Weight gradient
// With dY the 2x2 output-gradient tile, the gradient of the products is dM = A dY A^T
// (4x4), dU[co, ci] = sum over tiles of dM[co] .* V[ci] (16 GEMMs of depth tiles:
// dU_e = dM_e [Cout, tiles] x V_e^T), and the kernel gradient is G^T dU G (3x3).

/// dM_e for output channels co0 ..< co1 and the chunk's tiles, plain row-major: element e of
/// tile i and channel co lands at dm[e * estride + co * ldm + i] (ldm >= nt; columns nt ..< ldm
/// are set to 0). Output-gradient cells outside outH x outW read 0. gy: [Cout, outH, outW].
void fcn_winograd_f2_grad_output(const float *gy, int64_t outH, int64_t outW, int64_t tiles_w, int64_t t0,
                                 int64_t nt, int64_t co0, int64_t co1, float *dm, int64_t estride, int64_t ldm);

/// gw[k] = G^T dU[k] G for the kernels k0 ..< k1 of the cout * cin plane (gw [cout, cin, 3, 3]:
/// those kernels overwritten) from du: 16 matrices [cout, cin] one after another.
void fcn_winograd_f2_weights_grad(const float *du, int64_t cout, int64_t cin, int64_t k0, int64_t k1, float *gw);

// MARK: F(4x4, 3x3)
// The same convolution on 4x4 output tiles: tile (ty, tx) covers output rows 4ty ... 4ty+3
// and columns 4tx ... 4tx+3 and reads the 6x6 patch at (4ty - pad_top, 4tx - pad_left);
// 36 products per tile and channel pair instead of 144 (direct) or 64 (four F(2x2) tiles).
// The matrices are in winograd_f4.c; their factors (up to 8, 1/24) amplify rounding more
// than F(2x2)'s, so the error against the direct sum is larger (tests and the Benchmarks
// page state it). Elements e = 6*row + col, 36 of them; the layouts, tile numbering, `isa`
// and clipping rules are those of the F(2x2) routines above with 16 replaced by 36.

/// U_e for the 36 elements (G g G^T, computed in double), layout as fcn_winograd_f2_weights.
void fcn_winograd_f4_weights(const float *w, int64_t cout, int64_t cin, int64_t mr, int64_t q0, int64_t q1,
                             float *u, int64_t estride);

/// V_e for the 36 elements, layout as fcn_winograd_f2_input (lanes past nt set to 0).
/// scratch: 52 * (tiles_w + 1) floats owned by the calling thread.
void fcn_winograd_f4_input(int isa, const float *x, int64_t C, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left,
                           int64_t tiles_w, int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr,
                           float *v, int64_t estride, float *scratch);

/// y from the 36 products, as fcn_winograd_f2_output. scratch: 40 * tiles_w floats.
void fcn_winograd_f4_output(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                            int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                            float *y, int64_t outH, int64_t outW, float *scratch);

/// fcn_winograd_f4_output followed by a 2x2 stride-2 max pool: each tile holds the four
/// pool windows (2ty + pr, 2tx + pc); rules as fcn_winograd_f2_output_pool.
/// scratch: 40 * tiles_w floats.
void fcn_winograd_f4_output_pool(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                                 int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                                 float *y, int64_t outH, int64_t outW, int64_t poolH, int64_t poolW, float *scratch);

// MARK: F(6x6, 3x3) (inference forward)
// The same convolution on 6x6 output tiles: tile (ty, tx) covers output rows 6ty ... 6ty+5
// and columns 6tx ... 6tx+5 and reads the 8x8 patch at (6ty - pad_top, 6tx - pad_left); 64
// products per tile and channel pair (direct: 324; F(4x4): 81 for the same 36 outputs).
// The matrices are in winograd_f6.c; their factors (up to 32 and 1/90) amplify rounding
// more than F(4x4)'s (tests and the Benchmarks page state the error). Elements
// e = 8*row + col, 64 of them; layouts, tile numbering, `isa` and clipping as the F(2x2)
// routines with 16 replaced by 64. No scratch is used (the argument is kept for the
// common signature).

/// U_e for the 64 elements (G g G^T, computed in double), layout as fcn_winograd_f2_weights.
void fcn_winograd_f6_weights(const float *w, int64_t cout, int64_t cin, int64_t mr, int64_t q0, int64_t q1,
                             float *u, int64_t estride);

/// V_e for the 64 elements, layout as fcn_winograd_f2_input (lanes past nt set to 0).
void fcn_winograd_f6_input(int isa, const float *x, int64_t C, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left,
                           int64_t tiles_w, int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr,
                           float *v, int64_t estride, float *scratch);

/// y from the 64 products, as fcn_winograd_f2_output.
void fcn_winograd_f6_output(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                            int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                            float *y, int64_t outH, int64_t outW, float *scratch);

// MARK: F(2, 7) along the rows (kernels kh x 7)
// A stride-1, dilation-1 cross-correlation with kh x 7 kernels (fc6 of VGG16-FCN is 7 x 7)
// computed on pairs of output columns: the pair (2tx, 2tx + 1) of an output row reads the
// 8 input columns 2tx - pad_left ... 2tx - pad_left + 7 of kh input rows. With B^T, G (the
// Toom-Cook matrices at 0, +-1, +-2, +-1/2 and infinity, rows scaled as in winograd_f27.c)
// and A^T = [1 1 1 1 1 1 1 0; 0 1 -1 2 -2 1/2 -1/2 1], each pair is
//   A^T [ sum over channels c and kernel rows ky of (G w[co, c, ky, :]) .* (B^T d[c, row]) ]:
// 8 products per pair and tap row instead of 14. The 8 elements e are GEMMs
//   M_e [Cout, rows * tiles_w] = U_e [Cout, C * kh] x im2col_{kh x 1}(T_e),
// where T_e [C, input rows, tiles_w] holds the transformed input rows: the kh x 1 column
// matrix of T_e is read by the engine's implicit im2col, so each input row is transformed
// once, not kh times. Error on fc6 shapes: a few times that of a direct float32 GEMM (the
// factors reach 21/4 and 64 x 32/45; figures: Benchmarks.md, Accuracy).

/// Row block co0 ..< co1 of U_e, plain: u[(co - co0) * ldu + ci * kh + ky] = (G w[co, ci, ky, :])_e
/// for w [cout, cin, kh, 7], e in 0 ..< 8.
void fcn_winograd_f27_weights(const float *w, int64_t cout, int64_t cin, int64_t kh, int64_t co0, int64_t co1,
                              int e, float *u, int64_t ldu);

/// T_e for channels c0 ..< c1 of image x [C, H, W] and input rows row0 ..< row0 + rows (rows
/// outside [0, H) give zeros): t[e * estride + (c * rows + r) * tiles_w + tx] = (B^T d)_e with
/// d_j = x[c, row0 + r, 2tx - pad_left + j] (0 outside the image).
/// scratch: 2 * tiles_w + 6 floats owned by the calling thread.
void fcn_winograd_f27_input(const float *x, int64_t H, int64_t W, int64_t pad_left, int64_t row0, int64_t rows,
                            int64_t tiles_w, int64_t c0, int64_t c1, float *t, int64_t estride, float *scratch);

/// Output rows 0 ..< rows of channels co0 ..< co1: y[co * plane + r * outW + 2tx + q] (q = 0, 1;
/// only columns inside outW) = (A^T m)_q + bias[co] (when bias), clamped at 0 when relu, where
/// element e of (co, r, tx) is m[e * estride + co * ldm + r * tiles_w + tx].
void fcn_winograd_f27_output(const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1, int64_t rows,
                             int64_t tiles_w, const float *bias, int relu, float *y, int64_t plane, int64_t outW);

#ifdef __cplusplus
}
#endif
/// dM_e = (A dY A^T)_e for the 36 elements (winograd_f4_grad.c has A), layout and clipping
/// as fcn_winograd_f2_grad_output with 4x4 output tiles (tile (ty, tx) starts at output row
/// 4ty and column 4tx).
void fcn_winograd_f4_grad_output(const float *gy, int64_t outH, int64_t outW, int64_t tiles_w, int64_t t0,
                                 int64_t nt, int64_t co0, int64_t co1, float *dm, int64_t estride, int64_t ldm);

/// gw[k] = G^T dU[k] G (computed in double), as fcn_winograd_f2_weights_grad with 36
/// matrices.
void fcn_winograd_f4_weights_grad(const float *du, int64_t cout, int64_t cin, int64_t k0, int64_t k1, float *gw);

#endif
