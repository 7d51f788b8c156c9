// conv2d against PyTorch, finite differences, the naive reference and its own fast paths.
//
// Fixture (Fixtures/gen_conv.py), per case:
//   p = resolved padding [top, bottom, left, right] (F.pad, TF rule for "same")
//   out = F.conv2d(F.pad(x, (l, r, t, b)), w, b, stride, dilation=d, groups=g)
//   grad_x, grad_w, grad_b = torch.autograd.grad(out, [x, w, b], grad_outputs=grad_out)
// Tolerance 1e-5 relative to max(1, max|expected|): float32 sums of at most a few hundred
// products per output (PyTorch accumulates in a different order).
import Testing
@testable import FCNCore
import FCNTestSupport

/// The library padding a fixture case describes.
func fixturePadding(_ c: FixtureCase) -> Padding {
    let p = c.ints("padding")
    switch c.string("mode") {
    case "int": return .symmetric(p[0])
    case "pair": return [p[0], p[1]]
    case "explicit": return .explicit(top: p[0], bottom: p[1], left: p[2], right: p[3])
    case "valid": return .valid
    default: return .same
    }
}

func size2(_ v: [Int]) -> Size2 { Size2(v[0], v[1]) }

// Foundation on Linux decodes the JSON numbers 0 and 1 as Bool, so FixtureCase.int/ints
// trap on them; these readers accept both.

/// Inner product of two same-shaped tensors, accumulated in Double.
func dot(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape)
    var s = 0.0
    let pa = a.scalars, pb = b.scalars
    for i in 0..<pa.count { s += Double(pa[i]) * Double(pb[i]) }
    return s
}

/// Naive weight gradient of conv2d: gw[oc, ci, i, j] = sum over n, oh, ow of
/// gy[n, oc, oh, ow] * x[n, c, oh*s - pt + i*d, ow*s - pl + j*d], accumulated in Double (a
/// float sum over a large plane would carry more error than the kernels under test).
func conv2dWeightGradReference(_ x: Tensor, _ gy: Tensor, weightShape: [Int], stride: Size2, padding: Padding,
                               dilation: Size2, groups: Int) -> Tensor {
    let g = conv2dGeometry(op: "ref", input: x.shape, weight: weightShape, bias: nil, stride: stride,
                           padding: padding, dilation: dilation, groups: groups)
    let xs = x.scalars, gys = gy.scalars
    var gw = [Float](repeating: 0, count: weightShape.reduce(1, *))
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels
    for oc in 0..<g.outChannels {
        for ci in 0..<cinG {
            let c = (oc / coutG) * cinG + ci
            for i in 0..<g.kH {
                for j in 0..<g.kW {
                    var acc = 0.0
                    for n in 0..<g.batch {
                        for oh in 0..<g.outH {
                            let ih = oh * g.strideH - g.padTop + i * g.dilH
                            if ih < 0 || ih >= g.inH { continue }
                            for ow in 0..<g.outW {
                                let iw = ow * g.strideW - g.padLeft + j * g.dilW
                                if iw < 0 || iw >= g.inW { continue }
                                acc += Double(gys[((n * g.outChannels + oc) * g.outH + oh) * g.outW + ow])
                                    * Double(xs[((n * g.inChannels + c) * g.inH + ih) * g.inW + iw])
                            }
                        }
                    }
                    gw[((oc * cinG + ci) * g.kH + i) * g.kW + j] = Float(acc)
                }
            }
        }
    }
    return Tensor(shape: weightShape, scalars: gw)
}

@Suite struct Conv2DTests {
    static let tolerance: Float = 1e-5

    @Test(arguments: loadFixture("conv2d"))
    func matchesPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x").requiringGrad(), w = c.tensor("w").requiringGrad()
        let b = c.bool("bias") ? c.tensor("b").requiringGrad() : nil
        let y = conv2d(x, weight: w, bias: b, stride: size2(c.ints("stride")), padding: fixturePadding(c),
                       dilation: size2(c.ints("dilation")), groups: c.int("groups"))
        expectClose(y, c.tensor("out"), tolerance: Self.tolerance, "\(c) out")
        y.backward(gradient: c.tensor("grad_out"))
        expectClose(x.grad!, c.tensor("grad_x"), tolerance: Self.tolerance, "\(c) grad_x")
        expectClose(w.grad!, c.tensor("grad_w"), tolerance: Self.tolerance, "\(c) grad_w")
        if let b { expectClose(b.grad!, c.tensor("grad_b"), tolerance: Self.tolerance, "\(c) grad_b") }
    }

    /// The tuned engine (im2col tiles, 1x1 and depthwise fallbacks) equals the naive loops,
    /// and the general im2col path equals the fast paths, in all three products.
    @Test(arguments: loadFixture("conv2d"))
    func tunedEqualsReferenceAndFastPathsEqualGeneral(_ c: FixtureCase) {
        let x = c.tensor("x"), w = c.tensor("w"), b: Tensor? = c.bool("bias") ? c.tensor("b") : nil
        let stride = size2(c.ints("stride")), dil = size2(c.ints("dilation")), groups = c.int("groups")
        let pad = fixturePadding(c)
        let tuned = conv2d(x, weight: w, bias: b, stride: stride, padding: pad, dilation: dil, groups: groups)
        let naive = conv2dReference(x, weight: w, bias: b, stride: stride, padding: pad, dilation: dil, groups: groups)
        expectClose(tuned, naive, tolerance: Self.tolerance, "\(c) tuned vs reference")

        var g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: stride,
                               padding: pad, dilation: dil, groups: groups)
        let gy = c.tensor("grad_out")
        func products(_ g: ConvGeometry) -> (Tensor, Tensor, Tensor) {
            let y = Tensor.make(shape: gy.shape) { convForward(g, x: x.storage.pointer, w: w.storage.pointer, bias: nil, y: $0.baseAddress!) }
            let gx = Tensor.make(shape: x.shape) { convBackwardData(g, gy: gy.storage.pointer, w: w.storage.pointer, gx: $0.baseAddress!) }
            let gw = Tensor.make(shape: w.shape) { convBackwardWeight(g, x: x.storage.pointer, gy: gy.storage.pointer, gw: $0.baseAddress!) }
            return (y, gx, gw)
        }
        let fast = products(g)
        g.fastPaths = false
        let general = products(g)
        expectClose(fast.0, general.0, tolerance: Self.tolerance, "\(c) forward fast vs im2col")
        expectClose(fast.1, general.1, tolerance: Self.tolerance, "\(c) data grad fast vs im2col")
        expectClose(fast.2, general.2, tolerance: Self.tolerance, "\(c) weight grad fast vs im2col")
    }

    /// An output plane larger than one column tile (4489 pixels > 4096, the second tile
    /// starting mid-row): forward vs the naive loops, data gradient by the adjoint identity,
    /// weight gradient vs naive loops.
    @Test func multipleTilesPerImage() {
        let x = Tensor.randn([2, 3, 67, 67], seed: 1), w = Tensor.randn([2, 3, 3, 3], seed: 2)
        let b = Tensor.randn([2], seed: 3)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: 1, padding: 1, dilation: 1, groups: 1)
        #expect(g.tileCount == 2)
        let y = conv2d(x, weight: w, bias: b, padding: 1)
        expectClose(y, conv2dReference(x, weight: w, bias: b, padding: 1), tolerance: Self.tolerance, "tiled forward")
        let gy = Tensor.randn(y.shape, seed: 4)
        let lhs = dot(conv2d(x, weight: w, padding: 1), gy)
        let rhs = dot(x, convTranspose2d(gy, weight: w, padding: 1))
        #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)), "tiled adjoint \(lhs) vs \(rhs)")
        let gw = Tensor.make(shape: w.shape) { convBackwardWeight(g, x: x.storage.pointer, gy: gy.storage.pointer, gw: $0.baseAddress!) }
        expectClose(gw, conv2dWeightGradReference(x, gy, weightShape: w.shape, stride: 1, padding: 1, dilation: 1, groups: 1),
                    tolerance: 1e-4, "tiled weight grad")  // sums of 9000 products
    }

    /// The batched small-plane path (several images' column matrices in one GEMM), in
    /// chunks of 2 images over a batch of 5, equals the per-image im2col path in all three
    /// products: a 7x7 "fc6" on a 3x3 plane, a strided 3x3, a 1x1 pointwise layer.
    @Test(arguments: [([5, 4, 3, 3], [6, 4, 7, 7], 1, 3), ([5, 3, 9, 8], [4, 3, 3, 3], 2, 1), ([5, 6, 4, 5], [3, 6, 1, 1], 1, 0)])
    func batchedSmallPlanesEqualPerImage(_ xs: [Int], _ ws: [Int], _ stride: Int, _ pad: Int) {
        let x = Tensor.randn(xs, seed: 1), w = Tensor.randn(ws, seed: 2), b = Tensor.randn([ws[0]], seed: 3)
        var g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: Size2(stride, stride),
                               padding: .symmetric(pad), dilation: 1, groups: 1)
        #expect(g.batchedImages == 5, "small planes take the batched path with the whole batch")
        let gy = Tensor.randn([g.batch, g.outChannels, g.outH, g.outW], seed: 4)
        let (xp, wp, gyp, bp) = (x.storage.pointer, w.storage.pointer, UnsafePointer(gy.storage.pointer), UnsafePointer(b.storage.pointer))
        let y = Tensor.make(shape: gy.shape) { convForwardBatched(g, images: 2, x: xp, w: wp, bias: bp, y: $0.baseAddress!, relu: true) }
        let gx = Tensor.make(shape: x.shape) { convBackwardDataBatched(g, images: 2, gy: gyp, w: wp, gx: $0.baseAddress!) }
        let gw = Tensor.make(shape: w.shape) { convBackwardWeightBatched(g, images: 2, x: xp, gy: gyp, gw: $0.baseAddress!) }
        g.fastPaths = false
        #expect(g.batchedImages == 0)
        let y0 = Tensor.make(shape: gy.shape) { convForward(g, x: xp, w: wp, bias: bp, y: $0.baseAddress!, relu: true) }
        let gx0 = Tensor.make(shape: x.shape) { convBackwardData(g, gy: gyp, w: wp, gx: $0.baseAddress!) }
        let gw0 = Tensor.make(shape: w.shape) { convBackwardWeight(g, x: xp, gy: gyp, gw: $0.baseAddress!) }
        #expect(y.scalars.contains(0) && y.scalars.contains { $0 > 0 }, "ReLU clamps some outputs, not all")
        expectClose(y, y0, tolerance: Self.tolerance, "batched forward")
        expectClose(gx, gx0, tolerance: Self.tolerance, "batched data grad")
        expectClose(gw, gw0, tolerance: Self.tolerance, "batched weight grad")
    }

    /// Which layers take the batched path: small planes of several images with groups 1.
    @Test func batchedPathSelection() {
        func images(_ x: [Int], _ w: [Int], pad: Int = 1, groups: Int = 1) -> Int {
            conv2dGeometry(op: "test", input: x, weight: w, bias: nil, stride: 1, padding: .symmetric(pad),
                           dilation: 1, groups: groups).batchedImages
        }
        #expect(images([4, 64, 3, 3], [512, 64, 7, 7], pad: 3) == 4)    // fc6 of a width-1/8 FCN at 96 px
        #expect(images([1, 64, 3, 3], [512, 64, 7, 7], pad: 3) == 0)    // one image
        #expect(images([4, 16, 48, 48], [16, 16, 3, 3]) == 0)           // large plane
        #expect(images([4, 8, 6, 6], [8, 2, 3, 3], groups: 4) == 0)     // groups
        // Full-width fc6 on a 3x3 plane: (25088 + 4096) * 9 floats per image, 15 per 4 M-float chunk.
        #expect(images([32, 512, 3, 3], [4096, 512, 7, 7], pad: 3) == 15)
    }

    /// fusedReLU gives relu(conv) and masks the gradient by the output sign.
    @Test(arguments: loadFixture("conv2d").prefix(6))
    func fusedReLU(_ c: FixtureCase) {
        let x = c.tensor("x").requiringGrad(), w = c.tensor("w"), b: Tensor? = c.bool("bias") ? c.tensor("b") : nil
        let args = (stride: size2(c.ints("stride")), pad: fixturePadding(c), dil: size2(c.ints("dilation")), groups: c.int("groups"))
        let y = conv2d(x, weight: w, bias: b, stride: args.stride, padding: args.pad, dilation: args.dil, groups: args.groups, fusedReLU: true)
        let expected = c.tensor("out"), gOut = c.tensor("grad_out")
        let relu = Tensor(shape: expected.shape, scalars: expected.scalars.map { max($0, 0) })
        expectClose(y, relu, tolerance: Self.tolerance, "\(c) fused relu")
        y.backward(gradient: gOut)
        let masked = Tensor(shape: gOut.shape, scalars: zip(gOut.scalars, expected.scalars).map { $1 > 0 ? $0 : 0 })
        let x2 = c.tensor("x").requiringGrad()
        conv2d(x2, weight: w, bias: b, stride: args.stride, padding: args.pad, dilation: args.dil, groups: args.groups)
            .backward(gradient: masked)
        expectClose(x.grad!, x2.grad!, tolerance: Self.tolerance, "\(c) fused relu grad")
    }

    struct FDCase: Sendable, CustomStringConvertible {
        var x: [Int], w: [Int], stride: Size2, padding: Padding, dilation: Size2, groups: Int
        var description: String { "x \(x) w \(w) stride \(stride) padding \(padding) dilation \(dilation) groups \(groups)" }
    }
    static let fdCases: [FDCase] = [
        FDCase(x: [2, 2, 5, 5], w: [3, 2, 3, 3], stride: 2, padding: 1, dilation: 1, groups: 1),
        FDCase(x: [1, 4, 6, 5], w: [2, 2, 3, 2], stride: [1, 2], padding: .explicit(top: 0, bottom: 2, left: 1, right: 0), dilation: [2, 1], groups: 2),
        FDCase(x: [2, 3, 5, 6], w: [3, 1, 3, 3], stride: 1, padding: .same, dilation: 1, groups: 3),
        FDCase(x: [1, 2, 7, 6], w: [2, 2, 3, 3], stride: 2, padding: .same, dilation: 1, groups: 1),
        FDCase(x: [2, 3, 4, 3], w: [2, 3, 1, 1], stride: 1, padding: 0, dilation: 1, groups: 1),
        FDCase(x: [2, 3, 2, 3], w: [2, 3, 7, 7], stride: 1, padding: .same, dilation: 1, groups: 1),   // live taps 3x5
        FDCase(x: [1, 4, 3, 2], w: [4, 2, 5, 3], stride: 2, padding: .explicit(top: 3, bottom: 2, left: 2, right: 0), dilation: 1, groups: 2),
    ]

    /// Central finite differences (eps 1e-2). conv2d is linear in each input, so the only
    /// error is float32 rounding of the loss divided by 2*eps: tolerance 5e-3.
    @Test(arguments: fdCases)
    func finiteDifferences(_ f: FDCase) {
        let cout = f.w[0]
        let worst = gradientCheck([Tensor.randn(f.x, seed: 11), Tensor.randn(f.w, seed: 12), Tensor.randn([cout], seed: 13)],
                                  eps: 1e-2, tolerance: 5e-3, "\(f)") { xs in
            conv2d(xs[0], weight: xs[1], bias: xs[2], stride: f.stride, padding: f.padding, dilation: f.dilation, groups: f.groups)
        }
        #expect(worst < 5e-3)
    }

    // MARK: Live taps (Ops/Conv2D+LiveTaps.swift)

    /// Dilated 3x3 convolutions at inference run on their polyphase parts (Winograd inside):
    /// equal to the naive loops within 1e-5 relative (Winograd's tolerance) at dilations 2
    /// and 4, on sizes that are and are not multiples of the dilation, with bias and fused
    /// ReLU, batch 2, with and without the weight cache; while recording (training) the direct
    /// form runs and also matches.
    @Test func dilatedPolyphaseEqualsNaive() {
        // Even and odd sizes, sizes below a multiple of d by 1 ... d-1 (short phases), d = 3.
        for (d, h, w) in [(2, 33, 30), (2, 32, 32), (4, 65, 62), (4, 64, 64), (3, 20, 17), (2, 65, 65)] {
            let x = Tensor.randn([d == 2 ? 2 : 1, 64, h, w], seed: UInt64(d * 1000 + h + w))
            let wt = Tensor.randn([72, 64, 3, 3], seed: 5) * 0.05, b = Tensor.randn([72], seed: 6)
            let g = conv2dGeometry(op: "test", input: x.shape, weight: wt.shape, bias: b.shape, stride: 1,
                                   padding: Padding.same, dilation: Size2(d), groups: 1)
            #expect(g.algorithm(for: .forward, mode: ConvMode(wholeOp: true))
                        == (winogradEnabled ? .dilatedPolyphase(dilation: d) : .implicitGEMM(cachedA: nil)))
            let expected = FCNReference.conv2d(x, weight: wt, bias: b, padding: .same, dilation: Size2(d))
            let y = withoutGrad { conv2d(x, weight: wt, bias: b, padding: .same, dilation: Size2(d)) }
            expectClose(y, expected, tolerance: 1e-5, "dilation \(d) \(h)x\(w)")
            let yr = withoutGrad { conv2d(x, weight: wt, bias: b, padding: .same, dilation: Size2(d), fusedReLU: true) }
            expectClose(yr, relu(expected), tolerance: 1e-5, "dilation \(d) \(h)x\(w) ReLU")
            let cached = WeightCache(limitBytes: 64 << 20)
            let yc = WeightCache.$current.withValue(cached) {
                withoutGrad { (0..<3).map { _ in conv2d(x, weight: wt, bias: b, padding: .same, dilation: Size2(d)) }.last! }
            }
            expectClose(yc, expected, tolerance: 1e-5, "dilation \(d) \(h)x\(w), weight cache")
            let xg = x.requiringGrad()
            expectClose(conv2d(xg, weight: wt, bias: b, padding: .same, dilation: Size2(d)).detached(), expected,
                        tolerance: 1e-5, "dilation \(d) \(h)x\(w), recording")
        }
        // Planes smaller than d (empty phases), run through the mosaic directly (the rules
        // pick other forms there).
        for (d, h, w) in [(4, 3, 6), (2, 1, 9), (3, 2, 2)] {
            let x = Tensor.randn([1, 5, h, w], seed: UInt64(h * 10 + w)), wt = Tensor.randn([6, 5, 3, 3], seed: 7)
            let g = conv2dGeometry(op: "test", input: x.shape, weight: wt.shape, bias: nil, stride: 1,
                                   padding: Padding.same, dilation: Size2(d), groups: 1)
            let y = withoutGrad { conv2dPolyphase(x, weight: wt, bias: nil, geometry: g, dilation: d, fusedReLU: false) }
            expectClose(y, FCNReference.conv2d(x, weight: wt, padding: .same, dilation: Size2(d)), tolerance: 1e-5,
                        "mosaic, dilation \(d) \(h)x\(w)")
        }
    }

    /// The mosaic gather writes every pixel (phases where the contract puts them, separators
    /// 0), its vector path (d = 2 and 4) gives the scalar path's bits, and the scatter undoes
    /// it exactly, on widths below, at and past one vector (16 per phase) and heights below d.
    @Test func polyphaseGatherAndScatterMatchTheContract() {
        for d in [2, 3, 4] {
            for (h, w) in [(1, 1), (2, 5), (3, 31), (7, 32), (5, 33), (9, 64), (4, 65), (6, 67), (3, 130)] {
                let rows = polyphaseBlocks(h, dilation: d), cols = polyphaseBlocks(w, dilation: d)
                let x = Tensor.randn([h, w], seed: UInt64(d * 1000 + h * 10 + w)).scalars
                func gather(_ vectorised: Bool) -> [Float] {
                    var m = [Float](repeating: .nan, count: rows.extent * cols.extent)
                    x.withUnsafeBufferPointer { xb in m.withUnsafeMutableBufferPointer { mb in
                        polyphaseGather(xb.baseAddress!, H: h, W: w, dilation: d, rows: rows, cols: cols,
                                        into: mb.baseAddress!, vectorised: vectorised)
                    } }
                    return m
                }
                let (fast, plain) = (gather(true), gather(false))
                var expected = [Float](repeating: 0, count: rows.extent * cols.extent)
                for i in 0..<h { for j in 0..<w {
                    expected[(rows.starts[i % d] + i / d) * cols.extent + cols.starts[j % d] + j / d] = x[i * w + j]
                } }
                #expect(plain == expected, "d \(d) \(h)x\(w): scalar gather")
                #expect(fast == expected, "d \(d) \(h)x\(w): vector gather")
                for vectorised in [true, false] {
                    var y = [Float](repeating: .nan, count: h * w)
                    fast.withUnsafeBufferPointer { mb in y.withUnsafeMutableBufferPointer { yb in
                        polyphaseScatter(mb.baseAddress!, H: h, W: w, dilation: d, rows: rows, cols: cols,
                                         into: yb.baseAddress!, vectorised: vectorised)
                    } }
                    #expect(y == x, "d \(d) \(h)x\(w): scatter (vectorised \(vectorised)) undoes the gather")
                }
            }
        }
    }

    @Test func liveTapBoxes() {
        func box(_ x: [Int], _ w: [Int], stride: Size2 = 1, padding: Padding, dilation: Size2 = 1) -> LiveTapBox? {
            conv2dGeometry(op: "test", input: x, weight: w, bias: nil, stride: stride, padding: padding,
                           dilation: dilation, groups: 1).liveTapBox
        }
        // fc6 with same padding on the maps of 64, 96 and 128-pixel images.
        let b64 = box([1, 8, 2, 2], [4, 8, 7, 7], padding: .same)
        #expect(b64?.rows == 2 ..< 5 && b64?.cols == 2 ..< 5)
        #expect(b64.map { [$0.geometry.kH, $0.geometry.padTop, $0.geometry.padBottom, $0.geometry.outH] } == [3, 1, 1, 2])
        let b96 = box([1, 8, 3, 3], [4, 8, 7, 7], padding: .same)
        #expect(b96?.rows == 1 ..< 6 && b96?.geometry.padTop == 2 && b96?.geometry.padBottom == 2)
        #expect(box([1, 8, 4, 4], [4, 8, 7, 7], padding: .same) == nil, "every tap is live on a 4x4 map")
        #expect(box([1, 8, 9, 9], [4, 8, 3, 3], padding: 1) == nil)
        // Stride 2 on 3 rows, pad 3: taps 1...5 reach the input.
        let s2 = box([1, 2, 3, 3], [1, 2, 7, 7], stride: 2, padding: 3)
        #expect(s2?.rows == 1 ..< 6 && s2?.geometry.padTop == 2 && s2?.geometry.padBottom == 2 && s2?.geometry.outH == 2)
        // Dilation 3 on 2 rows, pad 3: the middle tap only, no padding left.
        let d3 = box([1, 2, 2, 2], [1, 2, 3, 3], padding: 3, dilation: 3)
        #expect(d3?.rows == 1 ..< 2 && d3?.geometry.padTop == 0 && d3?.geometry.padBottom == 0)
        // Padding that meets no output position: nothing is live, the full kernel runs (bias only).
        #expect(ConvGeometry.liveTaps(inSize: 1, outSize: 1, kernel: 2, stride: 1, pad: 5, dilation: 1).isEmpty)
    }

    /// On these fixture cases conv2d takes the live-tap path unless the weight cache serves
    /// the weight (then the full kernel): both equal the naive loops, and the live-tap
    /// gradients equal PyTorch's (`matchesPyTorch` checks them too).
    @Test(arguments: loadFixture("conv2d").filter { c in
        let x = c.tensor("x").shape, w = c.tensor("w").shape
        return conv2dGeometry(op: "test", input: x, weight: w, bias: nil, stride: size2(c.ints("stride")),
                              padding: fixturePadding(c), dilation: size2(c.ints("dilation")),
                              groups: c.int("groups")).liveTapBox != nil
    })
    func liveTapPathMatchesFullKernel(_ c: FixtureCase) {
        let x = c.tensor("x"), w = c.tensor("w"), b: Tensor? = c.bool("bias") ? c.tensor("b") : nil
        let stride = size2(c.ints("stride")), dil = size2(c.ints("dilation")), groups = c.int("groups"), pad = fixturePadding(c)
        let naive = conv2dReference(x, weight: w, bias: b, stride: stride, padding: pad, dilation: dil, groups: groups)
        let full = WeightCache.$current.withValue(WeightCache(limitBytes: 64 << 20)) {
            conv2d(x, weight: w, bias: b, stride: stride, padding: pad, dilation: dil, groups: groups)
        }
        let wg = w.requiringGrad()
        let live = conv2d(x, weight: wg, bias: b, stride: stride, padding: pad, dilation: dil, groups: groups)
        expectClose(full, naive, tolerance: Self.tolerance, "\(c) full kernel")
        expectClose(live, naive, tolerance: Self.tolerance, "\(c) live taps")
        live.backward(gradient: c.tensor("grad_out"))
        expectClose(wg.grad!, c.tensor("grad_w"), tolerance: Self.tolerance, "\(c) grad_w")
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: stride, padding: pad,
                               dilation: dil, groups: groups)
        let box = g.liveTapBox!
        // Dead taps get exactly zero.
        let gw = wg.grad!.scalars
        for (i, v) in gw.enumerated() {
            let u = i / g.kW % g.kH, t = i % g.kW
            if !box.rows.contains(u) || !box.cols.contains(t) { #expect(v == 0, "\(c) dead tap \(u),\(t) has gradient \(v)") }
        }
    }

    // MARK: Misuse

    @Test func channelMismatchNamesShapes() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = conv2d(Tensor.zeros([1, 3, 8, 8]), weight: Tensor.zeros([16, 4, 3, 3]))
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("conv2d: input [1, 3, 8, 8] has 3 channels but weight [16, 4, 3, 3] with groups 1 expects 4"))
    }

    @Test func groupsNotDividingChannels() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = conv2d(Tensor.zeros([1, 6, 8, 8]), weight: Tensor.zeros([5, 3, 3, 3]), groups: 2)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("conv2d: weight [5, 3, 3, 3] has 5 output channels, which groups 2 does not divide"))
    }

    @Test func kernelLargerThanPaddedInput() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = conv2d(Tensor.zeros([1, 1, 4, 4]), weight: Tensor.zeros([1, 1, 3, 3]), padding: 0, dilation: 2)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("conv2d: kernel 3x3 with dilation 2 spans 5x5, larger than the padded input 4x4 (input [1, 1, 4, 4]"))
    }
}
