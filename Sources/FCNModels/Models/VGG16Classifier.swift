// The VGG16 ImageNet classifier with torchvision's module layout and state-dict names, and
// its convolutionalized form (the FCN paper's Figure 2: fully connected layers as
// convolutions, so the classifier slides over larger inputs).
//
// torchvision `vgg16()`:
//   features   Sequential: conv(0) relu(1) conv(2) relu(3) pool(4) conv(5) ... conv(28) relu(29) pool(30)
//              3x3 convs pad 1; pools 2x2 stride 2, floor mode (unlike the FCN's ceil mode)
//   avgpool    AdaptiveAvgPool2d(7)         (identity at 224x224, where features are 7x7)
//   classifier Linear(25088, 4096)(0) ReLU(1) Dropout(2) Linear(4096, 4096)(3) ReLU(4)
//              Dropout(5) Linear(4096, 1000)(6)
// so the parameters are `features.0.weight` ... `features.28.bias`, `classifier.0.weight`
// `[4096, 25088]`, `classifier.3.weight` `[4096, 4096]`, `classifier.6.weight` `[1000, 4096]`.
// A width multiplier scales every channel count as `VGG16Config.channels` does.

import FCNCore
import FCNIO

/// VGG16 (configuration D) as torchvision builds it: `features`, `avgpool`, `classifier`.
///
/// Input `[N, 3, H, W]` (H, W >= 32 so that the five floor-mode pools leave at least one
/// cell), output `[N, classes]` logits. The adaptive average pool makes any such size
/// valid; at 224x224 it is the identity.
public final class VGG16Classifier: Layer, @unchecked Sendable {
    /// The 13 3x3 convolutions (pad 1) with their ReLUs and the five 2x2 stride-2 max pools
    /// (floor mode), 31 layers named "0" ... "30" as in torchvision: `[N, 3, H, W]` ->
    /// `[N, 512*width, floor(H/32), floor(W/32)]`.
    public let features: Sequential
    /// Adaptive average pool to 7x7 (torchvision's `avgpool`): the classifier always sees
    /// `512*width * 49` features whatever the input size.
    public let avgpool: AdaptiveAvgPool2d
    /// Linear(25088, 4096) "0", ReLU "1", Dropout "2", Linear(4096, 4096) "3", ReLU "4",
    /// Dropout "5", Linear(4096, classes) "6" (sizes for width 1), as in torchvision.
    public let classifier: Sequential
    /// Number of output classes (rows of `classifier.6.weight`).
    public let classes: Int
    /// The channel multiplier the network was built with (1 = VGG16).
    public let width: Double
    /// Training mode (dropout active; the default for a new network, as in PyTorch) or eval
    /// mode. Set it for the whole tree with `train()` / `eval()`.
    public var isTraining = true

    /// Builds the network with torchvision's initialisation distributions (conv weights
    /// Kaiming normal, fan-out, ReLU gain; linear weights N(0, 0.01); biases 0), drawn from
    /// `FCNRandom` (`seed` nil: the shared `ParameterInit` generator).
    ///
    /// - Parameters:
    ///   - classes: output classes (1000 for ImageNet).
    ///   - width: channel multiplier (1 = VGG16); hidden width `4096*width`, rounded as
    ///     `VGG16Config.channels`.
    ///   - dropout: probability of the two dropout layers (torchvision's default 0.5).
    ///   - seed: seed of the default initialisation (nil: the shared `ParameterInit` generator).
    public init(classes: Int = 1000, width: Double = 1, dropout: Float = 0.5, seed: UInt64? = nil) {
        fcnCheck(classes >= 1, "VGG16Classifier", "classes must be at least 1, got \(classes)")
        fcnCheck(width > 0 && width.isFinite, "VGG16Classifier", "width must be positive, got \(width)")
        self.classes = classes; self.width = width
        var g = ParameterInit.generator(seed: seed)
        var layers: [any Layer] = []
        var cin = 3
        for stage in VGG16Config.stages {
            for n in stage {
                let c = VGG16Config.channels(n, width: width)
                let std = Float((2.0 / Double(c * 9)).squareRoot())
                layers.append(Conv2d(weight: Tensor.randn([c, cin, 3, 3], std: std, using: &g), bias: .zeros([c]), padding: 1))
                layers.append(ReLU())
                cin = c
            }
            layers.append(MaxPool2d(kernel: 2, stride: 2))
        }
        features = Sequential(layers)
        avgpool = AdaptiveAvgPool2d(outputSize: 7)
        let f = VGG16Config.channels(VGG16Config.hidden, width: width)
        func fc(_ i: Int, _ o: Int) -> Linear { Linear(weight: Tensor.randn([o, i], std: 0.01, using: &g), bias: .zeros([o])) }
        classifier = Sequential(fc(cin * 49, f), ReLU(), Dropout(p: dropout, seed: g.next()),
                                fc(f, f), ReLU(), Dropout(p: dropout, seed: g.next()),
                                fc(f, classes))
    }

    /// `features`, `avgpool`, `classifier`: torchvision's module names, which give the
    /// state-dict names `features.0.weight` ... `classifier.6.bias`.
    public var children: [(String, any Module)] { [("features", features), ("avgpool", avgpool), ("classifier", classifier)] }

    /// Logits `[N, classes]`: `classifier(flatten(avgpool(features(x))))`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        fcnCheck(x.rank == 4 && x.shape[1] == 3 && x.shape[2] >= 32 && x.shape[3] >= 32, "VGG16Classifier",
                 "input must be [N, 3, H, W] with H, W >= 32, got \(x.shape)")
        return classifier(avgpool(features(x)).flattened(from: 1))
    }

    /// The 13 convolutions of `features` in order (conv1_1 ... conv5_3).
    public var convolutions: [Conv2d] { VGG16Config.torchvisionFeatureIndices.map { features[$0] as! Conv2d } }

    /// The linear layers classifier.0 (fc6), classifier.3 (fc7) and classifier.6 (fc8).
    public var fullyConnected: (fc6: Linear, fc7: Linear, fc8: Linear) {
        (classifier[0] as! Linear, classifier[3] as! Linear, classifier[6] as! Linear)
    }

    /// The convolutionalized classifier: `features` (shared with this module, not copied)
    /// followed by fc6 as a 7x7 convolution (`classifier.0.weight` reshaped to
    /// `[4096, 512, 7, 7]`), ReLU, dropout, fc7 as a 1x1 convolution (`[4096, 4096, 1, 1]`),
    /// ReLU, dropout and fc8 as a 1x1 convolution, named `features`, `fc6`, `relu6`,
    /// `drop6`, `fc7`, `relu7`, `drop7`, `fc8`. Without the adaptive pool.
    ///
    /// On a 224x224 input it gives the classifier's logits as `[N, classes, 1, 1]`; on a
    /// larger input, output cell `(i, j)` is the classifier head applied to the 7x7 window
    /// of `features` at `(i, j)`, i.e. the classifier slid with stride 32. The weights are
    /// copies (copy on write) taken now; the result is in training mode like any new module.
    public func convolutionalized() -> Sequential {
        let (l6, l7, l8) = fullyConnected
        let c = convolutions.last!.outChannels
        func conv(_ l: Linear, _ shape: [Int]) -> Conv2d {
            Conv2d(weight: l.weight.value.detached().reshaped(shape), bias: l.bias?.value.detached())
        }
        return Sequential(named: [
            "features": features,
            "fc6": conv(l6, [l6.outFeatures, c, 7, 7]), "relu6": ReLU(), "drop6": Dropout(p: (classifier[2] as! Dropout).p),
            "fc7": conv(l7, [l7.outFeatures, l7.inFeatures, 1, 1]), "relu7": ReLU(), "drop7": Dropout(p: (classifier[5] as! Dropout).p),
            "fc8": conv(l8, [l8.outFeatures, l8.inFeatures, 1, 1]),
        ])
    }
}
