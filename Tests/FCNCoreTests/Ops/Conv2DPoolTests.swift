// conv2d + ReLU + 2x2 stride-2 max pool fused at inference (Ops/Conv2D+Pool.swift, the
// pooled Winograd output transform in CFCNKernels/winograd.c).
//
// The fused result must equal maxPool2d(conv2d(..., fusedReLU: true)) bit for bit: the same
// Winograd sums, then the maximum of the same values. Checked on every ISA path with whole
// and one-panel chunks (a chunk then starts mid-row of tiles), for even and odd output
// sizes (the last window of an odd size holds one row or column), ceil and floor mode,
// asymmetric padding and batches; through the public path with and without a recorded
// gradient (which must fall back and still give gradients).
@testable import FCNCore
import FCNTestSupport
import Testing

@Suite struct Conv2DPoolTests {
    /// (input [N, C, H, W], output channels, padding, ceil mode)
    @Test(arguments: [
        ([1, 5, 9, 11], 7, Padding.symmetric(1), true),          // 9x11: odd, ceil keeps the last row/column
        ([1, 5, 9, 11], 7, Padding.symmetric(1), false),         // floor drops them
        ([2, 3, 10, 8], 17, Padding.symmetric(1), true),         // even sizes, batch 2
        ([1, 4, 7, 6], 3, Padding.explicit(top: 2, bottom: 0, left: 0, right: 1), true),  // 7x5
        ([1, 2, 3, 3], 2, Padding.symmetric(0), true),           // a single 1x1 output
    ])
    func pooledTransformMatchesUnfusedOnEveryPath(_ xs: [Int], _ cout: Int, _ padding: Padding, _ ceil: Bool) {
        let x = Tensor.randn(xs, seed: 1), w = Tensor.randn([cout, xs[1], 3, 3], seed: 2), b = Tensor.randn([cout], seed: 3)
        var g = conv2dGeometry(op: "test", input: xs, weight: w.shape, bias: [cout], stride: 1, padding: padding,
                               dilation: 1, groups: 1)
        g.winograd = .always
        let ph = ceil ? (g.outH + 1) / 2 : g.outH / 2, pw = ceil ? (g.outW + 1) / 2 : g.outW / 2
        for isa in GEMMConfig.availableISAs {
            let nr = isa.kernelShape!.nr
            for chunk in [winogradChunkFloats, 16 * (xs[1] + cout) * nr] {
                let plain = Tensor.make(shape: [g.batch, cout, g.outH, g.outW]) {
                    convForwardWinograd(g, x: x.storage.pointer, w: w.storage.pointer, bias: b.storage.pointer,
                                        y: $0.baseAddress!, relu: true, isa: isa, chunkFloats: chunk)
                }
                let expected = maxPool2d(plain, kernel: 2, stride: 2, ceilMode: ceil)
                let fused = Tensor.make(shape: [g.batch, cout, ph, pw]) {
                    $0.initialize(repeating: .nan)
                    convForwardWinograd(g, x: x.storage.pointer, w: w.storage.pointer, bias: b.storage.pointer,
                                        y: $0.baseAddress!, relu: true, pool: (ph, pw), isa: isa, chunkFloats: chunk)
                }
                #expect(fused.shape == expected.shape)
                let same = fused.scalars == expected.scalars
                #expect(same, "\(xs) \(padding) ceil \(ceil) \(isa) chunk \(chunk)")
            }
        }
    }

    /// The public path: fused at inference (64 channels, enough tiles for Winograd), and with
    /// a recorded gradient the unfused ops (same values, gradients flow).
    /// (No cache serves the weight here, so inference stays on F(2x2) like the recorded ops;
    /// ConvWinogradF4Tests covers the F(4x4) fusion.)
    @Test func fusedAtInferenceAndUnfusedWhenRecording() {
        WeightCache.$current.withValue(.disabled) { fusedAtInferenceAndUnfusedWhenRecordingBody() }
    }

    private func fusedAtInferenceAndUnfusedWhenRecordingBody() {
        let x = Tensor.randn([1, 64, 17, 19], seed: 4), b = Tensor.randn([64], seed: 6)
        let w = (Tensor.randn([64, 64, 3, 3], seed: 5) * 0.05).requiringGrad()
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b.shape, stride: 1, padding: 1,
                               dilation: 1, groups: 1)
        #expect(g.usesWinograd == winogradEnabled)
        let unfused = withoutGrad { maxPool2d(conv2d(x, weight: w, bias: b, padding: 1, fusedReLU: true), kernel: 2, stride: 2, ceilMode: true) }
        let fused = withoutGrad { conv2dReLUMaxPool2(x, weight: w, bias: b, padding: 1, ceilMode: true) }
        #expect(fused.shape == [1, 64, 9, 10])
        let same = fused.scalars == unfused.scalars
        #expect(same, "fused at inference")
        let recorded = conv2dReLUMaxPool2(x, weight: w, bias: b, padding: 1, ceilMode: true)
        let sameRecorded = recorded.scalars == unfused.scalars
        #expect(sameRecorded, "unfused while recording")
        recorded.sum().backward()
        let gw = w.grad
        #expect(gw != nil && gw!.shape == w.shape && gw!.scalars.contains { $0 != 0 }, "the weight gets a gradient")
    }
}
