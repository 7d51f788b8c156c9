// matmul against PyTorch (Fixtures/gen_tensor.py): torch.matmul(a, b) for rank-2 and
// rank-3 operands (batched, shared right matrix, shared left matrix) with autograd
// gradients for a random grad_out. Tolerance 1e-5: float dot products of up to 23 terms.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct MatMulTests {
    @Test(arguments: loadFixture("tensor_matmul"))
    func matmulMatchesPyTorch(_ c: FixtureCase) {
        let (out, grads) = tensorOpsRun([c.tensor("a"), c.tensor("b")], gradOut: c.tensor("grad_out")) { matmul($0[0], $0[1]) }
        expectClose(out, c.tensor("out"), tolerance: 1e-5, "\(c) out")
        expectClose(grads[0]!, c.tensor("grad_a"), tolerance: 1e-5, "\(c) grad_a")
        expectClose(grads[1]!, c.tensor("grad_b"), tolerance: 1e-5, "\(c) grad_b")
    }

    @Test func gradientsMatchFiniteDifferences() {
        let a = Tensor.randn([3, 4], seed: 31), b = Tensor.randn([4, 2], seed: 32)
        let a3 = Tensor.randn([2, 3, 4], seed: 33), b3 = Tensor.randn([2, 4, 2], seed: 34)
        gradientCheck([a, b], tolerance: 5e-3, "2-D") { matmul($0[0], $0[1]) }
        gradientCheck([a3, b3], tolerance: 5e-3, "batched") { matmul($0[0], $0[1]) }
        gradientCheck([a3, b], tolerance: 5e-3, "shared right") { $0[0].matmul($0[1]) }
        gradientCheck([a, b3], tolerance: 5e-3, "shared left") { matmul($0[0], $0[1]) }
    }
}
