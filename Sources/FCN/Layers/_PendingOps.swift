// TEMPORARY: replaced by Ops/ when the op branches merge; delete this file then.
//
// Naive, forward-only (no autograd) implementations of exactly the ops the layers use,
// with the agreed public signatures, so that the layers branch builds and its forward
// passes can be tested before the real ops land. Correct, not fast. No argument checks
// beyond the essentials.

public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Padding = 0,
                   dilation: Size2 = 1, groups: Int = 1) -> Tensor {
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (cout, cpg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
    precondition(cpg * groups == cin, "conv2d (pending): channel mismatch")
    let p = padding.resolve(inH: h, inW: w, kernel: Size2(kh, kw), stride: stride, dilation: dilation)
    let oh = (h + p.top + p.bottom - dilation.h * (kh - 1) - 1) / stride.h + 1
    let ow = (w + p.left + p.right - dilation.w * (kw - 1) - 1) / stride.w + 1
    let opg = cout / groups
    let xp = x.storage.pointer, wp = weight.storage.pointer, bp = bias?.storage.pointer
    return Tensor.make(shape: [n, cout, oh, ow]) { out in
        for b in 0..<n { for co in 0..<cout {
            let g = co / opg
            for oy in 0..<oh { for ox in 0..<ow {
                var acc: Float = bp?[co] ?? 0
                for ci in 0..<cpg {
                    let c = g * cpg + ci
                    for ky in 0..<kh {
                        let iy = oy * stride.h - p.top + ky * dilation.h
                        if iy < 0 || iy >= h { continue }
                        for kx in 0..<kw {
                            let ix = ox * stride.w - p.left + kx * dilation.w
                            if ix < 0 || ix >= w { continue }
                            acc += xp[((b * cin + c) * h + iy) * w + ix] * wp[((co * cpg + ci) * kh + ky) * kw + kx]
                        }
                    }
                }
                out[((b * cout + co) * oh + oy) * ow + ox] = acc
            } }
        } }
    }
}

public func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Padding = 0,
                            outputPadding: Size2 = 0, dilation: Size2 = 1, groups: Int = 1) -> Tensor {
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (opg, kh, kw) = (weight.shape[1], weight.shape[2], weight.shape[3])
    let cout = opg * groups, ipg = cin / groups
    guard case let .explicit(pt, pb, pl, pr) = padding == .valid ? .explicit(top: 0, bottom: 0, left: 0, right: 0) : padding else {
        preconditionFailure("convTranspose2d (pending): only explicit padding")
    }
    let oh = (h - 1) * stride.h - pt - pb + dilation.h * (kh - 1) + outputPadding.h + 1
    let ow = (w - 1) * stride.w - pl - pr + dilation.w * (kw - 1) + outputPadding.w + 1
    let xp = x.storage.pointer, wp = weight.storage.pointer, bp = bias?.storage.pointer
    return Tensor.make(shape: [n, cout, oh, ow]) { out in
        for b in 0..<n { for co in 0..<cout { for i in 0..<(oh * ow) { out[(b * cout + co) * oh * ow + i] = bp?[co] ?? 0 } } }
        for b in 0..<n { for ci in 0..<cin {
            let g = ci / ipg
            for iy in 0..<h { for ix in 0..<w {
                let v = xp[((b * cin + ci) * h + iy) * w + ix]
                for oc in 0..<opg {
                    let co = g * opg + oc
                    for ky in 0..<kh {
                        let oy = iy * stride.h - pt + ky * dilation.h
                        if oy < 0 || oy >= oh { continue }
                        for kx in 0..<kw {
                            let ox = ix * stride.w - pl + kx * dilation.w
                            if ox < 0 || ox >= ow { continue }
                            out[((b * cout + co) * oh + oy) * ow + ox] += v * wp[((ci * opg + oc) * kh + ky) * kw + kx]
                        }
                    }
                }
            } }
        } }
    }
}

private func pooledSize(_ n: Int, _ k: Int, _ s: Int, _ p: Int, _ d: Int, _ ceil: Bool) -> Int {
    var o = (n + 2 * p - d * (k - 1) - 1 + (ceil ? s - 1 : 0)) / s + 1
    if ceil && (o - 1) * s >= n + p { o -= 1 }
    return o
}

public func maxPool2d(_ x: Tensor, kernel: Size2, stride: Size2? = nil, padding: Size2 = 0, dilation: Size2 = 1,
                      ceilMode: Bool = false) -> Tensor {
    let s = stride ?? kernel
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let oh = pooledSize(h, kernel.h, s.h, padding.h, dilation.h, ceilMode)
    let ow = pooledSize(w, kernel.w, s.w, padding.w, dilation.w, ceilMode)
    let xp = x.storage.pointer
    return Tensor.make(shape: [n, c, oh, ow]) { out in
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            var m = -Float.infinity
            for ky in 0..<kernel.h {
                let iy = oy * s.h - padding.h + ky * dilation.h
                if iy < 0 || iy >= h { continue }
                for kx in 0..<kernel.w {
                    let ix = ox * s.w - padding.w + kx * dilation.w
                    if ix < 0 || ix >= w { continue }
                    let v = xp[(plane * h + iy) * w + ix]
                    if v > m || v.isNaN { m = v }
                }
            }
            out[(plane * oh + oy) * ow + ox] = m
        } } }
    }
}

public func avgPool2d(_ x: Tensor, kernel: Size2, stride: Size2? = nil, padding: Size2 = 0, ceilMode: Bool = false,
                      countIncludePad: Bool = true) -> Tensor {
    let s = stride ?? kernel
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let oh = pooledSize(h, kernel.h, s.h, padding.h, 1, ceilMode)
    let ow = pooledSize(w, kernel.w, s.w, padding.w, 1, ceilMode)
    let xp = x.storage.pointer
    return Tensor.make(shape: [n, c, oh, ow]) { out in
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            var y0 = oy * s.h - padding.h, x0 = ox * s.w - padding.w
            var y1 = min(y0 + kernel.h, h + padding.h), x1 = min(x0 + kernel.w, w + padding.w)
            let padded = (y1 - y0) * (x1 - x0)
            y0 = max(y0, 0); x0 = max(x0, 0); y1 = min(y1, h); x1 = min(x1, w)
            var acc: Float = 0
            for iy in y0..<max(y0, y1) { for ix in x0..<max(x0, x1) { acc += xp[(plane * h + iy) * w + ix] } }
            let div = countIncludePad ? padded : (y1 - y0) * (x1 - x0)
            out[(plane * oh + oy) * ow + ox] = acc / Float(div)
        } } }
    }
}

public func adaptiveAvgPool2d(_ x: Tensor, outputSize: Size2) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (oh, ow) = (outputSize.h, outputSize.w)
    let xp = x.storage.pointer
    return Tensor.make(shape: [n, c, oh, ow]) { out in
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            let y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh
            let x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow
            var acc: Float = 0
            for iy in y0..<y1 { for ix in x0..<x1 { acc += xp[(plane * h + iy) * w + ix] } }
            out[(plane * oh + oy) * ow + ox] = acc / Float((y1 - y0) * (x1 - x0))
        } } }
    }
}

public func relu(_ x: Tensor) -> Tensor {
    let xp = x.storage.pointer
    return Tensor.make(shape: x.shape) { out in for i in 0..<out.count { out[i] = xp[i] > 0 ? xp[i] : 0 } }
}

public func dropout(_ x: Tensor, p: Float, training: Bool, generator: inout FCNRandom) -> Tensor {
    guard training, p > 0 else { return x }
    let xp = x.storage.pointer, scale: Float = p < 1 ? 1 / (1 - p) : 0
    var g = generator
    defer { generator = g }
    return Tensor.make(shape: x.shape) { out in
        for i in 0..<out.count { out[i] = g.nextUniform() < p ? 0 : xp[i] * scale }
    }
}

public func dropout2d(_ x: Tensor, p: Float, training: Bool, generator: inout FCNRandom) -> Tensor {
    guard training, p > 0 else { return x }
    let plane = x.shape[2] * x.shape[3], planes = x.shape[0] * x.shape[1]
    let xp = x.storage.pointer, scale: Float = p < 1 ? 1 / (1 - p) : 0
    var g = generator
    defer { generator = g }
    return Tensor.make(shape: x.shape) { out in
        for k in 0..<planes {
            let m: Float = g.nextUniform() < p ? 0 : scale
            for i in 0..<plane { out[k * plane + i] = xp[k * plane + i] * m }
        }
    }
}

public func batchNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, runningMean: inout Tensor, runningVar: inout Tensor,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
    let (n, c) = (x.shape[0], x.shape[1])
    let plane = x.count / max(1, n * c)
    let xp = x.storage.pointer
    var mean = [Float](repeating: 0, count: c), variance = [Float](repeating: 0, count: c)
    if training {
        let m = Double(n * plane)
        var newMean = runningMean.scalars, newVar = runningVar.scalars
        for ch in 0..<c {
            var s = 0.0
            for b in 0..<n { for i in 0..<plane { s += Double(xp[(b * c + ch) * plane + i]) } }
            let mu = s / m
            var q = 0.0
            for b in 0..<n { for i in 0..<plane { let d = Double(xp[(b * c + ch) * plane + i]) - mu; q += d * d } }
            mean[ch] = Float(mu); variance[ch] = Float(q / m)
            let unbiased = m > 1 ? q / (m - 1) : q
            newMean[ch] = (1 - momentum) * newMean[ch] + momentum * Float(mu)
            newVar[ch] = (1 - momentum) * newVar[ch] + momentum * Float(unbiased)
        }
        if runningMean.count == c { runningMean = Tensor(shape: runningMean.shape, scalars: newMean) }
        if runningVar.count == c { runningVar = Tensor(shape: runningVar.shape, scalars: newVar) }
    } else {
        mean = runningMean.scalars; variance = runningVar.scalars
    }
    let wv = weight?.scalars, bv = bias?.scalars
    return Tensor.make(shape: x.shape) { out in
        for b in 0..<n { for ch in 0..<c {
            let inv = 1 / (variance[ch] + eps).squareRoot()
            let a = (wv?[ch] ?? 1) * inv, sh = (bv?[ch] ?? 0) - mean[ch] * a
            for i in 0..<plane { let k = (b * c + ch) * plane + i; out[k] = xp[k] * a + sh }
        } }
    }
}

public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, axis: Int = -1) -> Tensor {
    precondition(axis == -1 || axis == x.rank - 1, "linear (pending): last axis only")
    let (o, i) = (weight.shape[0], weight.shape[1])
    let rows = x.count / i
    let xp = x.storage.pointer, wp = weight.storage.pointer, bp = bias?.storage.pointer
    return Tensor.make(shape: Array(x.shape.dropLast()) + [o]) { out in
        for r in 0..<rows { for j in 0..<o {
            var acc: Float = bp?[j] ?? 0
            for k in 0..<i { acc += xp[r * i + k] * wp[j * i + k] }
            out[r * o + j] = acc
        } }
    }
}
