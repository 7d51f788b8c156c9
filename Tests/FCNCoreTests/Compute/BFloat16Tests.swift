// The bfloat16 path (Compute.precision, CFCNKernels gemm_avx512_bf16.c): its GEMM against a
// float64 sum of the bfloat16-rounded operands, and every inference convolution form that
// runs on it against the float32 reference.
//
// Tolerances:
// - GEMM: the operands are rounded in the reference too, so only the float32 sums differ:
//   1e-6 * sqrt(k) * S per element as in GEMMTests (S = sum |a b| + |beta c|), far below
//   the O(2^-8 S) of an operand left unrounded or rounded the wrong way.
// - Convolutions against float32: each operand rounds by at most 2^-9 relative, so a direct
//   sum is off by at most about 2^-8 S (S = the convolution of |x| by |w|); Winograd rounds
//   the transforms, whose magnitudes are up to 4 (input) and 9/4 (weight) times the values
//   they combine, so 2^-5 S there (2^-4 S on the products of two transforms, still far
//   below the S of a wrong tap).
// Skipped on CPUs without AVX512_BF16, except the checks that float32 runs there.
import CFCNKernels
@testable import FCNCore
import FCNTestSupport
import Testing

/// x rounded to the nearest bfloat16 (ties to even), as VCVTNE2PS2BF16 rounds finite values.
private func bf16(_ x: Float) -> Float {
    let b = x.bitPattern
    return Float(bitPattern: (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000)
}

private func uniform(_ count: Int, seed: UInt64) -> [Float] {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 &+ 7
    return (0..<count).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % (1 << 24)) / Float(1 << 23) - 1
    }
}

struct BFloat16Tests {
    static let isa = GEMMConfig.bfloat16ISA

    @Test func roundingMatchesTheReferenceRule() {
        #expect(bf16(1) == 1)
        #expect(bf16(1 + 1.0 / 512) == 1)               // halfway: ties to even (down)
        #expect(bf16(1 + 3.0 / 512) == 1 + 4.0 / 512)   // halfway: ties to even (up)
        #expect(bf16(1 + 1.1 / 256) == 1 + 1.0 / 128)   // above halfway: up
    }

    /// C = alpha bf16(op A) bf16(op B) + beta C (+ bias, ReLU) against float64 sums of the
    /// rounded operands: shapes with partial row and column panels, odd depths (a k pair
    /// with one value), depths past one conversion chunk (512), every transpose of A and B
    /// (B read straight into k pairs, or through the float32 packer), on 1 and 2 threads.
    @Test(.enabled(if: GEMMConfig.bfloat16ISA != nil),
          arguments: [(1, 1, 1), (14, 32, 2), (15, 33, 3), (29, 70, 513), (64, 100, 1025), (200, 37, 4), (9, 300, 77)])
    func gemmEqualsRoundedOperandSums(_ shape: (Int, Int, Int)) throws {
        let isa = try #require(Self.isa)
        let (m, n, k) = shape
        let a = uniform(m * k, seed: 1), b = uniform(k * n, seed: 2) // [m, k] / [k, n], or transposed
        let c0 = uniform(m * n, seed: 3), bias = uniform(m, seed: 4)
        for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
            func aAt(_ i: Int, _ p: Int) -> Float { transA ? a[p * m + i] : a[i * k + p] }
            func bAt(_ p: Int, _ j: Int) -> Float { transB ? b[j * k + p] : b[p * n + j] }
            for (alpha, beta, relu) in [(Float(1), Float(0), false), (0.5, 0.75, true)] {
                for threads in [1, 2] {
                    var c = c0
                    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
                        bias.withUnsafeBufferPointer { pbias in c.withUnsafeMutableBufferPointer { pc in
                            sgemmEngine(isa: isa, threads: threads, transA: transA, transB: transB, m: m, n: n, k: k,
                                        alpha: alpha, a: pa.baseAddress!, lda: transA ? m : k, b: pb.baseAddress!,
                                        ldb: transB ? k : n,
                                        beta: beta, c: pc.baseAddress!, ldc: n,
                                        epilogue: GEMMEpilogue(rowBias: pbias.baseAddress, relu: relu))
                        } }
                    } }
                    var worst: Double = 0
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum: Double = 0, abs: Double = 0
                            for p in 0..<k {
                                let t = Double(bf16(aAt(i, p))) * Double(bf16(bAt(p, j)))
                                sum += t; abs += Swift.abs(t)
                            }
                            var want = Double(alpha) * sum + Double(beta) * Double(c0[i * n + j]) + Double(bias[i])
                            if relu { want = max(0, want) }
                            let s = Double(alpha) * abs + Double(Swift.abs(beta * c0[i * n + j])) + Double(Swift.abs(bias[i]))
                            worst = max(worst, Swift.abs(Double(c[i * n + j]) - want) / (1e-6 * Double(k).squareRoot() * s + 1e-30))
                        }
                    }
                    #expect(worst <= 1, "\(m)x\(n)x\(k) transA \(transA) transB \(transB) beta \(beta) \(threads) threads: error / tolerance \(worst)")
                }
            }
        }
    }

    /// Every convolution form that reads a cached weight, under `.bfloat16`, against the
    /// float32 reference within the bound of the file header, and not equal to the float32
    /// result (the path ran). Each runs twice: the weight is packed on one call and read
    /// packed on the next.
    struct ConvCase: Sendable, CustomTestStringConvertible {
        var label: String, x: [Int], w: [Int], pad: Int, dilation: Int, tolerance: Float
        var testDescription: String { label }
    }

    @Test(.enabled(if: GEMMConfig.bfloat16ISA != nil), arguments: [
        ConvCase(label: "implicit GEMM 5x5", x: [1, 16, 13, 11], w: [64, 16, 5, 5], pad: 2, dilation: 1, tolerance: 1.0 / 256),
        ConvCase(label: "pointwise 1x1", x: [2, 64, 9, 7], w: [96, 64, 1, 1], pad: 0, dilation: 1, tolerance: 1.0 / 256),
        ConvCase(label: "7x7 (float32 would take F(2, 7))", x: [1, 64, 12, 12], w: [64, 64, 7, 7], pad: 0, dilation: 1,
                 tolerance: 1.0 / 256),
        ConvCase(label: "Winograd 3x3", x: [1, 64, 20, 18], w: [72, 64, 3, 3], pad: 1, dilation: 1, tolerance: 1.0 / 16),
        ConvCase(label: "polyphase dilation 2", x: [1, 64, 34, 34], w: [64, 64, 3, 3], pad: 2, dilation: 2, tolerance: 1.0 / 16),
    ])
    func convolutionsStayWithinTheBound(_ c: ConvCase) {
        let (label, xs, ws, pad, dilation, tolerance) = (c.label, c.x, c.w, c.pad, Size2(c.dilation), c.tolerance)
        let x = Tensor.randn(xs, seed: 11), w = Tensor.randn(ws, seed: 12), b = Tensor.randn([ws[0]], seed: 13)
        let want = conv2dReference(x, weight: w, bias: b, padding: .symmetric(pad), dilation: dilation).relu()
        let scale = conv2dReference(x.abs(), weight: w.abs(), padding: .symmetric(pad), dilation: dilation).scalars
        let cache = WeightCache(limitBytes: 64 << 20)
        func conv(_ p: ComputePrecision) -> [Float] {
            Compute.withPrecision(p) {
                WeightCache.$current.withValue(cache) {
                    withoutGrad { conv2d(x, weight: w, bias: b, padding: .symmetric(pad), dilation: dilation, fusedReLU: true) }
                }
            }.scalars
        }
        let f32 = conv(.float32)
        for call in 0..<2 {
            let got = conv(.bfloat16)
            let worst = zip(zip(got, want.scalars), scale).map { Swift.abs($0.0 - $0.1) / $1 }.max() ?? 0
            #expect(worst <= tolerance, "\(label) call \(call): error / S = \(worst)")
            #expect(got != f32, "\(label) call \(call): the bfloat16 path ran")
        }
    }

    /// conv2d + ReLU + 2x2 max pool fused in Winograd's output transform, under `.bfloat16`.
    @Test(.enabled(if: GEMMConfig.bfloat16ISA != nil))
    func fusedPoolStaysWithinTheBound() {
        let x = Tensor.randn([1, 64, 24, 22], seed: 21), w = Tensor.randn([64, 64, 3, 3], seed: 22)
        let b = Tensor.randn([64], seed: 23)
        let cache = WeightCache(limitBytes: 64 << 20)
        let want = FCNReference.maxPool2d(conv2dReference(x, weight: w, bias: b, padding: 1).relu(), kernel: 2, stride: 2)
        // The pool's bound: a max of values each within the conv bound is within it.
        let scale = conv2dReference(x.abs(), weight: w.abs(), padding: 1).scalars.max() ?? 1
        for call in 0..<2 {
            let got = Compute.withPrecision(.bfloat16) {
                WeightCache.$current.withValue(cache) {
                    withoutGrad { conv2dReLUMaxPool2(x, weight: w, bias: b, padding: 1, ceilMode: false) }
                }
            }
            #expect(got.shape == want.shape)
            let worst = zip(got.scalars, want.scalars).map { Swift.abs($0 - $1) }.max() ?? 0
            #expect(worst <= scale / 16, "call \(call): error \(worst), S \(scale)")
        }
    }

    /// The first layer (3 input channels) and score layers (fewer than 64 outputs) stay
    /// float32 bit for bit under `.bfloat16`; so does training (no cached weight).
    @Test func narrowLayersAndTrainingStayFloat32() {
        let cache = WeightCache(limitBytes: 64 << 20)
        for (xs, ws) in [([1, 3, 20, 20], [64, 3, 3, 3]), ([1, 64, 20, 20], [21, 64, 1, 1])] {
            let x = Tensor.randn(xs, seed: 31), w = Tensor.randn(ws, seed: 32)
            func conv(_ p: ComputePrecision) -> [Float] {
                Compute.withPrecision(p) { WeightCache.$current.withValue(cache) { withoutGrad { conv2d(x, weight: w, padding: 1) } } }.scalars
            }
            #expect(conv(.bfloat16) == conv(.float32), "\(ws) stays float32")
        }
        let x = Tensor.randn([1, 64, 12, 12], seed: 33), w = Tensor.randn([64, 64, 3, 3], seed: 34).requiringGrad()
        let trained = Compute.withPrecision(.bfloat16) { conv2d(x, weight: w, padding: 1).scalars }
        #expect(trained == conv2d(x, weight: w, padding: 1).scalars, "a recorded convolution stays float32")
    }

    @Test func precisionSettingAndFallback() {
        #expect(ComputePrecision(parsing: "bf16") == .bfloat16 && ComputePrecision(parsing: "BFloat16") == .bfloat16)
        #expect(ComputePrecision(parsing: "fp32") == .float32 && ComputePrecision(parsing: "f16") == nil)
        #expect(Compute.precision == .float32, "the default is float32")
        Compute.withPrecision(.bfloat16) {
            #expect(Compute.precision == .bfloat16)
            #expect(Compute.effectivePrecision == (Compute.bfloat16Supported ? .bfloat16 : .float32))
            let wide = Compute.inferenceISA(inChannels: 64, outChannels: 64)
            #expect(wide == (Compute.bfloat16Supported ? .avx512bf16 : GEMMConfig.defaultISA))
            #expect(Compute.inferenceISA(inChannels: 3, outChannels: 64) == GEMMConfig.defaultISA)
            #expect(Compute.inferenceISA(inChannels: 64, outChannels: 21) == GEMMConfig.defaultISA)
        }
        #expect(Compute.inferenceISA(inChannels: 64, outChannels: 64) == GEMMConfig.defaultISA)
        #expect(Compute.bfloat16Supported == (fcn_cpu_isa_flags() & Int32(FCN_ISA_AVX512_BF16) != 0))
        #expect(!GEMMConfig.availableISAs.contains(.avx512bf16), "never a float32 path")
    }
}
