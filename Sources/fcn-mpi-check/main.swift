// fcn-mpi-check: the distributed group checked and measured across real processes.
//
//   mpirun -np 4 fcn-mpi-check [check]      every collective against values computed locally
//   mpirun -np 2 fcn-mpi-check bench [--sizes-mb 1,64,512] [--iterations N]
//   mpirun -np 2 fcn-mpi-check fail --rank R [--how exit|exit0|raw-exit|signal]
//   mpirun -np 2 fcn-mpi-check truncate     a collective that fails: its error ends the job
//   fcn-mpi-check info                      backend, rank and size (a group of one by hand)
//
// check: each rank can compute every rank's data (a hash of rank and index), so each rank
// knows the exact expected result of every collective and compares bits. Prints one line
// per rank, "fcn-mpi-check: rank R of N: K checks passed (...)", and exits 1 on the first
// failure (which aborts the job). Also run by hand, as a group of one.
// bench: seconds per all-sum of Float buffers of each size, both algorithms, slowest rank;
// "algbw" is bytes / time, "busbw" algbw * 2(N-1)/N (the bytes each rank sends and receives
// in a bandwidth-optimal all-reduce, as nccl-tests reports).
// fail: rank R leaves (exit status 3 through exit(), status 0, _exit(3) skipping the exit
// handler, or SIGKILL) while the others enter an all-sum; used to see that the job ends, not hangs.
import FCN
import FCNTools
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("-h") || arguments.contains("--help") {
    print("""
    usage: fcn-mpi-check [check | bench | fail | truncate | info] [options]

    Checks and measures the distributed group across real processes; run it under an MPI
    launcher (mpirun -np N, srun), or by hand as a group of one.

      check                 every collective against values each rank computes itself
                            (the default); one line per rank, "K checks passed"
      bench                 seconds per all-sum of Float buffers, both algorithms, slowest
                            rank, with algbw (bytes / time) and busbw (algbw * 2(N-1)/N)
        --sizes-mb A,B,...  buffer sizes in MB (default 1,64,512)
        --iterations N      all-sums per size (default: by size)
      fail                  one rank leaves while the others enter an all-sum: the job
                            must end, not hang
        --rank R            the rank that leaves (default 1)
        --how H             exit | exit0 | raw-exit | signal (default exit)
      truncate              a collective that fails: its error ends the job (status 5)
      info                  backend, rank and size
      -h, --help            this text

    Exit status: 0 done, 1 a check failed, 2 usage error or MPI could not be opened,
    3-5 the fail and truncate modes' own statuses.
    """)
    exit(0)
}
let mode = arguments.first.flatMap { $0.hasPrefix("--") ? nil : $0 } ?? "check"

func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}

func say(_ line: String) {
    print(line)
    fflush(nil)
}

let group: DistributedGroup
do {
    group = try DistributedGroup.initialize()
} catch {
    FileHandle.standardError.write(Data("fcn-mpi-check: \(error)\n".utf8))
    exit(2)
}

switch mode {
case "info":
    say("fcn-mpi-check: rank \(group.rank) of \(group.size): \(group.backend)")
case "check":
    let checks = Checks(group: group)
    do {
        try checks.runAll()
    } catch {
        checks.fail("\(error)")
    }
    say("fcn-mpi-check: rank \(group.rank) of \(group.size): \(checks.passed) checks passed (\(group.backend))")
case "bench":
    let sizes = (option("--sizes-mb") ?? "1,64,512").split(separator: ",").compactMap { Double($0) }
    do { try runBench(group, sizesMB: sizes, iterations: option("--iterations").flatMap { Int($0) }) } catch {
        group.abort("bench: \(error)")
    }
case "fail":
    let victim = option("--rank").flatMap { Int($0) } ?? 1
    let how = option("--how") ?? "exit"
    var buffer = [Float](repeating: 1, count: 1 << 20)
    try? group.barrier()
    if group.rank == victim {
        say("fcn-mpi-check: rank \(victim) leaves (\(how)) before the all-sum")
        if how == "signal" { kill(getpid(), SIGKILL) }
        if how == "raw-exit" { _exit(3) }   // skips the exit handler: what MPI alone does
        exit(how == "exit0" ? 0 : 3)
    }
    do {
        try group.allSum(&buffer)
        try group.barrier()
        say("fcn-mpi-check: rank \(group.rank): the collectives returned although rank \(victim) left")
    } catch {
        say("fcn-mpi-check: rank \(group.rank): collective failed: \(error)")
        exit(4)
    }
case "truncate":
    // Rank 0 broadcasts 1000 elements into the others' 10: MPI returns an error (the
    // communicator has MPI_ERRORS_RETURN), which comes back as DistributedError.callFailed.
    var buffer = [Float](repeating: 0, count: group.rank == 0 ? 1000 : 10)
    do {
        try buffer.withUnsafeMutableBufferPointer { try group.broadcast($0, from: 0) }
        try group.barrier()
        say("fcn-mpi-check: rank \(group.rank): the mismatched broadcast returned without error")
    } catch {
        group.abort("\(error)", code: 5)
    }
default:
    FileHandle.standardError.write(Data("fcn-mpi-check: unknown mode \(mode) (check, bench, fail, truncate, info)\n".utf8))
    exit(2)
}
