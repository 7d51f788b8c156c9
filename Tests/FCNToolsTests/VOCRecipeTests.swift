// A dataset of your own classes in the VOC layout, end to end: Tests/Recipes/make_voc_shapes.py
// writes a folder (JPEG images, palette labels with a void band, class_names.txt), fcn-train
// trains on it with `--data voc --class-names FILE`, and the checkpoint describes the five
// classes by name; class names that miss a class are an error naming the label file.
// Needs a Python with Pillow and numpy: FCN_RECIPE_PYTHON (CI sets it to its venv), else
// python3 from PATH.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

/// A Python that imports Pillow and numpy, or nil.
private let recipePython: String? = {
    let env = ProcessInfo.processInfo.environment
    guard let python = env["FCN_RECIPE_PYTHON"].flatMap({ $0.isEmpty ? nil : $0 }) ?? findOnPath("python3"),
          let r = try? runProcess(python, ["-c", "import PIL, numpy"], timeout: 60), r.status == 0 else { return nil }
    return python
}()

@Suite(.serialized, .enabled(if: recipePython != nil, "no Python with Pillow and numpy: set FCN_RECIPE_PYTHON to one (pip install pillow numpy)"))
struct VOCRecipeTests {
    let trainer = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fcn-train").path
    let script = URL(fileURLWithPath: fixturesDirectory).deletingLastPathComponent().appendingPathComponent("Recipes/make_voc_shapes.py").path

    @Test func ownClassesTrainThroughTheVOCPath() throws {
        guard FileManager.default.isExecutableFile(atPath: trainer) else { Issue.record("\(trainer) missing"); return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-voc-recipe-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = try runProcess(recipePython!, [script, dir + "/data", "--train", "12", "--val", "4", "--seed", "3"], timeout: 120)
        #expect(made.status == 0, "\(made.output)")
        let names = ["background", "ellipse", "star", "cross", "ring"]
        #expect(try String(contentsOfFile: dir + "/data/class_names.txt", encoding: .utf8) == names.joined(separator: "\n") + "\n")
        // Labels are palette indices 0..<5 and the void band's 255.
        let label = try readLabelTensor(path: dir + "/data/SegmentationClass/train_000000.png")
        #expect(Set(label.scalars).isSubset(of: [0, 1, 2, 3, 4, 255]) && label.scalars.contains(255))

        let common = ["--data", "voc", "--root", dir + "/data", "--val-count", "0", "--model", "fcn8s", "--width", "0.03125",
                      "--padding", "same", "--image-size", "32", "--batch", "2", "--steps", "3", "--no-dropout", "--threads", "1",
                      "--seed", "2", "--quiet"]
        let run = try runProcess(trainer, common + ["--class-names", dir + "/data/class_names.txt", "--out", dir + "/run"], timeout: 300)
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("IU per class: background"), "\(run.output)")
        let model = try ModelFile.open(dir + "/run/checkpoint.safetensors")
        #expect(model.modelDescription.classes == 5 && model.modelDescription.classNames == names)

        // Names that miss a class: an error naming the label file, not a crash.
        let short = try runProcess(trainer, common + ["--class-names", "background,ellipse,star", "--out", dir + "/short"], timeout: 300)
        #expect(short.status == 1 && short.output.contains("holds class id") && short.output.contains("SegmentationClass/"),
                "\(short.status): \(short.output)")
    }
}
