// fcn-demo: the library end to end on generated data, in about a minute on two cores.
//
//   swift run -c release fcn-demo [--out DIR] [--seconds S] [--seed N] [--threads N]
//
// 1. trains an FCN-4s (VGG16 at 1/8 width, the `.same` layout, FCN-8s plus a pool2 skip)
//    on 96-pixel synthetic shapes (5 classes: background, disc, rectangle, triangle, bar)
//    with the README's recipe made for one minute (`Trainer`, as `fcn-train` runs it):
//    batches of 8 at a higher learning rate, 32- then 64-pixel images for the first half
//    of the time; a progress bar, then the held-out mean IU. Why FCN-4s: the bars are 1-3
//    pixels wide, and at stride 8 FCN-8s blurs them (bar IU about 0.48 against 0.60);
// 2. the checkpoint describes its model (architecture, classes, names, input convention);
// 3. reopens it the way an app does (`ModelFile.open`) and segments a larger unseen scene
//    (3x the side, shapes at the training scale) in tiles, writing the input, the labels, the
//    overlay with boundaries, the ground truth and a legend to the output folder;
// 4. prints the commands that segment a photo with this checkpoint and train further.
import FCNTools
import FCN
import Foundation

func writeStderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
func fail(_ message: String, status: Int32 = 2) -> Never { writeStderr("fcn-demo: error: \(message)\n"); exit(status) }

let usage = """
usage: fcn-demo [options]

Trains a small FCN-4s on generated shapes for about a minute, measures it on held-out
images, reopens its checkpoint and segments a larger unseen scene.

  --out DIR        output folder (default fcn-demo-output)
  --seconds S      training time (default 57)
  --seed N         data and weights seed (default 1)
  --threads N      compute threads (default: all processors)
  -h, --help       this text

Exit status: 0 done, 1 failed run, 2 usage or input error, 130 interrupted.
"""

// MARK: Arguments
var outDir = "fcn-demo-output"
var seconds = 57.0
var seed: UInt64 = 1
do {
    var r = Array(CommandLine.arguments.dropFirst())
    while !r.isEmpty {
        let a = r.removeFirst()
        func value() -> String { guard !r.isEmpty else { fail("\(a) needs a value (see --help)") }; return r.removeFirst() }
        switch a {
        case "--out": outDir = value()
        case "--seconds": guard let v = Double(value()), v > 0 else { fail("--seconds needs a positive number") }; seconds = v
        case "--seed": guard let v = UInt64(value()) else { fail("--seed needs an unsigned integer") }; seed = v
        case "--threads": guard let v = Int(value()), v >= 1 else { fail("--threads needs a positive integer") }; Compute.threads = v
        case "-h", "--help": print(usage); exit(0)
        default: fail("unknown argument '\(a)' (see --help)")
        }
    }
}
do { try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true) } catch {
    fail("cannot create '\(outDir)': \(error.localizedDescription)")
}
guard FileManager.default.isWritableFile(atPath: outDir) else { fail("output folder '\(outDir)' is not writable") }
let folder = outDir
func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }

// MARK: 1. Training: the README recipe, shortened
var o = TrainerOptions()
o.model = .fcn4s
o.width = 0.125
o.padding = .same
o.learnUpsampling = true
o.lovaszWeight = 1
// The recipe's multipliers: the deep path slower, the 8s skips faster; the pool2 skip
// at the base rate (faster, its low-level features outvote the deep path's shape cues).
o.layerLearningRates = [LayerLearningRate(layers: ["conv5", "fc6", "fc7", "score_fr"], multiplier: 0.3),
                        LayerLearningRate(layers: ["score_pool4", "score_pool3", "upscore2", "upscore_pool4"], multiplier: 5)]
o.imageSize = 96
o.progressive = [ProgressiveSize(size: 32, until: 0.2), ProgressiveSize(size: 64, until: 0.5)]
o.trainCount = 100_000
o.valCount = 200
o.batch = 8
o.optimizer = .adam
o.learningRate = 8e-3
o.warmup = 50
o.schedule = .poly
o.dropout = false
o.seed = seed
o.replicas = Compute.threads >= 2 ? 2 : 1
o.minutes = seconds / 60
o.valEvery = 0
o.out = outDir
let console = TrainerConsole.standardError()
let interrupt = TrainerInterrupt.install()
let trainer: Trainer
do { trainer = try Trainer(options: o) } catch { fail("\(error)", status: 1) }
let d0 = trainer.model.modelDescription
console.message("fcn-demo: training \(d0.architecture) (VGG16 at 1/8 width with a pool2 skip, \(trainer.model.parameterCount) parameters) on "
    + "\(o.imageSize)x\(o.imageSize) synthetic shapes (\(SyntheticShapes.classNames.joined(separator: ", "))) for \(Int(seconds)) s on \(Compute.threads) threads")
let outcome: TrainerOutcome
do {
    outcome = try trainer.run(shouldStop: { interrupt.isRaised }, onEvent: { event in
        console.handle(event)
        if case .saved(let folder) = event { _ = try? TrainingPlot.writeCurves(trainer.history, to: folder) }
    })
} catch { console.finish(); fail("\(error)", status: 1) }
console.finish()
if outcome == .interrupted { writeStderr("fcn-demo: interrupted; checkpoint saved in \(outDir)\n"); exit(130) }
guard let cm = trainer.lastConfusion else { fail("no validation ran", status: 1) }
print(String(format: "held-out (%d images): pixel accuracy %.3f, mean IU %.3f after %d steps", o.valCount, cm.pixelAccuracy, cm.meanIU, trainer.step))
print("IU per class: " + zip(SyntheticShapes.classNames, cm.classIU).map { String(format: "%@ %.3f", $0, $1) }.joined(separator: ", "))

// MARK: 2-3. Reopen the checkpoint as an app would and segment a larger unseen scene
let checkpoint = path(Trainer.checkpointFileName)
do {
    let model = try ModelFile.open(checkpoint)
    let d = model.modelDescription
    let segmenter = Segmenter(network: ModelSegmentation(model), options: SegmentationOptions(tileSize: 96))
    let size = o.imageSize
    // One wide unseen scene with shapes at the training scale (a 3x3 mosaic of training-size
    // images would put hard seams, which no training image has, across the picture).
    let wide = SyntheticShapes(size: 3 * size, count: 1, seed: seed &+ 2000, shapeScale: size)[0]
    let image = wide.image, truth = wide.label
    let result = segmenter.segment(rgb: image)
    var scene = ConfusionMatrix(classes: d.classes)
    scene.update(prediction: result.labelTensor.unsqueezed(axis: 0), label: truth.unsqueezed(axis: 0))
    let input = Image(tensor: image), side = 3 * size
    try PNG.write(input, to: path("input.png"))
    try PNG.write(result.labelImage(palette: d.colors), to: path("labels.png"))
    try PNG.write(overlayImage(input, labels: result.labels, palette: d.colors), to: path("overlay.png"))
    try PNG.write(IndexedImage(width: side, height: side, indices: truth.scalars.map { UInt8($0) }, palette: d.colors),
                  to: path("ground-truth.png"))
    let legend = formatLegend(segmentationLegend(labels: result.labels, classNames: d.classNames, palette: d.colors))
    try legend.write(toFile: path("legend.txt"), atomically: true, encoding: .utf8)
    print(String(format: "segmented an unseen %dx%d scene in %d tiles from the reopened checkpoint: mean IU %.3f", side, side, result.tiles, scene.meanIU))
    print(legend, terminator: "")
    print("wrote " + ["input.png", "labels.png", "overlay.png", "ground-truth.png", "legend.txt", Trainer.checkpointFileName,
                      TrainingPlot.csvFileName, TrainingPlot.fileName].map(path).joined(separator: ", "))
} catch {
    fail("\(error)", status: 1)
}

// MARK: 4. Where to go next
print("""

next:
  # segment your own images with this checkpoint (it knows its model, classes and input convention)
  swift run -c release fcn-segment --weights \(checkpoint) --out segmented photo.jpg
  # train further (same options, more time)
  swift run -c release fcn-train --model fcn4s --width 0.125 --padding same --learn-upsampling --lovasz 1 \\
    --lr-mult conv5,fc6,fc7,score_fr=0.3 --lr-mult score_pool4,score_pool3,upscore2,upscore_pool4=5 --image-size 96 \\
    --train-count 100000 --batch 8 --optimizer adam --lr 4e-3 --warmup 50 --no-dropout --replicas 2 --seed \(seed) \\
    --minutes 10 --out \(outDir)-more --init-from \(checkpoint)
""")
