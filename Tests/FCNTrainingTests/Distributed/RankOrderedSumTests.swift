// The group's algorithms between threads (LocalTransport): a rank-ordered sum equals the
// buffers added one after another in rank order, bit for bit, on every rank, for every
// length and piece size; broadcasts, gathers and bucketed averages deliver exactly what
// they promise. The same checks across real processes are in MPIProcessTests.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNTraining
import FCNTestSupport

/// Rank `rank`'s element `i`: signs and exponents (2^-20 ... 2^20) vary, so the order of
/// the additions of three or more ranks shows in the bits.
func spreadValue(_ salt: UInt64, _ rank: Int, _ i: Int) -> Float {
    var z = salt &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(rank) &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(i) &* 0x94D0_49BB_1331_11EB
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    let significand = Float(z & 0xFF_FFFF) / Float(1 << 24) + 1
    return Float(sign: (z >> 40) & 1 == 0 ? .plus : .minus, exponent: Int((z >> 24) % 41) - 20, significand: significand)
}

func spread(_ salt: UInt64, _ rank: Int, _ count: Int) -> [Float] { (0..<count).map { spreadValue(salt, rank, $0) } }

/// Buffers of `ranks` ranks added one after another, rank 0 first (or last).
func addedInOrder(_ buffers: [[Float]], reversed: Bool = false) -> [Float] {
    let order = reversed ? Array(buffers.reversed()) : buffers
    var acc = order[0]
    for b in order.dropFirst() { for i in acc.indices { acc[i] += b[i] } }
    return acc
}

func bits(_ x: [Float]) -> [UInt32] { x.map(\.bitPattern) }

@Suite struct RankOrderedSumTests {
    @Test(arguments: [2, 3, 4])
    func sumIsRankOrderOnEveryRank(ranks: Int) throws {
        for count in [1, ranks - 1, ranks, ranks + 1, 2 * ranks + 1, 1000, 4099] where count > 0 {
            let data = (0..<ranks).map { spread(UInt64(count), $0, count) }
            let expected = bits(addedInOrder(data))
            for (pieces, calls) in [(16 << 20, Int(Int32.max)), (7, Int(Int32.max)), (5 * ranks, 3), (1, 1)] {
                let results = withLocalGroups(ranks, tune: { $0.tuned(pieceElements: pieces, maxCallElements: calls) }) { g in
                    var x = data[g.rank]
                    try g.allSum(&x)
                    return bits(x)
                }
                for (r, result) in results.enumerated() {
                    #expect(try result.get() == expected, "\(ranks) ranks, \(count) elements, pieces \(pieces), calls \(calls): rank \(r)")
                }
            }
        }
    }

    /// The data tells the orders apart, so the test above would see a sum in another order.
    @Test func theDataDependsOnTheOrder() {
        let data = (0..<3).map { spread(9, $0, 4099) }
        let differing = zip(addedInOrder(data), addedInOrder(data, reversed: true)).filter { $0.bitPattern != $1.bitPattern }
        #expect(differing.count > 400, "\(differing.count) of 4099 elements depend on the order")
    }

    /// MPI_Allreduce's order is the library's (reverse rank order in LocalTransport): the
    /// algorithm choice is honoured, and Int64 sums are exact.
    @Test func allreduceAlgorithmAndIntegers() throws {
        let data = (0..<3).map { spread(4, $0, 1000) }
        let results = withLocalGroups(3) { g -> ([UInt32], [Int64], [String]) in
            var x = data[g.rank]
            try g.allSum(&x, algorithm: .mpiAllreduce)
            var ints = (0..<10).map { Int64(g.rank + 1) << 40 + Int64($0) }
            try g.tuned(maxCallElements: 4).allSum(&ints)
            return (bits(x), ints, (g.transport as! LocalTransport).calls)
        }
        for result in results {
            let (x, ints, calls) = try result.get()
            #expect(x == bits(addedInOrder(data, reversed: true)))
            #expect(ints == (0..<10).map { Int64(6) << 40 + 3 * Int64($0) })
            #expect(calls == ["allreduce", "allreduce", "allreduce", "allreduce"], "one float call, three Int64 pieces: \(calls)")
        }
    }

    @Test func doublesAndTensors() throws {
        let results = withLocalGroups(4) { g -> ([UInt64], [UInt32]) in
            var d = (0..<37).map { Double(spreadValue(3, g.rank, $0)) * 1e-3 }
            try g.allSum(&d)
            var t = Tensor(shape: [3, 11], scalars: spread(5, g.rank, 33))
            try g.allSum(&t)
            return (d.map(\.bitPattern), bits(t.scalars))
        }
        var expectedD = (0..<37).map { Double(spreadValue(3, 0, $0)) * 1e-3 }
        for r in 1..<4 { for i in 0..<37 { expectedD[i] += Double(spreadValue(3, r, i)) * 1e-3 } }
        let expectedT = bits(addedInOrder((0..<4).map { spread(5, $0, 33) }))
        for result in results {
            let (d, t) = try result.get()
            #expect(d == expectedD.map(\.bitPattern))
            #expect(t == expectedT)
        }
    }

    @Test func broadcastAndGather() throws {
        let results = withLocalGroups(3, tune: { $0.tuned(maxCallElements: 4) }) { g -> [String] in
            var log: [String] = []
            for root in 0..<3 {
                var f = spread(7, g.rank, 10)
                try f.withUnsafeMutableBufferPointer { try g.broadcast($0, from: root) }
                log.append(bits(f) == bits(spread(7, root, 10)) ? "ok" : "Float from \(root): \(f)")
                var bytes = g.rank == root ? Array("root \(root)".utf8) : []
                try g.broadcast(&bytes, from: root)
                log.append(String(decoding: bytes, as: UTF8.self) == "root \(root)" ? "ok" : "bytes from \(root): \(bytes)")
            }
            let all = try g.allGather((0..<5).map { Int64(g.rank * 100 + $0) })
            log.append(all == (0..<3).flatMap { r in (0..<5).map { Int64(r * 100 + $0) } } ? "ok" : "gather \(all)")
            return log
        }
        for result in results {
            let log = try result.get()
            #expect(log.allSatisfy { $0 == "ok" }, "\(log)")
        }
    }

    /// Bucketed averages: (rank-order sum) / size, the same bits whatever the bucket size,
    /// for raw buffers and for tensors (and bucketed sums: the rank-order sum itself); a
    /// plan over other counts on one rank is refused.
    @Test func bucketedAverage() throws {
        let counts = [3, 1000, 7, 5000, 1, 0, 50]
        let ranks = 3
        let data = (0..<ranks).map { r in counts.enumerated().map { spread(UInt64(10 + $0.offset), r, $0.element) } }
        let expected = counts.indices.map { k in bits(addedInOrder(data.map { $0[k] }).map { $0 / 3 }) }
        let expectedSums = counts.indices.map { k in bits(addedInOrder(data.map { $0[k] })) }
        for bucketBytes in [64, 4096, GradientBuckets.defaultBucketBytes] {
            let results = withLocalGroups(ranks) { g -> [[UInt32]] in
                let plan = try GradientBuckets(group: g, counts: counts, bucketBytes: bucketBytes)
                var sums = data[g.rank].map { Tensor(shape: [$0.count], scalars: $0) }
                try plan.sum(&sums)
                var tensors = data[g.rank].map { Tensor(shape: [$0.count], scalars: $0) }
                try plan.average(&tensors)
                var arrays = data[g.rank]
                let pointers = arrays.indices.map { k in
                    arrays[k].withUnsafeMutableBufferPointer { b -> UnsafeMutableBufferPointer<Float> in
                        let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: b.count)
                        _ = p.initialize(from: b)
                        return p
                    }
                }
                defer { pointers.forEach { $0.deallocate() } }
                try plan.average(pointers)
                arrays = pointers.map(Array.init)
                return tensors.map { bits($0.scalars) } + arrays.map(bits) + sums.map { bits($0.scalars) }
            }
            for result in results {
                let got = try result.get()
                #expect(Array(got[(2 * counts.count)...]) == expectedSums, "sums, \(bucketBytes)-byte buckets")
                #expect(Array(got[0..<counts.count]) == expected, "tensors, \(bucketBytes)-byte buckets")
                #expect(Array(got[counts.count ..< 2 * counts.count]) == expected, "buffers, \(bucketBytes)-byte buckets")
            }
        }
        let refused = withLocalGroups(ranks) { g in
            _ = try GradientBuckets(group: g, counts: g.rank == 1 ? counts + [2] : counts)
        }
        for result in refused {
            #expect(throws: DistributedError.self) { try result.get() }
        }
    }

    @Test func bucketPlan() {
        let counts = [3, 1000, 7, 300_001, 1, 0, 50]
        #expect(GradientBuckets.plan(counts: counts, capacity: 1009) == [0..<2, 2..<3, 3..<4, 4..<7])
        #expect(GradientBuckets.plan(counts: counts, capacity: 1010) == [0..<3, 3..<4, 4..<7])
        #expect(GradientBuckets.plan(counts: counts, capacity: 1) == [0..<1, 1..<2, 2..<3, 3..<4, 4..<6, 6..<7])
        #expect(GradientBuckets.plan(counts: counts, capacity: 1 << 30) == [0..<7])
        #expect(GradientBuckets.plan(counts: [], capacity: 10) == [])
    }
}
