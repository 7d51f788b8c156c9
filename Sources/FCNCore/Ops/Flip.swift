// Left-right mirroring along the last axis: data augmentation (training) and the flip
// test-time augmentation (inference) share it, so it lives with the ops.
//
// Contract: `x` of rank >= 2 (`[H, W]`, `[C, H, W]`, `[N, C, H, W]`, ...); the result has
// the same shape with `y[..., w] = x[..., W - 1 - w]`. It is a data op: no gradient is
// recorded (the result is detached), since augmentations transform inputs and labels, and
// flip TTA averages probabilities under `withoutGrad`.

extension Tensor {
    /// The tensor mirrored along its last axis (see the file comment).
    public func flippedHorizontally() -> Tensor {
        fcnCheck(rank >= 2, "flippedHorizontally", "expected [H, W] or [C, H, W] (rank >= 2), got \(shape)")
        let w = shape[rank - 1], rows = w == 0 ? 0 : count / w
        let src = storage.pointer
        return Tensor.make(shape: shape) { out in
            for r in 0..<rows {
                let s = src + r * w, o = out.baseAddress! + r * w
                for i in 0..<w { o[i] = s[w - 1 - i] }
            }
        }
    }
}
