// Reverse-mode automatic differentiation.
//
// Every op that may be differentiated ends with `Tensor.record(output, inputs:, backward:)`.
// When gradient recording is enabled and at least one input requires a gradient, the
// output gets a `GradNode` holding the op's backward closure and its parents' nodes; the
// backward closure maps the output's gradient to one gradient per input (nil for inputs
// that need none). Otherwise nothing is recorded and inference costs nothing extra.
//
//   let w = Tensor.randn([3, 3]).requiringGrad()
//   let loss = (w * w).sum()
//   loss.backward()            // w.grad == 2 * w
//
// Gradients accumulate in leaf tensors across backward calls until `zeroGrad()`. The
// graph is released after backward (saved tensors are freed): calling backward twice
// through the same graph is an error, as in PyTorch without retain_graph.

/// A node of the recorded graph. Internal: users see `Tensor.requiresGrad` and `grad`.
@usableFromInline
package final class GradNode: @unchecked Sendable {
    /// Parents aligned with the op's inputs; nil where an input needs no gradient.
    var parents: [GradNode?]
    /// Maps the output gradient to input gradients (aligned with `parents`).
    var backward: ((Tensor) -> [Tensor?])?
    /// Accumulated gradient (leaves only).
    package var grad: Tensor?
    let isLeaf: Bool
    let shape: [Int]
    let opName: String
    var released = false
    private let lock = Lock()

    init(leafWithShape shape: [Int]) {
        self.parents = []; self.backward = nil; self.isLeaf = true; self.shape = shape; self.opName = "leaf"
    }

    init(op: String, shape: [Int], parents: [GradNode?], backward: @escaping (Tensor) -> [Tensor?]) {
        self.parents = parents; self.backward = backward; self.isLeaf = false; self.shape = shape; self.opName = op
    }

    package func accumulate(_ g: Tensor) {
        lock.withLock {
            if let old = grad { grad = old._addNoGrad(g) } else { grad = g.detached() }
        }
    }
}

/// Where a backward pass on this thread puts leaf gradients: nil (the default) adds them to
/// the leaves at once; a sink collects them so that `DataParallelBatch` can add the parts'
/// gradients in a fixed order after parts ran side by side.
package final class LeafGradientSink: @unchecked Sendable {
    /// (leaf, gradient) in the order the backward pass reached the leaves.
    package var items: [(node: GradNode, grad: Tensor)] = []

    package init() {}

    @TaskLocal package static var current: LeafGradientSink? = nil
}

/// Whether ops record a graph. Thread- and task-local; enabled by default.
public enum GradMode {
    @TaskLocal package static var enabled = true

    /// True when ops currently record gradients.
    public static var isEnabled: Bool { enabled }
}

/// Runs `body` with gradient recording switched off: no graph is built, no memory is kept
/// for backward. Use it for inference and for optimizer updates.
public func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$enabled.withValue(false) { try body() }
}

/// Runs `body` with gradient recording switched on (for instance inside `withoutGrad`).
public func withGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$enabled.withValue(true) { try body() }
}

extension Tensor {
    /// True when gradients flow to this tensor (it is a leaf that requires them, or the
    /// result of recorded ops on such tensors).
    public var requiresGrad: Bool { node != nil }

    /// A copy of this tensor that is a leaf requiring a gradient (`flag` true), or a
    /// detached copy (`flag` false). The copy shares storage with `self`.
    public func requiringGrad(_ flag: Bool = true) -> Tensor {
        Tensor(shape: shape, storage: storage, node: flag ? GradNode(leafWithShape: shape) : nil)
    }

    /// The same values without autograd history (shares storage).
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage, node: nil) }

    /// True for tensors created by `requiringGrad()` (not produced by an op).
    public var isLeaf: Bool { node?.isLeaf ?? true }

    /// The gradient accumulated by backward passes (leaves only), or nil.
    public var grad: Tensor? { node?.grad }

    /// Clears the accumulated gradient of this leaf.
    public func zeroGrad() { node?.grad = nil }

    /// Records an op in the graph. `backward` receives the gradient of `output` and returns
    /// one gradient per input (same shape as that input), or nil for an input that needs
    /// none; `needs[i]` tells whether input `i` requires one.
    @usableFromInline
    static func record(_ op: String, _ output: Tensor, inputs: [Tensor],
                       backward: @escaping (_ grad: Tensor, _ needs: [Bool]) -> [Tensor?]) -> Tensor {
        guard GradMode.enabled else { return output }
        let parents = inputs.map { $0.node }
        guard parents.contains(where: { $0 != nil }) else { return output }
        let needs = parents.map { $0 != nil }
        var out = output
        out.node = GradNode(op: op, shape: output.shape, parents: parents) { g in backward(g, needs) }
        return out
    }

    /// Back-propagates from this tensor. With no `gradient`, the tensor must hold one
    /// element (a scalar loss) and its gradient is 1. Gradients accumulate into the `grad`
    /// of every leaf that requires one; the graph is released afterwards.
    public func backward(gradient: Tensor? = nil) {
        guard let root = node else {
            fcnFail("backward", "tensor of shape \(shape) does not require grad (no leaf that requires grad was used to compute it)")
        }
        let seed: Tensor
        if let g = gradient {
            fcnCheck(g.shape == shape, "backward", "gradient shape \(g.shape) differs from tensor shape \(shape)")
            seed = g.detached()
        } else {
            fcnCheck(count == 1, "backward", "tensor of shape \(shape) is not a scalar; pass gradient:")
            seed = Tensor(shape: shape, repeating: 1)
        }
        withoutGrad { Tensor.runBackward(root: root, seed: seed) }
    }

    static func runBackward(root: GradNode, seed: Tensor) {
        // Iterative post-order DFS gives a topological order without deep recursion.
        var order: [GradNode] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GradNode, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (n, i) = stack.popLast() {
            if i < n.parents.count {
                stack.append((n, i + 1))
                if let p = n.parents[i], !visited.contains(ObjectIdentifier(p)) {
                    visited.insert(ObjectIdentifier(p))
                    stack.append((p, 0))
                }
            } else {
                order.append(n)
            }
        }
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
        for n in order.reversed() {
            guard let g = grads.removeValue(forKey: ObjectIdentifier(n)) else { continue }
            if n.isLeaf {
                if let sink = LeafGradientSink.current { sink.items.append((n, g)) } else { n.accumulate(g) }
                continue
            }
            fcnCheck(!n.released, "backward", "the graph through '\(n.opName)' was already released by an earlier backward(); recompute the forward pass")
            guard let fn = n.backward else { continue }
            let inGrads = fn(g)
            fcnCheck(inGrads.count == n.parents.count, "backward", "'\(n.opName)' returned \(inGrads.count) gradients for \(n.parents.count) inputs")
            for (p, ig) in zip(n.parents, inGrads) {
                guard let p, let ig else { continue }
                fcnCheck(ig.shape == p.shape, "backward", "'\(n.opName)' produced a gradient of shape \(ig.shape) for an input of shape \(p.shape)")
                let key = ObjectIdentifier(p)
                if let acc = grads[key] { grads[key] = acc._addNoGrad(ig) } else { grads[key] = ig }
            }
            // Release saved tensors of this node.
            n.backward = nil
            n.released = true
        }
    }

    /// Element-wise sum of two same-shaped tensors, never recorded (for gradient accumulation).
    @usableFromInline
    func _addNoGrad(_ other: Tensor) -> Tensor {
        precondition(shape == other.shape)
        return Tensor.make(shape: shape) { out in
            let a = storage.pointer, b = other.storage.pointer, o = out.baseAddress!
            parallelChunks(out.count, minChunk: elementwiseGrain) { r in
                for i in r { o[i] = a[i] + b[i] }
            }
        }
    }
}
