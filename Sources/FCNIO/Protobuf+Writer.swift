// A writer of the protocol buffers wire format (proto2/proto3 encoding), for formats the
// library exports (ONNX).
//
// A message is a sequence of fields, each a varint tag `field_number << 3 | wire_type`
// followed by its payload:
//   0 varint            int32, int64, uint64, bool, enum: 7 bits per byte, least
//                       significant group first, high bit set on every byte but the last;
//                       negative int32/int64 values are their 64-bit two's complement
//                       (always 10 bytes)
//   1 64-bit            double, fixed64: 8 bytes little-endian
//   2 length-delimited  a varint byte count, then the bytes: strings, bytes, nested
//                       messages, packed repeated scalars
//   5 32-bit            float, fixed32: 4 bytes little-endian
// Field numbers are 1 ... 2^29 - 1.
//
// A nested message is written as a length-delimited field, so its size must be known
// before its bytes. `message(_:_:)` runs the body twice: once on a counting writer that
// only adds up sizes (large payloads such as tensor data cost nothing there), once for
// real. Nesting depth d runs the innermost body 2^d times; the formats written here nest
// a handful of levels with small bodies, and the bulk data is counted, not copied.
//
// Output goes to memory (`bytes`) or, with a sink, is streamed in chunks of about
// `chunkSize` bytes (bulk float data passes straight from the caller's buffer on
// little-endian hosts). The first error thrown by the sink is kept, later writes are
// dropped, and `finish()` throws it.
import FCNCore

/// Writes protocol buffers messages field by field (see the file comment for the
/// encoding).
///
///     var w = ProtobufWriter()
///     w.int64(1, 8)                         // field 1, varint
///     w.string(2, "swift-fcn")              // field 2, length-delimited
///     w.message(7) { g in g.string(2, "graph") }
///     let bytes = w.bytes                   // [8, 8, 18, 9, ...]
public struct ProtobufWriter {
    /// Largest field number protobuf allows (2^29 - 1).
    public static let maxFieldNumber = (1 << 29) - 1

    private enum Mode {
        case memory
        case counting
        case stream((UnsafeRawBufferPointer) throws -> Void, chunkSize: Int)
    }

    private let mode: Mode
    private var buffer: [UInt8] = []
    private var failure: (any Error)?

    /// Bytes written so far (counted in every mode, including what a failed sink dropped).
    public private(set) var count = 0

    /// A writer that keeps the bytes in memory (`bytes`).
    public init() { mode = .memory }

    /// A writer that hands its bytes to `sink` in order, in chunks of about `chunkSize`
    /// bytes (and bulk data in one call each); call `finish()` at the end.
    public init(chunkSize: Int = 1 << 20, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        mode = .stream(sink, chunkSize: max(64, chunkSize))
        buffer.reserveCapacity(max(64, chunkSize))
    }

    private init(counting: Void) { mode = .counting }

    /// The bytes written (in-memory writers; a streaming writer holds only its unflushed
    /// tail, and a counting one none).
    public var bytes: [UInt8] { buffer }

    /// Reserves memory for `n` more bytes (in-memory writers).
    public mutating func reserveCapacity(_ n: Int) {
        if case .memory = mode { buffer.reserveCapacity(buffer.count + n) }
    }

    /// The number of bytes `body` writes, without keeping them.
    public static func encodedSize(_ body: (inout ProtobufWriter) -> Void) -> Int {
        var w = ProtobufWriter(counting: ())
        body(&w)
        return w.count
    }

    /// Flushes a streaming writer's tail to its sink and throws the first error the sink
    /// threw, if any. In-memory writers only report nothing.
    public mutating func finish() throws {
        flush()
        if let failure { throw failure }
    }

    // MARK: Fields

    /// A varint field (uint64, or any non-negative integer type).
    public mutating func uint64(_ field: Int, _ value: UInt64) {
        tag(field, wireType: 0)
        rawVarint(value)
    }

    /// An int64 or int32 field (also enum values): the 64-bit two's complement as a varint,
    /// so negative values take 10 bytes, as protobuf encodes them.
    public mutating func int64(_ field: Int, _ value: Int64) { uint64(field, UInt64(bitPattern: value)) }

    /// An int64 field from an `Int`.
    public mutating func int(_ field: Int, _ value: Int) { int64(field, Int64(value)) }

    /// A bool field: varint 0 or 1.
    public mutating func bool(_ field: Int, _ value: Bool) { uint64(field, value ? 1 : 0) }

    /// A float field: 32-bit wire type, IEEE 754 little-endian.
    public mutating func float(_ field: Int, _ value: Float) {
        tag(field, wireType: 5)
        fixed32(value.bitPattern)
    }

    /// A double field: 64-bit wire type, IEEE 754 little-endian.
    public mutating func double(_ field: Int, _ value: Double) {
        tag(field, wireType: 1)
        fixed64(value.bitPattern)
    }

    /// A bytes field (length-delimited).
    public mutating func bytes(_ field: Int, _ value: some Collection<UInt8>) {
        tag(field, wireType: 2)
        rawVarint(UInt64(value.count))
        append(value)
    }

    /// A string field: its UTF-8 bytes, length-delimited.
    public mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }

    /// A packed repeated int64 (or int32) field: the varints in one length-delimited run.
    /// Nothing is written for an empty list (protobuf's encoding of "no elements").
    public mutating func packedInt64(_ field: Int, _ values: [Int64]) {
        guard !values.isEmpty else { return }
        tag(field, wireType: 2)
        rawVarint(UInt64(values.reduce(0) { $0 + Self.varintSize(UInt64(bitPattern: $1)) }))
        for v in values { rawVarint(UInt64(bitPattern: v)) }
    }

    /// A packed repeated float field: 4 little-endian bytes per value, length-delimited.
    /// Nothing is written for an empty list.
    public mutating func packedFloat(_ field: Int, _ values: [Float]) {
        guard !values.isEmpty else { return }
        values.withUnsafeBufferPointer { floatBytes(field, $0) }
    }

    /// A bytes field holding `values` as IEEE 754 little-endian floats (4 bytes each):
    /// the encoding of a packed repeated float and of ONNX's `raw_data`. A counting writer
    /// only adds the size; a streaming one passes large runs to its sink without copying
    /// (on little-endian hosts).
    public mutating func floatBytes(_ field: Int, _ values: UnsafeBufferPointer<Float>) {
        tag(field, wireType: 2)
        let n = values.count * 4
        rawVarint(UInt64(n))
        switch mode {
        case .counting:
            count += n
        case .memory, .stream:
            #if _endian(little)
            if case let .stream(sink, chunkSize) = mode, n >= chunkSize {
                flush()
                count += n
                guard failure == nil else { return }
                do { try sink(UnsafeRawBufferPointer(values)) } catch { failure = error }
                return
            }
            append(UnsafeRawBufferPointer(values))
            #else
            var chunk: [UInt8] = []
            chunk.reserveCapacity(min(n, 1 << 16))
            for v in values {
                withUnsafeBytes(of: v.bitPattern.littleEndian) { chunk.append(contentsOf: $0) }
                if chunk.count >= 1 << 16 { append(chunk); chunk.removeAll(keepingCapacity: true) }
            }
            append(chunk)
            #endif
        }
    }

    /// A nested message (length-delimited): `body` writes its fields. The body runs twice,
    /// first to count the size, so it must write the same fields both times.
    public mutating func message(_ field: Int, _ body: (inout ProtobufWriter) -> Void) {
        let size = Self.encodedSize(body)
        tag(field, wireType: 2)
        rawVarint(UInt64(size))
        let before = count
        body(&self)
        fcnCheck(count - before == size, "ProtobufWriter.message",
                 "field \(field): the body wrote \(count - before) bytes after counting \(size); it must write the same fields both times")
    }

    // MARK: Wire primitives

    /// The size of `value` as a varint: 1 ... 10 bytes.
    public static func varintSize(_ value: UInt64) -> Int {
        var v = value, n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    private mutating func tag(_ field: Int, wireType: UInt64) {
        fcnCheck(field >= 1 && field <= Self.maxFieldNumber, "ProtobufWriter",
                 "field number \(field) is outside 1...\(Self.maxFieldNumber)")
        rawVarint(UInt64(field) << 3 | wireType)
    }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        var tmp: (UInt64, UInt64) = (0, 0)     // 16 bytes of scratch, enough for 10
        let n = withUnsafeMutableBytes(of: &tmp) { b -> Int in
            var i = 0
            while v >= 0x80 { b[i] = UInt8(truncatingIfNeeded: v) | 0x80; v >>= 7; i += 1 }
            b[i] = UInt8(v)
            return i + 1
        }
        withUnsafeBytes(of: &tmp) { append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    private mutating func fixed32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { append($0) }
    }

    private mutating func fixed64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { append($0) }
    }

    private mutating func append(_ data: some Collection<UInt8>) {
        count += data.count
        switch mode {
        case .counting:
            return
        case .memory:
            buffer.append(contentsOf: data)
        case let .stream(_, chunkSize):
            guard failure == nil else { return }
            buffer.append(contentsOf: data)
            if buffer.count >= chunkSize { flush() }
        }
    }

    private mutating func flush() {
        guard case let .stream(sink, _) = mode, !buffer.isEmpty else { return }
        if failure == nil {
            do { try buffer.withUnsafeBytes { try sink($0) } } catch { failure = error }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
