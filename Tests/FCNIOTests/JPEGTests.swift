// Baseline JPEG tests against Pillow (libjpeg-turbo: islow IDCT, fancy upsampling):
//   im.save(path, "JPEG", quality=q, subsampling=s, restart_marker_blocks=n); np.array(Image.open(path))
// Files: 4:4:4, 4:2:0, 4:2:2 at quality 50/95, odd sizes (17x13, 33x21), one 64x48, gray,
// restart intervals (per block and per MCU row), optimized Huffman tables. (images/
// progressive.jpg, once refused, is now checked in JPEGPillowTests with the progressive,
// CMYK and EXIF fixtures of gen_jpeg.py.) Tolerance: the required bound is +-2 levels,
// but the decoder follows libjpeg's integer arithmetic step by step (islow IDCT, fancy
// upsampling, jdcolor tables) and the measured difference is 0 on every file, so the test
// asserts exact equality to catch any regression in those stages.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

@Suite struct JPEGTests {
    @Test(arguments: imageCases("jpeg"))
    func decodeMatchesPillow(_ c: FixtureCase) throws {
        let img = try JPEG.decode(fixtureBytes(c.string("file")))
        let expected = c.tensor("pixels")
        let d = try #require(sampleDiff(img.pixels.map { Int($0) }, width: img.width, height: img.height, channels: img.channels, expected),
                             "\(c): geometry \(img.width)x\(img.height)x\(img.channels) vs \(expected.shape)")
        print("JPEG \(c.string("file")): max abs diff \(d.max), mean \(d.mean)")
        #expect(d.max == 0, "\(c): max diff \(d.max), mean \(d.mean)")
    }

    @Test func truncatedAndCorruptThrow() throws {
        let ok = fixtureBytes("rgb420_q50.jpg")
        #expect(try JPEG.decode(ok).width == 64)
        for cut in [2, 20, 200, ok.count / 2, ok.count - 40] {
            #expect(throws: FCNError.self, "cut at \(cut)") { try JPEG.decode(Array(ok.prefix(cut))) }
        }
        #expect(throws: FCNError.self) { try JPEG.decode([0xFF, 0xD8, 0xFF, 0xD9]) }
        #expect(throws: FCNError.self) { try JPEG.decode([0x00, 0x01]) }
        // Missing EOI after complete data is accepted (as libjpeg does with a warning).
        let noEOI = Array(ok.prefix(ok.count - 2))
        #expect(try JPEG.decode(noEOI) == JPEG.decode(ok))
    }

    @Test func decodeImageDispatchesAndTensor() throws {
        let img = try decodeImage(fixtureBytes("gray_q90.jpg"))
        #expect(img.channels == 1 && img.width == 64 && img.height == 48)
        let t = img.tensor(scale: 1.0 / 255, batch: true)
        #expect(t.shape == [1, 1, 48, 64])
        #expect(abs(t[0, 0, 5, 7] - Float(img[x: 7, y: 5, c: 0]) / 255) < 1e-6)
        #expect(Image(tensor: t, scale: 1.0 / 255) == img)
        let rgb = try JPEG.decode(fixtureBytes("rgb444_q95.jpg"))
        #expect(Image(tensor: rgb.tensor()) == rgb)
        var bad = rgb.tensor()
        bad.withUnsafeMutableBufferPointer { $0[0] = -5; $0[1] = 300; $0[2] = 7.5; $0[3] = .nan }
        let clamped = Image(tensor: bad)
        #expect(clamped.pixels[0] == 0 && clamped.pixels[3] == 255 && clamped.pixels[6] == 8 && clamped.pixels[9] == 0)
        #expect(throws: FCNError.self) { try decodeImage([1, 2, 3]) }
    }
}
