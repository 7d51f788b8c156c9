// Loading a module's state from a PyTorch checkpoint (torch.save of `model.state_dict()`,
// or a training script's {"model": ..., "optimizer": ...}; see TorchCheckpointFile), with
// the same dotted names as `stateDict()`.

import FCNCore
import FCNIO
extension Module {
    /// Loads parameters and buffers from a PyTorch checkpoint file, with the rules of
    /// `loadStateDict(_:strict:)`: names and shapes are checked against the checkpoint's
    /// entries before any tensor is converted, only the tensors the module needs are read,
    /// and nothing is modified when an error is thrown.
    ///
    ///     let model = DilatedResNetFCN(depth: .resnet50, numClasses: 21, auxiliary: true)
    ///     try model.loadStateDict(from: TorchCheckpointFile(path: "fcn_resnet50.pth"))
    @discardableResult
    public func loadStateDict(from file: TorchCheckpointFile, strict: Bool = true) throws -> StateDictLoadReport {
        try loadState(names: Set(file.names), shape: { file.entries[$0]?.shape }, tensor: { try file.tensor($0) }, strict: strict)
    }
}
