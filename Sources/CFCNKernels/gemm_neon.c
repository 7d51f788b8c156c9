// SGEMM NEON path (arm64): 8 x 12 register tile (24 accumulators of 4 floats).
#include "fcn_kernels.h"
#include "gemm_internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

enum { MR = 8, NR = 12 };

FCN_DEFINE_PACK_A(, pack_a, MR)
FCN_DEFINE_PACK_B(, pack_b, NR)

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
    fcn_store_tile(&tile[0][0], NR, c, ldc, mr, nr, alpha, beta, rb, cb, relu);
}

FCN_DEFINE_MACRO(, macro, kernel, MR, NR)

int fcn_gemm_kernel_neon(fcn_gemm_kernel *k) {
    k->mr = MR;
    k->nr = NR;
    k->pack_a = pack_a;
    k->pack_b = pack_b;
    k->macro = macro;
    return 1;
}

#else
int fcn_gemm_kernel_neon(fcn_gemm_kernel *k) { (void)k; return 0; }
#endif
