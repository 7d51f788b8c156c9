// conv2d with a residual added before the ReLU (Ops/Conv2D+Residual.swift).
//
// At inference the GEMM forms add the residual in their write-back (beta 1) and the other
// algorithms in one pass after the convolution; both must equal relu(conv2d(...) + r) up
// to the reordered rounding (1e-5 relative to max(1, max |expected|), as the conv tests).
// A recorded call must give the composition's values and gradients exactly. A residual of
// the wrong shape is refused with the shapes named.
@testable import FCNCore
import FCNTestSupport
import Testing

@Suite struct Conv2DResidualTests {
    /// (input, weight, padding, with cache): pointwise GEMM, implicit GEMM (5x5), Winograd
    /// (3x3, 64 channels), each with and without the packed-weight cache.
    @Test(arguments: [
        ([2, 16, 9, 7], [24, 16, 1, 1], 0, true), ([1, 5, 11, 10], [7, 5, 5, 5], 2, true), ([1, 64, 16, 18], [64, 64, 3, 3], 1, true),
        ([2, 16, 9, 7], [24, 16, 1, 1], 0, false), ([1, 5, 11, 10], [7, 5, 5, 5], 2, false), ([1, 64, 16, 18], [64, 64, 3, 3], 1, false),
    ])
    func equalsTheComposition(_ xs: [Int], _ ws: [Int], _ pad: Int, _ cached: Bool) {
        let x = Tensor.randn(xs, seed: 51), w = Tensor.randn(ws, seed: 52), b = Tensor.randn([ws[0]], seed: 53)
        let out = conv2dReference(x, weight: w, bias: b, padding: .symmetric(pad))
        let r = Tensor.randn(out.shape, seed: 54)
        let cache = cached ? WeightCache(limitBytes: 64 << 20) : .disabled
        for relu in [true, false] {
            let want = relu ? (out + r).relu() : out + r
            for call in 0..<2 {
                let got = WeightCache.$current.withValue(cache) {
                    withoutGrad { conv2d(x, weight: w, bias: b, padding: .symmetric(pad), residual: r, fusedReLU: relu) }
                }
                expectClose(got, want, tolerance: 1e-5, "\(ws) cached \(cached) relu \(relu) call \(call)")
            }
        }
    }

    @Test func recordedCallHasTheCompositionsGradients() {
        let x = Tensor.randn([1, 6, 8, 8], seed: 61).requiringGrad(), w = Tensor.randn([6, 6, 1, 1], seed: 62).requiringGrad()
        let r = Tensor.randn([1, 6, 8, 8], seed: 63).requiringGrad()
        let fused = conv2d(x, weight: w, residual: r, fusedReLU: true)
        fused.sum().backward()
        let (gx, gw, gr) = (x.grad!, w.grad!, r.grad!)
        let x2 = x.detached().requiringGrad(), w2 = w.detached().requiringGrad(), r2 = r.detached().requiringGrad()
        let plain = (conv2d(x2, weight: w2) + r2).relu()
        plain.sum().backward()
        #expect(fused.scalars == plain.scalars)
        #expect(gx.scalars == x2.grad!.scalars && gw.scalars == w2.grad!.scalars && gr.scalars == r2.grad!.scalars)
    }

    @Test func refusesAResidualOfAnotherShape() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor.randn([1, 4, 6, 6], seed: 71), w = Tensor.randn([8, 4, 1, 1], seed: 72)
            _ = withoutGrad { conv2d(x, weight: w, residual: Tensor.zeros([1, 4, 6, 6]), fusedReLU: true) }
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("conv2d: residual [1, 4, 6, 6] must have the output's shape [1, 8, 6, 6]"), "\(text)")
    }
}
