// The fcn-segment command: argument parsing and the run loop, as a library API so that
// the executable is a thin shell and the behaviour is testable.
//
// Every problem with the arguments or with input files is thrown as a
// `CommandLineError` / `FCNError` with a message naming the argument or file; the
// executable prints it and exits with status 2. Nothing the user passes can trap.

import FCN
import Foundation

/// The parsed options of fcn-segment (see `SegmentCommand.usage`).
public struct SegmentCommandOptions: Sendable, Equatable {
    /// Image files or folders to segment, in command-line order.
    public var inputs: [String] = []
    /// Model file (required unless `randomSeed` is set): anything `ModelFile.open` reads.
    public var weights: String?
    /// nil: the architecture the file describes (with `randomSeed`: FCN-8s).
    public var model: ModelArchitecture?
    /// nil: from the model file, else 21.
    public var classes: Int?
    /// nil: from the model file, else 1 (VGG only).
    public var width: Double?
    /// nil: from the model file, else `.caffe` (VGG only).
    public var padding: VGGFCNPadding?
    /// nil: the input convention the model file records (else the architecture's published one).
    public var input: InputPreprocessing?
    /// Use `model`, `classes`, `width`, `padding` and `input` even where they contradict the file.
    public var force = false
    /// Folder the label maps, overlays and legends are written to.
    public var outputDirectory = "fcn-segment-output"
    /// Also write the `[1, C, H, W]` scores to this file (one input only).
    public var saveScores: String?
    /// Class names for the legend, index = class id (nil: the model file's names, else ids).
    public var classNames: [String]?
    /// Core side of the tiles; nil runs each image whole.
    public var tileSize: Int? = 1024
    /// Test-time augmentation: average with the mirrored prediction.
    public var flip = false
    /// Scales of the multi-scale average; `[1]` is a single pass.
    public var scales: [Double] = [1]
    /// Opacity of the label colours in the overlay (0.5: image and labels equally visible).
    public var alpha: Float = 0.5
    /// Use the model's own random initialisation with this seed instead of `--weights`.
    public var randomSeed: UInt64?
    /// Write the (random) weights of the configured model to this file and stop.
    public var exportWeights: String?
    /// Compute threads (nil: the library default, all processors).
    public var threads: Int?
    /// `Compute.weightCacheMegabytes` for the run (default 1024): tiles and images after the
    /// first read the weights packed (a full-width VGG16 FCN keeps about 700 MB).
    public var weightCacheMegabytes = 1024
    /// `Compute.precision` for the run: `.bfloat16` runs the convolutions on bfloat16
    /// operands where the CPU has AVX512_BF16 (faster; labels measured against float32 in
    /// the Benchmarks page), float32 elsewhere.
    public var precision = ComputePrecision.float32
    /// Suppress the per-image progress lines.
    public var quiet = false
    /// Also write NAME_panel.png: the image, the label colours and the overlay side by side.
    public var sideBySide = false
    /// Apply the EXIF orientation of JPEG photos (default, as Pillow's `exif_transpose`).
    public var applyOrientation = true
    /// Print wall time and peak resident memory at the end (`--stats`).
    public var showStats = false
    /// `--help` was given: print `SegmentCommand.usage` and exit.
    public var showHelp = false

    /// The defaults documented on each property.
    public init() {}
}

/// What fcn-segment wrote for one input.
public struct SegmentOutput: Sendable, Equatable {
    /// The input image file.
    public var input: String
    /// The files written: palette label map, colour overlay and legend image.
    public var labels: String, overlay: String, legend: String
    /// The scores file, when `saveScores` was set.
    public var scores: String?
    /// The classes present in the label map, as listed in the legend.
    public var entries: [LegendEntry]
}

/// The fcn-segment command: its usage text, option parsing and the run over the inputs.
public enum SegmentCommand {
    /// The `--help` text.
    public static let usage = """
    usage: fcn-segment [options] IMAGE|FOLDER ...

    Segments images (PNG, JPEG, PPM/PGM) with a fully convolutional network and writes, for
    each input NAME: NAME_labels.png (class ids, PASCAL VOC palette), NAME_overlay.png (the
    image blended with the label colours) and NAME_legend.txt (classes present, pixel shares).

    options:
      --weights FILE              a model file: fcn-train checkpoint, exported weights, a
                                  safetensors or PyTorch (torch.save) state dict, or a Caffe
                                  .caffemodel of the reference VGG FCNs (read by content);
                                  the model, classes, names and input convention are read
                                  from it (or from its tensor names and shapes)
      --model NAME                fcn32s | fcn16s | fcn8s | fcn8s-atonce | fcn4s |
                                  resnet18-fcn8s | resnet34-fcn8s | fcn_resnet50 |
                                  fcn_resnet101 (default:
                                  from the file; needed where it cannot tell, e.g. fcn8s
                                  against fcn8s-atonce)
      --classes N                 number of classes (default: from the file, else 21)
      --width W                   VGG channel multiplier (default: from the file, else 1)
      --padding caffe|same        VGG padding layout (default: from the file, else caffe,
                                  the published nets)
      --input caffe|torchvision   input convention (default: from the file, else the
                                  architecture's published one)
      --force                     use --model/--classes/--width/--padding/--input even where
                                  they contradict the file
      --class-names a,b,c | FILE  names for the legend, by class id (default: the file's);
                                  FILE has one name per line
      --out DIR                   output folder (default fcn-segment-output)
      --save-scores FILE          raw scores [1, C, H, W] as safetensors tensor "scores"
                                  (one input image only)
      --tile N                    tile core size in pixels (default 1024; 0: whole image)
      --tta flip                  average with the mirrored image
      --scales 0.75,1,1.25        multi-scale average (softmax probabilities)
      --alpha A                   overlay colour weight 0...1 (default 0.5); background
                                  pixels stay the photo, class boundaries are drawn
      --side-by-side              also write NAME_panel.png: image, labels and overlay in a row
      --no-orientation            keep JPEG photos as stored (default: apply EXIF orientation)
      --threads N                 compute threads (default: all cores)
      --weight-cache MB           keep packed weights between tiles and images (default
                                  1024; 0: pack on every call)
      --precision f32|bf16        bf16: convolutions on bfloat16 operands, float32 sums
                                  (CPUs with AVX512_BF16; about 1.3-1.6x faster; first
                                  and score layers stay float32). Default f32
      --random-weights SEED       no weights file: the model's random initialisation
      --export-weights FILE       write the configured model's weights to FILE and stop
      --quiet                     no progress bar, no legend tables
      --stats                     print wall time and peak resident memory (VmHWM) at the end
      -h, --help                  this text

    A flag that contradicts the model file is an error naming both (add --force to use it).
    The output folder is checked for writing before any work. Progress is redrawn in place
    on a terminal and written as plain lines otherwise.

    Exit status: 0 done, 1 failed run, 2 usage or input error (bad arguments, unreadable
    or corrupt files), 130 interrupted.
    """

    /// Parses the arguments (without the program name).
    public static func parse(_ args: [String]) throws -> SegmentCommandOptions {
        var o = SegmentCommandOptions()
        var r = ArgumentReader(args)
        var widthGiven = false
        while let a = r.next() {
            switch a {
            case "-h", "--help": o.showHelp = true
            case "--weights": o.weights = try r.value(a)
            case "--model": o.model = try r.choice(a, ModelArchitecture.self)
            case "--input": o.input = try r.choice(a, InputPreprocessing.named)
            case "--force": try r.noValue(a); o.force = true
            case "--classes":
                let v = try r.int(a, min: 1)
                guard v <= 256 else { throw CommandLineError("--classes must be at most 256 (labels are bytes), got \(v)") }
                o.classes = v
            case "--width": o.width = try r.double(a, positive: true); widthGiven = true
            case "--padding": o.padding = try r.choice(a, VGGFCNPadding.self)
            case "--class-names": o.classNames = try TrainCommand.classNames(r.value(a))
            case "--out": o.outputDirectory = try r.value(a)
            case "--save-scores": o.saveScores = try r.value(a)
            case "--tile":
                let v = try r.int(a, min: 0)
                o.tileSize = v == 0 ? nil : v
            case "--tta": o.flip = try r.choice(a, [(name: "flip", value: true)])
            case "--scales":
                let v = try r.value(a)
                o.scales = try v.split(separator: ",", omittingEmptySubsequences: false).map { try ArgumentReader.number(a, String($0), positive: true) }
                guard o.scales.allSatisfy({ $0 <= 8 }) else { throw CommandLineError("--scales must be at most 8, got '\(v)'") }
            case "--alpha":
                let v = try r.double(a, positive: false)
                guard v <= 1 else { throw CommandLineError("--alpha must lie in [0, 1], got \(v)") }
                o.alpha = Float(v)
            case "--threads": o.threads = try r.int(a, min: 1)
            case "--weight-cache": o.weightCacheMegabytes = try r.int(a, min: 0)
            case "--precision": o.precision = try r.precision(a)
            case "--random-weights": o.randomSeed = try r.seed(a)
            case "--export-weights": o.exportWeights = try r.value(a)
            case "--quiet", "-q": try r.noValue(a); o.quiet = true
            case "--side-by-side": try r.noValue(a); o.sideBySide = true
            case "--stats": try r.noValue(a); o.showStats = true
            case "--no-orientation": try r.noValue(a); o.applyOrientation = false
            default:
                if a.hasPrefix("-") && a.count > 1 { throw ArgumentReader.unexpected(a) }
                o.inputs.append(a)
            }
        }
        if o.showHelp { return o }
        if let m = o.model, !m.isVGG {
            if widthGiven { throw CommandLineError("--width applies to the VGG models only, not \(m)") }
            if o.padding != nil { throw CommandLineError("--padding applies to the VGG models only, not \(m)") }
        }
        if o.weights != nil && o.randomSeed != nil { throw CommandLineError("give either --weights or --random-weights, not both") }
        if o.exportWeights != nil {
            guard o.randomSeed != nil || o.weights != nil else { throw CommandLineError("--export-weights needs --random-weights SEED or --weights") }
            return o
        }
        guard !o.inputs.isEmpty else { throw CommandLineError("no input images given (see --help)") }
        guard o.weights != nil || o.randomSeed != nil else { throw CommandLineError("--weights FILE is required (or --random-weights SEED)") }
        return o
    }

    /// Image files of a folder (by extension), sorted by name.
    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "ppm", "pgm", "pnm"]

    /// Expands folders into their image files; checks that every file exists.
    public static func expandInputs(_ inputs: [String]) throws -> [String] {
        let fm = FileManager.default
        var out: [String] = []
        for path in inputs {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw CommandLineError("no such file or folder: '\(path)'") }
            if isDir.boolValue {
                guard let names = try? fm.contentsOfDirectory(atPath: path) else { throw CommandLineError("cannot list folder '\(path)'") }
                let files = names.filter { imageExtensions.contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
                guard !files.isEmpty else { throw CommandLineError("folder '\(path)' holds no image files (\(imageExtensions.sorted().joined(separator: ", ")))") }
                out += files.map { (path as NSString).appendingPathComponent($0) }
            } else {
                out.append(path)
            }
        }
        return out
    }

    /// The overrides the flags state (see `ModelOverrides`).
    public static func overrides(_ o: SegmentCommandOptions) -> ModelOverrides {
        ModelOverrides(architecture: o.model, classes: o.classes, width: o.width, padding: o.padding, input: o.input,
                       classNames: o.classNames, force: o.force)
    }

    /// The model: `ModelFile.open(weights)` with the flags as overrides, or with
    /// `--random-weights` a fresh one of the flags' description (FCN-8s, 21 classes by default).
    public static func openModel(_ o: SegmentCommandOptions) throws -> any SegmentationModel {
        if let path = o.weights { return try ModelFile.open(path, overrides: overrides(o)) }
        let architecture = o.model ?? .fcn8s
        let d = ModelDescription(architecture: architecture, classes: o.classes ?? 21, width: o.width ?? 1,
                                 padding: o.padding ?? .caffe, classNames: o.classNames, input: o.input)
        do { try d.validate() } catch let FCNError.mismatch(m) { throw CommandLineError(m) }
        let model = try d.makeModel(seed: o.randomSeed ?? 0)
        model.eval()
        return model
    }

    /// Runs the command. `log` receives the human-readable report (stdout), `status` the
    /// progress bar (stderr). Per-image failures (unreadable or corrupt files) do not stop
    /// the other images; they are thrown together at the end as one `CommandLineError`.
    @discardableResult
    public static func run(_ o: SegmentCommandOptions, log: (String) -> Void = { print($0) },
                           status: @escaping (String) -> Void = { _ in }, terminal: Bool = true) throws -> [SegmentOutput] {
        if let t = o.threads { Compute.threads = t }
        Compute.weightCacheMegabytes = o.weightCacheMegabytes
        Compute.precision = o.precision
        if o.exportWeights == nil, let notice = Compute.unsupportedNotice(o.precision, tool: "fcn-segment") { log(notice) }
        if o.precision == .bfloat16 && o.weightCacheMegabytes == 0 && o.exportWeights == nil {
            log("fcn-segment: --precision bf16 needs the weight cache (--weight-cache 0 turns it off); running float32")
        }
        if o.exportWeights == nil { try prepareOutputFolder(o.outputDirectory) }
        let model = try openModel(o)
        let d = model.modelDescription
        if let path = o.exportWeights {
            try ModelFile.write(model, to: path)
            log("wrote \(path) (\(d.architecture), \(d.classes) classes" + (d.architecture.isVGG ? ", width \(d.width)" : "")
                + ", \(model.parameterCount) parameters, with its model description)")
            return []
        }
        let network = ModelSegmentation(model)
        let files = try expandInputs(o.inputs)
        if o.saveScores != nil && files.count != 1 {
            throw CommandLineError("--save-scores needs exactly one input image, got \(files.count)")
        }
        let segmenter = Segmenter(network: network, options: SegmentationOptions(tileSize: o.tileSize, flip: o.flip, scales: o.scales))
        let stems = outputStems(files)
        var outputs: [SegmentOutput] = []
        var failures: [String] = []
        let palette = d.colors + vocPalette(count: 256).dropFirst(d.colors.count)
        for (k, file) in files.enumerated() {
            let name = (file as NSString).lastPathComponent
            status(terminal ? progressLine(done: k, total: files.count, tile: nil, name: name)
                            : "fcn-segment: \(k + 1)/\(files.count) \(name)\n")
            do {
                var image = try readImage(path: file, applyOrientation: o.applyOrientation)
                let result = segmenter.segment(image, keepScores: o.saveScores != nil) { done, total in
                    if terminal { status(progressLine(done: k, total: files.count, tile: (done, total), name: name)) }
                }
                let base = (o.outputDirectory as NSString).appendingPathComponent(stems[k])
                let labelsPath = base + "_labels.png", overlayPath = base + "_overlay.png", legendPath = base + "_legend.txt"
                try PNG.write(result.labelImage(palette: palette), to: labelsPath)
                let entries = segmentationLegend(labels: result.labels, classNames: d.classNames, palette: palette)
                let table = formatLegend(entries)
                do { try table.write(toFile: legendPath, atomically: true, encoding: .utf8) } catch {
                    throw FCNError.io("cannot write '\(legendPath)': \(error.localizedDescription)")
                }
                let photo = image.rgb()
                blendLabelColors(into: &image, labels: result.labels, palette: palette, alpha: o.alpha)
                try PNG.write(image, to: overlayPath)
                if o.sideBySide {
                    try PNG.write(sideBySidePanel([photo, result.labelImage(palette: palette).rgb(), image]), to: base + "_panel.png")
                }
                var scoresPath: String? = nil
                if let path = o.saveScores, let scores = result.scores {
                    try saveSafeTensors(["scores": scores], metadata: ["model": d.architecture.rawValue, "input": name], to: path)
                    scoresPath = path
                }
                outputs.append(SegmentOutput(input: file, labels: labelsPath, overlay: overlayPath, legend: legendPath,
                                             scores: scoresPath, entries: entries))
                if !o.quiet {
                    if terminal { status("\r\u{1B}[K") }   // clear the progress line before the report
                    log("\(file): \(result.width)x\(result.height), \(result.tiles) tile\(result.tiles == 1 ? "" : "s") -> \(labelsPath), \(overlayPath), \(legendPath)"
                        + (scoresPath.map { ", \($0)" } ?? ""))
                    log(table)
                }
            } catch let e as FCNError {
                failures.append("\(file): \(e)")
            }
        }
        if terminal { status(progressLine(done: files.count, total: files.count, tile: nil, name: "done") + "\n") }
        if !failures.isEmpty {
            throw CommandLineError("\(failures.count) of \(files.count) input\(files.count == 1 ? "" : "s") failed:\n  " + failures.joined(separator: "\n  "))
        }
        return outputs
    }

    /// Creates `folder` if needed and checks that files can be written in it, before any
    /// work (a folder that cannot be written is found at once, not after the last image).
    public static func prepareOutputFolder(_ folder: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw CommandLineError("cannot create output folder '\(folder)': \(error.localizedDescription)")
        }
        let probe = (folder as NSString).appendingPathComponent(".fcn-write-test-\(getpid())")
        guard FileManager.default.createFile(atPath: probe, contents: Data()) else {
            throw CommandLineError("output folder '\(folder)' is not writable")
        }
        try? FileManager.default.removeItem(atPath: probe)
    }

    /// Output name stems: the file name without extension, or with it when two inputs
    /// would collide.
    static func outputStems(_ files: [String]) -> [String] {
        let names = files.map { ($0 as NSString).lastPathComponent }
        let stems = names.map { ($0 as NSString).deletingPathExtension }
        var seen: [String: Int] = [:]
        for s in stems { seen[s, default: 0] += 1 }
        return zip(names, stems).enumerated().map { k, p in
            let base = seen[p.1]! > 1 ? p.0.replacingOccurrences(of: ".", with: "_") : p.1
            return seen[p.1]! > 1 && names.filter({ $0 == p.0 }).count > 1 ? "\(base)_\(k)" : base
        }
    }

    /// `\r[########------------] 3/10 name (tile 4/16)`: a carriage-return progress line.
    public static func progressLine(done: Int, total: Int, tile: (Int, Int)?, name: String) -> String {
        let width = 24
        var frac = total > 0 ? Double(done) / Double(total) : 1
        if let tl = tile, total > 0 { frac += Double(tl.0) / Double(max(1, tl.1)) / Double(total) }
        let filled = min(width, Int(frac * Double(width)))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let tileText = tile.map { " (tile \($0.0)/\($0.1))" } ?? ""
        return "\r[\(bar)] \(done)/\(total) \(name)\(tileText)\u{1B}[K"
    }
}
