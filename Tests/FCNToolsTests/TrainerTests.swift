// The training loop behind fcn-train: a tiny FCN learns (loss falls), a run interrupted
// half-way and resumed from its checkpoint ends bit for bit where an uninterrupted run
// ends, staged training moves 32s -> 16s -> 8s, the CSV and PNG outputs read back, and the
// command-line parser accepts and rejects what it should.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
@testable import FCNInference
@testable import FCNTools
import FCNTestSupport

@Suite struct TrainerTests {
    /// A tiny configuration: width 1/64 (1-8 channels), small images, a few steps.
    func tinyOptions(size: Int = 24, steps: Int = 6, out: String? = nil) -> TrainerOptions {
        var o = TrainerOptions()
        o.model = .fcn8s
        o.width = 1.0 / 64
        o.imageSize = size
        o.trainCount = 16
        o.valCount = 4
        o.steps = steps
        o.batch = 2
        o.optimizer = .adam
        o.learningRate = 1e-2
        o.schedule = .poly
        o.valEvery = 0
        o.seed = 7
        o.out = out
        o.progress = false
        return o
    }

    func temporaryFolder() -> String {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-trainer-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    @Test func lossFallsOnATinyFCN() throws {
        var o = tinyOptions(size: 32, steps: 14)
        o.trainCount = 2          // the same two images again and again: the loss must fall
        o.flip = false
        let trainer = try Trainer(options: o)
        try trainer.run()
        let losses = trainer.history.records.map(\.loss).filter { !$0.isNaN }
        #expect(losses.count == 14)
        let first = losses.prefix(2).reduce(0, +) / 2, last = losses.suffix(3).reduce(0, +) / 3
        #expect(last < 0.8 * first, "loss \(losses)")
        #expect(trainer.history.lastValidation != nil, "a validation closes the run")
        #expect(trainer.timings.steps == 14 && trainer.timings.images == 28)
    }

    @Test func resumeIsBitExact() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Uninterrupted: 6 steps.
        var full = tinyOptions(out: dir + "/full")
        full.valEvery = 2          // validations in between must not disturb anything
        let a = try Trainer(options: full)
        #expect(try a.run() == .completed)

        // Interrupted after 3 steps, then resumed in a new trainer from the checkpoint.
        var half = full
        half.out = dir + "/half"
        let b = try Trainer(options: half)
        #expect(try b.run(shouldStop: { b.step == 3 }) == .interrupted)
        #expect(b.step == 3)
        var resumed = half
        resumed.resume = dir + "/half/" + Trainer.checkpointFileName
        let c = try Trainer(options: resumed)
        #expect(c.step == 3)
        #expect(try c.run() == .completed)

        let sa = a.model.stateDict(), sc = c.model.stateDict()
        #expect(Set(sa.keys) == Set(sc.keys))
        for (k, v) in sa { #expect(bitIdentical(v, sc[k]!), "\(k) differs after resume") }
        let oa = a.optimizer.state(), oc = c.optimizer.state()
        #expect(oa.step == oc.step && oa.counters == oc.counters)
        for (k, v) in oa.tensors { #expect(bitIdentical(v, oc.tensors[k]!), "optimizer \(k) differs") }
        #expect(a.rng == c.rng)
        #expect(a.history.records.map(\.loss) == c.history.records.map(\.loss))
        #expect(a.history.records.map(\.learningRate) == c.history.records.map(\.learningRate))
        #expect(a.history.lastValidation == c.history.lastValidation)

        // The interrupted run really stopped half-way (weights differ from the full run).
        let sb = b.model.stateDict()
        #expect(!bitIdentical(sb["score_fr.weight"]!, sa["score_fr.weight"]!))
    }

    @Test func resumeRejectsAnotherModel() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = tinyOptions(steps: 1, out: dir)
        o.valCount = 1
        try Trainer(options: o).run()
        var other = o
        other.model = .fcn32s
        other.resume = dir + "/" + Trainer.checkpointFileName
        #expect(throws: FCNError.self) { try Trainer(options: other) }
        var wider = o
        wider.width = 1.0 / 32
        wider.resume = other.resume
        #expect(throws: FCNError.self) { try Trainer(options: wider) }
        var samePadding = o
        samePadding.padding = .same
        samePadding.resume = other.resume
        #expect(throws: FCNError.self) { try Trainer(options: samePadding) }
    }

    @Test func inverseSqrtClassWeights() throws {
        let source = SyntheticSampleSource(dataset: SyntheticShapes(size: 32, count: 8, seed: 3))
        #expect(try Trainer.classWeights(.none, source: source) == nil)
        let w = try #require(try Trainer.classWeights(.inverseSqrt, source: source)).scalars
        #expect(w.count == SyntheticShapes.classes)
        #expect(abs(w.reduce(0, +) / Float(w.count) - 1) < 1e-5)
        // Recount by hand: 1/sqrt(count + 1), normalised to mean 1.
        var counts = [Double](repeating: 1, count: 5)
        for i in 0..<8 { for v in source.dataset[i].label.scalars { counts[Int(v)] += 1 } }
        let raw = counts.map { 1 / $0.squareRoot() }, mean = raw.reduce(0, +) / 5
        for c in 0..<5 { #expect(abs(Double(w[c]) - raw[c] / mean) < 1e-5) }
        #expect(w[0] < w[4], "background (most pixels) must weigh less than the thin bars")

        var o = tinyOptions(steps: 2)
        o.classWeighting = .inverseSqrt
        let t = try Trainer(options: o)
        #expect(t.classWeights != nil)
        try t.run()
        #expect(t.history.records.allSatisfy { $0.loss.isFinite })
        guard case .train(let parsed) = try TrainCommand.parse(["--class-weights", "inverse-sqrt", "--steps", "1"]) else {
            Issue.record("--class-weights did not parse as a training command"); return
        }
        #expect(parsed.classWeighting == .inverseSqrt)
        #expect(throws: CommandLineError.self) { try TrainCommand.parse(["--class-weights", "median", "--steps", "1"]) }
        // --precision is for --evaluate: training computes in float32.
        #expect(throws: CommandLineError.self) { try TrainCommand.parse(["--precision", "bf16", "--steps", "1"]) }
        guard case .train(let ev) = try TrainCommand.parse(["--evaluate", "--resume", "c.st", "--precision", "bf16"]) else {
            Issue.record("--evaluate --precision bf16 parses"); return
        }
        #expect(ev.precision == .bfloat16 && ev.evaluateOnly)
    }

    // --lovasz W: a step's loss is cross-entropy + W x Lovasz-softmax of the same scores
    // (recomputed here from the same batch and weights).
    @Test func lovaszTermJoinsTheLoss() throws {
        var o = tinyOptions(size: 32, steps: 1)
        o.dropout = false
        o.lovaszWeight = 0.5
        let t = try Trainer(options: o)
        var rng = t.rng
        let sampler = TrainingBatchSampler(source: t.trainSource, batchSize: o.batch, size: o.imageSize,
                                           flip: o.flip, padPixel: o.normalization.meanPixelRGB)
        let (images, labels) = try sampler.next(using: &rng)
        let scores = withoutGrad { t.model(o.normalization.apply(images)) }
        let ce = softmaxCrossEntropy(logits: scores, labels: labels).item
        let lovasz = lovaszSoftmax(logits: scores, labels: labels).item
        #expect(lovasz > 0.05 && lovasz <= 1)
        let step = try t.trainStep()
        #expect(abs(step.loss - (ce + 0.5 * lovasz)) <= 1e-5 * step.loss, "step loss \(step.loss), CE \(ce), Lovasz \(lovasz)")

        guard case .train(let parsed) = try TrainCommand.parse(["--lovasz", "1", "--steps", "1"]) else {
            Issue.record("--lovasz did not parse as a training command"); return
        }
        #expect(parsed.lovaszWeight == 1)
        #expect(throws: CommandLineError.self) { try TrainCommand.parse(["--lovasz", "-1", "--steps", "1"]) }
        #expect(TrainerOptions().lovaszWeight == 0, "cross-entropy alone by default, as the reference")
    }

    // --lr-mult: from the same weights and batch, Adam's first step of a layer at multiplier m
    // is m times its step at the base rate; a later entry wins where two overlap; Caffe
    // groups (biases x2) multiply in; names that match no layer are rejected.
    @Test func layerLearningRateMultipliers() throws {
        var base = tinyOptions(size: 32, steps: 1)
        base.dropout = false
        func firstStep(_ o: TrainerOptions) throws -> [String: [Float]] {
            let t = try Trainer(options: o)
            // Score layers start at zero, which would stop every gradient below them.
            var g = FCNRandom(seed: 11)
            for (name, p) in t.model.namedParameters() where name.hasPrefix("score") && name.hasSuffix("weight") {
                p.assign(Tensor.randn(p.shape, std: 0.1, using: &g))
            }
            let before = Dictionary(uniqueKeysWithValues: t.model.namedParameters().map { ($0.0, $0.1.value.scalars) })
            try t.trainStep()
            return Dictionary(uniqueKeysWithValues: t.model.namedParameters().map { name, p in
                (name, zip(p.value.scalars, before[name]!).map { $0 - $1 })
            })
        }
        let plain = try firstStep(base)
        #expect(plain["conv5_1.weight"]!.contains { $0 != 0 } && plain["fc7.bias"]!.contains { $0 != 0 })

        func expectScaled(_ o: TrainerOptions, _ factor: (String) -> Float) throws {
            let scaled = try firstStep(o)
            for (name, d) in plain {
                let f = factor(name)
                let worst = zip(scaled[name]!, d).map { abs($0 - f * $1) }.max() ?? 0
                #expect(worst <= 1e-6, "\(name): step should be \(f) x the base step, off by \(worst)")
            }
        }
        var o = base
        o.layerLearningRates = [LayerLearningRate(layers: ["conv5", "fc6"], multiplier: 0.5),
                                LayerLearningRate(layers: ["fc6"], multiplier: 0)]
        try expectScaled(o) { $0.hasPrefix("fc6.") ? 0 : $0.hasPrefix("conv5_") ? 0.5 : 1 }

        o = base
        o.caffeGroups = true
        o.layerLearningRates = [LayerLearningRate(layers: ["fc7", "score"], multiplier: 0.25)]
        try expectScaled(o) { name in
            (name.hasSuffix("bias") ? 2 : 1) * (name.hasPrefix("fc7.") || name.hasPrefix("score_") ? 0.25 : 1)
        }

        o = base
        o.layerLearningRates = [LayerLearningRate(layers: ["conv5", "fc8"], multiplier: 0.1)]
        do {
            _ = try Trainer(options: o)
            Issue.record("a layer name that matches nothing was accepted")
        } catch let e as TrainerError {
            #expect(e.message.contains("'fc8'") && e.message.contains("VGG16 FCN") && e.message.contains("score_pool3")
                    && e.message.contains("upscore16"), "\(e.message)")
        }

        // A layer of another variant is accepted and applies where present: FCN-32s has no
        // score_pool3, and 'upscore*' reaches its one upsampling layer.
        var base32 = base
        base32.model = .fcn32s
        base32.learnUpsampling = true
        let plain32 = try firstStep(base32)
        #expect(plain32["upscore.weight"]!.contains { $0 != 0 })
        var o32 = base32
        o32.layerLearningRates = [LayerLearningRate(layers: ["score_pool3", "upscore*", "fc7.bias"], multiplier: 0.5)]
        let scaled32 = try firstStep(o32)
        for (name, d) in plain32 {
            let f: Float = name.hasPrefix("upscore.") || name == "fc7.bias" ? 0.5 : 1
            let worst = zip(scaled32[name]!, d).map { abs($0 - f * $1) }.max() ?? 0
            #expect(worst <= 1e-6, "\(name): step should be \(f) x the base step, off by \(worst)")
        }
    }

    @Test func layerLearningRateParsing() throws {
        let rule = LayerLearningRate(layers: ["conv5", "fc6", "score"], multiplier: 1)
        #expect(rule.matches("conv5_1.weight") && rule.matches("fc6.bias") && rule.matches("score_fr.weight"))
        #expect(!rule.matches("conv50.weight") && !rule.matches("fc60.weight") && !rule.matches("conv4_1.weight"))
        #expect(!rule.matches("upscore2.weight"))
        let glob = LayerLearningRate(layers: ["upscore*", "score_pool*"], multiplier: 1)
        #expect(glob.matches("upscore.weight") && glob.matches("upscore2.weight") && glob.matches("upscore_pool4.weight")
                && glob.matches("upscore16.weight") && glob.matches("score_pool3.bias"))
        #expect(!glob.matches("score_fr.weight") && !glob.matches("fc7.weight"))

        guard case .train(let parsed) = try TrainCommand.parse(["--lr-mult", "conv5,fc6=0.1", "--lr-mult=fc6=0", "--steps", "1"]) else {
            Issue.record("--lr-mult did not parse as a training command"); return
        }
        #expect(parsed.layerLearningRates == [LayerLearningRate(layers: ["conv5", "fc6"], multiplier: 0.1),
                                              LayerLearningRate(layers: ["fc6"], multiplier: 0)])
        #expect(TrainerOptions().layerLearningRates.isEmpty, "every layer at the base rate by default")
        for bad in ["fc6", "fc6=", "=0.1", "fc6,=1", "fc6=-1", "fc6=abc", "fc6=inf", "fc6=1=2"] {
            #expect(throws: CommandLineError.self, "\(bad)") { try TrainCommand.parse(["--lr-mult", bad, "--steps", "1"]) }
        }
        var o = TrainerOptions()
        o.steps = 1
        o.layerLearningRates = [LayerLearningRate(layers: [], multiplier: 1)]
        #expect(throws: TrainerError.self) { try o.validate() }
    }

    @Test func fcnSegmentReadsATrainerCheckpoint() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = tinyOptions(steps: 2, out: dir)
        o.padding = .same
        o.valCount = 1
        let t = try Trainer(options: o)
        try t.run()
        let path = dir + "/" + Trainer.checkpointFileName
        // The checkpoint describes its model: classes, names, width, padding and the input
        // convention come from it; the weights load strictly.
        let model = try SegmentCommand.openModel(SegmentCommand.parse(["--weights", path, "x.png"]))
        let d = model.modelDescription
        #expect(d.classes == SyntheticShapes.classes && d.width == o.width && d.padding == .same)
        #expect(d.classNames == SyntheticShapes.classNames && d.input == o.normalization)
        let net = ModelSegmentation(model)
        t.model.eval()
        let x = Tensor.randn([1, 3, 24, 24], seed: 4)
        let expected = withoutGrad { t.model(x) }
        let got = net.scores(normalized: x)
        #expect(got.shape == expected.shape && got.scalars == expected.scalars)
    }

    @Test func samePaddingLayoutTrainsAndResumes() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = tinyOptions(steps: 2, out: dir)
        o.padding = .same
        o.valCount = 1
        let t = try Trainer(options: o)
        try t.run()
        #expect((t.model as! VGGFCN).padding == .same && t.step == 2)
        guard case .train(let parsed) = try TrainCommand.parse(["--padding", "same", "--steps", "1"]) else {
            Issue.record("--padding same did not parse as a training command"); return
        }
        #expect(parsed.padding == .same)
        #expect(throws: CommandLineError.self) { try TrainCommand.parse(["--padding", "valid", "--steps", "1"]) }
        var more = o
        more.steps = 3
        more.resume = dir + "/" + Trainer.checkpointFileName
        let resumed = try Trainer(options: more)
        #expect((resumed.model as! VGGFCN).padding == .same && resumed.step == 2)
    }

    @Test func stagedTrainingMovesThroughTheVariants() throws {
        var o = tinyOptions(steps: 6)
        o.staged = true
        o.valCount = 2
        let trainer = try Trainer(options: o)
        var stages: [ModelArchitecture] = []
        try trainer.run(onEvent: { if case .stageStarted(_, _, let v) = $0 { stages.append(v) } })
        #expect(stages == [.fcn32s, .fcn16s, .fcn8s])
        #expect(trainer.architecture == .fcn8s && (trainer.model as! VGGFCN).variant == .fcn8s && trainer.step == 6)
        let r = trainer.history.records
        #expect(r.map(\.stage) == [0, 0, 1, 1, 2, 2])
        #expect(trainer.history.validations.map(\.step) == [2, 4, 6], "one validation at each stage end")
        // Each stage restarts the schedule: the first step of every stage runs at the base rate.
        #expect(r[0].learningRate == o.learningRate && r[2].learningRate == o.learningRate && r[4].learningRate == o.learningRate)
    }

    /// FCN-4s staged: 32s -> 16s -> 8s -> 4s, the 4s stage starting from the trained 8s
    /// (score_pool3 carried over, the new score_pool2 at zero).
    @Test func stagedFCN4sAddsThePool2Stage() throws {
        var o = tinyOptions(steps: 8)
        o.model = .fcn4s
        o.staged = true
        o.valCount = 2
        #expect(o.stages == [.fcn32s, .fcn16s, .fcn8s, .fcn4s])
        let trainer = try Trainer(options: o)
        var stages: [ModelArchitecture] = [], pool3AtHandover: [Float] = []
        try trainer.run(onEvent: {
            guard case .stageStarted(_, _, let v) = $0 else { return }
            stages.append(v)
            if v == .fcn4s, let m = trainer.model as? VGGFCN {
                pool3AtHandover = m.scorePool3!.weight.value.scalars
                #expect(m.scorePool2!.weight.value.scalars.allSatisfy { $0 == 0 })
            }
        })
        #expect(stages == [.fcn32s, .fcn16s, .fcn8s, .fcn4s])
        #expect((trainer.model as! VGGFCN).variant == .fcn4s && trainer.step == 8)
        #expect(pool3AtHandover.contains { $0 != 0 }, "score_pool3 comes trained from the 8s stage")
    }

    @Test func progressiveResizingDrawsEachPhaseAtItsSize() throws {
        // 6 steps; phase ends at 3/6 and 4.8/6 of the budget: steps 0-2 at 16 px, 3-4 at 24, 5 at 32.
        var o = tinyOptions(size: 32, steps: 6)
        o.progressive = [ProgressiveSize(size: 16, until: 0.5), ProgressiveSize(size: 24, until: 0.8)]
        o.valCount = 2
        let t = try Trainer(options: o)
        var sizes: [Int] = []
        for _ in 0..<6 { sizes.append(try t.trainStep().imageSize) }
        #expect(sizes == [16, 16, 16, 24, 24, 32])
        let v = try t.validate()
        #expect(v.meanIU.isFinite)
        #expect(t.lastConfusion?.total == 2 * 32 * 32, "validation runs at --image-size")

        // Staged: every stage restarts the phases (2 steps per stage, 16 px for the first).
        var staged = tinyOptions(size: 32, steps: 6)
        staged.staged = true
        staged.progressive = [ProgressiveSize(size: 16, until: 0.5)]
        let s = try Trainer(options: staged)
        var stagedSizes: [Int] = []
        try s.run(onEvent: { if case .step(let p) = $0 { stagedSizes.append(p.imageSize) } })
        #expect(stagedSizes == [16, 32, 16, 32, 16, 32])

        // A fixed-size source that cannot be redrawn at another size is refused.
        struct Fixed: SegmentationSampleSource {
            var count: Int { 2 }
            var classes: Int { 5 }
            var fixedSize: Int? { 32 }
            func sample(_ index: Int) throws -> (image: Tensor, label: Tensor) {
                (Tensor.zeros([3, 32, 32]), Tensor.zeros([32, 32]))
            }
        }
        do {
            _ = try Trainer(options: o, train: Fixed(), validation: Fixed())
            Issue.record("a fixed-size source was accepted with --progressive")
        } catch let e as TrainerError {
            #expect(e.message.contains("cannot be drawn at 16"), "\(e.message)")
        }
    }

    @Test func progressiveResizingResumesBitExact() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var full = tinyOptions(size: 32, steps: 6, out: dir + "/full")
        full.progressive = [ProgressiveSize(size: 16, until: 0.5)]
        try expectResumeBitExact(full, interruptAt: 2, dir: dir)   // inside the 16 px phase
    }

    /// Runs `full` whole, then interrupted after `interruptAt` steps and resumed from its
    /// checkpoint; the weights and the loss curve must agree bit for bit.
    func expectResumeBitExact(_ full: TrainerOptions, interruptAt: Int, dir: String) throws {
        var whole = full
        whole.out = dir + "/full"
        let a = try Trainer(options: whole)
        try a.run()
        var half = full
        half.out = dir + "/half"
        let b = try Trainer(options: half)
        #expect(try b.run(shouldStop: { b.step == interruptAt }) == .interrupted)
        var resumed = half
        resumed.resume = dir + "/half/" + Trainer.checkpointFileName
        let c = try Trainer(options: resumed)
        try c.run()
        let sa = a.model.stateDict(), sc = c.model.stateDict()
        for (k, v) in sa { #expect(bitIdentical(v, sc[k]!), "\(k) differs after resume") }
        #expect(a.history.records.map(\.loss) == c.history.records.map(\.loss))
    }

    @Test func replicasTrainLikeWholeBatches() throws {
        // SGD, so that rounding differences stay rounding (Adam's first step is a sign).
        var o = tinyOptions(steps: 3)
        o.dropout = false
        o.optimizer = .sgd
        let a = try Trainer(options: o)
        try a.run()
        o.replicas = 2
        let b = try Trainer(options: o)
        try b.run()
        let la = a.history.records.map(\.loss), lb = b.history.records.map(\.loss)
        #expect(la.count == 3 && lb.count == 3)
        for (x, y) in zip(la, lb) { #expect(abs(x - y) <= 1e-5 * abs(x), "losses \(la) vs \(lb)") }
        let sa = a.model.stateDict(), sb = b.model.stateDict()
        for (k, v) in sa {
            let err = zip(v.scalars, sb[k]!.scalars).map { abs($0 - $1) }.max() ?? 0
            #expect(err <= 1e-5 * max(1, v.scalars.map(abs).max() ?? 0), "\(k) differs by \(err)")
        }
        let fresh = try Trainer(options: o).model.stateDict()
        #expect(!bitIdentical(sa["fc6.weight"]!, fresh["fc6.weight"]!), "training moved fc6")
    }

    @Test func replicasResumeBitExact() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var full = tinyOptions(steps: 5, out: dir + "/full")
        full.dropout = false
        full.replicas = 2
        try expectResumeBitExact(full, interruptAt: 2, dir: dir)
    }

    @Test func evaluateMeasuresACheckpointWithoutTraining() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try Trainer(options: tinyOptions(steps: 3, out: dir))
        try a.run()
        // No budget needed; the same held-out images give the run's closing validation.
        let cmd = try TrainCommand.parse(["--evaluate", "--resume", dir + "/" + Trainer.checkpointFileName])
        guard case .train(var e) = cmd else { Issue.record("--evaluate parsed as \(cmd)"); return }
        #expect(e.evaluateOnly && e.steps == nil && e.minutes == nil)
        let t = tinyOptions()
        e.model = t.model; e.width = t.width; e.imageSize = t.imageSize; e.trainCount = t.trainCount
        e.valCount = t.valCount; e.seed = t.seed; e.out = nil; e.progress = false
        let b = try Trainer(options: e)
        #expect(b.step == 3)
        #expect(try b.validate() == a.history.lastValidation)
        // Other held-out images (another seed) give other figures.
        e.seed = 8
        #expect(try Trainer(options: e).validate() != a.history.lastValidation)
    }

    @Test func syntheticScenesScaleWithTheSize() {
        // Progressive resizing trains on the same scenes drawn smaller: the class of each
        // 8x8 block's centre at 96 px is the class at the matching centre at 48 px in most blocks.
        let big = SyntheticSampleSource(dataset: SyntheticShapes(size: 96, count: 4, seed: 3))
        let small = big.resized(to: 48)!
        #expect(small.fixedSize == 48)
        var agree = 0, total = 0
        for i in 0..<4 {
            let lb = try! big.sample(i).label.scalars, ls = try! small.sample(i).label.scalars
            for y in stride(from: 4, to: 96, by: 8) {
                for x in stride(from: 4, to: 96, by: 8) {
                    total += 1
                    if lb[y * 96 + x] == ls[(y / 2) * 48 + x / 2] { agree += 1 }
                }
            }
        }
        #expect(Double(agree) / Double(total) > 0.9, "\(agree) of \(total)")
    }

    @Test func stageInitialisationCopiesTheTrainedWeights() throws {
        var o = tinyOptions(steps: 3)
        o.staged = true
        let trainer = try Trainer(options: o)
        try trainer.trainStep()
        let before = trainer.model.stateDict()
        trainer.advanceStage()
        #expect((trainer.model as! VGGFCN).variant == .fcn16s)
        let after = trainer.model.stateDict()
        #expect(bitIdentical(after["conv1_1.weight"]!, before["conv1_1.weight"]!))
        #expect(bitIdentical(after["score_fr.weight"]!, before["score_fr.weight"]!))
        #expect(after["score_pool4.weight"]!.scalars.allSatisfy { $0 == 0 }, "new score layer starts at zero")
    }

    @Test func curvesAreWrittenAndReadable() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = tinyOptions(steps: 4, out: dir)
        o.valEvery = 2
        let trainer = try Trainer(options: o)
        var saved: [String] = []
        try trainer.run(onEvent: { if case .saved(let folder) = $0 { saved.append(folder) } })
        #expect(saved == [dir, dir], "a save at each validation")
        try TrainingPlot.writeCurves(trainer.history, to: dir)
        let text = try String(contentsOfFile: dir + "/" + TrainingPlot.csvFileName, encoding: .utf8)
        let h = try TrainingHistory(csv: text)
        #expect(h == trainer.history)
        #expect(h.records.map(\.step) == [1, 2, 3, 4])
        #expect(h.validations.map(\.step) == [2, 4])
        #expect(text.hasPrefix(TrainingHistory.csvHeader + "\n"))
        let iu = h.validations.last!.validation!.meanIU
        #expect(iu >= 0 && iu <= 1)

        let png = try PNG.read(path: dir + "/" + TrainingPlot.fileName)
        #expect(png.width == 640 && png.height == 400 && png.channels == 3)
        // The loss curve (dark blue) and the mean IU markers (red) are drawn.
        var blue = 0, red = 0
        for i in stride(from: 0, to: png.pixels.count, by: 3) {
            let (r, g, b) = (png.pixels[i], png.pixels[i + 1], png.pixels[i + 2])
            if (r, g, b) == (20, 70, 190) { blue += 1 }
            if (r, g, b) == (210, 30, 30) { red += 1 }
        }
        #expect(blue > 50 && red > 20, "blue \(blue) red \(red)")

        let ckpt = try TrainingCheckpoint.load(from: dir + "/" + Trainer.checkpointFileName)
        #expect(ckpt.step == 4 && ckpt.info["model"] == "fcn8s")
        #expect(ckpt.model["upscore8.weight"] != nil, "frozen layers are saved too: the file is a whole network")
    }

    @Test func plotTicksAndLabels() {
        #expect(LinePlot.niceRange([0.3, 1.61]) == 0...2)
        let ticks = LinePlot.ticks(0...1)
        #expect(ticks.count == 6 && zip(ticks, [0, 0.2, 0.4, 0.6, 0.8, 1.0]).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(LinePlot.label(0.6000000000000001, step: 0.2) == "0.6")
        #expect(LinePlot.label(1500, step: 500) == "1500")
        #expect(LinePlot.label(0.25, step: 0.05) == "0.25")
        #expect(LinePlot.label(-0.5, step: 0.5) == "-0.5")
        var p = LinePlot(width: 200, height: 100)
        p.series = [PlotSeries(name: "A", points: [(0, 0), (10, 5)], color: (255, 0, 0))]
        let img = p.render()
        #expect(img.width == 200 && img.height == 100)
        #expect(img.pixels.contains(255) && img.pixels.contains(0))
    }

    @Test func consoleFormats() {
        let p = TrainerProgress(step: 50, totalSteps: 100, fraction: 0.5, loss: 0.5, smoothedLoss: 0.6, learningRate: 1e-3,
                                imagesPerSecond: 12.5, etaSeconds: 192, elapsedSeconds: 10, stage: 0, stageCount: 1,
                                architecture: .fcn8s, lastValidation: nil, imageSize: 96)
        let line = TrainerConsole.progressLine(p)
        #expect(line.hasPrefix("[##########..........]  50% step 50/100 fcn8s loss 0.5000 (avg 0.6000) lr 1.00e-03 12.5 img/s ETA 3m12s"))
        var out: [String] = []
        let tty = TrainerConsole(isTerminal: true) { out.append($0) }
        tty.handle(.step(p))
        #expect(out.last!.hasPrefix("\r[") && out.last!.hasSuffix("\u{1B}[K"))
        out.removeAll()
        let log = TrainerConsole(isTerminal: false, interval: 10) { out.append($0) }
        log.handle(.step(p))
        log.handle(.step(p))        // same time: throttled
        #expect(out.count == 1 && out[0].hasSuffix("\n") && !out[0].contains("\r"))
        #expect(TrainerConsole.duration(3725) == "1h02m")
        // --quiet: no step lines (on a terminal or not), validations still printed.
        for isTerminal in [true, false] {
            out.removeAll()
            let quiet = TrainerConsole(isTerminal: isTerminal, showsProgress: false) { out.append($0) }
            quiet.handle(.step(p))
            #expect(out.isEmpty)
            quiet.handle(.validated(step: 50, metrics: ValidationMetrics(pixelAccuracy: 0.9, meanClassAccuracy: 0.8, meanIU: 0.7, frequencyWeightedIU: 0.85), seconds: 0.1))
            #expect(out.count == 1 && out[0].hasPrefix("step 50 validation:"))
        }
    }

    // MARK: Arguments

    func parse(_ s: String) throws -> TrainerOptions {
        guard case .train(let o) = try TrainCommand.parse(s.split(separator: " ").map(String.init)) else {
            throw CommandLineError("help")
        }
        return o
    }

    func parseError(_ s: String) -> String? {
        do { _ = try TrainCommand.parse(s.split(separator: " ").map(String.init)); return nil }
        catch let e as CommandLineError { return e.message }
        catch { return "\(error)" }
    }

    @Test func parsesEveryOption() throws {
        let o = try parse("--model fcn16s --width 0.25 --data synthetic --image-size 96 --train-count 50 --val-count 7 --steps 300 --minutes 2.5 --batch 8 --optimizer sgd --lr 0.01 --momentum 0.95 --weight-decay 0.0005 --schedule step --warmup 10 --seed 42 --threads 2 --val-every 50 --out runs/a --caffe-groups --input caffe --no-flip --quiet")
        #expect(o.model == .fcn16s && o.width == 0.25 && o.imageSize == 96 && o.trainCount == 50 && o.valCount == 7)
        #expect(o.steps == 300 && o.minutes == 2.5 && o.batch == 8 && o.optimizer == .sgd && o.learningRate == 0.01)
        #expect(o.momentum == 0.95 && o.weightDecay == 0.0005 && o.schedule == .step && o.warmup == 10 && o.seed == 42)
        #expect(o.threads == 2 && o.valEvery == 50 && o.out == "runs/a" && o.caffeGroups && o.normalization == .caffe)
        #expect(!o.flip && !o.progress && !o.staged)
        let v = try parse("--data=voc --root=/data/VOC2012 --model=fcn8s-atonce --minutes=1 --staged --resume=x.safetensors")
        #expect(v.data == .voc && v.root == "/data/VOC2012" && v.model == .fcn8sAtOnce && v.staged && v.resume == "x.safetensors")
        #expect(v.stages == [.fcn32s, .fcn16s, .fcn8sAtOnce])
        #expect(try TrainCommand.parse(["--steps", "1", "--help"]) == .help)
        #expect(try parse("--steps 5 --no-dropout --replicas 2").replicas == 2)
        let p = try parse("--steps 5 --image-size 96 --progressive 48@0.3,64@0.6")
        #expect(p.progressive == [ProgressiveSize(size: 48, until: 0.3), ProgressiveSize(size: 64, until: 0.6)])
    }

    @Test func rejectsBadArguments() {
        let cases: [(String, String)] = [
            ("--steps 10 --bogus", "unknown option '--bogus'"),
            ("--steps", "--steps needs a value"),
            ("--steps ten", "--steps expects an integer, got 'ten'"),
            ("--steps 0", "--steps must be >= 1, got 0"),
            ("--steps 5 --lr -1", "--lr must be > 0"),
            ("--steps 5 --model fcn2s", "--model expects one of fcn32s|fcn16s|fcn8s|fcn8s-atonce|fcn4s|resnet18-fcn8s|resnet34-fcn8s|fcn_resnet50|fcn_resnet101, got 'fcn2s'"),
            ("--steps 5 --optimizer rmsprop", "--optimizer expects one of sgd|adam|adamw, got 'rmsprop'"),
            ("--steps 5 --schedule cosine", "--schedule expects one of fixed|poly|step|exp, got 'cosine'"),
            ("--steps 5 --width 2", "--width must lie in (0, 1]"),
            ("--steps 5 --image-size 4", "--image-size must be >= 8, got 4"),
            ("--steps 5 --data voc", "--data voc needs --root DIR"),
            ("--batch 2", "give a budget: --steps N and/or --minutes M"),
            ("--steps 5 --staged --model fcn32s", "--staged trains 32s -> 16s -> 8s"),
            ("--steps 2 --staged", "--staged needs at least 3 steps, got 2"),
            ("--steps 5 --staged=yes", "--staged takes no value"),
            ("--steps 5 extra", "unexpected argument 'extra'"),
            ("--steps 5 --momentum 1", "--momentum must lie in [0, 1)"),
            ("--minutes 0", "--minutes must be > 0"),
            ("--steps 5 --train-count 2000000", "--train-count must be <= 1000000"),
            ("--steps 5 --root /x", "--root is only used with --data voc"),
            ("--steps 5 --progressive 64", "--progressive takes SIZE@FRACTION"),
            ("--steps 5 --progressive 64@0.5,", "--progressive takes SIZE@FRACTION"),
            ("--steps 5 --progressive 4@0.5", "--progressive sizes must be >= 8, got 4"),
            ("--steps 5 --progressive 64@0.6,48@0.5", "--progressive fractions must increase within (0, 1)"),
            ("--steps 5 --progressive 64@1", "--progressive fractions must increase within (0, 1)"),
            ("--steps 5 --batch 2 --no-dropout --replicas 3", "--replicas must lie in 1...2 (the --batch), got 3"),
            ("--steps 5 --replicas 2", "--replicas 2 needs --no-dropout"),
            ("--steps 5 --replicas 0", "--replicas must be >= 1, got 0"),
            ("--evaluate", "--evaluate needs --resume CHECKPOINT"),
        ]
        for (args, expected) in cases {
            let m = parseError(args)
            #expect(m?.contains(expected) == true, "\(args): got \(m ?? "no error")")
        }
    }

    @Test func vocErrorsAreThrownNotTrapped() {
        var o = TrainerOptions()
        o.data = .voc
        o.root = "/nonexistent/voc/root"
        o.steps = 1
        #expect(throws: FCNError.self) { try Trainer(options: o) }
    }
}
