// Sample sources for the trainer and how batches are drawn from them.
//
// A source gives image `[3, H, W]` (RGB 0...255) and label `[H, W]` (class ids, 255 =
// ignore) by index. Training batches draw `batch` indices uniformly with replacement from
// the trainer's `FCNRandom` (so the generator state alone fixes the data order, which
// makes resuming exact), then optionally flip each sample (one draw per sample) or, for
// sources of varying size, scale/crop/flip them to the training size with
// `SegmentationAugmentation` (draws from the same generator), and stack.

import FCNCore
import FCNIO
import FCNModels

/// Indexed segmentation samples.
public protocol SegmentationSampleSource: Sendable {
    /// Number of samples.
    var count: Int { get }
    /// Number of classes of the labels (255 = ignore is not a class).
    var classes: Int { get }
    /// One name per class, or nil (numbers are shown).
    var classNames: [String]? { get }
    /// Whether every sample has the same square size (then batches need no cropping).
    var fixedSize: Int? { get }
    /// Sample `index` in `0..<count`.
    func sample(_ index: Int) throws -> (image: Tensor, label: Tensor)
    /// The same samples for training at `size` pixels (progressive resizing), or nil when
    /// this source cannot provide them. Default: the source itself when it has no fixed
    /// size (the sampler crops to any size), else nil.
    func resized(to size: Int) -> (any SegmentationSampleSource)?
}

extension SegmentationSampleSource {
    /// No names by default.
    public var classNames: [String]? { nil }

    /// The source itself when the sampler crops its samples (`fixedSize == nil`), else nil.
    public func resized(to size: Int) -> (any SegmentationSampleSource)? {
        fixedSize == nil || fixedSize == size ? self : nil
    }
}

/// `SyntheticShapes` images `offset ..< offset + count` (a held-out split uses another
/// offset with the same dataset seed).
public struct SyntheticSampleSource: SegmentationSampleSource {
    /// The generator of the images; its seed fixes their content.
    public let dataset: SyntheticShapes
    /// Index of the first image of this split within the dataset.
    public let offset: Int
    /// A source of `dataset`'s images starting at `offset` (default 0, the training split;
    /// a validation split passes the training count so the two never overlap).
    public init(dataset: SyntheticShapes, offset: Int = 0) {
        fcnCheck(offset >= 0, "SyntheticSampleSource", "offset must be >= 0, got \(offset)")
        self.dataset = dataset; self.offset = offset
    }
    /// Number of images: the dataset's count.
    public var count: Int { dataset.count }
    /// The synthetic shapes' class count (background included).
    public var classes: Int { SyntheticShapes.classes }
    /// `SyntheticShapes.classNames`: background, disc, rectangle, triangle, bar.
    public var classNames: [String]? { SyntheticShapes.classNames }
    /// The dataset's square image side: no cropping needed.
    public var fixedSize: Int? { dataset.size }
    /// Image `offset + index` as `[3, S, S]` raw RGB and its `[S, S]` label map.
    public func sample(_ index: Int) throws -> (image: Tensor, label: Tensor) { dataset.sample(offset + index) }
    /// The same scenes drawn at `size` pixels (shapes scale with the image; bar widths and
    /// noise stay in pixels).
    public func resized(to size: Int) -> (any SegmentationSampleSource)? {
        SyntheticSampleSource(dataset: SyntheticShapes(size: size, count: dataset.count, seed: dataset.seed), offset: offset)
    }
}

/// A split of a folder in the PASCAL VOC layout, the first `limit` images of it (nil: all):
/// VOC itself (21 classes) or a dataset of your own classes saved in that layout.
public struct VOCSampleSource: SegmentationSampleSource {
    /// The VOC split the samples come from.
    public let voc: VOCSegmentation
    /// Maximum number of images used (nil: the whole split); handy for quick runs.
    public let limit: Int?
    /// Class names by id; their count is the class count.
    public let names: [String]
    /// A source over `voc`, limited to its first `limit` images (default nil: all), of the
    /// classes `classNames` (default nil: the 21 of PASCAL VOC, `vocClassNames`). Label
    /// values must lie in `0..<classNames.count` or be 255 (ignored).
    public init(_ voc: VOCSegmentation, limit: Int? = nil, classNames: [String]? = nil) {
        fcnCheck(classNames.map { !$0.isEmpty && $0.count <= 255 } ?? true, "VOCSampleSource",
                 "classNames must hold 1 to 255 names (label 255 means ignore), got \(classNames?.count ?? 0)")
        self.voc = voc; self.limit = limit; self.names = classNames ?? vocClassNames
    }
    /// The smaller of `limit` and the split size.
    public var count: Int { limit.map { min($0, voc.count) } ?? voc.count }
    /// The number of class names: 21 for PASCAL VOC (background and 20 object classes).
    public var classes: Int { names.count }
    /// The class names given at creation, or the 21 PASCAL VOC names.
    public var classNames: [String]? { names }
    /// nil: VOC images vary in size, so the sampler crops them.
    public var fixedSize: Int? { nil }
    /// Image `index` of the split as `[3, H, W]` raw RGB and its `[H, W]` label map. Throws
    /// `FCNError.invalidFormat`, naming the file, for a label value that is neither a class id
    /// nor 255 (a label file of another dataset, or class names that miss a class).
    public func sample(_ index: Int) throws -> (image: Tensor, label: Tensor) {
        let s = try voc.sample(index)
        let limit = Float(classes)
        if let bad = s.label.withUnsafeBufferPointer({ $0.first { $0 >= limit && $0 != 255 } }) {
            throw FCNError.invalidFormat("label '\(voc.labelPath(voc.ids[index]))' holds class id \(Int(bad)), but the data has \(classes) "
                + "classes (ids 0..<\(classes), 255 = ignore); for a dataset of your own classes give their names (--class-names)")
        }
        return s
    }
}

/// Draws training batches from a source with a seeded generator.
public struct TrainingBatchSampler: Sendable {
    /// The training samples.
    public let source: any SegmentationSampleSource
    /// Images per batch.
    public let batchSize: Int
    /// Side of the training crops (used when the source has no fixed size).
    public let size: Int
    /// Random horizontal flips.
    public let flip: Bool
    /// Raw RGB pad value of crops (normalises to zero).
    public let padPixel: [Float]

    /// A sampler drawing `batchSize` images per batch from `source`, cropped (and padded
    /// with `padPixel`) to `size` pixels square when the source has no fixed size, flipped
    /// at random when `flip` is true. The source must not be empty.
    public init(source: any SegmentationSampleSource, batchSize: Int, size: Int, flip: Bool, padPixel: [Float]) {
        fcnCheck(source.count > 0, "TrainingBatchSampler", "the training source has no samples")
        fcnCheck(batchSize > 0, "TrainingBatchSampler", "batchSize must be > 0, got \(batchSize)")
        self.source = source; self.batchSize = batchSize; self.size = size; self.flip = flip; self.padPixel = padPixel
    }

    /// The next batch: images `[B, 3, S, S]` (raw RGB) and labels `[B, S, S]`. Advances `rng`.
    public func next(using rng: inout FCNRandom) throws -> (images: Tensor, labels: Tensor) {
        let n = source.count
        if source.fixedSize != nil {
            // Draw every index and flip first (same generator sequence as drawing them one
            // sample at a time), then decode or generate the samples on all threads.
            var picks: [(index: Int, flip: Bool)] = []
            picks.reserveCapacity(batchSize)
            for _ in 0..<batchSize {
                let index = min(Int(rng.next() % UInt64(n)), n - 1)
                picks.append((index, flip && rng.nextUniform() < 0.5))
            }
            var results = [Result<(image: Tensor, label: Tensor), any Error>?](repeating: nil, count: batchSize)
            results.withUnsafeMutableBufferPointer { out in
                let box = UncheckedSendable(out)
                parallelFor(batchSize) { i in
                    box.value[i] = Result {
                        let s = try source.sample(picks[i].index)
                        return picks[i].flip
                            ? (s.image.flippedHorizontally(), s.label.flippedHorizontally()) : s
                    }
                }
            }
            let samples = try results.map { try $0!.get() }
            return (Tensor.stack(samples.map(\.image)), Tensor.stack(samples.map(\.label)))
        }
        var samples: [(image: Tensor, label: Tensor)] = []
        samples.reserveCapacity(batchSize)
        for _ in 0..<batchSize {
            let index = min(Int(rng.next() % UInt64(n)), n - 1)
            let s = try source.sample(index)
            let aug = SegmentationAugmentation(scaleRange: 0.5...1.5, cropSize: (size, size),
                                               flipProbability: flip ? 0.5 : 0, imagePadValue: padPixel, labelPadValue: 255)
            samples.append(aug(image: s.image, label: s.label, using: &rng))
        }
        return (Tensor.stack(samples.map(\.image)), Tensor.stack(samples.map(\.label)))
    }
}
