// A dilated 3x3 convolution at inference as an ordinary one on the polyphase parts of its
// input (the dilated layer3 and layer4 of torchvision's FCNs), so that Winograd applies to
// it exactly.
//
// Contract (`ConvAlgorithm.dilatedPolyphase`, chosen by rule 2b of `ConvGeometry.algorithm`):
// a 3x3 kernel, stride 1, dilation d > 1 on both axes, padding d on every side (the output
// is H x W), groups 1, no gradient recorded. Output pixel (d*i + a, d*j + b) reads only
// input pixels of phase (a, b), rows d*(i-1) + a, d*i + a, d*(i+1) + a: an ordinary 3x3
// convolution with padding 1 of that phase, which has hp(a) = ceil((H - a) / d) rows and
// wp(b) = ceil((W - b) / d) columns. The d*d phases of an image are laid out as a mosaic,
// d blocks down and d across, with one zero row between blocks of rows and one zero
// column between blocks of columns: phase (a, b) starts at row R(a) = sum over a' < a of
// (hp(a') + 1) and column C(b) likewise, and
//   P[n, c, R(a) + i, C(b) + j] = x[n, c, d*i + a, d*j + b].
// The mosaic is (H + d - 1) x (W + d - 1) (fewer when H or W < d). A 3x3 convolution with
// padding 1 of it reads, around every pixel of a phase, only that phase and the zero rows
// and columns beside it, which stand exactly where the dilated convolution reads its zero
// padding; so every phase pixel of the result is the dilated convolution's, and the
// separator pixels are dropped when scattering back. One image rather than d*d small ones
// keeps the Winograd tile rows long, and the mosaic wastes fewest tiles: at 65 x 65 it is
// 66 x 66 (d = 2) or 68 x 68 (d = 4), 17 x 17 F(4x4) tiles, where the phases one above the
// other took 34 x 9 (d = 2) and 72 x 5 (d = 4). The phase convolution's algorithm is chosen
// by the same rules (Winograd when it pays, reading the weight's Winograd form from the
// packed-weight cache when the cache serves it). Cost over the direct form: one gather of x
// and one scatter of y, against 4/9 (F(2x2)) or 1/4 (F(4x4)) of the multiply-adds.

/// The phases of one axis of a mosaic: where each starts, its length, the mosaic's extent.
typealias PolyphaseBlocks = (starts: [Int], lengths: [Int], extent: Int)

/// Where the phases of a dilation-`d` mosaic start (see the file contract): for an extent
/// of `n` pixels, the first mosaic row (or column) of each phase, its length, and the
/// mosaic's extent.
func polyphaseBlocks(_ n: Int, dilation d: Int) -> PolyphaseBlocks {
    var starts: [Int] = [], lengths: [Int] = [], at = 0
    for a in 0..<d {
        let len = max(0, (n - a + d - 1) / d)
        starts.append(at)
        lengths.append(len)
        at += len + (a + 1 < d ? 1 : 0)
    }
    return (starts, lengths, max(at, 1))
}

/// The mosaic geometry of a dilated convolution `g` with dilation `d` (see above).
func polyphaseGeometry(_ g: ConvGeometry, dilation d: Int) -> ConvGeometry {
    let rows = polyphaseBlocks(g.inH, dilation: d).extent, cols = polyphaseBlocks(g.inW, dilation: d).extent
    var p = ConvGeometry(batch: g.batch, inChannels: g.inChannels, inH: rows, inW: cols,
                         outChannels: g.outChannels, outH: rows, outW: cols, kH: 3, kW: 3, strideH: 1, strideW: 1,
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
    let (H, W, mh, mw) = (g.inH, g.inW, p.inH, p.inW)
    let rows = polyphaseBlocks(H, dilation: d), cols = polyphaseBlocks(W, dilation: d)
    // Gather: one (image, channel) plane per task.
    let mosaic = Tensor.make(shape: [g.batch, g.inChannels, mh, mw]) { out in
        let dst = UncheckedSendable(out.baseAddress!), src = UncheckedSendable(UnsafePointer(x.storage.pointer))
        parallelFor(g.batch * g.inChannels) { t in
            polyphaseGather(src.value + t * H * W, H: H, W: W, dilation: d, rows: rows, cols: cols, into: dst.value + t * mh * mw)
        }
    }
    let mode = ConvMode(cachedWeight: ConvMode.conv2d(x: x, weight: weight, bias: bias).cachedWeight)
    let result = Tensor.make(shape: [g.batch, g.outChannels, mh, mw]) { out in
        convForward(p, x: mosaic.storage.pointer, w: weight.storage.pointer, bias: bias.map { UnsafePointer($0.storage.pointer) },
                    y: out.baseAddress!, relu: fusedReLU, algorithm: p.algorithm(for: .forward, mode: mode))
    }
    // Scatter: one (image, output channel) plane per task.
    return Tensor.make(shape: [g.batch, g.outChannels, g.outH, g.outW]) { out in
        let dst = UncheckedSendable(out.baseAddress!), src = UncheckedSendable(UnsafePointer(result.storage.pointer))
        parallelFor(g.batch * g.outChannels) { t in
            polyphaseScatter(src.value + t * mh * mw, H: H, W: W, dilation: d, rows: rows, cols: cols,
                             into: dst.value + t * H * W)
        }
    }
}

/// One plane `x` (H x W) into its mosaic `m` (`rows.extent` x `cols.extent`, see the file
/// contract): every mosaic pixel written, the separators 0. Rows split into their column
/// phases 16 values per phase at a time for d = 2 and 4 (a vector load and its even / odd
/// lanes), one value at a time otherwise and at the row ends (`vectorised` false: always;
/// tests hold the two equal).
func polyphaseGather(_ x: UnsafePointer<Float>, H: Int, W: Int, dilation d: Int, rows: PolyphaseBlocks,
                     cols: PolyphaseBlocks, into m: UnsafeMutablePointer<Float>, vectorised: Bool = true) {
    let mw = cols.extent
    for a in 0..<(d - 1) where rows.starts[a] + rows.lengths[a] < rows.extent {
        (m + (rows.starts[a] + rows.lengths[a]) * mw).update(repeating: 0, count: mw)
    }
    for h in 0..<H {
        let r = x + h * W, row = m + (rows.starts[h % d] + h / d) * mw
        for b in 0..<(d - 1) where cols.starts[b] + cols.lengths[b] < mw { row[cols.starts[b] + cols.lengths[b]] = 0 }
        var j = 0
        if vectorised && d == 2 {
            let (p0, p1) = (row + cols.starts[0], row + cols.starts[1])
            while 2 * j + 32 <= W {
                let v = UnsafeRawPointer(r + 2 * j).loadUnaligned(as: SIMD32<Float>.self)
                UnsafeMutableRawPointer(p0 + j).storeBytes(of: v.evenHalf, as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(p1 + j).storeBytes(of: v.oddHalf, as: SIMD16<Float>.self)
                j += 16
            }
        } else if vectorised && d == 4 {
            let (p0, p1) = (row + cols.starts[0], row + cols.starts[1])
            let (p2, p3) = (row + cols.starts[2], row + cols.starts[3])
            while 4 * j + 64 <= W {
                let v0 = UnsafeRawPointer(r + 4 * j).loadUnaligned(as: SIMD32<Float>.self)
                let v1 = UnsafeRawPointer(r + 4 * j + 32).loadUnaligned(as: SIMD32<Float>.self)
                let (e0, o0, e1, o1) = (v0.evenHalf, v0.oddHalf, v1.evenHalf, v1.oddHalf)
                UnsafeMutableRawPointer(p0 + j).storeBytes(of: SIMD16(lowHalf: e0.evenHalf, highHalf: e1.evenHalf),
                                                           as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(p1 + j).storeBytes(of: SIMD16(lowHalf: o0.evenHalf, highHalf: o1.evenHalf),
                                                           as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(p2 + j).storeBytes(of: SIMD16(lowHalf: e0.oddHalf, highHalf: e1.oddHalf),
                                                           as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(p3 + j).storeBytes(of: SIMD16(lowHalf: o0.oddHalf, highHalf: o1.oddHalf),
                                                           as: SIMD16<Float>.self)
                j += 16
            }
        }
        for b in 0..<min(d, W) {
            let seg = row + cols.starts[b]
            for i in j..<cols.lengths[b] { seg[i] = r[d * i + b] }
        }
    }
}

/// The inverse of `polyphaseGather`: the phase pixels of mosaic `m` back into plane `y`
/// (H x W); separators are dropped.
func polyphaseScatter(_ m: UnsafePointer<Float>, H: Int, W: Int, dilation d: Int, rows: PolyphaseBlocks,
                      cols: PolyphaseBlocks, into y: UnsafeMutablePointer<Float>, vectorised: Bool = true) {
    let mw = cols.extent
    for h in 0..<H {
        let r = y + h * W, row = m + (rows.starts[h % d] + h / d) * mw
        var j = 0
        if vectorised && d == 2 {
            let (p0, p1) = (row + cols.starts[0], row + cols.starts[1])
            while 2 * j + 32 <= W {
                var v = SIMD32<Float>()
                v.evenHalf = UnsafeRawPointer(p0 + j).loadUnaligned(as: SIMD16<Float>.self)
                v.oddHalf = UnsafeRawPointer(p1 + j).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(r + 2 * j).storeBytes(of: v, as: SIMD32<Float>.self)
                j += 16
            }
        } else if vectorised && d == 4 {
            let (p0, p1) = (row + cols.starts[0], row + cols.starts[1])
            let (p2, p3) = (row + cols.starts[2], row + cols.starts[3])
            while 4 * j + 64 <= W {
                let q0 = UnsafeRawPointer(p0 + j).loadUnaligned(as: SIMD16<Float>.self)
                let q1 = UnsafeRawPointer(p1 + j).loadUnaligned(as: SIMD16<Float>.self)
                let q2 = UnsafeRawPointer(p2 + j).loadUnaligned(as: SIMD16<Float>.self)
                let q3 = UnsafeRawPointer(p3 + j).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(r + 4 * j).storeBytes(
                    of: interleave4(q0.lowHalf, q1.lowHalf, q2.lowHalf, q3.lowHalf), as: SIMD32<Float>.self)
                UnsafeMutableRawPointer(r + 4 * j + 32).storeBytes(
                    of: interleave4(q0.highHalf, q1.highHalf, q2.highHalf, q3.highHalf), as: SIMD32<Float>.self)
                j += 16
            }
        }
        for b in 0..<min(d, W) {
            let seg = row + cols.starts[b]
            for i in j..<cols.lengths[b] { r[d * i + b] = seg[i] }
        }
    }
}

/// The 32 values p0[0], p1[0], p2[0], p3[0], p0[1], ... (the inverse of splitting a row into
/// its 4 column phases).
@inline(__always)
private func interleave4(_ p0: SIMD8<Float>, _ p1: SIMD8<Float>, _ p2: SIMD8<Float>, _ p3: SIMD8<Float>) -> SIMD32<Float> {
    var e = SIMD16<Float>(), o = SIMD16<Float>(), v = SIMD32<Float>()
    e.evenHalf = p0
    e.oddHalf = p2
    o.evenHalf = p1
    o.oddHalf = p3
    v.evenHalf = e
    v.oddHalf = o
    return v
}
