// The README's examples, compiled and run, so they cannot rot.
import Foundation
import Testing
import FCN
import FCNTestSupport

@Suite struct ReadmeExampleTests {
    @Test func minimalExample() throws {
        // README "A minimal example", on a small model file written here with a JPEG photo.
        let path = tempPath("fcn8s.safetensors"), photo = tempPath("cat.jpg")
        defer { removeTempDir(path); removeTempDir(photo) }
        let trained = VGGFCN(variant: .fcn8s, classes: 21, width: 1.0 / 32, seed: 0, zeroScoreLayers: false)
        try trained.setModelDescription(trained.modelDescription.withMetadata(classNames: vocClassNames, palette: nil, input: nil))
        try ModelFile.write(trained, to: path)
        let jpeg = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/jpeg/exif_6.jpg")
        try FileManager.default.copyItem(atPath: jpeg.path, toPath: photo)

        let model = try ModelFile.open(path)
        let segmenter = Segmenter(network: ModelSegmentation(model))
        let result = segmenter.segment(try readImage(path: photo))
        try PNG.write(result.labelImage(palette: model.modelDescription.colors), to: path + "-labels.png")
        let first = model.modelDescription.className(Int(result.labels[0]))
        #expect(vocClassNames.contains(first))
        let decoded = try readImage(path: photo)
        #expect(result.width == decoded.width && result.height == decoded.height)
        #expect(try PNG.readIndexed(path: path + "-labels.png").indices == result.labels)
    }

    @Test func scoresOfABuiltModel() {
        let model = VGGFCN(variant: .fcn8s, classes: 21, width: 1.0 / 32, seed: 0)
        model.eval()
        let rgb = Tensor.uniform([1, 3, 37, 53], low: 0, high: 255, seed: 1)   // [N, 3, H, W], RGB 0...255
        let scores = withoutGrad { model.scores(forRGB: rgb) }               // [1, 21, 37, 53]
        let labels = scores.argmax(axis: 1)                                  // [1, 37, 53] class ids
        #expect(scores.shape == [1, 21, 37, 53])
        #expect(labels.shape == [1, 37, 53])
        let valid = labels.scalars.allSatisfy { $0 >= 0 && $0 < 21 && $0 == $0.rounded() }
        #expect(valid)
    }

    @Test func trainingExample() {
        // README "Training"
        let data = SyntheticShapes(size: 32, count: 16, seed: 0)
        let model = VGGFCN(variant: .fcn8s, classes: SyntheticShapes.classes, width: 1.0 / 32, seed: 0, padding: .same)
        let optimizer = Adam(model.optimizableParameters(), learningRate: 1e-3)
        var losses: [Float] = []
        for step in 0..<4 {
            let (image, label) = data[step % data.count]
            let x = InputPreprocessing.caffe.apply(image.unsqueezed(axis: 0))
            let loss = softmaxCrossEntropy(logits: model(x), labels: label.unsqueezed(axis: 0))
            optimizer.zeroGrad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item)
        }
        let finite = losses.allSatisfy { $0.isFinite }
        #expect(finite)
        #expect(model.fc6.weight.grad != nil)
    }
}
