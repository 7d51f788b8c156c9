// The protobuf writer (FCNIO) against known encodings (the examples of the protobuf
// encoding guide: 150 as 08 96 01, "testing", a nested message, packed 3 270 86942) and
// against the tests' own decoder; streaming and counting give the same bytes.
import Foundation
import Testing
@testable import FCNIO
import FCNCore

@Suite struct ProtobufWriterTests {
    @Test func knownEncodings() {
        var w = ProtobufWriter()
        w.uint64(1, 150)
        #expect(w.bytes == [0x08, 0x96, 0x01])

        w = ProtobufWriter()
        w.string(2, "testing")
        #expect(w.bytes == [0x12, 0x07] + Array("testing".utf8))

        w = ProtobufWriter()
        w.message(3) { $0.uint64(1, 150) }
        #expect(w.bytes == [0x1A, 0x03, 0x08, 0x96, 0x01])

        w = ProtobufWriter()
        w.packedInt64(4, [3, 270, 86942])
        #expect(w.bytes == [0x22, 0x06, 0x03, 0x8E, 0x02, 0x9E, 0xA7, 0x05])

        w = ProtobufWriter()
        w.int64(1, -1)                       // two's complement: ten bytes
        #expect(w.bytes == [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01])

        w = ProtobufWriter()
        w.float(5, 1)                        // 32-bit wire type, little-endian IEEE 754
        w.double(6, -2)
        w.bool(7, true)
        #expect(w.bytes == [0x2D, 0x00, 0x00, 0x80, 0x3F, 0x31, 0, 0, 0, 0, 0, 0, 0, 0xC0, 0x38, 0x01])

        w = ProtobufWriter()
        w.uint64(ProtobufWriter.maxFieldNumber, 0)   // largest tag: 5-byte varint
        #expect(w.bytes == [0xF8, 0xFF, 0xFF, 0xFF, 0x0F, 0x00])

        w = ProtobufWriter()
        w.packedInt64(1, [])                 // an empty packed field is absent
        w.packedFloat(2, [])
        #expect(w.bytes.isEmpty)
    }

    @Test func varintSizes() {
        for (v, n) in [(UInt64(0), 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (UInt64.max, 10)] {
            #expect(ProtobufWriter.varintSize(v) == n, "\(v)")
            var w = ProtobufWriter()
            w.uint64(1, v)
            #expect(w.bytes.count == 1 + n)
        }
    }

    /// A message with every kind of field, nested three deep, decoded back.
    private func sample(_ w: inout ProtobufWriter, floats: [Float]) {
        w.int(1, 8)
        w.string(2, "swift-fcn ✓")
        w.message(7) { g in
            g.message(1) { n in
                n.string(1, "x"); n.string(4, "Conv")
                n.message(5) { a in a.string(1, "pads"); a.packedInt64(8, [1, 0, 300, -2]); a.int(20, 7) }
            }
            floats.withUnsafeBufferPointer { g.floatBytes(9, $0) }
        }
        w.packedFloat(3, [1.5, -0.25])
    }

    @Test func nestedMessagesDecodeBack() throws {
        let floats = (0..<1000).map { Float($0) * 0.5 - 7 }
        var w = ProtobufWriter()
        sample(&w, floats: floats)
        #expect(ProtobufWriter.encodedSize { sample(&$0, floats: floats) } == w.bytes.count)
        #expect(w.count == w.bytes.count)

        let top = try decodeFields(w.bytes[...])
        #expect(top.map(\.number) == [1, 2, 7, 3])
        #expect(top[0].int == 8)
        #expect(top[1].string == "swift-fcn ✓")
        let graph = try decodeFields(top[2].payload)
        #expect(graph.map(\.number) == [1, 9])
        let node = try decodeFields(graph[0].payload)
        #expect(node.map(\.string).prefix(2) == ["x", "Conv"])
        let attribute = try decodeFields(node[2].payload)
        #expect(attribute[0].string == "pads")
        #expect(try decodePackedVarints(attribute[1].payload) == [1, 0, 300, -2])
        #expect(attribute[2].int == 7)
        let raw = Array(graph[1].payload)
        #expect(raw.count == 4000)
        let decoded = (0..<1000).map { k in
            Float(bitPattern: UInt32(raw[4 * k]) | UInt32(raw[4 * k + 1]) << 8 | UInt32(raw[4 * k + 2]) << 16 | UInt32(raw[4 * k + 3]) << 24)
        }
        #expect(decoded == floats)
        let packed = Array(top[3].payload)
        #expect(packed == [0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x80, 0xBE])
    }

    @Test func streamingWritesTheSameBytes() throws {
        let floats = (0..<5000).map { Float($0).squareRoot() }
        var memory = ProtobufWriter()
        sample(&memory, floats: floats)
        for chunk in [64, 100, 1 << 20] {
            var streamed: [UInt8] = []
            var calls = 0
            var w = ProtobufWriter(chunkSize: chunk) { streamed.append(contentsOf: $0); calls += 1 }
            sample(&w, floats: floats)
            try w.finish()
            #expect(streamed == memory.bytes, "chunk size \(chunk)")
            #expect(w.count == memory.bytes.count)
            if chunk == 64 { #expect(calls >= 3) }   // head, the float run handed over whole, tail
        }
    }

    @Test func sinkErrorsAreThrownByFinish() {
        struct Full: Error {}
        var calls = 0
        var w = ProtobufWriter(chunkSize: 64) { _ in calls += 1; throw Full() }
        sample(&w, floats: [Float](repeating: 1, count: 100))
        #expect(throws: Full.self) { try w.finish() }
        #expect(calls == 1)                  // nothing more is handed to a failed sink
    }
}
