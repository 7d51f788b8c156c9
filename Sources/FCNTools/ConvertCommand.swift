// The fcn-convert command: any model file the library reads (.safetensors, a PyTorch
// checkpoint, a .caffemodel; told apart by content) in, a .safetensors with its model
// description or an .onnx file (with the description in its metadata) out. Arguments that describe the model are the same as fcn-segment's and
// follow the same rule: where the input file states a value, a contradicting flag is an
// error unless --force.

import FCN
import Foundation

/// The parsed options of fcn-convert.
public struct ConvertCommandOptions: Sendable {
    /// The model file to read.
    public var input = ""
    /// The file to write (`.safetensors` or `.onnx`).
    public var output = ""
    /// ONNX only: a fixed input size instead of symbolic height and width (`--fixed-size HxW`).
    public var fixedSize: (height: Int, width: Int)?
    /// What the caller states about the model (`--model`, `--classes`, ...).
    public var overrides = ModelOverrides()
    /// Element type of the written tensors (`--dtype f32|f16|bf16`).
    public var dtype: SafeTensorsDType = .f32
    /// `--help` was given.
    public var showHelp = false
    /// The defaults.
    public init() {}
}

/// fcn-convert: usage, parsing and the conversion.
public enum ConvertCommand {
    /// The `--help` text.
    public static let usage = """
    usage: fcn-convert [options] IN OUT.safetensors|OUT.onnx

    Converts a model file to safetensors with its model description (architecture, classes,
    class names, input convention), so that fcn-segment, fcn-train --init-from and
    ModelFile.open need no flags for it; or exports it to ONNX (opset 17, batch norms
    folded, height and width symbolic unless --fixed-size; the input is preprocessed as the
    description in the file's metadata says, the output is the class scores). IN may be a .safetensors file, a PyTorch
    checkpoint (torch.save, e.g. torchvision's fcn_resnet50 .pth) or a Caffe .caffemodel
    (the reference VGG FCNs); the format is read from the content.

    options:
      --model NAME                the architecture where the file cannot tell (e.g. fcn8s
                                  against fcn8s-atonce): fcn32s | fcn16s | fcn8s |
                                  fcn8s-atonce | fcn4s | resnet18-fcn8s | resnet34-fcn8s |
                                  fcn_resnet50 | fcn_resnet101
      --classes N                 number of classes
      --width W                   VGG channel multiplier
      --padding caffe|same        VGG padding layout
      --input caffe|torchvision   input convention of the weights
      --class-names a,b,c | FILE  class names to record (FILE: one per line)
      --force                     use the flags even where they contradict the file
      --dtype f32|f16|bf16        element type written to safetensors (default f32)
      --fixed-size HxW            ONNX: a fixed input size (default: any size)
      -h, --help                  this text

    Exit status: 0 done, 1 failed run, 2 usage or input error.
    """

    /// Parses the arguments (without the program name).
    public static func parse(_ args: [String]) throws -> ConvertCommandOptions {
        var o = ConvertCommandOptions()
        var r = ArgumentReader(args)
        var positional: [String] = []
        while let a = r.next() {
            switch a {
            case "-h", "--help": o.showHelp = true
            case "--model": o.overrides.architecture = try r.choice(a, ModelArchitecture.self)
            case "--classes":
                let v = try r.int(a, min: 1)
                guard v <= 256 else { throw CommandLineError("--classes must be at most 256 (labels are bytes), got \(v)") }
                o.overrides.classes = v
            case "--width": o.overrides.width = try r.double(a, positive: true)
            case "--padding": o.overrides.padding = try r.choice(a, VGGFCNPadding.self)
            case "--input": o.overrides.input = try r.choice(a, InputPreprocessing.named)
            case "--class-names": o.overrides.classNames = try TrainCommand.classNames(r.value(a))
            case "--force": try r.noValue(a); o.overrides.force = true
            case "--fixed-size":
                let v = try r.value(a)
                let parts = v.lowercased().split(separator: "x").compactMap { Int($0) }
                guard parts.count == 2, parts.allSatisfy({ $0 >= 1 }) else {
                    throw CommandLineError("--fixed-size expects HxW with positive integers, got '\(v)'")
                }
                o.fixedSize = (parts[0], parts[1])
            case "--dtype": o.dtype = try r.choice(a, [("f32", SafeTensorsDType.f32), ("f16", .f16), ("bf16", .bf16)])
            default:
                if a.hasPrefix("-") && a.count > 1 { throw ArgumentReader.unexpected(a) }
                positional.append(a)
            }
        }
        if o.showHelp { return o }
        guard positional.count == 2 else { throw CommandLineError("expected IN and OUT, got \(positional.count) file argument\(positional.count == 1 ? "" : "s") (see --help)") }
        o.input = positional[0]; o.output = positional[1]
        guard o.output.lowercased().hasSuffix(".safetensors") || o.output.lowercased().hasSuffix(".onnx") else {
            throw CommandLineError("OUT must end in .safetensors or .onnx, got '\(o.output)'")
        }
        if o.fixedSize != nil && !o.output.lowercased().hasSuffix(".onnx") {
            throw CommandLineError("--fixed-size applies to .onnx output only")
        }
        return o
    }

    /// Converts; returns the description written.
    @discardableResult
    public static func run(_ o: ConvertCommandOptions) throws -> ModelDescription {
        let model = try ModelFile.open(o.input, overrides: o.overrides)
        if o.output.lowercased().hasSuffix(".onnx") {
            try ONNXExport.write(model, to: o.output, fixedSize: o.fixedSize)
        } else {
            try ModelFile.write(model, to: o.output, dtype: o.dtype)
        }
        return model.modelDescription
    }
}
