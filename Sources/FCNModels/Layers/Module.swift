// Module: the building block of models. Holds parameters (trainable tensors), buffers
// (running statistics) and child modules, and gives them deterministic dotted names so
// that weights can be exchanged with PyTorch state dicts (`features.0.weight`,
// `backbone.layer1.0.bn1.running_mean`) or Caffe-style names (`conv1_1.weight`).
//
// Registration is explicit, with no reflection and no property wrappers: a module lists its
// children, parameters and buffers in order through three computed properties. The order
// of those lists is the order of `namedParameters()`, `stateDict()` and of the files written
// from them, so it must not depend on dictionaries or hashing.
//
//     /// conv -> BN -> ReLU -> 1x1 conv, named like a PyTorch module with the same fields.
//     final class Head: Layer, @unchecked Sendable {
//         let conv = Conv2d(inChannels: 64, outChannels: 16, kernelSize: 3, padding: 1, bias: false)
//         let bn = BatchNorm2d(16)
//         let score = Conv2d(inChannels: 16, outChannels: 21, kernelSize: 1)
//         let temperature = Parameter(Tensor(1))       // a parameter of the module itself
//         var isTraining = true
//
//         var children: [(String, any Module)] { [("conv", conv), ("bn", bn), ("score", score)] }
//         var localParameters: [(String, Parameter)] { [("temperature", temperature)] }
//
//         func callAsFunction(_ x: Tensor) -> Tensor { score(relu(bn(conv(x)))) }
//     }
//     // namedParameters(): temperature, conv.weight, bn.weight, bn.bias, score.weight, score.bias
//     // (a module's own parameters come before its children's, as in PyTorch)
//     // namedBuffers():    bn.running_mean, bn.running_var, bn.num_batches_tracked
//
// Concurrency: modules are reference types shared by the threads that run them. The
// contract that makes `@unchecked Sendable` sound for every module of this library (and
// that user modules should follow):
// * children are `let` properties set in `init`;
// * a forward pass in eval mode reads parameters and buffers and mutates nothing, so one
//   model in eval mode may serve any number of threads at once;
// * training mode mutates state during forward (dropout generators, batch-norm running
//   statistics), and optimizers, `loadStateDict`, `train()`/`eval()` and `freeze()` mutate
//   parameters and flags: do those from one thread at a time, with no concurrent forward.

import FCNCore
import FCNIO

/// A network component with named parameters, buffers and children.
///
/// Conformers implement `isTraining` as a stored `var` and list what they own in
/// `children`, `localParameters` and `localBuffers` (each defaults to empty). Everything
/// else (naming, state dicts, train/eval, freezing, counting) is provided.
public protocol Module: AnyObject, Sendable {
    /// Direct sub-modules in registration order, with their (dot-free) names.
    var children: [(String, any Module)] { get }
    /// Parameters owned by this module itself (not by its children), in order.
    var localParameters: [(String, Parameter)] { get }
    /// Buffers owned by this module itself (not by its children), in order.
    var localBuffers: [(String, Buffer)] { get }
    /// True in training mode (dropout active, batch norm uses batch statistics).
    /// New modules start in training mode, as in PyTorch.
    var isTraining: Bool { get set }
}

/// A module with one input and one output, usable as `layer(x)`.
public protocol Layer: Module {
    /// The forward pass.
    func callAsFunction(_ x: Tensor) -> Tensor
}

extension Module {
    /// No children (the default for leaf layers).
    public var children: [(String, any Module)] { [] }
    /// No parameters of its own (the default).
    public var localParameters: [(String, Parameter)] { [] }
    /// No buffers of its own (the default).
    public var localBuffers: [(String, Buffer)] { [] }
}

/// A trainable tensor of a module. Holds a leaf tensor that requires a gradient unless the
/// parameter is frozen (`requiresGrad == false`), in which case no gradient is computed for
/// it and optimizers skip it.
///
/// Thread safety: reading `value` is safe from any thread; `assign`, `update`,
/// `requiresGrad` changes and `zeroGrad` must not run concurrently with a forward pass.
public final class Parameter: @unchecked Sendable, CustomStringConvertible {
    /// The current values: a leaf tensor (requires grad unless frozen). Use it in forward
    /// passes; gradients of every use accumulate in `grad`.
    ///
    /// Assigning a new tensor goes through `assign(_:)` (same shape, gradient cleared).
    /// Mutating it in place (`p.value.withUnsafeMutableBufferPointer { ... }`, as optimizers
    /// do) keeps the same leaf and gradient and copies nothing unless the storage is shared.
    public var value: Tensor {
        get { _value }
        set { assign(newValue) }
        _modify { yield &_value }
    }
    private var _value: Tensor

    /// Creates a parameter holding a copy-on-write view of `value` (its autograd history
    /// is dropped).
    public init(_ value: Tensor, requiresGrad: Bool = true) {
        self._value = value.detached().requiringGrad(requiresGrad)
    }

    /// The parameter's shape.
    public var shape: [Int] { value.shape }
    /// Number of elements.
    public var count: Int { value.count }

    /// Whether gradients are computed for this parameter. Setting it to false freezes the
    /// parameter (and discards its gradient); setting it back makes it trainable again.
    public var requiresGrad: Bool {
        get { value.requiresGrad }
        set { if newValue != value.requiresGrad { _value = _value.detached().requiringGrad(newValue) } }
    }

    /// True when the parameter is frozen (no gradient).
    public var isFrozen: Bool { !requiresGrad }

    /// The gradient accumulated by backward passes since the last `zeroGrad()`, or nil.
    public var grad: Tensor? { value.grad }

    /// Clears the accumulated gradient.
    public func zeroGrad() { value.zeroGrad() }

    /// Replaces the values by those of `newValue` (same shape), keeping `requiresGrad`.
    /// The gradient is cleared. Used by state-dict loading.
    public func assign(_ newValue: Tensor) {
        fcnCheck(newValue.shape == value.shape, "Parameter.assign",
                 "got a tensor of shape \(newValue.shape) for a parameter of shape \(value.shape)")
        _value = newValue.detached().requiringGrad(requiresGrad)
    }

    /// In-place update hook for optimizers: `body` receives the values (writable; the storage
    /// is copied first if it is shared with another tensor) and the gradient, if any. The
    /// parameter stays the same leaf, so its identity in later graphs is unchanged.
    ///
    ///     p.update { w, g in guard let g else { return }; for i in 0..<w.count { w[i] -= lr * g[i] } }
    public func update(_ body: (_ values: UnsafeMutableBufferPointer<Float>, _ grad: UnsafeBufferPointer<Float>?) throws -> Void) rethrows {
        let g = value.grad
        try _value.withUnsafeMutableBufferPointer { w in
            if let g { try g.withUnsafeBufferPointer { try body(w, $0) } } else { try body(w, nil) }
        }
    }

    /// `Parameter(shape: [...])`, with `frozen` when it requires no gradient.
    public var description: String { "Parameter(shape: \(shape)\(requiresGrad ? "" : ", frozen"))" }
}

/// A non-trainable tensor of a module that belongs to its state (batch-norm running mean
/// and variance, `num_batches_tracked`). Saved in state dicts, never given a gradient.
public final class Buffer: @unchecked Sendable, CustomStringConvertible {
    /// The current values (no autograd history). Mutated by training-mode forward passes.
    public var value: Tensor {
        get { _value }
        set { _value = newValue.detached() }
    }
    private var _value: Tensor

    /// A buffer holding `value` (its autograd history is dropped).
    public init(_ value: Tensor) { _value = value.detached() }

    /// The buffer's shape.
    public var shape: [Int] { _value.shape }

    /// Replaces the values by those of `newValue`, which must have the same shape.
    public func assign(_ newValue: Tensor) {
        fcnCheck(newValue.shape == _value.shape, "Buffer.assign",
                 "got a tensor of shape \(newValue.shape) for a buffer of shape \(_value.shape)")
        _value = newValue.detached()
    }

    /// `Buffer(shape: [...])`.
    public var description: String { "Buffer(shape: \(shape))" }
}

/// What a non-strict `loadStateDict` skipped.
public struct StateDictLoadReport: Sendable, Equatable {
    /// Names the module has but the state dict lacks (left unchanged), in `namedState()` order.
    public var missing: [String]
    /// Names in the state dict that the module does not have (ignored), sorted.
    public var unexpected: [String]
    /// True when every tensor matched.
    public var isComplete: Bool { missing.isEmpty && unexpected.isEmpty }
}

// MARK: - Traversal and naming

extension Module {
    /// This module (named "") and every descendant, depth first in registration order, with
    /// dotted names such as `backbone.layer1.0`. A module reachable twice is listed once.
    public func namedModules() -> [(String, any Module)] {
        var out: [(String, any Module)] = []
        var seen = Set<ObjectIdentifier>()
        func visit(_ m: any Module, _ name: String) {
            guard seen.insert(ObjectIdentifier(m)).inserted else { return }
            out.append((name, m))
            var local = Set<String>()
            for (child, sub) in m.children {
                fcnCheck(!child.isEmpty && !child.contains("."), "Module",
                         "child name '\(child)' of \(type(of: m)) at '\(name)' must be non-empty and contain no '.'")
                fcnCheck(local.insert(child).inserted, "Module", "\(type(of: m)) at '\(name)' registers the child name '\(child)' twice")
                visit(sub, name.isEmpty ? child : name + "." + child)
            }
        }
        visit(self, "")
        return out
    }

    private func namedLocals<T: AnyObject>(_ list: (any Module) -> [(String, T)], kind: String) -> [(String, T)] {
        var out: [(String, T)] = []
        var seen = Set<ObjectIdentifier>()
        for (prefix, m) in namedModules() {
            for (n, item) in list(m) {
                fcnCheck(!n.isEmpty && !n.contains("."), "Module",
                         "\(kind) name '\(n)' of \(type(of: m)) must be non-empty and contain no '.'")
                guard seen.insert(ObjectIdentifier(item)).inserted else { continue }
                out.append((prefix.isEmpty ? n : prefix + "." + n, item))
            }
        }
        return out
    }

    /// Every parameter with its dotted name: for each module in `namedModules()` order, its
    /// own parameters. This is PyTorch's order (a module's parameters before its
    /// children's). A parameter shared by two modules is listed once, under its first name.
    public func namedParameters() -> [(String, Parameter)] { namedLocals({ $0.localParameters }, kind: "parameter") }

    /// Every buffer with its dotted name (same order rule as `namedParameters()`).
    public func namedBuffers() -> [(String, Buffer)] { namedLocals({ $0.localBuffers }, kind: "buffer") }

    /// Every parameter, in `namedParameters()` order.
    public func parameters() -> [Parameter] { namedParameters().map(\.1) }

    /// The trainable (not frozen) parameters, in order: what an optimizer should update.
    public func trainableParameters() -> [Parameter] { parameters().filter(\.requiresGrad) }

    /// Parameters then buffers of each module, with dotted names, in the order PyTorch's
    /// `state_dict()` uses (module by module: parameters, then buffers).
    public func namedState() -> [(String, Tensor)] {
        stateSlots().map { ($0.name, $0.parameter?.value.detached() ?? $0.buffer!.value) }
    }

    /// The parameters and buffers of `namedState()`, in its order, checked for unique names.
    private func stateSlots() -> [(name: String, parameter: Parameter?, buffer: Buffer?)] {
        var out: [(name: String, parameter: Parameter?, buffer: Buffer?)] = []
        var seenP = Set<ObjectIdentifier>(), seenB = Set<ObjectIdentifier>()
        for (prefix, m) in namedModules() {
            let dot = prefix.isEmpty ? "" : prefix + "."
            for (n, p) in m.localParameters where seenP.insert(ObjectIdentifier(p)).inserted { out.append((dot + n, p, nil)) }
            for (n, b) in m.localBuffers where seenB.insert(ObjectIdentifier(b)).inserted { out.append((dot + n, nil, b)) }
        }
        var names = Set<String>()
        for s in out { fcnCheck(names.insert(s.name).inserted, "Module", "two tensors are named '\(s.name)'") }
        return out
    }

    /// Parameters and buffers by dotted name (values share storage with the module until
    /// either is written). Save it with `saveSafeTensors` or `save(to:)`.
    public func stateDict() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: namedState())
    }

    /// Loads parameters and buffers from `state` by name.
    ///
    /// Shapes must match exactly, in both modes, and every value must be finite (a NaN or
    /// infinity throws `FCNError.invalidFormat` naming the tensor). With `strict` (the
    /// default), the names must match exactly as well. Otherwise missing names are left unchanged and unexpected names
    /// ignored, and both are returned. Nothing is modified when an error is thrown.
    ///
    /// Errors (`FCNError.mismatch`) list every problem at once, for example
    /// `loadStateDict: missing conv.bias, bn.running_var; unexpected fc.weight; shape mismatch for conv.weight: got [8, 3, 3, 3], expected [16, 3, 3, 3]`.
    @discardableResult
    public func loadStateDict(_ state: [String: Tensor], strict: Bool = true) throws -> StateDictLoadReport {
        try loadState(names: Set(state.keys), shape: { state[$0]?.shape }, tensor: { state[$0]! }, strict: strict)
    }

    /// Shared implementation of state loading from any source (dictionary, safetensors file).
    func loadState(names: Set<String>, shape: (String) -> [Int]?, tensor: (String) throws -> Tensor,
                   strict: Bool) throws -> StateDictLoadReport {
        let targets: [(String, [Int], (Tensor) -> Void)] = stateSlots().map { s in
            if let p = s.parameter { return (s.name, p.shape, { p.assign($0) }) }
            let b = s.buffer!
            return (s.name, b.shape, { b.assign($0) })
        }
        var missing: [String] = [], mismatched: [String] = []
        var known = Set<String>()
        for (n, expected, _) in targets {
            known.insert(n)
            guard let got = shape(n) else { missing.append(n); continue }
            if got != expected { mismatched.append("\(n): got \(got), expected \(expected)") }
        }
        let unexpected = names.subtracting(known).sorted()
        var problems: [String] = []
        if strict && !missing.isEmpty { problems.append("missing " + missing.joined(separator: ", ")) }
        if strict && !unexpected.isEmpty { problems.append("unexpected " + unexpected.joined(separator: ", ")) }
        if !mismatched.isEmpty { problems.append("shape mismatch for " + mismatched.joined(separator: "; ")) }
        if !problems.isEmpty { throw FCNError.mismatch("loadStateDict: " + problems.joined(separator: "; ")) }
        // Convert (and check) everything first so that a failing read leaves the module unchanged.
        var loaded: [(Tensor, (Tensor) -> Void)] = []
        for (n, _, set) in targets where names.contains(n) {
            let t = try tensor(n)
            if let (i, v) = t.withUnsafeBufferPointer({ b in b.firstIndex { !$0.isFinite }.map { ($0, b[$0]) } }) {
                throw FCNError.invalidFormat("loadStateDict: tensor '\(n)' holds \(v) at element \(i); weights must be finite")
            }
            loaded.append((t, set))
        }
        for (t, set) in loaded { set(t) }
        return StateDictLoadReport(missing: missing, unexpected: unexpected)
    }

    // MARK: Modes, freezing, counting

    /// Sets training mode (`true`) or evaluation mode on this module and all descendants.
    public func train(_ mode: Bool = true) {
        for (_, m) in namedModules() { m.isTraining = mode }
    }

    /// Evaluation mode on this module and all descendants (dropout off, batch norm uses its
    /// running statistics).
    public func eval() { train(false) }

    /// Makes every parameter non-trainable (no gradients; optimizers skip them).
    public func freeze() { for p in parameters() { p.requiresGrad = false } }

    /// Makes every parameter trainable again.
    public func unfreeze() { for p in parameters() { p.requiresGrad = true } }

    /// Total number of parameter elements (frozen ones included; buffers excluded), as
    /// `sum(p.numel() for p in m.parameters())` in PyTorch.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Number of trainable parameter elements (`requires_grad` ones).
    public var trainableParameterCount: Int { parameters().reduce(0) { $0 + ($1.requiresGrad ? $1.count : 0) } }

    /// Clears the gradients of every parameter.
    public func zeroGrad() { for p in parameters() { p.zeroGrad() } }
}
