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
import Dispatch

/// The metrics of one validation pass (FCN reference's score.py definitions).
public struct ValidationMetrics: Sendable, Equatable {
    /// Fraction of labelled pixels classified correctly (0...1).
    public var pixelAccuracy: Double
    /// Per-class pixel accuracy, averaged over the classes present in the ground truth.
    public var meanClassAccuracy: Double
    /// Mean intersection over union over the classes present: the headline FCN metric.
    public var meanIU: Double
    /// Intersection over union averaged with weights proportional to class pixel frequency.
    public var frequencyWeightedIU: Double

    /// Metrics from their four values (all fractions in 0...1).
    public init(pixelAccuracy: Double, meanClassAccuracy: Double, meanIU: Double, frequencyWeightedIU: Double) {
        self.pixelAccuracy = pixelAccuracy; self.meanClassAccuracy = meanClassAccuracy
        self.meanIU = meanIU; self.frequencyWeightedIU = frequencyWeightedIU
    }

    /// The metrics of a confusion matrix.
    public init(_ m: ConfusionMatrix) {
        self.init(pixelAccuracy: m.pixelAccuracy, meanClassAccuracy: m.meanClassAccuracy,
                  meanIU: m.meanIU, frequencyWeightedIU: m.frequencyWeightedIU)
    }
}

/// A failure of the training run itself (divergence).
public struct TrainerError: Error, CustomStringConvertible, Equatable {
    /// The human-readable reason, printed as is.
    public let message: String
    /// An error with the given message.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// What one training step did.
public struct TrainerStepResult: Sendable {
    /// The step count after this step (1 for the first step).
    public var step: Int
    /// Mean cross-entropy of the batch (before the update).
    public var loss: Float
    /// Learning rate used.
    public var learningRate: Float
    /// Wall-clock seconds of the step (data, forward, backward, update).
    public var seconds: Double
    /// Side of the step's training images (smaller than `imageSize` in the early phases of
    /// progressive resizing).
    public var imageSize: Int
}

/// A snapshot of the run for progress displays.
public struct TrainerProgress: Sendable {
    /// Optimizer steps taken so far, over all stages.
    public var step: Int
    /// Steps of the whole run: the budget, or an estimate under a time budget.
    public var totalSteps: Int?
    /// Fraction of the budget used, 0...1 (the larger of the step and the time fraction).
    public var fraction: Double
    /// Mean cross-entropy of the last batch.
    public var loss: Float
    /// Mean loss over the last (up to) 50 steps.
    public var smoothedLoss: Float
    /// Learning rate of the last step.
    public var learningRate: Float
    /// Training throughput over the recent steps.
    public var imagesPerSecond: Double
    /// Estimated seconds left (nil when unknown).
    public var etaSeconds: Double?
    /// Seconds of training so far, including earlier sessions of a resumed run.
    public var elapsedSeconds: Double
    /// Index (0-based) of the current stage.
    public var stage: Int
    /// Number of stages (1 unless the run is staged 32s, 16s, 8s).
    public var stageCount: Int
    /// The FCN variant of the current stage.
    public var variant: VGGFCNVariant
    /// The last validation, if any.
    public var lastValidation: ValidationMetrics?
    /// Side of the last step's training images (progressive resizing changes it).
    public var imageSize: Int
}

/// Events reported by `Trainer.run`.
public enum TrainerEvent: Sendable {
    /// A training step finished.
    case step(TrainerProgress)
    /// A validation pass finished at `step`, taking `seconds`.
    case validated(step: Int, metrics: ValidationMetrics, seconds: Double)
    /// A stage began (`index` 0-based of `count`); also sent for the first stage.
    case stageStarted(index: Int, count: Int, variant: VGGFCNVariant)
    /// A checkpoint was written.
    case checkpointSaved(path: String)
}

/// How `Trainer.run` ended.
public enum TrainerOutcome: Sendable, Equatable {
    /// The budget was used up.
    case completed
    /// `shouldStop` returned true (e.g. Ctrl-C); a checkpoint was saved.
    case interrupted
}

/// Seconds spent per phase since the trainer was created (for profiling).
public struct TrainerTimings: Sendable {
    /// Seconds in data loading, forward pass, backward pass, optimizer update, validation and
    /// checkpoint writing, respectively.
    public var data = 0.0, forward = 0.0, backward = 0.0, update = 0.0, validation = 0.0, checkpoints = 0.0
    /// Training steps and images processed, for throughput figures.
    public var steps = 0, images = 0
    /// All counters at zero.
    public init() {}
    /// Training seconds (data + forward + backward + update).
    public var training: Double { data + forward + backward + update }
}

/// Trains a VGG16 FCN; see the file comment.
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
    public private(set) var model: VGGFCN
    /// The optimizer of the current stage.
    public private(set) var optimizer: any Optimizer
    /// Optimizer steps taken over all stages.
    public private(set) var step = 0
    /// Index of the current stage in `options.stages`.
    public private(set) var stageIndex = 0
    /// The global step at which the current stage began.
    public private(set) var stageStartStep = 0
    /// The batch-sampling generator (its state is checkpointed).
    public var rng: FCNRandom
    /// The curves so far.
    public private(set) var history = TrainingHistory()
    /// Time profile.
    public private(set) var timings = TrainerTimings()
    /// The confusion matrix of the last validation (per-class IU: `classIU`).
    public private(set) var lastConfusion: ConfusionMatrix?
    /// Loss weight per class (`options.classWeighting`); nil = all 1.
    public let classWeights: Tensor?

    /// The batch samplers: one per progressive phase (`until` < 1), then the full size (1).
    private let samplers: [(until: Double, sampler: TrainingBatchSampler)]
    /// Elapsed seconds of earlier sessions (from a checkpoint).
    private var elapsedBefore = 0.0
    /// Elapsed seconds when the current stage began.
    private var stageStartElapsed = 0.0
    private var sessionStart: UInt64?
    private var lastValidationSeconds = 0.0
    private var recentSteps: [(seconds: Double, loss: Float)] = []
    private var lastImageSize: Int

    /// File names inside `options.out`.
    public static let checkpointFileName = "checkpoint.safetensors"
    /// The curves as CSV, rewritten at each validation.
    public static let csvFileName = "curves.csv"
    /// The curves as a PNG plot (see `TrainingPlot`), rewritten with the CSV.
    public static let plotFileName = "curves.png"

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
        let m = VGGFCN(variant: options.stages[0], classes: train.classes, width: options.width, seed: options.seed,
                       trainableUpsampling: options.learnUpsampling, padding: options.padding)
        if options.initialization == .kaiming { Trainer.kaimingInitialize(m, seed: options.seed) }
        self.model = m
        try Trainer.checkLayerNames(options)
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
        let train: any SegmentationSampleSource, val: any SegmentationSampleSource
        switch options.data {
        case .synthetic:
            let dataSeed = options.seed &+ 0x5EED
            train = SyntheticSampleSource(dataset: SyntheticShapes(size: options.imageSize, count: options.trainCount, seed: dataSeed))
            val = SyntheticSampleSource(dataset: SyntheticShapes(size: options.imageSize, count: options.valCount, seed: dataSeed),
                                        offset: 1_000_000)
        case .voc:
            let root = options.root!
            let tr = try VOCSegmentation(root: root, split: "train", imageDecoder: { try readImageTensor(path: $0) },
                                         labelDecoder: { try readLabelTensor(path: $0) })
            let va = try VOCSegmentation(root: root, split: "val", imageDecoder: { try readImageTensor(path: $0) },
                                         labelDecoder: { try readLabelTensor(path: $0) })
            train = VOCSampleSource(tr)
            val = VOCSampleSource(va, limit: options.valCount == 0 ? nil : options.valCount)
        }
        try self.init(options: options, train: train, validation: val)
        if let path = options.resume {
            try restore(from: TrainingCheckpoint.load(from: path))
        }
    }

    // MARK: Building blocks

    /// The optimizer the options describe, over the trainable parameters of `model`
    /// (frozen upsampling left out), with Caffe groups if asked.
    public static func makeOptimizer(_ options: TrainerOptions, model: VGGFCN) -> any Optimizer {
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

    /// Throws when an `--lr-mult` layer names no parameter of the network trained last
    /// (names do not depend on the width, so a 1/512-width copy lists them cheaply; seeded,
    /// so the shared initialisation generator is not advanced).
    static func checkLayerNames(_ options: TrainerOptions) throws {
        guard !options.layerLearningRates.isEmpty else { return }
        // The layers of every variant, so that one set of flags serves 32s, 16s and 8s (and
        // every stage of a staged run); a rule applies where the network has the layer.
        var names: [String] = [], layers: [String] = []
        for variant in [VGGFCNVariant.fcn8s, .fcn16s, .fcn32s] {
            for (n, _) in VGGFCN(variant: variant, classes: 1, width: 1.0 / 512, seed: 0, padding: options.padding).namedParameters()
            where !names.contains(n) {
                names.append(n)
                let l = String(n.split(separator: ".")[0])
                if !layers.contains(l) { layers.append(l) }
            }
        }
        for rule in options.layerLearningRates {
            for layer in rule.layers where !names.contains(where: { LayerLearningRate.parameter($0, belongsTo: layer) }) {
                throw TrainerError("--lr-mult: no layer of a VGG16 FCN matches '\(layer)'; the layers are \(layers.joined(separator: ", "))")
            }
        }
    }

    /// Re-initialises conv1_1 ... fc7 with `N(0, 2 / fan_in)` weights and zero biases
    /// (He et al. 2015), seeded.
    public static func kaimingInitialize(_ model: VGGFCN, seed: UInt64) {
        var g = FCNRandom(seed: seed ^ 0x4B41_494D_494E_47)
        for conv in model.convolutions.map(\.layer) + [model.fc6, model.fc7] {
            let s = conv.weight.shape
            let fanIn = s[1] * s[2] * s[3]
            conv.weight.assign(Tensor.randn(s, std: (2 / Float(fanIn)).squareRoot(), using: &g))
            if let b = conv.bias { b.assign(Tensor.zeros(b.shape)) }
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
    private func setTrainingMode() {
        model.train()
        if !options.dropout { model.drop6.isTraining = false; model.drop7.isTraining = false }
    }

    /// The current stage's variant.
    public var variant: VGGFCNVariant { options.stages[stageIndex] }

    /// Seconds of training so far (earlier sessions included).
    public var elapsedSeconds: Double {
        guard let s = sessionStart else { return elapsedBefore }
        return elapsedBefore + Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9
    }

    /// Starts the wall clock of this session (done by `run`; call it when driving
    /// `trainStep` yourself under a time budget).
    public func startClock() {
        if sessionStart == nil { sessionStart = DispatchTime.now().uptimeNanoseconds }
    }

    private var stageCount: Int { options.stages.count }

    /// Step at which the current stage ends under the step budget (nil without one).
    private var stageEndStep: Int? {
        options.steps.map { $0 * (stageIndex + 1) / stageCount }
    }

    /// Seconds at which the current stage ends under the time budget (nil without one).
    private var stageEndSeconds: Double? {
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
    private var currentSampler: TrainingBatchSampler {
        let p = stageProgress
        return (samplers.first { p < $0.until } ?? samplers[samplers.count - 1]).sampler
    }

    /// True when the current stage has used its budget.
    public var stageFinished: Bool {
        if let e = stageEndStep, step >= e { return true }
        if let t = stageEndSeconds, elapsedSeconds + lastValidationSeconds >= t { return true }
        return false
    }

    @inline(__always) private func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    @inline(__always) private func seconds(since t: UInt64) -> Double { Double(now() - t) / 1e9 }

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
        let x = options.normalization.apply(images)
        let t1 = now()
        setTrainingMode()
        optimizer.learningRate = lr
        optimizer.zeroGrad()
        let model = self.model
        let batch = DataParallelBatch(input: x, parts: options.replicas) { model($0) }
        let logits = batch.output
        var loss = softmaxCrossEntropy(logits: logits, labels: labels, classWeights: classWeights)
        if options.lovaszWeight > 0 {
            loss = loss + options.lovaszWeight * lovaszSoftmax(logits: logits, labels: labels)
        }
        let value = loss.item
        let t2 = now()
        guard value.isFinite else {
            throw TrainerError("training diverged at step \(step + 1): loss is \(value) (learning rate \(lr)); try a smaller --lr or a --warmup")
        }
        batch.backward(loss)
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
        history.append(TrainingRecord(step: step, stage: stageIndex, variant: variant, elapsed: elapsedSeconds,
                                      loss: value, learningRate: lr))
        return TrainerStepResult(step: step, loss: value, learningRate: lr, seconds: secs, imageSize: sampler.size)
    }

    /// Evaluates the current network on the validation samples (eval mode, no gradients)
    /// and records the metrics at the current step.
    @discardableResult
    public func validate() throws -> ValidationMetrics {
        let t0 = now()
        var cm = ConfusionMatrix(classes: classes)
        model.eval()
        defer { setTrainingMode() }
        let n = validationSource.count
        let bs = validationSource.fixedSize != nil ? options.batch : 1
        var i = 0
        while i < n {
            let idx = Array(i..<min(n, i + bs))
            let samples = try idx.map { try validationSource.sample($0) }
            let x = options.normalization.apply(Tensor.stack(samples.map(\.image)))
            let y = Tensor.stack(samples.map(\.label))
            let scores = withoutGrad { model(x) }
            cm.update(scores: scores, label: y)
            i += bs
        }
        let metrics = ValidationMetrics(cm)
        lastConfusion = cm
        lastValidationSeconds = seconds(since: t0)
        timings.validation += lastValidationSeconds
        history.recordValidation(metrics, step: step, stage: stageIndex, variant: variant, elapsed: elapsedSeconds)
        return metrics
    }

    /// Moves to the next stage: a network of the next variant initialised from the current
    /// one (`VGGFCN(initializedFrom:variant:)`), a fresh optimizer, the schedule restarted.
    public func advanceStage() {
        fcnCheck(stageIndex + 1 < stageCount, "Trainer.advanceStage", "already at the last stage (\(variant))")
        stageIndex += 1
        model = VGGFCN(initializedFrom: model, variant: variant, seed: options.seed &+ UInt64(stageIndex),
                       trainableUpsampling: options.learnUpsampling)
        setTrainingMode()
        optimizer = Trainer.makeOptimizer(options, model: model)
        stageStartStep = step
        stageStartElapsed = elapsedSeconds
    }

    // MARK: Checkpoints

    /// Everything needed to continue exactly: full model state (frozen layers included, so
    /// the file alone is a usable network), optimizer state, step (schedule step = step in
    /// the stage), the sampling generator and, in `info`, the stage, the dropout generators,
    /// elapsed time, the model description and the history CSV.
    public func makeCheckpoint() -> TrainingCheckpoint {
        var info: [String: String] = [
            "model": "fcn" + variant.rawValue, "width": String(options.width), "classes": String(classes),
            "padding": options.padding.rawValue,
            "normalization": options.normalization == .caffe ? "caffe" : "torchvision",
            "trainer.stage": String(stageIndex), "trainer.stage_start": String(stageStartStep),
            "trainer.stages": options.stages.map(\.rawValue).joined(separator: ","),
            "trainer.elapsed": String(elapsedSeconds), "trainer.stage_start_elapsed": String(stageStartElapsed),
            "trainer.seed": String(options.seed),
            "trainer.dropout": "\(model.drop6.generator.state),\(model.drop7.generator.state)",
            "trainer.history": history.csv(),
        ]
        info["trainer.last_validation_seconds"] = String(lastValidationSeconds)
        return TrainingCheckpoint(model: model.stateDict().mapValues { $0.detached() }, optimizer: optimizer.state(),
                                  step: step, scheduleStep: step - stageStartStep, rngState: rng.state, info: info)
    }

    /// Writes `makeCheckpoint()` atomically to `path`.
    public func saveCheckpoint(to path: String) throws {
        let t0 = now()
        try makeCheckpoint().save(to: path)
        timings.checkpoints += seconds(since: t0)
    }

    /// Restores a checkpoint written by a trainer with the same options: rebuilds the
    /// stage's network, loads weights, optimizer state, counters, generators and history.
    /// Throws `FCNError.mismatch` when the checkpoint is of another model, width, class
    /// count or stage plan, or was not written by a trainer.
    public func restore(from c: TrainingCheckpoint) throws {
        func info(_ k: String) throws -> String {
            guard let v = c.info[k] else { throw FCNError.mismatch("checkpoint was not written by the trainer: info '\(k)' is missing") }
            return v
        }
        let plan = options.stages.map(\.rawValue).joined(separator: ",")
        guard try info("trainer.stages") == plan else {
            throw FCNError.mismatch("checkpoint trains stages \(try info("trainer.stages")), the options ask for \(plan) (check --model / --staged)")
        }
        guard let w = Double(try info("width")), w == options.width else {
            throw FCNError.mismatch("checkpoint has width \(try info("width")), the options ask for \(options.width) (check --width)")
        }
        // Checkpoints from before the padding option are of the Caffe layout.
        guard (c.info["padding"] ?? VGGFCNPadding.caffe.rawValue) == options.padding.rawValue else {
            throw FCNError.mismatch("checkpoint has padding \(c.info["padding"] ?? "caffe"), the options ask for \(options.padding.rawValue) (check --padding)")
        }
        guard try info("classes") == String(classes) else {
            throw FCNError.mismatch("checkpoint has \(try info("classes")) classes, the data has \(classes)")
        }
        guard let stage = Int(try info("trainer.stage")), stage >= 0, stage < stageCount,
              let start = Int(try info("trainer.stage_start")), start <= c.step,
              let elapsed = Double(try info("trainer.elapsed")),
              let stageElapsed = Double(try info("trainer.stage_start_elapsed")) else {
            throw FCNError.mismatch("checkpoint has malformed trainer counters")
        }
        let drops = try info("trainer.dropout").split(separator: ",").compactMap { UInt64($0) }
        guard drops.count == 2 else { throw FCNError.mismatch("checkpoint has malformed dropout generator states") }
        guard let rngState = c.rngState else { throw FCNError.mismatch("checkpoint has no sampling generator state") }
        guard let opt = c.optimizer else { throw FCNError.mismatch("checkpoint has no optimizer state") }
        let hist = try TrainingHistory(csv: try info("trainer.history"))

        let m = VGGFCN(variant: options.stages[stage], classes: classes, width: options.width, seed: options.seed,
                       trainableUpsampling: options.learnUpsampling, padding: options.padding)
        try m.loadStateDict(c.model)
        m.drop6.generator.state = drops[0]
        m.drop7.generator.state = drops[1]
        let o = Trainer.makeOptimizer(options, model: m)
        try o.load(opt)
        model = m; optimizer = o
        setTrainingMode()
        stageIndex = stage; stageStartStep = start; step = c.step
        rng.state = rngState
        elapsedBefore = elapsed; stageStartElapsed = stageElapsed; sessionStart = nil
        lastValidationSeconds = Double(c.info["trainer.last_validation_seconds"] ?? "") ?? 0
        history = hist
        recentSteps = []
    }

    // MARK: Outputs

    /// Writes the curves: `<out>/curves.csv` and `<out>/curves.png`. Returns the paths.
    @discardableResult
    public func writeCurves(to folder: String) throws -> [String] {
        try makeDirectory(folder)
        let csvPath = folder + "/" + Trainer.csvFileName, pngPath = folder + "/" + Trainer.plotFileName
        try writeFileAtomically(Data(history.csv().utf8), to: csvPath)
        try PNG.write(TrainingPlot.render(history), to: pngPath)
        return [csvPath, pngPath]
    }

    private func saveAll(_ onEvent: (TrainerEvent) -> Void) throws {
        guard let out = options.out else { return }
        try makeDirectory(out)
        let path = out + "/" + Trainer.checkpointFileName
        try saveCheckpoint(to: path)
        onEvent(.checkpointSaved(path: path))
        try writeCurves(to: out)
    }

    /// A progress snapshot.
    public func progress() -> TrainerProgress {
        let el = elapsedSeconds
        var frac = 0.0
        var eta: Double?
        let perStep = recentSteps.isEmpty ? nil : recentSteps.map(\.seconds).reduce(0, +) / Double(recentSteps.count)
        var total: Int? = options.steps
        if let s = options.steps {
            frac = Double(step) / Double(s)
            if let p = perStep { eta = Double(s - step) * p }
        }
        if let m = options.minutes {
            let budget = m * 60
            frac = max(frac, el / budget)
            eta = min(eta ?? .infinity, max(0, budget - el))
            if let p = perStep, step > 0 {
                let est = step + Int(max(0, budget - el) / max(p, 1e-9))
                total = min(total ?? Int.max, est)
            }
        }
        let ips = perStep.map { Double(options.batch) / max($0, 1e-9) } ?? 0
        let last = history.records.last
        let smooth = recentSteps.isEmpty ? (last?.loss ?? .nan) : recentSteps.map(\.loss).reduce(0, +) / Float(recentSteps.count)
        return TrainerProgress(step: step, totalSteps: total, fraction: min(1, frac), loss: last?.loss ?? .nan,
                               smoothedLoss: smooth, learningRate: last?.learningRate ?? currentLearningRate,
                               imagesPerSecond: ips, etaSeconds: eta, elapsedSeconds: el, stage: stageIndex,
                               stageCount: stageCount, variant: variant, lastValidation: history.lastValidation,
                               imageSize: lastImageSize)
    }

    /// Trains until the budget is used or `shouldStop()` returns true (checked between
    /// steps). Validates every `valEvery` steps of a stage and at each stage end, saving a
    /// checkpoint and the curves to `options.out` each time; on interruption saves them
    /// and returns `.interrupted`.
    @discardableResult
    public func run(shouldStop: () -> Bool = { false }, onEvent: (TrainerEvent) -> Void = { _ in }) throws -> TrainerOutcome {
        startClock()
        if step == stageStartStep { onEvent(.stageStarted(index: stageIndex, count: stageCount, variant: variant)) }
        while true {
            if stageFinished {
                let p = history.lastValidationPoint
                if p == nil || p!.step != step || p!.stage != stageIndex {
                    let t0 = now()
                    let m = try validate()
                    onEvent(.validated(step: step, metrics: m, seconds: seconds(since: t0)))
                }
                try saveAll(onEvent)
                if stageIndex + 1 < stageCount {
                    if let out = options.out {
                        try saveCheckpoint(to: out + "/checkpoint-fcn\(variant.rawValue).safetensors")
                    }
                    advanceStage()
                    onEvent(.stageStarted(index: stageIndex, count: stageCount, variant: variant))
                    continue
                }
                return .completed
            }
            if shouldStop() {
                try saveAll(onEvent)
                return .interrupted
            }
            try trainStep()
            onEvent(.step(progress()))
            if options.valEvery > 0 && (step - stageStartStep) % options.valEvery == 0 && !stageFinished {
                let t0 = now()
                let m = try validate()
                onEvent(.validated(step: step, metrics: m, seconds: seconds(since: t0)))
                try saveAll(onEvent)
            }
        }
    }
}

import Foundation

func makeDirectory(_ path: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw FCNError.io("cannot create the output folder '\(path)': \(error.localizedDescription)")
    }
}
