// linear: a dense layer applied along one axis (forward + backward), through sgemm.
//
// Contract: weight [out, in], optional bias [out]; x has `in` elements along `axis`; the
// output has `out` there, other axes unchanged. View x as [outer, in, inner]:
//   inner == 1 (the last axis, PyTorch's F.linear): Y[rows, out] = X[rows, in] * W^T.
//   otherwise (e.g. axis 1 of NCHW, a 1x1 convolution): Y_o[out, inner] = W * X_o[in, inner]
//   for every outer index o.
// Backward, same views: gX = G * W (or W^T * G_o), gW = G^T * X (or sum_o G_o * X_o^T),
// gb = sum of G over everything but the out axis. All products go through `sgemm`.

/// Dense layer `y = x W^T + b` applied along `axis` of `x`.
///
/// - Parameters:
///   - x: input with `in` elements along `axis`, e.g. `[N, in]` or `[N, in, H, W]`.
///   - weight: `[out, in]` (PyTorch's layout).
///   - bias: optional `[out]`.
///   - axis: the axis holding the `in` features. `-1` (default, as PyTorch) for `[N, in]`
///     or `[..., in]`; `1` on NCHW applies the layer over channels at every pixel, exactly a
///     1x1 convolution with weight `[out, in, 1, 1]` (how the reference FCN's fc7 runs).
/// - Returns: x's shape with `shape[axis]` replaced by `out`.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, axis: Int = -1) -> Tensor {
    let op = "linear"
    fcnCheck(x.rank >= 1, op, "input of shape \(x.shape) is a scalar; it needs a feature axis")
    fcnCheck(weight.rank == 2, op, "weight of shape \(weight.shape) must be [out, in]")
    let a = x.normalizeAxis(axis, op: op)
    let fout = weight.shape[0], fin = weight.shape[1]
    fcnCheck(x.shape[a] == fin, op, "input of shape \(x.shape) has \(x.shape[a]) features on axis \(axis) but weight \(weight.shape) expects \(fin)")
    if let b = bias { fcnCheck(b.shape == [fout], op, "bias of shape \(b.shape) must be [\(fout)] for weight \(weight.shape)") }

    let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
    var yShape = x.shape; yShape[a] = fout
    let y = Tensor.make(shape: yShape) { out in
        let yp = out.baseAddress!, xp = x.storage.pointer, wp = weight.storage.pointer
        if out.count == 0 { return }
        if inner == 1 {
            sgemm(transA: false, transB: true, m: outer, n: fout, k: fin, alpha: 1,
                  a: xp, lda: fin, b: wp, ldb: fin, beta: 0, c: yp, ldc: fout)
            if let b = bias {
                let bp = b.storage.pointer
                for r in 0..<outer { let row = yp + r * fout; for j in 0..<fout { row[j] += bp[j] } }
            }
        } else {
            for o in 0..<outer {
                let yo = yp + o * fout * inner
                sgemm(transA: false, transB: false, m: fout, n: inner, k: fin, alpha: 1,
                      a: wp, lda: fin, b: xp + o * fin * inner, ldb: inner, beta: 0, c: yo, ldc: inner)
                if let b = bias {
                    let bp = b.storage.pointer
                    for j in 0..<fout { let v = bp[j], row = yo + j * inner; for i in 0..<inner { row[i] += v } }
                }
            }
        }
    }

    var inputs = [x, weight]
    if let b = bias { inputs.append(b) }
    let xs = x.detached(), ws = weight.detached()
    let hasBias = bias != nil
    return Tensor.record(op, y, inputs: inputs) { g, needs in
        let gp = g.storage.pointer
        var gx: Tensor? = nil, gw: Tensor? = nil, gb: Tensor? = nil
        if needs[0] {
            gx = Tensor.make(shape: xs.shape) { out in
                guard out.count > 0 else { return }
                let dp = out.baseAddress!
                if fout == 0 { out.initialize(repeating: 0); return }
                if inner == 1 {
                    sgemm(transA: false, transB: false, m: outer, n: fin, k: fout, alpha: 1,
                          a: gp, lda: fout, b: ws.storage.pointer, ldb: fin, beta: 0, c: dp, ldc: fin)
                } else {
                    for o in 0..<outer {
                        sgemm(transA: true, transB: false, m: fin, n: inner, k: fout, alpha: 1,
                              a: ws.storage.pointer, lda: fin, b: gp + o * fout * inner, ldb: inner,
                              beta: 0, c: dp + o * fin * inner, ldc: inner)
                    }
                }
            }
        }
        if needs[1] {
            gw = Tensor.make(shape: [fout, fin]) { out in
                guard out.count > 0 else { return }
                let dp = out.baseAddress!
                if outer * inner == 0 { out.initialize(repeating: 0); return }
                if inner == 1 {
                    sgemm(transA: true, transB: false, m: fout, n: fin, k: outer, alpha: 1,
                          a: gp, lda: fout, b: xs.storage.pointer, ldb: fin, beta: 0, c: dp, ldc: fin)
                } else {
                    for o in 0..<outer {
                        sgemm(transA: false, transB: true, m: fout, n: fin, k: inner, alpha: 1,
                              a: gp + o * fout * inner, lda: inner, b: xs.storage.pointer + o * fin * inner, ldb: inner,
                              beta: o == 0 ? 0 : 1, c: dp, ldc: fin)
                    }
                }
            }
        }
        if hasBias && needs[2] {
            gb = Tensor.make(shape: [fout]) { out in
                var acc = [Double](repeating: 0, count: fout)
                for o in 0..<outer {
                    for j in 0..<fout {
                        let row = gp + (o * fout + j) * inner
                        var s: Float = 0
                        for i in 0..<inner { s += row[i] }
                        acc[j] += Double(s)
                    }
                }
                for j in 0..<fout { out[j] = Float(acc[j]) }
            }
        }
        return hasBias ? [gx, gw, gb] : [gx, gw]
    }
}
