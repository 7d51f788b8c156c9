// Convolutionalization and staged initialisation of the VGG16 FCNs (no PyTorch fixture:
// the checks are identities between our own modules).
// * VGG16Classifier against torchvision (Fixtures/gen_vgg_classifier.py: torchvision's VGG
//   class and make_layers at width 1/16, 10 classes, detinit weights, eval): logits for a
//   224x224 input (generated on both sides from the detinit generator) and a 40x72 input
//   (the adaptive pool stretches 1x2 features to 7x7). Tolerance 1e-4 of max|logit|: 16
//   float32 layers with sums in another order (measured ~1e-6).
// * The classifier's fully connected layers as convolutions give the classifier's logits at
//   224x224, and on a larger input each output cell equals the classifier head on the 7x7
//   window of features below it (the classifier slid with stride 32). Tolerance 1e-5
//   relative: the same products summed in another order (linear vs 7x7 conv GEMM).
// * The FCN built from the classifier holds its weights (bit exact) and its fc6/fc7 on the
//   classifier's pool5 at 224x224 give the classifier's fc7 activations (1e-5, same reason).
// * FCN-16s from FCN-32s and FCN-8s from FCN-16s: shared weights bit-exact, new score layers
//   zero, so score_fr (and for 8s the pool4 fuse) are bit-identical; the final outputs are
//   not (two bilinear upsamplings compose into a different kernel than one 32x).
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

@Suite struct VGGFCNSurgeryTests {
    @Test func classifierNamesAreTorchvisions() {
        let c = VGG16Classifier(classes: 10, width: 1.0 / 16, seed: 1)
        var expected: [String] = []
        for i in [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28] { expected += ["features.\(i).weight", "features.\(i).bias"] }
        for i in [0, 3, 6] { expected += ["classifier.\(i).weight", "classifier.\(i).bias"] }
        #expect(c.namedState().map(\.0) == expected)
        let p = Dictionary(uniqueKeysWithValues: c.namedParameters())
        #expect(p["features.0.weight"]!.shape == [4, 3, 3, 3] && p["features.28.weight"]!.shape == [32, 32, 3, 3])
        #expect(p["classifier.0.weight"]!.shape == [256, 32 * 49] && p["classifier.3.weight"]!.shape == [256, 256])
        #expect(p["classifier.6.weight"]!.shape == [10, 256])
        #expect(VGG16Config.torchvisionFeatureIndices == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28])
        #expect(VGGFCN.torchvisionNames.count == 30 && VGGFCN.torchvisionNames[29] == ("classifier.3.bias", "fc7.bias"))
    }

    @Test(arguments: loadFixture("models_vgg_classifier"))
    func classifierMatchesTorchvision(_ c: FixtureCase) throws {
        let model = VGG16Classifier(classes: c.int("classes"), width: c.double("width"), seed: 1)
        #expect(model.namedState().map(\.0) == vggFixtureNames(c))
        #expect(model.parameterCount == c.int("params"))
        try model.loadStateDict(deterministicStateDict(model.stateDict(), seed: UInt64(c.int("seed"))))
        model.eval()
        let x = c.has("input") ? c.tensor("input")
            : deterministicFill("input", shape: [1, 3, 224, 224], low: -1, high: 1, seed: UInt64(c.int("seed")))
        let y = withoutGrad { model(x) }
        let err = vggRelError(y, c.tensor("output"))
        print("VGG16Classifier \(x.shape) vs torchvision: relative error \(err)")
        #expect(err <= 1e-4)
    }

    @Test func convolutionalizedClassifierSlidesTheClassifier() {
        let c = VGG16Classifier(classes: 10, width: 1.0 / 16, seed: 2)
        c.eval()
        let conv = c.convolutionalized()
        conv.eval()
        // 224x224: one cell, equal to the logits.
        let x = Tensor.randn([1, 3, 224, 224], seed: 3)
        let logits = withoutGrad { c(x) }
        let dense = withoutGrad { conv(x) }
        #expect(dense.shape == [1, 10, 1, 1])
        let e224 = vggRelError(dense.reshaped([1, 10]), logits)
        // 256x288: features 8x9 -> 2x3 cells, each the head on its 7x7 window of features.
        let big = Tensor.randn([1, 3, 256, 288], seed: 4)
        let out = withoutGrad { conv(big) }
        #expect(out.shape == [1, 10, 2, 3])
        let feats = withoutGrad { c.features(big) }
        #expect(feats.shape == [1, 32, 8, 9])
        var worst = e224
        for i in 0..<2 {
            for j in 0..<3 {
                let window = feats.sliced(axis: 2, range: i..<(i + 7)).sliced(axis: 3, range: j..<(j + 7))
                let head = withoutGrad { c.classifier(window.flattened(from: 1)) }
                let cell = out.sliced(axis: 2, range: i..<(i + 1)).sliced(axis: 3, range: j..<(j + 1)).reshaped([1, 10])
                worst = max(worst, vggRelError(cell, head))
            }
        }
        print("convolutionalized classifier: relative error 224: \(e224), worst over cells: \(worst)")
        #expect(worst <= 1e-5)
    }

    @Test func fcnFromClassifier() throws {
        let c = VGG16Classifier(classes: 10, width: 1.0 / 16, seed: 5)
        c.eval()
        let fcn = VGGFCN.fromClassifier(c, variant: .fcn32s, classes: 5, seed: 6)
        fcn.eval()
        // Weights transplanted bit-exactly.
        for (conv, cc) in zip(fcn.convolutions.map(\.layer), c.convolutions) {
            #expect(conv.weight.value.scalars == cc.weight.value.scalars && conv.bias!.value.scalars == cc.bias!.value.scalars)
        }
        let (l6, l7, _) = c.fullyConnected
        #expect(fcn.fc6.weight.shape == [256, 32, 7, 7] && fcn.fc6.weight.value.scalars == l6.weight.value.scalars)
        #expect(fcn.fc7.weight.shape == [256, 256, 1, 1] && fcn.fc7.weight.value.scalars == l7.weight.value.scalars)
        #expect(fcn.scoreFr.weight.value.scalars.allSatisfy { $0 == 0 })
        // fc6/fc7 as convolutions on the classifier's pool5 (7x7 at 224) = classifier's fc7.
        let x = Tensor.randn([2, 3, 224, 224], seed: 7)
        let pool5 = withoutGrad { c.features(x) }
        let convFc7 = withoutGrad { relu(fcn.fc7(relu(fcn.fc6(pool5)))) }
        let denseFc7 = withoutGrad { relu(l7(relu(l6(pool5.flattened(from: 1))))) }
        #expect(convFc7.shape == [2, 256, 1, 1])
        let err = vggRelError(convFc7.reshaped([2, 256]), denseFc7)
        print("fromClassifier: fc7 relative error \(err)")
        #expect(err <= 1e-5)

        // The same weights through a safetensors file with torchvision's names.
        let path = tempPath("vgg16.safetensors")
        defer { removeTempDir(path) }
        try c.save(to: path)
        let other = VGGFCN(variant: .fcn8s, classes: 5, width: 1.0 / 16, seed: 8)
        let unused = try other.loadBackbone(fromTorchvisionFile: path)
        #expect(unused == ["classifier.6.bias", "classifier.6.weight"])
        let a = Dictionary(uniqueKeysWithValues: fcn.namedParameters())
        for (n, p) in other.namedParameters() where n.hasPrefix("conv") || n.hasPrefix("fc") {
            #expect(p.value.scalars == a[n]!.value.scalars, "\(n)")
        }
    }

    @Test func backboneMismatchThrowsAndChangesNothing() {
        let fcn = VGGFCN(variant: .fcn32s, classes: 3, width: 1.0 / 16, seed: 1)
        let before = fcn.stateDict()
        var state = VGG16Classifier(classes: 10, width: 1.0 / 32, seed: 1).stateDict()
        do {
            try fcn.loadBackbone(fromTorchvision: state)
            Issue.record("width mismatch was accepted")
        } catch let error as FCNError {
            #expect(error.description.contains("features.0.weight has shape [2, 3, 3, 3], expected [4, 3, 3, 3] for conv1_1.weight"))
        } catch { Issue.record("unexpected error \(error)") }
        state = VGG16Classifier(classes: 10, width: 1.0 / 16, seed: 1).stateDict()
        state["features.5.bias"] = nil
        #expect(throws: FCNError.self) { try fcn.loadBackbone(fromTorchvision: state) }
        for (n, t) in fcn.stateDict() { #expect(t.scalars == before[n]!.scalars, "\(n) changed") }
    }

    @Test func stagedInitialisation() throws {
        let fcn32 = try vggDeterministicFCN(.fcn32s, classes: 3, width: 1.0 / 64, seed: 11)
        fcn32.eval()
        let fcn16 = VGGFCN(initializedFrom: fcn32, variant: .fcn16s, seed: 12)
        #expect(!fcn16.isTraining && !fcn16.drop6.isTraining)
        #expect(VGGFCN.sharedParameterNames(from: .fcn32s, to: .fcn16s)
                == VGG16Config.convolutionNames.flatMap { [$0 + ".weight", $0 + ".bias"] }
                + ["fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias", "score_fr.weight", "score_fr.bias"])
        let s32 = Dictionary(uniqueKeysWithValues: fcn32.namedParameters())
        for (n, p) in fcn16.namedParameters() {
            if let q = s32[n] {
                #expect(p.value.scalars == q.value.scalars, "\(n) not copied")
            } else if n.hasPrefix("score_pool4") {
                #expect(p.value.scalars.allSatisfy { $0 == 0 } && p.requiresGrad, "\(n) not zero")
            } else {
                #expect(n == "upscore2.weight" || n == "upscore16.weight")
                #expect(!p.requiresGrad && p.value.scalars == bilinearUpsamplingKernel(channels: 3, kernelSize: p.shape[2]).scalars)
            }
        }
        let x = Tensor.randn([1, 3, 30, 37], seed: 13) * 50
        let t32 = withoutGrad { fcn32.forwardWithTaps(x) }, t16 = withoutGrad { fcn16.forwardWithTaps(x) }
        #expect(t16.scoreFr.scalars == t32.scoreFr.scalars)
        // score_pool4 is zero: the 16s output is upscore16(upscore2(score_fr)) cropped at 27.
        let noSkip = withoutGrad {
            crop(fcn16.upscore16!(fcn16.upscore2!(t16.scoreFr)), height: 30, width: 37, offset: 27)
        }
        #expect(t16.scores.scalars == noSkip.scalars)

        // 8s from a "trained" 16s (give score_pool4 values): it keeps score_pool4 and upscore2.
        fcn16.scorePool4!.weight.assign(Tensor.randn([3, 8, 1, 1], seed: 14))
        let fcn8 = VGGFCN(initializedFrom: fcn16, variant: .fcn8s, seed: 15)
        #expect(VGGFCN.sharedParameterNames(from: .fcn16s, to: .fcn8s).suffix(4)
                == ["score_fr.bias", "upscore2.weight", "score_pool4.weight", "score_pool4.bias"])
        #expect(fcn8.scorePool4!.weight.value.scalars == fcn16.scorePool4!.weight.value.scalars)
        #expect(fcn8.scorePool3!.weight.value.scalars.allSatisfy { $0 == 0 })
        let out8 = withoutGrad { fcn8(x) }
        let fuse4 = withoutGrad {
            let up2 = fcn16.upscore2!(t16.scoreFr)
            return up2 + crop(fcn16.scorePool4!(t16.pool4), like: up2, offset: 5)
        }
        let noSkip3 = withoutGrad { crop(fcn8.upscore8!(fcn8.upscorePool4!(fuse4)), height: 30, width: 37, offset: 31) }
        #expect(out8.scalars == noSkip3.scalars)
    }
}
