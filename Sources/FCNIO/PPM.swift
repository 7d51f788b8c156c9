// Netpbm PGM / PPM reading and writing.
//
// Read: P5 (binary gray), P6 (binary RGB), P2 (ASCII gray), P3 (ASCII RGB). Header tokens
// are separated by whitespace and may be interleaved with '#' comments up to the end of
// the line; one whitespace byte separates maxval from binary data. maxval is 1...65535:
// binary samples are 1 byte for maxval <= 255, else 2 bytes big-endian. Samples above
// maxval are clamped to it. `pixels` holds round(v * 255 / maxval); when maxval > 255 the
// raw values are also kept in `samples16`. Bytes after the image are ignored.
// Limits: <= `maxImagePixels` pixels, and the data must be present in the file before any
// large allocation (binary: exact size; ASCII: at least 2 bytes per sample); the output
// (1 byte per sample, plus 2 for the 16-bit values when maxval > 255) must fit in
// `maxBytes` (default `defaultMaxDecodeBytes`, 1 GiB), checked before allocating.
//
// Write: P5 for 1 channel, P6 for 3; alpha is dropped (2 -> gray, 4 -> RGB); maxval 255,
// or 65535 with 2-byte samples when `samples16` is set. Writing to a path is atomic.
import FCNCore
import Foundation

/// Netpbm codec (PGM / PPM).
public enum PPM {
    /// Decodes a P2/P3/P5/P6 file into a 1- or 3-channel `Image`. `maxBytes` caps the
    /// memory the result takes; a larger image throws `FCNError.unsupported` naming the
    /// bytes it needs, before the allocation.
    public static func decode(_ bytes: [UInt8], maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        var pos = 0
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C }
        func skipSpaceAndComments() {
            while pos < bytes.count {
                if isSpace(bytes[pos]) { pos += 1 } else if bytes[pos] == UInt8(ascii: "#") {
                    while pos < bytes.count && bytes[pos] != 0x0A && bytes[pos] != 0x0D { pos += 1 }
                } else { break }
            }
        }
        func number(_ what: String) throws -> Int {
            skipSpaceAndComments()
            var v = 0, digits = 0
            while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 {
                v = v * 10 + Int(bytes[pos] - 0x30); digits += 1; pos += 1
                guard v <= 1 << 30 else { throw FCNError.invalidFormat("PNM: \(what) is too large") }
            }
            guard digits > 0 else { throw FCNError.invalidFormat("PNM: expected a number for \(what) at byte \(pos)") }
            return v
        }
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P") else { throw FCNError.invalidFormat("PNM: missing 'P' magic") }
        let kind = bytes[1]
        let channels: Int, ascii: Bool
        switch kind {
        case UInt8(ascii: "2"): channels = 1; ascii = true
        case UInt8(ascii: "3"): channels = 3; ascii = true
        case UInt8(ascii: "5"): channels = 1; ascii = false
        case UInt8(ascii: "6"): channels = 3; ascii = false
        case UInt8(ascii: "1"), UInt8(ascii: "4"), UInt8(ascii: "7"):
            throw FCNError.unsupported("PNM: format P\(Character(UnicodeScalar(kind))) (bitmap / PAM) is not supported")
        default: throw FCNError.invalidFormat("PNM: unknown magic")
        }
        pos = 2
        guard pos < bytes.count, isSpace(bytes[pos]) || bytes[pos] == UInt8(ascii: "#") else {
            throw FCNError.invalidFormat("PNM: no whitespace after the magic number")
        }
        let w = try number("width"), h = try number("height"), maxval = try number("maxval")
        guard (1...65535).contains(maxval) else { throw FCNError.invalidFormat("PNM: maxval \(maxval) is not in 1...65535") }
        try checkImageSize(w, h, "PNM")
        let n = w * h * channels
        let wide = maxval > 255
        if !ascii {
            guard pos < bytes.count, isSpace(bytes[pos]) else { throw FCNError.invalidFormat("PNM: no whitespace after maxval") }
            pos += 1
            let size = wide ? 2 : 1
            guard bytes.count - pos >= n * size else {
                throw FCNError.invalidFormat("PNM: \(bytes.count - pos) data bytes, expected \(n * size) for \(w)x\(h)x\(channels) (truncated?)")
            }
        } else {
            guard n <= (bytes.count - pos) / 2 + 1 else { throw FCNError.invalidFormat("PNM: file is too short for \(n) ASCII samples (truncated?)") }
        }
        try checkDecodeMemory(n + (wide ? 2 * n : 0), maxBytes, "PNM", "this \(w)x\(h)x\(channels) image (maxval \(maxval))")
        // 8-bit output; the raw values are kept only when they need 16 bits.
        var px = [UInt8](repeating: 0, count: n)
        var raw: [UInt16]? = wide ? [UInt16](repeating: 0, count: n) : nil
        @inline(__always) func store(_ i: Int, _ v: Int) {
            let c = min(v, maxval)
            px[i] = maxval == 255 ? UInt8(c) : UInt8((c * 255 + maxval / 2) / maxval)
            if wide { raw![i] = UInt16(c) }
        }
        if ascii {
            for i in 0..<n { store(i, try number("sample \(i)")) }
        } else {
            let start = pos
            bytes.withUnsafeBufferPointer { p in
                if !wide {
                    for i in 0..<n { store(i, Int(p[start + i])) }
                } else {
                    for i in 0..<n { store(i, Int(p[start + 2 * i]) << 8 | Int(p[start + 2 * i + 1])) }
                }
            }
        }
        return Image(width: w, height: h, channels: channels, pixels: px, samples16: raw)
    }

    /// Decodes from `Data`.
    public static func decode(_ data: Data, maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        try decode([UInt8](data), maxBytes: maxBytes)
    }
    /// Reads and decodes the file at `path`.
    public static func read(path: String, maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        try decode(readFileBytes(path), maxBytes: maxBytes)
    }

    /// Encodes as binary P5 (1 or 2 channels, alpha dropped) or P6 (3 or 4 channels).
    public static func encode(_ image: Image) -> [UInt8] {
        let outCh = image.channels <= 2 ? 1 : 3
        let wide = image.samples16 != nil
        var out = Array("P\(outCh == 1 ? 5 : 6)\n\(image.width) \(image.height)\n\(wide ? 65535 : 255)\n".utf8)
        let n = image.width * image.height
        out.reserveCapacity(out.count + n * outCh * (wide ? 2 : 1))
        for i in 0..<n {
            for c in 0..<outCh {
                let k = i * image.channels + c
                if let s = image.samples16 { out.append(UInt8(s[k] >> 8)); out.append(UInt8(s[k] & 0xFF)) } else { out.append(image.pixels[k]) }
            }
        }
        return out
    }

    /// Encodes and writes atomically (temporary file renamed over `path`).
    public static func write(_ image: Image, to path: String) throws { try writeImageFileAtomically(encode(image), to: path) }
}
