// Implicit-GEMM convolution: products whose column matrix is read, never stored.
//
// Contract: the column matrix cols(x) `[K, P]` (K = Cin/groups*kH*kW taps, P output pixels)
// is never stored. `sgemmConv` (Compute/GEMM+Driver.swift) packs its panels straight from x
// inside the GEMM engine (CFCNKernels fcn_sgemm_*_src), so one GEMM per (image, group)
// covers the whole image:
//   forward (`implicitGEMM`)  `[Cout/g, K] x cols(x)`, bias and ReLU fused in the write-back;
//   weight gradient           `gy [Cout/g, P] x cols(x)^T`, accumulated over images (beta 1);
//   input gradient, stride 1 (`flippedKernel`) the convolution of gy with the flipped kernel;
//   input gradient, kernel a multiple of the stride (`subpixelPhases`) one GEMM over the
//     stride x stride phases, then an interleaving scatter.
// Pointwise layers (`pointwiseGEMM`) are plain GEMMs on x. The remaining input gradients
// (`col2imTiles`) run GEMM `W^T gy` into column tiles of at most `tileColumns` pixels, then
// col2im (fcn_col2im_tile). Workspace: the GEMM engine's (bounded there); the flipped weight
// copy (one weight's size); max(2^20, 256*K) floats of column tiles; the sub-pixel phases
// (about one output image per group).
import CFCNKernels

/// The forward of `implicitGEMM` (or of `pointwiseGEMM` when `pointwise`: a plain GEMM on x):
/// y = W * cols(x) + bias, then ReLU when `relu`, one GEMM per (image, group), bias and ReLU
/// in the GEMM write-back. `cachedA`: the weight as the packed-weight cache serves it.
/// `accumulate`: y holds a residual on entry and the product is added to it (beta 1), so
/// y = relu?(W * cols(x) + y + bias) in the same write-back.
func convForwardImplicitGEMM(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                             bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool,
                             pointwise: Bool, cachedA: CachedOperand?, accumulate: Bool = false) {
    let beta: Float = accumulate ? 1 : 0
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, K = g.k
    let P = g.outPlane, inPlane = g.inPlane
    let cg = g.cGeometry
    convItems(g.batch * g.groups) { item in
        let n = item / g.groups, gi = item % g.groups
        let xg = x + (n * g.inChannels + gi * cinG) * inPlane
        let yg = y + (n * g.outChannels + gi * coutG) * P
        let ep = GEMMEpilogue(rowBias: bias.map { $0 + gi * coutG }, relu: relu)
        if pointwise {
            sgemmEngine(isa: cachedA?.isa ?? GEMMConfig.defaultISA, threads: Compute.threads, transA: false, transB: false,
                        m: coutG, n: P, k: cinG, alpha: 1, a: w + gi * coutG * cinG, lda: cinG, b: xg, ldb: P,
                        beta: beta, c: yg, ldc: P, epilogue: ep, cachedA: cachedA)
        } else {
            sgemmConv(m: coutG, a: w + gi * coutG * K, lda: K, geometry: cg, x: xg, operand: .columns,
                      beta: beta, c: yg, ldc: P, epilogue: ep, isa: cachedA?.isa ?? GEMMConfig.defaultISA, cachedA: cachedA)
        }
    }
}

/// The input gradient of `pointwiseGEMM`: gx = W^T gy per (image, group).
func convBackwardDataPointwise(_ g: ConvGeometry, gy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                               gx: UnsafeMutablePointer<Float>) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, P = g.outPlane
    convItems(g.batch * g.groups) { item in
        let n = item / g.groups, gi = item % g.groups
        sgemm(transA: true, transB: false, m: cinG, n: P, k: coutG, alpha: 1,
              a: w + gi * coutG * cinG, lda: cinG,
              b: gy + (n * g.outChannels + gi * coutG) * P, ldb: P, beta: 0,
              c: gx + (n * g.inChannels + gi * cinG) * g.inPlane, ldc: P)
    }
}

/// The stride-1 input gradient as a convolution of gy with the flipped, transposed kernel
/// (`flippedKernel`): `W'[ci, co, i, j] = W[co, ci, kH-1-i, kW-1-j]` on
/// `flippedKernelGeometry` (padding `(k-1)*d - pad`, output H x W), by Winograd on
/// `winogradTile`-sized output tiles when set, else one implicit GEMM of depth
/// `Cout/g * kH * kW` per (image, group).
func convBackwardDataFlippedKernel(_ g: ConvGeometry, gy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                   gx: UnsafeMutablePointer<Float>, winogradTile: Int?) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels
    let kk = g.kH * g.kW, kb = coutG * kk
    let f = g.flippedKernelGeometry
    withScratch(g.outChannels * cinG * kk) { wf in
        fcn_flip_kernels(w, Int64(g.groups), Int64(coutG), Int64(cinG), Int64(kk), wf)
        if let tile = winogradTile {
            convForwardWinograd(f, x: gy, w: wf, bias: nil, y: gx, relu: false, tile: tile)
            return
        }
        let fg = f.cGeometry, wfc = UnsafePointer(wf)
        convItems(g.batch * g.groups) { item in
            let n = item / g.groups, gi = item % g.groups
            sgemmConv(m: cinG, a: wfc + gi * cinG * kb, lda: kb, geometry: fg,
                      x: gy + (n * g.outChannels + gi * coutG) * g.outPlane, operand: .columns, beta: 0,
                      c: gx + (n * g.inChannels + gi * cinG) * g.inPlane, ldc: g.inPlane)
        }
    }
}

/// The input gradient by `col2imTiles`: per (image, group), GEMM `W^T gy` into column tiles
/// of `tileColumns` pixels, each added into gx by col2im.
func convBackwardDataCol2im(_ g: ConvGeometry, gy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                            gx: UnsafeMutablePointer<Float>) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, K = g.k
    let P = g.outPlane, inPlane = g.inPlane
    let cg = g.cGeometry
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

/// The weight gradient of `implicitGEMM` (of `pointwiseGEMM` when `pointwise`: x itself is
/// cols(x)): gw = sum over images of gy * cols(x)^T, one GEMM of depth P per (image, group)
/// accumulated over the images with beta = 1; groups run on separate workers when there are
/// enough of them.
func convBackwardWeightImplicitGEMM(_ g: ConvGeometry, x: UnsafePointer<Float>, gy: UnsafePointer<Float>,
                                    gw: UnsafeMutablePointer<Float>, pointwise: Bool) {
    let cinG = g.inGroupChannels, coutG = g.outGroupChannels, K = g.k
    let P = g.outPlane, inPlane = g.inPlane
    let cg = g.cGeometry
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
