// Winograd F(2x2, 3x3) convolution: the fast path of 3x3, stride-1 convolutions.
//
// Contract: the same product as `convForward` for a geometry with kH = kW = 3, stride 1,
// dilation 1, groups 1 (any padding, any output size): y = conv(x, w) + bias, then ReLU when
// asked. Each 2x2 output tile costs 16 multiply-adds per channel pair instead of 36, so the
// GEMM work is 4/9 of im2col's. Transforms in C (CFCNKernels/winograd.c, contract in
// fcn_winograd.h); the 16 products `M_e [Cout, tiles] = U_e [Cout, Cin] x V_e [Cin, tiles]`
// run on the SGEMM engine's macro-kernel, U packed once per call, V written by the input
// transform straight into packed-B panels.
// Per image, tiles are processed in chunks of `nt`: input transform (threads over channels),
// the 16 GEMMs (threads over elements), output transform with bias and ReLU (threads over
// output channels). Workspace: U (16 * roundup(Cout, MR) * Cin floats, plus the unpacked
// copy while packing) and per chunk V + M = 16 * nt * (Cin + Cout) floats, with nt chosen so
// that V + M stay under `winogradChunkFloats` (8 MiB) whatever the image size.
// Accuracy: every transform factor is 0, +-1 or +-1/2; measured against PyTorch and the
// im2col path the error stays at float rounding of the sums (tests in Conv2DTests).
// Used when `ConvGeometry.usesWinograd` says so (enough channels and pixels for the
// transforms to pay; `FCN_WINOGRAD=0` turns it off for the whole process); otherwise, and
// on any other geometry, the im2col engine runs.
import CFCNKernels

/// Whether 3x3 stride-1 convolutions may use Winograd F(2x2, 3x3) (see `usesWinograd`).
enum WinogradChoice: Sendable, Equatable {
    /// Used when the geometry is large enough to gain (the default).
    case auto
    /// Used whenever the geometry allows it (tests).
    case always
    /// Never used (tests; `FCN_WINOGRAD=0` makes `.auto` behave so).
    case never
}

/// `FCN_WINOGRAD=0` disables the Winograd path process-wide (read once).
let winogradEnabled: Bool = getenvString("FCN_WINOGRAD") != "0"

/// V + M floats of one chunk (8 MiB). Chunks of 1 to 8 MiB measured level on the VGG16
/// layers (conv1_2 ... conv5_1 at 500 x 500); the larger bound re-reads U less often.
let winogradChunkFloats = 1 << 21

extension ConvGeometry {
    /// Whether the geometry is one Winograd F(2x2, 3x3) computes.
    var allowsWinograd: Bool {
        kH == 3 && kW == 3 && strideH == 1 && strideW == 1 && dilH == 1 && dilW == 1 && groups == 1
    }

    /// Whether `convForward` runs this geometry as Winograd F(2x2, 3x3): allowed, not
    /// turned off, and (for `.auto`) at least 16 input and output channels and 64 output
    /// tiles per image, below which the transforms and the weight packing cost more than
    /// the 5/9 of the multiply-adds they save (measured in fcn-bench's layer rows).
    var usesWinograd: Bool {
        guard fastPaths, allowsWinograd else { return false }
        switch winograd {
        case .never: return false
        case .always: return true
        case .auto:
            return winogradEnabled && inChannels >= 16 && outChannels >= 16 && ((outH + 1) / 2) * ((outW + 1) / 2) >= 64
        }
    }
}

/// y = conv(x, w) + bias (ReLU when `relu`) by Winograd F(2x2, 3x3); see the file contract.
/// `g` must satisfy `allowsWinograd`; its padding may be negative (a crop: the flipped-kernel
/// input gradient). `isa` and `chunkFloats` are for tests (every path, many chunks).
func convForwardWinograd(_ g: ConvGeometry, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                         bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, relu: Bool,
                         isa: GEMMISA = GEMMConfig.defaultISA, chunkFloats: Int = winogradChunkFloats) {
    precondition(g.allowsWinograd)
    guard let (mr, nr) = isa.kernelShape else { fcnFail("conv2d", "no GEMM kernel for \(isa)") }
    let cin = g.inChannels, cout = g.outChannels
    let tilesW = (g.outW + 1) / 2, tiles = ((g.outH + 1) / 2) * tilesW
    // Chunk: at most winogradChunkFloats of V + M, a multiple of NR, chunks of equal size.
    let ntMax = max(nr, (chunkFloats / (16 * (cin + cout))) / nr * nr)
    let chunks = (tiles + ntMax - 1) / ntMax
    let nt = min(roundUp((tiles + chunks - 1) / chunks, nr), roundUp(tiles, nr))
    let uStride = roundUp(cout, mr) * cin, vStride = nt * cin, mStride = cout * nt
    withScratch(16 * uStride) { uPacked in
        let pu = UncheckedSendable(uPacked)
        parallelChunks((cout + mr - 1) / mr) { r in
            fcn_winograd_f2_weights(w, Int64(cout), Int64(cin), Int64(mr), Int64(r.lowerBound), Int64(r.upperBound),
                                    pu.value, Int64(uStride))
        }
        withScratch(16 * (vStride + mStride)) { v in
            let m = v + 16 * vStride
            let ptrs = UncheckedSendable((UnsafePointer(uPacked), v, m))
            for n in 0..<g.batch {
                let xn = x + n * cin * g.inPlane, yn = y + n * cout * g.outPlane
                let px = UncheckedSendable((xn, yn))
                for t0 in stride(from: 0, to: tiles, by: nt) {
                    let cnt = min(nt, tiles - t0)
                    parallelChunks(cin, minChunk: 4) { r in
                        withScratch(12 * (tilesW + 2)) { s in
                            fcn_winograd_f2_input(isa.transformFlag, px.value.0, Int64(cin), Int64(g.inH), Int64(g.inW),
                                                  Int64(g.padTop), Int64(g.padLeft), Int64(tilesW), Int64(t0),
                                                  Int64(cnt), Int64(r.lowerBound), Int64(r.upperBound), Int64(nr),
                                                  ptrs.value.1, Int64(vStride), s)
                        }
                    }
                    parallelFor(16) { e in
                        let (u, v, m) = ptrs.value
                        fcn_sgemm_macro(isa.flag, cout, cnt, cin, 1, u + e * uStride, v + e * vStride, 0,
                                        m + e * mStride, nt, nil, nil, 0)
                    }
                    parallelChunks(cout, minChunk: 4) { r in
                        withScratch(4 * tilesW) { s in
                            fcn_winograd_f2_output(isa.transformFlag, ptrs.value.2, Int64(mStride), Int64(nt), Int64(r.lowerBound),
                                                   Int64(r.upperBound), Int64(tilesW), Int64(t0), Int64(cnt), bias,
                                                   relu ? 1 : 0, px.value.1, Int64(g.outH), Int64(g.outW), s)
                        }
                    }
                }
            }
        }
    }
}


extension GEMMISA {
    /// The flag of the Winograd transforms for this path (x86 paths have their own
    /// instances; NEON runs the portable C, which the compiler vectorises).
    var transformFlag: Int32 { self == .neon ? Int32(FCN_ISA_PORTABLE) : flag }
}
