// Behaviour of the ResNet models beyond the PyTorch fixtures: output size for a sweep of
// input sizes, torchvision's dilation rule, train vs eval batch norm, module sharing with
// a backbone, input preprocessing conventions and misuse messages.
// (Numerical agreement with PyTorch is in ResNetFixtureTests.)
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

private func stderrOf(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

@Suite(.serialized) struct ResNetModelTests {
    @Test func resnetFCN8sOutputSizeEqualsInputSize() {
        let model = ResNetFCN8s(numClasses: 5)
        model.eval()
        // Multiples of 32 run the seed's forward as is; the others are padded to the next
        // multiple of 32 and cropped back.
        for (n, h, w) in [(1, 1, 1), (1, 17, 23), (2, 32, 32), (1, 33, 47), (1, 5, 70)] {
            let y = model(Tensor.randn([n, 3, h, w], seed: UInt64(h * 100 + w)))
            #expect(y.shape == [n, 5, h, w], "input \(h)x\(w)")
        }
    }

    @Test func paddedSizesAreTheCropOfTheAlignedRun() {
        let model = ResNetFCN8s(numClasses: 2, backbone: ResNet(.resnet18))
        model.eval()
        let x = Tensor.randn([1, 3, 20, 37], seed: 5)
        let aligned = model(x.padded(top: 0, bottom: 12, left: 0, right: 27))
        #expect(aligned.shape == [1, 2, 32, 64])
        #expect(relativeError(model(x), crop(aligned, height: 20, width: 37)) == 0)
    }

    @Test func fcnResNetOutputSizeEqualsInputSize() {
        let model = sharedDilatedResNetFCN50
        for (n, h, w) in [(1, 1, 1), (1, 7, 13), (2, 17, 9), (1, 2, 31)] {
            let (out, aux) = model.forward(Tensor.randn([n, 3, h, w], seed: UInt64(h * 100 + w)))
            #expect(out.shape == [n, 4, h, w], "out for \(h)x\(w)")
            #expect(aux?.shape == [n, 4, h, w], "aux for \(h)x\(w)")
        }
    }

    /// torchvision's _make_layer with replace_stride_with_dilation [False, True, True]:
    /// layer3 and layer4 keep stride 1; the first block of a dilated layer uses the
    /// previous dilation, the others the new one; 3x3 padding equals dilation.
    @Test func dilationFollowsTorchvision() {
        let backbone = sharedDilatedResNetFCN50.backbone
        #expect(backbone.layerDilations == [1, 1, 2, 4])
        #expect(backbone.outputStride == 8)
        func blocks(_ layer: Sequential) -> [Bottleneck] { layer.layers.map { $0 as! Bottleneck } }
        let expected: [(Sequential, stride0: Int, first: Int, rest: Int)] = [
            (backbone.layer1, 1, 1, 1), (backbone.layer2, 2, 1, 1), (backbone.layer3, 1, 1, 2), (backbone.layer4, 1, 2, 4)]
        for (i, e) in expected.enumerated() {
            for (j, b) in blocks(e.0).enumerated() {
                let d = j == 0 ? e.first : e.rest
                #expect(b.conv2.dilation == Size2(d), "layer\(i + 1).\(j) dilation")
                #expect(b.conv2.padding == .symmetric(d), "layer\(i + 1).\(j) padding")
                #expect(b.conv2.stride == Size2(j == 0 ? e.stride0 : 1), "layer\(i + 1).\(j) stride")
                #expect((b.downsample != nil) == (j == 0), "layer\(i + 1).\(j) downsample")
            }
        }
        // Feature sizes: stride 4 after the stem, 8 from layer2 on.
        let f = backbone.features(Tensor.randn([1, 3, 33, 17], seed: 1))
        #expect(f.map(\.shape) == [[1, 256, 9, 5], [1, 512, 5, 3], [1, 1024, 5, 3], [1, 2048, 5, 3]])
    }

    @Test func undilatedBackboneSizes() {
        let r18 = ResNet(.resnet18, numClasses: 10)
        r18.eval()
        #expect(r18.outputStride == 32 && r18.layerDilations == [1, 1, 1, 1])
        let f = r18.features(Tensor.randn([2, 3, 33, 65], seed: 2))
        #expect(f.map(\.shape) == [[2, 64, 9, 17], [2, 128, 5, 9], [2, 256, 3, 5], [2, 512, 2, 3]])
        #expect(r18.features(Tensor.randn([1, 3, 1, 1], seed: 3))[3].shape == [1, 512, 1, 1])
        #expect(r18(Tensor.randn([2, 3, 9, 9], seed: 4)).shape == [2, 10])
        // Names of torchvision's classifier ResNet: avgpool has no state, fc comes last.
        let names = r18.namedState().map(\.0)
        #expect(names.first == "conv1.weight" && names.suffix(2) == ["fc.weight", "fc.bias"])
        #expect(names.contains("layer2.0.downsample.0.weight") && !names.contains("layer1.0.downsample.0.weight"))
    }

    /// Training mode normalises with batch statistics (so per-channel mean = bias and
    /// variance ~ weight^2 right after a batch norm) and updates the running statistics;
    /// eval mode uses the running statistics and mutates nothing.
    @Test func trainAndEvalModes() {
        let model = ResNetFCN8s(numClasses: 3, backbone: ResNet(.resnet18))
        fillDeterministically(model)
        let x = Tensor.randn([2, 3, 32, 32], seed: 11)
        let conv1 = model.stage1[0] as! Conv2d, bn1 = model.stage1[1] as! BatchNorm2d

        model.eval()
        let before = model.stateDict()
        let e1 = model(x), e2 = model(x)
        #expect(relativeError(e1, e2) == 0)
        for (k, v) in model.stateDict() { #expect(relativeError(v, before[k]!) == 0, "eval changed \(k)") }
        // Eval batch norm = the affine map of the running statistics.
        let z = conv1(x)
        let expectedEval = (z - bn1.runningMean!.value.reshaped(1, 64, 1, 1)) / (bn1.runningVar!.value.reshaped(1, 64, 1, 1) + 1e-5).sqrt()
            * bn1.weight!.value.reshaped(1, 64, 1, 1) + bn1.bias!.value.reshaped(1, 64, 1, 1)
        #expect(relativeError(bn1(z), expectedEval) < 1e-5)

        model.train()
        let t = model(x)
        #expect(relativeError(t, e1) > 1e-2, "training mode should use batch statistics")
        let y = bn1(z)
        let mean = y.mean(axes: [0, 2, 3]), variance = ((y - mean.reshaped(1, 64, 1, 1)) * (y - mean.reshaped(1, 64, 1, 1))).mean(axes: [0, 2, 3])
        #expect(relativeError(mean, bn1.bias!.value) < 1e-4)
        let w = bn1.weight!.value
        #expect(relativeError(variance, w * w) < 1e-3)   // eps 1e-5 against variances of O(1)
        for (name, m) in model.namedModules() {
            guard let bn = m as? BatchNorm2d else { continue }
            let expected: Float = name == "stage1.1" ? 2 : 1     // bn1 ran once more just above
            #expect(bn.numBatchesTracked!.value.item == expected, "\(name)")
        }
        #expect(relativeError(bn1.runningMean!.value, before["stage1.1.running_mean"]!) > 1e-4)
        model.eval()
        #expect(relativeError(model(x), e1) > 1e-4, "running statistics moved")
    }

    @Test func fcn8sSharesTheBackboneModules() throws {
        let backbone = ResNet(.resnet18, numClasses: 4)
        let model = ResNetFCN8s(numClasses: 2, backbone: backbone)
        #expect(model.stage1[0] === backbone.conv1 && model.stage1[4] === backbone.layer1)
        #expect(model.stage2 === backbone.layer3 && model.stage3 === backbone.layer4)
        // Loading backbone weights (e.g. torchvision resnet18 ImageNet) reaches the FCN.
        try backbone.loadStateDict(deterministicStateDict(backbone.stateDict(), seed: 9))
        let state = model.stateDict()
        #expect(relativeError(state["stage1.0.weight"]!, backbone.conv1.weight.value) == 0)
        #expect(relativeError(state["stage3.1.bn2.running_var"]!, backbone.stateDict()["layer4.1.bn2.running_var"]!) == 0)
        #expect(!state.keys.contains { $0.hasPrefix("fc") })
        // The upsampling layers start bilinear and are trainable, as in seed 002.
        #expect(relativeError(model.upsample8x.weight.value, bilinearUpsamplingKernel(channels: 2, kernelSize: 16)) == 0)
        #expect(model.upsample2x.weight.requiresGrad && model.upsample8x.bias == nil)
        #expect(model.preferredPreprocessing == .torchvision && sharedDilatedResNetFCN50.preferredPreprocessing == .torchvision)
    }

    @Test func saveAndLoadRoundTrip() throws {
        let a = ResNetFCN8s(numClasses: 2, backbone: ResNet(.resnet18))
        fillDeterministically(a, seed: 3)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("resnet-fcn8s-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try a.save(to: path)
        let b = ResNetFCN8s(numClasses: 2, backbone: ResNet(.resnet18))
        try b.load(from: path, strict: true)
        a.eval(); b.eval()
        let x = Tensor.randn([1, 3, 32, 32], seed: 4)
        #expect(relativeError(a(x), b(x)) == 0)
        // A model with the wrong class count is refused with the names and shapes.
        #expect(throws: FCNError.self) { try ResNetFCN8s(numClasses: 3, backbone: ResNet(.resnet18)).load(from: path) }
    }

    // MARK: Preprocessing

    @Test func preprocessingConventions() {
        // One pixel per batch item, RGB (10, 128, 250) and (0, 255, 1).
        let rgb = Tensor(shape: [2, 3, 1, 1], scalars: [10, 128, 250, 0, 255, 1])
        let caffe = InputPreprocessing.caffe.apply(rgb)
        let bgrMean: [Float] = [104.00698793, 116.66876762, 122.67891434]
        let expectedCaffe: [Float] = [250 - bgrMean[0], 128 - bgrMean[1], 10 - bgrMean[2],
                                      1 - bgrMean[0], 255 - bgrMean[1], 0 - bgrMean[2]]
        #expect(caffe.scalars == expectedCaffe)
        let tv = InputPreprocessing.torchvision.apply(rgb)
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        let px: [Float] = [10, 128, 250, 0, 255, 1]
        let expectedTV = px.enumerated().map { i, v in (v / 255 - mean[i % 3]) / std[i % 3] }
        #expect(tv.scalars == expectedTV)
        for p in InputPreprocessing.named.map(\.value) {
            let x = Tensor.uniform([2, 3, 5, 7], low: 0, high: 255, seed: 8)
            #expect(relativeError(p.invert(p.apply(x)), x) < 1e-6, "\(p) round trip")
        }
        #expect(InputPreprocessing.caffe.apply(Tensor.zeros([0, 3, 4, 4])).shape == [0, 3, 4, 4])
    }

    @Test func segmentationModelPreprocessesThenRuns() {
        let model = ResNetFCN8s(numClasses: 2, backbone: ResNet(.resnet18))
        model.eval()
        let rgb = Tensor.uniform([1, 3, 32, 32], low: 0, high: 255, seed: 6)
        #expect(relativeError(model.scores(forRGB: rgb), model(InputPreprocessing.torchvision.apply(rgb))) == 0)
    }

    // MARK: Misuse

    @Test func basicBlockRejectsDilation() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = ResNet(.resnet34, replaceStrideWithDilation: [false, true, true])
        }
        #expect(stderrOf(r).contains("ResNet: resnet34 uses BasicBlock, which does not support dilation"))
    }

    @Test func fcnResNetNeedsBottleneck() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = DilatedResNetFCN(depth: .resnet18, numClasses: 21)
        }
        #expect(stderrOf(r).contains("DilatedResNetFCN: resnet18: torchvision's FCN has a resnet50 or resnet101 backbone"))
    }

    @Test func wrongInputChannels() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = ResNetFCN8s(numClasses: 2, backbone: ResNet(.resnet18))(Tensor.zeros([1, 4, 32, 32]))
        }
        #expect(stderrOf(r).contains("ResNetFCN8s: expected input [N, 3, H, W] with H, W >= 1, got [1, 4, 32, 32]"))
    }

    @Test func dilationFlagCount() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = ResNet(.resnet50, replaceStrideWithDilation: [true, true])
        }
        #expect(stderrOf(r).contains("ResNet: replaceStrideWithDilation needs 3 flags (layer2, layer3, layer4), got [true, true]"))
    }

    @Test func preprocessingShape() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = InputPreprocessing.torchvision.apply(Tensor.zeros([1, 4, 2, 2]))
        }
        #expect(stderrOf(r).contains("InputPreprocessing.apply: expected RGB input [N, 3, H, W] or [3, H, W] with values 0...255, got shape [1, 4, 2, 2]"))
    }
}
