// Recognising a model from what a file holds when it carries no description, and applying
// a caller's overrides (see ModelFile.swift for the rules).
import Foundation
import FCNCore
import FCNIO

/// Which fields of a description the file itself determined.
struct StatedFields: OptionSet {
    let rawValue: Int
    static let architecture = StatedFields(rawValue: 1), classes = StatedFields(rawValue: 2)
    static let width = StatedFields(rawValue: 4), padding = StatedFields(rawValue: 8)
    static let input = StatedFields(rawValue: 16)
    /// What parameter shapes tell: architecture, classes, width.
    static let shapes: StatedFields = [.architecture, .classes, .width]
    static let all: StatedFields = [.architecture, .classes, .width, .padding, .input]
}

extension ModelFile {
    /// The description of a plain state dict from its names and shapes (overrides settle
    /// what they cannot: FCN-8s or 8s-at-once, padding, input convention).
    static func inferFromTensors(_ shapes: [String: [Int]], name: String, overrides: ModelOverrides) throws -> ModelDescription {
        func first(_ key: String) -> Int? { shapes[key]?.first }
        let candidates: [ModelArchitecture]
        var classes: Int?, width = 1.0, auxiliary = false
        if let c = first("score_fr.weight") {
            classes = c
            // fc6's 4096 channels give the finest reading of the width (conv1_1's 64 round
            // away small widths: 1/128 of 64 is 1 channel, as is 1/64).
            if let f = first("fc6.weight") { width = Double(f) / 4096 } else if let w = first("conv1_1.weight") { width = Double(w) / 64 }
            if shapes["score_pool2.weight"] != nil { candidates = [.fcn4s] }
            else if shapes["score_pool3.weight"] != nil { candidates = [.fcn8s, .fcn8sAtOnce] }
            else if shapes["score_pool4.weight"] != nil { candidates = [.fcn16s] }
            else { candidates = [.fcn32s] }
        } else if let c = first("scores1.weight") {
            classes = c
            // BasicBlock stages: ResNet-34 has 6 blocks in layer3 (stage2 here), ResNet-18 two.
            candidates = shapes["stage2.5.conv1.weight"] != nil ? [.resnet34FCN8s] : [.resnet18FCN8s]
        } else if let c = first("classifier.4.weight") {
            classes = c
            auxiliary = shapes["aux_classifier.0.weight"] != nil
            // Bottleneck layer3: 6 blocks in ResNet-50, 23 in ResNet-101.
            candidates = shapes["backbone.layer3.22.conv1.weight"] != nil ? [.fcnResNet101] : [.fcnResNet50]
        } else if let given = overrides.architecture {
            // Nothing to recognise, but the caller names the model: build it, and let the
            // strict load say which tensors are missing.
            candidates = [given]
            classes = overrides.classes
        } else {
            throw FCNError.mismatch("'\(name)' holds no model this library builds: no score_fr.weight (VGG FCNs), scores1.weight (ResNet FCN-8s) or classifier.4.weight (fcn_resnet50/101); a state dict needs the model's parameter names")
        }
        var architecture = candidates[0]
        if candidates.count > 1 {
            guard let chosen = overrides.architecture else {
                throw FCNError.mismatch("'\(name)' fits \(candidates.map(\.rawValue).joined(separator: " and ")) alike and does not say which; pass --model \(candidates.map(\.rawValue).joined(separator: " or --model "))")
            }
            if candidates.contains(chosen) { architecture = chosen }
        }
        return ModelDescription(architecture: architecture, classes: classes ?? 21, width: architecture.isVGG ? width : 1,
                                auxiliaryHead: auxiliary)
    }

    /// The description a trainer checkpoint of the first format (no `fcn.model`) implies:
    /// `info.model`, `info.width`, `info.classes`, `info.padding`, `info.normalization`.
    static func legacyCheckpointDescription(_ file: SafeTensorsFile, name: String) throws -> ModelDescription {
        guard file.metadata["fcn.version"] == "1" else {
            throw FCNError.unsupported("checkpoint '\(name)' has version \(file.metadata["fcn.version"] ?? "missing"); this library reads version 1 and files with a model description")
        }
        func info(_ k: String) -> String? { file.metadata["info." + k] }
        guard let m = info("model"), let architecture = ModelArchitecture(rawValue: m),
              let classes = info("classes").flatMap(Int.init) else {
            throw FCNError.invalidFormat("checkpoint '\(name)' does not say its model (info.model, info.classes)")
        }
        let width = info("width").flatMap(Double.init) ?? 1
        let padding = info("padding").flatMap(VGGFCNPadding.init(rawValue:)) ?? .caffe
        let input = info("normalization").flatMap(InputPreprocessing.init(named:))
        let d = ModelDescription(architecture: architecture, classes: classes, width: width, padding: padding, input: input)
        try d.validate()
        return d
    }

    /// `description` with the overrides applied. A field in `stated` that an override
    /// contradicts is an error naming the flag and both values, unless `force`.
    static func apply(_ o: ModelOverrides, to description: ModelDescription, stated: StatedFields, file: String) throws -> ModelDescription {
        var d = description
        func conflict(_ flag: String, _ given: String, _ found: String) throws {
            guard !o.force else { return }
            throw FCNError.mismatch("\(flag) \(given) contradicts '\(file)', which holds a model with \(found); drop the flag, or add --force to use it anyway")
        }
        if let a = o.architecture, a != d.architecture {
            if stated.contains(.architecture) { try conflict("--model", a.rawValue, "architecture \(d.architecture)") }
            d.architecture = a
        }
        if let c = o.classes, c != d.classes {
            if stated.contains(.classes) { try conflict("--classes", String(c), "\(d.classes) classes") }
            d.classes = c
        }
        if let w = o.width, w != d.width {
            if stated.contains(.width) { try conflict("--width", String(w), "width \(d.width)") }
            d.width = w
        }
        if let p = o.padding, p != d.padding {
            if stated.contains(.padding) { try conflict("--padding", p.rawValue, "padding \(d.padding.rawValue)") }
            d.padding = p
        }
        if let i = o.input, i != d.input {
            if stated.contains(.input) {
                try conflict("--input", i.description, "weights trained on \(d.input) inputs")
            }
            d.input = i
        }
        if let n = o.classNames { d.classNames = n }
        if !d.architecture.isVGG { d.width = 1; d.padding = .caffe; d.learnedUpsampling = false }
        if !d.architecture.isTorchvisionFCN { d.auxiliaryHead = false }
        do { try d.validate() } catch let FCNError.mismatch(m) {
            throw FCNError.mismatch("'\(file)': \(m)")
        }
        return d
    }
}
