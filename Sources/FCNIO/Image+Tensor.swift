// Image <-> Tensor adapters.
//
// Image -> `[C, H, W]` (or `[1, C, H, W]` with `batch: true`) Float32, value = sample *
// `scale` (default 1: 0...255, the convention of the Caffe-trained FCNs; 1/255 gives
// torchvision's 0...1). Tensor -> Image divides by `scale`, rounds half away from zero and
// clamps to 0...255 (NaN -> 0). Label maps -> `[H, W]` class ids as Float.
// `readImageTensor` / `readLabelTensor` have the signatures the VOC dataset reader expects.

import FCNCore

extension Image {
    /// The image as a CHW Float tensor `[channels, height, width]` (`[1, C, H, W]` if
    /// `batch`), each value `sample * scale`.
    public func tensor(scale: Float = 1, batch: Bool = false) -> Tensor {
        let c = channels, hw = width * height
        let shape = batch ? [1, c, height, width] : [c, height, width]
        return pixels.withUnsafeBufferPointer { src in
            Tensor.make(shape: shape) { dst in
                for ch in 0..<c {
                    let o = ch * hw
                    for i in 0..<hw { dst[o + i] = Float(src[i * c + ch]) * scale }
                }
            }
        }
    }

    /// An image from a `[C, H, W]` or `[1, C, H, W]` tensor (C = 1...4): value / scale,
    /// rounded and clamped to 0...255.
    public init(tensor t: Tensor, scale: Float = 1) {
        fcnCheck(t.rank == 3 || (t.rank == 4 && t.shape[0] == 1), "Image(tensor:)",
                 "expected [C, H, W] or [1, C, H, W], got \(t.shape)")
        let s = t.rank == 4 ? Array(t.shape.dropFirst()) : t.shape
        fcnCheck((1...4).contains(s[0]), "Image(tensor:)", "tensor \(t.shape) has \(s[0]) channels, expected 1...4")
        fcnCheck(scale != 0 && scale.isFinite, "Image(tensor:)", "scale must be finite and non-zero, got \(scale)")
        let c = s[0], h = s[1], w = s[2], hw = h * w
        var px = [UInt8](repeating: 0, count: c * hw)
        t.withUnsafeBufferPointer { src in
            for ch in 0..<c {
                for i in 0..<hw {
                    let v = (src[ch * hw + i] / scale).rounded()
                    px[i * c + ch] = v >= 255 ? 255 : v > 0 ? UInt8(v) : 0
                }
            }
        }
        self.init(width: w, height: h, channels: c, pixels: px)
    }
}

extension IndexedImage {
    /// The indices (class ids) as a `[height, width]` Float tensor.
    public func labelTensor() -> Tensor {
        indices.withUnsafeBufferPointer { src in
            Tensor.make(shape: [height, width]) { dst in for i in 0..<src.count { dst[i] = Float(src[i]) } }
        }
    }
}

/// Reads an image file (PNG, JPEG, PNM) as `[3, H, W]` RGB Float 0...255 (gray is
/// replicated, alpha dropped): the `imageDecoder` of the VOC dataset reader.
/// Unlike `readImage`, it keeps a JPEG's pixels as stored unless `applyOrientation` is
/// true: a label map is drawn over the stored pixels and carries no orientation, so turning
/// the photo (EXIF orientations 2-8) would flip it against its label, or swap its size.
/// torchvision's VOCSegmentation (`Image.open(path).convert("RGB")`) does the same.
public func readImageTensor(path: String, applyOrientation: Bool = false) throws -> Tensor {
    try readImage(path: path, applyOrientation: applyOrientation).rgb().tensor()
}

/// Reads a label PNG (palette or <= 8-bit gray) as `[H, W]` class ids (raw indices, 255 =
/// ignore in VOC): the `labelDecoder` of the VOC dataset reader.
public func readLabelTensor(path: String) throws -> Tensor {
    try PNG.readIndexed(path: path).labelTensor()
}
