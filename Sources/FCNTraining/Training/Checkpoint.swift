// Training checkpoints: model weights, optimizer state, EMA shadows, step counters and the
// random generator's state in ONE safetensors file, written atomically.
//
// Layout: tensors `model.<name>`, `optim.<key>` (see `OptimizerState`), `ema.<name>`;
// `__metadata__` holds `fcn.format` = "swift-fcn.checkpoint", `fcn.version` = "1",
// `fcn.step`, `fcn.schedule_step`, optional `fcn.rng_state` (UInt64 in decimal: exact),
// `fcn.optimizer.kind`, `fcn.optimizer.step`, `fcn.optimizer.counters` (a JSON object of
// integers), and user strings as `info.<key>`. The `model.` tensors alone are an ordinary
// state dict that other tools can read.
//
// Writing: the bytes go to a temporary file in the target's folder, which is fsync'ed and
// renamed over the target (then the folder is fsync'ed), so a crash or a failed write
// leaves either the old file or the new one, never a torn file.
import FCNCore
import FCNIO
import FCNModels
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything needed to resume training exactly.
public struct TrainingCheckpoint: Sendable {
    /// Model weights by parameter name (a state dict).
    public var model: [String: Tensor]
    /// Optimizer buffers and counters, if saved.
    public var optimizer: OptimizerState?
    /// EMA shadow weights by parameter name (empty if none).
    public var ema: [String: Tensor]
    /// The training step (number of optimizer steps taken).
    public var step: Int
    /// The step the learning-rate schedule is evaluated at (usually `step`, or the epoch).
    public var scheduleStep: Int
    /// `FCNRandom.state` of the data/augmentation generator, if any.
    public var rngState: UInt64?
    /// Free-form strings (trainer counters, dataset, notes).
    public var info: [String: String]
    /// What the model is (written as `fcn.model` with `fcn.model.prefix` = "model.", so
    /// `ModelFile.open` reads the checkpoint as a model file); nil for bare state dicts.
    public var modelDescription: ModelDescription?

    /// The `fcn.format` tag of checkpoints.
    public static let format = "swift-fcn.checkpoint"
    static let version = "1"

    /// A checkpoint of the given parts. `scheduleStep` defaults to `step`.
    public init(model: [String: Tensor], optimizer: OptimizerState? = nil, ema: [String: Tensor] = [:],
                step: Int, scheduleStep: Int? = nil, rngState: UInt64? = nil, info: [String: String] = [:],
                modelDescription: ModelDescription? = nil) {
        fcnCheck(step >= 0, "TrainingCheckpoint", "step must be >= 0, got \(step)")
        self.model = model; self.optimizer = optimizer; self.ema = ema; self.step = step
        self.scheduleStep = scheduleStep ?? step; self.rngState = rngState; self.info = info
        self.modelDescription = modelDescription
    }

    /// A checkpoint of `parameters` (values copied by name), the optimizer's state, the
    /// EMA shadows and the generator state.
    public init(parameters: [any Optimizable], optimizer: (any Optimizer)? = nil, ema: ExponentialMovingAverage? = nil,
                step: Int, scheduleStep: Int? = nil, rng: FCNRandom? = nil, info: [String: String] = [:]) {
        var m: [String: Tensor] = [:]
        for p in parameters { m[p.name] = p.value.detached() }
        self.init(model: m, optimizer: optimizer?.state(), ema: ema?.state() ?? [:], step: step,
                  scheduleStep: scheduleStep, rngState: rng?.state, info: info)
    }

    /// The safetensors tensors and metadata of this checkpoint.
    func encoded() throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        var t: [String: Tensor] = [:]
        for (k, v) in model { t["model." + k] = v.detached() }
        for (k, v) in ema { t["ema." + k] = v.detached() }
        var meta: [String: String] = ["fcn.format": Self.format, "fcn.version": Self.version,
                                      "fcn.step": String(step), "fcn.schedule_step": String(scheduleStep)]
        if let r = rngState { meta["fcn.rng_state"] = String(r) }
        if let o = optimizer {
            for (k, v) in o.tensors { t["optim." + k] = v.detached() }
            meta["fcn.optimizer.kind"] = o.kind
            meta["fcn.optimizer.step"] = String(o.step)
            let json = try JSONSerialization.data(withJSONObject: o.counters, options: [.sortedKeys])
            meta["fcn.optimizer.counters"] = String(decoding: json, as: UTF8.self)
        }
        for (k, v) in info { meta["info." + k] = v }
        if let d = modelDescription { meta.merge(ModelFile.metadata(of: d, tensorPrefix: "model."), uniquingKeysWith: { $1 }) }
        return (t, meta)
    }

    /// Writes the checkpoint to `path` atomically (temporary file, fsync, rename).
    public func save(to path: String) throws {
        try save(to: path, beforeRename: nil)
    }

    /// `save`, with a hook run after the temporary file is written and before the rename
    /// (tests use it to simulate a failure at the worst moment).
    func save(to path: String, beforeRename: (() throws -> Void)?) throws {
        let (t, meta) = try encoded()
        let data = try safeTensorsData(t, metadata: meta)
        try writeFileAtomically(data, to: path, beforeRename: beforeRename)
    }

    /// Reads and validates a checkpoint written by `save`. Throws `FCNError` naming the
    /// file and the offending entry for unreadable files, foreign safetensors files,
    /// unknown versions, malformed counters and unexpected tensor names.
    public static func load(from path: String) throws -> TrainingCheckpoint {
        let file = try SafeTensorsFile(path: path)
        let meta = file.metadata
        guard let fmt = meta["fcn.format"], fmt == format else {
            throw FCNError.invalidFormat("'\(path)' is a safetensors file but not a swift-fcn checkpoint (metadata fcn.format is \(meta["fcn.format"].map { "'\($0)'" } ?? "missing"), expected '\(format)')")
        }
        guard meta["fcn.version"] == version else {
            throw FCNError.unsupported("checkpoint '\(path)' has version \(meta["fcn.version"] ?? "missing"); this library reads version \(version)")
        }
        func int(_ key: String) throws -> Int {
            guard let s = meta[key] else { throw FCNError.invalidFormat("checkpoint '\(path)': metadata '\(key)' is missing") }
            guard let v = Int(s), v >= 0 else { throw FCNError.invalidFormat("checkpoint '\(path)': metadata '\(key)' = '\(s)' is not a non-negative integer") }
            return v
        }
        let step = try int("fcn.step"), scheduleStep = try int("fcn.schedule_step")
        var rng: UInt64?
        if let s = meta["fcn.rng_state"] {
            guard let v = UInt64(s) else { throw FCNError.invalidFormat("checkpoint '\(path)': metadata 'fcn.rng_state' = '\(s)' is not a UInt64") }
            rng = v
        }
        var model: [String: Tensor] = [:], ema: [String: Tensor] = [:], optim: [String: Tensor] = [:]
        for name in file.names {
            let t = try file.tensor(name)
            if name.hasPrefix("model.") { model[String(name.dropFirst(6))] = t }
            else if name.hasPrefix("ema.") { ema[String(name.dropFirst(4))] = t }
            else if name.hasPrefix("optim.") { optim[String(name.dropFirst(6))] = t }
            else { throw FCNError.invalidFormat("checkpoint '\(path)': tensor '\(name)' has no model./optim./ema. prefix") }
        }
        var opt: OptimizerState?
        if let kind = meta["fcn.optimizer.kind"] {
            let ostep = try int("fcn.optimizer.step")
            var counters: [String: Int] = [:]
            if let cs = meta["fcn.optimizer.counters"] {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(cs.utf8)) as? [String: Any] else {
                    throw FCNError.invalidFormat("checkpoint '\(path)': metadata 'fcn.optimizer.counters' is not a JSON object")
                }
                for (k, v) in obj {
                    guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else {
                        throw FCNError.invalidFormat("checkpoint '\(path)': optimizer counter '\(k)' is not an integer")
                    }
                    counters[k] = i
                }
            }
            opt = OptimizerState(kind: kind, step: ostep, tensors: optim, counters: counters)
        } else if !optim.isEmpty {
            throw FCNError.invalidFormat("checkpoint '\(path)': has optim. tensors but no 'fcn.optimizer.kind' metadata")
        }
        var info: [String: String] = [:]
        for (k, v) in meta where k.hasPrefix("info.") { info[String(k.dropFirst(5))] = v }
        let description = try meta[ModelDescription.metadataKey].map { try ModelDescription(json: $0) }
        var c = TrainingCheckpoint(model: model, optimizer: opt, ema: ema, step: step, scheduleStep: scheduleStep, rngState: rng,
                                   info: info, modelDescription: description)
        c.scheduleStep = scheduleStep
        return c
    }

    /// Copies the saved weights into `parameters` in place (by name). Throws
    /// `FCNError.mismatch` listing missing and unexpected names, or the first shape that
    /// differs, before anything is written.
    public func restoreModel(into parameters: [any Optimizable]) throws {
        let names = Set(parameters.map(\.name))
        let missing = names.subtracting(model.keys).sorted(), extra = Set(model.keys).subtracting(names).sorted()
        guard missing.isEmpty && extra.isEmpty else {
            throw FCNError.mismatch("checkpoint model state: missing \(missing), unexpected \(extra)")
        }
        for p in parameters where model[p.name]!.shape != p.value.shape {
            throw FCNError.mismatch("checkpoint model state: '\(p.name)' has shape \(model[p.name]!.shape), the parameter has \(p.value.shape)")
        }
        for p in parameters {
            model[p.name]!.withUnsafeBufferPointer { src in p.value.withUnsafeMutableBufferPointer { dst in _ = dst.update(from: src) } }
        }
    }

    /// The saved generator, if a state was saved.
    public var rng: FCNRandom? { rngState.map { var g = FCNRandom(seed: 0); g.state = $0; return g } }
}

nonisolated(unsafe) private var atomicWriteCounter = 0
private let atomicWriteLock = Lock()

/// Writes `data` to `path` via a temporary file in the same folder: write, fsync, rename,
/// fsync the folder. On any failure the temporary file is removed and `path` is untouched.
package func writeFileAtomically(_ data: Data, to path: String, beforeRename: (() throws -> Void)? = nil) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let n = atomicWriteLock.withLock { atomicWriteCounter += 1; return atomicWriteCounter }
    let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(n)"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else {
        throw FCNError.io("cannot create temporary file for '\(path)': \(String(cString: strerror(errno)))")
    }
    var ok = false
    defer { if !ok { unlink(tmp) } }
    do {
        defer { close(fd) }
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var off = 0
            while off < raw.count {
                let w = write(fd, raw.baseAddress! + off, raw.count - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw FCNError.io("cannot write '\(path)': \(String(cString: strerror(errno)))")
                }
                off += w
            }
        }
        guard fsync(fd) == 0 else { throw FCNError.io("cannot fsync '\(path)': \(String(cString: strerror(errno)))") }
    }
    try beforeRename?()
    guard rename(tmp, path) == 0 else {
        throw FCNError.io("cannot rename the temporary file over '\(path)': \(String(cString: strerror(errno)))")
    }
    ok = true
    let dfd = open(dir, O_RDONLY)
    if dfd >= 0 { _ = fsync(dfd); close(dfd) }
}
