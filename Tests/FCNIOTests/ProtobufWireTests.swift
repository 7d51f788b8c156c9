// The protobuf wire reader on hand-made bytes: every wire type, varint limits, packed and
// unpacked repeated values, groups (nested, unbalanced, too deep) and truncation.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

/// All fields of `bytes`, read as one message.
private func fields(_ bytes: [UInt8]) throws -> [ProtobufField] {
    try bytes.withUnsafeBytes { b in
        var r = ProtobufReader(base: b.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, range: 0..<b.count)
        var out: [ProtobufField] = []
        while let f = try r.next() { out.append(f) }
        return out
    }
}

private func readError(_ bytes: [UInt8]) -> String? { errorText { _ = try fields(bytes) } }

@Suite struct ProtobufWireTests {
    @Test func readsEveryWireType() throws {
        let bytes = PB.int(1, 300) + PB.double(2, 2.5) + PB.string(3, "hé") + PB.float(5, -1.25)
            + PB.tag(6, 3) + PB.int(1, 7) + PB.tag(6, 4) + PB.int(536_870_911, 1)
        let f = try fields(bytes)
        #expect(f.map(\.number) == [1, 2, 3, 5, 6, 536_870_911])
        #expect(f.map(\.wireType) == [.varint, .fixed64, .lengthDelimited, .fixed32, .startGroup, .varint])
        #expect(f[0].bits == 300 && Double(bitPattern: f[1].bits) == 2.5 && f[3].bits == UInt64(Float(-1.25).bitPattern))
        #expect(f[2].payload.count == 3 && f[4].payload.count == 2)   // group content: one varint field
        let text = bytes.withUnsafeBytes { ProtobufReader(base: $0.baseAddress!, range: 0..<$0.count).string(f[2]) }
        #expect(text == "hé")
        #expect(try ProtobufReader.float(f[3], "x") == -1.25)
        #expect(errorText { _ = try ProtobufReader.float(f[0], "x") }?.contains("x (field 1) has wire type varint, expected 32-bit") == true)
    }

    @Test func varintsUpToTenBytes() throws {
        #expect(try fields(PB.int(1, -1))[0].bits == UInt64.max)          // ten bytes
        #expect(try fields(PB.int(1, Int(Int64.min)))[0].bits == 1 << 63)
        // An eleven-byte varint and a truncated one.
        #expect(readError([0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01])?.contains("varint longer than 10 bytes") == true)
        #expect(readError([0x08, 0x80])?.contains("truncated varint at byte 1") == true)
    }

    @Test func packedAndUnpackedRepeatedVarints() throws {
        let bytes = PB.bytes(4, PB.varint(3) + PB.varint(70000) + PB.varint(1)) + PB.int(4, 9)
        let all: [UInt64] = try bytes.withUnsafeBytes { b in
            var r = ProtobufReader(base: b.baseAddress!, range: 0..<b.count)
            var all: [UInt64] = []
            while let f = try r.next() { all += try r.varints(f, "dims") }
            return all
        }
        #expect(all == [3, 70000, 1, 9])
        // A packed run cut inside a varint.
        let cut = PB.bytes(4, [0x80])
        let e = errorText {
            try cut.withUnsafeBytes { b in
                var r = ProtobufReader(base: b.baseAddress!, range: 0..<b.count)
                let f = try r.next()!
                _ = try r.varints(f, "dims")
            }
        }
        #expect(e?.contains("truncated varint") == true)
    }

    @Test func groupsAreSkippedWholeAndChecked() throws {
        // A group with a nested group, then a field after it.
        let nested = PB.tag(9, 3) + PB.tag(10, 3) + PB.double(1, 1) + PB.tag(10, 4) + PB.string(2, "x") + PB.tag(9, 4)
        let f = try fields(nested + PB.int(3, 5))
        #expect(f.map(\.number) == [9, 3] && f[1].bits == 5)
        #expect(readError(PB.tag(9, 4))?.contains("end-group tag of field 9 without a matching start at byte 0") == true)
        #expect(readError(PB.tag(9, 3) + PB.int(1, 1))?.contains("group of field 9 is not closed") == true)
        #expect(readError(PB.tag(9, 3) + PB.tag(8, 4))?.contains("end-group tag of field 8 inside the group of field 9") == true)
        let deep = (0..<70).flatMap { PB.tag($0 + 1, 3) } + (0..<70).reversed().flatMap { PB.tag($0 + 1, 4) }
        #expect(readError(deep)?.contains("groups nested deeper than 64") == true)
        let ok = (0..<64).flatMap { PB.tag($0 + 1, 3) } + (0..<64).reversed().flatMap { PB.tag($0 + 1, 4) }
        #expect(try fields(ok).count == 1)
    }

    @Test func malformedTagsAndLengths() {
        #expect(readError([0x0E])?.contains("invalid wire type 6") == true)
        #expect(readError([0x0F])?.contains("invalid wire type 7") == true)
        #expect(readError([0x00])?.contains("field number 0") == true)
        #expect(readError(PB.varint(1 << 35))?.contains("exceeds 32 bits") == true)
        #expect(readError(PB.tag(1, 2) + PB.varint(5) + [1, 2])?.contains("field 1 declares 5 bytes but 2 remain") == true)
        #expect(readError(PB.tag(1, 2) + PB.varint(UInt64.max))?.contains("declares") == true)
        #expect(readError(PB.tag(1, 1) + [1, 2, 3])?.contains("truncated 64-bit field 1") == true)
        #expect(readError(PB.tag(1, 5) + [1, 2, 3])?.contains("truncated 32-bit field 1") == true)
        #expect(errorText { _ = try fields([]) } == nil)
    }

    @Test func nestedMessagesStayInsideTheirParent() throws {
        // The inner field claims 3 bytes, but its parent's payload holds only 1 more; the
        // parent's next field is intact.
        let outer = PB.bytes(7, PB.tag(1, 2) + PB.varint(3) + [0xAA]) + PB.int(2, 1)
        let f = try fields(outer)
        #expect(f.map(\.number) == [7, 2])
        let e = errorText {
            try outer.withUnsafeBytes { b in
                var inner = ProtobufReader(base: b.baseAddress!, range: 0..<b.count).message(f[0])
                _ = try inner.next()
            }
        }
        #expect(e?.contains("field 1 declares 3 bytes but 1 remain at byte 2") == true)
    }
}
