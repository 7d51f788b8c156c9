// Winograd F(4x4, 3x3) weight-gradient transforms (training). Contract in
// include/fcn_winograd.h.
//
// The forward is y = A^T [(G g G^T) .* (B^T d B)] A on 4x4 output tiles (matrices in
// winograd_f4.c). Its weight gradient reuses the forward's input transform V = B^T d B and
// maps the output gradient dY (4x4) to dM = A dY A^T (6x6); dU = sum over tiles of dM .* V
// is a GEMM per element, and the kernel gradient is G^T dU G (3x3). A (6x4) has rows
//   [1 0 0 0], [1 1 1 1], [1 -1 1 -1], [1 2 4 8], [1 -2 4 -8], [0 0 0 1].
// Bodies are written once, lane-wise over runs of tiles or kernels, and instantiated
// portable and under target("avx2,fma") / target("avx512f") on x86-64 (picked at run time);
// no FMA contraction, so every instance gives the same bits.
#include "fcn_winograd.h"
#include "fcn_kernels.h"
#include "winograd_internal.h"

#pragma clang fp contract(off)

#define W4G_INLINE static inline __attribute__((always_inline))
#define W4G_LANES 16

// A applied to four values.
#define W4G_A(y0, y1, y2, y3, o0, o1, o2, o3, o4, o5) \
    do {                                             \
        float s02 = y0 + y2, s13 = y1 + y3;          \
        float q02 = y0 + 4.0f * y2, q13 = 2.0f * y1 + 8.0f * y3; \
        o0 = y0;                                     \
        o1 = s02 + s13;                              \
        o2 = s02 - s13;                              \
        o3 = q02 + q13;                              \
        o4 = q02 - q13;                              \
        o5 = y3;                                     \
    } while (0)

// dM of tiles t0 ..< t0 + nt for channels co0 ..< co1: element e = 6k + l of tile i and
// channel co at dm[e * es + co * ldm + i]; columns nt ..< ldm set to 0. Cells of dY outside
// outH x outW read 0. The tiles of one run share a tile row: their rows are gathered into
// lanes (Y[r][lane]), A is applied down the columns, then along the rows.
W4G_INLINE void w4g_output_body(const float *gy, int64_t outH, int64_t outW, int64_t tw, int64_t t0, int64_t nt,
                                int64_t co0, int64_t co1, float *dm, int64_t es, int64_t ldm) {
    float Y[4][4][W4G_LANES], T[6][4][W4G_LANES];
    for (int64_t co = co0; co < co1; co++) {
        const float *g = gy + co * outH * outW;
        float *d = dm + co * ldm;
        int64_t i = 0;
        while (i < nt) {
            int64_t t = t0 + i, ty = t / tw, tx = t % tw;
            int64_t n = tw - tx;
            if (n > nt - i) n = nt - i;
            if (n > W4G_LANES) n = W4G_LANES;
            // Whole tiles (n of them, every cell inside dY) are read without checks.
            int full = n == W4G_LANES && 4 * ty + 3 < outH && 4 * (tx + n) <= outW;
            for (int r = 0; r < 4; r++) {
                int64_t oy = 4 * ty + r;
                const float *row = g + oy * outW + 4 * tx;
                if (full) {
                    for (int64_t q = 0; q < W4G_LANES; q++) {
                        Y[r][0][q] = row[4 * q]; Y[r][1][q] = row[4 * q + 1];
                        Y[r][2][q] = row[4 * q + 2]; Y[r][3][q] = row[4 * q + 3];
                    }
                    continue;
                }
                for (int c = 0; c < 4; c++)
                    for (int64_t q = 0; q < W4G_LANES; q++) {
                        int64_t ox = 4 * (tx + q) + c;
                        Y[r][c][q] = (q < n && oy < outH && ox < outW) ? g[oy * outW + ox] : 0.0f;
                    }
            }
            // T = A Y (6x4): A down each column c.
            for (int c = 0; c < 4; c++)
                for (int64_t q = 0; q < W4G_LANES; q++)
                    W4G_A(Y[0][c][q], Y[1][c][q], Y[2][c][q], Y[3][c][q], T[0][c][q], T[1][c][q], T[2][c][q],
                          T[3][c][q], T[4][c][q], T[5][c][q]);
            // dM = T A^T (6x6): A along each row k.
            for (int k = 0; k < 6; k++) {
                float o[6][W4G_LANES];
                for (int64_t q = 0; q < W4G_LANES; q++)
                    W4G_A(T[k][0][q], T[k][1][q], T[k][2][q], T[k][3][q], o[0][q], o[1][q], o[2][q], o[3][q], o[4][q],
                          o[5][q]);
                for (int l = 0; l < 6; l++) {
                    float *dst = d + (6 * k + l) * es + i;
                    if (n == W4G_LANES) {
                        for (int64_t q = 0; q < W4G_LANES; q++) dst[q] = o[l][q];
                    } else {
                        for (int64_t q = 0; q < n; q++) dst[q] = o[l][q];
                    }
                }
            }
            i += n;
        }
        for (int64_t j = nt; j < ldm; j++)
            for (int e = 0; e < 36; e++) d[e * es + j] = 0.0f;
    }
}

// gw[k] = G^T dU[k] G for kernels k0 ..< k1 of the plane (cout * cin kernels), in double:
// up to W4G_LANES kernels at a time, their 36 elements read as contiguous lane runs.
W4G_INLINE void w4g_weights_body(const float *du, int64_t plane, int64_t k0, int64_t k1, float *gw) {
    static const double G[6][3] = {{0.25, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    double u[36][W4G_LANES], t[3][6][W4G_LANES], o[9][W4G_LANES];
    for (int64_t k = k0; k < k1; k += W4G_LANES) {
        int64_t n = k1 - k < W4G_LANES ? k1 - k : W4G_LANES;
        for (int e = 0; e < 36; e++) {
            const float *src = du + e * plane + k;
            for (int64_t q = 0; q < W4G_LANES; q++) u[e][q] = q < n ? src[q] : 0.0;
        }
        // t = G^T dU (3x6).
        for (int a = 0; a < 3; a++)
            for (int j = 0; j < 6; j++)
                for (int64_t q = 0; q < W4G_LANES; q++)
                    t[a][j][q] = ((G[0][a] * u[j][q] + G[1][a] * u[6 + j][q]) + (G[2][a] * u[12 + j][q] + G[3][a] * u[18 + j][q]))
                                 + (G[4][a] * u[24 + j][q] + G[5][a] * u[30 + j][q]);
        // g = t G (3x3).
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                for (int64_t q = 0; q < W4G_LANES; q++)
                    o[3 * a + b][q] = ((G[0][b] * t[a][0][q] + G[1][b] * t[a][1][q]) + (G[2][b] * t[a][2][q] + G[3][b] * t[a][3][q]))
                                      + (G[4][b] * t[a][4][q] + G[5][b] * t[a][5][q]);
        for (int64_t q = 0; q < n; q++)
            for (int j = 0; j < 9; j++) gw[(k + q) * 9 + j] = (float)o[j][q];
    }
}

#define W4G_INSTANCES(SUFFIX, ATTR)                                                                           \
    static ATTR void w4g_output_##SUFFIX(const float *gy, int64_t outH, int64_t outW, int64_t tw, int64_t t0, \
                                         int64_t nt, int64_t co0, int64_t co1, float *dm, int64_t es,        \
                                         int64_t ldm) {                                                      \
        w4g_output_body(gy, outH, outW, tw, t0, nt, co0, co1, dm, es, ldm);                                   \
    }                                                                                                         \
    static ATTR void w4g_weights_##SUFFIX(const float *du, int64_t plane, int64_t k0, int64_t k1, float *gw) { \
        w4g_weights_body(du, plane, k0, k1, gw);                                                              \
    }

W4G_INSTANCES(portable, )
#if defined(__x86_64__)
W4G_INSTANCES(avx2, __attribute__((target("avx2,fma"))))
W4G_INSTANCES(avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))))
#define W4G_DISPATCH(NAME, ...)                                             \
    do {                                                                    \
        int isa_ = fcn_winograd_isa(0);                                     \
        if (isa_ == FCN_ISA_AVX512) { NAME##_avx512(__VA_ARGS__); return; } \
        if (isa_ == FCN_ISA_AVX2_FMA) { NAME##_avx2(__VA_ARGS__); return; } \
        NAME##_portable(__VA_ARGS__);                                       \
    } while (0)
#else
#define W4G_DISPATCH(NAME, ...) do { NAME##_portable(__VA_ARGS__); } while (0)
#endif

void fcn_winograd_f4_grad_output(const float *gy, int64_t outH, int64_t outW, int64_t tiles_w, int64_t t0,
                                 int64_t nt, int64_t co0, int64_t co1, float *dm, int64_t estride, int64_t ldm) {
    W4G_DISPATCH(w4g_output, gy, outH, outW, tiles_w, t0, nt, co0, co1, dm, estride, ldm);
}

void fcn_winograd_f4_weights_grad(const float *du, int64_t cout, int64_t cin, int64_t k0, int64_t k1, float *gw) {
    W4G_DISPATCH(w4g_weights, du, cout * cin, k0, k1, gw);
}
