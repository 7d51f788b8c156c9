// The ResNet FCNs for inference: the folded copy (batch norms folded into the convolutions,
// ReLUs fused) gives the eval-mode model's output; the stated receptive-field radius bounds
// the measured one; tiled inference equals the model's own whole-image output (for
// fcn_resnet50/101 this includes its final bilinear resize, which the segmenter does with
// the whole image's taps). Batch norms get random statistics so that folding matters.
// Tolerance 1e-4 relative (max abs error / max(1, max|expected|)): folding reorders one
// multiply per weight and tiles change GEMM shapes, over 30 to 100 layers of float sums.
//
// The receptive-field measurements and tiled runs of resnet34-fcn8s and fcn_resnet101 take
// about a minute in debug builds; they run with FCN_SLOW_TESTS=1
// (`FCN_SLOW_TESTS=1 swift test --filter ResNetInferenceTests`), fcn_resnet50's always.
import Testing
import Foundation
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNInference
import FCNTestSupport

let slowTestsEnabled = ProcessInfo.processInfo.environment["FCN_SLOW_TESTS"] == "1"

/// Random running statistics and affine parameters for every batch norm of `model`.
func randomizeBatchNorms(_ model: some Module, seed: UInt64) {
    var k: UInt64 = 0
    for (_, m) in model.namedModules() {
        guard let bn = m as? BatchNorm2d else { continue }
        let c = bn.numFeatures, s = seed &+ 10 &* k
        bn.runningMean!.assign(Tensor.randn([c], std: 0.1, seed: s))
        bn.runningVar!.assign(Tensor.uniform([c], low: 0.5, high: 1.5, seed: s + 1))
        bn.weight!.assign(Tensor.uniform([c], low: 0.3, high: 0.8, seed: s + 2))
        bn.bias!.assign(Tensor.randn([c], std: 0.1, seed: s + 3))
        k += 1
    }
}

@Suite struct ResNetInferenceTests {
    static let fcn8s: ResNetFCN8s = {
        ParameterInit.seed(11)
        let m = ResNetFCN8s(numClasses: 3)
        randomizeBatchNorms(m, seed: 100)
        // Random score layers and deconvolutions, so that every path reaches the output.
        for (i, p) in [m.scores1.weight, m.scores2.weight, m.scores3.weight].enumerated() {
            p.assign(Tensor.randn(p.shape, std: 0.2, seed: 200 + UInt64(i)))
        }
        return m
    }()
    static let resnet50: DilatedResNetFCN = { ParameterInit.seed(12); let m = DilatedResNetFCN(depth: .resnet50, numClasses: 3); randomizeBatchNorms(m, seed: 300); return m }()
    static let resnet101: DilatedResNetFCN = { ParameterInit.seed(13); let m = DilatedResNetFCN(depth: .resnet101, numClasses: 2); randomizeBatchNorms(m, seed: 400); return m }()

    @Test func foldingConformancesReplaceEveryBatchNorm() {
        let block = Bottleneck(inPlanes: 8, planes: 2, stride: 2, downsample: resnetDownsample(8, 8, stride: 2), dilation: 1)
        randomizeBatchNorms(block, seed: 1)
        block.eval()
        let folded = foldedForInference(block)
        let r = try! #require(folded as? FusedResidualBlock)
        #expect(r.main.count == 3 && r.main.allSatisfy { $0 is FusedConv2d } && r.shortcut is Sequential)
        #expect(((r.shortcut as? Sequential)?[0] as? FusedConv2d) != nil)
        let x = Tensor.randn([2, 8, 9, 7], seed: 2)
        expectClose(withoutGrad { folded(x) }, withoutGrad { block(x) }, tolerance: 1e-5, "bottleneck")
        let basic = BasicBlock(inPlanes: 4, planes: 4)
        randomizeBatchNorms(basic, seed: 3)
        basic.eval()
        let y = Tensor.randn([1, 4, 6, 5], seed: 4)
        let fb = foldedForInference(basic)
        expectClose(withoutGrad { fb(y) }, withoutGrad { basic(y) }, tolerance: 1e-5, "basic block")
        let head = FCNHead(inChannels: 8, channels: 3)
        randomizeBatchNorms(head, seed: 5)
        head.eval()
        let fh = foldedForInference(head)
        #expect((fh as? Sequential)?.count == 2)
        expectClose(withoutGrad { fh(x) }, withoutGrad { head(x) }, tolerance: 1e-5, "FCN head")
    }

    @Test func resnet34FCN8sFoldedEqualsModel() {
        let net = ModelSegmentation(Self.fcn8s)
        #expect(net.inputPreprocessing == .torchvision && net.scoreStride == 1 && net.translationStride == 32)
        #expect(net.receptiveFieldRadius == 547)
        let x = Tensor.randn([1, 3, 64, 45], seed: 7)   // 45: padded to 64 and cropped back
        let expected = withoutGrad { Self.fcn8s(x) }
        #expect(expected.abs().max().item > 1e-2)
        expectClose(net.scores(normalized: x), expected, tolerance: 1e-4, "resnet34-fcn8s folded")
    }

    @Test(arguments: [false, true])
    func fcnResNetFoldedEqualsModel(deep: Bool) {
        let model = deep ? Self.resnet101 : Self.resnet50
        let net = ModelSegmentation(model)
        #expect(net.scoreStride == 8 && net.translationStride == 8 && net.receptiveFieldRadius == (deep ? 501 : 229))
        let x = Tensor.randn([1, 3, 27, 20], seed: 8)
        let raw = net.rawScores(x)
        #expect(raw.shape == [1, model.numClasses, 4, 3])
        let expected = withoutGrad { model(x) }
        expectClose(net.scores(normalized: x), expected, tolerance: 1e-4, "\(deep ? "fcn_resnet101" : "fcn_resnet50") folded")
    }

    @Test func receptiveFieldOfDilatedResNetFCN50WithinStatedRadius() {
        checkRadius(ModelSegmentation(Self.resnet50), length: 520, lower: 180, "fcn_resnet50")
    }

    @Test(.enabled(if: slowTestsEnabled)) func receptiveFieldsOfTheLargerModelsWithinStatedRadius() {
        checkRadius(ModelSegmentation(Self.fcn8s), length: 1152, lower: 400, "resnet34-fcn8s")
        checkRadius(ModelSegmentation(Self.resnet101), length: 1064, lower: 400, "fcn_resnet101")
    }

    /// Measured (a lower bound, see `estimatedReceptiveFieldRadius`) <= used, and not far below.
    func checkRadius(_ net: any SegmentationNetwork, length: Int, lower: Int, _ name: String) {
        let r = estimatedReceptiveFieldRadius(of: net, length: length)
        print("receptive-field radius of \(name): measured \(r), used \(net.receptiveFieldRadius)")
        #expect(r > lower && r <= net.receptiveFieldRadius, "\(name): measured \(r), used \(net.receptiveFieldRadius)")
    }

    /// Tiles along the width whose inputs start and end inside the image, against the
    /// model's own output (unfolded, whole image, its own final resize).
    func checkTiled(_ model: some SegmentationModel, height: Int, width: Int, tile: Int, _ name: String) {
        let net = ModelSegmentation(model)
        let rgb = testImage(height: height, width: width, seed: 9)
        let expected = withoutGrad { model(net.inputPreprocessing.apply(rgb.unsqueezed(axis: 0))) }
        let r = Segmenter(network: net, options: SegmentationOptions(tileSize: tile)).segment(rgb: rgb, keepScores: true)
        let plan = TileAxis.plan(length: width, tileSize: tile, translationStride: net.translationStride, scoreStride: 1,
                                 radius: net.receptiveFieldRadius, rawTaps: nil)
        #expect(plan.first!.inputEnd < width && plan.last!.inputStart > 0, "\(name): tiles must cut the image")
        expectClose(r.scores!, expected, tolerance: 1e-4, "\(name) tile \(tile)")
        #expect(r.labels == argmaxLabels(expected), "\(name) labels")
    }

    @Test(.enabled(if: slowTestsEnabled)) func resnet34FCN8sTilesEqualModel() { checkTiled(Self.fcn8s, height: 20, width: 1300, tile: 400, "resnet34-fcn8s") }
    @Test func fcnResNet50TilesEqualModel() { checkTiled(Self.resnet50, height: 11, width: 530, tile: 140, "fcn_resnet50") }
    @Test(.enabled(if: slowTestsEnabled)) func fcnResNet101TilesEqualModel() { checkTiled(Self.resnet101, height: 5, width: 760, tile: 160, "fcn_resnet101") }

    @Test func descriptionsBuildTheResNetKinds() throws {
        for kind in [ModelArchitecture.resnet34FCN8s, .fcnResNet50] {
            let net = ModelSegmentation(try ModelDescription(architecture: kind, classes: 4).makeModel(seed: 3))
            #expect(net.numClasses == 4 && net.inputPreprocessing == .torchvision, "\(kind)")
            let s = net.scores(normalized: Tensor.randn([1, 3, 33, 17], seed: 1))
            #expect(s.shape == [1, 4, 33, 17], "\(kind)")
        }
    }
}
