// Tensor: an N-dimensional, contiguous, row-major Float32 array with value semantics.
//
// Layout: images are NCHW (`[batch, channels, height, width]`), the last axis varies
// fastest. Every tensor is contiguous; ops that reorder axes (permute, transpose) copy.
// Copies of a Tensor share storage until one of them is written (copy-on-write).
//
// A Tensor may carry an autograd node (see Autograd/Autograd.swift); copies of a tensor
// share that node, so `w.grad` reads the gradient accumulated for every copy of `w`.

/// An N-dimensional Float32 array, row-major and contiguous, with copy-on-write storage.
///
/// ```swift
/// let x = Tensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4])
/// let y = (x * 2 + 1).relu()
/// print(y.shape, y.scalars)   // [1, 1, 2, 2] [3.0, 5.0, 7.0, 9.0]
/// ```
public struct Tensor: Sendable {
    /// Sizes of the axes, outermost first. An empty shape is a scalar (one element).
    public let shape: [Int]
    @usableFromInline package var storage: TensorStorage
    @usableFromInline package var node: GradNode?

    /// Wraps existing storage. `storage.count` must equal the product of `shape`.
    @usableFromInline
    init(shape: [Int], storage: TensorStorage, node: GradNode? = nil) {
        self.shape = shape
        self.storage = storage
        self.node = node
    }

    /// A tensor of the given shape holding `scalars` in row-major order.
    ///
    /// Traps with a message if `scalars.count` differs from the product of `shape` or a
    /// size is negative.
    public init(shape: [Int], scalars: [Float]) {
        Tensor.checkShape(shape, op: "Tensor(shape:scalars:)")
        let n = shape.reduce(1, *)
        fcnCheck(n == scalars.count, "Tensor(shape:scalars:)",
                 "shape \(shape) holds \(n) elements but \(scalars.count) scalars were given")
        self.shape = shape
        self.storage = scalars.withUnsafeBufferPointer { TensorStorage(copying: $0) }
        self.node = nil
    }

    /// A tensor of the given shape with every element equal to `value`.
    public init(shape: [Int], repeating value: Float) {
        Tensor.checkShape(shape, op: "Tensor(shape:repeating:)")
        self.shape = shape
        self.storage = TensorStorage(repeating: value, count: shape.reduce(1, *))
        self.node = nil
    }

    /// A rank-0 tensor holding one value.
    public init(_ scalar: Float) {
        self.init(shape: [], repeating: scalar)
    }

    /// A tensor of the given shape whose elements are produced by `body` (row-major order).
    /// Internal fast constructor: `body` must initialise all `count` elements.
    @inlinable
    package static func make(shape: [Int], _ body: (UnsafeMutableBufferPointer<Float>) -> Void) -> Tensor {
        let n = shape.reduce(1, *)
        let s = TensorStorage(uninitializedCount: n)
        body(UnsafeMutableBufferPointer(start: s.pointer, count: n))
        return Tensor(shape: shape, storage: s)
    }

    static func checkShape(_ shape: [Int], op: String) {
        fcnCheck(shape.allSatisfy { $0 >= 0 }, op, "shape \(shape) has a negative size")
    }

    // MARK: Shape queries

    /// Number of elements (product of `shape`; 1 for a scalar).
    @inlinable public var count: Int { storage.count }
    /// Number of axes.
    @inlinable public var rank: Int { shape.count }

    /// Size of axis `axis`; negative axes count from the end (`-1` is the last).
    public func size(_ axis: Int) -> Int { shape[normalizeAxis(axis, op: "size")] }

    /// Maps a possibly negative axis into `0..<rank`, trapping with a message otherwise.
    @usableFromInline
    func normalizeAxis(_ axis: Int, op: String) -> Int {
        let a = axis < 0 ? axis + rank : axis
        fcnCheck(a >= 0 && a < rank, op, "axis \(axis) is out of range for a tensor of shape \(shape)")
        return a
    }

    /// Row-major strides of `shape` in elements.
    public static func strides(of shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    // MARK: Element access

    /// The elements in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// The single element of a one-element tensor.
    public var item: Float {
        fcnCheck(count == 1, "item", "tensor of shape \(shape) has \(count) elements, expected 1")
        return storage.pointer[0]
    }

    /// Element at a full index (one integer per axis).
    public subscript(_ index: Int...) -> Float {
        storage.pointer[flatIndex(index)]
    }

    func flatIndex(_ index: [Int]) -> Int {
        fcnCheck(index.count == rank, "subscript", "index \(index) has \(index.count) components, tensor of shape \(shape) needs \(rank)")
        var flat = 0
        for (i, v) in index.enumerated() {
            fcnCheck(v >= 0 && v < shape[i], "subscript", "index \(index) is out of bounds for shape \(shape)")
            flat = flat * shape[i] + v
        }
        return flat
    }

    /// Read-only access to the contiguous elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// Mutable access to the elements; copies the storage first if it is shared.
    /// Writing to a tensor does not touch its autograd history: use it on values that
    /// are not part of a recorded graph (parameters under an optimizer, fresh outputs).
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// True when `self` and `other` share the same storage (no copy was made).
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }
}

extension Tensor: CustomStringConvertible {
    /// The shape and the elements (the first 8 when there are more than 16).
    public var description: String {
        let preview = count <= 16 ? "\(scalars)" : "\(Array(scalars.prefix(8))) ... (\(count) elements)"
        return "Tensor(shape: \(shape), \(preview)\(requiresGrad ? ", requiresGrad" : ""))"
    }
}
