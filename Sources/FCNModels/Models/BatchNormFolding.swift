// Inference preparation: batch norm folded into the preceding convolution, ReLU fused
// into the convolution's output pass.
//
// In eval mode a BatchNorm2d is an affine map per channel, so conv -> BN equals one conv
// with weight `w * s` and bias `(b - mean) * s + beta`, `s = gamma / sqrt(var + eps)`
// (`foldBatchNorm`, Ops/Normalization.swift). A following ReLU is applied while the
// convolution writes its output (`conv2d(..., fusedReLU: true)`), saving two passes over
// the activations per block.
//
// `foldedForInference(_:)` builds a NEW layer tree: the original keeps its parameters and
// can still be trained; the folded copy holds plain tensors (no Parameters, no autograd)
// and must be rebuilt after the original's weights change. Rules, applied recursively:
//   Sequential            its layers folded pairwise: Conv2d [BatchNorm2d] [ReLU] -> FusedConv2d
//   BatchNormFoldable     the layer's own `foldedForInference()` (model-specific blocks)
//   anything else         kept as is (shared with the original)
// A BatchNorm2d without running statistics (trackRunningStats false) normalises with
// batch statistics even in eval mode and is not folded.
//
// ResNet blocks conform with a few lines each, e.g. for torchvision's BasicBlock:
//
//     extension BasicBlock: BatchNormFoldable {
//         public func foldedForInference() -> any Layer {
//             FusedResidualBlock(main: [FusedConv2d(conv1, bn1, relu: true), FusedConv2d(conv2, bn2)],
//                                shortcut: downsample.map(foldedForInference))
//         }
//     }
//
// (Bottleneck: three FusedConv2d, the first two with relu; FCNHead:
// `Sequential(FusedConv2d(conv, bn, relu: true), score)`, its dropout being the identity in
// eval mode.)

import FCNCore
import FCNIO

/// A layer that knows how to build its folded inference copy (see the file comment).
public protocol BatchNormFoldable {
    /// A copy for inference with batch norms folded into convolutions; eval-mode semantics.
    func foldedForInference() -> any Layer
}

/// A convolution with bias and optional ReLU applied in one pass, holding plain tensors
/// (an inference-only layer: no parameters, no gradient). Input `[N, Cin, H, W]`, output
/// as `conv2d` with the same geometry.
public final class FusedConv2d: Layer, @unchecked Sendable {
    /// Folded weights, `[Cout, Cin / groups, kH, kW]`.
    public let weight: Tensor
    /// Folded bias, `[Cout]` (nil: none).
    public let bias: Tensor?
    /// Geometry of the convolution, as in `Conv2d`.
    public let stride: Size2, padding: Padding, dilation: Size2, groups: Int
    /// Apply a ReLU while writing the output.
    public let relu: Bool
    /// Always false in practice: the layer behaves the same in both modes.
    public var isTraining = false

    /// A fused convolution from plain tensors (detached here); geometry defaults are those
    /// of `Conv2d` (stride 1, no padding, no dilation, one group).
    public init(weight: Tensor, bias: Tensor?, stride: Size2 = 1, padding: Padding = 0, dilation: Size2 = 1,
                groups: Int = 1, relu: Bool) {
        self.weight = weight.detached(); self.bias = bias?.detached()
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups; self.relu = relu
    }

    /// `conv` followed by `bn` (eval mode: running statistics; nil for none) and
    /// optionally a ReLU, as one layer.
    public convenience init(_ conv: Conv2d, _ bn: BatchNorm2d? = nil, relu: Bool = false) {
        var w = conv.weight.value.detached(), b = conv.bias?.value.detached()
        if let bn, let rm = bn.runningMean, let rv = bn.runningVar {
            (w, b) = foldBatchNorm(convWeight: w, convBias: b, runningMean: rm.value, runningVar: rv.value,
                                   weight: bn.weight?.value.detached(), bias: bn.bias?.value.detached(), eps: bn.eps)
        } else {
            fcnCheck(bn == nil, "FusedConv2d", "cannot fold a BatchNorm2d without running statistics")
        }
        self.init(weight: w, bias: b, stride: conv.stride, padding: conv.padding, dilation: conv.dilation,
                  groups: conv.groups, relu: relu)
    }

    /// The convolution (with its optional ReLU) of `[N, Cin, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups,
               fusedReLU: relu)
    }
}

extension FusedConv2d {
    /// `relu(conv(x) + residual)`: this convolution (whose own `relu` is ignored) with a
    /// residual of its output's shape added before the ReLU, in the write-back where the
    /// algorithm allows (`conv2d(_:weight:bias:stride:padding:dilation:groups:residual:fusedReLU:)`).
    public func callAsFunction(_ x: Tensor, residual: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups,
               residual: residual, fusedReLU: true)
    }
}

/// `relu(main(x) + shortcut(x))` (shortcut nil: the identity), the residual block of
/// ResNets in folded form.
public final class FusedResidualBlock: Layer, @unchecked Sendable {
    /// The main path, applied in order.
    public let main: [any Layer]
    /// The shortcut (nil: the identity).
    public let shortcut: (any Layer)?
    /// Always false in practice: the layer behaves the same in both modes.
    public var isTraining = false

    /// A block from its folded main path and optional shortcut.
    public init(main: [any Layer], shortcut: (any Layer)?) { self.main = main; self.shortcut = shortcut }

    /// `relu(main(x) + shortcut(x))`, same shape as the main path's output.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        // The last convolution without its own ReLU adds the shortcut in its write-back.
        if let last = main.last as? FusedConv2d, !last.relu {
            for l in main.dropLast() { y = l(y) }
            return last(y, residual: shortcut?(x) ?? x)
        }
        for l in main { y = l(y) }
        return relu(y + (shortcut?(x) ?? x))
    }
}

/// The inference copy of `layer` with batch norms folded and ReLUs fused (see the file
/// comment). Fold a model in eval mode; the copy is in eval mode.
public func foldedForInference(_ layer: any Layer) -> any Layer {
    if let f = layer as? any BatchNormFoldable { return f.foldedForInference() }
    guard let seq = layer as? Sequential else { return layer }
    let items = seq.layers
    var out: [any Layer] = []
    var i = 0
    while i < items.count {
        if let conv = items[i] as? Conv2d {
            var j = i + 1
            var bn: BatchNorm2d? = nil
            if j < items.count, let b = items[j] as? BatchNorm2d, b.runningMean != nil, b.runningVar != nil { bn = b; j += 1 }
            var withReLU = false
            if j < items.count, items[j] is ReLU { withReLU = true; j += 1 }
            if bn != nil || withReLU {
                out.append(FusedConv2d(conv, bn, relu: withReLU))
                i = j
                continue
            }
            out.append(conv)
        } else {
            out.append(foldedForInference(items[i]))
        }
        i += 1
    }
    let folded = Sequential(out)
    folded.isTraining = false   // only the container: layers kept as is stay shared with the original
    return folded
}
