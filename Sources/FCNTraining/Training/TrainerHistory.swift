// The curves of a training run: one record per optimizer step (loss, learning rate) with
// the validation metrics attached to the steps where validation ran; written as CSV
//
//     step,stage,model,elapsed_s,loss,lr,pixel_acc,mean_class_acc,mean_iu,fw_iu
//
// (empty fields where there is no value), read back exactly (numbers are written in
// Swift's shortest round-trip form) so a checkpoint can carry the history.

import FCNCore
import FCNIO
import FCNModels

/// One row of the curves.
public struct TrainingRecord: Sendable, Equatable {
    /// Optimizer steps taken (over all stages) when the row was written.
    public var step: Int
    /// Stage index (0 unless staged).
    public var stage: Int
    /// The architecture trained at this step.
    public var architecture: ModelArchitecture
    /// Seconds since the start of training (validation included).
    public var elapsed: Double
    /// The batch loss of this step (nan for a validation-only row).
    public var loss: Float
    /// Learning rate of this step (nan for a validation-only row).
    public var learningRate: Float
    /// Validation run right after this step, if any.
    public var validation: ValidationMetrics?

    /// A row from its values; `validation` defaults to nil (a training-only row).
    public init(step: Int, stage: Int, architecture: ModelArchitecture, elapsed: Double, loss: Float, learningRate: Float,
                validation: ValidationMetrics? = nil) {
        self.step = step; self.stage = stage; self.architecture = architecture; self.elapsed = elapsed
        self.loss = loss; self.learningRate = learningRate; self.validation = validation
    }
}

/// The curves of a run.
public struct TrainingHistory: Sendable, Equatable {
    /// The rows in step order.
    public private(set) var records: [TrainingRecord] = []

    /// An empty history.
    public init() {}

    /// The CSV header line.
    public static let csvHeader = "step,stage,model,elapsed_s,loss,lr,pixel_acc,mean_class_acc,mean_iu,fw_iu"

    /// Appends a step row.
    public mutating func append(_ r: TrainingRecord) { records.append(r) }

    /// Attaches validation metrics to the row of `step` in `stage` (adding a row without
    /// loss if that step has none, e.g. validation before any training).
    public mutating func recordValidation(_ m: ValidationMetrics, step: Int, stage: Int, architecture: ModelArchitecture, elapsed: Double) {
        if let i = records.lastIndex(where: { $0.step == step && $0.stage == stage }) {
            records[i].validation = m
        } else {
            records.append(TrainingRecord(step: step, stage: stage, architecture: architecture, elapsed: elapsed,
                                          loss: .nan, learningRate: .nan, validation: m))
        }
    }

    /// The most recent validation.
    public var lastValidation: ValidationMetrics? { records.last(where: { $0.validation != nil })?.validation }

    /// Step and stage of the most recent validation.
    public var lastValidationPoint: (step: Int, stage: Int)? {
        records.last(where: { $0.validation != nil }).map { ($0.step, $0.stage) }
    }

    /// Rows with validation metrics.
    public var validations: [TrainingRecord] { records.filter { $0.validation != nil } }

    /// The CSV text (header and one line per record, newline-terminated).
    public func csv() -> String {
        var lines = [TrainingHistory.csvHeader]
        lines.reserveCapacity(records.count + 1)
        func f(_ x: Float) -> String { x.isNaN ? "" : String(x) }
        func d(_ x: Double) -> String { x.isNaN ? "" : String(x) }
        for r in records {
            var cols = [String(r.step), String(r.stage), r.architecture.rawValue, String((r.elapsed * 1000).rounded() / 1000),
                        f(r.loss), f(r.learningRate)]
            if let v = r.validation {
                cols += [d(v.pixelAccuracy), d(v.meanClassAccuracy), d(v.meanIU), d(v.frequencyWeightedIU)]
            } else {
                cols += ["", "", "", ""]
            }
            lines.append(cols.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses CSV written by `csv()`. Throws `FCNError.invalidFormat` naming the line.
    public init(csv: String) throws {
        let lines = csv.split(whereSeparator: \.isNewline)
        guard let head = lines.first, head == TrainingHistory.csvHeader[...] else {
            throw FCNError.invalidFormat("training history CSV: the first line must be '\(TrainingHistory.csvHeader)'")
        }
        for (n, line) in lines.dropFirst().enumerated() {
            let c = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            func bad() -> FCNError { .invalidFormat("training history CSV line \(n + 2): '\(line)'") }
            guard c.count == 10, let step = Int(c[0]), let stage = Int(c[1]), c[2].hasPrefix("fcn"),
                  let architecture = ModelArchitecture(rawValue: String(c[2])), let el = Double(c[3]) else { throw bad() }
            func fl(_ s: String) throws -> Float { if s.isEmpty { return .nan }; guard let v = Float(s) else { throw bad() }; return v }
            func db(_ s: String) throws -> Double { if s.isEmpty { return .nan }; guard let v = Double(s) else { throw bad() }; return v }
            var r = TrainingRecord(step: step, stage: stage, architecture: architecture, elapsed: el, loss: try fl(c[4]), learningRate: try fl(c[5]))
            if !c[8].isEmpty {
                r.validation = ValidationMetrics(pixelAccuracy: try db(c[6]), meanClassAccuracy: try db(c[7]),
                                                 meanIU: try db(c[8]), frequencyWeightedIU: try db(c[9]))
            }
            records.append(r)
        }
    }

    /// Equal when the CSV forms are equal (so NaN losses compare equal).
    public static func == (a: TrainingHistory, b: TrainingHistory) -> Bool { a.csv() == b.csv() }
}
