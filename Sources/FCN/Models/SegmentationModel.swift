// The protocol the segmentation networks share (VGG FCNs, ResNet FCNs): scores at the
// input size and the input convention their weights expect.

/// A segmentation network that maps `[N, 3, H, W]` preprocessed images to class scores
/// `[N, numClasses, H, W]` and states which input convention its weights expect.
public protocol SegmentationModel: Layer {
    /// Number of output classes (channels of the score map).
    var numClasses: Int { get }
    /// How RGB 0...255 images must be converted before `callAsFunction`.
    var preferredPreprocessing: InputPreprocessing { get }
}

extension SegmentationModel {
    /// Preprocesses RGB 0...255 images `[N, 3, H, W]` with `preferredPreprocessing` and
    /// runs the model: class scores `[N, numClasses, H, W]`.
    public func scores(forRGB rgb: Tensor) -> Tensor { self(preferredPreprocessing.apply(rgb)) }
}
