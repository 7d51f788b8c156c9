// LocalTransport: the collectives of a distributed group between threads of this process,
// so the group's algorithms (rank-ordered sums, pieces, buckets) are tested without MPI.
// Each collective: every rank posts its pointer, all meet, each copies what MPI would
// deliver to it, all meet again (so no buffer is written while another rank reads it).
import Foundation
@testable import FCNCore
@testable import FCNTraining
import FCNTestSupport

/// A cyclic barrier for `size` threads, and the pointers they post for one collective.
final class LocalExchange: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var arrived = 0, generation = 0
    var posted: [UnsafeMutableRawPointer?]

    init(size: Int) {
        self.size = size
        posted = [UnsafeMutableRawPointer?](repeating: nil, count: size)
    }

    func meet() {
        condition.lock()
        let g = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while g == generation { condition.wait() }
        }
        condition.unlock()
    }
}

/// Bytes of one element of each collective type.
func elementBytes(_ type: CollectiveElement) -> Int {
    switch type {
    case .float: return 4
    case .double, .int64: return 8
    case .byte: return 1
    }
}

final class LocalTransport: CollectiveTransport, @unchecked Sendable {
    let rank: Int
    let exchange: LocalExchange
    var size: Int { exchange.size }
    /// Calls made, by name: tests count the pieces an algorithm sends.
    private(set) var calls: [String] = []

    init(rank: Int, exchange: LocalExchange) {
        self.rank = rank
        self.exchange = exchange
    }

    private func post(_ p: UnsafeMutableRawPointer) {
        exchange.posted[rank] = p
        exchange.meet()
    }

    /// Sums in reverse rank order: an order different from the rank-ordered algorithm's,
    /// as a real MPI_Allreduce may use.
    func allreduceSum(_ buffer: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws {
        calls.append("allreduce")
        post(buffer)
        let n = Int(count)
        var result = [UInt8](repeating: 0, count: n * elementBytes(type))
        result.withUnsafeMutableBytes { out in
            for r in (0..<size).reversed() {
                let src = exchange.posted[r]!
                for i in 0..<n {
                    switch type {
                    case .float:
                        let v = src.load(fromByteOffset: 4 * i, as: Float.self)
                        let acc = r == size - 1 ? v : out.load(fromByteOffset: 4 * i, as: Float.self) + v
                        out.storeBytes(of: acc, toByteOffset: 4 * i, as: Float.self)
                    case .double:
                        let v = src.load(fromByteOffset: 8 * i, as: Double.self)
                        let acc = r == size - 1 ? v : out.load(fromByteOffset: 8 * i, as: Double.self) + v
                        out.storeBytes(of: acc, toByteOffset: 8 * i, as: Double.self)
                    case .int64:
                        let v = src.load(fromByteOffset: 8 * i, as: Int64.self)
                        let acc = r == size - 1 ? v : out.load(fromByteOffset: 8 * i, as: Int64.self) &+ v
                        out.storeBytes(of: acc, toByteOffset: 8 * i, as: Int64.self)
                    case .byte:
                        out[i] = out[i] &+ src.load(fromByteOffset: i, as: UInt8.self)
                    }
                }
            }
        }
        exchange.meet()
        result.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    func allgather(_ send: UnsafeRawPointer?, _ recv: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws {
        calls.append("allgather")
        let bytes = Int(count) * elementBytes(type)
        post(send.map { UnsafeMutableRawPointer(mutating: $0) } ?? recv + rank * bytes)
        for r in 0..<size where !(send == nil && r == rank) {
            (recv + r * bytes).copyMemory(from: exchange.posted[r]!, byteCount: bytes)
        }
        exchange.meet()
    }

    func alltoall(_ send: UnsafeRawPointer, _ recv: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws {
        calls.append("alltoall")
        let bytes = Int(count) * elementBytes(type)
        post(UnsafeMutableRawPointer(mutating: send))
        for r in 0..<size {
            (recv + r * bytes).copyMemory(from: exchange.posted[r]! + rank * bytes, byteCount: bytes)
        }
        exchange.meet()
    }

    func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement, root: Int32) throws {
        calls.append("broadcast")
        post(buffer)
        if rank != Int(root) {
            buffer.copyMemory(from: exchange.posted[Int(root)]!, byteCount: Int(count) * elementBytes(type))
        }
        exchange.meet()
    }

    func barrier() throws {
        calls.append("barrier")
        exchange.meet()
    }

    func abort(code: Int32) -> Never { fatalError("LocalTransport.abort(\(code))") }
}

/// Runs `body(group)` for `size` ranks, each on a thread of its own, and returns their
/// results in rank order. `tune` adjusts each rank's group (pieces, call sizes).
func withLocalGroups<R>(_ size: Int, tune: (DistributedGroup) -> DistributedGroup = { $0 },
                        _ body: @escaping @Sendable (DistributedGroup) throws -> R) -> [Result<R, Error>] {
    let exchange = LocalExchange(size: size)
    let groups = (0..<size).map { tune(DistributedGroup(transport: LocalTransport(rank: $0, exchange: exchange), backend: .single)) }
    let results = LocalResults<R>(count: size)
    let done = DispatchGroup()
    for r in 0..<size {
        done.enter()
        let group = groups[r]
        let thread = Thread {
            results.set(r, Result { try body(group) })
            done.leave()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    done.wait()
    return results.values
}

final class LocalResults<R>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<R, Error>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: Result<R, Error>) { lock.lock(); slots[i] = value; lock.unlock() }
    var values: [Result<R, Error>] { lock.lock(); defer { lock.unlock() }; return slots.map { $0! } }
}
