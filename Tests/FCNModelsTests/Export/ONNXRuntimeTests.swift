// The exported files run in onnxruntime and give the library's scores within 1e-4
// (relative to the output scale, as `relativeError`), each file at two input sizes.
//
// The tests write NAME.onnx and NAME.safetensors (input.K, expected.K) into a temporary
// folder and run Tests/ONNX/check_onnx.py on it with the Python named by FCN_ONNX_PYTHON,
// else `python3`, when it can import onnxruntime and numpy; otherwise they are skipped
// (CI's .ci/run provides such a Python). FCN_ONNX_KEEP=1 keeps the folders.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

/// A Python that imports onnxruntime and numpy, or nil.
private let onnxPython: String? = {
    let env = ProcessInfo.processInfo.environment
    let candidate = env["FCN_ONNX_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
    guard let r = try? runProcess(candidate, ["-c", "import onnxruntime, numpy"]), r.status == 0 else { return nil }
    return candidate
}()

private let onnxSkipMessage: Comment = "no Python with onnxruntime and numpy: set FCN_ONNX_PYTHON to one (pip install onnxruntime numpy)"

/// Runs `executable` (a path, or a name looked up in PATH through /usr/bin/env).
private func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    if executable.contains("/") {
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
    } else {
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [executable] + arguments
    }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Path of Tests/ONNX/check_onnx.py.
private let checkScript: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("ONNX/check_onnx.py").path

/// One exported case: how to write its file, and the inputs with their expected outputs.
private struct RuntimeCase {
    let name: String
    let write: (String) throws -> Void
    let pairs: [(input: Tensor, expected: Tensor)]

    /// `model` exported (with `fixedSize`), expected to give the library's scores for each input.
    static func model(_ name: String, _ model: any SegmentationModel, _ inputs: [Tensor],
                      fixedSize: (height: Int, width: Int)? = nil) -> RuntimeCase {
        RuntimeCase(name: name, write: { try ONNXExport.write(model, to: $0, fixedSize: fixedSize) },
                    pairs: inputs.map { ($0, ExportModels.scores(model, $0)) })
    }
}

/// Exports every case, runs the check script, and returns its per-comparison results;
/// records an issue for each comparison over `tolerance` and for a failing script.
/// `perturb` shifts every expected value by that fraction of the expected scale (to see
/// the check fail).
@discardableResult
private func checkInRuntime(_ tag: String, _ cases: [RuntimeCase], tolerance: Float = 1e-4, minimumScale: Float = 1,
                    perturb: Float = 0, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
    let folder = try makeExportFolder(tag)
    let keep = ProcessInfo.processInfo.environment["FCN_ONNX_KEEP"] == "1"
    defer { if !keep { try? FileManager.default.removeItem(atPath: folder) } }
    for c in cases {
        try c.write("\(folder)/\(c.name).onnx")
        var tensors: [String: Tensor] = [:]
        for (k, (x, expected)) in c.pairs.enumerated() {
            var y = expected
            let peak = y.scalars.map(abs).max() ?? 0
            #expect(peak >= minimumScale, "\(c.name) \(x.shape): scores peak at \(peak), too small for a relative check",
                    sourceLocation: sourceLocation)
            if perturb != 0 { y = y + Tensor(shape: y.shape, repeating: perturb * peak) }
            tensors["input.\(k)"] = x
            tensors["expected.\(k)"] = y
        }
        try saveSafeTensors(tensors, to: "\(folder)/\(c.name).safetensors")
    }
    let run = try runProcess(onnxPython!, [checkScript, folder, "--tolerance", String(tolerance)])
    print(run.output)
    let expectFailure = perturb != 0
    #expect(run.status == (expectFailure ? 1 : 0), "check_onnx.py exited with \(run.status):\n\(run.output)",
            sourceLocation: sourceLocation)
    let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/report.json")))
    let results = (report as? [String: Any])?["results"] as? [[String: Any]] ?? []
    #expect(results.count == cases.reduce(0) { $0 + $1.pairs.count }, sourceLocation: sourceLocation)
    if !expectFailure {
        for r in results {
            let rel = r["relative"] as? Double ?? .infinity
            #expect(rel <= Double(tolerance), "\(r["model"] ?? "?") \(r["input"] ?? "?"): relative error \(rel) \(r["problem"] ?? "")",
                    sourceLocation: sourceLocation)
        }
    }
    return results
}

@Suite(.serialized) struct ONNXRuntimeTests {
    /// Caffe-layout inputs: BGR 0...255 minus the mean, so about +-100.
    static func vggInput(_ h: Int, _ w: Int, seed: UInt64) -> Tensor { Tensor.randn([1, 3, h, w], std: 60, seed: seed) }

    @Test(.enabled(if: onnxPython != nil, onnxSkipMessage))
    func vggFCNsBothPaddingsSeveralSizesPerFile() throws {
        var cases: [RuntimeCase] = []
        for padding in VGGFCNPadding.allCases {
            // Caffe: the reference's crops at 19 / 5, 27 / 9, 31, down to a 1x1 input. Same:
            // the ceil-mode pools round 37 -> 19 -> 10 -> 5 -> 3 -> 2 up, so the upsampled maps
            // are cut at their ends. (`.same` also matches at 1x1, but its scores there are
            // too small for a relative check.)
            let sizes = padding == .caffe ? [(64, 48), (100, 76), (1, 1)] : [(100, 76), (37, 53)]
            for variant in VGGFCNVariant.allCases {
                cases.append(.model("vgg-\(variant.rawValue)-\(padding)", ExportModels.vgg(variant, padding),
                                    sizes.enumerated().map { Self.vggInput($1.0, $1.1, seed: UInt64(10 + $0)) }))
            }
        }
        try checkInRuntime("vgg", cases)
    }

    @Test(.enabled(if: onnxPython != nil, onnxSkipMessage))
    func resnet18FCN8sOddSizes() throws {
        let model = ExportModels.resnet18FCN8s()
        try checkInRuntime("resnet18", [
            .model("resnet18-fcn8s", model, [Tensor.randn([1, 3, 37, 53], seed: 4), Tensor.randn([2, 3, 64, 33], seed: 5)]),
        ])
    }

    @Test(.enabled(if: onnxPython != nil, onnxSkipMessage))
    func fcnResNet50OddSizes() throws {
        try checkInRuntime("fcn_resnet50", [
            .model("fcn_resnet50", sharedDilatedResNetFCN50, [Tensor.randn([1, 3, 37, 53], seed: 6), Tensor.randn([1, 3, 21, 70], seed: 7)]),
        ])
    }

    @Test(.enabled(if: onnxPython != nil, onnxSkipMessage))
    func fixedSizeExports() throws {
        try checkInRuntime("fixed", [
            .model("vgg-8s-atonce-caffe-fixed", ExportModels.vgg(.fcn8sAtOnce, .caffe), [Self.vggInput(45, 70, seed: 8)],
                   fixedSize: (45, 70)),
            .model("vgg-16s-same-fixed", ExportModels.vgg(.fcn16s, .same), [Self.vggInput(37, 53, seed: 9)], fixedSize: (37, 53)),
            .model("resnet18-fcn8s-fixed", ExportModels.resnet18FCN8s(), [Tensor.randn([1, 3, 37, 53], seed: 10)],
                   fixedSize: (37, 53)),
        ])
    }

    /// The check itself fails when the scores are off by 1e-3 of their scale.
    @Test(.enabled(if: onnxPython != nil, onnxSkipMessage))
    func theCheckDetectsAWrongReference() throws {
        let results = try checkInRuntime("negative", [
            .model("vgg-8s-caffe", ExportModels.vgg(.fcn8s, .caffe), [Self.vggInput(40, 40, seed: 11)]),
        ], perturb: 1e-3)
        #expect(results.allSatisfy { ($0["ok"] as? Bool) == false })
    }

    /// The exporter's Resize (linear, half_pixel) against PyTorch's
    /// `F.interpolate(x, size=..., mode="bilinear", align_corners=False)`, the fixture
    /// outputs of Fixtures/gen_pool.py (up- and downsampling, 1-pixel sides): 1e-5.
    @Test(.enabled(if: onnxPython != nil, onnxSkipMessage))
    func resizeEqualsPyTorchInterpolate() throws {
        var cases: [RuntimeCase] = []
        for c in loadFixture("interpolate_bilinear") where !c.bool("align_corners") && !c.ints("size").isEmpty {
            let x = c.tensor("x"), size = c.ints("size")
            cases.append(RuntimeCase(name: "resize-\(c.index)", write: { path in
                var g = ONNXGraphBuilder(inputName: ONNXExport.inputName, channels: x.shape[1], fixedSize: nil)
                let target = ONNXValue(name: "target", channels: x.shape[1], size: (size[0], size[1]))
                let y = g.rename(g.resizeBilinear(g.input, like: target, name: "resize"), to: ONNXExport.outputName)
                let description = ModelDescription(architecture: .fcnResNet50, classes: x.shape[1])
                var w = ProtobufWriter()
                ONNXExport.encodeModel(&w, description: description, g, y)
                try Data(w.bytes).write(to: URL(fileURLWithPath: path))
            }, pairs: [(x, c.tensor("out"))]))
        }
        #expect(cases.count >= 3)
        try checkInRuntime("resize", cases, tolerance: 1e-5, minimumScale: 0)
    }
}
