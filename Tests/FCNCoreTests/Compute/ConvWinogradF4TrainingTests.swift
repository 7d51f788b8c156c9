// Winograd F(4x4, 3x3) in training and without the cache: the per-call weight transform
// (CFCNKernels/winograd_f4.c), the weight gradient (`convBackwardWeightWinograd` with
// `tile: 4`, CFCNKernels/winograd_f4_grad.c), the input gradient as the flipped-kernel
// convolution on 4x4 tiles, and the choice rule (`winogradF4PerCall`).
//
// The weight gradient is checked against the naive sums on the F(2x2) sweep, on every ISA
// path, whole and in chunks that start mid-row; the input gradient against the implicit GEMM
// and by the adjoint identity; both against PyTorch's conv2d fixtures; the transforms give
// the same bits on every path; a recorded conv2d on a large plane runs F(4x4) in all three
// products and matches the references.
// Tolerances, relative to max(1, max |expected|): 1e-5 for the forward and the input
// gradient, as F(2x2). 4e-5 for the weight gradient: dM = A dY A^T multiplies the output
// gradient by up to 64 and V = B^T d B the input by up to 25 before the float GEMMs sum them
// over every tile, and G^T dU G (in double) divides back; against a float64 sum the error
// is about 1e-5 of the largest entry on 64-channel 32x32 to 128x128 planes, 5 to 8 times
// F(2x2)'s and the direct GEMM's (1-2e-6). Noise of that size is far below the gradient
// noise of a training step.
import CFCNKernels
@testable import FCNCore
import FCNTestSupport
import Testing

private func weightGradF4(_ g: ConvGeometry, _ x: Tensor, _ gy: Tensor, isa: GEMMISA = GEMMConfig.defaultISA,
                          chunkFloats: Int? = nil) -> Tensor {
    Tensor.make(shape: [g.outChannels, g.inChannels, 3, 3]) { out in
        out.initialize(repeating: .nan)
        convBackwardWeightWinograd(g, x: x.storage.pointer, gy: gy.storage.pointer, gw: out.baseAddress!, tile: 4,
                                   isa: isa, chunkFloats: chunkFloats)
    }
}

private func inputGradF4(_ g: ConvGeometry, _ gy: Tensor, _ w: Tensor) -> Tensor {
    Tensor.make(shape: [g.batch, g.inChannels, g.inH, g.inW]) { out in
        out.initialize(repeating: .nan)
        convBackwardDataFlippedKernel(g, gy: gy.storage.pointer, w: w.storage.pointer, gx: out.baseAddress!, winogradTile: 4)
    }
}

@Suite struct ConvWinogradF4TrainingTests {
    static let tolerance: Float = 1e-5
    static let weightGradientTolerance: Float = 4e-5

    /// The weight gradient on every ISA path, whole and in 16-tile chunks (chunks start
    /// mid-row of tiles, the last is partial), against the naive sums; batches accumulate.
    @Test(arguments: ConvWinogradTests.cases + [
        WinogradCase(n: 1, cin: 64, cout: 70, h: 33, w: 17, pad: (1, 1, 1, 1), bias: false, relu: false),  // 33 = 4*8+1
        WinogradCase(n: 2, cin: 8, cout: 9, h: 6, w: 10, pad: (2, 2, 2, 2), bias: false, relu: false),
    ])
    func weightGradient(_ c: WinogradCase) {
        let x = Tensor.randn([c.n, c.cin, c.h, c.w], seed: 51), w = [c.cout, c.cin, 3, 3]
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w, bias: nil, stride: 1, padding: c.padding,
                               dilation: 1, groups: 1)
        let gy = Tensor.randn([c.n, c.cout, g.outH, g.outW], seed: 52)
        let expected = conv2dWeightGradReference(x, gy, weightShape: w, stride: 1, padding: c.padding, dilation: 1, groups: 1)
        for isa in GEMMConfig.availableISAs {
            for chunk in [winogradChunkFloats, 36 * (c.cin + c.cout) * 16] {
                expectClose(weightGradF4(g, x, gy, isa: isa, chunkFloats: chunk), expected, tolerance: Self.weightGradientTolerance,
                            "\(c) \(isa) chunk \(chunk)")
            }
        }
    }

    /// The input gradient as the flipped-kernel convolution on 4x4 tiles (padding 2 - pad,
    /// a crop for pads above 2) equals the implicit GEMM form and satisfies
    /// <conv(x), gy> = <x, grad_x(gy)>.
    @Test(arguments: [(1, 1, 1, 1), (0, 0, 0, 0), (2, 2, 2, 2), (3, 1, 0, 4), (2, 0, 1, 3)])
    func inputGradient(_ pt: Int, _ pb: Int, _ pl: Int, _ pr: Int) {
        let x = Tensor.randn([2, 20, 15, 18], seed: 53), w = Tensor.randn([24, 20, 3, 3], seed: 54)
        let pad = Padding.explicit(top: pt, bottom: pb, left: pl, right: pr)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: 1, padding: pad,
                               dilation: 1, groups: 1)
        let gy = Tensor.randn([2, 24, g.outH, g.outW], seed: 55)
        let f4 = inputGradF4(g, gy, w)
        let gemm = Tensor.make(shape: x.shape) {
            convBackwardDataFlippedKernel(g, gy: gy.storage.pointer, w: w.storage.pointer, gx: $0.baseAddress!, winogradTile: nil)
        }
        expectClose(f4, gemm, tolerance: Self.tolerance, "pad \(pad) F(4x4) vs implicit GEMM")
        let lhs = dot(conv2dReference(x, weight: w, padding: pad), gy), rhs = dot(x, f4)
        #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)), "adjoint \(lhs) vs \(rhs)")
    }

    /// Both gradients through F(4x4) against PyTorch's conv2d fixtures (those Winograd can
    /// compute).
    @Test(arguments: loadFixture("conv2d"))
    func matchesPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x"), w = c.tensor("w")
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: size2(c.ints("stride")),
                               padding: fixturePadding(c), dilation: size2(c.ints("dilation")), groups: c.int("groups"))
        guard g.allowsWinograd else { return }
        let gy = c.tensor("grad_out")
        expectClose(weightGradF4(g, x, gy), c.tensor("grad_w"), tolerance: Self.weightGradientTolerance, "\(c) grad_w")
        expectClose(inputGradF4(g, gy, w), c.tensor("grad_x"), tolerance: Self.tolerance, "\(c) grad_x")
    }

    /// The weight transform (G g G^T, lanes gathered per output-channel panel, padded rows
    /// zero), dM = A dY A^T and G^T dU G against the matrices written out in float64, every
    /// lane written.
    @Test func transformsMatchFloat64() {
        let (cout, cin, mr) = (37, 5, 32)
        let w = Tensor.randn([cout, cin, 3, 3], seed: 56)
        let panels = (cout + mr - 1) / mr, es = panels * mr * cin
        func weights() -> [Float] {
            var u = [Float](repeating: .nan, count: 36 * es)
            fcn_winograd_f4_weights(w.storage.pointer, Int64(cout), Int64(cin), Int64(mr), 0, Int64(panels), &u, Int64(es))
            return u
        }
        let (outH, outW, tw) = (7, 10, 3), tiles = 2 * 3, ldm = 8
        let gy = Tensor.randn([cout, outH, outW], seed: 57)
        func gradOutput() -> [Float] {
            var dm = [Float](repeating: .nan, count: 36 * cout * ldm)
            fcn_winograd_f4_grad_output(gy.storage.pointer, Int64(outH), Int64(outW), Int64(tw), 0, Int64(tiles), 0,
                                        Int64(cout), &dm, Int64(cout * ldm), Int64(ldm))
            return dm
        }
        let du = Tensor.randn([36, cout, cin], seed: 58)
        func weightsGrad() -> [Float] {
            var gw = [Float](repeating: .nan, count: cout * cin * 9)
            fcn_winograd_f4_weights_grad(du.storage.pointer, Int64(cout), Int64(cin), 0, Int64(cout * cin), &gw)
            return gw
        }
        let reference = (weights(), gradOutput(), weightsGrad())
        #expect(!reference.0.contains { $0.isNaN } && !reference.1.contains { $0.isNaN } && !reference.2.contains { $0.isNaN },
                "every lane written")
        let A: [[Double]] = [[1, 0, 0, 0], [1, 1, 1, 1], [1, -1, 1, -1], [1, 2, 4, 8], [1, -2, 4, -8], [0, 0, 0, 1]]
        let G: [[Double]] = [[0.25, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                             [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        let ws = w.scalars
        for (co, ci) in [(0, 0), (17, 3), (31, 4), (32, 0), (cout - 1, cin - 1)] {
            for k in 0..<6 {
                for l in 0..<6 {
                    var s = 0.0
                    for i in 0..<3 { for j in 0..<3 { s += G[k][i] * Double(ws[(co * cin + ci) * 9 + 3 * i + j]) * G[l][j] } }
                    let got = Double(reference.0[(6 * k + l) * es + ((co / mr) * cin + ci) * mr + co % mr])
                    #expect(abs(got - s) <= 1e-6 * max(1, abs(s)), "U kernel (\(co), \(ci)) e \(6 * k + l)")
                }
            }
        }
        let padded = (cout..<(panels * mr)).allSatisfy { r in
            (0..<36).allSatisfy { e in reference.0[e * es + ((r / mr) * cin) * mr + r % mr] == 0 }
        }
        #expect(padded, "rows past cout are zero")
        let gys = gy.scalars, dus = du.scalars
        for co in [0, 17, cout - 1] {
            for t in 0..<tiles {
                let ty = t / tw, tx = t % tw
                func y(_ r: Int, _ c: Int) -> Double {
                    let oy = 4 * ty + r, ox = 4 * tx + c
                    return oy < outH && ox < outW ? Double(gys[(co * outH + oy) * outW + ox]) : 0
                }
                for k in 0..<6 {
                    for l in 0..<6 {
                        var s = 0.0
                        for r in 0..<4 { for c in 0..<4 { s += A[k][r] * y(r, c) * A[l][c] } }
                        let got = Double(reference.1[(6 * k + l) * cout * ldm + co * ldm + t])
                        #expect(abs(got - s) <= 1e-5 * max(1, abs(s)), "dM co \(co) tile \(t) e \(6 * k + l): \(got) vs \(s)")
                    }
                }
            }
            for ci in [0, cin - 1] {
                let plane = cout * cin, kidx = co * cin + ci
                for a in 0..<3 {
                    for b in 0..<3 {
                        var s = 0.0
                        for k in 0..<6 { for l in 0..<6 { s += G[k][a] * Double(dus[(6 * k + l) * plane + kidx]) * G[l][b] } }
                        let got = Double(reference.2[kidx * 9 + 3 * a + b])
                        #expect(abs(got - s) <= 1e-6 * max(1, abs(s)), "G^T dU G kernel \(kidx) (\(a), \(b))")
                    }
                }
            }
        }
    }

    /// The choice: a recorded conv2d on a plane of at least 64 4x4 tiles runs F(4x4) in all
    /// three products; smaller planes keep F(2x2); `.always` (tests) keeps F(2x2). Through conv2d and backward, the output
    /// and both gradients match the references.
    @Test func trainingRunsF4OnLargePlanesAndMatchesTheReferences() {
        guard winogradF4Enabled && winogradEnabled else { return }
        // After rule 0's margin scan (these planes have no runs to cut).
        let recording = ConvMode(wholeOp: true, recording: true, cachedWeight: nil, marginScanned: true)
        func geometry(_ h: Int, _ c: Int = 64) -> ConvGeometry {
            conv2dGeometry(op: "test", input: [1, c, h, h], weight: [c, c, 3, 3], bias: [c], stride: 1, padding: 1,
                           dilation: 1, groups: 1)
        }
        let large = geometry(64), medium = geometry(32), small = geometry(24)
        #expect(large.algorithm(for: .forward, mode: recording) == .winogradF4x4(cachedWeight: nil))
        #expect(large.algorithm(for: .inputGradient) == .flippedKernel(winogradTile: 4))
        #expect(large.algorithm(for: .weightGradient) == .winogradF4x4(cachedWeight: nil))
        #expect(medium.algorithm(for: .forward, mode: recording) == .winogradF4x4(cachedWeight: nil))
        #expect(medium.algorithm(for: .weightGradient) == .winogradF4x4(cachedWeight: nil), "64 tiles")
        #expect(small.algorithm(for: .weightGradient) == .winogradF2x2(cachedWeight: nil), "36 tiles")
        #expect(small.algorithm(for: .forward, mode: recording) == .winogradF2x2(cachedWeight: nil), "36 tiles")
        #expect(small.algorithm(for: .inputGradient) == .flippedKernel(winogradTile: 2))
        var forced = large
        forced.winograd = .always
        #expect(forced.algorithm(for: .forward, mode: recording) == .winogradF2x2(cachedWeight: nil))
        #expect(forced.algorithm(for: .weightGradient) == .winogradF2x2(cachedWeight: nil))

        let x = Tensor.randn([1, 64, 64, 64], seed: 59).requiringGrad()
        let w = (Tensor.randn([64, 64, 3, 3], seed: 60) * 0.05).requiringGrad(), b = Tensor.randn([64], seed: 61).requiringGrad()
        let gy = Tensor.randn([1, 64, 64, 64], seed: 62)
        let y = conv2d(x, weight: w, bias: b, padding: 1)
        (y * gy).sum().backward()
        expectClose(y.detached(), conv2dReference(x.detached(), weight: w.detached(), bias: b.detached(), padding: 1),
                    tolerance: Self.tolerance, "forward")
        expectClose(w.grad!, conv2dWeightGradReference(x.detached(), gy, weightShape: w.shape, stride: 1, padding: 1,
                                                       dilation: 1, groups: 1), tolerance: Self.weightGradientTolerance,
                    "grad w")
        let gxGEMM = Tensor.make(shape: x.shape) {
            convBackwardDataFlippedKernel(large, gy: gy.storage.pointer, w: w.storage.pointer, gx: $0.baseAddress!,
                                          winogradTile: nil)
        }
        expectClose(x.grad!, gxGEMM, tolerance: Self.tolerance, "grad x")
    }
}
