// conv2d with a kernel that overhangs its input: only the box of live taps runs.
//
// Why: fc6 is a 7x7 convolution. With same padding on the 2x2 and 3x3 maps of 64- and
// 96-pixel images, the outer kernel rows and columns meet padding at every output
// position: 9 and 25 of its 49 taps can ever touch the input. The full kernel multiplies
// zeros in 82% and 49% of its im2col columns and streams all of its weights three times a
// training step (forward, input gradient, weight gradient).
//
// Contract:
// * Tap row u is live when some output row oy reads a real input row with it:
//   0 <= oy * strideH - padTop + u * dilH < inH for some oy in 0..<outH (columns alike).
//   The live box is rows u0..<u1, columns v0..<v1: the smallest box holding the live rows
//   and columns.
// * When the box is smaller than the kernel, the convolution runs as one of kernel
//   w[:, :, u0..<u1, v0..<v1] (gathered into a small copy), padding top padTop - u0 * dilH,
//   left padLeft - v0 * dilW, and bottom/right chosen so the output size stays. It is the
//   same sum without the terms whose input is padding: equal up to rounding (and a NaN or
//   infinity in a dead tap no longer reaches the output, where 0 * inf gives NaN in the
//   full sum).
// * Backward: the input gradient through the box's kernel; the weight gradient is the
//   box's, written into the full shape with exact zeros at the dead taps (as the full
//   convolution gives them).
// * `liveTapBox` is nil (the full kernel runs) when every row and column is live, when no
//   tap is live (the output is the bias), and when the reduced padding would be negative (a
//   dilated kernel whose box starts past the padding). Whether conv2d then runs the box
//   (not when the weight cache serves the weight: the packed full kernel is at hand) is
//   rule 2 of `ConvGeometry.algorithm(for:mode:)`.

/// The live-tap box of a convolution and the geometry of the convolution with that box.
struct LiveTapBox: Equatable {
    var rows: Range<Int>
    var cols: Range<Int>
    var geometry: ConvGeometry
}

extension ConvGeometry {
    /// Kernel positions along one axis that read a real input element at some output position.
    static func liveTaps(inSize: Int, outSize: Int, kernel: Int, stride: Int, pad: Int, dilation: Int) -> Range<Int> {
        var lo = kernel, hi = -1
        for u in 0..<kernel {
            let c = u * dilation - pad                           // input index at output 0
            let first = c >= 0 ? 0 : (-c + stride - 1) / stride  // first output with index >= 0
            if first < outSize && first * stride + c < inSize { lo = min(lo, u); hi = u }
        }
        return lo <= hi ? lo ..< hi + 1 : 0 ..< 0
    }

    /// The live-tap box and its geometry, or nil when the full kernel runs (see the file
    /// contract for when).
    var liveTapBox: LiveTapBox? {
        let rows = ConvGeometry.liveTaps(inSize: inH, outSize: outH, kernel: kH, stride: strideH, pad: padTop, dilation: dilH)
        let cols = ConvGeometry.liveTaps(inSize: inW, outSize: outW, kernel: kW, stride: strideW, pad: padLeft, dilation: dilW)
        guard !rows.isEmpty, !cols.isEmpty, rows.count < kH || cols.count < kW else { return nil }
        var t = self
        t.kH = rows.count; t.kW = cols.count
        t.padTop = padTop - rows.lowerBound * dilH
        t.padLeft = padLeft - cols.lowerBound * dilW
        t.padBottom = (outH - 1) * strideH + dilH * (t.kH - 1) + 1 - inH - t.padTop
        t.padRight = (outW - 1) * strideW + dilW * (t.kW - 1) + 1 - inW - t.padLeft
        guard t.padTop >= 0, t.padLeft >= 0, t.padBottom >= 0, t.padRight >= 0 else { return nil }
        return LiveTapBox(rows: rows, cols: cols, geometry: t)
    }
}

/// Copies between a full kernel `[planes, kH, kW]` and its box `[planes, rows, cols]`
/// (`gather`: full -> box; else box -> full, every tap outside the box set to 0).
func copyKernelBox(_ box: LiveTapBox, planes: Int, kH: Int, kW: Int,
                   full: UnsafeMutablePointer<Float>, part: UnsafeMutablePointer<Float>, gather: Bool) {
    let bh = box.rows.count, bw = box.cols.count
    let r0 = box.rows.lowerBound, c0 = box.cols.lowerBound
    let block = 512     // planes zeroed and then filled while in cache (<= 100 KB of a 7x7 kernel)
    parallelChunks(planes, minChunk: max(1, elementwiseGrain / (kH * kW))) { r in
        for lo in stride(from: r.lowerBound, to: r.upperBound, by: block) {
            let hi = min(r.upperBound, lo + block)
            if !gather { (full + lo * kH * kW).update(repeating: 0, count: (hi - lo) * kH * kW) }
            for p in lo..<hi {
                for i in 0..<bh {
                    let f = full + (p * kH + r0 + i) * kW + c0, b = part + (p * bh + i) * bw
                    // Rows of 3 to 7 floats: a loop, not a memmove call per row.
                    if gather { for j in 0..<bw { b[j] = f[j] } } else { for j in 0..<bw { f[j] = b[j] } }
                }
            }
        }
    }
}

/// conv2d through the live-tap box `box` of geometry `g` (the caller checked both).
/// Same result, gradients and recording as `conv2d`; see the file contract.
func conv2dLiveTaps(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, box: LiveTapBox,
                    fusedReLU: Bool) -> Tensor {
    let t = box.geometry
    let planes = g.outChannels * g.inGroupChannels
    // [Cout, Cin/groups, rows, cols]
    let wBox = Tensor.make(shape: [g.outChannels, g.inGroupChannels, t.kH, t.kW]) { out in
        copyKernelBox(box, planes: planes, kH: g.kH, kW: g.kW, full: weight.storage.pointer, part: out.baseAddress!, gather: true)
    }
    let y = Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
        convForward(t, x: x.storage.pointer, w: wBox.storage.pointer, bias: bias.map { UnsafePointer($0.storage.pointer) },
                    y: out.baseAddress!, relu: fusedReLU, algorithm: t.algorithm(for: .forward))
    }
    return recordConv2d(y, x: x, weight: weight, bias: bias, geometry: g, fusedReLU: fusedReLU,
                        inputGradient: { gy, gx in convBackwardData(t, gy: gy, w: wBox.storage.pointer, gx: gx) },
                        weightGradient: { x, gy, gw in
                            let gBox = Tensor.make(shape: wBox.shape) { convBackwardWeight(t, x: x, gy: gy, gw: $0.baseAddress!) }
                            copyKernelBox(box, planes: planes, kH: g.kH, kW: g.kW, full: gw, part: gBox.storage.pointer,
                                          gather: false)
                        })
}
