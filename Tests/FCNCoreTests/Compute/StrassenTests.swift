// One level of Strassen's algorithm on a cached weight (Compute/GEMM+Strassen.swift,
// CFCNKernels/strassen.c): the inference path of large 1x1 convolutions (fc7).
//
// Checked against the naive product on every ISA path: even and odd column counts (the
// right blocks of an odd n read a zero column), half-heights that are not multiples of the
// register tile, bias and fused ReLU, chunks of columns small enough that the last one is
// odd. The thread count must change no bit, the first call must only register the weight,
// and the cache must have room for the block sums. Through `conv2d` with the shared cache
// (one packed form per weight) in WeightCacheTests.
// Tolerance 1e-5 relative to max(1, max |expected|), as the GEMM tests: a block sum adds
// one rounding to each operand and the combination at most three to each output.
@testable import FCNCore
import FCNTestSupport
import Testing

/// What `strassen` did: computed C, or found the block sums not built yet (first sighting)
/// or not keepable.
private enum Outcome { case done, firstSighting, unavailable }

private func strassen(m: Int, n: Int, k: Int, _ a: Tensor, _ b: Tensor, bias: Tensor?, relu: Bool, cache: WeightCache,
                      isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int = strassenChunkFloats)
    -> (Tensor, Outcome) {
    let sums: PackedWeights
    switch strassenBlockSums(m: m, k: k, lda: k, weight: CachedOperand(storage: a.storage, offset: 0, cache: cache), isa: isa) {
    case .unavailable: return (Tensor.zeros([1]), .unavailable)
    case .firstSighting: return (Tensor.zeros([1]), .firstSighting)
    case .ready(let p): sums = p
    }
    let y = Tensor.make(shape: [m, n]) { out in
        out.initialize(repeating: .nan)
        sgemmStrassen(m: m, n: n, k: k, blockSums: sums, b: b.storage.pointer, ldb: n, c: out.baseAddress!, ldc: n,
                      epilogue: GEMMEpilogue(rowBias: bias.map { UnsafePointer($0.storage.pointer) }, relu: relu),
                      isa: isa, chunkFloats: chunkFloats)
    }
    return (y, .done)
}

private func reference(m: Int, n: Int, k: Int, _ a: Tensor, _ b: Tensor, bias: Tensor?, relu: Bool) -> Tensor {
    var y = Tensor.make(shape: [m, n]) { out in
        sgemmReference(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a.storage.pointer, lda: k,
                       b: b.storage.pointer, ldb: n, beta: 0, c: out.baseAddress!, ldc: n)
    }
    if let bias { y = y + bias.reshaped([m, 1]) }
    return relu ? FCNCore.relu(y) : y
}

@Suite struct StrassenTests {
    /// (m, n, k, bias and ReLU, columns per chunk or 0 for the default)
    @Test(arguments: [
        (64, 70, 48, true, 0),        // even n
        (30, 9, 22, false, 0),        // odd n, m/2 = 15 rows (not a multiple of MR)
        (128, 301, 96, true, 40),     // chunks of 40 columns, the last of 21 (odd)
        (2, 1, 2, true, 0),           // one column: the right blocks are all padding
    ])
    func matchesReferenceOnEveryPath(_ m: Int, _ n: Int, _ k: Int, _ biasRelu: Bool, _ chunkCols: Int) {
        let a = Tensor.randn([m, k], seed: 1), b = Tensor.randn([k, n], seed: 2)
        let bias = biasRelu ? Tensor.randn([m], seed: 3) : nil
        let expected = reference(m: m, n: n, k: k, a, b, bias: bias, relu: biasRelu)
        let chunk = chunkCols > 0 ? 7 * (m / 2 + k / 2) * chunkCols / 2 : strassenChunkFloats
        for isa in GEMMConfig.availableISAs {
            let cache = WeightCache(limitBytes: 16 << 20)
            #expect(strassen(m: m, n: n, k: k, a, b, bias: bias, relu: biasRelu, cache: cache, isa: isa).1 == .firstSighting)
            for _ in 0..<2 {
                let (y, outcome) = strassen(m: m, n: n, k: k, a, b, bias: bias, relu: biasRelu, cache: cache, isa: isa,
                                            chunkFloats: chunk)
                #expect(outcome == .done)
                expectClose(y, expected, tolerance: 1e-5, "\(m)x\(n)x\(k) \(isa)")
            }
        }
    }

    /// The thread count changes no bit (each thread takes whole bands of rows of every
    /// product). Chunks of columns do change the sums (each chunk is split into its own
    /// halves), so they are held to the reference above, not to bits.
    @Test func threadsAreBitIdentical() {
        let (m, n, k) = (96, 130, 80)
        let a = Tensor.randn([m, k], seed: 4), b = Tensor.randn([k, n], seed: 5)
        let cache = WeightCache(limitBytes: 16 << 20)
        _ = strassen(m: m, n: n, k: k, a, b, bias: nil, relu: false, cache: cache)
        let whole = strassen(m: m, n: n, k: k, a, b, bias: nil, relu: false, cache: cache).0.scalars
        let serial = ParallelState.$inWorker.withValue(true) {
            strassen(m: m, n: n, k: k, a, b, bias: nil, relu: false, cache: cache).0.scalars
        }
        #expect(!whole.contains { $0.isNaN }, "every output written")
        let same = whole == serial
        #expect(same, "one thread")
    }

    /// The block sums must fit the cache, or the path steps aside.
    @Test func unavailableWithoutRoomInTheCache() {
        let a = Tensor.randn([32, 32], seed: 6), b = Tensor.randn([32, 8], seed: 7)
        let mr = GEMMConfig.defaultISA.kernelShape!.mr
        for limit in [0, 4 * 7 * roundUp(16, mr) * 16 - 4] {
            let cache = WeightCache(limitBytes: limit)
            for _ in 0..<2 {
                #expect(strassen(m: 32, n: 8, k: 32, a, b, bias: nil, relu: false, cache: cache).1 == .unavailable)
            }
            #expect(!cache.state(of: a.storage).seen)
        }
        #expect(!strassenApplies(m: 1022, n: 64, k: 1024) && !strassenApplies(m: 1024, n: 64, k: 1023)
                    && !strassenApplies(m: 1024, n: 63, k: 1024) && strassenApplies(m: 1024, n: 64, k: 1024) == strassenEnabled)
    }
}
