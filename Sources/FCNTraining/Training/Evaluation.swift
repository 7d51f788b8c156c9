// Measuring a model on labelled images: the confusion matrix that every metric of
// `ValidationMetrics` and the per-class IU are computed from.
//
// It runs what segmentation runs (FCNInference's `Segmenter` on a whole image): the
// model's inference copy (`rawScoreLayer`, batch norms folded) on the model's own input
// convention, the raw scores resized bilinearly (align_corners false) when they are not
// full resolution, argmax per pixel. So the labels counted here are the labels a user gets
// from `fcn-segment` for the same image, and a checkpoint's score does not depend on who
// computes it. Pixels labelled with the model's ignore label (or any id >= classes) are
// not counted.
import FCNCore
import FCNIO
import FCNModels

/// The confusion matrix of `model` over every sample of `source` (see the file comment).
/// The model is left in eval mode. `batchSize` images are stacked when the source has a
/// fixed size (one at a time otherwise).
public func evaluate(_ model: any SegmentationModel, on source: any SegmentationSampleSource,
                     batchSize: Int = 4) throws -> ConfusionMatrix {
    var cm = ConfusionMatrix(classes: model.numClasses)
    try forEachEvaluationBatch(model, on: source, batchSize: batchSize) { label, scores in
        cm.update(scores: scores(), label: label)
    }
    return cm
}

/// The batches of an evaluation: for each, `body(labels, scores)` where `scores()` runs the
/// model's inference copy on the batch (without gradient) and returns its raw scores at full
/// resolution (see the file comment), as often as it is called. Checks the class counts and
/// leaves the model in eval mode; `batchSize` as `evaluate`.
func forEachEvaluationBatch(_ model: any SegmentationModel, on source: any SegmentationSampleSource, batchSize: Int,
                            _ body: (_ labels: Tensor, _ scores: () -> Tensor) throws -> Void) throws {
    fcnCheck(batchSize >= 1, "evaluate", "batchSize must be >= 1, got \(batchSize)")
    guard source.classes == model.numClasses else {
        throw TrainerError("the data has \(source.classes) classes but the model \(model.numClasses)")
    }
    model.eval()
    let inference = model.rawScoreLayer(), stride = model.scoreStride, input = model.preferredPreprocessing
    let n = source.count
    let bs = source.fixedSize != nil ? batchSize : 1
    var i = 0
    while i < n {
        let samples = try (i..<min(n, i + bs)).map { try source.sample($0) }
        let x = input.apply(Tensor.stack(samples.map(\.image)))
        try body(Tensor.stack(samples.map(\.label))) {
            withoutGrad {
                let raw = inference(x)
                return stride == 1 ? raw : interpolateBilinear(raw, size: Size2(x.shape[2], x.shape[3]), alignCorners: false)
            }
        }
        i += bs
    }
}
