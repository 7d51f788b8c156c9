// Receptive fields of chains of convolutions and poolings: the geometry models state
// (`SegmentationModel.receptiveFieldRadius`) and tiled inference relies on.
import FCNIO
import FCNCore

/// Receptive field of a chain of convolutions / poolings along one axis, from the input:
/// `extent` pixels and total stride `jump`. Each step `(kernel k, stride s, dilation d)`
/// grows the extent by `d*(k-1)*jump` and multiplies the jump by s. Residual shortcuts never
/// see further than the main path, so a ResNet's field is that of its longest path.
/// `radius` = `ceil((extent - 1) / 2)`: half the field around its centre; the alignment
/// of that centre with the output pixel is what the crops / paddings of a model fix, so
/// models add a slack of one jump when they use this.
///
/// With the paddings given, `start` also places the field: output position o sees the
/// input pixels `[start + o*jump, start + o*jump + extent)`, and `radius(covering:)` is
/// then the exact radius of `SegmentationNetwork.receptiveFieldRadius` for a chain of
/// convolutions / poolings (no slack needed).
public struct ReceptiveField: Sendable, Equatable {
    /// Input pixels seen by one output position (1: the identity).
    public var extent = 1
    /// Input pixels between neighbouring output positions (product of the strides).
    public var jump = 1
    /// Input pixel of the first tap of output position 0 (minus the paddings so far).
    public var start = 0
    /// The identity: extent 1, jump 1, start 0.
    public init() {}

    /// Adds a convolution or pooling window (`padding`: the amount before the axis).
    public mutating func add(kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        start -= padding * jump
        extent += dilation * (kernel - 1) * jump
        jump *= stride
    }

    /// Half the field around its centre, `ceil((extent - 1) / 2)`.
    public var radius: Int { (extent - 1 + 1) / 2 }

    /// How far outside the pixels `[o*f, o*f + f)` an output position o sees (f the score
    /// stride, normally `jump`): `max(-start, start + extent - f)`.
    public func radius(covering f: Int) -> Int { max(0, -start, start + extent - f) }
}

