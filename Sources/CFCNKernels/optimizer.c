// Element-wise optimizer updates: portable C, plus AVX-512 and AVX2 paths chosen at run time.
// See include/fcn_optimizer.h for the contract. Contraction into fused multiply-adds is
// off so that every path rounds each product and sum separately, as the formula is written.
#include "fcn_optimizer.h"
#include "fcn_kernels.h"
#include <float.h>
#include <math.h>

#pragma clang fp contract(off)

static void adam_portable(int64_t n, const float *g, float *m, float *v, float *w, const fcn_adam_consts *c) {
    const float w1 = c->w1, keep = c->keep, b2 = c->beta2, w2 = c->w2, bc2 = c->bc2_sqrt, eps = c->eps;
    const float step = c->neg_step, decay = c->decay, cwd = c->coupled_wd;
    const int low = c->lerp_low;
    for (int64_t i = 0; i < n; i++) {
        float wi = w[i] * decay;
        float gi = cwd == 0 ? g[i] : g[i] + cwd * wi;
        float mi = low ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * keep;
        float vi = v[i] * b2 + w2 * gi * gi;
        if (fabsf(mi) < FLT_MIN) mi = 0;
        if (vi < FLT_MIN) vi = 0;
        m[i] = mi; v[i] = vi;
        float denom = sqrtf(vi) / bc2 + eps;
        w[i] = wi + step * (mi / denom);
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define TGT512 __attribute__((target("avx512f")))

static TGT512 int64_t adam_avx512(int64_t n, const float *g, float *m, float *v, float *w, const fcn_adam_consts *c) {
    const __m512 w1 = _mm512_set1_ps(c->w1), keep = _mm512_set1_ps(c->keep), b2 = _mm512_set1_ps(c->beta2);
    const __m512 w2 = _mm512_set1_ps(c->w2), bc2 = _mm512_set1_ps(c->bc2_sqrt), eps = _mm512_set1_ps(c->eps);
    const __m512 step = _mm512_set1_ps(c->neg_step), decay = _mm512_set1_ps(c->decay), cwd = _mm512_set1_ps(c->coupled_wd);
    const __m512 tiny = _mm512_set1_ps(FLT_MIN), zero = _mm512_setzero_ps();
    const int low = c->lerp_low, coupled = c->coupled_wd != 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 wi = _mm512_mul_ps(_mm512_loadu_ps(w + i), decay);
        __m512 gi = _mm512_loadu_ps(g + i);
        if (coupled) gi = _mm512_add_ps(gi, _mm512_mul_ps(cwd, wi));
        __m512 m0 = _mm512_loadu_ps(m + i), v0 = _mm512_loadu_ps(v + i);
        __m512 d = _mm512_sub_ps(gi, m0);
        __m512 mi = low ? _mm512_add_ps(m0, _mm512_mul_ps(w1, d)) : _mm512_sub_ps(gi, _mm512_mul_ps(d, keep));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(v0, b2), _mm512_mul_ps(_mm512_mul_ps(w2, gi), gi));
        mi = _mm512_mask_mov_ps(mi, _mm512_cmp_ps_mask(_mm512_abs_ps(mi), tiny, _CMP_LT_OQ), zero);
        vi = _mm512_mask_mov_ps(vi, _mm512_cmp_ps_mask(vi, tiny, _CMP_LT_OQ), zero);
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), eps);
        _mm512_storeu_ps(w + i, _mm512_add_ps(wi, _mm512_mul_ps(step, _mm512_div_ps(mi, denom))));
    }
    return i;
}

#define TGT256 __attribute__((target("avx2")))

static TGT256 int64_t adam_avx2(int64_t n, const float *g, float *m, float *v, float *w, const fcn_adam_consts *c) {
    const __m256 w1 = _mm256_set1_ps(c->w1), keep = _mm256_set1_ps(c->keep), b2 = _mm256_set1_ps(c->beta2);
    const __m256 w2 = _mm256_set1_ps(c->w2), bc2 = _mm256_set1_ps(c->bc2_sqrt), eps = _mm256_set1_ps(c->eps);
    const __m256 step = _mm256_set1_ps(c->neg_step), decay = _mm256_set1_ps(c->decay), cwd = _mm256_set1_ps(c->coupled_wd);
    const __m256 tiny = _mm256_set1_ps(FLT_MIN), zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
    const int low = c->lerp_low, coupled = c->coupled_wd != 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wi = _mm256_mul_ps(_mm256_loadu_ps(w + i), decay);
        __m256 gi = _mm256_loadu_ps(g + i);
        if (coupled) gi = _mm256_add_ps(gi, _mm256_mul_ps(cwd, wi));
        __m256 m0 = _mm256_loadu_ps(m + i), v0 = _mm256_loadu_ps(v + i);
        __m256 d = _mm256_sub_ps(gi, m0);
        __m256 mi = low ? _mm256_add_ps(m0, _mm256_mul_ps(w1, d)) : _mm256_sub_ps(gi, _mm256_mul_ps(d, keep));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(v0, b2), _mm256_mul_ps(_mm256_mul_ps(w2, gi), gi));
        mi = _mm256_blendv_ps(mi, zero, _mm256_cmp_ps(_mm256_andnot_ps(sign, mi), tiny, _CMP_LT_OQ));
        vi = _mm256_blendv_ps(vi, zero, _mm256_cmp_ps(vi, tiny, _CMP_LT_OQ));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
        _mm256_storeu_ps(w + i, _mm256_add_ps(wi, _mm256_mul_ps(step, _mm256_div_ps(mi, denom))));
    }
    return i;
}
#endif

void fcn_adam_update(int isa, int64_t n, const float *g, float *m, float *v, float *w, const fcn_adam_consts *c) {
    int64_t done = 0;
#if defined(__x86_64__)
    if (isa == FCN_ISA_AVX512) done = adam_avx512(n, g, m, v, w, c);
    else if (isa == FCN_ISA_AVX2_FMA) done = adam_avx2(n, g, m, v, w, c);
#endif
    adam_portable(n - done, g + done, m + done, v + done, w + done, c);
}
