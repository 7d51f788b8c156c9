// zlib / DEFLATE decompression (RFC 1950, RFC 1951), written for untrusted input.
//
// Handles stored, fixed-Huffman and dynamic-Huffman blocks; checks the zlib header
// (method 8, window <= 32 KiB, header checksum, no preset dictionary) and the Adler-32
// trailer. Huffman codes decode through a 10-bit lookup table with a canonical
// bit-by-bit fallback for longer codes. Every read is bounds checked; the output is capped
// (`maxOutput`), so a corrupt or hostile stream either throws `FCNError.invalidFormat` or
// returns at most `maxOutput` bytes; the work is linear in input plus output.

import FCNCore

/// zlib streams: `Zlib.decompress` (here) and `Zlib.compress` (Deflate.swift).
public enum Zlib {
    /// Decompresses a zlib stream, checking header and Adler-32. Throws
    /// `FCNError.invalidFormat` for corrupt or truncated data or output over `maxOutput` bytes.
    /// Bytes after the trailer are ignored.
    public static func decompress(_ bytes: [UInt8], maxOutput: Int = 1 << 30) throws -> [UInt8] {
        try bytes.withUnsafeBufferPointer { try decompress($0, maxOutput: maxOutput) }
    }

    static func decompress(_ p: UnsafeBufferPointer<UInt8>, maxOutput: Int, exactSize: Int? = nil) throws -> [UInt8] {
        guard p.count >= 2 else { throw FCNError.invalidFormat("zlib: stream of \(p.count) bytes is too short for the header") }
        let cmf = Int(p[0]), flg = Int(p[1])
        guard cmf & 0x0F == 8, cmf >> 4 <= 7 else { throw FCNError.invalidFormat("zlib: compression method \(cmf & 15) / window \(cmf >> 4) is not deflate with <= 32 KiB window") }
        guard (cmf * 256 + flg) % 31 == 0 else { throw FCNError.invalidFormat("zlib: header checksum is wrong") }
        guard flg & 0x20 == 0 else { throw FCNError.unsupported("zlib: preset dictionaries are not supported") }
        var reader = BitReaderLSB(p, start: 2)
        let out = try inflate(&reader, maxOutput: maxOutput, initialCapacity: exactSize ?? 0)
        let end = reader.bytePositionAfterAlign()
        guard end + 4 <= p.count else { throw FCNError.invalidFormat("zlib: stream is truncated before the Adler-32 trailer") }
        let stored = UInt32(p[end]) << 24 | UInt32(p[end + 1]) << 16 | UInt32(p[end + 2]) << 8 | UInt32(p[end + 3])
        let actual = adler32(out)
        guard stored == actual else { throw FCNError.invalidFormat("zlib: Adler-32 mismatch (stored \(stored), computed \(actual))") }
        return out
    }

    /// Decompresses raw DEFLATE data (no zlib header or trailer).
    public static func inflateRaw(_ bytes: [UInt8], maxOutput: Int = 1 << 30) throws -> [UInt8] {
        try bytes.withUnsafeBufferPointer { p in
            var reader = BitReaderLSB(p, start: 0)
            return try inflate(&reader, maxOutput: maxOutput, initialCapacity: 0)
        }
    }
}

// MARK: - Bit reader (least significant bit first)

struct BitReaderLSB {
    let p: UnsafeBufferPointer<UInt8>
    var pos: Int
    var buf: UInt64 = 0
    var count = 0

    init(_ p: UnsafeBufferPointer<UInt8>, start: Int) { self.p = p; self.pos = start }

    /// Tops the buffer up to >= 56 bits if the input allows.
    @inline(__always) mutating func refill() {
        while count <= 56 && pos < p.count {
            buf |= UInt64(p[pos]) << UInt64(count); pos += 1; count += 8
        }
    }

    /// Reads `n` (0...32) bits; throws if the input ends.
    @inline(__always) mutating func bits(_ n: Int) throws -> Int {
        if count < n { refill(); if count < n { throw FCNError.invalidFormat("deflate: data is truncated") } }
        let v = Int(buf & ((1 << UInt64(n)) - 1))
        buf >>= UInt64(n); count -= n
        return v
    }

    /// Drops bits up to the next byte boundary and returns the position of the next unread byte.
    mutating func bytePositionAfterAlign() -> Int {
        let drop = count % 8
        buf >>= UInt64(drop); count -= drop
        return pos - count / 8
    }
}

// MARK: - Huffman decoding table

struct InflateHuffman {
    static let fastBits = 10
    /// Entry: symbol << 4 | length, 0 = code longer than fastBits (or unassigned).
    var fast: [UInt32]
    var counts: [Int]      // codes per length 0...15
    var symbols: [Int]     // symbols ordered by (length, value)

    /// Builds the canonical code for `lengths` (0 = unused). Throws if over-subscribed.
    init(lengths: [Int]) throws {
        counts = [Int](repeating: 0, count: 16)
        for l in lengths { counts[l] += 1 }
        counts[0] = 0
        var left = 1
        for len in 1...15 {
            left <<= 1; left -= counts[len]
            if left < 0 { throw FCNError.invalidFormat("deflate: over-subscribed Huffman code") }
        }
        var offs = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offs[len + 1] = offs[len] + counts[len] }
        symbols = [Int](repeating: 0, count: max(1, offs[15] + counts[15]))
        var nextCode = [Int](repeating: 0, count: 16)
        var code = 0   // canonical first code per length
        for len in 1...15 { nextCode[len] = code; code = (code + counts[len]) << 1 }
        fast = [UInt32](repeating: 0, count: 1 << InflateHuffman.fastBits)
        for (sym, len) in lengths.enumerated() where len > 0 {
            symbols[offs[len]] = sym; offs[len] += 1
            let c = nextCode[len]; nextCode[len] += 1
            guard len <= InflateHuffman.fastBits else { continue }
            var rev = 0
            for i in 0..<len { rev |= ((c >> i) & 1) << (len - 1 - i) }
            var j = rev
            while j < (1 << InflateHuffman.fastBits) { fast[j] = UInt32(sym << 4 | len); j += 1 << len }
        }
    }

    /// Decodes one symbol.
    @inline(__always) func decode(_ r: inout BitReaderLSB) throws -> Int {
        if r.count < 15 { r.refill() }
        let e = fast[Int(r.buf & UInt64((1 << InflateHuffman.fastBits) - 1))]
        if e != 0 {
            let len = Int(e & 15)
            guard len <= r.count else { throw FCNError.invalidFormat("deflate: data is truncated") }
            r.buf >>= UInt64(len); r.count -= len
            return Int(e >> 4)
        }
        // Canonical decoding one bit at a time (codes longer than fastBits).
        var code = 0, first = 0, index = 0
        for len in 1...15 {
            guard len <= r.count else { throw FCNError.invalidFormat("deflate: data is truncated") }
            code |= Int((r.buf >> UInt64(len - 1)) & 1)
            let n = counts[len]
            if code - first < n {
                r.buf >>= UInt64(len); r.count -= len
                return symbols[index + code - first]
            }
            index += n; first = (first + n) << 1; code <<= 1
        }
        throw FCNError.invalidFormat("deflate: invalid Huffman code")
    }
}

let deflateLengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
let deflateLengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
let deflateDistBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
let deflateDistExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
let deflateCodeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

private let fixedTables: (InflateHuffman, InflateHuffman) = {
    var l = [Int](repeating: 8, count: 288)
    for i in 144..<256 { l[i] = 9 }
    for i in 256..<280 { l[i] = 7 }
    return (try! InflateHuffman(lengths: l), try! InflateHuffman(lengths: [Int](repeating: 5, count: 30)))
}()

/// Growable output with a hard cap.
private struct OutBuffer {
    var bytes: [UInt8]
    var n = 0
    let cap: Int
    init(capacity: Int, cap: Int) {
        self.cap = cap
        bytes = [UInt8](repeating: 0, count: min(cap, max(capacity, 1024)))
    }
    @inline(__always) mutating func ensure(_ extra: Int) throws {
        let need = n + extra
        if need <= bytes.count { return }
        guard need <= cap else { throw FCNError.invalidFormat("deflate: output exceeds the limit of \(cap) bytes") }
        let newCount = min(cap, max(need, bytes.count * 2))
        bytes.append(contentsOf: repeatElement(0, count: newCount - bytes.count))
    }
}

/// Inflates DEFLATE blocks until the final one.
func inflate(_ r: inout BitReaderLSB, maxOutput: Int, initialCapacity: Int) throws -> [UInt8] {
    var out = OutBuffer(capacity: initialCapacity, cap: maxOutput)
    var final = false
    while !final {
        final = try r.bits(1) == 1
        let type = try r.bits(2)
        switch type {
        case 0:
            _ = r.bytePositionAfterAlign()
            let len = try r.bits(16), nlen = try r.bits(16)
            guard len == (~nlen & 0xFFFF) else { throw FCNError.invalidFormat("deflate: stored block length check failed") }
            // Return buffered whole bytes to the input, then copy directly.
            r.pos -= r.count / 8; r.buf = 0; r.count = 0
            guard r.pos + len <= r.p.count else { throw FCNError.invalidFormat("deflate: stored block is truncated") }
            try out.ensure(len)
            for i in 0..<len { out.bytes[out.n + i] = r.p[r.pos + i] }
            out.n += len; r.pos += len
        case 1:
            try inflateBlock(&r, &out, fixedTables.0, fixedTables.1)
        case 2:
            let hlit = try r.bits(5) + 257, hdist = try r.bits(5) + 1, hclen = try r.bits(4) + 4
            guard hlit <= 286, hdist <= 30 else { throw FCNError.invalidFormat("deflate: \(hlit) literal/length or \(hdist) distance codes (max 286/30)") }
            var clLengths = [Int](repeating: 0, count: 19)
            for i in 0..<hclen { clLengths[deflateCodeLengthOrder[i]] = try r.bits(3) }
            let clCode = try InflateHuffman(lengths: clLengths)
            var lengths = [Int](repeating: 0, count: hlit + hdist)
            var i = 0
            while i < hlit + hdist {
                let sym = try clCode.decode(&r)
                if sym < 16 { lengths[i] = sym; i += 1; continue }
                var rep = 0, val = 0
                switch sym {
                case 16:
                    guard i > 0 else { throw FCNError.invalidFormat("deflate: repeat code with no previous length") }
                    val = lengths[i - 1]; rep = 3 + (try r.bits(2))
                case 17: rep = 3 + (try r.bits(3))
                default: rep = 11 + (try r.bits(7))
                }
                guard i + rep <= hlit + hdist else { throw FCNError.invalidFormat("deflate: code lengths overflow the table") }
                for _ in 0..<rep { lengths[i] = val; i += 1 }
            }
            guard lengths[256] > 0 else { throw FCNError.invalidFormat("deflate: no end-of-block code") }
            let lit = try InflateHuffman(lengths: Array(lengths[0..<hlit]))
            let dist = try InflateHuffman(lengths: Array(lengths[hlit...]))
            try inflateBlock(&r, &out, lit, dist)
        default:
            throw FCNError.invalidFormat("deflate: invalid block type 3")
        }
    }
    var result = out.bytes
    result.removeLast(result.count - out.n)
    return result
}

private func inflateBlock(_ r: inout BitReaderLSB, _ out: inout OutBuffer, _ lit: InflateHuffman, _ dist: InflateHuffman) throws {
    while true {
        let sym = try lit.decode(&r)
        if sym < 256 {
            try out.ensure(1)
            out.bytes[out.n] = UInt8(sym); out.n += 1
            continue
        }
        if sym == 256 { return }
        let li = sym - 257
        guard li < 29 else { throw FCNError.invalidFormat("deflate: invalid length symbol \(sym)") }
        let len = deflateLengthBase[li] + (try r.bits(deflateLengthExtra[li]))
        let ds = try dist.decode(&r)
        guard ds < 30 else { throw FCNError.invalidFormat("deflate: invalid distance symbol \(ds)") }
        let d = deflateDistBase[ds] + (try r.bits(deflateDistExtra[ds]))
        guard d <= out.n else { throw FCNError.invalidFormat("deflate: distance \(d) reaches before the start of the output") }
        try out.ensure(len)
        out.bytes.withUnsafeMutableBufferPointer { b in
            var s = out.n - d, t = out.n
            for _ in 0..<len { b[t] = b[s]; t += 1; s += 1 }
        }
        out.n += len
    }
}
