// The zip reader on archives made by TestZip (stored and deflated entries, ZIP64 central
// directory fields and end records as PyTorch writes them, data descriptors, 64-byte
// alignment) and on damaged ones: every defect throws `FCNError`.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

private func archive(_ bytes: [UInt8]) throws -> ZipArchive {
    try ZipArchive(region: ByteRegion.copying(Data(bytes)), label: "t.zip")
}

private func contents(_ z: ZipArchive, _ name: String) throws -> [UInt8] {
    try z.withContents(z.entry(name)!) { Array($0) }
}

private func zipError(_ bytes: [UInt8], read name: String? = nil) -> String? {
    errorText {
        let z = try archive(bytes)
        for e in z.entries where name == nil || e.name == name { _ = try contents(z, e.name) }
    }
}

@Suite struct ZipArchiveTests {
    static let text = Array(String(repeating: "weights from anywhere ", count: 40).utf8)
    static let items = [TestZip.Item(name: "a/data.pkl", data: Array(text.prefix(100))),
                        TestZip.Item(name: "a/data/0", data: text, deflate: true),
                        TestZip.Item(name: "a/empty", data: []),
                        TestZip.Item(name: "a/é", data: [1, 2, 3], deflate: true)]

    @Test(arguments: [false, true])
    func readsStoredAndDeflatedEntries(zip64: Bool) throws {
        let bytes = TestZip.build(Self.items, zip64: zip64, comment: "a comment")
        let z = try archive(bytes)
        #expect(z.entries.map(\.name) == Self.items.map(\.name))
        for item in Self.items { #expect(try contents(z, item.name) == item.data, "\(item.name)") }
        // Stored data is 64-byte aligned and read in place.
        let e = z.entry("a/data.pkl")!
        #expect(try z.dataRange(e).lowerBound % 64 == 0 && e.method == 0)
        #expect(z.entry("a/data/0")!.method == 8 && z.entry("a/data/0")!.compressedSize < Self.text.count)
    }

    @Test func readsPythonAndTorchWrittenArchives() throws {
        // views_deflated.pth: Python's zipfile, deflate, ZIP64 local extra fields.
        let py = try ZipArchive(region: ByteRegion.mapping(path: readersDirectory + "/views_deflated.pth"), label: "py")
        #expect(py.entries.contains { $0.name == "views/data.pkl" && $0.method == 8 })
        for e in py.entries { _ = try py.withContents(e) { $0.count } }
        // views.pth: torch.save (ZIP64 end records, data descriptors, 64-byte aligned data).
        let t = try ZipArchive(region: ByteRegion.mapping(path: readersDirectory + "/views.pth"), label: "torch")
        for e in t.entries where e.name.contains("/data/") { #expect(try t.dataRange(e).lowerBound % 64 == 0) }
        #expect(try t.withContents(t.entry("views/byteorder")!) { String(decoding: $0, as: UTF8.self) } == "little")
    }

    @Test func crcSlicingMatchesTheBytewiseCRC() {
        var rng = TestRNG(seed: 9)
        for n in [0, 1, 7, 8, 9, 63, 1000] {
            let b = (0..<n).map { _ in rng.byte() }
            #expect(b.withUnsafeBytes { zipCRC32($0) } == crc32(b))
        }
        #expect(Array("123456789".utf8).withUnsafeBytes { zipCRC32($0) } == 0xCBF4_3926)
    }

    @Test func rejectsDamagedArchives() {
        let good = TestZip.build(Self.items)
        #expect(zipError([1, 2, 3])?.contains("too short for a zip archive") == true)
        #expect(zipError([UInt8](repeating: 0, count: 100))?.contains("no end of central directory") == true)
        #expect(zipError(Array(good.prefix(good.count - 30)))?.contains("no end of central directory") == true)
        // Central directory offset past the end (EOCD offset field at count - 6).
        var far = good
        far.replaceSubrange((far.count - 6)..<(far.count - 2), with: PB.le(UInt32(far.count)))
        #expect(zipError(far)?.contains("central directory") == true)
        // A flipped data byte: CRC mismatch (stored) or a corrupt deflate stream.
        var flipped = good
        flipped[130] ^= 0x20          // inside a/data.pkl's data (bytes 64..<164)
        #expect(zipError(flipped, read: "a/data.pkl")?.contains("is corrupt: CRC-32") == true)
        // Encrypted flag, unknown method, duplicate names.
        var encrypted = TestZip.build([TestZip.Item(name: "x", data: [1])], align: false)
        let cd = encrypted.count - 22 - 47
        encrypted[cd + 8] |= 1
        #expect(zipError(encrypted)?.contains("entry 'x' is encrypted") == true)
        var method = TestZip.build([TestZip.Item(name: "x", data: [1])], align: false)
        method[cd + 10] = 12; method[8] = 12
        #expect(zipError(method)?.contains("uses compression method 12") == true)
        let twice = TestZip.build([TestZip.Item(name: "x", data: [1]), TestZip.Item(name: "x", data: [2])])
        #expect(zipError(twice)?.contains("two entries are named 'x'") == true)
        // A local header whose name differs from the central directory's.
        var renamed = TestZip.build([TestZip.Item(name: "x", data: [1])], align: false)
        renamed[30] = UInt8(ascii: "y")
        #expect(zipError(renamed)?.contains("its local header names 'y'") == true)
        // A deflated entry claiming more than deflate can produce; and one whose data inflates short.
        var bomb = TestZip.build([TestZip.Item(name: "x", data: Self.text, deflate: true)], align: false)
        let bcd = bomb.count - 22 - 47
        bomb.replaceSubrange((bcd + 24)..<(bcd + 28), with: PB.le(UInt32(1 << 30)))
        #expect(zipError(bomb)?.contains("more than deflate can encode") == true)
        var short = TestZip.build([TestZip.Item(name: "x", data: Self.text, deflate: true)], align: false)
        short.replaceSubrange((bcd + 24)..<(bcd + 28), with: PB.le(UInt32(Self.text.count + 5)))
        #expect(zipError(short)?.contains("inflates to 880 bytes, its header says 885") == true)
        // Limits passed by the caller.
        #expect(errorText { let z = try archive(good); _ = try z.withContents(z.entry("a/data/0")!, limit: 10) { $0.count } }?
            .contains("over the limit of 10") == true)
    }

    @Test func zip64FieldsAreBoundsChecked() {
        var z64 = TestZip.build([TestZip.Item(name: "x", data: [1, 2, 3])], zip64: true, align: false)
        // The ZIP64 extra field's local header offset (last 8 bytes of the central entry) past the end.
        let cdEntryEnd = z64.count - 22 - 20 - 56
        var bad = z64
        bad.replaceSubrange((cdEntryEnd - 8)..<cdEntryEnd, with: PB.le(UInt64(1) << 40))
        #expect(zipError(bad)?.contains("no local header at byte 1099511627776") == true)
        bad = z64
        bad.replaceSubrange((cdEntryEnd - 8)..<cdEntryEnd, with: PB.le(UInt64.max))
        #expect(zipError(bad)?.contains("out of range") == true)
        // The locator pointing outside the file, and a multi-disk record.
        let loc = z64.count - 22 - 20
        bad = z64
        bad.replaceSubrange((loc + 8)..<(loc + 16), with: PB.le(UInt64(z64.count)))
        #expect(zipError(bad)?.contains("ZIP64 locator points to byte") == true)
        z64[loc + 4] = 1
        #expect(zipError(z64)?.contains("multi-disk archives are not supported") == true)
    }
}
