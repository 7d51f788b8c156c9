// fcn-segment: segments images with a fully convolutional network (see `--help`).
// A thin shell over `SegmentCommand` (library): parse, run, map errors to exit status 2.
import FCNTools
import FCN
import Foundation
#if canImport(Glibc)
import Glibc

// Tiled inference allocates the same tile-sized buffers (input, activations, scores: tens
// to hundreds of MB each) for every tile and frees them after it. glibc serves blocks above
// its mmap threshold (128 KiB, adapting up to 32 MiB) with fresh mmaps and unmaps them on
// free, so every tile faulted all its pages in again (system time). Serving them
// from the heap (no mmap) and not trimming it below 1 GiB keeps the freed blocks for the
// next tile, which asks for the same sizes in the same order: the pages are faulted once.
// The peak RSS grows a little (freed blocks of differently sized edge tiles fragment the
// heap). Raising only the mmap threshold to its 32 MiB maximum barely helps: the largest
// tile buffers (scores, ~125 MB) are above it. Figures (8000x8000 PNG, FCN-8s width 1/16,
// tile 512): Benchmarks.md, Memory. The process keeps its peak heap until it exits, which
// suits a one-shot command.
// (malloc.h is not part of the Glibc module: mallopt is looked up by name; the constants
// are glibc's M_TRIM_THRESHOLD = -1 and M_MMAP_MAX = -4.)
if let symbol = dlsym(nil, "mallopt") {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    _ = mallopt(-4, 0)          // M_MMAP_MAX: no mmap for large blocks
    _ = mallopt(-1, 1 << 30)    // M_TRIM_THRESHOLD: keep up to 1 GiB of free heap
}
#endif

func writeStderr(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

/// Exit status: 2 for usage and input errors (arguments, unreadable or corrupt files),
/// 1 for a failed run (see `SegmentCommand.usage`).
func fail(_ message: String, status: Int32 = 2) -> Never {
    writeStderr("fcn-segment: error: \(message)\n")
    exit(status)
}

/// Peak resident set size in MiB (Linux: VmHWM of /proc/self/status), nil elsewhere.
func peakRSSMiB() -> Double? {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
    return kb / 1024
}

let arguments = Array(CommandLine.arguments.dropFirst())
let started = Date()

let options: SegmentCommandOptions
do {
    options = try SegmentCommand.parse(arguments)
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
    }, terminal: isatty(2) != 0)
    if options.showStats {
        let rss = peakRSSMiB().map { String(format: "%.1f MiB", $0) } ?? "unknown"
        print(String(format: "time %.2f s, peak RSS %@", Date().timeIntervalSince(started), rss))
    }
} catch let e as CommandLineError {
    fail(e.message)
} catch let e as FCNError {
    fail("\(e)")
} catch {
    fail("\(error)", status: 1)
}
