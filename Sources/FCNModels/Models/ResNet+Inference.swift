// The ResNet models for inference: batch norms folded into their convolutions
// (`BatchNormFoldable` for the blocks and torchvision's FCN head) and the geometry tiled
// inference needs (`SegmentationModel` for ResNetFCN8s and DilatedResNetFCN).
//
// Receptive fields are computed from the model's own layers (`resnetReceptiveField`, the
// longest path: stem, then every block's convolutions; the shortcuts see less), with
// paddings, so the backbone part is exact, not a rounded bound:
//   ResNet-34 layer4 (stride 32):          start -449, extent 899 -> 449 around a position
//   ResNet-50 dilated layer4 + FCNHead 3x3: start -221, extent 443, stride 8 -> 221
//   ResNet-101 dilated + FCNHead:          start -493, extent 987, stride 8 -> 493
// ResNetFCN8s adds its three deconvolutions: an output pixel reads the stride-8 sum within
// 18 pixels (kernel 16, stride 8, pad 4: two taps), that one the stride-16 sum within 16
// more, and that one layer4 within 32 more; so R <= 449 + 66 = 515, used with one stride
// of slack: 547. DilatedResNetFCN's raw scores are the head's stride-8 map (its bilinear resize is
// done by the segmenter): R = 221 / 493, used with one stride of slack: 229 / 501.
// `estimatedReceptiveFieldRadius` measures lower bounds of these (see the tests).

import FCNCore
import FCNIO

extension BasicBlock: BatchNormFoldable {
    /// `relu(conv2'(relu(conv1'(x))) + shortcut'(x))` with bn1, bn2 (and the shortcut's
    /// batch norm) folded into the convolutions before them.
    public func foldedForInference() -> any Layer {
        FusedResidualBlock(main: [FusedConv2d(conv1, bn1, relu: true), FusedConv2d(conv2, bn2)],
                           shortcut: downsample.map { FCNModels.foldedForInference($0) })
    }
}

extension Bottleneck: BatchNormFoldable {
    /// The three convolutions with bn1..bn3 folded (ReLU fused into the first two) and the
    /// folded shortcut.
    public func foldedForInference() -> any Layer {
        FusedResidualBlock(main: [FusedConv2d(conv1, bn1, relu: true), FusedConv2d(conv2, bn2, relu: true),
                                  FusedConv2d(conv3, bn3)],
                           shortcut: downsample.map { FCNModels.foldedForInference($0) })
    }
}

extension FCNHead: BatchNormFoldable {
    /// `score(relu(conv'(x)))`: bn folded into the 3x3 convolution, dropout dropped (the
    /// identity in eval mode).
    public func foldedForInference() -> any Layer {
        let s = Sequential(FusedConv2d(conv, bn, relu: true), score)
        s.isTraining = false
        return s
    }
}

/// Accumulates the receptive field along the width of the layers the ResNet models are
/// made of (convolutions, max pools, residual blocks, FCN heads, Sequentials of them;
/// element-wise layers change nothing). The residual shortcuts are never longer than the
/// main path, so a block counts its main path only.
func resnetReceptiveField(_ layers: [any Layer], into rf: inout ReceptiveField) {
    for layer in layers {
        switch layer {
        case let c as Conv2d:
            let k = c.weight.value.shape[3]
            let left = c.padding.resolve(inH: 1, inW: 1, kernel: Size2(k), stride: c.stride, dilation: c.dilation).left
            rf.add(kernel: k, stride: c.stride.w, padding: left, dilation: c.dilation.w)
        case let p as MaxPool2d:
            rf.add(kernel: p.kernel.w, stride: p.stride.w, padding: p.padding.w, dilation: p.dilation.w)
        case let b as BasicBlock: resnetReceptiveField([b.conv1, b.conv2], into: &rf)
        case let b as Bottleneck: resnetReceptiveField([b.conv1, b.conv2, b.conv3], into: &rf)
        case let h as FCNHead: resnetReceptiveField([h.conv, h.score], into: &rf)
        case let s as Sequential: resnetReceptiveField(s.layers, into: &rf)
        default: break
        }
    }
}

extension ResNetFCN8s: SegmentationModel {
    /// resnet34-fcn8s (or resnet18-fcn8s), classes, torchvision's input convention unless set otherwise.
    public var modelDescription: ModelDescription { descriptionBox.description }
    /// See `SegmentationModel.setModelDescription(_:)`.
    public func setModelDescription(_ description: ModelDescription) throws { try descriptionBox.set(description) }

    /// 1: the last deconvolution gives full-resolution scores.
    public var scoreStride: Int { 1 }
    /// 32: the backbone's total stride (the skips need an undilated backbone).
    public var translationStride: Int { 32 }
    /// layer4's exact radius + 66 for the deconvolution taps + 32 of slack (547 for
    /// ResNet-34; see the file comment).
    public var receptiveFieldRadius: Int {
        var rf = ReceptiveField()
        resnetReceptiveField([stage1, stage2, stage3], into: &rf)
        return rf.radius(covering: rf.jump) + 18 + 16 + 32 + 32
    }

    /// The model with every stage folded (`foldedForInference`), same forward (padding to
    /// a multiple of 32 and cropping back).
    public func rawScoreLayer() -> any Layer { FoldedResNetFCN8s(self) }
}

/// ResNetFCN8s for inference: its stages folded, its score convolutions and deconvolutions
/// shared with the model. Input `[N, 3, H, W]`, output `[N, numClasses, H, W]`.
final class FoldedResNetFCN8s: Layer, @unchecked Sendable {
    let model: ResNetFCN8s
    let stage1: any Layer, stage2: any Layer, stage3: any Layer
    var isTraining = false

    init(_ model: ResNetFCN8s) {
        self.model = model
        stage1 = foldedForInference(model.stage1)
        stage2 = foldedForInference(model.stage2)
        stage3 = foldedForInference(model.stage3)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        fcnCheck(x.rank == 4 && x.shape[1] == 3 && x.shape[2] > 0 && x.shape[3] > 0, "ResNetFCN8s",
                 "expected input [N, 3, H, W] with H, W >= 1, got \(x.shape)")
        let h = x.shape[2], w = x.shape[3]
        let padH = (32 - h % 32) % 32, padW = (32 - w % 32) % 32
        let input = padH == 0 && padW == 0 ? x : x.padded(top: 0, bottom: padH, left: 0, right: padW)
        let m = model
        let s1 = stage1(input)
        let s2 = stage2(s1)
        let s3 = m.upsample2x(m.scores1(stage3(s2)))
        let s2u = m.upsample4x(m.scores2(s2) + s3)
        let y = m.upsample8x(m.scores3(s1) + s2u)
        return padH == 0 && padW == 0 ? y : crop(y, height: h, width: w)
    }
}

extension DilatedResNetFCN: SegmentationModel {
    /// fcn_resnet50/101, classes, auxiliary head, torchvision's input convention unless set otherwise.
    public var modelDescription: ModelDescription { descriptionBox.description }
    /// See `SegmentationModel.setModelDescription(_:)`.
    public func setModelDescription(_ description: ModelDescription) throws { try descriptionBox.set(description) }

    /// The scores with weight 1 and, with the auxiliary head, its scores with weight 0.5
    /// (torchvision's reference training: `loss = out_loss + 0.5 * aux_loss`).
    public func trainingOutputs(_ x: Tensor) -> [(scores: Tensor, weight: Float)] {
        let (out, aux) = forward(x)
        guard let aux else { return [(out, 1)] }
        return [(out, 1), (aux, 0.5)]
    }

    /// 8: the dilated backbone's output stride; the model's output is the bilinear resize
    /// of the head's stride-8 map, which the segmenter does itself.
    public var scoreStride: Int { backbone.outputStride }
    /// 8: every stride of the dilated backbone.
    public var translationStride: Int { backbone.outputStride }
    /// The exact radius of backbone + head + one stride of slack (229 for ResNet-50, 501 for
    /// ResNet-101; see the file comment).
    public var receptiveFieldRadius: Int {
        let b = backbone
        var rf = ReceptiveField()
        resnetReceptiveField([b.conv1, b.maxpool, b.layer1, b.layer2, b.layer3, b.layer4, classifier], into: &rf)
        return rf.radius(covering: rf.jump) + rf.jump
    }

    /// Folded backbone then folded head: the raw scores `[N, C, ceil(H/8), ceil(W/8)]`
    /// (the aux head is not run).
    public func rawScoreLayer() -> any Layer {
        let b = backbone
        let s = Sequential(foldedForInference(Sequential(b.conv1, b.bn1, b.relu, b.maxpool, b.layer1, b.layer2, b.layer3, b.layer4)),
                           foldedForInference(classifier))
        s.isTraining = false
        return s
    }
}
