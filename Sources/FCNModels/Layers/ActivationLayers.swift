// Parameter-free element-wise layers: ReLU, Dropout, Dropout2d, Identity.

import FCNCore
import FCNIO

/// `max(x, 0)` element-wise.
public final class ReLU: Layer, @unchecked Sendable {
    /// Training or evaluation mode (no effect on a ReLU).
    public var isTraining = true
    /// A ReLU layer.
    public init() {}
    /// `relu(x)`: any shape, same shape out.
    public func callAsFunction(_ x: Tensor) -> Tensor { relu(x) }
}

/// Returns its input unchanged (a placeholder, e.g. for a removed head).
public final class Identity: Layer, @unchecked Sendable {
    /// Training or evaluation mode (no effect).
    public var isTraining = true
    /// An identity layer.
    public init() {}
    /// Returns `x` (no copy).
    public func callAsFunction(_ x: Tensor) -> Tensor { x }
}

/// Element-wise dropout: in training mode each element is zeroed with probability `p` and
/// the others scaled by `1/(1-p)`; identity in eval mode.
///
/// Each layer owns a seeded `FCNRandom` that advances with every training-mode call, so a
/// training run is reproducible; save `generator` with a checkpoint to resume it exactly.
/// Training-mode calls mutate the generator: do not run them from several threads at once.
public final class Dropout: Layer, @unchecked Sendable {
    /// Probability of zeroing an element, in `[0, 1]`.
    public let p: Float
    /// The mask generator (advanced by training-mode forward passes).
    public var generator: FCNRandom
    /// Dropout is applied in training mode only (the default for a new layer).
    public var isTraining = true

    /// A dropout layer. `p` defaults to 0.5 (PyTorch's default, and the FCN's drop6/drop7);
    /// `seed` nil: seeded from `ParameterInit`'s shared generator.
    public init(p: Float = 0.5, seed: UInt64? = nil) {
        fcnCheck(p >= 0 && p <= 1, "Dropout", "p must be in [0, 1], got \(p)")
        self.p = p
        generator = ParameterInit.generator(seed: seed)
    }

    /// Training mode: `x` with elements zeroed with probability `p` and the rest scaled by
    /// `1/(1-p)`; eval mode: `x` unchanged. Any shape.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isTraining else { return x }
        return dropout(x, p: p, training: true, generator: &generator)
    }
}

/// Channel dropout for NCHW input: in training mode each whole `[n, c]` plane is zeroed
/// with probability `p` and the others scaled by `1/(1-p)`; identity in eval mode. Same
/// generator and threading rules as `Dropout`.
public final class Dropout2d: Layer, @unchecked Sendable {
    /// Probability of zeroing a whole channel plane, in `[0, 1]`.
    public let p: Float
    /// The mask generator (advanced by training-mode forward passes).
    public var generator: FCNRandom
    /// Dropout is applied in training mode only (the default for a new layer).
    public var isTraining = true

    /// A channel-dropout layer; `p` defaults to 0.5 as PyTorch's, `seed` nil draws the seed
    /// from `ParameterInit`'s shared generator.
    public init(p: Float = 0.5, seed: UInt64? = nil) {
        fcnCheck(p >= 0 && p <= 1, "Dropout2d", "p must be in [0, 1], got \(p)")
        self.p = p
        generator = ParameterInit.generator(seed: seed)
    }

    /// Training mode: `[N, C, H, W]` with whole planes zeroed with probability `p` and the
    /// rest scaled by `1/(1-p)`; eval mode: `x` unchanged.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isTraining else { return x }
        return dropout2d(x, p: p, training: true, generator: &generator)
    }
}
