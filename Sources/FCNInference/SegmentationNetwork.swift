// What the segmenters need to know about a network, and the adapters of the library's
// models.
//
// A `SegmentationNetwork` maps a normalised image `[N, 3, H, W]` to class scores and states
// the three geometric facts tiled inference relies on (see TiledInference.swift):
//
// * `scoreStride` f: the network either ends at full resolution (f = 1, scores
//   `[N, C, H, W]`, e.g. the VGG FCNs whose last layer is a stride-8/16/32 deconvolution
//   followed by a crop), or it ends at stride f and the full-resolution scores are its
//   bilinear resize (`interpolateBilinear(..., size: (H, W), alignCorners: false)`, e.g.
//   torchvision's fcn_resnet50/101 with f = 8). `rawScores` returns the stride-f map,
//   `[N, C, ceil(H/f), ceil(W/f)]`; the segmenters do the final resize themselves, so
//   that a tile can use the ratio of the WHOLE image (`ceil(H/f)/H`), not its own.
// * `translationStride` A: cutting the first k*A rows (or columns) off the input cuts the
//   first k*A/f rows off the raw scores and changes no other value, except near the
//   borders. It is the product of the strides of all layers (32 for the VGG FCNs: five
//   2x2/2 pools; 32 for the ResNet-34 FCN-8s; 8 for fcn_resnet50/101, whose layer3/4 are
//   dilated). Every pooling / strided convolution grid then stays aligned; with the Caffe
//   pad of 100 on conv1_1 this also holds, because that pad is added to both images alike
//   and only moves every grid by the same 100 pixels.
// * `receptiveFieldRadius` R: a raw score at position r depends only on input pixels
//   within R (per axis) of the pixels that position covers (`[r*f, r*f+f)`; the pixel r
//   itself when f = 1). Inputs further away, or the zero padding a cut introduces there,
//   cannot change it.

import FCNCore
import FCNIO
import FCNModels

/// A segmentation network as the segmenters see it (see the file comment).
///
/// Conformers must be safe to call from several threads at once, which the library's
/// models are in eval mode (forward passes only read parameters).
public protocol SegmentationNetwork: AnyObject, Sendable {
    /// Number of classes C (channels of the scores).
    var numClasses: Int { get }
    /// How RGB 0...255 images must be normalised before `rawScores`.
    var inputPreprocessing: InputPreprocessing { get }
    /// f: 1 when `rawScores` is full resolution, else the stride of the map that is
    /// bilinearly resized to the input size.
    var scoreStride: Int { get }
    /// A: input shifts by multiples of A shift the raw scores by A/f (a multiple of f).
    var translationStride: Int { get }
    /// R: radius of the receptive field of one raw score, in input pixels (see above).
    var receptiveFieldRadius: Int { get }
    /// Raw scores for a normalised batch `[N, 3, H, W]`: `[N, C, H, W]` when `scoreStride`
    /// is 1, else `[N, C, ceil(H/f), ceil(W/f)]`. Called under `withoutGrad`.
    func rawScores(_ input: Tensor) -> Tensor
}

extension SegmentationNetwork {
    /// Full-resolution scores `[N, C, H, W]` of a normalised batch (no gradient recorded):
    /// `rawScores`, bilinearly resized to `H x W` when `scoreStride > 1`.
    public func scores(normalized input: Tensor) -> Tensor {
        withoutGrad {
            let raw = rawScores(input)
            if scoreStride == 1 { return raw }
            return interpolateBilinear(raw, size: Size2(input.shape[2], input.shape[3]), alignCorners: false)
        }
    }
}

/// Any `SegmentationModel` as a `SegmentationNetwork`: the model's classes, input
/// convention and geometry, and its folded raw-score layer (built once, here).
///
/// The model is switched to eval mode. Its weights are read when the adapter is built: a
/// model with batch norms must be wrapped again after its weights change.
public final class ModelSegmentation: SegmentationNetwork, @unchecked Sendable {
    /// The wrapped model (eval mode).
    public let model: any SegmentationModel
    /// The inference copy `model.rawScoreLayer()` that `rawScores` runs.
    public let rawScoreLayer: any Layer
    /// The model's description (classes, class names, input convention, ...).
    public let modelDescription: ModelDescription
    /// The model's number of classes.
    public var numClasses: Int { modelDescription.classes }
    /// The model's input convention.
    public var inputPreprocessing: InputPreprocessing { modelDescription.input }
    /// The model's `scoreStride`.
    public let scoreStride: Int
    /// The model's `translationStride`.
    public let translationStride: Int
    /// The model's `receptiveFieldRadius`.
    public let receptiveFieldRadius: Int

    /// Wraps `model`, puts it in eval mode and builds its raw-score layer.
    public init(_ model: any SegmentationModel) {
        model.eval()
        self.model = model
        modelDescription = model.modelDescription
        rawScoreLayer = model.rawScoreLayer()
        scoreStride = model.scoreStride; translationStride = model.translationStride
        receptiveFieldRadius = model.receptiveFieldRadius
        fcnCheck(scoreStride >= 1 && translationStride % scoreStride == 0 && receptiveFieldRadius >= 0, "ModelSegmentation",
                 "\(type(of: model)): translationStride \(translationStride) must be a positive multiple of scoreStride \(scoreStride), radius \(receptiveFieldRadius) >= 0")
    }

    /// Opens a model file (`ModelFile.open`) and wraps the model: the one call an app needs.
    public convenience init(contentsOf path: String, overrides: ModelOverrides = ModelOverrides()) throws {
        self.init(try ModelFile.open(path, overrides: overrides))
    }

    /// Runs `rawScoreLayer` on `[N, 3, H, W]` without recording gradients.
    public func rawScores(_ input: Tensor) -> Tensor { withoutGrad { rawScoreLayer(input) } }
}

/// Any `Layer` as a `SegmentationNetwork`, with its geometry given by the caller (custom
/// models, tests, or models not known to the registry).
public final class LayerSegmentation: SegmentationNetwork, @unchecked Sendable {
    /// The wrapped layer (eval mode).
    public let layer: any Layer
    /// Channels of the score map.
    public let numClasses: Int
    /// The input convention of the layer's weights.
    public let inputPreprocessing: InputPreprocessing
    /// Input pixels per score pixel (1: full resolution).
    public let scoreStride: Int
    /// Shift of the input that shifts the scores exactly; a multiple of `scoreStride`.
    public let translationStride: Int
    /// Input pixels on each side that can affect a score pixel.
    public let receptiveFieldRadius: Int

    /// - Parameters:
    ///   - layer: maps `[N, 3, H, W]` to the raw scores (see `SegmentationNetwork.rawScores`);
    ///     put in eval mode here.
    ///   - numClasses: channels of the score map.
    ///   - inputPreprocessing: the input convention of the layer's weights.
    ///   - scoreStride: input pixels per score pixel of the raw scores (1: full resolution).
    ///   - translationStride: must be a positive multiple of `scoreStride`.
    ///   - receptiveFieldRadius: input pixels on each side that can affect a score pixel;
    ///     tiles get at least this margin.
    public init(_ layer: any Layer, numClasses: Int, inputPreprocessing: InputPreprocessing,
                scoreStride: Int = 1, translationStride: Int, receptiveFieldRadius: Int) {
        fcnCheck(numClasses >= 1, "LayerSegmentation", "numClasses must be >= 1, got \(numClasses)")
        fcnCheck(scoreStride >= 1 && translationStride >= 1 && translationStride % scoreStride == 0, "LayerSegmentation",
                 "translationStride \(translationStride) must be a positive multiple of scoreStride \(scoreStride)")
        fcnCheck(receptiveFieldRadius >= 0, "LayerSegmentation", "receptiveFieldRadius must be >= 0, got \(receptiveFieldRadius)")
        layer.eval()
        self.layer = layer; self.numClasses = numClasses; self.inputPreprocessing = inputPreprocessing
        self.scoreStride = scoreStride; self.translationStride = translationStride
        self.receptiveFieldRadius = receptiveFieldRadius
    }

    /// Runs `layer` on `[N, 3, H, W]` without recording gradients.
    public func rawScores(_ input: Tensor) -> Tensor { withoutGrad { layer(input) } }
}

/// Measures the receptive-field radius of `network` along the width: runs a random input
/// `[1, 3, height, length]`, perturbs the middle column and returns the largest distance
/// from that column to the pixels covered by a raw score that changed (0 when none did).
/// A lower bound on the true radius (a ReLU may hide a dependence), used to check the
/// stated `receptiveFieldRadius`; `length` must exceed twice the radius for a meaningful
/// answer (the result is `length` when a change reaches either end).
public func estimatedReceptiveFieldRadius(of network: any SegmentationNetwork, length: Int, height: Int = 1,
                                          seed: UInt64 = 0) -> Int {
    fcnCheck(length >= 3 && height >= 1, "estimatedReceptiveFieldRadius", "need length >= 3 and height >= 1, got \(length), \(height)")
    let x = Tensor.randn([1, 3, height, length], seed: seed)
    let p = length / 2
    var y = x
    y.withUnsafeMutableBufferPointer { b in
        for c in 0..<3 { for r in 0..<height { b[(c * height + r) * length + p] += 10 } }
    }
    // With the packed-weight cache off: its Strassen path (large 1x1 convolutions) mixes
    // distant pixels at the level of rounding, which this exact comparison would count.
    let (a, bScores) = WeightCache.$current.withValue(.disabled) { (network.rawScores(x), network.rawScores(y)) }
    let f = network.scoreStride, C = a.shape[1], h = a.shape[2], w = a.shape[3]
    var radius = 0
    a.withUnsafeBufferPointer { sa in
        bScores.withUnsafeBufferPointer { sb in
            for c in 0..<C { for r in 0..<h { for q in 0..<w {
                let i = (c * h + r) * w + q
                guard sa[i] != sb[i] else { continue }
                if q == 0 || q == w - 1 { radius = length; continue }
                let lo = q * f, hi = q * f + f - 1
                radius = max(radius, p < lo ? lo - p : p > hi ? p - hi : 0)
            } } }
        }
    }
    return radius
}
