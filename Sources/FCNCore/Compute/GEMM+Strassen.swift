// One level of Strassen's algorithm for a weight kept in the packed-weight cache: the
// inference path of large 1x1 convolutions (fc7 of VGG16-FCN: 4096 x 4096).
//
// Contract: C = A x B (+ row bias, then ReLU when asked) for A [m, k] a cacheable weight and
// B [k, n] row-major, m and k even, as seven products of the 2 x 2 blocks instead of eight
// (CFCNKernels/fcn_strassen.h): 7/8 of the multiply-adds. The seven A operands (sums of A's
// blocks, 7/4 of A) are packed once into the cache (`.strassenA`); building them per call
// would read A three times over, more than the 1/8 saves. So, as for Winograd F(2, 7), the
// path runs only when the cache can hold them, and a first sighting makes the caller
// multiply without caching A's plain packing (one cached form per weight).
// Per call and chunk of columns: the B operands (7 * k/2 * ceil(nc/2) floats), the seven
// products split over the threads by bands of rows of each (every A element read once per
// chunk), then the combination into C with bias and ReLU. Workspace: B operands + products
// at most `strassenChunkFloats` (plus one chunk of 64 columns when k and m are huge).
// Accuracy: each C element is a sum of products of block sums, so rounding errors grow by
// a small factor over a direct sum (numpy emulation on fc7's shape: 1.1e-6 of the largest
// output against 3.4e-7 for a direct float32 product, about 3x); the tests hold it to the
// naive product at 1e-5.
// `FCN_STRASSEN=0` turns it off for the whole process.
import CFCNKernels

/// `FCN_STRASSEN=0` disables the Strassen path process-wide (read once).
let strassenEnabled: Bool = getenvString("FCN_STRASSEN") != "0"

/// B operands + products of one chunk of columns (4 M floats = 16 MiB: fc7 at 500 x 500,
/// 256 columns, in one chunk).
let strassenChunkFloats = 1 << 22

/// Whether `sgemmStrassenCached` may run a product of this shape: m and k even and at
/// least 1024 (below that the block products lose more GEMM efficiency than the 1/8 of the
/// work saves), at least 64 columns, and not turned off.
func strassenApplies(m: Int, n: Int, k: Int) -> Bool {
    strassenEnabled && m % 2 == 0 && k % 2 == 0 && m >= 1024 && k >= 1024 && n >= 64
}

/// C = A x B + rowBias (ReLU when asked) by one level of Strassen's algorithm with A's
/// block sums from `weightCache` (see the file contract). `a` holds the weight's values
/// (`weightStorage`), row-major with leading dimension `lda`. The epilogue's column bias
/// must be nil. `isa` and `chunkFloats` are for tests.
func sgemmStrassenCached(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, weightStorage: TensorStorage,
                         b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                         epilogue: GEMMEpilogue, weightCache: WeightCache = .current,
                         isa: GEMMISA = GEMMConfig.defaultISA,
                         chunkFloats: Int = strassenChunkFloats) -> CachedFormOutcome {
    precondition(m % 2 == 0 && k % 2 == 0 && epilogue.colBias == nil, "sgemmStrassenCached: m \(m), k \(k)")
    guard let (mr, nr) = isa.kernelShape else { fcnFail("sgemm", "no GEMM kernel for \(isa)") }
    let mh = m / 2, kh = k / 2
    let kc = GEMMPlan.kBlock(m: mh, k: kh, mr: mr, nr: nr)
    let aStride = roundUp(mh, mr) * kh
    let layout = PackedWeightLayout.strassenA(isa: isa.flag, mr: mr, kc: kc, m: m, k: k, lda: lda)
    let cached: PackedWeights
    switch weightCache.form(weightStorage, layout: layout, floats: 7 * aStride, fill: { dst in
        packOperands(count: 7, isa: isa, mr: mr, kc: kc, m: mh, k: kh, stride: aStride, dst: dst) { e, lo, hi, s in
            fcn_strassen_a(a, Int64(lda), Int64(m), Int64(k), Int32(e), Int64(lo), Int64(hi), s, Int64(kh))
        }
    }) {
    case .unavailable: return .unavailable
    case .firstSighting: return .firstSighting
    case .ready(let p): cached = p
    }
    // Columns per chunk: even, at least 64, B operands + products within the budget.
    let chunkCols = max(64, chunkFloats / (7 * (mh + kh)) * 2)
    let parts = max(1, min(Compute.threads, (mh + mr - 1) / mr))
    let nhMax = (min(n, chunkCols) + 1) / 2
    withScratch(7 * nhMax * (kh + mh)) { bOps in
        let prods = bOps + 7 * nhMax * kh
        for j0 in stride(from: 0, to: n, by: chunkCols) {
            let nc = min(chunkCols, n - j0), nh = (nc + 1) / 2
            let bStride = kh * nh, pStride = mh * nh
            let q = UncheckedSendable((b + j0, c + j0, bOps, prods, UnsafePointer(cached.pointer), epilogue))
            parallelChunks(kh, minChunk: 16) { r in
                fcn_strassen_b(q.value.0, Int64(ldb), Int64(k), Int64(nc), Int64(r.lowerBound), Int64(r.upperBound),
                               q.value.2, Int64(bStride))
            }
            parallelFor(7 * parts) { item in
                let e = item / parts
                var src = fcn_b_source()
                src.kind = Int32(FCN_B_MATRIX); src.transB = 0; src.b = UnsafePointer(q.value.2 + e * bStride); src.ldb = nh
                sgemmPackedRows(isa: isa, m: mh, n: nh, k: kh, packedA: q.value.4 + e * aStride,
                                rows: GEMMPlan.part(item % parts, of: parts, total: mh, align: mr),
                                bSource: src, beta: 0, c: q.value.3 + e * pStride, ldc: nh)
            }
            parallelChunks(mh, minChunk: 16) { r in
                fcn_strassen_combine(q.value.3, Int64(pStride), Int64(m), Int64(nc), Int64(r.lowerBound),
                                     Int64(r.upperBound), q.value.5.rowBias, q.value.5.relu ? 1 : 0, q.value.1, Int64(ldc))
            }
        }
    }
    withExtendedLifetime(cached) {}
    return .done
}
