// Max pooling and max unpooling (NCHW), forward and backward, PyTorch semantics.
//
// maxPool2d: each output cell is the maximum over its window (kernel k, stride s, padding
// p filled with -inf, dilation d); shape rule in Pooling.swift. The argmax is the FIRST
// maximum in row-major scan order of the window (strict `>`), and a NaN wins (it
// propagates), exactly as ATen's CPU kernel. Indices are flat within each HxW input plane.
// Backward routes each output gradient to its argmax (summing where windows overlap).
//
// Kernels: `maxPoolPlaneNaive` follows ATen's loop for any options; the FCN pools (k2 s2 p0
// d1, either rounding mode) run `fcn_maxpool2x2_plane` (CFCNKernels pointwise.c: 16 windows
// per AVX-512 step, the same compare/select sequence as `maxPoolPlaneK2S2`, which is kept as
// the Swift statement of it). Tests hold them equal.
//
// maxUnpool2d scatters each input value to its index in a zero output plane
// (`out = (in-1)*s - 2p + k` unless an output size is given); backward gathers.

import CFCNKernels

// MARK: - Public API

/// 2-D max pooling over an NCHW tensor, PyTorch's `F.max_pool2d`.
///
/// - Parameters:
///   - x: input `[N, C, H, W]`.
///   - kernel: window size (height, width).
///   - stride: step between windows; `nil` means `kernel` (non-overlapping windows, the
///     PyTorch default).
///   - padding: implicit -inf border on each side, at most `kernel/2`.
///   - dilation: spacing between window taps.
///   - ceilMode: round the output size up (Caffe's pooling always does; the FCN pools use
///     it so that odd sizes keep their last row/column). A window that would start past
///     `in + padding` is dropped.
/// - Returns: `[N, C, outH, outW]` with
///   `out = (in + 2p - d*(k-1) - 1 + (ceil ? s-1 : 0)) / s + 1`, minus one in ceil mode if
///   `(out-1)*s >= in + p`.
///
/// Ties pick the first maximum in scan order (PyTorch); the gradient flows to it only.
public func maxPool2d(_ x: Tensor, kernel: Size2, stride: Size2? = nil, padding: Size2 = 0,
                      dilation: Size2 = 1, ceilMode: Bool = false) -> Tensor {
    profiledOp(convKind("maxPool2d", kernel: (kernel.h, kernel.w), stride: stride ?? kernel, dilation: dilation)) {
        let g = PoolGeometry.make("maxPool2d", x, kernel: kernel, stride: stride, padding: padding,
                                  dilation: dilation, ceilMode: ceilMode)
        let needsIndices = GradMode.isEnabled && x.requiresGrad
        let (out, indices) = maxPoolForward(x, g, wantIndices: needsIndices)
        return recordMaxPool("maxPool2d", out, x, indices, g)
    }
}

/// Max pooling that also returns the argmax of every window, PyTorch's
/// `F.max_pool2d(..., return_indices=True)`.
///
/// `indices` has the output's shape and holds, as Float, the flat index `h * W + w` of the
/// maximum within its `H x W` input plane (exact because planes are limited to 2^24
/// cells). Pass it to `maxUnpool2d`. Options and shape rule as `maxPool2d`.
public func maxPool2dWithIndices(_ x: Tensor, kernel: Size2, stride: Size2? = nil, padding: Size2 = 0,
                                 dilation: Size2 = 1, ceilMode: Bool = false) -> (output: Tensor, indices: Tensor) {
    let g = PoolGeometry.make("maxPool2dWithIndices", x, kernel: kernel, stride: stride, padding: padding,
                              dilation: dilation, ceilMode: ceilMode)
    fcnCheck(g.inPlane <= 1 << 24, "maxPool2dWithIndices",
             "input plane \(g.inH)x\(g.inW) has more than 2^24 cells; Float indices would not be exact")
    let (out, idx) = maxPoolForward(x, g, wantIndices: true)
    let indices = idx!
    let indexTensor = Tensor.make(shape: out.shape) { buf in
        indices.withUnsafeBufferPointer { src in
            for i in 0..<buf.count { buf[i] = Float(src[i]) }
        }
    }
    return (recordMaxPool("maxPool2dWithIndices", out, x, indices, g), indexTensor)
}

/// Inverse of max pooling, PyTorch's `F.max_unpool2d`: a zero tensor with every input value
/// written at its `indices` (flat within each output `H x W` plane); non-max cells stay 0.
///
/// - Parameters:
///   - x: pooled values `[N, C, h, w]`.
///   - indices: same shape as `x`, integer values as from `maxPool2dWithIndices`.
///   - kernel: window size of the pooling being undone.
///   - stride: its stride; `nil` means `kernel`, as in `maxPool2d`.
///   - padding: its padding.
///   - outputSize: the spatial output size; by default `(in-1)*s - 2p + k`. As in PyTorch
///     it must lie strictly between `default - s` and `default + s` (use it to recover
///     odd sizes that the pooling rounded away).
/// - Returns: `[N, C, outH, outW]`. Where two inputs share an index the later one wins.
public func maxUnpool2d(_ x: Tensor, indices: Tensor, kernel: Size2, stride: Size2? = nil,
                        padding: Size2 = 0, outputSize: Size2? = nil) -> Tensor {
    let op = "maxUnpool2d"
    fcnCheck(x.rank == 4, op, "input must be NCHW (rank 4), got shape \(x.shape)")
    fcnCheck(indices.shape == x.shape, op, "indices shape \(indices.shape) differs from input shape \(x.shape)")
    let s = stride ?? kernel
    fcnCheck(kernel.h > 0 && kernel.w > 0, op, "kernel must be positive, got \(kernel)")
    fcnCheck(s.h > 0 && s.w > 0, op, "stride must be positive, got \(s)")
    fcnCheck(padding.h >= 0 && padding.w >= 0, op, "padding must be non-negative, got \(padding)")
    fcnCheck(x.count > 0, op, "input \(x.shape) is empty")
    let inH = x.shape[2], inW = x.shape[3]
    let defH = (inH - 1) * s.h - 2 * padding.h + kernel.h
    let defW = (inW - 1) * s.w - 2 * padding.w + kernel.w
    var outH = defH, outW = defW
    if let o = outputSize {
        fcnCheck(o.h > defH - s.h && o.h < defH + s.h && o.w > defW - s.w && o.w < defW + s.w, op,
                 "outputSize \(o) must lie strictly between [\(defH - s.h), \(defW - s.w)] and [\(defH + s.h), \(defW + s.w)] for input \(x.shape), kernel \(kernel), stride \(s), padding \(padding)")
        outH = o.h; outW = o.w
    }
    fcnCheck(outH > 0 && outW > 0, op, "output size \(outH)x\(outW) for input \(x.shape) is empty")
    let outPlane = outH * outW
    // Validate and convert every index before the kernel runs.
    let idx = [Int32](unsafeUninitializedCapacity: x.count) { buf, n in
        let src = indices.storage.pointer
        for i in 0..<x.count {
            let v = src[i]
            fcnCheck(v >= 0 && v < Float(outPlane) && v == v.rounded(.towardZero), op,
                     "index \(v) at flat position \(i) is not a valid cell of a \(outH)x\(outW) output plane")
            buf[i] = Int32(v)
        }
        n = x.count
    }
    let planes = x.shape[0] * x.shape[1], inPlane = inH * inW
    var out = Tensor.zeros([x.shape[0], x.shape[1], outH, outW])
    out.withUnsafeMutableBufferPointer { ob in
        let o = ob.baseAddress!, xp = x.storage.pointer
        idx.withUnsafeBufferPointer { ib in
            let ip = ib.baseAddress!
            parallelFor(planes) { p in
                let op = o + p * outPlane, xs = xp + p * inPlane, ix = ip + p * inPlane
                for i in 0..<inPlane { op[Int(ix[i])] = xs[i] }
            }
        }
    }
    let inShape = x.shape
    return Tensor.record(op, out, inputs: [x]) { grad, _ in
        let gx = Tensor.make(shape: inShape) { gb in
            let gp = grad.storage.pointer, gxp = gb.baseAddress!
            idx.withUnsafeBufferPointer { ib in
                let ip = ib.baseAddress!
                parallelFor(planes) { p in
                    let gs = gp + p * outPlane, gd = gxp + p * inPlane, ix = ip + p * inPlane
                    for i in 0..<inPlane { gd[i] = gs[Int(ix[i])] }
                }
            }
        }
        return [gx]
    }
}

// MARK: - Forward / backward drivers

/// Runs the max pool kernels over all planes. Indices (Int32, flat in the input plane) are
/// produced only when asked for (backward or `maxPool2dWithIndices`).
func maxPoolForward(_ x: Tensor, _ g: PoolGeometry, wantIndices: Bool, forceNaive: Bool = false) -> (Tensor, [Int32]?) {
    let shape = [x.shape[0], x.shape[1], g.outH, g.outW]
    let total = g.planes * g.outPlane
    let fast = !forceNaive && g.kH == 2 && g.kW == 2 && g.sH == 2 && g.sW == 2 && g.pH == 0 && g.pW == 0
        && g.dH == 1 && g.dW == 1
    var indices: [Int32]? = nil
    let out = Tensor.make(shape: shape) { ob in
        let o = ob.baseAddress!, xp = x.storage.pointer
        func run(_ ip: UnsafeMutablePointer<Int32>?) {
            parallelFor(g.planes) { p in
                let src = xp + p * g.inPlane, dst = o + p * g.outPlane
                let ids = ip.map { $0 + p * g.outPlane }
                if fast {
                    fcn_maxpool2x2_plane(src, Int64(g.inH), Int64(g.inW), dst, Int64(g.outH), Int64(g.outW), ids)
                } else if ids == nil && !forceNaive && g.dH == 1 && g.dW == 1 {
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: g.inW) { rowMax in
                        maxPoolPlaneValues(UnsafePointer(src), dst, g, rowMax: rowMax.baseAddress!)
                    }
                } else {
                    maxPoolPlaneNaive(src, dst, ids, g)
                }
            }
        }
        if wantIndices {
            indices = [Int32](unsafeUninitializedCapacity: total) { ib, n in
                run(ib.baseAddress!)
                n = total
            }
        } else {
            run(nil)
        }
    }
    return (out, indices)
}

/// Attaches the max pool backward (gradient routed to the saved argmax) to `out`.
private func recordMaxPool(_ op: String, _ out: Tensor, _ x: Tensor, _ indices: [Int32]?, _ g: PoolGeometry) -> Tensor {
    guard let indices else { return out }
    let inShape = x.shape
    return Tensor.record(op, out, inputs: [x]) { grad, _ in
        [maxPoolBackward(grad, indices: indices, inShape: inShape, g)]
    }
}

/// Gradient of max pooling: each output gradient is added to its argmax cell.
func maxPoolBackward(_ grad: Tensor, indices: [Int32], inShape: [Int], _ g: PoolGeometry) -> Tensor {
    var gx = Tensor.zeros(inShape)
    gx.withUnsafeMutableBufferPointer { gb in
        let gxp = gb.baseAddress!, gp = grad.storage.pointer
        indices.withUnsafeBufferPointer { ib in
            let ip = ib.baseAddress!
            parallelFor(g.planes) { p in
                let gd = gxp + p * g.inPlane, gs = gp + p * g.outPlane, ix = ip + p * g.outPlane
                for i in 0..<g.outPlane {
                    let k = Int(ix[i])
                    if k >= 0 && k < g.inPlane { gd[k] += gs[i] }
                }
            }
        }
    }
    return gx
}

// MARK: - Kernels (one HxW plane)

/// Reference kernel, ATen's loop: window clipped to the input (padding is -inf), taps
/// stepped by the dilation, first maximum in scan order, NaN propagates.
func maxPoolPlaneNaive(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                       _ idx: UnsafeMutablePointer<Int32>?, _ g: PoolGeometry) {
    for oh in 0..<g.outH {
        var h0 = oh * g.sH - g.pH
        let h1 = min(h0 + (g.kH - 1) * g.dH + 1, g.inH)
        while h0 < 0 { h0 += g.dH }
        for ow in 0..<g.outW {
            var w0 = ow * g.sW - g.pW
            let w1 = min(w0 + (g.kW - 1) * g.dW + 1, g.inW)
            while w0 < 0 { w0 += g.dW }
            var best = -Float.infinity
            var bestIndex = h0 * g.inW + w0
            var h = h0
            while h < h1 {
                var w = w0
                while w < w1 {
                    let v = x[h * g.inW + w]
                    if v > best || v.isNaN { best = v; bestIndex = h * g.inW + w }
                    w += g.dW
                }
                h += g.dH
            }
            out[oh * g.outW + ow] = best
            idx?[oh * g.outW + ow] = Int32(bestIndex)
        }
    }
}

/// Values only (inference: no argmax), dilation 1, any kernel, stride and padding (the
/// ResNet stem's 3x3 stride-2 pool): per output row, the column-wise maximum of its window's
/// input rows into `rowMax` (a straight loop along the row, which the compiler vectorises),
/// then each output the maximum of its window's columns of `rowMax`. A maximum does not
/// depend on the order it is taken in, NaN included (a NaN anywhere in the window gives
/// NaN), so the values equal the naive kernel's. Windows are never empty (padding is at
/// most half the kernel, and the output-size rule drops windows that start past the input).
func maxPoolPlaneValues(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ g: PoolGeometry,
                        rowMax: UnsafeMutablePointer<Float>) {
    let W = g.inW
    for oh in 0..<g.outH {
        let start = oh * g.sH - g.pH
        let h0 = max(start, 0), h1 = min(start + g.kH, g.inH)
        rowMax.update(from: x + h0 * W, count: W)
        var h = h0 + 1
        while h < h1 {
            let r = x + h * W
            for w in 0..<W {
                let v = r[w], m = rowMax[w]
                rowMax[w] = (v > m || v.isNaN) ? v : m
            }
            h += 1
        }
        let o = out + oh * g.outW
        // Windows of 3 wholly inside the row (the ResNet stem's 3x3 pool): a straight loop
        // with the same comparisons in the same order as the general one below.
        var interior = 0..<0
        if g.kW == 3 {
            // ow * sW - pW >= 0 and ow * sW - pW + 3 <= W.
            let lo = min(g.outW, (g.pW + g.sW - 1) / g.sW), last = W - 3 + g.pW
            let hi = last < 0 ? lo : min(g.outW, max(lo, last / g.sW + 1))
            interior = lo..<hi
            for ow in interior {
                let r = rowMax + (ow * g.sW - g.pW)
                var m = r[0]
                if r[1] > m || r[1].isNaN { m = r[1] }
                if r[2] > m || r[2].isNaN { m = r[2] }
                o[ow] = m
            }
        }
        for ow in 0..<g.outW where !interior.contains(ow) {
            let left = ow * g.sW - g.pW
            let w0 = max(left, 0), w1 = min(left + g.kW, W)
            var m = rowMax[w0]
            var w = w0 + 1
            while w < w1 {
                let v = rowMax[w]
                if v > m || v.isNaN { m = v }
                w += 1
            }
            o[ow] = m
        }
    }
}

/// Tuned kernel for k2 s2 p0 d1 (the FCN pools), floor or ceil mode. Full 2x2 windows are
/// four straight-line compare/selects in ATen's scan order; in ceil mode the last row or
/// column of windows may be one cell thin and is handled separately.
func maxPoolPlaneK2S2(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                      _ idx: UnsafeMutablePointer<Int32>?, _ g: PoolGeometry) {
    let W = g.inW
    let fullW = min(g.outW, W / 2)          // windows with two columns
    for oh in 0..<g.outH {
        let r = 2 * oh
        let r0 = x + r * W
        let twoRows = r + 1 < g.inH
        let r1 = twoRows ? r0 + W : r0
        let o = out + oh * g.outW
        if let idx {
            let io = idx + oh * g.outW
            let base = Int32(r * W)
            let down = twoRows ? Int32(W) : 0
            for ow in 0..<fullW {
                let c = 2 * ow
                var m = r0[c], k = Int32(c)
                let b = r0[c + 1]; if b > m || b.isNaN { m = b; k = Int32(c + 1) }
                if twoRows {
                    let d = r1[c]; if d > m || d.isNaN { m = d; k = Int32(c) + down }
                    let e = r1[c + 1]; if e > m || e.isNaN { m = e; k = Int32(c + 1) + down }
                }
                o[ow] = m; io[ow] = base + k
            }
            if fullW < g.outW {                 // one-column window at the right edge
                let c = 2 * fullW
                var m = r0[c], k = Int32(c)
                if twoRows { let d = r1[c]; if d > m || d.isNaN { m = d; k = Int32(c) + down } }
                o[fullW] = m; io[fullW] = base + k
            }
        } else {
            // Values only: NaN-propagating max, branch-free selects.
            for ow in 0..<fullW {
                let c = 2 * ow
                var m = r0[c]
                let b = r0[c + 1]; m = (b > m || b.isNaN) ? b : m
                let d = r1[c]; m = (d > m || d.isNaN) ? d : m
                let e = r1[c + 1]; m = (e > m || e.isNaN) ? e : m
                o[ow] = m
            }
            if fullW < g.outW {
                let c = 2 * fullW
                var m = r0[c]
                let d = r1[c]; m = (d > m || d.isNaN) ? d : m
                o[fullW] = m
            }
        }
    }
}

/// Max pooling through the naive kernel only (no autograd), same arguments and result as
/// `maxPool2d`. Slow; the reference of the tuned kernels (tests, and `fcn-bench --quick` through `FCNReference`).
func maxPool2dReference(_ x: Tensor, kernel: Size2, stride: Size2? = nil, padding: Size2 = 0,
                               dilation: Size2 = 1, ceilMode: Bool = false) -> Tensor {
    let g = PoolGeometry.make("maxPool2dReference", x, kernel: kernel, stride: stride, padding: padding,
                              dilation: dilation, ceilMode: ceilMode)
    return maxPoolForward(x, g, wantIndices: false, forceNaive: true).0
}
