// ONNX export of the library's segmentation models, through the library's own protobuf
// writer (no ONNX or protobuf package).
//
// The file is a ModelProto (onnx.proto field numbers):
//   ir_version 1 = 8, producer_name 2 = "swift-fcn", graph 7, opset_import 8 = {domain 1 "",
//   version 2 = 17}, metadata_props 14 = {key 1 "fcn.model", value 2 = the model
//   description's JSON}, so a file names its architecture, classes and input convention
//   just as the safetensors files of the library do.
// The graph (ONNXGraph.swift) has one input "input" `[batch, 3, height, width]` and one
// output "scores" `[batch, classes, height, width]` (float32), the model's eval-mode
// forward pass: the input is preprocessed as the metadata's "input" says (the exporter
// adds no normalisation), and argmax over axis 1 gives the label map. Height and width
// are symbols ("height", "width"), and every crop, pad and resize is computed from the
// `Shape` of the tensors, so one file runs at any size the model accepts; with `fixedSize`
// they are numbers and those computations constants.
// Batch norms are folded into their convolutions with the library's folding
// (`FusedConv2d`, as `rawScoreLayer()` does), dropout is left out (the identity in eval
// mode), and the weights are float32 initializers (raw_data, little-endian).
// Per family, the graph follows the forward pass op by op: VGGFCN in ONNXExport+VGG.swift,
// ResNetFCN8s and DilatedResNetFCN in ONNXExport+ResNet.swift.
import Foundation
import FCNCore
import FCNIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a segmentation model as an ONNX file (see the file comment for its layout).
///
///     let model = try ModelFile.open("fcn8s.safetensors")
///     try ONNXExport.write(model, to: "fcn8s.onnx")        // any input size
///     try ONNXExport.write(model, to: "fcn8s-500.onnx", fixedSize: (height: 500, width: 500))
///
/// In Python: `onnxruntime.InferenceSession("fcn8s.onnx").run(None, {"input": x})[0]` are
/// the scores of the library's `model(x)` (x preprocessed as the metadata `fcn.model`
/// says). Models: `VGGFCN` (both paddings, every variant), `ResNetFCN8s`, `DilatedResNetFCN`.
public enum ONNXExport {
    /// The ONNX IR version written (8: ONNX 1.12 and later read it).
    public static let irVersion = 8
    /// The version of the default operator set ("ai.onnx") the graph uses.
    public static let opsetVersion = 17
    /// Name of the graph input `[batch, 3, height, width]`.
    public static let inputName = "input"
    /// Name of the graph output `[batch, classes, height, width]`.
    public static let outputName = "scores"
    /// The metadata key holding the model description's JSON (`ModelDescription.metadataKey`).
    public static let metadataKey = ModelDescription.metadataKey
    /// The operator types an exported graph may contain.
    public static let operatorTypes: Set<String> = [
        "Conv", "Relu", "MaxPool", "ConvTranspose", "Add", "Mul", "Slice", "Pad", "Resize",
        "Shape", "Concat", "Sub", "Div",
    ]
    /// Largest file protobuf can describe (2 GiB - 1); larger models would need ONNX's
    /// external data, which is not written.
    public static let maxFileSize = Int(Int32.max)

    /// The ONNX file of `model` in memory.
    ///
    /// - Parameters:
    ///   - model: a `VGGFCN`, `ResNetFCN8s` or `DilatedResNetFCN` (its eval-mode forward pass is
    ///     exported whatever its mode).
    ///   - fixedSize: nil (default) for symbolic height and width; a size fixes the input's
    ///     height and width (the batch stays symbolic).
    /// - Throws: `FCNError.unsupported` for another model type or a model over 2 GiB,
    ///   `FCNError.mismatch` for a fixed size the model cannot take.
    public static func data(_ model: any SegmentationModel, fixedSize: (height: Int, width: Int)? = nil) throws -> [UInt8] {
        let (graph, output) = try build(model, fixedSize: fixedSize)
        let size = ProtobufWriter.encodedSize { encodeModel(&$0, model, graph, output) }
        try checkSize(size)
        var w = ProtobufWriter()
        w.reserveCapacity(size)
        encodeModel(&w, model, graph, output)
        return w.bytes
    }

    /// Writes the ONNX file of `model` to `path` atomically: the bytes are streamed to a
    /// temporary file in the same folder, flushed to disk and renamed over `path`, so an
    /// interrupted export leaves any previous file untouched. Parameters and errors as
    /// `data(_:fixedSize:)`, plus `FCNError.io`.
    public static func write(_ model: any SegmentationModel, to path: String, fixedSize: (height: Int, width: Int)? = nil) throws {
        let (graph, output) = try build(model, fixedSize: fixedSize)
        try checkSize(ProtobufWriter.encodedSize { encodeModel(&$0, model, graph, output) })
        try writeAtomically(path) { sink in
            var w = ProtobufWriter(sink: sink)
            encodeModel(&w, model, graph, output)
            try w.finish()
        }
    }

    /// The graph of `model` and its output value.
    static func build(_ model: any SegmentationModel, fixedSize: (height: Int, width: Int)?) throws -> (ONNXGraphBuilder, ONNXValue) {
        if let s = fixedSize, s.height < 1 || s.width < 1 {
            throw FCNError.mismatch("ONNX export: the fixed size must be at least 1x1, got \(s.height)x\(s.width)")
        }
        var g = ONNXGraphBuilder(inputName: inputName, channels: 3, fixedSize: fixedSize.map { ($0.height, $0.width) })
        let scores: ONNXValue
        switch model {
        case let m as VGGFCN: scores = try vggScores(m, &g)
        case let m as ResNetFCN8s: scores = try resnetFCN8sScores(m, &g)
        case let m as DilatedResNetFCN: scores = try fcnResNetScores(m, &g)
        default:
            throw FCNError.unsupported("ONNX export knows VGGFCN, ResNetFCN8s and DilatedResNetFCN, not \(type(of: model))")
        }
        guard scores.channels == model.numClasses else {
            throw FCNError.mismatch("ONNX export: the graph ends with \(scores.channels) channels for \(model.numClasses) classes")
        }
        let output = g.rename(scores, to: outputName)
        return (g, output)
    }

    /// The ModelProto of `model`'s graph.
    static func encodeModel(_ w: inout ProtobufWriter, _ model: any SegmentationModel, _ graph: ONNXGraphBuilder, _ output: ONNXValue) {
        encodeModel(&w, description: model.modelDescription, graph, output)
    }

    /// The ModelProto of a graph described by `description`.
    static func encodeModel(_ w: inout ProtobufWriter, description: ModelDescription, _ graph: ONNXGraphBuilder, _ output: ONNXValue) {
        w.int(1, irVersion)
        w.string(2, "swift-fcn")
        w.message(7) { graph.encodeGraph(&$0, name: description.architecture.rawValue, docString: docString(description), output: output) }
        w.message(8) { $0.string(1, ""); $0.int(2, opsetVersion) }
        w.message(14) { $0.string(1, metadataKey); $0.string(2, description.json()) }
    }

    /// The graph's doc string: what goes in and what comes out.
    static func docString(_ d: ModelDescription) -> String {
        let i = d.input
        let order = i.channelOrder.rawValue.uppercased()
        let scale = i.valueScale == 1 ? "0...255" : "0...255 divided by \(i.valueScale)"
        return "\(d.architecture) with \(d.classes) classes, exported by swift-fcn. Input '\(inputName)' [batch, 3, height, width]: "
            + "\(order) pixels, \(scale), minus mean \(i.mean), divided by std \(i.std). Output '\(outputName)' "
            + "[batch, \(d.classes), height, width]: class scores; argmax over axis 1 gives the labels. "
            + "The model description is the metadata '\(metadataKey)'."
    }

    private static func checkSize(_ size: Int) throws {
        guard size <= maxFileSize else {
            throw FCNError.unsupported("ONNX export: the model needs \(size) bytes, over protobuf's limit of 2 GiB")
        }
    }

    /// Runs `body` with a sink writing to a temporary file beside `path`, then flushes the
    /// file to disk and renames it onto `path`; removes the temporary file on any error.
    static func writeAtomically(_ path: String, _ body: (@escaping (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().path + "/." + url.lastPathComponent
            + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw FCNError.io("cannot create a temporary file beside '\(path)': \(String(cString: strerror(errno)))") }
        var closed = false
        do {
            try body { try writeAll(fd, $0, path: path) }
            guard fsync(fd) == 0 else { throw FCNError.io("cannot flush '\(path)': \(String(cString: strerror(errno)))") }
            closed = true
            guard close(fd) == 0 else { throw FCNError.io("cannot close '\(path)': \(String(cString: strerror(errno)))") }
            guard rename(tmp, path) == 0 else {
                throw FCNError.io("cannot rename the temporary file onto '\(path)': \(String(cString: strerror(errno)))")
            }
        } catch {
            if !closed { close(fd) }
            unlink(tmp)
            throw error
        }
        #else
        var data = Data()
        try body { data.append(contentsOf: $0) }
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw FCNError.io("cannot write '\(path)': \(error.localizedDescription)")
        }
        #endif
    }
}

#if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
/// Writes all of `bytes` to the file descriptor `fd` (retrying short and interrupted writes).
private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    var p = bytes.baseAddress, left = bytes.count
    while left > 0 {
        let n = write(fd, p, left)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw FCNError.io("cannot write '\(path)': \(String(cString: strerror(errno)))") }
        p = p! + n; left -= n
    }
}
#endif
