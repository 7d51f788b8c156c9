// conv2d: 2-D convolution with PyTorch semantics (F.conv2d), forward and backward.
//
// Contract: cross-correlation (no kernel flip), NCHW. x `[N, Cin, H, W]`, weight
// `[Cout, Cin/groups, kH, kW]`, bias `[Cout]`, output `[N, Cout, outH, outW]` with
// `out = (in + padBegin + padEnd - dilation*(k-1) - 1) / stride + 1` (floor).
// The op checks its arguments, asks `ConvGeometry.algorithm(for:mode:)`
// (Convolution/ConvAlgorithm.swift) how to compute the forward once per call, runs it
// (Convolution/ConvProducts.swift; a kernel overhanging its input runs as its live-tap box,
// Ops/Conv2D+LiveTaps.swift) and records the backward: grad input and grad weight are the
// engine's other two products (chosen when the backward runs), grad bias the sum of
// grad_out over N, H, W, all masked by the fused ReLU when there is one.
// `conv2dReference` (naive direct loops) is kept beside it for tests.

/// The checks conv2d and convTranspose2d share: 4-D input and weight (`weightAxes` names the
/// weight's axes in the message), groups, stride and dilation at least 1, no empty input axis.
func checkConvArguments(op: String, input: [Int], weight: [Int], weightAxes: String, stride: Size2,
                        dilation: Size2, groups: Int) {
    fcnCheck(input.count == 4, op, "input \(input) must be 4-D [N, C, H, W]")
    fcnCheck(weight.count == 4, op, "weight \(weight) must be 4-D \(weightAxes)")
    fcnCheck(groups >= 1, op, "groups \(groups) must be at least 1")
    fcnCheck(stride.h >= 1 && stride.w >= 1, op, "stride \(stride) must be at least 1")
    fcnCheck(dilation.h >= 1 && dilation.w >= 1, op, "dilation \(dilation) must be at least 1")
    fcnCheck(input[1] >= 1 && input[2] >= 1 && input[3] >= 1, op, "input \(input) has an empty channel or spatial axis")
}

/// Checks the arguments of a convolution and returns its geometry. Stops with a message
/// naming `op` on any misuse (before any kernel runs).
func conv2dGeometry(op: String, input: [Int], weight: [Int], bias: [Int]?, stride: Size2,
                    padding: Padding, dilation: Size2, groups: Int) -> ConvGeometry {
    checkConvArguments(op: op, input: input, weight: weight, weightAxes: "[Cout, Cin/groups, kH, kW]", stride: stride,
                       dilation: dilation, groups: groups)
    let (n, cin, h, w) = (input[0], input[1], input[2], input[3])
    let (cout, kh, kw) = (weight[0], weight[2], weight[3])
    fcnCheck(cout >= 1 && kh >= 1 && kw >= 1, op, "weight \(weight) has an empty axis")
    fcnCheck(cin % groups == 0, op, "input \(input) has \(cin) channels, which groups \(groups) does not divide")
    fcnCheck(cout % groups == 0, op, "weight \(weight) has \(cout) output channels, which groups \(groups) does not divide")
    fcnCheck(weight[1] * groups == cin, op,
             "input \(input) has \(cin) channels but weight \(weight) with groups \(groups) expects \(weight[1] * groups)")
    if let b = bias {
        fcnCheck(b == [cout], op, "bias \(b) must be [\(cout)] for weight \(weight)")
    }
    let p = padding.resolve(inH: h, inW: w, kernel: Size2(kh, kw), stride: stride, dilation: dilation)
    fcnCheck(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0, op, "padding \(padding) must not be negative")
    let spanH = dilation.h * (kh - 1) + 1, spanW = dilation.w * (kw - 1) + 1
    let paddedH = h + p.top + p.bottom, paddedW = w + p.left + p.right
    fcnCheck(spanH <= paddedH && spanW <= paddedW, op,
             "kernel \(kh)x\(kw) with dilation \(dilation) spans \(spanH)x\(spanW), larger than the padded input \(paddedH)x\(paddedW) (input \(input), weight \(weight), padding \(padding))")
    return ConvGeometry(batch: n, inChannels: cin, inH: h, inW: w,
                        outChannels: cout, outH: (paddedH - spanH) / stride.h + 1, outW: (paddedW - spanW) / stride.w + 1,
                        kH: kh, kW: kw, strideH: stride.h, strideW: stride.w,
                        padTop: p.top, padBottom: p.bottom, padLeft: p.left, padRight: p.right,
                        dilH: dilation.h, dilW: dilation.w, groups: groups)
}

/// 2-D convolution (cross-correlation, as PyTorch's `F.conv2d`), differentiable.
///
/// - Parameters:
///   - x: input `[N, Cin, H, W]`.
///   - weight: `[Cout, Cin/groups, kH, kW]`.
///   - bias: `[Cout]`, or nil for none.
///   - stride: step of the window (default 1: dense output, as PyTorch).
///   - padding: explicit amounts (an integer pads every side, `.explicit` allows asymmetric
///     padding), `.valid` (none) or `.same` (TensorFlow's rule, also for stride > 1). The
///     default 0 is PyTorch's default.
///   - dilation: spacing of the kernel taps (default 1).
///   - groups: input and output channels split into `groups` independent convolutions;
///     `groups == Cin` is depthwise. Default 1.
///   - fusedReLU: apply ReLU while writing the output (saves one pass in inference);
///     the gradient is masked accordingly. Default false, matching `F.conv2d`.
/// - Returns: `[N, Cout, outH, outW]`, `out = (in + padBegin + padEnd - dilation*(k-1) - 1) / stride + 1`.
///
/// Misuse (channel mismatch, groups not dividing the channels, a kernel larger than the
/// padded input, negative padding) stops with a message naming `conv2d` and the shapes.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Padding = 0,
                   dilation: Size2 = 1, groups: Int = 1, fusedReLU: Bool = false) -> Tensor {
    profiledOp(weight.rank == 4 ? convKind("conv2d", kernel: (weight.shape[2], weight.shape[3]), stride: stride, dilation: dilation, groups: groups) : "conv2d") {
        let g = conv2dGeometry(op: "conv2d", input: x.shape, weight: weight.shape, bias: bias?.shape,
                               stride: stride, padding: padding, dilation: dilation, groups: groups)
        return conv2d(x, weight: weight, bias: bias, geometry: g, fusedReLU: fusedReLU,
                      algorithm: g.algorithm(for: .forward, mode: .conv2d(x: x, weight: weight, bias: bias)))
    }
}

/// conv2d on its checked geometry `g` by `algorithm`, the choice for the whole op (a
/// live-tap box runs as that smaller convolution; a constant margin scans x first).
func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, fusedReLU: Bool,
            algorithm: ConvAlgorithm) -> Tensor {
    if case .liveTapBox(let box) = algorithm {
        return conv2dLiveTaps(x, weight: weight, bias: bias, geometry: g, box: box, fusedReLU: fusedReLU)
    }
    if case .dilatedPolyphase(let d) = algorithm {
        return conv2dPolyphase(x, weight: weight, bias: bias, geometry: g, dilation: d, fusedReLU: fusedReLU)
    }
    let y: Tensor, margin: MarginPlan?
    if case .constantMargin = algorithm {
        var mode = ConvMode.conv2d(x: x, weight: weight, bias: bias)
        mode.marginScanned = true
        guard let plan = marginPlan(g, x: x, weight: weight, bias: bias),
              let m = convForwardMargin(plan, x: x, weight: weight, bias: bias, relu: fusedReLU, cachedWeight: mode.cachedWeight) else {
            return conv2d(x, weight: weight, bias: bias, geometry: g, fusedReLU: fusedReLU,
                          algorithm: g.algorithm(for: .forward, mode: mode))
        }
        y = m
        margin = plan
    } else {
        margin = nil
        y = Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
            convForward(g, x: x.storage.pointer, w: weight.storage.pointer, bias: bias.map { UnsafePointer($0.storage.pointer) },
                        y: out.baseAddress!, relu: fusedReLU, algorithm: algorithm)
        }
    }
    let wd = weight.detached(), xd = x.detached()
    // A margin forward's weight gradient cuts too (`convBackwardWeightMargin`); the input
    // gradient runs on the whole geometry (gy has no runs of equal lines).
    return recordConv2d(y, x: x, weight: weight, bias: bias, geometry: g, fusedReLU: fusedReLU,
                        inputGradient: { gy, gx in convBackwardData(g, gy: gy, w: wd.storage.pointer, gx: gx) },
                        weightGradient: { x, gy, gw in
                            if let margin { convBackwardWeightMargin(margin, x: xd, gy: gy, gw: gw) }
                            else { convBackwardWeight(g, x: x, gy: gy, gw: gw) }
                        })
}

/// Records conv2d's output `y` (geometry `g`) with its backward: grad_out, masked by the
/// fused ReLU when `fusedReLU`, gives grad x by `inputGradient(gy, gx)`, grad weight by
/// `weightGradient(x, gy, gw)` (each asked only when needed, into a buffer of the input's
/// shape) and grad bias by the per-channel sums.
func recordConv2d(_ y: Tensor, x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, fusedReLU: Bool,
                  inputGradient: @escaping (_ gy: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>) -> Void,
                  weightGradient: @escaping (_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>,
                                             _ gw: UnsafeMutablePointer<Float>) -> Void) -> Tensor {
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    let xd = x.detached(), yd = y.detached(), wShape = weight.shape
    return Tensor.record("conv2d", y, inputs: inputs) { gradOut, needs in
        let gy = fusedReLU ? reluMask(gradOut, yd) : gradOut
        let gyp = UnsafePointer(gy.storage.pointer)
        let gx: Tensor? = needs[0] ? Tensor.make(shape: xd.shape) { inputGradient(gyp, $0.baseAddress!) } : nil
        let gw: Tensor? = needs[1] ? Tensor.make(shape: wShape) { weightGradient(xd.storage.pointer, gyp, $0.baseAddress!) } : nil
        var grads = [gx, gw]
        if needs.count > 2 {
            grads.append(needs[2] ? channelSums(gyp, batch: g.batch, channels: g.outChannels, plane: g.outPlane) : nil)
        }
        return grads
    }
}

/// `grad` where `y > 0`, else 0 (the gradient through a fused ReLU).
func reluMask(_ grad: Tensor, _ y: Tensor) -> Tensor {
    Tensor.make(shape: grad.shape) { out in
        let p = UncheckedSendable((grad.storage.pointer, y.storage.pointer, out.baseAddress!))
        parallelChunks(out.count, minChunk: 1 << 16) { range in
            let (g, v, o) = p.value
            typealias V = SIMD8<Float>
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let vv = UnsafeRawPointer(v + i).loadUnaligned(as: V.self)
                let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
                UnsafeMutableRawPointer(o + i).storeBytes(of: V(repeating: 0).replacing(with: gv, where: vv .> 0), as: V.self)
                i += 8
            }
            for j in i..<range.upperBound { o[j] = v[j] > 0 ? g[j] : 0 }
        }
    }
}

/// Naive direct-loop convolution with the same arguments as `conv2d` (no autograd).
/// Slow; kept as the reference the tuned engine is tested against (tests and
/// `fcn-bench --quick` through `FCNReference`).
func conv2dReference(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Padding = 0,
                     dilation: Size2 = 1, groups: Int = 1) -> Tensor {
    let g = conv2dGeometry(op: "conv2dReference", input: x.shape, weight: weight.shape, bias: bias?.shape,
                           stride: stride, padding: padding, dilation: dilation, groups: groups)
    let xp = x.storage.pointer, wp = weight.storage.pointer, bp = bias?.storage.pointer
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels
    return Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
        var o = 0
        for n in 0..<g.batch {
            for oc in 0..<g.outChannels {
                let gi = oc / coutG
                for oh in 0..<g.outH {
                    for ow in 0..<g.outW {
                        var acc: Float = bp?[oc] ?? 0
                        for ci in 0..<cinG {
                            let c = gi * cinG + ci
                            for i in 0..<g.kH {
                                let ih = oh * g.strideH - g.padTop + i * g.dilH
                                if ih < 0 || ih >= g.inH { continue }
                                for j in 0..<g.kW {
                                    let iw = ow * g.strideW - g.padLeft + j * g.dilW
                                    if iw < 0 || iw >= g.inW { continue }
                                    acc += xp[((n * g.inChannels + c) * g.inH + ih) * g.inW + iw]
                                        * wp[((oc * cinG + ci) * g.kH + i) * g.kW + j]
                                }
                            }
                        }
                        out[o] = acc
                        o += 1
                    }
                }
            }
        }
    }
}
