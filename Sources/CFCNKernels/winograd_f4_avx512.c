// Winograd F(4x4, 3x3) input and output transforms written for AVX-512: the AVX-512
// instances of fcn_winograd_f4_input and fcn_winograd_f4_output (contract in
// include/fcn_winograd.h; matrices and the portable bodies in winograd_f4.c).
//
// Why a separate kernel: the portable bodies vectorise along a run of tiles through
// scratch rows, and split every patch row into its four column phases with scalar copies.
// On narrow images (the polyphase parts of the dilated ResNet layers, 9 to 17 tiles per row)
// the runs are shorter than a vector and those bodies run scalar. Here 16 tiles of a row
// are 16 lanes throughout:
// * input: the six patch rows are read as five vectors of 16 columns (masked, zero outside
//   the image); B^T over the rows runs on those contiguous columns; then per transformed row
//   the columns are split into their phases 4q + f (two permutes and two 128-bit shuffles
//   per pair of phases; 4q + 4 and 4q + 5 are phases 0 and 1 shifted by one lane), B^T over
//   the columns, and each of the 36 elements is one store of 16 lanes into its panel.
// * output: the 36 elements of 16 tiles are 36 loads; A^T over the rows and the columns, bias
//   and ReLU; the four columns of each output row are interleaved back (the inverse
//   shuffles) and stored as four vectors of 16 pixels.
// Same expressions in the same order as winograd_f4.c (B^T over the rows first, then the
// columns; A^T likewise), contraction off: every lane gives the bits of the portable path
// (ConvWinogradF4Tests holds the paths equal bit for bit).
#include "fcn_winograd.h"
#include "winograd_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#pragma clang fp contract(off)

#define TGT __attribute__((target("avx512f")))

// Lanes [lo, hi) of a vector of 16, clipped to 0...16.
static inline TGT __mmask16 lanes(int64_t lo, int64_t hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

// B^T applied lane-wise to six vectors (W4_BT of winograd_f4.c).
static inline TGT void bt6(__m512 d0, __m512 d1, __m512 d2, __m512 d3, __m512 d4, __m512 d5, __m512 o[6]) {
    const __m512 c2 = _mm512_set1_ps(2.0f), c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f);
    o[0] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, d0), _mm512_mul_ps(c5, d2)), d4);
    o[1] = _mm512_sub_ps(_mm512_add_ps(d3, d4), _mm512_mul_ps(c4, _mm512_add_ps(d1, d2)));
    o[2] = _mm512_add_ps(_mm512_sub_ps(d4, d3), _mm512_mul_ps(c4, _mm512_sub_ps(d1, d2)));
    o[3] = _mm512_add_ps(_mm512_sub_ps(d4, d2), _mm512_mul_ps(c2, _mm512_sub_ps(d3, d1)));
    o[4] = _mm512_add_ps(_mm512_sub_ps(d4, d2), _mm512_mul_ps(c2, _mm512_sub_ps(d1, d3)));
    o[5] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, d1), _mm512_mul_ps(c5, d3)), d5);
}

// A^T applied lane-wise to six vectors (W4_AT of winograd_f4.c).
static inline TGT void at6(__m512 m0, __m512 m1, __m512 m2, __m512 m3, __m512 m4, __m512 m5, __m512 o[4]) {
    __m512 p12 = _mm512_add_ps(m1, m2), d12 = _mm512_sub_ps(m1, m2);
    __m512 p34 = _mm512_add_ps(m3, m4), d34 = _mm512_sub_ps(m3, m4);
    o[0] = _mm512_add_ps(_mm512_add_ps(m0, p12), p34);
    o[1] = _mm512_add_ps(d12, _mm512_mul_ps(_mm512_set1_ps(2.0f), d34));
    o[2] = _mm512_add_ps(p12, _mm512_mul_ps(_mm512_set1_ps(4.0f), p34));
    o[3] = _mm512_add_ps(_mm512_add_ps(d12, _mm512_mul_ps(_mm512_set1_ps(8.0f), d34)), m5);
}

// Positions in (a:b), 32 floats, of phases 0 and 1 (lanes 0-7, 8-15) and of phases 2 and 3.
static const int32_t kPhases01[16] __attribute__((aligned(64))) = {0, 4, 8, 12, 16, 20, 24, 28,
                                                                   1, 5, 9, 13, 17, 21, 25, 29};
static const int32_t kPhases23[16] __attribute__((aligned(64))) = {2, 6, 10, 14, 18, 22, 26, 30,
                                                                   3, 7, 11, 15, 19, 23, 27, 31};
// Inverse: 16 pixels 4q + c (q < 4) from (a:b) = (Y0[0..7], Y1[0..7] : Y2[0..7], Y3[0..7]),
// tiles 0-3 (kInterleaveLo) and 4-7 (kInterleaveHi).
static const int32_t kInterleaveLo[16] __attribute__((aligned(64))) = {0, 8, 16, 24, 1, 9, 17, 25,
                                                                       2, 10, 18, 26, 3, 11, 19, 27};
static const int32_t kInterleaveHi[16] __attribute__((aligned(64))) = {4, 12, 20, 28, 5, 13, 21, 29,
                                                                       6, 14, 22, 30, 7, 15, 23, 31};

// V for g <= 16 tiles of tile row ty starting at tile column a, channel plane xc, stored at
// d + e * es (16 lanes, the first g kept). T: 6 rows of 96 floats.
static inline TGT void input_group(const float *xc, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t ty,
                                   int64_t a, int64_t g, float *d, int64_t es, float T[6][96]) {
    int64_t base = 4 * a - pl, cols = 4 * g + 2;
    int64_t lo = base < 0 ? -base : 0, hi = W - base;
    if (hi > cols) hi = cols;
    int64_t vecs = (cols + 15) / 16;
    for (int64_t u = 0; u < vecs; u++) {
        __mmask16 m = lanes(lo - 16 * u, hi - 16 * u);
        __m512 r[6];
        for (int k = 0; k < 6; k++) {
            int64_t iy = 4 * ty - pt + k;
            r[k] = (iy < 0 || iy >= H || !m) ? _mm512_setzero_ps()
                                            : _mm512_maskz_loadu_ps(m, xc + iy * W + base + 16 * u);
        }
        __m512 o[6];
        bt6(r[0], r[1], r[2], r[3], r[4], r[5], o);
        for (int k = 0; k < 6; k++) _mm512_store_ps(T[k] + 16 * u, o[k]);
    }
    for (int64_t u = vecs; u < 5; u++)
        for (int k = 0; k < 6; k++) _mm512_store_ps(T[k] + 16 * u, _mm512_setzero_ps());
    const __m512i i01 = _mm512_load_si512(kPhases01), i23 = _mm512_load_si512(kPhases23);
    __mmask16 keep = lanes(0, g);
    for (int k = 0; k < 6; k++) {
        const float *t = T[k];
        __m512 x0 = _mm512_load_ps(t), x1 = _mm512_load_ps(t + 16), x2 = _mm512_load_ps(t + 32),
               x3 = _mm512_load_ps(t + 48);
        __m512 p01 = _mm512_permutex2var_ps(x0, i01, x1), p23 = _mm512_permutex2var_ps(x0, i23, x1);
        __m512 q01 = _mm512_permutex2var_ps(x2, i01, x3), q23 = _mm512_permutex2var_ps(x2, i23, x3);
        __m512 f0 = _mm512_shuffle_f32x4(p01, q01, 0x44), f1 = _mm512_shuffle_f32x4(p01, q01, 0xEE);
        __m512 f2 = _mm512_shuffle_f32x4(p23, q23, 0x44), f3 = _mm512_shuffle_f32x4(p23, q23, 0xEE);
        __m512i n0 = _mm512_castps_si512(_mm512_load_ps(t + 64)), n1 = _mm512_castps_si512(_mm512_loadu_ps(t + 65));
        __m512 f4 = _mm512_castsi512_ps(_mm512_alignr_epi32(n0, _mm512_castps_si512(f0), 1));
        __m512 f5 = _mm512_castsi512_ps(_mm512_alignr_epi32(n1, _mm512_castps_si512(f1), 1));
        __m512 o[6];
        bt6(f0, f1, f2, f3, f4, f5, o);
        for (int l = 0; l < 6; l++) _mm512_mask_storeu_ps(d + (6 * k + l) * es, keep, o[l]);
    }
}

static TGT void input_rows(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t tw,
                           int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr, float *v, int64_t es) {
    float T[6][96] __attribute__((aligned(64)));
    for (int k = 0; k < 6; k++) _mm512_store_ps(T[k] + 80, _mm512_setzero_ps());
    for (int64_t c = c0; c < c1; c++) {
        const float *xc = x + c * H * W;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a < nt - i ? tw - a : nt - i;
            for (int64_t j = 0; j < n;) {
                int64_t ii = i + j, lane = ii % nr;
                int64_t g = n - j;
                if (g > 16) g = 16;
                if (g > nr - lane) g = nr - lane;
                input_group(xc, H, W, pt, pl, ty, a + j, g, v + (ii / nr) * nr * C + c * nr + lane, es, T);
                j += g;
            }
            i += n;
        }
        fcn_winograd_zero_tail(v, 36, C, c, nt, nr, es);
    }
}

static TGT void output_rows(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw,
                            int64_t t0, int64_t nt, const float *bias, int relu, float *y, int64_t outH,
                            int64_t outW) {
    const __m512i lo = _mm512_load_si512(kInterleaveLo), hi = _mm512_load_si512(kInterleaveHi);
    for (int64_t co = co0; co < co1; co++) {
        const float *mc = m + co * ldm;
        __m512 b = _mm512_set1_ps(bias ? bias[co] : 0.0f);
        float *yc = y + co * outH * outW;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a < nt - i ? tw - a : nt - i;
            for (int64_t j = 0; j < n; j += 16) {
                int64_t g = n - j < 16 ? n - j : 16;
                __mmask16 keep = lanes(0, g);
                const float *p = mc + i + j;
                // S[r][col] = A^T over the six rows of column col.
                __m512 S[4][6];
                for (int col = 0; col < 6; col++) {
                    __m512 o[4];
                    at6(_mm512_maskz_loadu_ps(keep, p + col * es), _mm512_maskz_loadu_ps(keep, p + (6 + col) * es),
                        _mm512_maskz_loadu_ps(keep, p + (12 + col) * es), _mm512_maskz_loadu_ps(keep, p + (18 + col) * es),
                        _mm512_maskz_loadu_ps(keep, p + (24 + col) * es), _mm512_maskz_loadu_ps(keep, p + (30 + col) * es),
                        o);
                    for (int r = 0; r < 4; r++) S[r][col] = o[r];
                }
                int64_t x0 = 4 * (a + j), cols = outW - x0 < 4 * g ? outW - x0 : 4 * g;
                for (int r = 0; r < 4; r++) {
                    int64_t oy = 4 * ty + r;
                    if (oy >= outH) break;
                    __m512 Y[4];
                    at6(S[r][0], S[r][1], S[r][2], S[r][3], S[r][4], S[r][5], Y);
                    for (int c = 0; c < 4; c++) {
                        Y[c] = _mm512_add_ps(Y[c], b);
                        if (relu) Y[c] = _mm512_max_ps(_mm512_setzero_ps(), Y[c]);   // -0 and NaN kept
                    }
                    __m512 y01a = _mm512_shuffle_f32x4(Y[0], Y[1], 0x44), y01b = _mm512_shuffle_f32x4(Y[0], Y[1], 0xEE);
                    __m512 y23a = _mm512_shuffle_f32x4(Y[2], Y[3], 0x44), y23b = _mm512_shuffle_f32x4(Y[2], Y[3], 0xEE);
                    __m512 out[4] = {_mm512_permutex2var_ps(y01a, lo, y23a), _mm512_permutex2var_ps(y01a, hi, y23a),
                                     _mm512_permutex2var_ps(y01b, lo, y23b), _mm512_permutex2var_ps(y01b, hi, y23b)};
                    float *o = yc + oy * outW + x0;
                    for (int u = 0; u < 4; u++) {
                        __mmask16 mk = lanes(0, cols - 16 * u);
                        if (mk) _mm512_mask_storeu_ps(o + 16 * u, mk, out[u]);
                    }
                }
            }
            i += n;
        }
    }
}

void fcn_w4_input_avx512(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t tw,
                         int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr, float *v, int64_t es) {
    input_rows(x, C, H, W, pt, pl, tw, t0, nt, c0, c1, nr, v, es);
}

void fcn_w4_output_avx512(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw,
                          int64_t t0, int64_t nt, const float *bias, int relu, float *y, int64_t outH,
                          int64_t outW) {
    output_rows(m, es, ldm, co0, co1, tw, t0, nt, bias, relu, y, outH, outW);
}

#else
typedef int fcn_w4_avx512_unavailable; // not an empty file off x86-64
#endif
