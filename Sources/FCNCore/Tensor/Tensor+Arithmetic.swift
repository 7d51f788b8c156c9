// Element-wise arithmetic with NumPy/PyTorch broadcasting, forward and backward.
//
// Contract:
// * Binary ops (`+ - * /`, `maximum`, `minimum`) broadcast their operands from the right:
//   shapes are aligned at their last axis, missing leading axes count as size 1, and each
//   pair of sizes must be equal or one of them 1; the result takes the larger size. A
//   mismatch stops with a message naming the op and both shapes.
// * Backward: each operand's gradient is the upstream gradient times the local derivative,
//   summed back over the axes that were broadcast ("unbroadcast", `_sumTo`).
// * Kernels: the output shape and both operands' strides (0 on broadcast axes) are merged
//   into as few axes as possible. The innermost merged axis runs a tight loop of one of
//   four kinds: both contiguous (same-shape fast path), tensor with scalar (scalar ops and
//   row/column broadcasts such as a bias [C, 1, 1] against [N, C, H, W]), scalar with
//   tensor, or strided. Outer axes advance an odometer once per row, never per element.
//   Ops are generic over a kernel type with an `@inline(__always)` static function, which
//   the optimizer specialises into a plain loop (no closure call per element).
// * Tie rules follow PyTorch: `maximum`/`minimum` split the gradient evenly when a == b;
//   `abs` has derivative 0 at 0; `clamped` passes the gradient where min < x < max
//   (strictly: 0 at the bounds, as PyTorch 2.x).
// * NaN propagates through `maximum`, `minimum` and `clamped`, as in PyTorch.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Kernel types

/// A binary element-wise function, specialised into the broadcast loops.
protocol BinaryKernel { static func apply(_ a: Float, _ b: Float) -> Float }

enum AddKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum SubKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum MulKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
enum DivKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b } }
enum MaximumKernel: BinaryKernel {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { (a > b || a.isNaN) ? a : b }
}
enum MinimumKernel: BinaryKernel {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { (a < b || a.isNaN) ? a : b }
}
/// 1 where a == b, else 0 (masks for tie rules).
enum EqualKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a == b ? 1 : 0 } }
/// 1 where a > b, else 0.
enum GreaterKernel: BinaryKernel { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a > b ? 1 : 0 } }

/// A unary element-wise function (instances may hold parameters such as an exponent).
protocol UnaryKernel { func apply(_ x: Float) -> Float }

struct NegKernel: UnaryKernel { @inline(__always) func apply(_ x: Float) -> Float { -x } }
struct ExpKernel: UnaryKernel { @inline(__always) func apply(_ x: Float) -> Float { expf(x) } }
struct LogKernel: UnaryKernel { @inline(__always) func apply(_ x: Float) -> Float { logf(x) } }
struct SqrtKernel: UnaryKernel { @inline(__always) func apply(_ x: Float) -> Float { x.squareRoot() } }
struct SquareKernel: UnaryKernel { @inline(__always) func apply(_ x: Float) -> Float { x * x } }
struct AbsKernel: UnaryKernel { @inline(__always) func apply(_ x: Float) -> Float { Swift.abs(x) } }
/// Sign with sign(0) = 0 (NaN stays NaN), the derivative of `abs` used by PyTorch.
struct SignKernel: UnaryKernel {
    @inline(__always) func apply(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : (x.isNaN ? x : 0)) }
}
struct PowKernel: UnaryKernel {
    let p: Float
    @inline(__always) func apply(_ x: Float) -> Float { powf(x, p) }
}
struct ClampKernel: UnaryKernel {
    let lo: Float, hi: Float
    // min(max(x, lo), hi) with NaN propagation; lo > hi gives hi everywhere, as in PyTorch.
    @inline(__always) func apply(_ x: Float) -> Float { let t = x < lo ? lo : x; return t > hi ? hi : t }
}
/// 1 where lo < x < hi, else 0 (gradient mask of `clamped`).
struct InRangeKernel: UnaryKernel {
    let lo: Float, hi: Float
    @inline(__always) func apply(_ x: Float) -> Float { (x > lo && x < hi) ? 1 : 0 }
}

// MARK: - Strided broadcast engine

/// Merges adjacent axes whose strides are compatible in both operands and drops size-1
/// axes. Always returns at least one axis.
func mergeAxes(_ dims: [Int], _ sa: [Int], _ sb: [Int]) -> (dims: [Int], sa: [Int], sb: [Int]) {
    var d: [Int] = [], x: [Int] = [], y: [Int] = []
    for i in 0..<dims.count where dims[i] != 1 {
        if !d.isEmpty, x[x.count - 1] == sa[i] * dims[i], y[y.count - 1] == sb[i] * dims[i] {
            d[d.count - 1] *= dims[i]; x[x.count - 1] = sa[i]; y[y.count - 1] = sb[i]
        } else {
            d.append(dims[i]); x.append(sa[i]); y.append(sb[i])
        }
    }
    if d.isEmpty { return ([1], [0], [0]) }
    return (d, x, y)
}

/// Strides of `shape` seen through a broadcast to `outShape` (0 on broadcast axes).
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let lead = outShape.count - shape.count
    let own = Tensor.strides(of: shape)
    var s = [Int](repeating: 0, count: outShape.count)
    for i in 0..<shape.count where shape[i] != 1 { s[i + lead] = own[i] }
    return s
}

@inline(__always)
func binaryRow<K: BinaryKernel>(_: K.Type, _ n: Int, _ a: UnsafePointer<Float>, _ sa: Int,
                                _ b: UnsafePointer<Float>, _ sb: Int, _ o: UnsafeMutablePointer<Float>) {
    if sa == 1 && sb == 1 {
        for i in 0..<n { o[i] = K.apply(a[i], b[i]) }
    } else if sa == 1 && sb == 0 {
        let s = b[0]
        for i in 0..<n { o[i] = K.apply(a[i], s) }
    } else if sa == 0 && sb == 1 {
        let s = a[0]
        for i in 0..<n { o[i] = K.apply(s, b[i]) }
    } else {
        for i in 0..<n { o[i] = K.apply(a[i &* sa], b[i &* sb]) }
    }
}

/// Work per thread chunk below which an element-wise loop stays on one thread.
let elementwiseGrain = 1 << 16

/// Runs `out[idx] = K(a[idx . sa], b[idx . sb])` over the (merged) index space `dims`;
/// `out` is contiguous.
func stridedBinary<K: BinaryKernel>(_ k: K.Type, dims: [Int], sa: [Int], sb: [Int],
                                    a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                    out: UnsafeMutablePointer<Float>) {
    let nd = dims.count
    let inner = dims[nd - 1], ia = sa[nd - 1], ib = sb[nd - 1]
    let total = dims.reduce(1, *)
    if total == 0 { return }
    if nd == 1 {
        parallelChunks(inner, minChunk: elementwiseGrain) { r in
            binaryRow(k, r.count, a + r.lowerBound * ia, ia, b + r.lowerBound * ib, ib, out + r.lowerBound)
        }
        return
    }
    let rows = total / inner
    parallelChunks(rows, minChunk: max(1, elementwiseGrain / inner)) { r in
        var idx = [Int](repeating: 0, count: nd - 1)
        var offA = 0, offB = 0, rem = r.lowerBound
        for d in stride(from: nd - 2, through: 0, by: -1) {
            idx[d] = rem % dims[d]; rem /= dims[d]
            offA += idx[d] * sa[d]; offB += idx[d] * sb[d]
        }
        for row in r {
            binaryRow(k, inner, a + offA, ia, b + offB, ib, out + row * inner)
            var d = nd - 2
            while d >= 0 {
                idx[d] += 1; offA += sa[d]; offB += sb[d]
                if idx[d] < dims[d] { break }
                offA -= sa[d] * dims[d]; offB -= sb[d] * dims[d]; idx[d] = 0
                d -= 1
            }
        }
    }
}

extension Tensor {
    /// The shape two operands broadcast to, or a stop naming `op` and both shapes.
    public static func broadcastShape(_ a: [Int], _ b: [Int], op: String = "broadcast") -> [Int] {
        if a == b { return a }
        let r = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else {
                fcnFail(op, "shapes \(a) and \(b) cannot be broadcast: axis \(i - r) has sizes \(da) and \(db) (they must be equal or one of them 1)")
            }
        }
        return out
    }

    /// Applies a binary kernel with broadcasting; not recorded.
    static func _binary<K: BinaryKernel>(_ k: K.Type, _ x: Tensor, _ y: Tensor, op: String) -> Tensor {
        let outShape = broadcastShape(x.shape, y.shape, op: op)
        let m = mergeAxes(outShape, broadcastStrides(x.shape, to: outShape), broadcastStrides(y.shape, to: outShape))
        return make(shape: outShape) { o in
            stridedBinary(k, dims: m.dims, sa: m.sa, sb: m.sb, a: x.storage.pointer, b: y.storage.pointer, out: o.baseAddress!)
        }
    }

    /// Applies a binary kernel between a tensor and a scalar (`scalarFirst`: scalar is `a`).
    static func _binary<K: BinaryKernel>(_ k: K.Type, _ x: Tensor, scalar s: Float, scalarFirst: Bool) -> Tensor {
        make(shape: x.shape) { o in
            var v = s
            withUnsafePointer(to: &v) { sp in
                let px = UnsafePointer(x.storage.pointer), po = o.baseAddress!
                parallelChunks(x.count, minChunk: elementwiseGrain) { r in
                    if scalarFirst {
                        binaryRow(k, r.count, sp, 0, px + r.lowerBound, 1, po + r.lowerBound)
                    } else {
                        binaryRow(k, r.count, px + r.lowerBound, 1, sp, 0, po + r.lowerBound)
                    }
                }
            }
        }
    }

    /// Applies a unary kernel element-wise; not recorded.
    static func _unary<K: UnaryKernel>(_ k: K, _ x: Tensor) -> Tensor {
        make(shape: x.shape) { o in
            let p = x.storage.pointer, po = o.baseAddress!
            parallelChunks(x.count, minChunk: elementwiseGrain) { r in
                for i in r { po[i] = k.apply(p[i]) }
            }
        }
    }

    /// Sums this gradient over the axes that were broadcast to reach it from `target`
    /// (the adjoint of broadcasting). Not recorded.
    func _sumTo(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        var axes = Array(0..<lead)
        for i in 0..<target.count where target[i] == 1 && shape[i + lead] != 1 { axes.append(i + lead) }
        let reduced = _reduceKeepDims(.sum, axes: axes, op: "sumTo")
        return Tensor(shape: target, storage: reduced.storage)
    }
}

// MARK: - Binary operators

extension Tensor {
    /// Element-wise sum with broadcasting (shapes aligned from the right, sizes equal or 1).
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor {
        profiledOp("add") {
            let out = _binary(AddKernel.self, lhs, rhs, op: "add")
            let sa = lhs.shape, sb = rhs.shape
            return record("add", out, inputs: [lhs, rhs]) { g, needs in
                [needs[0] ? g._sumTo(sa) : nil, needs[1] ? g._sumTo(sb) : nil]
            }
        }
    }

    /// Element-wise difference with broadcasting.
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor {
        let out = _binary(SubKernel.self, lhs, rhs, op: "sub")
        let sa = lhs.shape, sb = rhs.shape
        return record("sub", out, inputs: [lhs, rhs]) { g, needs in
            [needs[0] ? g._sumTo(sa) : nil, needs[1] ? (-g)._sumTo(sb) : nil]
        }
    }

    /// Element-wise product with broadcasting.
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor {
        let out = _binary(MulKernel.self, lhs, rhs, op: "mul")
        let a = lhs.detached(), b = rhs.detached()
        return record("mul", out, inputs: [lhs, rhs]) { g, needs in
            [needs[0] ? (g * b)._sumTo(a.shape) : nil, needs[1] ? (g * a)._sumTo(b.shape) : nil]
        }
    }

    /// Element-wise quotient with broadcasting (IEEE: x / 0 is ±inf or NaN).
    /// Gradients: `g / b` and `-g * (a / b) / b`, as PyTorch computes them.
    public static func / (lhs: Tensor, rhs: Tensor) -> Tensor {
        let out = _binary(DivKernel.self, lhs, rhs, op: "div")
        let a = lhs.detached(), b = rhs.detached()
        return record("div", out, inputs: [lhs, rhs]) { g, needs in
            [needs[0] ? (g / b)._sumTo(a.shape) : nil,
             needs[1] ? (-(g * (out / b)))._sumTo(b.shape) : nil]
        }
    }

    // MARK: Scalars

    /// Adds a scalar to every element.
    public static func + (lhs: Tensor, rhs: Float) -> Tensor {
        let out = _binary(AddKernel.self, lhs, scalar: rhs, scalarFirst: false)
        return record("add", out, inputs: [lhs]) { g, _ in [g] }
    }
    /// Adds a scalar to every element.
    public static func + (lhs: Float, rhs: Tensor) -> Tensor { rhs + lhs }

    /// Subtracts a scalar from every element.
    public static func - (lhs: Tensor, rhs: Float) -> Tensor {
        let out = _binary(SubKernel.self, lhs, scalar: rhs, scalarFirst: false)
        return record("sub", out, inputs: [lhs]) { g, _ in [g] }
    }
    /// `lhs - x` for every element x.
    public static func - (lhs: Float, rhs: Tensor) -> Tensor {
        let out = _binary(SubKernel.self, rhs, scalar: lhs, scalarFirst: true)
        return record("sub", out, inputs: [rhs]) { g, _ in [-g] }
    }

    /// Multiplies every element by a scalar.
    public static func * (lhs: Tensor, rhs: Float) -> Tensor {
        let out = _binary(MulKernel.self, lhs, scalar: rhs, scalarFirst: false)
        return record("mul", out, inputs: [lhs]) { g, _ in [g * rhs] }
    }
    /// Multiplies every element by a scalar.
    public static func * (lhs: Float, rhs: Tensor) -> Tensor { rhs * lhs }

    /// Divides every element by a scalar (a true division, as PyTorch's `x / s`).
    public static func / (lhs: Tensor, rhs: Float) -> Tensor {
        let out = _binary(DivKernel.self, lhs, scalar: rhs, scalarFirst: false)
        return record("div", out, inputs: [lhs]) { g, _ in [g / rhs] }
    }
    /// `lhs / x` for every element x. Gradient `-g * (lhs / x) / x`.
    public static func / (lhs: Float, rhs: Tensor) -> Tensor {
        let out = _binary(DivKernel.self, rhs, scalar: lhs, scalarFirst: true)
        let x = rhs.detached()
        return record("div", out, inputs: [rhs]) { g, _ in [-(g * (out / x))] }
    }

    /// Element-wise negation.
    public static prefix func - (x: Tensor) -> Tensor {
        let out = _unary(NegKernel(), x)
        return record("neg", out, inputs: [x]) { g, _ in [-g] }
    }

    // MARK: Compound assignment (rebinds the variable to the new, recorded result)

    /// `lhs = lhs + rhs` (broadcasting; the result must keep the shape of `lhs` or grow it).
    public static func += (lhs: inout Tensor, rhs: Tensor) { lhs = lhs + rhs }
    /// `lhs = lhs - rhs`.
    public static func -= (lhs: inout Tensor, rhs: Tensor) { lhs = lhs - rhs }
    /// `lhs = lhs * rhs`.
    public static func *= (lhs: inout Tensor, rhs: Tensor) { lhs = lhs * rhs }
    /// `lhs = lhs / rhs`.
    public static func /= (lhs: inout Tensor, rhs: Tensor) { lhs = lhs / rhs }
    /// `lhs = lhs + rhs`.
    public static func += (lhs: inout Tensor, rhs: Float) { lhs = lhs + rhs }
    /// `lhs = lhs - rhs`.
    public static func -= (lhs: inout Tensor, rhs: Float) { lhs = lhs - rhs }
    /// `lhs = lhs * rhs`.
    public static func *= (lhs: inout Tensor, rhs: Float) { lhs = lhs * rhs }
    /// `lhs = lhs / rhs`.
    public static func /= (lhs: inout Tensor, rhs: Float) { lhs = lhs / rhs }
}

// MARK: - maximum / minimum

/// Element-wise maximum with broadcasting (PyTorch `torch.maximum`). NaN propagates.
/// Where `a == b` the gradient is split evenly between both operands, as in PyTorch.
public func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
    Tensor._extremum(a, b, isMax: true)
}

/// Element-wise minimum with broadcasting (PyTorch `torch.minimum`); ties split the gradient.
public func minimum(_ a: Tensor, _ b: Tensor) -> Tensor {
    Tensor._extremum(a, b, isMax: false)
}

/// Element-wise maximum with a scalar (`maximum(x, 0)` is a ReLU whose gradient at 0 is 1/2).
public func maximum(_ a: Tensor, _ b: Float) -> Tensor { maximum(a, Tensor(b)) }
/// Element-wise minimum with a scalar.
public func minimum(_ a: Tensor, _ b: Float) -> Tensor { minimum(a, Tensor(b)) }

extension Tensor {
    static func _extremum(_ a: Tensor, _ b: Tensor, isMax: Bool) -> Tensor {
        let name = isMax ? "maximum" : "minimum"
        let out = isMax ? _binary(MaximumKernel.self, a, b, op: name) : _binary(MinimumKernel.self, a, b, op: name)
        let x = a.detached(), y = b.detached()
        return record(name, out, inputs: [a, b]) { g, needs in
            // PyTorch: where(a == b, g/2, g), zeroed where the operand loses (a < b for
            // maximum's a). NaN pairs are neither ties nor losses: both get g.
            let tie = _binary(EqualKernel.self, x, y, op: name) * 0.5
            let ga = needs[0] ? (g * (1 - (isMax ? _binary(GreaterKernel.self, y, x, op: name) : _binary(GreaterKernel.self, x, y, op: name)) - tie))._sumTo(x.shape) : nil
            let gb = needs[1] ? (g * (1 - (isMax ? _binary(GreaterKernel.self, x, y, op: name) : _binary(GreaterKernel.self, y, x, op: name)) - tie))._sumTo(y.shape) : nil
            return [ga, gb]
        }
    }
}

// MARK: - Unary functions

extension Tensor {
    /// e^x element-wise. Gradient `g * e^x`.
    public func exp() -> Tensor {
        let out = Tensor._unary(ExpKernel(), self)
        return Tensor.record("exp", out, inputs: [self]) { g, _ in [g * out] }
    }

    /// Natural logarithm element-wise (log 0 = -inf, negative -> NaN). Gradient `g / x`.
    public func log() -> Tensor {
        let out = Tensor._unary(LogKernel(), self)
        let x = detached()
        return Tensor.record("log", out, inputs: [self]) { g, _ in [g / x] }
    }

    /// Square root element-wise. Gradient `g / (2 sqrt(x))` (inf at 0, as in PyTorch).
    public func sqrt() -> Tensor {
        let out = Tensor._unary(SqrtKernel(), self)
        return Tensor.record("sqrt", out, inputs: [self]) { g, _ in [g / (out * 2)] }
    }

    /// x² element-wise. Gradient `2 x g`.
    public func squared() -> Tensor {
        let out = Tensor._unary(SquareKernel(), self)
        let x = detached()
        return Tensor.record("square", out, inputs: [self]) { g, _ in [g * (x * 2)] }
    }

    /// |x| element-wise. Gradient `g * sign(x)`, with sign(0) = 0 (PyTorch).
    public func abs() -> Tensor {
        let out = Tensor._unary(AbsKernel(), self)
        let x = detached()
        return Tensor.record("abs", out, inputs: [self]) { g, _ in [g * Tensor._unary(SignKernel(), x)] }
    }

    /// x^p element-wise (C `powf`; p = 2 is computed as x*x and p = 0.5 as sqrt, exactly as
    /// PyTorch does). Gradient `g * p * x^(p-1)`, and 0 for p = 0.
    public func pow(_ p: Float) -> Tensor {
        let out: Tensor
        switch p {
        case 1: out = Tensor._unary(PowKernel(p: 1), self)
        case 2: out = Tensor._unary(SquareKernel(), self)
        case 0.5: out = Tensor._unary(SqrtKernel(), self)
        default: out = Tensor._unary(PowKernel(p: p), self)
        }
        let x = detached()
        return Tensor.record("pow", out, inputs: [self]) { g, _ in
            if p == 0 { return [Tensor.zeros(x.shape)] }
            let d: Tensor = p == 2 ? x * 2 : Tensor._unary(PowKernel(p: p - 1), x) * p
            return [g * d]
        }
    }

    /// Clamps every element into `[min, max]` (either bound may be omitted). NaN stays NaN;
    /// if `min > max` every element becomes `max` (PyTorch). The gradient passes where
    /// `min < x < max` and is 0 elsewhere, also at the bounds themselves (as PyTorch 2.x).
    public func clamped(min lo: Float? = nil, max hi: Float? = nil) -> Tensor {
        fcnCheck(lo != nil || hi != nil, "clamp", "at least one of min and max must be given")
        let l = lo ?? -.infinity, h = hi ?? .infinity
        let out = Tensor._unary(ClampKernel(lo: l, hi: h), self)
        let x = detached()
        return Tensor.record("clamp", out, inputs: [self]) { g, _ in
            [g * Tensor._unary(InRangeKernel(lo: l, hi: h), x)]
        }
    }
}
