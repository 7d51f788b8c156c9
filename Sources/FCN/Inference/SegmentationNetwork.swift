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

/// A `SegmentationModel` that also states the geometry tiled inference relies on and can
/// build its inference copy (the library's VGG and ResNet FCNs conform; see
/// `ModelSegmentation`). The three numbers mean what they mean in `SegmentationNetwork`.
public protocol TileableSegmentationModel: SegmentationModel {
    /// f: 1 when the raw scores are full resolution, else their stride (the model's own
    /// output is then their bilinear resize to the input size).
    var scoreStride: Int { get }
    /// A: input shifts by multiples of A shift the raw scores by A/f.
    var translationStride: Int { get }
    /// R: an upper bound on the receptive-field radius of one raw score, in input pixels.
    var receptiveFieldRadius: Int { get }
    /// An eval-mode copy for inference mapping a normalised batch to the raw scores, batch
    /// norms folded into convolutions where the model has them (`foldedForInference`).
    /// It reads the weights as they are now: build it after loading or training.
    func rawScoreLayer() -> any Layer
}

/// Any `TileableSegmentationModel` as a `SegmentationNetwork`: the model's classes, input
/// convention and geometry, and its folded raw-score layer (built once, here).
///
/// The model is switched to eval mode. Its weights are read when the adapter is built: a
/// model with batch norms must be wrapped again after its weights change.
public final class ModelSegmentation<Model: TileableSegmentationModel>: SegmentationNetwork, @unchecked Sendable {
    /// The wrapped model (eval mode).
    public let model: Model
    /// The inference copy `model.rawScoreLayer()` that `rawScores` runs.
    public let rawScoreLayer: any Layer
    /// The model's number of classes.
    public var numClasses: Int { model.numClasses }
    /// The model's preferred input convention.
    public var inputPreprocessing: InputPreprocessing { model.preferredPreprocessing }
    /// The model's `scoreStride`.
    public let scoreStride: Int
    /// The model's `translationStride`.
    public let translationStride: Int
    /// The model's `receptiveFieldRadius`.
    public let receptiveFieldRadius: Int

    /// Wraps `model`, puts it in eval mode and builds its raw-score layer.
    public init(_ model: Model) {
        model.eval()
        self.model = model
        rawScoreLayer = model.rawScoreLayer()
        scoreStride = model.scoreStride; translationStride = model.translationStride
        receptiveFieldRadius = model.receptiveFieldRadius
        fcnCheck(scoreStride >= 1 && translationStride % scoreStride == 0 && receptiveFieldRadius >= 0, "ModelSegmentation",
                 "\(Model.self): translationStride \(translationStride) must be a positive multiple of scoreStride \(scoreStride), radius \(receptiveFieldRadius) >= 0")
    }

    /// Runs `rawScoreLayer` on `[N, 3, H, W]` without recording gradients.
    public func rawScores(_ input: Tensor) -> Tensor { withoutGrad { rawScoreLayer(input) } }
}

/// A network that wraps a trainable model (so its weights can be saved).
protocol ModelBackedNetwork {
    var wrappedModel: any Module { get }
}

extension ModelSegmentation: ModelBackedNetwork {
    var wrappedModel: any Module { model }
}

/// A VGG16 FCN (Caffe layout, see `VGGFCN`) as a `SegmentationNetwork`: Caffe BGR-mean
/// input, full-resolution scores, translation stride 32, radius 290 (see `VGGFCN`'s
/// `receptiveFieldRadius`).
public typealias VGGFCNSegmentation = ModelSegmentation<VGGFCN>

/// Receptive field: score_fr sees 404 input pixels (conv1_1 ... pool5 see 212, fc6 adds
/// 6 * 32); an output pixel of FCN-32s mixes two neighbouring score_fr positions through the
/// 64x64 stride-32 deconvolution (+32), and the 16s/8s skips add at most 16 + 8 more
/// through their deconvolutions; the crops centre everything. R = 202 + 32 + 16 + 8 + 32
/// (slack for the half-pixel asymmetries of even kernels and ceil-mode pools) = 290, a bound
/// the tests check numerically (`estimatedReceptiveFieldRadius`).
extension VGGFCN: TileableSegmentationModel {
    /// 1: the VGG FCNs end with a deconvolution and a crop to the input size.
    public var scoreStride: Int { 1 }
    /// 32: five 2x2 stride-2 pools.
    public var translationStride: Int { 32 }
    /// 290, all four variants (see above).
    public var receptiveFieldRadius: Int { 290 }
    /// The model itself: no batch norm to fold (its conv+ReLU pairs already run fused).
    public func rawScoreLayer() -> any Layer { self }
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

/// Receptive field of a chain of convolutions / poolings along one axis, from the input:
/// `extent` pixels and total stride `jump`. Each step `(kernel k, stride s, dilation d)`
/// grows the extent by `d*(k-1)*jump` and multiplies the jump by s. Residual shortcuts never
/// see further than the main path, so a ResNet's field is that of its longest path.
/// `radius` = `ceil((extent - 1) / 2)`: half the field around its centre; the alignment
/// of that centre with the output pixel is what the crops / paddings of a model fix, so
/// models add a slack of one jump when they use this.
///
/// With the paddings given, `start` also places the field: output position o sees the
/// input pixels `[start + o*jump, start + o*jump + extent)`, and `radius(covering:)` is
/// then the exact radius of `SegmentationNetwork.receptiveFieldRadius` for a chain of
/// convolutions / poolings (no slack needed).
public struct ReceptiveField: Sendable, Equatable {
    /// Input pixels seen by one output position (1: the identity).
    public var extent = 1
    /// Input pixels between neighbouring output positions (product of the strides).
    public var jump = 1
    /// Input pixel of the first tap of output position 0 (minus the paddings so far).
    public var start = 0
    /// The identity: extent 1, jump 1, start 0.
    public init() {}

    /// Adds a convolution or pooling window (`padding`: the amount before the axis).
    public mutating func add(kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        start -= padding * jump
        extent += dilation * (kernel - 1) * jump
        jump *= stride
    }

    /// Half the field around its centre, `ceil((extent - 1) / 2)`.
    public var radius: Int { (extent - 1 + 1) / 2 }

    /// How far outside the pixels `[o*f, o*f + f)` an output position o sees (f the score
    /// stride, normally `jump`): `max(-start, start + extent - f)`.
    public func radius(covering f: Int) -> Int { max(0, -start, start + extent - f) }
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
