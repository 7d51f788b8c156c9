// DataParallelBatch: a batch run in parts side by side gives the whole-batch loss and the
// gradients of one part up to rounding, and exactly (bit for bit) what running the parts
// one after another and adding their gradients in part order gives, whatever the timing.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite struct DataParallelTests {
    /// A small same-padding FCN-8s without dropout (forward is then free of shared state).
    func model() -> VGGFCN {
        let m = VGGFCN(variant: .fcn8s, classes: 5, width: 1.0 / 32, seed: 3, trainableUpsampling: true, padding: .same)
        m.drop6.isTraining = false; m.drop7.isTraining = false
        // Score layers start at zero, which would stop every gradient below them.
        var state = m.stateDict(), g = FCNRandom(seed: 5)
        for (k, v) in state where k.hasPrefix("score") && k.hasSuffix(".weight") {
            state[k] = Tensor(shape: v.shape, scalars: (0..<v.count).map { _ in g.nextNormal() * 0.1 })
        }
        try! m.loadStateDict(state)
        return m
    }

    func batch(_ n: Int) -> (x: Tensor, y: Tensor) {
        var g = FCNRandom(seed: 11)
        let x = Tensor(shape: [n, 3, 24, 24], scalars: (0..<n * 3 * 576).map { _ in g.nextUniform() * 2 - 1 })
        // Labels: blocks of classes, so every class is present (Lovász uses present classes).
        let y = Tensor(shape: [n, 24, 24], scalars: (0..<n * 576).map { (i: Int) -> Float in
            let row = i / 24 % 24, col = i % 24, image = i / 576
            return Float((row / 6 + col / 6 + image) % 5)
        })
        return (x, y)
    }

    func loss(_ logits: Tensor, _ y: Tensor) -> Tensor {
        softmaxCrossEntropy(logits: logits, labels: y) + lovaszSoftmax(logits: logits, labels: y)
    }

    /// Loss value and every parameter's gradient after one pass in `parts` parts.
    func run(_ m: VGGFCN, _ x: Tensor, _ y: Tensor, parts: Int) -> (Float, [String: Tensor]) {
        let params = m.optimizableParameters()
        for p in params { p.value.zeroGrad() }
        let b = DataParallelBatch(input: x, parts: parts) { m($0) }
        let l = loss(b.output, y)
        b.backward(l)
        #expect(b.output.grad == nil, "the joined output's gradient is released")
        return (l.item, Dictionary(uniqueKeysWithValues: params.map { ($0.name, $0.value.grad!) }))
    }

    @Test(arguments: [2, 3, 4])
    func partsMatchTheWholeBatch(parts: Int) {
        let m = model()
        let (x, y) = batch(4)
        let (l1, g1) = run(m, x, y, parts: 1)
        let (lp, gp) = run(m, x, y, parts: parts)
        // Rounding only: the parts sum their images' weight gradients in separate GEMMs.
        #expect(abs(lp - l1) <= 1e-5 * abs(l1), "loss \(lp) vs \(l1)")
        for (name, g) in g1 {
            let scale = max(1e-6, g.scalars.map(abs).max()!)
            let err = zip(g.scalars, gp[name]!.scalars).map { abs($0 - $1) }.max()!
            #expect(err <= 2e-4 * scale, "\(name): max error \(err) for max |g| \(scale)")
        }
        #expect(g1["fc6.weight"]!.scalars.contains { $0 != 0 }, "the check sees real gradients")
    }

    @Test func gradientsAddInPartOrder() {
        // Reference: the three parts one after another, each back-propagating its slice of
        // the whole-batch loss gradient, with the kernels as inside a worker.
        let m = model()
        let (x, y) = batch(4)
        let (_, dp) = run(m, x, y, parts: 3)
        let (_, again) = run(m, x, y, parts: 3)
        let params = m.optimizableParameters()
        for p in params { p.value.zeroGrad() }
        let whole = DataParallelBatch(input: x, parts: 3) { m($0) }
        let l = loss(whole.output, y)
        l.backward()        // only as far as the joined output, a leaf
        let g = whole.output.grad!
        for p in params { p.value.zeroGrad() }
        for (lo, hi) in [(0, 1), (1, 2), (2, 4)] {
            ParallelState.$inWorker.withValue(true) {
                m(x.sliced(axis: 0, range: lo ..< hi)).backward(gradient: g.sliced(axis: 0, range: lo ..< hi))
            }
        }
        for p in params {
            #expect(bitIdentical(p.value.grad!, dp[p.name]!), "\(p.name) differs from the part-order sum")
            #expect(bitIdentical(again[p.name]!, dp[p.name]!), "\(p.name) differs between two runs")
        }
    }

    @Test func onePartIsThePlainPath() {
        let m = model()
        let (x, y) = batch(2)
        let (l1, g1) = run(m, x, y, parts: 1)
        for p in m.optimizableParameters() { p.value.zeroGrad() }
        let l = loss(m(x), y)
        l.backward()
        #expect(l.item == l1)
        for p in m.optimizableParameters() { #expect(bitIdentical(p.value.grad!, g1[p.name]!), "\(p.name)") }
    }
}
