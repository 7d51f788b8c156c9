// fcn-train under mpirun: N ranks with batch B give the weights of one process with
// `--replicas N` bit for bit (the parts' gradients are added in the same order) and of one
// process with whole batches within 1e-5; the validation split over the ranks gives the
// same figures; only rank 0 writes; a checkpoint resumes with another number of ranks; a
// wall-clock budget reads rank 0's clock on every rank.
// Skipped where Open MPI's mpirun is missing (CI installs openmpi-bin).
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite(.serialized, .enabled(if: openMPIRun != nil, "mpirun (Open MPI) not found: `apt-get install openmpi-bin` to run fcn-train under MPI"))
struct DistributedTrainingTests {
    let trainer = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fcn-train").path
    let common = ["--model", "fcn8s", "--width", "0.03125", "--padding", "same", "--image-size", "32", "--train-count", "32",
                  "--val-count", "6", "--batch", "4", "--no-dropout", "--seed", "5", "--val-every", "0", "--threads", "1",
                  "--lovasz", "1", "--quiet"]

    func folder() -> String {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-mpi-train-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    func weights(_ dir: String) throws -> [String: Tensor] {
        try TrainingCheckpoint.load(from: dir + "/checkpoint.safetensors").model
    }

    func run(ranks: Int?, _ extra: [String]) throws -> (status: Int32, output: String) {
        let r = ranks.map { try? runProcess(openMPIRun!, ["--allow-run-as-root", "--oversubscribe", "-np", "\($0)", trainer] + common + extra, timeout: 300) }
            ?? (try? runProcess(trainer, common + extra, timeout: 300))
        let result = try #require(r)
        #expect(!result.timedOut, "fcn-train timed out: \(result.output)")
        return (result.status, result.output)
    }

    @Test(arguments: [2, 4])
    func ranksTrainLikeOneProcess(_ ranks: Int) throws {
        guard FileManager.default.isExecutableFile(atPath: trainer) else { Issue.record("\(trainer) missing"); return }
        let dir = folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mpi = try run(ranks: ranks, ["--steps", "3", "--out", dir + "/mpi"])
        #expect(mpi.status == 0, "\(mpi.output)")
        let parts = try run(ranks: nil, ["--steps", "3", "--replicas", "\(ranks)", "--out", dir + "/parts"])
        let whole = try run(ranks: nil, ["--steps", "3", "--out", dir + "/whole"])
        #expect(parts.status == 0 && whole.status == 0)
        let a = try weights(dir + "/mpi"), b = try weights(dir + "/parts"), c = try weights(dir + "/whole")
        #expect(a.keys.sorted() == b.keys.sorted())
        for (name, t) in a {
            #expect(bitIdentical(t, b[name]!), "\(name): \(ranks) ranks differ from --replicas \(ranks)")
            #expect(relativeError(t, c[name]!) < 1e-5, "\(name): \(relativeError(t, c[name]!)) from whole batches")
        }
        // The validation split over the ranks counts the same pixels.
        func validation(_ text: String) -> String? { text.split(separator: "\n").first { $0.hasPrefix("last validation:") }.map(String.init) }
        #expect(validation(mpi.output) != nil && validation(mpi.output) == validation(parts.output), "\(mpi.output)")
        // Only rank 0 writes and prints: one summary.
        #expect(mpi.output.components(separatedBy: "last validation:").count == 2)
        // Resumed with another number of ranks: the two more steps equal one process's resumed
        // with as many parts.
        let other = ranks == 2 ? 4 : 2
        let more = try run(ranks: other, ["--steps", "5", "--resume", dir + "/mpi/checkpoint.safetensors", "--out", dir + "/mpi"])
        let five = try run(ranks: nil, ["--steps", "5", "--replicas", "\(other)", "--resume", dir + "/parts/checkpoint.safetensors",
                                        "--out", dir + "/parts"])
        #expect(more.status == 0 && five.status == 0, "\(more.output)")
        let d = try weights(dir + "/mpi"), e = try weights(dir + "/parts")
        for (name, t) in d { #expect(bitIdentical(t, e[name]!), "\(name) after resuming with \(other) ranks") }
    }

    /// A wall-clock budget with stages and progressive phases: every decision is taken from
    /// rank 0's clock, so the ranks switch phase and stage at the same step. Ranks that
    /// disagreed would gather outputs of different sizes (an error) or wait forever in a
    /// collective (the timeout).
    @Test func timeBudgetsRunOnOneClockUnderMPI() throws {
        guard FileManager.default.isExecutableFile(atPath: trainer) else { Issue.record("\(trainer) missing"); return }
        let dir = folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try run(ranks: 2, ["--minutes", "0.08", "--staged", "--progressive", "16@0.5", "--out", dir])
        #expect(r.status == 0, "\(r.output)")
        let checkpoint = try TrainingCheckpoint.load(from: dir + "/checkpoint.safetensors")
        #expect(checkpoint.info["trainer.stage"] == "2", "\(checkpoint.info)")
        #expect(checkpoint.step > 3, "\(checkpoint.step) steps")
        #expect(r.output.components(separatedBy: "last validation:").count == 2, "\(r.output)")
    }
}
