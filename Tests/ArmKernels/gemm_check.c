// Checks of the arm64 kernels of CFCNKernels (the NEON SGEMM path and the portable one as
// built for arm64) against naive loops in double, run under emulation on x86-64 CI
// machines by run.sh (qemu-aarch64), since the Swift test suite only runs the paths of the
// machine it runs on.
//
// What is checked, for every ISA the build reports (portable, NEON):
//   - fcn_sgemm_pack_a/pack_b + fcn_sgemm_macro on edge sizes (1, MR-1, MR+1, NR+1, ...),
//     both transposes, alpha, beta 0 / 1 / 0.3, row and column bias, ReLU;
//   - fcn_sgemm_macro_packing_b and fcn_sgemm_pack_b_src with a stored B and with the
//     implicit im2col sources (cols for the forward, cols^T for the weight gradient) of a
//     padded, strided, dilated convolution;
//   - fcn_im2col_tile against the definition;
//   - a Winograd F(2x2, 3x3) convolution as the Swift driver runs it (weight and input
//     transforms into the packed layouts of this ISA, 16 macro-kernel products, output
//     transform with bias and ReLU) against direct loops, with odd sizes and pads 1 and 2.
// Tolerance: |got - want| <= 1e-5 * (1 + sum |a_ik b_kj|) per entry (float accumulation of
// up to ~200 products against a double reference).
// Exit status 0 when everything matches; the first failures are printed.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcn_kernels.h"

static int failures = 0, checks = 0;
static uint64_t state = 0x9E3779B97F4A7C15ull;

static float uniform(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (float)((state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *random_floats(size_t n) {
    float *p = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) p[i] = uniform();
    return p;
}

static void expect_close(const char *what, int isa, const float *got, const double *want, const double *scale,
                         ptrdiff_t count) {
    checks++;
    for (ptrdiff_t i = 0; i < count; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= 1e-5 * (1 + scale[i]))) {
            if (failures < 20) printf("FAIL %s isa %d: entry %td got %.9g want %.9g\n", what, isa, i, got[i], want[i]);
            failures++;
            return;
        }
    }
}

// C = alpha op(A) op(B) + beta C (+ biases, ReLU) in double; scale = alpha sum |a b| + |beta c|.
static void reference(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a, ptrdiff_t lda,
                      const float *b, ptrdiff_t ldb, float beta, const float *c, ptrdiff_t ldc, const float *rb,
                      const float *cb, int relu, double *out, double *scale) {
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = 0; j < n; j++) {
            double s = 0, sa = 0;
            for (ptrdiff_t p = 0; p < k; p++) {
                double x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += x * y; sa += fabs(x * y);
            }
            double v = alpha * s + (beta != 0 ? beta * (double)c[i * ldc + j] : 0);
            v += (rb ? rb[i] : 0) + (cb ? cb[j] : 0);
            if (relu && v < 0) v = 0;
            out[i * n + j] = v;
            scale[i * n + j] = fabs(alpha) * sa + fabs(beta * (double)c[i * ldc + j]) + 1;
        }
}

static void check_gemm(int isa, int mr, int nr) {
    const ptrdiff_t sizes[] = {1, 2, mr - 1, mr, mr + 1, nr + 1, 2 * nr + 3, 37};
    const int nsizes = sizeof sizes / sizeof sizes[0];
    int variant = 0;
    for (int si = 0; si < nsizes; si++)
        for (int sj = 0; sj < nsizes; sj++) {
            ptrdiff_t m = sizes[si], n = sizes[sj], k = sizes[(si + 2 * sj) % nsizes] + 3;
            if (m < 1 || n < 1) continue;
            variant++;
            int ta = variant & 1, tb = (variant >> 1) & 1, relu = (variant >> 2) & 1, bias = (variant % 3) == 0;
            float alpha = (variant % 4) == 0 ? 0.5f : 1.0f;
            float beta = (variant % 5) == 0 ? 1.0f : (variant % 5) == 1 ? 0.3f : 0.0f;
            ptrdiff_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
            float *a = random_floats((size_t)(ta ? k : m) * lda), *b = random_floats((size_t)(tb ? n : k) * ldb);
            float *c = random_floats((size_t)m * ldc), *rb = random_floats(m), *cb = random_floats(n);
            float *c0 = malloc(sizeof(float) * m * ldc);
            memcpy(c0, c, sizeof(float) * m * ldc);
            double *want = malloc(sizeof(double) * m * n), *scale = malloc(sizeof(double) * m * n);
            reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, bias ? rb : NULL, bias ? cb : NULL, relu,
                      want, scale);
            ptrdiff_t mp = (m + mr - 1) / mr * mr, np = (n + nr - 1) / nr * nr;
            float *pa = malloc(sizeof(float) * mp * k), *pb = malloc(sizeof(float) * np * k);
            float *buf = malloc(sizeof(float) * nr * k), *got = malloc(sizeof(float) * m * n);

            // Packed A and B, one macro call.
            fcn_sgemm_pack_a(isa, ta, a, lda, 0, 0, m, k, pa);
            fcn_sgemm_pack_b(isa, tb, b, ldb, 0, 0, k, n, pb);
            fcn_sgemm_macro(isa, m, n, k, alpha, pa, pb, beta, c, ldc, bias ? rb : NULL, bias ? cb : NULL, relu);
            for (ptrdiff_t i = 0; i < m; i++) memcpy(got + i * n, c + i * ldc, sizeof(float) * n);
            expect_close("pack_a + pack_b + macro", isa, got, want, scale, m * n);

            // B packed panel by panel inside the macro-kernel.
            memcpy(c, c0, sizeof(float) * m * ldc);
            fcn_sgemm_macro_packing_b(isa, m, n, k, alpha, pa, tb, b, ldb, 0, 0, buf, beta, c, ldc,
                                      bias ? rb : NULL, bias ? cb : NULL, relu);
            for (ptrdiff_t i = 0; i < m; i++) memcpy(got + i * n, c + i * ldc, sizeof(float) * n);
            expect_close("macro_packing_b", isa, got, want, scale, m * n);

            // Two depth blocks: the second accumulates with beta 1 (how the driver splits k).
            if (k > 4 && beta == 0 && !relu) {
                ptrdiff_t k1 = k / 2;
                memcpy(c, c0, sizeof(float) * m * ldc);
                fcn_sgemm_pack_a(isa, ta, a, lda, 0, 0, m, k1, pa);
                fcn_sgemm_pack_b(isa, tb, b, ldb, 0, 0, k1, n, pb);
                fcn_sgemm_macro(isa, m, n, k1, alpha, pa, pb, 0, c, ldc, NULL, NULL, 0);
                fcn_sgemm_pack_a(isa, ta, a, lda, 0, k1, m, k - k1, pa);
                fcn_sgemm_pack_b(isa, tb, b, ldb, k1, 0, k - k1, n, pb);
                fcn_sgemm_macro(isa, m, n, k - k1, alpha, pa, pb, 1, c, ldc, bias ? rb : NULL, bias ? cb : NULL, 0);
                for (ptrdiff_t i = 0; i < m; i++) memcpy(got + i * n, c + i * ldc, sizeof(float) * n);
                expect_close("two depth blocks", isa, got, want, scale, m * n);
            }
            free(a); free(b); free(c); free(c0); free(rb); free(cb); free(want); free(scale);
            free(pa); free(pb); free(buf); free(got);
        }
}

// Column matrix of a convolution by its definition: cols[(c*kh + i)*kw + j][oh*ow + ow].
static float col_value(const fcn_conv_geometry *g, const float *x, ptrdiff_t r, ptrdiff_t p) {
    ptrdiff_t c = r / (g->kh * g->kw), i = r / g->kw % g->kh, j = r % g->kw;
    ptrdiff_t oh = p / g->out_w, ow = p % g->out_w;
    ptrdiff_t ih = oh * g->sh - g->pad_top + i * g->dh, iw = ow * g->sw - g->pad_left + j * g->dw;
    if (ih < 0 || ih >= g->height || iw < 0 || iw >= g->width) return 0;
    return x[(c * g->height + ih) * g->width + iw];
}

static void check_conv_sources(int isa, int mr, int nr) {
    // 3 channels, 9x11 input, 3x2 kernel, stride (2, 1), pads (2, 1), dilation (1, 2).
    fcn_conv_geometry g = {3, 9, 11, 3, 2, 2, 1, 2, 1, 1, 2, 0, 0};
    g.out_h = (g.height + 2 * g.pad_top - g.dh * (g.kh - 1) - 1) / g.sh + 1;
    g.out_w = (g.width + 2 * g.pad_left - g.dw * (g.kw - 1) - 1) / g.sw + 1;
    ptrdiff_t K = g.channels * g.kh * g.kw, P = g.out_h * g.out_w;
    float *x = random_floats((size_t)g.channels * g.height * g.width);
    float *cols = malloc(sizeof(float) * K * P);
    for (ptrdiff_t r = 0; r < K; r++)
        for (ptrdiff_t p = 0; p < P; p++) cols[r * P + p] = col_value(&g, x, r, p);

    float *tile = malloc(sizeof(float) * K * P);
    fcn_im2col_tile(&g, x, 0, P, tile);
    double *want = malloc(sizeof(double) * K * P), *scale = malloc(sizeof(double) * K * P);
    for (ptrdiff_t i = 0; i < K * P; i++) { want[i] = cols[i]; scale[i] = 0; }
    expect_close("im2col_tile", isa, tile, want, scale, K * P);
    free(want); free(scale);

    for (int kind = FCN_B_IM2COL; kind <= FCN_B_IM2COL_T; kind++) {
        // forward: W [m, K] x cols [K, P]; weight gradient: G [m, P] x cols^T [P, K].
        ptrdiff_t m = 2 * mr + 1, k = kind == FCN_B_IM2COL ? K : P, n = kind == FCN_B_IM2COL ? P : K;
        float *a = random_floats((size_t)m * k), *c = malloc(sizeof(float) * m * n);
        float *pa = malloc(sizeof(float) * ((m + mr - 1) / mr * mr) * k);
        float *pb = malloc(sizeof(float) * ((n + nr - 1) / nr * nr) * k), *buf = malloc(sizeof(float) * nr * k);
        float *tmp = malloc(sizeof(float) * nr * k);
        double *w = malloc(sizeof(double) * m * n), *s = malloc(sizeof(double) * m * n);
        reference(0, kind == FCN_B_IM2COL_T, m, n, k, 1, a, k, cols, P, 0, c, n, NULL, NULL, 0, w, s);
        fcn_b_source src = {kind, 0, NULL, 0, g, x, tmp};
        fcn_sgemm_pack_a(isa, 0, a, k, 0, 0, m, k, pa);
        fcn_sgemm_pack_b_src(isa, &src, 0, 0, k, n, pb);
        fcn_sgemm_macro(isa, m, n, k, 1, pa, pb, 0, c, n, NULL, NULL, 0);
        expect_close(kind == FCN_B_IM2COL ? "pack_b_src im2col" : "pack_b_src im2col^T", isa, c, w, s, m * n);
        memset(c, 0, sizeof(float) * m * n);
        fcn_sgemm_macro_packing_b_src(isa, m, n, k, 1, pa, &src, 0, 0, buf, 0, c, n, NULL, NULL, 0);
        expect_close(kind == FCN_B_IM2COL ? "macro_packing_b_src im2col" : "macro_packing_b_src im2col^T", isa, c, w, s, m * n);
        free(a); free(c); free(pa); free(pb); free(buf); free(tmp); free(w); free(s);
    }
    free(x); free(cols); free(tile);
}

static void check_winograd(int isa, int mr, int nr) {
    const int64_t cases[][4] = {{7, 9, 1, 0}, {6, 5, 2, 1}};   // H, W, pad, relu
    for (int t = 0; t < 2; t++) {
        int64_t C = 5, cout = 2 * mr + 3, H = cases[t][0], W = cases[t][1], pad = cases[t][2];
        int relu = (int)cases[t][3];
        int64_t outH = H + 2 * pad - 2, outW = W + 2 * pad - 2;
        int64_t tilesH = (outH + 1) / 2, tilesW = (outW + 1) / 2, nt = tilesH * tilesW;
        float *x = random_floats((size_t)C * H * W), *w = random_floats((size_t)cout * C * 9), *bias = random_floats(cout);
        int64_t eu = (cout + mr - 1) / mr * mr * C, ev = (nt + nr - 1) / nr * nr * C, ldm = nt, em = cout * ldm;
        float *u = malloc(sizeof(float) * 16 * eu), *v = malloc(sizeof(float) * 16 * ev), *m = malloc(sizeof(float) * 16 * em);
        float *scratch = malloc(sizeof(float) * 12 * (tilesW + 2)), *y = malloc(sizeof(float) * cout * outH * outW);
        fcn_winograd_f2_weights(w, cout, C, mr, 0, (cout + mr - 1) / mr, u, eu);
        fcn_winograd_f2_input(FCN_ISA_PORTABLE, x, C, H, W, pad, pad, tilesW, 0, nt, 0, C, nr, v, ev, scratch);
        for (int e = 0; e < 16; e++)
            fcn_sgemm_macro(isa, cout, nt, C, 1, u + e * eu, v + e * ev, 0, m + e * em, ldm, NULL, NULL, 0);
        fcn_winograd_f2_output(FCN_ISA_PORTABLE, m, em, ldm, 0, cout, tilesW, 0, nt, bias, relu, y, outH, outW, scratch);
        double *want = malloc(sizeof(double) * cout * outH * outW), *scale = malloc(sizeof(double) * cout * outH * outW);
        for (int64_t co = 0; co < cout; co++)
            for (int64_t oh = 0; oh < outH; oh++)
                for (int64_t ow = 0; ow < outW; ow++) {
                    double s = bias[co], sa = fabs(bias[co]);
                    for (int64_t c = 0; c < C; c++)
                        for (int i = 0; i < 3; i++)
                            for (int j = 0; j < 3; j++) {
                                int64_t ih = oh - pad + i, iw = ow - pad + j;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                double p = (double)x[(c * H + ih) * W + iw] * w[((co * C + c) * 3 + i) * 3 + j];
                                s += p; sa += fabs(p);
                            }
                    int64_t o = (co * outH + oh) * outW + ow;
                    want[o] = relu && s < 0 ? 0 : s;
                    scale[o] = 4 * sa;   // the transforms scale values by up to 4 before the products
                }
        expect_close(relu ? "winograd f2 (relu)" : "winograd f2", isa, y, want, scale, cout * outH * outW);
        free(x); free(w); free(bias); free(u); free(v); free(m); free(scratch); free(y); free(want); free(scale);
    }
}

int main(void) {
    const int isas[] = {FCN_ISA_PORTABLE, FCN_ISA_NEON};
    int ran = 0;
    for (int t = 0; t < 2; t++) {
        int mr = 0, nr = 0;
        if (!fcn_sgemm_kernel_shape(isas[t], &mr, &nr)) {
            printf("isa %d: no kernel in this build\n", isas[t]);
            continue;
        }
        printf("isa %d: %d x %d tile\n", isas[t], mr, nr);
        check_gemm(isas[t], mr, nr);
        check_conv_sources(isas[t], mr, nr);
        check_winograd(isas[t], mr, nr);
        ran++;
    }
#if defined(__aarch64__)
    if (ran != 2) { printf("FAIL: arm64 build without both the portable and the NEON kernels\n"); return 1; }
#endif
    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 && ran > 0 ? 0 : 1;
}
