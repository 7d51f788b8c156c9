// One level of Strassen's algorithm: forming the block sums and combining the products.
// Contract in include/fcn_strassen.h.
#include "fcn_strassen.h"

#pragma clang fp contract(off)

void fcn_strassen_a(const float *a, int64_t lda, int64_t m, int64_t k, int e, int64_t r0, int64_t r1, float *out,
                    int64_t ldo) {
    int64_t mh = m / 2, kh = k / 2;
    for (int64_t r = r0; r < r1; r++) {
        const float *a11 = a + r * lda, *a12 = a11 + kh, *a21 = a + (r + mh) * lda, *a22 = a21 + kh;
        float *o = out + (r - r0) * ldo;
        switch (e) {
        case 0: for (int64_t j = 0; j < kh; j++) o[j] = a11[j] + a22[j]; break;
        case 1: for (int64_t j = 0; j < kh; j++) o[j] = a21[j] + a22[j]; break;
        case 2: for (int64_t j = 0; j < kh; j++) o[j] = a11[j]; break;
        case 3: for (int64_t j = 0; j < kh; j++) o[j] = a22[j]; break;
        case 4: for (int64_t j = 0; j < kh; j++) o[j] = a11[j] + a12[j]; break;
        case 5: for (int64_t j = 0; j < kh; j++) o[j] = a21[j] - a11[j]; break;
        default: for (int64_t j = 0; j < kh; j++) o[j] = a12[j] - a22[j]; break;
        }
    }
}

void fcn_strassen_b(const float *b, int64_t ldb, int64_t k, int64_t n, int64_t r0, int64_t r1, float *out,
                    int64_t es) {
    int64_t kh = k / 2, nh = (n + 1) / 2, nr = n - nh;   // right blocks: nr columns (nh - 1 when n is odd)
    for (int64_t r = r0; r < r1; r++) {
        const float *b11 = b + r * ldb, *b12 = b11 + nh, *b21 = b + (r + kh) * ldb, *b22 = b21 + nh;
        float *o0 = out + r * nh, *o1 = o0 + es, *o2 = o1 + es, *o3 = o2 + es, *o4 = o3 + es, *o5 = o4 + es,
              *o6 = o5 + es;
        for (int64_t j = 0; j < nr; j++) {
            float x11 = b11[j], x12 = b12[j], x21 = b21[j], x22 = b22[j];
            o0[j] = x11 + x22; o1[j] = x11; o2[j] = x12 - x22; o3[j] = x21 - x11;
            o4[j] = x22; o5[j] = x11 + x12; o6[j] = x21 + x22;
        }
        for (int64_t j = nr; j < nh; j++) {   // the zero column of an odd n
            float x11 = b11[j], x21 = b21[j];
            o0[j] = x11; o1[j] = x11; o2[j] = 0.0f; o3[j] = x21 - x11;
            o4[j] = 0.0f; o5[j] = x11; o6[j] = x21;
        }
    }
}

void fcn_strassen_combine(const float *p, int64_t es, int64_t m, int64_t n, int64_t r0, int64_t r1,
                          const float *bias, int relu, float *c, int64_t ldc) {
    int64_t mh = m / 2, nh = (n + 1) / 2, nr = n - nh;
    for (int64_t r = r0; r < r1; r++) {
        const float *p0 = p + r * nh, *p1 = p0 + es, *p2 = p1 + es, *p3 = p2 + es, *p4 = p3 + es, *p5 = p4 + es,
                    *p6 = p5 + es;
        float bt = bias ? bias[r] : 0.0f, bb = bias ? bias[r + mh] : 0.0f;
        float *c11 = c + r * ldc, *c12 = c11 + nh, *c21 = c + (r + mh) * ldc, *c22 = c21 + nh;
        for (int64_t j = 0; j < nh; j++) {
            float v11 = ((p0[j] + p3[j]) - (p4[j] - p6[j])) + bt;
            float v21 = (p1[j] + p3[j]) + bb;
            if (relu) { v11 = v11 < 0.0f ? 0.0f : v11; v21 = v21 < 0.0f ? 0.0f : v21; }
            c11[j] = v11; c21[j] = v21;
        }
        for (int64_t j = 0; j < nr; j++) {
            float v12 = (p2[j] + p4[j]) + bt;
            float v22 = ((p0[j] - p1[j]) + (p2[j] + p5[j])) + bb;
            if (relu) { v12 = v12 < 0.0f ? 0.0f : v12; v22 = v22 < 0.0f ? 0.0f : v22; }
            c12[j] = v12; c22[j] = v22;
        }
    }
}
