// fcn-demo: the library end to end on generated data, in about a minute on two cores.
//
//   swift run -c release fcn-demo [--out DIR] [--seconds S] [--width W] [--seed N]
//
// 1. generates the synthetic shapes dataset (5 classes: background, disc, rectangle,
//    triangle, bar), 2. trains a narrow VGG16 FCN-8s (the `.same` padding layout: no
//    100-pixel margin, so about 9x less work per image than the Caffe layout) with Adam and the
//    pixel-wise softmax cross-entropy for a fixed time, 3. reports loss, pixel accuracy and
//    mean IU on held-out images, 4. saves a checkpoint (safetensors), 5. reloads it and
//    segments a larger held-out image (a 3x3 mosaic of unseen images) with the tiled segmenter, writing the label PNG
//    (VOC palette), the colour overlay, the input and the ground truth to the output folder.
import FCNTools
import FCN
import Foundation

func writeStderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
func fail(_ message: String) -> Never { writeStderr("fcn-demo: error: \(message)\n"); exit(2) }

func runDemo() {
    // MARK: Arguments
    var outDir = "fcn-demo-output"
    var seconds = 45.0
    var width = 0.125
    var learningRate: Float = 3e-3
    var seed: UInt64 = 1
    do {
        var args = Array(CommandLine.arguments.dropFirst())
        while !args.isEmpty {
            let a = args.removeFirst()
            func value() -> String { guard !args.isEmpty else { fail("\(a) needs a value") }; return args.removeFirst() }
            switch a {
            case "--out": outDir = value()
            case "--seconds": guard let v = Double(value()), v > 0 else { fail("--seconds needs a positive number") }; seconds = v
            case "--width": guard let v = Double(value()), v > 0, v <= 1 else { fail("--width needs a number in (0, 1]") }; width = v
            case "--lr": guard let v = Float(value()), v > 0 else { fail("--lr needs a positive number") }; learningRate = v
            case "--seed": guard let v = UInt64(value()) else { fail("--seed needs an unsigned integer") }; seed = v
            case "-h", "--help":
                print("usage: fcn-demo [--out DIR (fcn-demo-output)] [--seconds S (45)] [--width W (0.125)] [--lr L (0.003)] [--seed N (1)]")
                exit(0)
            default: fail("unknown argument '\(a)' (see --help)")
            }
        }
    }
    do { try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true) } catch {
        fail("cannot create '\(outDir)': \(error.localizedDescription)")
    }
    func path(_ name: String) -> String { (outDir as NSString).appendingPathComponent(name) }
    let start = Date()
    func elapsed() -> String { String(format: "%5.1fs", Date().timeIntervalSince(start)) }

    // MARK: 1. Data
    let size = 64
    let train = SyntheticShapes(size: size, count: 100_000, seed: seed)
    let heldOut = SyntheticShapes(size: size, count: 24, seed: seed + 1000)
    let names = SyntheticShapes.classNames
    print("[\(elapsed())] synthetic shapes: \(size)x\(size) images, \(SyntheticShapes.classes) classes (\(names.joined(separator: ", "))), \(Compute.threads) threads")

    // MARK: 2. Model and training
    let model = VGGFCN(variant: .fcn8s, classes: SyntheticShapes.classes, width: width, seed: seed, zeroScoreLayers: false,
                       padding: .same)
    let norm = InputPreprocessing.caffe
    let optimizer = Adam(model.optimizableParameters(), learningRate: learningRate)
    // Background covers most pixels: weight classes by 1/sqrt(frequency) (normalised to mean 1,
    // counted on 200 labels outside the training indices) so that the thin bars and small
    // shapes matter from the start: fcn-train's --class-weights inverse-sqrt.
    let classWeights: Tensor
    do {
        classWeights = try Trainer.classWeights(.inverseSqrt, source: SyntheticSampleSource(dataset: train, offset: 1_000_000))!
    } catch {
        fail("class weights: \(error)")
    }
    let weights = classWeights.scalars
    print("[\(elapsed())] VGG16 FCN-8s (same padding), width \(width): \(model.parameterCount) parameters; training for \(Int(seconds)) s "
          + "(Adam, lr \(learningRate), batch 4, class weights \(weights.map { String(format: "%.2f", $0) }.joined(separator: " ")))")
    model.train()
    let batchSize = 4
    var step = 0, recent: [Float] = []
    while Date().timeIntervalSince(start) < seconds {
        let samples = (0..<batchSize).map { train[step * batchSize + $0] }
        let x = norm.apply(Tensor.stack(samples.map(\.image)))
        let y = Tensor.stack(samples.map(\.label))
        optimizer.zeroGrad()
        let loss = softmaxCrossEntropy(logits: model(x), labels: y, classWeights: classWeights)
        loss.backward()
        optimizer.step()
        recent.append(loss.item)
        step += 1
        if step % 25 == 0 {
            let mean = recent.reduce(0, +) / Float(recent.count)
            print("[\(elapsed())] step \(step): loss \(String(format: "%.4f", mean)) (mean of the last \(recent.count))")
            recent.removeAll()
        }
    }
    model.eval()

    // MARK: 3. Evaluation on held-out images
    let network = ModelSegmentation(model)
    var confusion = ConfusionMatrix(classes: SyntheticShapes.classes)
    var heldOutLoss: Float = 0
    for i in 0..<heldOut.count {
        let (image, label) = heldOut[i]
        let scores = network.scores(normalized: norm.apply(image.unsqueezed(axis: 0)))
        heldOutLoss += withoutGrad { softmaxCrossEntropy(logits: scores, labels: label.unsqueezed(axis: 0)).item }
        confusion.update(scores: scores, label: label.unsqueezed(axis: 0))
    }
    print("[\(elapsed())] held-out (\(heldOut.count) images): loss \(String(format: "%.4f", heldOutLoss / Float(heldOut.count))), "
          + "pixel accuracy \(String(format: "%.3f", confusion.pixelAccuracy)), mean IU \(String(format: "%.3f", confusion.meanIU))")
    print("          IU per class: " + zip(names, confusion.classIU).map { "\($0) \(String(format: "%.3f", $1))" }.joined(separator: ", "))

    // MARK: 4. Checkpoint
    let checkpoint = path("fcn8s-shapes.safetensors")
    do {
        try model.setModelDescription(model.modelDescription.withMetadata(classNames: names, palette: nil, input: norm))
        try ModelFile.write(model, to: checkpoint)
    } catch { fail("\(error)") }
    print("[\(elapsed())] wrote \(checkpoint)")

    // MARK: 5. Reload and segment a larger held-out image in tiles
    do {
        let reloaded = try ModelSegmentation(contentsOf: checkpoint)
        // A larger held-out image at the training scale: a 3x3 mosaic of unseen 64x64 images.
        let pieces = SyntheticShapes(size: size, count: 9, seed: seed + 2000)
        let rowsOfPieces = (0..<3).map { r in (0..<3).map { c in pieces[3 * r + c] } }
        let big = (image: Tensor.concat(rowsOfPieces.map { Tensor.concat($0.map(\.image), axis: 2) }, axis: 1),
                   label: Tensor.concat(rowsOfPieces.map { Tensor.concat($0.map(\.label), axis: 1) }, axis: 0))
        let side = 3 * size
        let tiled = Segmenter(network: reloaded, options: SegmentationOptions(tileSize: 80))
        let result = tiled.segment(rgb: big.image)
        let whole = Segmenter(network: reloaded).segment(rgb: big.image)
        var bigConfusion = ConfusionMatrix(classes: SyntheticShapes.classes)
        bigConfusion.update(prediction: result.labelTensor, label: big.label)
        let input = Image(tensor: big.image)
        let files = [("input.png", { try PNG.write(input, to: $0) }),
                     ("labels.png", { try PNG.write(result.labelImage(), to: $0) }),
                     ("overlay.png", { try PNG.write(overlayImage(input, labels: result.labels), to: $0) }),
                     ("ground-truth.png", { try PNG.write(IndexedImage(width: side, height: side, indices: big.label.scalars.map { UInt8($0) },
                                                                       palette: vocPalette()), to: $0) })] as [(String, (String) throws -> Void)]
        for (name, write) in files { try write(path(name)) }
        let legend = formatLegend(segmentationLegend(labels: result.labels, classNames: names))
        try legend.write(toFile: path("legend.txt"), atomically: true, encoding: .utf8)
        print("[\(elapsed())] segmented a held-out \(side)x\(side) image in \(result.tiles) tiles (tile 80, identical to the whole-image labels: \(result.labels == whole.labels)); mean IU \(String(format: "%.3f", bigConfusion.meanIU))")
        print(legend, terminator: "")
        for name in ["input.png", "labels.png", "overlay.png", "ground-truth.png", "legend.txt"] { print("wrote \(path(name))") }
    } catch {
        fail("\(error)")
    }
}

runDemo()
