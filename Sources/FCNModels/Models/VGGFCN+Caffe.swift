// The reference FCN caffemodels (fcn.berkeleyvision.org: voc-fcn32s, voc-fcn16s, voc-fcn8s,
// voc-fcn8s-atonce, pascalcontext-fcn*, nyud-fcn32s-color / -hha) loaded into `VGGFCN`.
//
// Mapping: the VGGFCN's parameters carry the Caffe layer names, so layer L's blob 0 is
// `L.weight` and blob 1 `L.bias`: conv1_1 ... conv5_3, fc6, fc7, score_fr, score_pool4,
// score_pool3 (Convolution, weight [out, in, kh, kw], bias [out]); upscore, upscore2,
// upscore16, upscore_pool4, upscore8 (Deconvolution with bias_term false: one blob, weight
// [in, out, kh, kw] as PyTorch's ConvTranspose2d). Legacy 4-D blobs are matched as Caffe
// does (a bias [n] stored as [1, 1, 1, n]); a Deconvolution with group = classes and weight
// [C, 1, k, k] (per-class upsampling) is expanded to the diagonal [C, C, k, k]; a
// Convolution with bias_term false gets a zero bias; a Deconvolution's bias blob, if
// present, must be all zeros.
//
// Derived from the file:
// * variant: the set of parametric layers. upscore -> FCN-32s; upscore2, score_pool4,
//   upscore16 -> FCN-16s; upscore2, score_pool4, upscore_pool4, score_pool3, upscore8 ->
//   FCN-8s, and FCN-8s at-once when the pool skips are scaled by layers scale_pool4 (0.01)
//   and scale_pool3 (0.0001): Scale layers whose one blob holds the constant (voc-fcn8s-
//   atonce/net.py writes them with a constant filler and lr_mult 0) or Power layers with
//   power 1, shift 0 and that scale. VGGFCN.fcn8sAtOnce applies exactly these factors.
// * classes: score_fr's output channels (21 for VOC, 59/60 for PASCAL-Context, 40 NYUD).
// * width: the multiplier w for which every layer's channel count is VGG16's
//   max(1, round(n * w)) (1 for the published nets; candidates fc6/4096, conv5_3/512, ...).
// Checked: every layer's type, blob shapes and (when stored) convolution_param (kernel,
// stride, pad 100 for conv1_1 / 1 / 0, no dilation, no groups) against the reference
// layout. Any other layer with weights, or that scales (Scale, Power, Bias, BatchNorm,
// InnerProduct, ...), is an error naming it: the SIFT Flow nets' geometric head
// (score_fr_geo, ...), the AlexNet FCN (conv1 11x11 stride 4, fc6 6x6), multi-stream NYUD
// nets (conv1_1color, ...). Structural layers (data, ReLU, Pooling, Dropout, Crop, Eltwise,
// losses) are not checked: the file is taken to be the reference topology.
import FCNCore
import FCNIO
import Foundation

extension VGGFCN {
    /// The parameters of a VGGFCN taken from a caffemodel, with the facts derived from it.
    ///
    ///     let c = try VGGFCN.caffeStateDict(from: CaffeModel.read(path: "fcn8s-heavy-pascal.caffemodel"))
    ///     let net = VGGFCN(variant: c.variant, classes: c.classes, width: c.width)
    ///     try net.loadStateDict(c.tensors)
    ///
    /// Throws `FCNError` naming the layer for anything that is not a reference VGG16 FCN
    /// (see the file comment). `tensors` has the VGGFCN's parameter names and shapes.
    public static func caffeStateDict(from contents: CaffeModelContents) throws
        -> (variant: VGGFCNVariant, classes: Int, width: Double, tensors: [String: Tensor]) {
        let plan = try caffePlan(contents.layers.map(\.info)) { contents.layers[$0].blobs[$1] }
        var tensors: [String: Tensor] = [:]
        for s in plan.sources {
            switch s.source {
            case .blob(let l, let b):
                tensors[s.name] = contents.layers[l].blobs[b].reshaped(s.shape)
            case .zeros:
                tensors[s.name] = Tensor(shape: s.shape, repeating: 0)
            case .groupedDeconvolution(let l, let b):
                tensors[s.name] = Tensor.make(shape: s.shape) { out in
                    contents.layers[l].blobs[b].withUnsafeBufferPointer { Self.expandGrouped($0, into: out, classes: plan.classes) }
                }
            }
        }
        return (plan.variant, plan.classes, plan.width, tensors)
    }

    /// Builds the VGGFCN a caffemodel holds (variant, classes, width from the file) and
    /// loads its weights, decoding each blob straight into the parameter's storage: peak
    /// memory is the network plus a few pages of the file. Eval mode is not set.
    public static func fromCaffeModel(path: String) throws -> VGGFCN {
        try fromCaffeModel(CaffeModelFile(path: path))
    }

    /// Builds and loads the VGGFCN of an opened caffemodel (see `fromCaffeModel(path:)`).
    public static func fromCaffeModel(_ file: CaffeModelFile) throws -> VGGFCN {
        let plan = try caffePlan(file.layers) { try file.tensor(layer: $0, blob: $1) }
        let net = VGGFCN(variant: plan.variant, classes: plan.classes, width: plan.width, seed: 0)
        let params = Dictionary(uniqueKeysWithValues: net.namedParameters())
        for s in plan.sources {
            let p = params[s.name]!
            precondition(p.shape == s.shape, "VGGFCN.fromCaffeModel: planned shape \(s.shape) for \(s.name), the network has \(p.shape)")
            switch s.source {
            case .blob(let l, let b):
                try p.update { w, _ in try file.decode(layer: l, blob: b, into: w) }
            case .zeros:
                p.update { w, _ in w.initialize(repeating: 0) }
            case .groupedDeconvolution(let l, let b):
                let blob = try file.tensor(layer: l, blob: b)
                blob.withUnsafeBufferPointer { src in p.update { w, _ in Self.expandGrouped(src, into: w, classes: plan.classes) } }
            }
            try p.value.withUnsafeBufferPointer { try checkFinite($0, name: s.name, layer: s.source) }
        }
        return net
    }

    /// The parameter names and shapes of a VGGFCN, in `namedParameters()` order, without
    /// building one.
    package static func parameterShapes(variant: VGGFCNVariant, classes: Int, width: Double) -> [(name: String, shape: [Int])] {
        let ch = { VGG16Config.channels($0, width: width) }
        var out: [(String, [Int])] = []
        var cin = 3
        for (name, n) in zip(VGG16Config.convolutionNames, VGG16Config.stages.flatMap { $0 }) {
            out += [(name + ".weight", [ch(n), cin, 3, 3]), (name + ".bias", [ch(n)])]
            cin = ch(n)
        }
        let f = ch(VGG16Config.hidden)
        out += [("fc6.weight", [f, cin, 7, 7]), ("fc6.bias", [f]), ("fc7.weight", [f, f, 1, 1]), ("fc7.bias", [f]),
                ("score_fr.weight", [classes, f, 1, 1]), ("score_fr.bias", [classes])]
        let up = { (name: String, k: Int) in (name + ".weight", [classes, classes, k, k]) }
        switch variant {
        case .fcn32s: out.append(up("upscore", 64))
        case .fcn16s:
            out += [up("upscore2", 4), ("score_pool4.weight", [classes, ch(512), 1, 1]), ("score_pool4.bias", [classes]), up("upscore16", 32)]
        case .fcn8s, .fcn8sAtOnce, .fcn4s:
            out += [up("upscore2", 4), ("score_pool4.weight", [classes, ch(512), 1, 1]), ("score_pool4.bias", [classes]),
                    up("upscore_pool4", 4), ("score_pool3.weight", [classes, ch(256), 1, 1]), ("score_pool3.bias", [classes])]
            out += variant == .fcn4s
                ? [up("upscore_pool3", 4), ("score_pool2.weight", [classes, ch(128), 1, 1]), ("score_pool2.bias", [classes]), up("upscore4", 8)]
                : [up("upscore8", 16)]
        }
        return out
    }

    // MARK: - Planning

    enum CaffeSource { case blob(Int, Int), zeros, groupedDeconvolution(Int, Int) }

    struct CaffePlan {
        let variant: VGGFCNVariant, classes: Int, width: Double
        let sources: [(name: String, shape: [Int], source: CaffeSource)]
    }

    /// Reference geometry of each layer: kernel, stride, pad, and whether it is a Deconvolution.
    private static let caffeGeometry: [String: (kernel: Int, stride: Int, pad: Int, deconvolution: Bool)] = {
        var g: [String: (Int, Int, Int, Bool)] = [:]
        for n in VGG16Config.convolutionNames { g[n] = (3, 1, n == "conv1_1" ? 100 : 1, false) }
        g["fc6"] = (7, 1, 0, false); g["fc7"] = (1, 1, 0, false)
        for n in ["score_fr", "score_pool4", "score_pool3"] { g[n] = (1, 1, 0, false) }
        for (n, f) in [("upscore", 32), ("upscore2", 2), ("upscore16", 16), ("upscore_pool4", 2), ("upscore8", 8)] {
            g[n] = (bilinearKernelSize(forFactor: f), f, 0, true)
        }
        return g
    }()

    /// Layer types that change values and so cannot be ignored when not understood.
    private static let weightedTypes: Set<String> = ["Convolution", "Deconvolution", "InnerProduct", "Scale", "Bias", "Power",
                                                    "BatchNorm", "PReLU", "Embed", "LRN", "MVN", "Normalize", "Exp", "Log"]

    static func caffePlan(_ layers: [CaffeLayerInfo], values: (Int, Int) throws -> Tensor) throws -> CaffePlan {
        func bad(_ m: String) -> FCNError { .mismatch("caffemodel -> VGGFCN: \(m)") }
        var index: [String: Int] = [:]
        var unknown: [String] = []
        let scaleNames: Set<String> = ["scale_pool4", "scale_pool3"]
        for (i, l) in layers.enumerated() where !l.blobShapes.isEmpty || weightedTypes.contains(l.type) {
            if caffeGeometry[l.name] != nil || scaleNames.contains(l.name) {
                guard index[l.name] == nil else { throw bad("two layers are named '\(l.name)'") }
                index[l.name] = i
            } else {
                unknown.append("\(l.name.isEmpty ? "<unnamed>" : l.name) (\(l.type))")
            }
        }
        if !unknown.isEmpty {
            let names = Set(layers.map(\.name))
            var hint = ""
            if names.contains(where: { $0.hasSuffix("_geo") || $0.hasSuffix("_sem") }) {
                hint = "; this looks like a SIFT Flow net with semantic and geometric heads, which VGGFCN does not have"
            } else if names.contains("conv1") || names.contains("conv2") {
                hint = "; this looks like the AlexNet FCN (voc-fcn-alexnet), which this library does not implement"
            } else if names.contains(where: { $0.hasSuffix("color") || $0.hasSuffix("hha") }) {
                hint = "; this looks like a multi-stream NYUD net (color + HHA), which VGGFCN does not have"
            }
            throw FCNError.unsupported("caffemodel -> VGGFCN: layers the VGG16 FCN does not have: \(unknown.prefix(12).joined(separator: ", "))\(unknown.count > 12 ? ", ..." : "")\(hint)")
        }

        // Variant from the layers present.
        let has = { (n: String) in index[n] != nil }
        let variant: VGGFCNVariant
        if has("upscore8") || has("score_pool3") || has("upscore_pool4") {
            variant = has("scale_pool4") || has("scale_pool3") ? .fcn8sAtOnce : .fcn8s
        } else if has("upscore16") || has("score_pool4") || has("upscore2") {
            variant = .fcn16s
        } else if has("upscore") {
            variant = .fcn32s
        } else {
            throw bad("no upsampling layer (upscore, upscore16 or upscore8): not an FCN")
        }
        let needed = Set(parameterShapes(variant: variant, classes: 1, width: 1).map { String($0.name.split(separator: ".")[0]) })
            .union(variant == .fcn8sAtOnce ? scaleNames : [])
        let missing = needed.subtracting(index.keys).sorted(), extra = Set(index.keys).subtracting(needed).sorted()
        guard missing.isEmpty, extra.isEmpty else {
            throw bad("the layers of \(variant) (\(missing.isEmpty ? "" : "missing \(missing.joined(separator: ", "))")\(missing.isEmpty || extra.isEmpty ? "" : "; ")\(extra.isEmpty ? "" : "unexpected \(extra.joined(separator: ", "))"))")
        }

        // Types and convolution parameters.
        for (name, g) in caffeGeometry {
            guard let i = index[name] else { continue }
            let l = layers[i]
            let type = g.deconvolution ? "Deconvolution" : "Convolution"
            guard l.type == type else { throw bad("layer '\(name)' is a \(l.type), expected a \(type)") }
            guard !l.blobShapes.isEmpty, l.blobShapes[0].dims.count == 4 else {
                throw bad("layer '\(name)' has \(l.blobShapes.isEmpty ? "no weight blob" : "a weight of shape \(l.blobShapes[0])")")
            }
            guard let p = l.convolution else { continue }
            var problems: [String] = []
            if !p.kernel.isEmpty && p.kernel != [g.kernel, g.kernel] { problems.append("kernel \(p.kernel) (expected \(g.kernel))") }
            if p.stride != [g.stride, g.stride] { problems.append("stride \(p.stride) (expected \(g.stride))") }
            if p.pad != [g.pad, g.pad] { problems.append("pad \(p.pad) (expected \(g.pad))") }
            if p.dilation != [1, 1] { problems.append("dilation \(p.dilation)") }
            if p.group != 1 && !(g.deconvolution && p.group == l.blobShapes[0].dims[0]) { problems.append("group \(p.group)") }
            if !problems.isEmpty {
                throw FCNError.unsupported("caffemodel -> VGGFCN: layer '\(name)' has \(problems.joined(separator: ", ")); the reference VGG16 FCN layout is required")
            }
        }

        // Classes, width.
        let classes = layers[index["score_fr"]!].blobShapes[0].dims[0]
        guard classes >= 1 else { throw bad("score_fr has no output channels") }
        let c11 = layers[index["conv1_1"]!].blobShapes[0].dims
        guard c11[1] == 3 else { throw bad("conv1_1 takes \(c11[1]) input channels (VGGFCN takes 3: an RGB or HHA image)") }
        var observed: [(n: Int, c: Int, layer: String)] = []
        for (name, n) in zip(VGG16Config.convolutionNames, VGG16Config.stages.flatMap { $0 }) {
            observed.append((n, layers[index[name]!].blobShapes[0].dims[0], name))
        }
        observed.append((VGG16Config.hidden, layers[index["fc6"]!].blobShapes[0].dims[0], "fc6"))
        let candidates = observed.reversed().map { Double($0.c) / Double($0.n) }
        guard let width = candidates.first(where: { w in observed.allSatisfy { VGG16Config.channels($0.n, width: w) == $0.c } }) else {
            throw bad("the channel counts (\(observed.map { "\($0.layer) \($0.c)" }.joined(separator: ", "))) are not VGG16's at any width")
        }

        // Sources, checked against the expected shapes.
        var sources: [(name: String, shape: [Int], source: CaffeSource)] = []
        for (name, shape) in parameterShapes(variant: variant, classes: classes, width: width) {
            let parts = name.split(separator: ".")
            let layerName = String(parts[0]), isBias = parts[1] == "bias"
            let i = index[layerName]!, l = layers[i]
            let blob = isBias ? 1 : 0
            if isBias && l.blobShapes.count < 2 {
                guard l.convolution?.biasTerm == false else { throw bad("layer '\(layerName)' has no bias blob") }
                sources.append((name, shape, .zeros))
                continue
            }
            let stored = l.blobShapes[blob]
            if stored.fits(shape) {
                sources.append((name, shape, .blob(i, blob)))
            } else if caffeGeometry[layerName]!.deconvolution, l.convolution?.group == classes, stored.fits([classes, 1] + shape.suffix(2)) {
                sources.append((name, shape, .groupedDeconvolution(i, blob)))
            } else {
                throw bad("layer '\(layerName)' blob \(blob) has shape \(stored), the \(variant) with \(classes) classes at width \(width) needs \(shape)")
            }
        }
        for name in ["upscore", "upscore2", "upscore16", "upscore_pool4", "upscore8"] {
            guard let i = index[name], layers[i].blobShapes.count > 1 else { continue }
            guard layers[i].blobShapes.count == 2, try values(i, 1).scalars.allSatisfy({ $0 == 0 }) else {
                throw bad("deconvolution '\(name)' has a non-zero bias; VGGFCN's upsampling has none")
            }
        }
        if variant == .fcn8sAtOnce {
            for (name, factor, channels) in [("scale_pool4", Float(0.01), VGG16Config.channels(512, width: width)),
                                              ("scale_pool3", Float(0.0001), VGG16Config.channels(256, width: width))] {
                try checkScale(layers[index[name]!], index[name]!, factor: factor, channels: channels, values: values)
            }
        }
        return CaffePlan(variant: variant, classes: classes, width: width, sources: sources)
    }

    /// A pool scaling of the at-once net: a Scale layer whose blob (one value, or one per
    /// channel) holds `factor`, without a bias or with a zero one, or a Power layer
    /// computing `factor * x`.
    private static func checkScale(_ l: CaffeLayerInfo, _ i: Int, factor: Float, channels: Int,
                                   values: (Int, Int) throws -> Tensor) throws {
        let close = { (v: Float) in abs(v - factor) <= factor * 1e-6 }
        let what = "caffemodel -> VGGFCN: FCN-8s at-once scales its pool skip by \(factor) in layer '\(l.name)'"
        switch l.type {
        case "Power":
            let p = l.power ?? CaffePowerParameters()
            guard p.power == 1, p.shift == 0, close(p.scale), l.blobShapes.isEmpty else {
                throw FCNError.unsupported("\(what), but it computes (\(p.shift) + \(p.scale) x)^\(p.power)")
            }
        case "Scale":
            guard (1...2).contains(l.blobShapes.count), [1, channels].contains(l.blobShapes[0].count) else {
                throw FCNError.unsupported("\(what), but it holds blobs of shapes \(l.blobShapes)")
            }
            let scale = try values(i, 0).scalars
            guard scale.allSatisfy(close) else {
                throw FCNError.unsupported("\(what), but it holds \(scale.first { !close($0) }!) (a trained or different scale is not supported)")
            }
            if l.blobShapes.count == 2, try !values(i, 1).scalars.allSatisfy({ $0 == 0 }) {
                throw FCNError.unsupported("\(what), but it adds a non-zero bias")
            }
        default:
            throw FCNError.unsupported("\(what), but it is a \(l.type) layer (expected Scale or Power)")
        }
    }

    /// [C, 1, k, k] per-class kernels onto the diagonal of [C, C, k, k].
    static func expandGrouped(_ src: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>, classes: Int) {
        let kk = src.count / classes
        out.initialize(repeating: 0)
        for c in 0..<classes {
            for j in 0..<kk { out[(c * classes + c) * kk + j] = src[c * kk + j] }
        }
    }

    private static func checkFinite(_ values: UnsafeBufferPointer<Float>, name: String, layer: CaffeSource) throws {
        guard let i = values.firstIndex(where: { !$0.isFinite }) else { return }
        throw FCNError.invalidFormat("caffemodel -> VGGFCN: tensor '\(name)' holds \(values[i]) at index \(i)")
    }
}
