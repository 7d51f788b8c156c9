// The convolution engine shared by conv2d and convTranspose2d.
//
// Contract: every routine works on one `ConvGeometry`, the geometry of a *forward*
// convolution `y = conv(x, w)` with x `[N, Cin, H, W]`, w `[Cout, Cin/groups, kH, kW]` and
// y `[N, Cout, outH, outW]` (outH/outW are explicit, so a transpose convolution whose
// outputPadding >= stride still maps onto it). Three products cover both ops:
//
//   convForward         y  = W * im2col(x)                 (conv2d forward, convT input grad)
//   convBackwardData    gx = col2im(W^T * gy)              (conv2d input grad, convT forward)
//   convBackwardWeight  gw = sum over batch/tiles gy * im2col(x)^T   (both weight grads)
//
// All products go through `sgemm` with M = Cout/groups, K = Cin/groups*kH*kW and N = a tile
// of output pixels. im2col/col2im run in the C target (fcn_im2col_tile / fcn_col2im_tile)
// over tiles of at most `tileColumns` output pixels, so the column workspace is bounded
// whatever the image size: at most max(2^20, 128*K) floats (4 MiB, or 128 columns for very
// deep inputs) per thread, plus, for the weight gradient split over threads, one private
// weight-sized accumulator per thread (summed at the end). Fallbacks: 1x1 stride-1 unpadded convolutions skip im2col (the
// input plane is already the column matrix); depthwise forward (one input channel per
// group) uses a direct loop per plane.
//
// Threads: when the work items (batch x group x tile) are at least `Compute.threads`, they
// are split over workers with `parallelChunks` (sgemm then runs serially inside each worker);
// otherwise items run one after another and sgemm threads internally. No nesting.
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
    /// Output pixels per column tile: `workspaceFloats / K`, clamped to [128, 4096] and to the plane.
    var tileColumns: Int { max(1, min(outPlane, max(128, min(4096, ConvGeometry.workspaceFloats / max(1, k))))) }
    var tileCount: Int { (outPlane + tileColumns - 1) / tileColumns }

    /// The per-group C geometry (channels = input channels of one group).
    var cGeometry: fcn_conv_geometry {
        fcn_conv_geometry(channels: Int64(inGroupChannels), height: Int64(inH), width: Int64(inW),
                          kh: Int64(kH), kw: Int64(kW), sh: Int64(strideH), sw: Int64(strideW),
                          pad_top: Int64(padTop), pad_left: Int64(padLeft), dh: Int64(dilH), dw: Int64(dilW),
                          out_h: Int64(outH), out_w: Int64(outW))
    }
}

/// Whether `count` work items are split over worker threads (see the file contract).
func convSplitsItems(_ count: Int) -> Bool {
    let threads = Compute.threads
    return threads > 1 && count >= threads && !ParallelState.inWorker
}

/// Runs `body(range, workspace)` over `0..<count` work items with a workspace of
/// `workspace` floats per call, split over workers when `split` (default: `convSplitsItems`).
func convRun(_ count: Int, split: Bool? = nil, workspace: Int, _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
    if count == 0 { return }
    func withWorkspace(_ r: Range<Int>) {
        let ws = UnsafeMutablePointer<Float>.allocate(capacity: max(1, workspace))
        defer { ws.deallocate() }
        body(r, ws)
    }
    if split ?? convSplitsItems(count) {
        parallelChunks(count) { r in withWorkspace(r) }
    } else {
        withWorkspace(0..<count)
    }
}

/// Adds `bias[r]` (when given) to row r of a `rows x cols` block with row stride `ld`,
/// then clamps at 0 when `relu`.
@inline(__always)
func convEpilogue(_ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int,
                  bias: UnsafePointer<Float>?, relu: Bool) {
    if bias == nil && !relu { return }
    for r in 0..<rows {
        let row = y + r * ld
        let b = bias?[r] ?? 0
        if relu {
            for j in 0..<cols { let v = row[j] + b; row[j] = v > 0 ? v : 0 }
        } else {
            for j in 0..<cols { row[j] += b }
        }
    }
}

/// y = conv(x, w) + bias (then ReLU when `relu`). y `[N, Cout, outH, outW]` is overwritten.
func convForward(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                 bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool = false) {
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
    if g.isPointwise {
        convRun(g.batch * g.groups, workspace: 0) { range, _ in
            for item in range {
                let n = item / g.groups, gi = item % g.groups
                let xg = x + (n * g.inChannels + gi * cinG) * inPlane
                let yg = y + (n * g.outChannels + gi * coutG) * P
                sgemm(transA: false, transB: false, m: coutG, n: P, k: cinG, alpha: 1,
                      a: w + gi * coutG * cinG, lda: cinG, b: xg, ldb: P, beta: 0, c: yg, ldc: P)
                convEpilogue(yg, rows: coutG, cols: P, ld: P, bias: bias.map { $0 + gi * coutG }, relu: relu)
            }
        }
        return
    }
    let T = g.tileColumns, tiles = g.tileCount
    convRun(g.batch * g.groups * tiles, workspace: K * T) { range, cols in
        for item in range {
            let tile = item % tiles, ng = item / tiles
            let n = ng / g.groups, gi = ng % g.groups
            let p0 = tile * T, np = min(T, P - p0)
            let xg = x + (n * g.inChannels + gi * cinG) * inPlane
            let yg = y + (n * g.outChannels + gi * coutG) * P + p0
            fcn_im2col_tile(&cg, xg, Int64(p0), Int64(np), cols)
            sgemm(transA: false, transB: false, m: coutG, n: np, k: K, alpha: 1,
                  a: w + gi * coutG * K, lda: K, b: cols, ldb: np, beta: 0, c: yg, ldc: P)
            convEpilogue(yg, rows: coutG, cols: np, ld: P, bias: bias.map { $0 + gi * coutG }, relu: relu)
        }
    }
}

/// gx = col2im(W^T * gy): the input gradient of `convForward` (the adjoint of the map
/// x -> conv(x, w)). gx `[N, Cin, H, W]` is overwritten.
func convBackwardData(_ g: ConvGeometry, gy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                      gx: UnsafeMutablePointer<Float>) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, K = g.k
    let P = g.outPlane, inPlane = g.inPlane
    var cg = g.cGeometry
    if g.isPointwise {
        convRun(g.batch * g.groups, workspace: 0) { range, _ in
            for item in range {
                let n = item / g.groups, gi = item % g.groups
                sgemm(transA: true, transB: false, m: cinG, n: P, k: coutG, alpha: 1,
                      a: w + gi * coutG * cinG, lda: cinG,
                      b: gy + (n * g.outChannels + gi * coutG) * P, ldb: P, beta: 0,
                      c: gx + (n * g.inChannels + gi * cinG) * inPlane, ldc: P)
            }
        }
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
                fcn_col2im_tile(&cg, cols, Int64(p0), Int64(np), gxg)
            }
        }
    }
}

/// gw = sum over images and tiles of gy * im2col(x)^T: the weight gradient of
/// `convForward`. gw `[Cout, Cin/groups, kH, kW]` is overwritten.
func convBackwardWeight(_ g: ConvGeometry, x: UnsafePointer<Float>, gy: UnsafePointer<Float>,
                        gw: UnsafeMutablePointer<Float>) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, K = g.k
    let P = g.outPlane, inPlane = g.inPlane
    let wCount = g.outChannels * K
    var cg = g.cGeometry
    let pointwise = g.isPointwise
    let T = pointwise ? P : g.tileColumns, tiles = pointwise ? 1 : g.tileCount
    let items = g.batch * g.groups * tiles
    gw.initialize(repeating: 0, count: wCount)
    let lock = Lock()
    let parallel = convSplitsItems(items)
    // Workspace: the column tile, then (in parallel mode) a private weight accumulator.
    let tileFloats = pointwise ? 0 : K * T
    convRun(items, split: parallel, workspace: tileFloats + (parallel ? wCount : 0)) { range, ws in
        let acc: UnsafeMutablePointer<Float>
        if parallel { acc = ws + tileFloats; acc.initialize(repeating: 0, count: wCount) } else { acc = gw }
        for item in range {
            let tile = item % tiles, ng = item / tiles
            let n = ng / g.groups, gi = ng % g.groups
            let xg = x + (n * g.inChannels + gi * cinG) * inPlane
            let gyg = gy + (n * g.outChannels + gi * coutG) * P
            if pointwise {
                sgemm(transA: false, transB: true, m: coutG, n: cinG, k: P, alpha: 1,
                      a: gyg, lda: P, b: xg, ldb: inPlane, beta: 1, c: acc + gi * coutG * K, ldc: K)
            } else {
                let p0 = tile * T, np = min(T, P - p0)
                fcn_im2col_tile(&cg, xg, Int64(p0), Int64(np), ws)
                sgemm(transA: false, transB: true, m: coutG, n: K, k: np, alpha: 1,
                      a: gyg + p0, lda: P, b: ws, ldb: np, beta: 1, c: acc + gi * coutG * K, ldc: K)
            }
        }
        if parallel {
            lock.withLock { for i in 0..<wCount { gw[i] += acc[i] } }
        }
    }
}

/// Per-channel sums of `t` `[N, C, plane]` over N and the plane (bias gradients).
func channelSums(_ t: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int) -> Tensor {
    Tensor.make(shape: [channels]) { out in
        for c in 0..<channels {
            var s: Float = 0
            for n in 0..<batch {
                let p = t + (n * channels + c) * plane
                for i in 0..<plane { s += p[i] }
            }
            out[c] = s
        }
    }
}
