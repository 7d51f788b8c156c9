// The `.same` padding layout of the VGG16 FCNs against a PyTorch port (class VGGFCNSame in
// Fixtures/gen_models.py: conv1_1 pad 1, fc6 pad 3, ConvTranspose2d(k=2f, s=f, padding=f/2),
// fusions cut to the partner's size from offset 0):
//     python Tests/Fixtures/gen_models.py models_vgg_same
// Weights come from the parameter names on both sides (detinit), so the fixture holds only
// inputs, outputs and, for one FCN-8s, every parameter's gradient of sum(output * R).
// Tolerance 1e-4 relative to the output's scale: about 20 float32 layers of sums, as for
// the Caffe layout (measured errors are around 1e-6).

import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

@Suite struct VGGFCNSamePaddingTests {
    @Test func geometryAlignsEveryCropAtZero() {
        let o = FCNGeometry.vgg16CropOffsets(padding: .same)
        #expect(offsetList(o) == [0, 0, 0, 0, 0, 0, 0])
        #expect(offsetList(VGGFCN.sameCropOffsets) == [0, 0, 0, 0, 0, 0, 0])
        // The Caffe layout keeps its offsets.
        #expect(offsetList(FCNGeometry.vgg16CropOffsets(padding: .caffe)) == [19, 5, 27, 9, 31, 17, 33])
        #expect(FCNGeometry.upsamplingPadding(factor: 8, padding: .same) == 4)
        #expect(FCNGeometry.upsamplingPadding(factor: 8, padding: .caffe) == 0)
    }

    @Test(arguments: loadFixture("models_vgg_same").filter { !$0.bool("grad") })
    func matchesPyTorch(_ c: FixtureCase) throws {
        let variant = try #require(VGGFCNVariant(rawValue: c.string("variant")))
        let model = VGGFCN(variant: variant, classes: c.int("classes"), width: c.double("width"), seed: 3, padding: .same)
        try model.loadStateDict(deterministicStateDict(model.stateDict(), seed: UInt64(c.int("seed"))))
        model.eval()
        let x = c.tensor("input")
        let y = withoutGrad { model(x) }
        #expect(y.shape == [1, c.int("classes"), x.shape[2], x.shape[3]])
        let err = vggRelError(y, c.tensor("output"))
        #expect(err <= 1e-4, "\(c): relative error \(err)")
    }

    @Test func gradientsMatchPyTorch() throws {
        let c = try #require(loadFixture("models_vgg_same").first { $0.bool("grad") })
        let model = VGGFCN(variant: .fcn8s, classes: c.int("classes"), width: c.double("width"), seed: 3, padding: .same)
        try model.loadStateDict(deterministicStateDict(model.stateDict(), seed: UInt64(c.int("seed"))))
        model.eval()
        let x = c.tensor("input")
        let y = model(x)
        #expect(vggRelError(y.detached(), c.tensor("output")) <= 1e-4)
        y.backward(gradient: c.tensor("grad_output"))
        var checked = 0
        for (name, p) in model.namedParameters() where p.requiresGrad {
            let g = try #require(p.grad, "\(name) has no gradient")
            let err = vggRelError(g, c.tensor("grad." + name))
            #expect(err <= 1e-4, "\(name): relative error \(err)")
            checked += 1
        }
        #expect(checked == 36)       // 13 convs + fc6 + fc7 + 3 score layers, weight and bias
    }

    @Test func sameWorkForLessCanvas() {
        // Same parameters (names and shapes) in both layouts, so weights move freely.
        let a = VGGFCN(variant: .fcn8s, classes: 4, width: 1.0 / 32, seed: 1)
        let b = VGGFCN(variant: .fcn8s, classes: 4, width: 1.0 / 32, seed: 1, padding: .same)
        #expect(a.namedParameters().map { $0.0 } == b.namedParameters().map { $0.0 })
        #expect(a.namedParameters().map { $0.1.shape } == b.namedParameters().map { $0.1.shape })
        #expect(b.convolution("conv1_1").padding == 1 && a.convolution("conv1_1").padding == 100)
        // Staged training keeps the layout.
        let c = VGGFCN(initializedFrom: b, variant: .fcn16s)
        #expect(c.padding == .same)
        // Any size from 1x1 up, including sizes the pools round up.
        b.eval()
        for (h, w) in [(1, 1), (5, 9), (33, 31), (64, 48)] {
            let y = withoutGrad { b(Tensor.randn([1, 3, h, w], seed: 7)) }
            #expect(y.shape == [1, 4, h, w])
        }
    }
}
