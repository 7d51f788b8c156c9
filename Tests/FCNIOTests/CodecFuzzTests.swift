// Fuzz tests: seeded random corruptions of small valid files fed to every decoder.
//
// Mutations: 1-4 byte flips, special-byte overwrites (0x00, 0xFF, 0x7F, 0x80), inserted
// runs, deleted ranges, truncation, and flip + truncate. For PNG, half the variants get
// their chunk CRCs recomputed so the corruption reaches IHDR parsing, inflate, unfiltering
// and unpacking instead of stopping at the CRC check. Counts: 20,000 PNG (plus 5,000
// decodeIndexed), 20,000 baseline JPEG, 10,000 progressive / CMYK / YCCK / EXIF JPEG (a
// third of them corrupted only before the first scan, where the EXIF, XMP, Adobe, SOF and
// table segments are), 5,000 PNM and 10,000 zlib/raw-inflate inputs (a few seconds each in
// a debug build; no single input may take more than 2 s). The tests run in-process:
// any trap or out-of-bounds access kills the run; each call must either throw an
// `FCNError` or return a consistent image (pixels.count == width * height * channels).
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

@Suite struct CodecFuzzTests {
    static func mutate(_ b: [UInt8], _ rng: inout TestRNG) -> [UInt8] {
        var x = b
        func flip() { if !x.isEmpty { x[rng.int(x.count)] ^= UInt8(1 + rng.int(255)) } }
        switch rng.int(7) {
        case 0: for _ in 0...rng.int(4) { flip() }
        case 1: if !x.isEmpty { x[rng.int(x.count)] = [0x00, 0xFF, 0x7F, 0x80][rng.int(4)] }
        case 2:
            let at = rng.int(x.count + 1)
            x.insert(contentsOf: (0..<(1 + rng.int(8))).map { _ in rng.byte() }, at: at)
        case 3:
            if !x.isEmpty {
                let at = rng.int(x.count), n = min(x.count - at, 1 + rng.int(16))
                x.removeSubrange(at..<(at + n))
            }
        case 4: x = Array(x.prefix(rng.int(x.count)))
        case 5: flip(); x = Array(x.prefix(x.count - rng.int(max(1, x.count / 4))))
        default: for _ in 0..<(1 + rng.int(12)) { flip() }
        }
        return x
    }

    /// Recomputes the CRC of every complete chunk (so corruptions pass the CRC check).
    static func fixCRCs(_ b: [UInt8]) -> [UInt8] {
        var x = b, pos = 8
        while pos + 12 <= x.count {
            let len = Int(x[pos]) << 24 | Int(x[pos + 1]) << 16 | Int(x[pos + 2]) << 8 | Int(x[pos + 3])
            guard len >= 0, pos + 12 + len <= x.count else { break }
            let c = crc32(x[(pos + 4)..<(pos + 8 + len)])
            x[pos + 8 + len] = UInt8(c >> 24); x[pos + 9 + len] = UInt8(c >> 16 & 0xFF)
            x[pos + 10 + len] = UInt8(c >> 8 & 0xFF); x[pos + 11 + len] = UInt8(c & 0xFF)
            pos += 12 + len
        }
        return x
    }

    /// Runs `decode`; returns true if it produced an image. Records an issue for a
    /// non-FCNError or an inconsistent image.
    @discardableResult
    static func check(_ what: String, _ decode: () throws -> Image) -> Bool {
        do {
            let img = try decode()
            if img.pixels.count != img.width * img.height * img.channels || !(1...4).contains(img.channels)
                || (img.samples16 != nil && img.samples16!.count != img.pixels.count) {
                Issue.record("\(what): inconsistent image \(img.width)x\(img.height)x\(img.channels) with \(img.pixels.count) bytes")
            }
            return true
        } catch is FCNError {
            return false
        } catch {
            Issue.record("\(what): non-FCNError \(error)")
            return false
        }
    }

    @Test func png() {
        let seeds = ["ct2_8.png", "gray2_i.png", "pal4_trns_i.png", "ct6_16_i.png", "voc_label.png", "pillow_RGB.png", "ct4_8.png", "tiny2x3_i.png"].map(fixtureBytes)
        var rng = TestRNG(seed: 2024)
        var decoded = 0
        for i in 0..<20_000 {
            var x = Self.mutate(seeds[i % seeds.count], &rng)
            if i % 2 == 0 { x = Self.fixCRCs(x) }
            if Self.check("PNG #\(i)", { try PNG.decode(x) }) { decoded += 1 }
            if i % 4 == 0 {
                do {
                    let idx = try PNG.decodeIndexed(x)
                    if idx.indices.count != idx.width * idx.height { Issue.record("PNG #\(i): inconsistent indexed image") }
                } catch is FCNError {} catch { Issue.record("PNG #\(i): non-FCNError \(error)") }
            }
        }
        print("fuzz PNG: 20000 variants, \(decoded) decoded without error")
        #expect(decoded > 0 && decoded < 20_000)
    }

    @Test func jpeg() {
        let seeds = ["rgb420_q95_odd.jpg", "rgb420_restart.jpg", "gray_q50_odd.jpg", "rgb422_q50_odd.jpg", "rgb444_q50_odd.jpg"].map(fixtureBytes)
        var rng = TestRNG(seed: 7)
        var decoded = 0
        for i in 0..<20_000 {
            let x = Self.mutate(seeds[i % seeds.count], &rng)
            if Self.check("JPEG #\(i)", { try JPEG.decode(x) }) { decoded += 1 }
        }
        print("fuzz JPEG: 20000 variants, \(decoded) decoded without error")
        #expect(decoded > 0 && decoded < 20_000)
    }

    @Test func jpegProgressiveCMYKEXIF() {
        let seeds = ["prog_420_restart", "prog_gray_restart_odd", "prog_approx_deep", "cmyk_prog_q70", "ycck_q90",
                     "exif_7", "xmp_6", "exif_5_gray_prog", "prog_spectral_only"].map { name -> [UInt8] in
            let path = fixturesDirectory + "/jpeg/" + name + ".jpg"
            guard let d = FileManager.default.contents(atPath: path) else { fatalError("missing fixture \(path)") }
            return [UInt8](d)
        }
        // Where the first scan starts: corruptions before it reach the marker segments.
        let headers = seeds.map { s in (2..<(s.count - 1)).first { s[$0] == 0xFF && s[$0 + 1] == 0xDA } ?? s.count }
        var rng = TestRNG(seed: 85)
        var decoded = 0
        var slowest = Duration.zero
        let clock = ContinuousClock()
        for i in 0..<10_000 {
            let seed = seeds[i % seeds.count], head = headers[i % seeds.count]
            let x = i % 3 == 0 ? Self.mutate(Array(seed.prefix(head)), &rng) + seed[head...] : Self.mutate(seed, &rng)
            let orient = i % 5 != 0
            let t = clock.measure {
                if Self.check("JPEG+ #\(i)", { try JPEG.decode(x, applyOrientation: orient) }) { decoded += 1 }
            }
            slowest = max(slowest, t)
            if t > .seconds(2) { Issue.record("JPEG+ #\(i): decoding took \(t)") }
            let o = JPEG.exifOrientation(x)
            if !(1...8).contains(o) { Issue.record("JPEG+ #\(i): orientation \(o)") }
        }
        print("fuzz JPEG progressive/CMYK/EXIF: 10000 variants, \(decoded) decoded without error, slowest \(slowest)")
        #expect(decoded > 0 && decoded < 10_000)
    }

    @Test func pnm() {
        let seeds = ["rgb.ppm", "gray.pgm", "rgb_ascii.ppm", "gray_ascii15.pgm", "gray16.pgm"].map(fixtureBytes)
        var rng = TestRNG(seed: 11)
        var decoded = 0
        for i in 0..<5_000 {
            let x = Self.mutate(seeds[i % seeds.count], &rng)
            if Self.check("PNM #\(i)", { try PPM.decode(x) }) { decoded += 1 }
            if i % 8 == 0 { Self.check("auto #\(i)", { try decodeImage(x) }) }
        }
        print("fuzz PNM: 5000 variants, \(decoded) decoded without error")
        #expect(decoded > 0 && decoded < 5_000)
    }

    @Test func inflate() {
        var rng = TestRNG(seed: 5)
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog 0123456789 ", count: 20).utf8)
        let noise = (0..<600).map { _ in rng.byte() }
        let seeds = [Zlib.compress(text, level: 0), Zlib.compress(text, level: 1), Zlib.compress(text, level: 9),
                     Zlib.compress(noise + text, level: 6), Zlib.compress(Array(text.prefix(40)), level: 6)]
        var ok = 0
        for i in 0..<10_000 {
            let x = Self.mutate(seeds[i % seeds.count], &rng)
            do {
                let out = i % 2 == 0 ? try Zlib.decompress(x, maxOutput: 1 << 16) : try Zlib.inflateRaw(Array(x.dropFirst(2)), maxOutput: 1 << 16)
                if out.count > 1 << 16 { Issue.record("inflate #\(i): output over the cap") }
                ok += 1
            } catch is FCNError {} catch { Issue.record("inflate #\(i): non-FCNError \(error)") }
        }
        print("fuzz zlib: 10000 variants, \(ok) decoded without error")
        #expect(ok < 10_000)
    }
}
