// Segmenter: images in, label maps (and optionally scores) out, for any
// `SegmentationNetwork`, whole-image or tiled (TiledInference.swift), with optional
// flip / multi-scale test-time augmentation.
//
//     let model = VGGFCN(variant: .fcn8s, classes: 21)
//     try model.load(from: "fcn8s.safetensors")
//     let net = ModelSegmentation(model)        // or ModelRegistry.network(for:weights:)
//     let seg = Segmenter(network: net, options: SegmentationOptions(tileSize: 512))
//     let result = seg.segment(try readImage(path: "cat.jpg"))
//     try PNG.write(result.labelImage(), to: "cat-labels.png")
//
// Inference runs without recording a graph (`withoutGrad`); VGG conv+ReLU pairs run fused
// (see `VGGFCN`), and models with batch norm are wrapped in their folded copy
// (`foldedForInference`, built once by `ModelSegmentation`). A `Segmenter` holds no mutable state:
// each call owns its tile tensors and row buffers (freed tile by tile, so the allocator
// hands the same memory back to the next tile) and writes only its own result, so one
// segmenter (and its network, in eval mode) serves any number of threads at once. Buffers
// are deliberately not cached across calls: a shared scratch would need locking or would
// race between threads, for a saving that is small next to the convolutions.

import FCNCore
import FCNIO
import FCNModels

/// How to run a segmentation.
public struct SegmentationOptions: Sendable, Equatable {
    /// Side of the output tile cores in pixels; nil (default) runs the whole image at once.
    /// Each tile's input is the core plus the receptive-field margin on every side (see
    /// TiledInference.swift), so memory is bounded by the tile size, not the image size.
    public var tileSize: Int?
    /// Average with the left-right mirrored prediction (softmax probabilities).
    public var flip: Bool
    /// Scales of the multi-scale average (softmax probabilities; each resized with
    /// `interpolateBilinear`). `[1]` (default) is a single pass.
    public var scales: [Double]

    /// Options; by default the whole image in one pass without augmentation (exact and fastest
    /// for images that fit in memory).
    public init(tileSize: Int? = nil, flip: Bool = false, scales: [Double] = [1]) {
        fcnCheck(tileSize == nil || tileSize! >= 1, "SegmentationOptions", "tileSize must be >= 1, got \(tileSize!)")
        fcnCheck(!scales.isEmpty && scales.allSatisfy { $0 > 0 && $0.isFinite }, "SegmentationOptions",
                 "scales must be a non-empty list of positive numbers, got \(scales)")
        self.tileSize = tileSize; self.flip = flip; self.scales = scales
    }

    /// True when flip or scales other than `[1]` are asked for.
    public var usesAugmentation: Bool { flip || scales != [1] }
}

/// The result of segmenting one image.
public struct SegmentationResult: Sendable {
    /// Size of the image and of the label map in pixels.
    public let width: Int, height: Int
    /// Number of classes of the network.
    public let numClasses: Int
    /// `height * width` class ids (argmax of the scores), row-major.
    public var labels: [UInt8]
    /// `[1, C, H, W]` when asked for: raw scores, or with test-time augmentation the mean
    /// softmax probabilities.
    public var scores: Tensor?
    /// Number of tiles run.
    public let tiles: Int

    /// The label map as a palette image with the PASCAL VOC colours (class id = index).
    public func labelImage(palette: [PaletteColor] = vocPalette()) -> IndexedImage {
        IndexedImage(width: width, height: height, indices: labels, palette: palette)
    }

    /// The label map as a `[H, W]` Float tensor of class ids.
    public var labelTensor: Tensor {
        labels.withUnsafeBufferPointer { src in
            Tensor.make(shape: [height, width]) { dst in for i in 0..<src.count { dst[i] = Float(src[i]) } }
        }
    }
}

/// Segments images with a network (see the file comment). Sendable: share it across threads.
public final class Segmenter: Sendable {
    /// The network run on each tile.
    public let network: any SegmentationNetwork
    /// Tiling and augmentation.
    public let options: SegmentationOptions

    /// - Parameters:
    ///   - network: at most 256 classes (labels are bytes).
    ///   - options: tiling and augmentation (default: whole image, no augmentation).
    public init(network: any SegmentationNetwork, options: SegmentationOptions = SegmentationOptions()) {
        fcnCheck(network.numClasses <= 256, "Segmenter", "labels are bytes: at most 256 classes, got \(network.numClasses)")
        fcnCheck(network.translationStride % network.scoreStride == 0, "Segmenter",
                 "translationStride \(network.translationStride) must be a multiple of scoreStride \(network.scoreStride)")
        self.network = network; self.options = options
    }

    /// Segments an image (any channel count: gray is replicated, alpha dropped).
    ///
    /// - Parameters:
    ///   - image: the decoded image, 8-bit samples.
    ///   - keepScores: also return the `[1, C, H, W]` scores (C * H * W floats: only for
    ///     images that fit in memory that way).
    ///   - progress: called after each tile with (tiles done, tiles total).
    public func segment(_ image: Image, keepScores: Bool = false,
                        progress: ((_ done: Int, _ total: Int) -> Void)? = nil) -> SegmentationResult {
        fcnCheck(image.width >= 1 && image.height >= 1, "Segmenter.segment", "empty image \(image.width)x\(image.height)")
        return TiledRun(network: network, options: options).run(.image(image.rgb()), keepScores: keepScores, progress: progress)
    }

    /// Segments an RGB 0...255 image `[3, H, W]` or `[1, 3, H, W]` (as `readImageTensor`
    /// and `SyntheticShapes` give).
    public func segment(rgb: Tensor, keepScores: Bool = false,
                        progress: ((_ done: Int, _ total: Int) -> Void)? = nil) -> SegmentationResult {
        fcnCheck((rgb.rank == 3 && rgb.shape[0] == 3) || (rgb.rank == 4 && rgb.shape[0] == 1 && rgb.shape[1] == 3),
                 "Segmenter.segment", "expected an RGB image [3, H, W] or [1, 3, H, W], got \(rgb.shape)")
        let t = rgb.rank == 4 ? rgb.reshaped(Array(rgb.shape.dropFirst())) : rgb
        fcnCheck(t.shape[1] >= 1 && t.shape[2] >= 1, "Segmenter.segment", "empty image \(rgb.shape)")
        return TiledRun(network: network, options: options).run(.tensor(t.detached()), keepScores: keepScores, progress: progress)
    }
}
