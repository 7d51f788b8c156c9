// fcn-segment: segments images with a fully convolutional network (see `--help`).
// A thin shell over `SegmentCommand` (library): parse, run, map errors to exit status 2.
import FCN
import Foundation

func writeStderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

func fail(_ message: String) -> Never {
    writeStderr("fcn-segment: error: \(message)\n")
    exit(2)
}

let options: SegmentCommandOptions
do {
    options = try SegmentCommand.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    fail("\(error)")
}
if options.showHelp {
    print(SegmentCommand.usage)
    exit(0)
}
do {
    let showProgress = !options.quiet
    try SegmentCommand.run(options, status: { line in
        if showProgress { writeStderr(line) }
    })
} catch let e as CommandLineError {
    fail(e.message)
} catch {
    fail("\(error)")
}
