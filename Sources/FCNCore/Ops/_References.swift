// Naive reference kernels shared inside the package (`package` access), so that
// `fcn-bench --quick` can check the tuned kernels in a release build. Not public API.

/// The naive reference kernels the tuned ones are tested against. Slow.
package enum FCNReference {
    /// Direct-loop `conv2d` (no autograd, no fused ReLU).
    package static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1,
                              padding: Padding = 0, dilation: Size2 = 1, groups: Int = 1) -> Tensor {
        conv2dReference(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    /// Scatter-loop `convTranspose2d` (no autograd).
    package static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1,
                                       padding: Padding = 0, outputPadding: Size2 = 0, dilation: Size2 = 1,
                                       groups: Int = 1) -> Tensor {
        convTranspose2dReference(x, weight: weight, bias: bias, stride: stride, padding: padding,
                                 outputPadding: outputPadding, dilation: dilation, groups: groups)
    }

    /// `maxPool2d` through the naive window loop (no autograd).
    package static func maxPool2d(_ x: Tensor, kernel: Size2, stride: Size2? = nil, padding: Size2 = 0,
                                 dilation: Size2 = 1, ceilMode: Bool = false) -> Tensor {
        maxPool2dReference(x, kernel: kernel, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode)
    }
}
