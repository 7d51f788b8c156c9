// Size2 and Padding: the size and padding arguments of the spatial ops (convolution, pooling).

/// A pair of sizes for the height and width axes. Write `2` for both or `[2, 1]` for
/// (height, width).
public struct Size2: Sendable, Equatable, Hashable, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// The height component.
    public var h: Int
    /// The width component.
    public var w: Int
    /// (height, width).
    public init(_ h: Int, _ w: Int) { self.h = h; self.w = w }
    /// The same size for both axes.
    public init(_ both: Int) { self.h = both; self.w = both }
    /// `2` means 2 for both axes.
    public init(integerLiteral value: Int) { self.init(value) }
    /// `[h, w]`; exactly two elements.
    public init(arrayLiteral elements: Int...) {
        precondition(elements.count == 2, "Size2: expected [height, width], got \(elements)")
        self.init(elements[0], elements[1])
    }
    /// `2` when both sizes are equal, else `[h, w]`.
    public var description: String { h == w ? "\(h)" : "[\(h), \(w)]" }
}

/// Spatial padding of a convolution or transpose convolution.
///
/// * `.explicit(top:bottom:left:right:)` — any amounts, asymmetric allowed. An integer
///   literal `1` means 1 on every side (PyTorch's `padding=1`); `[1, 2]` means 1 on top and
///   bottom, 2 on left and right.
/// * `.valid` — no padding.
/// * `.same` — TensorFlow's SAME: `out = ceil(in / stride)`,
///   `total = max(0, (out-1)*stride + dilation*(k-1) + 1 - in)`, `total/2` before and
///   the rest after (bottom/right). With stride 1 this is PyTorch's `padding='same'`.
public enum Padding: Sendable, Equatable, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral, CustomStringConvertible {
    /// No padding.
    case valid
    /// TensorFlow's SAME: `out = ceil(in / stride)`, the padding split evenly with the extra
    /// row/column at the bottom/right.
    case same
    /// Given amounts on each side (asymmetric allowed).
    case explicit(top: Int, bottom: Int, left: Int, right: Int)

    /// `1` pads every side by 1 (PyTorch's `padding=1`).
    public init(integerLiteral value: Int) { self = .explicit(top: value, bottom: value, left: value, right: value) }
    /// `[h, w]` pads `h` at the top and bottom and `w` at the left and right.
    public init(arrayLiteral elements: Int...) {
        precondition(elements.count == 2, "Padding: expected [height, width], got \(elements)")
        self = .explicit(top: elements[0], bottom: elements[0], left: elements[1], right: elements[1])
    }
    /// The same amount on every side.
    public static func symmetric(_ p: Int) -> Padding { .explicit(top: p, bottom: p, left: p, right: p) }

    /// `valid`, `same` or the four amounts.
    public var description: String {
        switch self {
        case .valid: return "valid"
        case .same: return "same"
        case let .explicit(t, b, l, r): return "(top \(t), bottom \(b), left \(l), right \(r))"
        }
    }

    /// Resolves to explicit amounts `(top, bottom, left, right)` for an input of size
    /// `inH x inW`, kernel, stride and dilation.
    public func resolve(inH: Int, inW: Int, kernel: Size2, stride: Size2, dilation: Size2) -> (top: Int, bottom: Int, left: Int, right: Int) {
        switch self {
        case .valid: return (0, 0, 0, 0)
        case let .explicit(t, b, l, r): return (t, b, l, r)
        case .same:
            func split(_ n: Int, _ k: Int, _ s: Int, _ d: Int) -> (Int, Int) {
                let out = (n + s - 1) / s
                let total = max(0, (out - 1) * s + d * (k - 1) + 1 - n)
                return (total / 2, total - total / 2)
            }
            let (t, b) = split(inH, kernel.h, stride.h, dilation.h)
            let (l, r) = split(inW, kernel.w, stride.w, dilation.w)
            return (t, b, l, r)
        }
    }
}
