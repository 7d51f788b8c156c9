// fcn_optimizer: the element-wise optimizer updates of swift-fcn (memory-bound loops).
//
// Contract: one contiguous run per call (the caller threads over runs). Every path does the
// same IEEE operations per element in the same order, with no multiply-add contraction, so
// the AVX-512 and AVX2 paths chosen at run time and the portable loop give identical bits,
// and all match the formula below (PyTorch's single-tensor Adam/AdamW).
#ifndef FCN_OPTIMIZER_H
#define FCN_OPTIMIZER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Constants of one Adam step for one parameter (all Float, rounded by the caller as
/// PyTorch rounds them).
typedef struct {
    float w1;          // 1 - beta1 (the lerp weight)
    float keep;        // 1 - w1 (used when w1 >= 0.5, torch.lerp's other branch)
    int32_t lerp_low;  // w1 < 0.5
    float beta2;       // beta2
    float w2;          // 1 - beta2
    float bc2_sqrt;    // sqrt(1 - beta2^t)
    float eps;
    float neg_step;    // -lr / (1 - beta1^t)
    float decay;       // 1 - lr*wd for AdamW, else 1
    float coupled_wd;  // wd for Adam with L2 decay, else 0
} fcn_adam_consts;

/// One Adam/AdamW step over n elements, in place on w, m, v; per element:
///   wi = w*decay;  g' = (coupled_wd == 0 ? g : g + coupled_wd*wi)
///   m = lerp_low ? m + w1*(g' - m) : g' - (g' - m)*keep
///   v = v*beta2 + (w2*g')*g'
///   m, v below FLT_MIN in magnitude become 0 (no subnormals)
///   w = wi + neg_step * (m / (sqrt(v)/bc2_sqrt + eps))
/// `isa`: FCN_ISA_AVX512 or FCN_ISA_AVX2_FMA (only where this CPU has it), or anything else for
/// the portable loop.
void fcn_adam_update(int isa, int64_t n, const float *g, float *m, float *v, float *w, const fcn_adam_consts *c);

#ifdef __cplusplus
}
#endif
#endif
