// Helpers for the Training/Data tests: fake gradients and slicing fixture tensors.
@testable import FCN

/// Replaces the gradient of `p` with `g` (as a backward pass would leave it).
func setFakeGrad(_ p: TrainableTensor, _ g: Tensor?) {
    p.value.zeroGrad()
    if let g { p.value.node!.accumulate(g) }
}

/// Row `i` of the first axis of `t`.
func row(_ t: Tensor, _ i: Int) -> Tensor {
    let inner = Array(t.shape.dropFirst())
    let n = inner.reduce(1, *)
    return Tensor(shape: inner, scalars: Array(t.scalars[i * n ..< (i + 1) * n]))
}

/// True when the two tensors have the same shape and bit-identical elements.
func bitIdentical(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// A numeric config value. The shared fixture JSON decoding reads 0.0 and 1.0 as booleans
/// (NSNumber bridging), so accept those too; nil when absent.
func number(_ c: FixtureCase, _ key: String) -> Double? {
    switch c.value(key) {
    case .number(let d)?: return d
    case .bool(let b)?: return b ? 1 : 0
    default: return nil
    }
}

/// An integer array config value (0 and 1 may arrive as booleans, see `number`).
func intArray(_ c: FixtureCase, _ key: String) -> [Int]? {
    guard case .array(let a)? = c.value(key) else { return nil }
    return a.map { v -> Int in
        switch v { case .number(let d): return Int(d); case .bool(let b): return b ? 1 : 0; default: return -1 }
    }
}
