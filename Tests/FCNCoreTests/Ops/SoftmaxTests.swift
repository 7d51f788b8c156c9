// softmax / logSoftmax against PyTorch (Fixtures/gen_act.py) and finite differences.
//
// Fixture idea (gen_act.py):
//   x = randn(shape) * scale (scale 1, 5, 1e4);  y = F.softmax(x, dim=axis) | F.log_softmax(x, dim=axis)
//   y.backward(grad_out); store x, y, grad_out, x.grad
// 44 cases: 22 shapes x {softmax, logSoftmax}, axes 1, -1 and 0, logits up to 1e4.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct SoftmaxTests {
    // Tolerance 2e-6 relative to max(1, max|y|): exp/log roundings and an n-term float sum.
    // Gradients 1e-5, or 1e-4 for logits of magnitude 1e4: there x - logsumexp is exact
    // only to ulp(1e4) ~ 1e-3 absolute, which exp(y) in the log-softmax backward inherits.
    @Test(arguments: loadFixture("softmax"))
    func forwardAndBackwardMatchPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x").requiringGrad()
        let axis = c.int("axis")
        let y = c.bool("log") ? logSoftmax(x, axis: axis) : softmax(x, axis: axis)
        expectClose(y, c.tensor("y"), tolerance: 2e-6, "\(c) forward")
        #expect(y.scalars.allSatisfy { $0.isFinite }, "\(c): non-finite output")
        y.backward(gradient: c.tensor("grad_out"))
        expectClose(x.grad!, c.tensor("grad_x"), tolerance: c.double("scale") > 100 ? 1e-4 : 1e-5, "\(c) grad_x")
    }

    // The blocked kernel (several 512-wide blocks, multi-threaded above 32768 elements)
    // equals the naive one-distribution-at-a-time reference with Double sums.
    @Test(arguments: [([2, 21, 37, 41], 1), ([3, 1000], -1), ([5, 4, 3], 0), ([1, 5, 700], 1), ([2, 3, 130, 130], 2)])
    func blockedKernelMatchesReference(_ shape: [Int], _ axis: Int) {
        let x = Tensor.randn(shape, std: 3, seed: 9)
        expectClose(softmax(x, axis: axis), softmaxReference(x, axis: axis, log: false), tolerance: 1e-6, "softmax \(shape)")
        expectClose(logSoftmax(x, axis: axis), softmaxReference(x, axis: axis, log: true), tolerance: 1e-6, "logSoftmax \(shape)")
    }

    @Test func largeLogitsStayFinite() {
        // Logits of magnitude 1e4: exp would overflow without the max subtraction.
        let x = Tensor(shape: [1, 3, 1, 2], scalars: [1e4, -1e4, 9990, 0, -1e4, 1e4])
        let y = softmax(x).scalars, l = logSoftmax(x).scalars
        #expect(y.allSatisfy { $0.isFinite } && l.allSatisfy { $0.isFinite })
        #expect(abs(y[0] - 0.9999546) < 1e-6 && abs(y[2] - 4.539787e-5) < 1e-9)
        #expect(y[5] == 1 && y[1] == 0)
        #expect(abs(l[2] - (-10.0000454)) < 1e-3 && l[3] == -1e4 && l[1] == -2e4)
    }

    @Test func softmaxSumsToOneOverTheChosenAxis() {
        let x = Tensor.randn([2, 5, 3, 4], seed: 2)
        let y = softmax(x, axis: 1)
        for n in 0..<2 { for h in 0..<3 { for w in 0..<4 {
            var s: Float = 0
            for c in 0..<5 { s += y[n, c, h, w] }
            #expect(abs(s - 1) < 1e-6)
        } } }
    }

    // Central differences, eps 1e-2 on smooth functions, tolerance 5e-4 (observed <= 3e-5).
    @Test(arguments: [1, -1, 0])
    func finiteDifferences(_ axis: Int) {
        let x = Tensor.randn([2, 4, 3, 3], seed: 4)
        gradientCheck([x], eps: 1e-2, tolerance: 5e-4, "softmax axis \(axis)") { softmax($0[0], axis: axis) }
        gradientCheck([x], eps: 1e-2, tolerance: 5e-4, "logSoftmax axis \(axis)") { logSoftmax($0[0], axis: axis) }
    }

    @Test func badAxisNamesTheOp() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = softmax(Tensor.zeros([2, 3]), axis: 2)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("softmax: axis 2 is out of range for a tensor of shape [2, 3]"))
    }
}
