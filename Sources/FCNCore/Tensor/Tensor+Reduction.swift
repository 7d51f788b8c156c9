// Reductions: sum, mean, max, min over all elements or over axes; argmax / argmin.
//
// Contract:
// * `axes` may be negative (counted from the end), in any order, without repeats. An
//   empty `axes` list reduces nothing (unlike PyTorch's `dim=[]`, which reduces all).
// * `keepDims` keeps reduced axes with size 1 (PyTorch `keepdim`); the default `false`
//   removes them, as in PyTorch.
// * Kernels: axes are merged into alternating kept/reduced groups; the innermost reduced
//   group is reduced as `[A, R, B] -> [A, B]`, repeatedly. Contiguous sums (B == 1) run
//   blocked SIMD partial sums (blocks of 1024) added into a Double; strided sums (B > 1)
//   accumulate rows into a Double buffer. Large sums stay within ~1e-7 relative.
// * Gradients: sum/mean broadcast the upstream gradient back. max/min follow
//   `torch.amax`/`torch.amin`: the gradient is split evenly among the elements equal to
//   the extremum. argmax/argmin take the first extremum (PyTorch) and are not differentiable.
// * NaN propagates through max/min (a NaN is the maximum and the minimum); argmax of a
//   slice containing NaN returns the first NaN's index, as PyTorch.

/// Which reduction a `[A, R, B]` pass computes.
enum ReduceKind { case sum, max, min }

/// Sum of `n` contiguous floats: SIMD partial sums over blocks of 1024 added into a Double.
@inline(__always)
func contiguousSum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i < n {
        let end = Swift.min(n, i + 1024)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        while i + 16 <= end {
            s0 += raw.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            s1 += raw.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self)
            i &+= 16
        }
        var t = Double((s0 + s1).sum())
        while i < end { t += Double(p[i]); i &+= 1 }
        total += t
    }
    return total
}

/// `v` replaces the running extremum `m` (first extremum wins; the first NaN wins).
@inline(__always)
func replacesExtremum(_ v: Float, _ m: Float, isMax: Bool) -> Bool {
    (isMax ? v > m : v < m) || (v.isNaN && !m.isNaN)
}

/// `out[a, b] = reduce_r x[a, r, b]` for contiguous `x` of shape [A, R, B], R >= 1.
func reduceARB(_ kind: ReduceKind, _ x: UnsafePointer<Float>, _ A: Int, _ R: Int, _ B: Int,
               _ out: UnsafeMutablePointer<Float>) {
    let grain = Swift.max(1, elementwiseGrain / Swift.max(1, R * B))
    switch kind {
    case .sum:
        if B == 1 {
            parallelChunks(A, minChunk: grain) { r in
                for a in r { out[a] = Float(contiguousSum(x + a * R, R)) }
            }
        } else {
            parallelChunks(A, minChunk: grain) { r in
                let acc = UnsafeMutablePointer<Double>.allocate(capacity: B)
                defer { acc.deallocate() }
                for a in r {
                    acc.initialize(repeating: 0, count: B)
                    let base = x + a * R * B
                    for rr in 0..<R {
                        let row = base + rr * B
                        for b in 0..<B { acc[b] += Double(row[b]) }
                    }
                    for b in 0..<B { out[a * B + b] = Float(acc[b]) }
                }
            }
        }
    case .max, .min:
        let isMax = kind == .max
        parallelChunks(A, minChunk: grain) { r in
            for a in r {
                let base = x + a * R * B, o = out + a * B
                if B == 1 {
                    var m = base[0]
                    for rr in 1..<R where replacesExtremum(base[rr], m, isMax: isMax) { m = base[rr] }
                    o[0] = m
                } else {
                    for b in 0..<B { o[b] = base[b] }
                    for rr in 1..<R {
                        let row = base + rr * B
                        for b in 0..<B where replacesExtremum(row[b], o[b], isMax: isMax) { o[b] = row[b] }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// Normalised, checked reduction axes as a per-axis flag.
    func reductionMask(_ axes: [Int], op: String) -> [Bool] {
        var mask = [Bool](repeating: false, count: rank)
        for ax in axes {
            let a = ax < 0 ? ax + rank : ax
            fcnCheck(a >= 0 && a < rank, op, "axis \(ax) is out of range for a tensor of shape \(shape)")
            fcnCheck(!mask[a], op, "axis \(ax) is repeated in axes \(axes)")
            mask[a] = true
        }
        return mask
    }

    /// Shape with the masked axes set to 1.
    func keptShape(_ mask: [Bool]) -> [Int] {
        shape.enumerated().map { mask[$0.offset] ? 1 : $0.element }
    }

    /// Reduces over `axes`, returning the keepDims shape. Not recorded.
    func _reduceKeepDims(_ kind: ReduceKind, axes: [Int], op: String) -> Tensor {
        let mask = reductionMask(axes, op: op)
        let keep = keptShape(mask)
        if kind != .sum {
            for i in 0..<rank where mask[i] {
                fcnCheck(shape[i] > 0, op, "cannot reduce over axis \(i) of size 0 (tensor of shape \(shape))")
            }
        }
        if count == 0 { return Tensor(shape: keep, repeating: 0) }
        // Groups of merged axes (size-1 axes dropped), flagged reduced or kept.
        var sizes: [Int] = [], red: [Bool] = []
        for i in 0..<rank where shape[i] != 1 {
            if let last = red.last, last == mask[i] { sizes[sizes.count - 1] *= shape[i] } else {
                sizes.append(shape[i]); red.append(mask[i])
            }
        }
        var data = self
        while let j = red.lastIndex(of: true) {
            let A = sizes[..<j].reduce(1, *), R = sizes[j], B = sizes[(j + 1)...].reduce(1, *)
            let src = data
            data = Tensor.make(shape: [A * B]) { o in reduceARB(kind, src.storage.pointer, A, R, B, o.baseAddress!) }
            sizes.remove(at: j); red.remove(at: j)
        }
        return Tensor(shape: keep, storage: data.storage)
    }

    /// Removes the masked axes from a keepDims shape.
    static func squeezedShape(_ shape: [Int], _ mask: [Bool]) -> [Int] {
        shape.enumerated().filter { !mask[$0.offset] }.map(\.element)
    }

    // MARK: sum / mean

    /// Sum of all elements, as a rank-0 tensor. Gradient: the upstream value everywhere.
    public func sum() -> Tensor {
        sum(axes: Array(0..<rank))
    }

    /// Sum over `axes` (negative axes count from the end). `keepDims` keeps the reduced
    /// axes with size 1, which broadcasts back against the input.
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let mask = reductionMask(axes, op: "sum")
        let k = _reduceKeepDims(.sum, axes: axes, op: "sum")
        let out = keepDims ? k : Tensor(shape: Tensor.squeezedShape(shape, mask), storage: k.storage)
        let inShape = shape, keep = k.shape
        return Tensor.record("sum", out, inputs: [self]) { g, _ in
            [g.reshaped(keep)._expanded(to: inShape)]
        }
    }

    /// Sum over one axis.
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean of all elements (rank-0). The mean of an empty tensor is NaN, as in PyTorch.
    public func mean() -> Tensor { mean(axes: Array(0..<rank)) }

    /// Mean over `axes`: the sum divided by the number of reduced elements.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let mask = reductionMask(axes, op: "mean")
        let n = zip(shape, mask).reduce(1) { $1.1 ? $0 * $1.0 : $0 }
        return sum(axes: axes, keepDims: keepDims) / Float(n)
    }

    /// Mean over one axis.
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    // MARK: max / min

    /// Largest element (rank-0); gradient split evenly among ties (torch.amax).
    public func max() -> Tensor { max(axes: Array(0..<rank)) }
    /// Smallest element (rank-0); gradient split evenly among ties (torch.amin).
    public func min() -> Tensor { min(axes: Array(0..<rank)) }

    /// Maximum over `axes` (torch.amax). The gradient goes to the maximal elements, split
    /// evenly when several are equal.
    public func max(axes: [Int], keepDims: Bool = false) -> Tensor { _extremum(axes: axes, keepDims: keepDims, isMax: true) }
    /// Minimum over `axes` (torch.amin); ties split the gradient evenly.
    public func min(axes: [Int], keepDims: Bool = false) -> Tensor { _extremum(axes: axes, keepDims: keepDims, isMax: false) }
    /// Maximum over one axis (values only; see `argmax(axis:)` for the indices).
    public func max(axis: Int, keepDims: Bool = false) -> Tensor { max(axes: [axis], keepDims: keepDims) }
    /// Minimum over one axis.
    public func min(axis: Int, keepDims: Bool = false) -> Tensor { min(axes: [axis], keepDims: keepDims) }

    func _extremum(axes: [Int], keepDims: Bool, isMax: Bool) -> Tensor {
        let op = isMax ? "max" : "min"
        let mask = reductionMask(axes, op: op)
        let k = _reduceKeepDims(isMax ? .max : .min, axes: axes, op: op)
        let out = keepDims ? k : Tensor(shape: Tensor.squeezedShape(shape, mask), storage: k.storage)
        let x = detached(), keep = k.shape
        return Tensor.record(op, out, inputs: [self]) { g, _ in
            let hit = Tensor._binary(EqualKernel.self, x, k, op: op)
            let ties = hit._reduceKeepDims(.sum, axes: axes, op: op)
            return [hit * (g.reshaped(keep) / ties)]
        }
    }

    // MARK: argmax / argmin

    /// Index of the largest element along `axis`, as Float values (exact below 2^24).
    /// The first maximum wins on ties (PyTorch). Not differentiable.
    public func argmax(axis: Int, keepDims: Bool = false) -> Tensor { _argExtremum(axis: axis, keepDims: keepDims, isMax: true) }
    /// Index of the smallest element along `axis` (first minimum wins), as Float values.
    public func argmin(axis: Int, keepDims: Bool = false) -> Tensor { _argExtremum(axis: axis, keepDims: keepDims, isMax: false) }

    /// `argmax(axis:)` as integers, in row-major order of the remaining axes (for instance
    /// the predicted class of every pixel of `[N, C, H, W]` scores with `axis: 1`).
    public func argmaxIndices(axis: Int) -> [Int] { argmax(axis: axis).scalars.map { Int($0) } }

    /// Flat row-major index of the largest element (first one on ties).
    public func argmax() -> Int { Int(reshaped([-1]).argmax(axis: 0).item) }

    func _argExtremum(axis: Int, keepDims: Bool, isMax: Bool) -> Tensor {
        let op = isMax ? "argmax" : "argmin"
        let ax = normalizeAxis(axis, op: op)
        fcnCheck(shape[ax] > 0, op, "cannot reduce over axis \(axis) of size 0 (tensor of shape \(shape))")
        let A = shape[..<ax].reduce(1, *), R = shape[ax], B = shape[(ax + 1)...].reduce(1, *)
        var keep = shape; keep[ax] = 1
        var outShape = shape
        if keepDims { outShape[ax] = 1 } else { outShape.remove(at: ax) }
        let x = storage.pointer
        return Tensor.make(shape: outShape) { o in
            let po = o.baseAddress!
            parallelChunks(A, minChunk: Swift.max(1, elementwiseGrain / Swift.max(1, R * B))) { r in
                let best = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(B, 1))
                defer { best.deallocate() }
                for a in r {
                    let base = x + a * R * B, oo = po + a * B
                    for b in 0..<B { best[b] = base[b]; oo[b] = 0 }
                    for rr in 1..<Swift.max(R, 1) {
                        let row = base + rr * B
                        for b in 0..<B where replacesExtremum(row[b], best[b], isMax: isMax) {
                            best[b] = row[b]; oo[b] = Float(rr)
                        }
                    }
                }
            }
        }
    }
}
