// Progressive, CMYK/YCCK and EXIF-oriented JPEGs (synthetic and real photos) against
// Pillow; EXIF parsing and the orientation transforms.
//
// Fixtures: Tests/Fixtures/gen_jpeg.py writes Fixtures/jpeg/*.jpg, Pillow's
// decoded pixels as Fixtures/jpeg/expected/*.png (`ImageOps.exif_transpose` unless the
// case opts out, CMYK converted with `convert("RGB")`) and Fixtures/jpeg/cases.json.
// The expected PNGs are read with this library's PNG decoder (checked against Pillow in
// PNGTests). The required bound is 1 level per sample; the decoder follows libjpeg's
// integer arithmetic and Pillow's CMYK conversion step by step and the measured difference
// is 0 on every case, so the test asserts exact equality to catch any regression.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

/// One entry of Fixtures/jpeg/cases.json.
struct JPEGFixture: Codable, Sendable, CustomStringConvertible {
    var file: String
    var expected: String?
    var applyOrientation: Bool?
    var exifOrientation: Int?
    var error: String?
    var message: String?
    var note: String

    var description: String { "\(file) (\(note))" + (applyOrientation == false ? " raw" : "") }

    static let all: [JPEGFixture] = {
        struct Manifest: Codable { var cases: [JPEGFixture] }
        let path = fixturesDirectory + "/jpeg/cases.json"
        guard let d = FileManager.default.contents(atPath: path), let m = try? JSONDecoder().decode(Manifest.self, from: d) else {
            fatalError("cannot read \(path)")
        }
        return m.cases
    }()
    static var decoding: [JPEGFixture] { all.filter { $0.expected != nil } }
    static var refused: [JPEGFixture] { all.filter { $0.error != nil } }

    func bytes(_ name: String) -> [UInt8] {
        let path = fixturesDirectory + "/" + name
        guard let d = FileManager.default.contents(atPath: path) else { fatalError("missing fixture \(path)") }
        return [UInt8](d)
    }
}

/// Max |a - b| over all samples, or nil if the geometry differs.
func maxSampleDiff(_ a: Image, _ b: Image) -> Int? {
    guard a.width == b.width, a.height == b.height, a.channels == b.channels else { return nil }
    var m = 0
    for i in 0..<a.pixels.count { m = max(m, abs(Int(a.pixels[i]) - Int(b.pixels[i]))) }
    return m
}

@Suite struct JPEGPillowTests {
    @Test(arguments: JPEGFixture.decoding)
    func decodeMatchesPillow(_ c: JPEGFixture) throws {
        let bytes = c.bytes(c.file)
        let img = try JPEG.decode(bytes, applyOrientation: c.applyOrientation ?? true)
        let expected = try PNG.decode(c.bytes(c.expected!))
        let d = try #require(maxSampleDiff(img, expected),
                             "\(c): geometry \(img.width)x\(img.height)x\(img.channels) vs \(expected.width)x\(expected.height)x\(expected.channels)")
        print("JPEG vs Pillow \(c): \(img.width)x\(img.height)x\(img.channels), max diff \(d)")
        #expect(d == 0, "\(c): max diff \(d)")
        #expect(JPEG.exifOrientation(bytes) == (c.exifOrientation ?? 1), "\(c)")
        // The dispatcher and the file reader pass the options through.
        #expect(try decodeImage(bytes, applyOrientation: c.applyOrientation ?? true) == img)
    }

    @Test(arguments: JPEGFixture.refused)
    func refusedWithClearError(_ c: JPEGFixture) {
        do {
            _ = try JPEG.decode(c.bytes(c.file))
            Issue.record("\(c) decoded")
        } catch let e as FCNError {
            switch (e, c.error) {
            case (.unsupported(let m), "unsupported"), (.invalidFormat(let m), "invalidFormat"):
                #expect(m.contains(c.message!), "\(c): message '\(m)'")
            default: Issue.record("\(c): expected \(c.error!), got \(e)")
            }
        } catch { Issue.record("\(c): unexpected error \(error)") }
    }

    /// Every orientation against the stored image: `transposed` moves pixel (x, y) where
    /// the EXIF definition says, checked on an image with distinct pixel values.
    @Test func transposedMovesPixelsByTheTable() {
        let w = 3, h = 2
        let img = Image(width: w, height: h, channels: 1, pixels: (0..<(w * h)).map { UInt8($0) })
        // Expected rows of the result, from the TIFF orientation definitions.
        let expected: [Int: [[UInt8]]] = [
            1: [[0, 1, 2], [3, 4, 5]], 2: [[2, 1, 0], [5, 4, 3]], 3: [[5, 4, 3], [2, 1, 0]], 4: [[3, 4, 5], [0, 1, 2]],
            5: [[0, 3], [1, 4], [2, 5]], 6: [[3, 0], [4, 1], [5, 2]], 7: [[5, 2], [4, 1], [3, 0]], 8: [[2, 5], [1, 4], [0, 3]],
        ]
        for (o, rows) in expected {
            let t = img.transposed(exifOrientation: o)
            #expect(t.height == rows.count && t.width == rows[0].count, "orientation \(o)")
            #expect(t.pixels == rows.flatMap { $0 }, "orientation \(o): \(t.pixels)")
        }
        #expect(img.transposed(exifOrientation: 0) == img && img.transposed(exifOrientation: 9) == img)
        let rgb16 = Image(width: 2, height: 1, channels: 3, pixels: [1, 2, 3, 4, 5, 6], samples16: [1, 2, 3, 4, 5, 6])
        #expect(rgb16.transposed(exifOrientation: 6).samples16 == [1, 2, 3, 4, 5, 6])
        #expect(rgb16.transposed(exifOrientation: 2).samples16 == [4, 5, 6, 1, 2, 3])
    }

    /// The dataset reader keeps stored pixels (labels carry no orientation); `readImage`
    /// turns the photo upright.
    @Test func datasetReaderKeepsStoredOrientation() throws {
        let path = fixturesDirectory + "/jpeg/exif_6.jpg"
        #expect(try readImageTensor(path: path).shape == [3, 21, 33])
        #expect(try readImageTensor(path: path, applyOrientation: true).shape == [3, 33, 21])
        #expect(try readImage(path: path).width == 21)
        #expect(try readImage(path: path, applyOrientation: false).width == 33)
    }

    @Test func exifParsingEdgeCases() {
        // TIFF with the orientation as the only IFD0 entry; `order` "II" or "MM".
        func exif(_ order: String, type: Int, count: Int, value: [UInt8], extra: [UInt8] = []) -> [UInt8] {
            let le = order == "II"
            func u16(_ v: Int) -> [UInt8] { le ? [UInt8(v & 255), UInt8(v >> 8)] : [UInt8(v >> 8), UInt8(v & 255)] }
            func u32(_ v: Int) -> [UInt8] { le ? u16(v & 0xFFFF) + u16(v >> 16) : u16(v >> 16) + u16(v & 0xFFFF) }
            return Array("Exif\0\0".utf8) + Array(order.utf8) + u16(42) + u32(8) + u16(1)
                + u16(0x0112) + u16(type) + u32(count) + value + u32(0) + extra
        }
        #expect(exifOrientationTag(exif("II", type: 3, count: 1, value: [6, 0, 0, 0])) == 6)
        #expect(exifOrientationTag(exif("MM", type: 3, count: 1, value: [0, 8, 0, 0])) == 8)
        #expect(exifOrientationTag(exif("MM", type: 4, count: 1, value: [0, 0, 0, 3])) == 3)
        #expect(exifOrientationTag(exif("II", type: 3, count: 2, value: [5, 0, 7, 0])) == 5)   // first of two
        // RATIONAL 6/1 at offset 26 (after the IFD): Pillow counts it as 6.
        #expect(exifOrientationTag(exif("MM", type: 5, count: 1, value: [0, 0, 0, 26], extra: [0, 0, 0, 6, 0, 0, 0, 1])) == 6)
        #expect(exifOrientationTag(exif("MM", type: 5, count: 1, value: [0, 0, 0, 26], extra: [0, 0, 0, 6, 0, 0, 0, 4])) == nil)
        #expect(exifOrientationTag(exif("MM", type: 5, count: 1, value: [0, 0, 0, 99])) == nil)   // offset past the end
        #expect(exifOrientationTag(exif("II", type: 2, count: 1, value: [0x36, 0, 0, 0])) == nil) // ASCII "6"
        #expect(exifOrientationTag(exif("II", type: 3, count: 0, value: [6, 0, 0, 0])) == nil)
        #expect(exifOrientationTag(Array("Exif\0\0XX".utf8) + [42, 0, 8, 0, 0, 0]) == nil)
        #expect(exifOrientationTag(Array(exif("II", type: 3, count: 1, value: [6, 0, 0, 0]).prefix(20))) == nil)
        // Orientation 1 in EXIF wins over XMP; XMP is used only without an EXIF value.
        let xmp = Array("<x tiff:Orientation>7</x>".utf8)
        #expect(jpegOrientation(exif: exif("II", type: 3, count: 1, value: [1, 0, 0, 0]), xmp: xmp) == 1)
        #expect(jpegOrientation(exif: nil, xmp: xmp) == 7)
        #expect(jpegOrientation(exif: nil, xmp: Array("tiff:Orientation=\"x\" tiff:Orientation=\"3\"".utf8)) == 3)
        #expect(jpegOrientation(exif: nil, xmp: nil) == 1)
    }

    /// APP1 after the frame header still counts (Pillow reads markers up to the first
    /// scan); the memory check is repeated for the rotated copy.
    @Test func exifAfterTheFrameHeader() throws {
        let base = JPEGFixture.all[0].bytes("jpeg/exif_1.jpg")
        let rotated = try JPEG.decode(JPEGFixture.all[0].bytes("jpeg/exif_6.jpg"))
        // Move exif_6's APP1 (right after SOI) to just before SOS.
        let src = JPEGFixture.all[0].bytes("jpeg/exif_6.jpg")
        let appLen = Int(src[4]) << 8 | Int(src[5])
        let app = Array(src[2..<(4 + appLen)])
        var rest = Array(src[0..<2]) + Array(src[(4 + appLen)...])
        let sos = try #require((0..<(rest.count - 1)).first { rest[$0] == 0xFF && rest[$0 + 1] == 0xDA })
        rest.insert(contentsOf: app, at: sos)
        #expect(try JPEG.decode(rest) == rotated)
        #expect(JPEG.exifOrientation(rest) == 6)
        #expect(try JPEG.decode(base) != rotated)
    }
}
