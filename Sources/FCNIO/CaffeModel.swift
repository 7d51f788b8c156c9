// .caffemodel: Caffe's trained weights, a binary protobuf `NetParameter` (caffe.proto).
//
// Fields read (caffe.proto numbering; everything else is skipped):
//   NetParameter      name = 1 (string), layer = 100 (LayerParameter, current),
//                     layers = 2 (V1LayerParameter, legacy; a file has one or the other)
//   LayerParameter    name = 1, type = 2 (string), bottom = 3, top = 4, blobs = 7,
//                     convolution_param = 106, power_param = 122
//   V1LayerParameter  bottom = 2, top = 3, name = 4, type = 5 (enum LayerType), blobs = 6,
//                     convolution_param = 10, power_param = 21; a nested V0 `layer` (1) is
//                     rejected (upgrade such files with Caffe's upgrade_net_proto_binary)
//   BlobProto         shape = 7 (BlobShape: dim = 1, int64, packed or not), or the legacy
//                     num = 1, channels = 2, height = 3, width = 4 (a 4-D shape; absent
//                     ones are 0); data = 5 (float), double_data = 8 (double), each packed
//                     or not, possibly split over several fields; diff = 6 and double_diff
//                     = 9 are skipped. As Caffe's Blob::FromProto: a blob with any legacy
//                     field has shape [num, channels, height, width]; double_data, when
//                     present, is used instead of data; the value count must equal the
//                     product of the shape (a shape with no dims holds one value).
//   ConvolutionParameter  num_output = 1, bias_term = 2, pad = 3, kernel_size = 4,
//                     group = 5, stride = 6, pad_h/w = 9/10, kernel_h/w = 11/12,
//                     stride_h/w = 13/14, dilation = 18
//   PowerParameter    power = 1, scale = 2, shift = 3 (y = (shift + scale * x) ^ power)
//
// Reading memory-maps the file and first walks its structure only (names, types, blob
// shapes, parameter messages): nothing is decoded or allocated per value. A blob is then
// decoded on request straight into the Float32 storage of its tensor (packed floats are
// one copy; unpacked and double values are converted one by one), and the pages of the
// blob's bytes are released from the process afterwards, so loading a 0.5 GB file holds
// the tensors plus a few pages of the file, not two copies. Every count is derived from
// bytes present in the file, so nothing larger than the file is allocated. Corrupt,
// truncated and foreign input throws `FCNError`; nothing traps.
import FCNCore
import Foundation

/// Which layer list a caffemodel uses.
public enum CaffeLayerFormat: String, Sendable {
    /// `layer` (field 100, LayerParameter, type as a string): Caffe since 2015.
    case current
    /// `layers` (field 2, V1LayerParameter, type as an enum): older files.
    case v1
}

/// Shape of one stored blob.
public struct CaffeBlobShape: Sendable, Equatable, CustomStringConvertible {
    /// The dimensions: from `shape.dim`, or `[num, channels, height, width]` for a legacy blob.
    public let dims: [Int]
    /// True when the shape came from the legacy num/channels/height/width fields. Caffe
    /// matches such a blob against a layer's parameter right-aligned: a bias of shape [n]
    /// is stored as [1, 1, 1, n].
    public let isLegacy: Bool
    /// Number of values (product of `dims`; 1 for no dims).
    public var count: Int { dims.reduce(1, *) }

    /// True when a parameter of shape `expected` can take this blob: equal dims, or for a
    /// legacy blob equal after padding `expected` on the left with 1s to 4 axes.
    public func fits(_ expected: [Int]) -> Bool {
        if dims == expected { return true }
        guard isLegacy, expected.count <= 4 else { return false }
        return dims == [Int](repeating: 1, count: 4 - expected.count) + expected
    }

    /// The dims, marked "(legacy)" for a num/channels/height/width shape.
    public var description: String { "\(dims)\(isLegacy ? " (legacy)" : "")" }
}

/// A layer's `convolution_param` (Convolution and Deconvolution layers), normalised as Caffe
/// does: spatial sizes as [h, w] from `*_h`/`*_w` or from the repeated field (one value
/// for both axes, or one per axis).
public struct CaffeConvolutionParameters: Sendable, Equatable {
    /// `num_output`, if given.
    public var numOutput: Int?
    /// `bias_term` (default true): false means the layer stores its weight blob only.
    public var biasTerm = true
    /// Kernel [h, w] (empty when not given).
    public var kernel: [Int] = []
    /// Stride [h, w] (default [1, 1]).
    public var stride = [1, 1]
    /// Padding [h, w] (default [0, 0]).
    public var pad = [0, 0]
    /// Dilation [h, w] (default [1, 1]).
    public var dilation = [1, 1]
    /// `group` (default 1).
    public var group = 1
}

/// A layer's `power_param`: y = (shift + scale * x) ^ power.
public struct CaffePowerParameters: Sendable, Equatable {
    /// The exponent (default 1).
    public var power: Float = 1
    /// The factor applied to the input (default 1).
    public var scale: Float = 1
    /// The offset added after scaling (default 0).
    public var shift: Float = 0
    /// Caffe's defaults, or the given values.
    public init(power: Float = 1, scale: Float = 1, shift: Float = 0) { self.power = power; self.scale = scale; self.shift = shift }
}

/// One layer of a caffemodel without its values.
public struct CaffeLayerInfo: Sendable {
    /// The layer's name (`conv1_1`, `score_fr`, ...).
    public let name: String
    /// The layer type as Caffe names it now ("Convolution", "Deconvolution", "Scale",
    /// "Power", ...); V1 enum values are translated (CONVOLUTION -> "Convolution"), unknown
    /// ones read "V1 type N".
    public let type: String
    /// Input and output blob names.
    public let bottoms: [String], tops: [String]
    /// Shapes of the stored blobs (weights first, then bias, for the layers with them).
    public let blobShapes: [CaffeBlobShape]
    /// `convolution_param`, when the layer has one.
    public let convolution: CaffeConvolutionParameters?
    /// `power_param`, when the layer has one.
    public let power: CaffePowerParameters?
    /// Where each blob's BlobProto lies in the file and which value field it uses.
    let blobSources: [BlobSource]
}

/// Location of one BlobProto's values.
struct BlobSource: Sendable {
    let range: Range<Int>
    let count: Int
    let usesDoubles: Bool
}

/// One layer of a caffemodel with its blobs decoded.
public struct CaffeLayer: Sendable {
    /// Name, type, blob shapes and parameters.
    public let info: CaffeLayerInfo
    /// The blobs as Float32 tensors of shape `info.blobShapes[i].dims`.
    public let blobs: [Tensor]
    /// The layer's name.
    public var name: String { info.name }
    /// The layer's type ("Convolution", ...).
    public var type: String { info.type }
}

/// Every layer of a caffemodel, in file order, with decoded blobs.
public struct CaffeModelContents: Sendable {
    /// `NetParameter.name`, if present.
    public let name: String?
    /// Whether the file uses `layer` or the legacy `layers`.
    public let format: CaffeLayerFormat
    /// The layers in file order (layers without blobs included).
    public let layers: [CaffeLayer]

    /// The first layer named `name`.
    public func layer(named name: String) -> CaffeLayer? { layers.first { $0.name == name } }
}

/// Reading `.caffemodel` files.
public enum CaffeModel {
    /// Reads every layer of the caffemodel at `path`, decoding all blobs (see
    /// `CaffeModelFile` to decode one blob at a time).
    public static func read(path: String) throws -> CaffeModelContents {
        try CaffeModelFile(path: path).contents()
    }

    /// Reads an in-memory caffemodel (`name` stands for the file in errors).
    public static func read(data: Data, name: String = "<memory>") throws -> CaffeModelContents {
        try CaffeModelFile(data: data, name: name).contents()
    }
}

/// A caffemodel opened for reading: the file is memory-mapped and its structure parsed
/// when opened; blobs are decoded to Float32 on request. Safe to read from several threads.
public final class CaffeModelFile: @unchecked Sendable {
    /// `NetParameter.name`, if present.
    public let name: String?
    /// Whether the file uses `layer` or the legacy `layers`.
    public let format: CaffeLayerFormat
    /// The layers in file order, without values.
    public let layers: [CaffeLayerInfo]
    private let region: ByteRegion
    private let path: String

    /// Opens (memory-maps) and parses the structure of `path`. Throws `FCNError` for
    /// unreadable, truncated or corrupt files and for files that are no caffemodel.
    public convenience init(path: String) throws {
        try self.init(region: ByteRegion.mapping(path: path), path: path)
    }

    /// Parses an in-memory caffemodel (copied once; `name` stands for it in errors).
    public convenience init(data: Data, name: String = "<memory>") throws {
        try self.init(region: ByteRegion.copying(data), path: name)
    }

    private init(region: ByteRegion, path: String) throws {
        self.region = region
        self.path = path
        var netName: String?
        var current: [CaffeLayerInfo] = [], legacy: [CaffeLayerInfo] = []
        var r = ProtobufReader(base: region.base, range: 0..<region.count)
        try Self.inContext("caffemodel '\(path)'") {
            while let f = try r.next() {
                switch f.number {
                case 1:
                    try ProtobufReader.expect(f, .lengthDelimited, "NetParameter.name")
                    netName = r.string(f)
                case 100, 2:
                    try ProtobufReader.expect(f, .lengthDelimited, f.number == 100 ? "NetParameter.layer" : "NetParameter.layers")
                    let index = current.count + legacy.count
                    let info = try Self.inContext("layer \(index)") {
                        try Self.parseLayer(r.message(f), v1: f.number == 2)
                    }
                    if f.number == 100 { current.append(info) } else { legacy.append(info) }
                default:
                    continue
                }
            }
        }
        guard current.isEmpty || legacy.isEmpty else {
            throw FCNError.invalidFormat("caffemodel '\(path)': has both 'layer' (\(current.count)) and legacy 'layers' (\(legacy.count)) lists, as Caffe refuses too")
        }
        guard !(current.isEmpty && legacy.isEmpty) else {
            throw FCNError.invalidFormat("caffemodel '\(path)': no layers (not a binary NetParameter; a .prototxt holds no weights)")
        }
        name = netName
        format = legacy.isEmpty ? .current : .v1
        layers = legacy.isEmpty ? current : legacy
    }

    /// The first layer named `name`, with its index.
    public func layer(named name: String) -> (index: Int, info: CaffeLayerInfo)? {
        guard let i = layers.firstIndex(where: { $0.name == name }) else { return nil }
        return (i, layers[i])
    }

    /// Blob `blob` of layer `layer` as a Float32 tensor of its stored shape.
    public func tensor(layer: Int, blob: Int) throws -> Tensor {
        let shape = layers[layer].blobShapes[blob]
        var failure: Error?
        let t = Tensor.make(shape: shape.dims) { out in
            do { try decode(layer: layer, blob: blob, into: out) } catch {
                failure = error
                out.initialize(repeating: 0)
            }
        }
        if let failure { throw failure }
        return t
    }

    /// Decodes blob `blob` of layer `layer` into `out`, whose count must equal the blob's
    /// (`layers[layer].blobShapes[blob].count`), then releases the blob's pages of the file.
    public func decode(layer: Int, blob: Int, into out: UnsafeMutableBufferPointer<Float>) throws {
        let info = layers[layer], src = info.blobSources[blob]
        fcnCheck(out.count == src.count, "CaffeModelFile.decode",
                 "layer '\(info.name)' blob \(blob) holds \(src.count) values, the buffer \(out.count)")
        try Self.inContext("caffemodel '\(path)': layer '\(info.name)' blob \(blob)") {
            try Self.decodeValues(region.base, src, into: out) { region.dropPages(offset: $0.lowerBound, length: $0.count) }
        }
    }

    /// Every layer with its blobs decoded.
    public func contents() throws -> CaffeModelContents {
        var out: [CaffeLayer] = []
        out.reserveCapacity(layers.count)
        for (i, info) in layers.enumerated() {
            out.append(CaffeLayer(info: info, blobs: try (0..<info.blobShapes.count).map { try tensor(layer: i, blob: $0) }))
        }
        return CaffeModelContents(name: name, format: format, layers: out)
    }

    // MARK: Parsing

    /// Runs `body`, prefixing the message of an `FCNError.invalidFormat` with `context`.
    static func inContext<T>(_ context: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch FCNError.invalidFormat(let m) {
            throw FCNError.invalidFormat("\(context): \(m)")
        }
    }

    private static func parseLayer(_ message: ProtobufReader, v1: Bool) throws -> CaffeLayerInfo {
        var r = message
        var name = "", type = v1 ? "V1 type 0" : ""
        var bottoms: [String] = [], tops: [String] = []
        var blobs: [(CaffeBlobShape, BlobSource)] = []
        var convMessages: [ProtobufReader] = [], powerMessages: [ProtobufReader] = []
        let f = v1 ? (name: 4, type: 5, bottom: 2, top: 3, blobs: 6, conv: 10, power: 21)
                   : (name: 1, type: 2, bottom: 3, top: 4, blobs: 7, conv: 106, power: 122)
        while let field = try r.next() {
            switch field.number {
            case f.name:
                try ProtobufReader.expect(field, .lengthDelimited, "name")
                name = r.string(field)
            case f.type:
                if v1 {
                    try ProtobufReader.expect(field, .varint, "type")
                    type = v1LayerTypeName(field.bits)
                } else {
                    try ProtobufReader.expect(field, .lengthDelimited, "type")
                    type = r.string(field)
                }
            case f.bottom:
                try ProtobufReader.expect(field, .lengthDelimited, "bottom")
                bottoms.append(r.string(field))
            case f.top:
                try ProtobufReader.expect(field, .lengthDelimited, "top")
                tops.append(r.string(field))
            case f.blobs:
                try ProtobufReader.expect(field, .lengthDelimited, "blobs")
                let index = blobs.count
                blobs.append(try inContext("'\(name)' blob \(index)") { try parseBlob(r.message(field)) })
            case f.conv:
                try ProtobufReader.expect(field, .lengthDelimited, "convolution_param")
                convMessages.append(r.message(field))
            case f.power:
                try ProtobufReader.expect(field, .lengthDelimited, "power_param")
                powerMessages.append(r.message(field))
            case 1 where v1:
                throw FCNError.unsupported("layer '\(name)' uses the V0 layer format; upgrade the file with Caffe's upgrade_net_proto_binary")
            default:
                continue
            }
        }
        let conv = convMessages.isEmpty ? nil : try inContext("'\(name)' convolution_param") { try parseConvolution(convMessages) }
        let power = powerMessages.isEmpty ? nil : try inContext("'\(name)' power_param") { try parsePower(powerMessages) }
        return CaffeLayerInfo(name: name, type: type, bottoms: bottoms, tops: tops, blobShapes: blobs.map(\.0),
                              convolution: conv, power: power, blobSources: blobs.map(\.1))
    }

    private static func parseBlob(_ message: ProtobufReader) throws -> (CaffeBlobShape, BlobSource) {
        var r = message
        var dims: [Int] = []
        var legacy: [Int?] = [nil, nil, nil, nil]
        var floats = 0, doubles = 0
        func dimension(_ v: UInt64, _ what: String, at offset: Int) throws -> Int {
            let d = Int64(bitPattern: v)
            guard d >= 0, d <= Int64(Int32.max) else { throw ProtobufReader.error("\(what) \(d) is out of range", at: offset) }
            return Int(d)
        }
        while let f = try r.next() {
            switch f.number {
            case 1, 2, 3, 4:
                try ProtobufReader.expect(f, .varint, ["num", "channels", "height", "width"][f.number - 1])
                legacy[f.number - 1] = try dimension(f.bits, "legacy dimension", at: f.offset)
            case 7:
                try ProtobufReader.expect(f, .lengthDelimited, "shape")
                var s = r.message(f)
                while let d = try s.next() {
                    guard d.number == 1 else { continue }
                    for v in try s.varints(d, "BlobShape.dim") { dims.append(try dimension(v, "dimension", at: d.offset)) }
                }
            case 5:
                switch f.wireType {
                case .fixed32: floats += 1
                case .lengthDelimited:
                    guard f.payload.count % 4 == 0 else { throw ProtobufReader.error("packed float data of \(f.payload.count) bytes", at: f.offset) }
                    floats += f.payload.count / 4
                default: try ProtobufReader.expect(f, .fixed32, "data")
                }
            case 8:
                switch f.wireType {
                case .fixed64: doubles += 1
                case .lengthDelimited:
                    guard f.payload.count % 8 == 0 else { throw ProtobufReader.error("packed double data of \(f.payload.count) bytes", at: f.offset) }
                    doubles += f.payload.count / 8
                default: try ProtobufReader.expect(f, .fixed64, "double_data")
                }
            default:
                continue
            }
        }
        let isLegacy = legacy.contains { $0 != nil }
        let shape = isLegacy ? legacy.map { $0 ?? 0 } : dims
        var product = 1, overflow = false
        for d in shape where !overflow { (product, overflow) = product.multipliedReportingOverflow(by: d) }
        let count = doubles > 0 ? doubles : floats
        guard !overflow, product == count else {
            throw FCNError.invalidFormat("shape \(shape) needs \(overflow ? "too many" : String(product)) values but the blob holds \(count) \(doubles > 0 ? "double" : "float") values")
        }
        return (CaffeBlobShape(dims: shape, isLegacy: isLegacy),
                BlobSource(range: message.position..<message.end, count: count, usesDoubles: doubles > 0))
    }

    /// Parses the `convolution_param` messages of a layer (a message given twice is merged,
    /// as protobuf does: repeated values append, single values are replaced).
    private static func parseConvolution(_ messages: [ProtobufReader]) throws -> CaffeConvolutionParameters {
        var p = CaffeConvolutionParameters()
        var pad: [Int] = [], kernel: [Int] = [], stride: [Int] = [], dilation: [Int] = []
        var hw: [Int: Int] = [:]   // pad_h/w (9, 10), kernel_h/w (11, 12), stride_h/w (13, 14)
        func value(_ v: UInt64, _ f: ProtobufField) throws -> Int {
            guard v <= UInt64(Int32.max) else { throw ProtobufReader.error("value \(v) of field \(f.number) is out of range", at: f.offset) }
            return Int(v)
        }
        for message in messages {
            var r = message
            while let f = try r.next() {
                switch f.number {
                case 1: try ProtobufReader.expect(f, .varint, "num_output"); p.numOutput = try value(f.bits, f)
                case 2: try ProtobufReader.expect(f, .varint, "bias_term"); p.biasTerm = f.bits != 0
                case 5: try ProtobufReader.expect(f, .varint, "group"); p.group = try value(f.bits, f)
                case 3: pad += try r.varints(f, "pad").map { try value($0, f) }
                case 4: kernel += try r.varints(f, "kernel_size").map { try value($0, f) }
                case 6: stride += try r.varints(f, "stride").map { try value($0, f) }
                case 18: dilation += try r.varints(f, "dilation").map { try value($0, f) }
                case 9...14: try ProtobufReader.expect(f, .varint, "field \(f.number)"); hw[f.number] = try value(f.bits, f)
                default: continue
                }
            }
        }
        /// [h, w] from `*_h`/`*_w` (fields `hField`, `hField + 1`) or from the repeated values.
        func pair(_ repeated: [Int], _ hField: Int?, _ what: String, default d: [Int]) throws -> [Int] {
            if let hField, hw[hField] != nil || hw[hField + 1] != nil {
                guard repeated.isEmpty else { throw FCNError.invalidFormat("both \(what) and \(what)_h/w are given") }
                guard let h = hw[hField] ?? (what == "pad" ? 0 : nil), let w = hw[hField + 1] ?? (what == "pad" ? 0 : nil) else {
                    throw FCNError.invalidFormat("\(what)_h and \(what)_w must be given together")
                }
                return [h, w]
            }
            switch repeated.count {
            case 0: return d
            case 1: return [repeated[0], repeated[0]]
            case 2: return repeated
            default: throw FCNError.unsupported("\(what) has \(repeated.count) values (only 2-D convolutions are read)")
            }
        }
        p.pad = try pair(pad, 9, "pad", default: [0, 0])
        p.kernel = try pair(kernel, 11, "kernel", default: [])
        p.stride = try pair(stride, 13, "stride", default: [1, 1])
        p.dilation = try pair(dilation, nil, "dilation", default: [1, 1])
        return p
    }

    /// Parses the `power_param` messages of a layer (merged when given twice).
    private static func parsePower(_ messages: [ProtobufReader]) throws -> CaffePowerParameters {
        var p = CaffePowerParameters()
        for message in messages {
            var r = message
            while let f = try r.next() {
                switch f.number {
                case 1: p.power = try ProtobufReader.float(f, "power")
                case 2: p.scale = try ProtobufReader.float(f, "scale")
                case 3: p.shift = try ProtobufReader.float(f, "shift")
                default: continue
                }
            }
        }
        return p
    }

    // MARK: Decoding

    /// Bytes of the file decoded between two releases of their pages.
    static let releaseChunk = 16 << 20

    /// Decodes the values of `src` into `out`, calling `release` with each decoded range of
    /// the file (every `releaseChunk` bytes and at the end) so its pages can be dropped.
    private static func decodeValues(_ base: UnsafeRawPointer, _ src: BlobSource, into out: UnsafeMutableBufferPointer<Float>,
                                     release: (Range<Int>) -> Void) throws {
        var r = ProtobufReader(base: base, range: src.range)
        let wanted = src.usesDoubles ? 8 : 5
        var k = 0
        var released = src.range.lowerBound
        func releaseUpTo(_ end: Int) {
            if end - released >= releaseChunk || end == src.range.upperBound { release(released..<end); released = end }
        }
        defer { releaseUpTo(src.range.upperBound) }
        func overrun(_ f: ProtobufField) -> FCNError {
            ProtobufReader.error("more values than the \(src.count) counted when the file was opened (was it modified?)", at: f.offset)
        }
        while let f = try r.next() {
            guard f.number == wanted else { continue }
            switch f.wireType {
            case .fixed32 where !src.usesDoubles:
                guard k < src.count else { throw overrun(f) }
                out[k] = Float(bitPattern: UInt32(truncatingIfNeeded: f.bits)); k += 1
            case .fixed64 where src.usesDoubles:
                guard k < src.count else { throw overrun(f) }
                out[k] = Float(Double(bitPattern: f.bits)); k += 1
            case .lengthDelimited:
                let size = src.usesDoubles ? 8 : 4
                let n = f.payload.count / size
                guard f.payload.count % size == 0, n <= src.count - k else { throw overrun(f) }
                // In runs of releaseChunk bytes, releasing each run's pages once decoded.
                var done = 0
                while done < n {
                    let m = min(n - done, releaseChunk / size)
                    let p = base + f.payload.lowerBound + done * size
                    if src.usesDoubles {
                        for i in 0..<m { out[k + i] = Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
                    } else {
                        #if _endian(little)
                        UnsafeMutableRawPointer(out.baseAddress! + k).copyMemory(from: p, byteCount: 4 * m)
                        #else
                        for i in 0..<m { out[k + i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                        #endif
                    }
                    k += m; done += m
                    releaseUpTo(f.payload.lowerBound + done * size)
                }
            default:
                throw ProtobufReader.error("value field with wire type \(f.wireType.name)", at: f.offset)
            }
            releaseUpTo(r.position)
        }
        guard k == src.count else {
            throw FCNError.invalidFormat("\(k) values where \(src.count) were counted when the file was opened (was it modified?)")
        }
    }
}

/// Caffe's current type string of a V1LayerParameter.LayerType value (the names Caffe's
/// upgrade_proto gives them), or "V1 type N" for a value caffe.proto does not define.
func v1LayerTypeName(_ value: UInt64) -> String {
    let names: [UInt64: String] = [
        0: "None", 35: "AbsVal", 1: "Accuracy", 30: "ArgMax", 2: "BNLL", 3: "Concat", 37: "ContrastiveLoss",
        4: "Convolution", 5: "Data", 39: "Deconvolution", 6: "Dropout", 32: "DummyData", 7: "EuclideanLoss",
        25: "Eltwise", 38: "Exp", 8: "Flatten", 9: "HDF5Data", 10: "HDF5Output", 28: "HingeLoss", 11: "Im2col",
        12: "ImageData", 13: "InfogainLoss", 14: "InnerProduct", 15: "LRN", 29: "MemoryData",
        16: "MultinomialLogisticLoss", 34: "MVN", 17: "Pooling", 26: "Power", 18: "ReLU", 19: "Sigmoid",
        27: "SigmoidCrossEntropyLoss", 36: "Silence", 20: "Softmax", 21: "SoftmaxWithLoss", 22: "Split",
        33: "Slice", 23: "TanH", 24: "WindowData", 31: "Threshold",
    ]
    return names[value] ?? "V1 type \(value)"
}
