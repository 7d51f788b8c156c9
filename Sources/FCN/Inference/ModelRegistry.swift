// The models the command-line tools know by name, how to build them, load their weights
// and wrap them for inference (input convention, geometry, batch-norm folding).
//
// Adding a model is one `case` in `SegmentationModelKind` and one branch in
// `ModelRegistry.network(for:weights:)`. The ResNet FCNs (Models/ResNet*.swift, torchvision
// layout, torchvision input convention) plug in like this once their sources are in the
// library (until then their names parse and report `FCNError.unsupported`; radii from
// `ReceptiveField`, see the numbers below, to verify with `estimatedReceptiveFieldRadius`):
//
//     case .resnet34FCN8s:
//         let m = ResNetFCN8s(numClasses: config.classes); try loadWeights(m, weights); m.eval()
//         return ClosureSegmentation(numClasses: config.classes, inputPreprocessing: .torchvision,
//                                    scoreStride: 1, translationStride: 32, receptiveFieldRadius: 544) { m($0) }
//     case .fcnResNet50, .fcnResNet101:
//         let aux = try weights.map { try SafeTensorsFile(path: $0).entries["aux_classifier.0.weight"] != nil } ?? false
//         let m = FCNResNet(depth: config.kind == .fcnResNet50 ? .resnet50 : .resnet101,
//                           numClasses: config.classes, auxiliary: aux)
//         try loadWeights(m, weights); m.eval()
//         let b = m.backbone
//         let trunk = foldedForInference(Sequential(b.conv1, b.bn1, b.relu, b.maxpool, b.layer1, b.layer2, b.layer3, b.layer4))
//         let head = foldedForInference(m.classifier)     // with FCNHead: BatchNormFoldable
//         return ClosureSegmentation(numClasses: config.classes, inputPreprocessing: .torchvision,
//                                    scoreStride: 8, translationStride: 8,
//                                    receptiveFieldRadius: config.kind == .fcnResNet50 ? 240 : 512) { head(trunk($0)) }
//
// (`foldedForInference` folds Conv2d+BatchNorm2d(+ReLU) runs of Sequentials; BasicBlock,
// Bottleneck and FCNHead need the three short `BatchNormFoldable` conformances sketched in
// BatchNormFolding.swift.)
//
// Receptive fields (one axis, `ReceptiveField` over the longest path; + one final jump for
// the upsampling taps, + one jump of slack for the centring):
//   VGG16 FCN (Caffe):      score_fr 404 -> 290 (see `VGGFCNSegmentation`)
//   ResNet-34 FCN-8s:       layer4 899 -> 449 + 32+16+8 (three deconvolutions) + 32 -> 544
//   fcn_resnet50 (dilated): classifier 443 -> 222 + 8 + 8 -> 240 (raw scores at stride 8)
//   fcn_resnet101:          classifier 987 -> 494 + 8 + 8 -> 512

import Foundation

/// The networks known by name (`--model` of fcn-segment).
public enum SegmentationModelKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case fcn32s, fcn16s, fcn8s
    case fcn8sAtOnce = "fcn8s-atonce"
    case resnet34FCN8s = "resnet34-fcn8s"
    case fcnResNet50 = "fcn_resnet50"
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
    /// FCNs, torchvision's ImageNet mean/std for the ResNet ones.
    public var inputPreprocessing: InputPreprocessing { vggVariant != nil ? .caffe : .torchvision }

    /// True for the models whose channel width can be scaled (`--width`).
    public var supportsWidth: Bool { vggVariant != nil }

    public var description: String { rawValue }
}

/// What to build: a model kind, its number of classes and (VGG only) width multiplier.
public struct SegmentationModelConfiguration: Sendable, Equatable {
    public var kind: SegmentationModelKind
    public var classes: Int
    public var width: Double

    public init(kind: SegmentationModelKind, classes: Int = 21, width: Double = 1) {
        self.kind = kind; self.classes = classes; self.width = width
    }
}

/// Any closure as a `SegmentationNetwork` (models whose raw scores are not the output of
/// one `Layer`, e.g. a backbone and a head run separately).
public final class ClosureSegmentation: SegmentationNetwork, @unchecked Sendable {
    public let numClasses: Int
    public let inputPreprocessing: InputPreprocessing
    public let scoreStride: Int
    public let translationStride: Int
    public let receptiveFieldRadius: Int
    private let body: @Sendable (Tensor) -> Tensor

    public init(numClasses: Int, inputPreprocessing: InputPreprocessing, scoreStride: Int = 1, translationStride: Int,
                receptiveFieldRadius: Int, _ body: @escaping @Sendable (Tensor) -> Tensor) {
        fcnCheck(scoreStride >= 1 && translationStride % scoreStride == 0, "ClosureSegmentation",
                 "translationStride \(translationStride) must be a positive multiple of scoreStride \(scoreStride)")
        self.numClasses = numClasses; self.inputPreprocessing = inputPreprocessing
        self.scoreStride = scoreStride; self.translationStride = translationStride
        self.receptiveFieldRadius = receptiveFieldRadius; self.body = body
    }

    public func rawScores(_ input: Tensor) -> Tensor { withoutGrad { body(input) } }
}

/// Builds networks by name and loads their weights.
public enum ModelRegistry {
    /// Reads `classes` and `width` of a VGG FCN from a weights file's header (score_fr's
    /// output channels, conv1_1's over 64), nil where the file lacks those tensors.
    public static func inferVGGConfiguration(weights path: String) throws -> (classes: Int?, width: Double?) {
        let file = try SafeTensorsFile(path: path)
        let classes = file.entries["score_fr.weight"]?.shape.first
        let width = file.entries["conv1_1.weight"]?.shape.first.map { Double($0) / 64 }
        return (classes, width)
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
        if let variant = config.kind.vggVariant {
            let model = VGGFCN(variant: variant, classes: config.classes, width: config.width, seed: seed,
                               zeroScoreLayers: weights != nil)
            try loadWeights(model, weights)
            return VGGFCNSegmentation(model)
        }
        throw FCNError.unsupported("model \(config.kind) is not available in this build (the ResNet models are not compiled in); available: "
                                   + SegmentationModelKind.allCases.filter { $0.vggVariant != nil }.map(\.rawValue).joined(separator: ", "))
    }

    /// Loads `path` into `model` strictly (nil: nothing), with the file name in errors.
    public static func loadWeights(_ model: some Module, _ path: String?) throws {
        guard let path else { return }
        do { try model.load(from: path) } catch let e as FCNError {
            switch e {
            case .mismatch(let m): throw FCNError.mismatch("weights '\(path)' do not fit the model: \(m)")
            default: throw e
            }
        }
    }
}
