// Activations against PyTorch (fixtures from Fixtures/gen_act.py) and finite differences.
//
// Fixture idea (gen_act.py):
//   x = randn(shape) * scale; x.view(-1)[::5] = 0   # exact zeros at the relu kink
//   y = F.relu(x) | F.leaky_relu(x, slope) | torch.sigmoid(x) | torch.tanh(x)
//   y.backward(grad_out); store x, y, grad_out, x.grad
// 132 cases: 22 shapes (batch 1-6, channels 1, 3, 5, 17, 21, odd spatial sizes) for each
// of relu, leaky_relu (slopes 0.01, 0.2, 1.5), sigmoid and tanh (scales 1 to 1e4).
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct ActivationTests {
    static func apply(_ c: FixtureCase, _ x: Tensor) -> Tensor {
        switch c.string("op") {
        case "relu": return relu(x)
        case "leaky_relu": return leakyRelu(x, negativeSlope: Float(c.double("slope")))
        case "sigmoid": return sigmoid(x)
        default: return tanh(x)
        }
    }

    // Tolerance 1e-6: one libm rounding (expf/tanhf) per element; relu is exact.
    @Test(arguments: loadFixture("act"))
    func forwardAndBackwardMatchPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x").requiringGrad()
        let y = Self.apply(c, x)
        expectClose(y, c.tensor("y"), tolerance: 1e-6, "\(c) forward")
        y.backward(gradient: c.tensor("grad_out"))
        expectClose(x.grad!, c.tensor("grad_x"), tolerance: 1e-6, "\(c) grad_x")
    }

    @Test func methodFormsEqualFreeFunctions() {
        let x = Tensor.randn([2, 3, 4, 5], seed: 3)
        #expect(x.relu().scalars == relu(x).scalars)
        #expect(x.leakyRelu(negativeSlope: 0.3).scalars == leakyRelu(x, negativeSlope: 0.3).scalars)
        #expect(x.leakyRelu().scalars == leakyRelu(x, negativeSlope: 0.01).scalars)
        #expect(x.sigmoid().scalars == sigmoid(x).scalars)
        #expect(x.tanh().scalars == tanh(x).scalars)
        // The example of the Tensor doc comment.
        #expect(relu(Tensor(shape: [4], scalars: [-1, 0, 2, -3])).scalars == [0, 0, 2, 0])
    }

    @Test func sigmoidIsStableForLargeInputs() {
        let x = Tensor(shape: [7], scalars: [-1e4, -200, -20, 0, 20, 200, 1e4])
        let y = sigmoid(x).scalars
        #expect(y.allSatisfy { $0.isFinite })
        #expect(y[0] == 0 && y[1] == 0 && y[3] == 0.5 && y[5] == 1 && y[6] == 1)
        #expect(abs(y[2] - 2.0611537e-9) < 1e-15)
        let t = tanh(x).scalars
        #expect(t[0] == -1 && t[6] == 1 && t[3] == 0)
    }

    @Test func gradientAtExactlyZero() {
        let x = Tensor(shape: [3], scalars: [-1, 0, 1]).requiringGrad()
        relu(x).backward(gradient: Tensor.ones([3]))
        #expect(x.grad!.scalars == [0, 0, 1])          // PyTorch: relu'(0) = 0
        let z = Tensor(shape: [3], scalars: [-1, 0, 1]).requiringGrad()
        leakyRelu(z, negativeSlope: 0.25).backward(gradient: Tensor.ones([3]))
        #expect(z.grad!.scalars == [0.25, 0.25, 1])    // PyTorch: slope at 0
    }

    @Test func noGraphUnderWithoutGrad() {
        let x = Tensor.randn([4], seed: 1).requiringGrad()
        #expect(relu(x).requiresGrad)
        #expect(!withoutGrad { sigmoid(x) }.requiresGrad)
    }

    // Large tensors take the multi-threaded path; it must equal the single-chunk result.
    @Test func parallelPathMatchesElementwise() {
        let x = Tensor.randn([3, 7, 61, 67], seed: 11)
        let xs = x.scalars
        let y = sigmoid(x).scalars, r = relu(x).scalars
        for i in stride(from: 0, to: xs.count, by: 97) {
            let v = xs[i]
            let ref = v >= 0 ? 1 / (1 + expf(-v)) : expf(v) / (1 + expf(v))
            #expect(y[i] == ref)
            #expect(r[i] == max(v, 0))
        }
    }

    /// Random inputs kept at least 0.2 away from 0 (the kink of relu and leakyRelu).
    static func awayFromZero(_ shape: [Int], seed: UInt64) -> Tensor {
        var x = Tensor.randn(shape, seed: seed)
        x.withUnsafeMutableBufferPointer { b in for i in 0..<b.count where abs(b[i]) < 0.2 { b[i] = b[i] < 0 ? -0.5 : 0.5 } }
        return x
    }

    // Central differences, eps 1e-3 (|x| >= 0.2 keeps relu off its kink); float32 outputs
    // in a Double-accumulated loss: tolerance 5e-4 (observed <= 7e-5).
    @Test(arguments: ["relu", "leaky", "sigmoid", "tanh"])
    func finiteDifferences(_ op: String) {
        let x = Self.awayFromZero([2, 3, 4, 5], seed: 5)
        gradientCheck([x], eps: 1e-3, tolerance: 5e-4, op) { xs in
            switch op {
            case "relu": return relu(xs[0])
            case "leaky": return leakyRelu(xs[0], negativeSlope: 0.2)
            case "sigmoid": return sigmoid(xs[0])
            default: return tanh(xs[0])
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
