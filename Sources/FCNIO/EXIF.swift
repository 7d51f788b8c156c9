// EXIF orientation: read from a JPEG's APP1 segments, applied like Pillow's
// `ImageOps.exif_transpose`.
//
// Where the value comes from (as Pillow's JpegImagePlugin and `Image.getexif` read it):
// the APP1 segments before the first scan that start with "Exif\0\0" (the first one kept
// whole, later ones appended without their 6-byte header) hold a TIFF file: byte order
// "II" (little-endian) or "MM" (big-endian) with magic 42 in either byte order, then the
// 32-bit offset of IFD0 from the start of the TIFF header. IFD0 is a 16-bit entry count
// and 12-byte entries (tag, type, count, value or offset). Tag 0x0112 is the orientation;
// its first value is taken when the count is at least 1 and the type numeric (BYTE,
// SHORT, LONG, their signed forms, RATIONAL and FLOAT types: Pillow looks the value up
// among 2...8, so 6/1 or 6.0 count as 6); values over 4 bytes sit at the offset. A
// later duplicate entry wins; an IFD cut short keeps the entries read so far. With no
// EXIF orientation, XMP (APP1 "http://ns.adobe.com/xap/1.0/\0", the last one) is searched
// for `tiff:Orientation="N` or `tiff:Orientation>N` (one digit), as Pillow does.
// Values other than 2...8 mean "as stored". Where Pillow would raise (an EXIF block that
// is not TIFF, BigTIFF), the orientation is ignored here instead.
//
// Orientation N (TIFF 6.0 / EXIF 2.3: which corner row 0, column 0 of the stored image
// shows) and the transform that makes the image upright (Pillow's `Image.Transpose`):
//   1 none            2 FLIP_LEFT_RIGHT   3 ROTATE_180   4 FLIP_TOP_BOTTOM
//   5 TRANSPOSE       6 ROTATE_270        7 TRANSVERSE   8 ROTATE_90
// (ROTATE_n turns counter-clockwise by n degrees; 5-8 swap width and height.)

import FCNCore
extension JPEG {
    /// The EXIF orientation (1...8) of a JPEG file, read from its markers before the first
    /// scan without decoding the image; 1 when there is none or it is out of range.
    /// `decode(_:applyOrientation:maxBytes:)` applies it unless told not to.
    public static func exifOrientation(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBufferPointer { p in
            guard p.count >= 2, p[0] == 0xFF, p[1] == 0xD8 else { return 1 }
            var d = JPEGDecoder(p)
            var pos = 2
            while pos + 4 <= p.count, p[pos] == 0xFF {
                let m = Int(p[pos + 1])
                if m == 0xFF { pos += 1; continue }
                if m == 0xD8 || m == 0x01 || (0xD0...0xD7).contains(m) { pos += 2; continue }
                if m == 0xDA || m == 0xD9 { break }
                let len = Int(p[pos + 2]) << 8 | Int(p[pos + 3])
                guard len >= 2, pos + 2 + len <= p.count else { break }
                d.readApp(m, UnsafeBufferPointer(rebasing: p[(pos + 4)..<(pos + 2 + len)]))
                pos += 2 + len
            }
            return d.currentOrientation()
        }
    }
}

/// The orientation a JPEG's EXIF block (`exif`, starting with "Exif\0\0") or, failing
/// that, its XMP packet gives; 1 when neither has one in 2...8 (see the file comment).
func jpegOrientation(exif: [UInt8]?, xmp: [UInt8]?) -> Int {
    var value: Int? = nil
    if let e = exif { value = exifOrientationTag(e) }
    if value == nil, let x = xmp { value = xmpOrientation(x) }
    guard let v = value, (2...8).contains(v) else { return 1 }
    return v
}

/// Tag 0x0112 of IFD0 of an APP1 EXIF payload, or nil if absent or unreadable.
func exifOrientationTag(_ e: [UInt8]) -> Int? {
    // Pillow strips one or two "Exif\0\0" headers.
    var start = 0
    let hdr = Array("Exif\0\0".utf8)
    for _ in 0..<2 where e.count >= start + 6 && Array(e[start..<(start + 6)]) == hdr { start += 6 }
    let t = Array(e[start...])
    guard t.count >= 8 else { return nil }
    let little: Bool
    switch (t[0], t[1]) {
    case (0x49, 0x49): little = true
    case (0x4D, 0x4D): little = false
    default: return nil
    }
    guard (t[2] == 42 && t[3] == 0) || (t[2] == 0 && t[3] == 42) else { return nil }   // 43 = BigTIFF: not read
    func u16(_ i: Int) -> Int? {
        guard i >= 0, i + 2 <= t.count else { return nil }
        return little ? Int(t[i]) | Int(t[i + 1]) << 8 : Int(t[i]) << 8 | Int(t[i + 1])
    }
    func u32(_ i: Int) -> Int? {
        guard let a = u16(i), let b = u16(i + 2) else { return nil }
        return little ? a | b << 16 : a << 16 | b
    }
    guard let ifd = u32(4), let n = u16(ifd) else { return nil }
    // Bytes per value of each numeric TIFF type (BYTE, SHORT, LONG, RATIONAL, SBYTE,
    // SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE).
    let sizes: [Int: Int] = [1: 1, 3: 2, 4: 4, 5: 8, 6: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8]
    func signed(_ v: Int, _ bits: Int) -> Int { v >= 1 << (bits - 1) ? v - (1 << bits) : v }
    var found: Int? = nil
    for i in 0..<n {
        let e = ifd + 2 + 12 * i
        guard let tag = u16(e), let type = u16(e + 2), let count = u32(e + 4) else { break }
        guard tag == 0x0112, count >= 1, let size = sizes[type] else { continue }
        var at = e + 8
        if size * count > 4 {
            guard let off = u32(e + 8), off + size * count <= t.count else { continue }
            at = off
        }
        guard at + size <= t.count else { continue }
        // Pillow compares the value with the keys 2...8, so a rational or float that
        // equals an integer counts; anything else is no orientation.
        var v: Int? = nil
        switch type {
        case 1: v = Int(t[at])
        case 6: v = signed(Int(t[at]), 8)
        case 3: v = u16(at)
        case 8: v = u16(at).map { signed($0, 16) }
        case 4: v = u32(at)
        case 9: v = u32(at).map { signed($0, 32) }
        case 5, 10:
            if var num = u32(at), var den = u32(at + 4) {
                if type == 10 { num = signed(num, 32); den = signed(den, 32) }
                if den != 0 && num % den == 0 { v = num / den }
            }
        case 11:
            if let bitsV = u32(at) { let f = Float(bitPattern: UInt32(bitsV)); if f.rounded() == f && abs(f) < 1e9 { v = Int(f) } }
        default:
            if let hi = u32(little ? at + 4 : at), let lo = u32(little ? at : at + 4) {
                let d = Double(bitPattern: UInt64(hi) << 32 | UInt64(lo))
                if d.rounded() == d && abs(d) < 1e9 { v = Int(d) }
            }
        }
        found = v
    }
    return found
}

/// The digit after `tiff:Orientation="` or `tiff:Orientation>` in an XMP packet.
func xmpOrientation(_ x: [UInt8]) -> Int? {
    let key = Array("tiff:Orientation".utf8)
    guard x.count > key.count + 1 else { return nil }
    var i = 0
    while i + key.count + 1 < x.count {
        if x[i] == key[0] && Array(x[i..<(i + key.count)]) == key {
            var j = i + key.count
            if x[j] == UInt8(ascii: "=") && x[j + 1] == UInt8(ascii: "\"") { j += 2 } else if x[j] == UInt8(ascii: ">") { j += 1 } else { i += 1; continue }
            if j < x.count, (0x30...0x39).contains(x[j]) { return Int(x[j] - 0x30) }
        }
        i += 1
    }
    return nil
}

extension Image {
    /// The image turned upright for EXIF orientation `exifOrientation` (1...8, see the
    /// table in EXIF.swift; other values return the image unchanged), as Pillow's
    /// `ImageOps.exif_transpose`: 2 mirrors left-right, 3 rotates 180 degrees, 4 flips
    /// top-bottom, 5 transposes (swaps x and y), 6 rotates 90 degrees clockwise, 7
    /// transverses (transpose + rotate 180), 8 rotates 90 degrees counter-clockwise.
    /// 5-8 swap width and height. `samples16`, when present, is transformed alike.
    public func transposed(exifOrientation o: Int) -> Image {
        guard (2...8).contains(o) else { return self }
        let w = width, h = height, ch = channels
        let swap = o >= 5
        let ow = swap ? h : w, oh = swap ? w : h
        // Source pixel of output (x, y), per orientation.
        @inline(__always) func source(_ x: Int, _ y: Int) -> Int {
            switch o {
            case 2: return y * w + (w - 1 - x)
            case 3: return (h - 1 - y) * w + (w - 1 - x)
            case 4: return (h - 1 - y) * w + x
            case 5: return x * w + y
            case 6: return (h - 1 - x) * w + y
            case 7: return (h - 1 - x) * w + (w - 1 - y)
            default: return x * w + (w - 1 - y)
            }
        }
        func remap<T>(_ src: [T], _ zero: T) -> [T] {
            var out = [T](repeating: zero, count: src.count)
            src.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { d in
                    for y in 0..<oh {
                        for x in 0..<ow {
                            let si = source(x, y) * ch, di = (y * ow + x) * ch
                            for c in 0..<ch { d[di + c] = s[si + c] }
                        }
                    }
                }
            }
            return out
        }
        return Image(width: ow, height: oh, channels: ch, pixels: remap(pixels, 0), samples16: samples16.map { remap($0, 0) })
    }
}
