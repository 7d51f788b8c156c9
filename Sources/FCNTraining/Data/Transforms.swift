// Geometric transforms for segmentation samples, applied identically to image and label.
//
// Layout: images `[C, H, W]`, labels `[H, W]` (Float class ids, 255 = ignore).
// * Images are resized bilinearly, labels by nearest neighbour, both with PyTorch's
//   `interpolate(..., align_corners=False)` index rules (source = scale * (dst + 0.5) - 0.5
//   for bilinear, floor(dst * scale) for nearest, scale = in / out), so class ids are never
//   blended.
// * Crops may extend past the image: the outside is filled with a pad value (per channel
//   for images; 255 for labels so padding is ignored by the loss and the metrics).
// * `SegmentationAugmentation` draws a random scale, crop and flip from an `FCNRandom`
//   (seeded: the same generator state gives the same sample).

import FCNCore
import FCNIO
import FCNModels

/// Resizing, cropping and flipping of segmentation images and label maps.
public enum SegmentationTransforms {
    /// Bilinear resize of `[C, H, W]` to `[C, height, width]` (align_corners false, no
    /// antialiasing), as `torch.nn.functional.interpolate(mode: "bilinear")`.
    public static func resizeBilinear(_ image: Tensor, height: Int, width: Int) -> Tensor {
        fcnCheck(image.rank == 3, "resizeBilinear", "expected an image [C, H, W], got \(image.shape)")
        fcnCheck(height > 0 && width > 0, "resizeBilinear", "output size must be positive, got [\(height), \(width)]")
        let (c, ih, iw) = (image.shape[0], image.shape[1], image.shape[2])
        fcnCheck(ih > 0 && iw > 0, "resizeBilinear", "input image \(image.shape) is empty")
        // The interpolation op on a batch of one (no gradient: data preparation).
        return withoutGrad {
            interpolateBilinear(image.reshaped([1, c, ih, iw]), size: Size2(height, width)).reshaped([c, height, width])
        }
    }

    /// Nearest-neighbour resize of a label map `[H, W]` (or `[C, H, W]`), as
    /// `interpolate(mode: "nearest")`: source index `min(floor(dst * in / out), in - 1)`.
    public static func resizeNearest(_ map: Tensor, height: Int, width: Int) -> Tensor {
        fcnCheck(map.rank == 2 || map.rank == 3, "resizeNearest", "expected [H, W] or [C, H, W], got \(map.shape)")
        fcnCheck(height > 0 && width > 0, "resizeNearest", "output size must be positive, got [\(height), \(width)]")
        let c = map.rank == 3 ? map.shape[0] : 1
        let ih = map.shape[map.rank - 2], iw = map.shape[map.rank - 1]
        func index(_ inSize: Int, _ outSize: Int) -> [Int] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { d in
                if inSize == outSize { return d }
                if outSize == 2 * inSize { return d >> 1 }
                return min(Int((Float(d) * scale).rounded(.down)), inSize - 1)
            }
        }
        let iy = index(ih, height), ix = index(iw, width)
        let src = map.storage.pointer
        let shape = map.rank == 3 ? [c, height, width] : [height, width]
        return Tensor.make(shape: shape) { out in
            for ch in 0..<c {
                let s = src + ch * ih * iw
                let o = out.baseAddress! + ch * height * width
                for y in 0..<height {
                    let row = s + iy[y] * iw
                    for x in 0..<width { o[y * width + x] = row[ix[x]] }
                }
            }
        }
    }

    /// The window `[top, top + height) x [left, left + width)` of `[C, H, W]` or `[H, W]`;
    /// parts outside the input (negative offsets or past the end) are filled with
    /// `padValue` (one value per channel, or one value for all).
    public static func crop(_ x: Tensor, top: Int, left: Int, height: Int, width: Int, padValue: [Float]) -> Tensor {
        fcnCheck(x.rank == 2 || x.rank == 3, "crop", "expected [H, W] or [C, H, W], got \(x.shape)")
        fcnCheck(height >= 0 && width >= 0, "crop", "crop size must be >= 0, got [\(height), \(width)]")
        let c = x.rank == 3 ? x.shape[0] : 1
        fcnCheck(padValue.count == 1 || padValue.count == c, "crop", "padValue has \(padValue.count) values for \(c) channels (give 1 or \(c))")
        let ih = x.shape[x.rank - 2], iw = x.shape[x.rank - 1]
        let src = x.storage.pointer
        let shape = x.rank == 3 ? [c, height, width] : [height, width]
        return Tensor.make(shape: shape) { out in
            for ch in 0..<c {
                let pv = padValue.count == 1 ? padValue[0] : padValue[ch]
                let s = src + ch * ih * iw
                let o = out.baseAddress! + ch * height * width
                for y in 0..<height {
                    let sy = top + y
                    let orow = o + y * width
                    guard sy >= 0 && sy < ih else { orow.update(repeating: pv, count: width); continue }
                    for xx in 0..<width {
                        let sx = left + xx
                        orow[xx] = (sx >= 0 && sx < iw) ? s[sy * iw + sx] : pv
                    }
                }
            }
        }
    }
}

/// The random choices of one augmentation, so they can be inspected or replayed.
public struct AugmentationParameters: Sendable, Equatable {
    /// Size after scaling (before cropping).
    public var scaledHeight: Int, scaledWidth: Int
    /// Crop window offset in the scaled image (may be 0 when the crop is padded).
    public var top: Int, left: Int
    /// Output size (the crop size, or the scaled size without cropping).
    public var height: Int, width: Int
    /// Whether the result is mirrored left-right.
    public var flipped: Bool
}

/// Random scale, crop and horizontal flip applied identically to an image and its label
/// (the torchvision segmentation reference's training transform, seeded).
///
/// Order: scale by `s` uniform in `scaleRange` (size `round(H * s)`), pad bottom/right up
/// to the crop size (image with `imagePadValue`, label with `labelPadValue` = 255), crop a
/// random window, flip with probability `flipProbability`.
public struct SegmentationAugmentation: Sendable {
    /// Scale factor range; nil keeps the size.
    public var scaleRange: ClosedRange<Float>?
    /// Crop size `(height, width)`; nil keeps the whole (scaled) image.
    public var cropSize: (height: Int, width: Int)?
    /// Probability of a horizontal flip (0.5 by default).
    public var flipProbability: Float
    /// Image padding per channel (raw RGB; use `InputPreprocessing.meanPixelRGB` so padding
    /// normalises to 0).
    public var imagePadValue: [Float]
    /// Label padding (255: ignored by the loss and the metrics).
    public var labelPadValue: Float

    /// Defaults are the torchvision segmentation reference's: scale 0.5...2.0, flip with
    /// probability 0.5, no crop, image padding 0 and label padding 255 (ignored).
    public init(scaleRange: ClosedRange<Float>? = 0.5...2.0, cropSize: (height: Int, width: Int)? = nil,
                flipProbability: Float = 0.5, imagePadValue: [Float] = [0], labelPadValue: Float = 255) {
        if let r = scaleRange { fcnCheck(r.lowerBound > 0, "SegmentationAugmentation", "scaleRange must be positive, got \(r)") }
        if let c = cropSize { fcnCheck(c.height > 0 && c.width > 0, "SegmentationAugmentation", "cropSize must be positive, got \(c)") }
        fcnCheck(flipProbability >= 0 && flipProbability <= 1, "SegmentationAugmentation", "flipProbability must lie in [0, 1], got \(flipProbability)")
        self.scaleRange = scaleRange; self.cropSize = cropSize; self.flipProbability = flipProbability
        self.imagePadValue = imagePadValue; self.labelPadValue = labelPadValue
    }

    /// Draws the random choices for an input of `height` x `width` (advances `rng`).
    public func sampleParameters(height: Int, width: Int, using rng: inout FCNRandom) -> AugmentationParameters {
        var sh = height, sw = width
        if let r = scaleRange {
            let s = r.lowerBound + (r.upperBound - r.lowerBound) * rng.nextUniform()
            sh = max(1, Int((Float(height) * s).rounded())); sw = max(1, Int((Float(width) * s).rounded()))
        }
        var top = 0, left = 0, oh = sh, ow = sw
        if let c = cropSize {
            oh = c.height; ow = c.width
            let ph = max(sh, oh), pw = max(sw, ow)
            top = Int(rng.nextUniform() * Float(ph - oh + 1)); top = min(top, ph - oh)
            left = Int(rng.nextUniform() * Float(pw - ow + 1)); left = min(left, pw - ow)
        }
        let flip = rng.nextUniform() < flipProbability
        return AugmentationParameters(scaledHeight: sh, scaledWidth: sw, top: top, left: left, height: oh, width: ow, flipped: flip)
    }

    /// Applies given choices to an image `[C, H, W]` and its label `[H, W]`.
    public func apply(_ p: AugmentationParameters, image: Tensor, label: Tensor) -> (image: Tensor, label: Tensor) {
        fcnCheck(image.rank == 3 && label.rank == 2 && Array(image.shape[1...]) == label.shape, "SegmentationAugmentation",
                 "image [C, H, W] and label [H, W] must have the same H, W; got \(image.shape) and \(label.shape)")
        var img = image, lab = label
        if p.scaledHeight != image.shape[1] || p.scaledWidth != image.shape[2] {
            img = SegmentationTransforms.resizeBilinear(img, height: p.scaledHeight, width: p.scaledWidth)
            lab = SegmentationTransforms.resizeNearest(lab, height: p.scaledHeight, width: p.scaledWidth)
        }
        if p.height != p.scaledHeight || p.width != p.scaledWidth || p.top != 0 || p.left != 0 {
            img = SegmentationTransforms.crop(img, top: p.top, left: p.left, height: p.height, width: p.width, padValue: imagePadValue)
            lab = SegmentationTransforms.crop(lab, top: p.top, left: p.left, height: p.height, width: p.width, padValue: [labelPadValue])
        }
        if p.flipped {
            img = img.flippedHorizontally()
            lab = lab.flippedHorizontally()
        }
        return (img, lab)
    }

    /// Draws choices from `rng` and applies them.
    public func callAsFunction(image: Tensor, label: Tensor, using rng: inout FCNRandom) -> (image: Tensor, label: Tensor) {
        let p = sampleParameters(height: image.shape[image.rank - 2], width: image.shape[image.rank - 1], using: &rng)
        return apply(p, image: image, label: label)
    }
}

/// Stacks samples of possibly different sizes into a batch, padding bottom and right:
/// images `[3, H_i, W_i]` -> `[N, 3, H, W]` (pad `imagePadValue`, per channel or one
/// value), labels `[H_i, W_i]` -> `[N, H, W]` (pad `labelPadValue` = 255, ignored), where
/// H, W are the largest sizes rounded up to a multiple of `sizeDivisor` (e.g. 32 for FCN
/// strides; 1 = no rounding).
public func collateSegmentation(_ samples: [(image: Tensor, label: Tensor)], imagePadValue: [Float] = [0],
                                labelPadValue: Float = 255, sizeDivisor: Int = 1) -> (images: Tensor, labels: Tensor) {
    fcnCheck(!samples.isEmpty, "collateSegmentation", "no samples to batch")
    fcnCheck(sizeDivisor > 0, "collateSegmentation", "sizeDivisor must be > 0, got \(sizeDivisor)")
    let c = samples[0].image.shape.first ?? 0
    for (i, s) in samples.enumerated() {
        fcnCheck(s.image.rank == 3 && s.image.shape[0] == c && s.label.rank == 2 && Array(s.image.shape[1...]) == s.label.shape,
                 "collateSegmentation", "sample \(i): image \(s.image.shape) and label \(s.label.shape) must be [\(c), H, W] and [H, W]")
    }
    fcnCheck(imagePadValue.count == 1 || imagePadValue.count == c, "collateSegmentation", "imagePadValue has \(imagePadValue.count) values for \(c) channels")
    func roundUp(_ v: Int) -> Int { (v + sizeDivisor - 1) / sizeDivisor * sizeDivisor }
    let h = roundUp(samples.map { $0.label.shape[0] }.max()!), w = roundUp(samples.map { $0.label.shape[1] }.max()!)
    let n = samples.count
    let imgs = Tensor.make(shape: [n, c, h, w]) { out in
        for (b, s) in samples.enumerated() {
            let t = SegmentationTransforms.crop(s.image, top: 0, left: 0, height: h, width: w, padValue: imagePadValue)
            t.withUnsafeBufferPointer { src in (out.baseAddress! + b * c * h * w).update(from: src.baseAddress!, count: src.count) }
        }
    }
    let labs = Tensor.make(shape: [n, h, w]) { out in
        for (b, s) in samples.enumerated() {
            let t = SegmentationTransforms.crop(s.label, top: 0, left: 0, height: h, width: w, padValue: [labelPadValue])
            t.withUnsafeBufferPointer { src in (out.baseAddress! + b * h * w).update(from: src.baseAddress!, count: src.count) }
        }
    }
    return (imgs, labs)
}
