// The models the command-line tools know by name, how to build them, load their weights
// and wrap them for inference (input convention, geometry, batch-norm folding).
//
// Adding a model is one `case` in `SegmentationModelKind` and one branch in
// `ModelRegistry.network(for:weights:)`: build the model, load its weights, wrap it in
// `ModelSegmentation` (any `TileableSegmentationModel`: the model states its input
// convention, geometry and folded inference copy; see SegmentationNetwork.swift and
// ResNet+Folding.swift for the receptive-field numbers).

import Foundation

/// The networks known by name (`--model` of fcn-segment).
public enum SegmentationModelKind: String, Sendable, CaseIterable, CustomStringConvertible {
    /// VGG16 FCNs with 32-, 16- and 8-pixel-stride skip fusion (Caffe layout).
    case fcn32s, fcn16s, fcn8s
    /// VGG16 FCN-8s trained in one stage (the reference's "at once" model).
    case fcn8sAtOnce = "fcn8s-atonce"
    /// ResNet-34 backbone with FCN-8s style skips.
    case resnet34FCN8s = "resnet34-fcn8s"
    /// torchvision's FCN with a ResNet-50 backbone.
    case fcnResNet50 = "fcn_resnet50"
    /// torchvision's FCN with a ResNet-101 backbone.
    case fcnResNet101 = "fcn_resnet101"

    /// The VGG16 variant for the Caffe-layout models, nil for the ResNet ones.
    public var vggVariant: VGGFCNVariant? {
        switch self {
        case .fcn32s: return .fcn32s
        case .fcn16s: return .fcn16s
        case .fcn8s: return .fcn8s
        case .fcn8sAtOnce: return .fcn8sAtOnce
        default: return nil
        }
    }

    /// The input convention of the model's published weights: Caffe BGR mean for the VGG
    /// FCNs, torchvision's ImageNet mean/std for the ResNet ones (the built models'
    /// `preferredPreprocessing`).
    public var inputPreprocessing: InputPreprocessing { vggVariant != nil ? .caffe : .torchvision }

    /// The weights tensor whose first dimension is the number of classes.
    var classifierWeightName: String {
        switch self {
        case .resnet34FCN8s: return "scores1.weight"
        case .fcnResNet50, .fcnResNet101: return "classifier.4.weight"
        default: return "score_fr.weight"
        }
    }

    /// True for the models whose channel width can be scaled (`--width`).
    public var supportsWidth: Bool { vggVariant != nil }

    /// The `--model` name.
    public var description: String { rawValue }
}

/// What to build: a model kind, its number of classes and (VGG only) width multiplier.
public struct SegmentationModelConfiguration: Sendable, Equatable {
    /// The network to build.
    public var kind: SegmentationModelKind
    /// Number of classes of the score layer.
    public var classes: Int
    /// Channel width multiplier (VGG only; 1 is the published size).
    public var width: Double
    /// Padding layout (VGG only): `.caffe`, the published nets, or `.same`.
    public var padding: VGGFCNPadding

    /// A configuration; 21 classes (PASCAL VOC), width 1 and the Caffe layout by default,
    /// matching the published weights.
    public init(kind: SegmentationModelKind, classes: Int = 21, width: Double = 1, padding: VGGFCNPadding = .caffe) {
        self.kind = kind; self.classes = classes; self.width = width; self.padding = padding
    }
}

/// Builds networks by name and loads their weights.
public enum ModelRegistry {
    /// Reads `classes` and `width` of a VGG FCN from a weights file's header (score_fr's
    /// output channels, conv1_1's over 64), nil where the file lacks those tensors, and the
    /// padding layout from its metadata (`padding`, as `--export-weights` writes it), nil
    /// when absent (the weights alone cannot tell the layouts apart).
    /// A trainer checkpoint (`fcn-train`'s `checkpoint.safetensors`) is read the same way:
    /// its `model.` tensors and its `info.padding`.
    public static func inferVGGConfiguration(weights path: String) throws
        -> (classes: Int?, width: Double?, padding: VGGFCNPadding?) {
        let file = try SafeTensorsFile(path: path)
        let checkpoint = isTrainingCheckpoint(file)
        let prefix = checkpoint ? "model." : ""
        let classes = file.entries[prefix + "score_fr.weight"]?.shape.first
        let width = file.entries[prefix + "conv1_1.weight"]?.shape.first.map { Double($0) / 64 }
        var padding: VGGFCNPadding? = nil
        if let p = file.metadata[checkpoint ? "info.padding" : "padding"] {
            guard let v = VGGFCNPadding(rawValue: p) else {
                throw FCNError.mismatch("weights '\(path)' declare padding '\(p)'; expected caffe or same")
            }
            padding = v
        }
        return (classes, width, padding)
    }

    /// Reads the number of classes of a `kind` model from a weights file's header (the
    /// output channels of its score layer), nil where the file lacks that tensor.
    public static func inferClasses(kind: SegmentationModelKind, weights path: String) throws -> Int? {
        let file = try SafeTensorsFile(path: path)
        return file.entries[(isTrainingCheckpoint(file) ? "model." : "") + kind.classifierWeightName]?.shape.first
    }

    /// True when `file` is a trainer checkpoint (`TrainingCheckpoint`), whose model tensors
    /// carry a `model.` prefix beside the optimizer state.
    static func isTrainingCheckpoint(_ file: SafeTensorsFile) -> Bool {
        file.metadata["fcn.format"] == TrainingCheckpoint.format
    }

    /// The inference network for `config`, with weights from `weights` (a safetensors file
    /// with the model's state-dict names, loaded strictly) or, when nil, the model's own
    /// initialisation with `seed`. Throws `FCNError` for unreadable or mismatching files and
    /// for models not available in this build.
    public static func network(for config: SegmentationModelConfiguration, weights: String?,
                               seed: UInt64 = 0) throws -> any SegmentationNetwork {
        guard config.classes >= 1 && config.classes <= 256 else {
            throw FCNError.mismatch("classes must be 1...256 (labels are bytes), got \(config.classes)")
        }
        guard config.width > 0 && config.width.isFinite else {
            throw FCNError.mismatch("width must be a positive number, got \(config.width)")
        }
        switch config.kind {
        case .fcn32s, .fcn16s, .fcn8s, .fcn8sAtOnce:
            let model = VGGFCN(variant: config.kind.vggVariant!, classes: config.classes, width: config.width, seed: seed,
                               zeroScoreLayers: weights != nil, padding: config.padding)
            try loadWeights(model, weights)
            return ModelSegmentation(model)
        case .resnet34FCN8s:
            if weights == nil { ParameterInit.seed(seed) }
            let model = ResNetFCN8s(numClasses: config.classes, backbone: ResNet(.resnet34))
            try loadWeights(model, weights)
            return ModelSegmentation(model)
        case .fcnResNet50, .fcnResNet101:
            if weights == nil { ParameterInit.seed(seed) }
            // torchvision's published weights include the auxiliary head: build it when the
            // file has it, so that the strict load accepts the file (it is not run).
            let auxiliary = try weights.map { try SafeTensorsFile(path: $0).entries["aux_classifier.0.weight"] != nil } ?? false
            let model = FCNResNet(depth: config.kind == .fcnResNet50 ? .resnet50 : .resnet101, numClasses: config.classes,
                                  auxiliary: auxiliary)
            try loadWeights(model, weights)
            return ModelSegmentation(model)
        }
    }

    /// Loads `path` into `model` strictly (nil: nothing), with the file name in errors. The
    /// file is a state dict (plain names) or a trainer checkpoint (its `model.` tensors).
    public static func loadWeights(_ model: some Module, _ path: String?) throws {
        guard let path else { return }
        do {
            let file = try SafeTensorsFile(path: path)
            if isTrainingCheckpoint(file) {
                // Only the `model.` tensors are read and converted; the optimizer state stays on disk.
                guard file.metadata["fcn.version"] == TrainingCheckpoint.version else {
                    throw FCNError.unsupported("checkpoint '\(path)' has version \(file.metadata["fcn.version"] ?? "missing"); this library reads version \(TrainingCheckpoint.version)")
                }
                let prefix = "model."
                let names = Set(file.names.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) })
                _ = try model.loadState(names: names, shape: { file.entries[prefix + $0]?.shape },
                                    tensor: { try file.tensor(prefix + $0) }, strict: true)
            } else {
                try model.loadStateDict(from: file)
            }
        } catch let e as FCNError {
            switch e {
            case .mismatch(let m): throw FCNError.mismatch("weights '\(path)' do not fit the model: \(m)")
            default: throw e
            }
        }
    }
}
