// Average pooling (NCHW): fixed windows, adaptive windows and the global mean, forward and
// backward, PyTorch / ATen semantics.
//
// avgPool2d: for output (oh, ow) the window starts at (oh*s - p) and is first clipped to
// [-p, in + p) (a ceil-mode window that runs past the right padding loses its overhang);
// `poolSize` is that clipped area. The window is then clipped to the image [0, in) and the
// sum of its cells is divided by `divisorOverride`, else `poolSize` (countIncludePad, the
// default) or the number of image cells (countIncludePad false). An empty window gives 0.
// Backward spreads each output gradient / divisor over the same cells.
//
// adaptiveAvgPool2d: output cell i averages input [floor(i*in/out), ceil((i+1)*in/out)) on
// each axis (windows may overlap); globalAvgPool2d is the 1x1 case.

// MARK: - Public API

/// 2-D average pooling over an NCHW tensor, PyTorch's `F.avg_pool2d`.
///
/// - Parameters:
///   - x: input `[N, C, H, W]`.
///   - kernel: window size (height, width).
///   - stride: step between windows; `nil` means `kernel` (the PyTorch default).
///   - padding: implicit zero border, at most `kernel/2`.
///   - ceilMode: round the output size up (same rule as `maxPool2d`).
///   - countIncludePad: divide by the window area including padding (PyTorch's default),
///     or by the number of cells inside the image.
///   - divisorOverride: divide every window sum by this instead (must not be 0).
/// - Returns: `[N, C, outH, outW]`, output size as `maxPool2d` with dilation 1.
public func avgPool2d(_ x: Tensor, kernel: Size2, stride: Size2? = nil, padding: Size2 = 0,
                      ceilMode: Bool = false, countIncludePad: Bool = true, divisorOverride: Int? = nil) -> Tensor {
    profiledOp(convKind("avgPool2d", kernel: (kernel.h, kernel.w), stride: stride ?? kernel, dilation: 1)) {
        let g = PoolGeometry.make("avgPool2d", x, kernel: kernel, stride: stride, padding: padding,
                                  dilation: 1, ceilMode: ceilMode)
        if let d = divisorOverride { fcnCheck(d != 0, "avgPool2d", "divisorOverride must not be 0") }
        let windows = AvgWindows(g, countIncludePad: countIncludePad, divisorOverride: divisorOverride)
        let out = mapPlanes(x, outH: g.outH, outW: g.outW) { src, dst in windows.forwardPlane(src, dst) }
        return recordPlanewise("avgPool2d", out, of: x) { grad, gx in windows.backwardPlane(grad, gx) }
    }
}

/// Adaptive average pooling, PyTorch's `F.adaptive_avg_pool2d`: `[N, C, H, W]` ->
/// `[N, C, outputSize.h, outputSize.w]` where output cell `i` of an axis averages input
/// cells `floor(i*in/out) ..< ceil((i+1)*in/out)`. Works for output sizes smaller or larger
/// than the input (windows then overlap or repeat).
public func adaptiveAvgPool2d(_ x: Tensor, outputSize: Size2) -> Tensor {
    adaptiveAvgPool("adaptiveAvgPool2d", x, outputSize)
}

/// Global average pooling: the mean of each `H x W` plane, `[N, C, H, W]` -> `[N, C, 1, 1]`
/// (`adaptiveAvgPool2d(x, outputSize: 1)`). Keeps rank 4 so a 1x1 convolution can follow.
public func globalAvgPool2d(_ x: Tensor) -> Tensor {
    adaptiveAvgPool("globalAvgPool2d", x, 1)
}

// MARK: - Fixed windows

/// The clipped windows and divisors of one avgPool2d call, shared by forward and backward.
struct AvgWindows {
    let g: PoolGeometry
    /// Per output row / column: clipped image range and the padded-window extent.
    let h0: [Int], h1: [Int], hPool: [Int]
    let w0: [Int], w1: [Int], wPool: [Int]
    let countIncludePad: Bool
    let divisorOverride: Int?

    init(_ g: PoolGeometry, countIncludePad: Bool, divisorOverride: Int?) {
        self.g = g
        self.countIncludePad = countIncludePad
        self.divisorOverride = divisorOverride
        func axis(_ out: Int, _ inSize: Int, _ k: Int, _ s: Int, _ p: Int) -> ([Int], [Int], [Int]) {
            var a = [Int](), b = [Int](), pool = [Int]()
            for o in 0..<out {
                let start = o * s - p
                let end = min(start + k, inSize + p)      // clip to the padded input
                pool.append(end - start)
                a.append(max(start, 0)); b.append(min(end, inSize))
            }
            return (a, b, pool)
        }
        (h0, h1, hPool) = axis(g.outH, g.inH, g.kH, g.sH, g.pH)
        (w0, w1, wPool) = axis(g.outW, g.inW, g.kW, g.sW, g.pW)
    }

    /// Divisor for output (oh, ow), or nil for an empty window (output 0, no gradient).
    @inline(__always)
    func divisor(_ oh: Int, _ ow: Int) -> Float? {
        let hn = h1[oh] - h0[oh], wn = w1[ow] - w0[ow]
        if hn <= 0 || wn <= 0 { return nil }
        if let d = divisorOverride { return Float(d) }
        return Float(countIncludePad ? hPool[oh] * wPool[ow] : hn * wn)
    }

    func forwardPlane(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        let W = g.inW
        for oh in 0..<g.outH {
            for ow in 0..<g.outW {
                guard let d = divisor(oh, ow) else { out[oh * g.outW + ow] = 0; continue }
                var sum: Float = 0
                for h in h0[oh]..<h1[oh] {
                    let row = x + h * W
                    for w in w0[ow]..<w1[ow] { sum += row[w] }
                }
                out[oh * g.outW + ow] = sum / d
            }
        }
    }

    func backwardPlane(_ grad: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>) {
        let W = g.inW
        for oh in 0..<g.outH {
            for ow in 0..<g.outW {
                guard let d = divisor(oh, ow) else { continue }
                let v = grad[oh * g.outW + ow] / d
                for h in h0[oh]..<h1[oh] {
                    let row = gx + h * W
                    for w in w0[ow]..<w1[ow] { row[w] += v }
                }
            }
        }
    }
}

// MARK: - Adaptive windows

/// ATen's adaptive window bounds on one axis: [floor(i*in/out), ceil((i+1)*in/out)).
func adaptiveBounds(inSize: Int, outSize: Int) -> (start: [Int], end: [Int]) {
    var s = [Int](), e = [Int]()
    for i in 0..<outSize {
        s.append(i * inSize / outSize)
        e.append(((i + 1) * inSize + outSize - 1) / outSize)
    }
    return (s, e)
}

private func adaptiveAvgPool(_ op: String, _ x: Tensor, _ outputSize: Size2) -> Tensor {
    fcnCheck(x.rank == 4, op, "input must be NCHW (rank 4), got shape \(x.shape)")
    fcnCheck(x.count > 0, op, "input \(x.shape) is empty")
    fcnCheck(outputSize.h > 0 && outputSize.w > 0, op, "outputSize must be positive, got \(outputSize)")
    let inH = x.shape[2], inW = x.shape[3], oH = outputSize.h, oW = outputSize.w
    let (hs, he) = adaptiveBounds(inSize: inH, outSize: oH)
    let (ws, we) = adaptiveBounds(inSize: inW, outSize: oW)
    let out = mapPlanes(x, outH: oH, outW: oW) { src, dst in
        for oh in 0..<oH {
            for ow in 0..<oW {
                var sum: Float = 0
                for h in hs[oh]..<he[oh] {
                    let row = src + h * inW
                    for w in ws[ow]..<we[ow] { sum += row[w] }
                }
                dst[oh * oW + ow] = sum / Float((he[oh] - hs[oh]) * (we[ow] - ws[ow]))
            }
        }
    }
    return recordPlanewise(op, out, of: x) { gs, dst in
        for oh in 0..<oH {
            for ow in 0..<oW {
                let v = gs[oh * oW + ow] / Float((he[oh] - hs[oh]) * (we[ow] - ws[ow]))
                for h in hs[oh]..<he[oh] {
                    let row = dst + h * inW
                    for w in ws[ow]..<we[ow] { row[w] += v }
                }
            }
        }
    }
}
