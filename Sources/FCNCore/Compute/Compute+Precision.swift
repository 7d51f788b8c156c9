// The arithmetic precision of inference: float32 everywhere, or bfloat16 operands in the
// convolutions' GEMMs on CPUs with AVX512_BF16.
//
// Contract: `Compute.precision` is read by conv2d when its weight is served by the
// packed-weight cache (inference: no gradient recorded, `WeightCache` on). Under `.bfloat16`
// on a CPU that has it (`Compute.bfloat16Supported`), the GEMMs of such a convolution round
// weights and inputs (or their Winograd transforms) to bfloat16 and sum in float32
// (CFCNKernels gemm_avx512_bf16.c); everything else (transforms, bias, ReLU, pooling,
// upsampling, the loss) stays float32. Training never uses it: gradients are float32.
// Layers stay float32 where bfloat16 would cost accuracy for little time: fewer than
// `bfloat16MinInChannels` input channels (the first layer reads the image's 3 channels) or
// fewer than `bfloat16MinOutChannels` output channels (the score layers of an FCN head,
// one channel per class). The accuracy measured on trained models is in the DocC
// Benchmarks page (Accuracy).

/// The arithmetic of inference convolutions (`Compute.precision`).
public enum ComputePrecision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Float32 operands and sums: exact against PyTorch to float rounding (the default).
    case float32
    /// Bfloat16 operands (8 significant bits), float32 sums, on CPUs with AVX512_BF16;
    /// float32 elsewhere. About twice the multiply-adds per instruction.
    case bfloat16

    public var description: String { rawValue }

    /// Parses "float32"/"f32"/"fp32" and "bfloat16"/"bf16" (command-line spellings).
    public init?(parsing s: String) {
        switch s.lowercased() {
        case "float32", "f32", "fp32": self = .float32
        case "bfloat16", "bf16": self = .bfloat16
        default: return nil
        }
    }
}

extension Compute {
    nonisolated(unsafe) private static var _precision: ComputePrecision = .float32
    private static let precisionLock = Lock()
    /// `withPrecision`'s setting for the calling task or thread, over the process-wide one.
    @TaskLocal static var scopedPrecision: ComputePrecision? = nil

    /// The precision of inference convolutions (see `ComputePrecision`): process-wide,
    /// default `.float32`, unless `withPrecision` sets it for the calling code. Setting
    /// `.bfloat16` on a CPU without AVX512_BF16 is allowed and runs float32
    /// (`effectivePrecision` says which runs).
    public static var precision: ComputePrecision {
        get { scopedPrecision ?? precisionLock.withLock { _precision } }
        set { precisionLock.withLock { _precision = newValue } }
    }

    /// Runs `body` with `precision` set to `p` for the calling task or thread only (other
    /// threads keep theirs: a server may answer some requests in each precision).
    public static func withPrecision<R>(_ p: ComputePrecision, _ body: () throws -> R) rethrows -> R {
        try $scopedPrecision.withValue(p) { try body() }
    }

    /// Whether this CPU (and build) has the bfloat16 path.
    public static var bfloat16Supported: Bool { GEMMConfig.bfloat16ISA != nil }

    /// What a tool prints when `p` was asked for on a CPU that cannot run it (nil: it runs).
    public static func unsupportedNotice(_ p: ComputePrecision, tool: String) -> String? {
        p == .bfloat16 && !bfloat16Supported ? "\(tool): this CPU lacks AVX512_BF16; --precision bf16 runs float32" : nil
    }

    /// The precision that actually runs: `.bfloat16` only when asked and supported.
    public static var effectivePrecision: ComputePrecision {
        precision == .bfloat16 && bfloat16Supported ? .bfloat16 : .float32
    }

    /// Input channels below which a convolution stays float32 under `.bfloat16` (the first
    /// layer: 3 image channels, whose rounding is the input's own error).
    public static let bfloat16MinInChannels = 16
    /// Output channels below which a convolution stays float32 under `.bfloat16` (the score
    /// layers: one channel per class, whose rounding would decide close labels).
    public static let bfloat16MinOutChannels = 64

    /// The GEMM path of a cached-weight convolution with `inChannels` (per group) and
    /// `outChannels`: the bfloat16 one when `effectivePrecision` is `.bfloat16` and the layer
    /// is wide enough, else the float32 default.
    static func inferenceISA(inChannels: Int, outChannels: Int) -> GEMMISA {
        if let bf16 = GEMMConfig.bfloat16ISA, precision == .bfloat16,
           inChannels >= bfloat16MinInChannels, outChannels >= bfloat16MinOutChannels {
            return bf16
        }
        return GEMMConfig.defaultISA
    }
}
