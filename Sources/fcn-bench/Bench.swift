// Bench: a tiny timing harness for fcn-bench (monotonic clock, warm-up, best of N).
//
// Usage: create one `Bench`, call `run(name, flops:) { … }` per row, then `report()`.
// Rows are printed as a table (row, ms, GFLOP/s) or, with `--json`, as
// {"threads": N, "rows": [{"row": "...", "ms": 1.0, "gflops": 2.0}, ...]}.
import Dispatch
import Foundation
import FCNTools
import FCN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct BenchRow {
    var row: String
    var ms: Double
    var gflops: Double
    /// Share of the row's time per kind of op (`OpProfiler`), for the rows that profile.
    var shares: [(kind: String, fraction: Double)] = []
}

final class Bench {
    struct Options {
        var threads = Compute.threads
        var json = false
        var quick = false
        var filter: String? = nil
        var repeats = 3
        /// Time with the process CPU clock instead of the wall clock (for single-thread
        /// measurements on a machine shared with other jobs).
        var cpuTime = false
        /// `--weight-cache MB`: `Compute.weightCacheMegabytes` for the run (default 1024: the
        /// layer and network rows read their weights packed after the warm-up call, as
        /// onnxruntime packs them when a session loads; 0 packs on every call).
        var weightCacheMB = 1024
        /// `--precision bf16|f32`: `Compute.precision` of the run (inference convolutions).
        var precision = ComputePrecision.float32
        /// `--probe CIN,COUT,K,PAD,H[,DILATION]`: one extra convolution row named "probe" (experiments).
        var probe: [Int]? = nil
    }

    let options: Options
    private(set) var rows: [BenchRow] = []
    private(set) var failures: [String] = []

    init(options: Options) { self.options = options }

    /// Parses `--threads N`, `--json`, `--quick`, `--filter TEXT`, `--repeats N`, `--cpu`,
    /// `--weight-cache MB`, `--precision P`.
    static func parseOptions(_ args: [String]) -> Options {
        var o = Options()
        var i = 1
        /// Bad arguments end the run with status 2 and a message naming the argument.
        func usageError(_ message: String) -> Never {
            FileHandle.standardError.write(Data("fcn-bench: error: \(message) (see --help)\n".utf8))
            exit(2)
        }
        func value() -> String {
            i += 1
            guard i < args.count else { usageError("\(args[i - 1]) needs a value") }
            return args[i]
        }
        func int(_ flag: String, min: Int) -> Int {
            let v = value()
            guard let n = Int(v), n >= min else { usageError("\(flag) expects an integer >= \(min), got '\(v)'") }
            return n
        }
        while i < args.count {
            let flag = args[i]
            switch flag {
            case "--threads": o.threads = int(flag, min: 1)
            case "--json": o.json = true
            case "--quick": o.quick = true
            case "--filter": o.filter = value()
            case "--repeats": o.repeats = int(flag, min: 1)
            case "--cpu": o.cpuTime = true
            case "--weight-cache": o.weightCacheMB = int(flag, min: 0)
            case "--precision":
                let v = value()
                guard let p = ComputePrecision(parsing: v) else { usageError("--precision expects bf16 or f32, got '\(v)'") }
                o.precision = p
                if let notice = Compute.unsupportedNotice(p, tool: "fcn-bench") {
                    FileHandle.standardError.write(Data((notice + "\n").utf8))
                }
            case "--probe": o.probe = value().split(separator: ",").compactMap { Int($0) }
            case "-h", "--help":
                print("""
                usage: fcn-bench [options]

                Times the kernels, the VGG16-FCN layers at 500x500 and whole networks in a
                release build, and checks the tuned kernels against the naive ones.

                  --threads N        compute threads (default: all processors)
                  --quick            small shapes only (the CI smoke run)
                  --filter TEXT      only rows whose name contains TEXT
                  --repeats N        timed runs per row, best kept (default 3)
                  --cpu              CPU time of the process instead of wall time
                  --weight-cache MB  keep packed weights between calls (default 1024; 0: off)
                  --precision P      f32 (default) or bf16: bfloat16 operands in the inference
                                     convolutions (CPUs with AVX512_BF16; elsewhere float32)
                  --json             one JSON object instead of the table
                  -h, --help         this text

                Exit status: 0 done, 1 a tuned kernel disagreed with its reference, 2 usage error.
                """)
                exit(0)
            default: usageError("unknown argument '\(flag)'")
            }
            i += 1
        }
        return o
    }

    /// Whether a row named `name` is selected by `--filter`.
    func wants(_ name: String) -> Bool {
        guard let f = options.filter else { return true }
        return name.contains(f)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// CPU time of the whole process (all threads), nanoseconds.
    static func cpuNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Times `body` (warm-up runs, then best of `options.repeats`) and records a row. With the
    /// weight cache on there are two warm-up runs: the first registers each weight, the second
    /// packs it (as onnxruntime packs when a session loads); without it, one.
    /// `flops` is the work of one run (0: no GFLOP/s column).
    func run(_ name: String, flops: Double, _ body: () -> Void) {
        guard wants(name) else { return }
        for _ in 0..<(options.weightCacheMB > 0 ? 2 : 1) { body() }
        var best = Double.infinity
        for _ in 0..<options.repeats {
            let clock = options.cpuTime ? Self.cpuNow : Self.now
            let t0 = clock()
            body()
            best = min(best, Double(clock() - t0) / 1e6)
        }
        rows.append(BenchRow(row: name, ms: best, gflops: flops > 0 ? flops / (best * 1e6) : 0))
        if !options.json {
            print(pad(name, 28) + pad(String(format3(best)), 12, left: true) + pad(format1(rows.last!.gflops), 10, left: true))
        }
    }

    /// Runs `body` once more under `OpProfiler` and attaches the share of its time per kind
    /// of op to the last row named `name` (printed under it; `"shares"` in the JSON).
    func profile(_ name: String, _ body: () -> Void) {
        guard wants(name), let i = rows.lastIndex(where: { $0.row == name }) else { return }
        let (_, p) = OpProfiler.measure(body)
        let total = max(p.totalSeconds, 1e-12)
        rows[i].shares = p.sorted.map { ($0.kind, $0.entry.seconds / total) } + [("(other)", p.otherSeconds / total)]
        if !options.json {
            for (kind, f) in rows[i].shares { print("    " + pad(kind, 36) + pad(format1(100 * f) + "%", 8, left: true)) }
        }
    }

    /// Records a correctness failure (reported at the end; the exit status becomes 1).
    func fail(_ message: String) {
        failures.append(message)
        if !options.json { print("MISMATCH: \(message)") }
    }

    func printHeader() {
        guard !options.json else { return }
        let precision = Compute.effectivePrecision == .bfloat16 ? ", precision = bf16" : ""
        print("fcn-bench, threads = \(options.threads)\(precision)\(options.quick ? " (quick)" : "")")
        print(pad("row", 28) + pad("ms", 12, left: true) + pad("GFLOP/s", 10, left: true))
    }

    /// Prints the JSON document when asked and returns the process exit status.
    func finish() -> Int32 {
        if options.json {
            let items = rows.map { r -> String in
                var item = "{\"row\": \"\(r.row)\", \"ms\": \(format3(r.ms)), \"gflops\": \(format1(r.gflops))"
                if !r.shares.isEmpty {
                    item += ", \"shares\": {" + r.shares.map { "\"\($0.kind)\": \(fixed($0.fraction, 4))" }.joined(separator: ", ") + "}"
                }
                return item + "}"
            }
            print("{\"threads\": \(options.threads), \"rows\": [\(items.joined(separator: ", "))]}")
        }
        for f in failures {
            let line = "fcn-bench: mismatch: \(f)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
        return failures.isEmpty ? 0 : 1
    }
}

// Formatting without Foundation.
func format3(_ x: Double) -> String { fixed(x, 3) }
func format1(_ x: Double) -> String { fixed(x, 1) }
func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let v = (x * scale).rounded()
    let ip = Int(v / scale), fp = Int(abs(v) - abs(Double(ip)) * scale)
    var f = String(fp)
    while f.count < digits { f = "0" + f }
    return "\(v < 0 && ip == 0 ? "-" : "")\(ip).\(f)"
}
func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return left ? fill + s : s + fill
}
