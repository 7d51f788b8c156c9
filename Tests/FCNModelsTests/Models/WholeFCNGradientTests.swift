// Whole-network gradient check: every parameter gradient of a VGG16 FCN-8s against PyTorch
// autograd, and central finite differences on a few parameters.
//
// Fixture (Fixtures/gen_models.py, vgg_grad_cases):
//   model = deterministic_init(VGGFCN("8s", 3, 1/64), 2015).eval()     # dropout off
//   x = torch.randn(2, 3, 20, 27) * 50; y = model(x); r = torch.randn_like(y)
//   (y * r).sum().backward()      -> grad.<name> for every parameter
// PyTorch's upsampling weights had requires_grad on, so the file has their gradients too;
// ours are frozen by default (the reference trains them with learning rate 0), so they
// must get none, and made trainable they must match as well.
//
// Tolerance 1e-4 relative to max |PyTorch gradient| per tensor (a plain relative error, see
// `vggRelError`): the backward pass runs ~40 float32 GEMM-based ops over sums of up to
// ~100k terms (the conv1 weight gradient sums over 2 x 220 x 227 pixels) in another order
// than PyTorch's. Measured worst errors are printed.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

@Suite struct WholeFCNGradientTests {
    @Test func everyParameterGradientMatchesPyTorch() throws {
        let c = try #require(loadFixture("models_vgg_grad").first)
        let model = try vggDeterministicFCN(.fcn8s, classes: c.int("classes"), width: c.double("width"), seed: UInt64(c.int("seed")))
        model.eval()
        let x = c.tensor("input"), r = c.tensor("grad_output")

        let y = model(x)
        let outErr = vggRelError(y.detached(), c.tensor("output"))
        #expect(outErr <= 1e-4)
        y.backward(gradient: r)
        var worst: Float = 0, worstName = ""
        var checked = 0
        for (name, p) in model.namedParameters() {
            if isUpsamplingName(name) {
                #expect(!p.requiresGrad && p.grad == nil, "\(name): frozen upsampling weight got a gradient")
                continue
            }
            let g = try #require(p.grad, "\(name) has no gradient")
            let err = vggRelError(g, c.tensor("grad." + name))
            if err > worst { (worst, worstName) = (err, name) }
            #expect(err <= 1e-4, "\(name): relative error \(err)")
            checked += 1
        }
        #expect(checked == 36)       // 13 convs + fc6 + fc7 + 3 score layers, weight and bias
        print("whole FCN-8s gradients: output error \(outErr), worst parameter gradient error \(worst) (\(worstName))")

        // Upsampling weights made trainable: their gradients are PyTorch's too.
        for (_, m) in model.namedModules() { if let t = m as? ConvTranspose2d { t.weight.requiresGrad = true } }
        model.zeroGrad()
        model(x).backward(gradient: r)
        var worstUp: Float = 0
        for (name, p) in model.namedParameters() where isUpsamplingName(name) {
            let g = try #require(p.grad, "\(name) has no gradient once trainable")
            let err = vggRelError(g, c.tensor("grad." + name))
            worstUp = max(worstUp, err)
            #expect(err <= 1e-4, "\(name): relative error \(err)")
        }
        // The other gradients are unchanged by unfreezing.
        expectClose(model.scoreFr.weight.grad!, c.tensor("grad.score_fr.weight"), tolerance: 1e-4, "score_fr after unfreezing")
        print("whole FCN-8s gradients: worst upsampling-weight gradient error \(worstUp)")
    }

    /// Central differences of L = sum(y * R), accumulated in Double, for 10 random elements
    /// with a non-zero gradient of score_fr.weight and fc6.weight, and conv3_1.weight.
    ///
    /// With every other parameter fixed the network is piecewise linear in one parameter
    /// (convolutions, ReLU, max pooling, crops, sums), so central differences are exact
    /// between kinks; the error is the float32 rounding of the forward pass, about 1e-7 of
    /// |L| per evaluation, divided by 2 eps. eps is 1e-2 (parameters are O(0.1)): smaller
    /// makes that rounding dominate, larger crosses more kinks. Kink guard: an element whose
    /// one-sided slopes (L(w+eps) - L(w)) / eps and (L(w) - L(w-eps)) / eps differ by more
    /// than 1% has a ReLU or max-pool switch within eps and is skipped (up to 24 candidates per
    /// parameter are tried until 6 are checked; at least 3 of each must be). Tolerance 1e-2 relative to max(|numeric|, 1e-2).
    ///
    /// Which net: score_fr and fc6 on FCN-8s at-once, whose scaled skips keep every path of
    /// similar size (L ~ 9, rounding ~1e-6); conv3_1.weight on plain FCN-8s, where the pool3
    /// skip (deterministic init: pool3 activations dominate the output) makes its gradient
    /// large relative to L (on the at-once net it is ~1e-3 of L and lost in the rounding).
    @Test func finiteDifferences() throws {
        var rng = FCNRandom(seed: 80)
        var worst: Float = 0, checked = 0, skipped = 0
        var checkedPer: [String: Int] = [:]
        for (variant, names) in [(VGGFCNVariant.fcn8sAtOnce, ["score_fr.weight", "fc6.weight"]), (.fcn8s, ["conv3_1.weight"])] {
            let model = try vggDeterministicFCN(variant, classes: 3, width: 1.0 / 64, seed: 77)
            model.eval()
            let x = Tensor.randn([1, 3, 10, 12], seed: 78) * 50
            let y = model(x)
            let r = Tensor.randn(y.shape, seed: 79)
            y.backward(gradient: r)
            func loss() -> Double {
                let o = withoutGrad { model(x) }
                var acc = 0.0
                o.withUnsafeBufferPointer { po in r.withUnsafeBufferPointer { pr in for i in 0..<po.count { acc += Double(po[i]) * Double(pr[i]) } } }
                return acc
            }
            let l0 = loss()
            let params = Dictionary(uniqueKeysWithValues: model.namedParameters())
            let eps: Float = 1e-2
            for name in names {
                let p = params[name]!
                let analytic = try #require(p.grad).scalars
                // Many fc6 units are dead on this small input: pick elements with a gradient.
                let live = (0..<p.count).filter { abs(analytic[$0]) > 1e-3 }
                // Try up to 24 random live elements; stop once 6 were checked away from kinks.
                let picks = (0..<Swift.min(24, live.count)).map { _ in live[Int(rng.next() % UInt64(live.count))] }
                for i in picks where checkedPer[name, default: 0] < 6 {
                    let original = p.value.scalars[i]
                    p.update { w, _ in w[i] = original + eps }
                    let lp = loss()
                    p.update { w, _ in w[i] = original - eps }
                    let lm = loss()
                    p.update { w, _ in w[i] = original }
                    let up = (lp - l0) / Double(eps), down = (l0 - lm) / Double(eps)
                    if abs(up - down) > 1e-2 * max(abs(up), abs(down), 1e-2) { skipped += 1; continue }
                    let numeric = Float((lp - lm) / Double(2 * eps))
                    let err = abs(numeric - analytic[i]) / max(abs(numeric), 1e-2)
                    worst = max(worst, err)
                    checked += 1
                    checkedPer[name, default: 0] += 1
                    #expect(err <= 1e-2, "\(variant) \(name)[\(i)]: analytic \(analytic[i]) numeric \(numeric)")
                }
            }
        }
        #expect(checkedPer.count == 3 && checkedPer.values.allSatisfy { $0 >= 3 },
                "too few elements away from kinks: \(checkedPer)")
        print("whole FCN-8s finite differences: worst relative error \(worst) over \(checked) elements \(checkedPer) (\(skipped) near a kink skipped)")
    }
}
