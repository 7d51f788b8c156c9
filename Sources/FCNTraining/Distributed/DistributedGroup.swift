// DistributedGroup: the processes of a data-parallel job, modelled on MLX's mx.distributed.
//
//   let group = try DistributedGroup.initialize()     // size 1 unless started by mpirun/srun
//   try group.allSum(&confusion)                      // Double or Int64 counters: exact
//   try group.broadcast(&weights, from: 0)            // every rank starts from rank 0's state
//   try GradientBuckets(group: group, counts: sizes).average(gradients)
//
// Contract:
// * A process started by hand (no launcher variables, see DistributedLaunch) is a group of
//   one: rank 0, size 1, every collective is the identity, and no MPI library is opened,
//   so single-process programs run unchanged on machines without MPI.
// * A process started by an MPI launcher opens MPI with dlopen (FCN_MPI_LIBRARY first),
//   initialises it once for the process (MPI_THREAD_SERIALIZED) and forms MPI_COMM_WORLD.
//   Failures throw `DistributedError` naming the library, the call and MPI's message; a
//   launcher whose library cannot be found is an error, never a silent group of one
//   (that would train N independent models).
// * Collectives are calls every rank makes in the same order with the same counts, as in
//   MPI. They block; the group serialises them, so several threads may share a group.
// * Sums of Float and Double are rank-ordered by default: element i of the result is
//   ((x0[i] + x1[i]) + x2[i]) + ... with xr rank r's buffer, bit for bit on every rank and
//   for every buffer length and chunking. That is the order in which `DataParallelBatch`
//   adds its parts' gradients, so N processes with one part each reproduce one process
//   with N parts exactly (the per-part gradients being equal). Int64 sums are exact in any
//   order and use MPI_Allreduce.
// * Ending: on exit status 0 MPI is finalised; on any other exit status (a failed rank)
//   the job is aborted with MPI_Abort so the other ranks stop instead of waiting. A rank
//   killed by a signal is noticed by the launcher, which ends the job. `abort(_:code:)`
//   ends the whole job on purpose. Checked with Open MPI 4.1, 2 ranks, rank 1 leaving as
//   rank 0 enters an all-sum: exit(3) ends the job with status 3; SIGKILL, or _exit(3)
//   past the handler, ends it too, a little later (mpirun's doing); finalising on exit(3)
//   instead hung (timings: Benchmarks.md, Distributed training). MPI_Finalize waits for
//   every rank, so a rank that stops early with status 0 while the others wait in a
//   collective hangs the job: a rank that gives up must exit non-zero, or call `abort`, or
//   return the error to code that does.
// * A collective that fails (MPI returns an error: the communicator has MPI_ERRORS_RETURN)
//   throws `DistributedError.callFailed` naming the call and MPI_Error_string's text. The
//   other ranks may be waiting in it: end the job (`abort`, or a non-zero exit).

import FCNCore
import Foundation

/// The processes of a distributed job and the collectives between them (see file contract).
public final class DistributedGroup: @unchecked Sendable {
    /// How `initialize` chooses between one process and MPI.
    public enum Mode: Sendable {
        /// MPI when a launcher's variables are in the environment, else a group of one.
        case automatic
        /// MPI whatever the environment (a process started by hand forms an MPI group of one).
        case mpi
        /// A group of one; MPI is never opened.
        case single
    }

    /// How a sum of floating-point buffers is computed across ranks.
    public enum SumAlgorithm: Sendable {
        /// Deterministic: reduce-scatter with MPI_Alltoall, each rank adding its share of the
        /// elements in rank order, then MPI_Allgather. Every rank gets the same bits, equal to
        /// adding the ranks' buffers one after another in rank order. It moves 2(N-1)/N of the
        /// buffer per rank, as a ring all-reduce does.
        case rankOrdered
        /// MPI_Allreduce with MPI_SUM: the library picks the algorithm, and so the order of
        /// the additions (which can change with the rank count, message size and tuning).
        case mpiAllreduce
    }

    /// What carries the collectives.
    public enum Backend: Equatable, Sendable, CustomStringConvertible {
        /// One process, no communication.
        case single
        /// MPI opened from `library`, of binary interface `abi`; `version` is the first line
        /// of MPI_Get_library_version.
        case mpi(library: String, abi: MPIABI, version: String)

        public var description: String {
            switch self {
            case .single: return "single process"
            case .mpi(let library, let abi, let version): return "MPI (\(abi.rawValue), \(library): \(version))"
            }
        }
    }

    /// This process's index in the group, `0..<size`.
    public let rank: Int
    /// The number of processes in the group.
    public let size: Int
    /// What carries the collectives.
    public let backend: Backend

    let transport: (any CollectiveTransport)?
    /// Largest element count of one transport call: Int32.max for MPI's `int` counts
    /// (smaller in tests, to exercise the splitting of buffers).
    let maxCount: Int
    /// Elements of one piece of a rank-ordered sum: bounds its scratch memory (16 Mi
    /// elements, 64 MB of Float, by default).
    let pieceElements: Int
    /// The lock and scratch memory shared by the `tuned` views of one group.
    let shared: SharedState

    init(transport: (any CollectiveTransport)?, backend: Backend, maxCount: Int = Int(Int32.max),
         pieceElements: Int = 16 << 20, shared: SharedState = SharedState()) {
        precondition(maxCount >= 1 && maxCount <= Int(Int32.max) && pieceElements >= 1,
                     "DistributedGroup: maxCount must lie in 1...Int32.max and pieceElements be positive")
        self.shared = shared
        self.transport = transport
        self.rank = transport?.rank ?? 0
        self.size = transport?.size ?? 1
        self.backend = backend
        self.maxCount = maxCount
        self.pieceElements = pieceElements
    }

    /// The same group (same processes, lock and scratch) splitting its buffers differently:
    /// `pieceElements` bounds the scratch memory of a rank-ordered sum (default 16 Mi
    /// elements), `maxCallElements` the count of one MPI call (default and upper bound
    /// Int32.max, MPI's `int`). Only speed and memory change: results are the same bits.
    public func tuned(pieceElements: Int? = nil, maxCallElements: Int? = nil) -> DistributedGroup {
        DistributedGroup(transport: transport, backend: backend, maxCount: maxCallElements ?? maxCount,
                         pieceElements: pieceElements ?? self.pieceElements, shared: shared)
    }

    /// A group of one process: rank 0, size 1, collectives are the identity.
    public static func single() -> DistributedGroup { DistributedGroup(transport: nil, backend: .single) }

    /// The group of this process: a group of one, or MPI_COMM_WORLD (see the file contract
    /// and `Mode`). MPI is initialised at most once per process: every call that uses MPI
    /// returns the same group, or throws the same error as the first.
    public static func initialize(_ mode: Mode = .automatic) throws -> DistributedGroup {
        let launch = DistributedLaunch.current()
        switch mode {
        case .single: return single()
        case .automatic where launch == nil: return single()
        default: break
        }
        return try World.shared.group {
            let env = processEnvironment()
            let candidates = DistributedLaunch.libraryCandidates(launcher: launch?.launcher,
                                                                  override: env[DistributedLaunch.libraryVariable])
            let t = try MPITransport.open(candidates: candidates, launch: launch)
            return DistributedGroup(transport: t, backend: .mpi(library: t.library, abi: t.abi, version: t.version))
        }
    }

    /// The MPI world group, made once per process.
    private final class World: @unchecked Sendable {
        static let shared = World()
        private let lock = NSLock()
        private var result: Result<DistributedGroup, DistributedError>?
        func group(_ make: () throws -> DistributedGroup) throws -> DistributedGroup {
            lock.lock(); defer { lock.unlock() }
            if result == nil {
                do { result = .success(try make()) } catch let e as DistributedError { result = .failure(e) }
            }
            return try result!.get()
        }
    }

    // MARK: Collectives

    /// Blocks until every rank has called `barrier`.
    public func barrier() throws {
        guard let t = transport else { return }
        try serialised { try t.barrier() }
    }

    /// Replaces `buffer` on every rank by the element-wise sum of all ranks' buffers
    /// (see `SumAlgorithm`; every rank passes the same count).
    public func allSum(_ buffer: UnsafeMutableBufferPointer<Float>, algorithm: SumAlgorithm = .rankOrdered) throws {
        try floatingSum(buffer, algorithm: algorithm)
    }

    /// Double version of `allSum(_:algorithm:)` (confusion matrices, loss totals).
    public func allSum(_ buffer: UnsafeMutableBufferPointer<Double>, algorithm: SumAlgorithm = .rankOrdered) throws {
        try floatingSum(buffer, algorithm: algorithm)
    }

    /// Int64 version: integer sums are exact in any order, so this is MPI_Allreduce.
    /// Overflow wraps as MPI's does (two's complement); keep counters far from 2^63.
    public func allSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws {
        guard let t = transport, buffer.count > 0 else { return }
        try serialised { try allreduceInPieces(buffer, t) }
    }

    /// `allSum` on an array, in place.
    public func allSum(_ values: inout [Float], algorithm: SumAlgorithm = .rankOrdered) throws {
        try values.withUnsafeMutableBufferPointer { try allSum($0, algorithm: algorithm) }
    }
    /// `allSum` on an array, in place.
    public func allSum(_ values: inout [Double], algorithm: SumAlgorithm = .rankOrdered) throws {
        try values.withUnsafeMutableBufferPointer { try allSum($0, algorithm: algorithm) }
    }
    /// `allSum` on an array, in place.
    public func allSum(_ values: inout [Int64]) throws {
        try values.withUnsafeMutableBufferPointer { try allSum($0) }
    }
    /// `allSum` on a tensor's elements, in place (copy-on-write first if its storage is shared).
    /// Every rank passes a tensor of the same element count.
    public func allSum(_ tensor: inout Tensor, algorithm: SumAlgorithm = .rankOrdered) throws {
        guard transport != nil else { return }
        try tensor.withUnsafeMutableBufferPointer { try allSum($0, algorithm: algorithm) }
    }

    /// Copies `root`'s buffer into every other rank's (same count on every rank).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws { try bcast(buffer, root) }
    /// Copies `root`'s buffer into every other rank's (same count on every rank).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, from root: Int) throws { try bcast(buffer, root) }
    /// Copies `root`'s buffer into every other rank's (same count on every rank).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Int64>, from root: Int) throws { try bcast(buffer, root) }
    /// Copies `root`'s bytes into every other rank's (same count on every rank).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<UInt8>, from root: Int) throws { try bcast(buffer, root) }

    /// Makes every rank's array equal to `root`'s, resizing the others' to its count (the
    /// count is broadcast first): for a configuration, a checkpoint's bytes, a seed.
    public func broadcast(_ values: inout [Float], from root: Int) throws { try bcastArray(&values, root) }
    /// Array version of `broadcast(_:from:)`, resizing to `root`'s count.
    public func broadcast(_ values: inout [Double], from root: Int) throws { try bcastArray(&values, root) }
    /// Array version of `broadcast(_:from:)`, resizing to `root`'s count.
    public func broadcast(_ values: inout [Int64], from root: Int) throws { try bcastArray(&values, root) }
    /// Array version of `broadcast(_:from:)`, resizing to `root`'s count.
    public func broadcast(_ values: inout [UInt8], from root: Int) throws { try bcastArray(&values, root) }

    /// Copies `root`'s tensor elements into every other rank's tensor; the shapes must agree
    /// (parameters of one model built the same way on every rank).
    public func broadcast(_ tensor: inout Tensor, from root: Int) throws {
        checkRoot(root, "broadcast")
        guard transport != nil else { return }
        try tensor.withUnsafeMutableBufferPointer { try bcast($0, root) }
    }

    /// Every rank's `values` joined in rank order (every rank passes the same count).
    public func allGather(_ values: [Int64]) throws -> [Int64] { try gather(values) }
    /// Every rank's `values` joined in rank order (every rank passes the same count).
    public func allGather(_ values: [Double]) throws -> [Double] { try gather(values) }
    /// Every rank's `values` joined in rank order (every rank passes the same count).
    public func allGather(_ values: [Float]) throws -> [Float] { try gather(values) }

    /// Ends the whole job: prints "rank R: message" to standard error and aborts every
    /// rank (MPI_Abort), or exits this process with `code` in a group of one. For a
    /// failure one rank sees alone, where returning would leave the others waiting.
    public func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("fcn: rank \(rank) of \(size): \(message)\n".utf8))
        guard let t = transport else { exit(code) }
        t.abort(code: code)
    }

    // MARK: Implementation

    func serialised<R>(_ body: () throws -> R) rethrows -> R {
        shared.lock.lock(); defer { shared.lock.unlock() }
        return try body()
    }

    /// What the views of one group share: the lock that serialises its collectives (a
    /// multi-call collective such as a rank-ordered sum or an array broadcast holds it
    /// throughout) and the scratch memory of rank-ordered sums, kept between calls (one
    /// piece at most: 64 MB by default) since allocating and faulting in a fresh piece
    /// each call cost more than the copy itself.
    final class SharedState: @unchecked Sendable {
        let lock = NSRecursiveLock()
        private var scratch: UnsafeMutableRawPointer?
        private var capacity = 0

        /// At least `bytes` of scratch; call with `lock` held.
        func scratch(bytes: Int) -> UnsafeMutableRawPointer {
            if capacity < bytes || scratch == nil {
                scratch?.deallocate()
                scratch = .allocate(byteCount: max(bytes, 64), alignment: 64)
                capacity = max(bytes, 64)
            }
            return scratch!
        }

        deinit { scratch?.deallocate() }
    }

    func checkRoot(_ root: Int, _ op: String) {
        if root < 0 || root >= size {
            fatalError("DistributedGroup.\(op): root \(root) is out of range for a group of \(size) (ranks 0..<\(size))")
        }
    }

    func allreduceInPieces<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ t: any CollectiveTransport) throws {
        var start = 0
        while start < buffer.count {
            let n = min(maxCount, buffer.count - start)
            try t.allreduceSum(UnsafeMutableRawPointer(buffer.baseAddress! + start), count: Int32(n), type: T.collectiveElement)
            start += n
        }
    }

    private func bcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, _ root: Int) throws {
        checkRoot(root, "broadcast")
        guard let t = transport, buffer.count > 0 else { return }
        try serialised {
            var start = 0
            while start < buffer.count {
                let n = min(maxCount, buffer.count - start)
                try t.broadcast(UnsafeMutableRawPointer(buffer.baseAddress! + start), count: Int32(n),
                                type: T.collectiveElement, root: Int32(root))
                start += n
            }
        }
    }

    private func bcastArray<T: CollectiveScalar & Numeric>(_ values: inout [T], _ root: Int) throws {
        checkRoot(root, "broadcast")
        guard transport != nil else { return }
        try serialised {
            var count = [Int64(values.count)]
            try count.withUnsafeMutableBufferPointer { try bcast($0, root) }
            if rank != root { values = [T](repeating: 0, count: Int(count[0])) }
            try values.withUnsafeMutableBufferPointer { try bcast($0, root) }
        }
    }

    private func gather<T: CollectiveScalar & Numeric>(_ values: [T]) throws -> [T] {
        guard let t = transport else { return values }
        var out = [T](repeating: 0, count: values.count * size)
        if values.isEmpty { return out }
        let perCall = max(1, maxCount / size)   // the receive count of one call is size * n
        try serialised {
            var piece = [T](repeating: 0, count: min(perCall, values.count) * size)
            var start = 0
            while start < values.count {
                let n = min(perCall, values.count - start)
                try values.withUnsafeBufferPointer { src in
                    try piece.withUnsafeMutableBytes { dst in
                        try t.allgather(UnsafeRawPointer(src.baseAddress! + start), dst.baseAddress!,
                                        count: Int32(n), type: T.collectiveElement)
                    }
                }
                for r in 0..<size {
                    for i in 0..<n { out[r * values.count + start + i] = piece[r * n + i] }
                }
                start += n
            }
        }
        return out
    }
}
