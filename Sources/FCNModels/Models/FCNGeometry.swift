// Crop offsets of the Caffe FCNs, computed from the layer geometry instead of hard-coded.
//
// Every spatial layer maps pixel coordinates of its input to coordinates of its output by
// an affine map `x_out = scale * x_in + shift` (along one axis), taking the centre of the
// receptive field as the position of an output pixel:
//   convolution / pooling (kernel k, stride s, pad p, dilation d; K = d*(k-1)+1):
//       scale 1/s, shift (2p - (K-1)) / (2s)
//   deconvolution: scale s, shift (K-1)/2 - p
//   element-wise layers (ReLU, dropout, 1x1 stride-1 convs, sums): identity.
// Maps compose exactly in rationals. To crop blob A to the size of blob B, both computed
// from a common ancestor (usually the input) by maps mA and mB, take the map from A's
// coordinates to B's, `mB . inverse(mA)`: its scale must be 1, and its shift b says that
// B's pixel 0 sits at A's pixel -b, so the crop offset is `-b`, a non-negative integer
// (Caffe's `coord_map.crop`). For the
// VGG16 FCNs this gives the published offsets 5, 9, 19, 27 and 31 (see the tests).

import FCNCore
import FCNIO

/// An exact fraction `numerator / denominator` (denominator > 0, reduced).
public struct Rational: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// The numerator, carrying the sign; 0 for zero (whose denominator is then 1).
    public let numerator: Int
    /// The denominator, always positive and coprime with `numerator`.
    public let denominator: Int

    /// The fraction `numerator / denominator`, reduced by the greatest common divisor and
    /// with the sign moved to the numerator (`Rational(2, -4)` is `-1/2`). The default
    /// denominator 1 makes `Rational(n)` the integer `n`. Traps if `denominator` is 0.
    public init(_ numerator: Int, _ denominator: Int = 1) {
        fcnCheck(denominator != 0, "Rational", "denominator is zero")
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? abs(a) : gcd(b, a % b) }
        let g = max(1, gcd(numerator, denominator)) * (denominator < 0 ? -1 : 1)
        self.numerator = numerator / g
        self.denominator = denominator / g
    }
    /// The integer `value` (`value / 1`), so integer literals can stand for rationals,
    /// as in `CoordinateMap(scale: 1, shift: 0)`.
    public init(integerLiteral value: Int) { self.init(value) }

    /// The value when it is an integer, else nil.
    public var integerValue: Int? { denominator == 1 ? numerator : nil }
    /// `"n"` for an integer, else `"n/d"` (for example `"-19/2"`), as in error messages.
    public var description: String { denominator == 1 ? "\(numerator)" : "\(numerator)/\(denominator)" }

    /// Exact sum `a/b + c/d = (ad + cb) / bd`, reduced.
    public static func + (a: Rational, b: Rational) -> Rational { Rational(a.numerator * b.denominator + b.numerator * a.denominator, a.denominator * b.denominator) }
    /// Exact difference `a/b - c/d = (ad - cb) / bd`, reduced.
    public static func - (a: Rational, b: Rational) -> Rational { Rational(a.numerator * b.denominator - b.numerator * a.denominator, a.denominator * b.denominator) }
    /// Exact product `(a/b) * (c/d) = ac / bd`, reduced.
    public static func * (a: Rational, b: Rational) -> Rational { Rational(a.numerator * b.numerator, a.denominator * b.denominator) }
    /// Exact quotient `(a/b) / (c/d) = ad / bc`, reduced. Traps if `b` is zero.
    public static func / (a: Rational, b: Rational) -> Rational {
        fcnCheck(b.numerator != 0, "Rational", "division by zero")
        return Rational(a.numerator * b.denominator, a.denominator * b.numerator)
    }
    /// The negation `-a`.
    public static prefix func - (a: Rational) -> Rational { Rational(-a.numerator, a.denominator) }
}

/// One layer's geometry along one spatial axis.
public enum SpatialStep: Sendable, Hashable {
    /// Convolution or pooling (Caffe `Convolution`, `Pooling`).
    case conv(kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1)
    /// Transposed convolution (Caffe `Deconvolution`).
    case deconv(kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1)
    /// A layer that keeps coordinates (ReLU, dropout, element-wise sum, scaling).
    case identity

    /// Pooling has the same coordinate map as a convolution with the same window.
    public static func pool(kernel: Int, stride: Int, padding: Int = 0) -> SpatialStep {
        .conv(kernel: kernel, stride: stride, padding: padding)
    }
}

/// The affine map `x_out = scale * x_in + shift` between pixel coordinates of two blobs.
public struct CoordinateMap: Sendable, Hashable, CustomStringConvertible {
    /// Output pixels per input pixel: `1/s` for a stride-`s` convolution or pooling, `s`
    /// for a stride-`s` deconvolution, 1 for element-wise layers.
    public var scale: Rational
    /// Output coordinate of input pixel 0 (for a convolution, `(2p - (K-1)) / (2s)`).
    public var shift: Rational

    /// The map `x_out = scale * x_in + shift`.
    public init(scale: Rational, shift: Rational) { self.scale = scale; self.shift = shift }

    /// `x_out = x_in`: the map of ReLU, dropout, sums and 1x1 stride-1 convolutions, and the
    /// start of a composition.
    public static let identity = CoordinateMap(scale: 1, shift: 0)

    /// The map of one layer (see the formulas at the top of the file).
    public init(_ step: SpatialStep) {
        switch step {
        case .identity:
            self = .identity
        case let .conv(k, s, p, d):
            fcnCheck(k > 0 && s > 0 && d > 0 && p >= 0, "CoordinateMap", "invalid conv geometry \(step)")
            let extent = d * (k - 1) + 1
            self.init(scale: Rational(1, s), shift: Rational(2 * p - (extent - 1), 2 * s))
        case let .deconv(k, s, p, d):
            fcnCheck(k > 0 && s > 0 && d > 0 && p >= 0, "CoordinateMap", "invalid deconv geometry \(step)")
            let extent = d * (k - 1) + 1
            self.init(scale: Rational(s), shift: Rational(extent - 1, 2) - Rational(p))
        }
    }

    /// The map of the layers applied in order (first element first).
    public init(composing steps: [SpatialStep]) {
        self = steps.reduce(.identity) { $0.followed(by: CoordinateMap($1)) }
    }

    /// `next` applied after `self`.
    public func followed(by next: CoordinateMap) -> CoordinateMap {
        CoordinateMap(scale: scale * next.scale, shift: next.scale * shift + next.shift)
    }

    /// The inverse map.
    public var inverse: CoordinateMap { CoordinateMap(scale: 1 / scale, shift: -shift / scale) }

    /// The image of coordinate `x`.
    public func callAsFunction(_ x: Rational) -> Rational { scale * x + shift }

    /// `"x * scale + shift"`, for example `"x * 1 + -1"` for a 3x3 convolution without padding.
    public var description: String { "x * \(scale) + \(shift)" }
}

/// Geometry of the Caffe reference FCNs.
public enum FCNGeometry {
    /// The crop offset (Caffe `Crop` layer, from the top-left) that aligns blob A, reached
    /// from a common ancestor through `from`, with blob B, reached through `to`: A is cropped
    /// to B's size starting at this offset. Traps (programming error in a model
    /// definition) if the two blobs have different scales or the offset is negative or not
    /// an integer.
    public static func cropOffset(from: [SpatialStep], to: [SpatialStep]) -> Int {
        let a = CoordinateMap(composing: from), b = CoordinateMap(composing: to)
        let aToB = a.inverse.followed(by: b)
        fcnCheck(aToB.scale == 1, "cropOffset", "the blobs have different scales (\(a.scale) vs \(b.scale)); cannot crop one to the other")
        let offset = -aToB.shift
        guard let o = offset.integerValue, o >= 0 else {
            fcnFail("cropOffset", "offset \(offset) is not a non-negative integer (maps: from \(a), to \(b))")
        }
        return o
    }

    /// The VGG16 FCN trunk as in the reference Caffe nets: conv1_1 has pad 100, the other
    /// 3x3 convs pad 1, pools 2x2 stride 2 (ceil mode does not change coordinates), fc6 a
    /// 7x7 conv without pad, fc7 and score layers 1x1. ReLU/dropout are identities.
    public static let vgg16: [(name: String, step: SpatialStep)] = vgg16(padding: .caffe)

    /// The VGG16 FCN trunk with the given padding scheme: `.caffe` as `vgg16`; `.same` with
    /// pad 1 on conv1_1 and pad 3 on fc6, so every convolution keeps its input's size.
    public static func vgg16(padding: VGGFCNPadding) -> [(name: String, step: SpatialStep)] {
        var out: [(String, SpatialStep)] = []
        for (stage, convs) in [2, 2, 3, 3, 3].enumerated() {
            for i in 1...convs {
                let pad = stage == 0 && i == 1 && padding == .caffe ? 100 : 1
                out.append(("conv\(stage + 1)_\(i)", .conv(kernel: 3, stride: 1, padding: pad)))
            }
            out.append(("pool\(stage + 1)", .pool(kernel: 2, stride: 2)))
        }
        out.append(("fc6", .conv(kernel: 7, padding: padding == .caffe ? 0 : 3)))
        out.append(("fc7", .conv(kernel: 1)))
        out.append(("score_fr", .conv(kernel: 1)))
        return out
    }

    /// The steps of `vgg16(padding:)` from the input up to and including the layer `name`.
    public static func vgg16Steps(through name: String, padding: VGGFCNPadding = .caffe) -> [SpatialStep] {
        let layers = vgg16(padding: padding)
        guard let i = layers.firstIndex(where: { $0.name == name }) else {
            fcnFail("FCNGeometry.vgg16Steps", "no layer named '\(name)'; layers: \(layers.map(\.name).joined(separator: ", "))")
        }
        return layers[...i].map(\.step)
    }

    /// The padding of a `factor`x bilinear upsampling layer (kernel `2 * factor`, stride
    /// `factor`): 0 in the Caffe layout (the crops align afterwards), `factor / 2` in the
    /// `.same` layout, which makes the output `factor` times the input with the grids of
    /// the two blobs aligned (crop offset 0).
    public static func upsamplingPadding(factor: Int, padding: VGGFCNPadding) -> Int {
        padding == .caffe ? 0 : factor / 2
    }

    /// The crop offsets of the VGG16 FCNs, computed from the geometry:
    /// FCN-32s final (upscore 64/32 to the input), FCN-16s score_pool4 (to upscore2) and
    /// final (upscore16 32/16), FCN-8s score_pool3 (to upscore_pool4) and final (upscore8
    /// 16/8), FCN-4s score_pool2 (to upscore_pool3) and final (upscore4 8/4). Expected 19,
    /// 5, 27, 9, 31, 17, 33 for the Caffe layout and all 0 for `.same`.
    public static func vgg16CropOffsets(padding: VGGFCNPadding = .caffe)
        -> (fcn32Final: Int, fcn16Pool4: Int, fcn16Final: Int, fcn8Pool3: Int, fcn8Final: Int, fcn4Pool2: Int, fcn4Final: Int) {
        func up(_ f: Int) -> SpatialStep {
            .deconv(kernel: 2 * f, stride: f, padding: upsamplingPadding(factor: f, padding: padding))
        }
        let scoreFr = vgg16Steps(through: "score_fr", padding: padding)
        let pool4 = vgg16Steps(through: "pool4", padding: padding) + [.conv(kernel: 1)]          // score_pool4
        let pool3 = vgg16Steps(through: "pool3", padding: padding) + [.conv(kernel: 1)]          // score_pool3
        let pool2 = vgg16Steps(through: "pool2", padding: padding) + [.conv(kernel: 1)]          // score_pool2
        let upscore2 = scoreFr + [up(2)]
        let upscorePool4 = upscore2 + [up(2)]            // fuse_pool4 keeps upscore2's geometry
        let upscorePool3 = upscorePool4 + [up(2)]        // fuse_pool3 keeps upscore_pool4's
        return (
            fcn32Final: cropOffset(from: scoreFr + [up(32)], to: []),
            fcn16Pool4: cropOffset(from: pool4, to: upscore2),
            fcn16Final: cropOffset(from: upscore2 + [up(16)], to: []),
            fcn8Pool3: cropOffset(from: pool3, to: upscorePool4),
            fcn8Final: cropOffset(from: upscorePool4 + [up(8)], to: []),
            fcn4Pool2: cropOffset(from: pool2, to: upscorePool3),
            fcn4Final: cropOffset(from: upscorePool3 + [up(4)], to: [])
        )
    }
}
