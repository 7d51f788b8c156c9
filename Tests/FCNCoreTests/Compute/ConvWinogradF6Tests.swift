// Winograd F(6x6, 3x3) at inference (`tile: 6` of Convolution/ConvWinogradF2x2.swift,
// CFCNKernels/winograd_f6.c).
//
// The forward is checked against the naive loops on the F(2x2) sweep plus sizes around the
// 6-pixel tile (65 x 65: 121 tiles, shares of 64 and 57 on two threads; 13 = 6*2+1; pad 2)
// on every ISA path with whole and one-panel chunks and the streamed-U schedule, which give
// the same bits; the transforms alone give the same bits on every path; against PyTorch
// through the conv2d fixtures; and the algorithm choice takes F(6x6) exactly where
// `winogradF6Pays` says.
// Tolerance 5e-5 relative to max(1, max |expected|), where F(2x2) and F(4x4) take 1e-5:
// F(6x6)'s factors (up to 32 and 1/90, U computed in double) amplify rounding more. The
// largest error on this sweep is 1.2e-5 (64 -> 70 channels of unit-variance weights), where
// F(4x4)'s is 7.3e-6; Benchmarks.md, Accuracy, states it for whole networks.
import CFCNKernels
@testable import FCNCore
import FCNTestSupport
import Testing

private func forwardF6(_ g: ConvGeometry, _ x: Tensor, _ w: Tensor, _ b: Tensor?, relu: Bool,
                       isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int = winogradChunkFloats,
                       streamedUFloats: Int = winogradStreamedUFloats) -> Tensor {
    Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
        out.initialize(repeating: .nan)
        convForwardWinograd(g, x: x.storage.pointer, w: w.storage.pointer, bias: b.map { UnsafePointer($0.storage.pointer) },
                            y: out.baseAddress!, relu: relu, tile: 6, isa: isa, chunkFloats: chunkFloats,
                            streamedUFloats: streamedUFloats)
    }
}

@Suite struct ConvWinogradF6Tests {
    static let tolerance: Float = 5e-5

    /// Every ISA path, default and one-panel chunks (chunks start mid-row of tiles, the last
    /// is partial) and the streamed-U schedule, against the naive loops; all give the same
    /// bits.
    @Test(arguments: ConvWinogradTests.cases + [
        WinogradCase(n: 1, cin: 64, cout: 70, h: 33, w: 17, pad: (1, 1, 1, 1), bias: true, relu: true),
        WinogradCase(n: 2, cin: 8, cout: 9, h: 13, w: 10, pad: (2, 2, 2, 2), bias: true, relu: false),   // 13 = 6*2+1, pad 2
        WinogradCase(n: 1, cin: 3, cout: 20, h: 65, w: 65, pad: (1, 1, 1, 1), bias: true, relu: true),  // 121 tiles
        WinogradCase(n: 1, cin: 5, cout: 6, h: 200, w: 7, pad: (0, 1, 3, 0), bias: false, relu: true),   // one tile per row
    ])
    func matchesReferenceOnEveryPath(_ c: WinogradCase) {
        let x = Tensor.randn([c.n, c.cin, c.h, c.w], seed: 61), w = Tensor.randn([c.cout, c.cin, 3, 3], seed: 62)
        let b = c.bias ? Tensor.randn([c.cout], seed: 63) : nil
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b?.shape, stride: 1,
                               padding: c.padding, dilation: 1, groups: 1)
        var expected = conv2dReference(x, weight: w, bias: b, padding: c.padding)
        if c.relu { expected = relu(expected) }
        for isa in GEMMConfig.availableISAs {
            let nr = isa.kernelShape!.nr
            let whole = forwardF6(g, x, w, b, relu: c.relu, isa: isa)
            expectClose(whole, expected, tolerance: Self.tolerance, "\(c) \(isa)")
            let chunked = forwardF6(g, x, w, b, relu: c.relu, isa: isa, chunkFloats: 64 * (c.cin + c.cout) * nr)
            let same = chunked.scalars == whole.scalars
            #expect(same, "\(c) \(isa): one-panel chunks give the same bits")
            let streamed = forwardF6(g, x, w, b, relu: c.relu, isa: isa, chunkFloats: 64 * (c.cin + c.cout) * nr,
                                     streamedUFloats: 0)
            let sameStreamed = streamed.scalars == whole.scalars
            #expect(sameStreamed, "\(c) \(isa): the streamed-U schedule gives the same bits")
        }
    }

    /// The input and output transforms alone give the same bits on every path (no FMA
    /// contraction), every lane of V and every output cell written, a NaN product kept
    /// through the ReLU. The AVX-512 path runs up to 16 tiles of a row per vector, so the
    /// shapes take rows of fewer and more than 16 tiles, groups that a panel boundary cuts
    /// (rows of 25 tiles, panels of 32), chunks that start inside a row (`t0`), one tile per
    /// row, and paddings from a crop (-1) to 3 on the top and left.
    @Test(arguments: [
        (23, 37, 1, 1, 0),     // 7 tiles per row
        (9, 150, 1, 1, 0),     // 25 tiles per row: runs cut at lanes 32 and 64
        (13, 150, 1, 1, 7),    // a chunk starting at tile 7 of the first row
        (7, 66, 3, 2, 3),      // padding 3 on top, 2 on the left: patches reach past the image
        (11, 71, -1, -1, 0),   // a crop
        (21, 3, 1, 1, 0),      // one tile per row
    ])
    func transformsAreBitIdenticalOnEveryPath(_ h: Int, _ w: Int, _ pt: Int, _ pl: Int, _ t0: Int) {
        let x = Tensor.randn([1, 11, h, w], seed: 64)
        let outH = h + 2 * pt - 2, outW = w + 2 * pl - 2
        let nr = 32, tilesW = (outW + 5) / 6, tiles = ((outH + 5) / 6) * tilesW - t0, nt = (tiles + nr - 1) / nr * nr
        func input(_ flag: Int32) -> [Float] {
            var v = [Float](repeating: .nan, count: 64 * nt * 11)
            fcn_winograd_f6_input(flag, x.storage.pointer, 11, Int64(h), Int64(w), Int64(pt), Int64(pl),
                                  Int64(tilesW), Int64(t0), Int64(tiles), 0, 11, Int64(nr), &v, Int64(nt * 11), nil)
            return v
        }
        var m = Tensor.randn([64, 13, nt], seed: 65)
        m.withUnsafeMutableBufferPointer { $0[0] = .nan }
        let unwritten = -Float.greatestFiniteMagnitude
        func output(_ flag: Int32) -> [Float] {
            var y = [Float](repeating: unwritten, count: 13 * outH * outW)
            fcn_winograd_f6_output(flag, m.storage.pointer, Int64(13 * nt), Int64(nt), 0, 13, Int64(tilesW), Int64(t0),
                                   Int64(tiles), nil, 1, &y, Int64(outH), Int64(outW), nil)
            return y
        }
        let (vp, yp) = (input(Int32(FCN_ISA_PORTABLE)), output(Int32(FCN_ISA_PORTABLE)))
        #expect(!vp.contains { $0.isNaN }, "every lane of V written")
        if t0 == 0 { #expect(!yp.contains(unwritten) && yp[0].isNaN, "every output cell written, the NaN kept") }
        for isa in GEMMConfig.availableISAs where isa != .neon {
            let (vi, yi) = (input(isa.elementwiseFlag), output(isa.elementwiseFlag))
            let sameV = vi == vp, sameY = zip(yi, yp).allSatisfy { $0.bitPattern == $1.bitPattern }
            #expect(sameV, "\(isa) input transform")
            #expect(sameY, "\(isa) output transform")
        }
    }

    /// The conv2d fixtures Winograd can compute, through F(6x6), against PyTorch's outputs.
    @Test(arguments: loadFixture("conv2d"))
    func matchesPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x"), w = c.tensor("w"), b: Tensor? = c.bool("bias") ? c.tensor("b") : nil
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b?.shape, stride: size2(c.ints("stride")),
                               padding: fixturePadding(c), dilation: size2(c.ints("dilation")), groups: c.int("groups"))
        guard g.allowsWinograd else { return }
        expectClose(forwardF6(g, x, w, b, relu: false), c.tensor("out"), tolerance: Self.tolerance, "\(c) out")
    }

    /// F(6x6) is chosen at inference with a cached weight on the float32 AVX-512 path (its
    /// transforms are tuned there only; F(4x4) elsewhere) when both channel counts reach
    /// `winogradF6MinChannels` and the 6x6 tiles need fewer products (18 x 18: 9 tiles of 64
    /// against 25 of 36); F(4x4) on 16 x 16 (9 against 16: more products) and with fewer
    /// channels; conv2d with the cache on equals the F(6x6) product run directly, bit for bit.
    @Test func chosenWhereItPays() {
        let c = ConvGeometry.winogradF6MinChannels
        let x = Tensor.randn([1, c, 18, 18], seed: 66), w = Tensor.randn([c, c, 3, 3], seed: 67) * 0.02
        let b = Tensor.randn([c], seed: 68)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b.shape, stride: 1, padding: 1,
                               dilation: 1, groups: 1)
        guard g.usesWinograd && winogradF4Enabled && winogradF6Enabled else { return }
        #expect(g.winogradF6Pays)
        let small = conv2dGeometry(op: "test", input: [1, c, 16, 16], weight: w.shape, bias: b.shape, stride: 1,
                                   padding: 1, dilation: 1, groups: 1)
        #expect(!small.winogradF6Pays, "16 x 16: 9 tiles of 64 products against 16 of 36")
        let narrow = conv2dGeometry(op: "test", input: [1, c / 2, 18, 18], weight: [c, c / 2, 3, 3], bias: b.shape,
                                    stride: 1, padding: 1, dilation: 1, groups: 1)
        #expect(!narrow.winogradF6Pays, "fewer input channels than winogradF6MinChannels")
        let cache = WeightCache(limitBytes: 256 << 20)
        WeightCache.$current.withValue(cache) {
            withoutGrad {
                let mode = ConvMode.conv2d(x: x, weight: w, bias: b)
                guard mode.cachedWeight?.isa == .avx512 else {
                    guard case .winogradF4x4 = g.algorithm(for: .forward, mode: mode) else {
                        Issue.record("F(4x4) off the float32 AVX-512 path"); return
                    }
                    return
                }
                guard case .winogradF6x6 = g.algorithm(for: .forward, mode: mode) else {
                    Issue.record("inference with a cached weight takes F(6x6)"); return
                }
                for call in 0..<2 {
                    let y = conv2d(x, weight: w, bias: b, padding: 1, fusedReLU: true)
                    let same = y.scalars == forwardF6(g, x, w, b, relu: true).scalars
                    #expect(same, "call \(call)")
                }
            }
            let recording = ConvMode(wholeOp: true, recording: true, cachedWeight: nil)
            #expect(g.algorithm(for: .forward, mode: recording) == .winogradF2x2(cachedWeight: nil))
        }
    }
}
