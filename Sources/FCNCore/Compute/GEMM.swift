// GEMM: C = alpha * op(A) * op(B) + beta * C, single precision, row-major.
//
// Contract: `op(A)` is `[m, k]` (A stored `[m, lda]`, or `[k, lda]` when transA),
// `op(B)` is `[k, n]` (B stored `[k, ldb]`, or `[n, ldb]` when transB), C is `[m, ldc]`.
// `beta == 0` overwrites C without reading it (NaNs in C do not propagate).
// `sgemm` is the entry point every op uses; `sgemm(…, epilogue:)` also fuses a row/column
// bias and ReLU into the write-back. `sgemmReference` is the naive triple loop kept for tests.
// The tuned engine (packing, cache blocking, per-ISA microkernels, threads) lives in the C
// target (Sources/CFCNKernels/gemm*.c) and in GEMM+Driver.swift.
// Thread safety: concurrent calls are fine (each running tile takes its own workspace);
// a call made from inside a `parallelFor` worker runs on that one thread.

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
///
/// Runs the packed, cache-blocked engine (GEMM+Driver.swift) on the fastest ISA path of this
/// CPU (AVX-512, AVX2+FMA, NEON or portable C) over `Compute.threads` threads.
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    sgemmEngine(isa: GEMMConfig.defaultISA, threads: Compute.threads, transA: transA, transB: transB,
                m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                beta: beta, c: c, ldc: ldc, epilogue: .none)
}

/// SGEMM with a fused epilogue (see `GEMMEpilogue`):
/// `C = act(alpha * op(A) * op(B) + beta * C + rowBias[i] + colBias[j])`, in one pass over C.
/// Used by convolution-as-GEMM to add the bias (per output channel = row) and apply ReLU
/// without a second sweep over the output.
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue) {
    sgemmEngine(isa: GEMMConfig.defaultISA, threads: Compute.threads, transA: transA, transB: transB,
                m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                beta: beta, c: c, ldc: ldc, epilogue: epilogue)
}
