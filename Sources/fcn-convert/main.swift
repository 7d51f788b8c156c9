// fcn-convert: a model file (.safetensors, PyTorch checkpoint, .caffemodel) to
// .safetensors with its model description, or to .onnx. A thin shell over `ConvertCommand`.
import FCNTools
import FCN
import Foundation

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("fcn-convert: error: \(message)\n".utf8))
    exit(status)
}

let options: ConvertCommandOptions
do { options = try ConvertCommand.parse(Array(CommandLine.arguments.dropFirst())) } catch { fail("\(error)", status: 2) }
if options.showHelp { print(ConvertCommand.usage); exit(0) }
do {
    let d = try ConvertCommand.run(options)
    print("fcn-convert: wrote \(options.output): \(d.architecture), \(d.classes) classes, \(d.input) inputs"
          + (d.architecture.isVGG ? ", width \(d.width), \(d.padding.rawValue) layout" : ""))
} catch let e as CommandLineError {
    fail(e.message, status: 2)
} catch let e as FCNError {
    fail("\(e)", status: 2)
} catch {
    fail("\(error)", status: 1)
}
