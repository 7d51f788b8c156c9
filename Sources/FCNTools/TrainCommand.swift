// `fcn-train`'s command line: the usage text and the parser that fills `TrainerOptions`.
// Parsing never exits: it returns `.help` or `.train(options)`, or throws
// `CommandLineError` with a message naming the flag and the accepted values (the
// executable prints it with the usage hint and exits with status 2).

import FCN
import Foundation

/// The parse result of `fcn-train`'s arguments: either help was asked for, or a run.
public enum TrainCommand: Equatable, Sendable {
    /// `--help`: print the usage and exit.
    case help
    /// Train (or evaluate) with these (validated) options.
    case train(TrainerOptions)

    /// The usage text (`--help`).
    public static let usage = """
    usage: fcn-train [options]

    Trains a fully convolutional network (the VGG16 FCNs in the Caffe or same-padding
    layout at any width, the ResNet FCN-8s, fcn_resnet50/101) on synthetic shapes or a VOC
    folder, with periodic validation, checkpoints, a CSV of the curves and a PNG plot. The
    checkpoint describes its model (architecture, classes, class names, input convention):
    fcn-segment and --evaluate read it from there.

    model:
      --model NAME         fcn8s (default) | fcn16s | fcn32s | fcn8s-atonce | fcn4s |
                           resnet18-fcn8s | resnet34-fcn8s | fcn_resnet50 | fcn_resnet101
                           (fcn4s: FCN-8s with a pool2 skip, for structures a few
                           pixels wide)
      --init-from FILE     start from these weights (any model file: checkpoint, exported
                           weights, torchvision state dict); tensors of the same name and
                           shape are copied, a classifier of another class count is replaced
      --class-names a,b,c | FILE   class names recorded in the checkpoint (default: the
                           data's: the synthetic set's 5, VOC's 21); FILE has one per line;
                           with --data voc they also set the class count (a folder in
                           the VOC layout of your own classes: label ids 0..<count)
      --no-aux-loss        fcn_resnet50/101 without the auxiliary head (default: trained
                           at torchvision's weight 0.5)
    VGG FCNs only:
      --width W            channel multiplier, e.g. 0.125 (default 0.125)
      --padding caffe|same the reference's pad 100 and crops, or size-preserving convs
                           with aligned upsampling (no margin: ~9x less work at 96 px)
                           (default caffe)
      --staged             train 32s, then 16s from it, then the --model net (8s; 4s
                           after 8s), the budget shared equally
      --caffe-groups       biases at lr x2 and no weight decay (upsampling always frozen)
      --learn-upsampling   let the bilinear upsampling layers learn (reference: frozen)
      --class-weights none|inverse-sqrt   loss weights per class: 1, or 1/sqrt(pixel
                           frequency) counted on 200 training labels (default none)
      --lovasz W           add W x the Lovasz-softmax loss (a surrogate of 1 - mean IU)
                           to the cross-entropy (default 0: cross-entropy only)
      --no-dropout         no dropout after fc6 / fc7 (reference: 0.5)
      --init kaiming|pytorch   conv1_1 ... fc7 initialisation (default kaiming); score
                           layers start at zero, upsampling is bilinear
    data:
      --data synthetic|voc (default synthetic)
      --root DIR           VOC root (JPEGImages, SegmentationClass, ImageSets/Segmentation)
      --image-size N       training and validation image side, >= 8 (default 64)
      --progressive S@F[,S@F...]   progressive resizing: train on S-pixel images until
                           the fraction F of each stage's budget, then the next phase,
                           then --image-size (e.g. 64@0.5); more steps in the same time
      --train-count N      synthetic training images (default 2000)
      --val-count N        held-out validation images (default 100; VOC: 0 = whole val split)
      --input torchvision|caffe   input convention (default torchvision), recorded in the
                           checkpoint
      --no-flip            no random horizontal flips
    budget:
      --steps N            optimizer steps over all stages
      --minutes M          wall-clock budget (validation included); one of --steps, --minutes
                           is required, with both the first reached stops
      --batch N            images per step (default 4)
    optimisation:
      --optimizer sgd|adam|adamw   (default adam)
      --lr X               base learning rate (default 0.001)
      --momentum X         SGD momentum (default 0.9)
      --weight-decay X     (default 0)
      --schedule fixed|poly|step|exp   over each stage's steps (estimated from the
                           measured speed under --minutes) (default poly)
      --warmup N           linear warm-up steps at each stage start (default 0)
      --lr-mult LAYERS=X   multiply the learning rate of these layers (comma-separated
                           names or prefixes, e.g. conv5,fc6,fc7,score_fr=0.3; 'upscore*'
                           is every layer whose name starts with upscore); repeatable, a
                           later flag wins where two overlap; layers of other FCN variants
                           are allowed (they apply where the network has them)
    run:
      --seed N             weights, dropout, data and sampling seed (default 0)
      --threads N          compute threads (default: all processors)
      --replicas N         split each batch into N parts that run side by side, one
                           thread each (needs --no-dropout; default 1: whole batches,
                           kernels split over the threads)
      --val-every N        validate and checkpoint every N steps, 0 = end only (default 200)
      --out DIR            checkpoint.safetensors, curves.csv, curves.png (default fcn-train-out)
      --resume PATH        continue a run exactly from its checkpoint (same options)
      --evaluate           with --resume: measure the checkpoint on the validation
                           images (--val-count of --seed's held-out set) and stop
      --precision f32|bf16 with --evaluate: bf16 runs the convolutions on bfloat16
                           operands (CPUs with AVX512_BF16; elsewhere float32)
      --quiet              no progress bar
      --help               this text

    Ctrl-C saves a checkpoint and the curves, then exits with status 130. Progress is
    redrawn in place on a terminal and written as plain lines every 10 s otherwise.

    Exit status: 0 done, 1 failed run (divergence, a failed write), 2 usage or input error
    (bad arguments, unreadable or corrupt data, weights or checkpoints), 130 interrupted.
    """

    /// Parses command-line arguments (without the program name). Accepts `--flag value` and
    /// `--flag=value`. Throws `CommandLineError` for unknown flags, missing or malformed
    /// values, out-of-range values and inconsistent combinations.
    public static func parse(_ arguments: [String]) throws -> TrainCommand {
        do { return try parseArguments(arguments) } catch let e as TrainerError { throw CommandLineError(e.message) }
    }

    static func parseArguments(_ arguments: [String]) throws -> TrainCommand {
        var o = TrainerOptions()
        var r = ArgumentReader(arguments)
        while let flag = r.next() {
            switch flag {
            case "--help", "-h": return .help
            case "--model": o.model = try r.choice(flag, ModelArchitecture.self)
            case "--class-names": o.classNames = try classNames(r.value(flag))
            case "--init-from": o.initFrom = try r.value(flag)
            case "--no-aux-loss": try r.noValue(flag); o.auxiliaryLoss = false
            case "--width":
                o.width = try r.double(flag, positive: true)
                guard o.width <= 1 else { throw CommandLineError("--width must lie in (0, 1], got \(o.width)") }
            case "--padding": o.padding = try r.choice(flag, VGGFCNPadding.self)
            case "--data": o.data = try r.choice(flag, TrainerDataKind.self)
            case "--root": o.root = try r.value(flag)
            case "--image-size": o.imageSize = try r.int(flag, min: 8)
            case "--progressive": o.progressive = try ProgressiveSize.parseList(r.value(flag))
            case "--train-count": o.trainCount = try r.int(flag, min: 1)
            case "--val-count": o.valCount = try r.int(flag, min: 0)
            case "--steps": o.steps = try r.int(flag, min: 1)
            case "--minutes": o.minutes = try r.double(flag, positive: true)
            case "--batch": o.batch = try r.int(flag, min: 1)
            case "--optimizer": o.optimizer = try r.choice(flag, TrainerOptimizerKind.self)
            case "--lr": o.learningRate = Float(try r.double(flag, positive: true))
            case "--momentum":
                o.momentum = Float(try r.double(flag, positive: false))
                guard o.momentum < 1 else { throw CommandLineError("--momentum must lie in [0, 1), got \(o.momentum)") }
            case "--weight-decay": o.weightDecay = Float(try r.double(flag, positive: false))
            case "--schedule": o.schedule = try r.choice(flag, TrainerScheduleKind.self)
            case "--warmup": o.warmup = try r.int(flag, min: 0)
            case "--seed": o.seed = try r.seed(flag)
            case "--threads": o.threads = try r.int(flag, min: 1)
            case "--replicas": o.replicas = try r.int(flag, min: 1)
            case "--val-every": o.valEvery = try r.int(flag, min: 0)
            case "--out": o.out = try r.value(flag)
            case "--resume": o.resume = try r.value(flag)
            case "--evaluate": try r.noValue(flag); o.evaluateOnly = true
            case "--precision": o.precision = try r.precision(flag)
            case "--staged": try r.noValue(flag); o.staged = true
            case "--caffe-groups": try r.noValue(flag); o.caffeGroups = true
            case "--learn-upsampling": try r.noValue(flag); o.learnUpsampling = true
            case "--class-weights": o.classWeighting = try r.choice(flag, TrainerClassWeighting.self)
            case "--lovasz": o.lovaszWeight = Float(try r.double(flag, positive: false))
            case "--lr-mult": o.layerLearningRates.append(try LayerLearningRate(parsing: r.value(flag)))
            case "--no-dropout": try r.noValue(flag); o.dropout = false
            case "--no-flip": try r.noValue(flag); o.flip = false
            case "--quiet": try r.noValue(flag); o.progress = false
            case "--init": o.initialization = try r.choice(flag, TrainerInitialization.self)
            case "--input": o.normalization = try r.choice(flag, InputPreprocessing.named)
            default: throw ArgumentReader.unexpected(flag)
            }
        }
        do { try o.validate() } catch let e as TrainerError { throw CommandLineError(e.message) }
        return .train(o)
    }


    /// Class names from `--class-names`: a comma-separated list, or a file with one name
    /// per line (blank lines skipped).
    static func classNames(_ text: String) throws -> [String] {
        var names: [String]
        if FileManager.default.fileExists(atPath: text) {
            guard let contents = try? String(contentsOfFile: text, encoding: .utf8) else {
                throw CommandLineError("--class-names: cannot read '\(text)' as UTF-8 text")
            }
            names = contents.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        } else {
            names = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        guard !names.isEmpty, !names.contains(where: \.isEmpty) else { throw CommandLineError("--class-names has an empty name") }
        return names
    }
}
