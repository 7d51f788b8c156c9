// SGEMM portable kernel: a 4 x 8 register tile in plain C (any CPU; the compiler may
// vectorize it). The reference every other ISA's kernel is checked against, and the
// dispatcher's fallback.
#include "fcn_kernels.h"
#include "gemm_internal.h"

enum { P_MR = 4, P_NR = 8 };

FCN_DEFINE_PACK_A(, p_pack_a, P_MR)
FCN_DEFINE_PACK_B(, p_pack_b, P_NR)

static void p_kernel(ptrdiff_t kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                     int mr, int nr, float alpha, float beta,
                     const float *rb, const float *cb, int relu) {
    float acc[P_MR][P_NR] = {{0}};
    for (ptrdiff_t p = 0; p < kc; p++) {
        for (int i = 0; i < P_MR; i++) {
            float av = pa[i];
            for (int j = 0; j < P_NR; j++) acc[i][j] += av * pb[j];
        }
        pa += P_MR;
        pb += P_NR;
    }
    fcn_store_tile(&acc[0][0], P_NR, c, ldc, mr, nr, alpha, beta, rb, cb, relu);
}

FCN_DEFINE_MACRO(, p_macro, p_kernel, P_MR, P_NR)

int fcn_gemm_kernel_portable(fcn_gemm_kernel *k) {
    k->mr = P_MR;
    k->nr = P_NR;
    k->pack_a = p_pack_a;
    k->pack_b = p_pack_b;
    k->macro = p_macro;
    return 1;
}
