// GradientBuckets: averaging a model's gradients across the ranks of a group, in buckets.
//
// Why buckets: a model has many small gradients (biases of a few hundred elements) and a
// few large ones; one collective per tensor pays the latency of a collective each time,
// one collective for the whole model needs a copy of the whole model. Packing consecutive
// buffers into buckets of about `bucketBytes` (25 MB by default, as PyTorch's
// DistributedDataParallel) pays one latency per bucket with bounded extra memory.
//
// Contract:
//   let plan = try GradientBuckets(group: group, counts: params.map { $0.value.count })
//   ... backward on this rank's part of the batch ...
//   try plan.average(&grads)            // [Tensor] in the same order as `counts`
//   (or `plan.sum(&grads)` where the gradients of one loss over the global batch add up)
// * `init` is collective: every rank builds its plan with the same `counts` (the same
//   model). It checks that, with one all-gather, and throws `DistributedError.mismatch`
//   naming the ranks that differ, rather than let mismatched buffers meet in a collective.
// * Buckets hold consecutive buffers in the given order, each at most `bucketBytes`, and a
//   buffer larger than that alone (summed in place, without a copy).
// * `average` is collective: each element becomes (x0 + x1 + ... in rank order) / size,
//   computed with the group's rank-ordered sum, so the result is the same bits on every
//   rank and does not depend on `bucketBytes`. With size 1 it returns at once (x / 1 == x).
// * A plan is not reentrant: one `average` at a time (calls are serialised by a lock).

import FCNCore
import Foundation

/// Averages ordered lists of Float32 buffers across a group in buckets (see file contract).
public final class GradientBuckets: @unchecked Sendable {
    /// PyTorch DistributedDataParallel's default bucket size, 25 MiB.
    public static let defaultBucketBytes = 25 << 20

    public let group: DistributedGroup
    /// Element count of each buffer, in order.
    public let counts: [Int]
    /// Upper bound of a bucket in bytes (a larger single buffer forms a bucket of its own).
    public let bucketBytes: Int
    /// The buckets, as ranges of indices into `counts`.
    public let buckets: [Range<Int>]

    private var staging: [Float]
    private let lock = NSLock()

    /// Plans the buckets and checks, collectively, that every rank has the same `counts`.
    public init(group: DistributedGroup, counts: [Int], bucketBytes: Int = GradientBuckets.defaultBucketBytes) throws {
        precondition(bucketBytes >= MemoryLayout<Float>.size, "GradientBuckets: bucketBytes must hold one Float, got \(bucketBytes)")
        precondition(counts.allSatisfy { $0 >= 0 }, "GradientBuckets: counts must not be negative, got \(counts)")
        self.group = group
        self.counts = counts
        self.bucketBytes = bucketBytes
        self.buckets = GradientBuckets.plan(counts: counts, capacity: bucketBytes / MemoryLayout<Float>.size)
        let largestPacked = buckets.filter { $0.count > 1 || counts[$0.lowerBound] * 4 <= bucketBytes }
            .map { r in r.reduce(0) { $0 + counts[$1] } }.max() ?? 0
        staging = group.size > 1 ? [Float](repeating: 0, count: largestPacked) : []
        try verify()
    }

    /// Consecutive buffers packed greedily into buckets of at most `capacity` elements; a
    /// buffer above `capacity` forms a bucket of its own.
    static func plan(counts: [Int], capacity: Int) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = 0, filled = 0
        for (i, c) in counts.enumerated() {
            if i > start && filled + c > capacity {
                result.append(start ..< i)
                start = i; filled = 0
            }
            filled += c
        }
        if start < counts.count { result.append(start ..< counts.count) }
        return result
    }

    /// One all-gather of (buffer count, total elements, FNV-1a hash of the counts).
    private func verify() throws {
        guard group.size > 1 else { return }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for c in counts { hash = (hash ^ UInt64(c)) &* 0x0000_0100_0000_01b3 }
        let mine: [Int64] = [Int64(counts.count), Int64(counts.reduce(0, +)), Int64(bitPattern: hash)]
        let all = try group.allGather(mine)
        let differing = (0..<group.size).filter { Array(all[3 * $0 ..< 3 * $0 + 3]) != mine }
        if !differing.isEmpty {
            let r = differing[0]
            throw DistributedError.mismatch(
                "GradientBuckets: rank \(group.rank) has \(counts.count) buffers of \(mine[1]) elements in all, "
                + "rank \(r) has \(all[3 * r]) of \(all[3 * r + 1]) (or the same totals in another split); "
                + "ranks \(differing) differ from rank \(group.rank): every rank must build the same model")
        }
    }

    /// Averages `buffers` (the counts of the plan, in order) across the group, in place.
    public func average(_ buffers: [UnsafeMutableBufferPointer<Float>]) throws {
        precondition(buffers.map(\.count) == counts,
                     "GradientBuckets.average: buffer counts \(buffers.map(\.count)) differ from the plan's \(counts)")
        try reduce(read: { k, body in body(UnsafeBufferPointer(buffers[k])) },
                    write: { k, body in try body(buffers[k]) })
    }

    /// Averages tensors (element counts of the plan, in order) across the group, in place
    /// (copy-on-write first where a tensor's storage is shared).
    public func average(_ tensors: inout [Tensor]) throws {
        precondition(tensors.map(\.count) == counts,
                     "GradientBuckets.average: tensor counts \(tensors.map(\.count)) differ from the plan's \(counts)")
        try reduce(read: { k, body in tensors[k].withUnsafeBufferPointer(body) },
                    write: { k, body in try tensors[k].withUnsafeMutableBufferPointer(body) })
    }

    /// Sums tensors (element counts of the plan, in order) across the group, in place: each
    /// element becomes x0 + x1 + ... in rank order, the same bits on every rank and for any
    /// `bucketBytes` (the gradients of a loss taken over the whole global batch add up).
    public func sum(_ tensors: inout [Tensor]) throws {
        precondition(tensors.map(\.count) == counts,
                     "GradientBuckets.sum: tensor counts \(tensors.map(\.count)) differ from the plan's \(counts)")
        try reduce(read: { k, body in tensors[k].withUnsafeBufferPointer(body) },
                    write: { k, body in try tensors[k].withUnsafeMutableBufferPointer(body) }, divide: false)
    }

    /// The bucket loop over buffer `k`, read and written through the two accessors: the
    /// rank-ordered sum, divided by the group size when `divide`.
    private func reduce(read: (Int, (UnsafeBufferPointer<Float>) -> Void) -> Void,
                        write: (Int, (UnsafeMutableBufferPointer<Float>) throws -> Void) throws -> Void,
                        divide: Bool = true) throws {
        let n = group.size
        guard n > 1 else { return }
        let divisor = Float(n)
        lock.lock(); defer { lock.unlock() }
        for bucket in buckets {
            if bucket.count == 1, counts[bucket.lowerBound] * 4 > bucketBytes {
                try write(bucket.lowerBound) { b in   // too large to pack: summed where it is
                    try group.allSum(b)
                    if divide { for i in b.indices { b[i] /= divisor } }
                }
                continue
            }
            try staging.withUnsafeMutableBufferPointer { stage in
                var at = 0
                for k in bucket {
                    read(k) { b in
                        if b.count > 0 { (stage.baseAddress! + at).update(from: b.baseAddress!, count: b.count) }
                        at += b.count
                    }
                }
                try group.allSum(UnsafeMutableBufferPointer(rebasing: stage[0 ..< at]))
                at = 0
                for k in bucket {
                    try write(k) { b in
                        if divide {
                            for i in 0 ..< b.count { b[i] = stage[at + i] / divisor }
                        } else if b.count > 0 {
                            b.baseAddress!.update(from: stage.baseAddress! + at, count: b.count)
                        }
                        at += b.count
                    }
                }
            }
        }
    }
}
