// batchNorm against PyTorch (Fixtures/gen_act.py), finite differences, folding.
//
// Fixture idea (gen_act.py):
//   x = randn(shape) * 2 + 1.5; w = rand(C) + .5; b = randn(C); rm = randn(C) * .5; rv = rand(C) + .5
//   y = F.batch_norm(x, rm, rv, w | None, b | None, training=t, momentum=m, eps=e)
//   y.backward(grad_out); store x, w, b, y, grads, and rm, rv after the call
// 33 cases: [N, C] and [N, C, H, W] (C = 1, 2, 3, 5, 8, 17, 21), training/eval,
// with/without affine, momentum 0, 0.1, 0.3, 1, eps 1e-5 and 1e-3.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct NormalizationTests {
    // Forward and running statistics 1e-5 (Double statistics vs PyTorch's float ones);
    // gradients 1e-5 (observed <= 1e-6; training backward subtracts per-channel means of g and g*xhat).
    @Test(arguments: loadFixture("batchnorm"))
    func forwardBackwardAndRunningStatsMatchPyTorch(_ c: FixtureCase) {
        let affine = c.bool("affine"), training = c.bool("training")
        let x = c.tensor("x").requiringGrad()
        let w = affine ? c.tensor("weight").requiringGrad() : nil
        let b = affine ? c.tensor("bias").requiringGrad() : nil
        var rm = c.tensor("running_mean"), rv = c.tensor("running_var")
        let y = batchNorm(x, weight: w, bias: b, runningMean: &rm, runningVar: &rv, training: training,
                          momentum: Float(c.double("momentum")), eps: Float(c.double("eps")))
        expectClose(y, c.tensor("y"), tolerance: 1e-5, "\(c) forward")
        expectClose(rm, c.tensor("new_running_mean"), tolerance: 1e-6, "\(c) running mean")
        expectClose(rv, c.tensor("new_running_var"), tolerance: 1e-6, "\(c) running var")
        y.backward(gradient: c.tensor("grad_out"))
        expectClose(x.grad!, c.tensor("grad_x"), tolerance: 1e-5, "\(c) grad_x")
        if affine {
            expectClose(w!.grad!, c.tensor("grad_weight"), tolerance: 1e-5, "\(c) grad_weight")
            expectClose(b!.grad!, c.tensor("grad_bias"), tolerance: 1e-5, "\(c) grad_bias")
        }
    }

    @Test func trainingOutputIsNormalised() {
        let x = Tensor.randn([3, 4, 5, 6], mean: 7, std: 3, seed: 1)
        var rm = Tensor.zeros([4]), rv = Tensor.ones([4])
        let y = batchNorm(x, weight: nil, bias: nil, runningMean: &rm, runningVar: &rv, training: true)
        for c in 0..<4 {
            var vals: [Double] = []
            for n in 0..<3 { for h in 0..<5 { for w in 0..<6 { vals.append(Double(y[n, c, h, w])) } } }
            let m = vals.reduce(0, +) / Double(vals.count)
            let v = vals.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(vals.count)
            #expect(abs(m) < 1e-5 && abs(v - 1) < 1e-3)
        }
        // Running mean moved 10% of the way to the batch mean (about 7).
        #expect(rm.scalars.allSatisfy { abs($0 - 0.7) < 0.1 })
    }

    // Central differences with a Double-accumulated loss; eps 1e-2, tolerance 1e-3 (observed <= 2e-5; float32
    // outputs; training mode differentiates through the batch mean and variance).
    @Test(arguments: [(true, [3, 2, 3, 2]), (true, [5, 3]), (false, [2, 3, 2, 2]), (false, [4, 2])])
    func finiteDifferences(_ training: Bool, _ shape: [Int]) {
        let C = shape[1]
        let x = Tensor.randn(shape, mean: 0.5, std: 1.5, seed: 21)
        let w = Tensor.uniform([C], low: 0.5, high: 1.5, seed: 22), b = Tensor.randn([C], seed: 23)
        let rm0 = Tensor.randn([C], std: 0.3, seed: 24), rv0 = Tensor.uniform([C], low: 0.5, high: 2, seed: 25)
        gradientCheck([x, w, b], eps: 1e-2, tolerance: 1e-3, "batchNorm training \(training) \(shape)") { xs in
            var rm = rm0, rv = rv0
            return batchNorm(xs[0], weight: xs[1], bias: xs[2], runningMean: &rm, runningVar: &rv, training: training)
        }
        gradientCheck([x], eps: 1e-2, tolerance: 1e-3, "batchNorm no affine \(training) \(shape)") { xs in
            var rm = rm0, rv = rv0
            return batchNorm(xs[0], weight: nil, bias: nil, runningMean: &rm, runningVar: &rv, training: training)
        }
    }

    @Test func onlyBiasIsAlignedCorrectly() {
        // weight nil, bias given: the bias gradient must be the per-channel sum of g.
        let x = Tensor.randn([2, 3, 2, 2], seed: 4), b = Tensor.randn([3], seed: 5).requiringGrad()
        var rm = Tensor.zeros([3]), rv = Tensor.ones([3])
        let y = batchNorm(x, weight: nil, bias: b, runningMean: &rm, runningVar: &rv, training: true)
        let g = Tensor.randn([2, 3, 2, 2], seed: 6)
        y.backward(gradient: g)
        for c in 0..<3 {
            var s: Float = 0
            for n in 0..<2 { for i in 0..<2 { for j in 0..<2 { s += g[n, c, i, j] } } }
            #expect(abs(b.grad![c] - s) < 1e-5)
        }
    }

    // bn(linear over channels) == linear with the folded weight and bias (a 1x1 conv).
    @Test func foldingIntoAPrecedingLayer() {
        let (cin, cout) = (5, 7)
        let x = Tensor.randn([2, cin, 3, 4], seed: 1)
        let W = Tensor.randn([cout, cin], seed: 2), cb = Tensor.randn([cout], seed: 3)
        let rm = Tensor.randn([cout], seed: 4), rv = Tensor.uniform([cout], low: 0.2, high: 3, seed: 5)
        let gamma = Tensor.randn([cout], seed: 6), beta = Tensor.randn([cout], seed: 7)
        var rm2 = rm, rv2 = rv
        let ref = batchNorm(linear(x, weight: W, bias: cb, axis: 1), weight: gamma, bias: beta,
                            runningMean: &rm2, runningVar: &rv2, training: false, eps: 1e-3)
        let (fw, fb) = foldBatchNorm(convWeight: W, convBias: cb, runningMean: rm, runningVar: rv,
                                     weight: gamma, bias: beta, eps: 1e-3)
        expectClose(linear(x, weight: fw, bias: fb, axis: 1), ref, tolerance: 1e-5, "folded")
        // Conv-shaped weight [Cout, Cin, 1, 1], no conv bias, no affine.
        let (fw2, fb2) = foldBatchNorm(convWeight: Tensor(shape: [cout, cin, 1, 1], scalars: W.scalars), convBias: nil,
                                       runningMean: rm, runningVar: rv, weight: nil, bias: nil)
        #expect(fw2.shape == [cout, cin, 1, 1])
        var rm3 = rm, rv3 = rv
        let ref2 = batchNorm(linear(x, weight: W, axis: 1), weight: nil, bias: nil, runningMean: &rm3, runningVar: &rv3, training: false)
        expectClose(linear(x, weight: Tensor(shape: [cout, cin], scalars: fw2.scalars), bias: fb2, axis: 1), ref2, tolerance: 1e-5)
    }

    @Test func channelMismatchNamesTheOp() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var rm = Tensor.zeros([3]), rv = Tensor.ones([3])
            _ = batchNorm(Tensor.zeros([2, 3, 4, 4]), weight: Tensor.ones([4]), bias: nil,
                          runningMean: &rm, runningVar: &rv, training: true)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("batchNorm: weight of shape [4] does not match the 3 channels of input [2, 3, 4, 4]; expected [3]"))
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var rm = Tensor.zeros([2]), rv = Tensor.ones([2])
            _ = batchNorm(Tensor.zeros([1, 2, 1, 1]), weight: nil, bias: nil, runningMean: &rm, runningVar: &rv, training: true)
        }
        let r2Text = String(decoding: r2?.standardErrorContent ?? [], as: UTF8.self)
        #expect(r2Text.contains("batchNorm: training needs more than one value per channel, got input of shape [1, 2, 1, 1]"))
    }
}
