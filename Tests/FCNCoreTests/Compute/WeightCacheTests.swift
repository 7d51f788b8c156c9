// Packed-weight cache (Compute/WeightCache.swift): the lookup rules on a private cache
// (first sighting remembered, second packed, written weights dropped, LRU bound), and the
// convolutions with a cache on (a private one, set as `WeightCache.current` for the test's
// task, so that suites running alongside keep theirs off): results bit-identical to packing
// on every call (Winograd U, a GEMM A of several row blocks on 1 and 2 threads, a general
// im2col conv), also after the weight is written in place (copy-on-write gives it a new
// storage); the forms that change the arithmetic (Winograd F(2, 7), Strassen) within 1e-5
// and cached in one form per weight.
@testable import FCNCore
import FCNTestSupport
import Testing

@Suite struct WeightCacheTests {
    private static func layout(_ m: Int) -> PackedWeightLayout {
        .gemmA(isa: 1, mr: 4, kc: 8, m: m, k: 8, lda: 8, transA: false)
    }

    @Test func secondSightingPacksAndWritesDropTheEntry() {
        let cache = WeightCache(limitBytes: 1 << 20)
        var w = Tensor.randn([8, 8], seed: 1)
        var fills = 0
        func lookup() -> PackedWeights? {
            cache.packed(w.storage, layout: Self.layout(8), floats: 64) { dst in
                fills += 1
                for i in 0..<64 { dst[i] = Float(i) }
            }
        }
        #expect(lookup() == nil, "first sighting: the caller packs")
        #expect(cache.state(of: w.storage) == (seen: true, packed: false))
        let p = lookup()
        #expect(p != nil && fills == 1 && p!.pointer[5] == 5)
        #expect(lookup() === p && fills == 1, "third call reads the same packed buffer")
        #expect(cache.packedCount == 64)
        // An in-place write copies the storage the cache shares: a new storage, a new entry.
        let old = ObjectIdentifier(w.storage)
        w.withUnsafeMutableBufferPointer { $0[0] += 1 }
        #expect(ObjectIdentifier(w.storage) != old)
        #expect(lookup() == nil, "the written weight is a first sighting again")
        #expect(cache.state(of: w.storage) == (seen: true, packed: false))
        #expect(cache.packedCount == 0, "the old entry, held by the cache alone, was dropped")
    }

    @Test func boundEvictsLeastRecentlyUsed() {
        let cache = WeightCache(limitBytes: 100 * 4)       // room for one 64-float entry
        let a = Tensor.randn([8, 8], seed: 2), b = Tensor.randn([8, 8], seed: 3)
        func lookup(_ t: Tensor) -> PackedWeights? {
            cache.packed(t.storage, layout: Self.layout(8), floats: 64) { $0.initialize(repeating: 1, count: 64) }
        }
        _ = lookup(a); #expect(lookup(a) != nil)
        _ = lookup(b); #expect(lookup(b) != nil)
        #expect(cache.state(of: b.storage).packed)
        #expect(!cache.state(of: a.storage).packed, "a was evicted to make room for b")
        #expect(cache.packedCount == 64)
        // Too large for the bound: never cached.
        let big = Tensor.randn([200], seed: 4)
        for _ in 0..<3 {
            #expect(cache.packed(big.storage, layout: Self.layout(25), floats: 200, fill: { _ in }) == nil)
        }
        cache.limit = 0
        #expect(cache.packedCount == 0 && !cache.state(of: b.storage).seen)
    }

    /// Convolutions with a cache on equal the same calls with it off, bit for bit,
    /// on 1 and 2 threads, before and after an in-place write to the weight.
    @Test(arguments: [
        ([1, 64, 20, 20], [72, 64, 3, 3], 1),     // Winograd U
        ([1, 24, 6, 6], [700, 24, 1, 1], 0),      // pointwise GEMM, 2 row blocks of A
        ([2, 5, 13, 11], [7, 5, 5, 5], 2),        // im2col GEMM, shared packed A on 2 threads
    ])
    func convolutionsReadCachedWeightsExactly(_ xs: [Int], _ ws: [Int], _ pad: Int) {
        let x = Tensor.randn(xs, seed: 5), b = Tensor.randn([ws[0]], seed: 6)
        let g = conv2dGeometry(op: "test", input: xs, weight: ws, bias: nil, stride: 1, padding: .symmetric(pad),
                               dilation: 1, groups: 1)
        #expect(g.usesWinograd == (ws[2] == 3 && winogradEnabled), "\(ws) takes the path it is meant to test")
        var w = Tensor.randn(ws, seed: 7)
        let cache = WeightCache(limitBytes: 64 << 20)
        func conv() -> Tensor { withoutGrad { conv2d(x, weight: w, bias: b, padding: .symmetric(pad), fusedReLU: true) } }
        // The result with the cache off, then three calls with it on (remembered, packed,
        // read packed) that must equal it bit for bit.
        func expectCachedEqualsPlain(_ label: String) -> [Float] {
            // A cached 3x3 weight runs F(4x4) (inference only): its plain counterpart is the
            // same product with U computed on the call.
            let plain = g.usesWinograd && winogradF4Enabled
                ? Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) {
                    convForwardWinograd(g, x: x.storage.pointer, w: w.storage.pointer, bias: b.storage.pointer,
                                        y: $0.baseAddress!, relu: true, tile: 4)
                }.scalars
                : WeightCache.$current.withValue(.disabled) { conv().scalars }
            for call in 0..<3 {
                let same = WeightCache.$current.withValue(cache) { conv().scalars } == plain
                #expect(same, "\(ws) \(label) call \(call)")
            }
            #expect(cache.state(of: w.storage).packed, "\(ws) \(label): packed by the second call")
            return plain
        }
        // One thread as inside a worker (the global thread count is left alone), then all.
        for serial in [true, false] where serial || Compute.threads > 1 {
            ParallelState.$inWorker.withValue(serial) {
                let label = serial ? "1 thread" : "\(Compute.threads) threads"
                let before = expectCachedEqualsPlain(label)
                w.withUnsafeMutableBufferPointer { p in for i in stride(from: 0, to: p.count, by: 3) { p[i] *= -0.5 } }
                let after = expectCachedEqualsPlain(label + " after a write")
                #expect(before != after, "the write changed the result")
            }
        }
    }

    /// A 7-wide layer (Winograd F(2, 7), Convolution/ConvWinogradF27.swift): the first call runs
    /// im2col without caching its packing (the weight is registered for U only), later calls
    /// run F(2, 7) from the cached U; the cache holds one packed form of the weight.
    @Test func winogradF27KeepsOnePackedForm() {
        let x = Tensor.randn([1, 64, 9, 10], seed: 8), w = Tensor.randn([72, 64, 7, 7], seed: 9)
        let b = Tensor.randn([72], seed: 10)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: w.shape, bias: b.shape, stride: 1, padding: 3,
                               dilation: 1, groups: 1)
        #expect(g.usesWinogradF27 == winogradEnabled)
        let cache = WeightCache(limitBytes: 64 << 20)
        let expected = relu(conv2dReference(x, weight: w, bias: b, padding: 3))
        func conv() -> Tensor {
            WeightCache.$current.withValue(cache) { withoutGrad { conv2d(x, weight: w, bias: b, padding: 3, fusedReLU: true) } }
        }
        expectClose(conv(), expected, tolerance: 1e-5, "first call")
        #expect(cache.packedFloats(of: w.storage) == 0, "the first call packed nothing into the cache")
        for call in 1..<3 { expectClose(conv(), expected, tolerance: 1e-5, "call \(call)") }
        let mr = GEMMConfig.defaultISA.kernelShape!.mr
        #expect(cache.packedFloats(of: w.storage)
                    == (winogradEnabled ? 8 * roundUp(72, mr) * 64 * 7 : roundUp(72, mr) * 64 * 49),
                "one packed form: U (or the GEMM A when Winograd is off)")
    }

    /// A 1x1 layer of 1024 channels (Strassen, Compute/GEMM+Strassen.swift): the first call
    /// packs nothing, later calls multiply by the cached block sums; the results stay within
    /// 1e-5 of the plain GEMM's, and the cache holds one packed form of the weight.
    @Test func strassenKeepsOnePackedForm() {
        let x = Tensor.randn([1, 1024, 8, 9], seed: 11), w = Tensor.randn([1024, 1024, 1, 1], seed: 12) * 0.03
        let b = Tensor.randn([1024], seed: 13)
        let cache = WeightCache(limitBytes: 64 << 20)
        func conv(_ c: WeightCache) -> Tensor { WeightCache.$current.withValue(c) { withoutGrad { conv2d(x, weight: w, bias: b, fusedReLU: true) } } }
        let expected = conv(.disabled)
        expectClose(conv(cache), expected, tolerance: 1e-5, "first call")
        #expect(cache.packedFloats(of: w.storage) == 0, "the first call packed nothing into the cache")
        for call in 1..<3 { expectClose(conv(cache), expected, tolerance: 1e-5, "call \(call)") }
        let mr = GEMMConfig.defaultISA.kernelShape!.mr
        #expect(cache.packedFloats(of: w.storage)
                    == (strassenEnabled ? 7 * roundUp(512, mr) * 512 : roundUp(1024, mr) * 1024),
                "one packed form: the block sums (or the GEMM A when Strassen is off)")
    }

    /// A weight that requires a gradient is not cached while a graph is recorded.
    @Test func notUsedWhileRecording() {
        let cache = WeightCache(limitBytes: 64 << 20)
        let x = Tensor.randn([1, 32, 16, 16], seed: 8), w = Tensor.randn([32, 32, 3, 3], seed: 9).requiringGrad()
        WeightCache.$current.withValue(cache) {
            for _ in 0..<3 { _ = conv2d(x, weight: w, padding: 1) }
            #expect(!cache.state(of: w.storage).seen)
            for _ in 0..<2 { _ = withoutGrad { conv2d(x, weight: w, padding: 1) } }
            #expect(cache.state(of: w.storage).packed)
        }
    }
}
