// Seeded random tensors.
//
// Generator: SplitMix64 (Steele, Lea, Flood 2014): state += 0x9E3779B97F4A7C15, then the
// usual xor-shift-multiply finaliser. Uniform floats take the top 24 bits:
// `Float(x >> 40) * 2^-24`, in [0, 1). Normals use Box-Muller on two uniforms (the first
// mapped to (0, 1] so the log is finite), producing two normals per pair.
// The same seed gives the same tensor on every platform and thread count.

/// A deterministic pseudo-random generator (SplitMix64). Value type: copying it copies
/// its state, so a saved copy replays the same sequence (useful for checkpoints).
public struct FCNRandom: RandomNumberGenerator, Sendable, Equatable {
    /// The internal state; save and restore it to resume a sequence exactly.
    public var state: UInt64

    /// A generator whose sequence is determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits (SplitMix64 step).
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Standard normal (Box-Muller; one value per call, the pair's sine half is dropped).
    public mutating func nextNormal() -> Float {
        let u1 = 1 - nextUniform()          // (0, 1]
        let u2 = nextUniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * Float.pi * u2)
    }

    /// Two independent standard normals from one Box-Muller draw (both the cosine and the
    /// sine half): half the transcendental work per value of `nextNormal()`.
    public mutating func nextNormalPair() -> (Float, Float) {
        let u1 = 1 - nextUniform()          // (0, 1]
        let u2 = nextUniform()
        let r = (-2 * logf(u1)).squareRoot(), a = 2 * Float.pi * u2
        return (r * cosf(a), r * sinf(a))
    }
}

@inline(__always) private func sinf(_ x: Float) -> Float { Float(_sin(Double(x))) }

@inline(__always) private func logf(_ x: Float) -> Float { Float(_log(Double(x))) }
@inline(__always) private func cosf(_ x: Float) -> Float { Float(_cos(Double(x))) }

#if canImport(Glibc)
import Glibc

@inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Glibc.sin(x) }
#elseif canImport(Musl)
import Musl

@inline(__always) private func _log(_ x: Double) -> Double { Musl.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Musl.cos(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Musl.sin(x) }
#elseif canImport(Darwin)
import Darwin

@inline(__always) private func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Darwin.cos(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Darwin.sin(x) }
#endif

extension Tensor {
    /// Normal samples with the given mean and standard deviation from `FCNRandom(seed:)`.
    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1, seed: UInt64) -> Tensor {
        var g = FCNRandom(seed: seed)
        return randn(shape, mean: mean, std: std, using: &g)
    }

    /// Normal samples drawn from `generator` (which advances).
    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1, using generator: inout FCNRandom) -> Tensor {
        checkShape(shape, op: "randn")
        return make(shape: shape) { out in for i in 0..<out.count { out[i] = mean + std * generator.nextNormal() } }
    }

    /// Uniform samples in `[low, high)` from `FCNRandom(seed:)`.
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, seed: UInt64) -> Tensor {
        var g = FCNRandom(seed: seed)
        return uniform(shape, low: low, high: high, using: &g)
    }

    /// Uniform samples in `[low, high)` drawn from `generator` (which advances).
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, using generator: inout FCNRandom) -> Tensor {
        checkShape(shape, op: "uniform")
        return make(shape: shape) { out in for i in 0..<out.count { out[i] = low + (high - low) * generator.nextUniform() } }
    }
}
