// Misuse of the general Tensor ops stops with a message naming the op and the shapes.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct TensorOpErrorTests {
    static func stderr(_ r: ExitTest.Result?) -> String { String(decoding: r?.standardErrorContent ?? [], as: UTF8.self) }

    @Test func broadcastMismatch() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]) + Tensor.zeros([4])
        }
        #expect(Self.stderr(r).contains("add: shapes [2, 3] and [4] cannot be broadcast"))
    }

    @Test func badReshape() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).reshaped([4, -1])
        }
        #expect(Self.stderr(r).contains("reshape: cannot reshape [2, 3] (6 elements) to [4, -1]"))
    }

    @Test func badPermute() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3, 4]).permuted([0, 0, 1])
        }
        #expect(Self.stderr(r).contains("permute: axes [0, 0, 1] are not a permutation of 0..<3 for a tensor of shape [2, 3, 4]"))
    }

    @Test func matmulInnerMismatch() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5]))
        }
        #expect(Self.stderr(r).contains("matmul: inner dimensions differ: a [2, 3] x b [4, 5] (3 vs 4)"))
    }

    @Test func concatMismatch() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.concat([Tensor.zeros([2, 3]), Tensor.zeros([3, 3])], axis: 1)
        }
        #expect(Self.stderr(r).contains("concat: tensor 1 has shape [3, 3], incompatible with [2, 3]"))
    }

    @Test func reductionAxisOutOfRange() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Tensor.zeros([2, 3]).sum(axes: [2])
        }
        #expect(Self.stderr(r).contains("sum: axis 2 is out of range for a tensor of shape [2, 3]"))
    }
}
