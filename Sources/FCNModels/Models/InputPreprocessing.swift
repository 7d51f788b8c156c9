// Input conventions of the pretrained FCNs: how an RGB image with values 0...255 becomes
// the network input. Two conventions are in use and a model only works with the one its
// weights were trained with (the model description records it):
//   caffe:       the Berkeley FCN (VGG16) models. Channels reordered RGB -> BGR, values
//                kept in 0...255, minus the per-channel mean
//                (B, G, R) = (104.00698793, 116.66876762, 122.67891434); no scaling by std.
//   torchvision: the ImageNet-pretrained torchvision backbones (ResNet, fcn_resnet50/101,
//                seed 002's ResNet-34 FCN-8s). RGB kept, x/255, minus
//                (0.485, 0.456, 0.406), divided by (0.229, 0.224, 0.225), as
//                `transforms.ToTensor()` then `transforms.Normalize(mean, std)`.
// Both take `[N, 3, H, W]` (or one image `[3, H, W]`) RGB in 0...255 and compute in
// Float32 in the same order as the reference code: torchvision `(x / 255 - mean) / std`,
// caffe `x - mean`. The result is input data, not part of a graph: no gradient is recorded.

import FCNIO
import FCNCore

/// The input convention of a model's weights: how an RGB image with values 0...255
/// becomes the network input (see the file comment). Part of every `ModelDescription`, so
/// it travels with the weights.
///
/// Output channel `c` reads input channel `order == .bgr ? 2 - c : c`, then
/// `(x / valueScale - mean[c]) / std[c]`. `.caffe` and `.torchvision` are the two
/// conventions of published FCN weights; any other is a value of this type too.
public struct InputPreprocessing: Sendable, Hashable, CustomStringConvertible {
    /// Channel order of the network input.
    public enum ChannelOrder: String, Sendable, Hashable, CaseIterable {
        /// Red, green, blue (torchvision).
        case rgb
        /// Blue, green, red (Caffe, OpenCV).
        case bgr
    }

    /// Channel order of the network input.
    public var channelOrder: ChannelOrder
    /// Divisor applied to the 0...255 values before the mean: 1 (caffe) or 255 (torchvision).
    public var valueScale: Float
    /// Per-channel mean in the OUTPUT channel order and scale: BGR in 0...255 for caffe,
    /// RGB in 0...1 for torchvision.
    public var mean: [Float]
    /// Per-channel divisor after the mean is removed: 1 for caffe.
    public var std: [Float]

    /// A convention; `mean` and `std` have 3 entries, `valueScale` and `std` are positive
    /// and finite (checked: a precondition failure naming the bad value).
    public init(channelOrder: ChannelOrder, valueScale: Float, mean: [Float], std: [Float]) {
        fcnCheck(mean.count == 3 && std.count == 3, "InputPreprocessing",
                 "mean and std need 3 values (one per channel), got \(mean.count) and \(std.count)")
        fcnCheck(valueScale > 0 && valueScale.isFinite && std.allSatisfy { $0 > 0 && $0.isFinite }
                 && mean.allSatisfy(\.isFinite), "InputPreprocessing",
                 "valueScale and std must be positive and finite, mean finite; got \(valueScale), \(std), \(mean)")
        self.channelOrder = channelOrder; self.valueScale = valueScale; self.mean = mean; self.std = std
    }

    /// Caffe FCNs (the Berkeley VGG16 models): RGB -> BGR, 0...255, minus the BGR mean, no std.
    public static let caffe = InputPreprocessing(channelOrder: .bgr, valueScale: 1,
                                                 mean: [104.00698793, 116.66876762, 122.67891434], std: [1, 1, 1])
    /// torchvision models: RGB, /255, ImageNet mean and std.
    public static let torchvision = InputPreprocessing(channelOrder: .rgb, valueScale: 255,
                                                       mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    /// The named conventions, as command-line flags spell them.
    public static let named: [(name: String, value: InputPreprocessing)] = [("caffe", .caffe), ("torchvision", .torchvision)]

    /// The convention called `name` ("caffe" or "torchvision"), nil for other names.
    public init?(named name: String) {
        guard let v = Self.named.first(where: { $0.name == name })?.value else { return nil }
        self = v
    }

    /// "caffe" or "torchvision" for the named conventions, nil for others.
    public var name: String? { Self.named.first(where: { $0.value == self })?.name }

    /// True when the network input is BGR (caffe).
    public var isBGR: Bool { channelOrder == .bgr }

    /// The name, or the values of a custom convention.
    public var description: String {
        name ?? "\(channelOrder.rawValue.uppercased()), /\(valueScale), mean \(mean), std \(std)"
    }

    /// The raw RGB (0...255) pixel that preprocesses to zero: pad images with it before
    /// preprocessing so padding reads as "no signal".
    public var meanPixelRGB: [Float] {
        return isBGR ? mean.reversed().map { $0 * valueScale } : mean.map { $0 * valueScale }
    }

    /// Converts `[N, 3, H, W]` RGB in 0...255 into the network input of this convention
    /// (same shape). Output channel `c` reads input channel `2 - c` for caffe (BGR) and `c`
    /// for torchvision; then `(x / valueScale - mean[c]) / std[c]`.
    public func apply(_ rgb: Tensor) -> Tensor {
        fcnCheck((rgb.rank == 4 && rgb.shape[1] == 3) || (rgb.rank == 3 && rgb.shape[0] == 3), "InputPreprocessing.apply",
                 "expected RGB input [N, 3, H, W] or [3, H, W] with values 0...255, got shape \(rgb.shape)")
        let n = rgb.rank == 4 ? rgb.shape[0] : 1, plane = rgb.shape[rgb.rank - 2] * rgb.shape[rgb.rank - 1]
        let mean = self.mean, std = self.std, bgr = isBGR, scale = valueScale
        let x = rgb.detached()
        if x.count == 0 { return x }
        return Tensor.make(shape: rgb.shape) { out in
            let src = x.storage.pointer
            for b in 0..<n {
                for c in 0..<3 {
                    let from = src + (b * 3 + (bgr ? 2 - c : c)) * plane
                    let to = out.baseAddress! + (b * 3 + c) * plane
                    let m = mean[c], s = std[c]
                    if scale == 1 && s == 1 {
                        for i in 0..<plane { to[i] = from[i] - m }
                    } else {
                        for i in 0..<plane { to[i] = (from[i] / scale - m) / s }
                    }
                }
            }
        }
    }

    /// The inverse of `apply`: network input back to RGB in 0...255 (for visualising
    /// inputs). Exact up to float rounding.
    public func invert(_ input: Tensor) -> Tensor {
        fcnCheck(input.rank == 4 && input.shape[1] == 3, "InputPreprocessing.invert",
                 "expected [N, 3, H, W], got shape \(input.shape)")
        let n = input.shape[0], plane = input.shape[2] * input.shape[3]
        let mean = self.mean, std = self.std, bgr = isBGR, scale = valueScale
        let x = input.detached()
        if x.count == 0 { return x }
        return Tensor.make(shape: input.shape) { out in
            let src = x.storage.pointer
            for b in 0..<n {
                for c in 0..<3 {
                    let from = src + (b * 3 + c) * plane
                    let to = out.baseAddress! + (b * 3 + (bgr ? 2 - c : c)) * plane
                    let m = mean[c], s = std[c]
                    for i in 0..<plane { to[i] = (from[i] * s + m) * scale }
                }
            }
        }
    }
}
