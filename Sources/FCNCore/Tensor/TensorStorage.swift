// TensorStorage: a 64-byte aligned, heap-allocated run of Float32 shared by Tensor values.
//
// Tensor is a value type; its storage is copied only when a Tensor that shares it is
// mutated (copy-on-write, see `Tensor.withUnsafeMutableBufferPointer`). The alignment
// suits AVX-512 loads in the C kernels.

/// Reference-counted, 64-byte aligned Float32 buffer. Internal: users see `Tensor`.
@usableFromInline
package final class TensorStorage: @unchecked Sendable {
    @usableFromInline package let pointer: UnsafeMutablePointer<Float>
    @usableFromInline let count: Int

    /// Uninitialised storage of `count` floats. Callers must write every element.
    @usableFromInline
    init(uninitializedCount count: Int) {
        self.count = count
        // Large buffers come from the recycling cache (Compute/BufferCache.swift).
        let raw = BufferCache.allocate(bytes: count * MemoryLayout<Float>.stride) ?? UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    @usableFromInline
    convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        pointer.initialize(repeating: value, count: count)
    }

    @usableFromInline
    convenience init(copying source: UnsafeBufferPointer<Float>) {
        self.init(uninitializedCount: source.count)
        if let base = source.baseAddress { pointer.initialize(from: base, count: source.count) }
    }

    @usableFromInline
    func copy() -> TensorStorage {
        TensorStorage(copying: UnsafeBufferPointer(start: pointer, count: count))
    }

    deinit {
        let raw = UnsafeMutableRawPointer(pointer)
        if !BufferCache.release(raw, bytes: count * MemoryLayout<Float>.stride) { raw.deallocate() }
    }
}
