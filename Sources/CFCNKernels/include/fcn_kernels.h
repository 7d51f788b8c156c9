// CFCNKernels: the C hot loops of swift-fcn.
//
// Contract: plain pointers, sizes and strides; no Swift types. Row-major matrices.
// Every function here has a portable path; ISA-specific paths (AVX-512, AVX2+FMA on
// x86-64, NEON on arm64) are chosen at run time, so the package needs no build flags.
#ifndef FCN_KERNELS_H
#define FCN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Returns a bit set of the ISAs this CPU supports (FCN_ISA_* flags).
enum {
    FCN_ISA_PORTABLE = 1,
    FCN_ISA_AVX2_FMA = 2,
    FCN_ISA_AVX512 = 4,
    FCN_ISA_NEON = 8,
};
int fcn_cpu_isa_flags(void);

#ifdef __cplusplus
}
#endif
#endif
