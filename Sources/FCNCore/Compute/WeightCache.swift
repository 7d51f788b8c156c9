// Packed-weight cache: convolution weights kept in the engine's packed layouts between calls.
//
// Why: a convolution packs its weight (the GEMM's A operand, or the Winograd U matrices)
// on every call. For inference with the same weights that is repeated work: fc7 of VGG16
// packs 64 MiB per call (a noticeable share of its time at 500 x 500; figures:
// Benchmarks.md, Convolution), and a 512-channel Winograd layer transforms 2.4 M weights.
// onnxruntime packs once when a session loads.
//
// Contract: opt-in. `Compute.weightCacheMegabytes` (default 0 = off; the environment
// variable `FCN_WEIGHT_CACHE_MB` sets the default) bounds the packed bytes kept. When on, a
// convolution whose weight needs no gradient in this call (`withoutGrad`, or a weight that
// does not require one) looks its weight up by storage: the first call with a storage only
// remembers it; the second packs it into the cache, and later calls read it packed. An
// entry holds a strong reference to the weight's storage, so the storage cannot be written
// behind its back: `Tensor` is copy-on-write, and a write (an optimizer step, `assign`)
// first copies a storage that another holder shares; the weight then has a new storage
// (a new entry) and the old entry, whose storage only the cache still holds, is dropped at
// the next lookup. Entries are evicted least recently used beyond the bound;
// `Compute.releaseCachedBuffers()` empties the cache. Thread-safe (one lock); a packed
// buffer stays alive while any call uses it.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An immutable packed copy of a weight (64-byte aligned floats); equal when identical.
final class PackedWeights: @unchecked Sendable, Equatable {
    package let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(1, count))
    }
    deinit { pointer.deallocate() }

    static func == (a: PackedWeights, b: PackedWeights) -> Bool { a === b }
}

/// Which packed form of a weight an entry holds (all parameters that shape the layout).
enum PackedWeightLayout: Hashable {
    /// GEMM A operand (`fcn_sgemm_pack_a` blocks of every K block, as `prepackA` lays them
    /// out) for `m x k` with row stride `lda` and K blocks of `kc`, register tile rows `mr`.
    case gemmA(isa: Int32, mr: Int, kc: Int, m: Int, k: Int, lda: Int, transA: Bool)
    /// Winograd F(2x2, 3x3) or F(4x4, 3x3) U matrices (`tile` 2: `fcn_winograd_f2_weights`,
    /// 16 packed blocks; 4: `fcn_winograd_f4_weights`, 36).
    case winogradU(isa: Int32, tile: Int, mr: Int, cout: Int, cin: Int)
    /// Winograd F(2, 7) U matrices of a `[cout, cin, kh, 7]` weight (8 GEMM A operands of
    /// `cout x cin*kh`, each packed whole in K blocks of `kc` by `packARows`).
    case winogradF27U(isa: Int32, mr: Int, kc: Int, cout: Int, cin: Int, kh: Int)
    /// Strassen block sums of an `m x k` A with row stride `lda` (7 GEMM A operands of
    /// `m/2 x k/2`, each packed whole in K blocks of `kc` by `packARows`).
    case strassenA(isa: Int32, mr: Int, kc: Int, m: Int, k: Int, lda: Int)
}

package final class WeightCache: @unchecked Sendable {
    /// The process-wide cache (`Compute.weightCacheMegabytes`).
    static let shared = WeightCache(limitBytes: {
        if let s = getenvString("FCN_WEIGHT_CACHE_MB"), let mb = Int(s), mb >= 0 { return mb << 20 }
        return 0
    }())

    /// The cache the convolutions of the current task use: `shared` unless overridden with
    /// `WeightCache.$current.withValue(_:)` (tests use private caches; an exact-locality probe
    /// uses `disabled`). Read on the calling thread when an op starts.
    @TaskLocal package static var current: WeightCache = .shared

    /// A cache that is always off.
    package static let disabled = WeightCache(limitBytes: 0)

    private final class Entry {
        var source: TensorStorage
        var packed: PackedWeights?
        var lastUse: UInt64
        init(source: TensorStorage, lastUse: UInt64) { self.source = source; self.lastUse = lastUse }
    }
    private struct Key: Hashable {
        let storage: ObjectIdentifier
        let offset: Int
        let layout: PackedWeightLayout
    }

    private let lock = Lock()
    private var entries: [Key: Entry] = [:]
    private var clock: UInt64 = 0
    private var packedFloats = 0
    private var limitBytes: Int

    /// A cache keeping at most `limitBytes` of packed weights (tests make their own).
    init(limitBytes: Int) { self.limitBytes = max(0, limitBytes) }

    /// Bound on the packed bytes kept (0: the cache is off).
    var limit: Int {
        get { lock.withLock { limitBytes } }
        set { lock.withLock { limitBytes = max(0, newValue); evict(toFit: 0) } }
    }

    /// Whether a convolution in the current context may use the cache for `weight`: the
    /// cache is on and no gradient will be asked of the weight in this call.
    func applies(to weight: Tensor) -> Bool {
        (!GradMode.enabled || !weight.requiresGrad) && lock.withLock { limitBytes > 0 }
    }

    /// The packed form `layout` of the weight whose values start `offset` floats into
    /// `storage`, or nil (first sighting, too large for the bound, or the cache is off): then
    /// the caller packs as usual. `fill` writes `floats` packed values; it runs outside the lock.
    func packed(_ storage: TensorStorage, offset: Int = 0, layout: PackedWeightLayout, floats: Int,
                fill: (UnsafeMutablePointer<Float>) -> Void) -> PackedWeights? {
        let key = Key(storage: ObjectIdentifier(storage), offset: offset, layout: layout)
        let found: Entry? = lock.withLock {
            dropStale()
            clock += 1
            guard limitBytes > 0, floats * 4 <= limitBytes else { return nil }
            if let e = entries[key] {
                e.lastUse = clock
                return e
            }
            entries[key] = Entry(source: storage, lastUse: clock)
            return nil
        }
        guard let entry = found else { return nil }
        if let p = lock.withLock({ entry.packed }) { return p }
        // Second sighting: pack (outside the lock), then publish unless another call did.
        let p = PackedWeights(count: floats)
        fill(p.pointer)
        return lock.withLock {
            if let other = entry.packed { return other }
            guard entries[key] === entry else { return p }   // evicted meanwhile: used this once
            evict(toFit: floats)
            entry.packed = p
            packedFloats += floats
            return p
        }
    }

    /// Empties the cache.
    func removeAll() {
        lock.withLock { entries.removeAll(); packedFloats = 0 }
    }

    /// Whether a packed form of `floats` floats may be kept (the cache is on and it fits the bound).
    private func fits(floats: Int) -> Bool {
        lock.withLock { limitBytes > 0 && floats * 4 <= limitBytes }
    }

    /// What `transformedOperands(of:layout:count:isa:mr:kc:m:k:transform:)` found.
    enum Form {
        /// The form does not fit the bound, or the cache is off.
        case unavailable
        /// First sighting of the weight: the form is built on the next call.
        case firstSighting
        /// The form, packed.
        case ready(PackedWeights)
    }

    /// The transformed form of a weight that a product reads in no other way (Winograd
    /// F(2, 7)'s U, Strassen's block sums): `count` GEMM A operands of `m x k`, each packed
    /// whole by `packARows` in K blocks of `kc`, operand e at `e * roundUp(m, mr) * k`;
    /// `transform(e, lo, hi, scratch)` writes rows `lo ..< hi` of operand e plain into scratch
    /// (row stride k). As `packed(_:offset:layout:floats:fill:)`, but telling a form that
    /// cannot be kept (`.unavailable`) from one not built yet (`.firstSighting`: the caller
    /// then runs without caching another form, so that a weight is kept in one form).
    func transformedOperands(of weight: CachedOperand, layout: PackedWeightLayout, count: Int, isa: GEMMISA,
                             mr: Int, kc: Int, m: Int, k: Int,
                             transform: (_ e: Int, _ lo: Int, _ hi: Int, _ scratch: UnsafeMutablePointer<Float>) -> Void)
        -> Form {
        let stride = roundUp(m, mr) * k
        guard fits(floats: count * stride) else { return .unavailable }
        guard let p = packed(weight.storage, offset: weight.offset, layout: layout, floats: count * stride, fill: { dst in
            packOperands(count: count, isa: isa, mr: mr, kc: kc, m: m, k: k, stride: stride, dst: dst, transform: transform)
        }) else { return .firstSighting }
        return .ready(p)
    }

    /// Whether the cache knows `storage` (any layout) and holds a packed form of it (tests).
    func state(of storage: TensorStorage) -> (seen: Bool, packed: Bool) {
        lock.withLock {
            let es = entries.filter { $0.key.storage == ObjectIdentifier(storage) }.map(\.value)
            return (!es.isEmpty, es.contains { $0.packed != nil })
        }
    }

    /// Floats of the packed forms of `storage` held (tests).
    func packedFloats(of storage: TensorStorage) -> Int {
        lock.withLock {
            entries.filter { $0.key.storage == ObjectIdentifier(storage) }.reduce(0) { $0 + ($1.value.packed?.count ?? 0) }
        }
    }

    /// Floats of packed weights held (tests).
    var packedCount: Int { lock.withLock { packedFloats } }

    // Called with the lock held. Entries whose storage only the cache references belong to
    // weights that were written (and so copied) or freed since.
    private func dropStale() {
        for (key, e) in entries where isKnownUniquelyReferenced(&e.source) {
            packedFloats -= e.packed?.count ?? 0
            entries[key] = nil
        }
    }

    // Called with the lock held: least recently used packed entries go until `floats` more fit.
    private func evict(toFit floats: Int) {
        if limitBytes == 0 { entries.removeAll(); packedFloats = 0; return }
        while packedFloats > 0 && (packedFloats + floats) * 4 > limitBytes {
            guard let (key, e) = entries.filter({ $0.value.packed != nil }).min(by: { $0.value.lastUse < $1.value.lastUse })
            else { break }
            packedFloats -= e.packed?.count ?? 0
            entries[key] = nil
        }
    }
}

extension Compute {
    /// Megabytes of convolution weights kept packed between calls for inference (0, the
    /// default, turns the cache off; `FCN_WEIGHT_CACHE_MB` sets the default). With it on, a
    /// weight used twice without a gradient (under `withoutGrad`, or frozen) is packed once
    /// and read packed afterwards, as onnxruntime prepacks at load; writes to the weight
    /// (copy-on-write) make it a new entry. See Compute/WeightCache.swift.
    public static var weightCacheMegabytes: Int {
        get { WeightCache.shared.limit >> 20 }
        set { WeightCache.shared.limit = max(0, newValue) << 20 }
    }
}

/// A GEMM A operand that is a cacheable weight: its values start `offset` floats into
/// `storage`, looked up in `cache`. Equal when the storage and the cache are identical and
/// the offsets equal.
struct CachedOperand: Equatable {
    package let storage: TensorStorage
    let offset: Int
    var cache: WeightCache = .shared
    /// The GEMM path that reads this weight, and so its packed layout: the float32 default,
    /// or bfloat16 under `Compute.precision` (`Compute.inferenceISA`).
    var isa: GEMMISA = GEMMConfig.defaultISA

    /// The weight's values.
    var values: UnsafePointer<Float> { UnsafePointer(storage.pointer + offset) }

    static func == (a: CachedOperand, b: CachedOperand) -> Bool {
        a.storage === b.storage && a.offset == b.offset && a.cache === b.cache && a.isa == b.isa
    }
}
