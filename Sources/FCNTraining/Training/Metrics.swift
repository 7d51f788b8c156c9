// Segmentation metrics from a confusion matrix, as the FCN reference's score.py:
//
//     hist[gt][pred] counts pixels with 0 <= gt < C (255 and other labels are ignored)
//     pixel accuracy      = trace(hist) / sum(hist)
//     class accuracy      = diag / hist.sum(1)                       (nan-mean over classes)
//     IU                  = diag / (hist.sum(1) + hist.sum(0) - diag) (nan where 0 / 0)
//     mean IU             = nanmean(IU)   (classes present in gt or prediction)
//     frequency-weighted  = sum over freq > 0 of freq * IU, freq = hist.sum(1) / sum(hist)
//
// Counts are Int (exact for any dataset size); metrics are Double.

import FCNCore
import FCNIO
import FCNModels

/// A C x C confusion matrix over labelled pixels; rows are ground truth, columns predictions.
public struct ConfusionMatrix: Sendable, Equatable {
    /// Number of classes C.
    public let classes: Int
    /// Row-major counts: `counts[gt * classes + pred]`.
    public private(set) var counts: [Int]

    /// An empty matrix for `classes` classes.
    /// A matrix with the given counts (row-major `classes x classes`, ground truth by rows).
    package init(classes: Int, counts: [Int]) {
        fcnCheck(classes > 0 && counts.count == classes * classes, "ConfusionMatrix", "need \(classes * classes) counts, got \(counts.count)")
        self.classes = classes
        self.counts = counts
    }

    public init(classes: Int) {
        fcnCheck(classes > 0, "ConfusionMatrix", "classes must be > 0, got \(classes)")
        self.classes = classes
        self.counts = [Int](repeating: 0, count: classes * classes)
    }

    /// The count of pixels of ground-truth class `gt` predicted as `pred`.
    public subscript(gt: Int, pred: Int) -> Int { counts[gt * classes + pred] }

    /// Total number of counted pixels.
    public var total: Int { counts.reduce(0, +) }

    /// Adds pixels: `prediction[i]` against `label[i]`. Pixels whose label is outside
    /// `0..<classes` (255 = ignore) are skipped; predictions must lie in `0..<classes`.
    public mutating func update(prediction: [Int], label: [Int]) {
        fcnCheck(prediction.count == label.count, "ConfusionMatrix.update", "prediction has \(prediction.count) pixels, label \(label.count)")
        let c = classes
        counts.withUnsafeMutableBufferPointer { h in
            for i in 0..<label.count {
                let g = label[i]
                guard g >= 0 && g < c else { continue }
                let p = prediction[i]
                fcnCheck(p >= 0 && p < c, "ConfusionMatrix.update", "prediction \(p) at pixel \(i) is outside 0..<\(c)")
                h[g * c + p] += 1
            }
        }
    }

    /// Adds pixels from label-map tensors of equal shape (class ids stored as Float, e.g.
    /// `[N, H, W]`). Label values that are not integers in `0..<classes` are skipped.
    public mutating func update(prediction: Tensor, label: Tensor) {
        fcnCheck(prediction.shape == label.shape, "ConfusionMatrix.update", "prediction shape \(prediction.shape) differs from label shape \(label.shape)")
        let c = classes, n = label.count
        let pp = prediction.storage.pointer, lp = label.storage.pointer
        counts.withUnsafeMutableBufferPointer { h in
            for i in 0..<n {
                let gf = lp[i]
                guard gf >= 0 && gf < Float(c) && gf == gf.rounded(.down) else { continue }
                let pf = pp[i]
                fcnCheck(pf >= 0 && pf < Float(c) && pf == pf.rounded(.down), "ConfusionMatrix.update",
                         "prediction \(pf) at pixel \(i) is not a class id in 0..<\(c)")
                h[Int(gf) * c + Int(pf)] += 1
            }
        }
    }

    /// Adds pixels from scores `[N, C, H, W]` (prediction = argmax over C; ties go to the
    /// lowest class, as numpy/torch argmax) against labels `[N, H, W]`.
    public mutating func update(scores: Tensor, label: Tensor) {
        fcnCheck(scores.rank == 4 && scores.shape[1] == classes, "ConfusionMatrix.update",
                 "scores must be [N, \(classes), H, W], got \(scores.shape)")
        let (n, c, hh, ww) = (scores.shape[0], scores.shape[1], scores.shape[2], scores.shape[3])
        fcnCheck(label.shape == [n, hh, ww], "ConfusionMatrix.update", "label must be [\(n), \(hh), \(ww)] for scores \(scores.shape), got \(label.shape)")
        let hw = hh * ww
        let sp = scores.storage.pointer
        let pred = Tensor.make(shape: label.shape) { out in
            for b in 0..<n {
                for i in 0..<hw {
                    var best = sp[b * c * hw + i], arg = 0
                    for k in 1..<max(c, 1) {
                        let v = sp[(b * c + k) * hw + i]
                        if v > best || (best.isNaN == false && v.isNaN) { best = v; arg = k }
                    }
                    out[b * hw + i] = Float(arg)
                }
            }
        }
        update(prediction: pred, label: label)
    }

    /// Adds the counts of another matrix with the same number of classes.
    public mutating func merge(_ other: ConfusionMatrix) {
        fcnCheck(other.classes == classes, "ConfusionMatrix.merge", "cannot merge \(other.classes) classes into \(classes)")
        for i in 0..<counts.count { counts[i] += other.counts[i] }
    }

    /// Clears all counts.
    public mutating func reset() { counts = [Int](repeating: 0, count: classes * classes) }

    private var diag: [Double] { (0..<classes).map { Double(counts[$0 * classes + $0]) } }
    private var rowSums: [Double] { (0..<classes).map { r in Double(counts[r * classes ..< (r + 1) * classes].reduce(0, +)) } }
    private var colSums: [Double] { (0..<classes).map { c in Double(stride(from: c, to: counts.count, by: classes).reduce(0) { $0 + counts[$1] }) } }

    /// Overall pixel accuracy: correct pixels / counted pixels (nan if none).
    public var pixelAccuracy: Double { diag.reduce(0, +) / Double(total) }

    /// Per-class accuracy (recall) `diag / row sum`; nan for classes absent from the ground truth.
    public var classAccuracy: [Double] { zip(diag, rowSums).map { $0 / $1 } }

    /// Mean of `classAccuracy` over classes with ground-truth pixels (numpy nanmean).
    public var meanClassAccuracy: Double { nanMean(classAccuracy) }

    /// Per-class intersection over union `tp / (tp + fp + fn)`; nan when a class is
    /// neither in the ground truth nor predicted.
    public var classIU: [Double] {
        let d = diag, r = rowSums, c = colSums
        return (0..<classes).map { d[$0] / (r[$0] + c[$0] - d[$0]) }
    }

    /// Mean IU over classes present in the ground truth or the prediction (nanmean).
    public var meanIU: Double { nanMean(classIU) }

    /// Frequency-weighted IU: sum over classes with ground-truth pixels of
    /// (their share of pixels) * IU.
    public var frequencyWeightedIU: Double {
        let r = rowSums, iu = classIU, t = Double(total)
        var s = 0.0
        for k in 0..<classes where r[k] / t > 0 { s += r[k] / t * iu[k] }
        return s
    }
}

/// Mean of the non-nan values (nan if all are nan), as numpy.nanmean.
func nanMean(_ xs: [Double]) -> Double {
    let kept = xs.filter { !$0.isNaN }
    return kept.isEmpty ? .nan : kept.reduce(0, +) / Double(kept.count)
}
