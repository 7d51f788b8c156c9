// The floating-point sums of DistributedGroup (see SumAlgorithm).
//
// Rank-ordered sum of a buffer of L elements on N ranks, one piece of `share * N`
// elements at a time (share <= Int32.max, the piece bounded by `pieceElements`):
//   1. MPI_Alltoall: slot j of the piece (elements j*share ..< (j+1)*share) goes to rank j;
//      rank r receives every rank's slot r, in rank order, into a scratch buffer.
//   2. Rank r adds them in rank order, ((x0 + x1) + x2) + ..., into its own slot of the piece.
//   3. MPI_Allgather in place: every rank's slot goes to everyone.
// The last L mod N elements (fewer than one per rank) go through the same three steps in an
// N-element buffer padded with zeros; the padding is added but never copied back. Element
// i's sum is thus computed by one rank, from the N values in rank order, and copied
// verbatim to the others: the same bits on every rank, whatever L, N or the piece size.
// Cost per rank: (N-1)/N of the buffer sent in step 1 and again in step 3, as a ring
// all-reduce; the additions are spread over the ranks; scratch memory is one piece, kept
// by the group for the next sum.

import FCNCore
extension DistributedGroup {
    func floatingSum<T: CollectiveScalar & BinaryFloatingPoint>(
        _ buffer: UnsafeMutableBufferPointer<T>, algorithm: SumAlgorithm
    ) throws {
        guard let t = transport, buffer.count > 0 else { return }
        try serialised {
            switch algorithm {
            case .mpiAllreduce: try allreduceInPieces(buffer, t)
            case .rankOrdered: try rankOrderedSum(buffer, t)
            }
        }
    }

    private func rankOrderedSum<T: CollectiveScalar & BinaryFloatingPoint>(
        _ buffer: UnsafeMutableBufferPointer<T>, _ t: any CollectiveTransport
    ) throws {
        let n = t.size
        if n == 1 { return }
        let share = max(1, min(pieceElements / n, maxCount))
        let whole = buffer.count / n * n
        let elements = max(n, min(share * n, whole))
        let scratch = shared.scratch(bytes: elements * MemoryLayout<T>.stride)
            .bindMemory(to: T.self, capacity: elements)
        var start = 0
        while start < whole {
            let s = min(share, (whole - start) / n)
            try reducePiece(buffer.baseAddress! + start, share: s, scratch: scratch, t)
            start += s * n
        }
        let rest = buffer.count - whole
        if rest > 0 {
            let tail = UnsafeMutablePointer<T>.allocate(capacity: n)
            defer { tail.deallocate() }
            tail.initialize(repeating: 0, count: n)
            tail.update(from: buffer.baseAddress! + whole, count: rest)
            try reducePiece(tail, share: 1, scratch: scratch, t)
            (buffer.baseAddress! + whole).update(from: tail, count: rest)
        }
    }

    /// Steps 1-3 of the file comment on the `share * size` elements at `piece`.
    private func reducePiece<T: CollectiveScalar & BinaryFloatingPoint>(
        _ piece: UnsafeMutablePointer<T>, share: Int, scratch: UnsafeMutablePointer<T>, _ t: any CollectiveTransport
    ) throws {
        let n = t.size
        try t.alltoall(UnsafeRawPointer(piece), UnsafeMutableRawPointer(scratch), count: Int32(share), type: T.collectiveElement)
        let mine = piece + t.rank * share
        let first = scratch, second = scratch + share
        for i in 0..<share { mine[i] = first[i] + second[i] }   // rank 0's values plus rank 1's,
        for j in 2..<n {                                        // then rank 2's, 3's, ... in order
            let row = scratch + j * share
            for i in 0..<share { mine[i] += row[i] }
        }
        try t.allgather(nil, UnsafeMutableRawPointer(piece), count: Int32(share), type: T.collectiveElement)
    }
}
