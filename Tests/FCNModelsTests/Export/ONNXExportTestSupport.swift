// Small models of every family for the export tests, with weights that make every part of
// the graph matter: random score layers (the VGG score layers start at zero), random
// upsampling kernels (the bilinear ones are symmetric in their two channel axes and would
// hide a transposed layout), detinit's batch-norm statistics for the ResNets.
import Foundation
@testable import FCNCore
@testable import FCNModels
import FCNTestSupport

enum ExportModels {
    /// A VGG FCN at width 1/32 (2 ... 16 channels, fc6/fc7 128) with 5 classes: He-initialised
    /// convolutions, random score layers and upsampling kernels; eval mode.
    static func vgg(_ variant: VGGFCNVariant, _ padding: VGGFCNPadding, seed: UInt64 = 3) -> VGGFCN {
        let m = VGGFCN(variant: variant, classes: 5, width: 1.0 / 32, seed: seed, zeroScoreLayers: false, padding: padding)
        m.kaimingInitialize(seed: seed)
        randomizeUpsampling(m, seed: seed)
        m.eval()
        return m
    }

    /// resnet18-fcn8s with 3 classes, detinit's weights and statistics, random upsampling; eval mode.
    static func resnet18FCN8s() -> ResNetFCN8s {
        let m = ResNetFCN8s(numClasses: 3, backbone: ResNet(.resnet18))
        fillDeterministically(m, seed: 77)
        randomizeUpsampling(m, seed: 77)
        m.eval()
        return m
    }

    /// Every ConvTranspose2d weight replaced by uniform noise of the bilinear kernel's scale.
    static func randomizeUpsampling(_ model: some Module, seed: UInt64) {
        for (name, module) in model.namedModules() {
            guard let t = module as? ConvTranspose2d else { continue }
            let w = deterministicFill(name, shape: t.weight.shape, low: -0.5, high: 1, seed: seed)
            t.weight.assign(w)
        }
    }

    /// The library's scores of `model` for `x` (eval mode, no autograd).
    static func scores(_ model: any SegmentationModel, _ x: Tensor) -> Tensor { withoutGrad { model(x) } }
}

/// A fresh empty folder under the temporary directory.
func makeExportFolder(_ tag: String) throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("swift-fcn-onnx-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
