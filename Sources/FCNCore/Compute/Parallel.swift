// Threading: a fixed number of worker threads for the compute kernels.
import Dispatch

/// Library-wide compute settings.
public enum Compute {
    nonisolated(unsafe) private static var _threads: Int = defaultThreadCount()
    private static let lock = Lock()

    /// Number of threads the kernels split work over. Defaults to the number of active
    /// processors (or the `FCN_NUM_THREADS` environment variable when set).
    public static var threads: Int {
        get { lock.withLock { _threads } }
        set { lock.withLock { _threads = max(1, newValue) } }
    }

    static func defaultThreadCount() -> Int {
        if let s = getenvString("FCN_NUM_THREADS"), let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfoLite.activeProcessorCount)
    }
}

/// Runs `body(i)` for i in 0..<count, spread over `Compute.threads` threads.
/// Calls from inside a worker run serially (no nested oversubscription).
package func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    let t = min(Compute.threads, count)
    if t <= 1 || ParallelState.inWorker { for i in 0..<count { body(i) }; return }
    withoutActuallyEscaping(body) { body in
        let box = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: t) { w in
            ParallelState.$inWorker.withValue(true) {
                var i = w
                while i < count { box.value(i); i += t }
            }
        }
    }
}

/// Splits `0..<count` into `Compute.threads` contiguous chunks and runs `body(range)` on each.
package func parallelChunks(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let t = max(1, min(Compute.threads, count / max(1, minChunk)))
    if t <= 1 || ParallelState.inWorker { body(0..<count); return }
    withoutActuallyEscaping(body) { body in
        let box = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: t) { w in
            ParallelState.$inWorker.withValue(true) {
                let lo = count * w / t, hi = count * (w + 1) / t
                if lo < hi { box.value(lo..<hi) }
            }
        }
    }
}

enum ParallelState {
    @TaskLocal static var inWorker = false
}

/// Wraps a value that the caller knows is safe to share across the worker threads of one
/// `parallelFor` call (the closure writes disjoint parts of its output).
package struct UncheckedSendable<T>: @unchecked Sendable {
    package let value: T
    package init(_ value: T) { self.value = value }
}
