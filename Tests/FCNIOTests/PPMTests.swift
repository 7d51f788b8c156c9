// PGM / PPM tests: binary files written by Pillow (im.save(path, "PPM")) and decoded by it;
// ASCII files with comments and a 16-bit file with maxval 1000 written by gen_images.py
// (expected = the written values, pixels rescaled as round(v * 255 / maxval)). Exact match.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

@Suite struct PPMTests {
    @Test(arguments: imageCases("ppm"))
    func decodeMatches(_ c: FixtureCase) throws {
        let img = try PPM.decode(fixtureBytes(c.string("file")))
        let d = sampleDiff(img.pixels.map { Int($0) }, width: img.width, height: img.height, channels: img.channels, c.tensor("pixels"))
        #expect(d?.max == 0, "\(c): \(String(describing: d))")
        if c.has("samples16") {
            let s = try #require(img.samples16)
            #expect(sampleDiff(s.map { Int($0) }, width: img.width, height: img.height, channels: 1, c.tensor("samples16"))?.max == 0)
        }
    }

    @Test func roundTrip() throws {
        for ch in [1, 3] {
            let img = texturedImage(width: 13, height: 6, channels: ch, seed: 4)
            #expect(try PPM.decode(PPM.encode(img)) == img)
            let s16 = img.pixels.map { UInt16($0) * 257 &+ 3 }
            let wide = Image(width: 13, height: 6, channels: ch, pixels: img.pixels, samples16: s16)
            let back = try PPM.decode(PPM.encode(wide))
            #expect(back.samples16 == s16)
        }
        // Alpha is dropped.
        let rgba = texturedImage(width: 5, height: 4, channels: 4, seed: 5)
        #expect(try PPM.decode(PPM.encode(rgba)) == rgba.rgb())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-\(UUID().uuidString).pgm").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let g = texturedImage(width: 3, height: 2, channels: 1, seed: 6)
        try PPM.write(g, to: path)
        #expect(try PPM.read(path: path) == g)
    }

    @Test func headersAndErrors() throws {
        let img = try PPM.decode(Array("P2\n#c1\n 2 #c2\n2\n#c3\n 4\n0 1\n2 4".utf8))
        #expect(img.width == 2 && img.height == 2 && img.pixels == [0, 64, 128, 255])
        #expect(throws: FCNError.self) { try PPM.decode(Array("P5\n2 2\n255\n\u{1}\u{2}\u{3}".utf8)) }  // short
        #expect(throws: FCNError.self) { try PPM.decode(Array("P5\n2 2\n0\n".utf8)) }                    // maxval 0
        #expect(throws: FCNError.self) { try PPM.decode(Array("P3\n1 1\n255\n1 2".utf8)) }               // too few samples
        #expect(throws: FCNError.self) { try PPM.decode(Array("P6\n99999 99999\n255\n".utf8)) }
        #expect(throws: FCNError.self) { try PPM.decode(Array("P4\n1 1\n\0".utf8)) }
    }
}
