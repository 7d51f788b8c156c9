// The JSON form of `ModelDescription` (layout in ModelDescription.swift). Written by hand
// with JSONSerialization so that the key names, their order and the strictness of
// reading are stated here, not derived from Swift property names.
import Foundation
import FCNCore
import FCNIO

extension ModelDescription {
    /// The description as one line of JSON (see the file comment of ModelDescription.swift).
    public func json() -> String {
        var parts: [String] = [
            "\"format\": \"\(Self.format)\"", "\"version\": \(Self.version)",
            "\"architecture\": \"\(architecture.rawValue)\"", "\"classes\": \(classes)",
        ]
        if let classNames { parts.append("\"class_names\": " + jsonStrings(classNames)) }
        if let palette { parts.append("\"palette\": [" + palette.map { "[\($0.r), \($0.g), \($0.b)]" }.joined(separator: ", ") + "]") }
        parts.append("\"input\": {\"channel_order\": \"\(input.channelOrder.rawValue)\", \"value_scale\": \(number(input.valueScale)), "
                     + "\"mean\": [\(input.mean.map(number).joined(separator: ", "))], "
                     + "\"std\": [\(input.std.map(number).joined(separator: ", "))]}")
        parts.append("\"ignore_label\": \(ignoreLabel)")
        parts.append("\"output_stride\": \(outputStride)")
        if architecture.isVGG {
            parts.append("\"vgg\": {\"width\": \(width), \"padding\": \"\(padding.rawValue)\", \"learned_upsampling\": \(learnedUpsampling)}")
        }
        if architecture.isTorchvisionFCN { parts.append("\"resnet\": {\"auxiliary_head\": \(auxiliaryHead)}") }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    /// Parses and validates the JSON form. Throws `FCNError.invalidFormat` for text that is
    /// not such JSON (naming the key) and `.unsupported` for a newer version.
    public init(json: String) throws {
        func bad(_ m: String) -> FCNError { .invalidFormat("model description (\(Self.metadataKey)): " + m) }
        guard let data = json.data(using: .utf8), json.utf8.count <= 1 << 20,
              let object = try? JSONSerialization.jsonObject(with: data), let o = object as? [String: Any] else {
            throw bad("not a JSON object")
        }
        guard o["format"] as? String == Self.format else { throw bad("'format' must be \"\(Self.format)\"") }
        guard let version = (o["version"] as? NSNumber)?.intValue, version >= 1 else { throw bad("'version' must be a positive integer") }
        guard version <= Self.version else {
            throw FCNError.unsupported("model description version \(version) is newer than this library's (\(Self.version)); update swift-fcn")
        }
        guard let a = o["architecture"] as? String, let architecture = ModelArchitecture(rawValue: a) else {
            throw bad("'architecture' must be one of \(ModelArchitecture.names), got \(o["architecture"].map { "\($0)" } ?? "nothing")")
        }
        func int(_ v: Any?, _ key: String) throws -> Int {
            guard let n = v as? NSNumber, !isBool(n), let i = Int(exactly: n.doubleValue) else { throw bad("'\(key)' must be an integer") }
            return i
        }
        func floats(_ v: Any?, _ key: String) throws -> [Float] {
            guard let a = v as? [NSNumber], a.count == 3, a.allSatisfy({ !isBool($0) && $0.doubleValue.isFinite }) else {
                throw bad("'\(key)' must be 3 numbers")
            }
            return a.map { Float($0.doubleValue) }
        }
        let classes = try int(o["classes"], "classes")
        var d = ModelDescription(architecture: architecture, classes: classes)
        if let names = o["class_names"] {
            guard let n = names as? [String] else { throw bad("'class_names' must be a list of strings") }
            d.classNames = n
        }
        if let palette = o["palette"] {
            guard let p = palette as? [[NSNumber]], p.allSatisfy({ $0.count == 3 && $0.allSatisfy { (0...255).contains($0.intValue) } }) else {
                throw bad("'palette' must be a list of [r, g, b] triples 0...255")
            }
            d.palette = p.map { PaletteColor(UInt8($0[0].intValue), UInt8($0[1].intValue), UInt8($0[2].intValue)) }
        }
        guard let input = o["input"] as? [String: Any] else { throw bad("'input' must be an object") }
        guard let order = (input["channel_order"] as? String).flatMap(InputPreprocessing.ChannelOrder.init(rawValue:)) else {
            throw bad("'input.channel_order' must be \"rgb\" or \"bgr\"")
        }
        guard let scale = input["value_scale"] as? NSNumber, !isBool(scale), scale.doubleValue > 0, scale.doubleValue.isFinite else {
            throw bad("'input.value_scale' must be a positive number")
        }
        let mean = try floats(input["mean"], "input.mean"), std = try floats(input["std"], "input.std")
        guard std.allSatisfy({ $0 > 0 }) else { throw bad("'input.std' must be positive") }
        d.input = InputPreprocessing(channelOrder: order, valueScale: Float(scale.doubleValue), mean: mean, std: std)
        if let v = o["ignore_label"] { d.ignoreLabel = try int(v, "ignore_label") }
        if architecture.isVGG {
            guard let vgg = o["vgg"] as? [String: Any] else { throw bad("'vgg' must be an object for \(architecture)") }
            guard let w = vgg["width"] as? NSNumber, !isBool(w) else { throw bad("'vgg.width' must be a number") }
            guard let p = (vgg["padding"] as? String).flatMap(VGGFCNPadding.init(rawValue:)) else {
                throw bad("'vgg.padding' must be \"caffe\" or \"same\"")
            }
            d.width = w.doubleValue; d.padding = p
            if let l = vgg["learned_upsampling"] {
                guard let b = l as? NSNumber, isBool(b) else { throw bad("'vgg.learned_upsampling' must be true or false") }
                d.learnedUpsampling = b.boolValue
            }
        }
        if architecture.isTorchvisionFCN, let r = o["resnet"] {
            guard let resnet = r as? [String: Any], let b = resnet["auxiliary_head"] as? NSNumber, isBool(b) else {
                throw bad("'resnet.auxiliary_head' must be true or false")
            }
            d.auxiliaryHead = b.boolValue
        }
        if let s = o["output_stride"] {
            let stride = try int(s, "output_stride")
            guard stride == d.outputStride else { throw bad("'output_stride' is \(stride) but \(architecture) has \(d.outputStride)") }
        }
        do { try d.validate() } catch let FCNError.mismatch(m) { throw bad(m) }
        self = d
    }
}

/// JSON booleans arrive as NSNumber too; they are the ones of type "c" (char).
private func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

/// Shortest text that reads back to the same Float.
private func number(_ v: Float) -> String {
    if v == v.rounded() && abs(v) < 1e7 { return String(Int(v)) }
    return "\(v)"
}

private func jsonStrings(_ s: [String]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: s)) ?? Data("[]".utf8)
    return String(decoding: data, as: UTF8.self)
}
