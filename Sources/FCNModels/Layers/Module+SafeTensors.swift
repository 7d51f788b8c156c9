// Saving and loading a module's state (parameters and buffers) as safetensors, with the
// same dotted names as `stateDict()`, so files interchange with PyTorch's
// `model.state_dict()` / `safetensors.torch.save_file` / `load_file`.

import FCNCore
import FCNIO

extension Module {
    /// Writes `stateDict()` to `path` atomically (see `saveSafeTensors`). `dtype` F32 is
    /// lossless; F16/BF16 halve the size.
    public func save(to path: String, metadata: [String: String] = [:], dtype: SafeTensorsDType = .f32) throws {
        try saveSafeTensors(stateDict(), metadata: metadata, dtype: dtype, to: path)
    }

    /// Loads parameters and buffers from a safetensors file, with the rules of
    /// `loadStateDict(_:strict:)`. Names and shapes are checked against the header before
    /// any tensor is converted, only the tensors the module needs are read, and nothing is
    /// modified when an error is thrown.
    @discardableResult
    public func load(from path: String, strict: Bool = true) throws -> StateDictLoadReport {
        try loadStateDict(from: SafeTensorsFile(path: path), strict: strict)
    }

    /// Loads parameters and buffers from an opened safetensors file (see `load(from:strict:)`).
    @discardableResult
    public func loadStateDict(from file: SafeTensorsFile, strict: Bool = true) throws -> StateDictLoadReport {
        try loadState(names: Set(file.names), shape: { file.entries[$0]?.shape }, tensor: { try file.tensor($0) }, strict: strict)
    }
}
