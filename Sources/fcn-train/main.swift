// fcn-train: trains any FCN the library builds (VGG16 32s, 16s, 8s, staged; ResNet FCN-8s;
// fcn_resnet50/101) on synthetic shapes or a VOC folder. A thin shell over the library and
// FCNTools: TrainCommand.parse, Trainer, TrainerConsole, TrainerInterrupt, TrainingPlot.
// See `fcn-train --help`.
//
//   swift build -c release --product fcn-train
//   .build/release/fcn-train --model fcn8s --width 0.1875 --padding same --learn-upsampling \
//       --lovasz 1 --lr-mult conv5,fc6,fc7,score_fr=0.3 --lr-mult 'score_pool*,upscore*=5' \
//       --image-size 128 --progressive 64@0.4,96@0.7 --train-count 100000 --optimizer adam \
//       --lr 3e-3 --warmup 100 --no-dropout --seed 1 --threads 2 --replicas 2 --minutes 10 \
//       --out run1
//   .build/release/fcn-train <the same model flags> --val-count 1000 --resume run1/checkpoint.safetensors --evaluate
// (the recipe of the 10-minute synthetic-shapes runs in README.md, with their figures)
//
// Exit status (as in every tool): 0 done, 1 failed run (divergence, a write that failed
// during the run), 2 usage or input error (bad arguments, unreadable or corrupt data,
// weights or checkpoints), 130 interrupted by Ctrl-C after saving a checkpoint.
import FCNTools
import FCN
import Foundation

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("fcn-train: \(message)\n".utf8))
    exit(status)
}

/// "background 0.988, disc 0.931, ...": the IU of every class, by name (or class id).
func classIUText(_ cm: ConfusionMatrix, _ d: ModelDescription) -> String {
    cm.classIU.enumerated().map { String(format: "%@ %.3f", d.className($0.offset), $0.element) }.joined(separator: ", ")
}

let options: TrainerOptions
do {
    switch try TrainCommand.parse(Array(CommandLine.arguments.dropFirst())) {
    case .help:
        print(TrainCommand.usage)
        exit(0)
    case .train(let o):
        options = o
    }
} catch {
    fail("\(error)\n(see fcn-train --help)", status: 2)
}

if let t = options.threads { Compute.threads = t }
// Under mpirun / srun: the processes of the job (a group of one otherwise, MPI not loaded).
let group: DistributedGroup
do { group = try DistributedGroup.initialize(.automatic) } catch { fail("\(error)", status: 2) }
// Only rank 0 prints (and, in the trainer, writes).
let console = group.rank == 0 ? TrainerConsole.standardError(showsProgress: options.progress)
                              : TrainerConsole(isTerminal: false, showsProgress: false) { _ in }

if options.evaluateOnly {
    // The checkpoint describes its model: opened the way fcn-segment opens it, evaluated on
    // the validation images of --data / --seed / --image-size / --val-count.
    do {
        let path = options.resume!
        // Inference as fcn-segment runs it: weights kept packed (and, under --precision bf16,
        // in bfloat16).
        Compute.weightCacheMegabytes = 1024
        Compute.precision = options.precision
        let model = try ModelFile.open(path)
        let d = model.modelDescription
        let validation = try Trainer.dataSources(options).validation
        // Under --precision bf16, also float32 side by side: what bfloat16 costs this model.
        let comparison = options.precision == .float32 || !Compute.bfloat16Supported ? nil
            : try comparePrecisions(model, on: validation, precision: options.precision, batchSize: options.batch)
        let cm = try comparison?.reduced ?? evaluate(model, on: validation, batchSize: options.batch)
        var text = "fcn-train: \(d.architecture) from \(path), \(validation.count) validation images (seed \(options.seed), \(options.imageSize) px)"
        text += Compute.effectivePrecision == .bfloat16 ? ", bfloat16" : ""
        if let notice = Compute.unsupportedNotice(options.precision, tool: "fcn-train") { text += "\n" + notice }
        text += "\nvalidation: " + TrainerConsole.metricsText(ValidationMetrics(cm))
        if let c = comparison {
            text += String(format: "\nagainst float32: %.3f%% of pixels with the same label, mean IU %.4f in float32 (%+.4f), "
                           + "scores %.2e relative (RMS), largest difference %.2e of the largest |score|",
                           100 * c.labelAgreement, ValidationMetrics(c.float32).meanIU, -c.meanIUDrop,
                           c.relativeScoreError, Double(c.maxError / max(c.maxScore, .leastNormalMagnitude)))
        }
        text += "\nIU per class: " + classIUText(cm, d)
        // Row-normalised confusion: where each true class's pixels went.
        text += "\nconfusion (rows: true class, columns: predicted, fraction of the row's pixels):"
        let width = max(2, (0..<cm.classes).map { d.className($0).count }.max() ?? 2)
        for gt in 0..<cm.classes {
            let row = (0..<cm.classes).map { cm[gt, $0] }, n = max(1, row.reduce(0, +))
            let name = d.className(gt)
            text += "\n  " + String(repeating: " ", count: width - name.count) + name + " "
                + row.map { String(format: " %.4f", Double($0) / Double(n)) }.joined()
        }
        console.message(text)
        exit(0)
    } catch let e as FCNError {
        fail("\(e)", status: 2)
    } catch {
        fail("\(error)", status: 1)
    }
}

let trainer: Trainer
do {
    trainer = try Trainer(options: options)
    try trainer.join(group)
} catch let e as CommandLineError {
    fail("\(e)", status: 2)
} catch let e as FCNError {
    fail("\(e)", status: 2)
} catch let e as TrainerError {
    fail("\(e)", status: 2)
} catch {
    fail("\(error)", status: 1)
}
if let report = trainer.initializationReport { console.message("fcn-train: " + report) }

let interrupt = TrainerInterrupt.install()

let plan = options.stages.map { "\($0)" }.joined(separator: " -> ")
let description = trainer.model.modelDescription
console.message("fcn-train: \(plan)" + (description.architecture.isVGG ? ", width \(options.width)" : "") + ", \(description.input) inputs, \(trainer.trainSource.count) training / \(trainer.validationSource.count) validation images, "
    + "\(trainer.model.trainableParameterCount) trainable parameters, batch \(options.batch), \(options.optimizer.rawValue) lr \(options.learningRate) "
    + "\(options.schedule.rawValue), \(Compute.threads) threads" + (group.size > 1 ? " x \(group.size) ranks (\(group.backend))" : "")
    + (options.progressive.isEmpty ? "" : ", images " + (options.progressive.map { "\($0.size) px until \(Int(($0.until * 100).rounded()))%" }
        + ["\(options.imageSize) px"]).joined(separator: ", then "))
    + (options.resume.map { ", resumed at step \(trainer.step) from \($0)" } ?? ""))

let outcome: TrainerOutcome
do {
    outcome = try trainer.run(shouldStop: {
        if interrupt.isRaised { console.message("fcn-train: interrupted; saving a checkpoint (Ctrl-C again quits at once)") }
        return interrupt.isRaised
    }, onEvent: { event in
        console.handle(event)
        if case .saved(let folder) = event, group.rank == 0 {
            do { try TrainingPlot.writeCurves(trainer.history, to: folder) } catch { console.message("fcn-train: cannot write the curves: \(error)") }
        }
    })
} catch {
    console.finish()
    if let out = options.out {
        _ = try? TrainingPlot.writeCurves(trainer.history, to: out)
    }
    fail("\(error)", status: 1)
}
console.finish()

let t = trainer.timings
let perImage = t.images > 0 ? t.training / Double(t.images) : 0
var summary = "fcn-train: \(outcome == .interrupted ? "interrupted" : "done") at step \(trainer.step) after \(TrainerConsole.duration(trainer.elapsedSeconds))"
if let v = trainer.history.lastValidation { summary += "\nlast validation: " + TrainerConsole.metricsText(v) }
if let cm = trainer.lastConfusion {
    summary += "\nIU per class: " + classIUText(cm, trainer.model.modelDescription)
}
if t.steps > 0 {
    summary += String(format: "\ntime this session: data %.1f s, forward %.1f s, backward %.1f s, update %.1f s, validation %.1f s, checkpoints %.1f s; %.1f images/s (%.1f ms per image)",
                      t.data, t.forward, t.backward, t.update, t.validation, t.checkpoints,
                      Double(t.images) / max(t.training, 1e-9), perImage * 1000)
    if t.communication > 0 {
        summary += String(format: "; of the forward and backward, %.1f s (%.0f%%) in collectives across the ranks (waiting for the slowest included)",
                          t.communication, 100 * t.communication / max(t.forward + t.backward, 1e-9))
    }
}
if let out = options.out {
    summary += "\noutputs: \(out)/\(Trainer.checkpointFileName), \(out)/\(TrainingPlot.csvFileName), \(out)/\(TrainingPlot.fileName)"
    if outcome == .interrupted { summary += "\ncontinue with the same options and --resume \(out)/\(Trainer.checkpointFileName)" }
}
console.message(summary)
exit(outcome == .interrupted ? 130 : 0)
