// Deterministic weights from parameter names, identical to Fixtures/detinit.py, so model
// fixtures need to store only inputs and outputs (see that file for the ranges).
import FCNCore
import FCNIO

public func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 { h ^= UInt64(b); h = h &* 0x100_0000_01B3 }
    return h
}

/// Uniform samples exactly as detinit.fill(name, shape, low, high, seed).
public func deterministicFill(_ name: String, shape: [Int], low: Float, high: Float, seed: UInt64) -> Tensor {
    var g = FCNRandom(seed: seed ^ fnv1a64(name))
    let span = high - low
    let n = shape.reduce(1, *)
    var values = [Float](repeating: 0, count: n)
    for i in 0..<n { values[i] = low + span * g.nextUniform() }
    return Tensor(shape: shape, scalars: values)
}

public func isUpsamplingName(_ name: String) -> Bool {
    let parts = name.split(separator: ".")
    guard parts.count >= 2 else { return false }
    let owner = parts[parts.count - 2]
    return owner.hasPrefix("upscore") || owner.hasPrefix("upsample")
}

/// Replaces every entry of a state dict as detinit.deterministic_init does.
public func deterministicStateDict(_ state: [String: Tensor], seed: UInt64) -> [String: Tensor] {
    var out = state
    for (name, t) in state {
        if name.hasSuffix("num_batches_tracked") || isUpsamplingName(name) { continue }
        let leaf = name.split(separator: ".").last.map(String.init) ?? name
        let low: Float, high: Float
        if leaf == "weight" && t.rank >= 2 {
            let fanIn = t.shape.dropFirst().reduce(1, *)
            let b = Float((3.0 / Double(fanIn)).squareRoot())
            (low, high) = (-b, b)
        } else if leaf == "weight" || leaf == "running_var" {
            (low, high) = (0.5, 1.5)
        } else {
            (low, high) = (-0.1, 0.1)
        }
        out[name] = deterministicFill(name, shape: t.shape, low: low, high: high, seed: seed)
    }
    return out
}
