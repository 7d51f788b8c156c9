// The convolution engine shared by conv2d and convTranspose2d.
//
// Contract: every routine works on one `ConvGeometry`, the geometry of a *forward*
// convolution `y = conv(x, w)` with x `[N, Cin, H, W]`, w `[Cout, Cin/groups, kH, kW]` and
// y `[N, Cout, outH, outW]` (outH/outW are explicit, so a transpose convolution whose
// outputPadding >= stride still maps onto it). Three products cover both ops:
//
//   convForward         y  = W * im2col(x)                 (conv2d forward, convT input grad)
//   convBackwardData    gx = col2im(W^T * gy)              (conv2d input grad, convT forward)
//   convBackwardWeight  gw = sum over images gy * im2col(x)^T   (both weight grads)
//
// Implicit GEMM: the column matrix im2col(x) `[K, P]` (K = Cin/groups*kH*kW taps, P output
// pixels) is never stored. `sgemmConv` (Compute/GEMM+Driver.swift) packs its panels straight
// from x inside the GEMM engine (CFCNKernels fcn_sgemm_*_src), so one GEMM per (image, group)
// covers the whole image: forward `[Cout/g, K] x im2col(x)` with bias and ReLU fused in the
// write-back; weight gradient `gy [Cout/g, P] x im2col(x)^T` accumulated over images (beta 1);
// stride-1 input gradient as the convolution of gy with the flipped kernel
// (`convBackwardDataFlips`). Workspace: the GEMM engine's (bounded there), plus the flipped
// weight copy (one weight's size) for the input gradient.
// Fallbacks: 3x3 stride-1 convolutions with enough channels run as Winograd F(2x2, 3x3)
// (`usesWinograd`, Convolution/ConvWinogradF2x2.swift; forward and the flipped-kernel input gradient);
// kh x 7 stride-1 forwards with a cached weight (inference) as Winograd F(2, 7) along the
// rows (`usesWinogradF27`, Convolution/ConvWinogradF27.swift), and large 1x1 ones (fc7) by one level of
// Strassen's algorithm (`strassenApplies`, Compute/GEMM+Strassen.swift);
// 1x1 stride-1 unpadded convolutions are plain GEMMs on x; depthwise forward (one
// input channel per group) is a direct loop per plane; input gradients with stride > 1 (and
// transpose-convolution forwards) run GEMM `W^T gy` into column tiles of at most
// `tileColumns` pixels, then col2im (fcn_col2im_tile): at most max(2^20, 256*K) floats
// (4 MiB, or 256 columns of a very deep layer) of column workspace.
//
// Threads: when the independent work items (images x groups) split evenly over
// `Compute.threads` (or there are many), they run on separate workers with `parallelChunks`
// (sgemm then runs serially inside each worker); otherwise items run one after another and
// the GEMM engine splits each product over the threads. No nesting.
import CFCNKernels

/// Geometry of one forward convolution (see the file contract).
struct ConvGeometry: Sendable, Equatable {
    var batch: Int
    var inChannels: Int, inH: Int, inW: Int
    var outChannels: Int, outH: Int, outW: Int
    var kH: Int, kW: Int
    var strideH: Int, strideW: Int
    var padTop: Int, padBottom: Int, padLeft: Int, padRight: Int
    var dilH: Int, dilW: Int
    var groups: Int
    /// When false, the 1x1 and depthwise fallbacks are skipped (tests compare them with
    /// the general im2col path).
    var fastPaths = true
    /// Whether 3x3 stride-1 convolutions may run as Winograd F(2x2, 3x3) (Convolution/ConvWinogradF2x2.swift).
    var winograd: WinogradChoice = .auto

    var inGroupChannels: Int { inChannels / groups }
    var outGroupChannels: Int { outChannels / groups }
    /// Rows of a column tile (GEMM depth).
    var k: Int { inGroupChannels * kH * kW }
    var inPlane: Int { inH * inW }
    var outPlane: Int { outH * outW }

    /// 1x1, stride 1, no padding, output plane equal to the input plane: the input is
    /// its own column matrix.
    var isPointwise: Bool {
        fastPaths && kH == 1 && kW == 1 && strideH == 1 && strideW == 1 && padTop == 0 && padLeft == 0
            && outH == inH && outW == inW
    }
    /// Every group reads a single input channel (depthwise, channel multiplier Cout/groups).
    var isDepthwise: Bool { fastPaths && groups > 1 && inGroupChannels == 1 }

    /// Workspace bound (floats) for one column tile, before the 128-column floor.
    static let workspaceFloats = 1 << 20
    /// Output pixels per column tile: `workspaceFloats / K`, clamped to [256, 4096] and to the plane
    /// (the floor keeps deep layers such as fc6 in one or two GEMM calls, so their weights are
    /// packed once or twice, not once per 100 pixels).
    var tileColumns: Int { max(1, min(outPlane, max(256, min(4096, ConvGeometry.workspaceFloats / max(1, k))))) }
    var tileCount: Int { (outPlane + tileColumns - 1) / tileColumns }

    /// The per-group C geometry (channels = input channels of one group).
    var cGeometry: fcn_conv_geometry {
        fcn_conv_geometry(channels: Int64(inGroupChannels), height: Int64(inH), width: Int64(inW),
                          kh: Int64(kH), kw: Int64(kW), sh: Int64(strideH), sw: Int64(strideW),
                          pad_top: Int64(padTop), pad_left: Int64(padLeft), dh: Int64(dilH), dw: Int64(dilW),
                          out_h: Int64(outH), out_w: Int64(outW))
    }
}

/// Whether `count` independent work items are split over worker threads (each then runs its
/// GEMMs on one thread) rather than run in order with the GEMM engine threading each one:
/// only when every thread gets the same number of items or there are many (balance).
func convSplitsItems(_ count: Int) -> Bool {
    let threads = Compute.threads
    return threads > 1 && !ParallelState.inWorker && count >= threads && (count % threads == 0 || count >= 4 * threads)
}

/// Runs `body(item)` for every item in `0..<count`, split over workers when `convSplitsItems`.
func convItems(_ count: Int, _ body: (Int) -> Void) {
    if count == 0 { return }
    if convSplitsItems(count) {
        parallelChunks(count) { r in for i in r { body(i) } }
    } else {
        for i in 0..<count { body(i) }
    }
}

/// Runs `body(range, workspace)` over `0..<count` work items with a workspace of
/// `workspace` floats per call, split over workers when `split` (default: `convSplitsItems`).
func convRun(_ count: Int, split: Bool? = nil, workspace: Int, _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
    if count == 0 { return }
    func withWorkspace(_ r: Range<Int>) {
        withScratch(workspace) { ws in body(r, ws) }
    }
    if split ?? convSplitsItems(count) {
        parallelChunks(count) { r in withWorkspace(r) }
    } else {
        withWorkspace(0..<count)
    }
}

/// Adds `bias[r]` (when given) to row r of a `rows x cols` block with row stride `ld`,
/// then clamps at 0 when `relu` (NaN stays NaN).
@inline(__always)
func convEpilogue(_ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int,
                  bias: UnsafePointer<Float>?, relu: Bool) {
    if bias == nil && !relu { return }
    for r in 0..<rows {
        let row = y + r * ld
        let b = bias?[r] ?? 0
        if relu {
            for j in 0..<cols { let v = row[j] + b; row[j] = v < 0 ? 0 : v }
        } else {
            for j in 0..<cols { row[j] += b }
        }
    }
}

/// y = conv(x, w) + bias (then ReLU when `relu`). y `[N, Cout, outH, outW]` is overwritten.
/// One implicit GEMM per (image, group): `[Cout/g, K] x im2col(x) [K, P]`, bias and ReLU in
/// the GEMM write-back.
func convForward(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                 bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool = false,
                 weightStorage: TensorStorage? = nil, weightCache: WeightCache = .current) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, K = g.k
    let P = g.outPlane, inPlane = g.inPlane
    var cg = g.cGeometry
    if g.isDepthwise {
        // Direct loop per output plane: output channel oc reads input channel oc / coutG.
        let planes = g.batch * g.outChannels
        let kk = g.kH * g.kW
        convRun(planes, workspace: 0) { range, _ in
            for item in range {
                let n = item / g.outChannels, oc = item % g.outChannels
                let xp = x + (n * g.inChannels + oc / coutG) * inPlane
                fcn_conv_plane_direct(&cg, xp, w + oc * kk, bias?[oc] ?? 0, y + item * P)
                if relu { convEpilogue(y + item * P, rows: 1, cols: P, ld: P, bias: nil, relu: true) }
            }
        }
        return
    }
    let nb = g.batchedImages
    if nb > 0 {
        convForwardBatched(g, images: nb, x: x, w: w, bias: bias, y: y, relu: relu)
        return
    }
    if g.usesWinograd {
        convForwardWinograd(g, x: x, w: w, bias: bias, y: y, relu: relu, weightStorage: weightStorage,
                            weightCache: weightCache)
        return
    }
    // The packed-weight cache serves one weight matrix (groups == 1).
    var cacheWeight = g.groups == 1 ? weightStorage : nil
    if let weightStorage, g.usesWinogradF27 {
        switch convForwardWinogradF27(g, x: x, w: w, bias: bias, y: y, relu: relu, weightStorage: weightStorage,
                                      weightCache: weightCache) {
        case .done: return
        case .firstSighting: cacheWeight = nil   // the weight is cached as U from the next call on
        case .unavailable: break
        }
    }
    let cachedA = cacheWeight.map { CachedOperand(storage: $0, offset: 0, cache: weightCache) }
    let pointwise = g.isPointwise
    convItems(g.batch * g.groups) { item in
        let n = item / g.groups, gi = item % g.groups
        let xg = x + (n * g.inChannels + gi * cinG) * inPlane
        let yg = y + (n * g.outChannels + gi * coutG) * P
        let ep = GEMMEpilogue(rowBias: bias.map { $0 + gi * coutG }, relu: relu)
        if pointwise {
            var itemCachedA = cachedA
            if g.groups == 1, let weightStorage, strassenApplies(m: coutG, n: P, k: cinG) {
                switch sgemmStrassenCached(m: coutG, n: P, k: cinG, a: w, lda: cinG, weightStorage: weightStorage,
                                           b: xg, ldb: P, c: yg, ldc: P, epilogue: ep, weightCache: weightCache) {
                case .done: return
                case .firstSighting: itemCachedA = nil   // cached as block sums from the next call on
                case .unavailable: break
                }
            }
            sgemmEngine(isa: GEMMConfig.defaultISA, threads: Compute.threads, transA: false, transB: false,
                        m: coutG, n: P, k: cinG, alpha: 1, a: w + gi * coutG * cinG, lda: cinG, b: xg, ldb: P,
                        beta: 0, c: yg, ldc: P, epilogue: ep, cachedA: itemCachedA)
        } else {
            sgemmConv(m: coutG, a: w + gi * coutG * K, lda: K, geometry: cg, x: xg, operand: .columns,
                      beta: 0, c: yg, ldc: P, epilogue: ep, cachedA: cachedA)
        }
    }
}

/// gx = col2im(W^T * gy): the input gradient of `convForward` (the adjoint of the map
/// x -> conv(x, w)). gx `[N, Cin, H, W]` is overwritten.
///
/// Stride 1 (see `convBackwardDataFlips`): computed as a convolution of gy with the flipped, transposed kernel
/// (`W'[ci, co, i, j] = W[co, ci, kH-1-i, kW-1-j]`, padding `(k-1)*d - pad`, output size
/// H x W), one implicit GEMM of depth `Cout/g * kH * kW` per (image, group). Other strides:
/// GEMM into bounded column tiles, then col2im.
func convBackwardData(_ g: ConvGeometry, gy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                      gx: UnsafeMutablePointer<Float>) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, K = g.k
    let P = g.outPlane, inPlane = g.inPlane
    let cg = g.cGeometry
    let subpixel = g.fastPaths && (g.strideH > 1 || g.strideW > 1) && g.dilH == 1 && g.dilW == 1
        && g.kH % g.strideH == 0 && g.kW % g.strideW == 0
    let nb = g.batchedImages
    if nb > 0 && !subpixel {
        convBackwardDataBatched(g, images: nb, gy: gy, w: w, gx: gx)
        return
    }
    if g.isPointwise {
        convItems(g.batch * g.groups) { item in
            let n = item / g.groups, gi = item % g.groups
            sgemm(transA: true, transB: false, m: cinG, n: P, k: coutG, alpha: 1,
                  a: w + gi * coutG * cinG, lda: cinG,
                  b: gy + (n * g.outChannels + gi * coutG) * P, ldb: P, beta: 0,
                  c: gx + (n * g.inChannels + gi * cinG) * inPlane, ldc: P)
        }
        return
    }
    if g.fastPaths && g.strideH == 1 && g.strideW == 1 && convBackwardDataFlips(g) {
        let kk = g.kH * g.kW, kb = coutG * kk
        withScratch(g.outChannels * cinG * kk) { wf in
            fcn_flip_kernels(w, Int64(g.groups), Int64(coutG), Int64(cinG), Int64(kk), wf)
            // 3x3 kernels: the flipped-kernel convolution by Winograd when it pays (padding
            // 2 - pad on each side, negative for pads above 2: a crop, which the transform reads as zeros).
            var wg = ConvGeometry(batch: g.batch, inChannels: g.outChannels, inH: g.outH, inW: g.outW,
                                  outChannels: g.inChannels, outH: g.inH, outW: g.inW, kH: g.kH, kW: g.kW,
                                  strideH: 1, strideW: 1, padTop: g.kH - 1 - g.padTop, padBottom: g.kH - 1 - g.padBottom,
                                  padLeft: g.kW - 1 - g.padLeft, padRight: g.kW - 1 - g.padRight,
                                  dilH: g.dilH, dilW: g.dilW, groups: g.groups)
            wg.winograd = g.winograd
            if wg.usesWinograd {
                convForwardWinograd(wg, x: gy, w: wf, bias: nil, y: gx, relu: false)
                return
            }
            let bg = fcn_conv_geometry(channels: Int64(coutG), height: Int64(g.outH), width: Int64(g.outW),
                                       kh: Int64(g.kH), kw: Int64(g.kW), sh: 1, sw: 1,
                                       pad_top: Int64((g.kH - 1) * g.dilH - g.padTop),
                                       pad_left: Int64((g.kW - 1) * g.dilW - g.padLeft),
                                       dh: Int64(g.dilH), dw: Int64(g.dilW), out_h: Int64(g.inH), out_w: Int64(g.inW))
            let wfc = UnsafePointer(wf)
            convItems(g.batch * g.groups) { item in
                let n = item / g.groups, gi = item % g.groups
                sgemmConv(m: cinG, a: wfc + gi * cinG * kb, lda: kb, geometry: bg,
                          x: gy + (n * g.outChannels + gi * coutG) * P, operand: .columns, beta: 0,
                          c: gx + (n * g.inChannels + gi * cinG) * inPlane, ldc: inPlane)
            }
        }
        return
    }
    if subpixel {
        convBackwardDataSubpixel(g, gy: gy, w: w, gx: gx)
        return
    }
    // Tiles of one (image, group) scatter into overlapping input regions, so the parallel
    // items are (image, group) pairs and their tiles run in order.
    let T = g.tileColumns, tiles = g.tileCount
    convRun(g.batch * g.groups, workspace: K * T) { range, cols in
        for item in range {
            let n = item / g.groups, gi = item % g.groups
            let gxg = gx + (n * g.inChannels + gi * cinG) * inPlane
            gxg.initialize(repeating: 0, count: cinG * inPlane)
            let gyg = gy + (n * g.outChannels + gi * coutG) * P
            for tile in 0..<tiles {
                let p0 = tile * T, np = min(T, P - p0)
                sgemm(transA: true, transB: false, m: K, n: np, k: coutG, alpha: 1,
                      a: w + gi * coutG * K, lda: K, b: gyg + p0, ldb: P, beta: 0, c: cols, ldc: np)
                // Each input channel receives only its own rows of the tile: when the items
                // are not split over workers, the channels are (inside a worker this runs serially).
                let taps = g.kH * g.kW
                let colsC = UnsafePointer(cols), gxC = gxg
                parallelChunks(cinG, minChunk: max(1, 65_536 / max(1, taps * np))) { r in
                    var sub = cg
                    sub.channels = Int64(r.count)
                    fcn_col2im_tile(&sub, colsC + r.lowerBound * taps * np, Int64(p0), Int64(np), gxC + r.lowerBound * inPlane)
                }
            }
        }
    }
}

/// Strided input gradient (= transpose-convolution forward) when the kernel is a multiple of
/// the stride (k = t*s, dilation 1; every FCN upsampling layer): each output pixel
/// `oy = s*q + a - pad` sums t x t taps of gy, so the s*s output phases are t x t stride-1
/// convolutions of gy that share one column matrix. One implicit GEMM per (image, group),
/// `W_all [s*s*Cin/g, Cout/g*t*t] x im2col_t(gy)` (gy padded by t-1, planes of about
/// (H+t-1) x (W+t-1)), then `fcn_subpixel_scatter` interleaves the phases into gx. Depth
/// Cout/g*t*t instead of Cout/g, and no col2im. Workspace: W_all (one weight's size) and the
/// phase planes, s*s*Cin/g*(H+t-1)*(W+t-1) floats (about one output image per group).
func convBackwardDataSubpixel(_ g: ConvGeometry, gy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                              gx: UnsafeMutablePointer<Float>) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels
    let sh = g.strideH, sw = g.strideW, th = g.kH / sh, tw = g.kW / sw, kk = g.kH * g.kW
    // Phase planes cover every q = (oy + padTop) / s of the output (input-gradient rows that
    // no window reached, past the bottom padding, get q = outH + t - 1 and read zeros).
    let qh = (g.inH - 1 + g.padTop) / sh + 1, qw = (g.inW - 1 + g.padLeft) / sw + 1, Q = qh * qw
    let mAll = sh * sw * cinG, kAll = coutG * th * tw
    withScratch(g.groups * mAll * kAll) { wAll in
        for gi in 0..<g.groups {
            for co in 0..<coutG {
                for ci in 0..<cinG {
                    let src = w + ((gi * coutG + co) * cinG + ci) * kk
                    for a in 0..<sh {
                        for b in 0..<sw {
                            let row = wAll + (gi * mAll + (a * sw + b) * cinG + ci) * kAll + co * th * tw
                            for u in 0..<th {
                                for v in 0..<tw {
                                    row[u * tw + v] = src[(a + sh * (th - 1 - u)) * g.kW + (b + sw * (tw - 1 - v))]
                                }
                            }
                        }
                    }
                }
            }
        }
        let pg = fcn_conv_geometry(channels: Int64(coutG), height: Int64(g.outH), width: Int64(g.outW),
                                   kh: Int64(th), kw: Int64(tw), sh: 1, sw: 1,
                                   pad_top: Int64(th - 1), pad_left: Int64(tw - 1), dh: 1, dw: 1,
                                   out_h: Int64(qh), out_w: Int64(qw))
        let split = convSplitsItems(g.batch * g.groups)
        let wAllC = UnsafePointer(wAll)
        convRun(g.batch * g.groups, split: split, workspace: mAll * Q) { range, phases in
            for item in range {
                let n = item / g.groups, gi = item % g.groups
                sgemmConv(m: mAll, a: wAllC + gi * mAll * kAll, lda: kAll, geometry: pg,
                          x: gy + (n * g.outChannels + gi * coutG) * g.outPlane, operand: .columns,
                          beta: 0, c: phases, ldc: Q)
                let out = gx + (n * g.inChannels + gi * cinG) * g.inPlane
                let ph = UnsafePointer(phases)
                // Channels are independent: split them when the items are not.
                parallelChunks(cinG) { r in
                    fcn_subpixel_scatter(ph, Int64(cinG), Int64(r.lowerBound), Int64(r.upperBound),
                                         Int64(sh), Int64(sw), Int64(qh), Int64(qw), Int64(g.padTop), Int64(g.padLeft),
                                         Int64(g.inH), Int64(g.inW), out)
                }
            }
        }
    }
}

/// Whether the stride-1 input gradient runs as a flipped-kernel convolution (else GEMM +
/// col2im). The flip copies the weight once (memory traffic ~ 2 * weight count) and buys a
/// GEMM of depth Cout/g * kH * kW instead of Cout/g; it pays unless the planes are so small
/// that the copy rivals the GEMM (fc6 at 500 x 500: 102 M weights for a 22 x 22 plane).
func convBackwardDataFlips(_ g: ConvGeometry) -> Bool {
    g.outGroupChannels < 256 || g.batch * g.inPlane >= 1024
}

/// gw = sum over images of gy * im2col(x)^T: the weight gradient of `convForward`.
/// gw `[Cout, Cin/groups, kH, kW]` is overwritten. One implicit GEMM of depth P per
/// (image, group) (`[Cout/g, P] x im2col(x)^T [P, K]`), accumulated over the images with
/// beta = 1; groups run on separate workers when there are enough of them.
func convBackwardWeight(_ g: ConvGeometry, x: UnsafePointer<Float>, gy: UnsafePointer<Float>,
                        gw: UnsafeMutablePointer<Float>) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, K = g.k
    let P = g.outPlane, inPlane = g.inPlane
    let cg = g.cGeometry
    let nb = g.batchedImages
    if nb > 0 {
        convBackwardWeightBatched(g, images: nb, x: x, gy: gy, gw: gw)
        return
    }
    if g.usesWinograd {
        convBackwardWeightWinograd(g, x: x, gy: gy, gw: gw)
        return
    }
    let pointwise = g.isPointwise
    convItems(g.groups) { gi in
        let c = gw + gi * coutG * K
        for n in 0..<g.batch {
            let xg = x + (n * g.inChannels + gi * cinG) * inPlane
            let gyg = gy + (n * g.outChannels + gi * coutG) * P
            let beta: Float = n == 0 ? 0 : 1
            if pointwise {
                sgemm(transA: false, transB: true, m: coutG, n: cinG, k: P, alpha: 1,
                      a: gyg, lda: P, b: xg, ldb: inPlane, beta: beta, c: c, ldc: K)
            } else {
                sgemmConv(m: coutG, a: gyg, lda: P, geometry: cg, x: xg, operand: .transposedColumns,
                          beta: beta, c: c, ldc: K)
            }
        }
    }
}

/// Per-channel sums of `t` `[N, C, plane]` over N and the plane (bias gradients).
func channelSums(_ t: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int) -> Tensor {
    Tensor.make(shape: [channels]) { out in
        for c in 0..<channels {
            var s: Float = 0
            for n in 0..<batch { s += fcn_sum(t + (n * channels + c) * plane, Int64(plane)) }
            out[c] = s
        }
    }
}
