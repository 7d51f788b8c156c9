// Internal to CFCNKernels: what the Winograd transform files (winograd.c, winograd_f4*.c,
// winograd_f6.c) share.
#ifndef FCN_WINOGRAD_INTERNAL_H
#define FCN_WINOGRAD_INTERNAL_H

#include <stdint.h>

// The lanes of V's last panel past nt, for channel c and every one of `elements` elements,
// set to 0 (the GEMM reads whole panels of nr tiles). V's layout: fcn_winograd_f2_input.
static inline void fcn_winograd_zero_tail(float *v, int64_t elements, int64_t C, int64_t c, int64_t nt, int64_t nr,
                                          int64_t es) {
    int64_t rem = nt % nr;
    if (!rem) return;
    float *d = v + (nt / nr) * nr * C + c * nr;
    for (int64_t e = 0; e < elements; e++)
        for (int64_t q = rem; q < nr; q++) d[e * es + q] = 0.0f;
}

#if defined(__x86_64__)
// The x86 instance of a transform to run: `requested` (one FCN_ISA_* flag), or for 0 the
// best this CPU has (AVX-512, AVX2+FMA, portable); read once.
int fcn_winograd_isa(int requested);

// The AVX-512 F(4x4) input and output transforms (winograd_f4_avx512.c): the arguments of
// fcn_winograd_f4_input / fcn_winograd_f4_output without the scratch.
void fcn_w4_input_avx512(const float *x, int64_t C, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t tw,
                         int64_t t0, int64_t nt, int64_t c0, int64_t c1, int64_t nr, float *v, int64_t es);
void fcn_w4_output_avx512(const float *m, int64_t es, int64_t ldm, int64_t co0, int64_t co1, int64_t tw,
                          int64_t t0, int64_t nt, const float *bias, int relu, float *y, int64_t outH,
                          int64_t outW);
#endif

#endif
