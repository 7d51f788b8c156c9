// `fcn-mpi-check bench`: time per all-sum of Float buffers, both algorithms (see main.swift).
import FCN
import Foundation

/// `s` right-aligned in `width` columns.
func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// The median of this rank's times, then the slowest rank's median.
func slowestMedian(_ group: DistributedGroup, _ times: [Double]) throws -> Double {
    let sorted = times.sorted()
    let median = sorted[sorted.count / 2]
    return try group.allGather([median]).max()!
}

func runBench(_ group: DistributedGroup, sizesMB: [Double], iterations: Int?) throws {
    let algorithms: [(String, DistributedGroup.SumAlgorithm)] = [("rank-ordered", .rankOrdered), ("MPI_Allreduce", .mpiAllreduce)]
    let n = group.size
    if group.rank == 0 {
        print("fcn-mpi-check bench: \(n) ranks, \(group.backend)")
        print("       bytes      algorithm         time   algbw GB/s   busbw GB/s")
    }
    // Latency: a one-element sum, many times.
    for (name, algorithm) in algorithms {
        var one: [Float] = [0]
        try group.barrier()
        var times: [Double] = []
        for _ in 0..<(iterations ?? 2000) { times.append(try seconds { try group.allSum(&one, algorithm: algorithm) }) }
        let t = try slowestMedian(group, times)
        if group.rank == 0 { print(String(format: "%12d ", 4) + pad(name, 14) + String(format: " %9.1f us", t * 1e6)) }
    }
    for mb in sizesMB {
        let count = Int(mb * 1_048_576) / 4
        var buffer = [Float](repeating: 0, count: count)   // zeros: the sums stay finite
        let repeats = iterations ?? max(3, min(20, Int(1024 / max(mb, 1))))
        for (name, algorithm) in algorithms {
            try group.allSum(&buffer, algorithm: algorithm)   // warm-up: pages touched, connections up
            try group.barrier()
            var times: [Double] = []
            for _ in 0..<repeats { times.append(try seconds { try group.allSum(&buffer, algorithm: algorithm) }) }
            let t = try slowestMedian(group, times)
            let bytes = Double(count * 4)
            let algbw = bytes / t / 1e9
            if group.rank == 0 {
                print(String(format: "%12d ", count * 4) + pad(name, 14)
                      + String(format: " %9.2f ms %12.2f %12.2f", t * 1e3, algbw, algbw * 2 * Double(n - 1) / Double(n)))
                fflush(nil)
            }
        }
    }
}
