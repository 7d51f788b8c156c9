// safetensors: the weight format PyTorch, torchvision users and MLX exchange.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON mapping each tensor name
// to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the end of the
// header) plus an optional "__metadata__" of string pairs, then the raw little-endian data.
// Reading maps the file (no second copy in memory) and converts F16/BF16/F64 to F32 on
// access. Writing goes to a temporary file renamed over the target (atomic).
import Foundation

/// Element types a safetensors file may hold (the ones this library reads).
public enum SafeTensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    var byteSize: Int {
        switch self { case .f32: return 4; case .f16, .bf16: return 2; case .f64: return 8 }
    }
}

/// A safetensors file opened for reading. The file is memory-mapped; tensors are
/// converted to Float32 `Tensor`s one at a time on request.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Description of one stored tensor.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        let begin: Int
        let end: Int
    }

    /// Stored tensors by name.
    public let entries: [String: Entry]
    /// The free-form `__metadata__` strings.
    public let metadata: [String: String]
    /// Names in file order (sorted by data offset).
    public let names: [String]
    private let data: Data
    private let dataStart: Int
    private let path: String

    /// Opens and validates `path`. Throws `FCNError` for unreadable, truncated or corrupt
    /// files, unknown dtypes, and offsets outside the file or inconsistent with the shape.
    public convenience init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        let d: Data
        do { d = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw FCNError.io("cannot read safetensors file '\(path)': \(error.localizedDescription)")
        }
        try self.init(data: d, path: path)
    }

    /// Parses an in-memory safetensors image (`path` is used in error messages only).
    public init(data d: Data, path: String = "<memory>") throws {
        self.path = path
        self.data = d
        guard d.count >= 8 else { throw FCNError.invalidFormat("safetensors '\(path)': file is \(d.count) bytes, shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(d[d.startIndex + i]) << (8 * UInt64(i)) }
        guard n <= UInt64(d.count - 8) else {
            throw FCNError.invalidFormat("safetensors '\(path)': header length \(n) points past the end of the \(d.count)-byte file (truncated?)")
        }
        let headerLen = Int(n)
        dataStart = 8 + headerLen
        let headerBytes = d.subdata(in: d.startIndex + 8 ..< d.startIndex + dataStart)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerBytes) } catch {
            throw FCNError.invalidFormat("safetensors '\(path)': header is not valid JSON")
        }
        guard let dict = json as? [String: Any] else {
            throw FCNError.invalidFormat("safetensors '\(path)': header is not a JSON object")
        }
        let dataLen = d.count - dataStart
        var entries: [String: Entry] = [:]
        var meta: [String: String] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw FCNError.invalidFormat("safetensors '\(path)': __metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw FCNError.invalidFormat("safetensors '\(path)': metadata value for '\(k)' is not a string") }
                    meta[k] = s
                }
                continue
            }
            guard let e = value as? [String: Any], let dt = e["dtype"] as? String,
                  let shapeAny = e["shape"] as? [Any], let offs = e["data_offsets"] as? [Any], offs.count == 2 else {
                throw FCNError.invalidFormat("safetensors '\(path)': entry '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let dtype = SafeTensorsDType(rawValue: dt) else {
                throw FCNError.unsupported("safetensors '\(path)': tensor '\(name)' has dtype \(dt); supported: F32, F16, BF16, F64")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let i = (v as? NSNumber)?.intValue, i >= 0 else { throw FCNError.invalidFormat("safetensors '\(path)': tensor '\(name)' has an invalid shape \(shapeAny)") }
                return i
            }
            guard let b = (offs[0] as? NSNumber)?.intValue, let en = (offs[1] as? NSNumber)?.intValue, b >= 0, en >= b else {
                throw FCNError.invalidFormat("safetensors '\(path)': tensor '\(name)' has invalid data_offsets \(offs)")
            }
            guard en <= dataLen else {
                throw FCNError.invalidFormat("safetensors '\(path)': tensor '\(name)' data [\(b), \(en)) lies outside the \(dataLen)-byte data section (truncated?)")
            }
            let (expected, overflow) = shape.reduce(1, *).multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, expected == en - b else {
                throw FCNError.invalidFormat("safetensors '\(path)': tensor '\(name)' of shape \(shape) and dtype \(dt) needs \(expected) bytes but data_offsets span \(en - b)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, begin: b, end: en)
        }
        self.entries = entries
        self.metadata = meta
        self.names = entries.values.sorted { ($0.begin, $0.name) < ($1.begin, $1.name) }.map(\.name)
    }

    /// The tensor stored under `name`, converted to Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw FCNError.mismatch("safetensors '\(path)': no tensor named '\(name)'")
        }
        let count = e.shape.reduce(1, *)
        return data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Tensor in
            let base = raw.baseAddress! + dataStart + e.begin
            return Tensor.make(shape: e.shape) { out in
                switch e.dtype {
                case .f32:
                    for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                case .f64:
                    for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
                case .bf16:
                    for i in 0..<count { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
                case .f16:
                    for i in 0..<count { out[i] = halfToFloat(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
                }
            }
        }
    }

    /// Every tensor, converted to Float32.
    public func allTensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for n in names { out[n] = try tensor(n) }
        return out
    }
}

/// IEEE 754 binary16 to binary32 (handles subnormals, infinities and NaN).
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

/// Reads every tensor of a safetensors file as Float32.
public func loadSafeTensors(path: String) throws -> [String: Tensor] {
    try SafeTensorsFile(path: path).allTensors()
}

/// Writes tensors as F32 safetensors (names sorted, as the Python library does),
/// atomically: a temporary file in the same folder is renamed over `path`.
public func saveSafeTensors(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
    let data = try safeTensorsData(tensors, metadata: metadata)
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw FCNError.io("cannot write '\(path)': \(error.localizedDescription)")
    }
}

/// Serialises tensors as an F32 safetensors image.
public func safeTensorsData(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> Data {
    var header: [String: Any] = [:]
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var offset = 0
    let names = tensors.keys.sorted()
    for n in names {
        guard n != "__metadata__" else { throw FCNError.mismatch("a tensor may not be named __metadata__") }
        let t = tensors[n]!
        header[n] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
        offset += 4 * t.count
    }
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    while (8 + json.count) % 8 != 0 { json.append(0x20) }   // pad with spaces, as the reference does
    var out = Data(capacity: 8 + json.count + offset)
    var len = UInt64(json.count).littleEndian
    withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
    out.append(json)
    for n in names {
        tensors[n]!.withUnsafeBufferPointer { buf in
            #if _endian(little)
            out.append(UnsafeBufferPointer(start: UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: UInt8.self), count: 4 * buf.count))
            #else
            for v in buf { var le = v.bitPattern.littleEndian; withUnsafeBytes(of: &le) { out.append(contentsOf: $0) } }
            #endif
        }
    }
    return out
}
