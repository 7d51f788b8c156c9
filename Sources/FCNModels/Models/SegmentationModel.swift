// The protocol every segmentation model family implements: what it is
// (`modelDescription`), the geometry tiled inference relies on, its inference copy, and
// what training needs to know about it (outputs and their loss weights, dropout, batch
// norm, initialisation). The trainer and the segmenter know models only through it.
import FCNCore
import FCNIO

/// A trainable segmentation network: maps `[N, 3, H, W]` preprocessed images to class
/// scores `[N, numClasses, H, W]` and describes itself (`modelDescription`) so that its
/// weights can travel with everything needed to use them.
///
/// `SegmentationNetwork` (FCNInference) is what a `Segmenter` runs: a model's eval-mode
/// inference copy, or any layer with its geometry.
///
/// Geometry (see SegmentationNetwork.swift in FCNInference for how tiling uses it):
/// - `scoreStride` f: 1 when the raw scores are full resolution, else their stride (the
///   model's own output is then their bilinear resize to the input size).
/// - `translationStride` A: input shifts by multiples of A shift the raw scores by A/f.
/// - `receptiveFieldRadius` R: an upper bound on the receptive-field radius of one raw
///   score, in input pixels.
public protocol SegmentationModel: Layer {
    /// What the model is: architecture and options, classes, class names, input convention.
    var modelDescription: ModelDescription { get }
    /// Replaces the parts of the description that do not change the network (class names,
    /// palette, input convention, ignore label). Throws `FCNError.mismatch` for any other change.
    func setModelDescription(_ description: ModelDescription) throws
    /// f: 1 when the raw scores are full resolution, else their stride.
    var scoreStride: Int { get }
    /// A: input shifts by multiples of A shift the raw scores by A/f.
    var translationStride: Int { get }
    /// R: an upper bound on the receptive-field radius of one raw score, in input pixels.
    var receptiveFieldRadius: Int { get }
    /// An eval-mode copy for inference mapping a normalised batch to the raw scores, batch
    /// norms folded into convolutions where the model has them (`foldedForInference`).
    /// It reads the weights as they are now: build it after loading or training.
    func rawScoreLayer() -> any Layer
    /// The outputs training computes a loss on, each `[N, numClasses, H, W]` with its loss
    /// weight: the scores with weight 1, plus torchvision's auxiliary head with 0.5.
    func trainingOutputs(_ x: Tensor) -> [(scores: Tensor, weight: Float)]
    /// Turns the dropout layers on or off for training mode (eval mode never drops).
    func setDropout(enabled: Bool)
    /// Re-initialises the layers that a training run from scratch should not start from
    /// the constructor's values (the VGG FCNs: conv1_1 ... fc7 with He initialisation);
    /// nothing for models whose constructor already does so.
    func initializeForTraining(seed: UInt64)
}

extension SegmentationModel {
    /// Number of output classes (`modelDescription.classes`).
    public var numClasses: Int { modelDescription.classes }
    /// How RGB 0...255 images must be converted before `callAsFunction` (`modelDescription.input`).
    public var preferredPreprocessing: InputPreprocessing { modelDescription.input }

    /// Preprocesses RGB 0...255 images `[N, 3, H, W]` with the model's input convention and
    /// runs the model: class scores `[N, numClasses, H, W]`.
    public func scores(forRGB rgb: Tensor) -> Tensor { self(preferredPreprocessing.apply(rgb)) }

    /// The scores alone, weight 1.
    public func trainingOutputs(_ x: Tensor) -> [(scores: Tensor, weight: Float)] { [(self(x), 1)] }

    /// True when the model has batch-norm layers (their training-mode statistics depend on
    /// the whole batch, so a batch must not be split over threads that update them at once).
    public var hasBatchNorm: Bool { namedModules().contains { $0.1 is BatchNorm2d } }

    /// Nothing: the constructor's initialisation is the training start.
    public func initializeForTraining(seed: UInt64) {}

    /// Every `Dropout` layer's training flag follows `enabled` in training mode.
    public func setDropout(enabled: Bool) {
        for (_, m) in namedModules() { if let d = m as? Dropout { d.isTraining = enabled && isTraining } }
    }
}

/// Stores a model's description and enforces that only its metadata changes.
package final class ModelDescriptionBox: @unchecked Sendable {
    private let lock = Lock()
    private var value: ModelDescription
    package init(_ value: ModelDescription) { self.value = value }
    package var description: ModelDescription { lock.withLock { value } }
    package func set(_ new: ModelDescription) throws {
        try new.validate()
        try lock.withLock {
            var structural = new
            structural.classNames = value.classNames; structural.palette = value.palette
            structural.input = value.input; structural.ignoreLabel = value.ignoreLabel
            guard structural == value else {
                throw FCNError.mismatch("a model's description can change only in class names, palette, input convention and ignore label; got \(new.json()) for a model built as \(value.json())")
            }
            value = new
        }
    }
}
