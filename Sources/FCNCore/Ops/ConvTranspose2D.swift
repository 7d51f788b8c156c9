// convTranspose2d: transpose convolution ("deconvolution") with PyTorch semantics
// (F.conv_transpose2d), plus TensorFlow's output-size form (tf.nn.conv2d_transpose).
//
// Contract: NCHW. x `[N, Cin, H, W]`, weight `[Cin, Cout/groups, kH, kW]`, bias `[Cout]`,
// output `[N, Cout, outH, outW]` with
// `out = (in-1)*stride - padBegin - padEnd + dilation*(k-1) + outputPadding + 1`.
// It is exactly the input gradient of conv2d: the convolution mapping a `[N, Cout, outH, outW]`
// tensor to `[N, Cin, H, W]` with the same weight, stride, padding and dilation. So the
// forward pass is that convolution's backward-data product and the backward pass is its
// forward product (grad input = conv(grad_out, W)) and weight gradient; one engine, no zero
// stuffing, each product computed as `ConvGeometry.algorithm(for:mode:)` chooses
// (Convolution/ConvAlgorithm.swift: for this forward, sub-pixel phases when the kernel is a
// multiple of the stride, as in every FCN upsampling layer).

/// Padding of TensorFlow's `conv2d_transpose`, which takes the wanted output size.
public enum TFPadding: Sendable, Equatable {
    /// Output size in `[(in-1)*s + 1, in*s]`; `padTotal = max(0, (in-1)*s + k - out)`,
    /// `padTotal/2` cropped from the top/left and the rest from the bottom/right.
    case same
    /// Output size in `[(in-1)*s + k, (in-1)*s + k + s - 1]`; no cropping.
    case valid
}

/// Checks the arguments of a transpose convolution and returns the geometry of the
/// convolution whose input gradient it is (input = the transpose convolution's output).
func convTranspose2dGeometry(op: String, input: [Int], weight: [Int], bias: [Int]?, stride: Size2,
                             padding: Padding, outputPadding: Size2, dilation: Size2, groups: Int) -> ConvGeometry {
    checkConvArguments(op: op, input: input, weight: weight, weightAxes: "[Cin, Cout/groups, kH, kW]", stride: stride,
                       dilation: dilation, groups: groups)
    let (n, cin, h, w) = (input[0], input[1], input[2], input[3])
    let (kh, kw) = (weight[2], weight[3])
    fcnCheck(weight[1] >= 1 && kh >= 1 && kw >= 1, op, "weight \(weight) has an empty axis")
    fcnCheck(weight[0] == cin, op,
             "input \(input) has \(cin) channels but weight \(weight) expects \(weight[0]) (weight is [Cin, Cout/groups, kH, kW])")
    fcnCheck(cin % groups == 0, op, "input \(input) has \(cin) channels, which groups \(groups) does not divide")
    let cout = weight[1] * groups
    if let b = bias {
        fcnCheck(b == [cout], op, "bias \(b) must be [\(cout)] for weight \(weight) with groups \(groups)")
    }
    let p: (top: Int, bottom: Int, left: Int, right: Int)
    switch padding {
    case .same:
        fcnFail(op, "padding .same is not defined for a transpose convolution given input \(input); pass explicit amounts, or use convTranspose2d(_:weight:bias:outputSize:stride:padding:) for TensorFlow's SAME")
    case .valid: p = (0, 0, 0, 0)
    case let .explicit(t, b, l, r): p = (t, b, l, r)
    }
    fcnCheck(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0, op, "padding \(padding) must not be negative")
    fcnCheck(outputPadding.h >= 0 && outputPadding.w >= 0, op, "outputPadding \(outputPadding) must not be negative")
    let limH = max(stride.h, dilation.h), limW = max(stride.w, dilation.w)
    fcnCheck(outputPadding.h < limH && outputPadding.w < limW, op,
             "outputPadding \(outputPadding) must be smaller than max(stride, dilation) = \(Size2(limH, limW)) (input \(input), stride \(stride), dilation \(dilation))")
    let outH = (h - 1) * stride.h - p.top - p.bottom + dilation.h * (kh - 1) + outputPadding.h + 1
    let outW = (w - 1) * stride.w - p.left - p.right + dilation.w * (kw - 1) + outputPadding.w + 1
    fcnCheck(outH >= 1 && outW >= 1, op,
             "output would be \(outH)x\(outW) for input \(input), weight \(weight), stride \(stride), padding \(padding), dilation \(dilation)")
    return ConvGeometry(batch: n, inChannels: cout, inH: outH, inW: outW,
                        outChannels: cin, outH: h, outW: w,
                        kH: kh, kW: kw, strideH: stride.h, strideW: stride.w,
                        padTop: p.top, padBottom: p.bottom, padLeft: p.left, padRight: p.right,
                        dilH: dilation.h, dilW: dilation.w, groups: groups)
}

/// 2-D transpose convolution (PyTorch's `F.conv_transpose2d`), differentiable.
///
/// It is the gradient of `conv2d` with respect to its input: every input pixel scatters
/// `weight` (scaled) into the output at `stride` steps, then `padding` is cropped.
///
/// - Parameters:
///   - x: input `[N, Cin, H, W]`.
///   - weight: `[Cin, Cout/groups, kH, kW]` (PyTorch's layout for transpose convolutions).
///   - bias: `[Cout]`, or nil.
///   - stride: upsampling factor (default 1, as PyTorch).
///   - padding: amounts cropped from each side of the full output (explicit or `.valid`;
///     `.same` is an error: use the `outputSize:` form for TensorFlow's SAME). Default 0.
///   - outputPadding: extra rows/columns added at the bottom/right to pick one of the
///     `stride` output sizes that a strided convolution maps to the same input size; must be
///     smaller than `max(stride, dilation)`. Default 0 (Caffe's Deconvolution).
///   - dilation: spacing of the kernel taps (default 1).
///   - groups: independent channel groups (default 1).
/// - Returns: `[N, Cout, outH, outW]`,
///   `out = (in-1)*stride - padBegin - padEnd + dilation*(k-1) + outputPadding + 1`.
public func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Padding = 0,
                            outputPadding: Size2 = 0, dilation: Size2 = 1, groups: Int = 1) -> Tensor {
    profiledOp(weight.rank == 4 ? convKind("convTranspose2d", kernel: (weight.shape[2], weight.shape[3]), stride: stride, dilation: dilation, groups: groups) : "convTranspose2d") {
        let g = convTranspose2dGeometry(op: "convTranspose2d", input: x.shape, weight: weight.shape, bias: bias?.shape,
                                        stride: stride, padding: padding, outputPadding: outputPadding,
                                        dilation: dilation, groups: groups)
        let y = Tensor.make(shape: [g.batch, g.inChannels, g.inH, g.inW]) { out in
            convBackwardData(g, gy: x.storage.pointer, w: weight.storage.pointer, gx: out.baseAddress!)
            if let bias {
                let b = bias.storage.pointer, plane = g.inPlane
                for n in 0..<g.batch {
                    for c in 0..<g.inChannels {
                        let row = out.baseAddress! + (n * g.inChannels + c) * plane
                        let v = b[c]
                        for i in 0..<plane { row[i] += v }
                    }
                }
            }
        }
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        let xd = x.detached(), wd = weight.detached()
        return Tensor.record("convTranspose2d", y, inputs: inputs) { gradOut, needs in
            let gyp = UnsafePointer(gradOut.storage.pointer)
            let gx: Tensor? = needs[0] ? Tensor.make(shape: xd.shape) {
                convForward(g, x: gyp, w: wd.storage.pointer, bias: nil, y: $0.baseAddress!)
            } : nil
            // The weight gradient of the underlying convolution, whose input is grad_out and
            // whose output gradient is x.
            let gw: Tensor? = needs[1] ? Tensor.make(shape: wd.shape) {
                convBackwardWeight(g, x: gyp, gy: xd.storage.pointer, gw: $0.baseAddress!)
            } : nil
            var grads = [gx, gw]
            if needs.count > 2 {
                grads.append(needs[2] ? channelSums(gyp, batch: g.batch, channels: g.inChannels, plane: g.inPlane) : nil)
            }
            return grads
        }
    }
}

/// TensorFlow's `conv2d_transpose` form: the output size is given and `padding` says
/// which convolution the result is the gradient of. Differentiable.
///
/// - Parameters:
///   - x: input `[N, Cin, H, W]`.
///   - weight: `[Cin, Cout, kH, kW]` (PyTorch layout; TensorFlow's filter `[kH, kW, Cout, Cin]`
///     permuted to (3, 2, 0, 1)).
///   - bias: `[Cout]`, or nil.
///   - outputSize: wanted `[outH, outW]`. `.valid` accepts
///     `out` in `[(in-1)*s + k, (in-1)*s + k + s - 1]`; `.same` accepts `out` in
///     `[(in-1)*s + 1, in*s]` and crops `padTotal = max(0, (in-1)*s + k - out)` with
///     `padTotal/2` from the top/left (the extra one at the bottom/right).
///   - stride: upsampling factor.
///   - padding: `.same` or `.valid`.
/// - Returns: `[N, Cout, outputSize.h, outputSize.w]`.
public func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, outputSize: Size2, stride: Size2,
                            padding: TFPadding) -> Tensor {
    let op = "convTranspose2d"
    fcnCheck(x.rank == 4, op, "input \(x.shape) must be 4-D [N, C, H, W]")
    fcnCheck(weight.rank == 4, op, "weight \(weight.shape) must be 4-D [Cin, Cout, kH, kW]")
    fcnCheck(stride.h >= 1 && stride.w >= 1, op, "stride \(stride) must be at least 1")
    func axis(_ name: String, _ n: Int, _ k: Int, _ s: Int, _ out: Int) -> (begin: Int, end: Int, extra: Int) {
        switch padding {
        case .valid:
            let lo = (n - 1) * s + k, hi = lo + s - 1
            fcnCheck(out >= lo && out <= hi, op,
                     "output \(name) \(out) is out of range [\(lo), \(hi)] for VALID with input \(x.shape), weight \(weight.shape), stride \(stride)")
            return (0, 0, out - lo)
        case .same:
            let lo = (n - 1) * s + 1, hi = n * s
            fcnCheck(out >= lo && out <= hi, op,
                     "output \(name) \(out) is out of range [\(lo), \(hi)] for SAME with input \(x.shape), weight \(weight.shape), stride \(stride)")
            let total = max(0, (n - 1) * s + k - out)
            return (total / 2, total - total / 2, out - ((n - 1) * s + k - total))
        }
    }
    let ph = axis("height", x.shape[2], weight.shape[2], stride.h, outputSize.h)
    let pw = axis("width", x.shape[3], weight.shape[3], stride.w, outputSize.w)
    return convTranspose2d(x, weight: weight, bias: bias, stride: stride,
                           padding: .explicit(top: ph.begin, bottom: ph.end, left: pw.begin, right: pw.end),
                           outputPadding: Size2(ph.extra, pw.extra))
}

/// Naive scatter loop with the same arguments as `convTranspose2d` (no autograd): every
/// input pixel adds `x[n, ci, h, w] * weight[ci, co, i, j]` at output
/// `(h*stride - padTop + i*dilation, w*stride - padLeft + j*dilation)` when inside.
/// Slow; the reference the tuned engine is tested against (tests, and `fcn-bench --quick` through `FCNReference`).
func convTranspose2dReference(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1,
                                     padding: Padding = 0, outputPadding: Size2 = 0, dilation: Size2 = 1,
                                     groups: Int = 1) -> Tensor {
    let g = convTranspose2dGeometry(op: "convTranspose2dReference", input: x.shape, weight: weight.shape,
                                    bias: bias?.shape, stride: stride, padding: padding,
                                    outputPadding: outputPadding, dilation: dilation, groups: groups)
    // In the geometry, the transpose convolution's output is `in*` and its input is `out*`.
    let xp = x.storage.pointer, wp = weight.storage.pointer
    let cin = g.outChannels, cout = g.inChannels
    let cinG = cin / g.groups, coutG = cout / g.groups
    var out = Tensor.zeros([g.batch, cout, g.inH, g.inW])
    out.withUnsafeMutableBufferPointer { ob in
        let o = ob.baseAddress!
        for n in 0..<g.batch {
            for ci in 0..<cin {
                let gi = ci / cinG
                for h in 0..<g.outH {
                    for w in 0..<g.outW {
                        let v = xp[((n * cin + ci) * g.outH + h) * g.outW + w]
                        for co in 0..<coutG {
                            let oc = gi * coutG + co
                            for i in 0..<g.kH {
                                let oh = h * g.strideH - g.padTop + i * g.dilH
                                if oh < 0 || oh >= g.inH { continue }
                                for j in 0..<g.kW {
                                    let ow = w * g.strideW - g.padLeft + j * g.dilW
                                    if ow < 0 || ow >= g.inW { continue }
                                    o[((n * cout + oc) * g.inH + oh) * g.inW + ow] +=
                                        v * wp[((ci * coutG + co) * g.kH + i) * g.kW + j]
                                }
                            }
                        }
                    }
                }
            }
        }
        if let bias {
            let b = bias.storage.pointer, plane = g.inH * g.inW
            for n in 0..<g.batch { for c in 0..<cout { for i in 0..<plane { o[(n * cout + c) * plane + i] += b[c] } } }
        }
    }
    return out
}
