// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.
//
// Gradients are rescaled in place in the parameters' gradient slots (no graph recorded).
// Parameters without a gradient are ignored.

import FCNCore
import FCNIO
import FCNModels

/// Rescales the gradients of `parameters` so that their global norm (the norm of the vector
/// of all gradient elements) is at most `maxNorm`, and returns that norm before clipping.
///
/// As PyTorch: `coef = min(maxNorm / (total + 1e-6), 1)` in Float and every gradient is
/// multiplied by `coef` (also when it is 1). `normType` is 2 (Euclidean) or `.infinity`
/// (largest magnitude). The norm is accumulated in Double.
@discardableResult
public func clipGradNorm(_ parameters: [any Optimizable], maxNorm: Float, normType: Float = 2) -> Float {
    fcnCheck(maxNorm >= 0, "clipGradNorm", "maxNorm must be >= 0, got \(maxNorm)")
    fcnCheck(normType == 2 || normType == .infinity, "clipGradNorm", "normType must be 2 or .infinity, got \(normType)")
    var nodes: [GradNode] = []
    for p in parameters { if let node = p.value.node, node.grad != nil { nodes.append(node) } }
    if nodes.isEmpty { return 0 }
    var total: Float
    if normType == 2 {
        // Per-tensor norms rounded to Float, then the norm of those, as torch.
        var acc = 0.0
        for node in nodes {
            var s = 0.0
            node.grad!.withUnsafeBufferPointer { g in for v in g { s += Double(v) * Double(v) } }
            let normI = Double(Float(s.squareRoot()))
            acc += normI * normI
        }
        total = Float(acc.squareRoot())
    } else {
        total = 0
        for node in nodes {
            node.grad!.withUnsafeBufferPointer { g in for v in g { total = max(total, abs(v)) } }
        }
    }
    let coef = min(maxNorm / (total + 1e-6), 1)
    for node in nodes {
        node.grad!.withUnsafeMutableBufferPointer { g in for i in 0..<g.count { g[i] *= coef } }
    }
    return total
}

/// Clamps every gradient element of `parameters` to `[-clipValue, clipValue]` in place
/// (`torch.nn.utils.clip_grad_value_`).
public func clipGradValue(_ parameters: [any Optimizable], clipValue: Float) {
    fcnCheck(clipValue >= 0, "clipGradValue", "clipValue must be >= 0, got \(clipValue)")
    for p in parameters {
        guard let node = p.value.node, node.grad != nil else { continue }
        node.grad!.withUnsafeMutableBufferPointer { g in
            for i in 0..<g.count { g[i] = min(max(g[i], -clipValue), clipValue) }
        }
    }
}
