// A reader of the protocol buffers wire format, written for untrusted input.
//
// Encoding (protobuf "encoding" spec): a message is a sequence of fields, each a varint tag
// `field_number << 3 | wire_type` followed by a payload:
//   0 varint            1-10 bytes, 7 bits each, least significant group first
//   1 64-bit            8 bytes little-endian (fixed64, sfixed64, double)
//   2 length-delimited  a varint byte count, then that many bytes (strings, bytes, nested
//                       messages, packed repeated scalars)
//   3 start group       (deprecated) fields up to the matching end-group tag
//   4 end group
//   5 32-bit            4 bytes little-endian (fixed32, sfixed32, float)
// Field numbers are 1 ... 2^29 - 1. Fields may come in any order and repeat; a repeated
// scalar may be stored unpacked (one field per value) or packed (one length-delimited run),
// and a reader must accept both.
//
// The reader never copies: it walks a byte range of a region kept alive by its owner and
// hands out the payload's range. Every read is bounds checked against the range of the
// enclosing message; varints longer than 10 bytes, tags with wire types 6 or 7, field
// number 0, lengths past the end and unbalanced groups throw `FCNError.invalidFormat`
// naming the byte offset. Groups are skipped whole (nested groups too, at most 64 deep).

import FCNCore
/// The wire type of a protobuf field (the low three bits of its tag).
enum ProtobufWireType: UInt8, Sendable {
    case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5

    var name: String {
        switch self {
        case .varint: return "varint"
        case .fixed64: return "64-bit"
        case .lengthDelimited: return "length-delimited"
        case .startGroup: return "start-group"
        case .endGroup: return "end-group"
        case .fixed32: return "32-bit"
        }
    }
}

/// One field read by `ProtobufReader`.
struct ProtobufField {
    /// The field number (1 ... 2^29 - 1).
    let number: Int
    let wireType: ProtobufWireType
    /// The value of a varint, or the raw little-endian bits of a 64-bit or 32-bit field.
    let bits: UInt64
    /// Payload bytes (absolute offsets into the reader's buffer) of a length-delimited field
    /// or a group (the bytes between its start and end tags); empty otherwise.
    let payload: Range<Int>
    /// Offset of the field's tag, for error messages.
    let offset: Int
}

/// Walks the fields of one message inside a byte buffer.
struct ProtobufReader {
    let base: UnsafeRawPointer
    /// Current offset (absolute).
    private(set) var position: Int
    /// End of the message (absolute, exclusive).
    let end: Int

    /// Deepest nesting of groups that is skipped; deeper input is rejected.
    static let maxGroupDepth = 64

    /// A reader of the message occupying `range` of the buffer at `base`.
    init(base: UnsafeRawPointer, range: Range<Int>) {
        self.base = base
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var isAtEnd: Bool { position >= end }

    static func error(_ message: String, at offset: Int) -> FCNError {
        .invalidFormat("protobuf: \(message) at byte \(offset)")
    }

    /// Reads a varint (at most 10 bytes).
    mutating func readVarint() throws -> UInt64 {
        let start = position
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw Self.error("truncated varint", at: start) }
            let b = base.load(fromByteOffset: position, as: UInt8.self)
            position += 1
            value |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return value }
            shift += 7
            guard shift < 70 else { throw Self.error("varint longer than 10 bytes", at: start) }
        }
    }

    /// The next field, or nil at the end of the message. Groups are skipped whole and
    /// returned with their content range; an end-group tag without its start is an error.
    mutating func next() throws -> ProtobufField? {
        guard position < end else { return nil }
        let offset = position
        let (number, type) = try readTag()
        switch type {
        case .varint:
            return ProtobufField(number: number, wireType: type, bits: try readVarint(), payload: position..<position, offset: offset)
        case .fixed64:
            guard end - position >= 8 else { throw Self.error("truncated 64-bit field \(number)", at: offset) }
            let v = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt64.self))
            position += 8
            return ProtobufField(number: number, wireType: type, bits: v, payload: position..<position, offset: offset)
        case .fixed32:
            guard end - position >= 4 else { throw Self.error("truncated 32-bit field \(number)", at: offset) }
            let v = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt32.self))
            position += 4
            return ProtobufField(number: number, wireType: type, bits: UInt64(v), payload: position..<position, offset: offset)
        case .lengthDelimited:
            let n = try readVarint()
            guard n <= UInt64(end - position) else {
                throw Self.error("field \(number) declares \(n) bytes but \(end - position) remain", at: offset)
            }
            let start = position
            position += Int(n)
            return ProtobufField(number: number, wireType: type, bits: n, payload: start..<position, offset: offset)
        case .startGroup:
            let start = position
            let contentEnd = try skipGroup(number: number, depth: 1, startOffset: offset)
            return ProtobufField(number: number, wireType: type, bits: 0, payload: start..<contentEnd, offset: offset)
        case .endGroup:
            throw Self.error("end-group tag of field \(number) without a matching start", at: offset)
        }
    }

    private mutating func readTag() throws -> (Int, ProtobufWireType) {
        let offset = position
        let tag = try readVarint()
        guard tag <= UInt64(UInt32.max) else { throw Self.error("tag \(tag) exceeds 32 bits", at: offset) }
        guard let type = ProtobufWireType(rawValue: UInt8(tag & 7)) else {
            throw Self.error("invalid wire type \(tag & 7)", at: offset)
        }
        let number = Int(tag >> 3)
        guard number >= 1 else { throw Self.error("field number 0", at: offset) }
        return (number, type)
    }

    /// Skips to just past the end-group tag of `number`; returns the offset of that tag.
    private mutating func skipGroup(number: Int, depth: Int, startOffset: Int) throws -> Int {
        guard depth <= Self.maxGroupDepth else { throw Self.error("groups nested deeper than \(Self.maxGroupDepth)", at: startOffset) }
        while true {
            guard position < end else { throw Self.error("group of field \(number) is not closed", at: startOffset) }
            let tagOffset = position
            let (n, type) = try readTag()
            switch type {
            case .varint: _ = try readVarint()
            case .fixed64:
                guard end - position >= 8 else { throw Self.error("truncated 64-bit field \(n)", at: tagOffset) }
                position += 8
            case .fixed32:
                guard end - position >= 4 else { throw Self.error("truncated 32-bit field \(n)", at: tagOffset) }
                position += 4
            case .lengthDelimited:
                let len = try readVarint()
                guard len <= UInt64(end - position) else {
                    throw Self.error("field \(n) declares \(len) bytes but \(end - position) remain", at: tagOffset)
                }
                position += Int(len)
            case .startGroup:
                _ = try skipGroup(number: n, depth: depth + 1, startOffset: tagOffset)
            case .endGroup:
                guard n == number else {
                    throw Self.error("end-group tag of field \(n) inside the group of field \(number)", at: tagOffset)
                }
                return tagOffset
            }
        }
    }

    // MARK: Typed access

    /// The payload of a length-delimited field as a reader of the nested message.
    func message(_ f: ProtobufField) -> ProtobufReader { ProtobufReader(base: base, range: f.payload) }

    /// The payload of a length-delimited field as UTF-8 text (invalid sequences replaced).
    func string(_ f: ProtobufField) -> String {
        String(decoding: UnsafeRawBufferPointer(start: base + f.payload.lowerBound, count: f.payload.count), as: UTF8.self)
    }

    /// Throws unless `f` has wire type `type` (`what` names the field in the message).
    static func expect(_ f: ProtobufField, _ type: ProtobufWireType, _ what: String) throws {
        guard f.wireType == type else {
            throw error("\(what) (field \(f.number)) has wire type \(f.wireType.name), expected \(type.name)", at: f.offset)
        }
    }

    /// The values of a repeated varint field, packed or not (`what` names it in errors).
    func varints(_ f: ProtobufField, _ what: String) throws -> [UInt64] {
        switch f.wireType {
        case .varint: return [f.bits]
        case .lengthDelimited:
            var r = message(f), out: [UInt64] = []
            while !r.isAtEnd { out.append(try r.readVarint()) }
            return out
        default:
            throw Self.error("\(what) (field \(f.number)) has wire type \(f.wireType.name), expected varint or packed", at: f.offset)
        }
    }

    /// The value of a 32-bit float field.
    static func float(_ f: ProtobufField, _ what: String) throws -> Float {
        try expect(f, .fixed32, what)
        return Float(bitPattern: UInt32(truncatingIfNeeded: f.bits))
    }
}
