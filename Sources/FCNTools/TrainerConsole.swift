// Progress display for `Trainer.run` events.
//
// On a terminal: one status line redrawn in place with "\r" and erase-to-end-of-line,
// throttled to 10 redraws a second; validations and stage changes are printed on their own
// lines above it. Elsewhere (a log file, a pipe): a plain line every `interval` seconds and
// for every validation, so logs stay readable.
import FCN
import Foundation

/// Formats trainer events for a terminal or a log.
public final class TrainerConsole {
    /// Redraw one line in place (true) or print plain periodic lines.
    public let isTerminal: Bool
    /// Seconds between plain progress lines (not on a terminal).
    public let interval: Double
    /// Whether step progress is shown at all (`fcn-train --quiet` turns it off; messages,
    /// validations and stage changes are always printed).
    public let showsProgress: Bool
    private let write: (String) -> Void
    private var lastDraw = -1.0e9
    private var barShown = false
    private var lastProgress: TrainerProgress?

    /// `write` receives complete pieces of output (with their own newlines / carriage returns).
    public init(isTerminal: Bool, interval: Double = 10, showsProgress: Bool = true, write: @escaping (String) -> Void) {
        self.isTerminal = isTerminal; self.interval = interval; self.showsProgress = showsProgress; self.write = write
    }

    /// A console on the standard error stream, redrawing in place when it is a TTY.
    public static func standardError(interval: Double = 10, showsProgress: Bool = true) -> TrainerConsole {
        TrainerConsole(isTerminal: isatty(2) != 0, interval: interval, showsProgress: showsProgress) { s in
            FileHandle.standardError.write(Data(s.utf8))
        }
    }

    private func clearBar() {
        if barShown { write("\r\u{1B}[K"); barShown = false }
    }

    /// Prints a message on its own line (above the bar on a terminal).
    public func message(_ s: String) {
        clearBar()
        write(s + "\n")
        if isTerminal, let p = lastProgress { write(TrainerConsole.progressLine(p)); barShown = true }
    }

    /// Handles one event of `Trainer.run`.
    public func handle(_ event: TrainerEvent) {
        switch event {
        case .step(let p):
            guard showsProgress else { return }
            lastProgress = p
            let t = p.elapsedSeconds
            if isTerminal {
                guard t - lastDraw >= 0.1 || p.fraction >= 1 else { return }
                lastDraw = t
                write("\r" + TrainerConsole.progressLine(p) + "\u{1B}[K")
                barShown = true
            } else {
                guard t - lastDraw >= interval else { return }
                lastDraw = t
                write(TrainerConsole.progressLine(p) + "\n")
            }
        case .validated(let step, let m, let secs):
            message("step \(step) validation: " + TrainerConsole.metricsText(m) + String(format: " (%.1f s)", secs))
        case .stageStarted(let i, let n, let v):
            if n > 1 { message("stage \(i + 1)/\(n): \(v)") }
        case .checkpointSaved, .saved:
            break
        }
    }

    /// Ends the status line (call before printing a summary).
    public func finish() {
        if barShown { write("\n"); barShown = false }
    }

    /// "pixel acc 0.9123 mean acc 0.8012 mean IU 0.7031 fw IU 0.8610".
    public static func metricsText(_ m: ValidationMetrics) -> String {
        String(format: "pixel acc %.4f  mean acc %.4f  mean IU %.4f  fw IU %.4f",
               m.pixelAccuracy, m.meanClassAccuracy, m.meanIU, m.frequencyWeightedIU)
    }

    /// "1h02m", "3m12s", "45s".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = max(0, Int(seconds.rounded()))
        if s >= 3600 { return "\(s / 3600)h" + String(format: "%02dm", (s % 3600) / 60) }
        if s >= 60 { return "\(s / 60)m" + String(format: "%02ds", s % 60) }
        return "\(s)s"
    }

    /// The status line: bar, percentage, step, stage, loss (last and mean of recent steps),
    /// learning rate, throughput, ETA and the last mean IU.
    public static func progressLine(_ p: TrainerProgress, barWidth: Int = 20) -> String {
        let filled = min(barWidth, Int((p.fraction * Double(barWidth)).rounded(.down)))
        var s = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled) + "]"
        s += String(format: " %3d%% step %d", Int((p.fraction * 100).rounded(.down)), p.step)
        if let t = p.totalSteps { s += "/\(t)" }
        if p.stageCount > 1 { s += " stage \(p.stage + 1)/\(p.stageCount)" }
        s += " \(p.architecture)"
        s += String(format: " loss %.4f (avg %.4f) lr %.2e %.1f img/s", p.loss, p.smoothedLoss, p.learningRate, p.imagesPerSecond)
        s += " ETA " + (p.etaSeconds.map(duration) ?? "?")
        if let v = p.lastValidation { s += String(format: " mIU %.3f", v.meanIU) }
        return s
    }
}
