// Exponential moving average of weights (TensorFlow's tf.train.ExponentialMovingAverage).
//
//     decay_t = numUpdates given ? min(decay, (1 + numUpdates) / (10 + numUpdates)) : decay
//     shadow  = decay_t * shadow + (1 - decay_t) * w
//
// Shadows start as copies of the weights when the average is created. Evaluating with the
// averaged weights: `ema.copyShadows(into: params)` (keep a `snapshot` to restore).

import FCNCore
import FCNIO
import FCNModels

/// Shadow copies of parameters updated as an exponential moving average.
public final class ExponentialMovingAverage {
    /// The nominal decay (close to 1; 0.99 or 0.999 are usual).
    public let decay: Float
    /// Shadow values by parameter name.
    public private(set) var shadows: [String: Tensor]

    /// Creates shadows equal to the current values of `parameters`.
    public init(_ parameters: [any Optimizable], decay: Float) {
        fcnCheck(decay >= 0 && decay <= 1, "ExponentialMovingAverage", "decay must lie in [0, 1], got \(decay)")
        self.decay = decay
        var s: [String: Tensor] = [:]
        for p in parameters {
            fcnCheck(s[p.name] == nil, "ExponentialMovingAverage", "parameter name '\(p.name)' appears twice")
            s[p.name] = p.value.detached().withUnsafeBufferPointer { b in Tensor.make(shape: p.value.shape) { o in _ = o.initialize(from: b) } }
        }
        self.shadows = s
    }

    /// The decay used for an update at `numUpdates` (TensorFlow's warm-up rule), or the
    /// nominal decay when `numUpdates` is nil.
    public func effectiveDecay(numUpdates: Int?) -> Float {
        guard let n = numUpdates else { return decay }
        return min(decay, Float(1 + n) / Float(10 + n))
    }

    /// Updates every shadow from the current values of `parameters` (same names as at
    /// creation). `numUpdates` (usually the global step) enables the warm-up rule.
    /// Returns the decay used.
    @discardableResult
    public func update(_ parameters: [any Optimizable], numUpdates: Int? = nil) -> Float {
        let d = effectiveDecay(numUpdates: numUpdates)
        let oneMinus = 1 - d
        for p in parameters {
            fcnCheck(shadows[p.name] != nil, "ExponentialMovingAverage.update", "parameter '\(p.name)' has no shadow (not given at creation)")
            fcnCheck(shadows[p.name]!.shape == p.value.shape, "ExponentialMovingAverage.update",
                     "parameter '\(p.name)' has shape \(p.value.shape), its shadow \(shadows[p.name]!.shape)")
            let w = p.value.storage.pointer
            shadows[p.name]!.withUnsafeMutableBufferPointer { s in
                for i in 0..<s.count { s[i] = d * s[i] + oneMinus * w[i] }
            }
        }
        return d
    }

    /// Writes the shadows into the parameters' values (in place, no graph recorded).
    public func copyShadows(into parameters: [any Optimizable]) {
        for p in parameters {
            guard let s = shadows[p.name] else { continue }
            fcnCheck(s.shape == p.value.shape, "ExponentialMovingAverage.copyShadows", "parameter '\(p.name)' has shape \(p.value.shape), its shadow \(s.shape)")
            s.withUnsafeBufferPointer { src in p.value.withUnsafeMutableBufferPointer { dst in _ = dst.update(from: src) } }
        }
    }

    /// The shadows for a checkpoint (keys are parameter names).
    public func state() -> [String: Tensor] { shadows }

    /// Restores shadows saved by `state()`; throws if names or shapes differ.
    public func load(_ state: [String: Tensor]) throws {
        guard Set(state.keys) == Set(shadows.keys) else {
            let missing = Set(shadows.keys).subtracting(state.keys).sorted(), extra = Set(state.keys).subtracting(shadows.keys).sorted()
            throw FCNError.mismatch("EMA state: missing \(missing), unexpected \(extra)")
        }
        for (k, t) in state where t.shape != shadows[k]!.shape {
            throw FCNError.mismatch("EMA state: '\(k)' has shape \(t.shape), expected \(shadows[k]!.shape)")
        }
        shadows = state.mapValues { $0.detached() }
    }
}
