// SGEMM NEON path (arm64): 8 x 12 register tile (24 accumulators of 4 floats).
#include "fcn_kernels.h"
#include "gemm_internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

enum { MR = 8, NR = 12 };

static void pack_a(int transA, const float *a, ptrdiff_t lda, ptrdiff_t i0, ptrdiff_t p0,
                   ptrdiff_t mc, ptrdiff_t kc, float *dst) {
    fcn_pack_generic(FCN_A_AT(a, transA, lda, i0, p0), FCN_A_RS(transA, lda), FCN_A_PS(transA, lda),
                     mc, kc, MR, dst);
}

static void pack_b(int transB, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,
                   ptrdiff_t kc, ptrdiff_t nc, float *dst) {
    fcn_pack_generic(FCN_B_AT(b, transB, ldb, p0, j0), FCN_B_RS(transB, ldb), FCN_B_PS(transB, ldb),
                     nc, kc, NR, dst);
}

static void kernel(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                   int mr, int nr, float alpha, float beta,
                   const float *rb, const float *cb, int relu) {
    float32x4_t acc[MR][3];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 3; j++) acc[i][j] = vdupq_n_f32(0.0f);
    for (ptrdiff_t p = 0; p < kc; p++) {
        float32x4_t b0 = vld1q_f32(pb), b1 = vld1q_f32(pb + 4), b2 = vld1q_f32(pb + 8);
        float32x4_t a0 = vld1q_f32(pa), a1 = vld1q_f32(pa + 4);
#define FCN_ROW(i, av, lane)                                   \
        acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, av, lane); \
        acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, av, lane); \
        acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, av, lane);
        FCN_ROW(0, a0, 0) FCN_ROW(1, a0, 1) FCN_ROW(2, a0, 2) FCN_ROW(3, a0, 3)
        FCN_ROW(4, a1, 0) FCN_ROW(5, a1, 1) FCN_ROW(6, a1, 2) FCN_ROW(7, a1, 3)
#undef FCN_ROW
        pa += MR;
        pb += NR;
    }
    float tile[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < 3; j++) vst1q_f32(&tile[i][4 * j], acc[i][j]);
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        float rbi = rb ? rb[i] : 0.0f;
        for (int j = 0; j < nr; j++) {
            float v = alpha * tile[i][j];
            if (beta != 0.0f) v += beta * ci[j];
            v += rbi;
            if (cb) v += cb[j];
            if (relu && !(v > 0.0f)) v = v != v ? v : 0.0f;
            ci[j] = v;
        }
    }
}

static void macro(ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc, float alpha, const float *pa,
                  const float *pb, float beta, float *c, ptrdiff_t ldc,
                  const float *rb, const float *cb, int relu) {
    for (ptrdiff_t j = 0; j < nc; j += NR) {
        int nr = nc - j < NR ? (int)(nc - j) : NR;
        for (ptrdiff_t i = 0; i < mc; i += MR) {
            int mr = mc - i < MR ? (int)(mc - i) : MR;
            kernel(kc, pa + i * kc, pb + j * kc, c + i * ldc + j, ldc, mr, nr, alpha, beta,
                   rb ? rb + i : 0, cb ? cb + j : 0, relu);
        }
    }
}

int fcn_gemm_kernel_neon(fcn_gemm_kernel *k) {
    k->mr = MR;
    k->nr = NR;
    k->pack_a = pack_a;
    k->pack_b = pack_b;
    k->macro = macro;
    k->macro_packing_b = 0;
    return 1;
}

#else
int fcn_gemm_kernel_neon(fcn_gemm_kernel *k) { (void)k; return 0; }
#endif
