// What a reduced precision costs a model: the same evaluation as `evaluate` run in float32
// and in another `ComputePrecision` side by side, image by image.
//
// Both runs go through the packed-weight cache (`WeightCache.current` must be on: reduced
// precision applies to cached weights only), each under `Compute.withPrecision`. Reported:
// the share of pixels whose label is the same, both confusion matrices (so both mean IUs),
// and the error of the raw scores relative to float32's, as the root of summed squared
// differences over summed squares and as the largest absolute difference over the largest
// |score|. Pixels with the ignore label count for the label agreement too: it compares
// the two precisions, not either with the truth.
import FCNCore
import FCNIO
import FCNModels

/// The outcome of `comparePrecisions` (see the file comment).
public struct PrecisionComparison: Sendable {
    /// The precision compared with float32.
    public var precision: ComputePrecision
    /// Pixels compared, and those whose two labels agree.
    public var pixels = 0, equalLabels = 0
    /// Confusion matrices against the ground truth in float32 and in `precision`.
    public var float32: ConfusionMatrix, reduced: ConfusionMatrix
    /// Sums over every score of (reduced - float32)^2 and float32^2.
    public var squaredError = 0.0, squaredNorm = 0.0
    /// Largest |reduced - float32| and largest |float32| over every score.
    public var maxError: Float = 0, maxScore: Float = 0

    /// Share of pixels with the same label in both precisions.
    public var labelAgreement: Double { pixels == 0 ? 1 : Double(equalLabels) / Double(pixels) }
    /// sqrt(sum (reduced - float32)^2 / sum float32^2).
    public var relativeScoreError: Double { squaredNorm == 0 ? 0 : (squaredError / squaredNorm).squareRoot() }
    /// Mean IU in float32 minus mean IU in `precision`.
    public var meanIUDrop: Double { ValidationMetrics(float32).meanIU - ValidationMetrics(reduced).meanIU }
}

/// Evaluates `model` on every sample of `source` in float32 and in `precision` (see the file
/// comment); batches as `evaluate`.
public func comparePrecisions(_ model: any SegmentationModel, on source: any SegmentationSampleSource,
                              precision: ComputePrecision, batchSize: Int = 4) throws -> PrecisionComparison {
    var r = PrecisionComparison(precision: precision, float32: ConfusionMatrix(classes: model.numClasses),
                                reduced: ConfusionMatrix(classes: model.numClasses))
    try forEachEvaluationBatch(model, on: source, batchSize: batchSize) { y, scores in
        let a = Compute.withPrecision(.float32, scores), b = Compute.withPrecision(precision, scores)
        r.float32.update(scores: a, label: y)
        r.reduced.update(scores: b, label: y)
        let la = a.argmax(axis: 1).scalars, lb = b.argmax(axis: 1).scalars
        r.pixels += la.count
        r.equalLabels += zip(la, lb).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
        for (u, v) in zip(a.scalars, b.scalars) {
            let d = v - u
            r.squaredError += Double(d * d); r.squaredNorm += Double(u * u)
            r.maxError = max(r.maxError, abs(d)); r.maxScore = max(r.maxScore, abs(u))
        }
    }
    return r
}
