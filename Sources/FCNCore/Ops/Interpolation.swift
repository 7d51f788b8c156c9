// Bilinear interpolation (NCHW) and the FCN bilinear upsampling kernel.
//
// interpolateBilinear follows ATen's upsample_bilinear2d (CPU) exactly. Per axis, output
// index `dst` reads source position
//   alignCorners true:  src = dst * (in-1)/(out-1)          (0 when out == 1)
//   alignCorners false: src = max(0, (dst + 0.5) * r - 0.5)  with r = in/out, or 1/scale
//                       when a scale factor was given (PyTorch's recompute_scale_factor=None:
//                       the output size is floor(in * scale) but the ratio stays 1/scale)
// then i0 = min(floor(src), in-1), i1 = min(i0+1, in-1), l1 = clamp(src - i0, 0, 1),
// l0 = 1 - l1. When out == in on an axis ATen copies that axis (l0 = 1) whatever the ratio.
// Ratios and positions are computed in Float, as ATen does for float tensors.
// Backward scatters each output gradient to the four taps with the same weights.
//
// bilinearUpsamplingKernel builds the weight that turns a transposed convolution into a
// bilinear upsampler (FCN "surgery"): `[C, C, k, k]`, zero except the diagonal `[i, i]`,
// `w[y][x] = (1 - |x-c|/f) * (1 - |y-c|/f)`, `f = (k+1)/2`, `c = f-1` (k odd) or
// `f-0.5` (k even). For factor s use k = 2s - s%2, stride s (`bilinearKernelSize`).

// MARK: - Public API

/// Bilinear resize of an NCHW tensor to `size`, PyTorch's
/// `F.interpolate(x, size=size, mode="bilinear", align_corners=alignCorners)`.
///
/// - Parameters:
///   - x: input `[N, C, H, W]`.
///   - size: output (height, width), each >= 1.
///   - alignCorners: false (PyTorch's default and torchvision's segmentation models) treats
///     pixels as areas: `src = max(0, (dst+0.5)*in/out - 0.5)`; true maps the corner pixel
///     centres onto each other: `src = dst*(in-1)/(out-1)`.
/// - Returns: `[N, C, size.h, size.w]`.
public func interpolateBilinear(_ x: Tensor, size: Size2, alignCorners: Bool = false) -> Tensor {
    profiledOp("interpolateBilinear") {
        bilinear("interpolateBilinear", x, outH: size.h, outW: size.w, scaleH: nil, scaleW: nil,
                 alignCorners: alignCorners)
    }
}

/// Bilinear resize by a scale factor, PyTorch's
/// `F.interpolate(x, scale_factor=scaleFactor, mode="bilinear", align_corners=alignCorners)`
/// with `recompute_scale_factor=None`: the output size is `floor(in * scale)` and, when
/// `alignCorners` is false, the source ratio is `1/scale` (not `in/out`; they differ when
/// `in * scale` is not an integer).
public func interpolateBilinear(_ x: Tensor, scaleFactor: Double, alignCorners: Bool = false) -> Tensor {
    profiledOp("interpolateBilinear") {
        interpolateBilinear(x, scaleFactor: (scaleFactor, scaleFactor), alignCorners: alignCorners)
    }
}

/// Bilinear resize by separate (height, width) scale factors; see
/// `interpolateBilinear(_:scaleFactor:alignCorners:)`.
public func interpolateBilinear(_ x: Tensor, scaleFactor: (height: Double, width: Double),
                                alignCorners: Bool = false) -> Tensor {
    profiledOp("interpolateBilinear") {
        let op = "interpolateBilinear"
        fcnCheck(x.rank == 4, op, "input must be NCHW (rank 4), got shape \(x.shape)")
        let (sh, sw) = scaleFactor
        fcnCheck(sh > 0 && sw > 0 && sh.isFinite && sw.isFinite, op, "scale factors must be positive and finite, got (\(sh), \(sw))")
        let outH = Int((Double(x.shape[2]) * sh).rounded(.down))
        let outW = Int((Double(x.shape[3]) * sw).rounded(.down))
        return bilinear(op, x, outH: outH, outW: outW, scaleH: sh, scaleW: sw, alignCorners: alignCorners)
    }
}

/// The FCN bilinear upsampling weight for a transposed convolution, `[C, C, k, k]`:
/// zero except `w[i, i]`, which holds the separable tent
/// `(1 - |y-c|/f) * (1 - |x-c|/f)` with `f = (k+1)/2` and `c = f-1` (k odd) or `f-0.5`
/// (k even). k = 4 gives taps `[0.25, 0.75, 0.75, 0.25]`; k = 5 (3x) gives
/// `[1/3, 2/3, 1, 2/3, 1/3]`. Use with stride `s` and `k = bilinearKernelSize(forFactor: s)`.
/// The diagonal keeps channels separate (each class map is upsampled on its own).
public func bilinearUpsamplingKernel(channels: Int, kernelSize: Int) -> Tensor {
    fcnCheck(channels > 0, "bilinearUpsamplingKernel", "channels must be positive, got \(channels)")
    fcnCheck(kernelSize > 0, "bilinearUpsamplingKernel", "kernelSize must be positive, got \(kernelSize)")
    let k = kernelSize
    let taps = bilinearTaps(k)
    var w = Tensor.zeros([channels, channels, k, k])
    w.withUnsafeMutableBufferPointer { b in
        for c in 0..<channels {
            let base = (c * channels + c) * k * k
            for y in 0..<k { for x in 0..<k { b[base + y * k + x] = taps[y] * taps[x] } }
        }
    }
    return w
}

/// Kernel size of the bilinear upsampling deconvolution for integer factor `s`:
/// `2s - s%2` (4 for 2x, 5 for 3x, 16 for 8x, 64 for 32x), used with stride `s`.
public func bilinearKernelSize(forFactor s: Int) -> Int {
    fcnCheck(s > 0, "bilinearKernelSize", "factor must be positive, got \(s)")
    return 2 * s - s % 2
}

/// 1-D tent taps of the bilinear kernel of size k (computed in Double, stored as Float).
func bilinearTaps(_ k: Int) -> [Float] {
    let f = Double((k + 1) / 2)
    let c = k % 2 == 1 ? f - 1 : f - 0.5
    return (0..<k).map { Float(1 - abs(Double($0) - c) / f) }
}

// MARK: - Implementation

/// Per-axis source indices and weights (ATen's compute_source_index_and_lambda).
package struct LinearAxis {
    package var i0: [Int], i1: [Int], l0: [Float], l1: [Float]

    package init(inSize: Int, outSize: Int, alignCorners: Bool, scale: Double?) {
        let ratio: Float
        if alignCorners {
            ratio = outSize > 1 ? Float(inSize - 1) / Float(outSize - 1) : 0
        } else if let s = scale, s > 0 {
            ratio = Float(1.0 / s)
        } else {
            ratio = Float(inSize) / Float(outSize)
        }
        i0 = []; i1 = []; l0 = []; l1 = []
        for dst in 0..<outSize {
            if inSize == outSize {
                i0.append(dst); i1.append(dst); l0.append(1); l1.append(0); continue
            }
            let src: Float = alignCorners ? ratio * Float(dst) : max(0, ratio * (Float(dst) + 0.5) - 0.5)
            let a = min(Int(src.rounded(.down)), inSize - 1)
            let lam = min(max(src - Float(a), 0), 1)
            i0.append(a); i1.append(a < inSize - 1 ? a + 1 : a)
            l1.append(lam); l0.append(1 - lam)
        }
    }
}

private func bilinear(_ op: String, _ x: Tensor, outH: Int, outW: Int, scaleH: Double?, scaleW: Double?,
                      alignCorners: Bool) -> Tensor {
    fcnCheck(x.rank == 4, op, "input must be NCHW (rank 4), got shape \(x.shape)")
    fcnCheck(x.count > 0, op, "input \(x.shape) is empty")
    fcnCheck(outH > 0 && outW > 0, op, "output size \(outH)x\(outW) for input \(x.shape) must be positive")
    let inH = x.shape[2], inW = x.shape[3]
    let ay = LinearAxis(inSize: inH, outSize: outH, alignCorners: alignCorners, scale: scaleH)
    let ax = LinearAxis(inSize: inW, outSize: outW, alignCorners: alignCorners, scale: scaleW)
    let planes = x.shape[0] * x.shape[1], inPlane = inH * inW, outPlane = outH * outW
    let out = Tensor.make(shape: [x.shape[0], x.shape[1], outH, outW]) { ob in
        let o = ob.baseAddress!, xp = x.storage.pointer
        ay.i0.withUnsafeBufferPointer { y0 in ay.i1.withUnsafeBufferPointer { y1 in
        ay.l0.withUnsafeBufferPointer { a0 in ay.l1.withUnsafeBufferPointer { a1 in
        ax.i0.withUnsafeBufferPointer { x0 in ax.i1.withUnsafeBufferPointer { x1 in
        ax.l0.withUnsafeBufferPointer { b0 in ax.l1.withUnsafeBufferPointer { b1 in
            // Each input row an output row reads is interpolated along the row once (an
            // upsampling reads each for many output rows), then every output row is
            // h0 * rows[y0] + h1 * rows[y1]: the same products in the same order as
            // h0 * (w0 * r0[c0] + w1 * r0[c1]) + h1 * (...), so the same bits.
            parallelFor(planes) { p in
                let src = xp + p * inPlane, dst = o + p * outPlane
                // Two slots, input row y in slot y % 2: y0 and y1 never decrease and y1 is y0
                // or y0 + 1, so a row is new exactly when it is past the last one filled, and
                // the row it then replaces (two back) is never read again.
                withScratch(2 * outW) { rows in
                    var last = -1
                    func fill(_ y: Int) {
                        guard y > last else { return }
                        let r = src + y * inW, hr = rows + (y & 1) * outW
                        for ow in 0..<outW { hr[ow] = b0[ow] * r[x0[ow]] + b1[ow] * r[x1[ow]] }
                        last = y
                    }
                    for oh in 0..<outH {
                        fill(y0[oh])
                        fill(y1[oh])
                        let q0 = rows + (y0[oh] & 1) * outW, q1 = rows + (y1[oh] & 1) * outW
                        let h0 = a0[oh], h1 = a1[oh]
                        let row = dst + oh * outW
                        for ow in 0..<outW { row[ow] = h0 * q0[ow] + h1 * q1[ow] }
                    }
                }
            }
        }}}}}}}}
    }
    return recordPlanewise(op, out, of: x) { gs, g in
        for oh in 0..<outH {
            let r0 = g + ay.i0[oh] * inW, r1 = g + ay.i1[oh] * inW
            let h0 = ay.l0[oh], h1 = ay.l1[oh]
            for ow in 0..<outW {
                let v = gs[oh * outW + ow]
                let c0 = ax.i0[ow], c1 = ax.i1[ow], w0 = ax.l0[ow], w1 = ax.l1[ow]
                r0[c0] += h0 * w0 * v; r0[c1] += h0 * w1 * v
                r1[c0] += h1 * w0 * v; r1[c1] += h1 * w1 * v
            }
        }
    }
}
