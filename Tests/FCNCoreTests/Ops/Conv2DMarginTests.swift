// The constant-margin form of conv2d (Ops/Conv2D+Margin.swift, rule 0 `constantMargin`).
//
// Inputs are built as the Caffe layout makes them: random values in a box, one value per
// channel around it, and a one-pixel frame at the image border with other values (where
// zero padding entered an earlier layer). The cuts are checked on runs written out by hand;
// conv2d, the fused conv + ReLU + pool (ceil and floor, odd sizes) and a recorded conv2d's
// output and gradients against the naive references over kernels 1, 3 and 5, paddings 0 to
// 3 and batches; inputs without runs, or whose images disagree, take the plain algorithm.
// Tolerance 1e-5 relative to max(1, max |expected|), as the algorithms the cut convolution
// runs (the cut changes which algorithm computes a value, not the value).
@testable import FCNCore
import FCNTestSupport
import Testing

/// `[n, c, h, w]`: random in rows `box.0` and columns `box.1`, per channel 0.5 + k / 4 outside,
/// and 2 + k on the outermost rows and columns (the frame).
private func marginInput(_ n: Int, _ c: Int, _ h: Int, _ w: Int, box: (Range<Int>, Range<Int>), seed: UInt64) -> Tensor {
    let r = Tensor.randn([n, c, h, w], seed: seed).scalars
    var v = [Float](repeating: 0, count: n * c * h * w)
    for i in 0..<n { for k in 0..<c { for y in 0..<h { for x in 0..<w {
        let j = ((i * c + k) * h + y) * w + x
        if box.0.contains(y) && box.1.contains(x) { v[j] = r[j] }
        else if y == 0 || y == h - 1 || x == 0 || x == w - 1 { v[j] = 2 + Float(k) }
        else { v[j] = 0.5 + Float(k) / 4 }
    } } } }
    return Tensor(shape: [n, c, h, w], scalars: v)
}

@Suite struct Conv2DMarginTests {
    static let tolerance: Float = 1e-5

    /// A run of 30 equal lines (2 ... 31) for a 3-tap kernel with padding 1: 2 kept before,
    /// 2 after, 26 cut; the output start shifts by pad - k + 1. Even: the output start and the
    /// count even. Too short a run: no cut. Sources map cut lines to the cut's first line.
    @Test func cutsOfARun() {
        var eq = [Bool](repeating: false, count: 49)
        for i in 2..<31 { eq[i] = true }           // lines 2 ... 31 equal
        #expect(marginCuts(equal: eq, pad: 1, k: 3, even: false) == [MarginCut(input: 4, output: 3, count: 26)])
        #expect(marginCuts(equal: eq, pad: 1, k: 3, even: true) == [MarginCut(input: 5, output: 4, count: 24)])
        #expect(marginCuts(equal: eq, pad: 0, k: 1, even: false) == [MarginCut(input: 2, output: 2, count: 28)])
        var short = [Bool](repeating: false, count: 49)
        for i in 2..<13 { short[i] = true }         // 12 equal lines: 12 - 2 - 2 = 8 cut
        #expect(marginCuts(equal: short, pad: 1, k: 3, even: false).map(\.count) == [8])
        short[12] = false                           // 11 lines: 7, below marginMinCut
        #expect(marginCuts(equal: short, pad: 1, k: 3, even: false).isEmpty)
        let src = marginSources([MarginCut(input: 4, output: 3, count: 26)], lines: 50)
        #expect(Array(src[0..<4]) == [0, 1, 2, 3] && src[3..<29].allSatisfy { $0 == 3 } && src[29] == 3 && src[49] == 23)
    }

    @Test func equalLinesFindRunsInRowsAndColumns() {
        let x = marginInput(2, 3, 20, 24, box: (8..<11, 5..<19), seed: 1)
        let rows = equalAdjacentLines(x, rows: true), cols = equalAdjacentLines(x, rows: false)
        #expect(rows == (0..<19).map { (1..<7).contains($0) || (11..<18).contains($0) })
        #expect(cols == (0..<23).map { (1..<4).contains($0) || (19..<22).contains($0) })
    }

    /// conv2d through rule 0 against the naive loops, on margins in rows and columns, with
    /// bias and ReLU; the cut form ran (checked directly) where the runs are long.
    @Test(arguments: [
        (1, 8, 80, 90, 3, 1, true),
        (2, 5, 75, 70, 3, 2, false),
        (1, 4, 70, 72, 5, 2, true),
        (1, 6, 66, 80, 1, 0, true),
        (2, 3, 90, 64, 3, 0, false),
    ])
    func conv2dMatchesReference(_ n: Int, _ c: Int, _ h: Int, _ w: Int, _ k: Int, _ pad: Int, _ relu: Bool) {
        let x = marginInput(n, c, h, w, box: ((h / 3)..<(h / 3 + 12), (w / 2 - 5)..<(w / 2 + 9)), seed: 2)
        let weight = Tensor.randn([7, c, k, k], seed: 3), bias = Tensor.randn([7], seed: 4)
        let g = conv2dGeometry(op: "test", input: x.shape, weight: weight.shape, bias: [7], stride: 1, padding: .symmetric(pad),
                               dilation: 1, groups: 1)
        guard marginEnabled else { return }
        #expect(g.algorithm(for: .forward, mode: .conv2d(x: x, weight: weight, bias: bias)) == .constantMargin)
        #expect(convForwardMargin(g, x: x, weight: weight, bias: bias, relu: relu, cachedWeight: nil) != nil, "cut")
        var expected = conv2dReference(x, weight: weight, bias: bias, padding: .symmetric(pad))
        if relu { expected = FCNCore.relu(expected) }
        expectClose(withoutGrad { conv2d(x, weight: weight, bias: bias, padding: .symmetric(pad), fusedReLU: relu) }, expected,
                    tolerance: Self.tolerance, "n\(n) c\(c) \(h)x\(w) k\(k) pad \(pad)")
    }

    /// The fused conv + ReLU + 2x2 pool, ceil and floor on odd and even sizes, with the
    /// packed-weight cache (inference) and without.
    @Test(arguments: [(81, 77, true), (81, 77, false), (96, 70, true), (70, 95, false)])
    func pooledMatchesReference(_ h: Int, _ w: Int, _ ceil: Bool) {
        let x = marginInput(1, 6, h, w, box: (30..<44, 20..<41), seed: 5)
        let weight = Tensor.randn([9, 6, 3, 3], seed: 6), bias = Tensor.randn([9], seed: 7)
        let expected = maxPool2d(FCNCore.relu(conv2dReference(x, weight: weight, bias: bias, padding: .symmetric(1))),
                                 kernel: 2, stride: 2, ceilMode: ceil)
        for cache in [WeightCache.disabled, WeightCache(limitBytes: 16 << 20)] {
            WeightCache.$current.withValue(cache) {
                for _ in 0..<2 {
                    let y = withoutGrad { conv2dReLUMaxPool2(x, weight: weight, bias: bias, padding: .symmetric(1), ceilMode: ceil) }
                    expectClose(y, expected, tolerance: Self.tolerance, "\(h)x\(w) ceil \(ceil)")
                }
            }
        }
    }

    /// Training: the recorded op's output and weight gradient by the cut form, its input
    /// gradient the plain one; kernels 1, 3, 5, paddings 0 to 2, one and two images, with
    /// and without the fused ReLU.
    @Test(arguments: [(1, 0, 1, false), (3, 1, 1, true), (3, 0, 2, false), (5, 2, 1, true), (5, 1, 2, false)])
    func recordedConvMatchesReferenceAndGradients(_ k: Int, _ pad: Int, _ n: Int, _ relu: Bool) {
        let x = marginInput(n, 5, 72, 68, box: (20..<40, 25..<35), seed: 8).requiringGrad()
        let weight = Tensor.randn([6, 5, k, k], seed: 9).requiringGrad(), bias = Tensor.randn([6], seed: 10).requiringGrad()
        let g = conv2dGeometry(op: "test", input: x.shape, weight: weight.shape, bias: nil, stride: 1, padding: Padding(integerLiteral: pad),
                               dilation: 1, groups: 1)
        #expect(marginPlan(g, x: x, weight: weight, bias: bias) != nil, "the input has runs to cut")
        let y = conv2d(x, weight: weight, bias: bias, padding: Padding(integerLiteral: pad), fusedReLU: relu)
        let gy = Tensor.randn(y.shape, seed: 11)
        (y * gy).sum().backward()
        let xd = x.detached()
        var expected = conv2dReference(xd, weight: weight.detached(), bias: bias.detached(), padding: Padding(integerLiteral: pad))
        if relu { expected = withoutGrad { expected.relu() } }
        expectClose(y.detached(), expected, tolerance: Self.tolerance, "forward k\(k) p\(pad) n\(n)")
        let gyMasked = relu ? Tensor(shape: gy.shape, scalars: zip(gy.scalars, expected.scalars).map { $1 > 0 ? $0 : 0 }) : gy
        expectClose(weight.grad!, conv2dWeightGradReference(xd, gyMasked, weightShape: weight.shape, stride: 1, padding: Padding(integerLiteral: pad),
                                                            dilation: 1, groups: 1), tolerance: Self.tolerance, "grad w k\(k) p\(pad) n\(n)")
        let gx = Tensor.make(shape: xd.shape) {
            convBackwardData(g, gy: gyMasked.storage.pointer, w: weight.storage.pointer, gx: $0.baseAddress!,
                             algorithm: .col2imTiles)
        }
        expectClose(x.grad!, gx, tolerance: Self.tolerance, "grad x k\(k) p\(pad) n\(n)")
        expectClose(bias.grad!, Tensor(shape: [6], scalars: (0..<6).map { c in
            (0..<n).reduce(Float(0)) { acc, i in acc + gyMasked.scalars[((i * 6 + c) * y.shape[2] * y.shape[3])...].prefix(y.shape[2] * y.shape[3]).reduce(0, +) }
        }), tolerance: Self.tolerance, "grad b")
    }

    /// `contractGradient` is the adjoint of the expansion: <expand(y), g> = <y, contract(g)>
    /// for sources with repeated and consecutive lines on both axes.
    @Test func contractionIsTheAdjointOfTheExpansion() {
        let rowSources = [0, 1, 2, 2, 2, 2, 3, 4, 5, 5, 6], colSources = [0, 0, 1, 2, 3, 3, 3, 3, 3, 4, 5, 6, 6]
        let y = Tensor.randn([2, 3, 7, 7], seed: 20), gy = Tensor.randn([2, 3, rowSources.count, colSources.count], seed: 21)
        var expanded = [Float](repeating: 0, count: gy.count)
        for p in 0..<6 { for r in 0..<rowSources.count { for c in 0..<colSources.count {
            expanded[(p * rowSources.count + r) * colSources.count + c] = y.scalars[(p * 7 + rowSources[r]) * 7 + colSources[c]]
        } } }
        let contracted = contractGradient(gy.storage.pointer, planes: 6, height: 7, width: 7, rowSources: rowSources,
                                          colSources: colSources)
        let lhs = zip(expanded, gy.scalars).reduce(Double(0)) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(y.scalars, contracted.scalars).reduce(Double(0)) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)), "\(lhs) vs \(rhs)")
        // Cut row 2 (copied by four rows), column 3 (by five columns) of plane 0, written out.
        var sum: Float = 0
        for r in 2...5 { for c in 4...8 { sum += gy.scalars[r * colSources.count + c] } }
        #expect(abs(contracted.scalars[2 * 7 + 3] - sum) <= 1e-5 * max(1, abs(sum)))
    }

    /// No runs (a random input), or images that disagree outside the box: no cut, the plain
    /// algorithm's values.
    @Test func inputsWithoutRunsRunPlain() {
        let weight = Tensor.randn([4, 3, 3, 3], seed: 12)
        let random = Tensor.randn([1, 3, 70, 70], seed: 13)
        let g = conv2dGeometry(op: "test", input: random.shape, weight: weight.shape, bias: nil, stride: 1, padding: 1,
                               dilation: 1, groups: 1)
        #expect(convForwardMargin(g, x: random, weight: weight, bias: nil, relu: false, cachedWeight: nil) == nil)
        var two = marginInput(2, 3, 70, 70, box: (30..<40, 30..<40), seed: 14).scalars
        for i in stride(from: 3 * 70 * 70, to: two.count, by: 13) { two[i] += 1 }   // 13: a new column on every row
        let x = Tensor(shape: [2, 3, 70, 70], scalars: two)
        #expect(convForwardMargin(g, x: x, weight: weight, bias: nil, relu: false, cachedWeight: nil) == nil)
        expectClose(withoutGrad { conv2d(x, weight: weight, padding: 1) }, conv2dReference(x, weight: weight, padding: 1),
                    tolerance: Self.tolerance, "plain")
    }
}
