// SGEMM dispatch: the public fcn_sgemm_* entry points run the register-tile kernel of the
// ISA asked for (gemm_portable.c, gemm_avx2.c, gemm_avx512.c, gemm_neon.c), and feed it the
// implicit-GEMM B sources of convolutions (panels packed straight from the image).
#include "fcn_kernels.h"
#include "gemm_internal.h"

// MARK: Dispatch

// Fills *k (zeroed first: optional entries an ISA leaves unset are NULL) with the kernel of
// `isa` when this CPU and build have it; returns 0 otherwise.
static int kernel_for(int isa, fcn_gemm_kernel *k) {
    *k = (fcn_gemm_kernel){0};
    if (!(fcn_cpu_isa_flags() & isa)) return 0;
    switch (isa) {
    case FCN_ISA_PORTABLE: return fcn_gemm_kernel_portable(k);
    case FCN_ISA_AVX2_FMA: return fcn_gemm_kernel_avx2(k);
    case FCN_ISA_AVX512: return fcn_gemm_kernel_avx512(k);
    case FCN_ISA_NEON: return fcn_gemm_kernel_neon(k);
    case FCN_ISA_AVX512_BF16: return fcn_gemm_kernel_avx512_bf16(k);
    default: return 0;
    }
}

// Kernel table indexed by ISA (portable, avx2, avx512, neon, avx512 bf16); filled once per
// ISA (idempotent, so a race is harmless).
static fcn_gemm_kernel table[5];
static int table_ready[5];

// Fills table[idx] with the kernel of `isa`, or the portable one when this CPU lacks it.
static __attribute__((noinline)) void fill_table(int isa, int idx) {
    fcn_gemm_kernel k;
    if (!kernel_for(isa, &k)) fcn_gemm_kernel_portable(&k);
    table[idx] = k;
    __atomic_store_n(&table_ready[idx], 1, __ATOMIC_RELEASE);
}

static inline __attribute__((always_inline)) const fcn_gemm_kernel *get_kernel(int isa) {
    int idx = isa == FCN_ISA_PORTABLE ? 0 : isa == FCN_ISA_AVX2_FMA ? 1 : isa == FCN_ISA_AVX512 ? 2
              : isa == FCN_ISA_NEON ? 3 : 4;
    if (!__atomic_load_n(&table_ready[idx], __ATOMIC_ACQUIRE)) fill_table(isa, idx);
    return &table[idx];
}

int fcn_sgemm_kernel_shape(int isa, int *mr, int *nr) {
    fcn_gemm_kernel k;
    if (!kernel_for(isa, &k)) return 0;
    *mr = k.mr;
    *nr = k.nr;
    return 1;
}

void fcn_sgemm_pack_a(int isa, int transA, const float *a, ptrdiff_t lda,
                      ptrdiff_t i0, ptrdiff_t p0, ptrdiff_t mc, ptrdiff_t kc, float *dst) {
    get_kernel(isa)->pack_a(transA, a, lda, i0, p0, mc, kc, dst);
}

void fcn_sgemm_pack_b(int isa, int transB, const float *b, ptrdiff_t ldb,
                      ptrdiff_t p0, ptrdiff_t j0, ptrdiff_t kc, ptrdiff_t nc, float *dst) {
    get_kernel(isa)->pack_b(transB, b, ldb, p0, j0, kc, nc, dst);
}

void fcn_sgemm_macro(int isa, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha,
                     const float *packA, const float *packB, float beta,
                     float *c, ptrdiff_t ldc,
                     const float *rowBias, const float *colBias, int relu) {
    get_kernel(isa)->macro(mc, nc, kc, alpha, packA, packB, beta, c, ldc, rowBias, colBias, relu);
}

void fcn_sgemm_macro_packing_b(int isa, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha,
                               const float *packA, int transB, const float *b, ptrdiff_t ldb,
                               ptrdiff_t p0, ptrdiff_t j0, float *buf, float beta,
                               float *c, ptrdiff_t ldc,
                               const float *rowBias, const float *colBias, int relu) {
    const fcn_gemm_kernel *k = get_kernel(isa);
    if (k->macro_packing_b) {
        k->macro_packing_b(mc, nc, kc, alpha, packA, transB, b, ldb, p0, j0, buf, beta, c, ldc,
                           rowBias, colBias, relu);
        return;
    }
    for (ptrdiff_t j = 0; j < nc; j += k->nr) {
        ptrdiff_t w = nc - j < k->nr ? nc - j : k->nr;
        k->pack_b(transB, b, ldb, p0, j0 + j, kc, w, buf);
        k->macro(mc, w, kc, alpha, packA, buf, beta, c + j, ldc, rowBias, colBias ? colBias + j : 0, relu);
    }
}

int fcn_sgemm_has_unpacked_a(int isa) { return get_kernel(isa)->macro_unpacked_a != 0; }

void fcn_sgemm_macro_unpacked_a(int isa, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *a,
                                ptrdiff_t lda, const float *packB, float *edge, float beta, float *c, ptrdiff_t ldc,
                                const float *rowBias, const float *colBias, int relu) {
    get_kernel(isa)->macro_unpacked_a(mc, nc, kc, alpha, a, lda, packB, edge, beta, c, ldc, rowBias, colBias, relu);
}

// MARK: Convolution B sources (implicit im2col)

#include <stdlib.h>
// FCN_CONV_DIRECT=0 turns off the in-place panels (A/B measurements).
static int conv_direct_enabled(void) {
    static int v = -1;
    int r = __atomic_load_n(&v, __ATOMIC_RELAXED);
    if (r < 0) {
        const char *e = getenv("FCN_CONV_DIRECT");
        r = !(e && e[0] == '0');
        __atomic_store_n(&v, r, __ATOMIC_RELAXED);
    }
    return r;
}

// One NR-wide panel of a convolution source, generic path: the im2col rows are written
// straight into the panel (FCN_B_IM2COL) or into `tmp` and transposed (FCN_B_IM2COL_T).
static void pack_b_conv_panel(const fcn_gemm_kernel *k, const fcn_b_source *src, ptrdiff_t p0, ptrdiff_t j0,
                              ptrdiff_t kc, ptrdiff_t w, float *dst) {
    if (k->pack_b_conv && k->pack_b_conv(src, p0, j0, kc, w, dst)) return;
    const int NR = k->nr;
    if (src->kind == FCN_B_IM2COL) {
        fcn_im2col_rows(&src->g, src->x, p0, kc, j0, w, dst, NR);
        if (w < NR)
            for (ptrdiff_t p = 0; p < kc; p++)
                for (ptrdiff_t q = w; q < NR; q++) dst[p * NR + q] = 0.0f;
    } else {
        fcn_im2col_rows(&src->g, src->x, j0, w, p0, kc, src->tmp, kc);
        fcn_pack_generic(src->tmp, kc, 1, w, kc, NR, dst);
    }
}

// Whether every tap of every pixel of the panel [j0, j0+w) lies in the padding (the panel of
// im2col is all zeros): conv1_1 of VGG16-FCN pads by 100, so half its output sees no input.
static int panel_in_padding(const fcn_conv_geometry *g, ptrdiff_t j0, ptrdiff_t w) {
    int64_t oh = j0 / g->out_w, ow = j0 % g->out_w;
    for (ptrdiff_t q = 0; q < w;) {
        int64_t run = g->out_w - ow;
        if (run > w - q) run = w - q;
        int64_t ih0 = oh * g->sh - g->pad_top, ih1 = ih0 + (g->kh - 1) * g->dh;
        int64_t iw0 = ow * g->sw - g->pad_left, iw1 = (ow + run - 1) * g->sw - g->pad_left + (g->kw - 1) * g->dw;
        int rows_out = ih1 < 0 || ih0 >= g->height;
        int cols_out = iw1 < 0 || iw0 >= g->width;
        if (!rows_out && !cols_out) return 0;
        q += run; oh++; ow = 0;
    }
    return 1;
}

// C block [mc, w] for an all-zero B panel: exactly the kernels' write-back of zero sums
// (alpha * 0, then beta * C by FMA, bias, ReLU as max(0, v) keeping NaN and -0).
static void zero_panel_epilogue(ptrdiff_t mc, ptrdiff_t w, float alpha, float beta, float *c, ptrdiff_t ldc,
                                const float *rb, const float *cb, int relu) {
    if (beta == 0.0f && !cb) {
        // The common case (a convolution's only K block): one value per row.
        for (ptrdiff_t i = 0; i < mc; i++) {
            float v = 0.0f * alpha + (0.0f + (rb ? rb[i] : 0.0f));
            if (relu) v = 0.0f > v ? 0.0f : v;
            float *ci = c + i * ldc;
            for (ptrdiff_t q = 0; q < w; q++) ci[q] = v;
        }
        return;
    }
    for (ptrdiff_t i = 0; i < mc; i++) {
        float *ci = c + i * ldc;
        for (ptrdiff_t q = 0; q < w; q++) {
            float v = 0.0f * alpha;
            if (beta != 0.0f) v = __builtin_fmaf(beta, ci[q], v);
            v = v + ((cb ? cb[q] : 0.0f) + (rb ? rb[i] : 0.0f));
            if (relu) v = 0.0f > v ? 0.0f : v;
            ci[q] = v;
        }
    }
}

void fcn_sgemm_pack_b_src(int isa, const fcn_b_source *src, ptrdiff_t p0, ptrdiff_t j0,
                          ptrdiff_t kc, ptrdiff_t nc, float *dst) {
    const fcn_gemm_kernel *k = get_kernel(isa);
    if (src->kind == FCN_B_MATRIX) {
        k->pack_b(src->transB, src->b, src->ldb, p0, j0, kc, nc, dst);
        return;
    }
    for (ptrdiff_t j = 0; j < nc; j += k->nr) {
        ptrdiff_t w = nc - j < k->nr ? nc - j : k->nr;
        pack_b_conv_panel(k, src, p0, j0 + j, kc, w, dst + j * kc);
    }
}

// Shallow convolutions (kc <= SMALL_K taps, e.g. conv1_1: 3 channels x 3 x 3 = 27): the
// FMAs per output are few, so the time goes into writing C. Panel by panel, every row of C
// would get 32-float pieces at a stride of a whole output plane (64 rows -> 64 scattered
// 128-byte writes per panel). Instead up to SMALL_K_GROUP panels are packed side by side
// and C is written one row panel at a time over the whole group (1 KiB runs per row), and
// runs of all-zero panels (in the padding) are written as one wide fill. Same sums, same order.
enum { SMALL_K = 32, SMALL_K_GROUP = 8 };

static void small_k_conv(const fcn_gemm_kernel *k, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha,
                         const float *packA, const fcn_b_source *src, ptrdiff_t p0, ptrdiff_t j0, float beta,
                         float *c, ptrdiff_t ldc, const float *rowBias, const float *colBias, int relu) {
    float gbuf[SMALL_K_GROUP * SMALL_K * 32] __attribute__((aligned(64)));
    const ptrdiff_t NR = k->nr, MR = k->mr;
    ptrdiff_t zlo = 0, zn = 0, glo = 0, gn = 0, gp = 0;
    for (ptrdiff_t j = 0;; j += NR) { // one pass past the end (w == 0) flushes what is pending
        ptrdiff_t w = j < nc ? (nc - j < NR ? nc - j : NR) : 0;
        int zero = w > 0 && panel_in_padding(&src->g, j0 + j, w);
        // Flush the pending group when this panel does not extend it.
        if (gn && (w == 0 || zero || gp == SMALL_K_GROUP)) {
            for (ptrdiff_t r = 0; r < mc; r += MR) {
                ptrdiff_t rows = mc - r < MR ? mc - r : MR;
                k->macro(rows, gn, kc, alpha, packA + r * kc, gbuf, beta, c + r * ldc + glo, ldc,
                         rowBias ? rowBias + r : 0, colBias ? colBias + glo : 0, relu);
            }
            gn = 0; gp = 0;
        }
        if (zn && (w == 0 || !zero)) {
            zero_panel_epilogue(mc, zn, alpha, beta, c + zlo, ldc, rowBias, colBias ? colBias + zlo : 0, relu);
            zn = 0;
        }
        if (w == 0) break;
        if (zero) {
            if (zn == 0) zlo = j;
            zn += w;
            continue;
        }
        if (gn == 0) glo = j;
        pack_b_conv_panel(k, src, p0, j0 + j, kc, w, gbuf + gp * kc * NR);
        gn += w; gp++;
    }
}

void fcn_sgemm_macro_packing_b_src(int isa, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha,
                                   const float *packA, const fcn_b_source *src,
                                   ptrdiff_t p0, ptrdiff_t j0, float *buf, float beta,
                                   float *c, ptrdiff_t ldc,
                                   const float *rowBias, const float *colBias, int relu) {
    if (src->kind == FCN_B_MATRIX) {
        fcn_sgemm_macro_packing_b(isa, mc, nc, kc, alpha, packA, src->transB, src->b, src->ldb, p0, j0, buf,
                                  beta, c, ldc, rowBias, colBias, relu);
        return;
    }
    const fcn_gemm_kernel *k = get_kernel(isa);
    if (src->kind == FCN_B_IM2COL && kc <= SMALL_K && k->nr <= 32) {
        small_k_conv(k, mc, nc, kc, alpha, packA, src, p0, j0, beta, c, ldc, rowBias, colBias, relu);
        return;
    }
    ptrdiff_t zlo = 0, zn = 0; // pending run of all-zero panels [zlo, zlo + zn), written at once
    for (ptrdiff_t j = 0; j < nc; j += k->nr) {
        ptrdiff_t w = nc - j < k->nr ? nc - j : k->nr;
        if (src->kind == FCN_B_IM2COL && panel_in_padding(&src->g, j0 + j, w)) {
            if (zn == 0) zlo = j;
            zn += w;
            continue;
        }
        if (zn) {
            zero_panel_epilogue(mc, zn, alpha, beta, c + zlo, ldc, rowBias, colBias ? colBias + zlo : 0, relu);
            zn = 0;
        }
        if (k->macro_conv_direct && conv_direct_enabled() &&
            k->macro_conv_direct(src, mc, kc, alpha, packA, p0, j0 + j, w, buf, beta, c + j, ldc, rowBias,
                                 colBias ? colBias + j : 0, relu))
            continue;
        pack_b_conv_panel(k, src, p0, j0 + j, kc, w, buf);
        k->macro(mc, w, kc, alpha, packA, buf, beta, c + j, ldc, rowBias, colBias ? colBias + j : 0, relu);
    }
    if (zn) zero_panel_epilogue(mc, zn, alpha, beta, c + zlo, ldc, rowBias, colBias ? colBias + zlo : 0, relu);
}
