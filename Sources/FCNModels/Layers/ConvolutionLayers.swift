// Convolution layers: Conv2d and ConvTranspose2d, holding weight and optional bias
// parameters named `weight` and `bias` as in PyTorch (and as in Caffe exports such as
// `conv1_1.weight`, `upscore.weight`).

import FCNCore
import FCNIO

/// 2-D convolution over NCHW input. Weight `[outChannels, inChannels/groups, kH, kW]`,
/// bias `[outChannels]`; output `[N, outChannels, Hout, Wout]` with
/// `Hout = (H + padTop + padBottom - dilation*(kH-1) - 1) / stride + 1`.
///
/// Default init as PyTorch (see `ParameterInit`): weight and bias U(±1/sqrt(fanIn)),
/// fanIn = inChannels/groups * kH * kW.
public final class Conv2d: Layer, @unchecked Sendable {
    /// The filters `[outChannels, inChannels/groups, kH, kW]` (state-dict name `weight`).
    public let weight: Parameter
    /// The bias `[outChannels]` (name `bias`), or nil for a convolution without bias.
    public let bias: Parameter?
    /// Step of the window (height, width).
    public let stride: Size2
    /// Padding of the input (explicit amounts, `.valid` or TensorFlow's `.same`).
    public let padding: Padding
    /// Spacing of the kernel taps.
    public let dilation: Size2
    /// Number of independent channel groups (`inChannels` for a depthwise convolution).
    public let groups: Int
    /// Training or evaluation mode (no effect on a convolution).
    public var isTraining = true

    /// Input channels, `weight.shape[1] * groups`.
    public var inChannels: Int { weight.shape[1] * groups }
    /// Output channels, `weight.shape[0]`.
    public var outChannels: Int { weight.shape[0] }
    /// Kernel height and width, from the weight's shape.
    public var kernelSize: Size2 { Size2(weight.shape[2], weight.shape[3]) }

    /// Creates a convolution with PyTorch's default initialisation (`seed` nil: the shared
    /// generator of `ParameterInit`).
    public init(inChannels: Int, outChannels: Int, kernelSize: Size2, stride: Size2 = 1, padding: Padding = 0,
                dilation: Size2 = 1, groups: Int = 1, bias: Bool = true, seed: UInt64? = nil) {
        fcnCheck(groups > 0 && inChannels % groups == 0 && outChannels % groups == 0, "Conv2d",
                 "inChannels \(inChannels) and outChannels \(outChannels) must be divisible by groups \(groups)")
        fcnCheck(kernelSize.h > 0 && kernelSize.w > 0 && stride.h > 0 && stride.w > 0 && dilation.h > 0 && dilation.w > 0,
                 "Conv2d", "kernelSize \(kernelSize), stride \(stride) and dilation \(dilation) must be positive")
        var g = ParameterInit.generator(seed: seed)
        let fanIn = inChannels / groups * kernelSize.h * kernelSize.w
        weight = Parameter(ParameterInit.torchDefault([outChannels, inChannels / groups, kernelSize.h, kernelSize.w], fanIn: fanIn, using: &g))
        self.bias = bias ? Parameter(ParameterInit.torchDefault([outChannels], fanIn: fanIn, using: &g)) : nil
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
    }

    /// Creates a convolution with the given weight `[Cout, Cin/groups, kH, kW]` and bias.
    public init(weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Padding = 0,
                dilation: Size2 = 1, groups: Int = 1) {
        fcnCheck(weight.rank == 4, "Conv2d", "weight must be [Cout, Cin/groups, kH, kW], got \(weight.shape)")
        fcnCheck(groups > 0 && weight.shape[0] % groups == 0, "Conv2d", "outChannels \(weight.shape[0]) must be divisible by groups \(groups)")
        fcnCheck(bias == nil || bias!.shape == [weight.shape[0]], "Conv2d", "bias must be [\(weight.shape[0])], got \(bias!.shape)")
        self.weight = Parameter(weight)
        self.bias = bias.map { Parameter($0) }
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
    }

    /// `weight`, then `bias` if present (PyTorch's order and names).
    public var localParameters: [(String, Parameter)] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }

    /// `conv2d` of `x` `[N, inChannels, H, W]` with this layer's parameters and options:
    /// `[N, outChannels, Hout, Wout]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight.value, bias: bias?.value, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
}

/// 2-D transposed convolution ("deconvolution"). Weight `[inChannels, outChannels/groups,
/// kH, kW]` (PyTorch's and Caffe's layout), bias `[outChannels]`; output size
/// `(H-1)*stride - padTop - padBottom + dilation*(kH-1) + outputPadding + 1`.
///
/// Default init as PyTorch: U(±1/sqrt(fanIn)) with fanIn = outChannels/groups * kH * kW
/// (PyTorch derives it from dimension 1 of the stored weight). FCN upsampling layers
/// replace it with `bilinearUpsamplingKernel` and freeze it.
public final class ConvTranspose2d: Layer, @unchecked Sendable {
    /// The filters `[inChannels, outChannels/groups, kH, kW]` (state-dict name `weight`).
    public let weight: Parameter
    /// The bias `[outChannels]` (name `bias`), or nil; the FCN upsampling layers have none.
    public let bias: Parameter?
    /// Upsampling factor (height, width).
    public let stride: Size2
    /// Amounts cropped from the full output (explicit or `.valid`).
    public let padding: Padding
    /// Extra rows/columns at the bottom/right of the output, `< max(stride, dilation)`.
    public let outputPadding: Size2
    /// Spacing of the kernel taps.
    public let dilation: Size2
    /// Number of independent channel groups.
    public let groups: Int
    /// Training or evaluation mode (no effect on a transposed convolution).
    public var isTraining = true

    /// Input channels, `weight.shape[0]`.
    public var inChannels: Int { weight.shape[0] }
    /// Output channels, `weight.shape[1] * groups`.
    public var outChannels: Int { weight.shape[1] * groups }
    /// Kernel height and width, from the weight's shape.
    public var kernelSize: Size2 { Size2(weight.shape[2], weight.shape[3]) }

    /// Creates a transposed convolution with PyTorch's default initialisation (`seed` nil:
    /// the shared generator of `ParameterInit`). Defaults (stride 1, no padding, bias) are
    /// PyTorch's.
    public init(inChannels: Int, outChannels: Int, kernelSize: Size2, stride: Size2 = 1, padding: Padding = 0,
                outputPadding: Size2 = 0, dilation: Size2 = 1, groups: Int = 1, bias: Bool = true, seed: UInt64? = nil) {
        fcnCheck(groups > 0 && inChannels % groups == 0 && outChannels % groups == 0, "ConvTranspose2d",
                 "inChannels \(inChannels) and outChannels \(outChannels) must be divisible by groups \(groups)")
        fcnCheck(kernelSize.h > 0 && kernelSize.w > 0 && stride.h > 0 && stride.w > 0 && dilation.h > 0 && dilation.w > 0,
                 "ConvTranspose2d", "kernelSize \(kernelSize), stride \(stride) and dilation \(dilation) must be positive")
        var g = ParameterInit.generator(seed: seed)
        let fanIn = outChannels / groups * kernelSize.h * kernelSize.w
        weight = Parameter(ParameterInit.torchDefault([inChannels, outChannels / groups, kernelSize.h, kernelSize.w], fanIn: fanIn, using: &g))
        self.bias = bias ? Parameter(ParameterInit.torchDefault([outChannels], fanIn: fanIn, using: &g)) : nil
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        self.dilation = dilation; self.groups = groups
    }

    /// Creates a transposed convolution with the given weight `[Cin, Cout/groups, kH, kW]`.
    public init(weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Padding = 0,
                outputPadding: Size2 = 0, dilation: Size2 = 1, groups: Int = 1) {
        fcnCheck(weight.rank == 4, "ConvTranspose2d", "weight must be [Cin, Cout/groups, kH, kW], got \(weight.shape)")
        fcnCheck(groups > 0 && weight.shape[0] % groups == 0, "ConvTranspose2d", "inChannels \(weight.shape[0]) must be divisible by groups \(groups)")
        fcnCheck(bias == nil || bias!.shape == [weight.shape[1] * groups], "ConvTranspose2d",
                 "bias must be [\(weight.shape[1] * groups)], got \(bias!.shape)")
        self.weight = Parameter(weight)
        self.bias = bias.map { Parameter($0) }
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        self.dilation = dilation; self.groups = groups
    }

    /// `weight`, then `bias` if present (PyTorch's order and names).
    public var localParameters: [(String, Parameter)] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }

    /// `convTranspose2d` of `x` `[N, inChannels, H, W]` with this layer's parameters and
    /// options: `[N, outChannels, (H-1)*stride - padding + dilation*(kH-1) + outputPadding + 1, ...]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        convTranspose2d(x, weight: weight.value, bias: bias?.value, stride: stride, padding: padding,
                        outputPadding: outputPadding, dilation: dilation, groups: groups)
    }
}
