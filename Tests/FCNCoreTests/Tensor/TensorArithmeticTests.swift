// Element-wise arithmetic against PyTorch (fixtures from Fixtures/gen_tensor.py):
//   a, b = randn(sa), randn(sb); out = op(a, b); out.backward(grad_out)
//   -> a, b, out, grad_out, grad_a, grad_b for 24 broadcast shape pairs x 6 ops, plus
//   integer-valued (tied) operands for maximum/minimum, scalar ops and unary functions.
// Tolerance 1e-5 relative to the output scale: one float op per element (exp/log/pow
// differ from PyTorch's vectorised libm by a few ulp).
import Testing
@testable import FCNCore
import FCNTestSupport

/// Runs `f` on leaves made from `inputs`, back-propagates `gradOut`; returns out and grads.
func tensorOpsRun(_ inputs: [Tensor], gradOut: Tensor, _ f: ([Tensor]) -> Tensor) -> (Tensor, [Tensor?]) {
    let leaves = inputs.map { $0.requiringGrad() }
    let out = f(leaves)
    out.backward(gradient: gradOut)
    return (out.detached(), leaves.map(\.grad))
}

@Suite struct TensorArithmeticTests {
    static func binary(_ op: String, _ a: Tensor, _ b: Tensor) -> Tensor {
        switch op {
        case "add": return a + b
        case "sub": return a - b
        case "mul": return a * b
        case "div": return a / b
        case "maximum": return maximum(a, b)
        case "minimum": return minimum(a, b)
        default: fatalError(op)
        }
    }

    @Test(arguments: loadFixture("tensor_binary"))
    func binaryMatchesPyTorch(_ c: FixtureCase) {
        let op = c.string("op")
        let (out, grads) = tensorOpsRun([c.tensor("a"), c.tensor("b")], gradOut: c.tensor("grad_out")) {
            Self.binary(op, $0[0], $0[1])
        }
        expectClose(out, c.tensor("out"), tolerance: 1e-6, "\(c) out")
        if c.tensor("out").count > 0 {
            expectClose(grads[0]!, c.tensor("grad_a"), tolerance: 1e-5, "\(c) grad_a")
            expectClose(grads[1]!, c.tensor("grad_b"), tolerance: 1e-5, "\(c) grad_b")
        }
    }

    @Test(arguments: loadFixture("tensor_scalar"))
    func scalarMatchesPyTorch(_ c: FixtureCase) {
        let op = c.string("op"), left = c.string("side") == "left", s = Float(c.double("scalar"))
        let (out, grads) = tensorOpsRun([c.tensor("x")], gradOut: c.tensor("grad_out")) { xs in
            let x = xs[0]
            switch (op, left) {
            case ("add", true): return s + x
            case ("add", false): return x + s
            case ("sub", true): return s - x
            case ("sub", false): return x - s
            case ("mul", true): return s * x
            case ("mul", false): return x * s
            case ("div", true): return s / x
            default: return x / s
            }
        }
        expectClose(out, c.tensor("out"), tolerance: 1e-6, "\(c) out")
        expectClose(grads[0]!, c.tensor("grad_x"), tolerance: 1e-6, "\(c) grad_x")
    }

    static func unary(_ c: FixtureCase, _ x: Tensor) -> Tensor {
        switch c.string("op") {
        case "neg": return -x
        case "exp": return x.exp()
        case "log": return x.log()
        case "sqrt": return x.sqrt()
        case "square": return x.squared()
        case "abs": return x.abs()
        case "pow": return x.pow(Float(c.double("p")))
        case "clamp":
            let lo = c.value("min") == nil ? nil : Float(c.double("min"))
            let hi = c.value("max") == nil ? nil : Float(c.double("max"))
            return x.clamped(min: lo, max: hi)
        default: fatalError(c.string("op"))
        }
    }

    @Test(arguments: loadFixture("tensor_unary"))
    func unaryMatchesPyTorch(_ c: FixtureCase) {
        let (out, grads) = tensorOpsRun([c.tensor("x")], gradOut: c.tensor("grad_out")) { Self.unary(c, $0[0]) }
        expectClose(out, c.tensor("out"), tolerance: 1e-5, "\(c) out")
        expectClose(grads[0]!, c.tensor("grad_x"), tolerance: 1e-5, "\(c) grad_x")
    }

    // Finite differences on small shapes, smooth regions only (positive inputs for log,
    // sqrt and fractional powers; maximum/minimum/abs/clamp away from kinks). eps 1e-2 in
    // float: truncation + rounding about 1e-3 of the gradient scale.
    @Test func binaryGradientsMatchFiniteDifferences() {
        let a = Tensor.randn([2, 3, 1, 4], seed: 1), b = Tensor.randn([3, 5, 1], seed: 2)
        let bPos = b.abs() + 0.5
        for op in ["add", "sub", "mul", "div", "maximum", "minimum"] {
            let rhs = op == "div" ? bPos : b
            gradientCheck([a, rhs], tolerance: 5e-3, op) { Self.binary(op, $0[0], $0[1]) }
        }
        gradientCheck([a], tolerance: 5e-3, "scalar ops") { xs in ((2 - xs[0]) * 3 + 1) / 4 - 0.5 }
        gradientCheck([bPos], tolerance: 5e-3, "scalar / tensor") { xs in 2 / xs[0] }
        var acc = a
        acc += b; acc *= b; acc -= 1; acc /= 2
        #expect(acc.shape == [2, 3, 5, 4])
    }

    @Test func unaryGradientsMatchFiniteDifferences() {
        let x = Tensor.randn([3, 4], seed: 3)
        let pos = x.abs() + 0.3
        gradientCheck([x], tolerance: 5e-3, "exp") { $0[0].exp() }
        gradientCheck([pos], tolerance: 5e-3, "log") { $0[0].log() }
        gradientCheck([pos], tolerance: 5e-3, "sqrt") { $0[0].sqrt() }
        gradientCheck([x], tolerance: 5e-3, "square") { $0[0].squared() }
        gradientCheck([x], tolerance: 5e-3, "abs") { $0[0].abs() }
        gradientCheck([x], tolerance: 5e-3, "neg") { -$0[0] }
        gradientCheck([pos], tolerance: 5e-3, "pow 1.7") { $0[0].pow(1.7) }
        gradientCheck([pos], tolerance: 5e-3, "pow -1.5") { $0[0].pow(-1.5) }
        gradientCheck([x], tolerance: 5e-3, "pow 3") { $0[0].pow(3) }
        // Clamp bounds chosen away from every element (no kink within eps).
        let lo = x.scalars.sorted()[3], hi = x.scalars.sorted()[8]
        gradientCheck([x], tolerance: 5e-3, "clamp") { $0[0].clamped(min: lo + 0.02, max: hi - 0.02) }
    }

    @Test func maximumSplitsTiesEvenly() {
        let a = Tensor(shape: [3], scalars: [1, 2, 3]).requiringGrad()
        let b = Tensor(shape: [3], scalars: [2, 2, 2]).requiringGrad()
        maximum(a, b).sum().backward()
        #expect(a.grad!.scalars == [0, 0.5, 1])
        #expect(b.grad!.scalars == [1, 0.5, 0])
        #expect(maximum(a, Tensor(.nan)).scalars.allSatisfy { $0.isNaN })
        #expect(Tensor(shape: [2], scalars: [.nan, 1]).clamped(min: 0, max: 0.5).scalars[0].isNaN)
    }

    /// The broadcast paths (same shape, scalar, row, column, general) agree with a naive
    /// index-by-index reference on larger random shapes.
    @Test func broadcastPathsMatchNaiveReference() {
        let pairs: [([Int], [Int])] = [([64, 33], [64, 33]), ([8, 16, 9, 7], [16, 1, 1]), ([8, 16, 9, 7], [7]),
                                       ([5, 1, 70], [1, 40, 1]), ([9, 1], [1, 300]), ([2, 3, 4, 5], [])]
        for (sa, sb) in pairs {
            let a = Tensor.randn(sa, seed: 5), b = Tensor.randn(sb, seed: 6)
            let out = a * b
            let os = out.shape, r = os.count
            let stA = broadcastStrides(sa, to: os), stB = broadcastStrides(sb, to: os), stO = Tensor.strides(of: os)
            let vo = out.scalars, va = a.scalars, vb = b.scalars
            var worst: Float = 0
            for i in 0..<out.count {
                var ia = 0, ib = 0
                for d in 0..<r { let v = (i / stO[d]) % os[d]; ia += v * stA[d]; ib += v * stB[d] }
                worst = max(worst, abs(vo[i] - va[ia] * vb[ib]))
            }
            #expect(worst == 0, "\(sa) * \(sb)")
        }
    }
}
