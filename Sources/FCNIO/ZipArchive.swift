// A zip archive reader (PKWARE APPNOTE 6.3), written for untrusted input: the container of
// PyTorch checkpoints (torch.save since 1.6).
//
// Layout read: the end of central directory record (EOCD, "PK\5\6", found by scanning
// back at most 64 KiB + 22 bytes from the end), its ZIP64 locator ("PK\6\7", the 20 bytes
// before the EOCD) and the ZIP64 EOCD record ("PK\6\6") when present (PyTorch's writer
// always adds them), then the central directory: one "PK\1\2" header per entry with its
// name, method, CRC-32, sizes and the offset of its local header; values of 0xFFFFFFFF
// (0xFFFF for the disk) are taken from the ZIP64 extended information extra field (id 1),
// in APPNOTE order: uncompressed size, compressed size, local header offset, disk.
// The data starts after the local header ("PK\3\4", 30 bytes + name + extra; PyTorch pads
// the extra field so data is 64-byte aligned) whose sizes are ignored (PyTorch sets bit 3
// and writes them in a data descriptor after the data): the central directory's are used.
//
// Supported: stored (method 0) and deflated (method 8) entries, single-disk archives.
// Refused with an error: encrypted entries, other methods, multi-disk archives, duplicate
// names, local headers that disagree with the central directory, and any offset or size
// outside the file. A deflated entry may declare at most 1032x its compressed size (the
// format's limit), so inflating never allocates more than that; every entry's CRC-32 is
// checked when its contents are read.

import FCNCore
/// A zip archive held in a byte region (memory-mapped file or copied data).
struct ZipArchive {
    /// One central directory entry.
    struct Entry: Sendable {
        let name: String
        let method: Int
        let flags: Int
        let crc32: UInt32
        let compressedSize: Int
        let uncompressedSize: Int
        let localHeaderOffset: Int
    }

    let region: ByteRegion
    /// Entries in central directory order.
    private(set) var entries: [Entry]
    /// Entry index by name.
    private(set) var index: [String: Int]
    /// Names the archive in errors.
    let label: String

    private func bad(_ m: String) -> FCNError { .invalidFormat("zip '\(label)': \(m)") }

    private func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: region.base.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
    private func u32(_ o: Int) -> Int { Int(UInt32(littleEndian: region.base.loadUnaligned(fromByteOffset: o, as: UInt32.self))) }
    private func u64(_ o: Int) throws -> Int {
        let v = UInt64(littleEndian: region.base.loadUnaligned(fromByteOffset: o, as: UInt64.self))
        guard v <= UInt64(Int.max) else { throw bad("a 64-bit size or offset (\(v)) is out of range at byte \(o)") }
        return Int(v)
    }

    /// Reads the central directory of the archive in `region`.
    init(region: ByteRegion, label: String) throws {
        self.region = region
        self.label = label
        self.entries = []
        self.index = [:]
        let size = region.count
        guard size >= 22 else { throw bad("\(size) bytes is too short for a zip archive") }
        // End of central directory: the last signature whose comment fits in the file.
        var eocd = -1
        var o = size - 22
        let lowest = max(0, size - 22 - 65_535)
        while o >= lowest {
            if u32(o) == 0x0605_4B50 && o + 22 + u16(o + 20) <= size { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw bad("no end of central directory record (not a zip archive, or truncated)") }
        var disk = u16(eocd + 4), cdDisk = u16(eocd + 6)
        var count = u16(eocd + 10)
        var cdSize = u32(eocd + 12), cdOffset = u32(eocd + 16)
        var cdLimit = eocd
        if eocd >= 20 && u32(eocd - 20) == 0x0706_4B50 {
            guard u32(eocd - 20 + 4) == 0 else { throw FCNError.unsupported("zip '\(label)': multi-disk archives are not supported") }
            let z = try u64(eocd - 20 + 8)
            guard eocd >= 76, z <= eocd - 76 else { throw bad("ZIP64 locator points to byte \(z), where no ZIP64 record fits") }
            guard u32(z) == 0x0606_4B50 else { throw bad("no ZIP64 end of central directory record at byte \(z)") }
            disk = u32(z + 16); cdDisk = u32(z + 20)
            count = try u64(z + 32); cdSize = try u64(z + 40); cdOffset = try u64(z + 48)
            cdLimit = z
        }
        guard disk == 0, cdDisk == 0 else { throw FCNError.unsupported("zip '\(label)': multi-disk archives are not supported") }
        guard cdOffset <= cdLimit, cdSize <= cdLimit - cdOffset else {
            throw bad("central directory [\(cdOffset), +\(cdSize)) lies outside the \(size)-byte file (truncated?)")
        }
        guard count <= cdSize / 46 else { throw bad("\(count) entries cannot fit in a \(cdSize)-byte central directory") }

        var list: [Entry] = [], names: [String: Int] = [:]
        list.reserveCapacity(count)
        var p = cdOffset
        let cdEnd = cdOffset + cdSize
        for i in 0..<count {
            guard cdEnd - p >= 46, u32(p) == 0x0201_4B50 else { throw bad("central directory entry \(i) at byte \(p) is malformed") }
            let flags = u16(p + 8), method = u16(p + 10)
            let crc = UInt32(u32(p + 16))
            var csize = u32(p + 20), usize = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            var entryDisk = u16(p + 34)
            var offset = u32(p + 42)
            guard 46 + nameLen + extraLen + commentLen <= cdEnd - p else { throw bad("central directory entry \(i) overruns the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(start: region.base + p + 46, count: nameLen), as: UTF8.self)
            // ZIP64 extended information: only the fields whose 32-bit value is saturated.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while extraEnd - e >= 4 {
                let id = u16(e), len = u16(e + 2)
                guard len <= extraEnd - e - 4 else { throw bad("entry '\(name)' has a malformed extra field") }
                if id == 1 {
                    var q = e + 4
                    func next64() throws -> Int {
                        guard e + 4 + len - q >= 8 else { throw bad("entry '\(name)' has a short ZIP64 extra field") }
                        defer { q += 8 }
                        return try u64(q)
                    }
                    if usize == 0xFFFF_FFFF { usize = try next64() }
                    if csize == 0xFFFF_FFFF { csize = try next64() }
                    if offset == 0xFFFF_FFFF { offset = try next64() }
                    if entryDisk == 0xFFFF {
                        guard e + 4 + len - q >= 4 else { throw bad("entry '\(name)' has a short ZIP64 extra field") }
                        entryDisk = u32(q)
                    }
                }
                e += 4 + len
            }
            guard entryDisk == 0 else { throw FCNError.unsupported("zip '\(label)': entry '\(name)' is on disk \(entryDisk); multi-disk archives are not supported") }
            guard names[name] == nil else { throw bad("two entries are named '\(name)'") }
            names[name] = list.count
            list.append(Entry(name: name, method: method, flags: flags, crc32: crc, compressedSize: csize,
                              uncompressedSize: usize, localHeaderOffset: offset))
            p += 46 + nameLen + extraLen + commentLen
        }
        self.entries = list
        self.index = names
    }

    /// The entry named `name`, if any.
    func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// Offset range of the (possibly compressed) data of `entry`, after checking its local
    /// header against the central directory.
    func dataRange(_ entry: Entry) throws -> Range<Int> {
        let o = entry.localHeaderOffset, size = region.count
        guard o <= size - 30, u32(o) == 0x0403_4B50 else { throw bad("entry '\(entry.name)': no local header at byte \(o)") }
        let nameLen = u16(o + 26), extraLen = u16(o + 28)
        guard nameLen + extraLen <= size - o - 30 else { throw bad("entry '\(entry.name)': local header overruns the file") }
        let local = UnsafeRawBufferPointer(start: region.base + o + 30, count: nameLen)
        guard local.elementsEqual(entry.name.utf8) || String(decoding: local, as: UTF8.self) == entry.name else {
            throw bad("entry '\(entry.name)': its local header names '\(String(decoding: local, as: UTF8.self))'")
        }
        guard u16(o + 8) == entry.method else { throw bad("entry '\(entry.name)': local header has method \(u16(o + 8)), the central directory \(entry.method)") }
        let start = o + 30 + nameLen + extraLen
        guard entry.compressedSize <= size - start else {
            throw bad("entry '\(entry.name)': \(entry.compressedSize) bytes of data at byte \(start) run past the end of the \(size)-byte file (truncated?)")
        }
        return start..<(start + entry.compressedSize)
    }

    /// Calls `body` with the uncompressed contents of `entry` (in place for a stored entry,
    /// inflated into a temporary buffer for a deflated one) after checking the CRC-32.
    /// `limit` caps the uncompressed size accepted.
    func withContents<R>(_ entry: Entry, limit: Int = .max, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard entry.flags & 1 == 0 else { throw FCNError.unsupported("zip '\(label)': entry '\(entry.name)' is encrypted") }
        guard entry.uncompressedSize <= limit else {
            throw FCNError.unsupported("zip '\(label)': entry '\(entry.name)' holds \(entry.uncompressedSize) bytes, over the limit of \(limit)")
        }
        let range = try dataRange(entry)
        let raw = UnsafeRawBufferPointer(start: region.base + range.lowerBound, count: range.count)
        switch entry.method {
        case 0:
            guard entry.compressedSize == entry.uncompressedSize else {
                throw bad("stored entry '\(entry.name)' has compressed size \(entry.compressedSize) but uncompressed size \(entry.uncompressedSize)")
            }
            try checkCRC(entry, raw)
            return try body(raw)
        case 8:
            let (most, overflow) = entry.compressedSize.multipliedReportingOverflow(by: 1032)
            guard overflow || entry.uncompressedSize <= most + 1024 else {
                throw bad("deflated entry '\(entry.name)' declares \(entry.uncompressedSize) bytes from \(entry.compressedSize), more than deflate can encode")
            }
            let out: [UInt8] = try raw.withMemoryRebound(to: UInt8.self) { p in
                var reader = BitReaderLSB(p, start: 0)
                return try inflate(&reader, maxOutput: entry.uncompressedSize, initialCapacity: entry.uncompressedSize)
            }
            guard out.count == entry.uncompressedSize else {
                throw bad("deflated entry '\(entry.name)' inflates to \(out.count) bytes, its header says \(entry.uncompressedSize)")
            }
            return try out.withUnsafeBytes { b in
                try checkCRC(entry, b)
                return try body(b)
            }
        default:
            throw FCNError.unsupported("zip '\(label)': entry '\(entry.name)' uses compression method \(entry.method) (only stored and deflated are read)")
        }
    }

    /// Hands the whole pages of `bytes` back to the page cache when they lie in the mapped
    /// file (a stored entry's data, once read), so reading a large archive does not keep
    /// the file resident; a no-op for other memory.
    func releasePages(_ bytes: UnsafeRawBufferPointer) {
        guard let b = bytes.baseAddress, b >= region.base, b + bytes.count <= region.base + region.count else { return }
        region.dropPages(offset: b - region.base, length: bytes.count)
    }

    /// Checks the CRC-32 of an entry's contents, 16 MiB at a time, releasing each run's pages.
    private func checkCRC(_ entry: Entry, _ bytes: UnsafeRawBufferPointer) throws {
        var c: UInt32 = 0
        var i = 0
        repeat {
            let run = UnsafeRawBufferPointer(rebasing: bytes[i..<min(bytes.count, i + (16 << 20))])
            c = zipCRC32(run, crc: c)
            releasePages(run)
            i += run.count
        } while i < bytes.count
        guard c == entry.crc32 else {
            throw bad("entry '\(entry.name)' is corrupt: CRC-32 \(String(c, radix: 16)), expected \(String(entry.crc32, radix: 16))")
        }
    }
}

/// Slicing-by-8 tables of the reflected CRC-32 (polynomial 0xEDB88320).
private let crcSlices: [UInt32] = {
    var t = [UInt32](repeating: 0, count: 8 * 256)
    for n in 0..<256 {
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        t[n] = c
    }
    for k in 1..<8 {
        for n in 0..<256 { t[k * 256 + n] = (t[(k - 1) * 256 + n] >> 8) ^ t[Int(t[(k - 1) * 256 + n] & 0xFF)] }
    }
    return t
}()

/// CRC-32 of zip entries (same value as `crc32`, eight bytes per step for speed; figures:
/// Benchmarks.md, Files).
func zipCRC32(_ bytes: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
    var c = ~crc
    let n = bytes.count
    guard n > 0, let base = bytes.baseAddress else { return crc }
    crcSlices.withUnsafeBufferPointer { t in
        var i = 0
        while n - i >= 8 {
            let lo = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
            let hi = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
            c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                ^ t[256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            i += 8
        }
        while i < n {
            c = t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
            i += 1
        }
    }
    return ~c
}
