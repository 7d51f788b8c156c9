// Optimizers, clipping and EMA vs torch.optim / torch.nn.utils (fixtures from
// Fixtures/gen_training.py). Idea of the fixture:
//   groups = [{"params": [p0]}, {"params": [p1], "lr": lr * lr_mult, "weight_decay": wd * decay_mult}]
//   opt = torch.optim.SGD(groups, ..., foreach=False); for s: p.grad = g[s]; opt.step(); record p
// Tolerance 1e-6 relative (to max(1, |expected|)): same float32 formulas in the same order;
// torch's vectorised kernels may fuse multiply-adds, which moves the last bit only.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport
import CFCNKernels

@Suite struct OptimizerTests {
    static let tolerance: Float = 1e-6

    @Test(arguments: loadFixture("training_optim"))
    func matchesTorchOptim(_ c: FixtureCase) {
        let p0 = TrainableTensor(name: "layer.weight", value: c.tensor("p0"))
        let p1 = TrainableTensor(name: "layer.bias", value: c.tensor("p1"))
        let lrMult = Float(number(c, "lr_mult") ?? 1)
        let decayMult = Float(number(c, "decay_mult") ?? 1)
        let groups = [ParameterGroup([p0]), ParameterGroup([p1], lrMultiplier: lrMult, decayMultiplier: decayMult)]
        let lr = Float(number(c, "lr")!)
        let wd = Float(number(c, "weight_decay") ?? 0)
        let skip = intArray(c, "skip") ?? []
        let opt: any Optimizer
        switch c.string("kind") {
        case "sgd":
            opt = SGD(groups, learningRate: lr,
                      momentum: Float(number(c, "momentum") ?? 0),
                      dampening: Float(number(c, "dampening") ?? 0),
                      weightDecay: wd, nesterov: c.value("nesterov") == nil ? false : c.bool("nesterov"))
        case let kind:
            let betas = c.value("betas").flatMap { v -> [Double]? in
                if case .array(let a) = v { return a.map { if case .number(let d) = $0 { return d }; if case .bool(let b) = $0 { return b ? 1 : 0 }; return .nan } }; return nil }!
            opt = Adam(groups, learningRate: lr, beta1: betas[0], beta2: betas[1], eps: Float(number(c, "eps")!),
                       weightDecay: wd, decoupledWeightDecay: kind == "adamw")
        }
        let steps = c.tensor("g0").shape[0]
        for s in 0..<steps {
            setFakeGrad(p0, row(c.tensor("g0"), s))
            setFakeGrad(p1, skip.contains(s) ? nil : row(c.tensor("g1"), s))
            opt.step()
            expectClose(p0.value, row(c.tensor("p0_after"), s), tolerance: Self.tolerance, "\(c) p0 step \(s)")
            expectClose(p1.value, row(c.tensor("p1_after"), s), tolerance: Self.tolerance, "\(c) p1 step \(s)")
        }
        #expect(opt.stepCount == steps)
        // Parameters stay autograd leaves after in-place updates.
        #expect(p0.value.requiresGrad && p0.value.isLeaf)
    }

    @Test(arguments: loadFixture("training_clip"))
    func clippingMatchesTorch(_ c: FixtureCase) {
        let p0 = TrainableTensor(name: "a", value: .zeros([4, 3])), p1 = TrainableTensor(name: "b", value: .zeros([5]))
        setFakeGrad(p0, c.tensor("g0")); setFakeGrad(p1, c.tensor("g1"))
        if c.string("mode") == "norm" {
            let nt: Float = c.value("norm_type").map { if case .string = $0 { return Float.infinity }; return 2 }!
            let total = clipGradNorm([p0, p1], maxNorm: Float(number(c, "max_norm")!), normType: nt)
            expectClose(Tensor(shape: [1], scalars: [total]), c.tensor("total"), tolerance: 1e-6, "\(c) total norm")
        } else {
            clipGradValue([p0, p1], clipValue: Float(number(c, "clip_value")!))
        }
        expectClose(p0.value.grad!, c.tensor("c0"), tolerance: 1e-6, "\(c) grad 0")
        expectClose(p1.value.grad!, c.tensor("c1"), tolerance: 1e-6, "\(c) grad 1")
    }

    @Test func caffeStyleGroupsAndFrozenParameters() {
        let w = TrainableTensor(name: "conv1.weight", value: .ones([2, 2]))
        let b = TrainableTensor(name: "conv1.bias", value: .ones([2]))
        let up = TrainableTensor(name: "upscore.weight", value: .ones([3]))
        let groups = ParameterGroup.caffeStyle([w, b, up], frozen: { $0.hasPrefix("upscore") })
        #expect(groups.count == 2)
        #expect(groups[0].parameters.map(\.name) == ["conv1.bias"] && groups[0].lrMultiplier == 2 && groups[0].decayMultiplier == 0)
        #expect(groups[1].parameters.map(\.name) == ["conv1.weight"] && groups[1].lrMultiplier == 1 && groups[1].decayMultiplier == 1)
        let opt = SGD(groups, learningRate: 0.5, weightDecay: 0.1)
        for p in [w, b, up] { setFakeGrad(p, .ones(p.value.shape)) }
        opt.step()
        // weight: 1 - 0.5 * (1 + 0.1 * 1) = 0.45; bias: 1 - 1.0 * 1 = 0 (no decay); frozen untouched.
        #expect(w.value.scalars.allSatisfy { abs($0 - 0.45) < 1e-7 })
        #expect(b.value.scalars.allSatisfy { $0 == 0 })
        #expect(up.value.scalars.allSatisfy { $0 == 1 })
    }

    /// Moments decaying towards 0 (a unit whose gradient stopped) skip the subnormal range:
    /// every stored entry is 0 or a normal float, the first moment reaches exactly 0, and
    /// the weights end where a reference without the flush puts them (to 1e-6: the flushed
    /// entries would move them by < 1e-29). Adam's 17 SIMD lanes + tail and SGD's momentum.
    @Test func decayingMomentsSkipSubnormals() {
        func subnormals(_ t: Tensor) -> Int { t.scalars.filter { $0 != 0 && abs($0) < .leastNormalMagnitude }.count }
        let start = Tensor.randn([17], seed: 1), grad = Tensor.randn([17], std: 1e-3, seed: 2)
        let a = TrainableTensor(name: "a", value: start), s = TrainableTensor(name: "s", value: start)
        let adam = Adam([a], learningRate: 1e-3), sgd = SGD([s], learningRate: 1e-2, momentum: 0.9)
        setFakeGrad(a, grad); setFakeGrad(s, grad)
        adam.step(); sgd.step()
        var seenSubnormal = 0
        for _ in 0..<1200 {
            setFakeGrad(a, .zeros([17])); setFakeGrad(s, .zeros([17]))
            adam.step(); sgd.step()
            for t in adam.state().tensors.values { seenSubnormal += subnormals(t) }
            for t in sgd.state().tensors.values { seenSubnormal += subnormals(t) }
        }
        #expect(seenSubnormal == 0)
        #expect(adam.state().tensors["a.exp_avg"]!.scalars.allSatisfy { $0 == 0 }, "0.9^1200 * 1e-4 underflows: m is exactly 0")
        #expect(sgd.state().tensors["s.momentum_buffer"]!.scalars.allSatisfy { $0 == 0 })
        // Reference without the flush, in Double: Adam's m = 0.1 g 0.9^k, v = 0.001 g^2 0.999^k; SGD's b = g 0.9^k.
        let g = grad.scalars.map(Double.init)
        var wa = start.scalars.map(Double.init), ws = wa
        for k in 0...1200 {
            for i in 0..<17 {
                let m = 0.1 * g[i] * _pow(0.9, k), v = 0.001 * g[i] * g[i] * _pow(0.999, k)
                wa[i] -= 1e-3 / (1 - _pow(0.9, k + 1)) * m / ((v / (1 - _pow(0.999, k + 1))).squareRoot() + 1e-8)
                ws[i] -= 1e-2 * g[i] * _pow(0.9, k)
            }
        }
        expectClose(a.value, Tensor(shape: [17], scalars: wa.map(Float.init)), tolerance: 1e-6, "Adam weights")
        expectClose(s.value, Tensor(shape: [17], scalars: ws.map(Float.init)), tolerance: 1e-6, "SGD weights")
    }

    /// The update loop's AVX-512 and AVX2 paths and its portable loop (CFCNKernels
    /// fcn_adam_update) give identical bits (each path this CPU has, against the portable
    /// one): Adam, Adam with L2 decay and AdamW, both torch.lerp branches
    /// (beta1 0.9 and 0.3), 16-lane blocks plus a tail (37 values), gradients spanning 1e-40
    /// to 0.1 so that some moments flush to 0, over 20 steps with a gradient that varies.
    @Test func updatePathsGiveIdenticalBits() throws {
        var paths = [Int32(FCN_ISA_PORTABLE)]
        if GEMMConfig.availableISAs.contains(.avx2) { paths.append(Int32(FCN_ISA_AVX2_FMA)) }
        if GEMMConfig.availableISAs.contains(.avx512) { paths.append(Int32(FCN_ISA_AVX512)) }
        let start = Tensor.randn([37], seed: 3)
        for (beta1, wd, decoupled) in [(0.9, 0.0, false), (0.9, 0.01, false), (0.3, 0.05, true), (0.3, 0.0, false)] {
            var runs: [(weights: Tensor, state: OptimizerState)] = []
            for isa in paths {
                let p = TrainableTensor(name: "w", value: start)
                let opt = Adam([ParameterGroup([p])], learningRate: 3e-3, beta1: beta1, beta2: 0.999,
                               weightDecay: Float(wd), decoupledWeightDecay: decoupled)
                opt.kernelISA = isa
                for s in 0..<20 {
                    let g = Tensor.randn([37], seed: UInt64(10 + s)).scalars.enumerated().map { i, x in
                        x * Float(_pow(10, i % 40) * 1e-40) }
                    setFakeGrad(p, Tensor(shape: [37], scalars: g))
                    opt.step()
                }
                runs.append((p.value, opt.state()))
            }
            let tag = "beta1 \(beta1), weight decay \(wd)\(decoupled ? " decoupled" : "")"
            for (isa, run) in zip(paths, runs).dropFirst() {
                #expect(bitIdentical(runs[0].weights, run.weights), "weights, isa \(isa), \(tag)")
                for key in ["w.exp_avg", "w.exp_avg_sq"] {
                    #expect(bitIdentical(runs[0].state.tensors[key]!, run.state.tensors[key]!), "\(key), isa \(isa), \(tag)")
                }
            }
            #expect(!bitIdentical(runs[0].weights, start), "the weights moved, \(tag)")
            let m = runs[0].state.tensors["w.exp_avg"]!.scalars
            // (L2 decay adds wd * w to every gradient, so nothing is tiny there.)
            if wd == 0 || decoupled { #expect(m.contains(0), "some first moments flushed to 0, \(tag)") }
            #expect(m.contains { abs($0) > 1e-6 }, "and others are not small, \(tag)")
        }
    }

    @Test func stateRoundTripAndValidation() throws {
        let p = TrainableTensor(name: "w", value: .randn([4], seed: 1))
        let opt = Adam([p], learningRate: 0.01)
        setFakeGrad(p, .randn([4], seed: 2)); opt.step()
        let s = opt.state()
        #expect(s.kind == "adam" && s.step == 1 && s.counters == ["w.step": 1])
        #expect(Set(s.tensors.keys) == ["w.exp_avg", "w.exp_avg_sq"])
        let fresh = Adam([TrainableTensor(name: "w", value: .zeros([4]))], learningRate: 0.01)
        try fresh.load(s)
        #expect(fresh.stepCount == 1 && bitIdentical(fresh.state().tensors["w.exp_avg"]!, s.tensors["w.exp_avg"]!))
        // Wrong optimizer kind, unknown parameter, wrong shape.
        #expect(throws: FCNError.mismatch("optimizer state is for 'adam', cannot load it into 'sgd'")) {
            try SGD([p], learningRate: 1).load(s)
        }
        var bad = s; bad.tensors["v.exp_avg"] = .zeros([4])
        #expect(throws: FCNError.mismatch("adam state: tensor 'v.exp_avg' refers to unknown parameter 'v'")) { try fresh.load(bad) }
        bad = s; bad.tensors["w.exp_avg"] = .zeros([5])
        #expect(throws: FCNError.mismatch("adam state: tensor 'w.exp_avg' has shape [5] but parameter 'w' has shape [4]")) { try fresh.load(bad) }
    }

    /// Seed 003: `tf.train.ExponentialMovingAverage(0.99, global_step)`; the classic worked
    /// example: v = 0, shadow 0; v := 5 at step 0 -> decay min(0.99, 1/10) = 0.1 -> 4.5;
    /// step 10000, v := 10 -> decay 0.99 -> 4.555, then 4.60945.
    @Test func emaReproducesSeedExample() {
        let v = TrainableTensor(name: "v1", value: .zeros([1]))
        let ema = ExponentialMovingAverage([v], decay: 0.99)
        v.value.withUnsafeMutableBufferPointer { $0[0] = 5 }
        #expect(ema.update([v], numUpdates: 0) == 0.1)
        #expect(abs(ema.shadows["v1"]!.item - 4.5) < 1e-6)
        v.value.withUnsafeMutableBufferPointer { $0[0] = 10 }
        #expect(ema.update([v], numUpdates: 10000) == 0.99)
        #expect(abs(ema.shadows["v1"]!.item - 4.555) < 1e-5)
        ema.update([v], numUpdates: 10000)
        #expect(abs(ema.shadows["v1"]!.item - 4.60945) < 1e-5)
        // Without num_updates the nominal decay is used.
        #expect(ema.effectiveDecay(numUpdates: nil) == 0.99)
        ema.copyShadows(into: [v])
        #expect(abs(v.value.item - 4.60945) < 1e-5)
    }

    @Test func duplicateNamesStopWithMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let a = TrainableTensor(name: "w", value: .zeros([1])), b = TrainableTensor(name: "w", value: .zeros([2]))
            _ = SGD([a, b], learningRate: 0.1)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("SGD: parameter name 'w' appears twice"))
    }

    @Test func nesterovWithoutMomentumStopsWithMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = SGD([TrainableTensor(name: "w", value: .zeros([1]))], learningRate: 0.1, nesterov: true)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("SGD: nesterov needs momentum > 0"))
    }
}
