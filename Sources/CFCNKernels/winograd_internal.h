// Internal to CFCNKernels: what the Winograd transform files (winograd.c, winograd_f4.c) share.
#ifndef FCN_WINOGRAD_INTERNAL_H
#define FCN_WINOGRAD_INTERNAL_H

#if defined(__x86_64__)
// The x86 instance of a transform to run: `requested` (one FCN_ISA_* flag), or for 0 the
// best this CPU has (AVX-512, AVX2+FMA, portable); read once.
int fcn_winograd_isa(int requested);
#endif

#endif
