// Sample sources for the trainer and how batches are drawn from them.
//
// A source gives image `[3, H, W]` (RGB 0...255) and label `[H, W]` (class ids, 255 =
// ignore) by index. Training batches draw `batch` indices uniformly with replacement from
// the trainer's `FCNRandom` (so the generator state alone fixes the data order, which
// makes resuming exact), then optionally flip each sample (one draw per sample) or, for
// sources of varying size, scale/crop/flip them to the training size with
// `SegmentationAugmentation` (draws from the same generator), and stack.

/// Indexed segmentation samples.
public protocol SegmentationSampleSource: Sendable {
    /// Number of samples.
    var count: Int { get }
    /// Number of classes of the labels (255 = ignore is not a class).
    var classes: Int { get }
    /// Whether every sample has the same square size (then batches need no cropping).
    var fixedSize: Int? { get }
    /// Sample `index` in `0..<count`.
    func sample(_ index: Int) throws -> (image: Tensor, label: Tensor)
}

/// `SyntheticShapes` images `offset ..< offset + count` (a held-out split uses another
/// offset with the same dataset seed).
public struct SyntheticSampleSource: SegmentationSampleSource {
    public let dataset: SyntheticShapes
    public let offset: Int
    public init(dataset: SyntheticShapes, offset: Int = 0) {
        fcnCheck(offset >= 0, "SyntheticSampleSource", "offset must be >= 0, got \(offset)")
        self.dataset = dataset; self.offset = offset
    }
    public var count: Int { dataset.count }
    public var classes: Int { SyntheticShapes.classes }
    public var fixedSize: Int? { dataset.size }
    public func sample(_ index: Int) throws -> (image: Tensor, label: Tensor) { dataset.sample(offset + index) }
}

/// A PASCAL VOC split (21 classes), the first `limit` images of it (nil: all).
public struct VOCSampleSource: SegmentationSampleSource {
    public let voc: VOCSegmentation
    public let limit: Int?
    public init(_ voc: VOCSegmentation, limit: Int? = nil) { self.voc = voc; self.limit = limit }
    public var count: Int { limit.map { min($0, voc.count) } ?? voc.count }
    public var classes: Int { 21 }
    public var fixedSize: Int? { nil }
    public func sample(_ index: Int) throws -> (image: Tensor, label: Tensor) { try voc.sample(index) }
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

    public init(source: any SegmentationSampleSource, batchSize: Int, size: Int, flip: Bool, padPixel: [Float]) {
        fcnCheck(source.count > 0, "TrainingBatchSampler", "the training source has no samples")
        fcnCheck(batchSize > 0, "TrainingBatchSampler", "batchSize must be > 0, got \(batchSize)")
        self.source = source; self.batchSize = batchSize; self.size = size; self.flip = flip; self.padPixel = padPixel
    }

    /// The next batch: images `[B, 3, S, S]` (raw RGB) and labels `[B, S, S]`. Advances `rng`.
    public func next(using rng: inout FCNRandom) throws -> (images: Tensor, labels: Tensor) {
        var samples: [(image: Tensor, label: Tensor)] = []
        samples.reserveCapacity(batchSize)
        let n = source.count
        for _ in 0..<batchSize {
            let index = min(Int(rng.next() % UInt64(n)), n - 1)
            var s = try source.sample(index)
            if source.fixedSize != nil {
                if flip && rng.nextUniform() < 0.5 {
                    s = (SegmentationTransforms.flipHorizontal(s.image), SegmentationTransforms.flipHorizontal(s.label))
                }
            } else {
                let aug = SegmentationAugmentation(scaleRange: 0.5...1.5, cropSize: (size, size),
                                                   flipProbability: flip ? 0.5 : 0, imagePadValue: padPixel, labelPadValue: 255)
                s = aug(image: s.image, label: s.label, using: &rng)
            }
            samples.append(s)
        }
        return (Tensor.stack(samples.map(\.image)), Tensor.stack(samples.map(\.label)))
    }
}
