// Fully connected layer.

import FCNCore
import FCNIO

/// `y = x W^T + b` over the last axis: weight `[outFeatures, inFeatures]`, bias
/// `[outFeatures]`, input `[..., inFeatures]`, output `[..., outFeatures]`.
/// Default init as PyTorch: U(±1/sqrt(inFeatures)) for weight and bias.
public final class Linear: Layer, @unchecked Sendable {
    /// The weight `[outFeatures, inFeatures]` (state-dict name `weight`).
    public let weight: Parameter
    /// The bias `[outFeatures]` (name `bias`), or nil.
    public let bias: Parameter?
    /// Training or evaluation mode (no effect on a linear layer).
    public var isTraining = true

    /// Input features, `weight.shape[1]`.
    public var inFeatures: Int { weight.shape[1] }
    /// Output features, `weight.shape[0]`.
    public var outFeatures: Int { weight.shape[0] }

    /// Creates a layer with PyTorch's default initialisation (`seed` nil: the shared
    /// generator of `ParameterInit`).
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, seed: UInt64? = nil) {
        fcnCheck(inFeatures >= 0 && outFeatures >= 0, "Linear", "sizes must be non-negative, got \(inFeatures) -> \(outFeatures)")
        var g = ParameterInit.generator(seed: seed)
        weight = Parameter(ParameterInit.torchDefault([outFeatures, inFeatures], fanIn: inFeatures, using: &g))
        self.bias = bias ? Parameter(ParameterInit.torchDefault([outFeatures], fanIn: inFeatures, using: &g)) : nil
    }

    /// Creates a layer with the given weight `[out, in]` and bias `[out]`.
    public init(weight: Tensor, bias: Tensor? = nil) {
        fcnCheck(weight.rank == 2, "Linear", "weight must be [out, in], got \(weight.shape)")
        fcnCheck(bias == nil || bias!.shape == [weight.shape[0]], "Linear", "bias must be [\(weight.shape[0])], got \(bias!.shape)")
        self.weight = Parameter(weight)
        self.bias = bias.map { Parameter($0) }
    }

    /// `weight`, then `bias` if present (PyTorch's order and names).
    public var localParameters: [(String, Parameter)] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }

    /// `x W^T + b` over the last axis: `[..., inFeatures]` -> `[..., outFeatures]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight.value, bias: bias?.value) }
}
