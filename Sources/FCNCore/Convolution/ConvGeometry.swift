// The geometry every convolution routine works on, and how a product's independent work
// items are spread over the threads.
//
// Contract: one `ConvGeometry` is the geometry of a *forward* convolution `y = conv(x, w)`
// with x `[N, Cin, H, W]`, w `[Cout, Cin/groups, kH, kW]` and y `[N, Cout, outH, outW]`
// (outH/outW are explicit, so a transpose convolution whose outputPadding >= stride still
// maps onto it). Its three products (`ConvProduct`) cover conv2d and convTranspose2d:
//
//   forward          y  = W * cols(x)                    (conv2d forward, convT input grad)
//   input gradient   gx = col2im(W^T * gy)               (conv2d input grad, convT forward)
//   weight gradient  gw = sum over images gy * cols(x)^T  (both weight grads)
//
// where cols(x) `[K, P]` is the column matrix (K = Cin/groups*kH*kW taps, P output pixels).
// Convolution/ConvAlgorithm.swift chooses how each product is computed;
// Convolution/ConvProducts.swift runs the choice.
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
    /// When false, every algorithm but the general implicit GEMM (and col2im tiles for the
    /// input gradient) is off (tests compare the others with it).
    var fastPaths = true
    /// Whether 3x3 stride-1 convolutions may run as Winograd F(2x2, 3x3) (see `ConvAlgorithm`).
    var winograd: WinogradChoice = .auto

    var inGroupChannels: Int { inChannels / groups }
    var outGroupChannels: Int { outChannels / groups }
    /// Rows of the column matrix (GEMM depth).
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

    /// Workspace bound (floats) for one column tile, before the 256-column floor.
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
