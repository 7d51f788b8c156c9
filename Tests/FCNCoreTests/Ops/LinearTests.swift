// linear against PyTorch (Fixtures/gen_act.py) and finite differences.
//
// Fixture idea (gen_act.py):
//   y = F.linear(x.movedim(axis, -1), w, b).movedim(-1, axis); y.backward(grad_out)
// 22 cases: axes -1, -2, 0, 1, 2, 3; in/out features 1 to 31; with and without bias.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct LinearTests {
    // Tolerance 1e-5: float32 dot products of up to 31 terms in a different order.
    @Test(arguments: loadFixture("linear"))
    func forwardAndBackwardMatchPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x").requiringGrad(), w = c.tensor("weight").requiringGrad()
        let b = c.bool("bias") ? c.tensor("bias").requiringGrad() : nil
        let y = linear(x, weight: w, bias: b, axis: c.int("axis"))
        expectClose(y, c.tensor("y"), tolerance: 1e-5, "\(c) forward")
        y.backward(gradient: c.tensor("grad_out"))
        expectClose(x.grad!, c.tensor("grad_x"), tolerance: 1e-5, "\(c) grad_x")
        expectClose(w.grad!, c.tensor("grad_weight"), tolerance: 1e-5, "\(c) grad_weight")
        if let b { expectClose(b.grad!, c.tensor("grad_bias"), tolerance: 1e-5, "\(c) grad_bias") }
    }

    @Test func channelAxisIsAPerPixelDenseLayer() {
        let x = Tensor.randn([2, 3, 4, 5], seed: 1), w = Tensor.randn([6, 3], seed: 2), b = Tensor.randn([6], seed: 3)
        let y = linear(x, weight: w, bias: b, axis: 1)
        #expect(y.shape == [2, 6, 4, 5])
        for n in 0..<2 { for o in 0..<6 { for i in 0..<4 { for j in 0..<5 {
            var s = b[o]
            for c in 0..<3 { s += w[o, c] * x[n, c, i, j] }
            #expect(abs(y[n, o, i, j] - s) < 1e-5)
        } } } }
    }

    // Central differences, eps 1e-2 (linear: exact up to float rounding), tolerance 5e-4 (observed <= 2e-5).
    @Test(arguments: [([3, 4], -1), ([2, 3, 2, 3], 1), ([2, 3, 4], 0)])
    func finiteDifferences(_ shape: [Int], _ axis: Int) {
        let fin = shape[axis < 0 ? axis + shape.count : axis]
        let x = Tensor.randn(shape, seed: 1), w = Tensor.randn([5, fin], seed: 2), b = Tensor.randn([5], seed: 3)
        gradientCheck([x, w, b], eps: 1e-2, tolerance: 5e-4, "linear \(shape) axis \(axis)") {
            linear($0[0], weight: $0[1], bias: $0[2], axis: axis)
        }
        gradientCheck([x, w], eps: 1e-2, tolerance: 5e-4, "linear no bias \(shape) axis \(axis)") {
            linear($0[0], weight: $0[1], axis: axis)
        }
    }

    @Test func inFeaturesMismatchNamesTheOp() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = linear(Tensor.zeros([2, 3, 4, 4]), weight: Tensor.zeros([8, 5]), axis: 1)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("linear: input of shape [2, 3, 4, 4] has 3 features on axis 1 but weight [8, 5] expects 5"))
    }
}
