// conv2d + ReLU + 2x2 stride-2 max pool in one pass: the end of each VGG16 stage at inference.
//
// Contract: the same values, bit for bit, as
// `maxPool2d(conv2d(x, weight, bias, padding, fusedReLU: true), kernel: 2, stride: 2, ceilMode)`.
// When `ConvGeometry.algorithm(for:mode:)` picks `winogradF2x2ReLUPool` (rule 1: nothing
// records a gradient and the convolution runs as Winograd F(2x2, 3x3), whose 2x2 output
// tiles are exactly the pool windows), the output transform writes each window's maximum
// and the convolution's output (the largest activation of a VGG forward) is never stored.
// Otherwise (training, other geometries, small batched images) the two ops run one after
// the other, the convolution by the algorithm chosen for it.

/// `maxPool2d(conv2d(x, weight:, bias:, padding:, fusedReLU: true), kernel: 2, stride: 2,
/// ceilMode:)` for a stride-1, dilation-1, one-group convolution, fused at inference (see
/// the file contract). x `[N, Cin, H, W]` -> `[N, Cout, pooled H, pooled W]`.
package func conv2dReLUMaxPool2(_ x: Tensor, weight: Tensor, bias: Tensor?, padding: Padding, ceilMode: Bool) -> Tensor {
    profiledOp(weight.rank == 4 ? convKind("conv2d", kernel: (weight.shape[2], weight.shape[3]), stride: 1, dilation: 1) + " + maxPool2d 2x2" : "conv2d") {
        let g = conv2dGeometry(op: "conv2d", input: x.shape, weight: weight.shape, bias: bias?.shape, stride: 1,
                               padding: padding, dilation: 1, groups: 1)
        let mode = ConvMode.conv2d(x: x, weight: weight, bias: bias, poolFollows: poolFollows(g, ceilMode: ceilMode))
        return conv2dReLUMaxPool2(x, weight: weight, bias: bias, geometry: g, ceilMode: ceilMode,
                                  algorithm: g.algorithm(for: .forward, mode: mode))
    }
}

/// Whether the pool of `g`'s output has at least one row and column.
private func poolFollows(_ g: ConvGeometry, ceilMode: Bool) -> Bool {
    (ceilMode ? (g.outH + 1) / 2 : g.outH / 2) >= 1 && (ceilMode ? (g.outW + 1) / 2 : g.outW / 2) >= 1
}

/// `conv2dReLUMaxPool2` on its checked geometry `g` by `algorithm`, the choice for the whole
/// op. A constant margin (rule 0) runs fused when nothing is recorded (the cut input by the
/// fused op), else as conv2d's margin form and then the pool.
func conv2dReLUMaxPool2(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, ceilMode: Bool,
                        algorithm: ConvAlgorithm) -> Tensor {
    let ph = ceilMode ? (g.outH + 1) / 2 : g.outH / 2, pw = ceilMode ? (g.outW + 1) / 2 : g.outW / 2
    switch algorithm {
    case .constantMargin:
        var mode = ConvMode.conv2d(x: x, weight: weight, bias: bias, poolFollows: poolFollows(g, ceilMode: ceilMode))
        mode.marginScanned = true
        if mode.recording || !mode.poolFollows {
            return maxPool2d(conv2d(x, weight: weight, bias: bias, geometry: g, fusedReLU: true, algorithm: algorithm),
                             kernel: 2, stride: 2, ceilMode: ceilMode)
        }
        if let y = convForwardMargin(g, x: x, weight: weight, bias: bias, relu: true, cachedWeight: mode.cachedWeight,
                                     pool: ceilMode) {
            return y
        }
        return conv2dReLUMaxPool2(x, weight: weight, bias: bias, geometry: g, ceilMode: ceilMode,
                                  algorithm: g.algorithm(for: .forward, mode: mode))
    case .winogradF4x4ReLUPool(let cachedWeight):
        return Tensor.make(shape: [g.batch, g.outChannels, ph, pw]) { out in
            convForwardWinograd(g, x: x.storage.pointer, w: weight.storage.pointer,
                                bias: bias.map { UnsafePointer($0.storage.pointer) }, y: out.baseAddress!, relu: true,
                                pool: (ph, pw), tile: 4, cachedWeight: cachedWeight, isa: cachedWeight.isa)
        }
    case .winogradF2x2ReLUPool(let cachedWeight):
        return Tensor.make(shape: [g.batch, g.outChannels, ph, pw]) { out in
            convForwardWinograd(g, x: x.storage.pointer, w: weight.storage.pointer,
                                bias: bias.map { UnsafePointer($0.storage.pointer) }, y: out.baseAddress!, relu: true,
                                pool: (ph, pw), cachedWeight: cachedWeight,
                                isa: cachedWeight?.isa ?? GEMMConfig.defaultISA)
        }
    default:
        return maxPool2d(conv2d(x, weight: weight, bias: bias, geometry: g, fusedReLU: true, algorithm: algorithm),
                         kernel: 2, stride: 2, ceilMode: ceilMode)
    }
}
