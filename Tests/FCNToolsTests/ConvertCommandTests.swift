// fcn-convert: a caffemodel and a PyTorch checkpoint in, a described safetensors file out
// that opens with no flags and gives the same scores; bad arguments name the problem.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTools
import FCNTestSupport

@Suite struct ConvertCommandTests {
    @Test func convertsCaffeAndPyTorchFilesToDescribedSafetensors() throws {
        let out = tempPath("converted.safetensors")
        defer { removeTempDir(out) }
        let x = Tensor.uniform([1, 3, 40, 36], low: 0, high: 255, seed: 5)
        for (file, extra) in [("vgg8s_atonce_scale.caffemodel", [String]()), ("vgg8s_state.pth", ["--model", "fcn8s"])] {
            let input = readersDirectory + "/" + file
            let classes = try ModelFile.describe(input, overrides: ConvertCommand.parse(extra + [input, out]).overrides).description.classes
            let names = (0..<classes).map { "c\($0)" }
            let o = try ConvertCommand.parse(extra + ["--class-names", names.joined(separator: ","), input, out])
            let d = try ConvertCommand.run(o)
            let source = try ModelFile.open(input, overrides: o.overrides)
            let converted = try ModelFile.open(out)
            #expect(converted.modelDescription == d && d.classNames == names, "\(file)")
            #expect(try ModelFile.describe(out).isDescribed)
            #expect(bitIdentical(withoutGrad { converted.scores(forRGB: x) }, withoutGrad { source.scores(forRGB: x) }), "\(file)")
        }
        // F16 halves the file and stays close.
        let half = tempPath("half.safetensors")
        defer { removeTempDir(half) }
        try ConvertCommand.run(ConvertCommand.parse(["--dtype", "f16", out, half]))
        #expect(try SafeTensorsFile(path: half).entries.values.allSatisfy { $0.dtype == .f16 })
        // ONNX out: the exporter's bytes for the opened model.
        let onnx = tempPath("m.onnx")
        defer { removeTempDir(onnx) }
        try ConvertCommand.run(ConvertCommand.parse(["--fixed-size", "40x36", out, onnx]))
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: onnx)))
        #expect(bytes == (try ONNXExport.data(ModelFile.open(out), fixedSize: (40, 36))))
    }

    @Test func argumentErrors() {
        func message(_ args: [String]) -> String? {
            do { _ = try ConvertCommand.parse(args); return nil } catch { return "\(error)" }
        }
        #expect(message(["a.pth"])?.contains("expected IN and OUT") == true)
        #expect(message(["a.pth", "b.onnx.txt"])?.contains("OUT must end in .safetensors or .onnx") == true)
        #expect(message(["--fixed-size", "3x", "a", "b.onnx"])?.contains("--fixed-size expects HxW") == true)
        #expect(message(["--fixed-size", "3x4", "a", "b.safetensors"])?.contains("applies to .onnx output only") == true)
        #expect(message(["--dtype", "f8", "a", "b.safetensors"])?.contains("--dtype expects one of f32|f16|bf16") == true)
        #expect(message(["--model", "vgg", "a", "b.safetensors"])?.contains("--model expects one of") == true)
        #expect(throws: FCNError.self) { try ConvertCommand.run(ConvertCommand.parse(["/nonexistent.pth", "/tmp/x.safetensors"])) }
    }
}
