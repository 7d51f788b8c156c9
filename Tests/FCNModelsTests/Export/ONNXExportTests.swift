// The exported ONNX files read back with the tests' own protobuf decoder: model fields,
// metadata, operator types, a well-formed graph (every input defined before use),
// symbolic or fixed input sizes, and initializers that are exactly the model's parameters
// (VGG) or the library's folded inference copy (ResNets). Running the files is
// ONNXRuntimeTests' job.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

/// Checks that hold for every exported file; returns the decoded model.
@discardableResult
func checkWellFormed(_ bytes: [UInt8], _ model: any SegmentationModel, fixed: (Int, Int)? = nil,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> DecodedONNXModel {
    let m = try DecodedONNXModel(bytes)
    let what = model.modelDescription.architecture.rawValue
    #expect(m.irVersion == 8, sourceLocation: sourceLocation)
    #expect(m.opsets.count == 1 && m.opsets[0].domain == "" && m.opsets[0].version == 17, sourceLocation: sourceLocation)
    #expect(m.producer == "swift-fcn", sourceLocation: sourceLocation)
    #expect(m.metadata == ["fcn.model": model.modelDescription.json()], sourceLocation: sourceLocation)
    #expect(try ModelDescription(json: m.metadata["fcn.model"] ?? "") == model.modelDescription, sourceLocation: sourceLocation)
    #expect(m.graphName == what && m.docString.contains("argmax"), sourceLocation: sourceLocation)

    let hw = fixed.map { [String($0.0), String($0.1)] } ?? ["height", "width"]
    #expect(m.inputs.map(\.name) == ["input"] && m.outputs.map(\.name) == ["scores"], sourceLocation: sourceLocation)
    #expect(m.inputs.first?.dims == ["batch", "3"] + hw && m.inputs.first?.elemType == 1, sourceLocation: sourceLocation)
    #expect(m.outputs.first?.dims == ["batch", String(model.numClasses)] + hw && m.outputs.first?.elemType == 1,
            sourceLocation: sourceLocation)

    let unknown = Set(m.nodes.map(\.opType)).subtracting(ONNXExport.operatorTypes)
    #expect(unknown.isEmpty, "\(what): operator types \(unknown) outside the allowed set", sourceLocation: sourceLocation)
    // Topological order: every input is the graph input, an initializer, an earlier node's
    // output, or "" (an omitted optional input).
    var defined = Set(m.initializers.map(\.name)).union(["input", ""])
    #expect(defined.count == m.initializers.count + 2, "\(what): initializer names repeat", sourceLocation: sourceLocation)
    for n in m.nodes {
        for i in n.inputs where !defined.contains(i) {
            Issue.record("\(what): node \(n.name) (\(n.opType)) reads \(i) before it is computed", sourceLocation: sourceLocation)
        }
        #expect(n.outputs.count == 1 && !defined.contains(n.outputs[0]), "\(what): \(n.name) output", sourceLocation: sourceLocation)
        defined.formUnion(n.outputs)
    }
    #expect(m.nodes.last?.outputs == ["scores"], sourceLocation: sourceLocation)
    for t in m.initializers {
        let count = t.dims.reduce(1, *)
        if t.dataType == 1 { #expect(t.raw.count == 4 * count, "\(t.name)", sourceLocation: sourceLocation) }
        else { #expect(t.dataType == 7 && t.int64s.count == count, "\(t.name)", sourceLocation: sourceLocation) }
    }
    return m
}

/// The float32 tensors of the library's folded inference layers, in forward order
/// (weight then bias per convolution).
private func foldedTensors(_ layer: any Layer) -> [Tensor] {
    switch layer {
    case let c as FusedConv2d: return [c.weight] + (c.bias.map { [$0] } ?? [])
    case let c as Conv2d: return [c.weight.value] + (c.bias.map { [$0.value] } ?? [])
    case let t as ConvTranspose2d: return [t.weight.value] + (t.bias.map { [$0.value] } ?? [])
    case let s as Sequential: return s.layers.flatMap(foldedTensors)
    case let b as FusedResidualBlock: return b.main.flatMap(foldedTensors) + (b.shortcut.map(foldedTensors) ?? [])
    default: return []
    }
}

/// Float initializers with at least one dimension (the weights; the scalars are the
/// at-once scalings).
private func weights(_ m: DecodedONNXModel) -> [DecodedONNXModel.Initializer] {
    m.initializers.filter { $0.dataType == 1 && !$0.dims.isEmpty }
}

private func bytes(_ t: Tensor) -> [UInt8] { t.withUnsafeBufferPointer { Array(UnsafeRawBufferPointer($0)) } }

@Suite(.serialized) struct ONNXExportTests {
    @Test func vggFilesAreWellFormedWithTheModelParameters() throws {
        for padding in VGGFCNPadding.allCases {
            for variant in VGGFCNVariant.allCases {
                let model = ExportModels.vgg(variant, padding)
                let m = try checkWellFormed(try ONNXExport.data(model), model)
                // Every parameter under its state-dict name (in the order the graph uses them).
                let params = Dictionary(uniqueKeysWithValues: model.namedParameters())
                let w = weights(m)
                #expect(Set(w.map(\.name)) == Set(params.keys) && w.count == params.count, "\(variant) \(padding)")
                for t in w {
                    #expect(t.dims == params[t.name]?.shape && t.raw == params[t.name].map { bytes($0.value) }, "\(t.name)")
                }
                let pools = m.nodes.filter { $0.opType == "MaxPool" }
                #expect(pools.count == 5 && pools.allSatisfy { $0.attributes["ceil_mode"]?.i == 1 })
                #expect(m.nodes.filter { $0.opType == "Relu" }.count == 15)
                let scalings = m.initializers.filter { $0.dims.isEmpty }.map { $0.tensor.item }
                #expect(scalings == (variant == .fcn8sAtOnce ? [0.01, 0.0001] : []), "\(variant)")
                #expect(m.nodes.filter { $0.opType == "Mul" }.count == (variant == .fcn8sAtOnce ? 2 : 0))
                let conv11 = m.nodes.first { $0.name == "conv1_1" }
                #expect(conv11?.attributes["pads"]?.ints == Array(repeating: padding == .caffe ? 100 : 1, count: 4))
            }
        }
    }

    /// The crops are `Slice`s whose ends are the offset plus `Shape(reference)[2:4]`.
    @Test func vggCropsAreComputedFromShapes() throws {
        let m = try DecodedONNXModel(ONNXExport.data(ExportModels.vgg(.fcn8s, .caffe)))
        let slices = m.nodes.filter { $0.opType == "Slice" }
        #expect(slices.count == 3)
        let constants = Dictionary(uniqueKeysWithValues: m.initializers.filter { $0.dataType == 7 }.map { ($0.name, $0.int64s) })
        let producers = Dictionary(uniqueKeysWithValues: m.nodes.map { ($0.outputs[0], $0) })
        for (slice, offset) in zip(slices, [5, 9, 31]) {
            #expect(constants[slice.inputs[1]] == [Int64(offset), Int64(offset)], "\(slice.name) starts")
            #expect(constants[slice.inputs[3]] == [2, 3], "\(slice.name) axes")
            let ends = producers[slice.inputs[2]]
            #expect(ends?.opType == "Add" && constants[ends?.inputs[1] ?? ""] == [Int64(offset), Int64(offset)])
            let shape = producers[ends?.inputs[0] ?? ""]
            #expect(shape?.opType == "Shape" && shape?.attributes["start"]?.i == 2 && shape?.attributes["end"]?.i == 4)
        }
        #expect(producers[producers[slices[2].inputs[2]]?.inputs[0] ?? ""]?.inputs == ["input"], "the final crop aligns to the input")
    }

    @Test func fixedSizeMakesTheShapeArithmeticConstant() throws {
        let vgg = ExportModels.vgg(.fcn8s, .caffe)
        let m = try checkWellFormed(try ONNXExport.data(vgg, fixedSize: (height: 64, width: 48)), vgg, fixed: (64, 48))
        #expect(!m.nodes.contains { $0.opType == "Shape" })
        #expect(m.nodes.filter { $0.opType == "Add" }.map(\.name) == ["fuse_pool4", "fuse_pool3"], "no integer arithmetic")
        let constants = Dictionary(uniqueKeysWithValues: m.initializers.filter { $0.dataType == 7 }.map { ($0.name, $0.int64s) })
        let last = m.nodes.last!
        #expect(last.opType == "Slice" && constants[last.inputs[2]] == [31 + 64, 31 + 48])

        let resnet = ExportModels.resnet18FCN8s()
        let aligned = try checkWellFormed(try ONNXExport.data(resnet, fixedSize: (height: 64, width: 96)), resnet, fixed: (64, 96))
        #expect(!aligned.nodes.contains { ["Shape", "Pad", "Slice"].contains($0.opType) }, "aligned sizes need no pad and no crop")
        let odd = try checkWellFormed(try ONNXExport.data(resnet, fixedSize: (height: 37, width: 53)), resnet, fixed: (37, 53))
        let pad = odd.nodes.first { $0.opType == "Pad" }
        let oddConstants = Dictionary(uniqueKeysWithValues: odd.initializers.filter { $0.dataType == 7 }.map { ($0.name, $0.int64s) })
        #expect(oddConstants[pad?.inputs[1] ?? ""] == [0, 0, 0, 0, 0, 0, 27, 11])
        #expect(!odd.nodes.contains { $0.opType == "Shape" })
    }

    @Test func resnetFCN8sInitializersAreTheFoldedModel() throws {
        let model = ExportModels.resnet18FCN8s()
        let m = try checkWellFormed(try ONNXExport.data(model), model)
        let folded = FoldedResNetFCN8s(model)
        let expected = [folded.stage1, folded.stage2, folded.stage3].flatMap(foldedTensors)
            + [model.scores1, model.upsample2x, model.scores2, model.upsample4x, model.scores3, model.upsample8x].flatMap(foldedTensors)
        let w = weights(m)
        #expect(w.count == expected.count)
        for (t, e) in zip(w, expected) { #expect(t.dims == e.shape && t.raw == bytes(e), "\(t.name)") }
        #expect(w.first?.name == "stage1.0.weight" && w.contains { $0.name == "stage1.4.0.conv1.weight" }
                && w.contains { $0.name == "stage2.0.downsample.0.weight" })
        let pads = m.nodes.filter { $0.opType == "Pad" }
        #expect(pads.count == 1 && pads[0].inputs[0] == "input")
        #expect(m.nodes.filter { $0.opType == "MaxPool" }.allSatisfy { $0.attributes["ceil_mode"]?.i == 0 && $0.attributes["pads"]?.ints == [1, 1, 1, 1] })
    }

    @Test func fcnResNetInitializersAreTheFoldedModel() throws {
        let model = sharedDilatedResNetFCN50
        let m = try checkWellFormed(try ONNXExport.data(model), model)
        let expected = foldedTensors(model.rawScoreLayer())
        let w = weights(m)
        #expect(w.count == expected.count)
        for (t, e) in zip(w, expected) { #expect(t.dims == e.shape && t.raw == bytes(e), "\(t.name)") }
        #expect(!w.contains { $0.name.hasPrefix("aux_classifier") }, "the auxiliary head is not exported")
        let resize = m.nodes.filter { $0.opType == "Resize" }
        #expect(resize.count == 1)
        #expect(resize.first?.attributes["mode"]?.s == "linear")
        #expect(resize.first?.attributes["coordinate_transformation_mode"]?.s == "half_pixel")
        #expect(resize.first.map { $0.inputs.count == 4 && $0.inputs[1] == "" && $0.inputs[2] == "" } == true)
        let dilated = m.nodes.filter { $0.opType == "Conv" && $0.attributes["dilations"]?.ints == [4, 4] }
        #expect(dilated.count == 2 && dilated.allSatisfy { $0.attributes["pads"]?.ints == [4, 4, 4, 4] })
    }

    @Test func writeIsAtomicAndEqualsData() throws {
        let folder = try makeExportFolder("write")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let model = ExportModels.vgg(.fcn32s, .same)
        let path = folder + "/model.onnx"
        try Data("previous".utf8).write(to: URL(fileURLWithPath: path))
        try ONNXExport.write(model, to: path)
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == ONNXExport.data(model))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["model.onnx"], "no temporary file left")
        #expect(throws: FCNError.self) { try ONNXExport.write(model, to: folder + "/missing/model.onnx") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["model.onnx"])
    }

    @Test func unsupportedRequestsThrow() throws {
        let model = ExportModels.vgg(.fcn32s, .caffe)
        #expect(throws: FCNError.self) { try ONNXExport.data(model, fixedSize: (height: 0, width: 5)) }
        #expect(throws: FCNError.self) { try ONNXExport.data(NotExportable()) }
    }
}

/// A model the exporter does not know.
private final class NotExportable: SegmentationModel, @unchecked Sendable {
    var isTraining = false
    var modelDescription: ModelDescription { ModelDescription(architecture: .fcn32s, classes: 2) }
    func setModelDescription(_ description: ModelDescription) throws {}
    var scoreStride: Int { 1 }
    var translationStride: Int { 1 }
    var receptiveFieldRadius: Int { 0 }
    func rawScoreLayer() -> any Layer { self }
    func callAsFunction(_ x: Tensor) -> Tensor { x }
}
