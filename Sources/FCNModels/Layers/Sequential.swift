// Sequential: layers applied in order, named "0", "1", ... as torch.nn.Sequential (or with
// explicit names, as Sequential(OrderedDict(...))).

import FCNCore
import FCNIO

/// Applies its layers in order. Children are named by position ("0", "1", ...), so
/// `Sequential(Conv2d(...), ReLU(), Conv2d(...))` has parameters `0.weight`, `0.bias`,
/// `2.weight`, `2.bias`, like the PyTorch container (torchvision's `features.0.weight`).
public final class Sequential: Layer, @unchecked Sendable {
    /// The layers with their names, in order.
    public let namedLayers: [(String, any Layer)]
    /// This container's own mode flag; `train()`/`eval()` set it on every layer too.
    public var isTraining = true

    /// The layers in order, named "0", "1", ...
    public init(_ layers: [any Layer]) {
        namedLayers = layers.enumerated().map { (String($0.offset), $0.element) }
    }

    /// Variadic form: `Sequential(Conv2d(...), ReLU(), MaxPool2d(kernel: 2))`.
    public convenience init(_ layers: any Layer...) { self.init(layers) }

    /// Explicit child names (non-empty, no '.', distinct), like `Sequential(OrderedDict)`.
    public init(named layers: KeyValuePairs<String, any Layer>) {
        namedLayers = layers.map { ($0.key, $0.value) }
        var seen = Set<String>()
        for (n, _) in namedLayers {
            fcnCheck(!n.isEmpty && !n.contains(".") && seen.insert(n).inserted, "Sequential",
                     "layer name '\(n)' must be non-empty, contain no '.', and be unique")
        }
    }

    /// The layers, in order.
    public var layers: [any Layer] { namedLayers.map(\.1) }
    /// Number of layers.
    public var count: Int { namedLayers.count }
    /// The layer at `index`.
    public subscript(index: Int) -> any Layer { namedLayers[index].1 }

    /// The layers under their names, in order.
    public var children: [(String, any Module)] { namedLayers.map { ($0.0, $0.1 as any Module) } }

    /// Applies every layer in order to `x`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        for (_, l) in namedLayers { y = l(y) }
        return y
    }
}
