// PyTorch checkpoints: the zip format torch.save writes since PyTorch 1.6.
//
// Layout: a zip archive whose entries share one top-level folder <archive>:
//   <archive>/data.pkl       the pickled object (protocol 2 by default); each tensor is
//                            torch._utils._rebuild_tensor_v2(storage, storage_offset, size,
//                            stride, requires_grad, backward_hooks) and each storage the
//                            persistent id ('storage', torch.<Type>Storage, key, location, numel)
//   <archive>/data/<key>     the storage's raw bytes: numel elements of the type, no header
//   <archive>/byteorder      "little" or "big" (absent in older files: little)
//   <archive>/version, .format_version, .storage_alignment, .data/serialization_id (unused)
// Entries are stored uncompressed and 64-byte aligned by torch; deflated entries (an
// archive re-zipped by other tools) are read too.
//
// The pickle goes through `RestrictedUnpickler`: only a state dict's globals are accepted
// and nothing is called (as `torch.load(weights_only=True)`); any other global is refused
// with its name. The object may be the state dict itself (a dict of tensors, usually an
// OrderedDict) or a dict holding it under "state_dict", "model_state_dict" or "model" (as
// training scripts save: {"model": ..., "optimizer": ..., "epoch": ...}); the other
// values of such a wrapper are unpickled under the same rules but not used.
//
// Tensors are views: element (i0, ..., ik) is storage element offset + sum(ij * stride_j),
// so transposed, sliced and shared-storage tensors read as PyTorch sees them. When the
// file is opened every view is checked to lie inside its storage and every storage's
// record to hold exactly numel elements; a view may overlap itself (stride 0, expand())
// but cannot describe more elements than its storage holds plus the file's size in
// bytes, so one tensor never takes more than 4 bytes of memory per byte of the file.
// Conversion to Float32 happens per tensor on request; stored storages are read in place
// from the memory-mapped file, their CRC-32 checked on each read and their pages released
// as they are converted (a 513 MiB checkpoint loads with a peak of about +530 MiB); a
// deflated storage is first inflated into a temporary buffer of its size.
//
// Files of PyTorch < 1.6 (or `_use_new_zipfile_serialization=False`: a bare pickle stream)
// and TorchScript archives are refused with an error saying so.
import FCNCore
import Foundation

/// A tensor dictionary read from a PyTorch checkpoint: names in the file's order.
public struct TorchStateDict: Sendable {
    /// Tensor names in the order of the pickled dict (PyTorch's `state_dict()` order).
    public let names: [String]
    /// Float32 tensors by name.
    public let tensors: [String: Tensor]
}

/// Reading PyTorch `.pth` / `.pt` checkpoints.
public enum TorchCheckpoint {
    /// Every tensor of the state dict in the checkpoint at `path`, as Float32.
    public static func read(path: String) throws -> TorchStateDict {
        let f = try TorchCheckpointFile(path: path)
        return TorchStateDict(names: f.names, tensors: try f.allTensors())
    }

    /// Reads an in-memory checkpoint (`name` stands for the file in errors).
    public static func read(data: Data, name: String = "<memory>") throws -> TorchStateDict {
        let f = try TorchCheckpointFile(data: data, name: name)
        return TorchStateDict(names: f.names, tensors: try f.allTensors())
    }
}

/// A PyTorch checkpoint opened for reading: the zip directory and the pickle are read and
/// checked when it is opened; tensors are converted to Float32 on request.
public final class TorchCheckpointFile: @unchecked Sendable {
    /// Description of one tensor of the state dict.
    public struct Entry: Sendable, Equatable {
        /// The state-dict key.
        public let name: String
        /// The element type of its storage (converted to Float32 on reading).
        public let dtype: SafeTensorsDType
        /// Shape of the tensor.
        public let shape: [Int]
        /// Strides in elements (row-major contiguous: `Tensor.strides(of: shape)`).
        public let strides: [Int]
        /// Offset of element (0, ..., 0) in its storage, in elements.
        public let storageOffset: Int
        /// The storage's key (record `<archive>/data/<key>`); tensors that share storage
        /// have the same key.
        public let storageKey: String
    }

    /// Largest data.pkl accepted (a state dict's pickle is kilobytes; tensor bytes are
    /// separate records).
    public static let maxPickleSize = 64 << 20

    /// Tensor names in the state dict's order.
    public let names: [String]
    /// The tensors by name.
    public let entries: [String: Entry]
    /// The key of the wrapper dict that held the state dict ("model", "state_dict" or
    /// "model_state_dict"), or nil when the file's object is the state dict itself.
    public let wrapperKey: String?
    /// True when the file's `byteorder` record says "big".
    public let isBigEndian: Bool

    private let archive: ZipArchive
    private let storageEntries: [String: ZipArchive.Entry]
    private let path: String

    /// Opens (memory-maps) and checks the checkpoint at `path`. Throws `FCNError` for
    /// unreadable, corrupt or legacy files, and for pickles naming other globals.
    public convenience init(path: String) throws {
        try self.init(region: ByteRegion.mapping(path: path), path: path)
    }

    /// Reads an in-memory checkpoint (copied once; `name` stands for it in errors).
    public convenience init(data: Data, name: String = "<memory>") throws {
        try self.init(region: ByteRegion.copying(data), path: name)
    }

    private init(region: ByteRegion, path: String) throws {
        self.path = path
        func bad(_ m: String) -> FCNError { .invalidFormat("PyTorch checkpoint '\(path)': \(m)") }
        if region.count >= 2 && region.base.load(as: UInt8.self) == 0x80 {
            throw FCNError.unsupported("PyTorch checkpoint '\(path)' is in the legacy format of PyTorch < 1.6 (a bare pickle stream); load it in PyTorch and save it again with torch.save (zip format), or export it as safetensors")
        }
        if region.count >= 262, String(decoding: UnsafeRawBufferPointer(start: region.base + 257, count: 5), as: UTF8.self) == "ustar" {
            throw FCNError.unsupported("PyTorch checkpoint '\(path)' is in the tar format of PyTorch < 0.4; save it again with a current torch.save")
        }
        let archive = try ZipArchive(region: region, label: path)
        self.archive = archive
        // The archive folder: the one holding data.pkl, shared by every entry.
        guard let pkl = archive.entries.first(where: { $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/", omittingEmptySubsequences: false).count == 2 }) else {
            if archive.entries.contains(where: { $0.name.hasSuffix("/constants.pkl") }) {
                throw FCNError.unsupported("PyTorch checkpoint '\(path)' is a TorchScript archive (torch.jit.save); save model.state_dict() with torch.save instead")
            }
            throw bad("no <archive>/data.pkl entry (not a torch.save file)")
        }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        if let stray = archive.entries.first(where: { !$0.name.hasPrefix(prefix) }) {
            throw bad("entry '\(stray.name)' lies outside the archive folder '\(prefix)'")
        }
        if let order = archive.entry(prefix + "byteorder") {
            let text = try archive.withContents(order, limit: 64) { String(decoding: $0, as: UTF8.self) }
            switch text.trimmingCharacters(in: .whitespacesAndNewlines) {
            case "little": isBigEndian = false
            case "big": isBigEndian = true
            default: throw bad("byteorder record says '\(text)'")
            }
        } else {
            isBigEndian = false
        }

        var unpickler = RestrictedUnpickler()
        let root = try archive.withContents(pkl, limit: Self.maxPickleSize) { bytes in
            do { return try unpickler.load(bytes) } catch let e as FCNError {
                switch e {
                case .invalidFormat(let m): throw bad(m)
                case .unsupported(let m) where m.contains("global '"):
                    throw FCNError.unsupported("PyTorch checkpoint '\(path)': \(m) (a whole module saved with torch.save(model) must be saved as model.state_dict())")
                case .unsupported(let m): throw FCNError.unsupported("PyTorch checkpoint '\(path)': \(m)")
                default: throw e
                }
            }
        }

        // The state dict: the root dict, or the dict under a wrapper key.
        let wrappers = ["state_dict", "model_state_dict", "model"]
        func isTensorDict(_ v: PickleValue) -> Bool {
            guard case .dict(let d) = v else { return false }
            return unpickler.dicts[d].values.allSatisfy { if case .tensor = $0 { return true }; return false }
        }
        guard case .dict(let rootIndex) = root else {
            throw bad("the pickled object is a \(root.typeName), not a dict of tensors")
        }
        let rootDict = unpickler.dicts[rootIndex]
        var chosen = rootDict, wrapper: String?
        if !isTensorDict(root) {
            guard let w = wrappers.first(where: { rootDict[.string($0)].map(isTensorDict) ?? false }),
                  case .dict(let d)? = rootDict[.string(w)] else {
                let keys = zip(rootDict.keys, rootDict.values).prefix(12).map { k, v in "\(Self.describe(k)) (\(v.typeName))" }
                throw bad("no state dict: the pickled dict is not a dict of tensors and has none under \(wrappers.map { "'\($0)'" }.joined(separator: ", ")); its keys: \(keys.joined(separator: ", "))\(rootDict.keys.count > 12 ? ", ..." : "")")
            }
            chosen = unpickler.dicts[d]
            wrapper = w
        }
        wrapperKey = wrapper

        // Storage records and tensor views.
        var storageEntries: [String: ZipArchive.Entry] = [:]
        for s in unpickler.storages {
            guard let e = archive.entry(prefix + "data/" + s.key) else { throw bad("storage '\(s.key)' has no record '\(prefix)data/\(s.key)'") }
            let (bytes, overflow) = s.numel.multipliedReportingOverflow(by: s.dtype.byteSize)
            guard !overflow, e.uncompressedSize == bytes else {
                throw bad("storage '\(s.key)' of \(s.numel) \(s.dtype.rawValue) elements needs \(overflow ? "too many" : String(bytes)) bytes, its record holds \(e.uncompressedSize)")
            }
            storageEntries[s.key] = e
        }
        self.storageEntries = storageEntries
        var names: [String] = [], entries: [String: Entry] = [:]
        for (k, v) in zip(chosen.keys, chosen.values) {
            guard case .string(let name) = k else { throw bad("state dict key \(Self.describe(k)) is not a string") }
            guard case .tensor(let t) = v else { throw bad("state dict entry '\(name)' is a \(v.typeName), not a tensor") }
            let view = unpickler.tensors[t], storage = unpickler.storages[view.storage]
            var numel = 1, last = view.offset, overflow = false
            for (size, stride) in zip(view.shape, view.strides) {
                var o1 = false, o2 = false, o3 = false, step = 0
                (numel, o1) = numel.multipliedReportingOverflow(by: size)
                if size > 0 { (step, o2) = (size - 1).multipliedReportingOverflow(by: stride); (last, o3) = last.addingReportingOverflow(step) }
                overflow = overflow || o1 || o2 || o3
            }
            guard !overflow, numel == 0 || last < storage.numel else {
                throw bad("tensor '\(name)' (size \(view.shape), stride \(view.strides), offset \(view.offset)) reaches past its storage '\(storage.key)' of \(storage.numel) elements")
            }
            guard numel <= storage.numel + region.count else {
                throw bad("tensor '\(name)' is an expanded view of \(numel) elements over \(storage.numel), more than this file can describe")
            }
            names.append(name)
            entries[name] = Entry(name: name, dtype: storage.dtype, shape: view.shape, strides: view.strides,
                                  storageOffset: view.offset, storageKey: storage.key)
        }
        self.names = names
        self.entries = entries
    }

    private static func describe(_ k: PickleKey) -> String {
        switch k {
        case .string(let s): return "'\(s)'"
        case .int(let i): return String(i)
        case .none: return "None"
        }
    }

    /// The tensor named `name`, converted to Float32 (contiguous).
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw FCNError.mismatch("PyTorch checkpoint '\(path)': no tensor named '\(name)'") }
        let record = storageEntries[e.storageKey]!
        return try archive.withContents(record) { bytes in
            let size = e.dtype.byteSize
            defer { archive.releasePages(bytes) }
            return Tensor.make(shape: e.shape) { out in
                guard out.count > 0, let src = bytes.baseAddress else { return }
                // Row-major contiguous (axes of size 1 may have any stride, as in PyTorch).
                if zip(zip(e.shape, e.strides), Tensor.strides(of: e.shape)).allSatisfy({ $0.0 == 1 || $0.1 == $1 }) {
                    // Contiguous: one run, converted 4 M elements at a time, releasing the pages read.
                    var done = 0
                    while done < out.count {
                        let m = min(out.count - done, 1 << 22)
                        let run = src + (e.storageOffset + done) * size
                        convertElements(run, count: m, into: out.baseAddress! + done, dtype: e.dtype)
                        archive.releasePages(UnsafeRawBufferPointer(start: run, count: m * size))
                        done += m
                    }
                    return
                }
                let rank = e.shape.count
                let innerSize = rank == 0 ? 1 : e.shape[rank - 1]
                let innerStride = rank == 0 ? 1 : e.strides[rank - 1]
                // Odometer over all axes but the last; each row is converted as a run when
                // its elements are adjacent, else one by one.
                var index = [Int](repeating: 0, count: max(0, rank - 1))
                var k = 0
                while k < out.count {
                    var offset = e.storageOffset
                    for (i, v) in index.enumerated() { offset += v * e.strides[i] }
                    if innerStride == 1 || innerSize == 1 {
                        convertElements(src + offset * size, count: innerSize, into: out.baseAddress! + k, dtype: e.dtype)
                    } else {
                        for j in 0..<innerSize {
                            convertElements(src + (offset + j * innerStride) * size, count: 1, into: out.baseAddress! + k + j, dtype: e.dtype)
                        }
                    }
                    k += innerSize
                    var axis = index.count - 1
                    while axis >= 0 {
                        index[axis] += 1
                        if index[axis] < e.shape[axis] { break }
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
    }

    /// Every tensor of the state dict, converted to Float32.
    public func allTensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for n in names { out[n] = try tensor(n) }
        return out
    }

    /// Converts `count` adjacent elements, byte-swapping first for a big-endian file.
    private func convertElements(_ src: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>, dtype: SafeTensorsDType) {
        let size = dtype.byteSize
        guard isBigEndian && size > 1 else {
            convertToFloat(src, dtype: dtype, count: count, into: out)
            return
        }
        let chunk = 1024
        withUnsafeTemporaryAllocation(byteCount: chunk * size, alignment: 8) { scratch in
            var done = 0
            while done < count {
                let m = min(chunk, count - done)
                for i in 0..<m {
                    for b in 0..<size {
                        scratch[i * size + b] = src.load(fromByteOffset: (done + i) * size + size - 1 - b, as: UInt8.self)
                    }
                }
                convertToFloat(UnsafeRawPointer(scratch.baseAddress!), dtype: dtype, count: m, into: out + done)
                done += m
            }
        }
    }
}
