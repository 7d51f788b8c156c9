// Ctrl-C handling for training runs: the first SIGINT only raises a flag that the training
// loop checks between steps (so it can save a checkpoint and return); a second SIGINT
// exits at once with status 130.
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A flag raised by SIGINT, for `Trainer.run(shouldStop:)`.
public final class TrainerInterrupt: @unchecked Sendable {
    private let lock = Lock()
    private var raised = false
    private var source: DispatchSourceSignal?

    private init() {}

    /// Installs the handler (ignoring the default action of SIGINT) and returns the flag.
    /// `onFirst` runs on a background queue when the first SIGINT arrives (e.g. to print
    /// "stopping after this step").
    public static func install(onFirst: (@Sendable () -> Void)? = nil) -> TrainerInterrupt {
        let flag = TrainerInterrupt()
        signal(SIGINT, SIG_IGN)
        let src = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue.global())
        src.setEventHandler { [flag] in
            let again = flag.lock.withLock { () -> Bool in
                defer { flag.raised = true }
                return flag.raised
            }
            if again { exit(130) }
            onFirst?()
        }
        src.resume()
        flag.source = src
        return flag
    }

    /// True once SIGINT has been received.
    public var isRaised: Bool { lock.withLock { raised } }
}
