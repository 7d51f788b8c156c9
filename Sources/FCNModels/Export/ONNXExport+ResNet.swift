// The graphs of the ResNet models, batch norms folded as the library's inference copies
// fold them (`foldedForInference`: conv -> BN [-> ReLU] becomes one `FusedConv2d`, the
// blocks and the FCN head fold themselves).
//
// ResNetFCN8s (`ResNetFCN8s.callAsFunction`): Pad the input with zeros at the bottom and
// right to multiples of 32 (the amounts computed from its Shape: ((hw + 31) / 32) * 32 - hw),
// stage1 (conv1+bn1+relu, maxpool, layer1, layer2), stage2 (layer3), stage3 (layer4), then
//   s3 = upsample_2x(scores1(stage3)); s2 = upsample_4x(scores2(stage2) + s3)
//   out = upsample_8x(scores3(stage1) + s2), sliced back to the input's height and width.
// DilatedResNetFCN (`DilatedResNetFCN.callAsFunction`): the dilated backbone, the FCN head (3x3 conv +
// bn + relu folded, dropout left out, 1x1 score conv), then Resize to the input's height
// and width: mode linear, coordinate_transformation_mode half_pixel, which is PyTorch's
// `F.interpolate(mode="bilinear", align_corners=False)`: the source coordinate of output
// pixel x is (x + 0.5) * in / out - 0.5, clamped to the input. The auxiliary head is not
// exported (inference does not run it).
// Residual blocks: relu(main(x) + shortcut(x)) as Add then Relu, the shortcut being the
// folded `downsample` or the block's input.
import FCNCore
import FCNIO

extension ONNXExport {
    static func resnetFCN8sScores(_ m: ResNetFCN8s, _ g: inout ONNXGraphBuilder) throws -> ONNXValue {
        let input = g.input
        let x = g.padBottomRight(input, toMultipleOf: 32, name: "pad")
        let s1 = try g.layers(named(m.stage1, "stage1"), x)
        let s2 = try g.layers(named(m.stage2, "stage2"), s1)
        let s3 = try g.layers(named(m.stage3, "stage3"), s2)
        let up3 = try g.convTranspose(g.conv(s3, name: "scores1", m.scores1, relu: false), name: "upsample_2x", m.upsample2x)
        let sum2 = try g.add(g.conv(s2, name: "scores2", m.scores2, relu: false), up3, name: "fuse_stage2")
        let up2 = try g.convTranspose(sum2, name: "upsample_4x", m.upsample4x)
        let sum1 = try g.add(g.conv(s1, name: "scores3", m.scores3, relu: false), up2, name: "fuse_stage1")
        let y = try g.convTranspose(sum1, name: "upsample_8x", m.upsample8x)
        return try g.crop(y, top: 0, left: 0, like: input, name: "crop")
    }

    static func fcnResNetScores(_ m: DilatedResNetFCN, _ g: inout ONNXGraphBuilder) throws -> ONNXValue {
        let b = m.backbone
        let backbone: [(String, any Layer)] = [
            ("backbone.conv1", b.conv1), ("backbone.bn1", b.bn1), ("backbone.relu", b.relu), ("backbone.maxpool", b.maxpool),
            ("backbone.layer1", b.layer1), ("backbone.layer2", b.layer2), ("backbone.layer3", b.layer3), ("backbone.layer4", b.layer4),
        ]
        let features = try g.layers(backbone, g.input)
        let head = try g.layer("classifier", m.classifier, features)
        return g.resizeBilinear(head, like: g.input, name: "resize")
    }

    /// The layers of `s` named `prefix.0`, `prefix.1`, ... (the state-dict names).
    static func named(_ s: Sequential, _ prefix: String) -> [(String, any Layer)] {
        s.namedLayers.map { (prefix + "." + $0.0, $0.1) }
    }
}

extension ONNXGraphBuilder {
    /// A sequence of layers, conv -> BatchNorm2d [-> ReLU] and conv -> ReLU folded into
    /// one convolution as `foldedForInference(_:)` folds a Sequential.
    mutating func layers(_ items: [(String, any Layer)], _ x: ONNXValue) throws -> ONNXValue {
        var h = x, i = 0
        while i < items.count {
            let (name, layer) = items[i]
            guard let conv = layer as? Conv2d else {
                h = try self.layer(name, layer, h)
                i += 1
                continue
            }
            var j = i + 1
            var bn: BatchNorm2d? = nil
            if j < items.count, let b = items[j].1 as? BatchNorm2d, b.runningMean != nil, b.runningVar != nil { bn = b; j += 1 }
            var withReLU = false
            if j < items.count, items[j].1 is ReLU { withReLU = true; j += 1 }
            h = try self.conv(h, name: name, FusedConv2d(conv, bn, relu: withReLU))
            i = j
        }
        return h
    }

    /// One layer of a ResNet model in eval mode.
    mutating func layer(_ name: String, _ layer: any Layer, _ x: ONNXValue) throws -> ONNXValue {
        switch layer {
        case let s as Sequential:
            return try layers(s.namedLayers.map { (name + "." + $0.0, $0.1) }, x)
        case let c as Conv2d:
            return try conv(x, name: name, c, relu: false)
        case let c as FusedConv2d:
            return try conv(x, name: name, c)
        case let p as MaxPool2d:
            return try maxPool(x, name: name, p)
        case let t as ConvTranspose2d:
            return try convTranspose(x, name: name, t)
        case is ReLU:
            return relu(x, name: name)
        case is Dropout, is Dropout2d, is Identity:
            return x                                                     // the identity in eval mode
        case let b as BasicBlock:
            return try residual(name, b.foldedForInference(), mainNames: ["conv1", "conv2"], x)
        case let b as Bottleneck:
            return try residual(name, b.foldedForInference(), mainNames: ["conv1", "conv2", "conv3"], x)
        case let h as FCNHead:
            // Sequential(FusedConv2d(conv, bn, relu), score), torchvision's layers "0" and "4".
            guard let folded = h.foldedForInference() as? Sequential, folded.count == 2 else {
                throw FCNError.unsupported("ONNX export: unexpected folded form of the FCN head \(name)")
            }
            return try layers([(name + ".0", folded[0]), (name + ".4", folded[1])], x)
        case let b as FusedResidualBlock:
            return try residual(name, b, mainNames: b.main.indices.map { "main\($0)" }, x)
        default:
            throw FCNError.unsupported("ONNX export: layer \(name) (\(type(of: layer))) has no ONNX form here")
        }
    }

    /// `relu(main(x) + shortcut(x))` of a folded residual block.
    private mutating func residual(_ name: String, _ folded: any Layer, mainNames: [String], _ x: ONNXValue) throws -> ONNXValue {
        guard let block = folded as? FusedResidualBlock, block.main.count == mainNames.count else {
            throw FCNError.unsupported("ONNX export: unexpected folded form of the residual block \(name)")
        }
        var y = x
        for (layer, n) in zip(block.main, mainNames) { y = try self.layer(name + "." + n, layer, y) }
        let shortcut = try block.shortcut.map { try self.layer(name + ".downsample", $0, x) } ?? x
        let sum = try add(y, shortcut, name: name + "/add")
        return relu(sum, name: name + "/relu")
    }
}
