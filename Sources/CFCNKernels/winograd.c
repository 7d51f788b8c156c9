// Winograd F(2x2, 3x3) transforms. Contract in include/fcn_winograd.h.
//
// The bodies are written once as plain loops over runs of tiles (vectorised by the
// compiler) and instantiated three times: portable, and under target("avx2,fma") and
// target("avx512f") for x86-64, picked at run time. No FMA contraction is allowed
// (every value is a sum or difference), so the paths give identical bits.
#include "fcn_winograd.h"
#include "fcn_kernels.h"
#include "winograd_internal.h"

#pragma clang fp contract(off)

#define WINO_INLINE static inline __attribute__((always_inline))

// MARK: bodies

// Input transform of the tiles [a, a + n) of tile row ty, channel plane xc, into the packed
// lanes starting at chunk tile i. E[r]/O[r] hold the even/odd input columns 2(a+j) - pad_left
// (+1) of patch row r, j = 0 ... n (one past the run: the patch of tile j spans j and j+1).
WINO_INLINE void wino_input_run(const float *xc, int64_t H, int64_t W, int64_t pt, int64_t pl,
                                int64_t ty, int64_t a, int64_t n, int64_t i, int64_t C, int64_t c,
                                int64_t nr, float *v, int64_t es, float *s, int64_t ss) {
    float *E[4], *O[4];
    for (int r = 0; r < 4; r++) { E[r] = s + (2 * r) * ss; O[r] = s + (2 * r + 1) * ss; }
    // Columns 2(a+j) - pl and 2(a+j) - pl + 1 lie inside [0, W) for j in [jlo, jhi).
    int64_t base = 2 * a - pl;
    int64_t jlo = base >= 0 ? 0 : (-base + 1) / 2;
    int64_t lim = W - 2 - base;                 // base + 2j + 1 <= W - 1
    int64_t jhi = lim >= 0 ? lim / 2 + 1 : 0;
    if (jhi > n + 1) jhi = n + 1;
    if (jlo > jhi) jlo = jhi;
    for (int r = 0; r < 4; r++) {
        int64_t iy = 2 * ty - pt + r;
        float *e = E[r], *o = O[r];
        if (iy < 0 || iy >= H) {
            for (int64_t j = 0; j <= n; j++) { e[j] = 0.0f; o[j] = 0.0f; }
            continue;
        }
        const float *row = xc + iy * W;
        for (int64_t j = 0; j < jlo; j++) {
            int64_t ix = base + 2 * j;
            e[j] = (ix >= 0 && ix < W) ? row[ix] : 0.0f;
            o[j] = (ix + 1 >= 0 && ix + 1 < W) ? row[ix + 1] : 0.0f;
        }
        const float *rb = row + base;
        for (int64_t j = jlo; j < jhi; j++) { e[j] = rb[2 * j]; o[j] = rb[2 * j + 1]; }
        for (int64_t j = jhi; j <= n; j++) {
            int64_t ix = base + 2 * j;
            e[j] = (ix >= 0 && ix < W) ? row[ix] : 0.0f;
            o[j] = (ix + 1 >= 0 && ix + 1 < W) ? row[ix + 1] : 0.0f;
        }
    }
    // Column transform B^T d (over the patch rows), even and odd columns alike:
    // w0 = d0 - d2, w1 = d1 + d2, w2 = d2 - d1, w3 = d1 - d3.
    float *wE[4], *wO[4];
    for (int k = 0; k < 4; k++) { wE[k] = s + (8 + k) * ss; }
    // Reuse E[3]/O[3] storage for the odd results after the even ones are done.
    for (int64_t j = 0; j <= n; j++) {
        float d0 = E[0][j], d1 = E[1][j], d2 = E[2][j], d3 = E[3][j];
        wE[0][j] = d0 - d2; wE[1][j] = d1 + d2; wE[2][j] = d2 - d1; wE[3][j] = d1 - d3;
    }
    // Odd columns: results go to E[0..3] (no longer needed).
    for (int k = 0; k < 4; k++) wO[k] = E[k];
    for (int64_t j = 0; j <= n; j++) {
        float d0 = O[0][j], d1 = O[1][j], d2 = O[2][j], d3 = O[3][j];
        wO[0][j] = d0 - d2; wO[1][j] = d1 + d2; wO[2][j] = d2 - d1; wO[3][j] = d1 - d3;
    }
    // Row transform (over the patch columns 2j, 2j+1, 2j+2, 2j+3 = E[j], O[j], E[j+1], O[j+1]):
    // v0 = c0 - c2, v1 = c1 + c2, v2 = c2 - c1, v3 = c1 - c3; stored run by run inside panels.
    for (int64_t j = 0; j < n;) {
        int64_t ii = i + j, lane = ii % nr;
        int64_t run = n - j < nr - lane ? n - j : nr - lane;
        float *d = v + (ii / nr) * nr * C + c * nr + lane;
        for (int k = 0; k < 4; k++) {
            const float *we = wE[k] + j, *wo = wO[k] + j;
            float *d0 = d + (4 * k) * es, *d1 = d0 + es, *d2 = d1 + es, *d3 = d2 + es;
            for (int64_t q = 0; q < run; q++) {
                float c0 = we[q], c1 = wo[q], c2 = we[q + 1], c3 = wo[q + 1];
                d0[q] = c0 - c2; d1[q] = c1 + c2; d2[q] = c2 - c1; d3[q] = c1 - c3;
            }
        }
        j += run;
    }
}

WINO_INLINE void wino_input_body(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pl,
                                 int64_t tw, int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr,
                                 float *v, int64_t es, float *s) {
    int64_t ss = tw + 2;
    for (int64_t c = c0; c < c1; c++) {
        const float *xc = x + c * H * W;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a < nt - i ? tw - a : nt - i;
            wino_input_run(xc, H, W, pt, pl, ty, a, n, i, C, c, nr, v, es, s, ss);
            i += n;
        }
        fcn_winograd_zero_tail(v, 16, C, c, nt, nr, es);
    }
}

// A^T M A of one tile (element e of the tile at p[e * es]) plus b, clamped at 0 when relu:
// over rows s0 = m0 + m1 + m2, s1 = m1 - m2 - m3 (per column), then over columns
// Y.0 = s.0 + s.1 + s.2, Y.1 = s.1 - s.2 - s.3.
WINO_INLINE void wino_output_tile(const float *p, int64_t es, float b, int relu, float *y00, float *y01, float *y10,
                                  float *y11) {
    float m00 = p[0 * es], m01 = p[1 * es], m02 = p[2 * es], m03 = p[3 * es];
    float m10 = p[4 * es], m11 = p[5 * es], m12 = p[6 * es], m13 = p[7 * es];
    float m20 = p[8 * es], m21 = p[9 * es], m22 = p[10 * es], m23 = p[11 * es];
    float m30 = p[12 * es], m31 = p[13 * es], m32 = p[14 * es], m33 = p[15 * es];
    float s00 = m00 + m10 + m20, s01 = m01 + m11 + m21, s02 = m02 + m12 + m22, s03 = m03 + m13 + m23;
    float s10 = m10 - m20 - m30, s11 = m11 - m21 - m31, s12 = m12 - m22 - m32, s13 = m13 - m23 - m33;
    float a = s00 + s01 + s02 + b, c = s01 - s02 - s03 + b;
    float d = s10 + s11 + s12 + b, e = s11 - s12 - s13 + b;
    if (relu) {
        a = a < 0.0f ? 0.0f : a; c = c < 0.0f ? 0.0f : c;
        d = d < 0.0f ? 0.0f : d; e = e < 0.0f ? 0.0f : e;
    }
    *y00 = a; *y01 = c; *y10 = d; *y11 = e;
}

WINO_INLINE void wino_output_body(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw,
                                  int64_t t0, int64_t nt, const float *bias, int relu, float *y, int64_t outH,
                                  int64_t outW, float *s) {
    float *Y00 = s, *Y01 = s + tw, *Y10 = s + 2 * tw, *Y11 = s + 3 * tw;
    for (int64_t co = co0; co < co1; co++) {
        const float *mc = m + co * ldm;
        float b = bias ? bias[co] : 0.0f;
        float *yc = y + co * outH * outW;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a < nt - i ? tw - a : nt - i;
            const float *p = mc + i;
            for (int64_t q = 0; q < n; q++) {
                float y00, y01, y10, y11;
                wino_output_tile(p + q, es, b, relu, &y00, &y01, &y10, &y11);
                Y00[q] = y00; Y01[q] = y01; Y10[q] = y10; Y11[q] = y11;
            }
            // Interleave into the two output rows, clipped to outH x outW.
            int64_t x0 = 2 * a;
            int64_t full = (outW - x0) / 2;          // tiles with both columns inside
            if (full > n) full = n;
            for (int r = 0; r < 2; r++) {
                int64_t oy = 2 * ty + r;
                if (oy >= outH) break;
                const float *L = r ? Y10 : Y00, *R = r ? Y11 : Y01;
                float *o = yc + oy * outW + x0;
                for (int64_t q = 0; q < full; q++) { o[2 * q] = L[q]; o[2 * q + 1] = R[q]; }
                if (full < n) o[2 * full] = L[full];   // the last tile of an odd width
            }
            i += n;
        }
    }
}

// wino_output_body followed by a 2x2 stride-2 max pool: tile (ty, tx) is pool window (ty, tx),
// so each tile's (biased, ReLU'd) cells inside outH x outW reduce to one pooled value, taken
// in the order (0,0), (0,1), (1,0), (1,1) with a NaN winning, as fcn's max pool does.
// Windows past poolH x poolW (floor mode drops an odd last row or column) are not written.
WINO_INLINE void wino_output_pool_body(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw,
                                       int64_t t0, int64_t nt, const float *bias, int relu, float *y, int64_t outH,
                                       int64_t outW, int64_t poolH, int64_t poolW, float *s) {
    float *P = s;
    for (int64_t co = co0; co < co1; co++) {
        const float *mc = m + co * ldm;
        float b = bias ? bias[co] : 0.0f;
        float *yc = y + co * poolH * poolW;
        for (int64_t i = 0; i < nt;) {
            int64_t t = t0 + i, ty = t / tw, a = t % tw;
            int64_t n = tw - a < nt - i ? tw - a : nt - i;
            const float *p = mc + i;
            int yin = 2 * ty + 1 < outH;
            for (int64_t q = 0; q < n; q++) {
                float y00, y01, y10, y11;
                wino_output_tile(p + q, es, b, relu, &y00, &y01, &y10, &y11);
                int xin = 2 * (a + q) + 1 < outW;
                float v = y00;
                if (xin && (y01 > v || y01 != y01)) v = y01;
                if (yin && (y10 > v || y10 != y10)) v = y10;
                if (yin && xin && (y11 > v || y11 != y11)) v = y11;
                P[q] = v;
            }
            if (ty < poolH) {
                int64_t cnt = poolW - a < n ? poolW - a : n;
                float *o = yc + ty * poolW + a;
                for (int64_t q = 0; q < cnt; q++) o[q] = P[q];
            }
            i += n;
        }
    }
}

// MARK: instances

#define WINO_INSTANCES(SUFFIX, ATTR)                                                                          \
    static ATTR void wino_input_##SUFFIX(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt,         \
                                         int64_t pl, int64_t tw, int64_t t0, int64_t nt, int64_t c0,          \
                                         int64_t c1, int64_t nr, float *v, int64_t es, float *s) {            \
        wino_input_body(x, C, H, W, pt, pl, tw, t0, nt, c0, c1, nr, v, es, s);                                \
    }                                                                                                         \
    static ATTR void wino_output_##SUFFIX(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1,  \
                                          int64_t tw, int64_t t0, int64_t nt, const float *bias, int relu,    \
                                          float *y, int64_t outH, int64_t outW, float *s) {                   \
        wino_output_body(m, es, ldm, co0, co1, tw, t0, nt, bias, relu, y, outH, outW, s);                     \
    }                                                                                                         \
    static ATTR void wino_output_pool_##SUFFIX(const float *m, int64_t es, int64_t ldm, int64_t co0,          \
                                               int64_t co1, int64_t tw, int64_t t0, int64_t nt,               \
                                               const float *bias, int relu, float *y, int64_t outH,           \
                                               int64_t outW, int64_t poolH, int64_t poolW, float *s) {        \
        wino_output_pool_body(m, es, ldm, co0, co1, tw, t0, nt, bias, relu, y, outH, outW, poolH, poolW, s);  \
    }

WINO_INSTANCES(portable, )
#if defined(__x86_64__)
WINO_INSTANCES(avx2, __attribute__((target("avx2,fma"))))
WINO_INSTANCES(avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))))

// The x86 instance to run: `requested`, or (0) the best this CPU has (shared with
// winograd_f4.c through winograd_internal.h).
int fcn_winograd_isa(int requested) {
    if (requested) return requested;
    static int v = -1;
    int r = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (r < 0) {
        int f = fcn_cpu_isa_flags();
        r = (f & FCN_ISA_AVX512) ? FCN_ISA_AVX512 : (f & FCN_ISA_AVX2_FMA) ? FCN_ISA_AVX2_FMA : FCN_ISA_PORTABLE;
        __atomic_store_n(&v, r, __ATOMIC_RELAXED);
    }
    return r;
}
#endif

// MARK: entry points

void fcn_winograd_f2_weights(const float *w, int64_t cout, int64_t cin, int64_t mr, int64_t q0, int64_t q1,
                             float *u, int64_t estride) {
    for (int64_t q = q0; q < q1; q++) {
        float *dq = u + q * mr * cin;
        for (int64_t ci = 0; ci < cin; ci++) {
            float *d = dq + ci * mr;
            for (int64_t r = 0; r < mr; r++) {
                int64_t co = q * mr + r;
                if (co >= cout) {
                    for (int e = 0; e < 16; e++) d[e * estride + r] = 0.0f;
                    continue;
                }
                const float *g = w + (co * cin + ci) * 9;
                // t = G g (4 x 3): rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2 of the kernel rows.
                float t[4][3];
                for (int j = 0; j < 3; j++) {
                    float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                    t[0][j] = g0;
                    t[1][j] = 0.5f * (g0 + g1 + g2);
                    t[2][j] = 0.5f * (g0 - g1 + g2);
                    t[3][j] = g2;
                }
                // U = t G^T (4 x 4), the same combination along the columns.
                for (int k = 0; k < 4; k++) {
                    float a0 = t[k][0], a1 = t[k][1], a2 = t[k][2];
                    d[(4 * k + 0) * estride + r] = a0;
                    d[(4 * k + 1) * estride + r] = 0.5f * (a0 + a1 + a2);
                    d[(4 * k + 2) * estride + r] = 0.5f * (a0 - a1 + a2);
                    d[(4 * k + 3) * estride + r] = a2;
                }
            }
        }
    }
}

void fcn_winograd_f2_input(int isa, const float *x, int64_t C, int64_t H, int64_t W, int64_t pad_top, int64_t pad_left,
                           int64_t tiles_w, int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr,
                           float *v, int64_t estride, float *scratch) {
#if defined(__x86_64__)
    isa = fcn_winograd_isa(isa);
    if (isa == FCN_ISA_AVX512) {
        wino_input_avx512(x, C, H, W, pad_top, pad_left, tiles_w, t0, nt, c0, c1, nr, v, estride, scratch);
        return;
    }
    if (isa == FCN_ISA_AVX2_FMA) {
        wino_input_avx2(x, C, H, W, pad_top, pad_left, tiles_w, t0, nt, c0, c1, nr, v, estride, scratch);
        return;
    }
#endif
    wino_input_portable(x, C, H, W, pad_top, pad_left, tiles_w, t0, nt, c0, c1, nr, v, estride, scratch);
}

void fcn_winograd_f2_output(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                            int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                            float *y, int64_t outH, int64_t outW, float *scratch) {
#if defined(__x86_64__)
    isa = fcn_winograd_isa(isa);
    if (isa == FCN_ISA_AVX512) {
        wino_output_avx512(m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW, scratch);
        return;
    }
    if (isa == FCN_ISA_AVX2_FMA) {
        wino_output_avx2(m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW, scratch);
        return;
    }
#endif
    wino_output_portable(m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW, scratch);
}

void fcn_winograd_f2_output_pool(int isa, const float *m, int64_t estride, int64_t ldm, int64_t co0, int64_t co1,
                                 int64_t tiles_w, int64_t t0, int64_t nt, const float *bias, int relu,
                                 float *y, int64_t outH, int64_t outW, int64_t poolH, int64_t poolW, float *scratch) {
#if defined(__x86_64__)
    isa = fcn_winograd_isa(isa);
    if (isa == FCN_ISA_AVX512) {
        wino_output_pool_avx512(m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW, poolH, poolW,
                                scratch);
        return;
    }
    if (isa == FCN_ISA_AVX2_FMA) {
        wino_output_pool_avx2(m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW, poolH, poolW,
                              scratch);
        return;
    }
#endif
    wino_output_pool_portable(m, estride, ldm, co0, co1, tiles_w, t0, nt, bias, relu, y, outH, outW, poolH, poolW,
                              scratch);
}

// MARK: weight gradient

void fcn_winograd_f2_grad_output(const float *gy, int64_t outH, int64_t outW, int64_t tw, int64_t t0,
                                 int64_t nt, int64_t co0, int64_t co1, float *dm, int64_t es, int64_t ldm) {
    for (int64_t co = co0; co < co1; co++) {
        const float *g = gy + co * outH * outW;
        float *d = dm + co * ldm;
        for (int64_t i = 0; i < nt; i++) {
            int64_t t = t0 + i, ty = t / tw, tx = t % tw;
            int64_t y0 = 2 * ty, x0 = 2 * tx;
            int yin = y0 + 1 < outH, xin = x0 + 1 < outW;
            const float *r0 = g + y0 * outW + x0, *r1 = r0 + outW;
            float a = r0[0], b = xin ? r0[1] : 0.0f;
            float c = yin ? r1[0] : 0.0f, e = (yin && xin) ? r1[1] : 0.0f;
            // A dY (4 x 2): (a, b), (a + c, b + d), (a - c, b - d), (-c, -d); then each row
            // (x, y) times A^T: (x, x + y, x - y, -y).
            float rx[4] = {a, a + c, a - c, -c}, ry[4] = {b, b + e, b - e, -e};
            for (int k = 0; k < 4; k++) {
                float x = rx[k], y = ry[k];
                d[(4 * k + 0) * es + i] = x;
                d[(4 * k + 1) * es + i] = x + y;
                d[(4 * k + 2) * es + i] = x - y;
                d[(4 * k + 3) * es + i] = -y;
            }
        }
        for (int64_t i = nt; i < ldm; i++)
            for (int k = 0; k < 16; k++) d[k * es + i] = 0.0f;
    }
}

void fcn_winograd_f2_weights_grad(const float *du, int64_t cout, int64_t cin, int64_t k0, int64_t k1, float *gw) {
    int64_t plane = cout * cin;
    for (int64_t k = k0; k < k1; k++) {
        float u[4][4];
        for (int e = 0; e < 16; e++) u[e / 4][e % 4] = du[e * plane + k];
        // t = G^T u (3 x 4): rows u0 + (u1 + u2)/2, (u1 - u2)/2, (u1 + u2)/2 + u3.
        float t[3][4];
        for (int j = 0; j < 4; j++) {
            float u0 = u[0][j], u1 = u[1][j], u2 = u[2][j], u3 = u[3][j];
            t[0][j] = u0 + 0.5f * (u1 + u2);
            t[1][j] = 0.5f * (u1 - u2);
            t[2][j] = 0.5f * (u1 + u2) + u3;
        }
        float *g = gw + k * 9;
        for (int r = 0; r < 3; r++) {
            float a0 = t[r][0], a1 = t[r][1], a2 = t[r][2], a3 = t[r][3];
            g[3 * r + 0] = a0 + 0.5f * (a1 + a2);
            g[3 * r + 1] = 0.5f * (a1 - a2);
            g[3 * r + 2] = 0.5f * (a1 + a2) + a3;
        }
    }
}
