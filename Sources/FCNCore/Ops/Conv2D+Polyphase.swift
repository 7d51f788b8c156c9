// A dilated 3x3 convolution at inference as an ordinary one on the polyphase parts of its
// input (the dilated layer3 and layer4 of torchvision's FCNs), so that Winograd F(2x2, 3x3)
// applies to it exactly.
//
// Contract (`ConvAlgorithm.dilatedPolyphase`, chosen by rule 2b of `ConvGeometry.algorithm`):
// a 3x3 kernel, stride 1, dilation d > 1 on both axes, padding d on every side (the output
// is H x W), groups 1, no gradient recorded. Output pixel (d*i + a, d*j + b) reads only
// input pixels of phase (a, b), rows d*(i-1) + a, d*i + a, d*(i+1) + a: an ordinary 3x3
// convolution with padding 1 of that phase. The d*d phases of an image are stacked one
// above the other, each hp = ceil(H/d) rows of wp = ceil(W/d) columns followed by one zero
// row (none after the last): phase k = a*d + b starts at row k*(hp + 1), and
//   P[n, c, k*(hp + 1) + i, j] = x[n, c, d*i + a, d*j + b], zero where d*i + a >= H or d*j + b >= W.
// A 3x3 convolution with padding 1 of that tall image reads, for every row of a phase,
// only that phase's rows and the zero rows around it, which stand exactly where the
// dilated convolution reads its zero padding; so every real output is the dilated
// convolution's, and the outputs of the separator rows and padded positions are dropped
// when scattering back. One tall image rather than d*d small ones keeps the Winograd tile
// panels full (a 33 x 33 phase is 81 F(4x4) tiles, 2.5 panels of 32). The phase
// convolution's algorithm is chosen by the same rules (Winograd when it pays, reading the
// weight's Winograd form from the packed-weight cache when the cache serves it). Cost over
// the direct form: one gather of x and one scatter of y, against 4/9 (F(2x2)) or 1/4
// (F(4x4)) of the multiply-adds.

/// The stacked-phase geometry of a dilated convolution `g` with dilation `d` (see above).
func polyphaseGeometry(_ g: ConvGeometry, dilation d: Int) -> ConvGeometry {
    let hp = (g.inH + d - 1) / d, wp = (g.inW + d - 1) / d, tall = d * d * (hp + 1) - 1
    var p = ConvGeometry(batch: g.batch, inChannels: g.inChannels, inH: tall, inW: wp,
                         outChannels: g.outChannels, outH: tall, outW: wp, kH: 3, kW: 3, strideH: 1, strideW: 1,
                         padTop: 1, padBottom: 1, padLeft: 1, padRight: 1, dilH: 1, dilW: 1, groups: 1)
    p.fastPaths = g.fastPaths
    p.winograd = g.winograd
    return p
}

/// conv2d by `dilatedPolyphase(dilation: d)` (see the file contract): gather the phases,
/// one ordinary convolution, scatter the outputs.
func conv2dPolyphase(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, dilation d: Int,
                     fusedReLU: Bool) -> Tensor {
    let p = polyphaseGeometry(g, dilation: d)
    let (H, W, wp, tall) = (g.inH, g.inW, p.inW, p.inH)
    let hp = (H + d - 1) / d
    // Gather: one (image, channel) plane per task.
    let phases = Tensor.make(shape: [g.batch, g.inChannels, tall, wp]) { out in
        let dst = UncheckedSendable(out.baseAddress!), src = UncheckedSendable(UnsafePointer(x.storage.pointer))
        parallelFor(g.batch * g.inChannels) { t in
            let plane = src.value + t * H * W, o = dst.value + t * tall * wp
            for a in 0..<d {
                for b in 0..<d {
                    let k = a * d + b
                    for i in 0..<hp {
                        let h = d * i + a
                        let row = o + (k * (hp + 1) + i) * wp
                        guard h < H else { row.update(repeating: 0, count: wp); continue }
                        let r = plane + h * W
                        for j in 0..<wp {
                            let w = d * j + b
                            row[j] = w < W ? r[w] : 0
                        }
                    }
                    if k + 1 < d * d { (o + (k * (hp + 1) + hp) * wp).update(repeating: 0, count: wp) }
                }
            }
        }
    }
    let mode = ConvMode(cachedWeight: ConvMode.conv2d(x: x, weight: weight, bias: bias).cachedWeight)
    let stacked = Tensor.make(shape: [g.batch, g.outChannels, tall, wp]) { out in
        convForward(p, x: phases.storage.pointer, w: weight.storage.pointer, bias: bias.map { UnsafePointer($0.storage.pointer) },
                    y: out.baseAddress!, relu: fusedReLU, algorithm: p.algorithm(for: .forward, mode: mode))
    }
    // Scatter: one (image, output channel) plane per task.
    return Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
        let dst = UncheckedSendable(out.baseAddress!), src = UncheckedSendable(UnsafePointer(stacked.storage.pointer))
        parallelFor(g.batch * g.outChannels) { t in
            let plane = dst.value + t * H * W, s0 = src.value + t * tall * wp
            for a in 0..<min(d, H) {
                for b in 0..<min(d, W) {
                    let s = s0 + (a * d + b) * (hp + 1) * wp
                    var i = 0
                    while d * i + a < H {
                        let r = plane + (d * i + a) * W, row = s + i * wp
                        var j = 0
                        while d * j + b < W { r[d * j + b] = row[j]; j += 1 }
                        i += 1
                    }
                }
            }
        }
    }
}
