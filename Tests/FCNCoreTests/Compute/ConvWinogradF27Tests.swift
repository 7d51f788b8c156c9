// Winograd F(2, 7) along the rows (Convolution/ConvWinogradF27.swift, CFCNKernels/winograd_f27.c): the
// inference path of kh x 7 convolutions with a cached weight.
//
// The forward is checked against the naive loops on a sweep of geometries (kernel heights
// 1, 2, 3 and 7; odd output widths, a 1x1 output, padding wider than the kernel so that
// whole column pairs read only zeros, asymmetric padding, channel counts that are not
// multiples of the register tile, batches, bias, fused ReLU) on every ISA path, whole and
// one output row per chunk; against PyTorch through the conv2d fixtures with 7-wide
// kernels; and through `conv2d` with the shared cache, where the first call must not cache
// a second packed form of the weight.
// Tolerance 1e-5 relative to max(1, max |expected|), as the other conv tests: the
// transforms' factors reach 21/4 and 64 x 32/45, and the error on fc6 shapes is about 1.8e-6
// of the largest output (5x a direct float32 GEMM's, numpy emulation).
@testable import FCNCore
import FCNTestSupport
import Testing

struct WinogradF27Case: Sendable, CustomTestStringConvertible {
    var n: Int, cin: Int, cout: Int, kh: Int, h: Int, w: Int
    var pad: (top: Int, bottom: Int, left: Int, right: Int)
    var bias: Bool, relu: Bool
    var testDescription: String { "n\(n) \(cin)->\(cout) k\(kh)x7 \(h)x\(w) pad \(pad) bias \(bias) relu \(relu)" }
    var padding: Padding { .explicit(top: pad.top, bottom: pad.bottom, left: pad.left, right: pad.right) }
}

/// What `forwardF27` did: computed y, or found U not built yet (first sighting) or not keepable.
private enum Outcome { case done, firstSighting, unavailable }

/// y by F(2, 7) with U from `cache` (the first call only registers the weight there).
private func forwardF27(_ g: ConvGeometry, _ x: Tensor, _ w: Tensor, _ b: Tensor?, relu: Bool, cache: WeightCache,
                        isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int = winogradF27ChunkFloats)
    -> (Tensor, Outcome) {
    let u: PackedWeights
    switch winogradF27Weights(g, weight: CachedOperand(storage: w.storage, offset: 0, cache: cache), isa: isa) {
    case .unavailable: return (Tensor.zeros([1]), .unavailable)
    case .firstSighting: return (Tensor.zeros([1]), .firstSighting)
    case .ready(let p): u = p
    }
    let y = Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
        out.initialize(repeating: .nan)
        convForwardWinogradF27(g, x: x.storage.pointer, u: u, bias: b.map { UnsafePointer($0.storage.pointer) },
                               y: out.baseAddress!, relu: relu, isa: isa, chunkFloats: chunkFloats)
    }
    return (y, .done)
}

@Suite struct ConvWinogradF27Tests {
    static let tolerance: Float = 1e-5

    static let cases: [WinogradF27Case] = [
        WinogradF27Case(n: 1, cin: 3, cout: 5, kh: 7, h: 9, w: 11, pad: (3, 3, 3, 3), bias: true, relu: false),
        WinogradF27Case(n: 2, cin: 17, cout: 15, kh: 3, h: 6, w: 16, pad: (1, 1, 3, 3), bias: true, relu: true),
        WinogradF27Case(n: 1, cin: 4, cout: 29, kh: 1, h: 5, w: 7, pad: (0, 0, 0, 0), bias: false, relu: false),  // 1 column
        WinogradF27Case(n: 1, cin: 6, cout: 3, kh: 7, h: 1, w: 1, pad: (3, 3, 3, 3), bias: true, relu: false),    // 1x1 plane
        WinogradF27Case(n: 1, cin: 5, cout: 7, kh: 7, h: 10, w: 13, pad: (2, 0, 0, 5), bias: true, relu: true),   // asymmetric
        WinogradF27Case(n: 1, cin: 2, cout: 33, kh: 2, h: 4, w: 5, pad: (0, 1, 9, 9), bias: true, relu: false),   // pairs of zeros
        WinogradF27Case(n: 1, cin: 64, cout: 70, kh: 7, h: 10, w: 10, pad: (0, 0, 0, 0), bias: true, relu: true), // fc6-like
    ]

    /// Every ISA path, whole and one output row per chunk, against the naive loops; the
    /// first call registers the weight, the second computes.
    @Test(arguments: cases)
    func matchesReferenceOnEveryPath(_ c: WinogradF27Case) {
        let x = Tensor.randn([c.n, c.cin, c.h, c.w], seed: 1), w = Tensor.randn([c.cout, c.cin, c.kh, 7], seed: 2)
        let b = c.bias ? Tensor.randn([c.cout], seed: 3) : nil
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b?.shape, stride: 1,
                               padding: c.padding, dilation: 1, groups: 1)
        #expect(g.allowsWinogradF27)
        var expected = conv2dReference(x, weight: w, bias: b, padding: c.padding)
        if c.relu { expected = relu(expected) }
        for isa in GEMMConfig.availableISAs {
            let cache = WeightCache(limitBytes: 64 << 20)
            let (_, first) = forwardF27(g, x, w, b, relu: c.relu, cache: cache, isa: isa)
            #expect(first == .firstSighting, "\(c) \(isa): the first call only registers the weight")
            let oneRow = 8 * c.cout * ((g.outW + 1) / 2)
            for chunk in [winogradF27ChunkFloats, oneRow] {
                let (y, outcome) = forwardF27(g, x, w, b, relu: c.relu, cache: cache, isa: isa, chunkFloats: chunk)
                #expect(outcome == .done)
                expectClose(y, expected, tolerance: Self.tolerance, "\(c) \(isa) chunk \(chunk)")
            }
        }
    }

    /// Chunks of output rows and the thread count change no bit: every output is the same
    /// sums in the same order (the GEMM's K blocks depend on the weight's shape only).
    @Test func chunksAndThreadsAreBitIdentical() {
        let x = Tensor.randn([1, 19, 12, 23], seed: 4), w = Tensor.randn([37, 19, 7, 7], seed: 5)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: 1, padding: 3,
                               dilation: 1, groups: 1)
        let cache = WeightCache(limitBytes: 64 << 20)
        _ = forwardF27(g, x, w, nil, relu: false, cache: cache)
        let whole = forwardF27(g, x, w, nil, relu: false, cache: cache).0.scalars
        let rows = forwardF27(g, x, w, nil, relu: false, cache: cache, chunkFloats: 8 * 37 * 12 * 5).0.scalars
        let serial = ParallelState.$inWorker.withValue(true) { forwardF27(g, x, w, nil, relu: false, cache: cache).0.scalars }
        #expect(!whole.contains { $0.isNaN }, "every output written")
        let sameRows = whole == rows, sameSerial = whole == serial
        #expect(sameRows, "chunks of 5 rows")
        #expect(sameSerial, "one thread")
    }

    /// The conv2d fixtures with 7-wide kernels and stride 1, forced through F(2, 7), against
    /// PyTorch's outputs.
    @Test(arguments: loadFixture("conv2d"))
    func matchesPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x"), w = c.tensor("w"), b: Tensor? = c.bool("bias") ? c.tensor("b") : nil
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b?.shape, stride: size2(c.ints("stride")),
                               padding: fixturePadding(c), dilation: size2(c.ints("dilation")), groups: c.int("groups"))
        guard g.allowsWinogradF27 else { return }
        let cache = WeightCache(limitBytes: 1 << 20)
        _ = forwardF27(g, x, w, b, relu: false, cache: cache)
        let (y, outcome) = forwardF27(g, x, w, b, relu: false, cache: cache)
        #expect(outcome == .done)
        expectClose(y, c.tensor("out"), tolerance: Self.tolerance, "\(c) out")
    }

    /// U must fit the cache, or F(2, 7) steps aside.
    @Test func unavailableWithoutRoomInTheCache() {
        let x = Tensor.randn([1, 8, 9, 9], seed: 6), w = Tensor.randn([16, 8, 7, 7], seed: 7)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: nil, stride: 1, padding: 3,
                               dilation: 1, groups: 1)
        for limit in [0, 4 * 8 * 16 * 8 * 7 - 4] {   // off; one float short of U's 8 x 16 x 56 (MR <= 16)
            let cache = WeightCache(limitBytes: limit)
            for _ in 0..<2 {
                #expect(forwardF27(g, x, w, nil, relu: false, cache: cache).1 == .unavailable, "limit \(limit)")
            }
            #expect(!cache.state(of: w.storage).seen)
        }
    }
}
