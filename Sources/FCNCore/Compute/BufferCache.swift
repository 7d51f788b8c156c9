// Large tensor buffers: mapped once and recycled instead of returned to the OS.
//
// Why: a fresh 125 MB activation (conv1_2's output at 500 x 500) costs 30 000 page faults in
// which the kernel zeroes 4 KiB pages, a sizeable share of an FCN-8s forward at 500 x 500
// (figures: Benchmarks.md, Memory). Reusing freed buffers removes them. Optionally
// (`FCN_HUGE_PAGES=1`) blocks ask for 2 MiB pages, which cut the TLB misses of the im2col
// packer (a small gain, same section); off by default because the first faults
// of a madvised region may stall in memory compaction.
//
// Contract: `TensorStorage` asks `BufferCache.allocate` for every buffer of at least
// `threshold` bytes and hands it back with `BufferCache.release`. A request is served by the
// smallest cached block whose capacity lies in [bytes, 2 * bytes + 2 MiB] (best fit, at most
// about half wasted); otherwise a new block is mapped (size rounded up to 2 MiB, 2 MiB
// aligned). A released block is kept while the cached total stays within `limit`, else
// unmapped. Memory bound: cached (idle) bytes <= `limit`, by default max(512 MiB, the
// largest total of live large buffers seen), so at most about twice the peak;
// `FCN_BUFFER_CACHE_MB` overrides it (0 disables caching; buffers are unmapped when freed).
// `Compute.releaseCachedBuffers()` unmaps every idle block. Thread-safe (one lock).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum BufferCache {
    /// Buffers below this many bytes use the ordinary allocator.
    static let threshold = 1 << 20
    static let granule = 2 << 20

    private static let lock = Lock()
    nonisolated(unsafe) private static var idle: [(pointer: UnsafeMutableRawPointer, capacity: Int)] = []
    nonisolated(unsafe) private static var idleBytes = 0
    nonisolated(unsafe) private static var outstanding: [UnsafeMutableRawPointer: Int] = [:]
    nonisolated(unsafe) private static var liveBytes = 0
    nonisolated(unsafe) private static var peakLiveBytes = 0
    nonisolated(unsafe) private static var limitOverride: Int? = {
        if let s = getenvString("FCN_BUFFER_CACHE_MB"), let mb = Int(s), mb >= 0 { return mb << 20 }
        return nil
    }()

    /// Whether new blocks ask for transparent huge pages (`FCN_HUGE_PAGES=1` turns it on: off by default, since the first faults
    /// of a madvised region may stall in memory compaction).
    static let useHugePages = getenvString("FCN_HUGE_PAGES") == "1"

    /// Bytes of idle blocks kept at most (see the file contract).
    static var limit: Int {
        get { lock.withLock { currentLimit } }
        set { lock.withLock { limitOverride = max(0, newValue) } }
    }
    private static var currentLimit: Int { limitOverride ?? max(512 << 20, peakLiveBytes) }

    /// A block of at least `bytes` bytes (64-byte aligned), or nil below `threshold`.
    static func allocate(bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes >= threshold else { return nil }
        let reused: (UnsafeMutableRawPointer, Int)? = lock.withLock {
            var best = -1
            for (i, b) in idle.enumerated() where b.capacity >= bytes && b.capacity <= 2 * bytes + granule {
                if best < 0 || b.capacity < idle[best].capacity { best = i }
            }
            guard best >= 0 else { return nil }
            let b = idle.remove(at: best)
            idleBytes -= b.capacity
            outstanding[b.pointer] = b.capacity
            noteLive(b.capacity)
            return (b.pointer, b.capacity)
        }
        if let reused { return reused.0 }
        let capacity = (bytes + granule - 1) / granule * granule
        guard let p = mapBlock(capacity) else { return nil }
        lock.withLock {
            outstanding[p] = capacity
            noteLive(capacity)
        }
        return p
    }

    /// Takes back a block from `allocate`; false when `pointer` is not one (the caller then
    /// frees it itself).
    static func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        guard bytes >= threshold else { return false }
        let unmap: Int? = lock.withLock {
            guard let capacity = outstanding.removeValue(forKey: pointer) else { return -1 }
            liveBytes -= capacity
            if idleBytes + capacity <= currentLimit {
                idle.append((pointer, capacity))
                idleBytes += capacity
                return nil
            }
            return capacity
        }
        guard let unmap else { return true }
        if unmap < 0 { return false }
        unmapBlock(pointer, unmap)
        return true
    }

    /// Unmaps every idle block.
    static func releaseIdle() {
        let blocks = lock.withLock { () -> [(pointer: UnsafeMutableRawPointer, capacity: Int)] in
            let b = idle
            idle = []
            idleBytes = 0
            return b
        }
        for b in blocks { unmapBlock(b.pointer, b.capacity) }
    }

    private static func noteLive(_ capacity: Int) {
        liveBytes += capacity
        peakLiveBytes = max(peakLiveBytes, liveBytes)
    }

    /// Maps `capacity` bytes aligned to 2 MiB (huge pages advised on Linux).
    private static func mapBlock(_ capacity: Int) -> UnsafeMutableRawPointer? {
        let span = capacity + granule
        guard let raw = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED else { return nil }
        let base = Int(bitPattern: raw)
        let start = (base + granule - 1) / granule * granule
        if start > base { munmap(raw, start - base) }
        let tail = base + span - (start + capacity)
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: start + capacity), tail) }
        let p = UnsafeMutableRawPointer(bitPattern: start)!
        #if os(Linux)
        if useHugePages { _ = madvise(p, capacity, Int32(MADV_HUGEPAGE)) }
        #endif
        return p
    }

    private static func unmapBlock(_ p: UnsafeMutableRawPointer, _ capacity: Int) {
        munmap(p, capacity)
    }
}

/// Runs `body` with scratch memory of `count` floats (uninitialised). Large scratch comes
/// from the buffer cache, so repeated calls reuse mapped pages instead of faulting them in.
func withScratch<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    let bytes = max(1, count) * MemoryLayout<Float>.stride
    let raw = BufferCache.allocate(bytes: bytes) ?? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    defer { if !BufferCache.release(raw, bytes: bytes) { raw.deallocate() } }
    return try body(raw.bindMemory(to: Float.self, capacity: max(1, count)))
}

extension Compute {
    /// Unmaps the idle large tensor buffers kept for reuse (see Compute/BufferCache.swift:
    /// buffers of 1 MiB and more are recycled; idle ones are bounded by
    /// `max(512 MiB, the peak of live large buffers)` or `FCN_BUFFER_CACHE_MB`), and empties
    /// the packed-weight cache (`weightCacheMegabytes`).
    public static func releaseCachedBuffers() { BufferCache.releaseIdle(); WeightCache.shared.removeAll() }
}
