// Winograd F(2x2, 3x3) convolution (Convolution/ConvWinogradF2x2.swift, CFCNKernels/winograd.c).
//
// The forward is checked against the naive loops on a sweep of geometries (odd and even
// sizes, 1x1 and 2x2 planes, padding 0...3 incl. asymmetric, channel counts that are not
// multiples of the register tile, batches, bias, fused ReLU) on every ISA path, with chunks
// small enough that a chunk starts mid-row and the last one is partial; against PyTorch
// through the conv2d fixtures; and the input gradient (a flipped-kernel convolution that may
// crop) against the im2col path and the adjoint identity.
// Tolerance 1e-5 relative to max(1, max |expected|), as the other conv tests: the transforms
// add at most 4 terms per stage with factors 0, +-1, +-1/2, so the error stays at float
// rounding of sums of a few hundred products.
import CFCNKernels
@testable import FCNCore
import FCNTestSupport
import Testing

struct WinogradCase: Sendable, CustomTestStringConvertible {
    var n: Int, cin: Int, cout: Int, h: Int, w: Int
    var pad: (top: Int, bottom: Int, left: Int, right: Int)
    var bias: Bool, relu: Bool
    var testDescription: String { "n\(n) \(cin)->\(cout) \(h)x\(w) pad \(pad) bias \(bias) relu \(relu)" }
    var padding: Padding { .explicit(top: pad.top, bottom: pad.bottom, left: pad.left, right: pad.right) }
}

private func forward(_ g: ConvGeometry, _ x: Tensor, _ w: Tensor, _ b: Tensor?, relu: Bool,
                     isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int = winogradChunkFloats) -> Tensor {
    Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
        convForwardWinograd(g, x: x.storage.pointer, w: w.storage.pointer, bias: b.map { UnsafePointer($0.storage.pointer) },
                            y: out.baseAddress!, relu: relu, isa: isa, chunkFloats: chunkFloats)
    }
}

@Suite struct ConvWinogradTests {
    static let tolerance: Float = 1e-5

    static let cases: [WinogradCase] = [
        WinogradCase(n: 1, cin: 3, cout: 5, h: 9, w: 11, pad: (1, 1, 1, 1), bias: true, relu: false),
        WinogradCase(n: 2, cin: 17, cout: 15, h: 16, w: 16, pad: (1, 1, 1, 1), bias: true, relu: true),   // rows of 8 tiles
        WinogradCase(n: 1, cin: 4, cout: 29, h: 7, w: 40, pad: (0, 0, 0, 0), bias: false, relu: false),   // valid, 5x38
        WinogradCase(n: 1, cin: 6, cout: 3, h: 1, w: 1, pad: (1, 1, 1, 1), bias: true, relu: false),      // 1x1 plane
        WinogradCase(n: 1, cin: 2, cout: 2, h: 2, w: 3, pad: (1, 1, 1, 1), bias: false, relu: true),      // 2x3 plane
        WinogradCase(n: 1, cin: 5, cout: 7, h: 8, w: 13, pad: (2, 0, 0, 3), bias: true, relu: false),     // asymmetric
        WinogradCase(n: 1, cin: 9, cout: 33, h: 13, w: 12, pad: (3, 3, 2, 2), bias: true, relu: true),    // pad 3: border tiles all zero
        WinogradCase(n: 3, cin: 32, cout: 32, h: 21, w: 19, pad: (1, 1, 1, 1), bias: true, relu: true),
        WinogradCase(n: 1, cin: 1, cout: 1, h: 5, w: 5, pad: (0, 1, 0, 1), bias: false, relu: false),     // one-sided pad, 5x5 -> 4x4
    ]

    /// Every ISA path, default and tiny chunks, against the naive loops.
    @Test(arguments: cases)
    func matchesReferenceOnEveryPath(_ c: WinogradCase) {
        let x = Tensor.randn([c.n, c.cin, c.h, c.w], seed: 1), w = Tensor.randn([c.cout, c.cin, 3, 3], seed: 2)
        let b = c.bias ? Tensor.randn([c.cout], seed: 3) : nil
        var g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b?.shape, stride: 1,
                               padding: c.padding, dilation: 1, groups: 1)
        g.winograd = .always
        var expected = conv2dReference(x, weight: w, bias: b, padding: c.padding)
        if c.relu { expected = relu(expected) }
        for isa in GEMMConfig.availableISAs {
            let nr = isa.kernelShape!.nr
            // One panel per chunk: chunks start mid-row, the last one is partial.
            let tiny = 16 * (c.cin + c.cout) * nr
            for chunk in [winogradChunkFloats, tiny] {
                let y = forward(g, x, w, b, relu: c.relu, isa: isa, chunkFloats: chunk)
                expectClose(y, expected, tolerance: Self.tolerance, "\(c) \(isa) chunk \(chunk)")
            }
        }
    }

    /// The transforms give the same bits on every path, and chunking changes no bit (each
    /// output is the same sums in the same order whatever the chunk).
    @Test func pathsAndChunksAreBitIdentical() {
        let x = Tensor.randn([1, 11, 23, 37], seed: 4), w = Tensor.randn([13, 11, 3, 3], seed: 5)
        var g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: 1, padding: 1,
                               dilation: 1, groups: 1)
        g.winograd = .always
        let isa = GEMMConfig.defaultISA, nr = isa.kernelShape!.nr
        let whole = forward(g, x, w, nil, relu: false)
        let chunked = forward(g, x, w, nil, relu: false, chunkFloats: 16 * 24 * nr * 3)
        let same = whole.scalars == chunked.scalars
        #expect(same, "chunked result differs")
        // Transforms alone on each path: the input transform of one chunk, bit for bit.
        let tilesW = (g.outW + 1) / 2, tiles = ((g.outH + 1) / 2) * tilesW, nt = (tiles + nr - 1) / nr * nr
        func transformed(_ flag: Int32) -> [Float] {
            var v = [Float](repeating: .nan, count: 16 * nt * g.inChannels)
            var s = [Float](repeating: 0, count: 12 * (tilesW + 2))
            fcn_winograd_f2_input(flag, x.storage.pointer, Int64(g.inChannels), Int64(g.inH), Int64(g.inW), 1, 1,
                                  Int64(tilesW), 0, Int64(tiles), 0, Int64(g.inChannels), Int64(nr), &v,
                                  Int64(nt * g.inChannels), &s)
            return v
        }
        let portable = transformed(Int32(FCN_ISA_PORTABLE))
        #expect(!portable.contains { $0.isNaN }, "every lane of V written (padding lanes zeroed)")
        for isa in GEMMConfig.availableISAs where isa != .neon {
            let same = transformed(isa.elementwiseFlag) == portable
            #expect(same, "\(isa) input transform")
        }
    }

    /// The conv2d fixtures that Winograd can compute (3x3, stride 1, dilation 1, groups 1),
    /// forced through it, against PyTorch's outputs.
    @Test(arguments: loadFixture("conv2d"))
    func matchesPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x"), w = c.tensor("w"), b: Tensor? = c.bool("bias") ? c.tensor("b") : nil
        var g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b?.shape, stride: size2(c.ints("stride")),
                               padding: fixturePadding(c), dilation: size2(c.ints("dilation")), groups: c.int("groups"))
        guard g.allowsWinograd else { return }
        g.winograd = .always
        expectClose(forward(g, x, w, b, relu: false), c.tensor("out"), tolerance: Self.tolerance, "\(c) out")
        let gy = c.tensor("grad_out")
        let gx = Tensor.make(shape: x.shape) { convBackwardData(g, gy: gy.storage.pointer, w: w.storage.pointer, gx: $0.baseAddress!) }
        let gw = Tensor.make(shape: w.shape) { convBackwardWeightWinograd(g, x: x.storage.pointer, gy: gy.storage.pointer, gw: $0.baseAddress!) }
        expectClose(gx, c.tensor("grad_x"), tolerance: Self.tolerance, "\(c) grad_x")
        expectClose(gw, c.tensor("grad_w"), tolerance: Self.tolerance, "\(c) grad_w")
    }

    /// The weight gradient on every ISA path, whole and in tiny chunks (chunks start
    /// mid-row, partial last chunk), against the naive sums; batches accumulate.
    @Test(arguments: cases)
    func weightGradient(_ c: WinogradCase) {
        let x = Tensor.randn([c.n, c.cin, c.h, c.w], seed: 12), w = Tensor.randn([c.cout, c.cin, 3, 3], seed: 13)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: 1,
                               padding: c.padding, dilation: 1, groups: 1)
        let gy = Tensor.randn([c.n, c.cout, g.outH, g.outW], seed: 14)
        let expected = conv2dWeightGradReference(x, gy, weightShape: w.shape, stride: 1, padding: c.padding,
                                                 dilation: 1, groups: 1)
        for isa in GEMMConfig.availableISAs {
            for chunk in [winogradChunkFloats, 16 * (c.cin + c.cout) * 16] {
                let gw = Tensor.make(shape: w.shape) {
                    convBackwardWeightWinograd(g, x: x.storage.pointer, gy: gy.storage.pointer, gw: $0.baseAddress!,
                                               isa: isa, chunkFloats: chunk)
                }
                expectClose(gw, expected, tolerance: Self.tolerance, "\(c) \(isa) chunk \(chunk)")
            }
        }
    }

    /// The input gradient (the flipped-kernel convolution, cropping for pads above 2) by
    /// Winograd equals the im2col path and satisfies <conv(x), gy> = <x, grad_x(gy)>.
    @Test(arguments: [(1, 1, 1, 1), (0, 0, 0, 0), (2, 2, 2, 2), (3, 1, 0, 4), (2, 0, 1, 3)])
    func inputGradient(_ pt: Int, _ pb: Int, _ pl: Int, _ pr: Int) {
        let x = Tensor.randn([2, 20, 15, 18], seed: 6), w = Tensor.randn([24, 20, 3, 3], seed: 7)
        let pad = Padding.explicit(top: pt, bottom: pb, left: pl, right: pr)
        var g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: 1, padding: pad,
                               dilation: 1, groups: 1)
        let gy = Tensor.randn([2, 24, g.outH, g.outW], seed: 8)
        func gradX(_ choice: WinogradChoice) -> Tensor {
            g.winograd = choice
            return Tensor.make(shape: x.shape) { convBackwardData(g, gy: gy.storage.pointer, w: w.storage.pointer, gx: $0.baseAddress!) }
        }
        let wino = gradX(.always), im2col = gradX(.never)
        expectClose(wino, im2col, tolerance: Self.tolerance, "pad \(pad) winograd vs im2col")
        let lhs = dot(conv2dReference(x, weight: w, padding: pad), gy), rhs = dot(x, wino)
        #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)), "adjoint \(lhs) vs \(rhs)")
    }

    /// conv2d picks Winograd for VGG-like layers and the result equals the im2col path.
    @Test func conv2dUsesItForLargeLayers() {
        let x = Tensor.randn([1, 64, 20, 22], seed: 9), w = Tensor.randn([72, 64, 3, 3], seed: 10)
        let b = Tensor.randn([72], seed: 11)
        var g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b.shape, stride: 1, padding: 1,
                               dilation: 1, groups: 1)
        #expect(g.usesWinograd == winogradEnabled)
        let y = conv2d(x, weight: w, bias: b, padding: 1, fusedReLU: true)
        g.winograd = .never
        let im2col = Tensor.make(shape: y.shape) {
            convForward(g, x: x.storage.pointer, w: w.storage.pointer, bias: b.storage.pointer, y: $0.baseAddress!, relu: true)
        }
        expectClose(y, im2col, tolerance: Self.tolerance, "conv2d vs im2col")
    }

    /// Which geometries take the Winograd path under `.auto` (none with `FCN_WINOGRAD=0`).
    @Test func selection() {
        func uses(_ x: [Int], _ w: [Int], stride: Size2 = 1, padding: Padding = 1, dilation: Size2 = 1, groups: Int = 1) -> Bool {
            conv2dGeometry(op: "test", input: x, weight: w, bias: nil, stride: stride, padding: padding,
                           dilation: dilation, groups: groups).usesWinograd
        }
        // Under FCN_WINOGRAD=0 `.auto` picks it nowhere; `.always` (below) still runs it.
        #expect(uses([1, 64, 56, 56], [64, 64, 3, 3]) == winogradEnabled)
        #expect(uses([2, 64, 16, 16], [64, 64, 3, 3]) == winogradEnabled)  // 64 tiles per image
        #expect(!uses([1, 64, 14, 14], [64, 64, 3, 3]))                    // 49 tiles
        #expect(!uses([1, 48, 56, 56], [64, 48, 3, 3]))                    // few input channels
        #expect(!uses([1, 64, 56, 56], [48, 64, 3, 3]))                    // few output channels
        #expect(!uses([1, 64, 56, 56], [64, 64, 3, 3], stride: 2))
        #expect(!uses([1, 64, 56, 56], [64, 64, 3, 3], padding: 2, dilation: 2))
        #expect(!uses([1, 64, 56, 56], [64, 32, 3, 3], groups: 2))
        #expect(!uses([1, 64, 56, 56], [64, 64, 5, 5], padding: 2))
        #expect(!uses([1, 64, 56, 56], [64, 64, 1, 1], padding: 0))
        var g = conv2dGeometry(op: "test", input: [1, 1, 4, 4], weight: [1, 1, 3, 3], bias: nil, stride: 1, padding: 0,
                               dilation: 1, groups: 1)
        #expect(!g.usesWinograd)
        g.winograd = .always
        #expect(g.usesWinograd)
        g.fastPaths = false
        #expect(!g.usesWinograd)
    }
}
