// Ranks agree on one clock and on stopping: before each step `Trainer.agree(stopRequested:)`
// gives every rank rank 0's elapsed and last-validation seconds and stops all ranks when any
// was asked to, so wall-clock budgets, phases and Ctrl-C take effect at the same step. The
// ranks run as threads (LocalTransport) with clocks set far apart on purpose.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNTraining
import FCNTestSupport

@Suite struct AgreedClockTests {
    func options() -> TrainerOptions {
        var o = TrainerOptions()
        o.model = .fcn32s
        o.width = 1.0 / 64
        o.imageSize = 16
        o.trainCount = 4
        o.valCount = 2
        o.minutes = 1
        o.batch = 2
        o.progress = false
        return o
    }

    @Test func ranksReadRankZerosClockAndStopTogether() throws {
        // (stop asked on rank 0, stop asked on rank 1) -> every rank stops?
        for (stop0, stop1) in [(false, false), (false, true), (true, false)] {
            let results = withLocalGroups(2) { g -> (elapsed: Double, finished: Bool, stop: Bool) in
                let trainer = try Trainer(options: self.options())
                try trainer.join(g)
                // Clocks far apart: rank 0 has used 10 s of its minute, rank 1 claims 59 s and
                // a 5 s validation, so by its own clock its stage would be over.
                trainer.elapsedBefore = g.rank == 0 ? 10 : 59
                trainer.lastValidationSeconds = g.rank == 0 ? 1 : 5
                let ownFinished = trainer.stageFinished
                #expect(ownFinished == (g.rank == 1), "rank \(g.rank) by its own clock")
                let stop = try trainer.agree(stopRequested: g.rank == 0 ? stop0 : stop1)
                return (trainer.elapsedSeconds, trainer.stageFinished, stop)
            }
            let values = try results.map { try $0.get() }
            for (rank, v) in values.enumerated() {
                #expect(v.elapsed == 10, "rank \(rank) reads \(v.elapsed) s, not rank 0's 10 s")
                #expect(!v.finished, "rank \(rank) ends its stage by a clock that is not rank 0's")
                #expect(v.stop == (stop0 || stop1), "rank \(rank): stop \(v.stop) for requests \(stop0), \(stop1)")
            }
        }
    }

    @Test func aloneTheTrainerKeepsItsOwnClock() throws {
        let trainer = try Trainer(options: options())
        trainer.elapsedBefore = 42
        #expect(try trainer.agree(stopRequested: true) && !(try trainer.agree(stopRequested: false)))
        #expect(trainer.agreedClock == nil && trainer.elapsedSeconds == 42)
    }
}
