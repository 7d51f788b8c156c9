// Shared helpers for the codec tests: fixture bytes, HWC comparisons, a seeded generator.
//
// Fixtures: Tests/Fixtures/gen_images.py writes small files into Fixtures/images/
// and Pillow's decoded pixels into images.safetensors (`pixels` [H, W, C], optional
// `samples16`, `indices` [H, W], `palette` [N, 3]; config "kind", "file").
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

let imageFixtures = loadFixture("images")

func imageCases(_ kind: String) -> [FixtureCase] {
    imageFixtures.filter { $0.string("kind") == kind }
}

func fixtureBytes(_ file: String) -> [UInt8] {
    let path = fixturesDirectory + "/images/" + file
    guard let d = FileManager.default.contents(atPath: path) else { fatalError("missing fixture image \(path)") }
    return [UInt8](d)
}

/// Max and mean |a - b| of decoded samples against an expected [H, W, C] tensor; nil if the
/// geometry differs.
func sampleDiff(_ values: [Int], width: Int, height: Int, channels: Int, _ expected: Tensor) -> (max: Int, mean: Double)? {
    guard expected.shape == [height, width, channels], values.count == expected.count else { return nil }
    let e = expected.scalars
    var m = 0, s = 0
    for i in 0..<values.count {
        let d = abs(values[i] - Int(e[i]))
        m = max(m, d); s += d
    }
    return (m, Double(s) / Double(max(1, values.count)))
}

/// SplitMix64: a small seeded generator for tests.
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

/// A textured test image (gradients + noise), deterministic in `seed`.
func texturedImage(width: Int, height: Int, channels: Int, seed: UInt64) -> Image {
    var rng = TestRNG(seed: seed)
    var px = [UInt8](repeating: 0, count: width * height * channels)
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<channels {
                let v = (x * 7 + y * 3 + c * 50) % 256 + rng.int(9) - 4
                px[(y * width + x) * channels + c] = UInt8(max(0, min(255, v)))
            }
        }
    }
    return Image(width: width, height: height, channels: channels, pixels: px)
}
