// "Net surgery" of the reference FCN training: convolutionalize the VGG16 classifier into
// the FCN backbone, then grow FCN-32s into FCN-16s and FCN-16s into FCN-8s.
//
// * Backbone from a classifier: conv1_1 ... conv5_3 take `features.{0,2,5,...,28}` as they
//   are; fc6 takes `classifier.0.weight` `[4096, 25088]` reshaped to `[4096, 512, 7, 7]`
//   (PyTorch's flatten of `[N, 512, 7, 7]` is channel-major, so element (o, c*49 + y*7 + x)
//   becomes (o, c, y, x)); fc7 takes `classifier.3.weight` `[4096, 4096]` as
//   `[4096, 4096, 1, 1]`; biases are copied. classifier.6 (the 1000 ImageNet classes) is
//   dropped: score_fr starts at zero, as in the reference.
// * Staged training (reference solve.py): FCN-16s is initialised from a trained FCN-32s, FCN-8s
//   from a trained FCN-16s (and FCN-4s from a trained FCN-8s). Every parameter whose name
//   exists in both nets (conv*, fc6, fc7, score_fr, and upscore2/score_pool4 when going
//   16s -> 8s) is copied; the new score layers (score_pool4, score_pool3, score_pool2)
//   start at zero, so the new skip contributes nothing
//   at first; new upsampling layers get the bilinear kernel. FCN-32s's upscore (64x64) has
//   no counterpart and is not used.
//
// torchvision weights: export them once with PyTorch
//
//     import torchvision
//     from safetensors.torch import save_file
//     m = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1)
//     save_file({k: v.contiguous() for k, v in m.state_dict().items()}, "vgg16.safetensors")
//
// and load the file with `fcn.loadBackbone(fromTorchvisionFile: "vgg16.safetensors")` (or
// build a `VGG16Classifier`, `load(from:)` the same file, and use `VGGFCN.fromClassifier`).
// Those weights expect torchvision's preprocessing (RGB in 0...1 normalised with mean
// (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)), not the Caffe BGR mean subtraction
// of the reference. vgg16_bn (with batch norm) has other names and is not supported here.

import FCNCore
import FCNIO

extension VGGFCN {
    /// Caffe name of each torchvision VGG16 tensor used by the FCN backbone:
    /// `features.0.weight` -> `conv1_1.weight`, ..., `features.28.bias` -> `conv5_3.bias`,
    /// `classifier.0.*` -> `fc6.*`, `classifier.3.*` -> `fc7.*` (the weights reshaped to
    /// 4-D). In the FCN's parameter order.
    public static let torchvisionNames: [(torchvision: String, caffe: String)] = {
        var out: [(String, String)] = []
        for (i, name) in zip(VGG16Config.torchvisionFeatureIndices, VGG16Config.convolutionNames) {
            out.append(("features.\(i).weight", name + ".weight"))
            out.append(("features.\(i).bias", name + ".bias"))
        }
        for (i, name) in [(0, "fc6"), (3, "fc7")] {
            out.append(("classifier.\(i).weight", name + ".weight"))
            out.append(("classifier.\(i).bias", name + ".bias"))
        }
        return out
    }()

    /// Loads conv1_1 ... conv5_3, fc6 and fc7 from a state dict with torchvision's vgg16
    /// names (a `VGG16Classifier.stateDict()` or a loaded torchvision checkpoint), reshaping
    /// the two linear weights into convolutions (see the file comment). Throws
    /// `FCNError.mismatch` naming every missing tensor or wrong shape, before changing
    /// anything. Returns the names it did not use (classifier.6.* and anything else).
    @discardableResult
    public func loadBackbone(fromTorchvision state: [String: Tensor]) throws -> [String] {
        try loadBackbone(names: Set(state.keys), shape: { state[$0]?.shape }, tensor: { state[$0]! })
    }

    /// Loads the backbone from a safetensors file with torchvision's vgg16 names (see
    /// `loadBackbone(fromTorchvision:)` and the export snippet at the top of this file).
    /// Only the 30 tensors it needs are read.
    @discardableResult
    public func loadBackbone(fromTorchvisionFile path: String) throws -> [String] {
        let file = try SafeTensorsFile(path: path)
        return try loadBackbone(names: Set(file.names), shape: { file.entries[$0]?.shape }, tensor: { try file.tensor($0) })
    }

    private func loadBackbone(names: Set<String>, shape: (String) -> [Int]?, tensor: (String) throws -> Tensor) throws -> [String] {
        let params = Dictionary(uniqueKeysWithValues: namedParameters())
        var problems: [String] = []
        for (tv, caffe) in VGGFCN.torchvisionNames {
            let target = params[caffe]!
            guard let got = shape(tv) else { problems.append("missing \(tv) (for \(caffe))"); continue }
            // Same number of elements and, for the convolutions, the same shape; the linear
            // weights must be [out, in*kH*kW] of the target conv.
            let ok = tv.hasPrefix("classifier") && tv.hasSuffix("weight")
                ? got == [target.shape[0], target.shape[1...].reduce(1, *)]
                : got == target.shape
            if !ok { problems.append("\(tv) has shape \(got), expected \(target.shape) for \(caffe)") }
        }
        if !problems.isEmpty {
            throw FCNError.mismatch("VGGFCN.loadBackbone: " + problems.joined(separator: "; "))
        }
        var loaded: [(Parameter, Tensor)] = []
        for (tv, caffe) in VGGFCN.torchvisionNames {
            let target = params[caffe]!
            loaded.append((target, try tensor(tv).reshaped(target.shape)))
        }
        for (p, t) in loaded { p.assign(t) }
        return names.subtracting(VGGFCN.torchvisionNames.map(\.torchvision)).sorted()
    }

    /// The FCN initialised from an ImageNet classifier (the reference's starting point):
    /// backbone and fc6/fc7 convolutionalized from `classifier` (same width), score layers
    /// zero, upsampling bilinear and frozen. The classifier's own 1000-way layer is dropped.
    /// `padding` picks the layout (`.caffe`, the reference, by default).
    public static func fromClassifier(_ classifier: VGG16Classifier, variant: VGGFCNVariant, classes: Int = 21,
                                      seed: UInt64? = nil, padding: VGGFCNPadding = .caffe) -> VGGFCN {
        let fcn = VGGFCN(variant: variant, classes: classes, width: classifier.width, seed: seed, padding: padding)
        do {
            try fcn.loadBackbone(fromTorchvision: classifier.stateDict())
        } catch {
            fcnFail("VGGFCN.fromClassifier", "\(error)")     // cannot happen: same width, same layout
        }
        return fcn
    }

    /// A network of another variant initialised from `other` (staged training: 16s from a
    /// trained 32s, 8s from a trained 16s): same classes, width and padding; every parameter whose
    /// name exists in both is copied (values only; frozen flags are this network's
    /// defaults); new score layers start at zero and new upsampling layers are bilinear.
    /// The dropout generators are seeded from `seed`; `trainableUpsampling` as in
    /// `init(variant:classes:width:seed:zeroScoreLayers:trainableUpsampling:padding:)`.
    public convenience init(initializedFrom other: VGGFCN, variant: VGGFCNVariant, seed: UInt64? = nil,
                            trainableUpsampling: Bool = false) {
        self.init(variant: variant, classes: other.classes, width: other.width, seed: seed, zeroScoreLayers: true,
                  trainableUpsampling: trainableUpsampling, padding: other.padding)
        let source = Dictionary(uniqueKeysWithValues: other.namedParameters())
        for (name, p) in namedParameters() {
            guard let q = source[name] else { continue }
            fcnCheck(q.shape == p.shape, "VGGFCN(initializedFrom:)", "\(name) has shape \(q.shape) in the source, expected \(p.shape)")
            p.assign(q.value)
        }
        train(other.isTraining)
        try? setModelDescription(modelDescription.withMetadata(classNames: other.modelDescription.classNames,
                                                               palette: other.modelDescription.palette,
                                                               input: other.modelDescription.input))
    }

    /// Names of the parameters that `VGGFCN(initializedFrom:variant:)` copies from a
    /// network of variant `from` into one of variant `to`, in the target's order.
    public static func sharedParameterNames(from: VGGFCNVariant, to: VGGFCNVariant) -> [String] {
        let a = Set(VGGFCN(variant: from, classes: 1, width: 1.0 / 512, seed: 0).namedParameters().map(\.0))
        return VGGFCN(variant: to, classes: 1, width: 1.0 / 512, seed: 0).namedParameters().map(\.0).filter(a.contains)
    }
}
