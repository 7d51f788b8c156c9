// dropout and dropout2d: inverted dropout with a seeded generator (forward + backward).
//
// Contract: in training, each element (dropout) or each whole channel of each sample
// (dropout2d, axes 0 and 1 of [N, C, ...]) is kept with probability 1 - p and scaled by
// 1 / (1 - p), so the expected value is unchanged and evaluation needs no rescaling.
// Not training, or p == 0: the input is returned unchanged (no copy, no graph node).
// p == 1: zeros (gradient zero), and no draw is made. The mask is drawn from `generator`, one uniform per
// element (dropout) or per (sample, channel) (dropout2d), in row-major order; an element
// is kept when its uniform u in [0, 1) satisfies u >= p. The same generator state gives
// the same mask; the backward pass multiplies by the same mask.
// PyTorch cannot be matched bit for bit (its generator differs): tests check the
// statistics and the structure instead.

/// Checks `p` and returns the scale of kept elements.
private func dropoutScale(_ op: String, _ p: Float) -> Float {
    fcnCheck(p >= 0 && p <= 1, op, "dropout probability p = \(p) is outside [0, 1]")
    return p < 1 ? 1 / (1 - p) : 0
}

/// Multiplies `x` by a mask laid out as [groups, groupSize] (one mask value per group)
/// and records the backward pass with the same mask.
private func applyGroupMask(_ op: String, _ x: Tensor, mask: [Float], groupSize: Int) -> Tensor {
    let y = Tensor.make(shape: x.shape) { out in
        let src = x.storage.pointer
        mask.withUnsafeBufferPointer { m in
            for gi in 0..<m.count {
                let s = m[gi], base = gi * groupSize
                for j in base..<(base + groupSize) { out[j] = src[j] * s }
            }
        }
    }
    return Tensor.record(op, y, inputs: [x]) { g, _ in
        [Tensor.make(shape: g.shape) { out in
            let src = g.storage.pointer
            mask.withUnsafeBufferPointer { m in
                for gi in 0..<m.count {
                    let s = m[gi], base = gi * groupSize
                    for j in base..<(base + groupSize) { out[j] = src[j] * s }
                }
            }
        }]
    }
}

/// Inverted dropout: in training, zeroes each element with probability `p` and scales the
/// others by `1 / (1 - p)`; identity when `training` is false or `p == 0`. Any shape.
///
/// `generator` advances by one draw per element; the same state gives the same mask.
/// `p` must lie in [0, 1]; `p == 1` gives zeros. The reference FCN uses p = 0.5 after fc6
/// and fc7.
public func dropout(_ x: Tensor, p: Float, training: Bool, generator: inout FCNRandom) -> Tensor {
    let scale = dropoutScale("dropout", p)
    if !training || p == 0 { return x }
    var mask = [Float](repeating: 0, count: x.count)
    if p < 1 {
        for i in 0..<mask.count { mask[i] = generator.nextUniform() >= p ? scale : 0 }
    }
    return applyGroupMask("dropout", x, mask: mask, groupSize: 1)
}

/// Channel dropout: in training, zeroes whole channels `x[n, c, ...]` with probability `p`
/// (independently per sample and channel) and scales the kept ones by `1 / (1 - p)`;
/// identity when `training` is false or `p == 0`.
///
/// Input `[N, C, ...]` (rank >= 2; NCHW for feature maps). `generator` advances by one
/// draw per (sample, channel). Adjacent pixels of a feature map are strongly correlated,
/// so dropping whole channels regularises convolutional features better than `dropout`.
public func dropout2d(_ x: Tensor, p: Float, training: Bool, generator: inout FCNRandom) -> Tensor {
    let scale = dropoutScale("dropout2d", p)
    fcnCheck(x.rank >= 2, "dropout2d", "input of shape \(x.shape) needs at least 2 axes [N, C, ...]")
    if !training || p == 0 { return x }
    let groups = x.shape[0] * x.shape[1]
    let groupSize = groups == 0 ? 0 : x.count / groups
    var mask = [Float](repeating: 0, count: groups)
    if p < 1 {
        for i in 0..<groups { mask[i] = generator.nextUniform() >= p ? scale : 0 }
    }
    return applyGroupMask("dropout2d", x, mask: mask, groupSize: groupSize)
}
