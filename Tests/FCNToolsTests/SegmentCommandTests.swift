// fcn-segment's library layer: argument errors, corrupt inputs, outputs of a real run on a
// tiny image with random weights, and the executable's exit status.
import Testing
import Foundation
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
@testable import FCNInference
@testable import FCNTools
import FCNTestSupport

@Suite struct SegmentCommandTests {
    func parseError(_ args: [String]) -> String? {
        do { _ = try SegmentCommand.parse(args); return nil } catch { return "\(error)" }
    }

    @Test func argumentErrorsHaveClearMessages() {
        let cases: [([String], String)] = [
            (["--bogus", "a.png"], "unknown option '--bogus'"),
            (["a.png"], "--weights FILE is required"),
            (["--weights", "w.safetensors"], "no input images"),
            (["--weights"], "--weights needs a value"),
            (["--model", "vgg19", "--weights", "w", "a.png"], "--model expects one of fcn32s|fcn16s|fcn8s|fcn8s-atonce|fcn4s|resnet18-fcn8s|resnet34-fcn8s|fcn_resnet50|fcn_resnet101, got 'vgg19'"),
            (["--classes", "0", "--weights", "w", "a.png"], "--classes must be >= 1, got 0"),
            (["--classes", "300", "--weights", "w", "a.png"], "at most 256"),
            (["--classes", "x", "--weights", "w", "a.png"], "--classes expects an integer, got 'x'"),
            (["--width", "-1", "--weights", "w", "a.png"], "--width must be > 0, got -1"),
            (["--model", "fcn_resnet50", "--width", "0.5", "--weights", "w", "a.png"], "--width applies to the VGG models only"),
            (["--tile", "-3", "--weights", "w", "a.png"], "--tile must be >= 0, got -3"),
            (["--tta", "rotate", "--weights", "w", "a.png"], "--tta expects one of flip, got 'rotate'"),
            (["--scales", "1,,2", "--weights", "w", "a.png"], "--scales expects a number, got ''"),
            (["--alpha", "2", "--weights", "w", "a.png"], "--alpha must lie in [0, 1], got 2.0"),
            (["--class-names", "a,,b", "--weights", "w", "a.png"], "empty name"),
            (["--weights", "w", "--random-weights", "1", "a.png"], "not both"),
            (["--random-weights", "-1", "a.png"], "--random-weights expects a non-negative integer, got '-1'"),
            (["--quiet=yes", "--weights", "w", "a.png"], "--quiet takes no value"),
            (["--precision", "f16", "--weights", "w", "a.png"], "--precision expects f32 or bf16, got 'f16'"),
        ]
        for (args, message) in cases {
            let got = parseError(args)
            #expect(got?.contains(message) == true, "\(args): got \(got ?? "no error"), expected '\(message)'")
        }
    }

    @Test func parsesAllOptions() throws {
        let o = try SegmentCommand.parse(["--weights", "w.st", "--model", "fcn8s-atonce", "--classes", "5", "--width", "0.25",
                                          "--class-names", "a, b,c", "--out", "o", "--save-scores", "s.st", "--tile", "0",
                                          "--tta", "flip", "--scales", "0.75,1,1.25", "--alpha", "0.3", "--threads", "2", "--weight-cache", "0", "x.png", "dir"])
        #expect(o.model == .fcn8sAtOnce && o.classes == 5 && o.width == 0.25 && o.classNames == ["a", "b", "c"])
        #expect(o.outputDirectory == "o" && o.saveScores == "s.st" && o.tileSize == nil && o.flip && o.scales == [0.75, 1, 1.25])
        #expect(o.alpha == 0.3 && o.threads == 2 && o.weightCacheMegabytes == 0 && o.inputs == ["x.png", "dir"])
        #expect(try SegmentCommand.parse(["--weights", "w", "--precision", "bf16", "x.png"]).precision == .bfloat16)
        #expect(try SegmentCommand.parse(["--weights", "w", "x.png"]).precision == .float32)
        #expect(try SegmentCommand.parse(["--help"]).showHelp)
        #expect(SegmentCommand.usage.contains("--save-scores"))
        // --flag=value reads as --flag value (the reader fcn-train shares).
        let eq = try SegmentCommand.parse(["--weights=w.st", "--tile=256", "--padding=same", "--scales=1,2", "x.png"])
        #expect(eq.weights == "w.st" && eq.tileSize == 256 && eq.padding == .same && eq.scales == [1, 2] && eq.inputs == ["x.png"])
    }

    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "fcn-segment-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func runWritesLabelsOverlayLegendAndScores() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let img = Image(tensor: testImage(height: 20, width: 28, seed: 8).clamped(min: 0, max: 255))
        try PNG.write(img, to: dir + "/pic.png")
        var o = try SegmentCommand.parse(["--model", "fcn32s", "--classes", "3", "--width", "0.03125", "--random-weights", "4",
                                          "--export-weights", dir + "/w.safetensors"])
        try SegmentCommand.run(o, log: { _ in })
        o = try SegmentCommand.parse(["--weights", dir + "/w.safetensors", "--model", "fcn32s", "--out", dir + "/out",
                                      "--save-scores", dir + "/scores.safetensors", "--class-names", "x,y,z", dir + "/pic.png"])
        var lines: [String] = []
        let outputs = try SegmentCommand.run(o, log: { lines.append($0) })
        let out = try #require(outputs.first)
        let labels = try PNG.readIndexed(path: out.labels)
        #expect(labels.width == 28 && labels.height == 20)
        #expect(labels.palette.prefix(3) == vocPalette(count: 3)[...])
        let scores = try loadSafeTensors(path: dir + "/scores.safetensors")["scores"]!
        #expect(scores.shape == [1, 3, 20, 28], "classes and width inferred from the weights")
        #expect(labels.indices == argmaxLabels(scores))
        let overlay = try PNG.read(path: out.overlay)
        #expect(overlay.pixels == overlayImage(img, labels: labels.indices).pixels)
        let legend = try String(contentsOfFile: out.legend, encoding: .utf8)
        #expect(legend == formatLegend(out.entries) && out.entries.map(\.pixels).reduce(0, +) == 560)
        #expect(lines.contains { $0.contains("pic_labels.png") })
    }

    @Test func sideBySidePanelPlainProgressAndOutputFolderFirst() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let img = Image(tensor: testImage(height: 12, width: 10, seed: 3).clamped(min: 0, max: 255))
        try PNG.write(img, to: dir + "/a.png")
        let base = ["--model", "fcn32s", "--classes", "2", "--width", "0.03125", "--random-weights", "2"]
        var status: [String] = []
        let outputs = try SegmentCommand.run(SegmentCommand.parse(base + ["--side-by-side", "--out", dir + "/o", dir + "/a.png"]),
                                             log: { _ in }, status: { status.append($0) }, terminal: false)
        // Not a terminal: one plain line per image, no carriage return or escape codes.
        #expect(status == ["fcn-segment: 1/1 a.png\n"])
        // The panel: photo | labels | overlay, 4 white pixels apart.
        let panel = try PNG.read(path: dir + "/o/a_panel.png")
        #expect(panel.width == 3 * 10 + 2 * 4 && panel.height == 12 && panel.channels == 3)
        let labels = try PNG.readIndexed(path: outputs[0].labels), overlay = try PNG.read(path: outputs[0].overlay)
        #expect(sideBySidePanel([img, labels.rgb(), overlay]).pixels == panel.pixels)
        #expect(Array(panel.pixels[0 ..< 30]) == Array(img.pixels[0 ..< 30]) && panel.pixels[30] == 255)
        // An output folder that cannot be created is reported before any model is built.
        try Data().write(to: URL(fileURLWithPath: dir + "/file"))
        #expect(throws: CommandLineError.self) {
            try SegmentCommand.run(SegmentCommand.parse(["--weights", dir + "/missing.safetensors", "--out", dir + "/file/sub", dir + "/a.png"]),
                                   log: { _ in })
        }
    }

    @Test func corruptAndMissingInputsAreReported() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = PNG.encode(Image(width: 4, height: 4, channels: 3))
        try Data(good.prefix(40)).write(to: URL(fileURLWithPath: dir + "/broken.png"))
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: dir + "/text.jpg"))
        let base = ["--model", "fcn32s", "--classes", "2", "--width", "0.015625", "--random-weights", "1", "--out", dir + "/o"]
        do {
            try SegmentCommand.run(try SegmentCommand.parse(base + [dir]), log: { _ in })
            Issue.record("expected an error")
        } catch let e as CommandLineError {
            #expect(e.message.contains("2 of 2 inputs failed"))
            #expect(e.message.contains("broken.png: invalid format: PNG"))
            #expect(e.message.contains("text.jpg: invalid format"))
        }
        #expect(throws: CommandLineError("no such file or folder: '\(dir)/missing.png'")) {
            try SegmentCommand.run(try SegmentCommand.parse(base + [dir + "/missing.png"]), log: { _ in })
        }
        // Weights that do not fit the model: a clear mismatch, not a trap.
        try saveSafeTensors(["conv1_1.weight": Tensor.zeros([2, 3, 3, 3])], to: dir + "/bad.safetensors")
        do {
            try SegmentCommand.run(try SegmentCommand.parse(["--weights", dir + "/bad.safetensors", "--model", "fcn32s", dir + "/broken.png"]), log: { _ in })
            Issue.record("expected an error")
        } catch let e as FCNError {
            #expect("\(e)".contains("do not fit fcn32s") && "\(e)".contains("missing"))
        }
        // The model comes from the file: classes from the score layer, the architecture from
        // the layer names (--model is not needed), the padding from older metadata.
        func describe(_ args: [String]) throws -> ModelDescription {
            let o = try SegmentCommand.parse(args + ["x.png"])
            return try ModelFile.describe(o.weights!, overrides: SegmentCommand.overrides(o)).description
        }
        try saveSafeTensors(["classifier.4.weight": Tensor.zeros([7, 4, 1, 1])], to: dir + "/head.safetensors")
        try saveSafeTensors(["scores1.weight": Tensor.zeros([5, 4, 1, 1]), "stage2.5.conv1.weight": Tensor.zeros([1])],
                            to: dir + "/fcn8s.safetensors")
        let c50 = try describe(["--weights", dir + "/head.safetensors"])
        let c34 = try describe(["--weights", dir + "/fcn8s.safetensors"])
        #expect(c50.classes == 7 && c50.architecture == .fcnResNet50 && c34.classes == 5 && c34.architecture == .resnet34FCN8s)
        try saveSafeTensors(["score_fr.weight": Tensor.zeros([3, 8, 1, 1]), "conv1_1.weight": Tensor.zeros([4, 3, 3, 3])],
                            metadata: ["padding": "same"], to: dir + "/same.safetensors")
        let same = try describe(["--weights", dir + "/same.safetensors"])
        #expect(same.padding == .same && same.classes == 3 && same.width == 1.0 / 16 && same.architecture == .fcn32s)
        // The file states the padding: a contradicting flag is an error naming both, unless forced.
        do {
            _ = try describe(["--weights", dir + "/same.safetensors", "--padding", "caffe"])
            Issue.record("expected a contradiction")
        } catch let e as FCNError {
            #expect("\(e)".contains("--padding caffe") && "\(e)".contains("padding same") && "\(e)".contains("--force"))
        }
        #expect(try describe(["--weights", dir + "/same.safetensors", "--padding", "caffe", "--force"]).padding == .caffe)
        #expect(throws: CommandLineError.self) { try SegmentCommand.parse(["--model", "fcn_resnet50", "--padding", "same", "x.png"]) }
        #expect(throws: CommandLineError.self) { try SegmentCommand.parse(["--padding", "valid", "x.png"]) }
        try saveSafeTensors(["score_fr.weight": Tensor.zeros([3, 8, 1, 1])], metadata: ["padding": "reflect"], to: dir + "/odd.safetensors")
        #expect(throws: FCNError.self) { try describe(["--weights", dir + "/odd.safetensors"]) }
    }

    @Test func executableExitsWithStatus2() throws {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fcn-segment")
        guard FileManager.default.isExecutableFile(atPath: exe.path) else { return }   // built with the tests by `swift build --build-tests`
        for args in [["--bogus"], ["--weights", "/nonexistent.safetensors", "x.png"]] {
            let p = Process()
            p.executableURL = exe
            p.arguments = args
            let err = Pipe()
            p.standardError = err
            p.standardOutput = Pipe()
            try p.run()
            p.waitUntilExit()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(p.terminationStatus == 2 && text.hasPrefix("fcn-segment: error: "), "\(args): \(p.terminationStatus) \(text)")
        }
    }
}
