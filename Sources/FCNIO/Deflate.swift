// zlib / DEFLATE compression (RFC 1950, RFC 1951).
//
// LZ77 with a 32 KiB window: 3-byte hash heads and chains (chain length by level), one-step
// lazy matching, then per block of up to 16384 tokens the cheapest of three encodings:
// dynamic Huffman (code lengths limited to 15 / 7 bits by halving frequencies until the
// tree fits), fixed Huffman, or stored. Level 0 stores only. Output is standard and
// decodes with zlib / Pillow; `Zlib.decompress` round-trips it (tests).

import FCNCore

extension Zlib {
    /// Compresses `bytes` into a zlib stream (header, DEFLATE data, Adler-32).
    /// `level` 0 stores, 1...9 trade speed for size (hash chain length 4...1024; 6 = zlib's default).
    public static func compress(_ bytes: [UInt8], level: Int = 6) -> [UInt8] {
        fcnCheck((0...9).contains(level), "Zlib.compress", "level must be 0...9, got \(level)")
        var out: [UInt8] = [0x78, level <= 1 ? 0x01 : level <= 5 ? 0x5E : level == 6 ? 0x9C : 0xDA]
        out += deflateRaw(bytes, level: level)
        let a = adler32(bytes)
        out += [UInt8(a >> 24), UInt8((a >> 16) & 0xFF), UInt8((a >> 8) & 0xFF), UInt8(a & 0xFF)]
        return out
    }

    /// Compresses `bytes` into raw DEFLATE blocks (no zlib header or trailer).
    public static func deflateRaw(_ bytes: [UInt8], level: Int = 6) -> [UInt8] {
        fcnCheck((0...9).contains(level), "Zlib.deflateRaw", "level must be 0...9, got \(level)")
        var w = BitWriterLSB()
        if bytes.isEmpty {
            // One final fixed block with just the end-of-block code.
            w.write(1, 1); w.write(1, 2); w.write(0, 7)
            return w.finish()
        }
        if level == 0 {
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + 65535)
                writeStored(&w, bytes, start, end, final: end == bytes.count)
                start = end
            }
            return w.finish()
        }
        let chain = [0, 4, 8, 16, 32, 64, 128, 256, 512, 1024][level]
        let tokens = lz77(bytes, maxChain: chain)
        // Blocks of up to 16384 tokens.
        var t0 = 0, byte0 = 0
        while t0 < tokens.count {
            let t1 = min(tokens.count, t0 + 16384)
            var byte1 = byte0
            for t in t0..<t1 { byte1 += tokens[t] & 0x8000_0000 != 0 ? Int((tokens[t] >> 16) & 0x1FF) + 3 : 1 }
            writeBlock(&w, tokens[t0..<t1], bytes, byte0, byte1, final: t1 == tokens.count)
            t0 = t1; byte0 = byte1
        }
        return w.finish()
    }
}

// MARK: - Bit writer

struct BitWriterLSB {
    var out: [UInt8] = []
    var buf: UInt64 = 0
    var count = 0
    @inline(__always) mutating func write(_ value: Int, _ n: Int) {
        buf |= UInt64(value) << UInt64(count); count += n
        while count >= 8 { out.append(UInt8(buf & 0xFF)); buf >>= 8; count -= 8 }
    }
    mutating func alignToByte() { if count > 0 { write(0, 8 - count) } }
    mutating func finish() -> [UInt8] { alignToByte(); return out }
}

// MARK: - LZ77

/// Token: a literal byte (< 256), or 0x8000_0000 | (length - 3) << 16 | (distance - 1).
private func lz77(_ data: [UInt8], maxChain: Int) -> [UInt32] {
    let n = data.count
    var tokens: [UInt32] = []
    tokens.reserveCapacity(n / 2 + 16)
    let hashBits = 15, window = 32768
    var head = [Int32](repeating: -1, count: 1 << hashBits)
    var prev = [Int32](repeating: -1, count: window)
    data.withUnsafeBufferPointer { d in
        head.withUnsafeMutableBufferPointer { head in
            prev.withUnsafeMutableBufferPointer { prev in
                @inline(__always) func hash(_ i: Int) -> Int {
                    (Int(d[i]) << 10 ^ Int(d[i + 1]) << 5 ^ Int(d[i + 2])) & ((1 << hashBits) - 1)
                }
                @inline(__always) func insert(_ i: Int) {
                    guard i + 3 <= n else { return }
                    let h = hash(i)
                    prev[i & (window - 1)] = head[h]; head[h] = Int32(i)
                }
                @inline(__always) func longest(_ i: Int) -> (len: Int, dist: Int) {
                    guard i + 3 <= n else { return (0, 0) }
                    var cand = Int(head[hash(i)])
                    var bestLen = 2, bestDist = 0, steps = maxChain
                    let maxLen = min(258, n - i)
                    while cand >= 0 && i - cand <= window - 1 && steps > 0 {
                        if d[cand + bestLen] == d[i + bestLen] || bestLen >= maxLen {
                            var l = 0
                            while l < maxLen && d[cand + l] == d[i + l] { l += 1 }
                            if l > bestLen { bestLen = l; bestDist = i - cand; if l == maxLen { break } }
                        }
                        let p = Int(prev[cand & (window - 1)])
                        if p >= cand { break }
                        cand = p; steps -= 1
                    }
                    return bestDist > 0 ? (bestLen, bestDist) : (0, 0)
                }
                var i = 0
                var pending: (len: Int, dist: Int)? = nil   // match found at i - 1 (lazy evaluation)
                while i < n {
                    let m = longest(i)
                    insert(i)
                    if let p = pending {
                        if m.len > p.len {
                            tokens.append(UInt32(d[i - 1]))   // the previous byte as a literal; try the new match
                            pending = m
                            i += 1
                            continue
                        }
                        tokens.append(0x8000_0000 | UInt32(p.len - 3) << 16 | UInt32(p.dist - 1))
                        // Positions i ..< i - 1 + p.len: i is inserted already.
                        let end = i - 1 + p.len
                        var j = i + 1
                        while j < end { insert(j); j += 1 }
                        i = end
                        pending = nil
                        continue
                    }
                    if m.len >= 3 {
                        pending = m
                        i += 1
                    } else {
                        tokens.append(UInt32(d[i])); i += 1
                    }
                }
                if let p = pending {
                    tokens.append(0x8000_0000 | UInt32(p.len - 3) << 16 | UInt32(p.dist - 1))
                }
            }
        }
    }
    return tokens
}

// MARK: - Block encoding

private let lengthSymbol: [Int] = {
    var t = [Int](repeating: 0, count: 259)
    for len in 3...258 {
        var s = 28
        while deflateLengthBase[s] > len { s -= 1 }
        t[len] = s
    }
    return t
}()

@inline(__always) private func distSymbol(_ d: Int) -> Int {
    var s = 29
    while deflateDistBase[s] > d { s -= 1 }
    return s
}

/// Huffman code lengths for `freq`, no longer than `limit` (frequencies are halved until
/// the unrestricted tree fits). Unused symbols get 0; a single used symbol gets length 1.
func huffmanLengths(_ freq: [Int], limit: Int) -> [Int] {
    var f = freq
    while true {
        let lens = unlimitedHuffmanLengths(f)
        if (lens.max() ?? 0) <= limit { return lens }
        f = f.map { $0 == 0 ? 0 : ($0 + 1) / 2 }
    }
}

private func unlimitedHuffmanLengths(_ f: [Int]) -> [Int] {
    var lens = [Int](repeating: 0, count: f.count)
    let leaves = f.indices.filter { f[$0] > 0 }.sorted { (f[$0], $0) < (f[$1], $1) }
    let m = leaves.count
    if m == 0 { return lens }
    if m == 1 { lens[leaves[0]] = 1; return lens }
    var weight = leaves.map { f[$0] } + [Int](repeating: 0, count: m - 1)
    var parent = [Int](repeating: 0, count: 2 * m - 1)
    var li = 0, ni = m
    for k in 0..<(m - 1) {
        var pick = [0, 0]
        for t in 0..<2 {
            if li < m && (ni >= m + k || weight[li] <= weight[ni]) { pick[t] = li; li += 1 } else { pick[t] = ni; ni += 1 }
        }
        weight[m + k] = weight[pick[0]] + weight[pick[1]]
        parent[pick[0]] = m + k; parent[pick[1]] = m + k
    }
    var depth = [Int](repeating: 0, count: 2 * m - 1)
    for node in stride(from: 2 * m - 3, through: 0, by: -1) { depth[node] = depth[parent[node]] + 1 }
    for (i, s) in leaves.enumerated() { lens[s] = depth[i] }
    return lens
}

/// Canonical codes (bit-reversed for LSB-first output) for `lengths`.
private func canonicalCodes(_ lengths: [Int]) -> [Int] {
    var counts = [Int](repeating: 0, count: 16)
    for l in lengths where l > 0 { counts[l] += 1 }
    var next = [Int](repeating: 0, count: 16)
    var code = 0
    for len in 1...15 { next[len] = code; code = (code + counts[len]) << 1 }
    return lengths.map { len in
        guard len > 0 else { return 0 }
        let c = next[len]; next[len] += 1
        var rev = 0
        for i in 0..<len { rev |= ((c >> i) & 1) << (len - 1 - i) }
        return rev
    }
}

private let fixedLitLengths: [Int] = (0..<288).map { $0 < 144 ? 8 : $0 < 256 ? 9 : $0 < 280 ? 7 : 8 }

private func writeStored(_ w: inout BitWriterLSB, _ bytes: [UInt8], _ start: Int, _ end: Int, final: Bool) {
    w.write(final ? 1 : 0, 1); w.write(0, 2); w.alignToByte()
    let len = end - start
    w.write(len, 16); w.write(~len & 0xFFFF, 16)
    w.out.append(contentsOf: bytes[start..<end])
}

private func writeBlock(_ w: inout BitWriterLSB, _ tokens: ArraySlice<UInt32>, _ bytes: [UInt8], _ byte0: Int, _ byte1: Int, final: Bool) {
    var litFreq = [Int](repeating: 0, count: 286), distFreq = [Int](repeating: 0, count: 30)
    var extraBits = 0
    for t in tokens {
        if t & 0x8000_0000 == 0 { litFreq[Int(t)] += 1; continue }
        let ls = lengthSymbol[Int((t >> 16) & 0x1FF) + 3], ds = distSymbol(Int(t & 0xFFFF) + 1)
        litFreq[257 + ls] += 1; distFreq[ds] += 1
        extraBits += deflateLengthExtra[ls] + deflateDistExtra[ds]
    }
    litFreq[256] = 1
    // Keep both codes complete (>= 2 used symbols): every inflater accepts them.
    if litFreq.filter({ $0 > 0 }).count < 2 { litFreq[litFreq[0] > 0 ? 1 : 0] += 1 }
    while distFreq.filter({ $0 > 0 }).count < 2 { distFreq[distFreq[0] == 0 ? 0 : 1] += 1 }
    let litLen = huffmanLengths(litFreq, limit: 15), distLen = huffmanLengths(distFreq, limit: 15)

    // Dynamic header: run-length code the concatenated lengths.
    var hlit = 286; while hlit > 257 && litLen[hlit - 1] == 0 { hlit -= 1 }
    var hdist = 30; while hdist > 1 && distLen[hdist - 1] == 0 { hdist -= 1 }
    let all = Array(litLen[0..<hlit]) + Array(distLen[0..<hdist])
    var rle: [(sym: Int, extra: Int, bits: Int)] = []
    var i = 0
    while i < all.count {
        let v = all[i]
        var run = 1
        while i + run < all.count && all[i + run] == v { run += 1 }
        if v == 0 && run >= 3 {
            let r = min(run, 138)
            rle.append(r >= 11 ? (18, r - 11, 7) : (17, r - 3, 3)); i += r
        } else if v != 0 && run >= 4 {
            rle.append((v, 0, 0))
            let r = min(run - 1, 6)
            rle.append((16, r - 3, 2)); i += 1 + r
        } else {
            rle.append((v, 0, 0)); i += 1
        }
    }
    var clFreq = [Int](repeating: 0, count: 19)
    for e in rle { clFreq[e.sym] += 1 }
    if clFreq.filter({ $0 > 0 }).count < 2 { clFreq[clFreq[0] == 0 ? 0 : 1] += 1 }
    let clLen = huffmanLengths(clFreq, limit: 7)
    var hclen = 19; while hclen > 4 && clLen[deflateCodeLengthOrder[hclen - 1]] == 0 { hclen -= 1 }

    var dynBits = 14 + 3 * hclen
    for e in rle { dynBits += clLen[e.sym] + e.bits }
    var fixBits = 0
    for s in 0..<286 {
        dynBits += litFreq[s] * litLen[s]
        fixBits += litFreq[s] * fixedLitLengths[s]
    }
    for s in 0..<30 { dynBits += distFreq[s] * distLen[s]; fixBits += distFreq[s] * 5 }
    dynBits += extraBits; fixBits += extraBits
    let storedBits = (byte1 - byte0) * 8 + 40 * ((byte1 - byte0) / 65535 + 1) + 8

    if storedBits < min(dynBits, fixBits) {
        var s = byte0
        repeat {
            let e = min(byte1, s + 65535)
            writeStored(&w, bytes, s, e, final: final && e == byte1)
            s = e
        } while s < byte1
        return
    }
    let useDynamic = dynBits < fixBits
    let lLen = useDynamic ? litLen : fixedLitLengths
    let dLen = useDynamic ? distLen : [Int](repeating: 5, count: 30)
    let lCode = canonicalCodes(lLen), dCode = canonicalCodes(dLen)
    w.write(final ? 1 : 0, 1)
    if useDynamic {
        w.write(2, 2)
        w.write(hlit - 257, 5); w.write(hdist - 1, 5); w.write(hclen - 4, 4)
        for k in 0..<hclen { w.write(clLen[deflateCodeLengthOrder[k]], 3) }
        let clCode = canonicalCodes(clLen)
        for e in rle {
            w.write(clCode[e.sym], clLen[e.sym])
            if e.bits > 0 { w.write(e.extra, e.bits) }
        }
    } else {
        w.write(1, 2)
    }
    for t in tokens {
        if t & 0x8000_0000 == 0 { w.write(lCode[Int(t)], lLen[Int(t)]); continue }
        let len = Int((t >> 16) & 0x1FF) + 3, dist = Int(t & 0xFFFF) + 1
        let ls = lengthSymbol[len], ds = distSymbol(dist)
        w.write(lCode[257 + ls], lLen[257 + ls])
        if deflateLengthExtra[ls] > 0 { w.write(len - deflateLengthBase[ls], deflateLengthExtra[ls]) }
        w.write(dCode[ds], dLen[ds])
        if deflateDistExtra[ds] > 0 { w.write(dist - deflateDistBase[ds], deflateDistExtra[ds]) }
    }
    w.write(lCode[256], lLen[256])
}
