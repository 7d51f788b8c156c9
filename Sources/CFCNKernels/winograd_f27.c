// Winograd F(2, 7) along the rows: the transforms of kh x 7 convolutions (fc6 of VGG16-FCN).
// Contract in include/fcn_winograd.h (MARK: F(2, 7)).
//
// Portable C only: the transforms are a few percent of the GEMM work they feed (fc6 at
// 500 x 500: 3 M input and 8 M output values against 30 GFLOP), and the compiler
// vectorises the loops over tiles. No FMA contraction, so every build gives the same bits.
#include "fcn_winograd.h"

#pragma clang fp contract(off)

// U_e = d_e * sum_k p_e^k g_k at the points p = 0, 1, -1, 2, -2, 1/2, -1/2 and infinity (the
// leading tap), with the row scales d = 1, 2/9, 2/9, 1/90, 1/90, 32/45, 32/45, 1 that make
// the input transform's entries short binary fractions. Summed in double, rounded once.
void fcn_winograd_f27_weights(const float *w, int64_t cout, int64_t cin, int64_t kh, int64_t co0, int64_t co1,
                              int e, float *u, int64_t ldu) {
    static const double point[7] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
    static const double scale[8] = {1.0, 2.0 / 9.0, 2.0 / 9.0, 1.0 / 90.0, 1.0 / 90.0, 32.0 / 45.0, 32.0 / 45.0, 1.0};
    (void)cout;
    int64_t taps = cin * kh;
    for (int64_t co = co0; co < co1; co++) {
        const float *g = w + co * taps * 7;
        float *d = u + (co - co0) * ldu;
        for (int64_t t = 0; t < taps; t++) {
            const float *k = g + t * 7;
            double s;
            if (e == 0) {
                s = k[0];
            } else if (e == 7) {
                s = k[6];
            } else {
                double p = point[e], pk = 1.0;
                s = 0.0;
                for (int j = 0; j < 7; j++) { s += pk * (double)k[j]; pk *= p; }
                s *= scale[e];
            }
            d[t] = (float)s;
        }
    }
}

// T_e = B^T d for every pair of output columns, d the 8 input columns 2tx - pad_left ... + 7
// of one input row (read through a zero-padded copy of the row in `scratch`):
//   e0 = d0 - 21/4 d2 + 21/4 d4 - d6            e7 = -d1 + 21/4 d3 - 21/4 d5 + d7
//   e1, e2 = -(o1 + s1), o1 - s1   with s1 = d2 + d6 - 17/4 d4,      o1 = d1 + d5 - 17/4 d3
//   e3, e4 = s2 + o2, s2 - o2      with s2 = 1/4 d2 - 5/4 d4 + d6,   o2 = 1/2 d1 - 5/2 d3 + 2 d5
//   e5, e6 = s3 + o3, s3 - o3      with s3 = 4 d2 - 5 d4 + d6,       o3 = 2 d1 - 5/2 d3 + 1/2 d5
void fcn_winograd_f27_input(const float *x, int64_t H, int64_t W, int64_t pad_left, int64_t row0, int64_t rows,
                            int64_t tiles_w, int64_t c0, int64_t c1, float *t, int64_t estride, float *scratch) {
    int64_t span = 2 * tiles_w + 6;   // padded columns read by the tiles of a row
    for (int64_t c = c0; c < c1; c++) {
        for (int64_t r = 0; r < rows; r++) {
            int64_t iy = row0 + r;
            float *out = t + (c * rows + r) * tiles_w;
            if (iy < 0 || iy >= H) {
                for (int e = 0; e < 8; e++)
                    for (int64_t q = 0; q < tiles_w; q++) out[e * estride + q] = 0.0f;
                continue;
            }
            const float *row = x + (c * H + iy) * W;
            for (int64_t j = 0; j < span; j++) {
                int64_t ix = j - pad_left;
                scratch[j] = (ix >= 0 && ix < W) ? row[ix] : 0.0f;
            }
            float *o0 = out, *o1p = out + estride, *o2p = out + 2 * estride, *o3p = out + 3 * estride;
            float *o4p = out + 4 * estride, *o5p = out + 5 * estride, *o6p = out + 6 * estride, *o7p = out + 7 * estride;
            for (int64_t q = 0; q < tiles_w; q++) {
                const float *d = scratch + 2 * q;
                float d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5], d6 = d[6], d7 = d[7];
                float s1 = d2 + d6 - 4.25f * d4, o1 = d1 + d5 - 4.25f * d3;
                float s2 = 0.25f * d2 - 1.25f * d4 + d6, o2 = 0.5f * d1 - 2.5f * d3 + 2.0f * d5;
                float s3 = 4.0f * d2 - 5.0f * d4 + d6, o3 = 2.0f * d1 - 2.5f * d3 + 0.5f * d5;
                o0[q] = d0 - 5.25f * d2 + 5.25f * d4 - d6;
                o1p[q] = -(o1 + s1);
                o2p[q] = o1 - s1;
                o3p[q] = s2 + o2;
                o4p[q] = s2 - o2;
                o5p[q] = s3 + o3;
                o6p[q] = s3 - o3;
                o7p[q] = -d1 + 5.25f * d3 - 5.25f * d5 + d7;
            }
        }
    }
}

// y = A^T m + bias (then ReLU): y0 = m0 + ... + m6, y1 = m1 - m2 + 2 (m3 - m4) + (m5 - m6) / 2 + m7.
void fcn_winograd_f27_output(const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1, int64_t rows,
                             int64_t tiles_w, const float *bias, int relu, float *y, int64_t plane, int64_t outW) {
    int64_t full = outW / 2;   // tiles with both columns inside the row
    for (int64_t co = co0; co < co1; co++) {
        float b = bias ? bias[co] : 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            const float *p = m + co * ldm + r * tiles_w;
            float *o = y + co * plane + r * outW;
            for (int64_t q = 0; q < tiles_w; q++) {
                float m0 = p[q], m1 = p[estride + q], m2 = p[2 * estride + q], m3 = p[3 * estride + q];
                float m4 = p[4 * estride + q], m5 = p[5 * estride + q], m6 = p[6 * estride + q], m7 = p[7 * estride + q];
                float y0 = m0 + (m1 + m2) + (m3 + m4) + (m5 + m6) + b;
                float y1 = (m1 - m2) + 2.0f * (m3 - m4) + 0.5f * (m5 - m6) + m7 + b;
                if (relu) { y0 = y0 < 0.0f ? 0.0f : y0; y1 = y1 < 0.0f ? 0.0f : y1; }
                o[2 * q] = y0;
                if (q < full) o[2 * q + 1] = y1;
            }
        }
    }
}
