// Winograd F(4x4, 3x3) transforms (inference). Contract in include/fcn_winograd.h.
//
// Same structure as winograd.c (F(2x2, 3x3)): bodies written once as plain loops over runs
// of tiles, instantiated portable and under target("avx2,fma") / target("avx512f") on
// x86-64, picked at run time; no FMA contraction, so the paths give identical bits. The
// AVX-512 input and output transforms are the 16-tiles-per-vector kernels of
// winograd_f4_avx512.c instead (same expressions, same bits); the pooled output and the
// weight transform use these bodies on every path.
// Matrices (Lavin & Gray, points 0, +-1, +-2, infinity):
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
#include "fcn_winograd.h"
#include "fcn_kernels.h"
#include "winograd_internal.h"

#pragma clang fp contract(off)

#define W4_INLINE static inline __attribute__((always_inline))

// B^T applied to six values (a column or a row of a patch).
#define W4_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) \
    do {                                                     \
        o0 = (4.0f * d0 - 5.0f * d2) + d4;                   \
        o1 = (d3 + d4) - 4.0f * (d1 + d2);                   \
        o2 = (d4 - d3) + 4.0f * (d1 - d2);                   \
        o3 = (d4 - d2) + 2.0f * (d3 - d1);                   \
        o4 = (d4 - d2) + 2.0f * (d1 - d3);                   \
        o5 = (4.0f * d1 - 5.0f * d3) + d5;                   \
    } while (0)

// A^T applied to six values.
#define W4_AT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)         \
    do {                                                     \
        float p12 = m1 + m2, d12 = m1 - m2;                  \
        float p34 = m3 + m4, d34 = m3 - m4;                  \
        o0 = (m0 + p12) + p34;                               \
        o1 = d12 + 2.0f * d34;                               \
        o2 = p12 + 4.0f * p34;                               \
        o3 = (d12 + 8.0f * d34) + m5;                        \
    } while (0)

// MARK: bodies

// Input transform of tiles [a, a + n) of tile row ty, channel plane xc, into the packed lanes
// from chunk tile i. Every patch row r (input columns 4a - pl ..< 4a - pl + 4n + 2, zero
// outside x) is copied into a line L, then split into its four column phases
// R[r][f][q] = L[4q + f] (q <= n), so that every later loop reads and writes contiguously:
// T = B^T over the rows (phase by phase), then B^T over the six columns 4q ... 4q + 5 of each
// tile, which are T[f][q] for f < 4 and T[0][q + 1], T[1][q + 1].
// Scratch: a line of 4 * (tw + 1) floats, then 12 rows of 4 phases of (tw + 1) floats.
W4_INLINE void w4_input_run(const float *xc, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t ty, int64_t a,
                            int64_t n, int64_t i, int64_t C, int64_t c, int64_t nr, float *v, int64_t es, float *s,
                            int64_t ps) {
    float *L = s, *R[6], *T[6];
    for (int r = 0; r < 6; r++) { R[r] = s + (1 + r) * 4 * ps; T[r] = s + (7 + r) * 4 * ps; }
    int64_t base = 4 * a - pl, cols = 4 * n + 2, len = 4 * (n + 1);
    int64_t lo = base < 0 ? -base : 0, hi = W - base;
    if (lo > cols) lo = cols;
    if (hi > cols) hi = cols;
    if (hi < lo) hi = lo;
    for (int r = 0; r < 6; r++) {
        int64_t iy = 4 * ty - pt + r;
        float *d = R[r];
        if (iy < 0 || iy >= H) {
            for (int f = 0; f < 4; f++)
                for (int64_t q = 0; q <= n; q++) d[f * ps + q] = 0.0f;
            continue;
        }
        const float *row = xc + iy * W + base;
        for (int64_t k = 0; k < lo; k++) L[k] = 0.0f;
        for (int64_t k = lo; k < hi; k++) L[k] = row[k];
        for (int64_t k = hi; k < len; k++) L[k] = 0.0f;
        float *d0 = d, *d1 = d + ps, *d2 = d + 2 * ps, *d3 = d + 3 * ps;
        for (int64_t q = 0; q <= n; q++) {
            d0[q] = L[4 * q]; d1[q] = L[4 * q + 1]; d2[q] = L[4 * q + 2]; d3[q] = L[4 * q + 3];
        }
    }
    for (int f = 0; f < 4; f++) {
        const float *r0 = R[0] + f * ps, *r1 = R[1] + f * ps, *r2 = R[2] + f * ps;
        const float *r3 = R[3] + f * ps, *r4 = R[4] + f * ps, *r5 = R[5] + f * ps;
        float *t0 = T[0] + f * ps, *t1 = T[1] + f * ps, *t2 = T[2] + f * ps;
        float *t3 = T[3] + f * ps, *t4 = T[4] + f * ps, *t5 = T[5] + f * ps;
        for (int64_t q = 0; q <= n; q++) {
            float o0, o1, o2, o3, o4, o5;
            W4_BT(r0[q], r1[q], r2[q], r3[q], r4[q], r5[q], o0, o1, o2, o3, o4, o5);
            t0[q] = o0; t1[q] = o1; t2[q] = o2; t3[q] = o3; t4[q] = o4; t5[q] = o5;
        }
    }
    for (int64_t j = 0; j < n;) {
        int64_t ii = i + j, lane = ii % nr;
        int64_t run = n - j < nr - lane ? n - j : nr - lane;
        float *d = v + (ii / nr) * nr * C + c * nr + lane;
        for (int k = 0; k < 6; k++) {
            const float *p0 = T[k] + j, *p1 = p0 + ps, *p2 = p1 + ps, *p3 = p2 + ps;
            float *e0 = d + (6 * k) * es, *e1 = e0 + es, *e2 = e1 + es, *e3 = e2 + es, *e4 = e3 + es, *e5 = e4 + es;
            for (int64_t q = 0; q < run; q++) {
                float o0, o1, o2, o3, o4, o5;
                W4_BT(p0[q], p1[q], p2[q], p3[q], p0[q + 1], p1[q + 1], o0, o1, o2, o3, o4, o5);
                e0[q] = o0; e1[q] = o1; e2[q] = o2; e3[q] = o3; e4[q] = o4; e5[q] = o5;
            }
        }
        j += run;
    }
}

W4_INLINE void w4_input_body(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t tw,
                             int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr, float *v, int64_t es,
                             float *s) {
    int64_t ps = tw + 1;
    for (int64_t c = c0; c < c1; c++) {
        const float *xc = x + c * H * W;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a < nt - i ? tw - a : nt - i;
            w4_input_run(xc, H, W, pt, pl, ty, a, n, i, C, c, nr, v, es, s, ps);
            i += n;
        }
        fcn_winograd_zero_tail(v, 36, C, c, nt, nr, es);
    }
}

// The 16 cells of n tiles (element e of tile q at p[e * es + q]) into planes Y[r * 4 + c][q]
// (plane stride ys): A^T M A, plus b, clamped at 0 when relu (NaN kept). Two contiguous
// passes over the tiles: S[r][j] = A^T over the rows of each column j, then A^T over S[r].
// S: 24 planes of ys floats.
W4_INLINE void w4_output_tiles(const float *p, int64_t es, int64_t n, float b, int relu, float *Y, int64_t ys,
                               float *S) {
    for (int j = 0; j < 6; j++) {
        const float *m0 = p + j * es, *m1 = m0 + 6 * es, *m2 = m1 + 6 * es;
        const float *m3 = m2 + 6 * es, *m4 = m3 + 6 * es, *m5 = m4 + 6 * es;
        float *s0 = S + j * ys, *s1 = s0 + 6 * ys, *s2 = s1 + 6 * ys, *s3 = s2 + 6 * ys;
        for (int64_t q = 0; q < n; q++) W4_AT(m0[q], m1[q], m2[q], m3[q], m4[q], m5[q], s0[q], s1[q], s2[q], s3[q]);
    }
    for (int r = 0; r < 4; r++) {
        const float *s0 = S + (6 * r) * ys, *s1 = s0 + ys, *s2 = s1 + ys, *s3 = s2 + ys, *s4 = s3 + ys, *s5 = s4 + ys;
        float *y0 = Y + (4 * r) * ys, *y1 = y0 + ys, *y2 = y1 + ys, *y3 = y2 + ys;
        for (int64_t q = 0; q < n; q++) {
            float o0, o1, o2, o3;
            W4_AT(s0[q], s1[q], s2[q], s3[q], s4[q], s5[q], o0, o1, o2, o3);
            o0 += b; o1 += b; o2 += b; o3 += b;
            if (relu) {
                o0 = o0 < 0.0f ? 0.0f : o0; o1 = o1 < 0.0f ? 0.0f : o1;
                o2 = o2 < 0.0f ? 0.0f : o2; o3 = o3 < 0.0f ? 0.0f : o3;
            }
            y0[q] = o0; y1[q] = o1; y2[q] = o2; y3[q] = o3;
        }
    }
}

W4_INLINE void w4_output_body(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw, int64_t t0,
                              int64_t nt, const float *bias, int relu, float *y, int64_t outH, int64_t outW, float *s) {
    for (int64_t co = co0; co < co1; co++) {
        const float *mc = m + co * ldm;
        float b = bias ? bias[co] : 0.0f;
        float *yc = y + co * outH * outW;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a < nt - i ? tw - a : nt - i;
            w4_output_tiles(mc + i, es, n, b, relu, s, tw, s + 16 * tw);
            int64_t x0 = 4 * a, cols = outW - x0 < 4 * n ? outW - x0 : 4 * n;
            for (int r = 0; r < 4; r++) {
                int64_t oy = 4 * ty + r;
                if (oy >= outH) break;
                const float *Y0 = s + (4 * r) * tw, *Y1 = Y0 + tw, *Y2 = Y1 + tw, *Y3 = Y2 + tw;
                float *o = yc + oy * outW + x0;
                int64_t full = cols / 4;
                for (int64_t q = 0; q < full; q++) {
                    o[4 * q] = Y0[q]; o[4 * q + 1] = Y1[q]; o[4 * q + 2] = Y2[q]; o[4 * q + 3] = Y3[q];
                }
                for (int64_t k = 4 * full; k < cols; k++) o[k] = s[(4 * r + k % 4) * tw + k / 4];
            }
            i += n;
        }
    }
}

// w4_output_body followed by a 2x2 stride-2 max pool: tile (ty, tx) holds pool windows
// (2ty + pr, 2tx + pc), pr, pc in {0, 1}; each takes the largest of its cells inside outH x
// outW in the order (0,0), (0,1), (1,0), (1,1), a NaN winning (as winograd.c's pool).
W4_INLINE void w4_output_pool_body(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw,
                                   int64_t t0, int64_t nt, const float *bias, int relu, float *y, int64_t outH,
                                   int64_t outW, int64_t poolH, int64_t poolW, float *s) {
    for (int64_t co = co0; co < co1; co++) {
        const float *mc = m + co * ldm;
        float b = bias ? bias[co] : 0.0f;
        float *yc = y + co * poolH * poolW;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a < nt - i ? tw - a : nt - i;
            w4_output_tiles(mc + i, es, n, b, relu, s, tw, s + 16 * tw);
            for (int pr = 0; pr < 2; pr++) {
                int64_t py = 2 * ty + pr;
                if (py >= poolH) break;
                int yin = 2 * py + 1 < outH;
                const float *Ya = s + (8 * pr) * tw, *Yb = Ya + 4 * tw; // cell rows 2pr, 2pr + 1
                float *o = yc + py * poolW;
                for (int64_t q = 0; q < n; q++) {
                    for (int pc = 0; pc < 2; pc++) {
                        int64_t px = 2 * (a + q) + pc;
                        if (px >= poolW) break;
                        int xin = 2 * px + 1 < outW;
                        float v = Ya[(2 * pc) * tw + q];
                        float v01 = Ya[(2 * pc + 1) * tw + q], v10 = Yb[(2 * pc) * tw + q], v11 = Yb[(2 * pc + 1) * tw + q];
                        if (xin && (v01 > v || v01 != v01)) v = v01;
                        if (yin && (v10 > v || v10 != v10)) v = v10;
                        if (yin && xin && (v11 > v || v11 != v11)) v = v11;
                        o[px] = v;
                    }
                }
            }
            i += n;
        }
    }
}

// Weight transform of output-channel panels [q0, q1): U_e = G g G^T of every kernel, in
// double (once per cached weight, once per call in training), stored as
// u[e * es + (q * cin + ci) * mr + r]. The taps of up to W4_LANES kernels of a panel are
// gathered into lanes first, so the arithmetic runs lane-wise (vectorised) and every store
// is a contiguous run of lanes. Same expressions as a scalar loop, contraction off: the bits
// do not depend on the instance.
#define W4_LANES 16
W4_INLINE void w4_weights_body(const float *w, int64_t cout, int64_t cin, int64_t mr, int64_t q0, int64_t q1,
                               float *u, int64_t es) {
    static const double G[6][3] = {{0.25, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    double g[9][W4_LANES], t[6][3][W4_LANES];
    for (int64_t q = q0; q < q1; q++) {
        for (int64_t r0 = 0; r0 < mr; r0 += W4_LANES) {
            int64_t nl = mr - r0 < W4_LANES ? mr - r0 : W4_LANES;
            int64_t live = cout - (q * mr + r0);
            if (live > nl) live = nl;
            if (live < 0) live = 0;
            for (int64_t ci = 0; ci < cin; ci++) {
                for (int64_t r = 0; r < live; r++) {
                    const float *k = w + ((q * mr + r0 + r) * cin + ci) * 9;
                    for (int j = 0; j < 9; j++) g[j][r] = k[j];
                }
                for (int64_t r = live; r < W4_LANES; r++)
                    for (int j = 0; j < 9; j++) g[j][r] = 0.0;
                for (int k = 0; k < 6; k++)
                    for (int j = 0; j < 3; j++)
                        for (int r = 0; r < W4_LANES; r++)
                            t[k][j][r] = G[k][0] * g[j][r] + G[k][1] * g[3 + j][r] + G[k][2] * g[6 + j][r];
                float *d = u + (q * cin + ci) * mr + r0;
                for (int k = 0; k < 6; k++)
                    for (int l = 0; l < 6; l++) {
                        float *o = d + (6 * k + l) * es;
                        for (int64_t r = 0; r < nl; r++)
                            o[r] = (float)(G[l][0] * t[k][0][r] + G[l][1] * t[k][1][r] + G[l][2] * t[k][2][r]);
                        for (int64_t r = live; r < nl; r++) o[r] = 0.0f;
                    }
            }
        }
    }
}

// MARK: instances

// The input and output transforms (portable and AVX2; AVX-512: winograd_f4_avx512.c).
#define W4_ROW_INSTANCES(SUFFIX, ATTR)                                                                            \
    static ATTR void w4_input_##SUFFIX(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt,           \
                                       int64_t pl, int64_t tw, int64_t t0, int64_t nt, int64_t c0,            \
                                       int64_t c1, int64_t nr, float *v, int64_t es, float *s) {              \
        w4_input_body(x, C, H, W, pt, pl, tw, t0, nt, c0, c1, nr, v, es, s);                                  \
    }                                                                                                         \
    static ATTR void w4_output_##SUFFIX(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1,    \
                                        int64_t tw, int64_t t0, int64_t nt, const float *bias, int relu,      \
                                        float *y, int64_t outH, int64_t outW, float *s) {                     \
        w4_output_body(m, es, ldm, co0, co1, tw, t0, nt, bias, relu, y, outH, outW, s);                       \
    }

#define W4_INSTANCES(SUFFIX, ATTR)                                                                    \
    static ATTR void w4_output_pool_##SUFFIX(const float *m, int64_t es, int64_t ldm, int64_t co0,            \
                                             int64_t co1, int64_t tw, int64_t t0, int64_t nt,                 \
                                             const float *bias, int relu, float *y, int64_t outH,             \
                                             int64_t outW, int64_t poolH, int64_t poolW, float *s) {          \
        w4_output_pool_body(m, es, ldm, co0, co1, tw, t0, nt, bias, relu, y, outH, outW, poolH, poolW, s);    \
    }                                                                                                         \
    static ATTR void w4_weights_##SUFFIX(const float *w, int64_t cout, int64_t cin, int64_t mr, int64_t q0,   \
                                         int64_t q1, float *u, int64_t es) {                                  \
        w4_weights_body(w, cout, cin, mr, q0, q1, u, es);                                                     \
    }

W4_ROW_INSTANCES(portable, )
W4_INSTANCES(portable, )
#if defined(__x86_64__)
W4_ROW_INSTANCES(avx2, __attribute__((target("avx2,fma"))))
W4_INSTANCES(avx2, __attribute__((target("avx2,fma"))))
W4_INSTANCES(avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))))
// AVX-512 rows of tiles: the kernels of winograd_f4_avx512.c (same bits, 16 tiles per vector).
static void w4_input_avx512(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t tw,
                            int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr, float *v, int64_t es, float *s) {
    (void)s;
    fcn_w4_input_avx512(x, C, H, W, pt, pl, tw, t0, nt, c0, c1, nr, v, es);
}
static void w4_output_avx512(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw, int64_t t0,
                             int64_t nt, const float *bias, int relu, float *y, int64_t outH, int64_t outW, float *s) {
    (void)s;
    fcn_w4_output_avx512(m, es, ldm, co0, co1, tw, t0, nt, bias, relu, y, outH, outW);
}

#define W4_DISPATCH(NAME, ...)                                                  \
    do {                                                                        \
        int isa_ = fcn_winograd_isa(isa);                                                 \
        if (isa_ == FCN_ISA_AVX512) { NAME##_avx512(__VA_ARGS__); return; }     \
        if (isa_ == FCN_ISA_AVX2_FMA) { NAME##_avx2(__VA_ARGS__); return; }     \
        NAME##_portable(__VA_ARGS__);                                           \
    } while (0)
#else
#define W4_DISPATCH(NAME, ...) do { (void)isa; NAME##_portable(__VA_ARGS__); } while (0)
#endif

// MARK: entry points

void fcn_winograd_f4_weights(const float *w, int64_t cout, int64_t cin, int64_t mr, int64_t q0, int64_t q1,
                             float *u, int64_t estride) {
    int isa = 0;
    W4_DISPATCH(w4_weights, w, cout, cin, mr, q0, q1, u, estride);
}

void fcn_winograd_f4_input(int isa, const float *x, int64_t C, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left,
                           int64_t tiles_w, int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr,
                           float *v, int64_t estride, float *scratch) {
    W4_DISPATCH(w4_input, x, C, H, W, pad_top, pad_left, tiles_w, t0, nt, c0, c1, nr, v, estride, scratch);
}

void fcn_winograd_f4_output(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                            int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                            float *y, int64_t outH, int64_t outW, float *scratch) {
    W4_DISPATCH(w4_output, m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW, scratch);
}

void fcn_winograd_f4_output_pool(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                                 int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                                 float *y, int64_t outH, int64_t outW, int64_t poolH, int64_t poolW, float *scratch) {
    W4_DISPATCH(w4_output_pool, m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW, poolH, poolW,
                scratch);
}
