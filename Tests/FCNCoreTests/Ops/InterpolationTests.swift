// Bilinear interpolation and the FCN bilinear kernel against PyTorch (Fixtures/gen_pool.py)
// and finite differences.
//
// Fixture idea, per case:
//   x = randn(N, C, H, W)
//   out = F.interpolate(x, size=size | scale_factor=scale, mode="bilinear", align_corners=ac)
//   out.backward(grad_out); store x, out, grad_out, x.grad
// and the seed's numpy `bilinear_kernel(c, c, k)`, plus F.conv_transpose2d(x, it, stride=2,
// padding=1) next to F.interpolate(x, scale_factor=2).
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct InterpolationTests {
    /// Two-tap weighted sums per axis in float: 1e-5 relative (forward and backward).
    @Test(arguments: loadFixture("interpolate_bilinear"))
    func bilinearMatchesPyTorch(_ c: FixtureCase) {
        let ac = c.bool("align_corners")
        let size = c.ints("size")
        let scaleValues = c.doubles("scale")
        let (out, gx) = forwardBackward(c.tensor("x"), c.tensor("grad_out")) { x in
            if size.isEmpty {
                if scaleValues[0] == scaleValues[1] {
                    return interpolateBilinear(x, scaleFactor: scaleValues[0], alignCorners: ac)
                }
                return interpolateBilinear(x, scaleFactor: (scaleValues[0], scaleValues[1]), alignCorners: ac)
            }
            return interpolateBilinear(x, size: Size2(size[0], size[1]), alignCorners: ac)
        }
        expectClose(out, c.tensor("out"), tolerance: 1e-5, "\(c) out")
        expectClose(gx, c.tensor("grad_x"), tolerance: 1e-5, "\(c) grad_x")
    }

    /// The row-cached kernel (each input row interpolated along the row once) gives the bits
    /// of the per-output formula h0 * (w0 * r0[c0] + w1 * r0[c1]) + h1 * (w0 * r1[c0] + w1 *
    /// r1[c1]) with ATen's indices and weights: the torchvision head's 65 -> 520 upsampling,
    /// downsampling that skips rows, non-square sizes, both corner modes, a batch.
    @Test(arguments: [([1, 3, 65, 65], 520, 520), ([2, 2, 17, 23], 5, 9), ([1, 1, 7, 3], 30, 11), ([1, 2, 1, 1], 4, 3)])
    func rowCachedKernelGivesThePerOutputFormulasBits(_ shape: [Int], _ outH: Int, _ outW: Int) {
        let x = Tensor.randn(shape, seed: 41)
        for ac in [false, true] {
            let y = interpolateBilinear(x, size: Size2(outH, outW), alignCorners: ac)
            let ay = LinearAxis(inSize: shape[2], outSize: outH, alignCorners: ac, scale: nil)
            let ax = LinearAxis(inSize: shape[3], outSize: outW, alignCorners: ac, scale: nil)
            let xs = x.scalars, ys = y.scalars
            var same = true
            for p in 0..<(shape[0] * shape[1]) {
                let src = p * shape[2] * shape[3]
                for oh in 0..<outH {
                    let r0 = src + ay.i0[oh] * shape[3], r1 = src + ay.i1[oh] * shape[3]
                    for ow in 0..<outW {
                        let (c0, c1, w0, w1) = (ax.i0[ow], ax.i1[ow], ax.l0[ow], ax.l1[ow])
                        let top = w0 * xs[r0 + c0] + w1 * xs[r0 + c1], bottom = w0 * xs[r1 + c0] + w1 * xs[r1 + c1]
                        let v = ay.l0[oh] * top + ay.l1[oh] * bottom
                        if v.bitPattern != ys[(p * outH + oh) * outW + ow].bitPattern { same = false }
                    }
                }
            }
            #expect(same, "\(shape) -> \(outH)x\(outW) alignCorners \(ac)")
        }
    }

    /// The reference example: [[1,2],[3,4]] to 4x4 (alignCorners false).
    @Test func twoByTwoToFourByFour() {
        let x = Tensor(shape: [1, 1, 2, 2], scalars: [1, 2, 3, 4])
        let y = interpolateBilinear(x, size: 4)
        #expect(Array(y.scalars[0..<4]) == [1, 1.25, 1.75, 2])
        #expect(Array(y.scalars[12..<16]) == [3, 3.25, 3.75, 4])
        let a = interpolateBilinear(x, size: 3, alignCorners: true)
        #expect(a.scalars == [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4])
    }

    /// With a non-integer output a scale factor's ratio 1/scale differs from in/out
    /// (PyTorch recompute_scale_factor=None); the fixture holds PyTorch's values.
    @Test func scaleFactorUsesInverseScale() {
        let x = Tensor.randn([1, 1, 5, 5], seed: 2)
        let byScale = interpolateBilinear(x, scaleFactor: 1.7)
        let bySize = interpolateBilinear(x, size: 8)
        #expect(byScale.shape == [1, 1, 8, 8])
        #expect(relativeError(byScale, bySize) > 1e-3)
    }

    @Test func finiteDifferences() {
        let x = Tensor.randn([2, 2, 4, 5], seed: 9)
        for ac in [false, true] {
            gradientCheck([x], tolerance: 1e-3, "up \(ac)") { interpolateBilinear($0[0], size: [7, 9], alignCorners: ac) }
            gradientCheck([x], tolerance: 1e-3, "down \(ac)") { interpolateBilinear($0[0], size: [3, 2], alignCorners: ac) }
        }
        gradientCheck([x], tolerance: 1e-3, "scale") { interpolateBilinear($0[0], scaleFactor: 1.7) }
    }

    // MARK: bilinear kernel

    @Test func kernelTaps() {
        #expect(bilinearTaps(4) == [0.25, 0.75, 0.75, 0.25])
        #expect(bilinearTaps(3) == [0.5, 1, 0.5])
        #expect(bilinearTaps(1) == [1])
        // Seed 001: 3x upsampling (k = 5) weighs neighbours 2/3 and 1/3.
        let t5 = bilinearTaps(5)
        let want: [Float] = [1.0 / 3, 2.0 / 3, 1, 2.0 / 3, 1.0 / 3]
        for i in 0..<5 { #expect(abs(t5[i] - want[i]) < 1e-7) }
        #expect([1, 2, 3, 4, 8, 16, 32].map { bilinearKernelSize(forFactor: $0) } == [1, 4, 5, 8, 16, 32, 64])
        let w = bilinearUpsamplingKernel(channels: 2, kernelSize: 4)
        #expect(w.shape == [2, 2, 4, 4])
        #expect(w[0, 0, 1, 2] == 0.75 * 0.75 && w[1, 1, 0, 3] == 0.0625 && w[0, 1, 1, 1] == 0 && w[1, 0, 2, 2] == 0)
    }

    /// Seed 001, 1-D: a stride-3 transposed convolution with the k=5 taps maps O1, O2 to
    /// ..., O1, 2/3 O1 + 1/3 O2, 1/3 O1 + 2/3 O2, O2, ...
    @Test func seedThreeTimesUpsampling() {
        let taps = bilinearTaps(bilinearKernelSize(forFactor: 3))
        let o1: Float = 3, o2: Float = 6
        var out = [Float](repeating: 0, count: 8)
        for (i, v) in [o1, o2].enumerated() { for t in 0..<5 { out[3 * i + t] += v * taps[t] } }
        #expect(out[2] == o1 && out[5] == o2)
        #expect(abs(out[3] - (2 * o1 / 3 + o2 / 3)) < 1e-6)
        #expect(abs(out[4] - (o1 / 3 + 2 * o2 / 3)) < 1e-6)
    }

    /// The seed's numpy bilinear_kernel, exactly (taps are k/8-style fractions; products
    /// round the same in Double then Float): 1e-7.
    @Test(arguments: loadFixture("bilinear_kernel"))
    func kernelMatchesSeedAndDeconvMatchesInterpolation(_ c: FixtureCase) {
        let w = bilinearUpsamplingKernel(channels: c.ints("channels")[0], kernelSize: c.ints("kernel")[0])
        expectClose(w, c.tensor("weight"), tolerance: 1e-7, "\(c) weight")
        guard c.has("x") else { return }
        // Local scatter loop for conv_transpose2d k4 s2 p1 (the library's op is written
        // elsewhere): out[oy][ox] += x[iy][ix] * w[oy + 1 - 2 iy][ox + 1 - 2 ix].
        let x = c.tensor("x")
        let (n, ch, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let taps = bilinearTaps(4)
        var deconv = [Float](repeating: 0, count: n * ch * 4 * h * wd)
        let xs = x.scalars
        for p in 0..<(n * ch) {
            for iy in 0..<h { for ix in 0..<wd {
                let v = xs[p * h * wd + iy * wd + ix]
                for ky in 0..<4 { for kx in 0..<4 {
                    let oy = 2 * iy - 1 + ky, ox = 2 * ix - 1 + kx
                    guard oy >= 0, oy < 2 * h, ox >= 0, ox < 2 * wd else { continue }
                    deconv[p * 4 * h * wd + oy * 2 * wd + ox] += v * taps[ky] * taps[kx]
                }}
            }}
        }
        let deconvT = Tensor(shape: [n, ch, 2 * h, 2 * wd], scalars: deconv)
        expectClose(deconvT, c.tensor("deconv"), tolerance: 1e-6, "\(c) scatter loop vs conv_transpose2d")
        let interp = interpolateBilinear(x, size: [2 * h, 2 * wd])
        expectClose(interp, c.tensor("interp"), tolerance: 1e-6, "\(c) interp")
        // Interior (rows and columns 1 ..< 2n-1) equal; the border differs.
        let a = interp.scalars
        var interiorErr: Float = 0, borderErr: Float = 0
        for p in 0..<(n * ch) { for oy in 0..<(2 * h) { for ox in 0..<(2 * wd) {
            let i = p * 4 * h * wd + oy * 2 * wd + ox
            let d = abs(a[i] - deconv[i])
            if oy > 0 && oy < 2 * h - 1 && ox > 0 && ox < 2 * wd - 1 { interiorErr = max(interiorErr, d) } else { borderErr = max(borderErr, d) }
        }}}
        #expect(interiorErr < 1e-5)
        #expect(borderErr > 1e-2)
    }

    // MARK: misuse

    @Test func emptyOutputSizeNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = interpolateBilinear(Tensor.zeros([1, 1, 3, 3]), scaleFactor: 0.2)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("interpolateBilinear: output size 0x0 for input [1, 1, 3, 3] must be positive"))
    }

    @Test func wrongRankNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = interpolateBilinear(Tensor.zeros([3, 3]), size: 4)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("interpolateBilinear: input must be NCHW (rank 4), got shape [3, 3]"))
    }
}
