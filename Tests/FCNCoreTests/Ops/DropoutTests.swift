// dropout / dropout2d. PyTorch's generator differs from FCNRandom, so its masks cannot be
// reproduced bit for bit: these tests check determinism, the statistics of the mask, the
// scaling, the identity in evaluation, the mask in backward and the channel structure.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct DropoutTests {
    @Test func sameGeneratorStateGivesSameMask() {
        let x = Tensor.randn([2, 3, 8, 8], seed: 1)
        var g1 = FCNRandom(seed: 42), g2 = FCNRandom(seed: 42)
        let a = dropout(x, p: 0.5, training: true, generator: &g1)
        let b = dropout(x, p: 0.5, training: true, generator: &g2)
        #expect(a.scalars == b.scalars)
        #expect(g1 == g2)
        // The generator advanced one draw per element, so the next mask differs.
        #expect(g1 != FCNRandom(seed: 42))
        let c = dropout(x, p: 0.5, training: true, generator: &g1)
        #expect(c.scalars != a.scalars)
        var g3 = FCNRandom(seed: 42)
        #expect(dropout2d(x, p: 0.5, training: true, generator: &g3).scalars ==
                { var g = FCNRandom(seed: 42); return dropout2d(x, p: 0.5, training: true, generator: &g).scalars }())
    }

    // Kept fraction of n = 40000 Bernoulli(1 - p) draws: standard deviation
    // sqrt(p(1-p)/n) <= 0.0025; accept 5 sigma (0.0125).
    @Test(arguments: [0.1, 0.3, 0.5, 0.9] as [Float])
    func keptFractionAndScaling(_ p: Float) {
        let x = Tensor.ones([4, 10, 20, 50])
        var g = FCNRandom(seed: UInt64(p * 1000))
        let y = dropout(x, p: p, training: true, generator: &g).scalars
        let kept = y.filter { $0 != 0 }
        let frac = Float(kept.count) / Float(y.count)
        #expect(abs(frac - (1 - p)) < 0.0125, "p \(p): kept \(frac)")
        #expect(kept.allSatisfy { $0 == 1 / (1 - p) })
        // Mean preserved (inverted dropout): E[y] = 1.
        let mean = y.reduce(0, +) / Float(y.count)
        #expect(abs(mean - 1) < 0.0125 / (1 - p))
    }

    @Test func identityWhenNotTrainingOrPZero() {
        let x = Tensor.randn([2, 3, 4, 4], seed: 3).requiringGrad()
        var g = FCNRandom(seed: 1)
        let before = g
        let e = dropout(x, p: 0.5, training: false, generator: &g)
        #expect(e.sharesStorage(with: x) && e.scalars == x.scalars)
        let z = dropout(x, p: 0, training: true, generator: &g)
        #expect(z.sharesStorage(with: x))
        #expect(dropout2d(x, p: 0.7, training: false, generator: &g).sharesStorage(with: x))
        #expect(g == before, "no draws in evaluation")
    }

    @Test func pOneGivesZerosAndZeroGradient() {
        let x = Tensor.randn([3, 4], seed: 3).requiringGrad()
        var g = FCNRandom(seed: 1)
        let y = dropout(x, p: 1, training: true, generator: &g)
        #expect(y.scalars.allSatisfy { $0 == 0 })
        y.backward(gradient: Tensor.ones([3, 4]))
        #expect(x.grad!.scalars.allSatisfy { $0 == 0 })
        let y2 = dropout2d(Tensor.ones([2, 3, 2, 2]), p: 1, training: true, generator: &g)
        #expect(y2.scalars.allSatisfy { $0 == 0 })
    }

    @Test func backwardUsesTheSameMask() {
        let x = Tensor.randn([2, 5, 6, 7], seed: 8).requiringGrad()
        let gOut = Tensor.randn([2, 5, 6, 7], seed: 9)
        for two in [false, true] {
            x.zeroGrad()
            var g = FCNRandom(seed: 77)
            let y = two ? dropout2d(x, p: 0.4, training: true, generator: &g) : dropout(x, p: 0.4, training: true, generator: &g)
            y.backward(gradient: gOut)
            let xs = x.scalars, ys = y.scalars, gs = gOut.scalars, gx = x.grad!.scalars
            for i in 0..<xs.count {
                let m: Float = ys[i] == 0 ? 0 : 1 / 0.6     // x is never exactly 0 here
                #expect(abs(gx[i] - gs[i] * m) <= 1e-6 * abs(gs[i] * m), "dropout2d \(two) at \(i)")
            }
        }
    }

    @Test func dropout2dZeroesWholeChannels() {
        let (N, C, S) = (4, 32, 30)
        let x = Tensor.ones([N, C, 5, 6])
        var g = FCNRandom(seed: 5)
        let y = dropout2d(x, p: 0.5, training: true, generator: &g).scalars
        var dropped = 0
        for nc in 0..<(N * C) {
            let plane = y[(nc * S)..<((nc + 1) * S)]
            let first = plane.first!
            #expect(plane.allSatisfy { $0 == first }, "channel \(nc) mixed")
            #expect(first == 0 || first == 2)
            if first == 0 { dropped += 1 }
        }
        // 128 channels, p 0.5: sd 5.7; accept 4 sigma.
        #expect(abs(dropped - 64) <= 23, "dropped \(dropped) of 128")
        // Exactly one draw per (sample, channel).
        var h = FCNRandom(seed: 5)
        for _ in 0..<(N * C) { _ = h.next() }
        #expect(g == h)
    }

    // With the generator re-seeded on every call the mask is fixed, so dropout is linear
    // in x and central differences must agree (eps 1e-2, tolerance 1e-3).
    @Test func finiteDifferences() {
        let x = Tensor.randn([2, 3, 3, 4], seed: 12)
        gradientCheck([x], eps: 1e-2, tolerance: 1e-3, "dropout") { xs in
            var g = FCNRandom(seed: 99)
            return dropout(xs[0], p: 0.3, training: true, generator: &g)
        }
        gradientCheck([x], eps: 1e-2, tolerance: 1e-3, "dropout2d") { xs in
            var g = FCNRandom(seed: 99)
            return dropout2d(xs[0], p: 0.5, training: true, generator: &g)
        }
    }

    @Test func badProbabilityNamesTheOp() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var g = FCNRandom(seed: 1)
            _ = dropout(Tensor.ones([2]), p: 1.5, training: true, generator: &g)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("dropout: dropout probability p = 1.5 is outside [0, 1]"))
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var g = FCNRandom(seed: 1)
            _ = dropout2d(Tensor.ones([2, 2, 2, 2]), p: -0.1, training: false, generator: &g)
        }
        let r2Text = String(decoding: r2?.standardErrorContent ?? [], as: UTF8.self)
        #expect(r2Text.contains("dropout2d: dropout probability p = -0.1 is outside [0, 1]"))
    }
}
