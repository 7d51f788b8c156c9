// The user's journey, for every model family and both input conventions: train a tiny
// network with the trainer (as fcn-train does), write its checkpoint, segment the
// validation image with the code fcn-segment runs (a PNG file in, a label PNG out, the
// model read from the checkpoint through `ModelFile.open` without any model flag), and get
// exactly the labels the trainer's own validation counted for that image. Also: the
// legend names the classes, `--evaluate`'s path gives the trainer's figures, and a flag
// that contradicts the checkpoint fails with both values named.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
@testable import FCNInference
@testable import FCNTools
import FCNTestSupport

/// Synthetic shapes with pixel values rounded to integers, so that writing an image to PNG
/// and reading it back gives the very tensor the trainer validated.
struct IntegerShapes: SegmentationSampleSource {
    let base: SyntheticSampleSource
    var count: Int { base.count }
    var classes: Int { base.classes }
    var classNames: [String]? { base.classNames }
    var fixedSize: Int? { base.fixedSize }
    func sample(_ index: Int) throws -> (image: Tensor, label: Tensor) {
        let (image, label) = try base.sample(index)
        return (Tensor(shape: image.shape, scalars: image.scalars.map { $0.rounded() }), label)
    }
}

@Suite(.serialized) struct JourneyTests {
    static let families: [(ModelArchitecture, Double)] = [(.fcn8s, 1.0 / 32), (.fcn32s, 1.0 / 32), (.fcn4s, 1.0 / 32), (.resnet18FCN8s, 1), (.fcnResNet50, 1)]
    static let cases = families.flatMap { f in [InputPreprocessing.caffe, .torchvision].map { (f.0, f.1, $0) } }

    func folder() -> String {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-journey-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    @Test(arguments: cases)
    func trainCheckpointSegmentGiveTheValidationLabels(_ architecture: ModelArchitecture, _ width: Double,
                                                       _ input: InputPreprocessing) throws {
        let dir = folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = TrainerOptions()
        o.model = architecture
        o.width = width
        o.padding = architecture.isVGG && architecture != .fcn32s ? .same : .caffe
        // Debug builds run the kernels unoptimised: the ResNets train one step on small images.
        o.imageSize = architecture.isVGG ? 40 : 24
        o.trainCount = 8
        o.valCount = 1
        o.steps = architecture.isVGG ? 2 : 1
        o.batch = 2
        o.learningRate = 1e-3
        o.valEvery = 0
        o.seed = 3
        o.out = dir
        o.progress = false
        o.normalization = input
        let data = SyntheticShapes(size: o.imageSize, count: 1, seed: 11)
        let validation = IntegerShapes(base: SyntheticSampleSource(dataset: data, offset: 1_000_000))
        let train = SyntheticSampleSource(dataset: SyntheticShapes(size: o.imageSize, count: o.trainCount, seed: 12))
        let trainer = try Trainer(options: o, train: train, validation: validation)
        try trainer.run()
        let counted = try #require(trainer.lastConfusion)

        // The validation image as a PNG, segmented by fcn-segment's code from the checkpoint alone.
        let (image, label) = try validation.sample(0)
        try PNG.write(Image(tensor: image), to: dir + "/val.png")
        let checkpoint = dir + "/" + Trainer.checkpointFileName
        let outputs = try SegmentCommand.run(SegmentCommand.parse(["--weights", checkpoint, "--out", dir + "/seg", "--quiet",
                                                                    dir + "/val.png"]), log: { _ in })
        let labels = try PNG.decodeIndexed(readFileBytes(outputs[0].labels))
        var segmented = ConfusionMatrix(classes: SyntheticShapes.classes)
        segmented.update(prediction: Tensor(shape: [1, o.imageSize, o.imageSize], scalars: labels.indices.map(Float.init)),
                         label: label.unsqueezed(axis: 0))
        #expect(segmented.counts == counted.counts, "\(architecture) \(input): fcn-segment's labels differ from the validation's")

        // The checkpoint says what the model is; the legend names the classes.
        let d = try ModelFile.describe(checkpoint).description
        #expect(d.architecture == architecture && d.input == input && d.classNames == SyntheticShapes.classNames)
        #expect(d.auxiliaryHead == architecture.isTorchvisionFCN)
        let legend = try String(contentsOfFile: outputs[0].legend, encoding: .utf8)
        #expect(outputs[0].entries.allSatisfy { legend.contains(SyntheticShapes.classNames[$0.classID]) }, "\(legend)")

        guard architecture.isVGG else { return }   // the rest does not depend on the family
        // fcn-train --evaluate's path: the same figures from the checkpoint alone.
        let evaluated = try evaluate(ModelFile.open(checkpoint), on: validation)
        #expect(evaluated.counts == counted.counts)

        // A contradicting input convention is refused with both named, unless forced.
        let other = input == .caffe ? "torchvision" : "caffe"
        do {
            try SegmentCommand.run(SegmentCommand.parse(["--weights", checkpoint, "--input", other, "--out", dir + "/seg",
                                                         dir + "/val.png"]), log: { _ in })
            Issue.record("a contradicting --input was accepted")
        } catch {
            #expect("\(error)".contains("--input \(other)") && "\(error)".contains("trained on \(input) inputs"), "\(error)")
        }
        _ = try SegmentCommand.run(SegmentCommand.parse(["--weights", checkpoint, "--input", other, "--force", "--quiet",
                                                         "--out", dir + "/seg", dir + "/val.png"]), log: { _ in })
    }

    /// `--init-from` copies what fits and replaces a classifier of another class count.
    @Test func initFromReplacesTheClassifier() throws {
        let dir = folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = VGGFCN(variant: .fcn8s, classes: 21, width: 1.0 / 32, seed: 4, zeroScoreLayers: false, padding: .same)
        try ModelFile.write(source, to: dir + "/voc.safetensors")
        var o = TrainerOptions()
        o.width = 1.0 / 32
        o.padding = .same
        o.steps = 1
        o.imageSize = 24
        o.trainCount = 2
        o.valCount = 1
        o.initFrom = dir + "/voc.safetensors"
        o.initialization = .pytorch
        o.out = nil
        let trainer = try Trainer(options: o)
        let report = try #require(trainer.initializationReport)
        #expect(report.contains("score_fr") && report.contains("5 classes"), "\(report)")
        let state = trainer.model.stateDict(), before = source.stateDict()
        #expect(bitIdentical(state["conv3_1.weight"]!, before["conv3_1.weight"]!))
        #expect(state["score_fr.weight"]!.shape == [5, 128, 1, 1])
        o.initFrom = dir + "/missing.safetensors"
        #expect(throws: FCNError.self) { try Trainer(options: o) }
    }
}
