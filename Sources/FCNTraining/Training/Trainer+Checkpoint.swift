// Trainer checkpoints: everything a run needs to continue bit for bit, in one
// `TrainingCheckpoint` that is also a model file (`fcn.model`, see `ModelFile`).
import FCNCore
import FCNIO
import FCNModels

extension Trainer {
    /// Everything needed to continue exactly: full model state (frozen layers included, so
    /// the file alone is a usable network), optimizer state, step (schedule step = step in
    /// the stage), the sampling generator and, in `info`, the stage, the dropout generators,
    /// elapsed time, the model description and the history CSV.
    public func makeCheckpoint() -> TrainingCheckpoint {
        var info: [String: String] = [
            "model": architecture.rawValue, "width": String(options.width), "classes": String(classes),
            "padding": options.padding.rawValue, "normalization": model.preferredPreprocessing.name ?? "custom",
            "trainer.stage": String(stageIndex), "trainer.stage_start": String(stageStartStep),
            "trainer.stages": options.stages.map(\.rawValue).joined(separator: ","),
            "trainer.elapsed": String(elapsedSeconds), "trainer.stage_start_elapsed": String(stageStartElapsed),
            "trainer.seed": String(options.seed),
            "trainer.dropout": dropoutLayers(model).map { String($0.generator.state) }.joined(separator: ","),
            "trainer.history": history.csv(),
        ]
        info["trainer.last_validation_seconds"] = String(lastValidationSeconds)
        return TrainingCheckpoint(model: model.stateDict().mapValues { $0.detached() }, optimizer: optimizer.state(),
                                  step: step, scheduleStep: step - stageStartStep, rngState: rng.state, info: info,
                                  modelDescription: model.modelDescription)
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
        guard let rngState = c.rngState else { throw FCNError.mismatch("checkpoint has no sampling generator state") }
        guard let opt = c.optimizer else { throw FCNError.mismatch("checkpoint has no optimizer state") }
        let hist = try TrainingHistory(csv: try info("trainer.history"))

        let m = try Trainer.makeModel(options, architecture: options.stages[stage], classes: classes, classNames: nil)
        if let d = c.modelDescription {
            // Names, palette and input convention as trained (the options may not repeat them).
            try m.setModelDescription(m.modelDescription.withMetadata(classNames: d.classNames, palette: d.palette, input: d.input))
        }
        try m.loadStateDict(c.model)
        let dropouts = dropoutLayers(m)
        guard drops.count == dropouts.count else { throw FCNError.mismatch("checkpoint has \(drops.count) dropout generator states, the model has \(dropouts.count) dropout layers") }
        for (d, state) in zip(dropouts, drops) { d.generator.state = state }
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
}
