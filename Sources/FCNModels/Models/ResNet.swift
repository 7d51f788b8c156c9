// ResNet backbones in torchvision's layout and names (torchvision.models.resnet), so that
// `resnet34(weights=...).state_dict()` or the backbone part of `fcn_resnet50(...)` loads
// by name.
//
// Layout: conv1 (7x7, stride 2, pad 3, no bias) - bn1 - relu - maxpool (3x3, stride 2,
// pad 1) - layer1..layer4 - [avgpool - fc], the last two only when a classifier is asked
// for. layer_i is a Sequential of blocks named "0", "1", ...:
//   BasicBlock (ResNet-18/34): conv1 3x3 (stride) - bn1 - relu - conv2 3x3 - bn2, plus the
//     shortcut, then relu. Expansion 1.
//   Bottleneck (ResNet-50/101/152, torchvision "v1.5": the stride sits on conv2):
//     conv1 1x1 - bn1 - relu - conv2 3x3 (stride, dilation) - bn2 - relu - conv3 1x1 - bn3,
//     plus the shortcut, then relu. Expansion 4.
//   The shortcut is `downsample` = Sequential(conv 1x1 stride s no bias, BatchNorm2d),
//   named `downsample.0` / `downsample.1`, present when the block changes the stride or
//   the channel count; otherwise the identity.
// Dilation (`replaceStrideWithDilation`, torchvision's `_make_layer`): for each of
// layer2..layer4 flagged true, the layer's stride 2 is replaced by stride 1 and the
// running dilation is multiplied by 2. The first block of such a layer keeps the dilation
// in force BEFORE the layer (its 3x3 conv uses the previous dilation) and the later blocks
// use the new one; a 3x3 conv with dilation d has padding d, so sizes are kept.
// fcn_resnet50/101 use [false, true, true]: output stride 8, layer3 blocks 1+ dilation 2,
// layer4 block 0 dilation 2 and blocks 1+ dilation 4.
// Spatial sizes: every strided layer maps n to ceil(n/2) (floor((n-1)/2)+1), so the
// layer4 output is ceil(H/32) without dilation (ceil(H/8) with layer3 and layer4 dilated).
// Initialisation as torchvision: convolutions kaiming-normal (fan_out, relu gain:
// std = sqrt(2 / (Cout*kH*kW))), batch norm weight 1 and bias 0, fc PyTorch's default.

import FCNCore
import FCNIO

/// ResNet variant: block type and number of blocks per layer (torchvision's table).
public enum ResNetDepth: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// ResNet-18: BasicBlock, `[2, 2, 2, 2]` blocks, 512 output channels.
    case resnet18 = 18
    /// ResNet-34: BasicBlock, `[3, 4, 6, 3]` blocks, 512 output channels (the seed 002 FCN-8s backbone).
    case resnet34 = 34
    /// ResNet-50: Bottleneck, `[3, 4, 6, 3]` blocks, 2048 output channels (`fcn_resnet50`).
    case resnet50 = 50
    /// ResNet-101: Bottleneck, `[3, 4, 23, 3]` blocks, 2048 output channels (`fcn_resnet101`).
    case resnet101 = 101
    /// ResNet-152: Bottleneck, `[3, 8, 36, 3]` blocks, 2048 output channels.
    case resnet152 = 152

    /// Blocks in layer1..layer4.
    public var blocksPerLayer: [Int] {
        switch self {
        case .resnet18: return [2, 2, 2, 2]
        case .resnet34, .resnet50: return [3, 4, 6, 3]
        case .resnet101: return [3, 4, 23, 3]
        case .resnet152: return [3, 8, 36, 3]
        }
    }

    /// True for the Bottleneck variants (50, 101, 152), false for BasicBlock (18, 34).
    public var usesBottleneck: Bool { rawValue >= 50 }

    /// Output channels of a block relative to its `planes`: 4 for Bottleneck, 1 for BasicBlock.
    public var expansion: Int { usesBottleneck ? 4 : 1 }

    /// Channels out of layer1..layer4: `[64, 128, 256, 512] * expansion`.
    public var layerChannels: [Int] { [64, 128, 256, 512].map { $0 * expansion } }

    /// torchvision's constructor name: "resnet18" ... "resnet152".
    public var description: String { "resnet\(rawValue)" }
}

/// torchvision's `conv3x3` (padding = dilation, no bias), `conv1x1` (no bias) and the 7x7
/// stem conv (padding 3), with torchvision's kaiming-normal (fan_out) initialisation.
func resnetConv(_ cin: Int, _ cout: Int, kernel: Int, stride: Int = 1, dilation: Int = 1) -> Conv2d {
    var g = ParameterInit.generator(seed: nil)
    let fanOut = Float(cout * kernel * kernel)
    let w = Tensor.randn([cout, cin, kernel, kernel], std: (2 / fanOut).squareRoot(), using: &g)
    return Conv2d(weight: w, stride: Size2(stride), padding: .symmetric(kernel == 3 ? dilation : kernel / 2),
                  dilation: Size2(dilation))
}

/// The shortcut of a block that changes stride or width: 1x1 conv (stride, no bias) then
/// batch norm, as torchvision's `downsample` Sequential (`downsample.0`, `downsample.1`).
func resnetDownsample(_ cin: Int, _ cout: Int, stride: Int) -> Sequential {
    Sequential(resnetConv(cin, cout, kernel: 1, stride: stride), BatchNorm2d(cout))
}

/// torchvision's BasicBlock (ResNet-18/34): `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`
/// with two 3x3 convolutions (stride on conv1). Input `[N, inPlanes, H, W]`, output
/// `[N, planes, ceil(H/stride), ceil(W/stride)]`. Dilation > 1 is rejected as torchvision does.
public final class BasicBlock: Layer, @unchecked Sendable {
    /// Output channels per `planes` (1).
    public static let expansion = 1
    /// The two 3x3 convolutions (no bias), their batch norms and the shared ReLU, named as in torchvision.
    public let conv1: Conv2d, bn1: BatchNorm2d, relu = ReLU(), conv2: Conv2d, bn2: BatchNorm2d
    /// The projection shortcut (1x1 conv + BN), nil for the identity.
    public let downsample: Sequential?
    /// Training mode (batch norms use and update batch statistics; the default, as in
    /// PyTorch) or eval mode (running statistics). Set it with `train()` / `eval()`.
    public var isTraining = true

    /// A block mapping `inPlanes` to `planes` channels; `downsample` must map `inPlanes` to
    /// `planes` with the same stride when either differs (see `ResNet`).
    ///
    /// - Parameters:
    ///   - inPlanes: input channels.
    ///   - planes: output channels (expansion 1).
    ///   - stride: stride of conv1 (1, or 2 at the start of layer2..layer4).
    ///   - downsample: the shortcut projection; nil (default) for the identity shortcut.
    ///   - dilation: must be 1 (torchvision's BasicBlock rejects dilation); the parameter
    ///     exists so `ResNet` builds both block types with one call.
    public init(inPlanes: Int, planes: Int, stride: Int = 1, downsample: Sequential? = nil, dilation: Int = 1) {
        fcnCheck(dilation == 1, "BasicBlock", "dilation > 1 is not supported in BasicBlock (got \(dilation)), as in torchvision")
        fcnCheck(inPlanes > 0 && planes > 0 && stride > 0, "BasicBlock",
                 "inPlanes \(inPlanes), planes \(planes) and stride \(stride) must be positive")
        conv1 = resnetConv(inPlanes, planes, kernel: 3, stride: stride)
        bn1 = BatchNorm2d(planes)
        conv2 = resnetConv(planes, planes, kernel: 3)
        bn2 = BatchNorm2d(planes)
        self.downsample = downsample
    }

    /// conv1, bn1, relu, conv2, bn2 and downsample (when present), torchvision's names and
    /// order: `layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`, ...
    public var children: [(String, any Module)] {
        var c: [(String, any Module)] = [("conv1", conv1), ("bn1", bn1), ("relu", relu), ("conv2", conv2), ("bn2", bn2)]
        if let downsample { c.append(("downsample", downsample)) }
        return c
    }

    /// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`: `[N, inPlanes, H, W]` ->
    /// `[N, planes, ceil(H/stride), ceil(W/stride)]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let out = bn2(conv2(relu(bn1(conv1(x)))))
        return relu(out + (downsample?(x) ?? x))
    }
}

/// torchvision's Bottleneck (ResNet-50/101/152, "v1.5"): 1x1 reduce to `planes`, 3x3 with
/// the stride and dilation, 1x1 expand to `4*planes`, each followed by batch norm, plus the
/// shortcut, then relu. Input `[N, inPlanes, H, W]`, output
/// `[N, 4*planes, ceil(H/stride), ceil(W/stride)]`.
public final class Bottleneck: Layer, @unchecked Sendable {
    /// Output channels per `planes` (4).
    public static let expansion = 4
    /// 1x1 reduce, 3x3 (stride, dilation), 1x1 expand (no bias), each with its batch norm.
    public let conv1: Conv2d, bn1: BatchNorm2d, conv2: Conv2d, bn2: BatchNorm2d, conv3: Conv2d, bn3: BatchNorm2d
    /// The ReLU applied after bn1, bn2 and the residual sum.
    public let relu = ReLU()
    /// The projection shortcut (1x1 conv + BN), nil for the identity.
    public let downsample: Sequential?
    /// Training mode (batch norms use and update batch statistics; the default, as in
    /// PyTorch) or eval mode (running statistics). Set it with `train()` / `eval()`.
    public var isTraining = true

    /// A block mapping `inPlanes` to `4*planes` channels; `downsample` must map `inPlanes`
    /// to `4*planes` with the same stride when either differs (see `ResNet`).
    ///
    /// - Parameters:
    ///   - inPlanes: input channels.
    ///   - planes: width of the 1x1 reduce and the 3x3 convolution; the block outputs
    ///     `4*planes` channels.
    ///   - stride: stride of the 3x3 conv2 (torchvision "v1.5"; 1, or 2 at the start of a
    ///     non-dilated layer2..layer4).
    ///   - downsample: the shortcut projection; nil (default) for the identity shortcut.
    ///   - dilation: dilation (and padding) of conv2; 1 (default) except in the dilated
    ///     layers of a segmentation backbone.
    public init(inPlanes: Int, planes: Int, stride: Int = 1, downsample: Sequential? = nil, dilation: Int = 1) {
        fcnCheck(inPlanes > 0 && planes > 0 && stride > 0 && dilation > 0, "Bottleneck",
                 "inPlanes \(inPlanes), planes \(planes), stride \(stride) and dilation \(dilation) must be positive")
        conv1 = resnetConv(inPlanes, planes, kernel: 1)
        bn1 = BatchNorm2d(planes)
        conv2 = resnetConv(planes, planes, kernel: 3, stride: stride, dilation: dilation)
        bn2 = BatchNorm2d(planes)
        conv3 = resnetConv(planes, planes * Self.expansion, kernel: 1)
        bn3 = BatchNorm2d(planes * Self.expansion)
        self.downsample = downsample
    }

    /// conv1, bn1, conv2, bn2, conv3, bn3, relu and downsample (when present), torchvision's
    /// names and order.
    public var children: [(String, any Module)] {
        var c: [(String, any Module)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2),
                                         ("conv3", conv3), ("bn3", bn3), ("relu", relu)]
        if let downsample { c.append(("downsample", downsample)) }
        return c
    }

    /// `relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))`:
    /// `[N, inPlanes, H, W]` -> `[N, 4*planes, ceil(H/stride), ceil(W/stride)]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var out = relu(bn1(conv1(x)))
        out = relu(bn2(conv2(out)))
        out = bn3(conv3(out))
        return relu(out + (downsample?(x) ?? x))
    }
}

/// A ResNet in torchvision's layout (see the file comment): state-dict names `conv1.weight`,
/// `bn1.running_mean`, `layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`, ...,
/// and `fc.weight` / `fc.bias` when built with `numClasses`.
///
/// Without `numClasses` it is a backbone (torchvision's `IntermediateLayerGetter` over
/// conv1..layer4): `callAsFunction` returns layer4's output `[N, 512*expansion, H', W']`.
/// With `numClasses`, it adds `avgpool` (adaptive 1x1) and `fc`, and returns logits
/// `[N, numClasses]`, so `torchvision.models.resnet34(weights=...)` loads strictly.
public final class ResNet: Layer, @unchecked Sendable {
    /// The variant (block type and blocks per layer).
    public let depth: ResNetDepth
    /// torchvision's `replace_stride_with_dilation` for layer2, layer3, layer4.
    public let replaceStrideWithDilation: [Bool]
    /// Dilation of the 3x3 convolutions of the later blocks of layer1..layer4 (the first
    /// block of a dilated layer uses the previous layer's value).
    public let layerDilations: [Int]
    /// Stem: 7x7 stride-2 convolution (no bias), batch norm, ReLU, 3x3 stride-2 max pool.
    public let conv1: Conv2d
    /// Batch norm of the stem (64 channels).
    public let bn1: BatchNorm2d
    /// ReLU of the stem.
    public let relu = ReLU()
    /// 3x3 stride-2 max pool with padding 1 of the stem: `n -> ceil(n/2)`.
    public let maxpool = MaxPool2d(kernel: 3, stride: 2, padding: 1)
    /// The four stages of residual blocks (strides 1, 2, 2, 2 unless dilated).
    public let layer1: Sequential, layer2: Sequential, layer3: Sequential, layer4: Sequential
    /// Global average pooling to 1x1, present when built with `numClasses`.
    public let avgpool: AdaptiveAvgPool2d?
    /// The classifier `Linear(512*expansion, numClasses)` (PyTorch's default
    /// initialisation), nil for a backbone.
    public let fc: Linear?
    /// Training mode (batch norms use and update batch statistics; the default, as in
    /// PyTorch) or eval mode (running statistics). Set it with `train()` / `eval()`.
    public var isTraining = true

    /// Builds a ResNet with torchvision's initialisation (see the file comment).
    ///
    /// - Parameters:
    ///   - depth: the variant (18, 34: BasicBlock; 50, 101, 152: Bottleneck).
    ///   - replaceStrideWithDilation: three flags for layer2..layer4 (torchvision's
    ///     argument); `[false, true, true]` is the segmentation backbone (output stride 8).
    ///     BasicBlock variants accept no dilation, as in torchvision.
    ///   - numClasses: nil (default) for a backbone without avgpool/fc, else the size of `fc`.
    public init(_ depth: ResNetDepth, replaceStrideWithDilation: [Bool] = [false, false, false], numClasses: Int? = nil) {
        fcnCheck(replaceStrideWithDilation.count == 3, "ResNet",
                 "replaceStrideWithDilation needs 3 flags (layer2, layer3, layer4), got \(replaceStrideWithDilation)")
        fcnCheck(!depth.usesBottleneck ? !replaceStrideWithDilation.contains(true) : true, "ResNet",
                 "\(depth) uses BasicBlock, which does not support dilation (replaceStrideWithDilation \(replaceStrideWithDilation))")
        fcnCheck(numClasses == nil || numClasses! > 0, "ResNet", "numClasses must be positive, got \(numClasses!)")
        self.depth = depth
        self.replaceStrideWithDilation = replaceStrideWithDilation
        conv1 = resnetConv(3, 64, kernel: 7, stride: 2)
        bn1 = BatchNorm2d(64)

        // torchvision's _make_layer, with its running inplanes and dilation.
        var inPlanes = 64, dilation = 1
        var dilations: [Int] = []
        func makeLayer(planes: Int, blocks: Int, stride: Int, dilate: Bool) -> Sequential {
            let previousDilation = dilation
            var stride = stride
            if dilate { dilation *= stride; stride = 1 }
            let outPlanes = planes * depth.expansion
            let down = stride != 1 || inPlanes != outPlanes ? resnetDownsample(inPlanes, outPlanes, stride: stride) : nil
            var layers: [any Layer] = []
            func block(_ cin: Int, _ s: Int, _ ds: Sequential?, _ d: Int) -> any Layer {
                depth.usesBottleneck
                    ? Bottleneck(inPlanes: cin, planes: planes, stride: s, downsample: ds, dilation: d)
                    : BasicBlock(inPlanes: cin, planes: planes, stride: s, downsample: ds, dilation: d)
            }
            layers.append(block(inPlanes, stride, down, previousDilation))
            inPlanes = outPlanes
            for _ in 1..<blocks { layers.append(block(inPlanes, 1, nil, dilation)) }
            dilations.append(dilation)
            return Sequential(layers)
        }
        let n = depth.blocksPerLayer
        layer1 = makeLayer(planes: 64, blocks: n[0], stride: 1, dilate: false)
        layer2 = makeLayer(planes: 128, blocks: n[1], stride: 2, dilate: replaceStrideWithDilation[0])
        layer3 = makeLayer(planes: 256, blocks: n[2], stride: 2, dilate: replaceStrideWithDilation[1])
        layer4 = makeLayer(planes: 512, blocks: n[3], stride: 2, dilate: replaceStrideWithDilation[2])
        layerDilations = dilations
        if let numClasses {
            avgpool = AdaptiveAvgPool2d(outputSize: 1)
            fc = Linear(inFeatures: 512 * depth.expansion, outFeatures: numClasses)
        } else {
            avgpool = nil
            fc = nil
        }
    }

    /// conv1, bn1, relu, maxpool, layer1 ... layer4, then avgpool and fc when present:
    /// torchvision's names and order (state-dict names `conv1.weight`, `layer3.1.bn2.bias`, ...).
    public var children: [(String, any Module)] {
        var c: [(String, any Module)] = [("conv1", conv1), ("bn1", bn1), ("relu", relu), ("maxpool", maxpool),
                                         ("layer1", layer1), ("layer2", layer2), ("layer3", layer3), ("layer4", layer4)]
        if let avgpool, let fc { c += [("avgpool", avgpool), ("fc", fc)] }
        return c
    }

    /// Total downsampling factor of layer4's output: 32, divided by 2 per dilated layer.
    public var outputStride: Int { 32 >> replaceStrideWithDilation.filter { $0 }.count }

    /// The outputs of layer1..layer4 for input `[N, 3, H, W]`: strides 4, 8, 16, 32 (8 for
    /// dilated layers) with `64, 128, 256, 512` times `expansion` channels.
    public func features(_ x: Tensor) -> [Tensor] {
        fcnCheck(x.rank == 4 && x.shape[1] == 3, "ResNet", "expected input [N, 3, H, W], got \(x.shape)")
        let c1 = layer1(stem(x))
        let c2 = layer2(c1)
        let c3 = layer3(c2)
        return [c1, c2, c3, layer4(c3)]
    }

    /// conv1 - bn1 - relu - maxpool: `[N, 3, H, W]` -> `[N, 64, ceil(ceil(H/2)/2), ...]`.
    public func stem(_ x: Tensor) -> Tensor { maxpool(relu(bn1(conv1(x)))) }

    /// Backbone: layer4's output. With a classifier: logits `[N, numClasses]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let f = features(x)[3]
        guard let avgpool, let fc else { return f }
        return fc(avgpool(f).flattened(from: 1))
    }
}
