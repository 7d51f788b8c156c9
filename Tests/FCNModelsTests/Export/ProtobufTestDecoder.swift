// A small protobuf decoder for the tests (independent of the writer), and the ONNX
// messages read back with it: enough of ModelProto to check what the exporter wrote.
import Foundation
@testable import FCNCore

/// One decoded field: its number and either a varint / fixed value or a byte payload.
struct DecodedField {
    let number: Int
    let wireType: Int
    let value: UInt64
    let payload: ArraySlice<UInt8>
}

enum TestDecodeError: Error { case truncated(Int), badWireType(Int, Int), badVarint(Int) }

/// Splits `bytes` into its fields (wire types 0, 1, 2, 5), in order.
func decodeFields(_ bytes: ArraySlice<UInt8>) throws -> [DecodedField] {
    var out: [DecodedField] = []
    var i = bytes.startIndex
    func varint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard i < bytes.endIndex else { throw TestDecodeError.truncated(i) }
            guard shift < 64 else { throw TestDecodeError.badVarint(i) }
            let b = bytes[i]; i += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }
    func fixed(_ n: Int) throws -> UInt64 {
        guard bytes.endIndex - i >= n else { throw TestDecodeError.truncated(i) }
        var v: UInt64 = 0
        for k in 0..<n { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
        i += n
        return v
    }
    while i < bytes.endIndex {
        let tag = try varint()
        let number = Int(tag >> 3), wire = Int(tag & 7)
        switch wire {
        case 0: out.append(DecodedField(number: number, wireType: 0, value: try varint(), payload: []))
        case 1: out.append(DecodedField(number: number, wireType: 1, value: try fixed(8), payload: []))
        case 5: out.append(DecodedField(number: number, wireType: 5, value: try fixed(4), payload: []))
        case 2:
            let n = Int(try varint())
            guard bytes.endIndex - i >= n else { throw TestDecodeError.truncated(i) }
            out.append(DecodedField(number: number, wireType: 2, value: UInt64(n), payload: bytes[i..<(i + n)]))
            i += n
        default: throw TestDecodeError.badWireType(wire, i)
        }
    }
    return out
}

/// The varints of a packed repeated field.
func decodePackedVarints(_ bytes: ArraySlice<UInt8>) throws -> [Int64] {
    var out: [Int64] = []
    var i = bytes.startIndex
    while i < bytes.endIndex {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard i < bytes.endIndex else { throw TestDecodeError.truncated(i) }
            let b = bytes[i]; i += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
        }
        out.append(Int64(bitPattern: v))
    }
    return out
}

extension DecodedField {
    var string: String { String(decoding: payload, as: UTF8.self) }
    var int: Int { Int(Int64(bitPattern: value)) }
}

/// The parts of an ONNX ModelProto the tests look at (field numbers from onnx.proto).
struct DecodedONNXModel {
    struct Attribute { var name = "", type = 0, i = 0, f: Float = 0, s = "", ints: [Int] = [] }
    struct Node { var inputs: [String] = [], outputs: [String] = [], name = "", opType = "", attributes: [String: Attribute] = [:] }
    struct Initializer { var name = "", dims: [Int] = [], dataType = 0, raw: [UInt8] = [], int64s: [Int64] = [] }
    struct ValueInfo { var name = ""; var elemType = 0; var dims: [String] = [] }   // "7" or "height"

    var irVersion = 0, producer = ""
    var opsets: [(domain: String, version: Int)] = []
    var metadata: [String: String] = [:]
    var graphName = "", docString = ""
    var nodes: [Node] = []
    var initializers: [Initializer] = []
    var inputs: [ValueInfo] = [], outputs: [ValueInfo] = []

    init(_ bytes: [UInt8]) throws {
        for f in try decodeFields(bytes[...]) {
            switch f.number {
            case 1: irVersion = f.int
            case 2: producer = f.string
            case 7: try readGraph(f.payload)
            case 8:
                var domain = "", version = 0
                for g in try decodeFields(f.payload) { if g.number == 1 { domain = g.string } else if g.number == 2 { version = g.int } }
                opsets.append((domain, version))
            case 14:
                var key = "", value = ""
                for g in try decodeFields(f.payload) { if g.number == 1 { key = g.string } else if g.number == 2 { value = g.string } }
                metadata[key] = value
            default: break
            }
        }
    }

    private mutating func readGraph(_ bytes: ArraySlice<UInt8>) throws {
        for f in try decodeFields(bytes) {
            switch f.number {
            case 1: nodes.append(try Self.node(f.payload))
            case 2: graphName = f.string
            case 5: initializers.append(try Self.initializer(f.payload))
            case 10: docString = f.string
            case 11: inputs.append(try Self.valueInfo(f.payload))
            case 12: outputs.append(try Self.valueInfo(f.payload))
            default: break
            }
        }
    }

    private static func node(_ bytes: ArraySlice<UInt8>) throws -> Node {
        var n = Node()
        for f in try decodeFields(bytes) {
            switch f.number {
            case 1: n.inputs.append(f.string)
            case 2: n.outputs.append(f.string)
            case 3: n.name = f.string
            case 4: n.opType = f.string
            case 5:
                var a = Attribute()
                for g in try decodeFields(f.payload) {
                    switch g.number {
                    case 1: a.name = g.string
                    case 2: a.f = Float(bitPattern: UInt32(g.value))
                    case 3: a.i = g.int
                    case 4: a.s = g.string
                    case 8: a.ints += g.wireType == 2 ? try decodePackedVarints(g.payload).map { Int($0) } : [g.int]
                    case 20: a.type = g.int
                    default: break
                    }
                }
                n.attributes[a.name] = a
            default: break
            }
        }
        return n
    }

    private static func initializer(_ bytes: ArraySlice<UInt8>) throws -> Initializer {
        var t = Initializer()
        for f in try decodeFields(bytes) {
            switch f.number {
            case 1: t.dims += f.wireType == 2 ? try decodePackedVarints(f.payload).map { Int($0) } : [f.int]
            case 2: t.dataType = f.int
            case 7: t.int64s += f.wireType == 2 ? try decodePackedVarints(f.payload) : [Int64(f.int)]
            case 8: t.name = f.string
            case 9: t.raw = Array(f.payload)
            default: break
            }
        }
        return t
    }

    private static func valueInfo(_ bytes: ArraySlice<UInt8>) throws -> ValueInfo {
        var v = ValueInfo()
        for f in try decodeFields(bytes) {
            if f.number == 1 { v.name = f.string }
            guard f.number == 2 else { continue }
            for t in try decodeFields(f.payload) where t.number == 1 {            // TypeProto.tensor_type
                for s in try decodeFields(t.payload) {
                    if s.number == 1 { v.elemType = s.int }
                    guard s.number == 2 else { continue }
                    for d in try decodeFields(s.payload) where d.number == 1 {   // TensorShapeProto.dim
                        for x in try decodeFields(d.payload) {
                            if x.number == 1 { v.dims.append(String(x.int)) } else if x.number == 2 { v.dims.append(x.string) }
                        }
                    }
                }
            }
        }
        return v
    }
}

extension DecodedONNXModel.Initializer {
    /// The float32 raw data as a tensor of `dims`.
    var tensor: Tensor {
        let n = raw.count / 4
        var values = [Float](repeating: 0, count: n)
        for k in 0..<n {
            let b = UInt32(raw[4 * k]) | UInt32(raw[4 * k + 1]) << 8 | UInt32(raw[4 * k + 2]) << 16 | UInt32(raw[4 * k + 3]) << 24
            values[k] = Float(bitPattern: b)
        }
        return Tensor(shape: dims, scalars: values)
    }
}
