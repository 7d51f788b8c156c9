// The loop of a training run: steps within the budget, validation and checkpoints at
// their intervals and stage ends, progress snapshots. What a tool shows or writes besides
// the checkpoint (progress, the curves as CSV and plot) it does on the events.
import Foundation
import FCNCore
import FCNIO
import FCNModels

extension Trainer {
    func saveAll(_ onEvent: (TrainerEvent) -> Void) throws {
        guard let out = options.out, group.rank == 0 else { return }
        try makeDirectory(out)
        let path = out + "/" + Trainer.checkpointFileName
        try saveCheckpoint(to: path)
        onEvent(.checkpointSaved(path: path))
        onEvent(.saved(folder: out))
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
                               stageCount: stageCount, architecture: architecture, lastValidation: history.lastValidation,
                               imageSize: lastImageSize)
    }

    /// Trains until the budget is used or `shouldStop()` returns true (checked between
    /// steps; under several ranks a stop asked on any rank stops all at the same step).
    /// Validates every `valEvery` steps of a stage and at each stage end, saving a
    /// checkpoint and the curves to `options.out` each time; on interruption saves them
    /// and returns `.interrupted`.
    @discardableResult
    public func run(shouldStop: () -> Bool = { false }, onEvent: (TrainerEvent) -> Void = { _ in }) throws -> TrainerOutcome {
        startClock()
        defer { agreedClock = nil }
        if step == stageStartStep { onEvent(.stageStarted(index: stageIndex, count: stageCount, architecture: architecture)) }
        while true {
            let stop = try agree(stopRequested: shouldStop())
            if stageFinished {
                let p = history.lastValidationPoint
                if p == nil || p!.step != step || p!.stage != stageIndex {
                    let t0 = now()
                    let m = try validate()
                    onEvent(.validated(step: step, metrics: m, seconds: seconds(since: t0)))
                }
                try saveAll(onEvent)
                if stageIndex + 1 < stageCount {
                    if let out = options.out, group.rank == 0 {
                        try saveCheckpoint(to: out + "/checkpoint-\(architecture.rawValue).safetensors")
                    }
                    advanceStage()
                    onEvent(.stageStarted(index: stageIndex, count: stageCount, architecture: architecture))
                    continue
                }
                return .completed
            }
            if stop {
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
