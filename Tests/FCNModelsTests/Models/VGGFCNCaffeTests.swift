// Caffe's FCNs loaded into VGGFCN: the five caffemodels of gen_readers.py (FCN-32s, 16s, 8s
// and both forms of 8s at-once, current and V1 formats) hold random weights of a PyTorch
// port of the reference nets (gen_models.VGGFCN); loaded here, the network must give
// PyTorch's scores within 1e-5 of their scale. Hand-made files check the derivations
// (variant, classes, width) and the errors for nets the library does not have.
//
// Tolerance 1e-5 relative to max |expected|: at widths 1/128 - 1/96 every convolution sums
// at most a few hundred float32 products (fc6: 4 * 49), each in another order than PyTorch.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

private func loadErrors(_ layers: [[UInt8]]) -> String? {
    errorText { _ = try VGGFCN.caffeStateDict(from: CaffeModel.read(data: CaffeProto.net(layers))) }
}

@Suite struct VGGFCNCaffeTests {
    @Test(arguments: loadFixture("readers_caffe"))
    func loadsCaffeModelsAndMatchesPyTorch(_ c: FixtureCase) throws {
        let path = readersDirectory + "/" + c.string("file")
        let contents = try CaffeModel.read(path: path)
        #expect(contents.format.rawValue == c.string("format"))
        let sd = try VGGFCN.caffeStateDict(from: contents)
        #expect(sd.variant.rawValue == c.string("variant") && sd.classes == c.int("classes"))
        // The derived width builds the same channel counts as the file's (1/96 is found as 43/4096).
        for n in [64, 128, 256, 512, 4096] {
            #expect(VGG16Config.channels(n, width: sd.width) == VGG16Config.channels(n, width: c.double("width")))
        }
        // Both loading paths: state dict into a new net, and decoding straight into the parameters.
        let a = VGGFCN(variant: sd.variant, classes: sd.classes, width: sd.width, seed: 9)
        try a.loadStateDict(sd.tensors)
        let b = try VGGFCN.fromCaffeModel(path: path)
        #expect(b.variant == sd.variant && b.classes == sd.classes && b.width == sd.width)
        for ((n1, p1), (n2, p2)) in zip(a.namedParameters(), b.namedParameters()) {
            #expect(n1 == n2 && p1.value.scalars == p2.value.scalars, "\(n1)")
        }
        #expect(b.namedParameters().filter { $0.0.hasPrefix("upscore") }.allSatisfy { !$0.1.requiresGrad })   // upsampling stays frozen
        a.eval(); b.eval()
        let x = c.tensor("input"), expected = c.tensor("output")
        // The one way in reads the caffemodel by content and describes it.
        let opened = try ModelFile.open(path)
        #expect(try ModelFile.format(of: path) == .caffe)
        #expect(opened.modelDescription.architecture == ModelArchitecture(sd.variant) && opened.modelDescription.input == .caffe)
        #expect(opened.modelDescription.classes == sd.classes && !opened.isTraining)
        for net in [a, b, opened as! VGGFCN] {
            let y = withoutGrad { net(x) }
            let err = vggRelError(y, expected)
            print("caffemodel \(c.string("file")): relative error \(err)")
            #expect(err <= 1e-5, "\(c.string("file")): relative error \(err)")
        }
    }

    @Test func parameterShapesMatchTheNetwork() {
        for variant in VGGFCNVariant.allCases {
            for (classes, width) in [(3, 1.0 / 128), (21, 1.0 / 64), (5, 1.0 / 3)] {
                let net = VGGFCN(variant: variant, classes: classes, width: width, seed: 1)
                let planned = VGGFCN.parameterShapes(variant: variant, classes: classes, width: width)
                #expect(planned.map(\.name) == net.namedParameters().map(\.0))
                #expect(planned.map(\.shape) == net.namedParameters().map(\.1.shape))
            }
        }
    }

    @Test func pascalContextSixtyClassesAndGroupedDeconvolutions() throws {
        var layers = CaffeProto.vggLayers(.fcn8s, classes: 60, width: 1.0 / 128, skip: ["upscore8"])
        // A per-class (group = 60) upsampling stored as [60, 1, 16, 16].
        let kernel = bilinearUpsamplingKernel(channels: 1, kernelSize: 16).scalars
        layers.append(CaffeProto.layer("upscore8", "Deconvolution", blobs: [CaffeProto.blob([60, 1, 16, 16], (0..<60).flatMap { _ in kernel })],
                                       conv: CaffeProto.conv(output: 60, kernel: 16, stride: 8, bias: false, group: 60)))
        let sd = try VGGFCN.caffeStateDict(from: CaffeModel.read(data: CaffeProto.net(layers)))
        #expect(sd.variant == .fcn8s && sd.classes == 60 && sd.width == 32.0 / 4096)
        #expect(sd.tensors["upscore8.weight"]!.scalars == bilinearUpsamplingKernel(channels: 60, kernelSize: 16).scalars)
    }

    @Test func atOnceScalesAreChecked() throws {
        let ok = CaffeProto.vggLayers(.fcn8sAtOnce, classes: 2, width: 1.0 / 128)
        #expect(try VGGFCN.caffeStateDict(from: CaffeModel.read(data: CaffeProto.net(ok))).variant == .fcn8sAtOnce)
        // scale_pool4 holding 0.02, a Power scale_pool3 with a shift, one scale alone.
        let wrong = ok.map { l -> [UInt8] in
            guard CaffeModel.layerName(l) == "scale_pool4" else { return l }
            return CaffeProto.layer("scale_pool4", "Scale", blobs: [CaffeProto.blob([4], [0.01, 0.01, 0.02, 0.01])])
        }
        #expect(loadErrors(wrong)?.contains("scales its pool skip by 0.01 in layer 'scale_pool4', but it holds 0.02") == true)
        let shifted = ok.map { l -> [UInt8] in
            CaffeModel.layerName(l) == "scale_pool3" ? CaffeProto.layer("scale_pool3", "Power", power: PB.float(2, 0.0001) + PB.float(3, 1)) : l
        }
        #expect(loadErrors(shifted)?.contains("but it computes (1.0 + 0.0001 x)^1.0") == true)
        let lone = ok.filter { CaffeModel.layerName($0) != "scale_pool3" }
        #expect(loadErrors(lone)?.contains("missing scale_pool3") == true)
    }

    @Test func derivationsAndStoredParameters() throws {
        // A convolution without its bias blob (bias_term false) gets zeros; a missing layer is named.
        var layers = CaffeProto.vggLayers(.fcn16s, classes: 4, width: 1.0 / 64)
        let i = layers.firstIndex { CaffeModel.layerName($0) == "fc7" }!
        layers[i] = CaffeProto.layer("fc7", "Convolution", blobs: [CaffeProto.blob([64, 64, 1, 1])], conv: CaffeProto.conv(output: 64, kernel: 1, bias: false))
        let sd = try VGGFCN.caffeStateDict(from: CaffeModel.read(data: CaffeProto.net(layers)))
        #expect(sd.variant == .fcn16s && sd.classes == 4 && sd.width == 1.0 / 64)
        #expect(sd.tensors["fc7.bias"]!.scalars == [Float](repeating: 0, count: 64))
        #expect(loadErrors(layers.filter { CaffeModel.layerName($0) != "score_pool4" })?.contains("missing score_pool4") == true)
        // A stride that is not the reference's, a deconvolution with a bias.
        let strided = layers.map { l -> [UInt8] in
            CaffeModel.layerName(l) == "conv2_1"
                ? CaffeProto.layer("conv2_1", "Convolution", blobs: [CaffeProto.blob([2, 1, 3, 3]), CaffeProto.blob([2])],
                                   conv: CaffeProto.conv(output: 2, kernel: 3, stride: 2, pad: 1)) : l
        }
        #expect(loadErrors(strided)?.contains("layer 'conv2_1' has stride [2, 2] (expected 1)") == true)
        let biased = layers.map { l -> [UInt8] in
            CaffeModel.layerName(l) == "upscore2"
                ? CaffeProto.layer("upscore2", "Deconvolution", blobs: [CaffeProto.blob([4, 4, 4, 4]), CaffeProto.blob([4], [0, 0, 1, 0])]) : l
        }
        #expect(loadErrors(biased)?.contains("deconvolution 'upscore2' has a non-zero bias") == true)
        #expect(loadErrors(layers + [layers[0]])?.contains("two layers are named 'conv1_1'") == true)
    }

    @Test func netsTheLibraryDoesNotHaveAreNamed() throws {
        // SIFT Flow: a second (geometric) head beside the semantic one.
        let sift = CaffeProto.vggLayers(.fcn32s, classes: 3, width: 1.0 / 128)
            + [CaffeProto.layer("score_fr_geo", "Convolution", blobs: [CaffeProto.blob([3, 32, 1, 1]), CaffeProto.blob([3])]),
               CaffeProto.layer("upscore_geo", "Deconvolution", blobs: [CaffeProto.blob([3, 3, 64, 64])])]
        let e1 = loadErrors(sift)
        #expect(e1?.contains("layers the VGG16 FCN does not have: score_fr_geo (Convolution), upscore_geo (Deconvolution)") == true)
        #expect(e1?.contains("SIFT Flow") == true)
        // The AlexNet FCN (narrowed): conv1 11x11 stride 4, conv2 5x5 in groups, LRN, fc6 6x6.
        let alex = [CaffeProto.layer("conv1", "Convolution", blobs: [CaffeProto.blob([8, 3, 11, 11]), CaffeProto.blob([8])],
                                     conv: CaffeProto.conv(output: 8, kernel: 11, stride: 4, pad: 100)),
                    CaffeProto.layer("norm1", "LRN"),
                    CaffeProto.layer("conv2", "Convolution", blobs: [CaffeProto.blob([8, 4, 5, 5]), CaffeProto.blob([8])]),
                    CaffeProto.layer("fc6", "Convolution", blobs: [CaffeProto.blob([16, 8, 6, 6]), CaffeProto.blob([16])]),
                    CaffeProto.layer("upscore", "Deconvolution", blobs: [CaffeProto.blob([2, 2, 63, 63])])]
        let e2 = loadErrors(alex)
        #expect(e2?.contains("layers the VGG16 FCN does not have: conv1 (Convolution), norm1 (LRN), conv2 (Convolution)") == true)
        #expect(e2?.contains("AlexNet FCN") == true)
        // An RGB-D net: conv1_1 with 4 input channels.
        var rgbd = CaffeProto.vggLayers(.fcn32s, classes: 3, width: 1.0 / 128)
        rgbd[0] = CaffeProto.layer("conv1_1", "Convolution", blobs: [CaffeProto.blob([1, 4, 3, 3]), CaffeProto.blob([1])])
        #expect(loadErrors(rgbd)?.contains("conv1_1 takes 4 input channels") == true)
        // fc6 of the wrong shape for the derived width.
        var narrow = CaffeProto.vggLayers(.fcn32s, classes: 3, width: 1.0 / 128)
        let f = narrow.firstIndex { CaffeModel.layerName($0) == "fc6" }!
        narrow[f] = CaffeProto.layer("fc6", "Convolution", blobs: [CaffeProto.blob([32, 4, 6, 6]), CaffeProto.blob([32])])
        #expect(loadErrors(narrow)?.contains("layer 'fc6' blob 0 has shape [32, 4, 6, 6], the FCN-32s with 3 classes at width 0.0078125 needs [32, 4, 7, 7]") == true)
        #expect(loadErrors([CaffeProto.layer("relu", "ReLU")])?.contains("no upsampling layer") == true)
    }

    @Test func nonFiniteWeightsAreNamed() throws {
        let layers = CaffeProto.vggLayers(.fcn32s, classes: 2, width: 1.0 / 128) { n, i in
            n == "fc7.weight" && i == 5 ? .nan : 0.01
        }
        let data = CaffeProto.net(layers)
        let e = errorText { _ = try VGGFCN.fromCaffeModel(CaffeModelFile(data: data)) }
        #expect(e?.contains("tensor 'fc7.weight' holds nan at index 5") == true)
        let sd = try VGGFCN.caffeStateDict(from: CaffeModel.read(data: data))
        let net = VGGFCN(variant: .fcn32s, classes: 2, width: 1.0 / 128, seed: 1)
        #expect(errorText { try net.loadStateDict(sd.tensors) }?.contains("tensor 'fc7.weight' holds nan at element 5") == true)
    }
}

extension CaffeModel {
    /// The name of a LayerParameter message (tests).
    static func layerName(_ layer: [UInt8]) -> String? {
        (try? read(data: CaffeProto.net([layer])))?.layers.first?.name
    }
}
