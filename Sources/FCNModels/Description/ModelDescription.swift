// ModelDescription: everything needed to rebuild and use a segmentation network, written
// into every model file the library writes (safetensors metadata key `fcn.model`, JSON,
// versioned) so that train -> evaluate -> segment needs no flags.
//
// JSON layout (version 1; keys in this order when written, unknown keys are ignored on read):
//
//     {"format": "swift-fcn.model", "version": 1,
//      "architecture": "fcn8s",            // ModelArchitecture raw value
//      "classes": 21,
//      "class_names": ["background", ...], // optional, `classes` entries
//      "palette": [[0, 0, 0], ...],        // optional, `classes` RGB triples 0...255
//      "input": {"channel_order": "bgr", "value_scale": 1,
//                "mean": [104.00698793, 116.66876762, 122.67891434], "std": [1, 1, 1]},
//      "ignore_label": 255,
//      "output_stride": 8,                 // written for other tools; checked on read
//      "vgg": {"width": 1, "padding": "caffe", "learned_upsampling": false},  // VGG FCNs
//      "resnet": {"auxiliary_head": true}} // fcn_resnet50 / fcn_resnet101
//
// Reading is strict: a missing or malformed required key, a version newer than this
// library's, or values that contradict each other throw `FCNError` naming the key.
import Foundation
import FCNCore
import FCNIO

/// The network architectures the library builds, by the names the tools use (`--model`).
public enum ModelArchitecture: String, Sendable, CaseIterable, CustomStringConvertible {
    /// VGG16 FCNs with 32-, 16- and 8-pixel-stride skip fusion (`VGGFCN`).
    case fcn32s, fcn16s, fcn8s
    /// VGG16 FCN-8s trained in one stage (the reference's "at once" model, fixed pool scalings).
    case fcn8sAtOnce = "fcn8s-atonce"
    /// VGG16 FCN-8s with one more skip, from pool2 (stride 4); not a reference net.
    case fcn4s
    /// ResNet-18 backbone with FCN-8s style skips (`ResNetFCN8s`): the small one.
    case resnet18FCN8s = "resnet18-fcn8s"
    /// ResNet-34 backbone with FCN-8s style skips (`ResNetFCN8s`), seed 002's model.
    case resnet34FCN8s = "resnet34-fcn8s"
    /// torchvision's FCN with a dilated ResNet-50 backbone (`DilatedResNetFCN`).
    case fcnResNet50 = "fcn_resnet50"
    /// torchvision's FCN with a dilated ResNet-101 backbone (`DilatedResNetFCN`).
    case fcnResNet101 = "fcn_resnet101"

    /// The VGG16 variant of the VGG FCNs, nil for the ResNet ones.
    public var vggVariant: VGGFCNVariant? {
        switch self {
        case .fcn32s: return .fcn32s
        case .fcn16s: return .fcn16s
        case .fcn8s: return .fcn8s
        case .fcn8sAtOnce: return .fcn8sAtOnce
        case .fcn4s: return .fcn4s
        default: return nil
        }
    }

    /// The architecture of a VGG FCN variant.
    public init(_ variant: VGGFCNVariant) {
        switch variant {
        case .fcn32s: self = .fcn32s
        case .fcn16s: self = .fcn16s
        case .fcn8s: self = .fcn8s
        case .fcn8sAtOnce: self = .fcn8sAtOnce
        case .fcn4s: self = .fcn4s
        }
    }

    /// True for the VGG FCNs (width, padding and learned upsampling apply).
    public var isVGG: Bool { vggVariant != nil }

    /// True for torchvision's fcn_resnet50/101 (the auxiliary head applies).
    public var isTorchvisionFCN: Bool { self == .fcnResNet50 || self == .fcnResNet101 }

    /// The input convention of the architecture's published weights: Caffe BGR mean for the
    /// VGG FCNs, torchvision's ImageNet mean/std for the ResNet ones.
    public var publishedInput: InputPreprocessing { isVGG ? .caffe : .torchvision }

    /// Stride of the finest score map before the last upsampling: 32, 16, 8 or 4.
    public var outputStride: Int {
        switch self {
        case .fcn32s: return 32
        case .fcn16s: return 16
        case .fcn4s: return 4
        default: return 8
        }
    }

    /// The `--model` name.
    public var description: String { rawValue }

    /// The names, for messages: "fcn32s, fcn16s, ...".
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// What a model is and how to use it; see the file comment for the JSON form.
public struct ModelDescription: Sendable, Equatable {
    /// The metadata key of safetensors files that holds the JSON.
    public static let metadataKey = "fcn.model"
    /// The metadata key naming a prefix of the model's tensor names (a training checkpoint
    /// stores them as `model.<name>`); absent means no prefix.
    public static let tensorPrefixKey = "fcn.model.prefix"
    /// The `format` value of the JSON.
    public static let format = "swift-fcn.model"
    /// The JSON version this library writes; it reads this one and older ones.
    public static let version = 1

    /// The network architecture.
    public var architecture: ModelArchitecture
    /// Number of classes (channels of the scores), 1...256 (labels are bytes).
    public var classes: Int
    /// VGG only: channel width multiplier (1 = the published VGG16 widths).
    public var width: Double
    /// VGG only: `.caffe` (100-pixel margin, the published nets) or `.same`.
    public var padding: VGGFCNPadding
    /// VGG only: the bilinear upsampling layers are trainable (otherwise fixed).
    public var learnedUpsampling: Bool
    /// fcn_resnet50/101 only: the auxiliary head on layer3 is present (trained with
    /// weight 0.5, not run at inference).
    public var auxiliaryHead: Bool
    /// One name per class, or nil (numbers are shown).
    public var classNames: [String]?
    /// One colour per class for label images and overlays, or nil (the VOC palette).
    public var palette: [PaletteColor]?
    /// How RGB 0...255 images become the network input.
    public var input: InputPreprocessing
    /// The label value that marks pixels to ignore in training and evaluation.
    public var ignoreLabel: Int

    /// A description. Defaults: 21 classes (PASCAL VOC), the published width and layout,
    /// fixed upsampling, no auxiliary head, the architecture's published input convention
    /// (`input: nil`), ignore label 255 (VOC's boundary label).
    public init(architecture: ModelArchitecture, classes: Int = 21, width: Double = 1, padding: VGGFCNPadding = .caffe,
                learnedUpsampling: Bool = false, auxiliaryHead: Bool = false, classNames: [String]? = nil,
                palette: [PaletteColor]? = nil, input: InputPreprocessing? = nil, ignoreLabel: Int = 255) {
        self.architecture = architecture; self.classes = classes; self.width = width; self.padding = padding
        self.learnedUpsampling = learnedUpsampling; self.auxiliaryHead = auxiliaryHead
        self.classNames = classNames; self.palette = palette
        self.input = input ?? architecture.publishedInput; self.ignoreLabel = ignoreLabel
    }

    /// Stride of the finest score map (`ModelArchitecture.outputStride`).
    public var outputStride: Int { architecture.outputStride }

    /// The name of class `c`: its class name, or the number.
    public func className(_ c: Int) -> String {
        if let names = classNames, c >= 0 && c < names.count { return names[c] }
        return String(c)
    }

    /// The colours of the classes: `palette`, or the PASCAL VOC palette.
    public var colors: [PaletteColor] { palette ?? vocPalette(count: max(classes, 1)) }

    /// Throws `FCNError.mismatch` naming the first inconsistent field.
    public func validate() throws {
        func fail(_ m: String) -> FCNError { .mismatch("model description: " + m) }
        guard (1...256).contains(classes) else { throw fail("classes must be 1...256 (labels are bytes), got \(classes)") }
        guard width > 0 && width.isFinite && width <= 16 else { throw fail("width must be in (0, 16], got \(width)") }
        if let n = classNames {
            guard n.count == classes else { throw fail("\(n.count) class names for \(classes) classes") }
            guard !n.contains(where: \.isEmpty) else { throw fail("a class name is empty") }
        }
        if let p = palette, p.count != classes { throw fail("\(p.count) palette colours for \(classes) classes") }
        guard (0...255).contains(ignoreLabel) else { throw fail("ignore_label must be 0...255, got \(ignoreLabel)") }
        if !architecture.isVGG && (width != 1 || padding != .caffe || learnedUpsampling) {
            throw fail("width, padding and learned upsampling apply to the VGG FCNs only, not \(architecture)")
        }
        if auxiliaryHead && !architecture.isTorchvisionFCN {
            throw fail("the auxiliary head applies to fcn_resnet50/101 only, not \(architecture)")
        }
    }

    /// The same description with the names, palette and input convention of `other` where
    /// it has them (used to carry a trained model's metadata into a fresh one).
    public func withMetadata(classNames: [String]?, palette: [PaletteColor]?, input: InputPreprocessing?) -> ModelDescription {
        var d = self
        if let classNames { d.classNames = classNames }
        if let palette { d.palette = palette }
        if let input { d.input = input }
        return d
    }
}

/// The 21 PASCAL VOC class names, background first (VOC's class ids 0...20).
public let vocClassNames = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
                            "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                            "train", "tvmonitor"]
