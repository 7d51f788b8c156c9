// Batch normalisation (forward + backward) and folding it into a preceding convolution.
//
// Contract: input [N, C] or [N, C, H, W] (any [N, C, ...]); per channel c the statistics
// run over the M = N * (H*W...) values of that channel.
//   training: mean_c and the biased variance var_c of the batch normalise the input,
//             y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c, and the running
//             statistics are updated as in PyTorch with the UNBIASED variance:
//             running = (1 - momentum) * running + momentum * batch  (var: var_c * M/(M-1)).
//   eval:     the running statistics normalise the input; nothing is updated.
// Statistics are accumulated in Double (two passes). Backward (x, weight, bias) in both
// modes; in training it is the full formula through the batch statistics:
//   gx = weight * invstd * (g - mean(g) - xhat * mean(g * xhat)),  xhat = (x - mean) * invstd,
//   gweight = sum(g * xhat), gbias = sum(g); in eval gx = g * weight * invstd.
// The running statistics are state, not differentiated.

/// Per-channel layout of a [N, C, ...] tensor.
private struct BNLayout {
    let n: Int, c: Int, s: Int
    var m: Int { n * s }
    init(_ shape: [Int]) { n = shape[0]; c = shape[1]; s = shape[2...].reduce(1, *) }
}

/// Batch normalisation over the channel axis 1 of `[N, C]` or `[N, C, H, W]` input.
///
/// - Parameters:
///   - x: input `[N, C]` or `[N, C, H, W]` (any `[N, C, ...]`).
///   - weight: optional affine scale `[C]` (PyTorch's `affine=True` has it); nil means 1.
///   - bias: optional affine shift `[C]`; nil means 0.
///   - runningMean: `[C]` running mean; updated in place when `training`, read when not.
///   - runningVar: `[C]` running variance; updated in place when `training` (with the
///     unbiased batch variance, as PyTorch), read when not.
///   - training: use and update batch statistics (true) or use the running ones (false).
///     Training needs more than one value per channel (N * H * W > 1).
///   - momentum: weight of the new batch in the running statistics; 0.1 is PyTorch's default.
///   - eps: added to the variance before the square root; 1e-5 is PyTorch's default.
/// - Returns: a tensor of the input's shape.
public func batchNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?,
                      runningMean: inout Tensor, runningVar: inout Tensor,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
    profiledOp("batchNorm") {
        let op = "batchNorm"
        fcnCheck(x.rank >= 2, op, "input of shape \(x.shape) must be [N, C] or [N, C, H, W]")
        let L = BNLayout(x.shape)
        let C = L.c
        if let w = weight { fcnCheck(w.shape == [C], op, "weight of shape \(w.shape) does not match the \(C) channels of input \(x.shape); expected [\(C)]") }
        if let b = bias { fcnCheck(b.shape == [C], op, "bias of shape \(b.shape) does not match the \(C) channels of input \(x.shape); expected [\(C)]") }
        fcnCheck(runningMean.shape == [C], op, "runningMean of shape \(runningMean.shape) does not match the \(C) channels of input \(x.shape); expected [\(C)]")
        fcnCheck(runningVar.shape == [C], op, "runningVar of shape \(runningVar.shape) does not match the \(C) channels of input \(x.shape); expected [\(C)]")
        fcnCheck(eps >= 0, op, "eps = \(eps) must be >= 0")
        fcnCheck(momentum >= 0 && momentum <= 1, op, "momentum = \(momentum) is outside [0, 1]")
        if training {
            fcnCheck(L.m > 1, op, "training needs more than one value per channel, got input of shape \(x.shape)")
        }

        // Per-channel statistics used for normalisation.
        var mean = [Float](repeating: 0, count: C), invstd = [Float](repeating: 0, count: C)
        if training {
            var batchVar = [Double](repeating: 0, count: C)
            let xp = UncheckedSendable(UnsafePointer(x.storage.pointer))
            mean.withUnsafeMutableBufferPointer { mb in
                invstd.withUnsafeMutableBufferPointer { ib in
                    batchVar.withUnsafeMutableBufferPointer { vb in
                        let mp = UncheckedSendable(mb.baseAddress!), ip = UncheckedSendable(ib.baseAddress!)
                        let vp = UncheckedSendable(vb.baseAddress!)
                        parallelFor(C) { c in
                            var sum = 0.0
                            for n in 0..<L.n {
                                let row = xp.value + (n * C + c) * L.s
                                for i in 0..<L.s { sum += Double(row[i]) }
                            }
                            let mu = sum / Double(L.m)
                            var sq = 0.0
                            for n in 0..<L.n {
                                let row = xp.value + (n * C + c) * L.s
                                for i in 0..<L.s { let d = Double(row[i]) - mu; sq += d * d }
                            }
                            let v = sq / Double(L.m)
                            mp.value[c] = Float(mu)
                            ip.value[c] = Float(1 / (v + Double(eps)).squareRoot())
                            vp.value[c] = v
                        }
                    }
                }
            }
            // Running statistics (PyTorch: unbiased variance).
            let m = momentum, unbias = Double(L.m) / Double(L.m - 1)
            let oldMean = runningMean.scalars, oldVar = runningVar.scalars
            runningMean = Tensor.make(shape: [C]) { out in
                for c in 0..<C { out[c] = (1 - m) * oldMean[c] + m * mean[c] }
            }
            runningVar = Tensor.make(shape: [C]) { out in
                for c in 0..<C { out[c] = (1 - m) * oldVar[c] + m * Float(batchVar[c] * unbias) }
            }
        } else {
            let rm = runningMean.scalars, rv = runningVar.scalars
            for c in 0..<C {
                mean[c] = rm[c]
                invstd[c] = Float(1 / (Double(rv[c]) + Double(eps)).squareRoot())
            }
        }

        // y = x * a + b' with a = weight * invstd, b' = bias - mean * a.
        let wv = weight?.scalars, bv = bias?.scalars
        var scale = [Float](repeating: 0, count: C), shift = [Float](repeating: 0, count: C)
        for c in 0..<C {
            let a = (wv?[c] ?? 1) * invstd[c]
            scale[c] = a
            shift[c] = (bv?[c] ?? 0) - mean[c] * a
        }
        let y = Tensor.make(shape: x.shape) { out in
            let xp = UncheckedSendable(UnsafePointer(x.storage.pointer)), op = UncheckedSendable(out.baseAddress!)
            let planes = L.n * C
            let body = { (p: Int) in
                let c = p % C, a = scale[c], b = shift[c]
                let src = xp.value + p * L.s, dst = op.value + p * L.s
                for i in 0..<L.s { dst[i] = src[i] * a + b }
            }
            if x.count < 32_768 { for p in 0..<planes { body(p) } } else { parallelFor(planes, body) }
        }

        var inputs = [x]
        if let w = weight { inputs.append(w) }
        if let b = bias { inputs.append(b) }
        let wIndex = weight == nil ? nil : 1, bIndex = bias == nil ? nil : (weight == nil ? 1 : 2)
        let xs = x.detached()
        return Tensor.record(op, y, inputs: inputs) { g, needs in
            // Per-channel sums of g and g * xhat (Double accumulation).
            var sumG = [Float](repeating: 0, count: C), sumGX = [Float](repeating: 0, count: C)
            sumG.withUnsafeMutableBufferPointer { sg in
                sumGX.withUnsafeMutableBufferPointer { sgx in
                    let sgp = UncheckedSendable(sg.baseAddress!), sgxp = UncheckedSendable(sgx.baseAddress!)
                    let gp = UncheckedSendable(UnsafePointer(g.storage.pointer)), xp = UncheckedSendable(UnsafePointer(xs.storage.pointer))
                    parallelFor(C) { c in
                        let mu = mean[c]
                        var a = 0.0, b = 0.0
                        for n in 0..<L.n {
                            let off = (n * C + c) * L.s
                            let gr = gp.value + off, xr = xp.value + off
                            for i in 0..<L.s { let gv = Double(gr[i]); a += gv; b += gv * Double(xr[i] - mu) }
                        }
                        sgp.value[c] = Float(a)
                        sgxp.value[c] = Float(b * Double(invstd[c]))
                    }
                }
            }
            var result: [Tensor?] = [nil]
            if needs[0] {
                // gx = k1 * g + k2 * x + k3 per channel.
                var k1 = [Float](repeating: 0, count: C), k2 = k1, k3 = k1
                let invM = 1 / Float(L.m)
                for c in 0..<C {
                    let wi = (wv?[c] ?? 1) * invstd[c]
                    k1[c] = wi
                    if training {
                        // gx = wi * (g - sumG/M - xhat * sumGX/M), xhat = (x - mean) * invstd
                        let t = sumGX[c] * invM * invstd[c]
                        k2[c] = -wi * t
                        k3[c] = wi * (-sumG[c] * invM + mean[c] * t)
                    }
                }
                result[0] = Tensor.make(shape: xs.shape) { out in
                    let gp = UncheckedSendable(UnsafePointer(g.storage.pointer)), xp = UncheckedSendable(UnsafePointer(xs.storage.pointer))
                    let op = UncheckedSendable(out.baseAddress!)
                    let body = { (p: Int) in
                        let c = p % C, a = k1[c], b = k2[c], d = k3[c]
                        let gr = gp.value + p * L.s, xr = xp.value + p * L.s, dst = op.value + p * L.s
                        for i in 0..<L.s { dst[i] = a * gr[i] + b * xr[i] + d }
                    }
                    if xs.count < 32_768 { for p in 0..<(L.n * C) { body(p) } } else { parallelFor(L.n * C, body) }
                }
            }
            if let wi = wIndex { result.append(needs[wi] ? Tensor(shape: [C], scalars: sumGX) : nil) }
            if let bi = bIndex { result.append(needs[bi] ? Tensor(shape: [C], scalars: sumG) : nil) }
            return result
        }
    }
}

/// Folds an inference-mode batch normalisation into the convolution (or linear layer) that
/// precedes it: `bn(conv(x, W, b)) == conv(x, W', b')` with, per output channel o,
/// `s = weight[o] / sqrt(runningVar[o] + eps)`, `W'[o] = W[o] * s`,
/// `b'[o] = (b[o] - runningMean[o]) * s + bias[o]`.
///
/// `convWeight` is `[Cout, ...]` (conv `[Cout, Cin/groups, kH, kW]` or linear `[out, in]`),
/// `convBias`, the statistics and the affine parameters are `[Cout]` (nil bias means 0,
/// nil weight means 1). For deployment: the result is not differentiated.
public func foldBatchNorm(convWeight: Tensor, convBias: Tensor?, runningMean: Tensor, runningVar: Tensor,
                          weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> (weight: Tensor, bias: Tensor) {
    let op = "foldBatchNorm"
    fcnCheck(convWeight.rank >= 1, op, "convWeight of shape \(convWeight.shape) needs an output-channel axis")
    let C = convWeight.shape[0]
    for (name, t) in [("convBias", convBias), ("runningMean", runningMean), ("runningVar", runningVar), ("weight", weight), ("bias", bias)] {
        if let t { fcnCheck(t.shape == [C], op, "\(name) of shape \(t.shape) does not match the \(C) output channels of convWeight \(convWeight.shape); expected [\(C)]") }
    }
    let per = C == 0 ? 0 : convWeight.count / C
    let rm = runningMean.scalars, rv = runningVar.scalars
    let wv = weight?.scalars, bv = bias?.scalars, cb = convBias?.scalars
    var s = [Float](repeating: 0, count: C)
    for o in 0..<C { s[o] = Float(Double(wv?[o] ?? 1) / (Double(rv[o]) + Double(eps)).squareRoot()) }
    let w2 = Tensor.make(shape: convWeight.shape) { out in
        let src = convWeight.storage.pointer
        for o in 0..<C { for j in 0..<per { out[o * per + j] = src[o * per + j] * s[o] } }
    }
    let b2 = Tensor.make(shape: [C]) { out in
        for o in 0..<C { out[o] = ((cb?[o] ?? 0) - rm[o]) * s[o] + (bv?[o] ?? 0) }
    }
    return (w2, b2)
}
