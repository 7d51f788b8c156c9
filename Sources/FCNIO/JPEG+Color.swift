// JPEG output stages: chroma upsampling, colour conversion, orientation, memory estimate.
//
// Upsampling follows libjpeg's jdsample "fancy" filters: 2x1 horizontal triangle (3/4,
// 1/4) with rounding biases 1 and 2, 2x2 separable triangle with biases 8 and 7 on 4-bit
// sums, 1x2 vertical with biases 1 and 2; edges replicate (first/last column or row);
// other ratios replicate samples. It runs one output row at a time into small row
// buffers, so no full-size upsampled plane is ever allocated.
// Colour, by the colour space libjpeg infers (see JPEG.swift):
//   gray:   the sample.
//   YCbCr:  jdcolor's tables (16-bit fixed point): R = Y + Cr', G = Y + (Cb'' + Cr'') >> 16,
//           B = Y + Cb', clamped.
//   RGB:    the samples.
//   CMYK:   Pillow opens 4-component JPEGs as mode "CMYK" with raw mode "CMYK;I": it
//           assumes Adobe's inverted samples (what Photoshop and Pillow itself write), so
//           its C = 255 - c for a stored sample c. `convert("RGB")` then computes
//           R = (255 - K) - MULDIV255(C, 255 - K), with MULDIV255(a, b) = (t + (t >> 8)) >> 8,
//           t = a * b + 128 (G from M, B from Y likewise). In stored samples that is
//           R = k - MULDIV255(255 - c, k): an inverted-CMYK file comes out in its true
//           colours, and this decoder returns exactly those RGB values (3 channels).
//   YCCK:   (Adobe transform 2) libjpeg first makes CMYK: c = 255 - clamp(Y + Cr'), m, y
//           likewise from the YCbCr->RGB formulas, k passes through; then as CMYK, so
//           R = k - MULDIV255(clamp(Y + Cr'), k).
// Orientation (EXIF.swift) is applied last, on the finished image.

// YCbCr -> RGB tables (jdcolor.c): FIX(x) = round(x * 2^16).
import FCNCore
private let crR: [Int] = (0..<256).map { (91881 * ($0 - 128) + 32768) >> 16 }
private let cbB: [Int] = (0..<256).map { (116130 * ($0 - 128) + 32768) >> 16 }
private let crG: [Int] = (0..<256).map { -46802 * ($0 - 128) }
private let cbG: [Int] = (0..<256).map { -22554 * ($0 - 128) + 32768 }

/// Pillow's MULDIV255: a * b / 255, rounded (Convert.c).
@inline(__always) private func mulDiv255(_ a: Int, _ b: Int) -> Int {
    let t = a * b + 128
    return ((t >> 8) + t) >> 8
}

@inline(__always) private func clamp8(_ v: Int) -> Int { v < 0 ? 0 : v > 255 ? 255 : v }

extension JPEGDecoder {
    /// Bytes the image needs at the peak of decoding: the component planes, plus the larger
    /// of the progressive coefficient buffers (2 bytes per sample, freed after the last
    /// scan) and the output image with its row buffers and, when the orientation is applied
    /// and is not 1, the rotated copy.
    func memoryEstimate(orientation: Int) -> Int {
        var planes = 0
        for c in comps { planes += c.stride * c.planeHeight }
        let coefBytes = progressive ? 2 * planes : 0
        let out = width * height * (comps.count == 1 ? 1 : 3)
        let rows = comps.count * width + 8 * (width / 2 + 1)
        let rotated = applyOrientation && orientation != 1 ? out : 0
        return planes + max(coefBytes, out + rows + rotated)
    }

    /// Throws `unsupported` if the image needs more than `maxBytes` (see `memoryEstimate`).
    func checkMemory(orientation: Int) throws {
        try checkDecodeMemory(memoryEstimate(orientation: orientation), maxBytes, "JPEG",
                              "this \(width)x\(height) image with \(comps.count) component(s)\(progressive ? " (progressive)" : "")")
    }

    /// The EXIF orientation from the markers read so far (1 when there is none).
    func currentOrientation() -> Int { jpegOrientation(exif: exif, xmp: xmp) }

    /// Upsamples row `y` of component `c` (plane `pl`) to `width` samples at `o`.
    /// `colsum` holds at least `dw` Ints (2x2 case).
    @inline(__always)
    func upsampleRow(_ c: JPEGComponent, _ pl: UnsafePointer<UInt8>, _ y: Int, _ o: UnsafeMutablePointer<UInt8>,
                     _ colsum: UnsafeMutablePointer<Int>) {
        let hr = hmax / c.h, vr = vmax / c.v
        let dw = (width * c.h + hmax - 1) / hmax, dh = (height * c.v + vmax - 1) / vmax
        let w = width
        if hr == 1 && vr == 1 {
            o.update(from: pl + y * c.stride, count: w)
        } else if hr == 2 && vr == 1 {
            let r = pl + y * c.stride
            for i in 0..<dw {
                let v3 = 3 * Int(r[i])
                let left = i == 0 ? Int(r[0]) : (v3 + Int(r[i - 1]) + 1) >> 2
                let right = i == dw - 1 ? Int(r[i]) : (v3 + Int(r[i + 1]) + 2) >> 2
                o[2 * i] = UInt8(left)
                if 2 * i + 1 < w { o[2 * i + 1] = UInt8(right) }
            }
        } else if hr == 2 && vr == 2 {
            let i = y >> 1
            let far = y & 1 == 0 ? max(0, i - 1) : min(dh - 1, i + 1)
            let near = pl + i * c.stride, other = pl + far * c.stride
            for k in 0..<dw { colsum[k] = 3 * Int(near[k]) + Int(other[k]) }
            for j in 0..<dw {
                let c3 = colsum[j] * 3
                let left = j == 0 ? (colsum[0] * 4 + 8) >> 4 : (c3 + colsum[j - 1] + 8) >> 4
                let right = j == dw - 1 ? (colsum[j] * 4 + 7) >> 4 : (c3 + colsum[j + 1] + 7) >> 4
                o[2 * j] = UInt8(left)
                if 2 * j + 1 < w { o[2 * j + 1] = UInt8(right) }
            }
        } else if hr == 1 && vr == 2 {
            let i = y >> 1
            let far = y & 1 == 0 ? max(0, i - 1) : min(dh - 1, i + 1)
            let bias = y & 1 == 0 ? 1 : 2
            let near = pl + i * c.stride, other = pl + far * c.stride
            for x in 0..<w { o[x] = UInt8((3 * Int(near[x]) + Int(other[x]) + bias) >> 2) }
        } else {
            let r = pl + (y / vr) * c.stride
            for x in 0..<w { o[x] = r[x / hr] }
        }
    }

    /// Builds the output image (gray or RGB) from the component planes, then applies the
    /// orientation if asked.
    func makeImage() throws -> Image {
        let orientation = currentOrientation()
        let rotate = applyOrientation && orientation != 1
        if rotate { try checkMemory(orientation: orientation) }   // the EXIF may come after the frame
        let img = comps.count == 1 ? grayImage() : colourImage()
        return rotate ? img.transposed(exifOrientation: orientation) : img
    }

    func grayImage() -> Image {
        let c = comps[0], w = width
        var px = [UInt8](repeating: 0, count: w * height)
        c.plane.withUnsafeBufferPointer { pl in
            px.withUnsafeMutableBufferPointer { o in
                for y in 0..<height { (o.baseAddress! + y * w).update(from: pl.baseAddress! + y * c.stride, count: w) }
            }
        }
        return Image(width: w, height: height, channels: 1, pixels: px)
    }

    func colourImage() -> Image {
        let n = comps.count, w = width
        enum Space { case ycc, rgb, cmyk, ycck }
        let space: Space
        if n == 3 {
            let ids = comps.map(\.id)
            let isRGB = !sawJFIF && (adobeTransform.map { $0 == 0 } ?? (ids == [0x52, 0x47, 0x42]))
            space = isRGB ? .rgb : .ycc
        } else {
            space = (adobeTransform ?? 0) == 0 ? .cmyk : .ycck
        }
        var px = [UInt8](repeating: 0, count: w * height * 3)
        let rows = UnsafeMutablePointer<UInt8>.allocate(capacity: n * w)
        let colsum = UnsafeMutablePointer<Int>.allocate(capacity: w / 2 + 8)
        defer { rows.deallocate(); colsum.deallocate() }
        let planes = comps.map { $0.plane }
        func withPlanes<R>(_ i: Int, _ acc: [UnsafePointer<UInt8>], _ body: ([UnsafePointer<UInt8>]) -> R) -> R {
            if i == planes.count { return body(acc) }
            return planes[i].withUnsafeBufferPointer { withPlanes(i + 1, acc + [$0.baseAddress!], body) }
        }
        withPlanes(0, []) { pls in
            crR.withUnsafeBufferPointer { crR in
            cbB.withUnsafeBufferPointer { cbB in
            crG.withUnsafeBufferPointer { crG in
            cbG.withUnsafeBufferPointer { cbG in
            px.withUnsafeMutableBufferPointer { out in
                let r0 = rows, r1 = rows + w, r2 = rows + 2 * w, r3 = rows + (n == 4 ? 3 * w : 0)
                for y in 0..<height {
                    for k in 0..<n { upsampleRow(comps[k], pls[k], y, rows + k * w, colsum) }
                    let o = out.baseAddress! + y * w * 3
                    switch space {
                    case .rgb:
                        for x in 0..<w { o[3 * x] = r0[x]; o[3 * x + 1] = r1[x]; o[3 * x + 2] = r2[x] }
                    case .ycc:
                        for x in 0..<w {
                            let yy = Int(r0[x]), cb = Int(r1[x]), cr = Int(r2[x])
                            o[3 * x] = UInt8(clamp8(yy + crR[cr]))
                            o[3 * x + 1] = UInt8(clamp8(yy + ((cbG[cb] + crG[cr]) >> 16)))
                            o[3 * x + 2] = UInt8(clamp8(yy + cbB[cb]))
                        }
                    case .cmyk:
                        for x in 0..<w {
                            let k = Int(r3[x])
                            o[3 * x] = UInt8(clamp8(k - mulDiv255(255 - Int(r0[x]), k)))
                            o[3 * x + 1] = UInt8(clamp8(k - mulDiv255(255 - Int(r1[x]), k)))
                            o[3 * x + 2] = UInt8(clamp8(k - mulDiv255(255 - Int(r2[x]), k)))
                        }
                    case .ycck:
                        for x in 0..<w {
                            let yy = Int(r0[x]), cb = Int(r1[x]), cr = Int(r2[x]), k = Int(r3[x])
                            o[3 * x] = UInt8(clamp8(k - mulDiv255(clamp8(yy + crR[cr]), k)))
                            o[3 * x + 1] = UInt8(clamp8(k - mulDiv255(clamp8(yy + ((cbG[cb] + crG[cr]) >> 16)), k)))
                            o[3 * x + 2] = UInt8(clamp8(k - mulDiv255(clamp8(yy + cbB[cb]), k)))
                        }
                    }
                }
            }}}}}
        }
        return Image(width: w, height: height, channels: 3, pixels: px)
    }
}
