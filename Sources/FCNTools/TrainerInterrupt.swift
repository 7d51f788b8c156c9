// Ctrl-C handling for training runs: the first SIGINT only raises a flag that the training
// loop checks between steps (so it can save a checkpoint and return); a second SIGINT
// exits at once with status 130.
//
// A plain `signal` handler is used, not a DispatchSource: on Linux a dispatch signal
// source never sees a signal whose disposition is SIG_IGN, and shells start background
// jobs with SIGINT ignored; installing a handler replaces that disposition. The handler
// only increments a counter (and calls `_exit` on the second signal), both async-signal-safe.
import FCN
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

nonisolated(unsafe) private var sigintCount: Int32 = 0

private func sigintHandler(_: Int32) {
    sigintCount &+= 1
    if sigintCount >= 2 { _exit(130) }
}

/// A flag raised by SIGINT, for `Trainer.run(shouldStop:)`.
public final class TrainerInterrupt: Sendable {
    private init() {}

    /// Installs the SIGINT handler and returns the flag.
    public static func install() -> TrainerInterrupt {
        sigintCount = 0
        signal(SIGINT, sigintHandler)
        return TrainerInterrupt()
    }

    /// True once SIGINT has been received.
    public var isRaised: Bool { sigintCount > 0 }
}
