// fcn-segment: segments images with a fully convolutional network (see `--help`).
// A thin shell over `SegmentCommand` (library): parse, run, map errors to exit status 2.
import FCN
import Foundation

func writeStderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

func fail(_ message: String) -> Never {
    writeStderr("fcn-segment: error: \(message)\n")
    exit(2)
}

/// Peak resident set size in MiB (Linux: VmHWM of /proc/self/status), nil elsewhere.
func peakRSSMiB() -> Double? {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
    return kb / 1024
}

// `--stats` (this shell only): print wall time and peak memory at the end.
var arguments = Array(CommandLine.arguments.dropFirst())
let showStats = arguments.contains("--stats")
arguments.removeAll { $0 == "--stats" }
let started = Date()

let options: SegmentCommandOptions
do {
    options = try SegmentCommand.parse(arguments)
} catch {
    fail("\(error)")
}
if options.showHelp {
    print(SegmentCommand.usage)
    print("  --stats                     print wall time and peak resident memory (VmHWM) at the end")
    exit(0)
}
do {
    let showProgress = !options.quiet
    try SegmentCommand.run(options, status: { line in
        if showProgress { writeStderr(line) }
    })
    if showStats {
        let rss = peakRSSMiB().map { String(format: "%.1f MiB", $0) } ?? "unknown"
        print(String(format: "time %.2f s, peak RSS %@", Date().timeIntervalSince(started), rss))
    }
} catch let e as CommandLineError {
    fail(e.message)
} catch {
    fail("\(error)")
}
