// Optimizers: SGD (momentum, Nesterov, weight decay) and Adam/AdamW, exactly as torch.optim
// (single-tensor code path, float32 arithmetic in the same order), with Caffe-style
// per-group learning-rate and decay multipliers.
//
// One deliberate difference: moments and momentum buffers that fall below the smallest
// normal float (1.2e-38, `Float.leastNormalMagnitude`) are stored as 0. Such an entry moves
// its weight by less than 1e-29 per step, but subnormal arithmetic is many times slower on
// x86, and in a long FCN run the moments of dead units decay into that range and stay
// there, slowing every optimizer step (figures: Benchmarks.md, Training). (PyTorch keeps
// them unless `torch.set_flush_denormal`.)
//
// Each `step()` reads every parameter's `value.grad` (parameters without a gradient are
// skipped) and updates `value` in place with element-wise loops split over the compute
// threads (Adam's runs in C, CFCNKernels `fcn_adam_update`, with AVX-512 and AVX2 paths: the
// Swift loop compiled for baseline x86-64 took a visible share of a small FCN's training
// step; figures: Benchmarks.md, Training); nothing is recorded by autograd. State
// (momentum buffers, Adam moments, per-parameter step counts) is exposed as an
// `OptimizerState` of named tensors and integer counters for checkpoints.

import FCNCore
import FCNIO
import FCNModels
import CFCNKernels

/// Serialisable optimizer state: named tensors and integer counters.
///
/// Tensor keys are `"<parameter name>.<slot>"` (`momentum_buffer` for SGD, `exp_avg` and
/// `exp_avg_sq` for Adam); counters hold `"<parameter name>.step"` for Adam. `step` is the
/// number of `step()` calls made.
public struct OptimizerState: Sendable {
    /// The optimizer kind: "sgd", "adam" or "adamw".
    public var kind: String
    /// Number of `step()` calls made so far.
    public var step: Int
    /// Buffers by `"<parameter name>.<slot>"`.
    public var tensors: [String: Tensor]
    /// Integer counters by name (Adam: `"<parameter name>.step"`).
    public var counters: [String: Int]

    /// A state with the given parts (normally made by `Optimizer.state()` or read from a
    /// checkpoint).
    public init(kind: String, step: Int, tensors: [String: Tensor], counters: [String: Int] = [:]) {
        self.kind = kind; self.step = step; self.tensors = tensors; self.counters = counters
    }
}

/// A first-order optimizer over groups of named parameters.
public protocol Optimizer: AnyObject {
    /// The parameter groups (with their multipliers).
    var groups: [ParameterGroup] { get }
    /// The base learning rate; a schedule sets it before each step
    /// (`opt.learningRate = schedule.lr(at: opt.stepCount)`).
    var learningRate: Float { get set }
    /// Number of `step()` calls made so far.
    var stepCount: Int { get }
    /// Applies one update to every parameter that has a gradient.
    func step()
    /// The state to checkpoint.
    func state() -> OptimizerState
    /// Restores a state saved by `state()`; throws `FCNError.mismatch` if it does not fit
    /// these parameters (unknown names, wrong shapes, other optimizer kind).
    func load(_ state: OptimizerState) throws
}

extension Optimizer {
    /// Every parameter of every group, in order.
    public var parameters: [any Optimizable] { groups.flatMap(\.parameters) }

    /// Clears the gradient of every parameter (call after each step).
    public func zeroGrad() {
        for g in groups { for p in g.parameters { p.value.zeroGrad() } }
    }
}

/// Checks that names are unique and values are leaves requiring grad; returns the shapes by name.
func checkOptimizerGroups(_ groups: [ParameterGroup], op: String) -> [String: [Int]] {
    var shapes: [String: [Int]] = [:]
    for g in groups {
        for p in g.parameters {
            fcnCheck(shapes[p.name] == nil, op, "parameter name '\(p.name)' appears twice; optimizer state is keyed by name")
            fcnCheck(p.value.requiresGrad && p.value.isLeaf, op,
                     "parameter '\(p.name)' of shape \(p.value.shape) is not a leaf requiring grad; wrap it with requiringGrad()")
            shapes[p.name] = p.value.shape
        }
    }
    return shapes
}

/// Validates a state's tensors against parameter shapes and allowed slots.
func validateOptimizerState(_ s: OptimizerState, kind: String, shapes: [String: [Int]], slots: Set<String>,
                            counterSlots: Set<String>) throws {
    guard s.kind == kind else {
        throw FCNError.mismatch("optimizer state is for '\(s.kind)', cannot load it into '\(kind)'")
    }
    guard s.step >= 0 else { throw FCNError.mismatch("optimizer state has a negative step \(s.step)") }
    func split(_ key: String) -> (String, String)? {
        guard let dot = key.lastIndex(of: ".") else { return nil }
        return (String(key[..<dot]), String(key[key.index(after: dot)...]))
    }
    for (key, t) in s.tensors {
        guard let (name, slot) = split(key), slots.contains(slot) else {
            throw FCNError.mismatch("\(kind) state: unexpected tensor '\(key)' (expected '<parameter>.\(slots.sorted().joined(separator: "|"))')")
        }
        guard let shape = shapes[name] else {
            throw FCNError.mismatch("\(kind) state: tensor '\(key)' refers to unknown parameter '\(name)'")
        }
        guard shape == t.shape else {
            throw FCNError.mismatch("\(kind) state: tensor '\(key)' has shape \(t.shape) but parameter '\(name)' has shape \(shape)")
        }
    }
    for (key, v) in s.counters {
        guard let (name, slot) = split(key), counterSlots.contains(slot), shapes[name] != nil else {
            throw FCNError.mismatch("\(kind) state: unexpected counter '\(key)'")
        }
        guard v >= 0 else { throw FCNError.mismatch("\(kind) state: counter '\(key)' is negative (\(v))") }
    }
}

// MARK: - SGD

/// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay,
/// as `torch.optim.SGD` (dampening 0 unless given):
///
///     d = g + wd_eff * w
///     buf = d                       (first step)
///     buf = momentum * buf + (1 - dampening) * d
///     d = nesterov ? d + momentum * buf : buf
///     w = w - lr_eff * d
///
/// with `lr_eff = learningRate * group.lrMultiplier` and `wd_eff = weightDecay *
/// group.decayMultiplier`. Caffe's SGD (`v = m v + lr g; w -= v`) equals this one while the
/// learning rate is constant, which is how the FCN reference trains (fixed lr).
public final class SGD: Optimizer {
    /// The parameter groups with their learning-rate and decay multipliers.
    public let groups: [ParameterGroup]
    /// The base learning rate (times each group's `lrMultiplier`); set it from a schedule
    /// before each step.
    public var learningRate: Float
    /// Momentum factor (0: plain SGD; the FCN reference uses 0.99).
    public let momentum: Float
    /// Dampening of the momentum (0, PyTorch's default).
    public let dampening: Float
    /// L2 weight decay added to the gradient (times each group's `decayMultiplier`).
    public let weightDecay: Float
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    public let nesterov: Bool
    /// Number of `step()` calls made so far.
    public private(set) var stepCount = 0
    private var buffers: [String: Tensor] = [:]
    private let shapes: [String: [Int]]

    /// SGD over groups. Defaults are PyTorch's (no momentum, no decay).
    public init(_ groups: [ParameterGroup], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        fcnCheck(learningRate >= 0, "SGD", "learningRate must be >= 0, got \(learningRate)")
        fcnCheck(momentum >= 0, "SGD", "momentum must be >= 0, got \(momentum)")
        fcnCheck(weightDecay >= 0, "SGD", "weightDecay must be >= 0, got \(weightDecay)")
        fcnCheck(!nesterov || (momentum > 0 && dampening == 0), "SGD", "nesterov needs momentum > 0 and dampening 0 (got momentum \(momentum), dampening \(dampening))")
        self.shapes = checkOptimizerGroups(groups, op: "SGD")
        self.groups = groups; self.learningRate = learningRate; self.momentum = momentum
        self.dampening = dampening; self.weightDecay = weightDecay; self.nesterov = nesterov
    }

    /// SGD over one group of parameters with multipliers 1.
    public convenience init(_ parameters: [any Optimizable], learningRate: Float, momentum: Float = 0,
                            dampening: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) {
        self.init([ParameterGroup(parameters)], learningRate: learningRate, momentum: momentum,
                  dampening: dampening, weightDecay: weightDecay, nesterov: nesterov)
    }

    /// Updates every parameter that has a gradient in place (see the type's formula) and
    /// advances `stepCount`.
    public func step() {
        for group in groups {
            let lr = learningRate * group.lrMultiplier
            let wd = weightDecay * group.decayMultiplier
            for p in group.parameters {
                guard let g = p.value.grad else { continue }
                fcnCheck(g.shape == p.value.shape, "SGD.step", "gradient of '\(p.name)' has shape \(g.shape), parameter has \(p.value.shape)")
                update(p, grad: g, lr: lr, wd: wd)
            }
        }
        stepCount += 1
    }

    private func update(_ p: any Optimizable, grad: Tensor, lr: Float, wd: Float) {
        let n = grad.count
        let m = momentum, damp = 1 - dampening, nest = nesterov, negLR = -lr
        let gp = grad.storage.pointer
        let hasBuf = buffers[p.name] != nil
        if m != 0 && !hasBuf { buffers[p.name] = Tensor.make(shape: grad.shape) { _ in } }
        // Element-wise, so chunks on all threads give the same bits as one loop.
        if m == 0 {
            p.value.withUnsafeMutableBufferPointer { wb in
                let w = UncheckedSendable(wb.baseAddress!)
                parallelChunks(n, minChunk: 1 << 15) { range in
                    for i in range {
                        var d = gp[i]
                        if wd != 0 { d = d + wd * w.value[i] }
                        w.value[i] = w.value[i] + negLR * d
                    }
                }
            }
            return
        }
        buffers[p.name]!.withUnsafeMutableBufferPointer { bb in
            p.value.withUnsafeMutableBufferPointer { wb in
                let ptrs = UncheckedSendable((bb.baseAddress!, wb.baseAddress!))
                parallelChunks(n, minChunk: 1 << 15) { range in
                    let (b, w) = ptrs.value
                    for i in range {
                        var d = gp[i]
                        if wd != 0 { d = d + wd * w[i] }
                        let bi = hasBuf ? b[i] * m + damp * d : d
                        b[i] = abs(bi) < .leastNormalMagnitude ? 0 : bi     // no subnormals (see the file contract)
                        d = nest ? d + m * b[i] : b[i]
                        w[i] = w[i] + negLR * d
                    }
                }
            }
        }
    }

    /// The momentum buffers (`<name>.momentum_buffer`) and the step count, kind "sgd".
    public func state() -> OptimizerState {
        OptimizerState(kind: "sgd", step: stepCount,
                       tensors: Dictionary(uniqueKeysWithValues: buffers.map { ($0.key + ".momentum_buffer", $0.value) }))
    }

    /// Restores a state saved by `state()`; throws `FCNError.mismatch` for another kind,
    /// unknown parameter names or wrong shapes, leaving the optimizer unchanged.
    public func load(_ s: OptimizerState) throws {
        try validateOptimizerState(s, kind: "sgd", shapes: shapes, slots: ["momentum_buffer"], counterSlots: [])
        var b: [String: Tensor] = [:]
        for (k, t) in s.tensors { b[String(k.dropLast(".momentum_buffer".count))] = t.detached() }
        buffers = b
        stepCount = s.step
    }
}

// MARK: - Adam / AdamW

/// Adam (`torch.optim.Adam`) and, with `decoupledWeightDecay`, AdamW (`torch.optim.AdamW`):
///
///     t += 1
///     Adam:  g = g + wd_eff * w          AdamW: w = w * (1 - lr_eff * wd_eff)
///     m = lerp(m, g, 1 - beta1)
///     v = beta2 * v + (1 - beta2) * g * g
///     w = w - (lr_eff / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
///
/// `eps` is added after the bias-corrected square root, as PyTorch does. The step count `t`
/// is per parameter (a parameter without a gradient does not advance). Bias corrections
/// are computed in Double, the element updates in Float, in PyTorch's order.
public final class Adam: Optimizer {
    /// The parameter groups with their learning-rate and decay multipliers.
    public let groups: [ParameterGroup]
    /// The base learning rate (times each group's `lrMultiplier`); set it from a schedule
    /// before each step.
    public var learningRate: Float
    /// Decay of the first moment. Double, like PyTorch's, so `1 - beta` is exact.
    public let beta1: Double
    /// Decay of the second moment (Double for the same reason).
    public let beta2: Double
    /// Added to the bias-corrected root of the second moment (1e-8, PyTorch's default).
    public let eps: Float
    /// Weight decay (times each group's `decayMultiplier`): added to the gradient for Adam,
    /// applied to the weights for AdamW.
    public let weightDecay: Float
    /// True for AdamW (decay applied to the weights, not added to the gradient).
    public let decoupledWeightDecay: Bool
    /// Number of `step()` calls made so far.
    public private(set) var stepCount = 0
    private var expAvg: [String: Tensor] = [:]
    private var expAvgSq: [String: Tensor] = [:]
    private var steps: [String: Int] = [:]
    private let shapes: [String: [Int]]

    /// Adam over groups. Defaults are PyTorch's (betas 0.9, 0.999, eps 1e-8, no decay).
    public init(_ groups: [ParameterGroup], learningRate: Float = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0, decoupledWeightDecay: Bool = false) {
        let op = decoupledWeightDecay ? "AdamW" : "Adam"
        fcnCheck(learningRate >= 0, op, "learningRate must be >= 0, got \(learningRate)")
        fcnCheck(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, op, "betas must lie in [0, 1), got (\(beta1), \(beta2))")
        fcnCheck(eps >= 0, op, "eps must be >= 0, got \(eps)")
        fcnCheck(weightDecay >= 0, op, "weightDecay must be >= 0, got \(weightDecay)")
        self.shapes = checkOptimizerGroups(groups, op: op)
        self.groups = groups; self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
        self.eps = eps; self.weightDecay = weightDecay; self.decoupledWeightDecay = decoupledWeightDecay
    }

    /// Adam over one group of parameters with multipliers 1.
    public convenience init(_ parameters: [any Optimizable], learningRate: Float = 1e-3, beta1: Double = 0.9,
                            beta2: Double = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
        self.init([ParameterGroup(parameters)], learningRate: learningRate, beta1: beta1, beta2: beta2,
                  eps: eps, weightDecay: weightDecay)
    }

    /// AdamW (`torch.optim.AdamW`; its default weight decay is 0.01).
    public static func adamW(_ groups: [ParameterGroup], learningRate: Float = 1e-3, beta1: Double = 0.9,
                             beta2: Double = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) -> Adam {
        Adam(groups, learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps,
             weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    /// AdamW over one group of parameters with multipliers 1.
    public static func adamW(_ parameters: [any Optimizable], learningRate: Float = 1e-3, beta1: Double = 0.9,
                             beta2: Double = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) -> Adam {
        adamW([ParameterGroup(parameters)], learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay)
    }

    private var kind: String { decoupledWeightDecay ? "adamw" : "adam" }

    /// Path of the update loop (CFCNKernels `fcn_adam_update`): the GEMM engine's AVX-512 or
    /// AVX2 path (so `FCN_GEMM_ISA` steers it too), else the portable loop. All give the same
    /// bits; tests set it to run each.
    var kernelISA: Int32 = GEMMConfig.defaultISA.elementwiseFlag

    /// Updates every parameter that has a gradient in place (see the type's formula) and
    /// advances `stepCount` and the per-parameter step counts.
    public func step() {
        for group in groups {
            let lr = Double(learningRate * group.lrMultiplier)
            let wd = Double(weightDecay * group.decayMultiplier)
            for p in group.parameters {
                guard let g = p.value.grad else { continue }
                fcnCheck(g.shape == p.value.shape, "\(decoupledWeightDecay ? "AdamW" : "Adam").step",
                         "gradient of '\(p.name)' has shape \(g.shape), parameter has \(p.value.shape)")
                update(p, grad: g, lr: lr, wd: wd)
            }
        }
        stepCount += 1
    }

    private func update(_ p: any Optimizable, grad: Tensor, lr: Double, wd: Double) {
        let name = p.name
        if expAvg[name] == nil {
            expAvg[name] = Tensor.zeros(grad.shape)
            expAvgSq[name] = Tensor.zeros(grad.shape)
            steps[name] = 0
        }
        let t = steps[name]! + 1
        steps[name] = t
        let n = grad.count
        let gp = grad.storage.pointer
        let b1 = beta1, b2 = beta2
        let w1 = Float(1 - b1)                       // lerp weight, rounded as torch does
        let beta2f = Float(b2), w2 = Float(1 - b2)
        let bc1 = 1 - _pow(b1, t), bc2 = 1 - _pow(b2, t)
        let negStep = Float(-(lr / bc1))
        let decoupled = decoupledWeightDecay
        let wdF = Float(wd), shrink = Float(1 - lr * wd)
        let coupledWD: Float = wd != 0 && !decoupled ? wdF : 0
        let decay: Float = wd != 0 && decoupled ? shrink : 1
        let consts = fcn_adam_consts(w1: w1, keep: 1 - w1, lerp_low: w1 < 0.5 ? 1 : 0, beta2: beta2f, w2: w2,
                                     bc2_sqrt: Float(bc2.squareRoot()), eps: eps, neg_step: negStep,
                                     decay: decay, coupled_wd: coupledWD)
        let isa = kernelISA
        expAvg[name]!.withUnsafeMutableBufferPointer { mb in
            expAvgSq[name]!.withUnsafeMutableBufferPointer { vb in
                p.value.withUnsafeMutableBufferPointer { wb in
                    let ptrs = UncheckedSendable((mb.baseAddress!, vb.baseAddress!, wb.baseAddress!, consts))
                    // Element-wise, so chunks on all threads give the same bits as one loop.
                    parallelChunks(n, minChunk: 1 << 15) { range in
                        let (m, v, w, constants) = ptrs.value
                        var c = constants
                        let i = range.lowerBound
                        fcn_adam_update(isa, Int64(range.count), gp + i, m + i, v + i, w + i, &c)
                    }
                }
            }
        }
    }

    /// The moments (`<name>.exp_avg`, `<name>.exp_avg_sq`), the per-parameter step counters
    /// (`<name>.step`) and the step count; kind "adam" or "adamw".
    public func state() -> OptimizerState {
        var tensors: [String: Tensor] = [:]
        for (k, t) in expAvg { tensors[k + ".exp_avg"] = t }
        for (k, t) in expAvgSq { tensors[k + ".exp_avg_sq"] = t }
        return OptimizerState(kind: kind, step: stepCount, tensors: tensors,
                              counters: Dictionary(uniqueKeysWithValues: steps.map { ($0.key + ".step", $0.value) }))
    }

    /// Restores a state saved by `state()`; throws `FCNError.mismatch` for another kind,
    /// unknown names, wrong shapes or incomplete moments, leaving the optimizer unchanged.
    public func load(_ s: OptimizerState) throws {
        try validateOptimizerState(s, kind: kind, shapes: shapes, slots: ["exp_avg", "exp_avg_sq"], counterSlots: ["step"])
        var m: [String: Tensor] = [:], v: [String: Tensor] = [:], st: [String: Int] = [:]
        for (k, t) in s.tensors {
            if k.hasSuffix(".exp_avg_sq") { v[String(k.dropLast(".exp_avg_sq".count))] = t.detached() }
            else { m[String(k.dropLast(".exp_avg".count))] = t.detached() }
        }
        for (k, c) in s.counters { st[String(k.dropLast(".step".count))] = c }
        guard Set(m.keys) == Set(v.keys), Set(m.keys) == Set(st.keys) else {
            throw FCNError.mismatch("\(kind) state: exp_avg, exp_avg_sq and step must be present for the same parameters (exp_avg: \(m.keys.sorted()), exp_avg_sq: \(v.keys.sorted()), step: \(st.keys.sorted()))")
        }
        expAvg = m; expAvgSq = v; steps = st
        stepCount = s.step
    }
}

/// `base^exponent` in Double for a non-negative integer exponent, as Python's `float ** int`
/// (which calls C `pow`).
@inline(__always) func _pow(_ base: Double, _ exponent: Int) -> Double {
    #if canImport(Glibc)
    return Glibc.pow(base, Double(exponent))
    #elseif canImport(Musl)
    return Musl.pow(base, Double(exponent))
    #else
    return Darwin.pow(base, Double(exponent))
    #endif
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
