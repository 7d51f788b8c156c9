// GEMM: C = alpha * op(A) * op(B) + beta * C, single precision, row-major.
//
// Contract: `op(A)` is `[m, k]` (A stored `[m, lda]`, or `[k, lda]` when transA),
// `op(B)` is `[k, n]` (B stored `[k, ldb]`, or `[n, ldb]` when transB), C is `[m, ldc]`.
// `beta == 0` overwrites C without reading it (NaNs in C do not propagate).
// `sgemm` is the entry point every op uses; `sgemmReference` is the naive triple loop kept
// for tests. The tuned engine (packing, cache blocking, per-ISA microkernels, threads)
// lives in the C target and in GEMM+Driver.swift.

/// Naive reference SGEMM (row-major). Kept for tests; slow.
public func sgemmReference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var acc: Float = 0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                acc += av * bv
            }
            let old = beta == 0 ? 0 : beta * c[i * ldc + j]
            c[i * ldc + j] = alpha * acc + old
        }
    }
}

/// SGEMM used by every op (row-major; see the file contract).
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    // Placeholder engine: a cache-friendly i-p-j loop. Replaced by the packed, blocked,
    // per-ISA engine in the C target.
    for i in 0..<m {
        let crow = c + i * ldc
        if beta == 0 { for j in 0..<n { crow[j] = 0 } } else if beta != 1 { for j in 0..<n { crow[j] *= beta } }
        for p in 0..<k {
            let av = alpha * (transA ? a[p * lda + i] : a[i * lda + p])
            if av == 0 { continue }
            if transB {
                for j in 0..<n { crow[j] += av * b[j * ldb + p] }
            } else {
                let brow = b + p * ldb
                for j in 0..<n { crow[j] += av * brow[j] }
            }
        }
    }
}
