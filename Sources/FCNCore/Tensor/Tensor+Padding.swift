// Constant padding (and cropping, with negative amounts) on any trailing axes.
//
// Contract: `padded(_:value:)` takes one (before, after) pair per axis for the LAST
// `padding.count` axes, in axis order (so `[(1, 1), (2, 0)]` on [N, C, H, W] pads H by 1
// on both sides and W by 2 at the start). Note the order is the natural axis order, not
// PyTorch F.pad's last-axis-first order. New cells hold `value`. A negative amount removes
// that many elements (crop); each resulting size must stay >= 0.
// Kernel: each output row (last axis) is a fill / memcpy / fill; rows whose outer indices
// fall outside the input are filled. Gradient: the upstream gradient padded with the
// negated amounts (a crop of it, zeros where the forward cropped).

extension Tensor {
    /// Pads (or crops, for negative amounts) the last `padding.count` axes with `value`.
    /// Output size on a padded axis: `before + size + after`.
    public func padded(_ padding: [(before: Int, after: Int)], value: Float = 0) -> Tensor {
        fcnCheck(padding.count <= rank, "pad", "\(padding.count) padding pairs given for a tensor of shape \(shape) with \(rank) axes")
        let lead = rank - padding.count
        var before = [Int](repeating: 0, count: rank), after = before
        for (i, p) in padding.enumerated() { before[lead + i] = p.before; after[lead + i] = p.after }
        var outShape = shape
        for i in 0..<rank { outShape[i] = shape[i] + before[i] + after[i] }
        fcnCheck(outShape.allSatisfy { $0 >= 0 }, "pad",
                 "padding \(padding.map { [$0.before, $0.after] }) of shape \(shape) gives negative sizes \(outShape)")
        if before.allSatisfy({ $0 == 0 }) && after.allSatisfy({ $0 == 0 }) { return reshaped(shape) }
        let out = Tensor._pad(self, outShape: outShape, before: before, value: value)
        let inShape = shape
        return Tensor.record("pad", out, inputs: [self]) { g, _ in
            [Tensor._pad(g, outShape: inShape, before: before.map { -$0 }, value: 0)]
        }
    }

    /// Pads the last two axes (height, width of NCHW) by top/bottom/left/right.
    public func padded(top: Int, bottom: Int, left: Int, right: Int, value: Float = 0) -> Tensor {
        fcnCheck(rank >= 2, "pad", "padded(top:bottom:left:right:) needs at least 2 axes, got shape \(shape)")
        return padded([(top, bottom), (left, right)], value: value)
    }

    /// Kernel: output index i on axis d reads input index i - before[d] when in range.
    static func _pad(_ x: Tensor, outShape: [Int], before: [Int], value: Float) -> Tensor {
        let r = outShape.count
        let inShape = x.shape, inSt = Tensor.strides(of: inShape)
        let src = x.storage.pointer
        return make(shape: outShape) { o in
            let po = o.baseAddress!
            let total = o.count
            if total == 0 { return }
            let w = outShape[r - 1], inW = inShape[r - 1], b = before[r - 1]
            // Columns of an output row that come from the input: [lo, hi).
            let lo = Swift.min(w, Swift.max(0, b)), hi = Swift.max(lo, Swift.min(w, inW + b))
            let rows = total / w
            parallelChunks(rows, minChunk: Swift.max(1, elementwiseGrain / w)) { range in
                var idx = [Int](repeating: 0, count: Swift.max(r - 1, 1))
                for row in range {
                    var rem = row, off = 0, inside = true
                    for d in stride(from: r - 2, through: 0, by: -1) {
                        idx[d] = rem % outShape[d]; rem /= outShape[d]
                        let s = idx[d] - before[d]
                        if s < 0 || s >= inShape[d] { inside = false }
                        off += s * inSt[d]
                    }
                    let dst = po + row * w
                    if !inside || hi == lo { dst.update(repeating: value, count: w); continue }
                    if lo > 0 { dst.update(repeating: value, count: lo) }
                    (dst + lo).update(from: src + off + (lo - b), count: hi - lo)
                    if hi < w { (dst + hi).update(repeating: value, count: w - hi) }
                }
            }
        }
    }
}
