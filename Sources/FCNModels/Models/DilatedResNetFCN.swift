// DilatedResNetFCN: torchvision's fcn_resnet50 / fcn_resnet101 (torchvision.models.segmentation),
// with torchvision's state-dict names.
//
//   backbone = ResNet-50/101 without avgpool/fc, replace_stride_with_dilation
//              [false, true, true] (output stride 8; torchvision's IntermediateLayerGetter
//              keeps conv1..layer4 under their own names: backbone.layer1.0.conv1.weight)
//   classifier = FCNHead(2048, C), aux_classifier = FCNHead(1024, C) on layer3 (optional)
//   FCNHead = Sequential(conv3x3 in -> in/4 no bias, BatchNorm2d, ReLU, Dropout(0.1),
//             conv1x1 in/4 -> C with bias): names classifier.0.weight, classifier.1.*,
//             classifier.4.weight, classifier.4.bias
//   out = interpolateBilinear(classifier(layer4), size: (H, W), alignCorners: false), the
//   same for aux from layer3. Any H, W >= 1.
// It expects torchvision's input convention (ImageNet mean/std on RGB/255).

import FCNCore
import FCNIO

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
public final class DilatedResNetFCN: Layer, @unchecked Sendable {
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
        fcnCheck(depth == .resnet50 || depth == .resnet101, "DilatedResNetFCN", "\(depth): torchvision's FCN has a resnet50 or resnet101 backbone (BasicBlock backbones cannot be dilated)")
        fcnCheck(numClasses > 0, "DilatedResNetFCN", "numClasses must be positive, got \(numClasses)")
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
        fcnCheck(x.rank == 4 && x.shape[1] == 3 && x.shape[2] > 0 && x.shape[3] > 0, "DilatedResNetFCN",
                 "expected input [N, 3, H, W] with H, W >= 1, got \(x.shape)")
        let size = Size2(x.shape[2], x.shape[3])
        let c2 = backbone.layer2(backbone.layer1(backbone.stem(x)))
        let c3 = backbone.layer3(c2)
        let out = interpolateBilinear(classifier(backbone.layer4(c3)), size: size, alignCorners: false)
        let aux = wantAux ? auxClassifier.map { interpolateBilinear($0(c3), size: size, alignCorners: false) } : nil
        return (out, aux)
    }
}

/// The name this model had before it was named for its family (a dilated ResNet under an
/// FCN head); kept so code written against it still builds.
@available(*, deprecated, renamed: "DilatedResNetFCN")
public typealias FCNResNet = DilatedResNetFCN
