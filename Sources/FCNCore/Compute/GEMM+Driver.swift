// GEMM driver: cache blocking, threads and workspaces around the C kernels (CFCNKernels).
//
// Algorithm (Goto/BLIS): C is split into one tile per thread (a tm x tn grid chosen to balance
// the work, see `GEMMPlan`; splits fall on MR/NR multiples, so every element of C is summed in
// the same order whatever the thread count). Each thread walks its tile with
//   for jc in N step NC { for pc in K step KC { pack B[pc, jc] (KC x NC, NR-column panels)
//     for ic in M step MC { pack A[ic, pc] (MC x KC, MR-row panels); macro-kernel } } }
// When the tile height fits one MC block (conv layers: M = Cout <= 512), packed B would not be
// reused, so B is instead packed one NR panel at a time inside the macro-kernel while the next
// panel's rows are prefetched (fcn_sgemm_macro_packing_b): DRAM reads overlap the FMAs.
// The macro-kernel loops over MR x NR register tiles in C. beta is applied in the first KC
// block (beta == 0 never reads C), the epilogue (bias, ReLU) in the last.
//
// ISA paths (chosen at run time, FCN_GEMM_ISA=portable|avx2|avx512|neon forces one):
//   avx512  14 x 32 tile (28 zmm accumulators), transposing 16x16 packing, masked edges
//   avx2     6 x 16 tile (12 ymm accumulators), masked edges
//   neon     8 x 12 tile (24 q accumulators)
//   portable 4 x 8 plain C
//   avx512bf16 14 x 32 tile on bfloat16 k pairs (reduced precision: Compute+Precision.swift)
//
// Block sizes (tuned on an AVX-512 core with 48 KiB L1d, 1 MiB L2): KC = 512 so the
// packed B micro-panel (KC x 32 floats = 64 KiB) streams from L1/L2 while the packed A block
// (MC x KC <= 336 x 512 floats = 672 KiB) stays in L2; NC = 4096 keeps the packed B block
// (8 MiB) in the L3. Tiles of at most 512 rows (every convolution but fc6/fc7) run as one
// row block with deeper K blocks: KC up to min(4608, 786432 / rows), i.e. a packed A block
// of at most 3 MiB streamed from L2/L3. Fewer K blocks mean fewer read-modify-write passes
// over C (figures: Benchmarks.md, GEMM).
//
// Workspace: each running tile takes one `GEMMWorkspace` (packed A + packed B buffers, plus
// an im2col^T scratch panel for convolution weight gradients) from a process-wide pool and
// returns it afterwards. A workspace holds at most
//   max(roundup(MC, MR) * KC + KC * roundup(NC, NR), 786432 + 2 * 4608 * NR) floats
//   (= max(336*512 + 512*4096, 786432 + 2*4608*32) floats ~ 8.7 MiB)
// and the pool keeps at most `GEMMWorkspacePool.maxIdle` (= 4) idle ones, so the memory kept
// between calls is bounded by ~35 MiB (only what the largest problems needed is allocated).
// B operands may also be convolution sources (`sgemmConv`): their panels are packed straight
// from the image (implicit im2col, CFCNKernels fcn_sgemm_*_src), no column matrix is stored.
import CFCNKernels
import Dispatch

/// Instruction-set paths of the GEMM engine.
package enum GEMMISA: String, CaseIterable, Sendable {
    case portable, avx2, avx512, neon
    /// bfloat16 operands, float32 sums (AVX512_BF16): reduced precision, for inference under
    /// `Compute.precision == .bfloat16` only; never a float32 path (`availableISAs`).
    case avx512bf16

    var flag: Int32 {
        switch self {
        case .portable: Int32(FCN_ISA_PORTABLE)
        case .avx2: Int32(FCN_ISA_AVX2_FMA)
        case .avx512: Int32(FCN_ISA_AVX512)
        case .neon: Int32(FCN_ISA_NEON)
        case .avx512bf16: Int32(FCN_ISA_AVX512_BF16)
        }
    }

    /// Whether this path rounds its operands below float32.
    var reducedPrecision: Bool { self == .avx512bf16 }

    /// The flag of the C kernels outside the GEMM that have per-ISA instances (Winograd
    /// transforms, the Adam update) for this path: x86 paths have their own instances; NEON
    /// runs the portable C, which the compiler vectorises.
    package var elementwiseFlag: Int32 {
        self == .neon ? Int32(FCN_ISA_PORTABLE) : self == .avx512bf16 ? Int32(FCN_ISA_AVX512) : flag
    }

    /// Register tile (MR, NR) of this path, or nil when this CPU or build lacks it.
    var kernelShape: (mr: Int, nr: Int)? {
        var mr: Int32 = 0, nr: Int32 = 0
        guard fcn_sgemm_kernel_shape(flag, &mr, &nr) != 0 else { return nil }
        return (Int(mr), Int(nr))
    }
}

/// Engine configuration: which ISA path runs, block sizes.
package enum GEMMConfig {
    /// Float32 paths usable on this machine, fastest last.
    static let availableISAs: [GEMMISA] = GEMMISA.allCases.filter { !$0.reducedPrecision && $0.kernelShape != nil }

    /// The bfloat16 path when this CPU has it (AVX512_BF16), else nil.
    static let bfloat16ISA: GEMMISA? = GEMMISA.avx512bf16.kernelShape != nil ? .avx512bf16 : nil

    /// The path `sgemm` uses: `FCN_GEMM_ISA=portable|avx2|avx512|neon` when set and available,
    /// otherwise the fastest available one.
    package static let defaultISA: GEMMISA = {
        if let s = getenvString("FCN_GEMM_ISA") {
            guard let isa = GEMMISA(rawValue: s), availableISAs.contains(isa) else {
                fcnFail("sgemm", "FCN_GEMM_ISA=\(s) is not available here; available: \(availableISAs.map(\.rawValue))")
            }
            return isa
        }
        return availableISAs.contains(.avx512) ? .avx512
            : availableISAs.contains(.avx2) ? .avx2
            : availableISAs.contains(.neon) ? .neon : .portable
    }()

    static let blocks = GEMMBlocks(mc: 336, kc: 512, nc: 4096, singleRowMC: 512, singleRowA: 786_432, singleRowKC: 4608)
    /// Tiles of more than one row block and at most this many columns read A unpacked (no
    /// packing; ISAs with fcn_sgemm_macro_unpacked_a): with 8 or fewer B panels, packing A
    /// costs more than its reuse saves (fc6 at 224 x 224: 64 columns, 103 M weights).
    static let unpackedAColumns = 256
    /// A read in place has its MR rows `lda` floats apart; when that is a multiple of 4 KiB
    /// (lda % 1024 == 0: fc7's 4096) every row falls into the same L1 set and the rows evict
    /// each other, so such A is packed (figures: Benchmarks.md, GEMM).
    static let unpackedAConflictingStride = 1024
    /// The same bound for tiles of one row block, whose packed A would serve every B panel
    /// of the tile: with at most 2 panels (fc6 of a narrow FCN on 3 x 3 planes, 4 images:
    /// 36 columns) reading A in place still wins.
    static let unpackedAColumnsOneBlock = 64
    /// Largest A (padded rows x K floats) packed once and shared by tiles side by side
    /// (16 M floats = 64 MiB; conv5 of VGG16: 518 x 4608 = 2.4 M).
    static let sharedPackedAFloats = 16 << 20
    /// A shared packed A above this many floats (8 M = 32 MiB, the L3) is read from memory by
    /// every column chunk, so its threads take one chunk each.
    static let streamedPackedAFloats = 8 << 20
    /// Tiles of one row block split along M (not N) when each thread gets this many rows.
    static let minRowsPerThreadForRowSplit = 224
    /// Below this many multiply-adds a single thread is used (thread start-up would dominate).
    static let minFMAsPerThread = 1 << 20
}

/// Optional work fused into the write-back of `sgemm(…, epilogue:)`:
/// `C[i, j] = act(alpha * (op(A) op(B))[i, j] + beta * C[i, j] + rowBias[i] + colBias[j])`.
///
/// Row bias is what a convolution as GEMM needs (output channels are the rows of C:
/// `[Cout, K] x [K, H*W]`); column bias suits `[N, K] x [K, out]` linear layers. The pointers
/// must stay valid for the call and hold `m` (rowBias) or `n` (colBias) floats.
public struct GEMMEpilogue {
    /// `m` floats: `rowBias[i]` is added to row `i` (conv output channels), or nil.
    public var rowBias: UnsafePointer<Float>?
    /// `n` floats: `colBias[j]` is added to column `j`, or nil.
    public var colBias: UnsafePointer<Float>?
    /// Clamp the result at 0 after the biases (a fused ReLU).
    public var relu: Bool

    /// An epilogue; the defaults add nothing and apply no ReLU.
    public init(rowBias: UnsafePointer<Float>? = nil, colBias: UnsafePointer<Float>? = nil, relu: Bool = false) {
        self.rowBias = rowBias
        self.colBias = colBias
        self.relu = relu
    }

    /// No bias, no activation.
    public static var none: GEMMEpilogue { GEMMEpilogue() }
}

/// Cache block sizes (upper bounds; the plan balances them). Tests pass tiny ones to run
/// every multi-block path on small matrices.
struct GEMMBlocks: Sendable {
    var mc: Int, kc: Int, nc: Int
    /// Tiles of at most this many rows (when larger than `mc`) run as one row block...
    var singleRowMC = 0
    /// ...and then take K blocks of up to `singleRowA / rows` (at most `singleRowKC`), so the
    /// packed A block stays within `singleRowA` floats. Fewer, deeper K blocks mean fewer
    /// passes over C (each re-reads and re-writes the tile) and fewer kernel epilogues. 0: off.
    var singleRowA = 0
    var singleRowKC = 0
}

// MARK: Workspace

/// Packing buffers of one running tile (64-byte aligned, grown on demand).
final class GEMMWorkspace {
    private(set) var a: UnsafeMutablePointer<Float>
    private(set) var b: UnsafeMutablePointer<Float>
    private var aCap = 0, bCap = 0

    init() {
        a = Self.alloc(16); b = Self.alloc(16); aCap = 16; bCap = 16
    }
    deinit { a.deallocate(); b.deallocate() }

    private static func alloc(_ n: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64).bindMemory(to: Float.self, capacity: n)
    }

    func reserve(a na: Int, b nb: Int) {
        if na > aCap { a.deallocate(); a = Self.alloc(na); aCap = na }
        if nb > bCap { b.deallocate(); b = Self.alloc(nb); bCap = nb }
    }
}

/// Process-wide pool of workspaces (bounded; see the file comment).
enum GEMMWorkspacePool {
    static let maxIdle = 4
    private static let lock = Lock()
    nonisolated(unsafe) private static var idle: [GEMMWorkspace] = []

    static func take() -> GEMMWorkspace {
        lock.withLock { idle.popLast() } ?? GEMMWorkspace()
    }

    static func give(_ w: GEMMWorkspace) {
        lock.withLock { if idle.count < maxIdle { idle.append(w) } }
    }
}

// MARK: Engine

/// The blocked, threaded engine behind `sgemm`. `isa` and `threads` are explicit so tests can
/// run every path and thread count side by side.
func sgemmEngine(isa: GEMMISA, threads: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                 alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                 beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue,
                 blocks: GEMMBlocks = GEMMConfig.blocks, cachedA: CachedOperand? = nil) {
    fcnCheck(m >= 0 && n >= 0 && k >= 0, "sgemm", "sizes must be >= 0, got m=\(m) n=\(n) k=\(k)")
    if m == 0 || n == 0 { return }
    let bCols = transB ? k : n
    fcnCheck(ldb >= max(1, bCols), "sgemm",
             "ldb=\(ldb) is smaller than a row of B (\(transB ? "[n, k] = [\(n), \(k)]" : "[k, n] = [\(k), \(n)]"))")
    var src = fcn_b_source()
    src.kind = Int32(FCN_B_MATRIX); src.transB = transB ? 1 : 0; src.b = b; src.ldb = ldb
    sgemmCore(isa: isa, threads: threads, transA: transA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              bSource: src, beta: beta, c: c, ldc: ldc, epilogue: epilogue, blocks: blocks, cachedA: cachedA)
}

/// Which implicit B operand `sgemmConv` multiplies by (see `fcn_b_source` in CFCNKernels).
enum GEMMConvOperand {
    /// op(B) = im2col(x) `[channels*kh*kw, outH*outW]` (convolution forward).
    case columns
    /// op(B) = im2col(x)^T `[outH*outW, channels*kh*kw]` (convolution weight gradient).
    case transposedColumns
}

/// `C = alpha * op(A) * op(B) + beta * C` (+ epilogue) where op(B) is the column matrix of
/// image `x` under `geometry` (or its transpose), read straight from `x` while packing: no
/// column matrix is stored. `n` and `k` follow from the geometry.
func sgemmConv(transA: Bool = false, m: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
               geometry: fcn_conv_geometry, x: UnsafePointer<Float>, operand: GEMMConvOperand,
               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue = .none,
               isa: GEMMISA = GEMMConfig.defaultISA, threads: Int = Compute.threads,
               blocks: GEMMBlocks = GEMMConfig.blocks, cachedA: CachedOperand? = nil) {
    let taps = Int(geometry.channels * geometry.kh * geometry.kw), pixels = Int(geometry.out_h * geometry.out_w)
    var src = fcn_b_source()
    src.kind = Int32(operand == .columns ? FCN_B_IM2COL : FCN_B_IM2COL_T)
    src.g = geometry; src.x = x
    let (n, k) = operand == .columns ? (pixels, taps) : (taps, pixels)
    sgemmCore(isa: isa, threads: threads, transA: transA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              bSource: src, beta: beta, c: c, ldc: ldc, epilogue: epilogue, blocks: blocks, cachedA: cachedA)
}

/// The engine proper, for any B source.
private func sgemmCore(isa: GEMMISA, threads: Int, transA: Bool, m: Int, n: Int, k: Int, alpha: Float,
                       a: UnsafePointer<Float>, lda: Int, bSource: fcn_b_source, beta: Float,
                       c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue, blocks: GEMMBlocks,
                       cachedA: CachedOperand?) {
    fcnCheck(m >= 0 && n >= 0 && k >= 0, "sgemm", "sizes must be >= 0, got m=\(m) n=\(n) k=\(k)")
    if m == 0 || n == 0 { return }
    let aCols = transA ? m : k
    fcnCheck(lda >= max(1, aCols), "sgemm",
             "lda=\(lda) is smaller than a row of A (\(transA ? "[k, m] = [\(k), \(m)]" : "[m, k] = [\(m), \(k)]"))")
    fcnCheck(ldc >= n, "sgemm", "ldc=\(ldc) is smaller than a row of C [m, n] = [\(m), \(n)]")
    if k == 0 || alpha == 0 {
        scaleAndEpilogue(m: m, n: n, beta: beta, c: c, ldc: ldc, epilogue: epilogue)
        return
    }
    guard let shape = isa.kernelShape else { fcnFail("sgemm", "ISA path \(isa.rawValue) is not available on this CPU") }
    let nThreads = ParallelState.inWorker ? 1 : threads
    let plan = GEMMPlan(m: m, n: n, k: k, mr: shape.mr, nr: shape.nr, threads: nThreads, blocks: blocks)
    let tiles = plan.tm * plan.tn
    let mPad = roundUp(m, plan.mr)
    // A weight kept packed between calls (Compute/WeightCache.swift): packed once as
    // `prepackA` lays it out, then every tile reads its rows of it.
    if let cachedA, let packed = cachedA.cache.packed(
        cachedA.storage, offset: cachedA.offset,
        layout: .gemmA(isa: isa.flag, mr: plan.mr, kc: plan.kc, m: m, k: k, lda: lda, transA: transA), floats: mPad * k,
        fill: { prepackA(isa: isa.flag, plan: plan, workers: max(1, nThreads), transA: transA, m: m, k: k, a: a, lda: lda, dst: $0) }) {
        // Tiles split along N then (no tile packs B twice; each reads all of packed A).
        let planPacked = GEMMPlan(m: m, n: n, k: k, mr: shape.mr, nr: shape.nr, threads: nThreads, blocks: blocks, aPacked: true)
        withExtendedLifetime(packed) {
            runTiles(isa: isa, plan: planPacked, transA: transA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                     bSource: bSource, beta: beta, c: c, ldc: ldc, epilogue: epilogue, packedA: UnsafePointer(packed.pointer))
        }
        return
    }
    // Tiles side by side over the full height in one row block (conv layers on several
    // threads): A would be packed identically by every tile, so it is packed once, split
    // between the threads, and shared (see `prepackA`).
    if tiles > 1 && plan.tm == 1 && m <= plan.mc && mPad * k <= GEMMConfig.sharedPackedAFloats {
        withScratch(mPad * k) { packed in
            prepackA(isa: isa.flag, plan: plan, workers: tiles, transA: transA, m: m, k: k, a: a, lda: lda, dst: packed)
            runTiles(isa: isa, plan: plan, transA: transA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                     bSource: bSource, beta: beta, c: c, ldc: ldc, epilogue: epilogue, packedA: UnsafePointer(packed))
        }
        return
    }
    runTiles(isa: isa, plan: plan, transA: transA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
             bSource: bSource, beta: beta, c: c, ldc: ldc, epilogue: epilogue, packedA: nil)
}

// MARK: A packed by the caller

/// Packs a plain row-major block `a` (`rows` rows of depth `k`, leading dimension `lda`) as
/// rows `lo ..< lo + rows` (`lo` a multiple of MR) of an A of `m` rows packed whole in K
/// blocks of `kc` (`GEMMPlan.kBlock`): K block pc at `dst + roundUp(m, MR) * pc`, as
/// `prepackA` lays it out. `dst` holds `roundUp(m, MR) * k` floats.
func packARows(isa: GEMMISA, mr: Int, kc: Int, m: Int, k: Int, a: UnsafePointer<Float>, lda: Int, lo: Int,
               rows: Int, dst: UnsafeMutablePointer<Float>) {
    precondition(lo % mr == 0 && lo + rows <= m, "packARows: rows \(lo)..<\(lo + rows) of \(m)")
    let mPad = roundUp(m, mr)
    var pc = 0
    while pc < k {
        let kcb = min(kc, k - pc)
        fcn_sgemm_pack_a(isa.flag, 0, a, lda, 0, pc, rows, kcb, dst + mPad * pc + lo * kcb)
        pc += kcb
    }
}

/// Fills `count` A operands of `m x k`, each packed whole by `packARows` (K blocks of `kc`),
/// operand e at `dst + e * stride`: `transform(e, lo, hi, scratch)` writes rows `lo ..< hi` of
/// operand e plain into scratch (row stride k), blocks of 8 MR panels spread over the threads.
/// (The transformed weights that the cache keeps: Winograd F(2, 7) U, Strassen block sums.)
func packOperands(count: Int, isa: GEMMISA, mr: Int, kc: Int, m: Int, k: Int, stride: Int,
                  dst: UnsafeMutablePointer<Float>,
                  transform: (_ e: Int, _ lo: Int, _ hi: Int, _ scratch: UnsafeMutablePointer<Float>) -> Void) {
    let blockRows = 8 * mr, blocks = (m + blockRows - 1) / blockRows
    let p = UncheckedSendable(dst)
    parallelFor(count * blocks) { item in
        let e = item / blocks, lo = (item % blocks) * blockRows, hi = min(m, lo + blockRows)
        withScratch((hi - lo) * k) { s in
            transform(e, lo, hi, s)
            packARows(isa: isa, mr: mr, kc: kc, m: m, k: k, a: s, lda: k, lo: lo, rows: hi - lo, dst: p.value + e * stride)
        }
    }
}

/// Rows `rows` (starting at a multiple of MR) of `C = packedA * op(B) + beta * C` (+ epilogue,
/// whose row bias is indexed by the row of C) on the calling thread, where `packedA` holds
/// all `m` rows of A packed by `packARows` for K blocks of `GEMMPlan.kBlock(m, k)`.
func sgemmPackedRows(isa: GEMMISA, m: Int, n: Int, k: Int, packedA: UnsafePointer<Float>, rows: Range<Int>,
                     bSource: fcn_b_source, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                     epilogue: GEMMEpilogue = .none, blocks: GEMMBlocks = GEMMConfig.blocks) {
    guard let shape = isa.kernelShape else { fcnFail("sgemm", "ISA path \(isa.rawValue) is not available on this CPU") }
    if rows.isEmpty || n == 0 || k == 0 { return }
    let plan = GEMMPlan(m: m, n: n, k: k, mr: shape.mr, nr: shape.nr, threads: 1, blocks: blocks, aPacked: true)
    let ws = GEMMWorkspacePool.take()
    defer { GEMMWorkspacePool.give(ws) }
    runTile(isa: isa.flag, plan: plan, ws: ws, transA: false, aRows: m, rows: rows, cols: 0..<n, k: k, alpha: 1,
            a: packedA, lda: k, bSource: bSource, beta: beta, c: c, ldc: ldc, epilogue: epilogue, packedA: packedA)
}

/// Packs all of op(A) (`m` rows, every K block of `plan`) into `dst`: K block `pc` at
/// `dst + roundUp(m, MR) * pc`, laid out as `fcn_sgemm_pack_a` lays out one block. The row
/// panels are split between `workers` threads.
private func prepackA(isa: Int32, plan: GEMMPlan, workers: Int, transA: Bool, m: Int, k: Int,
                      a: UnsafePointer<Float>, lda: Int, dst: UnsafeMutablePointer<Float>) {
    let mPad = roundUp(m, plan.mr), panels = mPad / plan.mr
    let ta: Int32 = transA ? 1 : 0
    let box = UncheckedSendable((a, dst))
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        let (a, dst) = box.value
        let lo = panels * w / workers * plan.mr, hi = min(m, panels * (w + 1) / workers * plan.mr)
        if lo >= hi { return }
        var pc = 0
        while pc < k {
            let kc = min(plan.kc, k - pc)
            fcn_sgemm_pack_a(isa, ta, a, lda, lo, pc, hi - lo, kc, dst + mPad * pc + lo * kc)
            pc += kc
        }
    }
}

/// Runs every tile of `plan` (on `tm * tn` threads when more than one).
private func runTiles(isa: GEMMISA, plan: GEMMPlan, transA: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, bSource: fcn_b_source, beta: Float,
                      c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue, packedA: UnsafePointer<Float>?) {
    let tiles = plan.tm * plan.tn
    if let packedA, tiles > 1 && plan.tm == 1 {
        // Shared packed A (one row block): the threads take column chunks from a counter
        // instead of one fixed share each, so a thread that the machine slows down does not
        // leave the others idle (`GEMMPlan.guidedChunks`). Sums are unchanged: every column is
        // computed the same way whoever takes it. A packed A larger than the L3 (a cached
        // fc6: 411 MB) is streamed from memory once per chunk, so then each thread takes one
        // share.
        let aFloats = roundUp(m, plan.mr) * k
        let bounds = GEMMPlan.guidedChunks(panels: (n + plan.nr - 1) / plan.nr, threads: tiles,
                                           equalShares: aFloats > GEMMConfig.streamedPackedAFloats)
        let chunks = bounds.count - 1
        let next = ChunkCounter()
        let args = UncheckedSendable((a, c, epilogue, bSource, packedA))
        DispatchQueue.concurrentPerform(iterations: tiles) { _ in
            ParallelState.$inWorker.withValue(true) {
                let (a, c, epilogue, bSource, packedA) = args.value
                let ws = GEMMWorkspacePool.take()
                defer { GEMMWorkspacePool.give(ws) }
                while true {
                    let i = next.take()
                    if i >= chunks { break }
                    let cols = bounds[i] * plan.nr..<min(n, bounds[i + 1] * plan.nr)
                    runTile(isa: isa.flag, plan: plan, ws: ws, transA: transA, aRows: m, rows: 0..<m, cols: cols, k: k,
                            alpha: alpha, a: a, lda: lda, bSource: bSource, beta: beta, c: c, ldc: ldc,
                            epilogue: epilogue, packedA: packedA)
                }
            }
        }
        return
    }
    let args = UncheckedSendable((a, c, epilogue, bSource, packedA))
    let run: @Sendable (Int) -> Void = { t in
        let (a, c, epilogue, bSource, packedA) = args.value
        let rows = GEMMPlan.part(t / plan.tn, of: plan.tm, total: m, align: plan.mr)
        let cols = GEMMPlan.part(t % plan.tn, of: plan.tn, total: n, align: plan.nr)
        if rows.isEmpty || cols.isEmpty { return }
        let ws = GEMMWorkspacePool.take()
        defer { GEMMWorkspacePool.give(ws) }
        runTile(isa: isa.flag, plan: plan, ws: ws, transA: transA, aRows: m, rows: rows, cols: cols, k: k,
                alpha: alpha, a: a, lda: lda, bSource: bSource, beta: beta, c: c, ldc: ldc, epilogue: epilogue,
                packedA: packedA)
    }
    if tiles == 1 {
        run(0)
    } else {
        DispatchQueue.concurrentPerform(iterations: tiles) { t in
            ParallelState.$inWorker.withValue(true) { run(t) }
        }
    }
}

/// A shared counter handing out chunk numbers 0, 1, 2, ... to the threads of one call.
private final class ChunkCounter: @unchecked Sendable {
    private let lock = Lock()
    private var value = 0
    func take() -> Int { lock.withLock { defer { value += 1 }; return value } }
}

private func runTile(isa: Int32, plan: GEMMPlan, ws: GEMMWorkspace, transA: Bool, aRows: Int,
                     rows: Range<Int>, cols: Range<Int>, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, bSource: fcn_b_source,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue,
                     packedA: UnsafePointer<Float>?) {
    // Packed A (shared or cached) holds every row of A, K block pc at packedA + mPadAll * pc.
    let mPadAll = roundUp(aRows, plan.mr)
    let ncMax = min(plan.nc, roundUp(cols.count, plan.nr))
    let mcMax = min(plan.mc, roundUp(rows.count, plan.mr))
    let kcMax = min(plan.kc, k)
    let singleRowBlock = rows.count <= plan.mc
    let unpackedA = !transA && packedA == nil && fcn_sgemm_has_unpacked_a(isa) != 0
        && lda % GEMMConfig.unpackedAConflictingStride != 0
        && cols.count <= (singleRowBlock ? GEMMConfig.unpackedAColumnsOneBlock : GEMMConfig.unpackedAColumns)
    let bFloats = kcMax * (singleRowBlock && !unpackedA ? plan.nr : ncMax)
    let needsTmp = bSource.kind == Int32(FCN_B_IM2COL_T)
    ws.reserve(a: mcMax * kcMax, b: bFloats + (needsTmp ? kcMax * plan.nr : 0))
    var src = bSource
    if needsTmp { src.tmp = ws.b + bFloats }
    let ta: Int32 = transA ? 1 : 0
    let relu: Int32 = epilogue.relu ? 1 : 0
    var jc = cols.lowerBound
    while jc < cols.upperBound {
        let nc = min(plan.nc, cols.upperBound - jc)
        var pc = 0
        while pc < k {
            let kc = min(plan.kc, k - pc)
            let first = pc == 0, last = pc + kc == k
            let rb = last ? epilogue.rowBias.map { $0 + rows.lowerBound } : nil
            let cb = last ? epilogue.colBias.map { $0 + jc } : nil
            if singleRowBlock && !unpackedA {
                // The A block is the whole tile height: packed B would not be reused, so B is
                // packed panel by panel inside the macro-kernel (hot in cache, prefetched).
                // A pre-packed for all tiles (rows is then all of 0..<m), or packed here.
                let pa: UnsafePointer<Float>
                if let packedA {
                    pa = packedA + mPadAll * pc + rows.lowerBound * kc
                } else {
                    fcn_sgemm_pack_a(isa, ta, a, lda, rows.lowerBound, pc, rows.count, kc, ws.a)
                    pa = UnsafePointer(ws.a)
                }
                fcn_sgemm_macro_packing_b_src(isa, rows.count, nc, kc, alpha, pa, &src, pc, jc, ws.b,
                                              first ? beta : 1, c + rows.lowerBound * ldc + jc, ldc,
                                              rb, cb, last ? relu : 0)
                pc += kc
                continue
            }
            fcn_sgemm_pack_b_src(isa, &src, pc, jc, kc, nc, ws.b)
            if unpackedA {
                // Few columns: A is read in place, each element once (see GEMMConfig.unpackedAColumns).
                fcn_sgemm_macro_unpacked_a(isa, rows.count, nc, kc, alpha, a + rows.lowerBound * lda + pc, lda,
                                           ws.b, ws.a, first ? beta : 1, c + rows.lowerBound * ldc + jc, ldc,
                                           rb, cb, last ? relu : 0)
                pc += kc
                continue
            }
            var ic = rows.lowerBound
            while ic < rows.upperBound {
                let mc = min(plan.mc, rows.upperBound - ic)
                let pa: UnsafePointer<Float>
                if let packedA {
                    pa = packedA + mPadAll * pc + ic * kc
                } else {
                    fcn_sgemm_pack_a(isa, ta, a, lda, ic, pc, mc, kc, ws.a)
                    pa = UnsafePointer(ws.a)
                }
                fcn_sgemm_macro(isa, mc, nc, kc, alpha, pa, ws.b, first ? beta : 1, c + ic * ldc + jc, ldc,
                                rb.map { $0 + (ic - rows.lowerBound) }, cb, last ? relu : 0)
                ic += mc
            }
            pc += kc
        }
        jc += nc
    }
}

/// C = beta * C (+ epilogue) for the degenerate cases k == 0 or alpha == 0.
private func scaleAndEpilogue(m: Int, n: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                              epilogue: GEMMEpilogue) {
    for i in 0..<m {
        let row = c + i * ldc
        let rb = epilogue.rowBias?[i] ?? 0
        for j in 0..<n {
            var v = beta == 0 ? 0 : beta * row[j]
            v += rb
            if let cb = epilogue.colBias { v += cb[j] }
            if epilogue.relu && v < 0 { v = 0 }
            row[j] = v
        }
    }
}
