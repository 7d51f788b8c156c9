// SGEMM engine tests: every ISA path available on this machine (forced through
// `sgemmEngine(isa:threads:…)`), all transpose combinations, alpha/beta, padded leading
// dimensions, 1 and 2 threads, and the fused epilogue, against `sgemmReference`.
//
// Tolerance: each C[i, j] is a float sum of k products. Both implementations round with a
// random-walk error of about eps * sqrt(k) * S where S = |alpha| sum_p |a_ip b_pj| + |beta c_ij|
// (eps = 6e-8); we allow 1e-6 * sqrt(k) * S per element (~16 eps sqrt(k)), far below the O(S)
// error of any wrong index, missing term or wrong edge mask.
import CFCNKernels
@testable import FCNCore
import FCNTestSupport
import Testing

struct GEMMShape: Sendable, CustomTestStringConvertible {
    var m: Int, n: Int, k: Int
    var testDescription: String { "\(m)x\(n)x\(k)" }
}

struct GEMMTrans: Sendable, CustomTestStringConvertible {
    var a: Bool, b: Bool
    var testDescription: String { "\(a ? "T" : "N")\(b ? "T" : "N")" }
    static let all = [GEMMTrans(a: false, b: false), GEMMTrans(a: false, b: true),
                      GEMMTrans(a: true, b: false), GEMMTrans(a: true, b: true)]
}

/// Deterministic pseudo-random floats in [-1, 1).
private func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
    return (0..<count).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % (1 << 24)) / Float(1 << 23) - 1
    }
}

/// Operands with padded leading dimensions (pad columns hold garbage that must not be read
/// into the result).
private struct Operands {
    let m: Int, n: Int, k: Int, ta: Bool, tb: Bool
    let lda: Int, ldb: Int, ldc: Int
    let a: [Float], b: [Float], c0: [Float]
    let absSum: [Float] // sum_p |a_ip b_pj|, [m, n]

    init(_ s: GEMMShape, _ t: GEMMTrans, pad: Int, seed: UInt64) {
        m = s.m; n = s.n; k = s.k; ta = t.a; tb = t.b
        lda = (ta ? m : k) + pad; ldb = (tb ? k : n) + pad; ldc = n + pad
        a = randomFloats((ta ? k : m) * lda, seed: seed)
        b = randomFloats((tb ? n : k) * ldb, seed: seed + 1)
        c0 = randomFloats(m * ldc, seed: seed + 2)
        var sums = [Float](repeating: 0, count: m * n)
        let (m, n, k, lda, ldb, ta, tb, a, b) = (m, n, k, lda, ldb, ta, tb, a, b)
        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in
            for i in 0..<m {
                for j in 0..<n {
                    var s: Float = 0
                    for p in 0..<k { s += abs((ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j])) }
                    sums[i * n + j] = s
                }
            }
        } }
        absSum = sums
    }

    func av(_ i: Int, _ p: Int) -> Float { ta ? a[p * lda + i] : a[i * lda + p] }
    func bv(_ p: Int, _ j: Int) -> Float { tb ? b[j * ldb + p] : b[p * ldb + j] }

    /// Per-element error scale S (see the file comment).
    func scale(_ i: Int, _ j: Int, alpha: Float, beta: Float) -> Float {
        abs(alpha) * absSum[i * n + j] + abs(beta * c0[i * ldc + j]) + 1e-30
    }

    func reference(alpha: Float, beta: Float, cInit: [Float]) -> [Float] {
        var c = cInit
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            sgemmReference(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                           b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
        } } }
        return c
    }

    func engine(isa: GEMMISA, threads: Int, alpha: Float, beta: Float, cInit: [Float],
                epilogue: GEMMEpilogue = .none, blocks: GEMMBlocks = GEMMConfig.blocks) -> [Float] {
        var c = cInit
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            sgemmEngine(isa: isa, threads: threads, transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha,
                        a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb, beta: beta,
                        c: pc.baseAddress!, ldc: ldc, epilogue: epilogue, blocks: blocks)
        } } }
        return c
    }

    /// Worst |got - want| / (1e-6 sqrt(k) S) over C (> 1 fails); pad columns must be untouched.
    func worst(_ got: [Float], _ want: [Float], alpha: Float, beta: Float, cInit: [Float]) -> Float {
        var w: Float = 0
        let tol = 1e-6 * Float(max(1, k)).squareRoot()
        for i in 0..<m {
            for j in 0..<ldc {
                let idx = i * ldc + j
                if j >= n {
                    if got[idx].bitPattern != cInit[idx].bitPattern { return .infinity }
                    continue
                }
                if got[idx].isNaN != want[idx].isNaN { return .infinity }
                if got[idx].isNaN { continue }
                w = max(w, abs(got[idx] - want[idx]) / (tol * scale(i, j, alpha: alpha, beta: beta)))
            }
        }
        return w
    }
}

@Suite struct GEMMTests {
    static let shapes: [GEMMShape] = [
        GEMMShape(m: 1, n: 1, k: 1), GEMMShape(m: 13, n: 17, k: 29), GEMMShape(m: 3, n: 5, k: 7),
        GEMMShape(m: 5, n: 40, k: 1), GEMMShape(m: 130, n: 257, k: 300), GEMMShape(m: 64, n: 1000, k: 27),
        GEMMShape(m: 21, n: 100, k: 200), GEMMShape(m: 17, n: 33, k: 1100), // several KC blocks
        GEMMShape(m: 350, n: 20, k: 16),                                       // several MC blocks
        GEMMShape(m: 3, n: 4200, k: 5),                                        // several NC blocks
        GEMMShape(m: 32, n: 48, k: 64), GEMMShape(m: 15, n: 31, k: 17),
    ]

    /// Tiny cache blocks so that moderate shapes run several MC, KC and NC blocks (and both
    /// macro-kernel variants: B packed per block, and B packed per panel when one MC block
    /// covers the tile).
    static let tinyBlocks = GEMMBlocks(mc: 20, kc: 24, nc: 70)

    /// Every available ISA path, 1 and 2 threads, default and tiny cache blocks, three
    /// (alpha, beta) pairs; beta == 0 runs on a NaN-filled C and must produce no NaN.
    @Test(arguments: shapes, GEMMTrans.all)
    func matchesReference(_ shape: GEMMShape, _ trans: GEMMTrans) {
        let ops = Operands(shape, trans, pad: 3, seed: UInt64(shape.m * 31 + shape.n * 7 + shape.k))
        let nanC = ops.c0.map { _ in Float.nan }
        for (alpha, beta) in [(Float(1), Float(0)), (0.5, -1.5), (-2, 1)] {
            let cInit = beta == 0 ? nanC : ops.c0
            // Pad columns keep their initial value in the reference too (it only writes j < n).
            let want = ops.reference(alpha: alpha, beta: beta, cInit: cInit)
            for isa in GEMMConfig.availableISAs {
                for blocks in [GEMMConfig.blocks, Self.tinyBlocks] {
                    let one = ops.engine(isa: isa, threads: 1, alpha: alpha, beta: beta, cInit: cInit, blocks: blocks)
                    let two = ops.engine(isa: isa, threads: 2, alpha: alpha, beta: beta, cInit: cInit, blocks: blocks)
                    let err = ops.worst(one, want, alpha: alpha, beta: beta, cInit: cInit)
                    #expect(err <= 1, "\(isa) \(shape.testDescription) \(trans.testDescription) alpha=\(alpha) beta=\(beta) \(blocks): error \(err) x tolerance")
                    #expect(one.elementsEqual(two) { $0.bitPattern == $1.bitPattern },
                            "\(isa) \(shape.testDescription) \(blocks): 1 and 2 threads differ")
                }
            }
        }
    }

    /// Large enough that the planner really splits over two threads (both along M and N).
    @Test(arguments: [GEMMShape(m: 200, n: 90, k: 130), GEMMShape(m: 24, n: 900, k: 100)])
    func twoThreadSplitMatchesOneThread(_ shape: GEMMShape) {
        let plan = GEMMPlan(m: shape.m, n: shape.n, k: shape.k, mr: 14, nr: 32, threads: 2)
        #expect(plan.tm * plan.tn == 2)
        let ops = Operands(shape, GEMMTrans(a: false, b: false), pad: 0, seed: 5)
        let want = ops.reference(alpha: 1, beta: 0.5, cInit: ops.c0)
        for isa in GEMMConfig.availableISAs {
            let one = ops.engine(isa: isa, threads: 1, alpha: 1, beta: 0.5, cInit: ops.c0)
            let two = ops.engine(isa: isa, threads: 2, alpha: 1, beta: 0.5, cInit: ops.c0)
            #expect(ops.worst(two, want, alpha: 1, beta: 0.5, cInit: ops.c0) <= 1, "\(isa)")
            #expect(one == two, "\(isa): 1 and 2 threads differ")
        }
    }

    /// Two threads side by side over one row block share one packed A (packed once, split
    /// between them) and take column chunks from a counter: several K blocks, a partial last
    /// chunk and a partial last row panel, equal to one thread bit for bit and to the reference.
    @Test func sharedPackedAChunksMatchOneThread() {
        let shape = GEMMShape(m: 30, n: 1500, k: 200)
        let blocks = GEMMBlocks(mc: 336, kc: 64, nc: 4096)
        let plan = GEMMPlan(m: shape.m, n: shape.n, k: shape.k, mr: 14, nr: 32, threads: 2, blocks: blocks)
        #expect(plan.tm == 1 && plan.tn == 2 && plan.kc < shape.k)
        let ops = Operands(shape, GEMMTrans(a: false, b: false), pad: 3, seed: 9)
        let want = ops.reference(alpha: 1, beta: 0.5, cInit: ops.c0)
        for isa in GEMMConfig.availableISAs {
            let one = ops.engine(isa: isa, threads: 1, alpha: 1, beta: 0.5, cInit: ops.c0, blocks: blocks)
            let two = ops.engine(isa: isa, threads: 2, alpha: 1, beta: 0.5, cInit: ops.c0, blocks: blocks)
            #expect(ops.worst(two, want, alpha: 1, beta: 0.5, cInit: ops.c0) <= 1, "\(isa)")
            #expect(one == two, "\(isa): 1 and 2 threads differ")
        }
    }

    /// Guided chunks cover every panel once, in order, shrink to single panels at the end
    /// (so threads finish within about one panel of each other) and stay few; equal shares
    /// give one chunk per thread.
    @Test(arguments: [(133, 2), (10, 2), (1, 2), (133, 4), (7, 8)])
    func guidedChunksCoverThePanels(_ panels: Int, _ threads: Int) {
        let b = GEMMPlan.guidedChunks(panels: panels, threads: threads, equalShares: false)
        #expect(b.first == 0 && b.last == panels)
        let sizes = zip(b.dropFirst(), b).map { $0 - $1 }
        #expect(sizes.allSatisfy { $0 >= 1 }, "\(sizes)")
        #expect(zip(sizes.dropFirst(), sizes).allSatisfy { $0 <= $1 }, "non-increasing: \(sizes)")
        #expect(sizes.suffix(min(sizes.count, threads)).allSatisfy { $0 == 1 } || panels < 2 * threads, "\(sizes)")
        #expect(sizes.count <= 2 * threads * (Int.bitWidth - panels.leadingZeroBitCount + 1), "\(sizes.count) chunks")
        let equal = GEMMPlan.guidedChunks(panels: panels, threads: threads, equalShares: true)
        #expect(equal.count == threads + 1 && equal.first == 0 && equal.last == panels)
        #expect(zip(equal.dropFirst(), equal).allSatisfy { $0 - $1 <= (panels + threads - 1) / threads })
    }

    /// Fused epilogue: row bias, column bias, ReLU (alone and together), with several KC
    /// blocks (k > KC, and tiny blocks) so the epilogue must run only once, after the last block.
    @Test(arguments: [GEMMShape(m: 19, n: 37, k: 1030), GEMMShape(m: 64, n: 200, k: 27), GEMMShape(m: 45, n: 150, k: 60)],
          GEMMTrans.all)
    func epilogue(_ shape: GEMMShape, _ trans: GEMMTrans) {
        let ops = Operands(shape, trans, pad: 2, seed: 11)
        let rowBias = randomFloats(shape.m, seed: 99).map { $0 * 4 }
        let colBias = randomFloats(shape.n, seed: 98).map { $0 * 4 }
        for (useRow, useCol, relu) in [(true, false, false), (false, true, false), (false, false, true), (true, true, true)] {
            for beta: Float in [0, 0.75] {
                let cInit = beta == 0 ? ops.c0.map { _ in Float.nan } : ops.c0
                var want = ops.reference(alpha: 1.5, beta: beta, cInit: cInit)
                for i in 0..<shape.m {
                    for j in 0..<shape.n {
                        var v = want[i * ops.ldc + j] + (useRow ? rowBias[i] : 0) + (useCol ? colBias[j] : 0)
                        if relu { v = max(v, 0) }
                        want[i * ops.ldc + j] = v
                    }
                }
                for isa in GEMMConfig.availableISAs {
                  for blocks in [GEMMConfig.blocks, Self.tinyBlocks] {
                    let got = rowBias.withUnsafeBufferPointer { rb in colBias.withUnsafeBufferPointer { cb in
                        ops.engine(isa: isa, threads: 2, alpha: 1.5, beta: beta, cInit: cInit,
                                   epilogue: GEMMEpilogue(rowBias: useRow ? rb.baseAddress : nil,
                                                          colBias: useCol ? cb.baseAddress : nil, relu: relu),
                                   blocks: blocks)
                    } }
                    // Bias terms add at most 8 to the scale; fold them into the tolerance as a constant.
                    var worst: Float = 0
                    for i in 0..<shape.m {
                        for j in 0..<shape.n {
                            let d = abs(got[i * ops.ldc + j] - want[i * ops.ldc + j])
                            let tol = 1e-6 * Float(shape.k).squareRoot() * (ops.scale(i, j, alpha: 1.5, beta: beta) + 8)
                            worst = max(worst, d.isNaN ? .infinity : d / tol)
                        }
                    }
                    #expect(worst <= 1, "\(isa) row=\(useRow) col=\(useCol) relu=\(relu) beta=\(beta): \(worst) x tolerance")
                    if relu { #expect(!got.enumerated().contains { $0.offset % ops.ldc < shape.n && $0.element < 0 }) }
                  }
                }
            }
        }
    }

    /// A last panel of 1 ... 8 columns (the AVX-512 narrow kernels: the rows in the lanes), of
    /// 9 ... 16 (the half kernel: one vector per row) or of 17 ... 24 (both) gives the bits that the same columns
    /// get inside a full 32-column panel: C = A x B[:, :n] against the first n columns of
    /// A x B[:, :64], with beta, biases and ReLU, M with an edge row panel (13 and 30 rows),
    /// on every ISA path.
    @Test(arguments: [1, 2, 3, 5, 8, 9, 13, 16, 17, 24, 25])
    func narrowLastPanelGivesTheFullPanelsBits(_ tail: Int) {
        let (k, wide, n) = (70, 64, 32 + tail)
        for m in [13, 30] {
            let a = randomFloats(m * k, seed: 5), b = randomFloats(k * wide, seed: 6), c0 = randomFloats(m * wide, seed: 7)
            let rowBias = randomFloats(m, seed: 8), colBias = randomFloats(wide, seed: 9)
            for isa in GEMMConfig.availableISAs {
                for (beta, relu) in [(Float(0), false), (Float(0.75), true)] {
                    func run(_ cols: Int) -> [Float] {
                        var c = c0
                        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                            rowBias.withUnsafeBufferPointer { rb in colBias.withUnsafeBufferPointer { cb in
                                sgemmEngine(isa: isa, threads: 1, transA: false, transB: false, m: m, n: cols, k: k, alpha: 1.25,
                                            a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: wide, beta: beta,
                                            c: pc.baseAddress!, ldc: wide,
                                            epilogue: GEMMEpilogue(rowBias: rb.baseAddress, colBias: cb.baseAddress, relu: relu))
                            } }
                        } } }
                        return c
                    }
                    let (narrow, full) = (run(n), run(wide))
                    let same = (0..<m).allSatisfy { i in (0..<n).allSatisfy { j in narrow[i * wide + j].bitPattern == full[i * wide + j].bitPattern } }
                    #expect(same, "\(isa) m \(m) n \(n) beta \(beta) relu \(relu)")
                }
            }
        }
    }

    /// Degenerate sizes: k == 0 scales C by beta (beta == 0 clears NaNs); m or n == 0 is a no-op.
    @Test func degenerateSizes() {
        var c: [Float] = [1, 2, .nan, 4]
        let a: [Float] = [1], b: [Float] = [1]
        sgemm(transA: false, transB: false, m: 2, n: 2, k: 0, alpha: 1, a: a, lda: 1, b: b, ldb: 2,
              beta: 0, c: &c, ldc: 2)
        #expect(c == [0, 0, 0, 0])
        c = [1, 2, 3, 4]
        sgemm(transA: false, transB: false, m: 2, n: 2, k: 0, alpha: 1, a: a, lda: 1, b: b, ldb: 2,
              beta: 2, c: &c, ldc: 2)
        #expect(c == [2, 4, 6, 8])
        sgemm(transA: false, transB: false, m: 0, n: 2, k: 3, alpha: 1, a: a, lda: 3, b: b, ldb: 2,
              beta: 2, c: &c, ldc: 2)
        #expect(c == [2, 4, 6, 8])
    }

    @Test func everyCompiledPathIsListed() {
        #expect(GEMMConfig.availableISAs.contains(.portable))
        #expect(GEMMConfig.availableISAs.contains(GEMMConfig.defaultISA))
        #if arch(x86_64)
        let flags = fcn_cpu_isa_flags()
        #expect(GEMMConfig.availableISAs.contains(.avx512) == (flags & Int32(FCN_ISA_AVX512) != 0))
        #expect(GEMMConfig.availableISAs.contains(.avx2) == (flags & Int32(FCN_ISA_AVX2_FMA) != 0))
        #endif
    }

    @Test func badLeadingDimensionNamesTheOp() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var c = [Float](repeating: 0, count: 4)
            let a = [Float](repeating: 1, count: 6), b = [Float](repeating: 1, count: 6)
            sgemm(transA: false, transB: false, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 2, b: b, ldb: 2,
                  beta: 0, c: &c, ldc: 2)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("sgemm: lda=2 is smaller than a row of A ([m, k] = [2, 3])"))
    }
}
