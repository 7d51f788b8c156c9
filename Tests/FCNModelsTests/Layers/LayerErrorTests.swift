// Misuse of layers and modules stops with a message naming the layer (exit tests).
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

final class DuplicateChildNames: Module, @unchecked Sendable {
    let a = ReLU(), b = ReLU()
    var isTraining = true
    var children: [(String, any Module)] { [("a", a), ("a", b)] }
}

private func stderrOf(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

@Suite struct LayerErrorTests {
    @Test func batchNormChannelMismatch() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = BatchNorm2d(3)(Tensor.zeros([1, 4, 2, 2]))
        }
        #expect(stderrOf(r).contains("BatchNorm2d: expected input [N, 3, H, W], got [1, 4, 2, 2]"))
    }

    @Test func duplicateChildName() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = DuplicateChildNames().namedParameters()
        }
        #expect(stderrOf(r).contains("Module: DuplicateChildNames at '' registers the child name 'a' twice"))
    }

    @Test func assignWithWrongShape() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            Parameter(Tensor.zeros([3])).assign(Tensor.zeros([2]))
        }
        #expect(stderrOf(r).contains("Parameter.assign: got a tensor of shape [2] for a parameter of shape [3]"))
    }

    @Test func convGroupsMustDivideChannels() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, groups: 2)
        }
        #expect(stderrOf(r).contains("Conv2d: inChannels 3 and outChannels 4 must be divisible by groups 2"))
    }
}
