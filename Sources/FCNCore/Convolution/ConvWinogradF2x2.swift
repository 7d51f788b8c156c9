// Winograd F(2x2, 3x3) convolution: the forward and weight gradient of `winogradF2x2` (and of
// the stride-1 input gradient as a flipped-kernel convolution).
//
// Contract: the same product as the implicit GEMM for a geometry with kH = kW = 3, stride 1,
// dilation 1, groups 1 (any padding, any output size): y = conv(x, w) + bias, then ReLU when
// asked. Each 2x2 output tile costs 16 multiply-adds per channel pair instead of 36, so the
// GEMM work is 4/9 of the implicit GEMM's. Transforms in C (CFCNKernels/winograd.c, contract
// in fcn_winograd.h); the 16 products `M_e [Cout, tiles] = U_e [Cout, Cin] x V_e [Cin, tiles]`
// run on the SGEMM engine's macro-kernel, U packed once per call, V written by the input
// transform straight into packed-B panels.
// Per image, tiles are processed in chunks of `nt` (each thread a share of every image's
// tiles when each gets at least a panel of them, else one chunk at a time with each stage
// split over the threads): input transform, the 16 GEMMs, output transform with bias and
// ReLU. Every chunk reads all of U, so when U is larger than the L3 (`winogradStreamedUFloats`:
// 512 -> 512 channels in F(4x4)) it comes from memory once per chunk; such layers take
// chunks of up to U's size (at 65 x 65 the whole image) one at a time, each stage split
// over the threads (the products over the elements, so each thread streams only its own
// U_e). Workspace: U (16 * roundup(Cout, MR) * Cin floats; kept in the packed-weight cache
// when that serves the weight) and per chunk V + M = 16 * nt * (Cin + Cout) floats, at most
// `winogradThreadChunkFloats` (per thread), `winogradChunkFloats` or, for a U streamed from
// memory, U's floats, whatever the image size. The input gradient is the same product with
// the flipped kernel (Convolution/ConvImplicitGEMM.swift); the weight gradient
// (`convBackwardWeightWinograd`) reuses the input transform and sums dM_e V_e^T over the
// tiles, then maps dU back through G^T dU G.
// Accuracy: every transform factor is 0, +-1 or +-1/2, so the error stays at float rounding
// of the sums (tests hold it to the naive loops and to PyTorch in ConvWinogradTests).
// One difference from a direct sum: an infinite input cell reaches every output of the
// tiles that read it (as NaN where the exact terms would cancel), not only its 3x3
// neighbourhood.
// F(4x4, 3x3) (`tile: 4`: `winogradF4x4`, `winogradF4x4ReLUPool`) is the same pipeline
// with 6x6 patches and 36 elements (fcn_winograd_f4_* in CFCNKernels): 36 products per 4x4
// tile, 9/16 of F(2x2)'s multiply-adds, and 36/64 of its V and M traffic per output; the
// weight gradient likewise (dM = A dY A^T of 4x4 tiles, G^T dU G).
// Its factors (up to 8 and 1/24) amplify rounding about 20 times more than F(2x2)'s (still
// about 1e-7 of the sum of |terms| in float32; Benchmarks.md, Accuracy).
// F(6x6, 3x3) (`tile: 6`: `winogradF6x6`, inference forward only, no pool) likewise with 8x8
// patches and 64 elements (fcn_winograd_f6_* in CFCNKernels): 64 products per 6x6 tile,
// 0.79 of F(4x4)'s per output, and on 65 x 65 and 66 x 66 planes (the ResNet FCNs' layer3,
// head and phase mosaics) 121 tiles against 289, 0.74 of the products. Factors up to 32 and
// 1/90: on whole networks its scores stay within about 5e-6 of PyTorch's (Benchmarks.md,
// Accuracy).
// When it runs: `ConvGeometry.algorithm(for:mode:)`, rules 1 and 5.
import CFCNKernels

/// The C transforms of one tile size (F(2x2): `fcn_winograd_f2_*`, F(4x4): `fcn_winograd_f4_*`;
/// their signatures are the same), the forward's and the weight gradient's, and the
/// per-thread scratch floats each needs for a row of `tilesW` tiles.
private struct WinogradTransforms {
    let weights: @convention(c) (UnsafePointer<Float>?, Int64, Int64, Int64, Int64, Int64, UnsafeMutablePointer<Float>?, Int64) -> Void
    let input: @convention(c) (Int32, UnsafePointer<Float>?, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64,
                               Int64, Int64, UnsafeMutablePointer<Float>?, Int64, UnsafeMutablePointer<Float>?) -> Void
    let output: @convention(c) (Int32, UnsafePointer<Float>?, Int64, Int64, Int64, Int64, Int64, Int64, Int64,
                                UnsafePointer<Float>?, Int32, UnsafeMutablePointer<Float>?, Int64, Int64,
                                UnsafeMutablePointer<Float>?) -> Void
    /// nil for F(6x6), which runs only the plain forward.
    let outputPool: (@convention(c) (Int32, UnsafePointer<Float>?, Int64, Int64, Int64, Int64, Int64, Int64, Int64,
                                     UnsafePointer<Float>?, Int32, UnsafeMutablePointer<Float>?, Int64, Int64, Int64, Int64,
                                     UnsafeMutablePointer<Float>?) -> Void)?
    let gradOutput: (@convention(c) (UnsafePointer<Float>?, Int64, Int64, Int64, Int64, Int64, Int64, Int64,
                                     UnsafeMutablePointer<Float>?, Int64, Int64) -> Void)?
    let weightsGrad: (@convention(c) (UnsafePointer<Float>?, Int64, Int64, Int64, Int64, UnsafeMutablePointer<Float>?) -> Void)?
    let inputScratch: (Int) -> Int, outputScratch: (Int) -> Int

    static func of(tile: Int) -> WinogradTransforms {
        if tile == 6 {
            return WinogradTransforms(weights: fcn_winograd_f6_weights, input: fcn_winograd_f6_input,
                                      output: fcn_winograd_f6_output, outputPool: nil, gradOutput: nil, weightsGrad: nil,
                                      inputScratch: { _ in 0 }, outputScratch: { _ in 0 })
        }
        return tile == 4
            ? WinogradTransforms(weights: fcn_winograd_f4_weights, input: fcn_winograd_f4_input, output: fcn_winograd_f4_output,
                                 outputPool: fcn_winograd_f4_output_pool, gradOutput: fcn_winograd_f4_grad_output,
                                 weightsGrad: fcn_winograd_f4_weights_grad, inputScratch: { 52 * ($0 + 1) },
                                 outputScratch: { 40 * $0 })
            : WinogradTransforms(weights: fcn_winograd_f2_weights, input: fcn_winograd_f2_input, output: fcn_winograd_f2_output,
                                 outputPool: fcn_winograd_f2_output_pool, gradOutput: fcn_winograd_f2_grad_output,
                                 weightsGrad: fcn_winograd_f2_weights_grad, inputScratch: { 12 * ($0 + 2) },
                                 outputScratch: { 4 * $0 })
    }
}

/// V + M floats of one chunk (8 MiB). Smaller chunks gained nothing on the VGG16 layers
/// (figures: Benchmarks.md, Convolution); the larger bound re-reads U less often.
let winogradChunkFloats = 1 << 21

/// V + M floats of a chunk that one thread runs whole (2 MiB, twice the L2 of a core; the
/// sizes tried are in Benchmarks.md, Convolution); at least 2 NR panels of tiles (64 tiles
/// of a 512-channel layer: 4 MiB).
let winogradThreadChunkFloats = 1 << 19

/// U (the transformed weight, all elements) above this many floats (8 M = 32 MiB, the L3 of
/// the machine it was measured on) is read from memory by every chunk, so such layers take
/// chunks of up to U's floats (see the file contract; figures: Benchmarks.md, Convolution).
let winogradStreamedUFloats = 8 << 20

extension ConvGeometry {
    /// Whether the geometry is one Winograd F(2x2, 3x3) computes.
    var allowsWinograd: Bool {
        kH == 3 && kW == 3 && strideH == 1 && strideW == 1 && dilH == 1 && dilW == 1 && groups == 1
    }
}

/// y = conv(x, w) + bias (ReLU when `relu`) by Winograd F(2x2, 3x3); see the file contract.
/// `g` must satisfy `allowsWinograd`; its padding may be negative (a crop: the flipped-kernel
/// input gradient). With `pool` (the pooled plane: outH / 2 or ceil(outH / 2) rows, likewise
/// columns), y `[N, Cout, pool.h, pool.w]` is the 2x2 stride-2 max pool of that result, each
/// 2x2 output tile being one pool window: the convolution's output is never stored.
/// `tile`: 2 for F(2x2, 3x3), 4 for F(4x4, 3x3) (with a pool, each tile then holds 2x2 pool
/// windows), 6 for F(6x6, 3x3) (no pool). `isa`, `chunkFloats` (V + M floats of a chunk)
/// and `streamedUFloats` are for tests.
func convForwardWinograd(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                         bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool,
                         pool: (h: Int, w: Int)? = nil, tile: Int = 2,
                         cachedWeight: CachedOperand? = nil,
                         isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int? = nil,
                         streamedUFloats: Int = winogradStreamedUFloats) {
    precondition(g.allowsWinograd && (tile == 2 || tile == 4 || (tile == 6 && pool == nil)))
    let elements = (tile + 2) * (tile + 2), transforms = WinogradTransforms.of(tile: tile)
    if let pool {
        precondition(pool.h >= g.outH / 2 && pool.h <= (g.outH + 1) / 2 && pool.w >= g.outW / 2 && pool.w <= (g.outW + 1) / 2)
    }
    let yPlane = pool.map { $0.h * $0.w } ?? g.outPlane
    guard let (mr, nr) = isa.kernelShape else { fcnFail("conv2d", "no GEMM kernel for \(isa)") }
    let cin = g.inChannels, cout = g.outChannels
    let tilesW = (g.outW + tile - 1) / tile, tiles = ((g.outH + tile - 1) / tile) * tilesW
    // Chunks of at most `budget` floats of V + M, a multiple of NR tiles, of equal size.
    func chunkTiles(_ budget: Int) -> Int {
        let ntMax = max(nr, (budget / (elements * (cin + cout))) / nr * nr)
        let chunks = (tiles + ntMax - 1) / ntMax
        return min(roundUp((tiles + chunks - 1) / chunks, nr), roundUp(tiles, nr))
    }
    // Per-thread shares (each chunk's V and M stay near that core) when every thread gets at
    // least a panel of tiles; otherwise, or when U is streamed from memory, one large chunk
    // at a time with each stage split over the threads (fewer, larger chunks: fewer thread
    // hand-offs).
    let uStride = roundUp(cout, mr) * cin
    let threads = Compute.threads > 1 && !ParallelState.inWorker ? Compute.threads : 1
    var nt: Int, shares: Bool
    if elements * uStride > streamedUFloats {
        // U is read from memory by every chunk: chunks as large as U, one at a time.
        nt = chunkTiles(max(chunkFloats ?? winogradChunkFloats, elements * uStride))
        shares = false
    } else {
        shares = threads > 1 && g.batch * tiles >= threads * nr
        nt = chunkFloats.map(chunkTiles)
            ?? (shares ? max(min(2 * nr, roundUp(tiles, nr)), chunkTiles(winogradThreadChunkFloats))
                       : chunkTiles(winogradChunkFloats))
    }
    let vStride = nt * cin, mStride = cout * nt
    // The chunks (image, first tile, tiles) each thread runs: with shares, the tiles of each
    // image are split into one share per thread at multiples of half a panel (289 tiles:
    // 144 and 145, where whole chunks of 32 gave 160 and 129; the GEMM kernels run a last
    // panel of 9 ... 24 columns at half cost or less), each share in chunks of at most nt.
    let work: [[(n: Int, t0: Int, count: Int)]] = (0..<(shares ? threads : 1)).map { w in
        var list: [(n: Int, t0: Int, count: Int)] = []
        for n in 0..<g.batch {
            let share = shares ? GEMMPlan.part(w, of: threads, total: tiles, align: max(1, nr / 2)) : 0..<tiles
            var t0 = share.lowerBound
            while t0 < share.upperBound {
                list.append((n, t0, min(nt, share.upperBound - t0)))
                t0 += nt
            }
        }
        return list
    }
    // U: from the packed-weight cache when it holds this weight, else computed here.
    func transformWeights(_ dst: UnsafeMutablePointer<Float>) {
        let pu = UncheckedSendable(dst)
        parallelChunks((cout + mr - 1) / mr) { r in
            transforms.weights(w, Int64(cout), Int64(cin), Int64(mr), Int64(r.lowerBound), Int64(r.upperBound),
                               pu.value, Int64(uStride))
            if isa.reducedPrecision {
                for e in 0..<elements {
                    fcn_sgemm_bf16_panels(pu.value + e * uStride + r.lowerBound * mr * cin, r.count, cin)
                }
            }
        }
    }
    let cached = cachedWeight.flatMap {
        $0.cache.packed($0.storage, offset: $0.offset, layout: .winogradU(isa: isa.flag, tile: tile, mr: mr, cout: cout, cin: cin),
                        floats: elements * uStride, fill: transformWeights)
    }
    withScratch(cached == nil ? elements * uStride : 0) { scratchU in
        if cached == nil { transformWeights(scratchU) }
        let uPacked = cached?.pointer ?? scratchU
        let u = UnsafePointer(uPacked)
        // One chunk: input transform (split over channels), 16 GEMMs (over elements), output
        // transform (over output channels); inside a worker each split runs serially.
        func run(_ n: Int, _ t0: Int, _ cnt: Int, _ v: UnsafeMutablePointer<Float>) {
            let m = v + elements * vStride
            let p = UncheckedSendable((x + n * cin * g.inPlane, y + n * cout * yPlane, u, v, m))
            winogradInput(g, isa: isa, x: p.value.0, t0: t0, count: cnt, panel: nr, v: p.value.3, vStride: vStride,
                          tile: tile)
            parallelFor(elements) { e in
                fcn_sgemm_macro(isa.flag, cout, cnt, cin, 1, p.value.2 + e * uStride, p.value.3 + e * vStride, 0,
                                p.value.4 + e * mStride, nt, nil, nil, 0)
            }
            parallelChunks(cout, minChunk: 4) { r in
                withScratch(transforms.outputScratch(tilesW)) { s in
                    if let pool {
                        transforms.outputPool!(isa.elementwiseFlag, p.value.4, Int64(mStride), Int64(nt),
                                               Int64(r.lowerBound), Int64(r.upperBound), Int64(tilesW), Int64(t0),
                                               Int64(cnt), bias, relu ? 1 : 0, p.value.1, Int64(g.outH),
                                               Int64(g.outW), Int64(pool.h), Int64(pool.w), s)
                    } else {
                        transforms.output(isa.elementwiseFlag, p.value.4, Int64(mStride), Int64(nt), Int64(r.lowerBound),
                                               Int64(r.upperBound), Int64(tilesW), Int64(t0), Int64(cnt), bias,
                                               relu ? 1 : 0, p.value.1, Int64(g.outH), Int64(g.outW), s)
                    }
                }
            }
        }
        convRun(work.count, split: work.count > 1, workspace: elements * (vStride + mStride)) { range, v in
            for w in range { for c in work[w] { run(c.n, c.t0, c.count, v) } }
        }
        withExtendedLifetime(cached) {}
    }
}

/// gw = sum over the images of the weight gradient of `convForwardWinograd`'s product (gw
/// `[Cout, Cin, 3, 3]` overwritten): per chunk of tiles, V = B^T d B of the input (plain
/// `[E][Cin][nt]`, E = 16 elements for `tile` 2, 36 for `tile` 4) and dM = A dY A^T of the
/// output gradient (`[E][Cout][nt]`), then dU_e += dM_e V_e^T (E GEMMs of depth nt,
/// accumulated over chunks and images), and finally gw = G^T dU G. Workspace: dU (E * Cout *
/// Cin floats) and one chunk of V and dM (at most `winogradChunkFloats`). `isa` and
/// `chunkFloats` are for tests.
func convBackwardWeightWinograd(_ g: ConvGeometry, x: UnsafePointer<Float>, gy: UnsafePointer<Float>,
                                gw: UnsafeMutablePointer<Float>, tile: Int = 2, isa: GEMMISA = GEMMConfig.defaultISA,
                                chunkFloats: Int? = nil) {
    precondition(g.allowsWinograd && (tile == 2 || tile == 4))
    let elements = (tile + 2) * (tile + 2)
    let cin = g.inChannels, cout = g.outChannels
    let tilesW = (g.outW + tile - 1) / tile, tiles = ((g.outH + tile - 1) / tile) * tilesW
    let ntMax = max(16, (chunkFloats ?? winogradChunkFloats) / (elements * (cin + cout)))
    let chunks = (tiles + ntMax - 1) / ntMax
    let nt = (tiles + chunks - 1) / chunks
    let vStride = cin * nt, mStride = cout * nt, uStride = cout * cin
    let transforms = WinogradTransforms.of(tile: tile)
    withScratch(elements * uStride) { du in
        withScratch(elements * (vStride + mStride)) { v in
            let p = UncheckedSendable((v, v + elements * vStride, du))
            var beta: Float = 0
            for n in 0..<g.batch {
                let q = UncheckedSendable((x + n * cin * g.inPlane, gy + n * cout * g.outPlane))
                for t0 in stride(from: 0, to: tiles, by: nt) {
                    let cnt = min(nt, tiles - t0)
                    // V in one panel of nt tiles: row-major [Cin, nt] per element.
                    winogradInput(g, isa: isa, x: q.value.0, t0: t0, count: cnt, panel: nt, v: p.value.0, vStride: vStride,
                                  tile: tile)
                    parallelChunks(cout, minChunk: 4) { r in
                        transforms.gradOutput!(q.value.1, Int64(g.outH), Int64(g.outW), Int64(tilesW), Int64(t0), Int64(cnt),
                                   Int64(r.lowerBound), Int64(r.upperBound), p.value.1, Int64(mStride), Int64(nt))
                    }
                    let b = beta
                    parallelFor(elements) { e in
                        sgemmEngine(isa: isa, threads: 1, transA: false, transB: true, m: cout, n: cin, k: cnt, alpha: 1,
                                    a: p.value.1 + e * mStride, lda: nt, b: p.value.0 + e * vStride, ldb: nt,
                                    beta: b, c: p.value.2 + e * uStride, ldc: cin, epilogue: .none)
                    }
                    beta = 1
                }
            }
        }
        let p = UncheckedSendable((UnsafePointer(du), gw))
        parallelChunks(uStride, minChunk: 256) { r in
            transforms.weightsGrad!(p.value.0, Int64(cout), Int64(cin), Int64(r.lowerBound), Int64(r.upperBound), p.value.1)
        }
    }
}

/// The input transform of tiles `t0 ..< t0 + count` of one image `x` `[Cin, H, W]` into V
/// (`fcn_winograd_f2_input`, or `fcn_winograd_f4_input` when `tile` is 4: panels of `panel`
/// tiles, element stride `vStride`), split over the channels (serially inside a worker).
private func winogradInput(_ g: ConvGeometry, isa: GEMMISA, x: UnsafePointer<Float>, t0: Int, count: Int, panel: Int,
                           v: UnsafeMutablePointer<Float>, vStride: Int, tile: Int = 2) {
    let tilesW = (g.outW + tile - 1) / tile
    let p = UncheckedSendable((x, v))
    parallelChunks(g.inChannels, minChunk: 4) { r in
        let transforms = WinogradTransforms.of(tile: tile)
        withScratch(transforms.inputScratch(tilesW)) { s in
            transforms.input(isa.elementwiseFlag, p.value.0, Int64(g.inChannels), Int64(g.inH), Int64(g.inW),
                                  Int64(g.padTop), Int64(g.padLeft), Int64(tilesW), Int64(t0), Int64(count),
                                  Int64(r.lowerBound), Int64(r.upperBound), Int64(panel), p.value.1, Int64(vStride), s)
        }
    }
}

