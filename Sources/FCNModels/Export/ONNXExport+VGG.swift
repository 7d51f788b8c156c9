// The graph of a VGGFCN: `VGGFCN.forwardWithTaps` op by op, in eval mode.
//
//   conv1_1 ... conv5_3   Conv + Relu (conv1_1 pads 100 in the Caffe layout, 1 in `.same`)
//   pool1 ... pool5       MaxPool 2x2 stride 2, ceil_mode 1
//   fc6, fc7              Conv + Relu (drop6 / drop7 are the identity in eval mode)
//   score_fr              Conv
//   FCN-32s               upscore (ConvTranspose 64/32), crop 19 (Caffe) to the input
//   FCN-16s               upscore2 + crop(score_pool4(pool4), 5), upscore16, crop 27
//   FCN-8s                ... + crop(score_pool3(pool3), 9) after upscore_pool4, upscore8, crop 31
//   FCN-8s at-once        as 8s with Mul(pool4, 0.01) and Mul(pool3, 0.0001) before the scores
//   FCN-4s                as 8s to fuse_pool3, then upscore_pool3 + crop(score_pool2(pool2), 17),
//                         upscore4, crop 33
// The crop offsets are the model's own (`FCNGeometry.vgg16CropOffsets`). Caffe layout: the
// skip is cropped to the upsampled map at its offset, the output to the input at the final
// offset. `.same`: the grids align at 0 and a longer upsampled map is cut at its end to the
// skip's size (`Slice` from 0), the output to the input's size. Every `Slice` end is the
// offset plus the `Shape` of the map it aligns to, so the file runs at any input size.
import FCNCore
import FCNIO

extension ONNXExport {
    static func vggScores(_ m: VGGFCN, _ g: inout ONNXGraphBuilder) throws -> ONNXValue {
        let input = g.input
        var h = input
        var pool2 = h, pool3 = h, pool4 = h
        var k = 0
        for (s, stage) in VGG16Config.stages.enumerated() {
            for _ in stage {
                let (name, conv) = m.convolutions[k]
                h = try g.conv(h, name: name, conv, relu: true)
                k += 1
            }
            h = try g.maxPool(h, name: "pool\(s + 1)", kernel: 2, stride: 2, padding: 0, dilation: 1, ceilMode: true)
            if s == 1 { pool2 = h } else if s == 2 { pool3 = h } else if s == 3 { pool4 = h }
        }
        h = try g.conv(h, name: "fc6", m.fc6, relu: true)
        h = try g.conv(h, name: "fc7", m.fc7, relu: true)
        let score = try g.conv(h, name: "score_fr", m.scoreFr, relu: false)
        let o = m.padding == .caffe ? VGGFCN.cropOffsets : VGGFCN.sameCropOffsets

        /// The upsampled map plus the skip's scores on their common grid (`VGGFCN.fuse`).
        func fuse(_ up: ONNXValue, skip: ONNXValue, offset: Int, name: String) throws -> ONNXValue {
            if m.padding == .caffe {
                return try g.add(up, g.crop(skip, top: offset, left: offset, like: up, name: name + "/crop"), name: name)
            }
            return try g.add(g.crop(up, top: 0, left: 0, like: skip, name: name + "/crop"), skip, name: name)
        }
        func required<T>(_ x: T?, _ name: String) throws -> T {
            guard let x else { throw FCNError.mismatch("ONNX export: \(m.variant) has no \(name)") }
            return x
        }
        switch m.variant {
        case .fcn32s:
            let up = try g.convTranspose(score, name: "upscore", required(m.upscore, "upscore"))
            return try g.crop(up, top: o.fcn32Final, left: o.fcn32Final, like: input, name: "score")
        case .fcn16s, .fcn8s, .fcn8sAtOnce, .fcn4s:
            let atOnce = m.variant == .fcn8sAtOnce
            let p4In = atOnce ? g.scaled(pool4, by: 0.01, name: "scale_pool4") : pool4
            let p4 = try g.conv(p4In, name: "score_pool4", required(m.scorePool4, "score_pool4"), relu: false)
            let up2 = try g.convTranspose(score, name: "upscore2", required(m.upscore2, "upscore2"))
            let fuse4 = try fuse(up2, skip: p4, offset: o.fcn16Pool4, name: "fuse_pool4")
            if m.variant == .fcn16s {
                let up16 = try g.convTranspose(fuse4, name: "upscore16", required(m.upscore16, "upscore16"))
                return try g.crop(up16, top: o.fcn16Final, left: o.fcn16Final, like: input, name: "score")
            }
            let p3In = atOnce ? g.scaled(pool3, by: 0.0001, name: "scale_pool3") : pool3
            let p3 = try g.conv(p3In, name: "score_pool3", required(m.scorePool3, "score_pool3"), relu: false)
            let upP4 = try g.convTranspose(fuse4, name: "upscore_pool4", required(m.upscorePool4, "upscore_pool4"))
            let fuse3 = try fuse(upP4, skip: p3, offset: o.fcn8Pool3, name: "fuse_pool3")
            if m.variant == .fcn4s {
                let p2 = try g.conv(pool2, name: "score_pool2", required(m.scorePool2, "score_pool2"), relu: false)
                let upP3 = try g.convTranspose(fuse3, name: "upscore_pool3", required(m.upscorePool3, "upscore_pool3"))
                let fuse2 = try fuse(upP3, skip: p2, offset: o.fcn4Pool2, name: "fuse_pool2")
                let up4 = try g.convTranspose(fuse2, name: "upscore4", required(m.upscore4, "upscore4"))
                return try g.crop(up4, top: o.fcn4Final, left: o.fcn4Final, like: input, name: "score")
            }
            let up8 = try g.convTranspose(fuse3, name: "upscore8", required(m.upscore8, "upscore8"))
            return try g.crop(up8, top: o.fcn8Final, left: o.fcn8Final, like: input, name: "score")
        }
    }
}

extension ONNXGraphBuilder {
    /// The layer `conv` (its parameters, geometry), followed by `Relu` when asked.
    mutating func conv(_ x: ONNXValue, name: String, _ conv: Conv2d, relu: Bool) throws -> ONNXValue {
        try self.conv(x, name: name, weight: conv.weight.value, bias: conv.bias?.value, stride: conv.stride,
                      padding: conv.padding, dilation: conv.dilation, groups: conv.groups, relu: relu)
    }

    /// A `FusedConv2d` (batch norm already folded into its weight and bias).
    mutating func conv(_ x: ONNXValue, name: String, _ conv: FusedConv2d) throws -> ONNXValue {
        try self.conv(x, name: name, weight: conv.weight, bias: conv.bias, stride: conv.stride,
                      padding: conv.padding, dilation: conv.dilation, groups: conv.groups, relu: conv.relu)
    }

    /// The layer `layer` (its parameters and geometry).
    mutating func convTranspose(_ x: ONNXValue, name: String, _ layer: ConvTranspose2d) throws -> ONNXValue {
        try convTranspose(x, name: name, weight: layer.weight.value, bias: layer.bias?.value, stride: layer.stride,
                          padding: layer.padding, outputPadding: layer.outputPadding, dilation: layer.dilation,
                          groups: layer.groups)
    }

    /// The layer `pool`.
    mutating func maxPool(_ x: ONNXValue, name: String, _ pool: MaxPool2d) throws -> ONNXValue {
        try maxPool(x, name: name, kernel: pool.kernel, stride: pool.stride, padding: pool.padding, dilation: pool.dilation,
                    ceilMode: pool.ceilMode)
    }
}
