// The checks of `fcn-mpi-check check` (see main.swift). Every rank computes every rank's
// data, so each expected result is known exactly; a failure aborts the whole job.
import FCN
import Foundation

/// Rank `rank`'s element `i` of test `salt`: signs and exponents (2^-20 ... 2^20) vary, so
/// the order of the additions shows in the bits of a sum of three or more ranks.
func value(_ salt: UInt64, _ rank: Int, _ i: Int) -> Double {
    var z = salt &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(rank) &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(i) &* 0x94D0_49BB_1331_11EB
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    let significand = Double(z & 0xFF_FFFF) / Double(1 << 24) + 1
    let exponent = Int((z >> 24) % 41) - 20
    return Double(sign: (z >> 40) & 1 == 0 ? .plus : .minus, exponent: exponent, significand: significand)
}

func floats(_ salt: UInt64, _ rank: Int, _ count: Int) -> [Float] { (0..<count).map { Float(value(salt, rank, $0)) } }
func doubles(_ salt: UInt64, _ rank: Int, _ count: Int) -> [Double] { (0..<count).map { value(salt, rank, $0) } }

/// Element-wise sum of every rank's data, added in rank order (or in reverse).
func rankOrderSum<T: BinaryFloatingPoint>(_ data: (Int) -> [T], ranks: Int, reversed: Bool = false) -> [T] {
    let order = reversed ? Array((0..<ranks).reversed()) : Array(0..<ranks)
    var acc = data(order[0])
    for r in order.dropFirst() {
        let d = data(r)
        for i in acc.indices { acc[i] += d[i] }
    }
    return acc
}

func sameBits(_ a: [Float], _ b: [Float]) -> Bool { a.map(\.bitPattern) == b.map(\.bitPattern) }
func sameBits(_ a: [Double], _ b: [Double]) -> Bool { a.map(\.bitPattern) == b.map(\.bitPattern) }

final class Checks {
    let group: DistributedGroup
    var passed = 0
    var n: Int { group.size }
    var rank: Int { group.rank }

    init(group: DistributedGroup) { self.group = group }

    func expect(_ condition: Bool, _ what: @autoclosure () -> String) {
        if condition { passed += 1 } else { fail(what()) }
    }

    func fail(_ message: String) -> Never {
        group.abort("fcn-mpi-check failed: \(message)", code: 1)
    }

    func runAll() throws {
        let env = ProcessInfo.processInfo.environment
        if let s = env["OMPI_COMM_WORLD_SIZE"] ?? env["PMI_SIZE"], let launched = Int(s) {
            expect(launched == n, "the launcher started \(launched) processes, the group has \(n)")
        }
        expect(rank >= 0 && rank < n, "rank \(rank) outside 0..<\(n)")
        try sums()
        try mpiAllreduce()
        try integers()
        try broadcasts()
        try gathers()
        try barrier()
        try buckets()
        try group.barrier()
    }

    /// Rank-ordered Float and Double sums: every length around multiples of the rank count,
    /// with the default pieces and with tiny pieces and calls, bit for bit.
    func sums() throws {
        // Tiny pieces and calls on the short buffers; on the long one, a few pieces of a
        // size that is not a multiple of anything in particular (each piece costs two
        // collectives, slow on an oversubscribed machine).
        let short = [group, group.tuned(pieceElements: 7 * n), group.tuned(pieceElements: 5, maxCallElements: 3)]
        let long = [group, group.tuned(pieceElements: 4099 * n, maxCallElements: 3001)]
        for count in [0, 1, n - 1, n, n + 1, 2 * n + 3, 1000, 20_011] {
            let views = count > 1000 ? long : short
            let salt = UInt64(count) &+ 17
            let expected = rankOrderSum({ floats(salt, $0, count) }, ranks: n)
            let expectedD = rankOrderSum({ doubles(salt, $0, count) }, ranks: n)
            for (v, view) in views.enumerated() {
                var x = floats(salt, rank, count)
                try view.allSum(&x)
                expect(sameBits(x, expected), "Float rank-ordered sum of \(count) elements (view \(v)) differs from the rank-order sum")
                var d = doubles(salt, rank, count)
                try view.allSum(&d)
                expect(sameBits(d, expectedD), "Double rank-ordered sum of \(count) elements (view \(v)) differs")
            }
            var t = Tensor(shape: [count], scalars: floats(salt, rank, count))
            try group.allSum(&t)
            expect(sameBits(t.scalars, expected), "Tensor sum of \(count) elements differs")
        }
        if n >= 3 {   // the data must tell orders apart for the checks above to mean anything
            let forward = rankOrderSum({ floats(5, $0, 20_011) }, ranks: n)
            let backward = rankOrderSum({ floats(5, $0, 20_011) }, ranks: n, reversed: true)
            let differing = zip(forward, backward).filter { $0.bitPattern != $1.bitPattern }.count
            expect(differing > 200, "only \(differing) of 20011 elements depend on the order of the ranks")
        }
    }

    /// MPI_Allreduce: the library's order; close to the rank-order sum, exact for 2 ranks
    /// (a + b == b + a). Reports how many elements differ from rank order.
    func mpiAllreduce() throws {
        let count = 20_011
        let expected = rankOrderSum({ floats(9, $0, count) }, ranks: n)
        var x = floats(9, rank, count)
        try group.tuned(maxCallElements: 8_000).allSum(&x, algorithm: .mpiAllreduce)
        let magnitude = rankOrderSum({ floats(9, $0, count).map(abs) }, ranks: n)
        for i in 0..<count where abs(x[i] - expected[i]) > 1e-6 * magnitude[i] {
            fail("MPI_Allreduce element \(i): \(x[i]) vs rank-order \(expected[i])")
        }
        passed += 1
        let differing = zip(x, expected).filter { $0.bitPattern != $1.bitPattern }.count
        if n <= 2 { expect(differing == 0, "MPI_Allreduce of 2 ranks differs from a + b in \(differing) elements") }
        if rank == 0 {
            print("fcn-mpi-check: MPI_Allreduce differs from the rank-order sum in \(differing) of \(count) elements")
        }
    }

    func integers() throws {
        let count = 1001
        func data(_ r: Int) -> [Int64] { (0..<count).map { Int64(r + 1) << 33 + Int64($0) * Int64(r + 1) - 7 } }
        let expected = (0..<count).map { i in (0..<n).reduce(Int64(0)) { $0 + data($1)[i] } }
        for view in [group, group.tuned(maxCallElements: 3)] {
            var x = data(rank)
            try view.allSum(&x)
            expect(x == expected, "Int64 sum differs")
        }
    }

    func broadcasts() throws {
        let chunked = group.tuned(maxCallElements: 100)
        for root in 0..<n {
            let salt = UInt64(100 + root)
            for view in [group, chunked] {
                var f = floats(salt, rank, 1001)
                try f.withUnsafeMutableBufferPointer { try view.broadcast($0, from: root) }
                expect(sameBits(f, floats(salt, root, 1001)), "Float broadcast from \(root)")
                var d = doubles(salt, rank, 333)
                try d.withUnsafeMutableBufferPointer { try view.broadcast($0, from: root) }
                expect(sameBits(d, doubles(salt, root, 333)), "Double broadcast from \(root)")
            }
            var bytes = [UInt8]("rank \(rank) says hello".utf8)
            if rank != root { bytes = [] }
            try group.broadcast(&bytes, from: root)
            expect(String(decoding: bytes, as: UTF8.self) == "rank \(root) says hello", "byte array broadcast from \(root): \(bytes)")
            var ints = rank == root ? (0..<(10 + root)).map { Int64($0 * 1000 + root) } : [Int64](repeating: -1, count: 3)
            try chunked.broadcast(&ints, from: root)
            expect(ints == (0..<(10 + root)).map { Int64($0 * 1000 + root) }, "Int64 array broadcast from \(root) (resized)")
            var t = Tensor(shape: [2, 3], scalars: floats(salt, rank, 6))
            try group.broadcast(&t, from: root)
            expect(sameBits(t.scalars, floats(salt, root, 6)) && t.shape == [2, 3], "Tensor broadcast from \(root)")
        }
    }

    func gathers() throws {
        let mine = (0..<3).map { Int64(rank * 10 + $0) }
        let all = try group.allGather(mine)
        expect(all == (0..<n).flatMap { r in (0..<3).map { Int64(r * 10 + $0) } }, "allGather Int64: \(all)")
        let d = try group.tuned(maxCallElements: 2 * n).allGather(doubles(3, rank, 5))
        expect(sameBits(d, (0..<n).flatMap { doubles(3, $0, 5) }), "allGather Double in pieces")
    }

    /// Rank 0 arrives 0.3 s late; everyone else must wait for it.
    func barrier() throws {
        guard n > 1 else { try group.barrier(); passed += 1; return }
        try group.barrier()
        let start = Date()
        if rank == 0 { Thread.sleep(forTimeInterval: 0.3) }
        try group.barrier()
        let waited = Date().timeIntervalSince(start)
        expect(waited >= 0.25, "rank \(rank) left the barrier after \(waited) s although rank 0 arrived 0.3 s late")
    }

    func buckets() throws {
        let counts = [3, 1000, 7, 30_011, 1, 0, 50, 2048]
        let perRank = (0..<n).map { r in counts.enumerated().map { floats(UInt64(200 + $0.offset), r, $0.element) } }
        func data(_ r: Int) -> [[Float]] { perRank[r] }
        let divisor = Float(n)
        let expected: [[Float]] = counts.indices.map { k in
            rankOrderSum({ perRank[$0][k] }, ranks: n).map { $0 / divisor }
        }
        for bucketBytes in [4096, GradientBuckets.defaultBucketBytes] {
            let plan = try GradientBuckets(group: group, counts: counts, bucketBytes: bucketBytes)
            for b in plan.buckets {
                let bytes = b.reduce(0) { $0 + counts[$1] } * 4
                expect(b.count == 1 || bytes <= bucketBytes, "bucket \(b) holds \(bytes) bytes > \(bucketBytes)")
            }
            let pointers = data(rank).map { values in
                let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
                _ = p.initialize(from: values)
                return p
            }
            defer { pointers.forEach { $0.deallocate() } }
            try plan.average(pointers)
            for k in counts.indices {
                expect(sameBits(Array(pointers[k]), expected[k]), "bucketed average of buffer \(k) (\(bucketBytes)-byte buckets)")
            }
            var tensors = data(rank).enumerated().map { Tensor(shape: [$0.element.count], scalars: $0.element) }
            try plan.average(&tensors)
            for k in counts.indices {
                expect(sameBits(tensors[k].scalars, expected[k]), "bucketed average of tensor \(k) (\(bucketBytes)-byte buckets)")
            }
        }
        if n > 1 {   // one rank with another model: every rank must refuse the plan
            let mine = rank == n - 1 ? counts + [5] : counts
            do {
                _ = try GradientBuckets(group: group, counts: mine)
                fail("a plan over different counts on rank \(n - 1) was accepted")
            } catch DistributedError.mismatch(let message) {
                expect(message.contains("rank"), "mismatch message: \(message)")
            }
        }
    }
}
