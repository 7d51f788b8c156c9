// Implicit-GEMM convolution operands (`sgemmConv`): the B panels packed straight from the
// image must equal packing the materialised column matrix (fcn_im2col_tile). So for every
// ISA path, 1 and 2 threads, default and tiny cache blocks, the result of `sgemmConv` is
// checked BITWISE against `sgemmEngine` on the stored column matrix (same packed values,
// same summation order), and against `sgemmReference` within the GEMM tolerance of
// GEMMTests (1e-6 * sqrt(k) * sum |a b|).
// Geometries cover multi-segment panels (output rows narrower than a 32-pixel panel),
// padding on every side, negative padding (the flipped-kernel input gradient), dilation,
// stride 2 (generic packer), kernels wider than 16 (generic packer), 1x1, and rows wide
// enough for interior panels, which the AVX-512 path multiplies in place (no packing).
import CFCNKernels
@testable import FCNCore
import FCNTestSupport
import Testing

struct ConvGEMMCase: Sendable, CustomTestStringConvertible {
    var c: Int, h: Int, w: Int, kh: Int, kw: Int, s: Int, padTop: Int, padLeft: Int, d: Int, outH: Int, outW: Int
    var testDescription: String { "c\(c) \(h)x\(w) k\(kh)x\(kw) s\(s) p\(padTop),\(padLeft) d\(d) -> \(outH)x\(outW)" }
    var geometry: fcn_conv_geometry {
        fcn_conv_geometry(channels: Int64(c), height: Int64(h), width: Int64(w), kh: Int64(kh), kw: Int64(kw),
                          sh: Int64(s), sw: Int64(s), pad_top: Int64(padTop), pad_left: Int64(padLeft),
                          dh: Int64(d), dw: Int64(d), out_h: Int64(outH), out_w: Int64(outW))
    }
    var taps: Int { c * kh * kw }
    var pixels: Int { outH * outW }
}

private func floats(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 &+ 7
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % (1 << 24)) / Float(1 << 23) - 1
    }
}

@Suite struct ConvGEMMTests {
    static let cases: [ConvGEMMCase] = [
        ConvGEMMCase(c: 3, h: 9, w: 40, kh: 3, kw: 3, s: 1, padTop: 1, padLeft: 1, d: 1, outH: 9, outW: 40),
        ConvGEMMCase(c: 2, h: 5, w: 5, kh: 3, kw: 3, s: 1, padTop: 4, padLeft: 4, d: 1, outH: 11, outW: 11),  // conv1_1-like pad
        ConvGEMMCase(c: 5, h: 7, w: 6, kh: 3, kw: 3, s: 1, padTop: 1, padLeft: 1, d: 1, outH: 7, outW: 6),    // 6-wide rows: 6 segments
        ConvGEMMCase(c: 4, h: 12, w: 1, kh: 3, kw: 1, s: 1, padTop: 1, padLeft: 0, d: 1, outH: 12, outW: 1),  // 1-wide rows
        ConvGEMMCase(c: 3, h: 10, w: 37, kh: 3, kw: 3, s: 1, padTop: -1, padLeft: -2, d: 1, outH: 6, outW: 31), // negative padding
        ConvGEMMCase(c: 2, h: 11, w: 45, kh: 3, kw: 3, s: 1, padTop: 2, padLeft: 2, d: 2, outH: 11, outW: 45), // dilation
        ConvGEMMCase(c: 3, h: 13, w: 50, kh: 3, kw: 3, s: 2, padTop: 1, padLeft: 1, d: 1, outH: 7, outW: 25), // stride 2
        ConvGEMMCase(c: 2, h: 20, w: 20, kh: 1, kw: 17, s: 1, padTop: 0, padLeft: 8, d: 1, outH: 20, outW: 20), // kw > 16
        ConvGEMMCase(c: 7, h: 6, w: 70, kh: 1, kw: 1, s: 1, padTop: 0, padLeft: 0, d: 1, outH: 6, outW: 70),  // 1x1
        ConvGEMMCase(c: 6, h: 14, w: 14, kh: 7, kw: 7, s: 1, padTop: 0, padLeft: 0, d: 1, outH: 8, outW: 8),  // fc6-like
        // Rows wider than a panel: interior panels read in place (AVX-512 macro_conv_direct).
        ConvGEMMCase(c: 3, h: 6, w: 100, kh: 3, kw: 3, s: 1, padTop: 1, padLeft: 1, d: 1, outH: 6, outW: 100),
        ConvGEMMCase(c: 2, h: 10, w: 90, kh: 3, kw: 3, s: 1, padTop: 2, padLeft: 2, d: 2, outH: 10, outW: 90),
        // Padding far wider than the image (conv1_1's 100): panels that see only padding are
        // written without a GEMM (gemm.c zero_panel_epilogue).
        ConvGEMMCase(c: 2, h: 3, w: 4, kh: 3, kw: 3, s: 1, padTop: 40, padLeft: 37, d: 1, outH: 81, outW: 78),
    ]

    static let tinyBlocks = GEMMBlocks(mc: 20, kc: 24, nc: 70)

    @Test(arguments: cases, [GEMMConvOperand.columns, .transposedColumns])
    func implicitOperandEqualsStoredColumns(_ t: ConvGEMMCase, _ operand: GEMMConvOperand) {
        var g = t.geometry
        let x = floats(t.c * t.h * t.w, seed: 1)
        // The stored column matrix [taps, pixels].
        var cols = [Float](repeating: .nan, count: t.taps * t.pixels)
        x.withUnsafeBufferPointer { xp in cols.withUnsafeMutableBufferPointer { cp in
            fcn_im2col_tile(&g, xp.baseAddress!, 0, Int64(t.pixels), cp.baseAddress!)
        } }
        let m = 19
        let (n, k) = operand == .columns ? (t.pixels, t.taps) : (t.taps, t.pixels)
        let a = floats(m * k, seed: 2)
        let bias = floats(m, seed: 3)
        for (beta, relu) in [(Float(0), false), (0.5, true)] {
            let c0 = floats(m * n, seed: 4)
            var want = c0
            a.withUnsafeBufferPointer { ap in cols.withUnsafeBufferPointer { cp in want.withUnsafeMutableBufferPointer { wp in
                sgemmReference(transA: false, transB: operand == .transposedColumns, m: m, n: n, k: k, alpha: 1,
                               a: ap.baseAddress!, lda: k, b: cp.baseAddress!, ldb: t.pixels, beta: beta,
                               c: wp.baseAddress!, ldc: n)
            } } }
            for i in 0..<m { for j in 0..<n { let v = want[i * n + j] + bias[i]; want[i * n + j] = relu ? max(v, 0) : v } }
            for isa in GEMMConfig.availableISAs {
                for threads in [1, 2] {
                    for blocks in [GEMMConfig.blocks, Self.tinyBlocks] {
                        var implicit = c0, stored = c0
                        a.withUnsafeBufferPointer { ap in x.withUnsafeBufferPointer { xp in bias.withUnsafeBufferPointer { bp in
                            let ep = GEMMEpilogue(rowBias: bp.baseAddress, relu: relu)
                            implicit.withUnsafeMutableBufferPointer { ip in
                                sgemmConv(m: m, a: ap.baseAddress!, lda: k, geometry: g, x: xp.baseAddress!, operand: operand,
                                          beta: beta, c: ip.baseAddress!, ldc: n, epilogue: ep,
                                          isa: isa, threads: threads, blocks: blocks)
                            }
                            cols.withUnsafeBufferPointer { cp in stored.withUnsafeMutableBufferPointer { sp in
                                sgemmEngine(isa: isa, threads: threads, transA: false, transB: operand == .transposedColumns,
                                            m: m, n: n, k: k, alpha: 1, a: ap.baseAddress!, lda: k,
                                            b: cp.baseAddress!, ldb: t.pixels, beta: beta, c: sp.baseAddress!, ldc: n,
                                            epilogue: ep, blocks: blocks)
                            } }
                        } } }
                        let label = "\(isa) threads=\(threads) blocks=\(blocks.kc) beta=\(beta)"
                        #expect(implicit.elementsEqual(stored) { $0.bitPattern == $1.bitPattern },
                                "\(label): implicit operand differs from the stored column matrix")
                        var worst: Float = 0
                        for i in 0..<m {
                            for j in 0..<n {
                                var s: Float = abs(beta * c0[i * n + j]) + abs(bias[i])
                                for p in 0..<k {
                                    let bv = operand == .columns ? cols[p * t.pixels + j] : cols[j * t.pixels + p]
                                    s += abs(a[i * k + p] * bv)
                                }
                                let d = abs(implicit[i * n + j] - want[i * n + j])
                                worst = max(worst, d.isNaN ? .infinity : d / (1e-6 * Float(max(1, k)).squareRoot() * s + 1e-30))
                            }
                        }
                        #expect(worst <= 1, "\(label): error \(worst) x tolerance vs sgemmReference")
                    }
                }
            }
        }
    }
}
