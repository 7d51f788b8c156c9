// Winograd F(2, 7) along the rows: the forward of `winogradF27`, kh x 7 convolutions whose
// weight the packed-weight cache serves (fc6 of VGG16-FCN at inference).
//
// Contract: the same product as the implicit GEMM for a geometry with kW = 7, stride 1,
// dilation 1, groups 1 (any kh, any padding, any output size): y = conv(x, w) + bias, then
// ReLU when asked. Each pair of output columns costs 8 multiply-adds per kernel row and
// channel pair instead of 14, so the GEMM work is 4/7 of the implicit GEMM's. Transforms in
// C (CFCNKernels/winograd_f27.c, contract in fcn_winograd.h); the 8 products
// `M_e [Cout, rows * tilesW] = U_e [Cout, Cin * kh] x cols_{kh x 1}(T_e)` run on the SGEMM
// engine, B packed from T_e by its implicit im2col.
// U (8 packed A operands, 8/7 of the weight) is read from the packed-weight cache
// (Compute/WeightCache.swift), where `winogradF27Weights` builds it once: built per call it
// would write 8/7 of the weight every call. When the cache cannot give it (first sighting,
// no room) the algorithm choice (`ConvGeometry.algorithm(for:mode:)`, rule 6) runs the
// implicit GEMM instead.
// Per image, output rows are processed in chunks: the input transform of the chunk's input
// window (T: 8 * Cin * (rows + kh - 1) * tilesW floats), the 8 GEMMs with each thread taking
// one band of output channels for every e (each element of U is read once per chunk), then
// the output transform with bias and ReLU. Workspace: T + M with M = 8 * Cout * rows *
// tilesW at most `winogradF27ChunkFloats` (rows >= 1), whatever the image size.
// Accuracy: the points 0, +-1, +-2, +-1/2 (the rows scaled so that B^T has short binary
// entries) keep the error a few times that of a direct float32 GEMM (figures: Benchmarks.md,
// Accuracy); tests hold it to the naive loops and to PyTorch at 1e-5. As with F(2x2, 3x3),
// an infinite input cell reaches every output of the column pairs that read it.
import CFCNKernels

/// M floats of one chunk of output rows (4 M floats = 16 MiB: the 16 output rows of fc6 at
/// 500 x 500 in one chunk, so U is streamed once per image).
let winogradF27ChunkFloats = 1 << 22

extension ConvGeometry {
    /// Whether the geometry is one Winograd F(2, 7) computes.
    var allowsWinogradF27: Bool {
        kW == 7 && strideH == 1 && strideW == 1 && dilH == 1 && dilW == 1 && groups == 1
    }
}

/// U of `weight` (`[Cout, Cin, kh, 7]`) for Winograd F(2, 7) on `g`,
/// from the packed-weight cache: the 8 elements' matrices `[Cout, Cin * kh]`, transformed
/// plain by row blocks and packed whole (see `WeightCache.transformedOperands`).
func winogradF27Weights(_ g: ConvGeometry, weight: CachedOperand,
                        isa: GEMMISA = GEMMConfig.defaultISA) -> WeightCache.Form {
    precondition(g.allowsWinogradF27)
    guard let (mr, nr) = isa.kernelShape else { fcnFail("conv2d", "no GEMM kernel for \(isa)") }
    let cin = g.inChannels, cout = g.outChannels, kh = g.kH, k = cin * kh
    let kc = GEMMPlan.kBlock(m: cout, k: k, mr: mr, nr: nr)
    let w = weight.values
    return weight.cache.transformedOperands(
        of: weight, layout: .winogradF27U(isa: isa.flag, mr: mr, kc: kc, cout: cout, cin: cin, kh: kh),
        count: 8, isa: isa, mr: mr, kc: kc, m: cout, k: k) { e, lo, hi, s in
        fcn_winograd_f27_weights(w, Int64(cout), Int64(cin), Int64(kh), Int64(lo), Int64(hi), Int32(e), s, Int64(k))
    }
}

/// y = conv(x, w) + bias (ReLU when `relu`) by Winograd F(2, 7) with `u` from
/// `winogradF27Weights` (same `isa`); see the file contract. `isa` and `chunkFloats` (M floats
/// of a chunk of output rows) are for tests.
func convForwardWinogradF27(_ g: ConvGeometry, x: UnsafePointer<Float>, u: PackedWeights,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool,
                            isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int = winogradF27ChunkFloats) {
    precondition(g.allowsWinogradF27)
    guard let (mr, _) = isa.kernelShape else { fcnFail("conv2d", "no GEMM kernel for \(isa)") }
    let cin = g.inChannels, cout = g.outChannels, kh = g.kH, k = cin * kh
    let tilesW = (g.outW + 1) / 2
    let uStride = roundUp(cout, mr) * k
    precondition(u.count == 8 * uStride, "convForwardWinogradF27: U of \(u.count) floats for \(g)")
    let rowsPerChunk = max(1, min(g.outH, chunkFloats / max(1, 8 * cout * tilesW)))
    let tStride = cin * (rowsPerChunk + kh - 1) * tilesW, mStride = cout * rowsPerChunk * tilesW
    // Each thread takes one band of output channels in every GEMM (its share of U).
    let parts = max(1, min(Compute.threads, (cout + mr - 1) / mr))
    withScratch(8 * (tStride + mStride)) { t in
        let m = t + 8 * tStride
        for n in 0..<g.batch {
            let xn = x + n * cin * g.inPlane, yn = y + n * cout * g.outPlane
            for oy0 in stride(from: 0, to: g.outH, by: rowsPerChunk) {
                let rows = min(rowsPerChunk, g.outH - oy0), window = rows + kh - 1
                let ldm = rows * tilesW
                let p = UncheckedSendable((xn, yn + oy0 * g.outW, t, m, UnsafePointer(u.pointer)))
                parallelChunks(cin, minChunk: 4) { r in
                    withScratch(2 * tilesW + 6) { s in
                        fcn_winograd_f27_input(p.value.0, Int64(g.inH), Int64(g.inW), Int64(g.padLeft), Int64(oy0 - g.padTop),
                                               Int64(window), Int64(tilesW), Int64(r.lowerBound), Int64(r.upperBound),
                                               p.value.2, Int64(tStride), s)
                    }
                }
                // im2col of T_e with a kh x 1 kernel: row c * kh + ky, column r * tilesW + tx.
                let cg = fcn_conv_geometry(channels: Int64(cin), height: Int64(window), width: Int64(tilesW),
                                           kh: Int64(kh), kw: 1, sh: 1, sw: 1, pad_top: 0, pad_left: 0, dh: 1, dw: 1,
                                           out_h: Int64(rows), out_w: Int64(tilesW))
                parallelFor(8 * parts) { item in
                    let e = item / parts
                    var src = fcn_b_source()
                    src.kind = Int32(FCN_B_IM2COL); src.g = cg; src.x = UnsafePointer(p.value.2 + e * tStride)
                    sgemmPackedRows(isa: isa, m: cout, n: ldm, k: k, packedA: p.value.4 + e * uStride,
                                    rows: GEMMPlan.part(item % parts, of: parts, total: cout, align: mr),
                                    bSource: src, beta: 0, c: p.value.3 + e * mStride, ldc: ldm)
                }
                parallelChunks(cout, minChunk: 4) { r in
                    fcn_winograd_f27_output(p.value.3, Int64(mStride), Int64(ldm), Int64(r.lowerBound), Int64(r.upperBound),
                                            Int64(rows), Int64(tilesW), bias, relu ? 1 : 0, p.value.1,
                                            Int64(g.outPlane), Int64(g.outW))
                }
            }
        }
    }
    withExtendedLifetime(u) {}
}
