// fcn-demo, the README's first command, end to end on a short budget: it trains, measures
// the held-out images, reopens its checkpoint, segments the unseen scene, writes every
// picture it names, ends with the commands to go on, and refuses bad arguments with status 2.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

@Suite(.serialized) struct DemoTests {
    let demo = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fcn-demo").path

    @Test func runsEndToEnd() throws {
        guard FileManager.default.isExecutableFile(atPath: demo) else { Issue.record("\(demo) missing"); return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-demo-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runProcess(demo, ["--seconds", "3", "--out", dir, "--threads", "2"], timeout: 300)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("held-out (200 images): pixel accuracy") && r.output.contains("IU per class: background"), "\(r.output)")
        #expect(r.output.contains("from the reopened checkpoint: mean IU"), "\(r.output)")
        #expect(r.output.contains("fcn-segment --weights \(dir)/checkpoint.safetensors") && r.output.contains("--init-from \(dir)/checkpoint.safetensors"))
        for file in ["input.png", "labels.png", "overlay.png", "ground-truth.png", "legend.txt", "checkpoint.safetensors", "curves.csv", "curves.png"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/" + file), "\(file) missing")
        }
        let labels = try PNG.readIndexed(path: dir + "/labels.png")
        #expect(labels.width == 288 && labels.height == 288)
        let model = try ModelFile.open(dir + "/checkpoint.safetensors")
        #expect(model.modelDescription.classNames == ["background", "disc", "rectangle", "triangle", "bar"])
        #expect(model.modelDescription.architecture == .fcn4s)
    }

    @Test func badArgumentsEndWithStatusTwo() throws {
        guard FileManager.default.isExecutableFile(atPath: demo) else { Issue.record("\(demo) missing"); return }
        for args in [["--seconds", "0"], ["--bogus"], ["--threads"]] {
            let r = try runProcess(demo, args, timeout: 60)
            #expect(r.status == 2 && r.output.contains("fcn-demo: error:"), "\(args): \(r.status) \(r.output)")
        }
    }
}
