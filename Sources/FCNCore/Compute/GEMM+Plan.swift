// GEMM plans: how one call of the engine (GEMM+Driver.swift) is split over the threads
// (the tm x tn tile grid, or guided column chunks when the threads share one packed A) and
// into cache blocks. A plan depends on the shape, the register tile and the thread count;
// the K blocking on m and k only, so every element of C is summed in the same order
// whatever the thread count.

/// How one call is split: thread grid and block sizes.
struct GEMMPlan {
    var mr: Int, nr: Int
    var tm: Int, tn: Int          // thread grid over (M, N)
    var mc: Int, kc: Int, nc: Int // cache blocks (mc multiple of mr, nc multiple of nr)

    /// `aPacked`: A is already packed (packed-weight cache), so a tile's packing cost is its
    /// B alone and splitting along N packs nothing twice.
    init(m: Int, n: Int, k: Int, mr: Int, nr: Int, threads: Int, blocks: GEMMBlocks = GEMMConfig.blocks,
         aPacked: Bool = false) {
        self.mr = mr; self.nr = nr
        // Threads: only as many as the work justifies.
        let fmas = Double(m) * Double(n) * Double(k)
        let t = max(1, min(threads, Int(fmas / Double(GEMMConfig.minFMAsPerThread))))
        // Thread grid: minimise the slowest tile's time, modelled as its padded multiply-adds
        // plus the packing it does (every element packed ~ 16 multiply-adds' time).
        var best = (tm: 1, tn: 1, cost: Double.infinity) // kept if no split has work for every thread
        for tm in 1...t where t % tm == 0 {
            let tn = t / tm
            let mt = roundUp((m + tm - 1) / tm, mr), nt = roundUp((n + tn - 1) / tn, nr)
            if tm > 1 && (m + tm - 1) / tm < mr && tm > (m + mr - 1) / mr { continue }
            if tn > 1 && (n + tn - 1) / tn < nr && tn > (n + nr - 1) / nr { continue }
            let nBlocks = Double((nt + blocks.nc - 1) / blocks.nc)
            let cost = Double(mt) * Double(nt) * Double(k) + 16 * Double(k) * ((aPacked ? 0 : Double(mt) * nBlocks) + Double(nt))
            if cost < best.cost { best = (tm, tn, cost) }
        }
        // A tall single row block (conv4/conv5 of VGG16: m = 512) is split along M when every
        // thread still gets many row panels: each thread then packs and streams only its own
        // rows of A (m = 256, 128 rows a thread, is better split along N; figures:
        // Benchmarks.md, GEMM).
        if t > 1 && !aPacked && m <= max(blocks.mc, blocks.singleRowMC) && m / t >= GEMMConfig.minRowsPerThreadForRowSplit {
            best = (t, 1, 0)
        }
        tm = best.tm; tn = best.tn
        // Cache blocks, balanced so the last block is not a sliver.
        let mTile = (m + tm - 1) / tm
        var kcLimit = blocks.kc
        if mTile > blocks.mc && mTile <= blocks.singleRowMC {
            mc = roundUp(mTile, mr)  // one row block (see GEMMBlocks.singleRowMC)
        } else {
            let mBlocks = max(1, (mTile + max(mr, blocks.mc) - 1) / max(mr, blocks.mc))
            mc = roundUp((mTile + mBlocks - 1) / mBlocks, mr)
        }
        // The K blocking depends on m only (not on the thread grid), so that every element of
        // C is summed in the same order whatever the thread count.
        let mAll = roundUp(m, mr)
        if m <= max(blocks.mc, blocks.singleRowMC) && blocks.singleRowA > 0 {
            kcLimit = max(blocks.kc, min(blocks.singleRowKC, blocks.singleRowA / mAll))
        }
        let kBlocks = max(1, (k + kcLimit - 1) / kcLimit)
        kc = (k + kBlocks - 1) / kBlocks
        let nTile = (n + tn - 1) / tn
        let nBlocks = max(1, (nTile + blocks.nc - 1) / blocks.nc)
        nc = roundUp((nTile + nBlocks - 1) / nBlocks, nr)
    }

    /// Chunk bounds, in NR panels, for `threads` threads taking chunks from a counter:
    /// chunk i is panels `bounds[i] ..< bounds[i + 1]`. Guided: each chunk is the remaining
    /// panels over twice the threads (at least one), so the chunks shrink towards the end and
    /// the threads finish within about one panel of each other, with few chunks in all. With
    /// `equalShares`, one chunk per thread.
    static func guidedChunks(panels: Int, threads: Int, equalShares: Bool) -> [Int] {
        if equalShares { return (0...threads).map { panels * $0 / threads } }
        var bounds = [0], done = 0
        while done < panels {
            done += max(1, (panels - done) / (2 * threads))
            bounds.append(done)
        }
        return bounds
    }

    /// Bounds of part `i` of `count` parts of `0..<total`, split at multiples of `align`.
    static func part(_ i: Int, of count: Int, total: Int, align: Int) -> Range<Int> {
        let units = (total + align - 1) / align
        let lo = min(total, units * i / count * align), hi = min(total, units * (i + 1) / count * align)
        return lo..<hi
    }
}

@inline(__always) func roundUp(_ x: Int, _ to: Int) -> Int { (x + to - 1) / to * to }

extension GEMMPlan {
    /// The K block size of every plan for an A of `m` rows and depth `k` (it depends on m and
    /// k only), i.e. the layout of an A packed whole for `sgemmPackedRows`.
    static func kBlock(m: Int, k: Int, mr: Int, nr: Int, blocks: GEMMBlocks = GEMMConfig.blocks) -> Int {
        GEMMPlan(m: m, n: 1, k: k, mr: mr, nr: nr, threads: 1, blocks: blocks, aPacked: true).kc
    }
}
