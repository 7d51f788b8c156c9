// Matrix products on sgemm, forward and backward.
//
// Contract: `matmul(a, b)` for
//   [m, k]    x [k, n]    -> [m, n]
//   [B, m, k] x [B, k, n] -> [B, m, n]   (one sgemm per batch)
//   [B, m, k] x [k, n]    -> [B, m, n]   (a single sgemm with B*m rows)
//   [m, k]    x [B, k, n] -> [B, m, n]   (the left matrix is shared)
// Backward uses sgemm with the transpose flags (no transposed copies):
//   grad_a = grad · bᵀ,  grad_b = aᵀ · grad, summed over the batch for a shared operand.
// Row-major, contiguous Float32 throughout.

/// Matrix product (PyTorch `torch.matmul` for ranks 2 and 3, see the file contract).
/// The inner sizes must match: `a.shape.last == b.shape[b.rank - 2]`.
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor { _matmul(a, b) }

func _matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    fcnCheck((a.rank == 2 || a.rank == 3) && (b.rank == 2 || b.rank == 3), "matmul",
             "operands must have rank 2 or 3, got a \(a.shape) and b \(b.shape)")
    let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1]
    let k2 = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
    fcnCheck(k == k2, "matmul", "inner dimensions differ: a \(a.shape) x b \(b.shape) (\(k) vs \(k2))")
    if a.rank == 3 && b.rank == 3 {
        fcnCheck(a.shape[0] == b.shape[0], "matmul", "batch sizes differ: a \(a.shape) x b \(b.shape) (\(a.shape[0]) vs \(b.shape[0]))")
    }
    if a.rank == 3 && b.rank == 2 {
        // Fold the batch into the rows: one larger GEMM, and autograd flows through reshape.
        let bs = a.shape[0]
        return _matmul(a.reshaped([bs * m, k]), b).reshaped([bs, m, n])
    }
    let batch = a.rank == 3 ? a.shape[0] : (b.rank == 3 ? b.shape[0] : 1)
    let outShape = (a.rank == 3 || b.rank == 3) ? [batch, m, n] : [m, n]
    let sA = a.rank == 3 ? m * k : 0, sB = b.rank == 3 ? k * n : 0
    let pa = UnsafePointer(a.storage.pointer), pb = UnsafePointer(b.storage.pointer)
    let out = Tensor.make(shape: outShape) { o in
        let po = o.baseAddress!
        for i in 0..<batch {
            sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                  a: pa + i * sA, lda: k, b: pb + i * sB, ldb: n, beta: 0, c: po + i * m * n, ldc: n)
        }
        if k == 0 || m == 0 || n == 0 { o.update(repeating: 0) }
    }
    let x = a.detached(), y = b.detached()
    return Tensor.record("matmul", out, inputs: [a, b]) { g, needs in
        let pg = UnsafePointer(g.storage.pointer)
        let px = UnsafePointer(x.storage.pointer), py = UnsafePointer(y.storage.pointer)
        var ga: Tensor? = nil, gb: Tensor? = nil
        if needs[0] {
            // grad_a[i] = g[i] · b[i]ᵀ : [m, n] x [n, k]; accumulated over i when a is shared.
            ga = Tensor.make(shape: x.shape) { o in
                let po = o.baseAddress!
                o.update(repeating: 0)
                for i in 0..<batch {
                    sgemm(transA: false, transB: true, m: m, n: k, k: n, alpha: 1,
                          a: pg + i * m * n, lda: n, b: py + i * sB, ldb: n,
                          beta: (sA == 0 && i > 0) ? 1 : 0, c: po + i * sA, ldc: k)
                }
            }
        }
        if needs[1] {
            // grad_b[i] = a[i]ᵀ · g[i] : [k, m] x [m, n].
            gb = Tensor.make(shape: y.shape) { o in
                let po = o.baseAddress!
                o.update(repeating: 0)
                for i in 0..<batch {
                    sgemm(transA: true, transB: false, m: k, n: n, k: m, alpha: 1,
                          a: px + i * sA, lda: k, b: pg + i * m * n, ldb: n,
                          beta: (sB == 0 && i > 0) ? 1 : 0, c: po + i * sB, ldc: n)
                }
            }
        }
        return [ga, gb]
    }
}

extension Tensor {
    /// `matmul(self, other)`.
    public func matmul(_ other: Tensor) -> Tensor { _matmul(self, other) }
}
