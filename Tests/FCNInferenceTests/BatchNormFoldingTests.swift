// Batch norm folded into convolutions (and ReLU fused) gives the eval-mode output of the
// original Sequential, including nested Sequentials; layers without a following BN are
// kept as they are. Tolerance 1e-5 relative: folding reorders one multiply per weight.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNInference
import FCNTestSupport

@Suite struct BatchNormFoldingTests {
    func randomBN(_ c: Int, seed: UInt64) -> BatchNorm2d {
        let bn = BatchNorm2d(c)
        bn.runningMean!.assign(Tensor.randn([c], seed: seed))
        bn.runningVar!.assign(Tensor.uniform([c], low: 0.5, high: 2, seed: seed + 1))
        bn.weight!.assign(Tensor.randn([c], seed: seed + 2))
        bn.bias!.assign(Tensor.randn([c], seed: seed + 3))
        return bn
    }

    @Test func foldedSequentialMatchesEvalMode() {
        let net = Sequential(
            Conv2d(inChannels: 3, outChannels: 6, kernelSize: 3, padding: 1, bias: false, seed: 1), randomBN(6, seed: 10), ReLU(),
            MaxPool2d(kernel: 2),
            Sequential(Conv2d(inChannels: 6, outChannels: 5, kernelSize: 3, stride: 2, padding: 1, seed: 2), randomBN(5, seed: 20)),
            Conv2d(inChannels: 5, outChannels: 4, kernelSize: 1, seed: 3), ReLU(),
            Conv2d(inChannels: 4, outChannels: 3, kernelSize: 1, seed: 4))
        net.eval()
        let x = Tensor.randn([2, 3, 13, 11], seed: 5)
        let expected = withoutGrad { net(x) }
        let folded = foldedForInference(net)
        let seq = try! #require(folded as? Sequential)
        // conv+bn+relu -> 1, pool, nested (conv+bn -> 1), conv+relu -> 1, plain conv.
        #expect(seq.count == 5)
        #expect(seq[0] is FusedConv2d && (seq[0] as! FusedConv2d).relu)
        #expect(seq[1] is MaxPool2d)
        #expect(((seq[2] as? Sequential)?[0] as? FusedConv2d)?.relu == false)
        #expect(seq[4] is Conv2d && seq[4] === net[7])
        expectClose(withoutGrad { folded(x) }, expected, tolerance: 1e-5, "folded")
        // The original is untouched (still has its BN layers and parameters).
        #expect(net.count == 8 && net.parameters().count == 11)
    }

    @Test func residualBlockShape() {
        let conv = Conv2d(inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1, bias: false, seed: 7)
        let bn = randomBN(4, seed: 30)
        bn.eval()
        let block = FusedResidualBlock(main: [FusedConv2d(conv, bn, relu: false)], shortcut: nil)
        let x = Tensor.randn([1, 4, 6, 6], seed: 8)
        let expected = relu(bn(conv(x)) + x)
        expectClose(withoutGrad { block(x) }, expected, tolerance: 1e-5, "residual")
    }
}
