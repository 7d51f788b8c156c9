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
        let ph = ceilMode ? (g.outH + 1) / 2 : g.outH / 2, pw = ceilMode ? (g.outW + 1) / 2 : g.outW / 2
        let mode = ConvMode.conv2d(x: x, weight: weight, bias: bias, poolFollows: ph >= 1 && pw >= 1)
        let algorithm = g.algorithm(for: .forward, mode: mode)
        if case .winogradF4x4ReLUPool(let cachedWeight) = algorithm {
            return Tensor.make(shape: [g.batch, g.outChannels, ph, pw]) { out in
                convForwardWinograd(g, x: x.storage.pointer, w: weight.storage.pointer,
                                    bias: bias.map { UnsafePointer($0.storage.pointer) }, y: out.baseAddress!, relu: true,
                                    pool: (ph, pw), tile: 4, cachedWeight: cachedWeight, isa: cachedWeight.isa)
            }
        }
        guard case .winogradF2x2ReLUPool(let cachedWeight) = algorithm else {
            return maxPool2d(conv2d(x, weight: weight, bias: bias, geometry: g, fusedReLU: true, algorithm: algorithm),
                             kernel: 2, stride: 2, ceilMode: ceilMode)
        }
        return Tensor.make(shape: [g.batch, g.outChannels, ph, pw]) { out in
            convForwardWinograd(g, x: x.storage.pointer, w: weight.storage.pointer,
                                bias: bias.map { UnsafePointer($0.storage.pointer) }, y: out.baseAddress!, relu: true,
                                pool: (ph, pw), cachedWeight: cachedWeight,
                                isa: cachedWeight?.isa ?? GEMMConfig.defaultISA)
        }
    }
}
