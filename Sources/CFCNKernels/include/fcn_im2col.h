// fcn_im2col: the convolution lowering kernels of swift-fcn (im2col, its adjoint col2im,
// and a direct depthwise convolution).
//
// Contract: one image, NCHW planes, row-major, sizes in elements. A "column tile" holds the
// receptive fields of the output pixels p0 ..< p0+np (pixels numbered row-major over
// out_h x out_w): row r = (c*kh + i)*kw + j of the tile, column q, is the input value
// x[c, oh*sh - pad_top + i*dh, ow*sw - pad_left + j*dw] for pixel p0+q = oh*out_w + ow, or 0
// where that position lies in the padding. The tile is stored [channels*kh*kw, np].
// Only the top/left padding is needed: the bottom/right padding is implied by out_h/out_w.
#ifndef FCN_IM2COL_H
#define FCN_IM2COL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Geometry of a 2-D convolution over one image (see the contract above).
typedef struct {
    int64_t channels, height, width;      // input planes
    int64_t kh, kw;                       // kernel
    int64_t sh, sw;                       // stride
    int64_t pad_top, pad_left;            // leading padding
    int64_t dh, dw;                       // dilation
    int64_t out_h, out_w;                 // output plane
} fcn_conv_geometry;

/// Writes the column tile of output pixels [p0, p0+np) of image `x` into `cols`
/// ([channels*kh*kw, np], row stride np). Padding positions become 0.
void fcn_im2col_tile(const fcn_conv_geometry *g, const float *x, int64_t p0, int64_t np, float *cols);

/// Rows r0 ..< r0+nr of the column tile of output pixels [p0, p0+np): row r of `dst`
/// (row stride `ld` >= np) is tile row r0 + r. fcn_im2col_tile is the case r0 = 0, nr = all.
void fcn_im2col_rows(const fcn_conv_geometry *g, const float *x, int64_t r0, int64_t nr,
                     int64_t p0, int64_t np, float *dst, int64_t ld);

/// The adjoint of fcn_im2col_tile: adds every entry of the column tile `cols` into the
/// input position it was read from (entries that map to padding are dropped). `x` must be
/// initialised by the caller (usually zeros).
void fcn_col2im_tile(const fcn_conv_geometry *g, const float *cols, int64_t p0, int64_t np, float *x);

/// fcn_col2im_tile for a column tile stored with row stride `ld` >= np (a tile that is one
/// image's block of columns inside a wider matrix).
void fcn_col2im_tile_ld(const fcn_conv_geometry *g, const float *cols, int64_t ld, int64_t p0, int64_t np, float *x);

/// Direct convolution of one input plane `x` ([height, width]) with one kernel `w`
/// ([kh, kw]) into one output plane `y` ([out_h, out_w]): y = bias + sum w * x.
/// `g->channels` is ignored. Used for depthwise convolutions (groups == channels).
void fcn_conv_plane_direct(const fcn_conv_geometry *g, const float *x, const float *w, float bias, float *y);

/// Interleaves the phase planes of a sub-pixel (stride s) transpose convolution into its
/// output: y[ch, oy, ox] = c[((a*sw + b)*channels + ch)*qh*qw + q*qw + r] with
/// a = (oy + pad_top) % sh, q = (oy + pad_top) / sh, b = (ox + pad_left) % sw,
/// r = (ox + pad_left) / sw, for ch in [ch0, ch1). y is [channels, out_h, out_w]; every
/// element of those channels is written.
void fcn_subpixel_scatter(const float *c, int64_t channels, int64_t ch0, int64_t ch1, int64_t sh, int64_t sw,
                          int64_t qh, int64_t qw, int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w,
                          float *y);

/// The weights of the flipped-kernel convolution that computes a stride-1 input gradient:
/// for w [groups*cout_g, cin_g, kk] (kk = kh*kw taps), writes
/// wf[((g*cin_g + ci)*cout_g + co)*kk + (kk-1-t)] = w[((g*cout_g + co)*cin_g + ci)*kk + t],
/// that is [groups*cin_g, cout_g, kk] with input and output channels swapped and the taps
/// reversed.
void fcn_flip_kernels(const float *w, int64_t groups, int64_t cout_g, int64_t cin_g, int64_t kk, float *wf);

#ifdef __cplusplus
}
#endif
#endif
