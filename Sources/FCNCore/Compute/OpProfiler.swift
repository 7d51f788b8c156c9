// OpProfiler: where a network spends its time, by kind of op.
//
//   let (scores, profile) = OpProfiler.measure { withoutGrad { model(x) } }
//   print(profile.table())        // kind, calls, seconds, share, slowest first
//
// Contract:
// * `measure` runs its body and returns the body's result with an `OpProfile`: for every
//   kind of op called (e.g. "conv2d 3x3", "conv2d 3x3 dilation 2", "conv2d 1x1 stride 2",
//   "batchNorm", "relu", "add", "maxPool2d 3x3 stride 2", "interpolateBilinear"), the number
//   of calls and the wall seconds spent inside them, and the wall seconds of the whole body.
// * The forward ops are timed (an op's backward runs later, inside `backward()`, and is not
//   attributed). Only the outermost op is timed: an op that calls another counts as itself.
// * Ops that run on other threads at the same time (the parts of a `DataParallelBatch`) are
//   counted too; their seconds add up, so the kinds' sum can exceed the body's wall time.
// * Off outside `measure`, where an op pays one load of a flag. `measure` calls must not
//   overlap (one at a time per process); a call made while another runs is a program error.

import Dispatch
import Foundation

/// The time spent per kind of op during one `OpProfiler.measure` call.
public struct OpProfile: Sendable {
    /// Calls and wall seconds of one kind of op.
    public struct Entry: Sendable, Equatable {
        /// Number of calls.
        public var calls: Int
        /// Wall seconds inside those calls.
        public var seconds: Double
    }

    /// Per kind of op (e.g. "conv2d 3x3"), its calls and seconds.
    public var entries: [String: Entry]
    /// Wall seconds of the whole measured body (ops and everything between them).
    public var totalSeconds: Double

    /// Kinds sorted by seconds, the slowest first.
    public var sorted: [(kind: String, entry: Entry)] {
        entries.map { ($0.key, $0.value) }.sorted { $0.entry.seconds > $1.entry.seconds || ($0.entry.seconds == $1.entry.seconds && $0.kind < $1.kind) }
    }

    /// Seconds of the body outside every timed op (tensor bookkeeping, untimed ops, the
    /// caller's own code); 0 when parallel parts make the ops add up to more.
    public var otherSeconds: Double { max(0, totalSeconds - entries.values.reduce(0) { $0 + $1.seconds }) }

    /// A text table: kind, calls, milliseconds and share of the body's wall time, slowest
    /// first, then "(other)" for the time outside the timed ops.
    public func table() -> String {
        let rows = sorted.map { ($0.kind, "\($0.entry.calls)", $0.entry.seconds) } + [("(other)", "", otherSeconds)]
        let width = max(12, rows.map(\.0.count).max() ?? 0)
        var lines = ["kind".padding(toLength: width, withPad: " ", startingAt: 0) + "  calls          ms   share"]
        for (kind, calls, seconds) in rows {
            let share = totalSeconds > 0 ? 100 * seconds / totalSeconds : 0
            lines.append(kind.padding(toLength: width, withPad: " ", startingAt: 0)
                         + "  " + String(repeating: " ", count: max(0, 5 - calls.count)) + calls
                         + String(format: "  %10.2f  %5.1f%%", seconds * 1000, share))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Measures the time spent per kind of op (see the file contract).
public enum OpProfiler {
    nonisolated(unsafe) static var active = false
    nonisolated(unsafe) private static var current: [String: OpProfile.Entry] = [:]
    private static let lock = NSLock()

    @TaskLocal static var insideOp = false

    /// Runs `body` with the profiler on and returns its result and the profile.
    public static func measure<R>(_ body: () throws -> R) rethrows -> (result: R, profile: OpProfile) {
        lock.lock()
        precondition(!active, "OpProfiler.measure: calls must not overlap (one measure at a time)")
        current = [:]
        active = true
        lock.unlock()
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer {
            lock.lock(); active = false; lock.unlock()
        }
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        lock.lock()
        let entries = current
        lock.unlock()
        return (result, OpProfile(entries: entries, totalSeconds: seconds))
    }

    static func add(_ kind: String, seconds: Double) {
        lock.lock()
        var e = current[kind] ?? OpProfile.Entry(calls: 0, seconds: 0)
        e.calls += 1
        e.seconds += seconds
        current[kind] = e
        lock.unlock()
    }
}

/// Runs the op `body`, timed under `kind` while `OpProfiler.measure` runs and this is the
/// outermost op; otherwise just runs it (`kind` is not evaluated).
@inline(__always)
package func profiledOp<R>(_ kind: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
    guard OpProfiler.active, !OpProfiler.insideOp else { return try body() }
    let name = kind()
    let t0 = DispatchTime.now().uptimeNanoseconds
    let result = try OpProfiler.$insideOp.withValue(true) { try body() }
    OpProfiler.add(name, seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    return result
}

/// "3x3", "1x7": a kernel's size for op kinds.
package func kernelText(_ h: Int, _ w: Int) -> String { "\(h)x\(w)" }

/// The profile kind of a convolution: kernel, then stride, dilation and groups when not 1.
package func convKind(_ op: String, kernel: (Int, Int), stride: Size2, dilation: Size2, groups: Int = 1) -> String {
    var s = "\(op) \(kernelText(kernel.0, kernel.1))"
    if stride.h != 1 || stride.w != 1 { s += " stride \(stride.h == stride.w ? "\(stride.h)" : "\(stride)")" }
    if dilation.h != 1 || dilation.w != 1 { s += " dilation \(dilation.h == dilation.w ? "\(dilation.h)" : "\(dilation)")" }
    if groups != 1 { s += " groups \(groups)" }
    return s
}
