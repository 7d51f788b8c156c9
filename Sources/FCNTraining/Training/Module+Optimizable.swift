// Bridges a model's parameters to the optimizers: each trainable `Parameter` is seen as an
// `Optimizable` named by its dotted path (`conv1_1.weight`), the key of optimizer state.

import FCNCore
import FCNIO
import FCNModels

/// A module parameter under its dotted name, as the optimizers see it. Updates go straight
/// into the parameter's storage (same leaf, no copy unless shared).
public final class NamedParameter: Optimizable, @unchecked Sendable {
    /// The dotted name (`conv1_1.weight`), the key of optimizer state and checkpoints.
    public let name: String
    /// The module's parameter (shared, not copied).
    public let parameter: Parameter

    /// Wraps `parameter` under `name`.
    public init(name: String, parameter: Parameter) {
        self.name = name
        self.parameter = parameter
    }

    /// The parameter's tensor; in-place updates write into the parameter's storage.
    public var value: Tensor {
        get { parameter.value }
        set { parameter.value = newValue }
        _modify { yield &parameter.value }
    }
}

extension Module {
    /// The trainable parameters (frozen ones left out) under their dotted names, ready for
    /// `SGD`, `Adam` or `ParameterGroup.caffeStyle`.
    public func optimizableParameters() -> [NamedParameter] {
        namedParameters().filter { $0.1.requiresGrad }.map { NamedParameter(name: $0.0, parameter: $0.1) }
    }
}
