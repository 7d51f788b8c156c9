// The choice of a convolution's algorithm (Convolution/ConvAlgorithm.swift): each rule of
// `ConvGeometry.algorithm(for:mode:)` on a geometry it is meant for, the order of the rules
// where two apply, and the cache states of the two algorithms that read the weight only in
// a cached transformed form (first sighting, built, no room). That every algorithm computes
// the same product is checked per engine (ConvWinogradTests, ConvWinogradF27Tests,
// StrassenTests, Conv2DTests, ConvTranspose2DTests).
@testable import FCNCore
import FCNTestSupport
import Testing

private func geometry(_ x: [Int], _ w: [Int], stride: Size2 = 1, padding: Padding = 0, dilation: Size2 = 1,
                      groups: Int = 1) -> ConvGeometry {
    conv2dGeometry(op: "test", input: x, weight: w, bias: nil, stride: stride, padding: padding, dilation: dilation,
                   groups: groups)
}

@Suite struct ConvAlgorithmTests {
    @Test func wholeOpRules() {
        // Rule 1: a pool follows a Winograd layer at inference; not while recording.
        let g = geometry([1, 64, 17, 19], [64, 64, 3, 3], padding: 1)
        let pool = ConvMode(wholeOp: true, poolFollows: true)
        var recording = pool
        recording.recording = true
        #expect(g.algorithm(for: .forward, mode: pool) == (winogradEnabled ? .winogradF2x2ReLUPool(cachedWeight: nil)
                                                                           : .implicitGEMM(cachedA: nil)))
        #expect(g.algorithm(for: .forward, mode: recording) == (winogradEnabled ? .winogradF2x2(cachedWeight: nil)
                                                                                : .implicitGEMM(cachedA: nil)))
        // Rule 2: fc6 on a 2x2 map runs its live-tap box unless the cache serves the weight
        // (or the product is asked for as it stands).
        let fc6 = geometry([1, 8, 2, 2], [16, 8, 7, 7], padding: .same)
        let box = fc6.liveTapBox!
        #expect(fc6.algorithm(for: .forward, mode: ConvMode(wholeOp: true)) == .liveTapBox(box))
        #expect(fc6.algorithm(for: .forward) == .implicitGEMM(cachedA: nil))
        let w = Tensor.randn([16, 8, 7, 7], seed: 1)
        let cached = CachedOperand(storage: w.storage, offset: 0, cache: WeightCache(limitBytes: 1 << 20))
        #expect(fc6.algorithm(for: .forward, mode: ConvMode(wholeOp: true, cachedWeight: cached))
                    == .implicitGEMM(cachedA: cached))
    }

    /// Rule 2b: a dilated 3x3 convolution at inference runs on its polyphase parts when they
    /// pass the Winograd rule; not while recording, not at another padding or stride, not
    /// when the phases are too small for Winograd.
    @Test func dilatedPolyphaseRule() {
        let g = geometry([1, 64, 33, 30], [64, 64, 3, 3], padding: 2, dilation: 2)
        let inference = ConvMode(wholeOp: true)
        var recording = inference
        recording.recording = true
        #expect(g.algorithm(for: .forward, mode: inference) == (winogradEnabled ? .dilatedPolyphase(dilation: 2) : .implicitGEMM(cachedA: nil)))
        #expect(g.algorithm(for: .forward, mode: recording) == .implicitGEMM(cachedA: nil))
        #expect(g.algorithm(for: .forward) == .implicitGEMM(cachedA: nil), "a product asked for as it stands")
        #expect(geometry([1, 64, 33, 30], [64, 64, 3, 3], padding: 1, dilation: 2).polyphaseDilation == nil, "padding 1")
        #expect(geometry([1, 64, 33, 30], [64, 64, 3, 3], stride: 2, padding: 2, dilation: 2).polyphaseDilation == nil)
        #expect(geometry([1, 64, 6, 6], [64, 64, 3, 3], padding: 4, dilation: 4).polyphaseDilation == nil, "2x2 phases")
        // The phases of 33 x 30 as a mosaic: rows 17 + 1 + 16, columns 15 + 1 + 15.
        let p = polyphaseGeometry(g, dilation: 2)
        #expect(p.batch == 1 && p.inH == 34 && p.inW == 31 && p.outH == p.inH && p.padTop == 1 && p.dilH == 1)
        // 65 pixels: 66 with d = 2 and 68 with d = 4 (17 F(4x4) tiles); fewer pixels than d
        // leave empty phases.
        #expect(polyphaseBlocks(65, dilation: 2) == ([0, 34], [33, 32], 66))
        #expect(polyphaseBlocks(65, dilation: 4) == ([0, 18, 35, 52], [17, 16, 16, 16], 68))
        #expect(polyphaseBlocks(1, dilation: 2) == ([0, 2], [1, 0], 2))
    }

    @Test func forwardRules() {
        #expect(geometry([2, 8, 9, 9], [8, 1, 3, 3], padding: 1, groups: 8).algorithm(for: .forward) == .depthwiseDirect)
        #expect(geometry([4, 64, 3, 3], [512, 64, 7, 7], padding: 3).algorithm(for: .forward) == .batchedColumns(images: 4))
        #expect(geometry([1, 64, 20, 20], [72, 64, 3, 3], padding: 1).algorithm(for: .forward)
                    == (winogradEnabled ? .winogradF2x2(cachedWeight: nil) : .implicitGEMM(cachedA: nil)))
        #expect(geometry([1, 48, 20, 20], [72, 48, 3, 3], padding: 1).algorithm(for: .forward) == .implicitGEMM(cachedA: nil),
                "too few channels for Winograd")
        #expect(geometry([2, 24, 6, 6], [70, 24, 1, 1]).algorithm(for: .forward) == .pointwiseGEMM(cachedA: nil))
        #expect(geometry([2, 24, 6, 6], [70, 12, 1, 1], groups: 2).algorithm(for: .forward) == .pointwiseGEMM(cachedA: nil))
        #expect(geometry([1, 5, 13, 11], [7, 5, 5, 5], padding: 2).algorithm(for: .forward) == .implicitGEMM(cachedA: nil))
        // Tests switch the fast paths off: only the implicit GEMM is left.
        var g = geometry([4, 64, 3, 3], [512, 64, 7, 7], padding: 3)
        g.fastPaths = false
        #expect(g.algorithm(for: .forward) == .implicitGEMM(cachedA: nil))
        #expect(g.algorithm(for: .inputGradient) == .col2imTiles)
        #expect(g.algorithm(for: .weightGradient) == .implicitGEMM(cachedA: nil))
    }

    /// Winograd F(2, 7) and Strassen read the weight only in a cached form: the first call
    /// registers it (the plain GEMM runs without caching its packing), the second builds the
    /// form, and a form that does not fit the cache leaves the plain GEMM with its own packing.
    @Test(arguments: [false, true])
    func cachedFormRules(_ strassen: Bool) {
        let xs = strassen ? [1, 1024, 8, 9] : [1, 64, 9, 10], ws = strassen ? [1024, 1024, 1, 1] : [72, 64, 7, 7]
        let enabled = strassen ? strassenEnabled : winogradEnabled
        let g = geometry(xs, ws, padding: strassen ? 0 : 3)
        let w = Tensor.randn(ws, seed: 2)
        func plain(_ cachedA: CachedOperand?) -> ConvAlgorithm {
            strassen ? .pointwiseGEMM(cachedA: cachedA) : .implicitGEMM(cachedA: cachedA)
        }
        let cache = WeightCache(limitBytes: 64 << 20)
        let weight = CachedOperand(storage: w.storage, offset: 0, cache: cache)
        let mode = ConvMode(wholeOp: true, cachedWeight: weight)
        #expect(g.algorithm(for: .forward, mode: mode) == plain(enabled ? nil : weight), "first sighting")
        let second = g.algorithm(for: .forward, mode: mode)
        switch second {
        case .strassen(let sums): #expect(strassen && sums.count == cache.packedFloats(of: w.storage))
        case .winogradF27(let u): #expect(!strassen && u.count == cache.packedFloats(of: w.storage))
        default: #expect(!enabled, "second sighting: \(second)")
        }
        #expect(g.algorithm(for: .forward) == plain(nil), "without the cache")
        let small = WeightCache(limitBytes: 1 << 19)    // too small for the transformed form
        let tight = ConvMode(wholeOp: true, cachedWeight: CachedOperand(storage: w.storage, offset: 0, cache: small))
        for _ in 0..<2 { #expect(g.algorithm(for: .forward, mode: tight) == plain(tight.cachedWeight)) }
    }

    @Test func inputGradientRules() {
        // FCN upsampling (k = 2s): sub-pixel phases, also for batches of small planes.
        let up = convTranspose2dGeometry(op: "test", input: [2, 21, 5, 5], weight: [21, 21, 4, 4], bias: nil, stride: 2,
                                         padding: 0, outputPadding: 0, dilation: 1, groups: 1)
        #expect(up.algorithm(for: .inputGradient) == .subpixelPhases)
        #expect(geometry([4, 64, 3, 3], [512, 64, 7, 7], padding: 3).algorithm(for: .inputGradient) == .batchedColumns(images: 4))
        #expect(geometry([2, 24, 6, 6], [70, 24, 1, 1]).algorithm(for: .inputGradient) == .pointwiseGEMM(cachedA: nil))
        #expect(geometry([1, 64, 20, 20], [72, 64, 3, 3], padding: 1).algorithm(for: .inputGradient)
                    == .flippedKernel(winogradTile: winogradEnabled ? 2 : nil))
        #expect(geometry([1, 5, 13, 11], [7, 5, 5, 5], padding: 2).algorithm(for: .inputGradient) == .flippedKernel(winogradTile: nil))
        // A deep layer on a tiny plane: the weight flip would rival the GEMM.
        #expect(geometry([1, 8, 3, 3], [256, 8, 3, 3], padding: 1).algorithm(for: .inputGradient) == .col2imTiles)
        #expect(geometry([1, 4, 9, 9], [6, 4, 3, 3], stride: 2).algorithm(for: .inputGradient) == .col2imTiles)
    }

    @Test func weightGradientRules() {
        #expect(geometry([4, 64, 3, 3], [512, 64, 7, 7], padding: 3).algorithm(for: .weightGradient) == .batchedColumns(images: 4))
        #expect(geometry([1, 64, 20, 20], [72, 64, 3, 3], padding: 1).algorithm(for: .weightGradient)
                    == (winogradEnabled ? .winogradF2x2(cachedWeight: nil) : .implicitGEMM(cachedA: nil)))
        #expect(geometry([2, 24, 6, 6], [70, 24, 1, 1]).algorithm(for: .weightGradient) == .pointwiseGEMM(cachedA: nil))
        #expect(geometry([2, 8, 9, 9], [8, 1, 3, 3], padding: 1, groups: 8).algorithm(for: .weightGradient)
                    == .implicitGEMM(cachedA: nil))
    }
}
