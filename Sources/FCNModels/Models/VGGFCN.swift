// The VGG16 fully convolutional networks of Long, Shelhamer and Darrell in the layout of
// the Caffe reference nets (fcn.berkeleyvision.org voc-fcn32s, voc-fcn16s, voc-fcn8s,
// voc-fcn8s-atonce), with the Caffe layer names as parameter names.
//
//   input [N, 3, H, W]
//   conv1_1 (pad 100) relu conv1_2 relu pool1            3x3 convs, pad 1 except conv1_1
//   conv2_1 relu conv2_2 relu pool2                       pools: 2x2 stride 2, ceil mode
//   conv3_1 .. conv3_3 (relu) pool3  -> score_pool3 (8s) 1x1 conv
//   conv4_1 .. conv4_3 (relu) pool4  -> score_pool4 (16s, 8s) 1x1 conv
//   conv5_1 .. conv5_3 (relu) pool5
//   fc6 (7x7 conv, pad 0) relu drop6   fc7 (1x1) relu drop7   score_fr (1x1 to classes)
//   32s: upscore (64x64 s32)                                       crop 19 to the input
//   16s: upscore2 (4x4 s2) + crop(score_pool4, 5); upscore16 (32x32 s16); crop 27
//   8s:  ... + crop(score_pool3, 9) after upscore_pool4 (4x4 s2); upscore8 (16x16 s8); crop 31
//   8s at-once: as 8s with pool4 * 0.01 and pool3 * 0.0001 fed to the score layers.
//   4s:  as 8s up to the pool3 fuse, then upscore_pool3 (4x4 s2) + crop(score_pool2, 17);
//        upscore4 (8x8 s4); crop 33. Not a reference net: the paper's next step of skip
//        fusion (section 4.2), for thin structures that stride 8 blurs.
// Upsampling layers are transposed convolutions without bias holding the bilinear kernel,
// frozen (requiresGrad false) as the reference trains them with learning rate 0. The crop
// offsets come from `FCNGeometry.vgg16CropOffsets()` (composed coordinate maps), not
// constants. The pad of 100 makes every crop fit for any input from 1x1 up, so the scores
// always have the input's spatial size.
//
// Parameter names and their order equal the PyTorch port in
// Tests/Fixtures/gen_models.py (class VGGFCN), which registers modules in the order
// of the Caffe prototxt: conv1_1.weight, conv1_1.bias, ..., conv5_3.bias, fc6.*, fc7.*,
// score_fr.*, then upscore (32s) | upscore2, score_pool4, upscore16 (16s) | upscore2,
// score_pool4, upscore_pool4, score_pool3, upscore8 (8s) | upscore2, score_pool4,
// upscore_pool4, score_pool3, upscore_pool3, score_pool2, upscore4 (4s).
//
// Width multiplier: every channel count n becomes max(1, round(n * width)) (round half to
// even, as Python's round), keeping the topology; width 1 is the published network.
//
// Every conv + ReLU pair runs as one `conv2d(..., fusedReLU: true)` call, in training and
// inference (same values and gradients as a separate ReLU, one pass and one tensor less).

import FCNCore
import FCNIO

/// The four VGG16 FCNs of the reference implementation, and FCN-4s.
public enum VGGFCNVariant: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Single stream, 32x upsampling of score_fr.
    case fcn32s = "32s"
    /// score_fr upsampled 2x and fused with pool4's scores, then 16x.
    case fcn16s = "16s"
    /// As 16s, then fused with pool3's scores and upsampled 8x.
    case fcn8s = "8s"
    /// FCN-8s trained in one stage: pool4 scaled by 0.01 and pool3 by 0.0001 before scoring.
    case fcn8sAtOnce = "8s-atonce"
    /// As 8s, then fused with pool2's scores and upsampled 4x. Not one of the reference
    /// nets: the next step of the paper's skip fusion, which resolves structures a few
    /// pixels wide that stride 8 blurs (the synthetic shapes' bars).
    case fcn4s = "4s"

    /// Stride of the finest prediction that is fused (32, 16, 8 or 4).
    public var outputStride: Int {
        switch self {
        case .fcn32s: return 32
        case .fcn16s: return 16
        case .fcn8s, .fcn8sAtOnce: return 8
        case .fcn4s: return 4
        }
    }

    /// The paper's name: "FCN-32s", "FCN-16s", "FCN-8s", "FCN-8s-atonce" or "FCN-4s".
    public var description: String { "FCN-" + rawValue }
}

/// How a `VGGFCN` pads, which fixes its crops.
///
/// - `caffe`: the reference nets. conv1_1 pads by 100 and fc6 not at all, so the coarse
///   maps overhang the image and every fusion crops (offsets 19 / 5, 27 / 9, 31). Works for
///   any input from 1x1 up, at the price of computing conv1-conv5 on a (H+198) x (W+198)
///   canvas: 9.5x the work of the image itself at 96x96, 1.9x at 500x500.
/// - `same`: every convolution keeps its input's size (conv1_1 pad 1, fc6 pad 3) and the
///   bilinear upsamplings are padded by half their factor, so all grids align at offset 0
///   (`FCNGeometry.vgg16CropOffsets(padding: .same)`); a longer map is cut at its end to
///   its partner's size, so any input from 1x1 up works too. Same parameters and names as
///   `caffe` (weights move freely between the two), but the features near the border see
///   zero padding instead of the 100-pixel margin, so a net trained in one layout should be
///   run in the same one.
public enum VGGFCNPadding: String, Sendable, CaseIterable {
    /// The reference layout: conv1_1 pad 100, fc6 pad 0, crops after every upsampling.
    case caffe
    /// Size-preserving convolutions and aligned upsampling; crop offsets all 0.
    case same
}

/// Channel counts of VGG16 and the width-multiplier rounding shared by `VGGFCN` and
/// `VGG16Classifier`.
public enum VGG16Config {
    /// Output channels of the 3x3 convolutions, stage by stage (conv1_1 ... conv5_3).
    public static let stages: [[Int]] = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
    /// Width of fc6/fc7 (classifier.0 / classifier.3).
    public static let hidden = 4096

    /// `max(1, round(n * width))` with Python's rounding (half to even), the rule of the
    /// PyTorch reference models in the tests.
    public static func channels(_ n: Int, width: Double) -> Int {
        max(1, Int((Double(n) * width).rounded(.toNearestOrEven)))
    }

    /// Caffe layer names of the 13 convolutions: conv1_1, conv1_2, conv2_1, ..., conv5_3.
    public static let convolutionNames: [String] = stages.enumerated().flatMap { s, convs in
        (1...convs.count).map { "conv\(s + 1)_\($0)" }
    }

    /// Indices of the 13 convolutions inside torchvision's `vgg16().features`
    /// (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28): each conv is followed by a ReLU,
    /// each stage by a max pool.
    public static let torchvisionFeatureIndices: [Int] = {
        var out: [Int] = [], i = 0
        for stage in stages {
            for _ in stage { out.append(i); i += 2 }
            i += 1
        }
        return out
    }()
}

/// Intermediate blobs of a `VGGFCN` forward pass (see `VGGFCN.forwardWithTaps(_:)`).
public struct VGGFCNTaps: Sendable {
    /// After pool3 (stride 8), pool4 (stride 16) and pool5 (stride 32), before any scaling.
    public var pool3: Tensor, pool4: Tensor, pool5: Tensor
    /// fc7 activations after ReLU and dropout, `[N, 4096*width, h, w]`.
    public var fc7: Tensor
    /// Coarse class scores `[N, classes, h, w]` (stride 32).
    public var scoreFr: Tensor
    /// The network output `[N, classes, H, W]`.
    public var scores: Tensor
}

/// A VGG16 FCN (FCN-32s, FCN-16s, FCN-8s or FCN-8s at-once) in the Caffe reference layout.
///
/// Input `[N, 3, H, W]`, any `H, W >= 1`; output `[N, classes, H, W]` class scores (argmax
/// over axis 1 gives the label map). The reference feeds BGR images in 0...255 minus the
/// mean (104.007, 116.669, 122.679); a backbone loaded from torchvision expects RGB in
/// 0...1 normalised with ImageNet's mean and std instead.
///
///     let net = VGGFCN(variant: .fcn8s, classes: 21, seed: 1)
///     net.eval()
///     let scores = withoutGrad { net(image) }            // [1, 21, H, W]
///
/// New networks start in training mode (dropout active), as PyTorch modules do.
public final class VGGFCN: Layer, @unchecked Sendable {
    /// Which reference net this is; fixes the skip layers and upsampling modules present.
    public let variant: VGGFCNVariant
    /// Number of output classes: channels of score_fr, score_pool4/3 and of the output
    /// `[N, classes, H, W]`.
    public let classes: Int
    /// The width multiplier the network was built with.
    public let width: Double
    /// The padding scheme (`.caffe`, the reference, or `.same`).
    public let padding: VGGFCNPadding

    /// conv1_1 ... conv5_3 with their Caffe names, in order.
    public let convolutions: [(name: String, layer: Conv2d)]
    /// fc6: 7x7 convolution to 4096*width channels, no padding.
    public let fc6: Conv2d
    /// fc7: 1x1 convolution.
    public let fc7: Conv2d
    /// score_fr: 1x1 convolution to the classes.
    public let scoreFr: Conv2d
    /// Dropout 0.5 after fc6 and fc7 (identity in eval mode).
    public let drop6: Dropout, drop7: Dropout
    /// FCN-32s: 64x64 stride 32 bilinear upsampling.
    public let upscore: ConvTranspose2d?
    /// FCN-16s/8s: 4x4 stride 2 upsampling of score_fr.
    public let upscore2: ConvTranspose2d?
    /// FCN-16s/8s: 1x1 scores of pool4.
    public let scorePool4: Conv2d?
    /// FCN-16s: 32x32 stride 16 upsampling of the pool4 fuse.
    public let upscore16: ConvTranspose2d?
    /// FCN-8s: 4x4 stride 2 upsampling of the pool4 fuse.
    public let upscorePool4: ConvTranspose2d?
    /// FCN-8s: 1x1 scores of pool3.
    public let scorePool3: Conv2d?
    /// FCN-8s: 16x16 stride 8 upsampling of the pool3 fuse.
    public let upscore8: ConvTranspose2d?
    /// FCN-4s: 4x4 stride 2 upsampling of the pool3 fuse.
    public let upscorePool3: ConvTranspose2d?
    /// FCN-4s: 1x1 scores of pool2.
    public let scorePool2: Conv2d?
    /// FCN-4s: 8x8 stride 4 upsampling of the pool2 fuse.
    public let upscore4: ConvTranspose2d?
    package let descriptionBox: ModelDescriptionBox

    /// Training mode (dropout active; the default for a new network, as in PyTorch) or eval
    /// mode (dropout is the identity). Set it for the whole tree with `train()` / `eval()`.
    public var isTraining = true

    /// Crop offsets (Caffe Crop layer, from the top-left) of the reference layout derived
    /// from the layer geometry: 19 (32s), 5 and 27 (16s), 9 and 31 (8s), 17 and 33 (4s).
    public static let cropOffsets = FCNGeometry.vgg16CropOffsets()
    /// Crop offsets of the `.same` layout: all 0.
    static let sameCropOffsets = FCNGeometry.vgg16CropOffsets(padding: .same)

    /// Builds a network.
    ///
    /// - Parameters:
    ///   - variant: which of the four reference nets, or FCN-4s.
    ///   - classes: number of output classes (21 for PASCAL VOC).
    ///   - width: channel multiplier (1 = the published VGG16 widths; each count n becomes
    ///     `max(1, round(n * width))`). Smaller widths keep the topology (tests, experiments).
    ///   - seed: initialisation seed of the convolutions and the dropout masks (nil: the
    ///     shared `ParameterInit` generator). conv1_1 ... fc7 get PyTorch's default
    ///     initialisation; normally they are then replaced by VGG16 weights
    ///     (`fromClassifier`, `loadBackbone(fromTorchvision:)`).
    ///   - zeroScoreLayers: score_fr and the score_pool layers start at zero (default
    ///     true), as in the reference, whose prototxts give them no filler; false uses
    ///     PyTorch's default initialisation.
    ///   - trainableUpsampling: false (default, the reference) freezes the bilinear
    ///     upsampling weights; true lets them learn.
    ///   - padding: `.caffe` (default, the reference nets) or `.same` (no 100-pixel margin,
    ///     crop offsets 0; see `VGGFCNPadding`).
    public init(variant: VGGFCNVariant, classes: Int = 21, width: Double = 1, seed: UInt64? = nil,
                zeroScoreLayers: Bool = true, trainableUpsampling: Bool = false, padding: VGGFCNPadding = .caffe) {
        fcnCheck(classes >= 1, "VGGFCN", "classes must be at least 1, got \(classes)")
        fcnCheck(width > 0 && width.isFinite, "VGGFCN", "width must be positive, got \(width)")
        self.variant = variant; self.classes = classes; self.width = width; self.padding = padding
        descriptionBox = ModelDescriptionBox(ModelDescription(
            architecture: ModelArchitecture(variant), classes: classes, width: width, padding: padding,
            learnedUpsampling: trainableUpsampling, input: .caffe))
        var g = ParameterInit.generator(seed: seed)
        let ch = { VGG16Config.channels($0, width: width) }

        var convs: [(name: String, layer: Conv2d)] = []
        var cin = 3
        for (s, stage) in VGG16Config.stages.enumerated() {
            for (i, n) in stage.enumerated() {
                let c = ch(n)
                convs.append(("conv\(s + 1)_\(i + 1)", Conv2d(inChannels: cin, outChannels: c, kernelSize: 3,
                                                              padding: s == 0 && i == 0 && padding == .caffe ? 100 : 1,
                                                              seed: g.next())))
                cin = c
            }
        }
        convolutions = convs
        let f = ch(VGG16Config.hidden)
        fc6 = Conv2d(inChannels: cin, outChannels: f, kernelSize: 7, padding: padding == .caffe ? 0 : 3, seed: g.next())
        fc7 = Conv2d(inChannels: f, outChannels: f, kernelSize: 1, seed: g.next())
        drop6 = Dropout(p: 0.5, seed: g.next())
        drop7 = Dropout(p: 0.5, seed: g.next())

        func score(_ inChannels: Int) -> Conv2d {
            let conv = Conv2d(inChannels: inChannels, outChannels: classes, kernelSize: 1, seed: g.next())
            if zeroScoreLayers {
                conv.weight.assign(.zeros(conv.weight.shape))
                conv.bias!.assign(.zeros([classes]))
            }
            return conv
        }
        func up(_ factor: Int) -> ConvTranspose2d {
            let k = bilinearKernelSize(forFactor: factor)
            let layer = ConvTranspose2d(weight: bilinearUpsamplingKernel(channels: classes, kernelSize: k), stride: Size2(factor),
                                        padding: .symmetric(FCNGeometry.upsamplingPadding(factor: factor, padding: padding)))
            layer.weight.requiresGrad = trainableUpsampling
            return layer
        }
        scoreFr = score(f)
        switch variant {
        case .fcn32s:
            upscore = up(32)
            upscore2 = nil; scorePool4 = nil; upscore16 = nil; upscorePool4 = nil; scorePool3 = nil; upscore8 = nil
        case .fcn16s:
            upscore = nil
            upscore2 = up(2); scorePool4 = score(ch(512)); upscore16 = up(16)
            upscorePool4 = nil; scorePool3 = nil; upscore8 = nil
        case .fcn8s, .fcn8sAtOnce, .fcn4s:
            upscore = nil; upscore16 = nil
            upscore2 = up(2); scorePool4 = score(ch(512))
            upscorePool4 = up(2); scorePool3 = score(ch(256))
            upscore8 = variant == .fcn4s ? nil : up(8)
        }
        if variant == .fcn4s {
            upscorePool3 = up(2); scorePool2 = score(ch(128)); upscore4 = up(4)
        } else {
            upscorePool3 = nil; scorePool2 = nil; upscore4 = nil
        }
    }

    /// Children in the order of the PyTorch reference (which fixes the parameter order).
    public var children: [(String, any Module)] {
        var out: [(String, any Module)] = convolutions.map { ($0.name, $0.layer as any Module) }
        out += [("fc6", fc6), ("drop6", drop6), ("fc7", fc7), ("drop7", drop7), ("score_fr", scoreFr)]
        let optional: [(String, (any Module)?)] = [
            ("upscore", upscore), ("upscore2", upscore2), ("score_pool4", scorePool4), ("upscore16", upscore16),
            ("upscore_pool4", upscorePool4), ("score_pool3", scorePool3), ("upscore8", upscore8),
            ("upscore_pool3", upscorePool3), ("score_pool2", scorePool2), ("upscore4", upscore4),
        ]
        for (n, m) in optional { if let m { out.append((n, m)) } }
        return out
    }

    /// The convolution named `name` (conv1_1 ... conv5_3).
    public func convolution(_ name: String) -> Conv2d {
        guard let c = convolutions.first(where: { $0.name == name }) else {
            fcnFail("VGGFCN.convolution", "no convolution named '\(name)'; have \(VGG16Config.convolutionNames.joined(separator: ", "))")
        }
        return c.layer
    }

    /// Scores `[N, classes, H, W]` for input `[N, 3, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { forwardWithTaps(x).scores }

    /// The forward pass also returning pool3, pool4, pool5, fc7 and score_fr (useful for
    /// probing, feature extraction, or custom heads). Same cost as `callAsFunction`, but
    /// keeps the listed blobs alive until the result is dropped.
    public func forwardWithTaps(_ x: Tensor) -> VGGFCNTaps {
        fcnCheck(x.rank == 4 && x.shape[1] == convolutions[0].layer.inChannels && x.shape[2] >= 1 && x.shape[3] >= 1,
                 "VGGFCN", "input must be [N, \(convolutions[0].layer.inChannels), H, W] with H, W >= 1, got \(x.shape)")
        let H = x.shape[2], W = x.shape[3]
        var h = x
        var pool2: Tensor?, pool3 = h, pool4 = h
        var k = 0
        for (s, stage) in VGG16Config.stages.enumerated() {
            for _ in stage.dropLast() { h = convReLU(convolutions[k].layer, h); k += 1 }
            h = convReLUPool(convolutions[k].layer, h); k += 1
            // Earlier pools are freed as h moves on; pool2 is kept only by FCN-4s.
            if s == 1 && variant == .fcn4s { pool2 = h } else if s == 2 { pool3 = h } else if s == 3 { pool4 = h }
        }
        let pool5 = h
        let fc7Out = drop7(convReLU(fc7, drop6(convReLU(fc6, pool5))))
        let score = scoreFr(fc7Out)
        let o = padding == .caffe ? VGGFCN.cropOffsets : VGGFCN.sameCropOffsets
        let out: Tensor
        switch variant {
        case .fcn32s:
            out = fit(upscore!(score), height: H, width: W, offset: o.fcn32Final)
        case .fcn16s, .fcn8s, .fcn8sAtOnce, .fcn4s:
            let atOnce = variant == .fcn8sAtOnce
            let p4 = scorePool4!(atOnce ? pool4 * 0.01 : pool4)
            let fuse4 = fuse(upscore2!(score), skip: p4, offset: o.fcn16Pool4)
            if variant == .fcn16s {
                out = fit(upscore16!(fuse4), height: H, width: W, offset: o.fcn16Final)
            } else {
                let p3 = scorePool3!(atOnce ? pool3 * 0.0001 : pool3)
                let fuse3 = fuse(upscorePool4!(fuse4), skip: p3, offset: o.fcn8Pool3)
                if let pool2, let upscorePool3, let scorePool2, let upscore4 {
                    let fuse2 = fuse(upscorePool3(fuse3), skip: scorePool2(pool2), offset: o.fcn4Pool2)
                    out = fit(upscore4(fuse2), height: H, width: W, offset: o.fcn4Final)
                } else {
                    out = fit(upscore8!(fuse3), height: H, width: W, offset: o.fcn8Final)
                }
            }
        }
        return VGGFCNTaps(pool3: pool3, pool4: pool4, pool5: pool5, fc7: fc7Out, scoreFr: score, scores: out)
    }

    /// Sum of an upsampled score map and a skip's scores on their common grid. Caffe layout:
    /// the skip overhangs and is cropped at `offset` to the upsampled map's size. `.same`:
    /// the grids align (offset 0) and, when a ceil-mode pool rounded up, the upsampled map
    /// is the longer one and is cut at its end to the skip's size.
    private func fuse(_ up: Tensor, skip: Tensor, offset: Int) -> Tensor {
        padding == .caffe
            ? up + crop(skip, like: up, offset: Size2(offset))
            : fit(up, height: skip.shape[2], width: skip.shape[3], offset: 0) + skip
    }

    /// `x` cropped to `height` x `width` at `offset`, or `x` itself when it already has
    /// that size (offset 0).
    private func fit(_ x: Tensor, height: Int, width: Int, offset: Int) -> Tensor {
        offset == 0 && x.shape[2] == height && x.shape[3] == width
            ? x : crop(x, height: height, width: width, offset: Size2(offset))
    }

    /// Conv + ReLU as one `conv2d(..., fusedReLU: true)` call, in training too: the fused
    /// op masks the gradient by `y > 0`, which is `relu`'s mask (pre-activation > 0), so
    /// values and gradients equal the two-op form while one pass and one tensor are saved.
    private func convReLU(_ conv: Conv2d, _ x: Tensor) -> Tensor {
        conv2d(x, weight: conv.weight.value, bias: conv.bias?.value, stride: conv.stride, padding: conv.padding,
               dilation: conv.dilation, groups: conv.groups, fusedReLU: true)
    }

    /// The last conv + ReLU of a stage and its 2x2 stride-2 ceil-mode max pool; one pass at
    /// inference (`conv2dReLUMaxPool2`: the convolution's output is never stored).
    private func convReLUPool(_ conv: Conv2d, _ x: Tensor) -> Tensor {
        guard conv.stride == 1, conv.dilation == 1, conv.groups == 1 else {
            return maxPool2d(convReLU(conv, x), kernel: 2, stride: 2, ceilMode: true)
        }
        return conv2dReLUMaxPool2(x, weight: conv.weight.value, bias: conv.bias?.value, padding: conv.padding, ceilMode: true)
    }
}

extension VGGFCN: SegmentationModel {
    /// Architecture, classes, width, padding, learned upsampling; the Caffe input convention
    /// (BGR, 0...255 minus the mean, the reference weights' input) unless set otherwise.
    public var modelDescription: ModelDescription { descriptionBox.description }
    /// See `SegmentationModel.setModelDescription(_:)`.
    public func setModelDescription(_ description: ModelDescription) throws { try descriptionBox.set(description) }

    /// drop6 and drop7 follow `enabled` in training mode.
    public func setDropout(enabled: Bool) {
        drop6.isTraining = enabled && isTraining; drop7.isTraining = enabled && isTraining
    }

    /// conv1_1 ... fc7 with He initialisation (`kaimingInitialize`): a VGG FCN trained from
    /// scratch does not learn from PyTorch's default initialisation of 20 layers.
    public func initializeForTraining(seed: UInt64) { kaimingInitialize(seed: seed) }

    /// Re-initialises conv1_1 ... fc7 with `N(0, 2 / fan_in)` weights and zero biases
    /// (He et al. 2015), seeded.
    public func kaimingInitialize(seed: UInt64) {
        var g = FCNRandom(seed: seed ^ 0x4B41_494D_494E_47)
        for conv in convolutions.map(\.layer) + [fc6, fc7] {
            let s = conv.weight.shape
            let fanIn = s[1] * s[2] * s[3]
            conv.weight.assign(Tensor.randn(s, std: (2 / Float(fanIn)).squareRoot(), using: &g))
            if let b = conv.bias { b.assign(Tensor.zeros(b.shape)) }
        }
    }
}

/// Receptive field: score_fr sees 404 input pixels (conv1_1 ... pool5 see 212, fc6 adds
/// 6 * 32); an output pixel of FCN-32s mixes two neighbouring score_fr positions through the
/// 64x64 stride-32 deconvolution (+32), and the 16s/8s/4s skips add at most 16 + 8 + 4 more
/// through their deconvolutions; the crops centre everything. R = 202 + 32 + 16 + 8 + 4 + 28
/// (slack for the half-pixel asymmetries of even kernels and ceil-mode pools) = 290, a bound
/// the tests check numerically (`estimatedReceptiveFieldRadius`).
extension VGGFCN {
    /// 1: the VGG FCNs end with a deconvolution and a crop to the input size.
    public var scoreStride: Int { 1 }
    /// 32: five 2x2 stride-2 pools.
    public var translationStride: Int { 32 }
    /// 290, every variant (see above).
    public var receptiveFieldRadius: Int { 290 }
    /// The model itself: no batch norm to fold (its conv+ReLU pairs already run fused).
    public func rawScoreLayer() -> any Layer { self }
}
