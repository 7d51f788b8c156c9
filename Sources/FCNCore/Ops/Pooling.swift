// Pooling: the shape rule and argument checks shared by max and average pooling.
//
// Layout NCHW; every (n, c) plane is pooled independently. Output size per axis
// (PyTorch / ATen `pooling_output_shape`):
//   out = floorDiv(in + 2p - d*(k-1) - 1 + (ceil ? s-1 : 0), s) + 1
//   ceil mode: if (out-1)*s >= in + p then out -= 1   (the last window must start inside
//   the input or the left padding).
// Padding may be at most half the kernel (`p <= k/2`), as in PyTorch. Caffe's pooling
// always rounds up; for the FCN pools (k2 s2 p0) it equals PyTorch's ceil mode.
//
// Kernels: Pooling+Max.swift (max pool, max unpool), Pooling+Average.swift (avg pool,
// adaptive and global average pool).

/// Floor division that rounds toward negative infinity (ATen `div_rtn`).
@inline(__always)
func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q
}

/// Output length of a pooling window sweep along one axis (PyTorch rule, see the file
/// comment). May be zero or negative for windows larger than the padded input; callers
/// check.
public func poolOutputSize(input: Int, kernel: Int, stride: Int, padding: Int, dilation: Int = 1,
                           ceilMode: Bool) -> Int {
    let span = input + 2 * padding - dilation * (kernel - 1) - 1 + (ceilMode ? stride - 1 : 0)
    var out = floorDiv(span, stride) + 1
    if ceilMode && (out - 1) * stride >= input + padding { out -= 1 }
    return out
}

/// Resolved geometry of one 2-D pooling call (all sizes in elements).
struct PoolGeometry {
    var planes: Int          // N * C
    var inH: Int, inW: Int
    var outH: Int, outW: Int
    var kH: Int, kW: Int
    var sH: Int, sW: Int
    var pH: Int, pW: Int
    var dH: Int, dW: Int

    var inPlane: Int { inH * inW }
    var outPlane: Int { outH * outW }

    /// Checks the arguments of a pooling op and computes its output size. Traps with a
    /// message naming `op` on misuse (before any kernel runs).
    static func make(_ op: String, _ x: Tensor, kernel: Size2, stride: Size2?, padding: Size2,
                     dilation: Size2, ceilMode: Bool) -> PoolGeometry {
        fcnCheck(x.rank == 4, op, "input must be NCHW (rank 4), got shape \(x.shape)")
        let s = stride ?? kernel
        fcnCheck(kernel.h > 0 && kernel.w > 0, op, "kernel must be positive, got \(kernel)")
        fcnCheck(s.h > 0 && s.w > 0, op, "stride must be positive, got \(s)")
        fcnCheck(dilation.h > 0 && dilation.w > 0, op, "dilation must be positive, got \(dilation)")
        fcnCheck(padding.h >= 0 && padding.w >= 0, op, "padding must be non-negative, got \(padding)")
        fcnCheck(padding.h <= kernel.h / 2 && padding.w <= kernel.w / 2, op,
                 "padding \(padding) must be at most half the kernel \(kernel) (p <= k/2)")
        let inH = x.shape[2], inW = x.shape[3]
        fcnCheck(x.count > 0, op, "input \(x.shape) is empty")
        let oh = poolOutputSize(input: inH, kernel: kernel.h, stride: s.h, padding: padding.h,
                                dilation: dilation.h, ceilMode: ceilMode)
        let ow = poolOutputSize(input: inW, kernel: kernel.w, stride: s.w, padding: padding.w,
                                dilation: dilation.w, ceilMode: ceilMode)
        fcnCheck(oh >= 1 && ow >= 1, op,
                 "input \(x.shape) with kernel \(kernel), stride \(s), padding \(padding), dilation \(dilation) gives output size \(oh)x\(ow), which is too small")
        return PoolGeometry(planes: x.shape[0] * x.shape[1], inH: inH, inW: inW, outH: oh, outW: ow,
                            kH: kernel.h, kW: kernel.w, sH: s.h, sW: s.w, pH: padding.h, pW: padding.w,
                            dH: dilation.h, dW: dilation.w)
    }
}
