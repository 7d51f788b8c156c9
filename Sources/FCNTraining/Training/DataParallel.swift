// Data parallelism on one machine: a batch split into parts whose forward and backward
// passes run side by side, one worker thread each, the kernels inside a part serial.
//
// Why: on few cores and small images the kernels of one pass split poorly over threads
// (a second thread speeds a step of a small FCN-8s up far less than twice; figures:
// Benchmarks.md, Training); running the halves of the batch at once keeps every core
// inside whole kernels, with no wake-up per kernel.
//
// Contract:
//   let batch = DataParallelBatch(input: x, parts: 2) { model($0) }
//   let loss = softmaxCrossEntropy(logits: batch.output, labels: y)   // the whole batch
//   batch.backward(loss)
// * `input` [N, ...] is split along axis 0 into `parts` runs of sizes that differ by at most
//   one (N = 4, parts 3: 2, 1, 1); part i's forward runs on a worker of its own
//   (`Compute.threads` workers at most; with fewer threads parts wait their turn).
// * `output` joins the parts' outputs along axis 0 as a leaf, so a loss sees the whole
//   batch: a batch-level loss (the Lovász-softmax over the batch's pixels) keeps its
//   meaning, and the loss value equals the one-part value up to rounding.
// * `backward(loss)` back-propagates the loss to `output`, splits that gradient and runs
//   the parts' backward passes side by side. Each part collects its leaf gradients, which
//   are then added to the leaves part by part in order: the result depends neither on
//   thread timing nor on `Compute.threads`, and differs from one part only by rounding.
// * `forward` is called from several threads at once: it must not change shared state.
//   Layers that do in training mode (dropout generators, batch-norm running statistics)
//   must be in eval mode or absent; `Trainer` refuses `replicas > 1` with dropout.
// * parts == 1 is the plain path: `output` is `forward(input)` itself and `backward` is
//   `loss.backward()`, bit for bit.

import FCNCore
import FCNIO
import FCNModels

/// A batch whose forward and backward passes run in `parts` parts at once (see the file
/// contract): build it with the forward, compute the loss on `output`, call `backward`.
public struct DataParallelBatch {
    /// The whole batch's output, `[N, ...]`: the parts' outputs joined along axis 0.
    public let output: Tensor
    /// Number of parts the batch was split into.
    public let parts: Int
    private let partOutputs: [Tensor]

    /// Splits `input` along axis 0 into `parts` runs (sizes differ by at most one) and runs
    /// `forward` on each at the same time. `parts` must lie in `1...input.shape[0]`.
    public init(input: Tensor, parts: Int, forward: (Tensor) -> Tensor) {
        fcnCheck(input.rank >= 1, "DataParallelBatch", "input must have a batch axis, got shape \(input.shape)")
        let n = input.shape[0]
        fcnCheck(parts >= 1 && parts <= n, "DataParallelBatch",
                 "parts must lie in 1...\(n) (the batch of input \(input.shape)), got \(parts)")
        self.parts = parts
        if parts == 1 {
            output = forward(input)
            partOutputs = [output]
            return
        }
        let slices = (0..<parts).map { i in input.sliced(axis: 0, range: n * i / parts ..< n * (i + 1) / parts) }
        var outs = [Tensor?](repeating: nil, count: parts)
        let recording = GradMode.enabled, cache = WeightCache.current
        outs.withUnsafeMutableBufferPointer { buf in
            let b = UncheckedSendable(buf)
            parallelFor(parts) { i in
                GradMode.$enabled.withValue(recording) {
                    WeightCache.$current.withValue(cache) { b.value[i] = forward(slices[i]) }
                }
            }
        }
        partOutputs = outs.map { $0! }
        for (i, o) in partOutputs.enumerated() {
            fcnCheck(o.rank >= 1 && o.shape[0] == slices[i].shape[0], "DataParallelBatch",
                     "forward must keep the batch axis: part \(i) of input \(slices[i].shape) gave output \(o.shape)")
        }
        let joined = Tensor.concat(partOutputs.map { $0.detached() }, axis: 0)
        output = partOutputs.contains(where: \.requiresGrad) ? joined.requiringGrad() : joined
    }

    /// Back-propagates `loss` (a scalar computed from `output`) through every part; the
    /// leaves' gradients accumulate as `loss.backward()` would leave them.
    public func backward(_ loss: Tensor) {
        if parts == 1 { loss.backward(); return }
        fcnCheck(output.requiresGrad, "DataParallelBatch.backward", "the forward recorded no graph (no parameter requires grad, or gradients were off)")
        loss.backward()
        guard let g = output.grad else {
            fcnFail("DataParallelBatch.backward", "the loss does not depend on the batch output \(output.shape)")
        }
        var start = 0
        let grads: [Tensor] = partOutputs.map { o in
            defer { start += o.shape[0] }
            return g.sliced(axis: 0, range: start ..< start + o.shape[0])
        }
        let sinks = (0..<parts).map { _ in LeafGradientSink() }
        parallelFor(parts) { i in
            guard partOutputs[i].requiresGrad else { return }
            LeafGradientSink.$current.withValue(sinks[i]) { partOutputs[i].backward(gradient: grads[i]) }
        }
        // Fixed order: part 0's gradient first, then part 1's, ...
        withoutGrad {
            for sink in sinks { for item in sink.items { item.node.accumulate(item.grad) } }
        }
        output.zeroGrad()
    }
}
