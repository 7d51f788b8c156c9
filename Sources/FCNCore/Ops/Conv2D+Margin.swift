// conv2d on an input with long runs of equal rows or columns: the Caffe layout's margin.
//
// Contract: the values of conv2d's forward (and of conv2dReLUMaxPool2) up to float rounding
// (each output is computed by the crop's own algorithm, only at another position).
// If input rows a ..< a + L are equal (bit for bit, in every channel and image), every output
// row whose kH-row window lies inside them is the same row. So rows a + m ..< a + m + D can be
// cut from the input (m >= kH - 1 equal rows kept before the cut, max(kH - 1, 2) after): the
// convolution of the cut input is the original output without rows o ..< o + D,
// o = a + m + padTop - kH + 1, whose values all equal its row o. Columns likewise. The op
// cuts every run long enough, convolves the smaller input (its algorithm chosen in turn)
// and writes each output row and column from its source.
// With a 2x2 pool, o and D are even, so the pool windows are whole on both sides of a cut
// and the pooled rows o/2 ..< (o + D)/2 all equal pooled row o/2.
// Why: the Caffe layout pads the image by 100 pixels. At 500x500 about half of conv1 ...
// conv3's outputs read windows of zeros; after conv1_1 those are its bias through ReLU, then
// pools and convolutions of constants: rows and columns that repeat, apart from a frame a few
// pixels wide at the image border (where the padding's zeros enter again). Computing one of
// each instead of hundreds is exact, unlike a crop of the network.
// Training: the weight gradient sum_p gy[p] col(p) runs on the same cut, gy's lines summed
// onto the lines they copy (`contractGradient`, the adjoint of the expansion): each column
// col(p) of the whole convolution is a column of the cut one. The input gradient does not
// (gy has no runs), nor does the pooled form (training runs the pool as its own op).
// When: `ConvGeometry.algorithm(for:mode:)` rule 0 (`constantMargin`) on planes of at least
// `marginMinPlane` outputs. The scan compares each row with the next and each column with the
// next, stopping at the first difference (so it reads the margin, not the image), and the op
// runs the plain algorithm unless the cut output is at most `marginMaxShare` of the plane.

/// Share of the output plane above which the cut convolution is not worth its scan, copies
/// and expansion: the plain algorithm runs.
let marginMaxShare = 0.8

/// The fewest lines a cut removes (the copies of a cut cost about what a few lines do).
let marginMinCut = 8

/// One cut of a spatial axis: input lines `input ..< input + count` are removed, and with
/// them output lines `output ..< output + count`, each equal to output line `output` of the
/// cut convolution.
struct MarginCut: Equatable {
    var input: Int, output: Int, count: Int
}

/// eq[i]: line i equals line i + 1 in every plane of x `[N, C, H, W]`; rows when `rows`,
/// else columns. Each comparison stops at the first difference.
func equalAdjacentLines(_ x: Tensor, rows: Bool) -> [Bool] {
    let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
    let lines = rows ? h : w
    guard lines >= 2 else { return [] }
    let bits = UncheckedSendable(UnsafeRawPointer(x.storage.pointer).assumingMemoryBound(to: UInt32.self))
    if rows {
        var eq = [Bool](repeating: false, count: h - 1)
        eq.withUnsafeMutableBufferPointer { out in
            let o = UncheckedSendable(out.baseAddress!)
            parallelChunks(h - 1, minChunk: 16) { range in
                for y in range {
                    var same = true
                    for p in 0..<planes where same {
                        let row = bits.value + p * h * w + y * w
                        same = !differs(row, row + w, w)
                    }
                    o.value[y] = same
                }
            }
        }
        return eq
    }
    // Columns: a shrinking list of candidate columns x (x equal to x + 1 so far), tested row by
    // row from the middle row on, where the image (which ends most candidates) is likeliest.
    // Each chunk of planes keeps its own list; a column is equal when every chunk kept it.
    let chunks = min(planes, max(1, Compute.threads))
    var kept = [Bool](repeating: false, count: chunks * (w - 1))
    kept.withUnsafeMutableBufferPointer { out in
        let flags = UncheckedSendable(out.baseAddress!)
        parallelFor(chunks) { chunk in
            var candidates = Array(0..<(w - 1)), count = w - 1
            candidates.withUnsafeMutableBufferPointer { cand in
                for p in (chunk * planes / chunks)..<((chunk + 1) * planes / chunks) where count > 0 {
                    let plane = bits.value + p * h * w
                    for r in 0..<h where count > 0 {
                        let row = plane + ((r + h / 2) % h) * w
                        var kept = 0
                        for i in 0..<count {
                            let x = cand[i]
                            cand[kept] = x
                            kept += row[x] == row[x + 1] ? 1 : 0
                        }
                        count = kept
                    }
                }
                for i in 0..<count { flags.value[chunk * (w - 1) + cand[i]] = true }
            }
        }
    }
    return (0..<(w - 1)).map { c in (0..<chunks).allSatisfy { kept[$0 * (w - 1) + c] } }
}

/// Whether `count` values at `a` and `b` differ anywhere (bits).
private func differs(_ a: UnsafePointer<UInt32>, _ b: UnsafePointer<UInt32>, _ count: Int) -> Bool {
    typealias V = SIMD16<UInt32>
    var i = 0
    while i + 16 <= count {
        if any(UnsafeRawPointer(a + i).loadUnaligned(as: V.self) .!= UnsafeRawPointer(b + i).loadUnaligned(as: V.self)) {
            return true
        }
        i += 16
    }
    while i < count { if a[i] != b[i] { return true }; i += 1 }
    return false
}

/// The cuts of one axis (see the file contract) for a kernel of `k` taps and `pad` leading
/// padding, from `equal` (`equalAdjacentLines`): in every run of equal lines, m = k - 1 lines
/// kept before the cut (k when `even` needs the output start even) and max(k - 1, 2) after,
/// so that every window meeting the cut reads lines of the run only (and so does the second
/// row of a pool window); the largest cut (even when `even`) of at least `marginMinCut` lines.
func marginCuts(equal: [Bool], pad: Int, k: Int, even: Bool) -> [MarginCut] {
    var cuts: [MarginCut] = []
    var i = 0
    while i < equal.count {
        guard equal[i] else { i += 1; continue }
        var j = i
        while j < equal.count && equal[j] { j += 1 }
        let a = i, length = j - i + 1           // lines a ... j are equal
        var m = k - 1
        if even && (a + m + pad - k + 1) % 2 != 0 { m += 1 }
        var count = length - m - max(k - 1, 2)
        if even { count &= ~1 }
        if count >= marginMinCut { cuts.append(MarginCut(input: a + m, output: a + m + pad - k + 1, count: count)) }
        i = j + 1
    }
    return cuts
}

/// For each line of an axis of `lines` output lines, the line of the cut output it copies.
func marginSources(_ cuts: [MarginCut], lines: Int, scale: Int = 1) -> [Int] {
    var source = [Int](repeating: 0, count: lines)
    var shift = 0, c = 0
    for o in 0..<lines {
        while c < cuts.count && o >= (cuts[c].output + cuts[c].count) / scale { shift += cuts[c].count / scale; c += 1 }
        if c < cuts.count && o >= cuts[c].output / scale { source[o] = cuts[c].output / scale - shift } else { source[o] = o - shift }
    }
    return source
}

/// Runs of consecutive kept indices: (first kept, count) of `0 ..< lines` without the cuts'
/// input lines.
private func keptRuns(_ cuts: [MarginCut], lines: Int) -> [(start: Int, count: Int)] {
    var runs: [(Int, Int)] = [], start = 0
    for c in cuts {
        if c.input > start { runs.append((start, c.input - start)) }
        start = c.input + c.count
    }
    if lines > start { runs.append((start, lines - start)) }
    return runs
}

/// x `[N, C, H, W]` without the input lines of the cuts.
private func cutInput(_ x: Tensor, rows: [MarginCut], cols: [MarginCut]) -> Tensor {
    let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
    let keptRows = keptRuns(rows, lines: h).flatMap { $0.start ..< $0.start + $0.count }
    let colRuns = keptRuns(cols, lines: w)
    let w2 = colRuns.reduce(0) { $0 + $1.count }, h2 = keptRows.count
    return Tensor.make(shape: [x.shape[0], x.shape[1], h2, w2]) { out in
        let p = UncheckedSendable((UnsafePointer(x.storage.pointer), out.baseAddress!))
        parallelChunks(planes, minChunk: 1) { range in
            for plane in range {
                for (r, y) in keptRows.enumerated() {
                    let src = p.value.0 + (plane * h + y) * w
                    var dst = p.value.1 + (plane * h2 + r) * w2
                    for run in colRuns {
                        dst.update(from: src + run.start, count: run.count)
                        dst += run.count
                    }
                }
            }
        }
    }
}

/// The lines of an axis grouped by their sources (`marginSources`): runs of consecutive
/// sources (`repeated` false: lines `line ..< line + count` read `source ..< source + count`)
/// and runs of one repeated source (`repeated` true: every line reads `source`). Shared by
/// the expansion and its adjoint.
func sourceSegments(_ sources: [Int]) -> [(line: Int, source: Int, count: Int, repeated: Bool)] {
    let w = sources.count
    var segments: [(line: Int, source: Int, count: Int, repeated: Bool)] = []
    var x = 0
    while x < w {
        var e = x + 1
        if x + 1 < w && sources[x + 1] == sources[x] {
            while e < w && sources[e] == sources[x] { e += 1 }
            segments.append((x, sources[x], e - x, true))
        } else {
            while e < w && sources[e] == sources[e - 1] + 1 && !(e + 1 < w && sources[e + 1] == sources[e]) { e += 1 }
            segments.append((x, sources[x], e - x, false))
        }
        x = e
    }
    return segments
}

/// `y` `[N, C, h2, w2]` expanded to `[N, C, rows.count, cols.count]`: line i of an axis reads
/// line `sources[i]` of y.
private func expandOutput(_ y: Tensor, rowSources: [Int], colSources: [Int]) -> Tensor {
    let (n, c, h2, w2) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
    let h = rowSources.count, w = colSources.count
    let segments = sourceSegments(colSources)
    return Tensor.make(shape: [n, c, h, w]) { out in
        let p = UncheckedSendable((UnsafePointer(y.storage.pointer), out.baseAddress!))
        parallelChunks(n * c, minChunk: 1) { range in
            for plane in range {
                for r in 0..<h {
                    let dst = p.value.1 + (plane * h + r) * w
                    if r > 0 && rowSources[r] == rowSources[r - 1] {
                        dst.update(from: dst - w, count: w)
                        continue
                    }
                    let src = p.value.0 + (plane * h2 + rowSources[r]) * w2
                    for s in segments {
                        if s.repeated { (dst + s.line).update(repeating: src[s.source], count: s.count) }
                        else { (dst + s.line).update(from: src + s.source, count: s.count) }
                    }
                }
            }
        }
    }
}

extension ConvGeometry {
    /// Rule 0's size condition: planes of at least this many outputs are worth a scan.
    static let marginMinPlane = 64 * 64
}

/// The cuts of one margin convolution: the input's lines removed on each axis, the cut
/// convolution's geometry, and for each output line of the whole convolution the line of
/// the cut output it equals (of the pooled output with `pool`).
struct MarginPlan {
    let rows: [MarginCut], cols: [MarginCut]
    let geometry: ConvGeometry
    let rowSources: [Int], colSources: [Int]
}

/// Scans x for runs of equal lines and plans the cut convolution of `g` (see the file
/// contract), or nil when the cut output would exceed `marginMaxShare` of the plane. With
/// `pool` (its ceil mode) the cuts are even and the sources are the pooled lines'.
func marginPlan(_ g: ConvGeometry, x: Tensor, weight: Tensor, bias: Tensor?, pool: Bool? = nil) -> MarginPlan? {
    let even = pool != nil
    let rowCuts = marginCuts(equal: equalAdjacentLines(x, rows: true), pad: g.padTop, k: g.kH, even: even)
    let colCuts = marginCuts(equal: equalAdjacentLines(x, rows: false), pad: g.padLeft, k: g.kW, even: even)
    let cutH = g.outH - rowCuts.reduce(0) { $0 + $1.count }, cutW = g.outW - colCuts.reduce(0) { $0 + $1.count }
    guard Double(cutH * cutW) <= marginMaxShare * Double(g.outPlane) else { return nil }
    let cutShape = [x.shape[0], x.shape[1], g.inH - (g.outH - cutH), g.inW - (g.outW - cutW)]
    let gc = conv2dGeometry(op: "conv2d", input: cutShape, weight: weight.shape, bias: bias?.shape, stride: 1,
                            padding: .explicit(top: g.padTop, bottom: g.padBottom, left: g.padLeft, right: g.padRight),
                            dilation: 1, groups: 1)
    if let ceil = pool {
        let ph = ceil ? (g.outH + 1) / 2 : g.outH / 2, pw = ceil ? (g.outW + 1) / 2 : g.outW / 2
        return MarginPlan(rows: rowCuts, cols: colCuts, geometry: gc, rowSources: marginSources(rowCuts, lines: ph, scale: 2),
                          colSources: marginSources(colCuts, lines: pw, scale: 2))
    }
    return MarginPlan(rows: rowCuts, cols: colCuts, geometry: gc, rowSources: marginSources(rowCuts, lines: g.outH),
                      colSources: marginSources(colCuts, lines: g.outW))
}

/// conv2d's forward by cutting the input's runs of equal lines (see the file contract), or
/// nil when the cut output would exceed `marginMaxShare` of the plane or the cut
/// convolution's own algorithm is a whole-op form. With `pool` (its ceil mode), the output is
/// `conv2dReLUMaxPool2`'s and `relu` must be true. `cachedWeight` is the call's (nil when a
/// gradient is recorded). Stride 1, dilation 1, groups 1 (rule 0).
func convForwardMargin(_ g: ConvGeometry, x: Tensor, weight: Tensor, bias: Tensor?, relu: Bool,
                       cachedWeight: CachedOperand?, pool: Bool? = nil) -> Tensor? {
    guard let plan = marginPlan(g, x: x, weight: weight, bias: bias, pool: pool) else { return nil }
    return convForwardMargin(plan, x: x, weight: weight, bias: bias, relu: relu, cachedWeight: cachedWeight, pool: pool)
}

/// The forward of a planned margin convolution (see `convForwardMargin(_:x:weight:bias:relu:cachedWeight:pool:)`).
func convForwardMargin(_ plan: MarginPlan, x: Tensor, weight: Tensor, bias: Tensor?, relu: Bool,
                       cachedWeight: CachedOperand?, pool: Bool? = nil) -> Tensor? {
    let gc = plan.geometry
    let mode = ConvMode(wholeOp: true, poolFollows: pool != nil, recording: false, cachedWeight: cachedWeight,
                        marginScanned: true)
    let algorithm = gc.algorithm(for: .forward, mode: mode)
    if pool == nil {
        switch algorithm {
        case .liveTapBox, .dilatedPolyphase, .winogradF2x2ReLUPool, .winogradF4x4ReLUPool, .constantMargin: return nil
        default: break
        }
    }
    let xc = cutInput(x.detached(), rows: plan.rows, cols: plan.cols)
    let inner: Tensor
    if let ceil = pool {
        inner = withoutGrad {
            conv2dReLUMaxPool2(xc, weight: weight.detached(), bias: bias?.detached(), geometry: gc, ceilMode: ceil,
                               algorithm: algorithm)
        }
        return expandOutput(inner, rowSources: plan.rowSources, colSources: plan.colSources)
    }
    inner = Tensor.make(shape: [gc.batch, gc.outChannels, gc.outH, gc.outW]) { out in
        convForward(gc, x: xc.storage.pointer, w: weight.storage.pointer, bias: bias.map { UnsafePointer($0.storage.pointer) },
                    y: out.baseAddress!, relu: relu, algorithm: algorithm)
    }
    return expandOutput(inner, rowSources: plan.rowSources, colSources: plan.colSources)
}

/// The weight gradient of a planned margin convolution (no pool): every column of the whole
/// convolution equals a column of the cut one (`rowSources`, `colSources`), so
/// sum_p gy[p] col(p) = sum_q (sum of gy over the p that copy q) col_cut(q): the cut input
/// with gy summed onto the lines it copies (`contractGradient`, the adjoint of
/// `expandOutput`), by the cut geometry's own algorithm. Exact up to the order of the sums.
func convBackwardWeightMargin(_ plan: MarginPlan, x: Tensor, gy: UnsafePointer<Float>, gw: UnsafeMutablePointer<Float>) {
    let xc = cutInput(x, rows: plan.rows, cols: plan.cols)
    let gyc = contractGradient(gy, planes: plan.geometry.batch * plan.geometry.outChannels, height: plan.geometry.outH,
                               width: plan.geometry.outW, rowSources: plan.rowSources, colSources: plan.colSources)
    convBackwardWeight(plan.geometry, x: xc.storage.pointer, gy: gyc.storage.pointer, gw: gw)
}

/// The adjoint of `expandOutput`: gy `[planes, rowSources.count, colSources.count]` summed
/// onto `[planes, height, width]`, line i of an axis added to line `sources[i]`. Sources are
/// non-decreasing, so each cut row is one run of rows; within a row, runs of consecutive
/// sources are added as blocks and runs of one repeated source summed into it.
func contractGradient(_ gy: UnsafePointer<Float>, planes: Int, height h2: Int, width w2: Int,
                      rowSources: [Int], colSources: [Int]) -> Tensor {
    let h = rowSources.count, w = colSources.count
    let segments = sourceSegments(colSources)
    return Tensor.make(shape: [planes, h2, w2]) { out in
        out.initialize(repeating: 0)
        let p = UncheckedSendable((gy, out.baseAddress!))
        parallelChunks(planes, minChunk: 1) { range in
            for plane in range {
                for r in 0..<h {
                    let src = p.value.0 + (plane * h + r) * w
                    let dst = p.value.1 + (plane * h2 + rowSources[r]) * w2
                    for s in segments {
                        if s.repeated {
                            var t: Float = 0
                            for i in 0..<s.count { t += src[s.line + i] }
                            dst[s.source] += t
                        } else {
                            for i in 0..<s.count { dst[s.source + i] += src[s.line + i] }
                        }
                    }
                }
            }
        }
    }
}
