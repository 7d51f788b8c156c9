// The file formats `ModelFile.open` reads, told apart by content (the first bytes), not by
// the file name:
//   safetensors  8-byte little-endian header length, then a JSON object ('{');
//   PyTorch      a zip archive ("PK\u{3}\u{4}", what `torch.save` writes since 1.6) holding
//                `data.pkl` and the storages; a bare pickle (0x80, the format before 1.6)
//                is recognised to be refused with a clear message;
//   Caffe        anything else is read as a binary `NetParameter` (protobuf has no magic
//                number), and an error names the three formats tried.
// PyTorch state dicts are recognised from their names and shapes like safetensors ones;
// a caffemodel describes a reference VGG FCN by its layers (variant, classes, width), in
// the Caffe layout with the Caffe input convention.
import Foundation
import FCNCore
import FCNIO

/// The weight formats `ModelFile` reads.
public enum ModelFileFormat: String, Sendable, CaseIterable {
    /// safetensors (state dicts, exported weights, training checkpoints).
    case safetensors
    /// A PyTorch checkpoint written by `torch.save` (zip format).
    case pytorch
    /// A Caffe `.caffemodel` (binary `NetParameter`).
    case caffe
}

extension ModelFile {
    /// The format of the file at `path`, from its first bytes (see the file comment).
    public static func format(of path: String) throws -> ModelFileFormat {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FCNError.io("cannot open '\(path)'")
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 9)) ?? Data())
        if head.count >= 4 && head[0] == 0x50 && head[1] == 0x4B && (head[2] == 3 || head[2] == 5) { return .pytorch }
        if head.first == 0x80 { return .pytorch }
        if head.count == 9 && head[8] == UInt8(ascii: "{") && head[4..<8].allSatisfy({ $0 == 0 }) { return .safetensors }
        return .caffe
    }

    /// Opens a PyTorch checkpoint: the description from its names and shapes.
    static func openPyTorch(_ path: String, overrides: ModelOverrides) throws -> any SegmentationModel {
        let file = try TorchCheckpointFile(path: path)
        let inferred = try inferFromTensors(file.entries.mapValues(\.shape), name: path, overrides: overrides)
        let description = try apply(overrides, to: inferred, stated: .shapes, file: path)
        let model = try description.makeModel(seed: 0)
        do {
            _ = try model.loadStateDict(from: file)
        } catch let FCNError.mismatch(m) {
            throw FCNError.mismatch("weights '\(path)' do not fit \(description.architecture) (as inferred from its tensors): \(m)")
        }
        model.eval()
        return model
    }

    /// Opens a caffemodel: a reference VGG FCN, its blobs decoded straight into the
    /// parameters (no second copy of the weights in memory).
    static func openCaffe(_ path: String, overrides: ModelOverrides) throws -> any SegmentationModel {
        let file: CaffeModelFile
        do {
            file = try CaffeModelFile(path: path)
        } catch let e as FCNError {
            throw FCNError.invalidFormat("'\(path)' is not a safetensors file, a PyTorch checkpoint or a caffemodel (read as a caffemodel: \(e))")
        }
        let net = try VGGFCN.fromCaffeModel(file)
        let stated = net.modelDescription
        let description = try apply(overrides, to: stated, stated: [.architecture, .classes, .width, .padding], file: path)
        var structural = description
        structural.classNames = stated.classNames; structural.palette = stated.palette
        structural.input = stated.input; structural.ignoreLabel = stated.ignoreLabel
        guard structural == stated else {
            throw FCNError.mismatch("'\(path)' holds \(stated.architecture) with \(stated.classes) classes at width \(stated.width) in the Caffe layout; the overrides ask for another network")
        }
        try net.setModelDescription(description)
        net.eval()
        return net
    }
}
