// A torchvision-style model (names such as backbone.layer1.0.bn1.num_batches_tracked,
// classifier.4.weight) saved by PyTorch with
//   save_file(model.state_dict(), "tvlike_state.safetensors")     # int64 num_batches_tracked
// loaded strictly into the same architecture written with this library, run in eval mode
// and compared with PyTorch's output; then saved again and reloaded bit exactly.
// Tolerance 1e-5: float32 sums in a different order.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

final class TVBlock: Layer, @unchecked Sendable {
    let conv1: Conv2d, bn1: BatchNorm2d, relu = ReLU(), conv2: Conv2d, bn2: BatchNorm2d
    var isTraining = true
    init(_ c: Int) {
        conv1 = Conv2d(inChannels: c, outChannels: c, kernelSize: 3, padding: 1, bias: false)
        bn1 = BatchNorm2d(c)
        conv2 = Conv2d(inChannels: c, outChannels: c, kernelSize: 3, padding: 1, bias: false)
        bn2 = BatchNorm2d(c)
    }
    var children: [(String, any Module)] { [("conv1", conv1), ("bn1", bn1), ("relu", relu), ("conv2", conv2), ("bn2", bn2)] }
    func callAsFunction(_ x: Tensor) -> Tensor { relu(bn2(conv2(relu(bn1(conv1(x)))))) }
}

final class TVBackbone: Layer, @unchecked Sendable {
    let conv1 = Conv2d(inChannels: 3, outChannels: 6, kernelSize: 3, stride: 2, padding: 1, bias: false)
    let bn1 = BatchNorm2d(6)
    let relu = ReLU()
    let maxpool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
    let layer1 = Sequential(TVBlock(6), TVBlock(6))
    var isTraining = true
    var children: [(String, any Module)] { [("conv1", conv1), ("bn1", bn1), ("relu", relu), ("maxpool", maxpool), ("layer1", layer1)] }
    func callAsFunction(_ x: Tensor) -> Tensor { layer1(maxpool(relu(bn1(conv1(x))))) }
}

final class TVLike: Layer, @unchecked Sendable {
    let backbone = TVBackbone()
    let classifier = Sequential(Conv2d(inChannels: 6, outChannels: 5, kernelSize: 3, padding: 1, bias: false), BatchNorm2d(5),
                                ReLU(), Dropout(p: 0.1), Conv2d(inChannels: 5, outChannels: 3, kernelSize: 1))
    var isTraining = true
    var children: [(String, any Module)] { [("backbone", backbone), ("classifier", classifier)] }
    func callAsFunction(_ x: Tensor) -> Tensor { classifier(backbone(x)) }
}

@Suite struct TorchvisionInteropTests {
    @Test func loadsTorchStateDictAndMatchesOutput() throws {
        let io = try SafeTensorsFile(path: fixturesDirectory + "/tvlike_io.safetensors")
        let keys = try JSONSerialization.jsonObject(with: Data(io.metadata["keys"]!.utf8)) as! [String]
        let model = TVLike()
        #expect(model.namedState().map(\.0) == keys)                        // same names, same order as torch
        #expect(model.parameterCount == Int(io.metadata["params"]!))
        let file = try SafeTensorsFile(path: fixturesDirectory + "/tvlike_state.safetensors")
        #expect(file.entries["backbone.bn1.num_batches_tracked"]!.dtype == .i64)
        try model.load(from: fixturesDirectory + "/tvlike_state.safetensors")
        #expect(model.backbone.bn1.numBatchesTracked!.value.item == 17)
        model.eval()
        expectClose(model(try io.tensor("input")), try io.tensor("output"), tolerance: 1e-5, "tvlike eval output")

        model.backbone.freeze()
        #expect(model.trainableParameterCount == Int(io.metadata["trainable_backbone_frozen"]!))

        // Round trip through a file written by this library.
        let path = tempPath("tvlike.safetensors")
        defer { removeTempDir(path) }
        try model.save(to: path)
        let again = TVLike()
        try again.load(from: path)
        for ((n1, t1), (n2, t2)) in zip(model.namedState(), again.namedState()) {
            #expect(n1 == n2 && t1.scalars.map(\.bitPattern) == t2.scalars.map(\.bitPattern), "\(n1)")
        }
        let orig = try SafeTensorsFile(path: fixturesDirectory + "/tvlike_state.safetensors").allTensors()
        let mine = try loadSafeTensors(path: path)
        #expect(Set(orig.keys) == Set(mine.keys))
        for (k, v) in orig { #expect(mine[k]!.scalars == v.scalars, "\(k)") }
    }
}
