// The distributed group across real processes: `fcn-mpi-check` (built with the tests, next
// to the test binary) under Open MPI's mpirun with 2 and 4 ranks, and under MPICH's
// mpiexec when that is installed too. Skipped, with a message, where mpirun is missing
// (Debian: `apt-get install openmpi-bin`; CI installs it).
//
// What runs: `check` compares every collective's result with values each rank computes for
// all ranks (bit for bit for rank-ordered sums, broadcasts, gathers and bucketed averages);
// `fail` makes one rank leave while the others are entering an all-sum, and the job must
// end (not hang) with a nonzero status; `truncate` makes a collective fail, and its error,
// with MPI's message, must end the job.
import Foundation
import Testing

import FCNTestSupport

@Suite(.serialized, .enabled(if: openMPIRun != nil, "mpirun (Open MPI) not found: `apt-get install openmpi-bin` to run the multi-process tests"))
struct MPIProcessTests {
    /// fcn-mpi-check beside the test binary (SwiftPM builds every product with the tests).
    func checker() throws -> String {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("fcn-mpi-check").path
        guard FileManager.default.isExecutableFile(atPath: exe) else {
            throw CheckerMissing(path: exe)
        }
        return exe
    }

    struct CheckerMissing: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) is missing: build it with `swift build --product fcn-mpi-check`" }
    }

    func openMPI(_ ranks: Int, _ arguments: [String], timeout: Double = 180) throws -> (status: Int32, output: String, seconds: Double, timedOut: Bool) {
        // Root in CI containers; more ranks than the 2 cores.
        try runProcess(openMPIRun!, ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", try checker()] + arguments,
                       timeout: timeout)
    }

    /// Every rank printed its summary line, all with the same number of passed checks.
    /// (Searched anywhere in the output: Hydra may join two ranks' lines.)
    func expectAllRanksPassed(_ run: (status: Int32, output: String, seconds: Double, timedOut: Bool), ranks: Int, abi: String) {
        #expect(!run.timedOut && run.status == 0, "status \(run.status) after \(run.seconds) s:\n\(run.output)")
        var passed: Set<Int> = []
        for r in 0..<ranks {
            let prefix = "fcn-mpi-check: rank \(r) of \(ranks): "
            guard let at = run.output.range(of: prefix) else {
                Issue.record("no summary line for rank \(r):\n\(run.output)")
                continue
            }
            let rest = run.output[at.upperBound...]
            guard let n = rest.prefix(while: \.isNumber).nonEmpty.flatMap({ Int($0) }) else {
                Issue.record("no count of checks for rank \(r): \(rest.prefix(80))")
                continue
            }
            passed.insert(n)
            #expect(rest.dropFirst("\(n)".count).hasPrefix(" checks passed (MPI (\(abi)"), "\(rest.prefix(80))")
        }
        #expect(passed.count == 1 && passed.first! > 100, "passed counts \(passed)")
    }

    @Test(arguments: [2, 4])
    func openMPICollectivesAreExact(ranks: Int) throws {
        expectAllRanksPassed(try openMPI(ranks, ["check"]), ranks: ranks, abi: "Open MPI")
    }

    /// A rank that exits with status 3 (the exit handler aborts the job), exits through
    /// _exit (no handler: mpirun notices), or is killed: the job ends, nonzero, promptly.
    @Test(arguments: ["exit", "raw-exit", "signal"])
    func aFailingRankEndsTheJob(how: String) throws {
        let run = try openMPI(2, ["fail", "--rank", "1", "--how", how], timeout: 90)
        #expect(!run.timedOut, "the job hung after rank 1 left (\(how)):\n\(run.output)")
        #expect(run.status != 0, "status 0 although rank 1 failed:\n\(run.output)")
        #expect(!run.output.contains("the collectives returned"), "\(run.output)")
        if how == "exit" {
            #expect(run.output.contains("rank 1 is exiting with status 3; aborting the MPI job"), "\(run.output)")
            #expect(run.status == 3, "MPI_Abort's code is the exit status: \(run.status)")
        }
    }

    @Test func aFailedCollectiveNamesTheCallAndMPIsMessage() throws {
        let run = try openMPI(2, ["truncate"], timeout: 90)
        #expect(!run.timedOut && run.status == 5, "status \(run.status):\n\(run.output)")
        #expect(run.output.contains("MPI_Bcast failed (MPI error") && run.output.lowercased().contains("truncat"), "\(run.output)")
    }

    /// The MPICH ABI, where Debian's mpich package is installed beside Open MPI: Hydra's
    /// variables put libmpich.so.12 first. Not required in CI.
    @Test(.enabled(if: hydraRun != nil, "MPICH's mpiexec not found (`apt-get install mpich` to check the MPICH ABI)"))
    func mpichCollectivesAreExact() throws {
        let run = try runProcess(hydraRun!, ["-n", "2", try checker(), "check"], timeout: 180)
        expectAllRanksPassed(run, ranks: 2, abi: "MPICH")
    }
}

extension Substring {
    var nonEmpty: Substring? { isEmpty ? nil : self }
}
