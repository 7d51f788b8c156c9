// Optimizable: what an optimizer needs from a trainable parameter, and parameter groups.
//
// An optimizer sees a parameter as a named slot holding a Tensor leaf that requires grad;
// its gradient is `value.grad`, filled by `backward()`. Updates are written in place into
// the slot's storage (no graph is recorded). The Layers' `Parameter` class conforms with a
// one-line extension; `TrainableTensor` below is a stand-alone slot for plain tensors.
//
// Groups carry Caffe-style multipliers: the effective learning rate of a parameter is
// `baseLR * lrMultiplier` and its weight decay `weightDecay * decayMultiplier`, so the
// FCN reference solver (biases at lr x2 and no decay, upsampling frozen) is
// `ParameterGroup.caffeStyle(params, frozen: { $0.contains("upscore") })`.

import FCNCore
import FCNIO
import FCNModels

/// A named trainable tensor seen by an optimizer.
///
/// `value` must be a leaf that requires grad (`tensor.requiringGrad()`); its gradient is
/// `value.grad`. Parameters whose gradient is nil at a step are skipped, as in PyTorch (a
/// frozen parameter simply never receives one).
public protocol Optimizable: AnyObject {
    /// Unique name, used as the key of the optimizer state (e.g. `conv1_1.weight`).
    var name: String { get }
    /// The parameter tensor (a leaf requiring grad); updated in place by optimizers.
    var value: Tensor { get set }
}

/// A minimal `Optimizable`: a name and a tensor leaf that requires grad.
public final class TrainableTensor: Optimizable, @unchecked Sendable {
    /// The unique name (key of the optimizer state).
    public let name: String
    /// The tensor, a leaf requiring grad; updated in place by optimizers.
    public var value: Tensor

    /// Wraps `value` as a leaf requiring grad (shares its storage).
    public init(name: String, value: Tensor) {
        self.name = name
        self.value = value.requiresGrad && value.isLeaf ? value : value.requiringGrad()
    }
}

/// Parameters trained with the same learning-rate and weight-decay multipliers.
public struct ParameterGroup {
    /// The parameters of the group.
    public var parameters: [any Optimizable]
    /// Multiplies the optimizer's (scheduled) learning rate for this group. Default 1.
    public var lrMultiplier: Float
    /// Multiplies the optimizer's weight decay for this group. Default 1.
    public var decayMultiplier: Float

    /// A group; the multipliers default to 1 (plain PyTorch behaviour).
    public init(_ parameters: [any Optimizable], lrMultiplier: Float = 1, decayMultiplier: Float = 1) {
        fcnCheck(lrMultiplier >= 0 && lrMultiplier.isFinite, "ParameterGroup", "lrMultiplier must be finite and >= 0, got \(lrMultiplier)")
        fcnCheck(decayMultiplier >= 0 && decayMultiplier.isFinite, "ParameterGroup", "decayMultiplier must be finite and >= 0, got \(decayMultiplier)")
        self.parameters = parameters
        self.lrMultiplier = lrMultiplier
        self.decayMultiplier = decayMultiplier
    }

    /// Splits `parameters` into groups by the first matching rule (a predicate on the name
    /// with its multipliers); parameters matched by no rule go to a default group with
    /// multipliers 1; parameters for which `exclude` is true are left out (frozen).
    /// Empty groups are dropped.
    public static func split(_ parameters: [any Optimizable],
                             rules: [(matches: (String) -> Bool, lrMultiplier: Float, decayMultiplier: Float)],
                             exclude: (String) -> Bool = { _ in false }) -> [ParameterGroup] {
        var buckets = [[any Optimizable]](repeating: [], count: rules.count + 1)
        for p in parameters where !exclude(p.name) {
            let i = rules.firstIndex { $0.matches(p.name) } ?? rules.count
            buckets[i].append(p)
        }
        var groups: [ParameterGroup] = []
        for (i, b) in buckets.enumerated() where !b.isEmpty {
            if i < rules.count {
                groups.append(ParameterGroup(b, lrMultiplier: rules[i].lrMultiplier, decayMultiplier: rules[i].decayMultiplier))
            } else {
                groups.append(ParameterGroup(b))
            }
        }
        return groups
    }

    /// The Caffe FCN solver's grouping: names ending in "bias" train at lr x2 with no
    /// weight decay, other parameters at x1 with decay; names for which `frozen` is true
    /// (e.g. the bilinear upsampling deconvolutions) are not trained.
    public static func caffeStyle(_ parameters: [any Optimizable], frozen: (String) -> Bool = { _ in false }) -> [ParameterGroup] {
        split(parameters, rules: [(matches: { $0.hasSuffix("bias") }, lrMultiplier: 2, decayMultiplier: 0)], exclude: frozen)
    }
}
