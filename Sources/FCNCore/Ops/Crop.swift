// Spatial crops of NCHW tensors: Caffe's Crop layer (axis 2, top-left offset) and
// torchvision's center crop, forward and backward.
//
// crop takes rows offset.h ..< offset.h + height and columns offset.w ..< offset.w + width
// of every plane; it is an error if the window does not fit (`in - offset < size`), as in
// Caffe. The FCN models use it to align the upsampled scores with the input (offsets 19,
// 27, 31 for VGG16 FCN-32s/16s/8s) and the skip scores with each other.
// centerCrop places the window at top = round((H - h) / 2) (Python rounding, half to even,
// as torchvision's `int(round(...))`); a window larger than the image is zero padded as
// torchvision does (pad (h-H)/2 on top, the rest at the bottom; same for width).
// Backward writes the gradient back into a zero tensor of the input's shape.

/// Caffe's Crop layer: crops the spatial axes of `x` to the spatial size of `reference`,
/// starting at `offset` from the top-left corner (not centred).
///
/// - Parameters:
///   - x: input `[N, C, H, W]`.
///   - reference: any rank-4 tensor; only its height and width are used (no gradient).
///   - offset: (top, left) of the window; Caffe's default 0.
/// - Returns: `[N, C, reference.h, reference.w]`. Traps if `H - offset.h < reference.h` or
///   `W - offset.w < reference.w`.
public func crop(_ x: Tensor, like reference: Tensor, offset: Size2 = 0) -> Tensor {
    profiledOp("crop") {
        fcnCheck(reference.rank == 4, "crop", "reference must be NCHW (rank 4), got shape \(reference.shape)")
        return cropWindow("crop", x, top: offset.h, left: offset.w, height: reference.shape[2],
                          width: reference.shape[3], padOutside: false)
    }
}

/// Crops the spatial axes of `x` to `height x width` starting at `offset` (top, left):
/// `[N, C, H, W]` -> `[N, C, height, width]`. Traps if the window does not fit.
public func crop(_ x: Tensor, height: Int, width: Int, offset: Size2 = 0) -> Tensor {
    profiledOp("crop") {
        cropWindow("crop", x, top: offset.h, left: offset.w, height: height, width: width, padOutside: false)
    }
}

/// torchvision's `center_crop` on NCHW: `[N, C, H, W]` -> `[N, C, height, width]` with the
/// window at `top = round((H - height) / 2)`, `left = round((W - width) / 2)` (half to
/// even, as Python's `round`). A window larger than the image is zero padded, as in
/// torchvision.
public func centerCrop(_ x: Tensor, height: Int, width: Int) -> Tensor {
    fcnCheck(height > 0 && width > 0, "centerCrop", "size must be positive, got \(height)x\(width)")
    fcnCheck(x.rank == 4, "centerCrop", "input must be NCHW (rank 4), got shape \(x.shape)")
    func start(_ n: Int, _ m: Int) -> Int {
        if m > n { return -((m - n) / 2) }                     // padded: torchvision pads (m-n)/2 first
        return Int((Double(n - m) / 2).rounded(.toNearestOrEven))
    }
    return cropWindow("centerCrop", x, top: start(x.shape[2], height), left: start(x.shape[3], width),
                      height: height, width: width, padOutside: true)
}

/// Copies the window [top, top+height) x [left, left+width) of every plane; cells outside
/// the input are 0 when `padOutside`, otherwise the window must fit.
private func cropWindow(_ op: String, _ x: Tensor, top: Int, left: Int, height: Int, width: Int,
                        padOutside: Bool) -> Tensor {
    fcnCheck(x.rank == 4, op, "input must be NCHW (rank 4), got shape \(x.shape)")
    fcnCheck(height >= 0 && width >= 0, op, "size must be non-negative, got \(height)x\(width)")
    let H = x.shape[2], W = x.shape[3]
    if !padOutside {
        fcnCheck(top >= 0 && left >= 0, op, "offset [\(top), \(left)] must be non-negative")
        fcnCheck(H - top >= height && W - left >= width, op,
                 "a \(height)x\(width) window at offset [\(top), \(left)] does not fit in input \(x.shape) (needs in - offset >= size)")
    }
    let planes = x.shape[0] * x.shape[1]
    // Rows / columns of the output that map inside the input.
    let rLo = max(0, -top), rHi = min(height, H - top)
    let cLo = max(0, -left), cHi = min(width, W - left)
    let outShape = [x.shape[0], x.shape[1], height, width]
    let full = rLo == 0 && rHi == height && cLo == 0 && cHi == width
    var out = full ? Tensor.make(shape: outShape) { _ in } : Tensor.zeros(outShape)
    if rLo < rHi && cLo < cHi {
        out.withUnsafeMutableBufferPointer { ob in
            let o = ob.baseAddress!, xp = x.storage.pointer
            parallelFor(planes) { p in
                let src = xp + p * H * W, dst = o + p * height * width
                for r in rLo..<rHi {
                    (dst + r * width + cLo).update(from: src + (r + top) * W + left + cLo, count: cHi - cLo)
                }
            }
        }
    }
    return recordPlanewise(op, out, of: x) { src, dst in
        guard rLo < rHi && cLo < cHi else { return }
        for r in rLo..<rHi {
            (dst + (r + top) * W + left + cLo).update(from: src + r * width + cLo, count: cHi - cLo)
        }
    }
}
