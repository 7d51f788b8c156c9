// PNG reading and writing (ISO/IEC 15948), own zlib (Inflate.swift, Deflate.swift).
//
// Read: every colour type (gray 0, RGB 2, palette 3, gray+alpha 4, RGBA 6) at every legal
// bit depth (1/2/4/8/16), Adam7 interlacing, the five row filters; chunk CRCs are checked,
// unknown critical chunks are refused (`unsupported`), ancillary ones skipped.
// `PNG.decode` returns an `Image`: gray 1 channel (depths < 8 scaled to 0...255 as Pillow's
// "L" conversion does: x * 255 / (2^d - 1)), gray+alpha 2, RGB 3, RGBA 4, palette -> RGB, or
// RGBA when tRNS is present. 16-bit samples stay in `samples16`; `pixels` holds their high
// byte (Pillow does the same for 16-bit RGB/RGBA/LA). tRNS of gray/RGB images is ignored.
// `PNG.decodeIndexed` returns the raw palette indices (class ids of VOC label maps) and
// palette; it also accepts gray images of depth <= 8 (indices = raw gray values).
// Limits: <= `maxImagePixels` pixels; the declared image data may not exceed what the
// IDAT bytes can inflate to (1032:1), so a tiny corrupt file cannot cause a huge allocation;
// the memory decoding needs at its peak (IDAT copy + inflated data + samples, or samples +
// 16-bit values + palette expansion; see `unpack`) must be <= `maxBytes` (default
// `defaultMaxDecodeBytes`, 1 GiB), checked before inflating.
//
// Write: 8-bit gray, gray+alpha, RGB, RGBA (16-bit when `samples16` is set), and 8-bit
// palette images (`IndexedImage`, e.g. with `vocPalette()`); per-row adaptive filter
// (minimum sum of absolute differences, filter 0 for palette images) and zlib level 6.
// `write(to:)` is atomic (temporary file renamed over the target).
import FCNCore
import Foundation

/// PNG codec: `decode`, `decodeIndexed`, `encode`, `read`, `write`.
public enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Decodes a PNG into an 8-bit `Image` (see the file comment for the channel mapping).
    /// `maxBytes` caps the memory decoding may take (see the file comment); a larger image
    /// throws `FCNError.unsupported` naming the bytes it needs, before the allocation.
    public static func decode(_ bytes: [UInt8], maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        let d = try decodeSamples(bytes, maxBytes: maxBytes, expandPalette: true)
        switch d.colorType {
        case 3:
            var pal = d.palette
            if pal.isEmpty { pal = [PaletteColor(0, 0, 0)] }
            let idx = IndexedImage(width: d.width, height: d.height, indices: d.samples,
                                   palette: pal, alpha: Array(d.trns.prefix(pal.count)))
            return idx.rgb()
        default:
            let ch = [0: 1, 2: 3, 4: 2, 6: 4][d.colorType]!
            var px = d.samples
            if d.bitDepth < 8 {
                let scale = UInt8(255 / ((1 << d.bitDepth) - 1))
                px.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = p[i] &* scale } }
            }
            return Image(width: d.width, height: d.height, channels: ch, pixels: px, samples16: d.samples16)
        }
    }

    /// Decodes a PNG from `Data`.
    public static func decode(_ data: Data, maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        try decode([UInt8](data), maxBytes: maxBytes)
    }

    /// Decodes a palette PNG (or a gray PNG of depth <= 8) into raw indices and palette,
    /// without converting to colours: for label maps the index is the class id.
    /// Throws `FCNError.mismatch` for other colour types; `maxBytes` as in `decode`.
    public static func decodeIndexed(_ bytes: [UInt8], maxBytes: Int = defaultMaxDecodeBytes) throws -> IndexedImage {
        let d = try decodeSamples(bytes, maxBytes: maxBytes, expandPalette: false)
        if d.colorType == 3 {
            return IndexedImage(width: d.width, height: d.height, indices: d.samples, palette: d.palette,
                                alpha: Array(d.trns.prefix(d.palette.count)))
        }
        guard d.colorType == 0 && d.bitDepth <= 8 else {
            throw FCNError.mismatch("PNG: decodeIndexed needs a palette or <= 8-bit gray image, got colour type \(d.colorType) at \(d.bitDepth) bits")
        }
        let levels = 1 << d.bitDepth, scale = 255 / (levels - 1)
        let pal = (0..<levels).map { v in PaletteColor(UInt8(v * scale), UInt8(v * scale), UInt8(v * scale)) }
        return IndexedImage(width: d.width, height: d.height, indices: d.samples, palette: pal)
    }

    /// Reads and decodes the PNG file at `path`.
    public static func read(path: String, maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        try decode(readFileBytes(path), maxBytes: maxBytes)
    }
    /// Reads the palette PNG at `path` as indices (see `decodeIndexed`).
    public static func readIndexed(path: String, maxBytes: Int = defaultMaxDecodeBytes) throws -> IndexedImage {
        try decodeIndexed(readFileBytes(path), maxBytes: maxBytes)
    }

    // MARK: Decoding

    struct Decoded {
        var width = 0, height = 0, bitDepth = 0, colorType = 0, interlace = 0
        var palette: [PaletteColor] = []
        var trns: [UInt8] = []
        /// Samples at full resolution, `width * height * samplesPerPixel`: the raw value for
        /// depths <= 8 (not rescaled), the high byte for 16-bit.
        var samples: [UInt8] = []
        /// The full values for 16-bit images (same layout), else nil.
        var samples16: [UInt16]? = nil
    }

    static func be32(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        Int(p[i]) << 24 | Int(p[i + 1]) << 16 | Int(p[i + 2]) << 8 | Int(p[i + 3])
    }

    static func decodeSamples(_ bytes: [UInt8], maxBytes: Int, expandPalette: Bool) throws -> Decoded {
        try bytes.withUnsafeBufferPointer { p -> Decoded in
            guard p.count >= 8, Array(p[0..<8]) == signature else { throw FCNError.invalidFormat("PNG: missing PNG signature") }
            var d = Decoded()
            var pos = 8
            var sawHeader = false, sawEnd = false
            var idat: [UInt8] = []
            while pos < p.count {
                guard pos + 12 <= p.count else { throw FCNError.invalidFormat("PNG: truncated chunk header at byte \(pos)") }
                let len = be32(p, pos)
                guard len <= 0x7FFF_FFFF, pos + 12 + len <= p.count else {
                    throw FCNError.invalidFormat("PNG: chunk at byte \(pos) of length \(len) runs past the end of the \(p.count)-byte file (truncated?)")
                }
                let type = Array(p[(pos + 4)..<(pos + 8)])
                let name = String(decoding: type.map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
                let body = UnsafeBufferPointer(rebasing: p[(pos + 8)..<(pos + 8 + len)])
                let stored = UInt32(be32(p, pos + 8 + len))
                let crc = crc32(UnsafeBufferPointer(rebasing: p[(pos + 4)..<(pos + 8 + len)]))
                guard crc == stored else { throw FCNError.invalidFormat("PNG: CRC mismatch in chunk '\(name)' at byte \(pos)") }
                pos += 12 + len
                if !sawHeader && name != "IHDR" { throw FCNError.invalidFormat("PNG: first chunk is '\(name)', expected IHDR") }
                switch name {
                case "IHDR":
                    guard !sawHeader, len == 13 else { throw FCNError.invalidFormat("PNG: bad or repeated IHDR (length \(len))") }
                    sawHeader = true
                    d.width = be32(body, 0); d.height = be32(body, 4)
                    d.bitDepth = Int(body[8]); d.colorType = Int(body[9]); d.interlace = Int(body[12])
                    let allowed: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
                    guard let depths = allowed[d.colorType], depths.contains(d.bitDepth) else {
                        throw FCNError.invalidFormat("PNG: colour type \(d.colorType) with bit depth \(d.bitDepth) is not allowed")
                    }
                    guard body[10] == 0, body[11] == 0, d.interlace <= 1 else {
                        throw FCNError.invalidFormat("PNG: unknown compression \(body[10]), filter \(body[11]) or interlace \(d.interlace) method")
                    }
                    try checkImageSize(d.width, d.height, "PNG")
                case "PLTE":
                    guard len % 3 == 0, len / 3 <= 256, len > 0 else { throw FCNError.invalidFormat("PNG: PLTE length \(len) is not 3 x (1...256)") }
                    d.palette = (0..<(len / 3)).map { PaletteColor(body[3 * $0], body[3 * $0 + 1], body[3 * $0 + 2]) }
                case "tRNS":
                    d.trns = Array(body)
                case "IDAT":
                    idat.append(contentsOf: body)
                case "IEND":
                    sawEnd = true
                default:
                    if type[0] & 0x20 == 0 { throw FCNError.unsupported("PNG: unknown critical chunk '\(name)'") }
                }
                if sawEnd { break }
            }
            guard sawHeader else { throw FCNError.invalidFormat("PNG: no IHDR chunk") }
            guard sawEnd else { throw FCNError.invalidFormat("PNG: no IEND chunk (file truncated?)") }
            guard !idat.isEmpty else { throw FCNError.invalidFormat("PNG: no IDAT chunk") }
            if d.colorType == 3 && d.palette.isEmpty { throw FCNError.invalidFormat("PNG: palette image without PLTE chunk") }
            try unpack(&d, idat, maxBytes: maxBytes, expandPalette: expandPalette)
            return d
        }
    }

    static let adam7: [(x0: Int, y0: Int, dx: Int, dy: Int)] = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]

    /// Inflates, unfilters and unpacks the image data into `d.samples` (and `d.samples16`).
    /// Memory: the IDAT bytes, the inflated data (one filter byte plus the packed row per
    /// row and pass) and the samples (1 byte each, plus 2 for 16-bit) are checked against
    /// `maxBytes` before inflating, with the palette expansion `decode` does next (3 or 4
    /// bytes per pixel) when `expandPalette`. 8-bit non-interlaced images are unfiltered in
    /// place and become the samples without a second buffer; no 16-bit intermediate is made
    /// for 8-bit data (it was: 2 bytes per sample on top of the inflated data and the
    /// output, 2.4 GB for a 783 KB, 16384 x 16384 RGB file).
    static func unpack(_ d: inout Decoded, _ idat: [UInt8], maxBytes: Int, expandPalette: Bool) throws {
        let spp = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][d.colorType]!
        let bitsPP = spp * d.bitDepth
        let bpp = max(1, bitsPP / 8)
        let passes = d.interlace == 1 ? adam7 : [(0, 0, 1, 1)]
        var sizes: [(w: Int, h: Int)] = []
        var total = 0
        for (x0, y0, dx, dy) in passes {
            let w = d.width > x0 ? (d.width - x0 + dx - 1) / dx : 0
            let h = d.height > y0 ? (d.height - y0 + dy - 1) / dy : 0
            sizes.append((w, h))
            if w > 0 && h > 0 { total += h * (1 + (w * bitsPP + 7) / 8) }
        }
        let n = d.width * d.height * spp
        let inPlace = d.bitDepth == 8 && d.interlace == 0
        let wide = d.bitDepth == 16 ? 2 * n : 0
        let rowBytes = 2 * ((d.width * bitsPP + 7) / 8)
        let inflating = idat.count + total + (inPlace ? 0 : n) + wide + rowBytes
        let converting = n + wide + (d.colorType == 3 && expandPalette ? n * (d.trns.isEmpty ? 3 : 4) + 1024 : 0)
        try checkDecodeMemory(max(inflating, converting), maxBytes, "PNG",
                              "this \(d.width)x\(d.height) image (colour type \(d.colorType), \(d.bitDepth)-bit\(d.interlace == 1 ? ", interlaced" : ""))")
        guard total <= 1032 * idat.count + 64 else {
            throw FCNError.invalidFormat("PNG: \(idat.count) bytes of image data cannot hold a \(d.width)x\(d.height) image (truncated?)")
        }
        var raw = try idat.withUnsafeBufferPointer { try Zlib.decompress($0, maxOutput: total, exactSize: total) }
        guard raw.count == total else {
            throw FCNError.invalidFormat("PNG: image data inflates to \(raw.count) bytes, expected \(total) (truncated?)")
        }
        if inPlace {
            // Row y (filter byte + stride bytes at y * (stride + 1)) is unfiltered where it
            // is, against row y - 1 already moved to (y - 1) * stride, then moved to y * stride.
            let stride = d.width * spp, h = d.height
            let zeros = [UInt8](repeating: 0, count: stride)
            try raw.withUnsafeMutableBufferPointer { r in
                try zeros.withUnsafeBufferPointer { z in
                    let base = r.baseAddress!
                    for y in 0..<h {
                        let src = base + y * (stride + 1)
                        let prev = y == 0 ? z.baseAddress! : UnsafePointer(base + (y - 1) * stride)
                        try unfilter(src[0], src + 1, prev, stride, bpp)
                        memmove(base + y * stride, src + 1, stride)
                    }
                }
            }
            raw.removeLast(h)
            d.samples = raw
            return
        }
        var samples = [UInt8](repeating: 0, count: n)
        var samples16: [UInt16]? = d.bitDepth == 16 ? [UInt16](repeating: 0, count: n) : nil
        let width = d.width, depth = d.bitDepth
        try raw.withUnsafeBufferPointer { raw in
            try samples.withUnsafeMutableBufferPointer { out in
                var off = 0
                for (pi, (x0, y0, dx, dy)) in passes.enumerated() {
                    let (w, h) = sizes[pi]
                    guard w > 0 && h > 0 else { continue }
                    let stride = (w * bitsPP + 7) / 8
                    var prev = [UInt8](repeating: 0, count: stride)
                    var cur = [UInt8](repeating: 0, count: stride)
                    for row in 0..<h {
                        let filter = raw[off]
                        for i in 0..<stride { cur[i] = raw[off + 1 + i] }
                        off += 1 + stride
                        try cur.withUnsafeMutableBufferPointer { c in
                            try prev.withUnsafeBufferPointer { pr in try unfilter(filter, c.baseAddress!, pr.baseAddress!, stride, bpp) }
                        }
                        let y = y0 + row * dy
                        for col in 0..<w {
                            let o = (y * width + x0 + col * dx) * spp
                            for s in 0..<spp {
                                let k = col * spp + s
                                switch depth {
                                case 8: out[o + s] = cur[k]
                                case 16:
                                    out[o + s] = cur[2 * k]
                                    samples16![o + s] = UInt16(cur[2 * k]) << 8 | UInt16(cur[2 * k + 1])
                                default:
                                    let bit = k * depth
                                    out[o + s] = UInt8((Int(cur[bit >> 3]) >> (8 - depth - (bit & 7))) & ((1 << depth) - 1))
                                }
                            }
                        }
                        swap(&prev, &cur)
                    }
                }
            }
        }
        d.samples = samples
        d.samples16 = samples16
    }

    /// Reverses one row filter in place: `cur` holds `n` filtered bytes, `prev` the
    /// unfiltered previous row (or zeros); `bpp` is the filter's byte distance.
    static func unfilter(_ type: UInt8, _ cur: UnsafeMutablePointer<UInt8>, _ prev: UnsafePointer<UInt8>, _ n: Int, _ bpp: Int) throws {
        switch type {
        case 0: break
        case 1: if n > bpp { for i in bpp..<n { cur[i] = cur[i] &+ cur[i - bpp] } }
        case 2: for i in 0..<n { cur[i] = cur[i] &+ prev[i] }
        case 3:
            for i in 0..<n {
                let a = i >= bpp ? Int(cur[i - bpp]) : 0
                cur[i] = cur[i] &+ UInt8((a + Int(prev[i])) >> 1)
            }
        case 4:
            for i in 0..<n {
                let a = i >= bpp ? Int(cur[i - bpp]) : 0, b = Int(prev[i]), c = i >= bpp ? Int(prev[i - bpp]) : 0
                cur[i] = cur[i] &+ UInt8(paeth(a, b, c))
            }
        default: throw FCNError.invalidFormat("PNG: unknown row filter \(type)")
        }
    }

    @inline(__always) static func paeth(_ a: Int, _ b: Int, _ c: Int) -> Int {
        let p = a + b - c
        let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
    }

    // MARK: Encoding

    /// Encodes an image: 1/2/3/4 channels -> gray / gray+alpha / RGB / RGBA, 16-bit when
    /// `image.samples16` is set (else 8-bit). `level` is the zlib level (0...9).
    public static func encode(_ image: Image, level: Int = 6) -> [UInt8] {
        let colorType = [1: 0, 2: 4, 3: 2, 4: 6][image.channels]!
        let depth = image.samples16 != nil ? 16 : 8
        let stride = image.width * image.channels * depth / 8
        var rows = [UInt8](repeating: 0, count: image.height * stride)
        if let s = image.samples16 {
            for i in 0..<s.count { rows[2 * i] = UInt8(s[i] >> 8); rows[2 * i + 1] = UInt8(s[i] & 0xFF) }
        } else {
            rows = image.pixels
        }
        let bpp = image.channels * depth / 8
        return assemble(width: image.width, height: image.height, depth: depth, colorType: colorType,
                        rows: rows, stride: stride, bpp: bpp, adaptive: true, extra: [], level: level)
    }

    /// Encodes a palette image at 8 bits: PLTE (padded with black up to the largest index
    /// used) and tRNS when `image.alpha` is not empty.
    public static func encode(_ image: IndexedImage, level: Int = 6) -> [UInt8] {
        var pal = image.palette
        let maxIndex = Int(image.indices.max() ?? 0)
        if pal.count <= maxIndex { pal += [PaletteColor](repeating: PaletteColor(0, 0, 0), count: maxIndex + 1 - pal.count) }
        var plte: [UInt8] = []
        for c in pal { plte += [c.r, c.g, c.b] }
        var extra = [chunk("PLTE", plte)]
        if !image.alpha.isEmpty { extra.append(chunk("tRNS", image.alpha)) }
        return assemble(width: image.width, height: image.height, depth: 8, colorType: 3,
                        rows: image.indices, stride: image.width, bpp: 1, adaptive: false, extra: extra, level: level)
    }

    /// Encodes and writes atomically (temporary file renamed over `path`).
    public static func write(_ image: Image, to path: String) throws { try writeImageFileAtomically(encode(image), to: path) }
    /// Encodes a palette image and writes it atomically.
    public static func write(_ image: IndexedImage, to path: String) throws { try writeImageFileAtomically(encode(image), to: path) }

    static func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
        let t = Array(type.utf8)
        let n = body.count
        var out: [UInt8] = [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + t + body
        let c = crc32(out[4...])
        out += [UInt8(c >> 24), UInt8(c >> 16 & 0xFF), UInt8(c >> 8 & 0xFF), UInt8(c & 0xFF)]
        return out
    }

    static func assemble(width: Int, height: Int, depth: Int, colorType: Int, rows: [UInt8], stride: Int, bpp: Int,
                         adaptive: Bool, extra: [[UInt8]], level: Int) -> [UInt8] {
        var filtered = [UInt8](repeating: 0, count: height * (stride + 1))
        var cand = [UInt8](repeating: 0, count: stride)
        for y in 0..<height {
            let cur = rows[(y * stride)..<((y + 1) * stride)]
            let o = y * (stride + 1)
            var best = 0, bestScore = Int.max
            for f in 0...(adaptive ? 4 : 0) {
                var score = 0
                for i in 0..<stride {
                    let x = Int(cur[cur.startIndex + i])
                    let a = i >= bpp ? Int(cur[cur.startIndex + i - bpp]) : 0
                    let b = y > 0 ? Int(rows[(y - 1) * stride + i]) : 0
                    let c = y > 0 && i >= bpp ? Int(rows[(y - 1) * stride + i - bpp]) : 0
                    let pred: Int
                    switch f { case 0: pred = 0; case 1: pred = a; case 2: pred = b; case 3: pred = (a + b) >> 1; default: pred = paeth(a, b, c) }
                    let v = UInt8(truncatingIfNeeded: x - pred)
                    cand[i] = v
                    score += v < 128 ? Int(v) : 256 - Int(v)
                }
                if score < bestScore {
                    bestScore = score; best = f
                    filtered[o] = UInt8(f)
                    for i in 0..<stride { filtered[o + 1 + i] = cand[i] }
                }
            }
            _ = best
        }
        var ihdr: [UInt8] = []
        for v in [width, height] { ihdr += [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        ihdr += [UInt8(depth), UInt8(colorType), 0, 0, 0]
        var out = signature + chunk("IHDR", ihdr)
        for e in extra { out += e }
        out += chunk("IDAT", Zlib.compress(filtered, level: level))
        out += chunk("IEND", [])
        return out
    }
}
