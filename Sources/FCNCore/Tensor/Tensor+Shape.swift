// Shape ops: reshape, flatten, squeeze/unsqueeze, permute/transpose, expand.
//
// Contract:
// * `reshaped`, `flattened`, `squeezed`, `unsqueezed` only relabel the shape: the result
//   shares storage with the input (no copy; copy-on-write keeps value semantics).
// * `permuted`/`transposed` and `expanded` copy into a new contiguous tensor. The copy
//   engine merges compatible axes, then copies rows with memcpy (inner axis contiguous),
//   fills (inner axis broadcast), transposes 32x32 tiles (the two innermost merged axes
//   are swapped, e.g. a 2-D transpose or NCHW <-> NHWC), or gathers with a stride.
// * Gradients: reshape-like ops reshape the gradient back; permute applies the inverse
//   permutation; expand sums over the broadcast axes.
// * Negative axes count from the end everywhere.

/// Copies the strided view (`dims`, source `strides`, possibly 0) of `src` into the
/// contiguous `out`.
func stridedCopy(dims rawDims: [Int], strides rawStrides: [Int], src: UnsafePointer<Float>,
                 out: UnsafeMutablePointer<Float>) {
    let zero = [Int](repeating: 0, count: rawDims.count)
    let m = mergeAxes(rawDims, rawStrides, zero)
    let dims = m.dims, st = m.sa, nd = dims.count
    let total = dims.reduce(1, *)
    if total == 0 { return }
    let inner = dims[nd - 1], si = st[nd - 1]
    // Tiled transpose when the two innermost axes are swapped in the source.
    if nd >= 2 && si != 1 && si != 0 && st[nd - 2] == 1 {
        let P = dims[nd - 2], Q = inner, outer = total / (P * Q)
        parallelChunks(outer, minChunk: Swift.max(1, elementwiseGrain / (P * Q))) { r in
            var idx = [Int](repeating: 0, count: Swift.max(nd - 2, 1))
            for o in r {
                var rem = o, off = 0
                for d in stride(from: nd - 3, through: 0, by: -1) { idx[d] = rem % dims[d]; rem /= dims[d]; off += idx[d] * st[d] }
                let s = src + off, dst = out + o * P * Q
                var p0 = 0
                while p0 < P {
                    let p1 = Swift.min(P, p0 + 32)
                    var q0 = 0
                    while q0 < Q {
                        let q1 = Swift.min(Q, q0 + 32)
                        for p in p0..<p1 { for q in q0..<q1 { dst[p * Q + q] = s[p + q * si] } }
                        q0 = q1
                    }
                    p0 = p1
                }
            }
        }
        return
    }
    let rows = total / inner
    parallelChunks(rows, minChunk: Swift.max(1, elementwiseGrain / inner)) { r in
        var idx = [Int](repeating: 0, count: Swift.max(nd - 1, 1))
        var off = 0, rem = r.lowerBound
        for d in stride(from: nd - 2, through: 0, by: -1) { idx[d] = rem % dims[d]; rem /= dims[d]; off += idx[d] * st[d] }
        for row in r {
            let s = src + off, dst = out + row * inner
            if si == 1 { dst.update(from: s, count: inner) } else if si == 0 { dst.update(repeating: s[0], count: inner) } else {
                for i in 0..<inner { dst[i] = s[i * si] }
            }
            var d = nd - 2
            while d >= 0 {
                idx[d] += 1; off += st[d]
                if idx[d] < dims[d] { break }
                off -= st[d] * dims[d]; idx[d] = 0
                d -= 1
            }
        }
    }
}

extension Tensor {
    // MARK: reshape family (no copy)

    /// The same elements under a new shape with the same element count; one size may be
    /// -1 and is inferred. Shares storage with `self` (no copy).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let s = Tensor.resolveShape(newShape, count: count, from: shape, op: "reshape")
        if s == shape && node == nil { return self }
        let out = Tensor(shape: s, storage: storage)
        let old = shape
        return Tensor.record("reshape", out, inputs: [self]) { g, _ in [g.reshaped(old)] }
    }

    /// Variadic form of `reshaped(_:)`: `x.reshaped(2, -1)`.
    public func reshaped(_ sizes: Int...) -> Tensor { reshaped(sizes) }

    static func resolveShape(_ s: [Int], count: Int, from old: [Int], op: String) -> [Int] {
        let holes = s.indices.filter { s[$0] == -1 }
        fcnCheck(holes.count <= 1, op, "cannot reshape \(old) to \(s): only one size may be -1")
        fcnCheck(s.allSatisfy { $0 >= -1 }, op, "cannot reshape \(old) to \(s): negative size")
        let known = s.reduce(1) { $1 == -1 ? $0 : $0 * $1 }
        var r = s
        if let h = holes.first {
            fcnCheck(known > 0 && count % known == 0, op,
                     "cannot reshape \(old) (\(count) elements) to \(s): \(count) is not a multiple of \(known)")
            r[h] = count / known
        } else {
            fcnCheck(known == count, op, "cannot reshape \(old) (\(count) elements) to \(s) (\(known) elements)")
        }
        return r
    }

    /// Merges axes `axis...` into one (torch.flatten(start_dim: axis)); `flattened(from: 1)`
    /// turns `[N, C, H, W]` into `[N, C*H*W]`. Default 0 flattens to rank 1, as torch.flatten.
    /// Shares storage.
    public func flattened(from axis: Int = 0) -> Tensor {
        if rank == 0 { return reshaped([1]) }
        let a = normalizeAxis(axis, op: "flatten")
        return reshaped(Array(shape[..<a]) + [shape[a...].reduce(1, *)])
    }

    /// Removes axis `axis`, which must have size 1. Shares storage.
    public func squeezed(axis: Int) -> Tensor {
        let a = normalizeAxis(axis, op: "squeeze")
        fcnCheck(shape[a] == 1, "squeeze", "axis \(axis) of shape \(shape) has size \(shape[a]), expected 1")
        var s = shape; s.remove(at: a)
        return reshaped(s)
    }

    /// Removes every axis of size 1. Shares storage.
    public func squeezed() -> Tensor { reshaped(shape.filter { $0 != 1 }) }

    /// Inserts an axis of size 1 at `axis` (in `-(rank+1)...rank`; -1 appends). Shares storage.
    public func unsqueezed(axis: Int) -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        fcnCheck(a >= 0 && a <= rank, "unsqueeze", "axis \(axis) is out of range for a tensor of shape \(shape) (valid: \(-(rank + 1))...\(rank))")
        var s = shape; s.insert(1, at: a)
        return reshaped(s)
    }

    // MARK: permute / transpose (copies)

    /// Reorders the axes: output axis `i` is input axis `axes[i]` (torch.permute). Copies
    /// into a new contiguous tensor (tiled when the innermost axes are swapped).
    public func permuted(_ axes: [Int]) -> Tensor {
        fcnCheck(axes.count == rank, "permute", "axes \(axes) must list each of the \(rank) axes of shape \(shape) once")
        let p = axes.map { $0 < 0 ? $0 + rank : $0 }
        fcnCheck(p.sorted() == Array(0..<rank), "permute", "axes \(axes) are not a permutation of 0..<\(rank) for a tensor of shape \(shape)")
        let st = Tensor.strides(of: shape)
        let outShape = p.map { shape[$0] }
        let src = storage.pointer
        let out = Tensor.make(shape: outShape) { o in
            stridedCopy(dims: outShape, strides: p.map { st[$0] }, src: src, out: o.baseAddress!)
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, a) in p.enumerated() { inverse[a] = i }
        return Tensor.record("permute", out, inputs: [self]) { g, _ in [g.permuted(inverse)] }
    }

    /// Swaps two axes (copies).
    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        let x = normalizeAxis(a, op: "transpose"), y = normalizeAxis(b, op: "transpose")
        var p = Array(0..<rank); p.swapAt(x, y)
        return permuted(p)
    }

    /// Matrix transpose of a rank-2 tensor (copies, tiled).
    public func transposed() -> Tensor {
        fcnCheck(rank == 2, "transpose", "transposed() needs a rank-2 tensor, got shape \(shape); use transposed(_:_:) or permuted(_:)")
        return permuted([1, 0])
    }

    // MARK: expand (copies)

    /// Materialises the broadcast of `self` to `shape` (sizes equal, or 1 in `self`;
    /// missing leading axes are added). Gradient: summed over the broadcast axes.
    public func expanded(to target: [Int]) -> Tensor {
        Tensor.checkShape(target, op: "expand")
        fcnCheck(target.count >= rank, "expand", "cannot expand shape \(shape) to \(target): the target has fewer axes")
        let lead = target.count - rank
        for i in 0..<rank {
            fcnCheck(shape[i] == target[i + lead] || shape[i] == 1, "expand",
                     "cannot expand shape \(shape) to \(target): axis \(i) has size \(shape[i]), expected \(target[i + lead]) or 1")
        }
        let out = _expanded(to: target)
        let inShape = shape
        return Tensor.record("expand", out, inputs: [self]) { g, _ in [g._sumTo(inShape)] }
    }

    /// Broadcast copy without checks or recording (shape already validated).
    func _expanded(to target: [Int]) -> Tensor {
        if target == shape { return detached() }
        let st = broadcastStrides(shape, to: target)
        let src = storage.pointer
        return Tensor.make(shape: target) { o in stridedCopy(dims: target, strides: st, src: src, out: o.baseAddress!) }
    }
}
