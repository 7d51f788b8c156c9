// Winograd F(6x6, 3x3) transforms (inference forward only). Contract in include/fcn_winograd.h.
//
// Matrices (Lavin & Gray; points 0, +-1, +-2, +-1/2, infinity, as in ncnn's winograd63):
//   B^T = [1 0 -21/4 0 21/4 0 -1 0; 0 1 1 -17/4 -17/4 1 1 0; 0 -1 1 17/4 -17/4 -1 1 0;
//          0 1/2 1/4 -5/2 -5/4 2 1 0; 0 -1/2 1/4 5/2 -5/4 -2 1 0; 0 2 4 -5/2 -5 1/2 1 0;
//          0 -2 4 5/2 -5 -1/2 1 0; 0 -1 0 21/4 0 -21/4 0 1]
//   G   = [1 0 0; -2/9 -2/9 -2/9; -2/9 2/9 -2/9; 1/90 1/45 2/45; 1/90 -1/45 2/45;
//          32/45 16/45 8/45; 32/45 -16/45 8/45; 0 0 1]
//   A^T = [1 1 1 1 1 1 1 0; 0 1 -1 2 -2 1/2 -1/2 0; 0 1 1 4 4 1/4 1/4 0;
//          0 1 -1 8 -8 1/8 -1/8 0; 0 1 1 16 16 1/16 1/16 0; 0 1 -1 32 -32 1/32 -1/32 1]
// 64 products per 6x6 output tile and channel pair: 1/5.06 of the direct multiply-adds
// (F(4x4): 1/4), and on a 65 x 65 or 66 x 66 plane 121 tiles where F(4x4) takes 289, so
// 7744 products per channel pair against 10404.
//
// Order of evaluation (the same on every path, contraction off, so the portable and the
// AVX-512 instances give identical bits): the input patch gets B^T along each row first,
// then along each column; the products get A^T along each column first, then along each
// row. The AVX-512 instances put up to 16 tiles of one tile row in the lanes: each patch
// row is loaded whole (masked outside the input) and split into its phases (column 6q + f
// of the run in lane q) by permutes, and the output cells are merged back the same way.
#include "fcn_winograd.h"
#include "fcn_kernels.h"
#include "winograd_internal.h"

#pragma clang fp contract(off)

#define W6_INLINE static inline __attribute__((always_inline))

// B^T applied to eight values (T: float or a float vector; constants splat).
#define W6_BT(T, d, o)                                                       \
    do {                                                                     \
        T s1 = (d[2] + d[6]) - 4.25f * d[4], t1 = (d[1] + d[5]) - 4.25f * d[3]; \
        T s2 = (d[6] + 0.25f * d[2]) - 1.25f * d[4];                         \
        T t2 = (0.5f * d[1] - 2.5f * d[3]) + 2.0f * d[5];                    \
        T s3 = d[6] + 4.0f * (d[2] - 1.25f * d[4]);                          \
        T t3 = (2.0f * d[1] - 2.5f * d[3]) + 0.5f * d[5];                    \
        o[0] = (d[0] - d[6]) + 5.25f * (d[4] - d[2]);                        \
        o[1] = s1 + t1; o[2] = s1 - t1;                                      \
        o[3] = s2 + t2; o[4] = s2 - t2;                                      \
        o[5] = s3 + t3; o[6] = s3 - t3;                                      \
        o[7] = (d[7] - d[1]) + 5.25f * (d[3] - d[5]);                        \
    } while (0)

// A^T applied to eight values.
#define W6_AT(T, m, o)                                                       \
    do {                                                                     \
        T p12 = m[1] + m[2], d12 = m[1] - m[2];                              \
        T p34 = m[3] + m[4], d34 = m[3] - m[4];                              \
        T p56 = m[5] + m[6], d56 = m[5] - m[6];                              \
        o[0] = ((m[0] + p12) + p34) + p56;                                   \
        o[1] = (d12 + 2.0f * d34) + 0.5f * d56;                              \
        o[2] = (p12 + 4.0f * p34) + 0.25f * p56;                             \
        o[3] = (d12 + 8.0f * d34) + 0.125f * d56;                            \
        o[4] = (p12 + 16.0f * p34) + 0.0625f * p56;                          \
        o[5] = ((d12 + 32.0f * d34) + 0.03125f * d56) + m[7];                \
    } while (0)

// MARK: portable bodies (one tile at a time)

W6_INLINE void w6_input_body(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t tw,
                             int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr, float *v, int64_t es) {
    for (int64_t c = c0; c < c1; c++) {
        const float *xc = x + c * H * W;
        for (int64_t i = 0; i < nt; i++) {
            int64_t t = t0 + i, iy0 = 6 * (t / tw) - pt, ix0 = 6 * (t % tw) - pl;
            float h[8][8];
            for (int r = 0; r < 8; r++) {
                float d[8];
                int64_t iy = iy0 + r;
                for (int f = 0; f < 8; f++) {
                    int64_t ix = ix0 + f;
                    d[f] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xc[iy * W + ix] : 0.0f;
                }
                W6_BT(float, d, h[r]);
            }
            float *dst = v + (i / nr) * nr * C + c * nr + i % nr;
            for (int l = 0; l < 8; l++) {
                float col[8], o[8];
                for (int r = 0; r < 8; r++) col[r] = h[r][l];
                W6_BT(float, col, o);
                for (int r = 0; r < 8; r++) dst[(8 * r + l) * es] = o[r];
            }
        }
        fcn_winograd_zero_tail(v, 64, C, c, nt, nr, es);
    }
}

W6_INLINE void w6_output_body(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw,
                              int64_t t0, int64_t nt, const float *bias, int relu, float *y, int64_t outH,
                              int64_t outW) {
    for (int64_t co = co0; co < co1; co++) {
        const float *mc = m + co * ldm;
        float b = bias ? bias[co] : 0.0f;
        float *yc = y + co * outH * outW;
        for (int64_t i = 0; i < nt; i++) {
            int64_t t = t0 + i, oy0 = 6 * (t / tw), ox0 = 6 * (t % tw);
            float s[6][8];
            for (int l = 0; l < 8; l++) {
                float col[8], o[6];
                for (int j = 0; j < 8; j++) col[j] = mc[(8 * j + l) * es + i];
                W6_AT(float, col, o);
                for (int r = 0; r < 6; r++) s[r][l] = o[r];
            }
            for (int r = 0; r < 6; r++) {
                float o[6];
                W6_AT(float, s[r], o);
                if (oy0 + r >= outH) break;
                for (int cc = 0; cc < 6 && ox0 + cc < outW; cc++) {
                    float val = o[cc] + b;
                    if (relu) val = val < 0.0f ? 0.0f : val; // NaN stays NaN
                    yc[(oy0 + r) * outW + ox0 + cc] = val;
                }
            }
        }
    }
}

// MARK: AVX-512 (16 tiles of one tile row in the lanes)

#if defined(__x86_64__)
#include <immintrin.h>
#define W6_TGT __attribute__((target("avx512f")))

// Phase split and merge by permutes. A row segment of 16 tiles is 98 floats (six tile
// strides and two more) in seven vectors; phase f (lane q: float 6q + f) takes from each
// window of 32 floats (vectors 2w, 2w + 1) the lanes whose float lies there: one permute
// per window, the windows merged by masks. The output does the inverse: float 16k + j of
// six interleaved cell columns is cell column (16k + j) % 6 at lane (16k + j) / 6, taken
// from the pairs of columns (0, 1), (2, 3), (4, 5) by one permute each and merged.
// (6q + f) % 32 for lane q of phase f, and the lanes of phase f whose float lies in window w.
static const int32_t w6_split_index[8][16] = {
    {0, 6, 12, 18, 24, 30, 4, 10, 16, 22, 28, 2, 8, 14, 20, 26},
    {1, 7, 13, 19, 25, 31, 5, 11, 17, 23, 29, 3, 9, 15, 21, 27},
    {2, 8, 14, 20, 26, 0, 6, 12, 18, 24, 30, 4, 10, 16, 22, 28},
    {3, 9, 15, 21, 27, 1, 7, 13, 19, 25, 31, 5, 11, 17, 23, 29},
    {4, 10, 16, 22, 28, 2, 8, 14, 20, 26, 0, 6, 12, 18, 24, 30},
    {5, 11, 17, 23, 29, 3, 9, 15, 21, 27, 1, 7, 13, 19, 25, 31},
    {6, 12, 18, 24, 30, 4, 10, 16, 22, 28, 2, 8, 14, 20, 26, 0},
    {7, 13, 19, 25, 31, 5, 11, 17, 23, 29, 3, 9, 15, 21, 27, 1}};
static const uint16_t w6_split_window[8][4] = {
    {0x003F, 0x07C0, 0xF800, 0x0000},
    {0x003F, 0x07C0, 0xF800, 0x0000},
    {0x001F, 0x07E0, 0xF800, 0x0000},
    {0x001F, 0x07E0, 0xF800, 0x0000},
    {0x001F, 0x03E0, 0xFC00, 0x0000},
    {0x001F, 0x03E0, 0xFC00, 0x0000},
    {0x001F, 0x03E0, 0x7C00, 0x8000},
    {0x001F, 0x03E0, 0x7C00, 0x8000}};
// Lane q + 16 * (c % 2) of the pair holding float 16k + j (q = (16k + j) / 6, c = its
// remainder), and the floats of vector k that come from pair (2p, 2p + 1).
static const int32_t w6_merge_index[6][16] = {
    {0, 16, 0, 16, 0, 16, 1, 17, 1, 17, 1, 17, 2, 18, 2, 18},
    {2, 18, 3, 19, 3, 19, 3, 19, 4, 20, 4, 20, 4, 20, 5, 21},
    {5, 21, 5, 21, 6, 22, 6, 22, 6, 22, 7, 23, 7, 23, 7, 23},
    {8, 24, 8, 24, 8, 24, 9, 25, 9, 25, 9, 25, 10, 26, 10, 26},
    {10, 26, 11, 27, 11, 27, 11, 27, 12, 28, 12, 28, 12, 28, 13, 29},
    {13, 29, 13, 29, 14, 30, 14, 30, 14, 30, 15, 31, 15, 31, 15, 31}};
static const uint16_t w6_merge_pair[6][3] = {
    {0x30C3, 0xC30C, 0x0C30},
    {0xC30C, 0x0C30, 0x30C3},
    {0x0C30, 0x30C3, 0xC30C},
    {0x30C3, 0xC30C, 0x0C30},
    {0xC30C, 0x0C30, 0x30C3},
    {0x0C30, 0x30C3, 0xC30C}};

// Lanes of a 16-float vector at columns col0 ... col0 + 15 that lie in [lo, hi).
static inline W6_TGT __mmask16 w6_span(int64_t col0, int64_t lo, int64_t hi) {
    int64_t a = lo - col0, b = hi - col0;
    if (a < 0) a = 0;
    if (b > 16) b = 16;
    if (b <= a) return 0;
    return (__mmask16)((((uint32_t)1 << (b - a)) - 1u) << a);
}

static W6_TGT void w6_input_avx512(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pl,
                                   int64_t tw, int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr,
                                   float *v, int64_t es) {
    for (int64_t c = c0; c < c1; c++) {
        const float *xc = x + c * H * W;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw, pos = i % nr;
            int64_t n = tw - a;
            if (n > nt - i) n = nt - i;
            if (n > nr - pos) n = nr - pos;
            if (n > 16) n = 16;
            __mmask16 live = (__mmask16)((1u << n) - 1u);
            // The run's columns: ix0 ... ix0 + 6n + 1, those outside the image read 0.
            int64_t ix0 = 6 * a - pl, lo = ix0 < 0 ? 0 : ix0, hi = ix0 + 6 * n + 2 < W ? ix0 + 6 * n + 2 : W;
            __mmask16 m[7];
            for (int k = 0; k < 7; k++) m[k] = w6_span(ix0 + 16 * k, lo, hi);
            __m512 h[8][8];
            for (int r = 0; r < 8; r++) {
                int64_t iy = 6 * ty - pt + r;
                __m512 d[8];
                if (iy < 0 || iy >= H) {
                    for (int f = 0; f < 8; f++) d[f] = _mm512_setzero_ps();
                } else {
                    // Masked-off lanes are never read, so the base may lie outside the row.
                    const float *row = (const float *)((uintptr_t)(xc + iy * W) + (uintptr_t)(ix0 * 4));
                    __m512 L[8];
                    for (int k = 0; k < 7; k++) L[k] = _mm512_maskz_loadu_ps(m[k], (const float *)((uintptr_t)row + (uintptr_t)(64 * k)));
                    L[7] = _mm512_setzero_ps();
                    for (int f = 0; f < 8; f++) {
                        __m512i idx = _mm512_loadu_si512(w6_split_index[f]);
                        __m512 p = _mm512_permutex2var_ps(L[0], idx, L[1]);
                        for (int w = 1; w < 4; w++)
                            p = _mm512_mask_mov_ps(p, (__mmask16)w6_split_window[f][w],
                                                   _mm512_permutex2var_ps(L[2 * w], idx, L[2 * w + 1]));
                        d[f] = _mm512_maskz_mov_ps(live, p);
                    }
                }
                W6_BT(__m512, d, h[r]);
            }
            float *dst = v + (i / nr) * nr * C + c * nr + pos;
            for (int l = 0; l < 8; l++) {
                __m512 col[8], o[8];
                for (int r = 0; r < 8; r++) col[r] = h[r][l];
                W6_BT(__m512, col, o);
                for (int r = 0; r < 8; r++) _mm512_mask_storeu_ps(dst + (8 * r + l) * es, live, o[r]);
            }
            i += n;
        }
        fcn_winograd_zero_tail(v, 64, C, c, nt, nr, es);
    }
}

static W6_TGT void w6_output_avx512(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw,
                                    int64_t t0, int64_t nt, const float *bias, int relu, float *y, int64_t outH,
                                    int64_t outW) {
    for (int64_t co = co0; co < co1; co++) {
        const float *mc = m + co * ldm;
        __m512 b = _mm512_set1_ps(bias ? bias[co] : 0.0f);
        float *yc = y + co * outH * outW;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a;
            if (n > nt - i) n = nt - i;
            if (n > 16) n = 16;
            __mmask16 live = (__mmask16)((1u << n) - 1u);
            // The run's output columns 6a ... 6a + 6n - 1, clipped at outW.
            int64_t x0 = 6 * a, xEnd = x0 + 6 * n < outW ? x0 + 6 * n : outW;
            __m512 s[6][8];
            for (int l = 0; l < 8; l++) {
                __m512 col[8], o[6];
                for (int j = 0; j < 8; j++) col[j] = _mm512_maskz_loadu_ps(live, mc + (8 * j + l) * es + i);
                W6_AT(__m512, col, o);
                for (int r = 0; r < 6; r++) s[r][l] = o[r];
            }
            for (int r = 0; r < 6; r++) {
                int64_t oy = 6 * ty + r;
                if (oy >= outH) break;
                __m512 o[6];
                W6_AT(__m512, s[r], o);
                for (int cc = 0; cc < 6; cc++) {
                    o[cc] = _mm512_add_ps(o[cc], b);
                    if (relu) o[cc] = _mm512_max_ps(_mm512_setzero_ps(), o[cc]); // NaN and -0 kept, as above
                }
                float *row = yc + oy * outW + x0;
                for (int k = 0; k < 6 && x0 + 16 * k < xEnd; k++) {
                    __m512i idx = _mm512_loadu_si512(w6_merge_index[k]);
                    __m512 u = _mm512_permutex2var_ps(o[0], idx, o[1]);
                    u = _mm512_mask_mov_ps(u, (__mmask16)w6_merge_pair[k][1], _mm512_permutex2var_ps(o[2], idx, o[3]));
                    u = _mm512_mask_mov_ps(u, (__mmask16)w6_merge_pair[k][2], _mm512_permutex2var_ps(o[4], idx, o[5]));
                    _mm512_mask_storeu_ps(row + 16 * k, w6_span(x0 + 16 * k, x0, xEnd), u);
                }
            }
            i += n;
        }
    }
}
#endif

// MARK: entry points

void fcn_winograd_f6_weights(const float *w, int64_t cout, int64_t cin, int64_t mr, int64_t q0, int64_t q1,
                             float *u, int64_t estride) {
    static const double G[8][3] = {{1, 0, 0}, {-2.0 / 9, -2.0 / 9, -2.0 / 9}, {-2.0 / 9, 2.0 / 9, -2.0 / 9},
                                   {1.0 / 90, 1.0 / 45, 2.0 / 45}, {1.0 / 90, -1.0 / 45, 2.0 / 45},
                                   {32.0 / 45, 16.0 / 45, 8.0 / 45}, {32.0 / 45, -16.0 / 45, 8.0 / 45}, {0, 0, 1}};
    for (int64_t q = q0; q < q1; q++) {
        for (int64_t ci = 0; ci < cin; ci++) {
            float *d = u + (q * cin + ci) * mr;
            for (int64_t r = 0; r < mr; r++) {
                int64_t co = q * mr + r;
                if (co >= cout) {
                    for (int e = 0; e < 64; e++) d[e * estride + r] = 0.0f;
                    continue;
                }
                const float *g = w + (co * cin + ci) * 9;
                double t[8][3];
                for (int k = 0; k < 8; k++)
                    for (int j = 0; j < 3; j++) t[k][j] = G[k][0] * g[j] + G[k][1] * g[3 + j] + G[k][2] * g[6 + j];
                for (int k = 0; k < 8; k++)
                    for (int l = 0; l < 8; l++)
                        d[(8 * k + l) * estride + r] = (float)(G[l][0] * t[k][0] + G[l][1] * t[k][1] + G[l][2] * t[k][2]);
            }
        }
    }
}

void fcn_winograd_f6_input(int isa, const float *x, int64_t C, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left,
                           int64_t tiles_w, int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr,
                           float *v, int64_t estride, float *scratch) {
    (void)scratch;
#if defined(__x86_64__)
    if (fcn_winograd_isa(isa) == FCN_ISA_AVX512) {
        w6_input_avx512(x, C, H, W, pad_top, pad_left, tiles_w, t0, nt, c0, c1, nr, v, estride);
        return;
    }
#else
    (void)isa;
#endif
    w6_input_body(x, C, H, W, pad_top, pad_left, tiles_w, t0, nt, c0, c1, nr, v, estride);
}

void fcn_winograd_f6_output(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                            int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                            float *y, int64_t outH, int64_t outW, float *scratch) {
    (void)scratch;
#if defined(__x86_64__)
    if (fcn_winograd_isa(isa) == FCN_ISA_AVX512) {
        w6_output_avx512(m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW);
        return;
    }
#else
    (void)isa;
#endif
    w6_output_body(m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW);
}
