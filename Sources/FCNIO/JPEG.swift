// JPEG decoding (ITU T.81), made to match libjpeg(-turbo) as Pillow uses it.
//
// Supported: SOF0 (baseline), SOF1 (extended sequential) and SOF2 (progressive), 8-bit
// Huffman-coded; 1 component (gray), 3 (YCbCr, or RGB when the markers say so, as libjpeg
// decides: a JFIF APP0 means YCbCr, else an Adobe APP14 transform 0 means RGB, else the
// component ids 'R','G','B') or 4 (CMYK, or YCCK when an Adobe APP14 has transform != 0);
// sampling factors 1...4 with integer ratios, interleaved and non-interleaved scans, DHT,
// DQT (8- and 16-bit), DRI with RSTn markers; other APPn, COM and unknown markers are
// skipped. Progressive scans (JPEG+Progressive.swift): spectral selection and successive
// approximation (DC first / refine, AC first / refine with EOB runs), with restarts.
// Pixels (JPEG+IDCT.swift, JPEG+Color.swift): libjpeg's accurate integer IDCT (jidctint
// "islow"), "fancy" triangle upsampling for 2x1, 2x2 and 1x2 chroma (replication for other
// ratios), JFIF YCbCr->RGB with libjpeg's fixed-point tables; CMYK/YCCK come out as RGB the
// way Pillow's `Image.open(f).convert("RGB")` makes them (see JPEG+Color.swift). So the
// output equals Pillow's: 0 difference on every committed fixture (synthetic and real
// photos, quality 50-100, 4:4:4 / 4:2:2 / 4:2:0, odd sizes, restarts, progressive, CMYK,
// YCCK, EXIF orientations). Known differences: images 1-2 pixels wide with subsampled
// chroma may differ at the last column, where libjpeg reads the block padding; progressive
// files whose scans leave one of the first coefficients of a component unrefined (not
// produced by libjpeg's or Pillow's scan scripts) miss libjpeg's inter-block smoothing.
// EXIF orientation (EXIF.swift): applied by default like `PIL.ImageOps.exif_transpose`.
// Unsupported (`FCNError.unsupported`): lossless, hierarchical, arithmetic coding (SOF9-15,
// DAC), 12-bit samples, 2 components, DNL (height 0), more than `maxScans` scans.
// Robustness: every read is bounds checked; entropy data that ends (or hits a marker)
// before the image is complete throws `invalidFormat` (libjpeg would pad with zeros), so the
// work is bounded by the input size: at SOF the block count is checked against the bytes
// left (every block costs >= 2 bits in a sequential scan, >= 1 in a progressive DC scan,
// and every component of a progressive image must get a DC scan), and the memory the
// image needs (`JPEGDecoder.memoryEstimate`) against `maxBytes`, before any allocation.
import FCNCore
import Foundation

/// JPEG decoder (baseline, extended sequential and progressive; gray, YCbCr/RGB, CMYK/YCCK).
public enum JPEG {
    /// Most scans a file may have (libjpeg's scripts use at most 14; each scan revisits
    /// every block of its components, so a cap bounds the work a small file can ask for).
    public static let maxScans = 500

    /// Decodes a JPEG into a 1-channel (gray) or 3-channel (RGB; CMYK and YCCK are converted
    /// as Pillow's `convert("RGB")` does) `Image`.
    /// - Parameters:
    ///   - applyOrientation: apply the EXIF orientation (APP1 tag 0x0112, or the XMP
    ///     `tiff:Orientation` when EXIF has none) the way `PIL.ImageOps.exif_transpose`
    ///     does, so the image comes out upright (orientations 5-8 swap width and height).
    ///     Pass false to get the pixels as stored; `exifOrientation(_:)` then tells the value.
    ///   - maxBytes: the most memory the decoder may allocate for this image (coefficients,
    ///     component planes, output and the rotated copy); a larger image throws
    ///     `FCNError.unsupported` naming the bytes it needs, before anything is allocated.
    public static func decode(_ bytes: [UInt8], applyOrientation: Bool = true,
                              maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        try bytes.withUnsafeBufferPointer { p in
            var d = JPEGDecoder(p)
            d.applyOrientation = applyOrientation
            d.maxBytes = maxBytes
            return try d.run()
        }
    }
    /// Decodes from `Data` (see `decode(_:applyOrientation:maxBytes:)`).
    public static func decode(_ data: Data, applyOrientation: Bool = true,
                              maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        try decode([UInt8](data), applyOrientation: applyOrientation, maxBytes: maxBytes)
    }
    /// Reads and decodes the file at `path` (see `decode(_:applyOrientation:maxBytes:)`).
    public static func read(path: String, applyOrientation: Bool = true,
                            maxBytes: Int = defaultMaxDecodeBytes) throws -> Image {
        try decode(readFileBytes(path), applyOrientation: applyOrientation, maxBytes: maxBytes)
    }
}

/// Natural (row-major) index of the k-th zigzag coefficient.
let jpegZigzag: [Int] = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
                         35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]

/// A Huffman table in libjpeg's form: 9-bit lookup plus maxcode/valptr for longer codes.
struct JPEGHuffman {
    var lookup = [UInt16](repeating: 0, count: 512)   // len << 8 | symbol, 0 = longer than 9 bits
    var maxcode = [Int](repeating: -1, count: 18)
    var valptr = [Int](repeating: 0, count: 17)
    var mincode = [Int](repeating: 0, count: 17)
    var values: [UInt8] = []

    /// A table with no codes (every lookup fails), for scans that use none.
    static let empty = try! JPEGHuffman(counts: [Int](repeating: 0, count: 16), values: [])

    init(counts: [Int], values: [UInt8]) throws {
        self.values = values
        var code = 0, k = 0
        for len in 1...16 {
            let n = counts[len - 1]
            if n > 0 {
                valptr[len] = k; mincode[len] = code
                for _ in 0..<n {
                    guard code < (1 << len) else { throw FCNError.invalidFormat("JPEG: bad Huffman table (over-subscribed)") }
                    if len <= 9 {
                        let base = code << (9 - len)
                        for j in 0..<(1 << (9 - len)) { lookup[base + j] = UInt16(len << 8) | UInt16(values[k]) }
                    }
                    code += 1; k += 1
                }
                maxcode[len] = code - 1
            }
            code <<= 1
        }
    }
}

/// One image component. Its samples live in `plane` (`stride` x `planeHeight`, the MCU
/// grid rounded up to whole blocks); a progressive image also keeps every block's
/// coefficients until the last scan (`JPEGDecoder.coefs`).
struct JPEGComponent {
    var id = 0, h = 1, v = 1, tq = 0
    var dcTable = 0, acTable = 0, pred = 0
    var plane: [UInt8] = []
    var stride = 0, planeHeight = 0
    /// Blocks covering the component's own samples, ceil(ceil(width * h / hmax) / 8) by the
    /// same for height: what a non-interleaved scan codes (the MCU grid may have more).
    var blocksW = 0, blocksH = 0
    /// Progressive: the quantization table as it was at the component's first scan
    /// (libjpeg latches it then), natural order.
    var quant: [Int] = []
    /// Progressive: per zigzag coefficient, the Al of the last scan that coded it, or -1
    /// if none did yet (libjpeg's coef_bits), to check the scan order.
    var coefBits = [Int](repeating: -1, count: 64)
}

/// Coefficients of one component of a progressive image: 64 Int16 per block in zigzag
/// order, blocks row-major over the plane's block grid (`stride / 8` per row). A class so
/// that the scan loops can write through a stable pointer while the decoder mutates.
final class JPEGCoefficientBuffer {
    let blocksPerRow: Int, rows: Int
    let base: UnsafeMutablePointer<Int16>
    init(blocksPerRow: Int, rows: Int) {
        self.blocksPerRow = blocksPerRow; self.rows = rows
        base = .allocate(capacity: blocksPerRow * rows * 64)
        base.initialize(repeating: 0, count: blocksPerRow * rows * 64)
    }
    deinit { base.deallocate() }
    @inline(__always) func block(_ bx: Int, _ by: Int) -> UnsafeMutablePointer<Int16> { base + (by * blocksPerRow + bx) * 64 }
}

struct JPEGDecoder {
    let p: UnsafeBufferPointer<UInt8>
    var pos = 0
    var quant = [[Int]](repeating: [], count: 4)
    var dc = [JPEGHuffman?](repeating: nil, count: 4)
    var ac = [JPEGHuffman?](repeating: nil, count: 4)
    var comps: [JPEGComponent] = []
    var width = 0, height = 0, hmax = 1, vmax = 1, mcusX = 0, mcusY = 0
    var restartInterval = 0
    var progressive = false
    var coefs: [JPEGCoefficientBuffer] = []
    var eobrun = 0
    var scans = 0
    // Markers seen before the first scan (as libjpeg and Pillow read them).
    var adobeTransform: Int? = nil
    var sawJFIF = false
    var exif: [UInt8]? = nil, xmp: [UInt8]? = nil
    var sawFrame = false, sawScan = false
    // Caller's options.
    var applyOrientation = true
    var maxBytes = defaultMaxDecodeBytes

    // Entropy bit reader state (MSB first).
    var buf: UInt64 = 0
    var count = 0
    var padded = 0
    var hitMarker = false

    init(_ p: UnsafeBufferPointer<UInt8>) { self.p = p }

    func fail(_ m: String) -> FCNError { .invalidFormat("JPEG: " + m) }

    mutating func u16() throws -> Int {
        guard pos + 2 <= p.count else { throw fail("truncated at byte \(pos)") }
        defer { pos += 2 }
        return Int(p[pos]) << 8 | Int(p[pos + 1])
    }

    /// Parses the markers and scans, then builds the image (colour, orientation).
    mutating func run() throws -> Image {
        guard p.count >= 2, p[0] == 0xFF, p[1] == 0xD8 else { throw fail("missing SOI marker") }
        pos = 2
        markers: while true {
            // Find the next marker (skipping fill bytes; stray data bytes are an error).
            guard pos < p.count else {
                if sawScan { break markers }
                throw fail("truncated before the image data")
            }
            guard p[pos] == 0xFF else { throw fail("expected a marker at byte \(pos), found 0x\(String(p[pos], radix: 16))") }
            while pos < p.count && p[pos] == 0xFF { pos += 1 }
            guard pos < p.count else { throw fail("truncated in a marker") }
            let m = Int(p[pos]); pos += 1
            switch m {
            case 0xD9: break markers                                   // EOI
            case 0xD0...0xD7, 0x01: continue                            // stray RSTn, TEM: no length
            case 0xC0, 0xC1, 0xC2: try readFrame(progressive: m == 0xC2)
            case 0xC3, 0xC5, 0xC6, 0xC7: throw FCNError.unsupported("JPEG: lossless/hierarchical JPEG (SOF\(m - 0xC0)) is not supported")
            case 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
                throw FCNError.unsupported("JPEG: arithmetic-coded JPEG (SOF\(m - 0xC0)) is not supported; re-save with Huffman coding")
            case 0xCC: throw FCNError.unsupported("JPEG: arithmetic coding (DAC) is not supported; re-save with Huffman coding")
            case 0xC4: try readHuffmanTables()
            case 0xDB: try readQuantTables()
            case 0xDD:
                let len = try u16()
                guard len == 4 else { throw fail("DRI length \(len) != 4") }
                restartInterval = try u16()
            case 0xDA: try readScan()
            case 0xDC: throw FCNError.unsupported("JPEG: DNL marker (height defined after the scan) is not supported")
            default:
                let start = pos
                let len = try u16()
                guard len >= 2, start + len <= p.count else { throw fail("segment 0x\(String(m, radix: 16)) of length \(len) runs past the end (truncated?)") }
                if !sawScan { readApp(m, UnsafeBufferPointer(rebasing: p[(start + 2)..<(start + len)])) }
                pos = start + len
            }
        }
        guard sawFrame else { throw fail("no SOF0/SOF1/SOF2 frame header") }
        guard sawScan else { throw fail("no scan (SOS) found") }
        if progressive { try finishProgressive() }
        return try makeImage()
    }

    /// Remembers the APPn data that decides colours and orientation (as libjpeg's
    /// examine_app0/app14 and Pillow's APP handler do): JFIF (APP0), Adobe transform
    /// (APP14), EXIF (APP1 "Exif\0\0"; later ones are appended without their 6-byte header,
    /// as Pillow does) and XMP (APP1 "http://ns.adobe.com/xap/1.0/\0"; the last one wins).
    mutating func readApp(_ m: Int, _ s: UnsafeBufferPointer<UInt8>) {
        func starts(_ tag: String) -> Bool { let t = Array(tag.utf8); return s.count >= t.count && Array(s[0..<t.count]) == t }
        switch m {
        case 0xE0: if s.count >= 14 && starts("JFIF\0") { sawJFIF = true }
        case 0xEE: if s.count >= 12 && starts("Adobe") { adobeTransform = Int(s[11]) }
        case 0xE1:
            if starts("Exif\0\0") {
                if exif == nil { exif = Array(s) } else { exif! += s.dropFirst(6) }
            } else if starts("http://ns.adobe.com/xap/1.0/\0") {
                xmp = Array(s.dropFirst(29))
            }
        default: break
        }
    }

    mutating func readFrame(progressive prog: Bool) throws {
        guard !sawFrame else { throw fail("more than one frame header") }
        let start = pos
        let len = try u16()
        guard len >= 8, start + len <= p.count else { throw fail("SOF segment is truncated") }
        let precision = Int(p[pos])
        guard precision == 8 else { throw FCNError.unsupported("JPEG: \(precision)-bit samples are not supported (8 only)") }
        height = Int(p[pos + 1]) << 8 | Int(p[pos + 2])
        width = Int(p[pos + 3]) << 8 | Int(p[pos + 4])
        let n = Int(p[pos + 5])
        pos += 6
        guard height > 0 else { throw FCNError.unsupported("JPEG: height 0 (DNL) is not supported") }
        try checkImageSize(width, height, "JPEG")
        guard n == 1 || n == 3 || n == 4 else {
            throw FCNError.unsupported("JPEG: \(n) components (only gray, YCbCr/RGB and CMYK/YCCK are supported)")
        }
        guard len == 8 + 3 * n else { throw fail("SOF length \(len) does not match \(n) components") }
        for _ in 0..<n {
            var c = JPEGComponent()
            c.id = Int(p[pos]); c.h = Int(p[pos + 1] >> 4); c.v = Int(p[pos + 1] & 15); c.tq = Int(p[pos + 2])
            pos += 3
            guard (1...4).contains(c.h), (1...4).contains(c.v), c.tq <= 3 else {
                throw fail("component \(c.id) has sampling \(c.h)x\(c.v) or table \(c.tq) out of range")
            }
            comps.append(c)
        }
        hmax = comps.map(\.h).max()!; vmax = comps.map(\.v).max()!
        for c in comps where hmax % c.h != 0 || vmax % c.v != 0 {
            throw FCNError.unsupported("JPEG: fractional sampling ratio (component \(c.id) \(c.h)x\(c.v) of \(hmax)x\(vmax))")
        }
        mcusX = (width + 8 * hmax - 1) / (8 * hmax)
        mcusY = (height + 8 * vmax - 1) / (8 * vmax)
        progressive = prog
        // Refuse headers the file cannot fill: every block costs >= 2 bits of a sequential
        // scan, >= 1 bit of a progressive DC scan (each component must get one).
        var blocks = 0
        for i in comps.indices {
            comps[i].blocksW = ((width * comps[i].h + hmax - 1) / hmax + 7) / 8
            comps[i].blocksH = ((height * comps[i].v + vmax - 1) / vmax + 7) / 8
            comps[i].stride = mcusX * comps[i].h * 8
            comps[i].planeHeight = mcusY * comps[i].v * 8
            blocks += comps[i].blocksW * comps[i].blocksH
        }
        let bitsPerBlock = prog ? 1 : 2
        guard blocks <= (8 / bitsPerBlock) * (p.count - pos) + 64 else {
            throw fail("\(width)x\(height) needs \(blocks) blocks but only \(p.count - pos) bytes follow (truncated?)")
        }
        try checkMemory(orientation: currentOrientation())
        for i in comps.indices {
            comps[i].plane = [UInt8](repeating: 128, count: comps[i].stride * comps[i].planeHeight)
            if prog { coefs.append(JPEGCoefficientBuffer(blocksPerRow: comps[i].stride / 8, rows: comps[i].planeHeight / 8)) }
        }
        sawFrame = true
    }

    mutating func readHuffmanTables() throws {
        let start = pos
        let len = try u16()
        let end = start + len
        guard len >= 2, end <= p.count else { throw fail("DHT segment is truncated") }
        while pos < end {
            guard pos + 17 <= end else { throw fail("DHT table header is truncated") }
            let tc = Int(p[pos] >> 4), th = Int(p[pos] & 15)
            guard tc <= 1, th <= 3 else { throw fail("DHT class \(tc) / id \(th) out of range") }
            let counts = (0..<16).map { Int(p[pos + 1 + $0]) }
            let total = counts.reduce(0, +)
            pos += 17
            guard total <= 256, pos + total <= end else { throw fail("DHT has \(total) symbols, more than the segment holds") }
            let table = try JPEGHuffman(counts: counts, values: Array(p[pos..<(pos + total)]))
            pos += total
            if tc == 0 { dc[th] = table } else { ac[th] = table }
        }
    }

    mutating func readQuantTables() throws {
        let start = pos
        let len = try u16()
        let end = start + len
        guard len >= 2, end <= p.count else { throw fail("DQT segment is truncated") }
        while pos < end {
            let pq = Int(p[pos] >> 4), tq = Int(p[pos] & 15)
            guard pq <= 1, tq <= 3 else { throw fail("DQT precision \(pq) / id \(tq) out of range") }
            let size = pq == 0 ? 64 : 128
            guard pos + 1 + size <= end else { throw fail("DQT table is truncated") }
            var q = [Int](repeating: 0, count: 64)
            for k in 0..<64 {
                q[jpegZigzag[k]] = pq == 0 ? Int(p[pos + 1 + k]) : Int(p[pos + 1 + 2 * k]) << 8 | Int(p[pos + 2 + 2 * k])
            }
            quant[tq] = q
            pos += 1 + size
        }
    }

    // MARK: Scan

    mutating func readScan() throws {
        guard sawFrame else { throw fail("SOS before the frame header") }
        scans += 1
        guard scans <= JPEG.maxScans else { throw FCNError.unsupported("JPEG: more than \(JPEG.maxScans) scans") }
        let start = pos
        let len = try u16()
        guard len >= 3, start + len <= p.count else { throw fail("SOS segment is truncated") }
        let ns = Int(p[pos])
        guard (1...4).contains(ns), len == 6 + 2 * ns else { throw fail("SOS with \(ns) components and length \(len)") }
        let ss = Int(p[pos + 1 + 2 * ns]), se = Int(p[pos + 2 + 2 * ns])
        let ah = Int(p[pos + 3 + 2 * ns] >> 4), al = Int(p[pos + 3 + 2 * ns] & 15)
        // Which tables the scan uses: sequential both; progressive DC first the DC table,
        // DC refinement none, AC scans the AC table.
        let needDC = !progressive || (ss == 0 && ah == 0), needAC = !progressive || ss > 0
        var idx: [Int] = []
        for i in 0..<ns {
            let cid = Int(p[pos + 1 + 2 * i]), t = Int(p[pos + 2 + 2 * i])
            guard let ci = comps.firstIndex(where: { $0.id == cid }), !idx.contains(ci) else { throw fail("SOS names unknown component \(cid)") }
            comps[ci].dcTable = t >> 4; comps[ci].acTable = t & 15
            guard comps[ci].dcTable <= 3, comps[ci].acTable <= 3,
                  !needDC || dc[comps[ci].dcTable] != nil, !needAC || ac[comps[ci].acTable] != nil else {
                throw fail("component \(cid) uses an undefined Huffman table")
            }
            guard !quant[comps[ci].tq].isEmpty || !comps[ci].quant.isEmpty else {
                throw fail("component \(cid) uses undefined quantization table \(comps[ci].tq)")
            }
            idx.append(ci)
        }
        pos = start + len
        if progressive {
            try startProgressiveScan(idx, ss: ss, se: se, ah: ah, al: al)
            try decodeProgressiveScan(idx, ss: ss, se: se, ah: ah, al: al)
        } else {
            guard ss == 0, se == 63, ah == 0, al == 0 else { throw fail("sequential scan with spectral selection \(ss)...\(se) / approximation \(ah),\(al)") }
            try decodeScan(idx)
        }
        sawScan = true
        // Skip to the marker that ends the entropy-coded data.
        while pos + 1 < p.count && !(p[pos] == 0xFF && p[pos + 1] != 0 && !(0xD0...0xD7).contains(p[pos + 1])) { pos += 1 }
        if pos + 1 >= p.count { pos = p.count }
    }

    mutating func resetBits() { buf = 0; count = 0; padded = 0; hitMarker = false }

    @inline(__always) mutating func refill() {
        while count <= 56 {
            if !hitMarker && pos < p.count {
                let b = p[pos]
                if b == 0xFF {
                    let next = pos + 1 < p.count ? p[pos + 1] : 0xD9
                    if next == 0x00 { pos += 2 } else if next == 0xFF { pos += 1; continue } else { hitMarker = true; continue }
                } else { pos += 1 }
                buf = buf << 8 | UInt64(b); count += 8
            } else {
                buf <<= 8; count += 8; padded += 8
            }
        }
    }

    @inline(__always) mutating func consume(_ n: Int) throws {
        count -= n
        if count < padded { throw fail("entropy-coded data ends before the image is complete (truncated?)") }
    }

    @inline(__always) mutating func bits(_ n: Int) throws -> Int {
        if n == 0 { return 0 }
        if count < n { refill() }
        let v = Int((buf >> UInt64(count - n)) & ((1 << UInt64(n)) - 1))
        try consume(n)
        return v
    }

    @inline(__always) mutating func decodeSymbol(_ t: JPEGHuffman) throws -> Int {
        if count < 16 { refill() }
        let look = Int((buf >> UInt64(count - 9)) & 0x1FF)
        let e = t.lookup[look]
        if e != 0 {
            try consume(Int(e >> 8))
            return Int(e & 0xFF)
        }
        var code = look
        for len in 10...16 {
            code = code << 1 | Int((buf >> UInt64(count - len)) & 1)
            if code <= t.maxcode[len] {
                let i = t.valptr[len] + code - t.mincode[len]
                guard i >= 0 && i < t.values.count else { break }
                try consume(len)
                return Int(t.values[i])
            }
        }
        throw fail("invalid Huffman code")
    }

    @inline(__always) func extend(_ v: Int, _ s: Int) -> Int { v < (1 << (s - 1)) ? v - (1 << s) + 1 : v }

    /// Decodes one block's coefficients (natural order, dequantized) into `coef`.
    mutating func decodeBlock(_ ci: Int, _ coef: UnsafeMutablePointer<Int32>, _ q: UnsafePointer<Int>) throws {
        for i in 0..<64 { coef[i] = 0 }
        let t = try decodeSymbol(dc[comps[ci].dcTable]!)
        guard t <= 15 else { throw fail("DC magnitude category \(t) > 15") }
        let diff = t == 0 ? 0 : extend(try bits(t), t)
        comps[ci].pred = Int(Int16(truncatingIfNeeded: comps[ci].pred + diff))   // JCOEF is 16-bit in libjpeg
        coef[0] = Int32(comps[ci].pred * q[0])
        let act = ac[comps[ci].acTable]!
        var k = 1
        while k < 64 {
            let rs = try decodeSymbol(act)
            let r = rs >> 4, s = rs & 15
            if s == 0 {
                if r == 15 { k += 16; continue }
                break
            }
            k += r
            guard k < 64 else { throw fail("AC coefficient index past 63") }
            let z = jpegZigzag[k]
            coef[z] = Int32(Int(Int16(truncatingIfNeeded: extend(try bits(s), s))) * q[z])
            k += 1
        }
    }

    /// A sequential scan: decodes every block of its components and writes its samples
    /// (IDCT) straight into the component planes.
    mutating func decodeScan(_ idx: [Int]) throws {
        resetBits()
        for ci in idx { comps[ci].pred = 0 }
        let coef = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
        defer { coef.deallocate() }
        let single = idx.count == 1
        let unitsX = single ? comps[idx[0]].blocksW : mcusX
        let unitsY = single ? comps[idx[0]].blocksH : mcusY
        let total = unitsX * unitsY
        var planes = idx.map { comps[$0].plane }
        for ci in idx { comps[ci].plane = [] }   // avoid copy-on-write while writing
        defer { for (k, ci) in idx.enumerated() { comps[ci].plane = planes[k] } }
        let quants = idx.map { quant[comps[$0].tq] }
        var restartsLeft = restartInterval
        for u in 0..<total {
            if restartInterval > 0 {
                if restartsLeft == 0 {
                    try processRestart()
                    for ci in idx { comps[ci].pred = 0 }
                    restartsLeft = restartInterval
                }
                restartsLeft -= 1
            }
            let my = u / unitsX, mx = u % unitsX
            for (k, ci) in idx.enumerated() {
                let c = comps[ci]
                let (bh, bv) = single ? (1, 1) : (c.h, c.v)
                for by in 0..<bv {
                    for bx in 0..<bh {
                        try quants[k].withUnsafeBufferPointer { q in try decodeBlock(ci, coef, q.baseAddress!) }
                        let x = (mx * bh + bx) * 8, y = (my * bv + by) * 8
                        planes[k].withUnsafeMutableBufferPointer { pl in
                            jpegIDCTIslow(coef, pl.baseAddress! + y * c.stride + x, c.stride)
                        }
                    }
                }
            }
        }
    }

    mutating func processRestart() throws {
        // Drop the bit buffer, then expect RSTn (skipping any bytes before the marker).
        buf = 0; count = 0; padded = 0
        if !hitMarker {
            while pos + 1 < p.count && !(p[pos] == 0xFF && p[pos + 1] != 0 && p[pos + 1] != 0xFF) { pos += 1 }
        } else {
            while pos + 1 < p.count && p[pos] == 0xFF && p[pos + 1] == 0xFF { pos += 1 }
        }
        hitMarker = false
        guard pos + 1 < p.count, p[pos] == 0xFF, (0xD0...0xD7).contains(p[pos + 1]) else {
            throw fail("expected a restart marker at byte \(pos)")
        }
        pos += 2
    }
}
