// Trainer: the reusable training loop behind `fcn-train`.
//
// One `Trainer` owns the network (a `VGGFCN` of the current stage), its optimizer, the
// sampling generator, the step counters and the history of the curves. A step draws a
// batch (`TrainingBatchSampler`), normalises it, runs forward (in `replicas` parts side by
// side, `DataParallelBatch`, when that is > 1), pixel-wise softmax
// cross-entropy (mean over labelled pixels; plus `lovaszWeight` x the Lovasz-softmax loss
// over the batch when that is > 0), backward and one optimizer update at the
// scheduled learning rate. `run` repeats steps within the budget, validating every
// `valEvery` steps and at the end of every stage (confusion matrix over the held-out
// images: pixel accuracy, mean class accuracy, mean IU, frequency-weighted IU), saving a
// checkpoint each time, and finally the CSV and the plot.
//
// Budget: `steps` (over all stages) and/or `minutes` (wall clock from the first step of the
// session plus the time of earlier sessions, validation included); stage j of k ends at
// `steps * (j+1) / k` or when `elapsed + last validation time >= minutes * (j+1) / k` (so
// the closing validation still fits in the budget).
//
// Schedules are pure functions of the step inside the stage and the stage length H; H is
// the stage's step budget, or under a time budget an estimate `t + remaining / (seconds
// per step so far)` refreshed every step. A checkpoint holds weights, optimizer state,
// step, stage, the sampling generator and the dropout generators, elapsed time and the
// history, so a run resumed from it with the same options continues bit for bit (with a
// step budget; a time budget depends on the clock by definition).
//
// Progressive resizing (`options.progressive`): each step draws its batch at the size of
// the phase that `stageProgress` (the used fraction of the stage's budget) is in.
import FCNCore
import FCNIO
import FCNModels
import Dispatch

/// Trains any `SegmentationModel`; see the file comment.
public final class Trainer {
    /// The options the trainer was built with (validated).
    public let options: TrainerOptions
    /// Training and validation samples.
    public let trainSource: any SegmentationSampleSource
    /// Samples of the validation passes (scored with `ValidationMetrics`).
    public let validationSource: any SegmentationSampleSource
    /// Number of classes (from the training source).
    public let classes: Int
    /// The network of the current stage.
    public internal(set) var model: any SegmentationModel
    /// The optimizer of the current stage.
    public internal(set) var optimizer: any Optimizer
    /// Optimizer steps taken over all stages.
    public internal(set) var step = 0
    /// Index of the current stage in `options.stages`.
    public internal(set) var stageIndex = 0
    /// The global step at which the current stage began.
    public internal(set) var stageStartStep = 0
    /// The batch-sampling generator (its state is checkpointed).
    public var rng: FCNRandom
    /// The processes training together (`join(_:)`); a group of one by default.
    public internal(set) var group: DistributedGroup = .single()
    /// The curves so far.
    public internal(set) var history = TrainingHistory()
    /// Time profile.
    public internal(set) var timings = TrainerTimings()
    /// The confusion matrix of the last validation (per-class IU: `classIU`).
    public internal(set) var lastConfusion: ConfusionMatrix?
    /// Loss weight per class (`options.classWeighting`); nil = all 1.
    public let classWeights: Tensor?
    /// What `options.initFrom` did (names copied, classifier replaced), nil without it.
    public internal(set) var initializationReport: String?

    /// The batch samplers: one per progressive phase (`until` < 1), then the full size (1).
    let samplers: [(until: Double, sampler: TrainingBatchSampler)]
    /// Elapsed seconds of earlier sessions (from a checkpoint).
    var elapsedBefore = 0.0
    /// Elapsed seconds when the current stage began.
    var stageStartElapsed = 0.0
    var sessionStart: UInt64?
    var lastValidationSeconds = 0.0
    /// Under several ranks, within `run`: rank 0's clock as all ranks agreed on it at the
    /// start of the current step (`agree(stopRequested:)`); nil: this process's own clock.
    var agreedClock: (elapsed: Double, validation: Double)?
    /// The gradient buckets of the current model under several ranks (built at its first step).
    var gradientPlan: GradientBuckets?
    var recentSteps: [(seconds: Double, loss: Float)] = []
    var lastImageSize: Int

    /// The checkpoint's file name inside `options.out`.
    public static let checkpointFileName = "checkpoint.safetensors"

    /// A trainer over explicit sources (tests, custom data). Builds the first stage's
    /// network (seeded by `options.seed`) and optimizer. Does not read `options.resume`
    /// (call `restore(from:)`), nor set `Compute.threads`.
    public init(options: TrainerOptions, train: any SegmentationSampleSource, validation: any SegmentationSampleSource) throws {
        try options.validate()
        guard train.count > 0 else { throw TrainerError("the training set is empty") }
        guard validation.classes == train.classes else {
            throw TrainerError("training data has \(train.classes) classes but validation data has \(validation.classes)")
        }
        self.options = options
        self.trainSource = train; self.validationSource = validation
        self.classes = train.classes
        self.rng = FCNRandom(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 ^ 0x7261_696E)
        var samplers: [(until: Double, sampler: TrainingBatchSampler)] = []
        for phase in options.progressive + [ProgressiveSize(size: options.imageSize, until: 1)] {
            guard let source = train.resized(to: phase.size) else {
                throw TrainerError("--progressive: the training data has a fixed size of \(train.fixedSize ?? 0) pixels and cannot be drawn at \(phase.size)")
            }
            samplers.append((phase.until, TrainingBatchSampler(source: source, batchSize: options.batch, size: phase.size,
                                                               flip: options.flip, padPixel: options.normalization.meanPixelRGB)))
        }
        self.samplers = samplers
        self.lastImageSize = samplers[0].sampler.size
        let m = try Trainer.makeModel(options, architecture: options.stages[0], classes: train.classes,
                                      classNames: options.classNames ?? train.classNames)
        if options.initialization == .kaiming { m.initializeForTraining(seed: options.seed) }
        if let path = options.initFrom { initializationReport = try Trainer.initialize(m, from: path) }
        self.model = m
        try Trainer.checkLayerNames(options, model: m)
        self.optimizer = Trainer.makeOptimizer(options, model: m)
        self.classWeights = try Trainer.classWeights(options.classWeighting, source: train)
    }

    /// The loss weights of `weighting` for the data of `source` (see `TrainerClassWeighting`):
    /// nil for `.none`; for `.inverseSqrt` `1/sqrt(count + 1)` per class over the labels of
    /// the first 200 samples (ignore label and out-of-range ids skipped; the +1 keeps absent
    /// classes finite), normalised to mean 1. Deterministic in the data, so a resumed run
    /// recomputes the same weights.
    public static func classWeights(_ weighting: TrainerClassWeighting, source: any SegmentationSampleSource) throws -> Tensor? {
        guard weighting == .inverseSqrt else { return nil }
        var counts = [Double](repeating: 1, count: source.classes)
        for i in 0..<min(200, source.count) {
            for v in try source.sample(i).label.scalars where v >= 0 && v < Float(source.classes) {
                counts[Int(v)] += 1
            }
        }
        let w = counts.map { 1 / $0.squareRoot() }
        let mean = w.reduce(0, +) / Double(w.count)
        return Tensor(shape: [w.count], scalars: w.map { Float($0 / mean) })
    }

    /// A trainer over the data the options name: synthetic shapes (training indices
    /// `0..<trainCount`, validation indices `1_000_000 ..< 1_000_000 + valCount` of the same
    /// dataset, so never seen in training) or a VOC folder (`train` and `val` splits, read
    /// with `readImageTensor` / `readLabelTensor`). Resumes from `options.resume` if set.
    public convenience init(options: TrainerOptions) throws {
        try options.validate()
        let (train, val) = try Trainer.dataSources(options)
        try self.init(options: options, train: train, validation: val)
        if let path = options.resume {
            try restore(from: TrainingCheckpoint.load(from: path))
        }
    }

    // MARK: Building blocks

    /// The training and validation samples the options name: synthetic shapes (training
    /// indices `0..<trainCount`, validation `1_000_000 ..< 1_000_000 + valCount` of the same
    /// dataset, so never seen in training) or a VOC folder (`train` and `val` splits).
    public static func dataSources(_ options: TrainerOptions) throws
        -> (train: any SegmentationSampleSource, validation: any SegmentationSampleSource) {
        switch options.data {
        case .synthetic:
            let dataSeed = options.seed &+ 0x5EED
            return (SyntheticSampleSource(dataset: SyntheticShapes(size: options.imageSize, count: options.trainCount, seed: dataSeed)),
                    SyntheticSampleSource(dataset: SyntheticShapes(size: options.imageSize, count: options.valCount, seed: dataSeed),
                                          offset: 1_000_000))
        case .voc:
            guard let root = options.root else { throw TrainerError("--data voc needs --root DIR") }
            let tr = try VOCSegmentation(root: root, split: "train", imageDecoder: { try readImageTensor(path: $0) },
                                         labelDecoder: { try readLabelTensor(path: $0) })
            let va = try VOCSegmentation(root: root, split: "val", imageDecoder: { try readImageTensor(path: $0) },
                                         labelDecoder: { try readLabelTensor(path: $0) })
            return (VOCSampleSource(tr, classNames: options.classNames),
                    VOCSampleSource(va, limit: options.valCount == 0 ? nil : options.valCount, classNames: options.classNames))
        }
    }

    /// A fresh network of `architecture` for the options (width, padding and learned
    /// upsampling for the VGG FCNs, the auxiliary head for fcn_resnet50/101), seeded by
    /// `options.seed`, with the input convention and class names recorded in its description.
    public static func makeModel(_ options: TrainerOptions, architecture: ModelArchitecture, classes: Int,
                                 classNames: [String]?) throws -> any SegmentationModel {
        let vgg = architecture.isVGG
        let d = ModelDescription(architecture: architecture, classes: classes, width: vgg ? options.width : 1,
                                 padding: vgg ? options.padding : .caffe, learnedUpsampling: vgg && options.learnUpsampling,
                                 auxiliaryHead: architecture.isTorchvisionFCN && options.auxiliaryLoss,
                                 classNames: classNames?.count == classes ? classNames : nil, input: options.normalization)
        if let n = classNames, n.count != classes {
            throw TrainerError("--class-names gives \(n.count) names for \(classes) classes")
        }
        do { return try d.makeModel(seed: options.seed) } catch let FCNError.mismatch(m) { throw TrainerError(m) }
    }

    /// Copies into `model` every tensor of the weights in `path` (any file `ModelFile`
    /// reads) whose name and shape match; tensors of the same name and another shape (the
    /// classifier of another class count) keep the model's initialisation. Returns what was
    /// done, for the log. Throws when nothing matches.
    public static func initialize(_ model: any SegmentationModel, from path: String) throws -> String {
        let file = try SafeTensorsFile(path: path)
        let prefix = (try? ModelFile.describe(file, name: path, overrides: ModelOverrides(force: true)))?.tensorPrefix ?? ""
        let own = Dictionary(model.namedState(), uniquingKeysWith: { a, _ in a })
        var copied = 0, replaced: [String] = []
        var state: [String: Tensor] = [:]
        for (name, t) in own {
            guard let e = file.entries[prefix + name] else { continue }
            if e.shape == t.shape { state[name] = try file.tensor(prefix + name); copied += 1 } else { replaced.append(name) }
        }
        guard copied > 0 else {
            throw TrainerError("--init-from '\(path)': no tensor of the file matches a parameter of \(model.modelDescription.architecture) by name and shape")
        }
        _ = try model.loadStateDict(state, strict: false)
        var report = "initialised \(copied) of \(own.count) tensors from '\(path)'"
        if !replaced.isEmpty {
            let layers = Set(replaced.map { String($0.split(separator: ".").dropLast().joined(separator: ".")) }).sorted()
            report += "; replaced (other shape: a new classifier for \(model.numClasses) classes): \(layers.joined(separator: ", "))"
        }
        let missing = own.count - copied - replaced.count
        if missing > 0 { report += "; \(missing) tensors not in the file keep their initialisation" }
        return report
    }

    /// The optimizer the options describe, over the trainable parameters of `model`
    /// (frozen upsampling left out), with Caffe groups if asked.
    public static func makeOptimizer(_ options: TrainerOptions, model: any SegmentationModel) -> any Optimizer {
        let params: [any Optimizable] = model.optimizableParameters()
        var groups = options.caffeGroups ? ParameterGroup.caffeStyle(params) : [ParameterGroup(params)]
        if !options.layerLearningRates.isEmpty {
            // Each group splits by the --lr-mult entry (the last that matches) of its parameters.
            let rules = options.layerLearningRates
            groups = groups.flatMap { g in
                ParameterGroup.split(g.parameters, rules: rules.reversed().map { rule in
                    (matches: rule.matches, lrMultiplier: g.lrMultiplier * rule.multiplier, decayMultiplier: g.decayMultiplier)
                } + [(matches: { _ in true }, lrMultiplier: g.lrMultiplier, decayMultiplier: g.decayMultiplier)])
            }
        }
        switch options.optimizer {
        case .sgd:
            return SGD(groups, learningRate: options.learningRate, momentum: options.momentum, weightDecay: options.weightDecay)
        case .adam:
            return Adam(groups, learningRate: options.learningRate, weightDecay: options.weightDecay)
        case .adamw:
            return Adam.adamW(groups, learningRate: options.learningRate, weightDecay: options.weightDecay)
        }
    }

    /// Throws when an `--lr-mult` layer names no parameter of the networks the run trains.
    /// For the VGG FCNs the layers of every variant count, so that one set of flags serves
    /// 32s, 16s, 8s and 4s (names do not depend on the width: a 1/512-width copy lists them
    /// cheaply; seeded, so the shared initialisation generator is not advanced).
    static func checkLayerNames(_ options: TrainerOptions, model: any SegmentationModel) throws {
        guard !options.layerLearningRates.isEmpty else { return }
        var names: [String] = model.namedParameters().map(\.0)
        if options.model.isVGG {
            for variant in [VGGFCNVariant.fcn4s, .fcn8s, .fcn16s, .fcn32s] {
                names += VGGFCN(variant: variant, classes: 1, width: 1.0 / 512, seed: 0, padding: options.padding).namedParameters().map(\.0)
            }
        }
        var layers: [String] = []
        for n in names {
            let l = String(n.split(separator: ".")[0])
            if !layers.contains(l) { layers.append(l) }
        }
        for rule in options.layerLearningRates {
            for layer in rule.layers where !names.contains(where: { LayerLearningRate.parameter($0, belongsTo: layer) }) {
                throw TrainerError("--lr-mult: no layer of \(options.model.isVGG ? "a VGG16 FCN" : options.model.rawValue) matches '\(layer)'; the layers are \(layers.joined(separator: ", "))")
            }
        }
    }

    /// The schedule of a stage of `horizon` steps (warm-up in front when `warmup > 0`).
    public static func makeSchedule(_ options: TrainerOptions, horizon: Int) -> any LearningRateSchedule {
        let h = max(1, horizon), base = options.learningRate
        let inner: any LearningRateSchedule
        switch options.schedule {
        case .fixed: inner = ConstantLR(base)
        case .poly: inner = PolyLR(base: base, maxSteps: h, power: 0.9)
        case .step: inner = StepLR(base: base, stepSize: max(1, (h + 2) / 3), gamma: 0.1)
        case .exp: inner = ExponentialDecay(base: base, decayRate: 0.01, decaySteps: Double(h))
        }
        return options.warmup > 0 ? LinearWarmup(inner, warmupSteps: options.warmup) : inner
    }

    /// Training mode, with the dropout layers off when `options.dropout` is false.
    func setTrainingMode() {
        model.train()
        model.setDropout(enabled: options.dropout)
    }

    /// The current stage's architecture.
    public var architecture: ModelArchitecture { options.stages[stageIndex] }

    /// Seconds of training so far (earlier sessions included).
    public var elapsedSeconds: Double {
        if let c = agreedClock { return c.elapsed }
        guard let s = sessionStart else { return elapsedBefore }
        return elapsedBefore + Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9
    }

    /// Starts the wall clock of this session (done by `run`; call it when driving
    /// `trainStep` yourself under a time budget).
    public func startClock() {
        if sessionStart == nil { sessionStart = DispatchTime.now().uptimeNanoseconds }
    }

    var stageCount: Int { options.stages.count }

    /// Step at which the current stage ends under the step budget (nil without one).
    var stageEndStep: Int? {
        options.steps.map { $0 * (stageIndex + 1) / stageCount }
    }

    /// Seconds at which the current stage ends under the time budget (nil without one).
    var stageEndSeconds: Double? {
        options.minutes.map { $0 * 60 * Double(stageIndex + 1) / Double(stageCount) }
    }

    /// The schedule horizon of the current stage (see the file comment).
    public var stageHorizon: Int {
        let done = step - stageStartStep
        var h = stageEndStep.map { $0 - stageStartStep }
        if let endT = stageEndSeconds, done > 0 {
            let spent = elapsedSeconds - stageStartElapsed
            let perStep = max(spent / Double(done), 1e-6)
            let estimate = done + Int(max(0, endT - elapsedSeconds) / perStep)
            h = min(h ?? Int.max, estimate)
        }
        return max(1, h ?? 1)
    }

    /// The learning rate of the next step.
    public var currentLearningRate: Float {
        Trainer.makeSchedule(options, horizon: stageHorizon).lr(at: step - stageStartStep)
    }

    /// Fraction of the current stage's budget used, 0...1: the larger of the step fraction
    /// and the time fraction (whichever budget runs out first).
    public var stageProgress: Double {
        var f = 0.0
        if let e = stageEndStep { f = Double(step - stageStartStep) / Double(max(1, e - stageStartStep)) }
        if let t = stageEndSeconds, sessionStart != nil {
            f = max(f, (elapsedSeconds - stageStartElapsed) / max(1e-9, t - stageStartElapsed))
        }
        return min(1, max(0, f))
    }

    /// The sampler of the progressive phase `stageProgress` is in (the full size at the end).
    var currentSampler: TrainingBatchSampler {
        let p = stageProgress
        return (samplers.first { p < $0.until } ?? samplers[samplers.count - 1]).sampler
    }

    /// True when the current stage has used its budget.
    public var stageFinished: Bool {
        if let e = stageEndStep, step >= e { return true }
        if let t = stageEndSeconds, elapsedSeconds + (agreedClock?.validation ?? lastValidationSeconds) >= t { return true }
        return false
    }

    @inline(__always) func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    @inline(__always) func seconds(since t: UInt64) -> Double { Double(now() - t) / 1e9 }

    /// One optimizer step on a fresh batch. Throws if the data cannot be read or the loss
    /// is not finite (divergence: lower --lr).
    @discardableResult
    public func trainStep() throws -> TrainerStepResult {
        startClock()
        let t0 = now()
        let lr = currentLearningRate
        let sampler = currentSampler
        lastImageSize = sampler.size
        let (images, labels) = try sampler.next(using: &rng)
        let x = model.preferredPreprocessing.apply(images)
        let t1 = now()
        setTrainingMode()
        optimizer.learningRate = lr
        optimizer.zeroGrad()
        let model = self.model
        // Models with several outputs (the auxiliary head) run whole batches: --replicas is
        // for the VGG FCNs (TrainerOptions.validate).
        let ignore = model.modelDescription.ignoreLabel
        func lossOf(_ outputs: [(scores: Tensor, weight: Float)]) -> Tensor {
            var loss: Tensor?
            for (scores, weight) in outputs {
                var l = softmaxCrossEntropy(logits: scores, labels: labels, ignoreIndex: ignore, classWeights: classWeights)
                if options.lovaszWeight > 0 {
                    l = l + options.lovaszWeight * lovaszSoftmax(logits: scores, labels: labels, ignoreIndex: ignore)
                }
                loss = loss.map { $0 + weight * l } ?? (weight == 1 ? l : weight * l)
            }
            return loss!
        }
        if group.size > 1 {
            let (value, forwardEnd) = try distributedForwardBackward(x, labels: labels, loss: lossOf)
            guard value.isFinite else {
                throw TrainerError("training diverged at step \(step + 1): loss is \(value) (learning rate \(lr)); try a smaller --lr or a --warmup")
            }
            return try finishStep(t0: t0, t1: t1, t2: forwardEnd, lr: lr, value: value, imageSize: sampler.size)
        }
        var batch: DataParallelBatch?
        let outputs: [(scores: Tensor, weight: Float)]
        if options.replicas > 1 {
            let b = DataParallelBatch(input: x, parts: options.replicas) { model($0) }
            batch = b; outputs = [(b.output, 1)]
        } else {
            outputs = model.trainingOutputs(x)
        }
        let total = lossOf(outputs)
        let value = total.item
        let t2 = now()
        guard value.isFinite else {
            throw TrainerError("training diverged at step \(step + 1): loss is \(value) (learning rate \(lr)); try a smaller --lr or a --warmup")
        }
        if let batch { batch.backward(total) } else { total.backward() }
        return try finishStep(t0: t0, t1: t1, t2: t2, lr: lr, value: value, imageSize: sampler.size)
    }

    /// The optimizer update and the bookkeeping of a step whose gradients are in place.
    private func finishStep(t0: UInt64, t1: UInt64, t2: UInt64, lr: Float, value: Float, imageSize: Int) throws -> TrainerStepResult {
        let t3 = now()
        optimizer.step()
        step += 1
        let t4 = now()
        timings.data += Double(t1 - t0) / 1e9
        timings.forward += Double(t2 - t1) / 1e9
        timings.backward += Double(t3 - t2) / 1e9
        timings.update += Double(t4 - t3) / 1e9
        timings.steps += 1
        timings.images += options.batch
        let secs = Double(t4 - t0) / 1e9
        recentSteps.append((secs, value))
        if recentSteps.count > 50 { recentSteps.removeFirst(recentSteps.count - 50) }
        history.append(TrainingRecord(step: step, stage: stageIndex, architecture: architecture, elapsed: elapsedSeconds,
                                      loss: value, learningRate: lr))
        return TrainerStepResult(step: step, loss: value, learningRate: lr, seconds: secs, imageSize: imageSize)
    }

    /// Evaluates the current network on the validation samples (`evaluate(_:on:batchSize:)`:
    /// what segmentation runs) and records the metrics at the current step.
    @discardableResult
    public func validate() throws -> ValidationMetrics {
        let t0 = now()
        defer { setTrainingMode() }
        let cm = group.size > 1 ? try distributedEvaluation() : try evaluate(model, on: validationSource, batchSize: options.batch)
        let metrics = ValidationMetrics(cm)
        lastConfusion = cm
        lastValidationSeconds = seconds(since: t0)
        timings.validation += lastValidationSeconds
        history.recordValidation(metrics, step: step, stage: stageIndex, architecture: architecture, elapsed: elapsedSeconds)
        return metrics
    }

    /// Moves to the next stage (VGG FCNs): a network of the next variant initialised from the
    /// current one (`VGGFCN(initializedFrom:variant:)`), a fresh optimizer, the schedule restarted.
    public func advanceStage() {
        fcnCheck(stageIndex + 1 < stageCount, "Trainer.advanceStage", "already at the last stage (\(architecture))")
        stageIndex += 1
        guard let vgg = model as? VGGFCN, let variant = architecture.vggVariant else {
            fcnFail("Trainer.advanceStage", "stages are VGG FCNs (TrainerOptions.validate checks it), got \(architecture)")
        }
        model = VGGFCN(initializedFrom: vgg, variant: variant, seed: options.seed &+ UInt64(stageIndex),
                       trainableUpsampling: options.learnUpsampling)
        setTrainingMode()
        optimizer = Trainer.makeOptimizer(options, model: model)
        stageStartStep = step
        stageStartElapsed = elapsedSeconds
    }
}

import Foundation

/// The dropout layers of `model` in state-dict order (their generators are checkpointed).
func dropoutLayers(_ model: any SegmentationModel) -> [Dropout] { model.namedModules().compactMap { $0.1 as? Dropout } }

package func makeDirectory(_ path: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw FCNError.io("cannot create the output folder '\(path)': \(error.localizedDescription)")
    }
}
