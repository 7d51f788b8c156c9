// Builders of small protobuf, zip and pickle images for the reader tests: a protobuf
// encoder (caffe.proto's field numbers for caffemodels), a zip writer (stored or deflated
// entries, optional ZIP64 records and extra fields as PyTorch writes them) and pickle
// opcodes, so tests can make exactly the bytes a case needs.
import Foundation
import FCNCore
import FCNIO
import FCNModels

/// Protocol buffers encoding.
public enum PB {
    public static func varint(_ v: UInt64) -> [UInt8] {
        var v = v, out: [UInt8] = []
        repeat {
            let b = UInt8(v & 0x7F)
            v >>= 7
            out.append(v == 0 ? b : b | 0x80)
        } while v != 0
        return out
    }
    public static func tag(_ field: Int, _ wire: Int) -> [UInt8] { varint(UInt64(field << 3 | wire)) }
    public static func int(_ field: Int, _ v: Int) -> [UInt8] { tag(field, 0) + varint(UInt64(bitPattern: Int64(v))) }
    public static func bytes(_ field: Int, _ payload: [UInt8]) -> [UInt8] { tag(field, 2) + varint(UInt64(payload.count)) + payload }
    public static func string(_ field: Int, _ s: String) -> [UInt8] { bytes(field, Array(s.utf8)) }
    public static func float(_ field: Int, _ x: Float) -> [UInt8] { tag(field, 5) + le(x.bitPattern) }
    public static func double(_ field: Int, _ x: Double) -> [UInt8] { tag(field, 1) + le(x.bitPattern) }
    public static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    public static func packedFloats(_ field: Int, _ xs: [Float]) -> [UInt8] { bytes(field, xs.flatMap { le($0.bitPattern) }) }
}

/// caffe.proto messages.
public enum CaffeProto {
    /// BlobProto with BlobShape dims and packed float data (`values` default 0.01 * i).
    public static func blob(_ dims: [Int], _ values: [Float]? = nil, legacy: Bool = false) -> [UInt8] {
        let n = dims.reduce(1, *)
        let v = values ?? (0..<n).map { Float($0 % 97) * 0.01 - 0.3 }
        var out: [UInt8] = []
        if legacy {
            for (f, d) in zip(1...4, [Int](repeating: 1, count: 4 - dims.count) + dims) { out += PB.int(f, d) }
        } else {
            out += PB.bytes(7, dims.flatMap { PB.int(1, $0) })
        }
        return out + PB.packedFloats(5, v)
    }

    /// ConvolutionParameter.
    public static func conv(output: Int, kernel: Int, stride: Int = 1, pad: Int = 0, bias: Bool = true, group: Int = 1) -> [UInt8] {
        PB.int(1, output) + (bias ? [] : PB.int(2, 0)) + PB.int(3, pad) + PB.int(4, kernel) + PB.int(6, stride)
            + (group == 1 ? [] : PB.int(5, group))
    }

    /// LayerParameter (current format).
    public static func layer(_ name: String, _ type: String, blobs: [[UInt8]] = [], conv: [UInt8]? = nil, power: [UInt8]? = nil) -> [UInt8] {
        var m = PB.string(1, name) + PB.string(2, type) + blobs.flatMap { PB.bytes(7, $0) }
        if let conv { m += PB.bytes(106, conv) }
        if let power { m += PB.bytes(122, power) }
        return m
    }

    /// NetParameter with `layer` (field 100) entries.
    public static func net(_ layers: [[UInt8]], name: String = "test") -> Data {
        Data(PB.string(1, name) + layers.flatMap { PB.bytes(100, $0) })
    }

    /// The parametric layers of a reference VGG FCN of the given variant (at-once: a Scale
    /// scale_pool4 and a Power scale_pool3), with blob values from `value(parameter name,
    /// index)`; the layers named in `skip` are left out.
    public static func vggLayers(_ variant: VGGFCNVariant, classes: Int, width: Double, skip: Set<String> = [],
                          value: (String, Int) -> Float = { n, i in Float((n.count * 31 + i) % 17) * 0.01 - 0.08 }) -> [[UInt8]] {
        var layers: [[UInt8]] = [], pending: (name: String, blobs: [[UInt8]], dims: [Int])?
        func flush() {
            guard let p = pending, !skip.contains(p.name) else { pending = nil; return }
            let deconv = p.name.hasPrefix("upscore")
            let k = p.dims[2], stride = deconv ? [4: 2, 64: 32, 32: 16, 16: 8][k]! : 1
            let pad = p.name == "conv1_1" ? 100 : (p.name.hasPrefix("conv") ? 1 : 0)
            layers.append(layer(p.name, deconv ? "Deconvolution" : "Convolution", blobs: p.blobs,
                                conv: conv(output: p.dims[0], kernel: k, stride: stride, pad: pad, bias: !deconv)))
            pending = nil
        }
        for (name, shape) in VGGFCN.parameterShapes(variant: variant, classes: classes, width: width) {
            let parts = name.split(separator: "."), lname = String(parts[0])
            let values = (0..<shape.reduce(1, *)).map { value(name, $0) }
            if parts[1] == "weight" {
                flush()
                pending = (lname, [blob(shape, values)], shape)
            } else {
                pending!.blobs.append(blob(shape, values))
            }
            if variant == .fcn8sAtOnce && lname == "upscore2" && parts[1] == "weight" {
                flush()
                let c = VGG16Config.channels(512, width: width)
                layers.append(layer("scale_pool4", "Scale", blobs: [blob([c], [Float](repeating: 0.01, count: c))]))
            }
            if variant == .fcn8sAtOnce && lname == "upscore_pool4" {
                flush()
                layers.append(layer("scale_pool3", "Power", power: PB.float(2, 0.0001)))
            }
        }
        flush()
        return layers
    }
}

/// A zip writer for tests.
public struct TestZip {
    public struct Item: Sendable {
        public var name: String
        public var data: [UInt8]
        public var deflate = false
        public init(name: String, data: [UInt8], deflate: Bool = false) { self.name = name; self.data = data; self.deflate = deflate }
    }

    /// The archive of `items`. `zip64`: saturated 32-bit sizes and offsets in the central
    /// directory with a ZIP64 extra field, and ZIP64 end records (as PyTorch writes large
    /// files); `align`: pad local extra fields so data starts at a multiple of 64 (as PyTorch).
    public static func build(_ items: [Item], zip64: Bool = false, align: Bool = true, comment: String = "") -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        let le16 = { (v: Int) in PB.le(UInt16(truncatingIfNeeded: v)) }
        let le32 = { (v: Int) in PB.le(UInt32(truncatingIfNeeded: v)) }
        let le64 = { (v: Int) in PB.le(UInt64(v)) }
        for item in items {
            let payload = item.deflate ? Array(Zlib.compress(item.data, level: 6).dropFirst(2).dropLast(4)) : item.data
            let crc = crc32(item.data)
            let offset = out.count
            let name = Array(item.name.utf8)
            var extra: [UInt8] = []
            if align {
                let pad = (64 - (out.count + 30 + name.count + 4) % 64) % 64
                extra = [0x46, 0x42] + le16(pad) + [UInt8](repeating: 0x5A, count: pad)
            }
            out += le32(0x0403_4B50) + le16(45) + le16(0x808) + le16(item.deflate ? 8 : 0) + le16(0) + le16(0)
                + le32(0) + le32(0) + le32(0) + le16(name.count) + le16(extra.count) + name + extra
            out += payload
            out += le32(0x0807_4B50) + le32(Int(crc)) + le64(payload.count) + le64(item.data.count)   // data descriptor
            let z64 = zip64 ? PB.le(UInt16(1)) + PB.le(UInt16(24)) + le64(item.data.count) + le64(payload.count) + le64(offset) : []
            central += le32(0x0201_4B50) + le16(45) + le16(45) + le16(0x808) + le16(item.deflate ? 8 : 0) + le16(0) + le16(0)
                + le32(Int(crc)) + (zip64 ? le32(-1) + le32(-1) : le32(payload.count) + le32(item.data.count))
                + le16(name.count) + le16(z64.count) + le16(0) + le16(0) + le16(0) + le32(0)
                + (zip64 ? le32(-1) : le32(offset)) + name + z64
        }
        let cdOffset = out.count
        out += central
        if zip64 {
            let z = out.count
            out += le32(0x0606_4B50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0)
                + le64(items.count) + le64(items.count) + le64(central.count) + le64(cdOffset)
            out += le32(0x0706_4B50) + le32(0) + le64(z) + le32(1)
        }
        let c = Array(comment.utf8)
        out += le32(0x0605_4B50) + le16(0) + le16(0) + (zip64 ? le16(0xFFFF) + le16(0xFFFF) + le32(-1) + le32(-1)
            : le16(items.count) + le16(items.count) + le32(central.count) + le32(cdOffset)) + le16(c.count) + c
        return out
    }
}

/// Pickle opcodes (protocol 2) for hand-made pickles.
public enum PK {
    public static let proto2: [UInt8] = [0x80, 2], mark: [UInt8] = [0x28], stop: [UInt8] = [0x2E], tuple: [UInt8] = [0x74]
    public static let emptyDict: [UInt8] = [0x7D], emptyTuple: [UInt8] = [0x29], setitems: [UInt8] = [0x75], reduce: [UInt8] = [0x52]
    public static let newFalse: [UInt8] = [0x89], binpersid: [UInt8] = [0x51]
    public static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    public static func string(_ s: String) -> [UInt8] { [0x58] + PB.le(UInt32(s.utf8.count)) + Array(s.utf8) }
    /// BININT, or LONG1 of 8 bytes beyond 32 bits.
    public static func int(_ v: Int) -> [UInt8] { Int32(exactly: v).map { [0x4A] + PB.le($0) } ?? [0x8A, 8] + PB.le(Int64(v)) }
    public static func tuple(_ items: [[UInt8]]) -> [UInt8] { mark + items.flatMap { $0 } + tuple }

    /// `_rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`.
    public static func tensor(key: String, storage: String = "FloatStorage", numel: Int, offset: Int = 0, size: [Int], stride: [Int]) -> [UInt8] {
        let pid = tuple([string("storage"), global("torch", storage), string(key), string("cpu"), int(numel)]) + binpersid
        let hooks = global("collections", "OrderedDict") + emptyTuple + reduce
        return global("torch._utils", "_rebuild_tensor_v2")
            + tuple([pid, int(offset), tuple(size.map(int)), tuple(stride.map(int)), newFalse, hooks]) + reduce
    }

    /// `{name: value, ...}` as EMPTY_DICT MARK ... SETITEMS.
    public static func dict(_ items: [(String, [UInt8])]) -> [UInt8] {
        emptyDict + mark + items.flatMap { string($0.0) + $0.1 } + setitems
    }
}

/// A torch.save-like zip: `<prefix>/data.pkl`, `<prefix>/data/<key>` records, byteorder, version.
public func torchZip(pickle: [UInt8], storages: [(String, [UInt8])] = [], prefix: String = "archive",
              byteorder: String = "little", zip64: Bool = true, deflate: Bool = false) -> Data {
    var items = [TestZip.Item(name: "\(prefix)/data.pkl", data: pickle, deflate: deflate),
                 TestZip.Item(name: "\(prefix)/byteorder", data: Array(byteorder.utf8))]
    items += storages.map { TestZip.Item(name: "\(prefix)/data/\($0.0)", data: $0.1, deflate: deflate) }
    items.append(TestZip.Item(name: "\(prefix)/version", data: Array("3\n".utf8)))
    return Data(TestZip.build(items, zip64: zip64))
}

/// Little-endian bytes of Float32 values.
public func float32Bytes(_ xs: [Float]) -> [UInt8] { xs.flatMap { PB.le($0.bitPattern) } }

/// The description of the error `body` throws (an `FCNError`'s, or "non-FCNError ..."),
/// or nil when it returns.
public func errorText(_ body: () throws -> Void) -> String? {
    do { try body() } catch let e as FCNError { return e.description } catch { return "non-FCNError \(error)" }
    return nil
}

/// Fixtures of the weight readers (`gen_readers.py`).
public let readersDirectory = fixturesDirectory + "/readers"
