// ResNetFCN8s: an FCN-8s on a ResNet-18/34 backbone: the ResNet-34 FCN-8s of the blog post
// "FCN原理及pytorch实现" (seed 002), with the state-dict names of its PyTorch code.
//
//   stage1 = Sequential(conv1, bn1, relu, maxpool, layer1, layer2)  1/8,  128 ch
//   stage2 = layer3                                                  1/16, 256 ch
//   stage3 = layer4                                                  1/32, 512 ch
//   scores1/2/3 = 1x1 convs 512/256/128 -> C (with bias)
//   upsample_2x, upsample_4x = ConvTranspose2d(C, C, 4, stride 2, pad 1, no bias): n -> 2n
//   upsample_8x = ConvTranspose2d(C, C, 16, stride 8, pad 4, no bias):              n -> 8n
//   all three initialised with the bilinear kernel and trainable (as in the post).
//   forward: s3 = upsample_2x(scores1(s3)); s2 = scores2(s2) + s3; s2 = upsample_4x(s2);
//            s = scores3(s1) + s2; return upsample_8x(s).
//   The sums only line up when H and W are multiples of 32 (then the output is H x W,
//   e.g. 64x64 -> 64x64). PyTorch fails on other sizes; here other sizes are zero padded at
//   the bottom/right to the next multiple of 32 and the scores cropped back to H x W, so
//   the output is always `[N, C, H, W]` and equals the post's on aligned sizes.
//   Names: stage1.0.weight, stage1.1.running_mean, stage1.4.0.conv1.weight,
//   stage2.0.downsample.0.weight, scores1.weight, upsample_8x.weight, ...
//
// It expects torchvision's input convention (ImageNet mean/std on RGB/255).

import FCNCore
import FCNIO

/// The ResNet-34 FCN-8s of seed 002 (see the file comment): three ResNet stages at 1/8,
/// 1/16 and 1/32, 1x1 score convolutions and bilinear-initialised transposed convolutions.
/// Input `[N, 3, H, W]` (torchvision normalisation), output `[N, numClasses, H, W]`.
public final class ResNetFCN8s: Layer, @unchecked Sendable {
    /// conv1, bn1, relu, maxpool, layer1, layer2 of the backbone (stride 8).
    public let stage1: Sequential
    /// layer3 of the backbone (stride 16).
    public let stage2: Sequential
    /// layer4 of the backbone (stride 32).
    public let stage3: Sequential
    /// 1x1 score convolutions on stage3, stage2 and stage1 outputs.
    public let scores1: Conv2d, scores2: Conv2d, scores3: Conv2d
    /// Bilinear-initialised transposed convolutions (PyTorch names upsample_8x, _4x, _2x).
    public let upsample8x: ConvTranspose2d, upsample4x: ConvTranspose2d, upsample2x: ConvTranspose2d
    /// Training mode (batch norms use and update batch statistics; the default, as in
    /// PyTorch) or eval mode (running statistics). Set it with `train()` / `eval()`.
    public var isTraining = true

    package let descriptionBox: ModelDescriptionBox

    /// Builds the FCN-8s from the stages of `backbone` (its modules are shared, not copied,
    /// so a backbone loaded with ImageNet weights, e.g. `ResNet(.resnet34, numClasses: 1000)`
    /// and `load(from:)` of `resnet34(weights=...).state_dict()`, gives the post's
    /// pretrained start; its avgpool/fc are not used).
    ///
    /// - Parameters:
    ///   - numClasses: output channels (21 for PASCAL VOC).
    ///   - backbone: a ResNet without dilation; default a fresh ResNet-34. Deeper variants
    ///     work too (score convs take `128/256/512 * expansion` channels).
    public init(numClasses: Int, backbone: ResNet = ResNet(.resnet34)) {
        fcnCheck(numClasses > 0, "ResNetFCN8s", "numClasses must be positive, got \(numClasses)")
        fcnCheck(!backbone.replaceStrideWithDilation.contains(true), "ResNetFCN8s",
                 "the backbone must not be dilated (replaceStrideWithDilation \(backbone.replaceStrideWithDilation)): the skips need strides 8, 16, 32")
        fcnCheck(backbone.depth == .resnet34 || backbone.depth == .resnet18, "ResNetFCN8s",
                 "the backbone must be resnet18 or resnet34 (the described architectures), got \(backbone.depth)")
        descriptionBox = ModelDescriptionBox(ModelDescription(
            architecture: backbone.depth == .resnet34 ? .resnet34FCN8s : .resnet18FCN8s, classes: numClasses))
        stage1 = Sequential(backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool, backbone.layer1, backbone.layer2)
        stage2 = backbone.layer3
        stage3 = backbone.layer4
        let ch = backbone.depth.layerChannels
        scores1 = Conv2d(inChannels: ch[3], outChannels: numClasses, kernelSize: 1)
        scores2 = Conv2d(inChannels: ch[2], outChannels: numClasses, kernelSize: 1)
        scores3 = Conv2d(inChannels: ch[1], outChannels: numClasses, kernelSize: 1)
        upsample8x = ConvTranspose2d(weight: bilinearUpsamplingKernel(channels: numClasses, kernelSize: 16), stride: 8, padding: 4)
        upsample4x = ConvTranspose2d(weight: bilinearUpsamplingKernel(channels: numClasses, kernelSize: 4), stride: 2, padding: 1)
        upsample2x = ConvTranspose2d(weight: bilinearUpsamplingKernel(channels: numClasses, kernelSize: 4), stride: 2, padding: 1)
    }

    /// stage1, stage2, stage3, scores1 ... scores3, upsample_8x, upsample_4x, upsample_2x:
    /// the post's module names and registration order (state-dict names `stage1.0.weight`,
    /// `scores1.bias`, `upsample_8x.weight`, ...).
    public var children: [(String, any Module)] {
        [("stage1", stage1), ("stage2", stage2), ("stage3", stage3),
         ("scores1", scores1), ("scores2", scores2), ("scores3", scores3),
         ("upsample_8x", upsample8x), ("upsample_4x", upsample4x), ("upsample_2x", upsample2x)]
    }

    /// Class scores `[N, numClasses, H, W]` for input `[N, 3, H, W]`, any H, W >= 1 (sizes
    /// that are not multiples of 32 are padded and cropped back; see the file comment).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        fcnCheck(x.rank == 4 && x.shape[1] == 3 && x.shape[2] > 0 && x.shape[3] > 0, "ResNetFCN8s",
                 "expected input [N, 3, H, W] with H, W >= 1, got \(x.shape)")
        let h = x.shape[2], w = x.shape[3]
        let padH = (32 - h % 32) % 32, padW = (32 - w % 32) % 32
        if padH == 0 && padW == 0 { return forwardAligned(x) }
        let y = forwardAligned(x.padded(top: 0, bottom: padH, left: 0, right: padW))
        return crop(y, height: h, width: w)
    }

    /// The post's forward for H, W multiples of 32.
    func forwardAligned(_ x: Tensor) -> Tensor {
        let s1 = stage1(x)
        let s2 = stage2(s1)
        let s3 = upsample2x(scores1(stage3(s2)))
        let s2u = upsample4x(scores2(s2) + s3)
        return upsample8x(scores3(s1) + s2u)
    }
}
