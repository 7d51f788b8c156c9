// Pixel-wise softmax cross-entropy (fused log-softmax + negative log-likelihood).
//
// Contract: logits [N, C, H, W] (or [N, C] / any [N, C, ...]), labels [N, H, W] (or [N] /
// [N, ...]) holding class ids as Float. Per position p with label y (not ignored):
//   loss_p = logsumexp_c(logits[:, c, p]) - logits[y, p]     (stable: max subtracted)
// weighted by w[y] (classWeights, default 1). Reductions (PyTorch's F.cross_entropy):
//   .mean  sum_p w[y_p] loss_p / sum_p w[y_p] over kept positions (PyTorch's default)
//   .sum   sum_p w[y_p] loss_p (the Caffe reference FCN's unnormalised loss)
//   .none  [N, H, W] of w[y_p] loss_p, 0 at ignored positions.
// Departure from PyTorch: with .mean, when every position is ignored (or the kept weights
// sum to 0) the loss is 0 with a zero gradient, where PyTorch returns NaN.
// Labels must be integers in [0, C) or equal to ignoreIndex; anything else stops with a
// message naming the label, its position and C.
// Backward (fused): d loss / d logits[c, p] = scale_p * w[y_p] * (softmax_c(p) - [c == y_p]),
// scale_p = upstream gradient (/ total weight for .mean); ignored positions get 0.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a per-pixel loss is reduced to the returned tensor.
public enum LossReduction: String, Sendable, Equatable, CaseIterable {
    /// Weighted mean over the kept (non-ignored) pixels: `sum(w[y] * loss) / sum(w[y])`.
    case mean
    /// Sum over the kept pixels (the Caffe reference FCN's unnormalised loss).
    case sum
    /// No reduction: one value per pixel, shape of the labels; 0 at ignored pixels.
    case none
}

/// Softmax cross-entropy between class scores and integer labels, per pixel.
///
/// - Parameters:
///   - logits: `[N, C, H, W]` unnormalised scores (also `[N, C]` for classification, or any
///     `[N, C, ...]`).
///   - labels: `[N, H, W]` (or `[N]`, `[N, ...]`): class ids in `[0, C)` stored as Float, or
///     `ignoreIndex`.
///   - ignoreIndex: label of pixels that contribute nothing. 255 is the PASCAL VOC
///     boundary label (PyTorch's own default is -100).
///   - reduction: `.mean` (default, PyTorch) over kept pixels, `.sum` (Caffe), `.none`.
///   - classWeights: optional `[C]` rescaling of each class (PyTorch's `weight`).
/// - Returns: a scalar (shape `[]`) for `.mean` and `.sum`, the labels' shape for `.none`.
///   With `.mean` and no kept pixel the loss is 0 with zero gradient (PyTorch gives NaN).
public func softmaxCrossEntropy(logits: Tensor, labels: Tensor, ignoreIndex: Int = 255,
                                reduction: LossReduction = .mean, classWeights: Tensor? = nil) -> Tensor {
    let op = "softmaxCrossEntropy"
    let (N, C, S) = _checkLossInputs(op, logits, labels, ignoreIndex: ignoreIndex)
    if let w = classWeights { fcnCheck(w.shape == [C], op, "classWeights of shape \(w.shape) must be [\(C)] for logits \(logits.shape)") }
    let ignore = Float(ignoreIndex)

    let wts = classWeights?.scalars
    // Per position: logsumexp (for backward) and weighted loss; -1 label index = ignored.
    let P = N * S
    var lse = [Float](repeating: 0, count: P)
    var perPixel = [Float](repeating: 0, count: P)
    var cls = [Int32](repeating: -1, count: P)
    let blocks = (S + 511) / 512
    lse.withUnsafeMutableBufferPointer { lb in
        perPixel.withUnsafeMutableBufferPointer { pb in
            cls.withUnsafeMutableBufferPointer { cb in
                let lp = UncheckedSendable(lb.baseAddress!), pp = UncheckedSendable(pb.baseAddress!)
                let cp = UncheckedSendable(cb.baseAddress!)
                let xp = UncheckedSendable(UnsafePointer(logits.storage.pointer))
                let yp = UncheckedSendable(UnsafePointer(labels.storage.pointer))
                let body = { (t: Int) in
                    let n = t / blocks, i0 = (t % blocks) * 512, w = min(512, S - i0)
                    let x = xp.value + n * C * S + i0
                    let lse = lp.value + n * S + i0, loss = pp.value + n * S + i0
                    let cl = cp.value + n * S + i0, lab = yp.value + n * S + i0
                    // running max, then sum of exp, per position of the block
                    for i in 0..<w { lse[i] = -.infinity; loss[i] = 0 }
                    for c in 0..<C { let r = x + c * S; for i in 0..<w { lse[i] = max(lse[i], r[i]) } }
                    for c in 0..<C { let r = x + c * S; for i in 0..<w { loss[i] += expf(r[i] - lse[i]) } }
                    for i in 0..<w {
                        let l = lse[i] + logf(loss[i])
                        lse[i] = l
                        let v = lab[i]
                        if v == ignore { loss[i] = 0; cl[i] = -1; continue }
                        let y = Int(v)
                        cl[i] = Int32(y)
                        loss[i] = (l - x[y * S + i]) * (wts?[y] ?? 1)
                    }
                }
                let tasks = N * blocks
                if logits.count < 32_768 { for t in 0..<tasks { body(t) } } else { parallelFor(tasks, body) }
            }
        }
    }
    // Total kept weight (denominator of .mean), in Double.
    var totalWeight = 0.0, total = 0.0
    for p in 0..<P where cls[p] >= 0 {
        totalWeight += Double(wts?[Int(cls[p])] ?? 1)
        total += Double(perPixel[p])
    }
    let out: Tensor
    switch reduction {
    case .none: out = Tensor(shape: labels.shape, scalars: perPixel)
    case .sum: out = Tensor(Float(total))
    case .mean: out = Tensor(totalWeight == 0 ? 0 : Float(total / totalWeight))
    }

    let xs = logits.detached()
    let lseSaved = lse, clsSaved = cls
    return Tensor.record(op, out, inputs: [logits]) { g, _ in
        let meanScale: Float = reduction == .mean ? (totalWeight == 0 ? 0 : Float(1 / totalWeight)) : 1
        let gx = Tensor.make(shape: xs.shape) { dst in
            guard dst.count > 0 else { return }
            let dp = UncheckedSendable(dst.baseAddress!), xp = UncheckedSendable(UnsafePointer(xs.storage.pointer))
            let gp = UncheckedSendable(UnsafePointer(g.storage.pointer))
            lseSaved.withUnsafeBufferPointer { lb in
                clsSaved.withUnsafeBufferPointer { cb in
                    let lp = UncheckedSendable(lb.baseAddress!), cp = UncheckedSendable(cb.baseAddress!)
                    let body = { (t: Int) in
                        let n = t / blocks, i0 = (t % blocks) * 512, w = min(512, S - i0)
                        let x = xp.value + n * C * S + i0, d = dp.value + n * C * S + i0
                        let lse = lp.value + n * S + i0, cl = cp.value + n * S + i0
                        var scale = [Float](repeating: 0, count: w)
                        for i in 0..<w {
                            let y = Int(cl[i])
                            if y < 0 { continue }
                            let up = reduction == .none ? gp.value[n * S + i0 + i] : gp.value[0]
                            scale[i] = up * meanScale * (wts?[y] ?? 1)
                        }
                        scale.withUnsafeBufferPointer { sb in
                            let s = sb.baseAddress!
                            for c in 0..<C {
                                let r = x + c * S, o = d + c * S
                                for i in 0..<w { o[i] = s[i] * expf(r[i] - lse[i]) }
                            }
                        }
                        for i in 0..<w {
                            let y = Int(cl[i])
                            if y >= 0 { d[y * S + i] -= scale[i] }
                        }
                    }
                    let tasks = N * blocks
                    if xs.count < 32_768 { for t in 0..<tasks { body(t) } } else { parallelFor(tasks, body) }
                }
            }
        }
        return [gx]
    }
}

/// Checks the inputs of a segmentation loss and returns N, C and the spatial size S:
/// logits `[N, C, ...]` with C >= 1, labels `[N, ...]` of the same spatial shape, every label
/// a class id in `[0, C)` or `ignoreIndex` (all checked before any kernel runs). Stops with
/// a message naming `op`, the shapes, or the label and its position.
func _checkLossInputs(_ op: String, _ logits: Tensor, _ labels: Tensor, ignoreIndex: Int) -> (N: Int, C: Int, S: Int) {
    fcnCheck(logits.rank >= 2, op, "logits of shape \(logits.shape) must be [N, C, H, W] or [N, C, ...]")
    let N = logits.shape[0], C = logits.shape[1]
    fcnCheck(C >= 1, op, "logits of shape \(logits.shape) have no class axis entries (C = 0)")
    let spatial = Array(logits.shape[2...])
    fcnCheck(labels.shape == [N] + spatial, op, "labels of shape \(labels.shape) do not match logits \(logits.shape); expected \([N] + spatial)")
    _checkClassLabels(op, labels, classes: C, ignoreIndex: ignoreIndex)
    return (N, C, spatial.reduce(1, *))
}

/// Stops with a message naming `op`, the label, its position and `classes` unless every
/// label is a class id in `[0, classes)` or `ignoreIndex`.
func _checkClassLabels(_ op: String, _ labels: Tensor, classes C: Int, ignoreIndex: Int) {
    let ignore = Float(ignoreIndex)
    labels.withUnsafeBufferPointer { lb in
        for i in 0..<lb.count {
            let v = lb[i]
            if v == ignore { continue }
            if !(v >= 0 && v < Float(C) && v == v.rounded(.towardZero)) {
                var idx: [Int] = [], rest = i
                for d in labels.shape.reversed() { idx.append(rest % d); rest /= d }
                fcnFail(op, "label \(v) at \(Array(idx.reversed())) is not a class id in [0, \(C)) nor the ignore index \(ignoreIndex)")
            }
        }
    }
}
