// Learning-rate schedules: pure functions of the step (0-based iteration or epoch count).
//
// Each matches a PyTorch scheduler's closed form (`torch.optim.lr_scheduler`) or the
// TensorFlow rule named; use as `opt.learningRate = schedule.lr(at: opt.stepCount)`.
// Being pure, a schedule needs no state in a checkpoint: saving the step is enough.

import FCNCore
import FCNIO
import FCNModels

/// A learning rate as a function of the step.
public protocol LearningRateSchedule: Sendable {
    /// The learning rate at `step` (>= 0).
    func lr(at step: Int) -> Float
}

@inline(__always) private func checkStep(_ step: Int, _ op: String) {
    fcnCheck(step >= 0, op, "step must be >= 0, got \(step)")
}

/// A constant learning rate (the FCN reference's "fixed" Caffe policy).
public struct ConstantLR: LearningRateSchedule {
    /// The learning rate.
    public let base: Float
    /// A constant schedule at `base`.
    public init(_ base: Float) { self.base = base }
    /// `base`, at every step.
    public func lr(at step: Int) -> Float { checkStep(step, "ConstantLR"); return base }
}

/// `base * gamma^(step / stepSize)` (integer division): `StepLR`, Caffe's "step" policy.
public struct StepLR: LearningRateSchedule {
    /// Initial rate, steps between decays, and decay factor.
    public let base: Float, stepSize: Int, gamma: Double
    /// Defaults: gamma 0.1 (PyTorch's).
    public init(base: Float, stepSize: Int, gamma: Double = 0.1) {
        fcnCheck(stepSize > 0, "StepLR", "stepSize must be > 0, got \(stepSize)")
        self.base = base; self.stepSize = stepSize; self.gamma = gamma
    }
    /// `base * gamma^(step / stepSize)`.
    public func lr(at step: Int) -> Float {
        checkStep(step, "StepLR")
        return Float(Double(base) * _pow(gamma, step / stepSize))
    }
}

/// `base * gamma^(number of milestones <= step)`: `MultiStepLR`, Caffe's "multistep".
public struct MultiStepLR: LearningRateSchedule {
    /// Initial rate, the steps at which it decays (sorted), and the decay factor.
    public let base: Float, milestones: [Int], gamma: Double
    /// A schedule decaying by `gamma` at each milestone (default 0.1, PyTorch's).
    public init(base: Float, milestones: [Int], gamma: Double = 0.1) {
        fcnCheck(milestones.allSatisfy { $0 >= 0 }, "MultiStepLR", "milestones must be >= 0, got \(milestones)")
        self.base = base; self.milestones = milestones.sorted(); self.gamma = gamma
    }
    /// `base * gamma^k`, k = number of milestones `<= step`.
    public func lr(at step: Int) -> Float {
        checkStep(step, "MultiStepLR")
        return Float(Double(base) * _pow(gamma, milestones.filter { $0 <= step }.count))
    }
}

/// TensorFlow's `exponential_decay`: `base * decayRate^(step / decaySteps)`, with the
/// exponent floored when `staircase` (the rate then drops once every `decaySteps`, e.g.
/// once per epoch with decaySteps = examples / batch). With decaySteps 1 and staircase it
/// is PyTorch's `ExponentialLR(gamma: decayRate)`.
public struct ExponentialDecay: LearningRateSchedule {
    /// Initial rate, factor per `decaySteps` steps, the decay period, and whether the
    /// exponent is floored.
    public let base: Float, decayRate: Double, decaySteps: Double, staircase: Bool
    /// A TensorFlow-style exponential decay (continuous unless `staircase`).
    public init(base: Float, decayRate: Double, decaySteps: Double, staircase: Bool = false) {
        fcnCheck(decaySteps > 0, "ExponentialDecay", "decaySteps must be > 0, got \(decaySteps)")
        fcnCheck(decayRate > 0, "ExponentialDecay", "decayRate must be > 0, got \(decayRate)")
        self.base = base; self.decayRate = decayRate; self.decaySteps = decaySteps; self.staircase = staircase
    }
    /// `base * decayRate^(step / decaySteps)`, the exponent floored when `staircase`.
    public func lr(at step: Int) -> Float {
        checkStep(step, "ExponentialDecay")
        var p = Double(step) / decaySteps
        if staircase { p = p.rounded(.down) }
        return Float(Double(base) * _powD(decayRate, p))
    }
}

/// Polynomial decay to 0 at `maxSteps`: `base * (1 - min(step, maxSteps) / maxSteps)^power`,
/// the torchvision segmentation reference's schedule (power 0.9, per iteration) and
/// PyTorch's `PolynomialLR`.
public struct PolyLR: LearningRateSchedule {
    /// Initial rate, the step at which the rate reaches 0, and the exponent.
    public let base: Float, maxSteps: Int, power: Double
    /// A polynomial decay; power 0.9 is the torchvision segmentation reference's.
    public init(base: Float, maxSteps: Int, power: Double = 0.9) {
        fcnCheck(maxSteps > 0, "PolyLR", "maxSteps must be > 0, got \(maxSteps)")
        self.base = base; self.maxSteps = maxSteps; self.power = power
    }
    /// `base * (1 - min(step, maxSteps) / maxSteps)^power`.
    public func lr(at step: Int) -> Float {
        checkStep(step, "PolyLR")
        return Float(Double(base) * _powD(1 - Double(min(step, maxSteps)) / Double(maxSteps), power))
    }
}

/// Cosine annealing from `base` to `minLR` over `maxSteps` (PyTorch's
/// `CosineAnnealingLR` closed form), then `minLR`.
public struct CosineLR: LearningRateSchedule {
    /// Initial rate, length of the annealing, and the final rate.
    public let base: Float, maxSteps: Int, minLR: Float
    /// Cosine annealing from `base` to `minLR` (default 0) over `maxSteps`.
    public init(base: Float, maxSteps: Int, minLR: Float = 0) {
        fcnCheck(maxSteps > 0, "CosineLR", "maxSteps must be > 0, got \(maxSteps)")
        self.base = base; self.maxSteps = maxSteps; self.minLR = minLR
    }
    /// `minLR + (base - minLR) * (1 + cos(pi * min(step, maxSteps) / maxSteps)) / 2`.
    public func lr(at step: Int) -> Float {
        checkStep(step, "CosineLR")
        let t = Double(min(step, maxSteps)) / Double(maxSteps)
        return Float(Double(minLR) + (Double(base) - Double(minLR)) * (1 + _cosD(Double.pi * t)) / 2)
    }
}

/// Linear warm-up in front of another schedule: the inner rate times a factor going
/// linearly from `startFactor` at step 0 to 1 at `warmupSteps` (PyTorch's `LinearLR`
/// chained with the inner scheduler).
public struct LinearWarmup: LearningRateSchedule {
    /// The schedule being warmed up, the warm-up length, and the factor at step 0.
    public let inner: any LearningRateSchedule, warmupSteps: Int, startFactor: Double
    /// Defaults: startFactor 1/3 (PyTorch's `LinearLR`).
    public init(_ inner: any LearningRateSchedule, warmupSteps: Int, startFactor: Double = 1.0 / 3) {
        fcnCheck(warmupSteps >= 0, "LinearWarmup", "warmupSteps must be >= 0, got \(warmupSteps)")
        fcnCheck(startFactor > 0 && startFactor <= 1, "LinearWarmup", "startFactor must lie in (0, 1], got \(startFactor)")
        self.inner = inner; self.warmupSteps = warmupSteps; self.startFactor = startFactor
    }
    /// The warm-up factor at `step`.
    public func factor(at step: Int) -> Double {
        guard warmupSteps > 0 else { return 1 }
        return startFactor + (1 - startFactor) * Double(min(step, warmupSteps)) / Double(warmupSteps)
    }
    /// `inner.lr(at: step) * factor(at: step)`.
    public func lr(at step: Int) -> Float {
        checkStep(step, "LinearWarmup")
        return Float(Double(inner.lr(at: step)) * factor(at: step))
    }
}

@inline(__always) func _powD(_ a: Double, _ b: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.pow(a, b)
    #elseif canImport(Musl)
    return Musl.pow(a, b)
    #else
    return Darwin.pow(a, b)
    #endif
}

@inline(__always) func _cosD(_ a: Double) -> Double {
    #if canImport(Glibc)
    return Glibc.cos(a)
    #elseif canImport(Musl)
    return Musl.cos(a)
    #else
    return Darwin.cos(a)
    #endif
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
