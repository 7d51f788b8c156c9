// Slicing along one axis, concatenation and stacking.
//
// Contract:
// * `sliced(axis:start:end:step:)` keeps indices start, start+step, ... below end along
//   one axis (step >= 1). Negative start/end count from the end; after that they must
//   satisfy 0 <= start <= end <= size (no silent clamping, unlike Python slices). Copies.
// * `Tensor.concat` joins tensors along an existing axis (all other sizes equal);
//   `Tensor.stack` joins equally shaped tensors along a new axis.
// * Kernels view the tensor as [outer, axis, inner] and copy runs of `inner` (or
//   `len * inner` for step 1 / concat) contiguous floats with memcpy.
// * Gradients: slice scatters the gradient into zeros; concat slices the gradient.

extension Tensor {
    /// Splits `shape` around `axis` into (outer, size, inner) element counts.
    func outerInner(_ axis: Int) -> (outer: Int, size: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Elements `start, start+step, ...` below `end` along `axis` (PyTorch `x[..., start:end:step]`).
    /// Copies. Negative `start`/`end` count from the end of the axis.
    public func sliced(axis: Int, start: Int, end: Int, step: Int = 1) -> Tensor {
        let ax = normalizeAxis(axis, op: "slice")
        let n = shape[ax]
        let s = start < 0 ? start + n : start, e = end < 0 ? end + n : end
        fcnCheck(step >= 1, "slice", "step \(step) must be >= 1 (tensor of shape \(shape))")
        fcnCheck(s >= 0 && s <= e && e <= n, "slice",
                 "range \(start)..<\(end) is invalid for axis \(axis) of size \(n) (tensor of shape \(shape))")
        let len = (e - s + step - 1) / step
        var outShape = shape; outShape[ax] = len
        let (outer, _, inner) = outerInner(ax)
        let src = storage.pointer
        let out = Tensor.make(shape: outShape) { o in
            Tensor.sliceCopy(outer: outer, size: n, inner: inner, start: s, len: len, step: step,
                             full: src, part: o.baseAddress!, gather: true)
        }
        let inShape = shape
        return Tensor.record("slice", out, inputs: [self]) { g, _ in
            var gx = Tensor.zeros(inShape)
            gx.withUnsafeMutableBufferPointer { p in
                Tensor.sliceCopy(outer: outer, size: n, inner: inner, start: s, len: len, step: step,
                                 full: p.baseAddress!, part: g.storage.pointer, gather: false)
            }
            return [gx]
        }
    }

    /// Elements `range` along `axis` (step 1). Copies.
    public func sliced(axis: Int, range: Range<Int>) -> Tensor {
        sliced(axis: axis, start: range.lowerBound, end: range.upperBound)
    }

    /// Copies between a full tensor [outer, size, inner] and its slice [outer, len, inner]
    /// (`gather`: full -> part, else part -> full).
    static func sliceCopy(outer: Int, size: Int, inner: Int, start: Int, len: Int, step: Int,
                          full: UnsafeMutablePointer<Float>, part: UnsafeMutablePointer<Float>, gather: Bool) {
        if len == 0 || inner == 0 { return }
        parallelChunks(outer, minChunk: Swift.max(1, elementwiseGrain / (len * inner))) { r in
            for o in r {
                let f = full + (o * size + start) * inner, p = part + o * len * inner
                if step == 1 {
                    if gather { p.update(from: f, count: len * inner) } else { f.update(from: p, count: len * inner) }
                } else {
                    for j in 0..<len {
                        if gather { (p + j * inner).update(from: f + j * step * inner, count: inner) } else {
                            (f + j * step * inner).update(from: p + j * inner, count: inner)
                        }
                    }
                }
            }
        }
    }

    /// Joins `tensors` along `axis` (torch.cat). All must have the same rank and equal sizes
    /// on every other axis. Gradient: the matching slice of the upstream gradient.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        fcnCheck(!tensors.isEmpty, "concat", "needs at least one tensor")
        let first = tensors[0]
        let ax = first.normalizeAxis(axis, op: "concat")
        for (i, t) in tensors.enumerated() {
            let ok = t.rank == first.rank && t.shape.indices.allSatisfy { $0 == ax || t.shape[$0] == first.shape[$0] }
            fcnCheck(ok, "concat", "tensor \(i) has shape \(t.shape), incompatible with \(first.shape) for concatenation along axis \(axis) (\(tensors.map(\.shape)))")
        }
        let sizes = tensors.map { $0.shape[ax] }
        let total = sizes.reduce(0, +)
        var outShape = first.shape; outShape[ax] = total
        let outer = first.shape[..<ax].reduce(1, *), inner = first.shape[(ax + 1)...].reduce(1, *)
        let out = Tensor.make(shape: outShape) { o in
            let po = o.baseAddress!
            var offset = 0
            for (t, len) in zip(tensors, sizes) {
                sliceCopy(outer: outer, size: total, inner: inner, start: offset, len: len, step: 1,
                          full: po, part: t.storage.pointer, gather: false)
                offset += len
            }
        }
        return record("concat", out, inputs: tensors) { g, needs in
            var offset = 0
            return zip(sizes, needs).map { len, need in
                defer { offset += len }
                return need ? g.sliced(axis: ax, start: offset, end: offset + len) : nil
            }
        }
    }

    /// Joins equally shaped tensors along a new axis `axis` (in `0...rank`; torch.stack).
    public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
        fcnCheck(!tensors.isEmpty, "stack", "needs at least one tensor")
        let s = tensors[0].shape
        for (i, t) in tensors.enumerated() {
            fcnCheck(t.shape == s, "stack", "tensor \(i) has shape \(t.shape), expected \(s) like tensor 0")
        }
        let r = s.count
        let a = axis < 0 ? axis + r + 1 : axis
        fcnCheck(a >= 0 && a <= r, "stack", "axis \(axis) is out of range for tensors of shape \(s)")
        return concat(tensors.map { $0.unsqueezed(axis: a) }, axis: a)
    }
}
