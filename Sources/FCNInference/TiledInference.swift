// Tiled inference: segmenting images of any size in overlapping tiles, with results equal
// to the whole-image pass (to float rounding) and memory bounded by the tile size.
//
// Why it is exact. An FCN is a composition of convolutions, poolings, element-wise ops
// and deconvolutions/crops. (1) Locality: a raw score at position r depends only on the
// input within the receptive-field radius R of the pixels r covers
// (`SegmentationNetwork.receptiveFieldRadius`). (2) Equivariance: cutting k*A rows off the
// top of the input, A = `translationStride` (the product of all strides: 32 for VGG FCN and
// ResNet-34 FCN-8s, 8 for the dilated fcn_resnet50/101), keeps every pooling / strided
// grid aligned, so the raw scores are those of the whole image shifted by k*A/f rows
// (f = `scoreStride`). The Caffe pad of 100 on conv1_1 does not break this: it is added to
// the tile exactly as to the whole image, so it moves all grids alike. The bottom/right
// ends (ceil-mode pools, the ResNet-34 FCN-8s' pad to a multiple of 32) only affect
// positions within R of the tile's end. So a tile whose input starts at a multiple of A
// (or at the image border) and extends at least R past the positions it keeps (or to the
// image border) reproduces those positions exactly. Numerically checked in the tests
// (tiles of several sizes, not dividing the image, against the whole image).
//
// Plan per axis (`TileAxis.plan`): the output is cut into cores of `tileSize` pixels
// ([0, T), [T, 2T), ...). For a core [c0, c1): the raw positions it needs are [lo, hi]
// (c0..c1-1 when f = 1; for f > 1 the two bilinear taps of c0 and c1-1 computed with the
// WHOLE image's ratio ceil(L/f)/L, which is why the segmenter, not the network, does the
// final resize); the tile input is [s, e) with s = A * floor(max(0, lo*f - R) / A) and
// e = min(L, (hi+1)*f + R), e then moved so that L - e is a multiple of A too (so that
// the left-right flip of a tile is aligned as the flip of the whole image is). Each
// tile's core is kept, nothing is blended: cores partition the image, so there are no
// seams by construction.
//
// Memory. The label map is `[H, W]` UInt8, written tile by tile (argmax streamed per
// core row); the `[C, H, W]` scores exist only when asked for. Per tile the segmenter
// holds at most: the tile's RGB and normalised input, 2 * 3 * S_h * S_w floats, with
// S <= T + 2R + 2A + 2f the tile input side; the raw scores, C * S_h * S_w floats; and the
// network's activations for an S_h x S_w input (for a VGG FCN of width w, the largest are
// conv1_1's and conv1_2's outputs, 2 * 64w * (S+198)^2 floats, plus bounded im2col
// scratch; the last deconvolution's uncropped output, C * (S+62)^2 for FCN-8s, before its
// crop). None of this depends on the image size. With test-time augmentation one more
// tile-sized `C * S_h * S_w` accumulator (and one resized copy per scale) is held.
// Example: VGG FCN-8s, width 1/16, 21 classes, tile 512: S <= 512 + 2*290 + 2*32 = 1156;
// input 2*3*S^2 = 8.0M, scores 21 * (1218^2 + 1156^2) = 59.2M, conv1 2*4*1354^2 = 14.7M:
// about 82M floats (330 MB) per tile, whatever the image size. Outside the tiles the
// image itself (3 bytes per pixel, as decoded) and the label map (1 byte per pixel) are
// held; fcn-segment blends the overlay into the decoded image in place. The process peak
// adds the PNG codec's buffers and some heap fragmentation (fcn-segment keeps freed tile
// buffers in the heap instead of re-mapping them per tile, see its main.swift); the peak
// measured for that example on an 8000x8000 PNG is in Benchmarks.md, Memory.
//
// Test-time augmentation (flip, scales) averages softmax probabilities per tile, over the
// whole tile, then keeps the core. For flip alone on a network with f = 1 this equals the
// whole-image flip TTA (both ends of each tile are aligned); resizing (scales != 1) and
// the final resize of f > 1 networks are then done per tile, which agrees with the
// whole-image result only approximately near tile borders (documented trade-off: exact
// multi-scale tiling would need the resized image's own tile grid).

import FCNCore
import FCNIO
import FCNModels

/// One tile along one axis: the input range `[inputStart, inputEnd)` fed to the network
/// and the output range `[coreStart, coreEnd)` kept from it.
public struct TileAxis: Sendable, Equatable {
    /// Input range fed to the network.
    public var inputStart: Int, inputEnd: Int
    /// Output range kept from the tile.
    public var coreStart: Int, coreEnd: Int

    /// Tiles covering `0..<length` (see the file comment). `tileSize` nil or `>= length`
    /// gives one tile. `rawTaps` maps an output pixel to the raw positions it reads (only
    /// for `scoreStride > 1`).
    static func plan(length L: Int, tileSize: Int?, translationStride A: Int, scoreStride f: Int,
                     radius R: Int, rawTaps: LinearAxis?) -> [TileAxis] {
        guard let T = tileSize, T < L else { return [TileAxis(inputStart: 0, inputEnd: L, coreStart: 0, coreEnd: L)] }
        var out: [TileAxis] = []
        var c0 = 0
        while c0 < L {
            let c1 = min(L, c0 + T)
            let lo: Int, hi: Int
            if let taps = rawTaps { lo = taps.i0[c0]; hi = taps.i1[c1 - 1] } else { lo = c0; hi = c1 - 1 }
            let s = max(0, lo * f - R) / A * A
            var e = min(L, (hi + 1) * f + R)
            if e < L { e = L - (L - e) / A * A }
            out.append(TileAxis(inputStart: s, inputEnd: e, coreStart: c0, coreEnd: c1))
            c0 = c1
        }
        return out
    }
}

/// Where the RGB 0...255 pixels of the image come from (an `Image` keeps them as bytes,
/// so a huge image never exists as a Float tensor).
enum PixelSource: @unchecked Sendable {
    case image(Image)        // RGB, 3 channels
    case tensor(Tensor)      // [3, H, W]

    var height: Int { switch self { case .image(let i): return i.height; case .tensor(let t): return t.shape[1] } }
    var width: Int { switch self { case .image(let i): return i.width; case .tensor(let t): return t.shape[2] } }

    /// `[1, 3, y1-y0, x1-x0]` RGB 0...255 of the region.
    func tile(y0: Int, y1: Int, x0: Int, x1: Int) -> Tensor {
        let h = y1 - y0, w = x1 - x0, W = width, H = height
        switch self {
        case .image(let img):
            return img.pixels.withUnsafeBufferPointer { px in
                Tensor.make(shape: [1, 3, h, w]) { out in
                    let o = out.baseAddress!
                    for y in 0..<h {
                        let row = px.baseAddress! + ((y0 + y) * W + x0) * 3
                        let r = o + y * w, g = o + h * w + y * w, b = o + 2 * h * w + y * w
                        for x in 0..<w { r[x] = Float(row[3 * x]); g[x] = Float(row[3 * x + 1]); b[x] = Float(row[3 * x + 2]) }
                    }
                }
            }
        case .tensor(let t):
            let src = t.storage.pointer
            return Tensor.make(shape: [1, 3, h, w]) { out in
                let o = out.baseAddress!
                for c in 0..<3 {
                    for y in 0..<h {
                        (o + (c * h + y) * w).update(from: src + (c * H + y0 + y) * W + x0, count: w)
                    }
                }
            }
        }
    }
}

/// Runs the tiles of one image: the shared engine of `Segmenter`.
struct TiledRun {
    let network: any SegmentationNetwork
    let options: SegmentationOptions

    func run(_ source: PixelSource, keepScores: Bool, progress: ((_ done: Int, _ total: Int) -> Void)?) -> SegmentationResult {
        let H = source.height, W = source.width, C = network.numClasses
        let f = network.scoreStride, A = network.translationStride, R = network.receptiveFieldRadius
        let tta = options.usesAugmentation
        // Whole-image bilinear taps for f > 1 (the ratio of the whole image, see above).
        let tapsY = f > 1 && !tta ? LinearAxis(inSize: (H + f - 1) / f, outSize: H, alignCorners: false, scale: nil) : nil
        let tapsX = f > 1 && !tta ? LinearAxis(inSize: (W + f - 1) / f, outSize: W, alignCorners: false, scale: nil) : nil
        // With TTA each tile is brought to full resolution on its own: plan as for f = 1.
        let fPlan = tta ? 1 : f
        let rows = TileAxis.plan(length: H, tileSize: options.tileSize, translationStride: A, scoreStride: fPlan,
                                 radius: R + (tta ? f : 0), rawTaps: tapsY)
        let cols = TileAxis.plan(length: W, tileSize: options.tileSize, translationStride: A, scoreStride: fPlan,
                                 radius: R + (tta ? f : 0), rawTaps: tapsX)
        var labels = [UInt8](repeating: 0, count: H * W)
        var scores: Tensor? = keepScores ? Tensor.zeros([1, C, H, W]) : nil
        let total = rows.count * cols.count
        var done = 0
        for ty in rows {
            for tx in cols {
                let rgb = source.tile(y0: ty.inputStart, y1: ty.inputEnd, x0: tx.inputStart, x1: tx.inputEnd)
                let tileScores: Tensor = withoutGrad {
                    tta ? augmentedProbabilities(rgb) : network.rawScores(network.inputPreprocessing.apply(rgb))
                }
                labels.withUnsafeMutableBufferPointer { lb in
                    if var s = scores {
                        scores = nil   // keep the buffer uniquely referenced: written in place
                        s.withUnsafeMutableBufferPointer { sb in
                            writeCore(tileScores, ty, tx, f: tta ? 1 : f, tapsY: tapsY, tapsX: tapsX, H: H, W: W,
                                      labels: lb.baseAddress!, scores: sb.baseAddress!)
                        }
                        scores = s
                    } else {
                        writeCore(tileScores, ty, tx, f: tta ? 1 : f, tapsY: tapsY, tapsX: tapsX, H: H, W: W,
                                  labels: lb.baseAddress!, scores: nil)
                    }
                }
                done += 1
                progress?(done, total)
            }
        }
        return SegmentationResult(width: W, height: H, numClasses: C, labels: labels, scores: scores, tiles: total)
    }

    /// Mean softmax probabilities over flips and scales, `[1, C, h, w]` for a tile `[1, 3, h, w]`.
    func augmentedProbabilities(_ rgb: Tensor) -> Tensor {
        let h = rgb.shape[2], w = rgb.shape[3]
        var acc: Tensor? = nil
        var n = 0
        for scale in options.scales {
            let sh = max(1, Int((Double(h) * scale).rounded())), sw = max(1, Int((Double(w) * scale).rounded()))
            let x = sh == h && sw == w ? rgb : interpolateBilinear(rgb, size: Size2(sh, sw), alignCorners: false)
            let input = network.inputPreprocessing.apply(x)
            for flip in options.flip ? [false, true] : [false] {
                var s = network.scores(normalized: flip ? input.flippedHorizontally() : input)
                if flip { s = s.flippedHorizontally() }
                if sh != h || sw != w { s = interpolateBilinear(s, size: Size2(h, w), alignCorners: false) }
                let p = softmax(s, axis: 1)
                acc = acc.map { $0 + p } ?? p
                n += 1
            }
        }
        return acc! * (1 / Float(n))
    }

    /// Writes the core of one tile: argmax into `labels` (`[H, W]`), scores into `scores`
    /// (`[C, H, W]`) when given. `t` is `[1, C, hr, wr]` at stride f from the tile origin.
    func writeCore(_ t: Tensor, _ ty: TileAxis, _ tx: TileAxis, f: Int, tapsY: LinearAxis?, tapsX: LinearAxis?,
                   H: Int, W: Int, labels: UnsafeMutablePointer<UInt8>, scores: UnsafeMutablePointer<Float>?) {
        let C = t.shape[1], hr = t.shape[2], wr = t.shape[3], plane = hr * wr
        let src = t.storage.pointer
        let cw = tx.coreEnd - tx.coreStart
        let oy = ty.inputStart / f, ox = tx.inputStart / f
        var best = [Float](repeating: 0, count: cw), arg = [UInt8](repeating: 0, count: cw)
        var row = [Float](repeating: 0, count: cw)
        for y in ty.coreStart..<ty.coreEnd {
            for c in 0..<C {
                // The score row of class c over the core columns.
                if f == 1 {
                    let s = src + c * plane + (y - ty.inputStart) * wr + (tx.coreStart - tx.inputStart)
                    for i in 0..<cw { row[i] = s[i] }
                } else {
                    let ty0 = tapsY!, tx0 = tapsX!
                    let r0 = src + c * plane + (ty0.i0[y] - oy) * wr, r1 = src + c * plane + (ty0.i1[y] - oy) * wr
                    let h0 = ty0.l0[y], h1 = ty0.l1[y]
                    for i in 0..<cw {
                        let x = tx.coreStart + i
                        let c0 = tx0.i0[x] - ox, c1 = tx0.i1[x] - ox, w0 = tx0.l0[x], w1 = tx0.l1[x]
                        row[i] = h0 * (w0 * r0[c0] + w1 * r0[c1]) + h1 * (w0 * r1[c0] + w1 * r1[c1])
                    }
                }
                if let scores {
                    let d = scores + (c * H + y) * W + tx.coreStart
                    for i in 0..<cw { d[i] = row[i] }
                }
                if c == 0 {
                    for i in 0..<cw { best[i] = row[i]; arg[i] = 0 }
                } else {
                    let cc = UInt8(c)
                    for i in 0..<cw where row[i] > best[i] || (best[i].isNaN && !row[i].isNaN) { best[i] = row[i]; arg[i] = cc }
                }
            }
            let l = labels + y * W + tx.coreStart
            for i in 0..<cw { l[i] = arg[i] }
        }
    }
}
