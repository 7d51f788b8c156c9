// Pooling layers (no parameters): MaxPool2d, AvgPool2d, AdaptiveAvgPool2d. Output sizes
// follow PyTorch, see the ops; FCN's Caffe pools are `MaxPool2d(kernel: 2, stride: 2,
// ceilMode: true)`.

/// Max pooling over NCHW input; `stride` defaults to the kernel size as in PyTorch.
public final class MaxPool2d: Layer, @unchecked Sendable {
    public let kernel: Size2, stride: Size2, padding: Size2, dilation: Size2
    public let ceilMode: Bool
    public var isTraining = true

    public init(kernel: Size2, stride: Size2? = nil, padding: Size2 = 0, dilation: Size2 = 1, ceilMode: Bool = false) {
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding
        self.dilation = dilation; self.ceilMode = ceilMode
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        maxPool2d(x, kernel: kernel, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
    }
}

/// Average pooling over NCHW input; `stride` defaults to the kernel size, padded cells
/// count in the divisor unless `countIncludePad` is false (PyTorch's defaults).
public final class AvgPool2d: Layer, @unchecked Sendable {
    public let kernel: Size2, stride: Size2, padding: Size2
    public let ceilMode: Bool, countIncludePad: Bool
    public var isTraining = true

    public init(kernel: Size2, stride: Size2? = nil, padding: Size2 = 0, ceilMode: Bool = false, countIncludePad: Bool = true) {
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding
        self.ceilMode = ceilMode; self.countIncludePad = countIncludePad
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        avgPool2d(x, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode, countIncludePad: countIncludePad)
    }
}

/// Adaptive average pooling to a fixed `outputSize` (cell `i` averages input rows
/// `floor(i*H/oh) ..< ceil((i+1)*H/oh)`).
public final class AdaptiveAvgPool2d: Layer, @unchecked Sendable {
    public let outputSize: Size2
    public var isTraining = true

    public init(outputSize: Size2) { self.outputSize = outputSize }

    public func callAsFunction(_ x: Tensor) -> Tensor { adaptiveAvgPool2d(x, outputSize: outputSize) }
}
