// PNG and zlib tests against Pillow (fixtures from gen_images.py; Pillow decodes each file
// after it was written by Pillow itself or by the script's own writer (2/4-bit gray, 16-bit
// RGB/RGBA/LA, Adam7, all five filters, two IDAT chunks, tRNS)). PNG must match exactly.
//   im = Image.open(path); np.array(im.convert("RGB" / "RGBA" / "L"))  -> "pixels"
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

@Suite struct PNGTests {
    @Test(arguments: imageCases("png"))
    func decodeMatchesPillow(_ c: FixtureCase) throws {
        let bytes = fixtureBytes(c.string("file"))
        let img = try PNG.decode(bytes)
        let expected = c.tensor("pixels")
        let d = sampleDiff(img.pixels.map { Int($0) }, width: img.width, height: img.height, channels: img.channels, expected)
        #expect(d != nil, "\(c): geometry \(img.width)x\(img.height)x\(img.channels) vs \(expected.shape)")
        #expect(d?.max == 0, "\(c): max diff \(d?.max ?? -1)")
        if c.has("samples16") {
            let s = try #require(img.samples16, "\(c): no 16-bit samples")
            #expect(sampleDiff(s.map { Int($0) }, width: img.width, height: img.height, channels: img.channels, c.tensor("samples16"))?.max == 0)
        } else {
            #expect(img.samples16 == nil)
        }
        if c.has("indices") {
            let idx = try PNG.decodeIndexed(bytes)
            #expect(idx.indices.map { Float($0) } == c.tensor("indices").scalars, "\(c): indices differ")
            let pal = c.tensor("palette")
            #expect(idx.palette.count == pal.shape[0])
            #expect(idx.palette.flatMap { [Float($0.r), Float($0.g), Float($0.b)] } == pal.scalars)
        }
    }

    @Test func vocLabelKeepsClassIds() throws {
        let label = try PNG.decodeIndexed(fixtureBytes("voc_label.png"))
        #expect(Set(label.indices) == [0, 7, 15, 20, 255])
        #expect(Array(label.palette.prefix(21)) == vocPalette(count: 21))
        let t = label.labelTensor()
        #expect(t.shape == [21, 33])
        #expect(t[10, 10] == 15)
        // RGB view goes through the palette.
        let rgb = label.rgb()
        #expect(rgb.channels == 3 && rgb[x: 10, y: 10, c: 0] == 192 && rgb[x: 10, y: 10, c: 1] == 128)
        let tensor = try readLabelTensor(path: fixturesDirectory + "/images/voc_label.png")
        #expect(tensor.scalars == t.scalars)
    }

    @Test func vocPaletteFormula() {
        let p = vocPalette()
        #expect(p.count == 256)
        #expect(p[0] == PaletteColor(0, 0, 0))
        #expect(p[1] == PaletteColor(128, 0, 0))
        #expect(p[2] == PaletteColor(0, 128, 0))
        #expect(p[3] == PaletteColor(128, 128, 0))
        #expect(p[4] == PaletteColor(0, 0, 128))
        #expect(p[15] == PaletteColor(192, 128, 128))
        #expect(p[20] == PaletteColor(0, 64, 128))
        #expect(p[255] == PaletteColor(224, 224, 192))
    }

    @Test(arguments: [(1, 1), (17, 13), (33, 21), (64, 48), (3, 100)])
    func roundTripAllLayouts(_ size: (Int, Int)) throws {
        let (w, h) = size
        for ch in 1...4 {
            let img = texturedImage(width: w, height: h, channels: ch, seed: UInt64(w * 100 + ch))
            for level in [0, 1, 6, 9] {
                let back = try PNG.decode(PNG.encode(img, level: level))
                #expect(back == img, "\(w)x\(h)x\(ch) level \(level)")
            }
            // 16-bit.
            var rng = TestRNG(seed: 9)
            let s16 = (0..<(w * h * ch)).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
            let wide = Image(width: w, height: h, channels: ch, pixels: s16.map { UInt8($0 >> 8) }, samples16: s16)
            #expect(try PNG.decode(PNG.encode(wide)) == wide, "16-bit \(w)x\(h)x\(ch)")
        }
        // Palette with the VOC colours, including index 255.
        var rng = TestRNG(seed: 3)
        let idx = IndexedImage(width: w, height: h, indices: (0..<(w * h)).map { _ in [0, 1, 15, 20, 255][rng.int(5)] },
                               palette: vocPalette(count: 21))
        let back = try PNG.decodeIndexed(PNG.encode(idx))
        #expect(back.indices == idx.indices)
        #expect(Array(back.palette.prefix(21)) == idx.palette && back.palette.count == max(21, Int(idx.indices.max()!) + 1))
        let withAlpha = IndexedImage(width: w, height: h, indices: idx.indices, palette: vocPalette(), alpha: [0, 100, 200])
        let backA = try PNG.decodeIndexed(PNG.encode(withAlpha))
        #expect(backA == withAlpha)
        #expect(try PNG.decode(PNG.encode(withAlpha)) == withAlpha.rgb())
    }

    @Test func compressesSmoothImages() throws {
        let img = texturedImage(width: 64, height: 48, channels: 3, seed: 1)
        let smooth = Image(width: 64, height: 48, channels: 3, pixels: (0..<(64 * 48 * 3)).map { UInt8(($0 / 3) % 64) })
        let a = PNG.encode(smooth), b = PNG.encode(smooth, level: 0)
        #expect(a.count * 10 < b.count, "compressed \(a.count) vs stored \(b.count)")
        #expect(PNG.encode(img).count < PNG.encode(img, level: 0).count)
    }

    @Test func atomicFileWrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.png").path
        let img = texturedImage(width: 9, height: 7, channels: 3, seed: 2)
        try PNG.write(img, to: path)
        try PNG.write(img.rgb(), to: path)   // overwrite
        #expect(try PNG.read(path: path) == img)
        #expect(try readImage(path: path) == img)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["a.png"])
        let t = try readImageTensor(path: path)
        #expect(t.shape == [3, 7, 9] && t[1, 2, 3] == Float(img[x: 3, y: 2, c: 1]))
        #expect(throws: FCNError.self) { try PNG.write(img, to: dir.path + "/missing/dir/b.png") }
    }

    @Test func corruptFilesThrow() throws {
        var bytes = fixtureBytes("ct2_8.png")
        bytes[40] ^= 0x10   // inside IDAT: CRC mismatch
        #expect(throws: FCNError.self) { try PNG.decode(bytes) }
        let ok = fixtureBytes("ct2_8.png")
        #expect(throws: FCNError.self) { try PNG.decode(Array(ok.prefix(ok.count - 20))) }
        #expect(throws: FCNError.mismatch("PNG: decodeIndexed needs a palette or <= 8-bit gray image, got colour type 2 at 8 bits")) {
            try PNG.decodeIndexed(ok)
        }
        // A header claiming 2^30 pixels is refused before allocating.
        var ihdr: [UInt8] = [0, 0, 0x80, 0, 0, 0, 0x80, 0, 8, 2, 0, 0, 0]
        var huge = PNG.signature + PNG.chunk("IHDR", ihdr) + PNG.chunk("IEND", [])
        do { _ = try PNG.decode(huge); Issue.record("huge image accepted") } catch let e as FCNError {
            guard case .unsupported(let m) = e else { Issue.record("wrong error \(e)"); return }
            #expect(m.contains("exceeds the limit"))
        }
        // Valid size, but far too little data: refused before inflating.
        ihdr = [0, 0, 0x10, 0, 0, 0, 0x10, 0, 8, 2, 0, 0, 0]
        huge = PNG.signature + PNG.chunk("IHDR", ihdr) + PNG.chunk("IDAT", Zlib.compress([0, 1, 2])) + PNG.chunk("IEND", [])
        #expect(throws: FCNError.self) { try PNG.decode(huge) }
    }
}

@Suite struct ZlibTests {
    @Test func checksums() {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
        #expect(adler32([UInt8](repeating: 255, count: 100_000)) == adler32(Array([UInt8](repeating: 255, count: 100_000))))
    }

    @Test func decodesZlibStreams() throws {
        // zlib.compress(b'hello hello hello hello, swift-fcn! ' * 3, 9): a fixed-Huffman block.
        let fixed: [UInt8] = [120, 218, 203, 72, 205, 201, 201, 87, 200, 64, 39, 117, 20, 138, 203, 51, 211, 74, 116, 211, 146, 243, 20, 49, 101, 201, 84, 3, 0, 75, 76, 38, 107]
        let text = String(repeating: "hello hello hello hello, swift-fcn! ", count: 3)
        #expect(try Zlib.decompress(fixed) == Array(text.utf8))
        var bad = fixed; bad[bad.count - 1] ^= 1
        #expect(throws: FCNError.self) { try Zlib.decompress(bad) }
        #expect(throws: FCNError.self) { try Zlib.decompress(fixed, maxOutput: 50) }
    }

    @Test(arguments: [0, 1, 2, 6, 9])
    func roundTrip(_ level: Int) throws {
        var rng = TestRNG(seed: UInt64(level))
        let inputs: [[UInt8]] = [
            [], [7], Array("abcabcabcabcabcabcabcabc".utf8),
            (0..<70_000).map { _ in rng.byte() },                       // incompressible, > 64 KiB stored
            (0..<100_000).map { UInt8(($0 / 7) % 13) },                    // runs, long matches
            [UInt8](repeating: 0, count: 300_000),                         // 258-byte matches, many blocks
            (0..<50_000).map { i in i % 1000 < 500 ? UInt8(i % 251) : rng.byte() },
        ]
        for x in inputs {
            let z = Zlib.compress(x, level: level)
            #expect(try Zlib.decompress(z) == x, "level \(level), \(x.count) bytes")
            #expect(try Zlib.inflateRaw(Zlib.deflateRaw(x, level: level)) == x)
            if level > 0 && x.count == 300_000 { #expect(z.count < 2000, "zeros compress to \(z.count)") }
        }
    }
}

/// Misuse of the image types stops with a message naming the call (error rule).
@Suite struct ImageMisuseTests {
    @Test func wrongPixelCount() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Image(width: 2, height: 2, channels: 3, pixels: [1, 2, 3])
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Image: pixels has 3 bytes but 2x2x3 needs 12"))
    }

    @Test func badTensorShape() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Image(tensor: Tensor.zeros([2, 5, 3, 3]))
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("Image(tensor:): expected [C, H, W] or [1, C, H, W], got [2, 5, 3, 3]"))
    }

    @Test func paletteCount() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = vocPalette(count: 300)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("vocPalette: count must be 1...256, got 300"))
    }
}
