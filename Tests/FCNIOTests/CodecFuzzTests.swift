// Fuzz tests: seeded random corruptions of small valid files fed to every decoder.
//
// Mutations: 1-4 byte flips, special-byte overwrites (0x00, 0xFF, 0x7F, 0x80), inserted
// runs, deleted ranges, truncation, and flip + truncate. For PNG, half the variants get
// their chunk CRCs recomputed so the corruption reaches IHDR parsing, inflate, unfiltering
// and unpacking instead of stopping at the CRC check. Counts: 20,000 PNG (plus 5,000
// decodeIndexed), 20,000 JPEG, 5,000 PNM and 10,000 zlib/raw-inflate inputs (about 3 s in a
// debug build). The tests run in-process:
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
