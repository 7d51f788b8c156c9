// Input normalisation for the two conventions FCN weights are trained with.
//
// Images come as RGB in 0...255, `[3, H, W]` or `[N, 3, H, W]` (what decoders and
// SyntheticShapes give).
// * Caffe (the reference FCN, VGG16 from Caffe): channels reordered to BGR, values kept in
//   0...255, minus the per-channel mean (104.00698793, 116.66876762, 122.67891434) (BGR).
// * torchvision (fcn_resnet50/101, ImageNet backbones): RGB / 255, minus mean
//   (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225).

/// How a network expects its input image normalised.
public enum InputNormalization: Sendable {
    /// The Caffe FCNs (VGG16): BGR, 0...255, minus `caffeMeanBGR`, no scaling.
    case caffe
    /// torchvision models (ResNet, fcn_resnet50/101): RGB / 255, minus `imagenetMean`,
    /// divided by `imagenetStd`.
    case torchvision

    /// Caffe FCN mean in BGR order (0...255 scale).
    public static let caffeMeanBGR: [Float] = [104.00698793, 116.66876762, 122.67891434]
    /// ImageNet mean, RGB, 0...1 scale.
    public static let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    /// ImageNet standard deviation, RGB, 0...1 scale.
    public static let imagenetStd: [Float] = [0.229, 0.224, 0.225]

    /// The raw RGB (0...255) pixel that normalises to zero: pad images with it before
    /// normalising so padding reads as "no signal".
    public var meanPixelRGB: [Float] {
        switch self {
        case .caffe: return InputNormalization.caffeMeanBGR.reversed()
        case .torchvision: return InputNormalization.imagenetMean.map { $0 * 255 }
        }
    }

    /// Normalises an RGB 0...255 image `[3, H, W]` or batch `[N, 3, H, W]` (same shape out;
    /// for `.caffe` the channels come out in BGR order).
    public func apply(_ image: Tensor) -> Tensor {
        fcnCheck((image.rank == 3 && image.shape[0] == 3) || (image.rank == 4 && image.shape[1] == 3),
                 "InputNormalization.apply", "expected an RGB image [3, H, W] or batch [N, 3, H, W], got \(image.shape)")
        let batch = image.rank == 4 ? image.shape[0] : 1
        let hw = image.shape[image.rank - 1] * image.shape[image.rank - 2]
        let src = image.storage.pointer
        // Caffe: out[c] = in[2 - c] - meanBGR[c]. torchvision: (in[c] / 255 - mean[c]) / std[c],
        // evaluated in this order as ToTensor + Normalize do.
        let isTV = self == .torchvision
        let from = isTV ? [0, 1, 2] : [2, 1, 0]
        let shift = isTV ? InputNormalization.imagenetMean : InputNormalization.caffeMeanBGR
        let std = InputNormalization.imagenetStd
        return Tensor.make(shape: image.shape) { out in
            for b in 0..<batch {
                for c in 0..<3 {
                    let s = src + (b * 3 + from[c]) * hw
                    let o = out.baseAddress! + (b * 3 + c) * hw
                    if isTV {
                        let m = shift[c], sd = std[c]
                        for i in 0..<hw { o[i] = (s[i] / 255 - m) / sd }
                    } else {
                        let m = shift[c]
                        for i in 0..<hw { o[i] = s[i] - m }
                    }
                }
            }
        }
    }
}
