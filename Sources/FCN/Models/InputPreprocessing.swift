// Input conventions of the pretrained FCNs: how an RGB image with values 0...255 becomes
// the network input. Two conventions exist and a model only works with the one its
// weights were trained with:
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

/// The input normalisation a model's weights expect (see the file comment).
public enum InputPreprocessing: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Caffe FCNs: RGB -> BGR, 0...255, minus the BGR mean, no std.
    case caffe
    /// torchvision models: RGB, /255, ImageNet mean and std.
    case torchvision

    /// Per-channel mean in the OUTPUT channel order and scale: BGR in 0...255 for caffe,
    /// RGB in 0...1 for torchvision.
    public var mean: [Float] {
        switch self {
        case .caffe: return [104.00698793, 116.66876762, 122.67891434]
        case .torchvision: return [0.485, 0.456, 0.406]
        }
    }

    /// Per-channel divisor after the mean is removed: 1 for caffe.
    public var std: [Float] {
        switch self {
        case .caffe: return [1, 1, 1]
        case .torchvision: return [0.229, 0.224, 0.225]
        }
    }

    /// True when the network input is BGR (caffe).
    public var isBGR: Bool { self == .caffe }

    /// Divisor applied to the 0...255 values before the mean: 1 (caffe) or 255 (torchvision).
    public var valueScale: Float { self == .caffe ? 1 : 255 }

    /// The raw value: "caffe" or "torchvision".
    public var description: String { rawValue }

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
