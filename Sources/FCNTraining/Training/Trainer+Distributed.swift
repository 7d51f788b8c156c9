// Data-parallel training across processes (`fcn-train` under `mpirun -np N` or `srun`):
// the trainer joins a `DistributedGroup` and every rank runs the same loop on its share of
// each global batch.
//
// Contract (N ranks, global batch B, B a multiple of N):
// * Every rank draws the same global batch (same sampler, same generator state) and runs
//   the forward pass on its rows `[B*r/N, B*(r+1)/N)`.
// * The outputs are gathered in rank order into the whole batch's output, a leaf, so the
//   loss (cross-entropy over all labelled pixels of the batch, the batch-level Lovasz) is
//   the one-process loss. Its gradient is back-propagated by each rank through its own rows.
// * The parameter gradients are summed across ranks in rank order (`DistributedGroup`'s
//   exact sum), in buckets of 25 MiB (`GradientBuckets`: one collective per bucket, not per
//   tensor; bucketing does not change the bits), which is the order `DataParallelBatch` adds its parts in: N ranks give the
//   weights of one process with `--replicas N` bit for bit, and of one process with whole
//   batches up to float summation order.
// * Joining broadcasts rank 0's parameters and buffers, so all ranks start identical (a
//   fresh model from the same seed, or the same checkpoint, already is); the optimizer's
//   state then evolves identically on every rank.
// * Validation splits the held-out images over the ranks (image i on rank i mod N) and sums
//   the confusion matrices. Only rank 0 writes checkpoints (and the tools print and write
//   curves on rank 0 only); a checkpoint does not depend on N, so `--resume` works with
//   any number of ranks.
// * Every rank takes the same decisions (stage ends, learning rates, progressive phases,
//   stopping) at the same step: before each step one small all-sum gives every rank rank 0's
//   clock (elapsed and last validation seconds) and whether any rank was asked to stop
//   (Ctrl-C), so a `--minutes` budget reads one clock, not N that disagree.
// * Batch norms see their rank's rows (as PyTorch's DistributedDataParallel without
//   SyncBatchNorm).
import FCNCore
import FCNIO
import FCNModels

extension Trainer {
    /// Joins `group` (see the file comment). Throws when the batch does not split evenly
    /// over the ranks or `--replicas` is also asked for.
    public func join(_ group: DistributedGroup) throws {
        guard group.size > 1 else { self.group = group; return }
        guard options.batch % group.size == 0 else {
            throw TrainerError("--batch \(options.batch) must be a multiple of the \(group.size) ranks (each rank takes an equal share)")
        }
        guard options.replicas == 1 else { throw TrainerError("--replicas is for one process; under MPI each rank runs whole parts") }
        self.group = group
        for (_, p) in model.namedParameters() {
            var v = p.value.detached()
            try group.broadcast(&v, from: 0)
            p.update { w, _ in v.withUnsafeBufferPointer { _ = w.update(from: $0) } }
        }
        for (_, b) in model.namedBuffers() {
            var v = b.value
            try group.broadcast(&v, from: 0)
            b.assign(v)
        }
    }

    /// Makes the ranks agree, before a step, on the clock and on stopping (see the file
    /// comment): returns true when any rank's `stopRequested` is, and sets `agreedClock` to
    /// rank 0's elapsed and last validation seconds. Alone: returns `stopRequested` and
    /// leaves the process's own clock in charge.
    func agree(stopRequested: Bool) throws -> Bool {
        guard group.size > 1 else { return stopRequested }
        agreedClock = nil
        // Rank 0 sends its clock, the others zeros, so the sums are rank 0's values exactly.
        var v: [Double] = group.rank == 0 ? [elapsedSeconds, lastValidationSeconds] : [0, 0]
        v.append(stopRequested ? 1 : 0)
        try group.allSum(&v)
        agreedClock = (v[0], v[1])
        return v[2] > 0
    }

    /// The forward, loss and backward of one step across the ranks; returns the loss of the
    /// whole batch and the clock when the forward pass (with the loss) ended. Leaves the
    /// summed gradients on the parameters.
    func distributedForwardBackward(_ x: Tensor, labels: Tensor, loss: ([(scores: Tensor, weight: Float)]) -> Tensor) throws
        -> (loss: Float, forwardEnd: UInt64) {
        let n = x.shape[0], r = group.rank, s = group.size
        let rows = n * r / s ..< n * (r + 1) / s
        let parts = model.trainingOutputs(x.sliced(axis: 0, range: rows))
        var wholes: [Tensor] = []
        let g0 = now()
        for (scores, _) in parts {
            let gathered = try group.allGather(scores.detached().scalars)
            wholes.append(Tensor(shape: [n] + Array(scores.shape.dropFirst()), scalars: gathered).requiringGrad())
        }
        timings.communication += Double(now() - g0) / 1e9
        let total = loss(zip(wholes, parts).map { ($0, $1.weight) })
        let value = total.item
        let forwardEnd = now()
        guard value.isFinite else { return (value, forwardEnd) }
        total.backward()
        for (whole, part) in zip(wholes, parts) {
            part.scores.backward(gradient: whole.grad!.sliced(axis: 0, range: rows))
        }
        let params = model.trainableParameters()
        var grads = params.map { $0.grad ?? Tensor.zeros($0.shape) }
        let counts = grads.map(\.count)
        if gradientPlan?.counts != counts {   // the first step, or a new stage's model
            gradientPlan = try GradientBuckets(group: group, counts: counts)
        }
        let s0 = now()
        try gradientPlan!.sum(&grads)
        timings.communication += Double(now() - s0) / 1e9
        for (p, g) in zip(params, grads) {
            p.value.zeroGrad()
            p.value.node!.accumulate(g)
        }
        return (value, forwardEnd)
    }

    /// The confusion matrix of the validation images, split over the ranks and summed.
    func distributedEvaluation() throws -> ConfusionMatrix {
        let part = RankShare(source: validationSource, rank: group.rank, size: group.size)
        let local = try evaluate(model, on: part, batchSize: options.batch)
        var counts = local.counts.map(Int64.init)
        try group.allSum(&counts)
        return ConfusionMatrix(classes: local.classes, counts: counts.map(Int.init))
    }
}

/// The samples `rank, rank + size, rank + 2 size, ...` of a source.
struct RankShare: SegmentationSampleSource {
    let source: any SegmentationSampleSource
    let rank: Int, size: Int
    var count: Int { source.count > rank ? (source.count - rank + size - 1) / size : 0 }
    var classes: Int { source.classes }
    var classNames: [String]? { source.classNames }
    var fixedSize: Int? { source.fixedSize }
    func sample(_ index: Int) throws -> (image: Tensor, label: Tensor) { try source.sample(rank + index * size) }
}
