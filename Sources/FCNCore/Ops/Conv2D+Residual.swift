// conv2d with a residual added before the ReLU: the last convolution of a ResNet block at
// inference, `relu(conv(x) + bias + residual)`, in one write-back where the algorithm allows.
//
// Contract: equals `relu(conv2d(x, weight: weight, bias: bias, ...) + residual)` (without the
// ReLU when `fusedReLU` is false) up to float rounding: the GEMM forms add the residual
// before the bias (`alpha * sum + beta * C`, then the bias), the composition after it.
// How: when the one algorithm choice picks a GEMM form (`pointwiseGEMM`, `implicitGEMM`: the
// 1x1 convolutions that end every Bottleneck), the output is first a copy of the residual
// and the GEMM adds its product to it (beta 1) with bias and ReLU in the same write-back:
// one pass over the output instead of three (write, add, ReLU). Other algorithms compute the
// convolution, then add the residual and apply the ReLU in one pass. A recorded call
// (training) is the composition of the recorded ops, so gradients are those of the parts.

/// `relu(conv2d(x, ...) + residual)` (`fusedReLU` false: no ReLU) with `residual` of the
/// convolution's output shape `[N, Cout, outH, outW]`; see the file contract. Arguments
/// as `conv2d(_:weight:bias:stride:padding:dilation:groups:fusedReLU:)`.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Padding = 0,
                   dilation: Size2 = 1, groups: Int = 1, residual: Tensor, fusedReLU: Bool) -> Tensor {
    let recording = GradMode.isEnabled && (x.requiresGrad || weight.requiresGrad || bias?.requiresGrad == true
        || residual.requiresGrad)
    if recording {
        let y = conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                       groups: groups) + residual
        return fusedReLU ? relu(y) : y
    }
    let kind = weight.rank == 4
        ? convKind("conv2d", kernel: (weight.shape[2], weight.shape[3]), stride: stride, dilation: dilation, groups: groups)
        : "conv2d"
    return profiledOp(kind) {
        let g = conv2dGeometry(op: "conv2d", input: x.shape, weight: weight.shape, bias: bias?.shape,
                               stride: stride, padding: padding, dilation: dilation, groups: groups)
        let outShape = [g.batch, g.outChannels, g.outH, g.outW]
        fcnCheck(residual.shape == outShape, "conv2d",
                 "residual \(residual.shape) must have the output's shape \(outShape) (input \(x.shape), weight \(weight.shape))")
        let algorithm = g.algorithm(for: .forward, mode: .conv2d(x: x, weight: weight, bias: bias))
        switch algorithm {
        case .pointwiseGEMM(let cachedA), .implicitGEMM(let cachedA):
            var pointwise = false
            if case .pointwiseGEMM = algorithm { pointwise = true }
            return Tensor.make(shape: outShape) { out in
                let io = UncheckedSendable((out.baseAddress!, UnsafePointer(residual.storage.pointer)))
                parallelChunks(out.count, minChunk: 1 << 16) { r in
                    (io.value.0 + r.lowerBound).update(from: io.value.1 + r.lowerBound, count: r.count)
                }
                convForwardImplicitGEMM(g, x: x.storage.pointer, w: weight.storage.pointer,
                                        bias: bias.map { UnsafePointer($0.storage.pointer) }, y: out.baseAddress!,
                                        relu: fusedReLU, pointwise: pointwise, cachedA: cachedA, accumulate: true)
            }
        default:
            var y = conv2d(x, weight: weight, bias: bias, geometry: g, fusedReLU: false, algorithm: algorithm)
            let r = UncheckedSendable(residual.storage.pointer)
            y.withUnsafeMutableBufferPointer { out in
                let o = UncheckedSendable(out.baseAddress!)
                parallelChunks(out.count, minChunk: 1 << 16) { range in
                    for i in range {
                        let v = o.value[i] + r.value[i]
                        o.value[i] = fusedReLU && !(v > 0) && !v.isNaN ? 0 : v
                    }
                }
            }
            return y
        }
    }
}
