// A model's parameters under an optimizer: updates land in place on the same leaves, and
// a few steps of training on the synthetic shapes make the loss fall.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite struct TrainingLoopTests {
    func smallNet() -> Sequential {
        Sequential(
            Conv2d(inChannels: 3, outChannels: 8, kernelSize: 3, padding: 1, seed: 1), ReLU(),
            Conv2d(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1, seed: 2), ReLU(),
            Conv2d(inChannels: 8, outChannels: SyntheticShapes.classes, kernelSize: 1, seed: 3))
    }

    @Test func optimizerUpdatesParametersInPlace() {
        let net = smallNet()
        let params = net.optimizableParameters()
        #expect(params.map(\.name) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"])
        let before = net.parameters().map(\.value)
        let x = Tensor.randn([1, 3, 6, 6], seed: 9)
        let loss = softmaxCrossEntropy(logits: net(x), labels: Tensor.zeros([1, 6, 6]))
        loss.backward()
        let opt = SGD(params, learningRate: 0.1)
        opt.step()
        for (p, old) in zip(net.parameters(), before) {
            #expect(p.value.isLeaf && p.value.requiresGrad)
            #expect(p.grad != nil, "the leaf keeps its gradient after the step")
            #expect(p.value.scalars != old.scalars, "values changed")
        }
    }

    @Test func lossFallsOnSyntheticShapes() {
        let data = SyntheticShapes(size: 32, count: 8, seed: 3)
        let net = smallNet()
        let opt = Adam(net.optimizableParameters(), learningRate: 1e-2)
        let batch = (0..<4).map { data[$0] }
        let x = InputPreprocessing.torchvision.apply(Tensor.stack(batch.map(\.image)))
        let y = Tensor.stack(batch.map(\.label))
        var losses: [Float] = []
        for _ in 0..<15 {
            opt.zeroGrad()
            let loss = softmaxCrossEntropy(logits: net(x), labels: y)
            loss.backward()
            opt.step()
            losses.append(loss.item)
        }
        #expect(losses.last! < 0.7 * losses.first!, "loss \(losses.first!) -> \(losses.last!)")
    }
}
