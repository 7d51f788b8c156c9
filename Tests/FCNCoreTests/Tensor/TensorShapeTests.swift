// Shape ops against PyTorch (Fixtures/gen_tensor.py):
//   x.permute(perm), x[..., start:end:step], torch.cat(xs, dim), torch.stack(xs, dim),
//   F.pad(x, pads reversed, value) with negative pads (crop), x.expand(target);
//   each with autograd gradients for a random grad_out.
// These ops only move values: outputs and gradients must match exactly except where a
// gradient sums (expand), hence tolerance 1e-6.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct TensorShapeTests {
    @Test(arguments: loadFixture("tensor_shape"))
    func shapeOpMatchesPyTorch(_ c: FixtureCase) {
        let op = c.string("op")
        let n = (op == "concat" || op == "stack") ? c.int("n") : 1
        let inputs = (op == "concat" || op == "stack") ? (0..<n).map { c.tensor("x\($0)") } : [c.tensor("x")]
        let (out, grads) = tensorOpsRun(inputs, gradOut: c.tensor("grad_out")) { xs in
            switch op {
            case "permute": return xs[0].permuted(c.ints("perm"))
            case "slice": return xs[0].sliced(axis: c.int("axis"), start: c.int("start"), end: c.int("end"), step: c.int("step"))
            case "concat": return Tensor.concat(xs, axis: c.int("axis"))
            case "stack": return Tensor.stack(xs, axis: c.int("axis"))
            case "pad":
                let p = c.ints("pads")
                let pairs = stride(from: 0, to: p.count, by: 2).map { (before: p[$0], after: p[$0 + 1]) }
                return xs[0].padded(pairs, value: Float(c.double("value")))
            case "expand": return xs[0].expanded(to: c.ints("target"))
            default: fatalError(op)
            }
        }
        expectClose(out, c.tensor("out"), tolerance: 1e-6, "\(c) out")
        if op == "concat" || op == "stack" {
            for i in 0..<n { expectClose(grads[i]!, c.tensor("grad_x\(i)"), tolerance: 1e-6, "\(c) grad_x\(i)") }
        } else {
            expectClose(grads[0]!, c.tensor("grad_x"), tolerance: 1e-6, "\(c) grad_x")
        }
    }

    @Test func gradientsMatchFiniteDifferences() {
        let x = Tensor.randn([2, 3, 4], seed: 21), y = Tensor.randn([2, 2, 4], seed: 22)
        gradientCheck([x], tolerance: 5e-3, "reshape") { $0[0].reshaped([6, -1]) * $0[0].reshaped(6, 4) }
        gradientCheck([x], tolerance: 5e-3, "permute") { $0[0].permuted([2, 0, 1]).squared() }
        gradientCheck([x], tolerance: 5e-3, "slice") { $0[0].sliced(axis: 2, start: 1, end: 4, step: 2) }
        gradientCheck([x, y], tolerance: 5e-3, "concat") { Tensor.concat([$0[0], $0[1]], axis: 1) }
        gradientCheck([x], tolerance: 5e-3, "pad") { $0[0].padded(top: 1, bottom: -1, left: 2, right: 0, value: 3) }
        gradientCheck([x], tolerance: 5e-3, "expand") { $0[0].unsqueezed(axis: 1).expanded(to: [2, 5, 3, 4]) }
        gradientCheck([x, x], tolerance: 5e-3, "stack") { Tensor.stack($0, axis: 3) }
    }

    @Test func viewsShareStorage() {
        let x = Tensor.randn([2, 3, 4, 5], seed: 1)
        #expect(x.reshaped([6, -1]).shape == [6, 20] && x.reshaped([6, -1]).sharesStorage(with: x))
        #expect(x.flattened(from: 1).shape == [2, 60] && x.flattened().shape == [120])
        #expect(x.unsqueezed(axis: -1).shape == [2, 3, 4, 5, 1] && x.unsqueezed(axis: 0).shape == [1, 2, 3, 4, 5])
        #expect(x.unsqueezed(axis: 2).squeezed(axis: 2).shape == [2, 3, 4, 5])
        #expect(Tensor.zeros([1, 3, 1]).squeezed().shape == [3])
        #expect(x.transposed(1, 3).shape == [2, 5, 4, 3])
        #expect(x.sliced(axis: 1, range: 1..<3).shape == [2, 2, 4, 5])
    }

    /// The tiled transpose and the general gather agree with a naive index loop.
    @Test func permuteMatchesNaiveReference() {
        for (shape, perm) in [([67, 45], [1, 0]), ([3, 17, 40], [0, 2, 1]), ([2, 5, 6, 7], [2, 0, 3, 1]), ([4, 33, 35], [2, 1, 0])] {
            let x = Tensor.randn(shape, seed: 2)
            let y = x.permuted(perm), vx = x.scalars, vy = y.scalars
            let sx = Tensor.strides(of: shape), sy = Tensor.strides(of: y.shape)
            var ok = true
            for i in 0..<y.count {
                var src = 0
                for d in 0..<shape.count { src += ((i / sy[d]) % y.shape[d]) * sx[perm[d]] }
                if vy[i] != vx[src] { ok = false }
            }
            #expect(ok, "\(shape) \(perm)")
        }
        let m = Tensor.randn([5, 7], seed: 3)
        #expect(m.transposed().transposed().scalars == m.scalars)
    }
}
