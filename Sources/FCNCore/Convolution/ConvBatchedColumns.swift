// Batched columns: one GEMM over the column matrices of several images side by side (all
// three products of `batchedColumns`).
//
// Contract: for convolutions with groups == 1 whose output plane P is small, the per-image
// GEMMs of ConvImplicitGEMM.swift pack the whole weight for a handful of columns (fc6 of a
// width-1/8 FCN on 96 x 96 images: 1.6 M weights packed for 9 columns, once per image, and
// its weight gradient re-read and re-written once per image). Here the column matrices of nb
// images are stored side by side, cols `[K, nb*P]` (image i in columns i*P ..< (i+1)*P), so
// the weight is packed once per nb images and the GEMMs have nb times the columns (or depth):
//
//   forward          Y `[Cout, nb*P]` = W cols            then de-interleaved into y[n, co, p]
//   input gradient   C `[K, nb*P]` = W^T G                then col2im per image into gx
//   weight gradient  gw (+)= G cols^T                     depth nb*P instead of P
//
// with G `[Cout, nb*P]` the interleaved gy. Pointwise layers (1x1, stride 1) use x itself as
// the column matrix. Workspace: (K + Cout) * nb * P floats, nb chosen so that it stays
// within `ConvGeometry.batchedWorkspaceFloats` (more images run in further chunks).
// The sums run in another order than the per-image path; both are held to the reference.
// When it runs: `ConvGeometry.algorithm(for:mode:)`, rule 4 (`batchedImages`).
import CFCNKernels

extension ConvGeometry {
    /// Workspace bound of the batched path (4 M floats).
    static let batchedWorkspaceFloats = 4 << 20
}

/// dst `[channels, count*plane]` (row stride `count*plane`) from src `[count, channels, plane]`:
/// the planes of `count` images laid side by side per channel.
func interleavePlanes(_ src: UnsafePointer<Float>, count: Int, channels: Int, plane: Int,
                      into dst: UnsafeMutablePointer<Float>) {
    movePlanes(src, count: count, channels: channels, plane: plane, into: dst, interleave: true)
}

/// The inverse of `interleavePlanes`: dst `[count, channels, plane]` from src `[channels, count*plane]`.
func deinterleavePlanes(_ src: UnsafePointer<Float>, count: Int, channels: Int, plane: Int,
                        into dst: UnsafeMutablePointer<Float>) {
    movePlanes(src, count: count, channels: channels, plane: plane, into: dst, interleave: false)
}

/// Copies plane (image i, channel c) between `[count, channels, plane]` and
/// `[channels, count*plane]` (to the latter when `interleave`), channels split over threads.
private func movePlanes(_ src: UnsafePointer<Float>, count: Int, channels: Int, plane: Int,
                        into dst: UnsafeMutablePointer<Float>, interleave: Bool) {
    let ld = count * plane
    let p = UncheckedSendable((src, dst))
    parallelChunks(channels, minChunk: max(1, 32_768 / max(1, count * plane))) { r in
        let (src, dst) = p.value
        for c in r {
            for i in 0..<count {
                let byImage = (i * channels + c) * plane, byChannel = c * ld + i * plane
                if interleave {
                    (dst + byChannel).update(from: src + byImage, count: plane)
                } else {
                    (dst + byImage).update(from: src + byChannel, count: plane)
                }
            }
        }
    }
}

/// cols `[K, count*P]` of `count` consecutive images starting at `x` (`[count, Cin, H, W]`).
private func batchedColumns(_ g: ConvGeometry, x: UnsafePointer<Float>, count: Int, into cols: UnsafeMutablePointer<Float>) {
    let P = g.outPlane, ld = count * P
    if g.isPointwise {
        interleavePlanes(x, count: count, channels: g.inChannels, plane: P, into: cols)
        return
    }
    let cg = g.cGeometry, K = g.k, inImage = g.inChannels * g.inPlane
    parallelChunks(K, minChunk: max(1, 32_768 / max(1, ld))) { r in
        var cg = cg
        for i in 0..<count {
            fcn_im2col_rows(&cg, x + i * inImage, Int64(r.lowerBound), Int64(r.count), 0, Int64(P),
                            cols + r.lowerBound * ld + i * P, Int64(ld))
        }
    }
}

/// Runs `body(first image, image count, workspace)` over the batch in chunks of `nb` images,
/// with a workspace of `(K + Cout) * nb * P` floats.
private func batchedChunks(_ g: ConvGeometry, _ nb: Int,
                           _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
    withScratch((g.k + g.outChannels) * nb * g.outPlane) { ws in
        var n0 = 0
        while n0 < g.batch {
            let count = min(nb, g.batch - n0)
            body(n0, count, ws)
            n0 += count
        }
    }
}

/// `convForward` on the batched path: Y = W cols per chunk (bias and ReLU in the write-back).
func convForwardBatched(_ g: ConvGeometry, images nb: Int, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool) {
    let K = g.k, P = g.outPlane, cout = g.outChannels
    batchedChunks(g, nb) { n0, count, ws in
        let ld = count * P, cols = ws, out = ws + K * nb * P
        batchedColumns(g, x: x + n0 * g.inChannels * g.inPlane, count: count, into: cols)
        sgemm(transA: false, transB: false, m: cout, n: ld, k: K, alpha: 1, a: w, lda: K, b: cols, ldb: ld,
              beta: 0, c: out, ldc: ld, epilogue: GEMMEpilogue(rowBias: bias, relu: relu))
        deinterleavePlanes(out, count: count, channels: cout, plane: P, into: y + n0 * cout * P)
    }
}

/// `convBackwardData` on the batched path: C = W^T G per chunk, then col2im per image.
func convBackwardDataBatched(_ g: ConvGeometry, images nb: Int, gy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                             gx: UnsafeMutablePointer<Float>) {
    let K = g.k, P = g.outPlane, cout = g.outChannels, inImage = g.inChannels * g.inPlane
    let cg = g.cGeometry
    batchedChunks(g, nb) { n0, count, ws in
        let ld = count * P, colsG = ws, G = ws + K * nb * P
        interleavePlanes(gy + n0 * cout * P, count: count, channels: cout, plane: P, into: G)
        sgemm(transA: true, transB: false, m: K, n: ld, k: cout, alpha: 1, a: w, lda: K, b: G, ldb: ld,
              beta: 0, c: colsG, ldc: ld)
        if g.isPointwise {
            deinterleavePlanes(colsG, count: count, channels: g.inChannels, plane: P, into: gx + n0 * inImage)
            return
        }
        // Each input channel receives only its own rows of C: channels split over threads.
        let taps = g.kH * g.kW, cols = UnsafePointer(colsG)
        parallelChunks(g.inChannels, minChunk: max(1, 32_768 / max(1, taps * ld))) { r in
            var sub = cg
            sub.channels = Int64(r.count)
            for i in 0..<count {
                let gxi = gx + (n0 + i) * inImage + r.lowerBound * g.inPlane
                gxi.initialize(repeating: 0, count: r.count * g.inPlane)
                fcn_col2im_tile_ld(&sub, cols + r.lowerBound * taps * ld + i * P, Int64(ld), 0, Int64(P), gxi)
            }
        }
    }
}

/// `convBackwardWeight` on the batched path: gw (+)= G cols^T per chunk.
func convBackwardWeightBatched(_ g: ConvGeometry, images nb: Int, x: UnsafePointer<Float>, gy: UnsafePointer<Float>,
                               gw: UnsafeMutablePointer<Float>) {
    let K = g.k, P = g.outPlane, cout = g.outChannels
    batchedChunks(g, nb) { n0, count, ws in
        let ld = count * P, cols = ws, G = ws + K * nb * P
        batchedColumns(g, x: x + n0 * g.inChannels * g.inPlane, count: count, into: cols)
        interleavePlanes(gy + n0 * cout * P, count: count, channels: cout, plane: P, into: G)
        sgemm(transA: false, transB: true, m: cout, n: K, k: ld, alpha: 1, a: G, lda: ld, b: cols, ldb: ld,
              beta: n0 == 0 ? 0 : 1, c: gw, ldc: K)
    }
}
