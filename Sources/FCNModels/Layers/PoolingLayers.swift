// Pooling layers (no parameters): MaxPool2d, AvgPool2d, AdaptiveAvgPool2d. Output sizes
// follow PyTorch, see the ops; FCN's Caffe pools are `MaxPool2d(kernel: 2, stride: 2,
// ceilMode: true)`.

import FCNCore
import FCNIO

/// Max pooling over NCHW input; `stride` defaults to the kernel size as in PyTorch.
public final class MaxPool2d: Layer, @unchecked Sendable {
    /// Window size, step between windows (the kernel size unless given), implicit -inf
    /// border on each side (at most `kernel/2`), and spacing between window taps.
    public let kernel: Size2, stride: Size2, padding: Size2, dilation: Size2
    /// Round the output size up (Caffe's rule; the FCN pools use it).
    public let ceilMode: Bool
    /// Training or evaluation mode (no effect on pooling).
    public var isTraining = true

    /// A max-pooling layer with PyTorch's defaults: stride = kernel, no padding, floor mode.
    public init(kernel: Size2, stride: Size2? = nil, padding: Size2 = 0, dilation: Size2 = 1, ceilMode: Bool = false) {
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding
        self.dilation = dilation; self.ceilMode = ceilMode
    }

    /// `maxPool2d` of `[N, C, H, W]` with this layer's options: `[N, C, outH, outW]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        maxPool2d(x, kernel: kernel, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
    }
}

/// Average pooling over NCHW input; `stride` defaults to the kernel size, padded cells
/// count in the divisor unless `countIncludePad` is false (PyTorch's defaults).
public final class AvgPool2d: Layer, @unchecked Sendable {
    /// Window size, step between windows (the kernel size unless given), and implicit zero
    /// border on each side (at most `kernel/2`).
    public let kernel: Size2, stride: Size2, padding: Size2
    /// `ceilMode` rounds the output size up; `countIncludePad` divides by the window area
    /// including padding (PyTorch's default) instead of the cells inside the image.
    public let ceilMode: Bool, countIncludePad: Bool
    /// Training or evaluation mode (no effect on pooling).
    public var isTraining = true

    /// An average-pooling layer with PyTorch's defaults: stride = kernel, no padding, floor
    /// mode, padding counted in the divisor.
    public init(kernel: Size2, stride: Size2? = nil, padding: Size2 = 0, ceilMode: Bool = false, countIncludePad: Bool = true) {
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding
        self.ceilMode = ceilMode; self.countIncludePad = countIncludePad
    }

    /// `avgPool2d` of `[N, C, H, W]` with this layer's options: `[N, C, outH, outW]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        avgPool2d(x, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode, countIncludePad: countIncludePad)
    }
}

/// Adaptive average pooling to a fixed `outputSize` (cell `i` averages input rows
/// `floor(i*H/oh) ..< ceil((i+1)*H/oh)`).
public final class AdaptiveAvgPool2d: Layer, @unchecked Sendable {
    /// The spatial size of the output (height, width).
    public let outputSize: Size2
    /// Training or evaluation mode (no effect on pooling).
    public var isTraining = true

    /// A layer pooling any input to `outputSize` (`1` is global average pooling).
    public init(outputSize: Size2) { self.outputSize = outputSize }

    /// `[N, C, H, W]` -> `[N, C, outputSize.h, outputSize.w]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { adaptiveAvgPool2d(x, outputSize: outputSize) }
}
