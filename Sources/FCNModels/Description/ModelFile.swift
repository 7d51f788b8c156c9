// ModelFile: the one way to open a model file and to write one.
//
// `ModelFile.open(path)` reads safetensors, PyTorch (`torch.save`) and Caffe
// (`.caffemodel`) files, told apart by content (ModelFile+Formats.swift), and returns a
// ready network: built from the file's description, its
// weights loaded strictly, in eval mode, with its input convention attached
// (`scores(forRGB:)`). The description comes from, in this order:
//   1. the `fcn.model` metadata (every file this library writes: exported weights,
//      training checkpoints, whose tensors carry the prefix named by `fcn.model.prefix`);
//   2. the metadata of older files of this library (trainer checkpoints of format
//      `swift-fcn.checkpoint` version 1, weights exported with a `padding` entry);
//   3. the parameter names and shapes of a plain state dict (torchvision's fcn_resnet50/101,
//      Caffe-converted VGG FCNs, `Module.save`): the architecture from the layer names, the
//      classes from the score layer, the width from conv1_1. What names and shapes cannot
//      tell is the architecture's published default (VGG: the Caffe layout and input
//      convention), except FCN-8s against FCN-8s-at-once, whose weights are alike: there
//      the caller must say which.
// `ModelOverrides` are what a user states on the command line. Where the file describes the
// model, an override that contradicts it is an error naming both (the weights were trained
// for the file's value), unless `force` is set; where the file is silent it decides.
import Foundation
import FCNCore
import FCNIO

/// What a caller states about a model file; nil fields leave the file's values. Each field
/// is the library side of a command-line flag (named in the errors).
public struct ModelOverrides: Sendable, Equatable {
    /// `--model`: the architecture.
    public var architecture: ModelArchitecture?
    /// `--classes`: the number of classes.
    public var classes: Int?
    /// `--width`: the VGG width multiplier.
    public var width: Double?
    /// `--padding`: the VGG layout.
    public var padding: VGGFCNPadding?
    /// `--input`: the input convention.
    public var input: InputPreprocessing?
    /// `--class-names`: one name per class (metadata: never a contradiction).
    public var classNames: [String]?
    /// `--force`: use the overrides even where they contradict the file.
    public var force: Bool

    /// No overrides.
    public init(architecture: ModelArchitecture? = nil, classes: Int? = nil, width: Double? = nil,
                padding: VGGFCNPadding? = nil, input: InputPreprocessing? = nil, classNames: [String]? = nil,
                force: Bool = false) {
        self.architecture = architecture; self.classes = classes; self.width = width; self.padding = padding
        self.input = input; self.classNames = classNames; self.force = force
    }
}

/// Opens and writes model files (see the file comment).
public enum ModelFile {
    /// What `describe` found: the description, where the model's tensors are, and whether
    /// the description was stated by the file or inferred.
    public struct Contents: Sendable {
        /// The model to build (overrides applied).
        public var description: ModelDescription
        /// Prefix of the model's tensor names in the file ("" or "model.").
        public var tensorPrefix: String
        /// True when the file carried a description (`fcn.model` or older metadata of this library).
        public var isDescribed: Bool
    }

    /// Reads the description of the model in `path` without loading its weights.
    /// Throws `FCNError` for unreadable files, files that fit no architecture, ambiguous
    /// files (naming the flag that decides) and overrides that contradict the file.
    public static func describe(_ path: String, overrides: ModelOverrides = ModelOverrides()) throws -> Contents {
        switch try format(of: path) {
        case .pytorch:
            let file = try TorchCheckpointFile(path: path)
            let inferred = try inferFromTensors(file.entries.mapValues(\.shape), name: path, overrides: overrides)
            return Contents(description: try apply(overrides, to: inferred, stated: .shapes, file: path), tensorPrefix: "",
                            isDescribed: false)
        case .caffe:
            return Contents(description: try openCaffe(path, overrides: overrides).modelDescription, tensorPrefix: "",
                            isDescribed: false)
        case .safetensors:
            return try describe(SafeTensorsFile(path: path), name: path, overrides: overrides)
        }
    }

    /// `describe` of an open safetensors file (`name` is used in messages).
    public static func describe(_ file: SafeTensorsFile, name: String, overrides: ModelOverrides) throws -> Contents {
        if let json = file.metadata[ModelDescription.metadataKey] {
            let stated = try ModelDescription(json: json)
            let prefix = file.metadata[ModelDescription.tensorPrefixKey] ?? ""
            return Contents(description: try apply(overrides, to: stated, stated: .all, file: name), tensorPrefix: prefix,
                            isDescribed: true)
        }
        if file.metadata["fcn.format"] == legacyCheckpointFormat {
            let d = try legacyCheckpointDescription(file, name: name)
            return Contents(description: try apply(overrides, to: d, stated: .all, file: name), tensorPrefix: "model.",
                            isDescribed: true)
        }
        var inferred = try inferFromTensors(file.entries.mapValues(\.shape), name: name, overrides: overrides)
        var stated = StatedFields.shapes
        if let p = file.metadata["padding"] {
            // Weights exported by fcn-segment before descriptions existed.
            guard let padding = VGGFCNPadding(rawValue: p) else {
                throw FCNError.invalidFormat("'\(name)' declares padding '\(p)'; expected caffe or same")
            }
            inferred.padding = padding
            stated.insert(.padding)
        }
        return Contents(description: try apply(overrides, to: inferred, stated: stated, file: name), tensorPrefix: "",
                        isDescribed: false)
    }

    /// Opens `path` (see the file comment): the model built from its description, weights
    /// loaded strictly (every name and shape must match), eval mode.
    public static func open(_ path: String, overrides: ModelOverrides = ModelOverrides()) throws -> any SegmentationModel {
        switch try format(of: path) {
        case .pytorch: return try openPyTorch(path, overrides: overrides)
        case .caffe: return try openCaffe(path, overrides: overrides)
        case .safetensors: break
        }
        let file = try SafeTensorsFile(path: path)
        let contents = try describe(file, name: path, overrides: overrides)
        let model = try contents.description.makeModel(seed: 0)
        let prefix = contents.tensorPrefix
        let names = Set(file.names.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) })
        do {
            _ = try model.loadState(names: names, shape: { file.entries[prefix + $0]?.shape },
                                    tensor: { try file.tensor(prefix + $0) }, strict: true)
        } catch let FCNError.mismatch(m) {
            throw FCNError.mismatch("weights '\(path)' do not fit \(contents.description.architecture) (\(contents.isDescribed ? "as the file describes it" : "as inferred from its tensors")): \(m)")
        }
        model.eval()
        return model
    }

    /// Writes the model's state dict with its description (`fcn.model`) to `path`,
    /// atomically. `dtype` F16/BF16 halves the file (rounded to nearest even).
    public static func write(_ model: any SegmentationModel, to path: String, dtype: SafeTensorsDType = .f32) throws {
        try model.save(to: path, metadata: metadata(of: model.modelDescription), dtype: dtype)
    }

    /// The metadata entries that describe a model: `fcn.model` and, with a prefix,
    /// `fcn.model.prefix` (a training checkpoint's `model.`).
    public static func metadata(of description: ModelDescription, tensorPrefix: String = "") -> [String: String] {
        var m = [ModelDescription.metadataKey: description.json()]
        if !tensorPrefix.isEmpty { m[ModelDescription.tensorPrefixKey] = tensorPrefix }
        return m
    }

    /// The format tag of trainer checkpoints written before descriptions existed.
    static let legacyCheckpointFormat = "swift-fcn.checkpoint"
}

extension ModelDescription {
    /// A freshly initialised model of this description (`seed` fixes the initialisation;
    /// nil uses the shared `ParameterInit` generator). Score layers of the VGG FCNs start at
    /// zero, as in the reference.
    public func makeModel(seed: UInt64? = nil) throws -> any SegmentationModel {
        try validate()
        let model: any SegmentationModel
        if let variant = architecture.vggVariant {
            model = VGGFCN(variant: variant, classes: classes, width: width, seed: seed, zeroScoreLayers: true,
                           trainableUpsampling: learnedUpsampling, padding: padding)
        } else {
            if let seed { ParameterInit.seed(seed) }
            switch architecture {
            case .resnet18FCN8s: model = ResNetFCN8s(numClasses: classes, backbone: ResNet(.resnet18))
            case .resnet34FCN8s: model = ResNetFCN8s(numClasses: classes, backbone: ResNet(.resnet34))
            case .fcnResNet50: model = DilatedResNetFCN(depth: .resnet50, numClasses: classes, auxiliary: auxiliaryHead)
            default: model = DilatedResNetFCN(depth: .resnet101, numClasses: classes, auxiliary: auxiliaryHead)
            }
        }
        try model.setModelDescription(self)
        return model
    }
}
