// BatchNorm2d with torchvision's state names: `weight`, `bias` (parameters),
// `running_mean`, `running_var`, `num_batches_tracked` (buffers).

import FCNCore
import FCNIO

/// Batch normalisation over the channels of NCHW input:
/// `y = (x - mean) / sqrt(var + eps) * weight + bias` per channel.
///
/// Training mode normalises with the batch statistics (biased variance) and updates the
/// running statistics: `running = (1 - momentum) * running + momentum * batchStat` with the
/// unbiased batch variance, as PyTorch; `momentum` nil uses the cumulative average
/// (`momentum = 1 / num_batches_tracked`). Eval mode uses the running statistics.
/// `num_batches_tracked` is a Float32 scalar here (int64 in PyTorch; files written by
/// PyTorch load fine and PyTorch accepts ours).
///
/// Training-mode calls mutate the buffers: one thread at a time.
public final class BatchNorm2d: Layer, @unchecked Sendable {
    /// Number of channels C.
    public let numFeatures: Int
    /// Added to the variance before the square root.
    public let eps: Float
    /// Weight of a new batch in the running statistics; nil for the cumulative average.
    public let momentum: Float?
    /// Affine scale `[C]` (name `weight`), nil when built with `affine: false`.
    public let weight: Parameter?
    /// Affine shift `[C]` (name `bias`), nil when built with `affine: false`.
    public let bias: Parameter?
    /// Running mean `[C]` (buffer `running_mean`), nil without `trackRunningStats`.
    public let runningMean: Buffer?
    /// Running (unbiased) variance `[C]` (buffer `running_var`), nil without `trackRunningStats`.
    public let runningVar: Buffer?
    /// Number of training batches seen, a scalar (buffer `num_batches_tracked`).
    public let numBatchesTracked: Buffer?
    /// Training mode normalises with batch statistics and updates the running ones; eval
    /// mode uses the running statistics.
    public var isTraining = true

    /// Defaults as PyTorch: eps 1e-5, momentum 0.1, affine (weight 1, bias 0), running
    /// statistics tracked (mean 0, variance 1).
    public init(_ numFeatures: Int, eps: Float = 1e-5, momentum: Float? = 0.1, affine: Bool = true,
                trackRunningStats: Bool = true) {
        fcnCheck(numFeatures > 0, "BatchNorm2d", "numFeatures must be positive, got \(numFeatures)")
        self.numFeatures = numFeatures; self.eps = eps; self.momentum = momentum
        weight = affine ? Parameter(.ones([numFeatures])) : nil
        bias = affine ? Parameter(.zeros([numFeatures])) : nil
        runningMean = trackRunningStats ? Buffer(.zeros([numFeatures])) : nil
        runningVar = trackRunningStats ? Buffer(.ones([numFeatures])) : nil
        numBatchesTracked = trackRunningStats ? Buffer(Tensor(0)) : nil
    }

    /// `weight` and `bias` when affine.
    public var localParameters: [(String, Parameter)] {
        guard let weight, let bias else { return [] }
        return [("weight", weight), ("bias", bias)]
    }

    /// `running_mean`, `running_var`, `num_batches_tracked` when tracking statistics.
    public var localBuffers: [(String, Buffer)] {
        guard let runningMean, let runningVar, let numBatchesTracked else { return [] }
        return [("running_mean", runningMean), ("running_var", runningVar), ("num_batches_tracked", numBatchesTracked)]
    }

    /// Normalises `[N, numFeatures, H, W]` per channel (same shape out); see the type's
    /// description for the two modes.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        fcnCheck(x.rank == 4 && x.shape[1] == numFeatures, "BatchNorm2d",
                 "expected input [N, \(numFeatures), H, W], got \(x.shape)")
        guard let runningMean, let runningVar, let numBatchesTracked else {
            var m = Tensor.zeros([numFeatures]), v = Tensor.ones([numFeatures])
            return batchNorm(x, weight: weight?.value, bias: bias?.value, runningMean: &m, runningVar: &v,
                             training: true, momentum: 0, eps: eps)
        }
        guard isTraining else {
            var m = runningMean.value, v = runningVar.value
            return batchNorm(x, weight: weight?.value, bias: bias?.value, runningMean: &m, runningVar: &v,
                             training: false, eps: eps)
        }
        let tracked = numBatchesTracked.value.item + 1
        numBatchesTracked.value = Tensor(tracked)
        var m = runningMean.value, v = runningVar.value
        let y = batchNorm(x, weight: weight?.value, bias: bias?.value, runningMean: &m, runningVar: &v,
                          training: true, momentum: momentum ?? 1 / tracked, eps: eps)
        runningMean.value = m
        runningVar.value = v
        return y
    }
}
