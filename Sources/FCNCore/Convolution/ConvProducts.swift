// The three products of a convolution, each run by the algorithm chosen for it.
//
// Contract: `convForward`, `convBackwardData` and `convBackwardWeight` compute the products
// of a ConvGeometry (see there) and overwrite their output. `algorithm` is what
// `ConvGeometry.algorithm(for:mode:)` chose for that product (default: its choice for an
// engine call, which no cache serves); these functions only run it. A whole-op algorithm
// (live-tap box, fused pool: the ops run those) or one of another product stops the process.
import CFCNKernels

/// y = conv(x, w) + bias (then ReLU when `relu`). y `[N, Cout, outH, outW]` is overwritten.
func convForward(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                 bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool = false,
                 algorithm: ConvAlgorithm? = nil) {
    let algorithm = algorithm ?? g.algorithm(for: .forward)
    switch algorithm {
    case .depthwiseDirect:
        convForwardDepthwise(g, x: x, w: w, bias: bias, y: y, relu: relu)
    case .batchedColumns(let nb):
        convForwardBatched(g, images: nb, x: x, w: w, bias: bias, y: y, relu: relu)
    case .winogradF2x2(let cachedWeight):
        convForwardWinograd(g, x: x, w: w, bias: bias, y: y, relu: relu, cachedWeight: cachedWeight,
                            isa: cachedWeight?.isa ?? GEMMConfig.defaultISA)
    case .winogradF4x4(let cachedWeight):
        convForwardWinograd(g, x: x, w: w, bias: bias, y: y, relu: relu, tile: 4, cachedWeight: cachedWeight,
                            isa: cachedWeight?.isa ?? GEMMConfig.defaultISA)
    case .winogradF6x6(let cachedWeight):
        convForwardWinograd(g, x: x, w: w, bias: bias, y: y, relu: relu, tile: 6, cachedWeight: cachedWeight,
                            isa: cachedWeight.isa)
    case .winogradF27(let u):
        convForwardWinogradF27(g, x: x, u: u, bias: bias, y: y, relu: relu)
    case .strassen(let blockSums):
        let ep = GEMMEpilogue(rowBias: bias, relu: relu)
        convItems(g.batch) { n in
            sgemmStrassen(m: g.outChannels, n: g.outPlane, k: g.inChannels, blockSums: blockSums,
                          b: x + n * g.inChannels * g.inPlane, ldb: g.outPlane,
                          c: y + n * g.outChannels * g.outPlane, ldc: g.outPlane, epilogue: ep)
        }
    case .pointwiseGEMM(let cachedA):
        convForwardImplicitGEMM(g, x: x, w: w, bias: bias, y: y, relu: relu, pointwise: true, cachedA: cachedA)
    case .implicitGEMM(let cachedA):
        convForwardImplicitGEMM(g, x: x, w: w, bias: bias, y: y, relu: relu, pointwise: false, cachedA: cachedA)
    case .constantMargin, .liveTapBox, .winogradF2x2ReLUPool, .winogradF4x4ReLUPool, .dilatedPolyphase, .flippedKernel,
         .subpixelPhases, .col2imTiles:
        fcnFail("conv2d", "\(algorithm) does not compute a forward product")
    }
}

/// gx = col2im(W^T * gy): the input gradient of `convForward` (the adjoint of the map
/// x -> conv(x, w)). gx `[N, Cin, H, W]` is overwritten.
func convBackwardData(_ g: ConvGeometry, gy: UnsafePointer<Float>, w: UnsafePointer<Float>,
                      gx: UnsafeMutablePointer<Float>, algorithm: ConvAlgorithm? = nil) {
    let algorithm = algorithm ?? g.algorithm(for: .inputGradient)
    switch algorithm {
    case .batchedColumns(let nb):
        convBackwardDataBatched(g, images: nb, gy: gy, w: w, gx: gx)
    case .pointwiseGEMM:
        convBackwardDataPointwise(g, gy: gy, w: w, gx: gx)
    case .flippedKernel(let tile):
        convBackwardDataFlippedKernel(g, gy: gy, w: w, gx: gx, winogradTile: tile)
    case .subpixelPhases:
        convBackwardDataSubpixel(g, gy: gy, w: w, gx: gx)
    case .col2imTiles:
        convBackwardDataCol2im(g, gy: gy, w: w, gx: gx)
    case .constantMargin, .liveTapBox, .winogradF2x2ReLUPool, .winogradF4x4ReLUPool, .dilatedPolyphase, .depthwiseDirect,
         .winogradF2x2, .winogradF4x4, .winogradF6x6, .winogradF27, .strassen, .implicitGEMM:
        fcnFail("conv2d", "\(algorithm) does not compute an input gradient")
    }
}

/// gw = sum over images of gy * cols(x)^T: the weight gradient of `convForward`.
/// gw `[Cout, Cin/groups, kH, kW]` is overwritten.
func convBackwardWeight(_ g: ConvGeometry, x: UnsafePointer<Float>, gy: UnsafePointer<Float>,
                        gw: UnsafeMutablePointer<Float>, algorithm: ConvAlgorithm? = nil) {
    let algorithm = algorithm ?? g.algorithm(for: .weightGradient)
    switch algorithm {
    case .batchedColumns(let nb):
        convBackwardWeightBatched(g, images: nb, x: x, gy: gy, gw: gw)
    case .winogradF2x2:
        convBackwardWeightWinograd(g, x: x, gy: gy, gw: gw)
    case .winogradF4x4:
        convBackwardWeightWinograd(g, x: x, gy: gy, gw: gw, tile: 4)
    case .pointwiseGEMM:
        convBackwardWeightImplicitGEMM(g, x: x, gy: gy, gw: gw, pointwise: true)
    case .implicitGEMM:
        convBackwardWeightImplicitGEMM(g, x: x, gy: gy, gw: gw, pointwise: false)
    case .constantMargin, .liveTapBox, .winogradF2x2ReLUPool, .winogradF4x4ReLUPool, .dilatedPolyphase, .depthwiseDirect,
         .winogradF6x6, .winogradF27, .strassen, .flippedKernel,
         .subpixelPhases, .col2imTiles:
        fcnFail("conv2d", "\(algorithm) does not compute a weight gradient")
    }
}

/// The depthwise forward (`depthwiseDirect`): output channel oc reads input channel
/// oc / (Cout/groups), one direct loop per output plane; ReLU after the plane is written
/// (NaN stays NaN, -0 becomes +0).
private func convForwardDepthwise(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                  bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool) {
    let coutG = g.outGroupChannels, P = g.outPlane, kk = g.kH * g.kW
    var cg = g.cGeometry
    convRun(g.batch * g.outChannels, workspace: 0) { range, _ in
        for item in range {
            let n = item / g.outChannels, oc = item % g.outChannels
            let xp = x + (n * g.inChannels + oc / coutG) * g.inPlane
            let yp = y + item * P
            fcn_conv_plane_direct(&cg, xp, w + oc * kk, bias?[oc] ?? 0, yp)
            if relu { for j in 0..<P { let v = yp[j] + 0; yp[j] = v < 0 ? 0 : v } }
        }
    }
}
