// CPU feature detection at run time (no build flags needed).
#include "fcn_kernels.h"

int fcn_cpu_isa_flags(void) {
    int flags = FCN_ISA_PORTABLE;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) flags |= FCN_ISA_AVX2_FMA;
    if (__builtin_cpu_supports("avx512f")) flags |= FCN_ISA_AVX512;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512bf16"))
        flags |= FCN_ISA_AVX512_BF16;
#elif defined(__aarch64__)
    flags |= FCN_ISA_NEON;
#endif
    return flags;
}
