// Element-wise activations: relu, leakyRelu, sigmoid, tanh (forward + backward).
//
// Contract: any shape, output has the input's shape. Each op is a raw-pointer loop split
// into contiguous chunks over the compute threads. Backward (PyTorch's rules):
//   relu       g * (x > 0)          -- the gradient at exactly 0 is 0, as in PyTorch
//   leakyRelu  g * (x > 0 ? 1 : s)  -- at exactly 0 the slope s is used, as in PyTorch
//   sigmoid    g * y * (1 - y)      -- from the saved output
//   tanh       g * (1 - y * y)      -- from the saved output
// sigmoid is evaluated as 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) for x < 0, so no
// exponential overflows for large |x| (outputs saturate at exactly 0 and 1).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Elements per chunk below which element-wise loops stay on one thread.
let actMinChunk = 32_768

extension Tensor {
    /// Applies `body(input, output, range)` over contiguous chunks; returns a new tensor.
    /// The closure is called once per chunk, never per element.
    @inline(__always)
    func actMap(_ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Range<Int>) -> Void) -> Tensor {
        let src = UnsafePointer(storage.pointer)
        return Tensor.make(shape: shape) { out in
            let dst = UncheckedSendable(out.baseAddress!)
            let s = UncheckedSendable(src)
            parallelChunks(out.count, minChunk: actMinChunk) { r in body(s.value, dst.value, r) }
        }
    }

    /// `body(a, b, out, range)` over two same-shaped tensors (for backward rules).
    @inline(__always)
    static func actZip(_ a: Tensor, _ b: Tensor,
                          _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Range<Int>) -> Void) -> Tensor {
        let pa = UncheckedSendable(UnsafePointer(a.storage.pointer)), pb = UncheckedSendable(UnsafePointer(b.storage.pointer))
        return Tensor.make(shape: a.shape) { out in
            let dst = UncheckedSendable(out.baseAddress!)
            parallelChunks(out.count, minChunk: actMinChunk) { r in body(pa.value, pb.value, dst.value, r) }
        }
    }
}

// MARK: relu

/// Rectified linear unit `max(x, 0)`, element-wise, any shape.
///
/// The gradient at exactly 0 is 0 (PyTorch's convention, which keeps dead units dead).
public func relu(_ x: Tensor) -> Tensor { profiledOp("relu") { reluForward(x) } }

func reluForward(_ x: Tensor) -> Tensor {
    let y = x.actMap { s, d, r in for i in r { let v = s[i]; d[i] = v > 0 ? v : 0 } }
    return Tensor.record("relu", y, inputs: [x]) { g, _ in
        [Tensor.actZip(g, x) { gp, xp, d, r in for i in r { d[i] = xp[i] > 0 ? gp[i] : 0 } }]
    }
}

// MARK: leakyRelu

/// Leaky ReLU `x > 0 ? x : negativeSlope * x`, element-wise, any shape.
///
/// The default slope 0.01 is PyTorch's. At exactly 0 the gradient is `negativeSlope`
/// (PyTorch's convention).
public func leakyRelu(_ x: Tensor, negativeSlope: Float = 0.01) -> Tensor {
    leakyReluForward(x, negativeSlope: negativeSlope)
}

func leakyReluForward(_ x: Tensor, negativeSlope: Float) -> Tensor {
    let s0 = negativeSlope
    let y = x.actMap { s, d, r in for i in r { let v = s[i]; d[i] = v > 0 ? v : v * s0 } }
    return Tensor.record("leakyRelu", y, inputs: [x]) { g, _ in
        [Tensor.actZip(g, x) { gp, xp, d, r in for i in r { d[i] = xp[i] > 0 ? gp[i] : gp[i] * s0 } }]
    }
}

// MARK: sigmoid

/// Logistic sigmoid `1 / (1 + e^-x)`, element-wise, any shape.
///
/// Stable for large |x|: negative inputs use `e^x / (1 + e^x)`, so nothing overflows and
/// the output saturates at exactly 0 or 1. Backward uses the saved output: `y (1 - y)`.
public func sigmoid(_ x: Tensor) -> Tensor { sigmoidForward(x) }

func sigmoidForward(_ x: Tensor) -> Tensor {
    let y = x.actMap { s, d, r in
        for i in r {
            let v = s[i]
            if v >= 0 { d[i] = 1 / (1 + expf(-v)) } else { let e = expf(v); d[i] = e / (1 + e) }
        }
    }
    let saved = y.detached()
    return Tensor.record("sigmoid", y, inputs: [x]) { g, _ in
        [Tensor.actZip(g, saved) { gp, yp, d, r in for i in r { let v = yp[i]; d[i] = gp[i] * v * (1 - v) } }]
    }
}

// MARK: tanh

/// Hyperbolic tangent, element-wise, any shape. Backward uses the saved output: `1 - y^2`.
public func tanh(_ x: Tensor) -> Tensor { tanhForward(x) }

func tanhForward(_ x: Tensor) -> Tensor {
    let y = x.actMap { s, d, r in for i in r { d[i] = tanhf(s[i]) } }
    let saved = y.detached()
    return Tensor.record("tanh", y, inputs: [x]) { g, _ in
        [Tensor.actZip(g, saved) { gp, yp, d, r in for i in r { let v = yp[i]; d[i] = gp[i] * (1 - v * v) } }]
    }
}

// MARK: Method forms

extension Tensor {
    /// `relu(self)`: `max(x, 0)` element-wise.
    public func relu() -> Tensor { reluForward(self) }
    /// `leakyRelu(self, negativeSlope:)`; the default slope 0.01 is PyTorch's.
    public func leakyRelu(negativeSlope: Float = 0.01) -> Tensor { leakyReluForward(self, negativeSlope: negativeSlope) }
    /// `sigmoid(self)`: `1 / (1 + e^-x)` element-wise, stable for large |x|.
    public func sigmoid() -> Tensor { sigmoidForward(self) }
    /// `tanh(self)` element-wise.
    public func tanh() -> Tensor { tanhForward(self) }
}
