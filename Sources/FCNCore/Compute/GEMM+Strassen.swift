// One level of Strassen's algorithm for a weight kept in the packed-weight cache: the
// forward of `strassen`, large pointwise convolutions at inference (fc7 of VGG16-FCN:
// 4096 x 4096).
//
// Contract: C = A x B (+ row bias, then ReLU when asked) for A [m, k] a cacheable weight and
// B [k, n] row-major, m and k even, as seven products of the 2 x 2 blocks instead of eight
// (CFCNKernels/fcn_strassen.h): 7/8 of the multiply-adds. The seven A operands (sums of A's
// blocks, 7/4 of A) are built once into the cache by `strassenBlockSums`; building them per
// call would read A three times over, more than the 1/8 saves. When the cache cannot give
// them (first sighting, no room) the algorithm choice (`ConvGeometry.algorithm(for:mode:)`,
// rule 7) runs the plain GEMM instead.
// Per call and chunk of columns: the B operands (7 * k/2 * ceil(nc/2) floats), the seven
// products split over the threads by bands of rows of each (every A element read once per
// chunk), then the combination into C with bias and ReLU. Workspace: B operands + products
// at most `strassenChunkFloats` (plus one chunk of 64 columns when k and m are huge).
// Accuracy: each C element is a sum of products of block sums, so rounding errors grow by
// a small factor over a direct sum (figures: Benchmarks.md, Accuracy); the tests hold it to
// the naive product at 1e-5.
import CFCNKernels

/// B operands + products of one chunk of columns (4 M floats = 16 MiB: fc7 at 500 x 500,
/// 256 columns, in one chunk).
let strassenChunkFloats = 1 << 22

/// The block sums of `weight` (A `[m, k]`, row stride `lda`) for `sgemmStrassen`, from the
/// packed-weight cache: seven A operands `[m/2, k/2]` packed whole (see
/// `WeightCache.transformedOperands`).
func strassenBlockSums(m: Int, k: Int, lda: Int, weight: CachedOperand,
                       isa: GEMMISA = GEMMConfig.defaultISA) -> WeightCache.Form {
    precondition(m % 2 == 0 && k % 2 == 0, "strassenBlockSums: m \(m), k \(k)")
    guard let (mr, nr) = isa.kernelShape else { fcnFail("sgemm", "no GEMM kernel for \(isa)") }
    let mh = m / 2, kh = k / 2
    let kc = GEMMPlan.kBlock(m: mh, k: kh, mr: mr, nr: nr)
    let a = weight.values
    return weight.cache.transformedOperands(
        of: weight, layout: .strassenA(isa: isa.flag, mr: mr, kc: kc, m: m, k: k, lda: lda),
        count: 7, isa: isa, mr: mr, kc: kc, m: mh, k: kh) { e, lo, hi, s in
        fcn_strassen_a(a, Int64(lda), Int64(m), Int64(k), Int32(e), Int64(lo), Int64(hi), s, Int64(kh))
    }
}

/// C = A x B + rowBias (ReLU when asked) by one level of Strassen's algorithm with A's
/// block sums from `strassenBlockSums` (same `isa`); see the file contract. The epilogue's
/// column bias must be nil. `isa` and `chunkFloats` are for tests.
func sgemmStrassen(m: Int, n: Int, k: Int, blockSums: PackedWeights, b: UnsafePointer<Float>, ldb: Int,
                   c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue,
                   isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int = strassenChunkFloats) {
    precondition(m % 2 == 0 && k % 2 == 0 && epilogue.colBias == nil, "sgemmStrassen: m \(m), k \(k)")
    guard let (mr, _) = isa.kernelShape else { fcnFail("sgemm", "no GEMM kernel for \(isa)") }
    let mh = m / 2, kh = k / 2
    let aStride = roundUp(mh, mr) * kh
    precondition(blockSums.count == 7 * aStride, "sgemmStrassen: block sums of \(blockSums.count) floats for \(m) x \(k)")
    // Columns per chunk: even, at least 64, B operands + products within the budget.
    let chunkCols = max(64, chunkFloats / (7 * (mh + kh)) * 2)
    let parts = max(1, min(Compute.threads, (mh + mr - 1) / mr))
    let nhMax = (min(n, chunkCols) + 1) / 2
    withScratch(7 * nhMax * (kh + mh)) { bOps in
        let prods = bOps + 7 * nhMax * kh
        for j0 in stride(from: 0, to: n, by: chunkCols) {
            let nc = min(chunkCols, n - j0), nh = (nc + 1) / 2
            let bStride = kh * nh, pStride = mh * nh
            let q = UncheckedSendable((b + j0, c + j0, bOps, prods, UnsafePointer(blockSums.pointer), epilogue))
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
    withExtendedLifetime(blockSums) {}
}
