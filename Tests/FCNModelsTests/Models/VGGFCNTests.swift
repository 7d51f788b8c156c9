// VGG16 FCNs against the PyTorch port of the Caffe reference nets (Fixtures/gen_models.py,
// class VGGFCN): for each variant at width 1/32 with 5 classes,
//   model = deterministic_init(VGGFCN(variant, 5, 1/32), 2015).eval()
//   y = model(torch.randn(1, 3, h, w) * 50)        for (h, w) in (1, 1), (17, 23), (32, 32)
// with configs holding the state_dict keys (`names`) and the parameter count. Weights are
// not stored: both sides fill them from the names (detinit.py / DeterministicInit.swift).
//
// Tolerance 1e-4 of max|expected| (a true relative error, not floored at 1 as
// `expectClose`, since these outputs are ~0.01-0.3): 16 float32 convolutions in a row with
// sums of up to ~1000 terms in another order than PyTorch's, each adding ~1e-6 relative
// error that the following layers propagate, plus ReLUs that may flip for values within
// rounding of 0. Measured worst: see `vggFixtureWorst` printed by the test (about 1e-6).
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

/// max |a - b| / max |b| (plain relative error; b must not be all zeros).
func vggRelError(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "shapes differ: \(a.shape) vs \(b.shape)")
    var diff: Float = 0, scale: Float = 0
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            for i in 0..<pa.count {
                let d = abs(pa[i] - pb[i])
                diff = d.isNaN ? .infinity : max(diff, d)
                scale = max(scale, abs(pb[i]))
            }
        }
    }
    return scale > 0 ? diff / scale : diff
}

/// A VGG FCN filled as detinit.deterministic_init does (upsampling left bilinear).
/// The crop offsets of `FCNGeometry.vgg16CropOffsets` in their order (tuples of seven
/// are not `Equatable`).
func offsetList<T>(_ offsets: T) -> [Int] { Mirror(reflecting: offsets).children.map { $0.value as! Int } }

func vggDeterministicFCN(_ variant: VGGFCNVariant, classes: Int, width: Double, seed: UInt64 = 2015) throws -> VGGFCN {
    let m = VGGFCN(variant: variant, classes: classes, width: width, seed: 1)
    try m.loadStateDict(deterministicStateDict(m.stateDict(), seed: seed))
    return m
}

func vggFixtureNames(_ c: FixtureCase) -> [String] {
    guard case .array(let a)? = c.value("names") else { fatalError("\(c): no names") }
    return a.map { if case .string(let s) = $0 { return s }; fatalError("\(c): name is not a string") }
}

@Suite struct VGGFCNTests {
    @Test(arguments: loadFixture("models_vgg"))
    func matchesPyTorch(_ c: FixtureCase) throws {
        let variant = try #require(VGGFCNVariant(rawValue: c.string("variant")))
        let model = VGGFCN(variant: variant, classes: c.int("classes"), width: c.double("width"), seed: 3)
        // Names (state_dict keys, in order), parameter count.
        #expect(model.namedState().map(\.0) == vggFixtureNames(c))
        #expect(model.parameterCount == c.int("params"))
        try model.loadStateDict(deterministicStateDict(model.stateDict(), seed: UInt64(c.int("seed"))))
        model.eval()
        let x = c.tensor("input"), expected = c.tensor("output")
        let y = withoutGrad { model(x) }
        #expect(y.shape == [1, c.int("classes"), x.shape[2], x.shape[3]])
        let err = vggRelError(y, expected)
        print("VGGFCN \(variant) \(x.shape): relative error \(err)")
        #expect(err <= 1e-4, "\(c): relative error \(err)")
    }

    @Test func parameterNamesAndShapes() {
        let m = VGGFCN(variant: .fcn8s, classes: 21, width: 1.0 / 32, seed: 1)
        let names = m.namedParameters().map(\.0)
        #expect(names.first == "conv1_1.weight" && names.contains("conv5_3.bias"))
        #expect(Array(names.suffix(9)) == ["score_fr.weight", "score_fr.bias", "upscore2.weight", "score_pool4.weight",
                                           "score_pool4.bias", "upscore_pool4.weight", "score_pool3.weight",
                                           "score_pool3.bias", "upscore8.weight"])
        let p = Dictionary(uniqueKeysWithValues: m.namedParameters())
        #expect(p["conv1_1.weight"]!.shape == [2, 3, 3, 3])
        #expect(p["fc6.weight"]!.shape == [128, 16, 7, 7])
        #expect(p["fc7.weight"]!.shape == [128, 128, 1, 1])
        #expect(p["score_pool4.weight"]!.shape == [21, 16, 1, 1])
        #expect(p["score_pool3.weight"]!.shape == [21, 8, 1, 1])
        #expect(p["upscore8.weight"]!.shape == [21, 21, 16, 16])
        #expect(m.convolution("conv1_1").padding == 100 && m.convolution("conv1_2").padding == 1)
        // Upsampling: bilinear, no bias, frozen; score layers zero (the reference's default).
        for (n, k) in [("upscore2", 4), ("upscore_pool4", 4), ("upscore8", 16)] {
            #expect(p[n + ".weight"]!.requiresGrad == false)
            #expect(p[n + ".weight"]!.value.scalars == bilinearUpsamplingKernel(channels: 21, kernelSize: k).scalars)
            #expect(p[n + ".bias"] == nil)
        }
        #expect(m.scoreFr.weight.value.scalars.allSatisfy { $0 == 0 } && m.scorePool3!.bias!.value.scalars.allSatisfy { $0 == 0 })
        #expect(m.trainableParameterCount == m.parameterCount - 21 * 21 * (16 + 16 + 256))
        // 32s and 16s names of the upsampling layers.
        #expect(VGGFCN(variant: .fcn32s, classes: 2, width: 1.0 / 64).namedParameters().last!.0 == "upscore.weight")
        #expect(VGGFCN(variant: .fcn16s, classes: 2, width: 1.0 / 64).namedParameters().last!.0 == "upscore16.weight")
        // Width rounding is Python's round (half to even): 64/128 = 0.5 -> 0 -> 1, 4096*3/1024 = 12.
        #expect(VGG16Config.channels(64, width: 1.0 / 128) == 1 && VGG16Config.channels(192, width: 1.0 / 128) == 2)
        #expect(VGG16Config.channels(4096, width: 3.0 / 1024) == 12 && VGG16Config.channels(512, width: 1) == 512)
        #expect(offsetList(VGGFCN.cropOffsets) == [19, 5, 27, 9, 31, 17, 33])
    }

    /// FCN-4s: FCN-8s's layers up to score_pool3, then the pool2 skip and a 4x upsampling
    /// (8x8, stride 4) instead of upscore8.
    @Test func fcn4sLayers() {
        let m = VGGFCN(variant: .fcn4s, classes: 21, width: 1.0 / 32, seed: 1)
        let names = m.namedParameters().map(\.0)
        #expect(Array(names.suffix(11)) == ["score_fr.bias", "upscore2.weight", "score_pool4.weight", "score_pool4.bias",
                                            "upscore_pool4.weight", "score_pool3.weight", "score_pool3.bias",
                                            "upscore_pool3.weight", "score_pool2.weight", "score_pool2.bias", "upscore4.weight"])
        let p = Dictionary(uniqueKeysWithValues: m.namedParameters())
        #expect(p["score_pool2.weight"]!.shape == [21, 4, 1, 1] && p["upscore8.weight"] == nil)
        #expect(p["upscore4.weight"]!.value.scalars == bilinearUpsamplingKernel(channels: 21, kernelSize: 8).scalars)
        #expect(m.scorePool2!.weight.value.scalars.allSatisfy { $0 == 0 })
        #expect(VGGFCNVariant.fcn4s.outputStride == 4 && ModelArchitecture.fcn4s.outputStride == 4)
        #expect(ModelArchitecture(.fcn4s) == .fcn4s && ModelArchitecture.fcn4s.vggVariant == .fcn4s)
        // The shapes listed without building a network are the network's.
        #expect(VGGFCN.parameterShapes(variant: .fcn4s, classes: 21, width: 1.0 / 32).map(\.name) == names)
    }

    /// Output size equals the input size for all variants, any size (tiny width).
    @Test(arguments: VGGFCNVariant.allCases)
    func outputHasInputSize(_ variant: VGGFCNVariant) {
        let m = VGGFCN(variant: variant, classes: 2, width: 1.0 / 64, seed: 5, zeroScoreLayers: false)
        m.eval()
        var sizes: [(Int, Int)] = [(1, 1), (2, 2), (1, 7), (3, 5), (4, 9), (6, 6), (7, 2), (8, 15), (11, 10), (13, 13),
                                   (16, 17), (19, 24), (21, 31), (25, 3), (28, 29), (32, 32), (33, 38), (35, 40), (39, 39), (40, 37)]
        if variant == .fcn8s { sizes.append((200, 300)) }
        for (h, w) in sizes {
            let x = Tensor.randn([h == 13 ? 2 : 1, 3, h, w], seed: UInt64(h * 100 + w))
            let y = withoutGrad { m(x) }
            #expect(y.shape == [x.shape[0], 2, h, w], "\(variant) \(h)x\(w)")
        }
    }

    /// The fused conv+ReLU inference path equals the unfused path used with gradients.
    @Test func fusedInferenceMatchesUnfused() throws {
        let m = try vggDeterministicFCN(.fcn8sAtOnce, classes: 4, width: 1.0 / 32)
        m.eval()
        let x = Tensor.randn([2, 3, 19, 26], seed: 9) * 50
        let unfused = m(x)                      // params require grad: separate relu ops
        let fused = withoutGrad { m(x) }        // conv2d(fusedReLU: true)
        #expect(unfused.requiresGrad && !fused.requiresGrad)
        let err = vggRelError(fused, unfused.detached())
        print("VGGFCN fused vs unfused: relative error \(err)")
        #expect(err <= 1e-6)
        // Frozen model and plain input: no gradient needed even with recording on -> fused, no graph.
        m.freeze()
        let frozen = m(x)
        #expect(!frozen.requiresGrad && frozen.scalars == fused.scalars)
    }

    @Test func tapsAndDropout() throws {
        let m = try vggDeterministicFCN(.fcn16s, classes: 3, width: 1.0 / 64)
        let x = Tensor.randn([1, 3, 40, 45], seed: 4) * 50
        m.eval()
        let taps = withoutGrad { m.forwardWithTaps(x) }
        // pad 100 then ceil-mode pools: (40 + 198) / 2 ... -> 30, 15, 8; fc6 (7x7) -> 2.
        #expect(taps.pool3.shape == [1, 4, 30, 31] && taps.pool4.shape == [1, 8, 15, 16] && taps.pool5.shape == [1, 8, 8, 8])
        #expect(taps.fc7.shape == [1, 64, 2, 2] && taps.scoreFr.shape == [1, 3, 2, 2])
        #expect(taps.scores.scalars == withoutGrad { m(x) }.scalars)
        // Training mode: dropout changes the output between calls; eval is deterministic.
        m.train()
        let a = withoutGrad { m(x) }, b = withoutGrad { m(x) }
        #expect(a.scalars != b.scalars)
    }

    @Test func wrongInputIsAProgrammingError() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let m = VGGFCN(variant: .fcn32s, classes: 2, width: 1.0 / 64)
            _ = m(Tensor.zeros([1, 4, 8, 8]))
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("VGGFCN: input must be [N, 3, H, W] with H, W >= 1, got [1, 4, 8, 8]"))
    }
}
