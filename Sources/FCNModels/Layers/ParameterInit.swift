// Default parameter initialisation of the layers, matching PyTorch's distributions.
//
// PyTorch initialises Conv2d, ConvTranspose2d and Linear weights with
// `kaiming_uniform_(w, a=sqrt(5))`: gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), bound =
// gain * sqrt(3 / fanIn) = 1 / sqrt(fanIn), so weights are U(-1/sqrt(fanIn), 1/sqrt(fanIn));
// biases are U(-1/sqrt(fanIn), 1/sqrt(fanIn)) too. fanIn = size(1) * kH * kW of the weight
// tensor: Cin/groups*kH*kW for Conv2d, Cout/groups*kH*kW for ConvTranspose2d (PyTorch
// computes it from the stored weight layout), `in` for Linear.
//
// The numbers come from `FCNRandom` (SplitMix64), not PyTorch's generator, so values differ
// from PyTorch's but the distribution is the same. A layer given `seed:` draws from
// `FCNRandom(seed:)` (weight first, then bias); otherwise it draws from the process-wide
// generator below, which `ParameterInit.seed(_:)` resets (as `torch.manual_seed`), so a
// model built on one thread after `seed(s)` is reproducible.

import FCNCore
import FCNIO

/// The process-wide generator used to initialise layers created without an explicit seed.
public enum ParameterInit {
    nonisolated(unsafe) private static var generator = FCNRandom(seed: 0x5EED_F00D)
    private static let lock = Lock()

    /// Resets the shared generator (like `torch.manual_seed`).
    public static func seed(_ seed: UInt64) { lock.withLock { generator = FCNRandom(seed: seed) } }

    /// A fresh generator for one layer: `FCNRandom(seed:)` when `seed` is given, else one
    /// seeded from the next value of the shared generator.
    public static func generator(seed: UInt64?) -> FCNRandom {
        if let seed { return FCNRandom(seed: seed) }
        return lock.withLock { FCNRandom(seed: generator.next()) }
    }

    /// `U(-bound, bound)` with `bound = 1/sqrt(fanIn)`: PyTorch's default for weights
    /// (`kaiming_uniform_(a=sqrt(5))`) and biases of Conv2d, ConvTranspose2d and Linear.
    public static func torchDefault(_ shape: [Int], fanIn: Int, using g: inout FCNRandom) -> Tensor {
        let bound = fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0
        return Tensor.uniform(shape, low: -bound, high: bound, using: &g)
    }
}
