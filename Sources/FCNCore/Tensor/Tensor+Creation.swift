// Creation: zeros, ones, full, ranges, identity; random tensors in Tensor+Random.swift.

extension Tensor {
    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }
    /// A tensor of ones.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 1) }
    /// A tensor with every element equal to `value`.
    public static func full(_ shape: [Int], _ value: Float) -> Tensor { Tensor(shape: shape, repeating: value) }
    /// Zeros with the shape of `other`.
    public static func zeros(like other: Tensor) -> Tensor { zeros(other.shape) }
    /// Ones with the shape of `other`.
    public static func ones(like other: Tensor) -> Tensor { ones(other.shape) }

    /// `[start, start+step, ...)` below `end`, as a rank-1 tensor.
    public static func arange(_ start: Float = 0, _ end: Float, step: Float = 1) -> Tensor {
        fcnCheck(step != 0, "arange", "step must be non-zero")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return make(shape: [n]) { out in for i in 0..<n { out[i] = start + Float(i) * step } }
    }

    /// The `n x n` identity matrix.
    public static func eye(_ n: Int) -> Tensor {
        make(shape: [n, n]) { out in
            out.initialize(repeating: 0)
            for i in 0..<n { out[i * n + i] = 1 }
        }
    }
}
