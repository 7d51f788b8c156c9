// Test images and label helpers shared by the inference, tools and journey tests.
import Foundation
import FCNCore

/// A smooth RGB 0...255 test image `[3, H, W]` with structure at several scales.
public func testImage(height: Int, width: Int, seed: UInt64 = 1) -> Tensor {
    let noise = Tensor.uniform([3, height, width], low: 0, high: 60, seed: seed)
    var out = noise
    out.withUnsafeMutableBufferPointer { b in
        for c in 0..<3 { for y in 0..<height { for x in 0..<width {
            let a: Float = sin(Float(x) * 0.07 + Float(c))
            let d: Float = cos(Float(y) * 0.05 - Float(c))
            b[(c * height + y) * width + x] += 100 + 80 * a * d
        } } }
    }
    return out
}

/// Argmax over the classes of `[1, C, H, W]`, first maximum on ties, as bytes.
public func argmaxLabels(_ scores: Tensor) -> [UInt8] {
    scores.squeezed(axis: 0).argmax(axis: 0).scalars.map { UInt8($0) }
}
