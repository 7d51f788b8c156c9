// C pointwise kernels (CFCNKernels pointwise.c) against the Swift statements of the same
// rules: the 2x2 stride-2 max pool (values and argmax indices, bitwise, including NaNs and
// ties, odd sizes in floor and ceil mode, rows wider than one 16-window vector step) and the
// float sum (relative error 1e-6 of the sum of |x|).
import CFCNKernels
@testable import FCNCore
import FCNTestSupport
import Testing

@Suite struct PointwiseKernelTests {
    /// (H, W) pairs: odd/even, narrower and wider than 32 columns, one-row planes.
    static let sizes: [(Int, Int)] = [(1, 1), (2, 2), (3, 5), (7, 33), (8, 64), (9, 97), (1, 40), (5, 2)]

    @Test(arguments: [false, true])
    func maxPoolMatchesSwiftKernel(_ ceil: Bool) {
        for (h, w) in Self.sizes {
            // Values on a coarse grid (many ties) with a few NaNs.
            var vals = (0..<(h * w)).map { Float(($0 * 7919) % 5) - 2 }
            for i in stride(from: 3, to: vals.count, by: 11) { vals[i] = .nan }
            let x = Tensor(shape: [1, 1, h, w], scalars: vals)
            let oh = poolOutputSize(input: h, kernel: 2, stride: 2, padding: 0, ceilMode: ceil)
            let ow = poolOutputSize(input: w, kernel: 2, stride: 2, padding: 0, ceilMode: ceil)
            guard oh >= 1 && ow >= 1 else { continue }
            let g = PoolGeometry.make("test", x, kernel: 2, stride: 2, padding: 0, dilation: 1, ceilMode: ceil)
            var want = [Float](repeating: 0, count: oh * ow), wantIdx = [Int32](repeating: -1, count: oh * ow)
            var got = want, gotIdx = wantIdx, gotNoIdx = want
            x.withUnsafeBufferPointer { xp in
                want.withUnsafeMutableBufferPointer { wp in wantIdx.withUnsafeMutableBufferPointer { wi in
                    maxPoolPlaneK2S2(xp.baseAddress!, wp.baseAddress!, wi.baseAddress!, g)
                } }
                got.withUnsafeMutableBufferPointer { gp in gotIdx.withUnsafeMutableBufferPointer { gi in
                    fcn_maxpool2x2_plane(xp.baseAddress!, Int64(h), Int64(w), gp.baseAddress!, Int64(oh), Int64(ow), gi.baseAddress!)
                } }
                gotNoIdx.withUnsafeMutableBufferPointer { gp in
                    fcn_maxpool2x2_plane(xp.baseAddress!, Int64(h), Int64(w), gp.baseAddress!, Int64(oh), Int64(ow), nil)
                }
            }
            #expect(got.elementsEqual(want) { $0.bitPattern == $1.bitPattern }, "\(h)x\(w) ceil=\(ceil): values")
            #expect(gotNoIdx.elementsEqual(want) { $0.bitPattern == $1.bitPattern }, "\(h)x\(w) ceil=\(ceil): values without indices")
            #expect(gotIdx == wantIdx, "\(h)x\(w) ceil=\(ceil): indices")
        }
    }

    @Test func sumMatchesDoubleSum() {
        for n in [0, 1, 15, 16, 17, 63, 64, 65, 1000, 4099] {
            let x = (0..<n).map { Float(($0 * 37) % 101) / 7 - 6 }
            let want = x.reduce(0.0) { $0 + Double($1) }
            let scale = x.reduce(0.0) { $0 + Double(abs($1)) }
            let got = x.withUnsafeBufferPointer { fcn_sum($0.baseAddress!, Int64(n)) }
            #expect(abs(Double(got) - want) <= 1e-6 * max(1, scale), "n=\(n): \(got) vs \(want)")
        }
    }
}
