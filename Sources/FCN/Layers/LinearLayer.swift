// Fully connected layer.

/// `y = x W^T + b` over the last axis: weight `[outFeatures, inFeatures]`, bias
/// `[outFeatures]`, input `[..., inFeatures]`, output `[..., outFeatures]`.
/// Default init as PyTorch: U(±1/sqrt(inFeatures)) for weight and bias.
public final class Linear: Layer, @unchecked Sendable {
    public let weight: Parameter
    public let bias: Parameter?
    public var isTraining = true

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

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

    public var localParameters: [(String, Parameter)] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight.value, bias: bias?.value) }
}
