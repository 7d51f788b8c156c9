// Helpers for the Training/Data tests: fake gradients and slicing fixture tensors.
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

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


/// An optional numeric config value (nil when absent or null).
func number(_ c: FixtureCase, _ key: String) -> Double? {
    if case .number? = c.value(key) { return c.double(key) }
    return nil
}

/// An optional integer array config value (nil when absent or null).
func intArray(_ c: FixtureCase, _ key: String) -> [Int]? {
    if case .array? = c.value(key) { return c.ints(key) }
    return nil
}
