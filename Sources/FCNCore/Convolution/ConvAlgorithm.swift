// How a convolution is computed: the algorithms (`ConvAlgorithm`) and the one function
// that chooses among them (`ConvGeometry.algorithm(for:mode:)`).
//
// Contract: every algorithm computes the same product of the same geometry (ConvGeometry),
// equal to the naive loops up to float rounding (the tests hold each to them); they differ
// in cost. The choice depends only on the geometry, the product, the `ConvMode` of the call
// (which op asks, whether a gradient is recorded, whether the packed-weight cache serves the
// weight) and, for the two algorithms that read the weight only in a cached transformed
// form, on what the cache holds. Callers choose once per call and pass the choice down;
// nothing below the choice picks another algorithm.

/// One of the three products of a convolution (see ConvGeometry).
enum ConvProduct: Sendable {
    /// y = conv(x, w): conv2d's forward, convTranspose2d's input gradient.
    case forward
    /// gx from gy: conv2d's input gradient, convTranspose2d's forward.
    case inputGradient
    /// gw from x and gy: both ops' weight gradient.
    case weightGradient
}

/// The algorithms that compute a convolution product, each named for what it does.
enum ConvAlgorithm: Equatable {
    /// conv2d on an input with long runs of equal rows or columns (Ops/Conv2D+Margin.swift):
    /// the op scans the input, cuts each run down to the lines windows need, convolves the
    /// cut input (its own algorithm chosen in turn) and copies each output line from its
    /// source; or runs the plain algorithm when the cut output is most of the plane. Whole
    /// op: the forward, and in training the weight gradient on the same cut.
    case constantMargin
    /// conv2d as the convolution of the box of live taps of its kernel (Ops/Conv2D+LiveTaps.swift),
    /// whose own products are chosen in turn. Whole op: forward and both gradients.
    case liveTapBox(LiveTapBox)
    /// conv2d + ReLU + 2x2 stride-2 max pool in Winograd F(2x2, 3x3)'s output transform
    /// (Ops/Conv2D+Pool.swift): each 2x2 output tile is one pool window. Whole op, forward only.
    case winogradF2x2ReLUPool(cachedWeight: CachedOperand?)
    /// The same fused op on Winograd F(4x4, 3x3) tiles, each holding 2x2 pool windows
    /// (inference, the weight cached). Whole op, forward only.
    case winogradF4x4ReLUPool(cachedWeight: CachedOperand)
    /// A dilated 3x3 convolution at inference as an ordinary one on the `dilation`^2 polyphase
    /// parts of its input, laid out as one mosaic image (Ops/Conv2D+Polyphase.swift), whose own
    /// algorithm is chosen in turn. Whole op, forward only.
    case dilatedPolyphase(dilation: Int)
    /// A direct loop per output plane (depthwise forward, fcn_conv_plane_direct).
    case depthwiseDirect
    /// The column matrices of `images` images side by side, one GEMM per chunk of images
    /// (Convolution/ConvBatchedColumns.swift). All three products.
    case batchedColumns(images: Int)
    /// Winograd F(2x2, 3x3) (Convolution/ConvWinogradF2x2.swift): forward, with its U from the
    /// packed-weight cache when `cachedWeight` is set, and weight gradient.
    case winogradF2x2(cachedWeight: CachedOperand?)
    /// Winograd F(4x4, 3x3) (Convolution/ConvWinogradF2x2.swift, `tile: 4`): forward, with its
    /// U from the packed-weight cache when `cachedWeight` is set, and weight gradient.
    case winogradF4x4(cachedWeight: CachedOperand?)
    /// Winograd F(6x6, 3x3) (Convolution/ConvWinogradF2x2.swift, `tile: 6`) with its U from
    /// the packed-weight cache (inference). Forward only.
    case winogradF6x6(cachedWeight: CachedOperand)
    /// Winograd F(2, 7) along the rows with `u` from the packed-weight cache
    /// (Convolution/ConvWinogradF27.swift). Forward only.
    case winogradF27(u: PackedWeights)
    /// One level of Strassen's algorithm with the weight's block sums from the packed-weight
    /// cache (Compute/GEMM+Strassen.swift). Forward of a pointwise layer only.
    case strassen(blockSums: PackedWeights)
    /// A pointwise layer: x is its own column matrix, one plain GEMM per (image, group), the
    /// weight read packed from the cache when `cachedA` is set. All three products.
    case pointwiseGEMM(cachedA: CachedOperand?)
    /// One implicit GEMM per (image, group), its panels packed straight from x
    /// (Convolution/ConvImplicitGEMM.swift), the weight read packed from the cache when
    /// `cachedA` is set. Forward and weight gradient.
    case implicitGEMM(cachedA: CachedOperand?)
    /// A stride-1 input gradient as the convolution of gy with the flipped, transposed kernel:
    /// Winograd on `winogradTile` x `winogradTile` output tiles (2 or 4) when set, else
    /// implicit GEMM.
    case flippedKernel(winogradTile: Int?)
    /// A strided input gradient whose kernel is a multiple of the stride: the stride x stride
    /// sub-pixel phases in one implicit GEMM, then an interleaving scatter.
    case subpixelPhases
    /// Any other input gradient: GEMM W^T gy into bounded column tiles, then col2im.
    case col2imTiles
}

/// Whether 3x3 stride-1 convolutions may use Winograd F(2x2, 3x3) (`ConvGeometry.winograd`).
enum WinogradChoice: Sendable, Equatable {
    /// Used when the geometry is large enough to gain (the default).
    case auto
    /// Used whenever the geometry allows it (tests).
    case always
    /// Never used (tests; `FCN_WINOGRAD=0` makes `.auto` behave so).
    case never
}

/// `FCN_WINOGRAD=0` turns both Winograd forms off process-wide (read once).
let winogradEnabled: Bool = getenvString("FCN_WINOGRAD") != "0"

/// `FCN_WINOGRAD_F4=0` keeps inference on F(2x2, 3x3) tiles process-wide (read once).
let winogradF4Enabled: Bool = getenvString("FCN_WINOGRAD_F4") != "0"
/// `FCN_WINOGRAD_F6=0` keeps F(4x4) where `winogradF6Pays` would pick F(6x6) (comparisons).
let winogradF6Enabled: Bool = getenvString("FCN_WINOGRAD_F6") != "0"

/// `FCN_MARGIN=0` turns the constant-margin form (rule 0) off process-wide (read once).
let marginEnabled: Bool = getenvString("FCN_MARGIN") != "0"

/// `FCN_STRASSEN=0` turns the Strassen form off process-wide (read once).
let strassenEnabled: Bool = getenvString("FCN_STRASSEN") != "0"

/// What the choice depends on besides the geometry and the product.
struct ConvMode {
    /// conv2d asks for its whole op (it may then run as its live-tap box); otherwise one
    /// product is asked for as it stands (convTranspose2d, the backward products, a box's
    /// own products).
    var wholeOp = false
    /// conv2dReLUMaxPool2 asks: ReLU and a 2x2 stride-2 max pool with a non-empty output follow.
    var poolFollows = false
    /// A gradient is recorded through this call (training).
    var recording = false
    /// The weight, when the packed-weight cache serves it in this call (inference: no
    /// gradient of the weight, and the cache on); nil otherwise.
    var cachedWeight: CachedOperand? = nil
    /// The op has scanned its input for runs of equal lines (rule 0), or is convolving the
    /// cut input.
    var marginScanned = false

    /// The mode of conv2d (`poolFollows`: of conv2dReLUMaxPool2) on these tensors, read on the
    /// calling thread when the op starts.
    static func conv2d(x: Tensor, weight: Tensor, bias: Tensor?, poolFollows: Bool = false) -> ConvMode {
        let cache = WeightCache.current
        let cached = cache.applies(to: weight)
            ? CachedOperand(storage: weight.storage, offset: 0, cache: cache,
                            isa: weight.rank == 4 ? Compute.inferenceISA(inChannels: weight.shape[1], outChannels: weight.shape[0])
                                                  : GEMMConfig.defaultISA)
            : nil
        return ConvMode(wholeOp: true, poolFollows: poolFollows,
                        recording: GradMode.isEnabled && (x.requiresGrad || weight.requiresGrad || bias?.requiresGrad == true),
                        cachedWeight: cached)
    }
}

extension ConvGeometry {
    /// The algorithm that computes `product` of this convolution in `mode`: the one place
    /// where it is chosen. The first rule that applies wins.
    ///
    /// Whole op (`mode.wholeOp`, conv2d), forward:
    /// 0. `constantMargin` when the input has not been scanned yet (`marginScanned`), groups
    ///    1, stride 1, dilation 1, and at least `marginMinPlane` outputs: the Caffe layout's
    ///    zero margin and what the layers make of it repeat line after line, so each repeated
    ///    line is computed once; the scan stops at each line's first difference. A recorded forward
    ///    that cuts keeps its plan, and its weight gradient runs on the same cut
    ///    (`convBackwardWeightMargin`, the cut geometry's own weight-gradient rule).
    /// 1. `winogradF2x2ReLUPool` when a pool follows, no gradient is recorded and rule 5
    ///    picks Winograd: its 2x2 output tiles are the pool windows, so the convolution's
    ///    output (conv1_2's is the largest activation of a VGG forward) is never stored.
    ///    Training keeps the two ops: the backward needs that output. With a cached weight,
    ///    `winogradF4x4ReLUPool` (`winogradF4Weight`): 4x4 tiles holding 2x2 windows each.
    /// 2. `liveTapBox` when some rows or columns of kernel taps never meet the input (fc6
    ///    on the 2x2 and 3x3 maps of small images) and the cache does not serve the weight:
    ///    the dead taps' multiply-adds and weight traffic would be spent in all three
    ///    products. A cached weight is at hand packed whole, and a box would be a new copy.
    /// 2b. `dilatedPolyphase` when no gradient is recorded and `polyphaseDilation` applies (a
    ///    3x3 kernel, stride 1, dilation d > 1 on both axes, padding d, groups 1) and the
    ///    phase convolution passes rule 5: Winograd's 4/9 of the multiply-adds for one gather
    ///    and one scatter. Training keeps the direct form (its gradients are not phased).
    ///
    /// Forward:
    /// 3. `depthwiseDirect` when every group reads one input channel: a GEMM of depth
    ///    kH*kW per plane would be all packing.
    /// 4. `batchedColumns` when `batchedImages` > 0 (groups 1, several images, output planes
    ///    of at most `batchedMaxPlane` pixels): per image, the GEMM would pack the whole
    ///    weight for a handful of columns. On larger planes the per-image path, one image per
    ///    thread without synchronisation, is faster.
    /// 5. `winogradF2x2` when `usesWinograd` (3x3, stride 1, dilation 1, groups 1, at least 64
    ///    input and output channels and 64 output tiles per image): 4/9 of the multiply-adds.
    ///    Below those sizes the transforms cost what the multiply-adds save. `winogradF4x4`
    ///    instead (4x4 tiles, 1/4 of the direct multiply-adds) when the cache serves the weight
    ///    (`winogradF4Weight`: U, 4 times the weight, is built once and kept), or without
    ///    the cache when `winogradF4PerCall` (planes large enough for the per-call
    ///    transform of the larger U to pay: training, or the cache off). With the cache and
    ///    `winogradF6Pays` (wide layers on planes that 6x6 tiles cover with little waste),
    ///    `winogradF6x6` (0.74 of F(4x4)'s products on 65 x 65), on the float32 AVX-512 path.
    /// 6. `winogradF27` when the cache serves the weight and `usesWinogradF27` (kh x 7,
    ///    stride 1, dilation 1, groups 1, at least 64 input and output channels), and the
    ///    cache holds its U: 4/7 of the multiply-adds, but U (8/7 of the weight) is worth
    ///    building only when it is kept. On the weight's first sighting (U is built on the
    ///    next call) `implicitGEMM` without caching its own packing (one cached form per
    ///    weight); when U does not fit the cache, `implicitGEMM` with the weight cached.
    /// 7. `strassen` for a pointwise layer, groups 1, when the cache serves the weight and
    ///    `strassenApplies` (Cout and Cin even and >= 1024, >= 64 output pixels) and the
    ///    cache holds the block sums: 7/8 of the multiply-adds; smaller products lose more
    ///    GEMM efficiency than that saves, and the block sums (7/4 of the weight) are worth
    ///    building only when kept. First sighting and no room: `pointwiseGEMM`, as in rule 6.
    /// 8. `pointwiseGEMM` for a pointwise layer: x is already the column matrix.
    /// 9. `implicitGEMM`.
    ///
    /// Input gradient: `batchedColumns` (rule 4) unless `subpixelPhases` applies (its one
    /// GEMM already covers the image); `pointwiseGEMM`; at stride 1 `flippedKernel` when
    /// `flipPays` (Winograd when the flipped convolution passes rule 5, on 4x4 tiles when it
    /// passes `winogradF4PerCall`), a GEMM of depth
    /// Cout/g*kH*kW instead of Cout/g with no col2im; `subpixelPhases` when the kernel is a
    /// multiple of the stride (every FCN upsampling layer), dilation 1: no col2im and a
    /// deeper GEMM; else `col2imTiles`.
    ///
    /// Weight gradient: `batchedColumns` (rule 4), `winogradF2x2` (rule 5; `winogradF4x4`
    /// when `winogradF4PerCall`), `pointwiseGEMM`, `implicitGEMM`.
    ///
    /// Rules 6 and 7 ask the cache for the transformed weight (a first sighting registers
    /// it, a second builds it), so a call chooses once and runs that choice.
    /// `fastPaths == false` (tests) leaves rules 1, 2, 9 and col2im tiles; `winograd` and
    /// `FCN_WINOGRAD=0` / `FCN_STRASSEN=0` switch rules 1, 5, 6 / 7.
    func algorithm(for product: ConvProduct, mode: ConvMode = ConvMode()) -> ConvAlgorithm {
        let cachedA = groups == 1 ? mode.cachedWeight : nil
        switch product {
        case .forward:
            if mode.wholeOp && !mode.marginScanned && marginApplies { return .constantMargin }
            if mode.wholeOp && mode.poolFollows && !mode.recording && usesWinograd && batchedImages == 0 {
                if let weight = winogradF4Weight(mode) { return .winogradF4x4ReLUPool(cachedWeight: weight) }
                return .winogradF2x2ReLUPool(cachedWeight: mode.cachedWeight)
            }
            if mode.wholeOp && mode.cachedWeight == nil, let box = liveTapBox { return .liveTapBox(box) }
            if mode.wholeOp && !mode.recording, let d = polyphaseDilation { return .dilatedPolyphase(dilation: d) }
            if isDepthwise { return .depthwiseDirect }
            let nb = batchedImages
            if nb > 0 { return .batchedColumns(images: nb) }
            if usesWinograd {
                if let weight = winogradF4Weight(mode) {
                    // F(6x6)'s transforms are tuned for AVX-512 only (elsewhere they run one
                    // tile at a time), and bfloat16 keeps F(4x4): its rounding of V would grow
                    // with F(6x6)'s factors.
                    let f6 = weight.isa == .avx512 && winogradF6Pays
                    return f6 ? .winogradF6x6(cachedWeight: weight) : .winogradF4x4(cachedWeight: weight)
                }
                if mode.cachedWeight == nil && winogradF4PerCall { return .winogradF4x4(cachedWeight: nil) }
                return .winogradF2x2(cachedWeight: mode.cachedWeight)
            }
            // Bfloat16 (a reduced-precision cached weight) runs the plain GEMM forms: their
            // operands are rounded once, where F(2, 7) and Strassen would round transforms.
            let reduced = mode.cachedWeight?.isa.reducedPrecision == true
            if let weight = mode.cachedWeight, usesWinogradF27, !reduced {
                switch winogradF27Weights(self, weight: weight) {
                case .ready(let u): return .winogradF27(u: u)
                case .firstSighting: return .implicitGEMM(cachedA: nil)
                case .unavailable: return .implicitGEMM(cachedA: cachedA)
                }
            }
            guard isPointwise else { return .implicitGEMM(cachedA: cachedA) }
            if let weight = cachedA, !reduced, strassenApplies(m: outChannels, n: outPlane, k: inChannels) {
                switch strassenBlockSums(m: outChannels, k: inChannels, lda: inChannels, weight: weight) {
                case .ready(let sums): return .strassen(blockSums: sums)
                case .firstSighting: return .pointwiseGEMM(cachedA: nil)
                case .unavailable: break
                }
            }
            return .pointwiseGEMM(cachedA: cachedA)
        case .inputGradient:
            let subpixel = fastPaths && (strideH > 1 || strideW > 1) && dilH == 1 && dilW == 1
                && kH % strideH == 0 && kW % strideW == 0
            let nb = batchedImages
            if nb > 0 && !subpixel { return .batchedColumns(images: nb) }
            if isPointwise { return .pointwiseGEMM(cachedA: nil) }
            if fastPaths && strideH == 1 && strideW == 1 && flipPays {
                let f = flippedKernelGeometry
                return .flippedKernel(winogradTile: f.usesWinograd ? (f.winogradF4PerCall ? 4 : 2) : nil)
            }
            return subpixel ? .subpixelPhases : .col2imTiles
        case .weightGradient:
            let nb = batchedImages
            if nb > 0 { return .batchedColumns(images: nb) }
            if usesWinograd { return winogradF4PerCall ? .winogradF4x4(cachedWeight: nil) : .winogradF2x2(cachedWeight: nil) }
            return isPointwise ? .pointwiseGEMM(cachedA: nil) : .implicitGEMM(cachedA: nil)
        }
    }

    // MARK: The size rules of `algorithm(for:mode:)` (reasons there)

    /// Largest output plane (pixels) of the batched path (rule 4).
    static let batchedMaxPlane = 32

    /// Images per GEMM of `batchedColumns` (as many as `batchedWorkspaceFloats` holds), or
    /// 0 when rule 4 does not apply.
    var batchedImages: Int {
        guard fastPaths, groups == 1, batch > 1, outPlane <= ConvGeometry.batchedMaxPlane else { return 0 }
        let perImage = (k + outChannels) * outPlane
        let nb = min(batch, ConvGeometry.batchedWorkspaceFloats / max(1, perImage))
        return nb >= 2 ? nb : 0
    }

    /// Rule 0's geometry: one group, stride 1, dilation 1, at least `marginMinPlane` outputs.
    var marginApplies: Bool {
        fastPaths && marginEnabled && groups == 1 && strideH == 1 && strideW == 1 && dilH == 1 && dilW == 1
            && outH * outW >= ConvGeometry.marginMinPlane
    }

    /// Rule 2b: the dilation of a dilated 3x3 convolution whose polyphase form runs as
    /// Winograd (see `algorithm(for:mode:)`), or nil.
    var polyphaseDilation: Int? {
        guard fastPaths, kH == 3, kW == 3, strideH == 1, strideW == 1, dilH > 1, dilH == dilW, groups == 1,
              padTop == dilH, padBottom == dilH, padLeft == dilW, padRight == dilW else { return nil }
        return polyphaseGeometry(self, dilation: dilH).usesWinograd ? dilH : nil
    }

    /// Rule 5: Winograd F(2x2, 3x3) for all three products.
    var usesWinograd: Bool {
        guard fastPaths, allowsWinograd else { return false }
        switch winograd {
        case .never: return false
        case .always: return true
        case .auto:
            return winogradEnabled && inChannels >= 64 && outChannels >= 64 && ((outH + 1) / 2) * ((outW + 1) / 2) >= 64
        }
    }

    /// Rules 1 and 5 at inference: F(4x4, 3x3) instead of F(2x2, 3x3) when nothing is
    /// recorded and the cache serves the weight (U is built once and kept: the 36 matrices are
    /// 4 times the weight), unless `FCN_WINOGRAD_F4=0` or `winograd` is not `.auto`
    /// (`.always` is how tests reach F(2x2) at inference). Returns that cached weight, or nil.
    func winogradF4Weight(_ mode: ConvMode) -> CachedOperand? {
        guard !mode.recording, let weight = mode.cachedWeight, winograd == .auto, winogradF4Enabled else { return nil }
        return weight
    }

    /// Rule 5 without the cache, and for the weight gradient: F(4x4, 3x3) when `winograd` is
    /// `.auto`, `FCN_WINOGRAD_F4` is not 0 and the output has at least `winogradF4MinTiles`
    /// 4x4 tiles per image; below that, transforming the weight into U (or dU back into the
    /// kernel gradient) on every call, 36 elements per kernel against 16, costs more than the
    /// smaller products save.
    var winogradF4PerCall: Bool {
        winograd == .auto && winogradF4Enabled && ((outH + 3) / 4) * ((outW + 3) / 4) >= ConvGeometry.winogradF4MinTiles
    }

    /// Rule 5 at inference with a cached weight: F(6x6, 3x3) instead of F(4x4, 3x3) when both
    /// channel counts are at least `winogradF6MinChannels` and the 6x6 tiles need at most
    /// `winogradF6MaxWork` of the 4x4 tiles' products (64 per 6x6 tile, 36 per 4x4 tile: the
    /// ratio is 0.74 on 65 x 65 and 66 x 66 planes, where 6 divides the padded extent
    /// evenly, 0.89 on 68 x 68, up to 1.3 elsewhere). Its U is 64/36 of F(4x4)'s.
    var winogradF6Pays: Bool {
        guard winogradF6Enabled, inChannels >= ConvGeometry.winogradF6MinChannels,
              outChannels >= ConvGeometry.winogradF6MinChannels else { return false }
        let t6 = ((outH + 5) / 6) * ((outW + 5) / 6), t4 = ((outH + 3) / 4) * ((outW + 3) / 4)
        return Double(64 * t6) <= ConvGeometry.winogradF6MaxWork * Double(36 * t4)
    }

    /// Fewest input and output channels of `winogradF6Pays`: the widths of the layers it was
    /// measured on in whole networks (the ResNet FCNs' layer3, layer4 and head, VGG16's conv3
    /// to conv5). Narrower layers gain on their own too (Benchmarks.md, Winograd F(6x6, 3x3));
    /// not yet measured in whole networks.
    static let winogradF6MinChannels = 256

    /// Largest ratio of F(6x6) to F(4x4) products of `winogradF6Pays`: the 68 x 68 mosaic of
    /// a dilation-4 layer (0.89: 144 tiles of 64 against 289 of 36) still gains (figures:
    /// Benchmarks.md, Winograd F(6x6, 3x3)); near 1, the transforms' extra work is not repaid.
    static let winogradF6MaxWork = 0.9

    /// Fewest 4x4 output tiles per image of `winogradF4PerCall`.
    static let winogradF4MinTiles = 64

    /// Rule 6, but for the cache: Winograd F(2, 7) for a forward with a cached weight.
    var usesWinogradF27: Bool {
        guard fastPaths, allowsWinogradF27 else { return false }
        switch winograd {
        case .never: return false
        case .always: return true
        case .auto: return winogradEnabled && inChannels >= 64 && outChannels >= 64
        }
    }

    /// The input gradient at stride 1 as a flipped-kernel convolution: the flip copies the
    /// weight once (memory traffic about twice its size), which rivals the GEMM only when
    /// the planes are tiny and the layer deep (fc6 on small maps).
    var flipPays: Bool { outGroupChannels < 256 || batch * inPlane >= 1024 }

    /// The forward convolution that computes this one's stride-1 input gradient: gy
    /// convolved with the flipped, transposed kernel, padding `(k-1)*d - pad` on each side
    /// (negative for a pad above (k-1)*d: a crop, which the Winograd transform reads as zeros).
    var flippedKernelGeometry: ConvGeometry {
        var f = ConvGeometry(batch: batch, inChannels: outChannels, inH: outH, inW: outW,
                             outChannels: inChannels, outH: inH, outW: inW, kH: kH, kW: kW, strideH: 1, strideW: 1,
                             padTop: (kH - 1) * dilH - padTop, padBottom: (kH - 1) * dilH - padBottom,
                             padLeft: (kW - 1) * dilW - padLeft, padRight: (kW - 1) * dilW - padRight,
                             dilH: dilH, dilW: dilW, groups: groups)
        f.winograd = winograd
        return f
    }
}

/// Rule 7: one level of Strassen for an `m x k` weight times `n` columns.
func strassenApplies(m: Int, n: Int, k: Int) -> Bool {
    strassenEnabled && m % 2 == 0 && k % 2 == 0 && m >= 1024 && k >= 1024 && n >= 64
}
