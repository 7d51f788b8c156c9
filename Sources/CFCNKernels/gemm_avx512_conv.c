// SGEMM AVX-512 path: B panels packed straight from a convolution source (implicit
// im2col), the `pack_b_conv` entry of the AVX-512 kernel table (gemm_avx512.c).
#include "fcn_kernels.h"
#include "gemm_internal.h"
#include "gemm_avx512_internal.h"

#if defined(__x86_64__)
// One 32-wide panel of a convolution B source (see fcn_kernels.h).
//   FCN_B_IM2COL, stride 1 (any dilation, padding, kernel width <= 16): panel row p (tap
//   (c, i, j)) holds the 32 output pixels j0.. as runs along output rows ("segments"); each
//   segment is one contiguous piece of an input row, loaded with a masked load (lanes in
//   the padding or outside the segment stay 0; masked-off lanes are never read).
//   FCN_B_IM2COL_T: the im2col rows of the panel's taps go to `tmp` ([w, kc]) and are
//   transposed 16 x 16 into the panel.
// Other cases return 0 (generic packer).
enum { PF_AHEAD = 64 }; // floats ahead (2 panels) that the convolution packer prefetches
TGT int fcn_avx512_pack_b_conv(const void *srcv, ptrdiff_t p0, ptrdiff_t j0, ptrdiff_t kc, ptrdiff_t w, float *dst) {
    const fcn_b_source *src = (const fcn_b_source *)srcv;
    const fcn_conv_geometry *g = &src->g;
    if (src->kind == FCN_B_IM2COL_T) {
        fcn_im2col_rows(g, src->x, j0, w, p0, kc, src->tmp, kc);
        pack_transposing(src->tmp, kc, w < 16 ? w : 16, kc, NR, 0, 16, dst);
        if (w > 16) {
            pack_transposing(src->tmp + 16 * kc, kc, w - 16, kc, NR, 16, 16, dst);
        } else {
            for (ptrdiff_t p = 0; p < kc; p++) _mm512_storeu_ps(dst + p * NR + 16, _mm512_setzero_ps());
        }
        return 1;
    }
    if (src->kind != FCN_B_IM2COL || g->sw != 1 || g->kw > 16) return 0;
    const int64_t H = g->height, W = g->width, plane = H * W, kw = g->kw, taps = g->kh * kw;
    // Segments: runs of the panel's pixels along one output row.
    int64_t segIh0[NR], segIw0[NR]; // input row / column of tap (0, 0) for the segment's first pixel
    int segQ[NR], nseg = 0;
    {
        int64_t oh = j0 / g->out_w, ow = j0 % g->out_w;
        for (ptrdiff_t q = 0; q < w; nseg++) {
            int64_t run = g->out_w - ow;
            if (run > w - q) run = w - q;
            segIh0[nseg] = oh * g->sh - g->pad_top;
            segIw0[nseg] = ow - g->pad_left;
            segQ[nseg] = (int)q;
            q += run; oh++; ow = 0;
        }
    }
    // Per segment and kernel column j: lane mask of valid input columns, and the offset of
    // lane 0 from the start of the input row.
    uint32_t mask[NR][16];
    int64_t off[NR][16];
    for (int s = 0; s < nseg; s++) {
        int64_t len = (s + 1 < nseg ? segQ[s + 1] : (int64_t)w) - segQ[s];
        for (int64_t j = 0; j < kw; j++) {
            int64_t iw0 = segIw0[s] + j * g->dw;
            int64_t lo = iw0 < 0 ? -iw0 : 0, hi = W - iw0 < len ? W - iw0 : len;
            mask[s][j] = lo < hi ? (uint32_t)((((uint64_t)1 << (hi - lo)) - 1) << (segQ[s] + lo)) : 0;
            off[s][j] = iw0 - segQ[s];
        }
    }
    int64_t c = p0 / taps, i = p0 % taps / kw, j = p0 % kw;
    // Interior panel (one segment, every tap inside the input): plain loads, no masks.
    if (nseg == 1 && w == NR) {
        int64_t ihLo = segIh0[0], ihHi = segIh0[0] + (g->kh - 1) * g->dh;
        int64_t iwLo = segIw0[0], iwHi = segIw0[0] + (kw - 1) * g->dw + NR - 1;
        if (ihLo >= 0 && ihHi < H && iwLo >= 0 && iwHi < W) {
            const float *xp = src->x + c * plane + (segIh0[0] + i * g->dh) * W + segIw0[0];
            const ptrdiff_t dw = g->dw, rowStep = g->dh * W;
            float *d = dst;
            for (ptrdiff_t p = 0; p < kc;) {
                const float *r = xp + j * dw;
                for (; j < kw && p < kc; j++, p++, r += dw, d += NR) {
                    __m512 v0 = _mm512_loadu_ps(r), v1 = _mm512_loadu_ps(r + 16);
                    _mm512_storeu_ps(d, v0);
                    _mm512_storeu_ps(d + 16, v1);
                }
                j = 0;
                if (++i == g->kh) {
                    i = 0; c++;
                    xp = src->x + c * plane + segIh0[0] * W + segIw0[0];
                } else {
                    xp += rowStep;
                }
                // Prefetch the part of this row two panels ahead (see below).
                _mm_prefetch((const char *)(xp + PF_AHEAD), _MM_HINT_T1);
                _mm_prefetch((const char *)(xp + PF_AHEAD) + 64, _MM_HINT_T1);
                _mm_prefetch((const char *)(xp + PF_AHEAD) + 128, _MM_HINT_T1);
            }
            return 1;
        }
    }
    const float *rowp[NR];
    int64_t pfCol = segIw0[nseg - 1] + (w - segQ[nseg - 1]) + PF_AHEAD - NR;
    if (pfCol < 0) pfCol = 0;
    for (ptrdiff_t p = 0; p < kc;) {
        // New (c, i): input row of every segment, or NULL in the padding.
        const float *xc = src->x + c * plane;
        for (int s = 0; s < nseg; s++) {
            int64_t ih = segIh0[s] + i * g->dh;
            rowp[s] = (ih >= 0 && ih < H) ? xc + ih * W : 0;
        }
        // Prefetch what the next panel reads from this input row (it continues the last
        // segment): the hardware prefetchers cannot follow channels*kh interleaved streams.
        if (rowp[nseg - 1] && pfCol < W) {
            const char *pf = (const char *)(rowp[nseg - 1] + pfCol);
            _mm_prefetch(pf, _MM_HINT_T1);
            _mm_prefetch(pf + 64, _MM_HINT_T1);
            _mm_prefetch(pf + 128, _MM_HINT_T1);
        }
        for (; j < kw && p < kc; j++, p++) {
            __m512 v0, v1;
            if (nseg == 1 && mask[0][j] == 0xFFFFFFFFu && rowp[0]) {
                const float *base = rowp[0] + off[0][j];
                v0 = _mm512_loadu_ps(base);
                v1 = _mm512_loadu_ps(base + 16);
            } else {
                v0 = _mm512_setzero_ps(); v1 = _mm512_setzero_ps();
                for (int s = 0; s < nseg; s++) {
                    uint32_t m = mask[s][j];
                    if (!rowp[s] || !m) continue;
                    const float *base = rowp[s] + off[s][j];
                    v0 = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v0), _mm512_castps_si512(_mm512_maskz_loadu_ps((__mmask16)m, base))));
                    v1 = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v1), _mm512_castps_si512(_mm512_maskz_loadu_ps((__mmask16)(m >> 16), base + 16))));
                }
            }
            _mm512_storeu_ps(dst + p * NR, v0);
            _mm512_storeu_ps(dst + p * NR + 16, v1);
        }
        j = 0;
        if (++i == g->kh) { i = 0; c++; }
    }
    return 1;
}

#else
typedef int fcn_gemm_avx512_conv_empty; // an x86-64-only file: not empty elsewhere
#endif
