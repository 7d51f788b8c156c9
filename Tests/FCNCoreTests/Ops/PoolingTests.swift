// Pooling against PyTorch (fixtures from Fixtures/gen_pool.py) and finite differences.
//
// Fixture idea, per case:
//   x = randn(N, C, H, W)                     # randint(0, 3) for the tie cases
//   out, idx = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil, return_indices=True)
//   out.backward(grad_out); store x, out, indices, grad_out, x.grad
// and likewise F.max_unpool2d, F.avg_pool2d (count_include_pad, divisor_override),
// F.adaptive_avg_pool2d.
import Testing
@testable import FCNCore
import FCNTestSupport

/// Distinct values spaced 0.1 apart in a shuffled order, so that finite differences with
/// eps 1e-2 never cross a max-pool tie.
func spacedDistinct(_ shape: [Int], seed: UInt64) -> Tensor {
    let n = shape.reduce(1, *)
    var values = (0..<n).map { Float($0) * 0.1 - Float(n) * 0.05 }
    var rng = FCNRandom(seed: seed)
    values.shuffle(using: &rng)
    return Tensor(shape: shape, scalars: values)
}

/// Runs `f` on a leaf copy of `x`, back-propagates `gradOut` and returns (output, dL/dx).
func forwardBackward(_ x: Tensor, _ gradOut: Tensor, _ f: (Tensor) -> Tensor) -> (Tensor, Tensor) {
    let leaf = x.requiringGrad()
    let out = f(leaf)
    out.backward(gradient: gradOut)
    return (out, leaf.grad ?? Tensor.zeros(x.shape))
}

func size2(_ c: FixtureCase, _ key: String) -> Size2 {
    let v = c.ints(key)
    return Size2(v[0], v[1])
}

@Suite struct PoolingTests {
    // MARK: max pool

    /// Outputs and indices must match exactly (a max copies a value; ties resolved as
    /// PyTorch). Gradients sum a few float values where windows overlap: 1e-6.
    @Test(arguments: loadFixture("maxpool2d"))
    func maxPoolMatchesPyTorch(_ c: FixtureCase) {
        let k = size2(c, "kernel"), s = size2(c, "stride"), p = size2(c, "padding"), d = size2(c, "dilation")
        let ceil = c.bool("ceil")
        let (out, gx) = forwardBackward(c.tensor("x"), c.tensor("grad_out")) {
            maxPool2d($0, kernel: k, stride: s, padding: p, dilation: d, ceilMode: ceil)
        }
        expectClose(out, c.tensor("out"), tolerance: 0, "\(c) out")
        expectClose(gx, c.tensor("grad_x"), tolerance: 1e-6, "\(c) grad_x")
        let (o2, idx) = maxPool2dWithIndices(c.tensor("x"), kernel: k, stride: s, padding: p, dilation: d, ceilMode: ceil)
        #expect(o2.scalars == c.tensor("out").scalars, "\(c)")
        #expect(idx.scalars == c.tensor("indices").scalars, "\(c) indices")
        // The naive reference kernel gives the same values and indices.
        let g = PoolGeometry.make("test", c.tensor("x"), kernel: k, stride: s, padding: p, dilation: d, ceilMode: ceil)
        let (o3, i3) = maxPoolForward(c.tensor("x"), g, wantIndices: true, forceNaive: true)
        #expect(o3.scalars == c.tensor("out").scalars)
        #expect(i3!.map(Float.init) == c.tensor("indices").scalars)
        // Values only (inference): the separable kernel where the dilation is 1.
        let (o4, _) = maxPoolForward(c.tensor("x"), g, wantIndices: false)
        #expect(o4.scalars == c.tensor("out").scalars, "\(c) values only")
    }

    /// The values-only kernel (inference, dilation 1) equals the naive one exactly on every
    /// kernel, stride, padding and rounding mode, with ties and a NaN.
    @Test func valuesOnlyPathEqualsNaive() {
        for k in 1...4 {
            for s in 1...3 {
                for p in 0...(k / 2) {
                    for ceil in [false, true] {
                        for (h, w) in [(1, 1), (5, 7), (12, 9), (17, 16)] {
                            guard poolOutputSize(input: h, kernel: k, stride: s, padding: p, ceilMode: ceil) > 0,
                                  poolOutputSize(input: w, kernel: k, stride: s, padding: p, ceilMode: ceil) > 0 else { continue }
                            var x = Tensor.randn([2, 2, h, w], seed: UInt64(100 * k + 10 * s + p))
                            x.withUnsafeMutableBufferPointer { b in
                                for i in stride(from: 0, to: b.count, by: 3) { b[i] = (b[i] * 2).rounded() }  // ties
                                b[b.count / 3] = .nan
                            }
                            let g = PoolGeometry.make("test", x, kernel: [k, k], stride: [s, s], padding: [p, p], dilation: 1, ceilMode: ceil)
                            let (vo, vi) = maxPoolForward(x, g, wantIndices: false)
                            let (no, _) = maxPoolForward(x, g, wantIndices: false, forceNaive: true)
                            let same = zip(vo.scalars, no.scalars).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
                            #expect(vi == nil && vo.shape == no.shape && same, "k\(k) s\(s) p\(p) ceil \(ceil) \(h)x\(w)")
                        }
                    }
                }
            }
        }
    }

    /// The tuned k2 s2 kernel equals the naive one (values and indices, exactly), with and
    /// without indices, on odd/even sizes in both rounding modes, including ties and NaN.
    @Test func fastPathEqualsNaive() {
        for (h, w) in [(1, 1), (1, 6), (5, 1), (7, 9), (8, 8), (13, 12), (33, 31)] {
            for ceil in [false, true] {
                var x = Tensor.randn([2, 3, h, w], seed: UInt64(h * 100 + w))
                x.withUnsafeMutableBufferPointer { b in
                    for i in stride(from: 0, to: b.count, by: 3) { b[i] = (b[i] * 2).rounded() }  // ties
                    b[b.count / 2] = .nan
                }
                guard poolOutputSize(input: h, kernel: 2, stride: 2, padding: 0, ceilMode: ceil) > 0,
                      poolOutputSize(input: w, kernel: 2, stride: 2, padding: 0, ceilMode: ceil) > 0 else { continue }
                let g = PoolGeometry.make("test", x, kernel: 2, stride: 2, padding: 0, dilation: 1, ceilMode: ceil)
                let (fo, fi) = maxPoolForward(x, g, wantIndices: true)
                let (no, ni) = maxPoolForward(x, g, wantIndices: true, forceNaive: true)
                let (vo, _) = maxPoolForward(x, g, wantIndices: false)
                #expect(fi! == ni!, "\(h)x\(w) ceil \(ceil)")
                let same = zip(fo.scalars, no.scalars).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
                let sameV = zip(vo.scalars, no.scalars).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
                #expect(same && sameV, "\(h)x\(w) ceil \(ceil)")
                if ceil { #expect(fo.scalars.contains { $0.isNaN }, "NaN must propagate") }  // ceil covers every cell
            }
        }
    }

    /// Ceil-mode output sizes, including the rule that drops a window starting past in + p.
    @Test func outputSizeRule() {
        #expect(poolOutputSize(input: 5, kernel: 2, stride: 2, padding: 0, ceilMode: true) == 3)
        #expect(poolOutputSize(input: 5, kernel: 2, stride: 2, padding: 0, ceilMode: false) == 2)
        // (6 + 2 - 3 + 2)/3 + 1 = 3; the 4th window would start at 9 >= 6 + 1.
        #expect(poolOutputSize(input: 6, kernel: 3, stride: 3, padding: 1, ceilMode: true) == 3)
        #expect(poolOutputSize(input: 6, kernel: 2, stride: 2, padding: 1, ceilMode: true) == 4)
        #expect(poolOutputSize(input: 9, kernel: 3, stride: 2, padding: 0, dilation: 2, ceilMode: false) == 3)
        // FCN pools: ceil(in / 2) for every size.
        for n in 1...300 {
            #expect(poolOutputSize(input: n, kernel: 2, stride: 2, padding: 0, ceilMode: true) == (n + 1) / 2)
        }
    }

    /// A 2x2 tie routes the whole gradient to the first cell in scan order.
    @Test func tieGoesToFirstMax() {
        let x = Tensor(shape: [1, 1, 2, 2], scalars: [1, 3, 3, 3]).requiringGrad()
        let (y, idx) = maxPool2dWithIndices(x, kernel: 2)
        #expect(idx.scalars == [1])
        y.backward(gradient: Tensor(shape: [1, 1, 1, 1], scalars: [5]))
        #expect(x.grad!.scalars == [0, 5, 0, 0])
    }

    /// Finite differences (values 0.1 apart, eps 1e-2: no tie crossing). Max pool is
    /// piecewise linear, so the check is exact up to float rounding: 1e-3.
    @Test func maxPoolFiniteDifferences() {
        let configs: [(Size2, Size2, Size2, Size2, Bool)] = [
            (2, 2, 0, 1, true), (3, 2, 1, 1, true), ([3, 2], [1, 2], [1, 0], [1, 2], false), (2, 1, 1, 1, false),
        ]
        for (i, (k, s, p, d, ceil)) in configs.enumerated() {
            let x = spacedDistinct([2, 2, 5, 5], seed: UInt64(i))
            gradientCheck([x], eps: 1e-2, tolerance: 1e-3, "maxPool2d \(k) \(s) \(p) \(d) \(ceil)") {
                maxPool2d($0[0], kernel: k, stride: s, padding: p, dilation: d, ceilMode: ceil)
            }
        }
    }

    // MARK: max unpool

    /// Unpool copies values (exact); backward gathers (exact).
    @Test(arguments: loadFixture("maxunpool2d"))
    func maxUnpoolMatchesPyTorch(_ c: FixtureCase) {
        let k = size2(c, "kernel"), s = size2(c, "stride"), p = size2(c, "padding")
        let os = c.ints("output_size")
        let outSize: Size2? = os.isEmpty ? nil : Size2(os[0], os[1])
        let idx = c.tensor("indices")
        let (out, gx) = forwardBackward(c.tensor("x"), c.tensor("grad_out")) {
            maxUnpool2d($0, indices: idx, kernel: k, stride: s, padding: p, outputSize: outSize)
        }
        expectClose(out, c.tensor("out"), tolerance: 0, "\(c) out")
        expectClose(gx, c.tensor("grad_x"), tolerance: 0, "\(c) grad_x")
    }

    /// Pool then unpool keeps every max in place and zeroes the rest; finite differences.
    @Test func unpoolRoundTripAndFiniteDifferences() {
        let x = spacedDistinct([2, 3, 6, 6], seed: 3)
        let (y, idx) = maxPool2dWithIndices(x, kernel: 2)
        let u = maxUnpool2d(y, indices: idx, kernel: 2)
        #expect(u.shape == x.shape)
        let xs = x.scalars, us = u.scalars
        #expect(us.filter { $0 != 0 }.count == y.count)
        for i in 0..<xs.count where us[i] != 0 { #expect(us[i] == xs[i]) }
        gradientCheck([y], eps: 1e-2, tolerance: 1e-3, "maxUnpool2d") {
            maxUnpool2d($0[0], indices: idx, kernel: 2, outputSize: [7, 7])
        }
    }

    // MARK: average pools

    /// Float sums of up to 25 values, then one division: 1e-6 relative.
    @Test(arguments: loadFixture("avgpool2d"))
    func avgPoolMatchesPyTorch(_ c: FixtureCase) {
        let k = size2(c, "kernel"), s = size2(c, "stride"), p = size2(c, "padding")
        let div = c.ints("divisor")[0]
        let (out, gx) = forwardBackward(c.tensor("x"), c.tensor("grad_out")) {
            avgPool2d($0, kernel: k, stride: s, padding: p, ceilMode: c.bool("ceil"),
                      countIncludePad: c.bool("count_include_pad"), divisorOverride: div == 0 ? nil : div)
        }
        expectClose(out, c.tensor("out"), tolerance: 1e-6, "\(c) out")
        expectClose(gx, c.tensor("grad_x"), tolerance: 1e-6, "\(c) grad_x")
    }

    /// Up to 13 cells per window (larger when the output is smaller): 1e-6 relative.
    @Test(arguments: loadFixture("adaptive_avgpool2d"))
    func adaptiveAvgPoolMatchesPyTorch(_ c: FixtureCase) {
        let o = size2(c, "output_size")
        let (out, gx) = forwardBackward(c.tensor("x"), c.tensor("grad_out")) { adaptiveAvgPool2d($0, outputSize: o) }
        expectClose(out, c.tensor("out"), tolerance: 1e-6, "\(c) out")
        expectClose(gx, c.tensor("grad_x"), tolerance: 1e-6, "\(c) grad_x")
    }

    @Test func globalAvgPoolIsPlaneMean() {
        let x = Tensor.randn([2, 3, 5, 7], seed: 11)
        let y = globalAvgPool2d(x)
        #expect(y.shape == [2, 3, 1, 1])
        let xs = x.scalars
        for p in 0..<6 {
            let mean = xs[(p * 35)..<((p + 1) * 35)].reduce(0, +) / 35
            #expect(abs(y.scalars[p] - mean) < 1e-6)
        }
        gradientCheck([Tensor.randn([2, 2, 3, 4], seed: 1)], tolerance: 1e-3, "globalAvgPool2d") { globalAvgPool2d($0[0]) }
    }

    /// Linear ops: finite differences agree to float rounding (1e-3 with eps 1e-2).
    @Test func averagePoolsFiniteDifferences() {
        let x = Tensor.randn([2, 2, 5, 6], seed: 5)
        for (k, s, p, ceil, cip) in [(Size2(3), Size2(2), Size2(1), true, false), (Size2(2), Size2(2), Size2(1), true, true),
                                     ([3, 2], [1, 2], [1, 0], false, false)] as [(Size2, Size2, Size2, Bool, Bool)] {
            gradientCheck([x], tolerance: 1e-3, "avgPool2d \(k) \(s) \(p)") {
                avgPool2d($0[0], kernel: k, stride: s, padding: p, ceilMode: ceil, countIncludePad: cip)
            }
        }
        gradientCheck([x], tolerance: 1e-3, "adaptiveAvgPool2d") { adaptiveAvgPool2d($0[0], outputSize: [3, 4]) }
        gradientCheck([x], tolerance: 1e-3, "adaptiveAvgPool2d up") { adaptiveAvgPool2d($0[0], outputSize: [7, 8]) }
    }

    @Test func noGraphWithoutGrad() {
        let x = Tensor.randn([1, 2, 4, 4], seed: 1).requiringGrad()
        let y = withoutGrad { maxPool2d(x, kernel: 2) }
        #expect(!y.requiresGrad)
        #expect(maxPool2d(x, kernel: 2).requiresGrad)
    }

    // MARK: misuse

    @Test func paddingLargerThanHalfKernelNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = maxPool2d(Tensor.zeros([1, 1, 8, 8]), kernel: 3, padding: 2)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("maxPool2d: padding 2 must be at most half the kernel 3"))
    }

    @Test func avgPoolTooSmallInputNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = avgPool2d(Tensor.zeros([1, 1, 2, 2]), kernel: 3)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("avgPool2d: input [1, 1, 2, 2] with kernel 3"))
        #expect(text.contains("too small"))
    }

    @Test func unpoolBadIndexNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor.ones([1, 1, 2, 2])
            _ = maxUnpool2d(x, indices: Tensor(shape: [1, 1, 2, 2], scalars: [0, 3, 9, 16]), kernel: 2)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("maxUnpool2d: index 16.0 at flat position 3 is not a valid cell of a 4x4 output plane"))
    }

    @Test func unpoolBadOutputSizeNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor.ones([1, 1, 2, 2])
            _ = maxUnpool2d(x, indices: Tensor.zeros([1, 1, 2, 2]), kernel: 2, outputSize: 6)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("maxUnpool2d: outputSize 6 must lie strictly between"))
    }
}
