// safetensors: the weight format PyTorch, torchvision users and MLX exchange.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON mapping each tensor name
// to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the end of the
// header) plus an optional "__metadata__" of string pairs, then the raw little-endian data.
//
// Reading memory-maps the file and converts one tensor at a time to Float32 on request;
// the converted range's pages are then released from the process (madvise DONTNEED), so
// loading a file never holds the file's bytes and the Float32 tensors at once. The header is validated as strictly as the reference Rust implementation:
// no key twice in any object (JSONDuplicateKeys.swift), known dtype, integral shapes,
// byte count = elements x dtype size, and the data ranges sorted by offset must tile the
// data section exactly (no overlap, no gap, no trailing or missing bytes). Every problem
// is thrown as `FCNError`, never trapped.
//
// Writing streams the header and each tensor to a temporary file in the target's folder,
// flushes it to disk (fsync) and renames it over the target: a crash or a full disk at any
// point leaves the previous file intact. Float32 by default; F16/BF16 on request (rounded
// to nearest even, as PyTorch's `.half()` / `.bfloat16()`).
import FCNCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types a safetensors file may hold. All are read (converted to Float32);
/// F32, F16 and BF16 can be written. Integer and boolean tensors (for instance PyTorch's
/// int64 `num_batches_tracked`) are converted exactly up to 2^24.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    /// Floating point: binary32, binary16, bfloat16, binary64 (the raw value is the
    /// header's dtype string).
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    /// Signed and unsigned integers and booleans (read only).
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

/// A read-only byte region kept alive by the reader: a memory-mapped file or a copy of
/// in-memory data. Shared by the file readers of this folder (safetensors, caffemodel,
/// PyTorch checkpoints).
final class ByteRegion: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int
    private let release: () -> Void
    /// True for a file mapping, whose pages can be handed back to the page cache.
    let isMapped: Bool

    init(base: UnsafeRawPointer, count: Int, isMapped: Bool = false, release: @escaping () -> Void) {
        self.base = base; self.count = count; self.isMapped = isMapped; self.release = release
    }
    deinit { release() }

    /// Tells the kernel the whole pages inside `offset ..< offset+length` are not needed
    /// any more: they leave this process's resident set (they stay in the page cache and
    /// are read again if touched). Keeps loading a large file from holding the converted
    /// tensors and the file's pages at once.
    func dropPages(offset: Int, length: Int) {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        guard isMapped else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (offset + page - 1) / page * page, hi = (offset + length) / page * page
        if hi > lo { _ = madvise(UnsafeMutableRawPointer(mutating: base + lo), hi - lo, MADV_DONTNEED) }
        #endif
    }

    static func copying(_ data: Data) -> ByteRegion {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, data.count), alignment: 64)
        data.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: $0.count) } }
        return ByteRegion(base: UnsafeRawPointer(p), count: data.count) { p.deallocate() }
    }

    static func mapping(path: String) throws -> ByteRegion {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FCNError.io("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FCNError.io("cannot stat '\(path)': \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FCNError.io("'\(path)' is not a regular file") }
        let size = Int(st.st_size)
        if size == 0 { return copying(Data()) }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw FCNError.io("cannot map '\(path)': \(String(cString: strerror(errno)))")
        }
        return ByteRegion(base: UnsafeRawPointer(p), count: size, isMapped: true) { munmap(p, size) }
        #else
        do { return copying(try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)) } catch {
            throw FCNError.io("cannot read '\(path)': \(error.localizedDescription)")
        }
        #endif
    }
}

/// A safetensors file opened for reading. The file is memory-mapped and validated when
/// opened; tensors are converted to Float32 `Tensor`s one at a time on request. Safe to
/// read from several threads.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Description of one stored tensor.
    public struct Entry: Sendable, Equatable {
        /// The tensor's name (a state-dict key).
        public let name: String
        /// The stored element type (converted to Float32 on reading).
        public let dtype: SafeTensorsDType
        /// The tensor's shape.
        public let shape: [Int]
        /// Byte range within the data section.
        public let dataOffsets: Range<Int>
    }

    /// Largest header accepted (as the reference implementation: 100 MB).
    public static let maxHeaderLength = 100_000_000

    /// Stored tensors by name.
    public let entries: [String: Entry]
    /// The free-form `__metadata__` strings.
    public let metadata: [String: String]
    /// Names in file order (sorted by data offset).
    public let names: [String]
    private let region: ByteRegion
    private let dataStart: Int
    private let path: String

    /// Opens (memory-maps) and validates `path`. Throws `FCNError` for unreadable,
    /// truncated or corrupt files and unknown dtypes.
    public convenience init(path: String) throws {
        try self.init(region: ByteRegion.mapping(path: path), path: path)
    }

    /// Parses an in-memory safetensors image (copied once; `path` names it in errors).
    public convenience init(data: Data, path: String = "<memory>") throws {
        try self.init(region: ByteRegion.copying(data), path: path)
    }

    private init(region: ByteRegion, path: String) throws {
        self.region = region
        self.path = path
        func bad(_ m: String) -> FCNError { .invalidFormat("safetensors '\(path)': \(m)") }
        let size = region.count
        guard size >= 8 else { throw bad("file is \(size) bytes, shorter than the 8-byte header length") }
        let n = UInt64(littleEndian: region.base.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(Self.maxHeaderLength) else {
            throw bad("header length \(n) exceeds the \(Self.maxHeaderLength)-byte limit (not a safetensors file?)")
        }
        guard n <= UInt64(size - 8) else {
            throw bad("header length \(n) points past the end of the \(size)-byte file (truncated?)")
        }
        let headerLen = Int(n)
        dataStart = 8 + headerLen
        let headerBytes = Data(bytes: region.base + 8, count: headerLen)
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes) else {
            throw bad("header is not valid JSON")
        }
        guard let dict = json as? [String: Any] else { throw bad("header is not a JSON object") }
        // JSONSerialization keeps the last of two equal keys; a header naming a tensor twice is ambiguous.
        if let dup = headerBytes.withUnsafeBytes({ jsonFirstDuplicateKey($0) }) {
            throw bad(dup.path.isEmpty ? "header names '\(dup.key)' twice"
                                       : "header entry '\(dup.path.joined(separator: "."))' has the key '\(dup.key)' twice")
        }
        let dataLen = size - dataStart

        func integer(_ v: Any) -> Int? {
            guard let num = v as? NSNumber, let i = Int(exactly: num.doubleValue),
                  Double(num.int64Value) == num.doubleValue else { return nil }
            return i
        }

        var entries: [String: Entry] = [:]
        var meta: [String: String] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad("metadata value for '\(k)' is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard let e = value as? [String: Any], let dt = e["dtype"] as? String,
                  let shapeAny = e["shape"] as? [Any], let offs = e["data_offsets"] as? [Any] else {
                throw bad("entry '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let dtype = SafeTensorsDType(rawValue: dt) else {
                throw FCNError.unsupported("safetensors '\(path)': tensor '\(name)' has dtype \(dt); supported: "
                    + SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", "))
            }
            var shape: [Int] = []
            for v in shapeAny {
                guard let i = integer(v), i >= 0 else { throw bad("tensor '\(name)' has an invalid shape \(shapeAny)") }
                shape.append(i)
            }
            guard offs.count == 2, let b = integer(offs[0]), let en = integer(offs[1]), b >= 0, en >= b else {
                throw bad("tensor '\(name)' has invalid data_offsets \(offs)")
            }
            var elements = 1, overflow = false
            for d in shape where !overflow { (elements, overflow) = elements.multipliedReportingOverflow(by: d) }
            let (expected, o2) = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, !o2, expected == en - b else {
                throw bad("tensor '\(name)' of shape \(shape) and dtype \(dt) needs \(overflow || o2 ? "too many" : String(expected)) bytes but data_offsets [\(b), \(en)] span \(en - b)")
            }
            guard en <= dataLen else {
                throw bad("tensor '\(name)' data [\(b), \(en)) lies outside the \(dataLen)-byte data section (truncated?)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, dataOffsets: b..<en)
        }
        // The data ranges, in offset order, must tile the data section exactly.
        let ordered = entries.values.sorted { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name) }
        var end = 0, previous = "the start of the data section"
        for e in ordered {
            let r = e.dataOffsets
            if r.lowerBound < end { throw bad("tensor '\(e.name)' data [\(r.lowerBound), \(r.upperBound)) overlaps \(previous), which ends at \(end)") }
            if r.lowerBound > end { throw bad("gap of \(r.lowerBound - end) bytes before tensor '\(e.name)' at offset \(r.lowerBound) (after \(previous))") }
            end = r.upperBound
            previous = "tensor '\(e.name)'"
        }
        guard end == dataLen else { throw bad("the data section holds \(dataLen) bytes but the tensors use \(end)") }
        self.entries = entries
        self.metadata = meta
        self.names = ordered.map(\.name)
    }

    /// The tensor stored under `name`, converted to Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw FCNError.mismatch("safetensors '\(path)': no tensor named '\(name)'")
        }
        let count = e.shape.reduce(1, *)
        let base = region.base + dataStart + e.dataOffsets.lowerBound
        let t = Tensor.make(shape: e.shape) { out in
            convertToFloat(base, dtype: e.dtype, count: count, into: out.baseAddress!)
        }
        region.dropPages(offset: dataStart + e.dataOffsets.lowerBound, length: e.dataOffsets.count)
        return t
    }

    /// Every tensor, converted to Float32.
    public func allTensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for n in names { out[n] = try tensor(n) }
        return out
    }
}

/// Converts `count` little-endian elements of `dtype` at `base` to Float32 (exact for the
/// float types, and for integers up to 2^24).
func convertToFloat(_ base: UnsafeRawPointer, dtype: SafeTensorsDType, count: Int, into out: UnsafeMutablePointer<Float>) {
    @inline(__always) func load<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
        T(littleEndian: base.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
    }
    switch dtype {
    case .f32:
        #if _endian(little)
        UnsafeMutableRawPointer(out).copyMemory(from: base, byteCount: 4 * count)
        #else
        for i in 0..<count { out[i] = Float(bitPattern: load(i, UInt32.self)) }
        #endif
    case .f64: for i in 0..<count { out[i] = Float(Double(bitPattern: load(i, UInt64.self))) }
    case .bf16: for i in 0..<count { out[i] = Float(bitPattern: UInt32(load(i, UInt16.self)) << 16) }
    case .f16: for i in 0..<count { out[i] = halfToFloat(load(i, UInt16.self)) }
    case .i64: for i in 0..<count { out[i] = Float(load(i, Int64.self)) }
    case .i32: for i in 0..<count { out[i] = Float(load(i, Int32.self)) }
    case .i16: for i in 0..<count { out[i] = Float(load(i, Int16.self)) }
    case .i8: for i in 0..<count { out[i] = Float(load(i, Int8.self)) }
    case .u8: for i in 0..<count { out[i] = Float(load(i, UInt8.self)) }
    case .bool: for i in 0..<count { out[i] = load(i, UInt8.self) != 0 ? 1 : 0 }
    }
}

/// IEEE 754 binary16 to binary32 (exact; handles subnormals, infinities and NaN).
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exp = Int((h >> 10) & 0x1F)
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}

/// binary32 to binary16, rounded to nearest even (overflow gives infinity, NaN gives the
/// quiet NaN 0x7E00 with the sign kept, as PyTorch's `.half()`).
func floatToHalf(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exp = Int((bits >> 23) & 0xFF)
    let mant = bits & 0x7F_FFFF
    if exp == 0xFF { return sign | (mant == 0 ? 0x7C00 : 0x7E00) }
    let e = exp - 127 + 15
    if e >= 31 { return sign | 0x7C00 }
    if e <= 0 {
        let shift = 14 - e                  // half subnormal: value = m * 2^-24
        if shift > 24 { return sign }
        let full = mant | 0x80_0000
        var h = full >> UInt32(shift)
        let rem = full & ((1 << UInt32(shift)) - 1), halfway = UInt32(1) << UInt32(shift - 1)
        if rem > halfway || (rem == halfway && h & 1 == 1) { h += 1 }
        return sign | UInt16(h)
    }
    var h = UInt32(e) << 10 | (mant >> 13)
    let rem = mant & 0x1FFF
    if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) { h += 1 }   // a carry may reach infinity: correct
    return sign | UInt16(h)
}

/// binary32 to bfloat16, rounded to nearest even (NaN gives 0x7FC0, as PyTorch).
func floatToBFloat16(_ f: Float) -> UInt16 {
    if f.isNaN { return 0x7FC0 }
    let bits = f.bitPattern
    return UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

/// Reads every tensor of a safetensors file as Float32.
public func loadSafeTensors(path: String) throws -> [String: Tensor] {
    try SafeTensorsFile(path: path).allTensors()
}

/// Writes tensors as safetensors (names sorted), atomically: the bytes are streamed to a
/// temporary file in the same folder, flushed to disk and renamed over `path`, so an
/// interrupted save leaves the previous file untouched. `dtype` is `.f32` (default,
/// lossless), `.f16` or `.bf16` (half the size, rounded to nearest even).
public func saveSafeTensors(_ tensors: [String: Tensor], metadata: [String: String] = [:], dtype: SafeTensorsDType = .f32,
                            to path: String) throws {
    let (header, names) = try safeTensorsHeader(tensors, metadata: metadata, dtype: dtype)
    #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw FCNError.io("cannot create a temporary file beside '\(path)': \(String(cString: strerror(errno)))") }
    var ok = false
    defer { if !ok { close(fd); unlink(tmp) } }
    func sink(_ bytes: UnsafeRawBufferPointer) throws {
        var p = bytes.baseAddress, left = bytes.count
        while left > 0 {
            let w = write(fd, p, left)
            if w < 0 && errno == EINTR { continue }
            guard w > 0 else { throw FCNError.io("cannot write '\(path)': \(String(cString: strerror(errno)))") }
            p = p! + w; left -= w
        }
    }
    try writeSafeTensors(header: header, names: names, tensors: tensors, dtype: dtype, sink)
    guard fsync(fd) == 0 else { throw FCNError.io("cannot flush '\(path)': \(String(cString: strerror(errno)))") }
    guard close(fd) == 0 else { ok = true; unlink(tmp); throw FCNError.io("cannot close '\(path)': \(String(cString: strerror(errno)))") }
    ok = true
    guard rename(tmp, path) == 0 else {
        let m = String(cString: strerror(errno)); unlink(tmp)
        throw FCNError.io("cannot rename the temporary file onto '\(path)': \(m)")
    }
    #else
    let data = try safeTensorsData(tensors, metadata: metadata, dtype: dtype)
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw FCNError.io("cannot write '\(path)': \(error.localizedDescription)")
    }
    #endif
}

/// Serialises tensors as an in-memory safetensors image (see `saveSafeTensors`).
public func safeTensorsData(_ tensors: [String: Tensor], metadata: [String: String] = [:], dtype: SafeTensorsDType = .f32) throws -> Data {
    let (header, names) = try safeTensorsHeader(tensors, metadata: metadata, dtype: dtype)
    var out = Data(capacity: 8 + header.count + tensors.values.reduce(0) { $0 + $1.count * dtype.byteSize })
    try writeSafeTensors(header: header, names: names, tensors: tensors, dtype: dtype) { out.append(contentsOf: $0) }
    return out
}

/// The JSON header (padded with spaces to a multiple of 8 bytes, as the reference writer)
/// and the tensor names in data order.
private func safeTensorsHeader(_ tensors: [String: Tensor], metadata: [String: String], dtype: SafeTensorsDType) throws -> (Data, [String]) {
    guard dtype == .f32 || dtype == .f16 || dtype == .bf16 else {
        throw FCNError.unsupported("safetensors writer: dtype \(dtype.rawValue); supported: F32, F16, BF16")
    }
    var header: [String: Any] = [:]
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var offset = 0
    let names = tensors.keys.sorted()
    for n in names {
        guard n != "__metadata__" else { throw FCNError.mismatch("safetensors writer: a tensor may not be named __metadata__") }
        let t = tensors[n]!
        header[n] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + dtype.byteSize * t.count]] as [String: Any]
        offset += dtype.byteSize * t.count
    }
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    while json.count % 8 != 0 { json.append(0x20) }
    return (json, names)
}

private func writeSafeTensors(header: Data, names: [String], tensors: [String: Tensor], dtype: SafeTensorsDType,
                              _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
    var len = UInt64(header.count).littleEndian
    try withUnsafeBytes(of: &len) { try sink($0) }
    try header.withUnsafeBytes { try sink($0) }
    let chunk = 1 << 16
    var scratch = [UInt32](repeating: 0, count: chunk)
    for n in names {
        try tensors[n]!.withUnsafeBufferPointer { buf in
            #if _endian(little)
            if dtype == .f32 { try sink(UnsafeRawBufferPointer(buf)); return }
            #endif
            var i = 0
            while i < buf.count {
                let m = min(chunk, buf.count - i)
                try scratch.withUnsafeMutableBufferPointer { s in
                    switch dtype {
                    case .f16, .bf16:
                        let h = UnsafeMutableRawPointer(s.baseAddress!).assumingMemoryBound(to: UInt16.self)
                        for j in 0..<m { h[j] = (dtype == .f16 ? floatToHalf(buf[i + j]) : floatToBFloat16(buf[i + j])).littleEndian }
                        try sink(UnsafeRawBufferPointer(start: h, count: 2 * m))
                    default:
                        for j in 0..<m { s[j] = buf[i + j].bitPattern.littleEndian }
                        try sink(UnsafeRawBufferPointer(start: s.baseAddress, count: 4 * m))
                    }
                }
                i += m
            }
        }
    }
}
