// The decoders' memory limit (`maxBytes`, default `defaultMaxDecodeBytes`): the bytes an
// image needs are computed from its header, before allocating, and named in the error.
// Each test works out the expected number by hand from the buffers the decoder keeps.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

@Suite struct DecodeLimitTests {
    /// The byte count in a `maxBytes` error message.
    func neededBytes(_ body: () throws -> Any) -> Int? {
        do { _ = try body(); return nil } catch FCNError.unsupported(let m) {
            guard let r = m.range(of: "needs ") else { return nil }
            return Int(m[r.upperBound...].prefix { $0.isNumber })
        } catch { return nil }
    }

    @Test func jpegMemoryLimit() throws {
        // prog_420_q50_odd: 17x13 progressive 4:2:0, 2x1 MCUs of 16x16. Planes: Y 32x16,
        // Cb and Cr 16x8 each = 768 bytes; coefficients 2 bytes per plane sample = 1536;
        // output 17 * 13 * 3 = 663 plus row buffers 3 * 17 + 8 * 9 = 123. Peak: 768 +
        // max(1536, 786) = 2304.
        let f = JPEGFixture.all[0]
        let bytes = f.bytes("jpeg/prog_420_q50_odd.jpg")
        #expect(neededBytes { try JPEG.decode(bytes, maxBytes: 2303) } == 2304)
        #expect(try JPEG.decode(bytes, maxBytes: 2304).width == 17)
        // exif_6: 33x21 baseline 4:2:0 turned to 21x33. Planes 48x32 + 2 * 24x16 = 2304;
        // output 2079, rows 3 * 33 + 8 * 17 = 235, rotated copy 2079: 6697.
        let exif6 = f.bytes("jpeg/exif_6.jpg")
        #expect(neededBytes { try JPEG.decode(exif6, maxBytes: 6696) } == 6697)
        #expect(try JPEG.decode(exif6, maxBytes: 6697).width == 21)
        #expect(neededBytes { try JPEG.decode(exif6, applyOrientation: false, maxBytes: 4617) } == 4618)
        #expect(neededBytes { try decodeImage(exif6, maxBytes: 100) } == 6697)
    }

    @Test func pngMemoryLimit() throws {
        // 600 x 400 RGB, 8-bit, not interlaced: unfiltered in place, so the peak is the
        // IDAT bytes + the inflated data (400 rows of 1 + 1800 bytes) + two row buffers.
        let big = PNG.encode(Image(width: 600, height: 400, channels: 3))
        var idat = 0, pos = 8
        while pos + 12 <= big.count {
            let len = Int(big[pos]) << 24 | Int(big[pos + 1]) << 16 | Int(big[pos + 2]) << 8 | Int(big[pos + 3])
            if big[pos + 4] == UInt8(ascii: "I") && big[pos + 5] == UInt8(ascii: "D") { idat += len }
            pos += 12 + len
        }
        let need = idat + 400 * 1801 + 2 * 1800
        #expect(neededBytes { try PNG.decode(big, maxBytes: need - 1) } == need)
        #expect(try PNG.decode(big, maxBytes: need).pixels.count == 600 * 400 * 3)
        // A 16-bit gray image keeps high bytes and full values: 1 + 2 bytes per sample on top.
        let g16 = PNG.encode(Image(width: 300, height: 200, channels: 1, pixels: [UInt8](repeating: 0, count: 60_000),
                                   samples16: [UInt16](repeating: 0, count: 60_000)))
        let n16 = try #require(neededBytes { try PNG.decode(g16, maxBytes: 10) })
        #expect(n16 >= 200 * 601 + 60_000 * 3 && n16 < 200 * 601 + 60_000 * 3 + 5_000)
        // Palette: the indices plus the RGB expansion for `decode`, not for `decodeIndexed`.
        let pal = PNG.encode(IndexedImage(width: 400, height: 300, indices: [UInt8](repeating: 1, count: 120_000), palette: vocPalette(count: 4)))
        let nDecode = try #require(neededBytes { try PNG.decode(pal, maxBytes: 10) })
        let nIndexed = try #require(neededBytes { try PNG.decodeIndexed(pal, maxBytes: 10) })
        #expect(nDecode == 120_000 * 4 + 1024 && nIndexed < nDecode && nIndexed >= 300 * 401)
    }

    /// The file that showed the problem: a 16384 x 16384 RGB PNG with about 783 KB of
    /// IDAT may inflate to 805 MB (within the 1032:1 bound). Decoding it used to hold the
    /// inflated data plus a 16-bit copy of every sample (1.6 GB): 2.4 GB. Now the estimate,
    /// computed from the header before anything is allocated, is the inflated data plus the
    /// IDAT copy, under 1 GiB; and a caller's smaller limit refuses it at once.
    @Test func pngLargeHeaderEstimate() throws {
        var ihdr: [UInt8] = [0, 0, 0x40, 0, 0, 0, 0x40, 0, 8, 2, 0, 0, 0]
        let idatBody = [UInt8](repeating: 0x55, count: 783_000)
        func chunk(_ t: String, _ b: [UInt8]) -> [UInt8] {
            let n = b.count
            var c: [UInt8] = [UInt8(n >> 24 & 255), UInt8(n >> 16 & 255), UInt8(n >> 8 & 255), UInt8(n & 255)] + Array(t.utf8) + b
            let crc = crc32(c[4...])
            c += [UInt8(crc >> 24), UInt8(crc >> 16 & 255), UInt8(crc >> 8 & 255), UInt8(crc & 255)]
            return c
        }
        let file = PNG.signature + chunk("IHDR", ihdr) + chunk("IDAT", idatBody) + chunk("IEND", [])
        let need = try #require(neededBytes { try PNG.decode(file, maxBytes: 1 << 20) })
        #expect(need == 783_000 + 16384 * (1 + 16384 * 3) + 2 * 16384 * 3)
        #expect(need < defaultMaxDecodeBytes)
        ihdr[9] = 6   // RGBA: 1.07 GB of inflated data is over the default limit
        let rgba = PNG.signature + chunk("IHDR", ihdr) + chunk("IDAT", idatBody) + chunk("IEND", [])
        #expect(neededBytes { try PNG.decode(rgba) } != nil)
    }

    @Test func ppmMemoryLimit() throws {
        let hdr = Array("P6\n100 100\n65535\n".utf8)
        let file = hdr + [UInt8](repeating: 7, count: 100 * 100 * 3 * 2)
        #expect(neededBytes { try PPM.decode(file, maxBytes: 89_999) } == 90_000)
        #expect(try PPM.decode(file, maxBytes: 90_000).samples16?.count == 30_000)
        let p5 = Array("P5 10 10 255\n".utf8) + [UInt8](repeating: 1, count: 100)
        #expect(neededBytes { try PPM.decode(p5, maxBytes: 99) } == 100)
        let path = NSTemporaryDirectory() + "fcn-ppm-limit-\(getpid()).pgm"
        try Data(p5).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(neededBytes { try readImage(path: path, maxBytes: 50) } == 100)
        #expect(try readImage(path: path).pixels == [UInt8](repeating: 1, count: 100))
    }
}
