// Plain image buffers shared by the codecs (PNG.swift, JPEG.swift, PPM.swift).
//
// `Image`: width x height pixels, `channels` interleaved 8-bit samples per pixel, rows top
// to bottom, no padding: sample (x, y, c) is `pixels[(y * width + x) * channels + c]`.
// Channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. Sources with 16-bit samples (PNG, PGM/PPM
// with maxval > 255) also keep the full values in `samples16` (same layout); `pixels` then
// holds the high byte of each sample for PNG (what Pillow does for 16-bit RGB) and the
// value rescaled to 0...255 for PPM.
// `IndexedImage`: palette indices, one byte per pixel, plus the palette. Segmentation label
// PNGs (PASCAL VOC SegmentationClass) are stored this way: the index IS the class id
// (255 = boundary / ignore), so read them with `PNG.decodeIndexed`, never through RGB.
//
// Every decoder takes untrusted bytes and throws `FCNError.invalidFormat` (corrupt or
// truncated) or `FCNError.unsupported` (valid but not handled); none traps, reads out of
// bounds or runs unbounded: images over `maxImagePixels` pixels are rejected and the work
// done is bounded by a constant times the input size plus the output size.
// Memory: each decoder adds up the bytes an image needs at its peak (PNG: inflated data,
// 16-bit copies, the output; JPEG: component planes, coefficients, the output, a rotated
// copy) from the header alone and throws `FCNError.unsupported` naming that number when it
// exceeds the caller's `maxBytes` (default `defaultMaxDecodeBytes`, 1 GiB), before
// allocating it.
import FCNCore
import Foundation

/// Largest pixel count (width x height) any decoder accepts: 2^28 (16384 x 16384).
/// Larger headers are rejected with `FCNError.unsupported` before any allocation.
public let maxImagePixels = 1 << 28

/// Default `maxBytes` of the decoders: 1 GiB. The most a decoder may allocate for one
/// image (all its buffers at the peak, counted from the header before allocating); a
/// 16384 x 16384 RGB PNG needs about 1.6 GiB and so must be asked for explicitly. Pass a
/// larger `maxBytes` to decode larger images, a smaller one to bound untrusted input.
public let defaultMaxDecodeBytes = 1 << 30

/// An 8-bit image: `channels` interleaved samples per pixel (1 gray, 2 gray+alpha, 3 RGB,
/// 4 RGBA), rows top to bottom, `pixels.count == width * height * channels`.
public struct Image: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Samples per pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
    public var channels: Int
    /// Interleaved samples, row-major, `width * height * channels` bytes.
    public var pixels: [UInt8]
    /// The full 16-bit samples (same layout as `pixels`) when the source stored 16 bits per
    /// sample, else nil. `pixels` then holds an 8-bit version (see the file comment).
    public var samples16: [UInt16]?

    /// Wraps `pixels` (checked: `pixels.count == width * height * channels`, channels 1...4).
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8], samples16: [UInt16]? = nil) {
        fcnCheck(width >= 0 && height >= 0, "Image", "negative size \(width)x\(height)")
        fcnCheck((1...4).contains(channels), "Image", "channels must be 1...4 (gray, gray+alpha, RGB, RGBA), got \(channels)")
        fcnCheck(pixels.count == width * height * channels, "Image",
                 "pixels has \(pixels.count) bytes but \(width)x\(height)x\(channels) needs \(width * height * channels)")
        fcnCheck(samples16 == nil || samples16!.count == pixels.count, "Image",
                 "samples16 has \(samples16?.count ?? 0) values but pixels has \(pixels.count)")
        self.width = width; self.height = height; self.channels = channels
        self.pixels = pixels; self.samples16 = samples16
    }

    /// A zero-filled image.
    public init(width: Int, height: Int, channels: Int) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: 0, count: max(0, width * height * channels)))
    }

    /// Sample `c` of pixel (x, y).
    public subscript(x x: Int, y y: Int, c c: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + c] }
        set { pixels[(y * width + x) * channels + c] = newValue; samples16 = nil }
    }

    /// The image with 3 channels: gray is replicated, alpha is dropped (not composited).
    public func rgb() -> Image {
        if channels == 3 { return Image(width: width, height: height, channels: 3, pixels: pixels) }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let base = i * channels
                    if channels <= 2 {
                        let g = src[base]; dst[3 * i] = g; dst[3 * i + 1] = g; dst[3 * i + 2] = g
                    } else {
                        dst[3 * i] = src[base]; dst[3 * i + 1] = src[base + 1]; dst[3 * i + 2] = src[base + 2]
                    }
                }
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: out)
    }
}

/// An RGB palette entry.
public struct PaletteColor: Sendable, Hashable, CustomStringConvertible {
    /// Red, green and blue, 0...255.
    public var r: UInt8, g: UInt8, b: UInt8
    /// The colour (r, g, b).
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
    /// `(r,g,b)`.
    public var description: String { "(\(r),\(g),\(b))" }
}

/// A palette image: one index byte per pixel, row-major, and up to 256 colours.
/// For segmentation labels the index is the class id; `palette` only matters for display.
public struct IndexedImage: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// `width * height` palette indices (class ids for label maps).
    public var indices: [UInt8]
    /// The colours (PNG PLTE); may be shorter than 256. Indices past its end are allowed
    /// (they decode as black in `rgb()`), as label maps use 255 with 21-entry palettes.
    public var palette: [PaletteColor]
    /// Alpha per palette entry (PNG tRNS), empty when the image is opaque.
    public var alpha: [UInt8]

    /// Wraps `indices` (checked: `indices.count == width * height`, palette <= 256 entries).
    public init(width: Int, height: Int, indices: [UInt8], palette: [PaletteColor], alpha: [UInt8] = []) {
        fcnCheck(width >= 0 && height >= 0, "IndexedImage", "negative size \(width)x\(height)")
        fcnCheck(indices.count == width * height, "IndexedImage",
                 "indices has \(indices.count) entries but \(width)x\(height) needs \(width * height)")
        fcnCheck(palette.count <= 256 && alpha.count <= palette.count, "IndexedImage",
                 "palette has \(palette.count) colours and \(alpha.count) alphas; expected <= 256 colours and alphas <= colours")
        self.width = width; self.height = height; self.indices = indices; self.palette = palette; self.alpha = alpha
    }

    /// The colours as an image: RGB, or RGBA if `alpha` is not empty (missing entries are
    /// opaque; indices past the palette are black, like libpng's behaviour).
    public func rgb() -> Image {
        let ch = alpha.isEmpty ? 3 : 4
        var lut = [UInt8](repeating: 0, count: 256 * 4)
        for i in 0..<256 {
            if i < palette.count { lut[4 * i] = palette[i].r; lut[4 * i + 1] = palette[i].g; lut[4 * i + 2] = palette[i].b }
            lut[4 * i + 3] = i < alpha.count ? alpha[i] : 255
        }
        var out = [UInt8](repeating: 0, count: indices.count * ch)
        for (i, v) in indices.enumerated() {
            let s = Int(v) * 4
            for c in 0..<ch { out[i * ch + c] = lut[s + c] }
        }
        return Image(width: width, height: height, channels: ch, pixels: out)
    }
}

/// The PASCAL VOC colour map: class i gets r, g, b built from the bits of i, three at a
/// time from the least significant (bit 3k -> r bit 7-k, 3k+1 -> g, 3k+2 -> b).
/// Class 1 = (128,0,0), 2 = (0,128,0), 15 = (192,128,128). `count` must be 1...256.
public func vocPalette(count: Int = 256) -> [PaletteColor] {
    fcnCheck((1...256).contains(count), "vocPalette", "count must be 1...256, got \(count)")
    return (0..<count).map { i in
        var r = 0, g = 0, b = 0
        for k in 0..<8 {
            r |= ((i >> (3 * k)) & 1) << (7 - k)
            g |= ((i >> (3 * k + 1)) & 1) << (7 - k)
            b |= ((i >> (3 * k + 2)) & 1) << (7 - k)
        }
        return PaletteColor(UInt8(r), UInt8(g), UInt8(b))
    }
}

/// Decodes a PNG, JPEG or PNM (P2/P3/P5/P6) file, chosen by its first bytes.
/// `applyOrientation` turns a JPEG upright by its EXIF orientation (see
/// `JPEG.decode(_:applyOrientation:maxBytes:)`; PNG and PNM have none); `maxBytes` caps the
/// memory the decoder may allocate (see `defaultMaxDecodeBytes`).
public func decodeImage(_ bytes: [UInt8], applyOrientation: Bool = true, maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
    if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try PNG.decode(bytes, maxBytes: maxBytes) }
    if bytes.starts(with: [0xFF, 0xD8]) { return try JPEG.decode(bytes, applyOrientation: applyOrientation, maxBytes: maxBytes) }
    if bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), [UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "5"), UInt8(ascii: "6")].contains(bytes[1]) {
        return try PPM.decode(bytes, maxBytes: maxBytes)
    }
    throw FCNError.invalidFormat("image: unknown format (not PNG, JPEG or PNM by its first bytes)")
}

/// Reads and decodes the image file at `path` (PNG, JPEG or PNM by content); the options
/// are those of `decodeImage(_:applyOrientation:maxBytes:)`.
public func readImage(path: String, applyOrientation: Bool = true, maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
    try decodeImage(readFileBytes(path), applyOrientation: applyOrientation, maxBytes: maxBytes)
}

// MARK: - File helpers

/// Reads a whole file; throws `FCNError.io`.
func readFileBytes(_ path: String) throws -> [UInt8] {
    do { return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
        throw FCNError.io("cannot read '\(path)': \(error.localizedDescription)")
    }
}

/// Writes `bytes` to a temporary file next to `path` renamed over `path` (atomic:
/// readers never see a half-written image); throws `FCNError.io`.
func writeImageFileAtomically(_ bytes: [UInt8], to path: String) throws {
    do { try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw FCNError.io("cannot write '\(path)': \(error.localizedDescription)")
    }
}

/// Throws `FCNError.unsupported` when decoding needs `need` bytes, more than `maxBytes`;
/// `what` says what the bytes are for.
func checkDecodeMemory(_ need: Int, _ maxBytes: Int, _ format: String, _ what: String) throws {
    guard need <= maxBytes else {
        throw FCNError.unsupported("\(format): decoding \(what) needs \(need) bytes, over the limit of \(maxBytes) bytes (maxBytes)")
    }
}

/// Rejects sizes that are empty, overflow or exceed `maxImagePixels`.
func checkImageSize(_ width: Int, _ height: Int, _ format: String) throws {
    guard width > 0, height > 0 else { throw FCNError.invalidFormat("\(format): image size \(width)x\(height) is empty") }
    guard width <= maxImagePixels, height <= maxImagePixels, width * height <= maxImagePixels else {
        throw FCNError.unsupported("\(format): image size \(width)x\(height) exceeds the limit of \(maxImagePixels) pixels")
    }
}
