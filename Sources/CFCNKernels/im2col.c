// im2col / col2im over tiles of output pixels, and the direct depthwise plane kernel.
// See include/fcn_im2col.h for the contract. Each row of a column tile is produced by
// runs along one output row: for a fixed (c, i, j) and output row oh, the input row is
// fixed and the columns advance by sw, so a run is a strided copy (memcpy when sw == 1)
// between two zero-filled margins.
#include "fcn_im2col.h"
#include <string.h>

// Output columns t in [lo, hi) of a run of `run` pixels starting at input column iw0 whose
// input column iw0 + t*s lies inside [0, width).
static inline void valid_range(int64_t iw0, int64_t s, int64_t width, int64_t run, int64_t *lo, int64_t *hi) {
    int64_t l = iw0 < 0 ? (-iw0 + s - 1) / s : 0;
    int64_t h = iw0 >= width ? 0 : (width - 1 - iw0) / s + 1;
    if (h > run) h = run;
    if (l > h) l = h;
    *lo = l; *hi = h;
}

void fcn_im2col_rows(const fcn_conv_geometry *g, const float *x, int64_t r0, int64_t nr,
                     int64_t p0, int64_t np, float *dst, int64_t ld) {
    const int64_t H = g->height, W = g->width, plane = H * W;
    const int64_t sw = g->sw, taps = g->kh * g->kw;
    int64_t c = r0 / taps, i = r0 % taps / g->kw, j = r0 % g->kw;
    for (int64_t r = 0; r < nr; r++) {
        const float *xc = x + c * plane;
        float *row = dst + r * ld;
        int64_t oh = p0 / g->out_w, ow = p0 % g->out_w, q = 0;
        while (q < np) {
            int64_t run = g->out_w - ow;
            if (run > np - q) run = np - q;
            float *d = row + q;
            int64_t ih = oh * g->sh - g->pad_top + i * g->dh;
            if (ih < 0 || ih >= H) {
                memset(d, 0, (size_t)run * sizeof(float));
            } else {
                const float *src = xc + ih * W;
                int64_t iw0 = ow * sw - g->pad_left + j * g->dw, lo, hi;
                valid_range(iw0, sw, W, run, &lo, &hi);
                if (lo > 0) memset(d, 0, (size_t)lo * sizeof(float));
                if (sw == 1) {
                    if (hi > lo) memcpy(d + lo, src + (iw0 + lo), (size_t)(hi - lo) * sizeof(float));
                } else {
                    for (int64_t t = lo; t < hi; t++) d[t] = src[iw0 + t * sw];
                }
                if (hi < run) memset(d + hi, 0, (size_t)(run - hi) * sizeof(float));
            }
            q += run; oh++; ow = 0;
        }
        if (++j == g->kw) { j = 0; if (++i == g->kh) { i = 0; c++; } }
    }
}

void fcn_im2col_tile(const fcn_conv_geometry *g, const float *x, int64_t p0, int64_t np, float *cols) {
    fcn_im2col_rows(g, x, 0, g->channels * g->kh * g->kw, p0, np, cols, np);
}

void fcn_col2im_tile(const fcn_conv_geometry *g, const float *cols, int64_t p0, int64_t np, float *x) {
    fcn_col2im_tile_ld(g, cols, np, p0, np, x);
}

void fcn_col2im_tile_ld(const fcn_conv_geometry *g, const float *cols, int64_t ld, int64_t p0, int64_t np, float *x) {
    const int64_t H = g->height, W = g->width, plane = H * W;
    const int64_t sw = g->sw;
    for (int64_t c = 0; c < g->channels; c++) {
        float *xc = x + c * plane;
        for (int64_t i = 0; i < g->kh; i++) {
            for (int64_t j = 0; j < g->kw; j++) {
                const float *row = cols + ((c * g->kh + i) * g->kw + j) * ld;
                int64_t oh = p0 / g->out_w, ow = p0 % g->out_w, q = 0;
                while (q < np) {
                    int64_t run = g->out_w - ow;
                    if (run > np - q) run = np - q;
                    int64_t ih = oh * g->sh - g->pad_top + i * g->dh;
                    if (ih >= 0 && ih < H) {
                        const float *srcRow = row + q;
                        int64_t iw0 = ow * sw - g->pad_left + j * g->dw, lo, hi;
                        valid_range(iw0, sw, W, run, &lo, &hi);
                        float *d = xc + ih * W;
                        if (sw == 1) {
                            for (int64_t t = lo; t < hi; t++) d[iw0 + t] += srcRow[t];
                        } else {
                            for (int64_t t = lo; t < hi; t++) d[iw0 + t * sw] += srcRow[t];
                        }
                    }
                    q += run; oh++; ow = 0;
                }
            }
        }
    }
}

void fcn_conv_plane_direct(const fcn_conv_geometry *g, const float *x, const float *w, float bias, float *y) {
    const int64_t H = g->height, W = g->width, ow_n = g->out_w, sw = g->sw;
    for (int64_t oh = 0; oh < g->out_h; oh++) {
        float *yr = y + oh * ow_n;
        for (int64_t t = 0; t < ow_n; t++) yr[t] = bias;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t ih = oh * g->sh - g->pad_top + i * g->dh;
            if (ih < 0 || ih >= H) continue;
            const float *xr = x + ih * W;
            for (int64_t j = 0; j < g->kw; j++) {
                const float wv = w[i * g->kw + j];
                int64_t iw0 = -g->pad_left + j * g->dw, lo, hi;
                valid_range(iw0, sw, W, ow_n, &lo, &hi);
                if (sw == 1) {
                    for (int64_t t = lo; t < hi; t++) yr[t] += wv * xr[iw0 + t];
                } else {
                    for (int64_t t = lo; t < hi; t++) yr[t] += wv * xr[iw0 + t * sw];
                }
            }
        }
    }
}

void fcn_subpixel_scatter(const float *c, int64_t channels, int64_t ch0, int64_t ch1, int64_t sh, int64_t sw,
                          int64_t qh, int64_t qw, int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w,
                          float *y) {
    const int64_t Q = qh * qw;
    for (int64_t ch = ch0; ch < ch1; ch++) {
        for (int64_t oy = 0; oy < out_h; oy++) {
            int64_t a = (oy + pad_top) % sh, q = (oy + pad_top) / sh;
            const float *rows = c + (a * sw * channels + ch) * Q + q * qw; // phase (a, 0)
            float *yr = y + (ch * out_h + oy) * out_w;
            // Phase b fills columns ox = ox0, ox0 + sw, ... from a contiguous run of its row.
            for (int64_t ox0 = 0; ox0 < sw && ox0 < out_w; ox0++) {
                int64_t b = (ox0 + pad_left) % sw, r0 = (ox0 + pad_left) / sw;
                const float *src = rows + b * channels * Q + r0;
                int64_t n = (out_w - ox0 + sw - 1) / sw;
                float *d = yr + ox0;
                for (int64_t t = 0; t < n; t++) d[t * sw] = src[t];
            }
        }
    }
}

// MARK: Flipped kernels

void fcn_flip_kernels(const float *w, int64_t groups, int64_t cout_g, int64_t cin_g, int64_t kk, float *wf) {
    for (int64_t g = 0; g < groups; g++)
        for (int64_t ci = 0; ci < cin_g; ci++) {
            float *d0 = wf + (g * cin_g + ci) * cout_g * kk;
            for (int64_t co = 0; co < cout_g; co++) {
                const float *s = w + ((g * cout_g + co) * cin_g + ci) * kk;
                float *d = d0 + co * kk;
                for (int64_t t = 0; t < kk; t++) d[kk - 1 - t] = s[t];
            }
        }
}
