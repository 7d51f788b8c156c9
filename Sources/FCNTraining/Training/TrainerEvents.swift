// What a `Trainer` reports: the result of a step, progress snapshots, the events of
// `run`, how it ended, where the time went, and its errors.
import FCNCore
import FCNIO
import FCNModels

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
    /// The architecture of the current stage.
    public var architecture: ModelArchitecture
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
    case stageStarted(index: Int, count: Int, architecture: ModelArchitecture)
    /// A checkpoint was written.
    case checkpointSaved(path: String)
    /// The checkpoint was written to `folder` (at each validation, stage end and
    /// interruption): a tool writes its own outputs there, e.g. the curves.
    case saved(folder: String)
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
    /// Seconds of the forward and backward passes spent in collectives across ranks (the
    /// gather of the outputs, the gradient sums), waiting for the slowest rank included; 0
    /// in one process.
    public var communication = 0.0
    /// Training steps and images processed, for throughput figures.
    public var steps = 0, images = 0
    /// All counters at zero.
    public init() {}
    /// Training seconds (data + forward + backward + update).
    public var training: Double { data + forward + backward + update }
}
