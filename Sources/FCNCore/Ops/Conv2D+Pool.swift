// conv2d + ReLU + 2x2 stride-2 max pool in one pass: the end of each VGG16 stage at inference.
//
// Contract: the same values, bit for bit, as
// `maxPool2d(conv2d(x, weight, bias, padding, fusedReLU: true), kernel: 2, stride: 2, ceilMode)`.
// When nothing records a gradient and the convolution runs as Winograd F(2x2, 3x3)
// (Convolution/ConvWinogradF2x2.swift), its 2x2 output tiles are exactly the pool windows, so the output
// transform writes each window's maximum and the convolution's output is never stored
// (conv1_2 of a 500 x 500 FCN: 125 MB, the largest activation of the forward pass). In
// every other case (training, other geometries, small batched images) the two ops run one
// after the other.

/// `maxPool2d(conv2d(x, weight:, bias:, padding:, fusedReLU: true), kernel: 2, stride: 2,
/// ceilMode:)` for a stride-1, dilation-1, one-group convolution, fused at inference (see
/// the file contract). x `[N, Cin, H, W]` -> `[N, Cout, pooled H, pooled W]`.
package func conv2dReLUMaxPool2(_ x: Tensor, weight: Tensor, bias: Tensor?, padding: Padding, ceilMode: Bool) -> Tensor {
    let g = conv2dGeometry(op: "conv2d", input: x.shape, weight: weight.shape, bias: bias?.shape, stride: 1,
                           padding: padding, dilation: 1, groups: 1)
    let recording = GradMode.isEnabled && (x.requiresGrad || weight.requiresGrad || bias?.requiresGrad == true)
    let ph = ceilMode ? (g.outH + 1) / 2 : g.outH / 2, pw = ceilMode ? (g.outW + 1) / 2 : g.outW / 2
    guard !recording, g.usesWinograd, g.batchedImages == 0, ph >= 1, pw >= 1 else {
        return maxPool2d(conv2d(x, weight: weight, bias: bias, padding: padding, fusedReLU: true),
                         kernel: 2, stride: 2, ceilMode: ceilMode)
    }
    let cache = WeightCache.current
    return Tensor.make(shape: [g.batch, g.outChannels, ph, pw]) { out in
        convForwardWinograd(g, x: x.storage.pointer, w: weight.storage.pointer,
                            bias: bias.map { UnsafePointer($0.storage.pointer) }, y: out.baseAddress!, relu: true,
                            pool: (ph, pw), weightStorage: cache.applies(to: weight) ? weight.storage : nil,
                            weightCache: cache)
    }
}
