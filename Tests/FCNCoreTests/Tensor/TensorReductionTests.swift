// Reductions against PyTorch (Fixtures/gen_tensor.py):
//   out = torch.sum / mean / amax / amin(x, dim=axes, keepdim=keep); out.backward(grad_out)
//   argmax / argmin(x, dim, keepdim) on integer-valued x (ties: first extremum wins).
// 20 axis/keepDims configurations per op, plus tied inputs for amax/amin (gradient split
// evenly). Tolerance 1e-5: float sums of up to 1000 terms (ours accumulate in Double).
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct TensorReductionTests {
    @Test(arguments: loadFixture("tensor_reduce"))
    func reductionMatchesPyTorch(_ c: FixtureCase) {
        let op = c.string("op"), axes = c.ints("axes"), keep = c.bool("keep")
        let x = c.tensor("x")
        if op == "argmax" || op == "argmin" {
            let out = op == "argmax" ? x.argmax(axis: axes[0], keepDims: keep) : x.argmin(axis: axes[0], keepDims: keep)
            #expect(out.shape == c.tensor("out").shape && out.scalars == c.tensor("out").scalars, "\(c)")
            return
        }
        let (out, grads) = tensorOpsRun([x], gradOut: c.tensor("grad_out")) { xs in
            switch op {
            case "sum": return xs[0].sum(axes: axes, keepDims: keep)
            case "mean": return xs[0].mean(axes: axes, keepDims: keep)
            case "amax": return xs[0].max(axes: axes, keepDims: keep)
            default: return xs[0].min(axes: axes, keepDims: keep)
            }
        }
        expectClose(out, c.tensor("out"), tolerance: 1e-5, "\(c) out")
        expectClose(grads[0]!, c.tensor("grad_x"), tolerance: 1e-5, "\(c) grad_x")
    }

    @Test func gradientsMatchFiniteDifferences() {
        let x = Tensor.randn([2, 3, 4], seed: 11)
        gradientCheck([x], tolerance: 5e-3, "sum all") { $0[0].sum() }
        gradientCheck([x], tolerance: 5e-3, "sum 0,2") { $0[0].sum(axes: [0, 2]) }
        gradientCheck([x], tolerance: 5e-3, "mean 1 keep") { $0[0].mean(axis: 1, keepDims: true) }
        gradientCheck([x], tolerance: 5e-3, "mean all") { $0[0].mean() }
        // Random normals: no ties within eps, so max/min are differentiable here.
        gradientCheck([x], tolerance: 5e-3, "max -1") { $0[0].max(axis: -1) }
        gradientCheck([x], tolerance: 5e-3, "min 0,1") { $0[0].min(axes: [0, 1], keepDims: true) }
        gradientCheck([x], tolerance: 5e-3, "max all") { $0[0].max() }
    }

    @Test func fullReductionsAndConveniences() {
        let x = Tensor(shape: [2, 3], scalars: [1, 5, 5, -2, 7, 0])
        #expect(x.sum().shape == [] && x.sum().item == 16)
        #expect(x.mean().item == Float(16) / 6)
        #expect(x.max().item == 7 && x.min().item == -2)
        #expect(x.argmax() == 4)
        #expect(x.argmaxIndices(axis: 1) == [1, 1])
        #expect(x.argmax(axis: 0).scalars == [0, 1, 0])
        let nanRow = Tensor(shape: [3], scalars: [1, .nan, 3])
        #expect(nanRow.max().item.isNaN && nanRow.argmax() == 1)
        #expect(Tensor.zeros([0, 3]).sum(axis: 0).scalars == [0, 0, 0])
    }

    /// Large sums stay accurate: 1M values whose exact sum is known.
    @Test func largeSumsAreAccurate() {
        let n = 1 << 20
        let x = Tensor.make(shape: [n]) { o in for i in 0..<n { o[i] = Float(i % 1000) * 0.001 + 0.1 } }
        var exact = 0.0
        for i in 0..<n { exact += Double(Float(i % 1000) * 0.001 + 0.1) }
        let s = Double(x.sum().item)
        #expect(abs(s - exact) / exact < 1e-6, "sum \(s) vs \(exact)")
        let cols = x.reshaped([1 << 10, 1 << 10]).sum(axis: 0)
        var e0 = 0.0
        for r in 0..<(1 << 10) { e0 += Double(Float((r * 1024) % 1000) * 0.001 + 0.1) }
        #expect(abs(Double(cols.scalars[0]) - e0) / e0 < 1e-6)
    }
}
