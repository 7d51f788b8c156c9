// What a training run is: the model to train, the data, the budget and the recipe
// (`TrainerOptions`), with the value types it is made of. `fcn-train` fills it from its
// flags (FCNTools); `validate()` checks combinations and names the option (by its flag,
// which is how users meet it) in `TrainerError`.
//
// Every option has a default chosen so that a run of 100 steps trains something sensible
// on the synthetic shapes in seconds.

import FCNCore
import FCNIO
import FCNModels

/// Which optimizer the trainer builds.
public enum TrainerOptimizerKind: String, Sendable, CaseIterable {
    /// SGD with momentum (the FCN reference), Adam, or AdamW (decoupled weight decay).
    case sgd, adam, adamw
}

/// Which learning-rate schedule the trainer builds over a stage of `H` steps.
public enum TrainerScheduleKind: String, Sendable, CaseIterable {
    /// Constant rate (the reference FCN solver's "fixed").
    case fixed
    /// `lr * (1 - t/H)^0.9` (torchvision's segmentation reference).
    case poly
    /// `lr * 0.1^floor(3t/H)`: two drops by 10, at a third and two thirds of the stage.
    case step
    /// `lr * 0.01^(t/H)`: smooth exponential decay to 1% at the end of the stage.
    case exp
}

/// How the convolutions of a new network are initialised.
public enum TrainerInitialization: String, Sendable, CaseIterable {
    /// He et al.'s normal initialisation for ReLU nets, `N(0, 2 / fan_in)`, biases 0: keeps
    /// the activation scale through the 15 layers of VGG16, so training from scratch
    /// (without ImageNet weights) starts fast.
    case kaiming
    /// PyTorch's default (`kaiming_uniform_(a=sqrt(5))`): activations shrink layer after layer.
    case pytorch
}

/// Per-class weights of the pixel-wise loss (`softmaxCrossEntropy(classWeights:)`).
public enum TrainerClassWeighting: String, Sendable, CaseIterable {
    /// Every class weighs 1 (the reference).
    case none
    /// `1 / sqrt(frequency)`, normalised to mean 1, with the frequencies counted on the
    /// first 200 training labels (ignore label left out): rare thin classes count more
    /// without the instability of plain inverse frequency.
    case inverseSqrt = "inverse-sqrt"
}

/// Where training images come from.
public enum TrainerDataKind: String, Sendable, CaseIterable {
    /// `SyntheticShapes` (5 classes); validation images are held out (other indices).
    case synthetic
    /// A PASCAL VOC layout folder (21 classes): `train` split for training, `val` for validation.
    case voc
}

/// A learning-rate multiplier for the parameters of some layers (`--lr-mult LAYERS=X`), in
/// the spirit of Caffe's per-layer `lr_mult`.
public struct LayerLearningRate: Sendable, Equatable {
    /// Layer names or name prefixes. A parameter belongs to an entry when its name equals it
    /// or continues it with "." or "_": `fc6` holds fc6.weight and fc6.bias, `conv5` holds
    /// conv5_1 ... conv5_3, `score` every score layer. An entry ending in `*` matches every
    /// name that starts with the rest: `upscore*` is every upsampling layer.
    public var layers: [String]
    /// Multiplies the scheduled learning rate of those parameters (and any Caffe-group
    /// multiplier); >= 0, where 0 keeps them where they are.
    public var multiplier: Float

    /// A multiplier for the parameters of `layers`.
    public init(layers: [String], multiplier: Float) {
        self.layers = layers; self.multiplier = multiplier
    }

    /// Parses `LAYERS=X`, LAYERS a comma-separated list (the `--lr-mult` value).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "=", omittingEmptySubsequences: false)
        let layers = parts.first.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) } ?? []
        guard parts.count == 2, !layers.isEmpty, layers.allSatisfy({ !$0.isEmpty }),
              let m = Float(parts[1]), m >= 0, m.isFinite else {
            throw TrainerError("--lr-mult takes LAYERS=X, LAYERS comma-separated layer names and X >= 0 (e.g. conv5,fc6,fc7=0.1), got '\(text)'")
        }
        self.init(layers: layers, multiplier: m)
    }

    /// Whether the parameter called `name` belongs to one of `layers`.
    public func matches(_ name: String) -> Bool {
        layers.contains { LayerLearningRate.parameter(name, belongsTo: $0) }
    }

    /// Whether the parameter called `name` belongs to `layer` (equal, or continued with "." or
    /// "_"; with a trailing `*`, any name starting with what precedes it).
    public static func parameter(_ name: String, belongsTo layer: String) -> Bool {
        if layer.hasSuffix("*") { return name.hasPrefix(layer.dropLast()) }
        return name == layer || name.hasPrefix(layer + ".") || name.hasPrefix(layer + "_")
    }
}

/// One phase of progressive resizing (`--progressive S@F`): training images of `size`
/// pixels until the fraction `until` of each stage's budget is used. Small images early
/// buy more steps for the same time: the network learns its features on them, and the
/// last phase, at the full size, fits the boundaries at the resolution validated.
public struct ProgressiveSize: Sendable, Equatable {
    /// Side of the training images (synthetic images are drawn at this size, the same
    /// scenes scaled; VOC images are cropped to it).
    public var size: Int
    /// End of the phase as a fraction of the stage's budget, in (0, 1).
    public var until: Double

    /// A phase of `size`-pixel images up to the fraction `until` of each stage.
    public init(size: Int, until: Double) { self.size = size; self.until = until }

    /// Parses `S@F[,S@F...]` (the `--progressive` value), e.g. `64@0.5` or `48@0.3,64@0.6`.
    public static func parseList(_ text: String) throws -> [ProgressiveSize] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let parts = item.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, let size = Int(parts[0]), let until = Double(parts[1]) else {
                throw TrainerError("--progressive takes SIZE@FRACTION[,SIZE@FRACTION...] (e.g. 64@0.5), got '\(text)'")
            }
            return ProgressiveSize(size: size, until: until)
        }
    }
}

/// Everything a `Trainer` needs to know (the `fcn-train` flags).
public struct TrainerOptions: Sendable, Equatable {
    /// The network trained (the last stage's network with `staged`): any architecture the
    /// library builds.
    public var model: ModelArchitecture = .fcn8s
    /// Channel multiplier of the VGG16 FCN (1 = the published widths); VGG only.
    public var width: Double = 0.125
    /// Padding layout of the network: `.caffe` (the reference, pad 100) or `.same` (no
    /// margin, crops at offset 0; about 9x less work at 96x96). See `VGGFCNPadding`.
    public var padding: VGGFCNPadding = .caffe
    /// Dataset kind.
    public var data: TrainerDataKind = .synthetic
    /// VOC root folder (`--data voc`).
    public var root: String? = nil
    /// Training image side: synthetic images are generated at this size; VOC images are
    /// randomly scaled and cropped to it. Validation images have this size too.
    public var imageSize = 64
    /// Progressive resizing: smaller training images for the first part of each stage
    /// (phases in order, fractions increasing), then `imageSize`; empty (default) trains
    /// at `imageSize` throughout.
    public var progressive: [ProgressiveSize] = []
    /// Number of training images (synthetic: indices 0..<trainCount).
    public var trainCount = 2000
    /// Number of held-out validation images (synthetic: indices from 1 000 000 on; VOC: the
    /// first `valCount` images of the val split, 0 = all).
    public var valCount = 100
    /// Step budget (total over all stages); nil = unlimited (then `minutes` must be set).
    public var steps: Int? = nil
    /// Wall-clock budget in minutes, measured from the first training step (validation
    /// included); nil = unlimited.
    public var minutes: Double? = nil
    /// Images per step.
    public var batch = 4
    /// The optimizer; Adam by default because it converges without tuning the learning
    /// rate per model, unlike the reference's SGD.
    public var optimizer: TrainerOptimizerKind = .adam
    /// Base learning rate.
    public var learningRate: Float = 1e-3
    /// SGD momentum (ignored by Adam).
    public var momentum: Float = 0.9
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    public var weightDecay: Float = 0
    /// Learning-rate schedule over each stage; poly by default (a smooth decay to zero at
    /// the end of the stage, which needs no tuning of step points).
    public var schedule: TrainerScheduleKind = .poly
    /// Linear warm-up steps at the start of each stage (factor 1/3 -> 1).
    public var warmup = 0
    /// Seed of the weights, the dropout masks, the synthetic dataset and the batch sampler.
    public var seed: UInt64 = 0
    /// Compute threads (nil: the library default, all processors).
    public var threads: Int? = nil
    /// Parts each batch is split into, whose forward and backward passes run side by side
    /// (`DataParallelBatch`). 1 (default) runs the batch whole, the kernels split over the
    /// threads. 2 on 2 cores gains images per second for the README's FCN-8s at width
    /// 0.1875 on 128-pixel images, little on 64-pixel ones (where streaming fc6's weights
    /// dominates); figures in Benchmarks.md, Training. Needs `dropout` off; must not
    /// exceed `batch`.
    public var replicas = 1
    /// Validate (and checkpoint) every this many steps; 0 = only at the end of each stage.
    public var valEvery = 200
    /// Output folder for the checkpoint, the CSV and the plot; nil = write nothing.
    public var out: String? = "fcn-train-out"
    /// Checkpoint to continue from.
    public var resume: String? = nil
    /// Only validate the `resume` checkpoint on the validation images (`valCount` of the
    /// `seed`'s held-out set at `imageSize`) and stop: no training, no budget needed.
    public var evaluateOnly = false
    /// The arithmetic of `evaluateOnly` (`Compute.precision`; training is always float32).
    public var precision = ComputePrecision.float32
    /// Train 32s, then 16s initialised from it, then 8s, a third of the budget each.
    public var staged = false
    /// Caffe parameter groups: biases at lr x2 without weight decay (upsampling is frozen
    /// in every case, as in the reference).
    public var caffeGroups = false
    /// How images are normalised before the network (recorded in the model description, so
    /// evaluation and segmentation apply the same). torchvision's by default: a network
    /// trained from scratch may use either, and it is the one of the ResNet backbones.
    public var normalization: InputPreprocessing = .torchvision
    /// Class names (recorded in the model description); nil: the data's own names. With
    /// `.voc` data they also set the class count, so a folder in the VOC layout may hold a
    /// dataset of any classes (label ids `0..<classNames.count`, 255 ignored).
    public var classNames: [String]? = nil
    /// Weights to start from (fine-tuning): any file `ModelFile` reads. Parameters whose
    /// names and shapes match are copied; a classifier of another class count is replaced.
    public var initFrom: String? = nil
    /// fcn_resnet50/101: train the auxiliary head on layer3 at torchvision's loss weight 0.5.
    public var auxiliaryLoss = true
    /// Let the bilinear upsampling layers learn (the reference keeps them frozen).
    public var learnUpsampling = false
    /// Per-class loss weights (default none, as the reference).
    public var classWeighting: TrainerClassWeighting = .none
    /// Weight of the Lovász-softmax loss added to the cross-entropy (`lovaszSoftmax`,
    /// over the batch, classes present). 0 (default, as the reference) trains with
    /// cross-entropy alone; 1 raised the mean IU of short synthetic runs (see README).
    public var lovaszWeight: Float = 0
    /// Learning-rate multipliers by layer (`--lr-mult`); where entries overlap, the later one
    /// applies. Empty by default (every parameter at the base rate, as the reference).
    public var layerLearningRates: [LayerLearningRate] = []
    /// Dropout after fc6 and fc7 (the reference's 0.5); false trains without it.
    public var dropout = true
    /// Initialisation of conv1_1 ... fc7 (score layers always start at zero).
    public var initialization: TrainerInitialization = .kaiming
    /// Random horizontal flips of training images.
    public var flip = true
    /// Progress display (false: only the final summary).
    public var progress = true

    /// The defaults documented on each property.
    public init() {}

    /// The architectures trained in order: `[model]`, or with `staged` 32s, 16s, then
    /// `model` (32s -> 16s when `model` is 16s; 32s -> 16s -> 8s -> 4s when it is 4s).
    public var stages: [ModelArchitecture] {
        guard staged else { return [model] }
        switch model {
        case .fcn16s: return [.fcn32s, .fcn16s]
        case .fcn4s: return [.fcn32s, .fcn16s, .fcn8s, .fcn4s]
        default: return [.fcn32s, .fcn16s, model]
        }
    }

    /// Checks the combination of options (also used by `Trainer.init`).
    public func validate() throws {
        if evaluateOnly && resume == nil { throw TrainerError("--evaluate needs --resume CHECKPOINT") }
        if precision != .float32 && !evaluateOnly {
            throw TrainerError("--precision \(precision) applies to --evaluate only (training computes in float32)")
        }
        guard steps != nil || minutes != nil || evaluateOnly else {
            throw TrainerError("give a budget: --steps N and/or --minutes M")
        }
        if data == .voc && root == nil { throw TrainerError("--data voc needs --root DIR") }
        if data == .synthetic && root != nil { throw TrainerError("--root is only used with --data voc") }
        if data == .synthetic && trainCount > 1_000_000 {
            throw TrainerError("--train-count must be <= 1000000 (synthetic validation images start at index 1000000), got \(trainCount)")
        }
        if staged {
            guard model == .fcn8s || model == .fcn8sAtOnce || model == .fcn16s || model == .fcn4s else {
                throw TrainerError("--staged trains 32s -> 16s -> 8s (VGG FCNs); --model must be fcn8s (or fcn16s / fcn8s-atonce / fcn4s), got \(model.rawValue)")
            }
            if let s = steps, s < stages.count {
                throw TrainerError("--staged needs at least \(stages.count) steps, got \(s)")
            }
        }
        guard width > 0 && width <= 1 else { throw TrainerError("--width must lie in (0, 1], got \(width)") }
        if !model.isVGG && (padding != .caffe || learnUpsampling || caffeGroups) {
            throw TrainerError("--padding, --learn-upsampling and --caffe-groups apply to the VGG FCNs only, not \(model)")
        }
        if let n = classNames, n.contains(where: \.isEmpty) { throw TrainerError("--class-names has an empty name") }
        if let n = classNames, n.count > 255 { throw TrainerError("--class-names gives \(n.count) names; at most 255 classes (label 255 means ignore)") }
        guard imageSize >= 8 else { throw TrainerError("--image-size must be >= 8, got \(imageSize)") }
        var last = 0.0
        for phase in progressive {
            guard phase.size >= 8 else { throw TrainerError("--progressive sizes must be >= 8, got \(phase.size)") }
            guard phase.until > last && phase.until < 1 else {
                throw TrainerError("--progressive fractions must increase within (0, 1), got \(progressive.map { "\($0.size)@\($0.until)" }.joined(separator: ","))")
            }
            last = phase.until
        }
        guard batch >= 1 else { throw TrainerError("--batch must be >= 1, got \(batch)") }
        guard replicas >= 1 && replicas <= batch else {
            throw TrainerError("--replicas must lie in 1...\(batch) (the --batch), got \(replicas)")
        }
        if replicas > 1 && dropout {
            throw TrainerError("--replicas \(replicas) needs --no-dropout: the dropout layers draw their masks from one generator each, which parts running side by side cannot share")
        }
        if replicas > 1 && !model.isVGG {
            throw TrainerError("--replicas \(replicas) applies to the VGG FCNs only: \(model) has batch norms, whose statistics are the whole batch's and whose running averages parts running side by side cannot share")
        }
        guard learningRate > 0 && learningRate.isFinite else { throw TrainerError("--lr must be > 0, got \(learningRate)") }
        guard lovaszWeight >= 0 && lovaszWeight.isFinite else { throw TrainerError("--lovasz must be >= 0, got \(lovaszWeight)") }
        for rule in layerLearningRates where rule.layers.isEmpty || !(rule.multiplier >= 0 && rule.multiplier.isFinite) {
            throw TrainerError("--lr-mult needs at least one layer and a multiplier >= 0, got \(rule.layers) = \(rule.multiplier)")
        }
    }
}

