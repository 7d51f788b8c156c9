// The model description and the one way to open a model file: the JSON round trip and its
// strictness, recognition of plain state dicts from their names and shapes, overrides
// that contradict a file, and write -> open giving the same network.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

@Suite struct ModelDescriptionTests {
    static let examples: [ModelDescription] = [
        ModelDescription(architecture: .fcn8s),
        ModelDescription(architecture: .fcn32s, classes: 5, width: 0.1875, padding: .same, learnedUpsampling: true,
                         classNames: ["background", "disc", "rectangle", "triangle", "bar"], input: .torchvision),
        ModelDescription(architecture: .fcn8sAtOnce, classes: 2, palette: [PaletteColor(1, 2, 3), PaletteColor(250, 0, 9)],
                         ignoreLabel: 0),
        ModelDescription(architecture: .resnet34FCN8s, classes: 3,
                         input: InputPreprocessing(channelOrder: .bgr, valueScale: 255, mean: [0.5, 0.25, 0.125], std: [0.3, 0.2, 0.1])),
        ModelDescription(architecture: .resnet18FCN8s, classes: 256),
        ModelDescription(architecture: .fcnResNet50, auxiliaryHead: true),
        ModelDescription(architecture: .fcnResNet101, classes: 1, classNames: ["thing \"quoted\", with / and é"]),
    ]

    @Test func jsonRoundTrips() throws {
        for d in Self.examples {
            let json = d.json()
            #expect(try ModelDescription(json: json) == d, "\(json)")
            let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            #expect(object?["output_stride"] as? Int == d.outputStride && object?["version"] as? Int == 1)
        }
        // Defaults: the published input convention of the architecture.
        #expect(ModelDescription(architecture: .fcn16s).input == .caffe)
        #expect(ModelDescription(architecture: .fcnResNet50).input == .torchvision)
    }

    /// The example of the weights article, as another tool would write it.
    @Test func readsTheDocumentedExample() throws {
        let json = """
        {"format": "swift-fcn.model", "version": 1, "architecture": "fcn8s", "classes": 3,
         "class_names": ["background", "cat", "dog"],
         "input": {"channel_order": "bgr", "value_scale": 1, "mean": [104.00698793, 116.66876762, 122.67891434], "std": [1, 1, 1]},
         "ignore_label": 255, "output_stride": 8, "future_key": {"ignored": true},
         "vgg": {"width": 1, "padding": "caffe", "learned_upsampling": false}}
        """
        let d = try ModelDescription(json: json)
        #expect(d == ModelDescription(architecture: .fcn8s, classes: 3, classNames: ["background", "cat", "dog"]))
        #expect(d.className(2) == "dog" && d.className(7) == "7")
    }

    @Test func readingIsStrict() throws {
        let good = ModelDescription(architecture: .fcn16s, classes: 4).json()
        func expectError(_ json: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try ModelDescription(json: json)
                Issue.record("accepted \(json)", sourceLocation: sourceLocation)
            } catch {
                #expect("\(error)".contains(fragment), "\(error)", sourceLocation: sourceLocation)
            }
        }
        expectError("[1, 2]", "not a JSON object")
        expectError("{", "not a JSON object")
        expectError(good.replacingOccurrences(of: "swift-fcn.model", with: "other"), "'format'")
        expectError(good.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2"), "newer than this library")
        expectError(good.replacingOccurrences(of: "\"fcn16s\"", with: "\"fcn2s\""), "'architecture' must be one of")
        expectError(good.replacingOccurrences(of: "\"classes\": 4", with: "\"classes\": 300"), "classes must be 1...256")
        expectError(good.replacingOccurrences(of: "\"classes\": 4", with: "\"classes\": 4, \"class_names\": [\"a\"]"), "1 class names for 4 classes")
        expectError(good.replacingOccurrences(of: "\"output_stride\": 16", with: "\"output_stride\": 8"), "'output_stride' is 8 but fcn16s has 16")
        expectError(good.replacingOccurrences(of: "\"channel_order\": \"bgr\"", with: "\"channel_order\": \"gbr\""), "channel_order")
        expectError(good.replacingOccurrences(of: "\"padding\": \"caffe\"", with: "\"padding\": 3"), "'vgg.padding'")
        expectError(good.replacingOccurrences(of: "\"std\": [1, 1, 1]", with: "\"std\": [1, 0, 1]"), "'input.std' must be positive")
        expectError(good.replacingOccurrences(of: ", \"vgg\": {\"width\": 1.0, \"padding\": \"caffe\", \"learned_upsampling\": false}", with: ""), "'vgg' must be an object")
    }

    @Test func onlyMetadataOfABuiltModelChanges() throws {
        let model = VGGFCN(variant: .fcn32s, classes: 3, width: 1.0 / 32, seed: 1)
        let renamed = model.modelDescription.withMetadata(classNames: ["a", "b", "c"], palette: nil, input: .torchvision)
        try model.setModelDescription(renamed)
        #expect(model.modelDescription.classNames == ["a", "b", "c"] && model.preferredPreprocessing == .torchvision)
        var other = renamed
        other.classes = 4
        #expect(throws: FCNError.self) { try model.setModelDescription(other) }
        other = renamed
        other.architecture = .fcn16s
        #expect(throws: FCNError.self) { try model.setModelDescription(other) }
    }
}

@Suite struct ModelFileTests {
    func tinyVGG(_ variant: VGGFCNVariant, classes: Int = 3, padding: VGGFCNPadding = .caffe) -> VGGFCN {
        let m = VGGFCN(variant: variant, classes: classes, width: 1.0 / 32, seed: 5, zeroScoreLayers: false, padding: padding)
        m.eval()
        return m
    }

    @Test func writeThenOpenGivesTheSameNetworkAndDescription() throws {
        let path = tempPath("m.safetensors")
        defer { removeTempDir(path) }
        let model = tinyVGG(.fcn16s, classes: 4, padding: .same)
        try model.setModelDescription(model.modelDescription.withMetadata(classNames: ["bg", "a", "b", "c"], palette: nil,
                                                                          input: .torchvision))
        try ModelFile.write(model, to: path)
        let opened = try ModelFile.open(path)
        #expect(opened.modelDescription == model.modelDescription)
        #expect(opened is VGGFCN && !opened.isTraining)
        let rgb = Tensor.uniform([1, 3, 37, 29], low: 0, high: 255, seed: 3)
        #expect(bitIdentical(withoutGrad { opened.scores(forRGB: rgb) }, withoutGrad { model.scores(forRGB: rgb) }))
        #expect(try ModelFile.describe(path).isDescribed)
    }

    @Test func plainStateDictsAreRecognisedFromTheirNames() throws {
        let dir = tempPath("x")
        defer { removeTempDir(dir) }
        func save(_ m: any Module, _ name: String) throws -> String {
            let p = dir + "-" + name
            try m.save(to: p)
            return p
        }
        for variant in [VGGFCNVariant.fcn32s, .fcn16s, .fcn4s] {
            let c = try ModelFile.describe(try save(tinyVGG(variant), "\(variant)"))
            #expect(!c.isDescribed && c.description.architecture == ModelArchitecture(variant))
            #expect(c.description.classes == 3 && c.description.width == 128.0 / 4096 && c.description.input == .caffe)
        }
        // FCN-8s and FCN-8s-at-once hold the same tensors: the caller must say which.
        let p8 = try save(tinyVGG(.fcn8s), "fcn8s")
        do {
            _ = try ModelFile.describe(p8)
            Issue.record("an ambiguous file was accepted")
        } catch {
            #expect("\(error)".contains("--model fcn8s or --model fcn8s-atonce"), "\(error)")
        }
        #expect(try ModelFile.describe(p8, overrides: ModelOverrides(architecture: .fcn8sAtOnce)).description.architecture == .fcn8sAtOnce)
        // The opened network equals the saved one.
        let opened = try ModelFile.open(p8, overrides: ModelOverrides(architecture: .fcn8s))
        let x = Tensor.uniform([1, 3, 40, 40], low: 0, high: 255, seed: 2)
        #expect(bitIdentical(withoutGrad { opened.scores(forRGB: x) }, withoutGrad { tinyVGG(.fcn8s).scores(forRGB: x) }))
        // ResNet families from their layer names (torchvision's for fcn_resnet50/101).
        let fake: [(tensors: [String], architecture: ModelArchitecture, aux: Bool)] = [
            (["scores1.weight"], .resnet18FCN8s, false),
            (["scores1.weight", "stage2.5.conv1.weight"], .resnet34FCN8s, false),
            (["classifier.4.weight"], .fcnResNet50, false),
            (["classifier.4.weight", "aux_classifier.0.weight"], .fcnResNet50, true),
            (["classifier.4.weight", "backbone.layer3.22.conv1.weight"], .fcnResNet101, false),
        ]
        for (i, f) in fake.enumerated() {
            let p = dir + "-fake\(i)"
            try saveSafeTensors(Dictionary(uniqueKeysWithValues: f.tensors.map { ($0, Tensor.zeros([6, 2, 1, 1])) }), to: p)
            let d = try ModelFile.describe(p).description
            #expect(d.architecture == f.architecture && d.auxiliaryHead == f.aux && d.classes == 6 && d.input == .torchvision, "\(f)")
        }
        try saveSafeTensors(["conv1.weight": Tensor.zeros([2])], to: dir + "-none")
        #expect(throws: FCNError.self) { try ModelFile.describe(dir + "-none") }
    }

    @Test func overridesThatContradictTheFileAreErrorsUnlessForced() throws {
        let path = tempPath("m.safetensors")
        defer { removeTempDir(path) }
        let model = tinyVGG(.fcn32s)
        try model.setModelDescription(model.modelDescription.withMetadata(classNames: nil, palette: nil, input: .torchvision))
        try ModelFile.write(model, to: path)
        func message(_ o: ModelOverrides) -> String {
            do { _ = try ModelFile.open(path, overrides: o); return "" } catch { return "\(error)" }
        }
        let m = message(ModelOverrides(architecture: .fcn16s))
        #expect(m.contains("--model fcn16s") && m.contains("architecture fcn32s") && m.contains("--force"), "\(m)")
        let i = message(ModelOverrides(input: .caffe))
        #expect(i.contains("--input caffe") && i.contains("trained on torchvision inputs"), "\(i)")
        #expect(message(ModelOverrides(classes: 7)).contains("--classes 7"))
        // Agreeing overrides and metadata-only overrides are fine.
        let named = try ModelFile.open(path, overrides: ModelOverrides(architecture: .fcn32s, input: .torchvision, classNames: ["x", "y", "z"]))
        #expect(named.modelDescription.classNames == ["x", "y", "z"])
        // Forced: the caller's input convention is used.
        let forced = try ModelFile.open(path, overrides: ModelOverrides(input: .caffe, force: true))
        #expect(forced.preferredPreprocessing == .caffe)
        // Forcing another architecture still needs weights that fit it.
        #expect(message(ModelOverrides(architecture: .fcn16s, force: true)).contains("do not fit fcn16s"))
    }
}
