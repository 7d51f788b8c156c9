// FCNs on ResNet backbones, with the state-dict names of the PyTorch code they mirror.
//
// ResNetFCN8s: the ResNet-34 FCN-8s of the blog post "FCN原理及pytorch实现" (seed 002).
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
// FCNResNet: torchvision's fcn_resnet50 / fcn_resnet101 (torchvision.models.segmentation).
//   backbone = ResNet-50/101 without avgpool/fc, replace_stride_with_dilation
//              [false, true, true] (output stride 8; torchvision's IntermediateLayerGetter
//              keeps conv1..layer4 under their own names: backbone.layer1.0.conv1.weight)
//   classifier = FCNHead(2048, C), aux_classifier = FCNHead(1024, C) on layer3 (optional)
//   FCNHead = Sequential(conv3x3 in -> in/4 no bias, BatchNorm2d, ReLU, Dropout(0.1),
//             conv1x1 in/4 -> C with bias): names classifier.0.weight, classifier.1.*,
//             classifier.4.weight, classifier.4.bias
//   out = interpolateBilinear(classifier(layer4), size: (H, W), alignCorners: false), the
//   same for aux from layer3. Any H, W >= 1.
// Both expect torchvision's input convention (ImageNet mean/std on RGB/255).

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

/// torchvision's `FCNHead`: conv3x3 (in -> in/4, no bias) - BatchNorm2d - ReLU -
/// Dropout(0.1) - conv1x1 (in/4 -> channels, bias), a Sequential whose layers are named
/// "0".."4". Input `[N, in, H, W]`, output `[N, channels, H, W]`.
public final class FCNHead: Layer, @unchecked Sendable {
    /// Layers "0" (3x3 conv), "1" (batch norm), "2" (ReLU), "3" (dropout 0.1), "4" (1x1 score conv).
    public let conv: Conv2d, bn: BatchNorm2d, relu = ReLU(), dropout: Dropout, score: Conv2d
    /// Training mode (batch statistics, dropout active; the default, as in PyTorch) or eval
    /// mode (running statistics, no dropout). Set it with `train()` / `eval()`.
    public var isTraining = true

    /// A head from `inChannels` (divisible by 4 in torchvision's models) to `channels` classes.
    public init(inChannels: Int, channels: Int) {
        fcnCheck(inChannels >= 4 && channels > 0, "FCNHead", "need inChannels >= 4 and channels > 0, got \(inChannels), \(channels)")
        let inter = inChannels / 4
        conv = Conv2d(inChannels: inChannels, outChannels: inter, kernelSize: 3, padding: 1, bias: false)
        bn = BatchNorm2d(inter)
        dropout = Dropout(p: 0.1)
        score = Conv2d(inChannels: inter, outChannels: channels, kernelSize: 1)
    }

    /// The five layers named "0" ... "4", as the indices of torchvision's Sequential
    /// (state-dict names `classifier.0.weight`, `classifier.1.running_mean`, `classifier.4.bias`).
    public var children: [(String, any Module)] {
        [("0", conv), ("1", bn), ("2", relu), ("3", dropout), ("4", score)]
    }

    /// `score(dropout(relu(bn(conv(x)))))`: `[N, inChannels, H, W]` -> `[N, channels, H, W]`
    /// (the 3x3 conv has padding 1, so the size is kept).
    public func callAsFunction(_ x: Tensor) -> Tensor { score(dropout(relu(bn(conv(x))))) }
}

/// torchvision's `fcn_resnet50` / `fcn_resnet101` (see the file comment). State-dict
/// names are torchvision's, so `safetensors.torch.save_file(model.state_dict(), path)` of
/// a torchvision model loads with `load(from: path)` (build with `auxiliary: true` for the
/// published weights, which include `aux_classifier.*`).
public final class FCNResNet: Layer, @unchecked Sendable {
    /// ResNet-50/101 with layer3 and layer4 dilated, without avgpool/fc.
    public let backbone: ResNet
    /// FCNHead(2048, numClasses) on layer4.
    public let classifier: FCNHead
    /// FCNHead(1024, numClasses) on layer3, when built with `auxiliary: true`.
    public let auxClassifier: FCNHead?
    /// Training mode (batch statistics, dropout active; the default, as in PyTorch) or eval
    /// mode (running statistics, no dropout). Set it with `train()` / `eval()`.
    public var isTraining = true

    package let descriptionBox: ModelDescriptionBox

    /// Builds the model with torchvision's initialisation (random weights; load trained ones
    /// with `load(from:)`).
    ///
    /// - Parameters:
    ///   - depth: `.resnet50` (default) or `.resnet101`, the backbones torchvision
    ///     publishes (the model description names no others).
    ///   - numClasses: 21 by default (torchvision's published VOC-label weights).
    ///   - auxiliary: adds `aux_classifier` (torchvision's `aux_loss`).
    public init(depth: ResNetDepth = .resnet50, numClasses: Int = 21, auxiliary: Bool = false) {
        fcnCheck(depth == .resnet50 || depth == .resnet101, "FCNResNet", "\(depth): torchvision's FCN has a resnet50 or resnet101 backbone (BasicBlock backbones cannot be dilated)")
        fcnCheck(numClasses > 0, "FCNResNet", "numClasses must be positive, got \(numClasses)")
        descriptionBox = ModelDescriptionBox(ModelDescription(
            architecture: depth == .resnet50 ? .fcnResNet50 : .fcnResNet101, classes: numClasses, auxiliaryHead: auxiliary))
        backbone = ResNet(depth, replaceStrideWithDilation: [false, true, true])
        let ch = depth.layerChannels
        classifier = FCNHead(inChannels: ch[3], channels: numClasses)
        auxClassifier = auxiliary ? FCNHead(inChannels: ch[2], channels: numClasses) : nil
    }

    /// backbone, classifier and aux_classifier (when present): torchvision's names, so the
    /// state dict reads `backbone.conv1.weight`, `classifier.4.bias`, `aux_classifier.0.weight`, ...
    public var children: [(String, any Module)] {
        var c: [(String, any Module)] = [("backbone", backbone), ("classifier", classifier)]
        if let auxClassifier { c.append(("aux_classifier", auxClassifier)) }
        return c
    }

    /// Scores `out` from layer4 and `aux` from layer3 (nil without the auxiliary head), both
    /// `[N, numClasses, H, W]` for input `[N, 3, H, W]`, as torchvision's dict
    /// `{"out", "aux"}`. The aux head runs in both modes when present, as in torchvision.
    public func forward(_ x: Tensor) -> (out: Tensor, aux: Tensor?) { run(x, aux: true) }

    /// The main scores `[N, numClasses, H, W]` (`forward(x).out`, without running the aux head).
    public func callAsFunction(_ x: Tensor) -> Tensor { run(x, aux: false).out }

    private func run(_ x: Tensor, aux wantAux: Bool) -> (out: Tensor, aux: Tensor?) {
        fcnCheck(x.rank == 4 && x.shape[1] == 3 && x.shape[2] > 0 && x.shape[3] > 0, "FCNResNet",
                 "expected input [N, 3, H, W] with H, W >= 1, got \(x.shape)")
        let size = Size2(x.shape[2], x.shape[3])
        let c2 = backbone.layer2(backbone.layer1(backbone.stem(x)))
        let c3 = backbone.layer3(c2)
        let out = interpolateBilinear(classifier(backbone.layer4(c3)), size: size, alignCorners: false)
        let aux = wantAux ? auxClassifier.map { interpolateBilinear($0(c3), size: size, alignCorners: false) } : nil
        return (out, aux)
    }
}
