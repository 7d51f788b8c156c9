// Numeric comparison helpers shared by the tests.
import FCNCore
import FCNIO
import Testing

/// Max |a - b| divided by max(1, max |b|): the error relative to the output scale.
public func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "shapes differ: \(a.shape) vs \(b.shape)")
    var maxDiff: Float = 0, scale: Float = 1
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            for i in 0..<pa.count {
                let d = abs(pa[i] - pb[i])
                if d.isNaN || pa[i].isNaN != pb[i].isNaN { maxDiff = .infinity }
                maxDiff = max(maxDiff, d)
                scale = max(scale, abs(pb[i]))
            }
        }
    }
    return maxDiff / scale
}

/// Expects equal shapes and a relative error (see `relativeError`) within `tolerance`.
public func expectClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: @autoclosure () -> String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.shape == expected.shape, "\(what()): shape \(actual.shape) != \(expected.shape)", sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    let err = relativeError(actual, expected)
    #expect(err <= tolerance, "\(what()): relative error \(err) > \(tolerance)", sourceLocation: sourceLocation)
}

/// Central finite-difference check of the gradients of `f` with respect to `inputs`.
///
/// The scalar checked is `L = <f(inputs), R>` for a fixed random `R`, so every output
/// element contributes. Analytic gradients come from `backward(gradient: R)`; numeric ones
/// from `(L(x + eps) - L(x - eps)) / (2 eps)` accumulated in Double. Returns the worst
/// error relative to max(1, max |numeric gradient|) over all inputs.
@discardableResult
public func gradientCheck(_ inputs: [Tensor], eps: Float = 1e-2, tolerance: Float, seed: UInt64 = 7,
                   _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation,
                   _ f: ([Tensor]) -> Tensor) -> Float {
    let leaves = inputs.map { $0.requiringGrad() }
    let out = f(leaves)
    let r = Tensor.randn(out.shape, seed: seed)
    out.backward(gradient: r)
    func loss(_ xs: [Tensor]) -> Double {
        let o = withoutGrad { f(xs) }
        var acc = 0.0
        o.withUnsafeBufferPointer { po in r.withUnsafeBufferPointer { pr in for i in 0..<po.count { acc += Double(po[i]) * Double(pr[i]) } } }
        return acc
    }
    var worst: Float = 0
    for (k, leaf) in leaves.enumerated() {
        guard let analytic = leaf.grad else {
            Issue.record("\(what()): input \(k) got no gradient", sourceLocation: sourceLocation); continue
        }
        var numeric = [Float](repeating: 0, count: leaf.count)
        for i in 0..<leaf.count {
            var xs = inputs.map { $0.detached() }
            var plus = xs[k]; plus.withUnsafeMutableBufferPointer { $0[i] += eps }
            xs[k] = plus
            let lp = loss(xs)
            var minus = inputs[k].detached(); minus.withUnsafeMutableBufferPointer { $0[i] -= eps }
            xs[k] = minus
            let lm = loss(xs)
            numeric[i] = Float((lp - lm) / Double(2 * eps))
        }
        let err = relativeError(analytic, Tensor(shape: leaf.shape, scalars: numeric))
        worst = max(worst, err)
        #expect(err <= tolerance, "\(what()): input \(k) gradient relative error \(err) > \(tolerance)", sourceLocation: sourceLocation)
    }
    return worst
}

/// True when the two tensors have the same shape and bit-identical elements.
public func bitIdentical(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }
}
