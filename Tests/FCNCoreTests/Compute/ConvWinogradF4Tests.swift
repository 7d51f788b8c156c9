// Winograd F(4x4, 3x3) at inference (`tile: 4` of Convolution/ConvWinogradF2x2.swift,
// CFCNKernels/winograd_f4.c).
//
// The forward is checked against the naive loops on the F(2x2) sweep (odd sizes, sizes that
// are not multiples of 4, 1x1 and 2x3 planes, padding 0...3 incl. asymmetric, batches, bias,
// ReLU) on every ISA path with whole and one-panel chunks; the paths and chunkings give the
// same bits; the pooled output transform equals the unfused pool bit for bit (odd sizes,
// ceil and floor); against PyTorch through the conv2d fixtures; and the algorithm choice
// takes F(4x4) exactly at inference with a cached weight.
// Tolerance 1e-5 relative to max(1, max |expected|), as F(2x2): F(4x4)'s factors (up to 8
// and 1/24, U computed in double) amplify rounding about 20 times more, which is about 1e-7
// of the sum of |terms| on these sizes, still far below 1e-5.
import CFCNKernels
@testable import FCNCore
import FCNTestSupport
import Testing

private func forwardF4(_ g: ConvGeometry, _ x: Tensor, _ w: Tensor, _ b: Tensor?, relu: Bool,
                       isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int = winogradChunkFloats,
                       streamedUFloats: Int = winogradStreamedUFloats) -> Tensor {
    Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
        out.initialize(repeating: .nan)
        convForwardWinograd(g, x: x.storage.pointer, w: w.storage.pointer, bias: b.map { UnsafePointer($0.storage.pointer) },
                            y: out.baseAddress!, relu: relu, tile: 4, isa: isa, chunkFloats: chunkFloats,
                            streamedUFloats: streamedUFloats)
    }
}

@Suite struct ConvWinogradF4Tests {
    static let tolerance: Float = 1e-5

    /// Every ISA path, default and one-panel chunks (chunks start mid-row of tiles, the last
    /// is partial), against the naive loops; every path gives the same bits, and so does the
    /// schedule of a U streamed from memory (chunks of up to U's floats, each stage split
    /// over the threads; the 64 -> 70 case takes two such chunks).
    @Test(arguments: ConvWinogradTests.cases + [
        WinogradCase(n: 1, cin: 64, cout: 70, h: 33, w: 17, pad: (1, 1, 1, 1), bias: true, relu: true),  // wide, 33 = 4*8+1
        WinogradCase(n: 2, cin: 8, cout: 9, h: 6, w: 10, pad: (2, 2, 2, 2), bias: true, relu: false),    // pad 2
        WinogradCase(n: 1, cin: 3, cout: 20, h: 65, w: 65, pad: (1, 1, 1, 1), bias: true, relu: true),   // 289 tiles: shares 144, 145
    ])
    func matchesReferenceOnEveryPath(_ c: WinogradCase) {
        let x = Tensor.randn([c.n, c.cin, c.h, c.w], seed: 21), w = Tensor.randn([c.cout, c.cin, 3, 3], seed: 22)
        let b = c.bias ? Tensor.randn([c.cout], seed: 23) : nil
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b?.shape, stride: 1,
                               padding: c.padding, dilation: 1, groups: 1)
        var expected = conv2dReference(x, weight: w, bias: b, padding: c.padding)
        if c.relu { expected = relu(expected) }
        for isa in GEMMConfig.availableISAs {
            let nr = isa.kernelShape!.nr
            let whole = forwardF4(g, x, w, b, relu: c.relu, isa: isa)
            expectClose(whole, expected, tolerance: Self.tolerance, "\(c) \(isa)")
            let chunked = forwardF4(g, x, w, b, relu: c.relu, isa: isa, chunkFloats: 36 * (c.cin + c.cout) * nr)
            let same = chunked.scalars == whole.scalars
            #expect(same, "\(c) \(isa): one-panel chunks give the same bits")
            let streamed = forwardF4(g, x, w, b, relu: c.relu, isa: isa, chunkFloats: 36 * (c.cin + c.cout) * nr,
                                     streamedUFloats: 0)
            let sameStreamed = streamed.scalars == whole.scalars
            #expect(sameStreamed, "\(c) \(isa): the streamed-U schedule gives the same bits")
        }
    }

    /// The input and output transforms alone give the same bits on every path (no FMA
    /// contraction), every lane of V written. The AVX-512 path runs 16 tiles per vector, so
    /// the shapes take rows of fewer and more than 16 tiles, groups that a panel boundary
    /// cuts (rows of 38 tiles, panels of 32), chunks that start inside a row (`t0`), one
    /// tile per row, and paddings from a crop (-1) to 3 on the top and left.
    @Test(arguments: [
        (23, 37, 1, 1, 0),     // 10 tiles per row
        (9, 150, 1, 1, 0),     // 38 tiles per row: groups of 16, 16, 6, cut at lanes 32 and 64
        (13, 150, 1, 1, 7),    // a chunk starting at tile 7 of the first row
        (7, 66, 3, 2, 3),      // padding 3 on top, 2 on the left: patches reach past the image
        (11, 71, -1, -1, 0),   // a crop (the flipped-kernel input gradient's negative padding)
        (21, 3, 1, 1, 0),      // one tile per row
    ])
    func transformsAreBitIdenticalOnEveryPath(_ h: Int, _ w: Int, _ pt: Int, _ pl: Int, _ t0: Int) {
        let x = Tensor.randn([1, 11, h, w], seed: 24)
        let outH = h + 2 * pt - 2, outW = w + 2 * pl - 2
        let nr = 32, tilesW = (outW + 3) / 4, tiles = ((outH + 3) / 4) * tilesW - t0, nt = (tiles + nr - 1) / nr * nr
        func input(_ flag: Int32) -> [Float] {
            var v = [Float](repeating: .nan, count: 36 * nt * 11)
            var s = [Float](repeating: 0, count: 52 * (tilesW + 1))
            fcn_winograd_f4_input(flag, x.storage.pointer, 11, Int64(h), Int64(w), Int64(pt), Int64(pl),
                                  Int64(tilesW), Int64(t0), Int64(tiles), 0, 11, Int64(nr), &v, Int64(nt * 11), &s)
            return v
        }
        // One NaN product (tile 0, channel 0): its tile's cells must stay NaN through the ReLU.
        var m = Tensor.randn([36, 13, nt], seed: 25)
        m.withUnsafeMutableBufferPointer { $0[0] = .nan }
        let unwritten = -Float.greatestFiniteMagnitude
        func output(_ flag: Int32) -> [Float] {
            var y = [Float](repeating: unwritten, count: 13 * outH * outW)
            var s = [Float](repeating: 0, count: 40 * tilesW)
            fcn_winograd_f4_output(flag, m.storage.pointer, Int64(13 * nt), Int64(nt), 0, 13, Int64(tilesW), Int64(t0),
                                   Int64(tiles), nil, 1, &y, Int64(outH), Int64(outW), &s)
            return y
        }
        let (vp, yp) = (input(Int32(FCN_ISA_PORTABLE)), output(Int32(FCN_ISA_PORTABLE)))
        #expect(!vp.contains { $0.isNaN }, "every lane of V written")
        if t0 == 0 { #expect(!yp.contains(unwritten) && yp[0].isNaN, "every output cell written, the NaN kept") }
        for isa in GEMMConfig.availableISAs where isa != .neon {
            let (vi, yi) = (input(isa.elementwiseFlag), output(isa.elementwiseFlag))
            // Compared bit for bit: NaN cells and the unwritten cells outside the chunk.
            let sameV = vi == vp, sameY = zip(yi, yp).allSatisfy { $0.bitPattern == $1.bitPattern }
            #expect(sameV, "\(isa) input transform")
            #expect(sameY, "\(isa) output transform")
        }
    }

    /// The pooled output transform (2x2 windows per 4x4 tile) equals the unfused pool of the
    /// same F(4x4) output bit for bit: odd sizes keep (ceil) or drop (floor) a last partial
    /// window, whose tile may hold one valid pooled row or column.
    @Test(arguments: [
        ([1, 5, 9, 11], 7, Padding.symmetric(1), true),
        ([1, 5, 9, 11], 7, Padding.symmetric(1), false),
        ([2, 3, 10, 14], 17, Padding.symmetric(1), true),   // 10 = 4*2+2: the last tile holds one pooled row
        ([1, 4, 7, 6], 3, Padding.explicit(top: 2, bottom: 0, left: 0, right: 1), true),
        ([1, 2, 3, 3], 2, Padding.symmetric(0), true),
    ])
    func pooledTransformMatchesUnfused(_ xs: [Int], _ cout: Int, _ padding: Padding, _ ceil: Bool) {
        let x = Tensor.randn(xs, seed: 31), w = Tensor.randn([cout, xs[1], 3, 3], seed: 32), b = Tensor.randn([cout], seed: 33)
        let g = conv2dGeometry(op: "test", input: xs, weight: w.shape, bias: [cout], stride: 1, padding: padding,
                               dilation: 1, groups: 1)
        let ph = ceil ? (g.outH + 1) / 2 : g.outH / 2, pw = ceil ? (g.outW + 1) / 2 : g.outW / 2
        for isa in GEMMConfig.availableISAs {
            let nr = isa.kernelShape!.nr
            for chunk in [winogradChunkFloats, 36 * (xs[1] + cout) * nr] {
                let expected = maxPool2d(forwardF4(g, x, w, b, relu: true, isa: isa, chunkFloats: chunk),
                                         kernel: 2, stride: 2, ceilMode: ceil)
                let fused = Tensor.make(shape: [g.batch, cout, ph, pw]) {
                    $0.initialize(repeating: .nan)
                    convForwardWinograd(g, x: x.storage.pointer, w: w.storage.pointer, bias: b.storage.pointer,
                                        y: $0.baseAddress!, relu: true, pool: (ph, pw), tile: 4, isa: isa, chunkFloats: chunk)
                }
                let same = fused.scalars == expected.scalars
                #expect(same, "\(xs) \(padding) ceil \(ceil) \(isa) chunk \(chunk)")
            }
        }
    }

    /// The conv2d fixtures Winograd can compute, through F(4x4), against PyTorch's outputs.
    @Test(arguments: loadFixture("conv2d"))
    func matchesPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x"), w = c.tensor("w"), b: Tensor? = c.bool("bias") ? c.tensor("b") : nil
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b?.shape, stride: size2(c.ints("stride")),
                               padding: fixturePadding(c), dilation: size2(c.ints("dilation")), groups: c.int("groups"))
        guard g.allowsWinograd else { return }
        expectClose(forwardF4(g, x, w, b, relu: false), c.tensor("out"), tolerance: Self.tolerance, "\(c) out")
    }

    /// F(4x4) is chosen at inference with a cached weight (plain and pool-fused), F(2x2)
    /// when a gradient is recorded or no cache serves the weight; conv2d with the cache on
    /// equals the F(4x4) product run directly, bit for bit.
    @Test func chosenAtInferenceWithACachedWeight() {
        let x = Tensor.randn([1, 64, 18, 18], seed: 41), w = Tensor.randn([64, 64, 3, 3], seed: 42)
        let b = Tensor.randn([64], seed: 43)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b.shape, stride: 1, padding: 1,
                               dilation: 1, groups: 1)
        guard g.usesWinograd && winogradF4Enabled else { return }
        let cache = WeightCache(limitBytes: 64 << 20)
        WeightCache.$current.withValue(cache) {
            withoutGrad {
                let mode = ConvMode.conv2d(x: x, weight: w, bias: b)
                guard case .winogradF4x4 = g.algorithm(for: .forward, mode: mode) else {
                    Issue.record("inference with a cached weight takes F(4x4)"); return
                }
                var pooled = mode
                pooled.poolFollows = true
                guard case .winogradF4x4ReLUPool = g.algorithm(for: .forward, mode: pooled) else {
                    Issue.record("the fused pool takes F(4x4)"); return
                }
                for call in 0..<2 {
                    let y = conv2d(x, weight: w, bias: b, padding: 1, fusedReLU: true)
                    let same = y.scalars == forwardF4(g, x, w, b, relu: true).scalars
                    #expect(same, "call \(call)")
                }
            }
            let recording = ConvMode(wholeOp: true, recording: true, cachedWeight: nil)
            #expect(g.algorithm(for: .forward, mode: recording) == .winogradF2x2(cachedWeight: nil))
        }
        WeightCache.$current.withValue(.disabled) {
            withoutGrad {
                #expect(g.algorithm(for: .forward, mode: .conv2d(x: x, weight: w, bias: b)) == .winogradF2x2(cachedWeight: nil))
            }
        }
    }
}
