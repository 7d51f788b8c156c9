// Tiled inference equals the whole-image pass: small FCN-like nets (full-resolution output
// through a deconvolution + crop, and stride-4 output resized bilinearly) over many tile
// sizes, and a VGG16 FCN (Caffe layout, pad 100) at a tiny width. The reference is the
// network run once on the whole normalised image, independent of the tiling code.
// Tolerance 1e-4 relative (max abs error / max(1, max|expected|)): tiles change the GEMM
// shapes, so float sums may be rounded differently; in practice the results are equal.
import Testing
import Foundation
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNInference
import FCNTestSupport

/// conv3 -> relu -> pool2 (ceil) -> conv3 -> relu -> pool2 (ceil) -> 1x1 to classes
/// (stride 4, receptive field 10 -> radius 5, stated with slack), then optionally the FCN
/// way back to full resolution: a bilinear 4x deconvolution (kernel 8, stride 4) cropped
/// to the input size.
final class MiniFCN: Layer, @unchecked Sendable {
    let c1 = Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3, padding: 1, seed: 11)
    let c2 = Conv2d(inChannels: 4, outChannels: 5, kernelSize: 3, padding: 1, seed: 12)
    let score: Conv2d
    let up: ConvTranspose2d
    let fullResolution: Bool
    var isTraining = false

    init(classes: Int, fullResolution: Bool) {
        score = Conv2d(inChannels: 5, outChannels: classes, kernelSize: 1, seed: 13)
        score.bias!.assign(.zeros([classes]))   // let the image, not the bias, decide the class
        up = ConvTranspose2d(weight: bilinearUpsamplingKernel(channels: classes, kernelSize: 8), stride: 4)
        self.fullResolution = fullResolution
    }

    var children: [(String, any Module)] { [("c1", c1), ("c2", c2), ("score", score), ("up", up)] }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = maxPool2d(relu(c1(x)), kernel: 2, stride: 2, ceilMode: true)
        h = maxPool2d(relu(c2(h)), kernel: 2, stride: 2, ceilMode: true)
        let s = score(h)
        guard fullResolution else { return s }
        return crop(up(s), height: x.shape[2], width: x.shape[3], offset: 2)
    }

    /// As a SegmentationNetwork; radius 5 (+4 for the deconvolution taps, +4 slack).
    static func network(classes: Int = 4, fullResolution: Bool) -> LayerSegmentation {
        LayerSegmentation(MiniFCN(classes: classes, fullResolution: fullResolution), numClasses: classes,
                          inputPreprocessing: .torchvision, scoreStride: fullResolution ? 1 : 4,
                          translationStride: 4, receptiveFieldRadius: 13)
    }
}


/// The whole-image reference: the network once on the normalised image.
func wholeScores(_ net: any SegmentationNetwork, _ rgb: Tensor) -> Tensor {
    net.scores(normalized: net.inputPreprocessing.apply(rgb.unsqueezed(axis: 0)))
}

@Suite struct TiledInferenceTests {
    @Test(arguments: [true, false])
    func miniNetTilesEqualWholeImage(fullResolution: Bool) {
        let net = MiniFCN.network(fullResolution: fullResolution)
        for (h, w) in [(45, 61), (64, 32), (23, 70)] {
            let rgb = testImage(height: h, width: w)
            let expected = wholeScores(net, rgb)
            for tile in [1, 5, 8, 13, 16, 40] {
                let r = Segmenter(network: net, options: SegmentationOptions(tileSize: tile)).segment(rgb: rgb, keepScores: true)
                #expect(r.tiles > 1 || tile >= max(h, w))
                expectClose(r.scores!, expected, tolerance: 1e-4, "\(h)x\(w) tile \(tile) f=\(net.scoreStride)")
            }
        }
    }

    @Test func tilePlanCoversTheImageWithAlignedStarts() {
        for (L, T, A, R) in [(100, 7, 4, 13), (1000, 96, 32, 290), (33, 32, 32, 290), (64, 64, 8, 5)] {
            let tiles = TileAxis.plan(length: L, tileSize: T, translationStride: A, scoreStride: 1, radius: R, rawTaps: nil)
            #expect(tiles.first!.coreStart == 0 && tiles.last!.coreEnd == L)
            for (a, b) in zip(tiles, tiles.dropFirst()) { #expect(a.coreEnd == b.coreStart) }
            for t in tiles {
                #expect(t.inputStart % A == 0 && (L - t.inputEnd) % A == 0)
                #expect(t.inputStart == 0 || t.coreStart - t.inputStart >= R)
                #expect(t.inputEnd == L || t.inputEnd - t.coreEnd >= R)
                #expect(t.inputEnd - t.inputStart <= T + 2 * R + 2 * A)
            }
        }
    }

    @Test func vggFCNTilesEqualWholeImage() {
        // Width 1/32: 2..16 channels, fc6/fc7 128. Image wider than two margins plus a core,
        // so the middle tiles start and end inside the image.
        let model = VGGFCN(variant: .fcn8s, classes: 3, width: 1.0 / 32, seed: 5, zeroScoreLayers: false)
        let net = ModelSegmentation(model)
        let rgb = testImage(height: 40, width: 900, seed: 2)
        let expected = wholeScores(net, rgb)
        for tile in [100, 96, 333] {   // not dividing 900; 96 a multiple of 32
            let r = Segmenter(network: net, options: SegmentationOptions(tileSize: tile)).segment(rgb: rgb, keepScores: true)
            #expect(r.tiles >= 3)
            expectClose(r.scores!, expected, tolerance: 1e-4, "VGG FCN-8s tile \(tile)")
            #expect(r.labels == argmaxLabels(expected))
        }
    }

    @Test func sameLayoutTilesEqualWholeImage() {
        // The `.same` layout sees zero padding at the image border instead of the 100-pixel
        // margin; tiles start at multiples of 32 inside the image, so cores still match.
        let model = VGGFCN(variant: .fcn8s, classes: 3, width: 1.0 / 32, seed: 5, zeroScoreLayers: false, padding: .same)
        let net = ModelSegmentation(model)
        let rgb = testImage(height: 40, width: 900, seed: 2)
        let expected = wholeScores(net, rgb)
        let r = Segmenter(network: net, options: SegmentationOptions(tileSize: 100)).segment(rgb: rgb, keepScores: true)
        #expect(r.tiles >= 3)
        expectClose(r.scores!, expected, tolerance: 1e-4, "VGG FCN-8s same layout, tile 100")
    }

    @Test func vggFCN32sTilesAlongRowsAndColumns() {
        let model = VGGFCN(variant: .fcn32s, classes: 2, width: 1.0 / 64, seed: 6, zeroScoreLayers: false)
        let net = ModelSegmentation(model)
        let rgb = testImage(height: 700, width: 690, seed: 3)
        let expected = wholeScores(net, rgb)
        let r = Segmenter(network: net, options: SegmentationOptions(tileSize: 250)).segment(rgb: rgb, keepScores: true)
        #expect(r.tiles == 9)
        expectClose(r.scores!, expected, tolerance: 1e-4, "VGG FCN-32s 3x3 tiles")
    }

    @Test func vggReceptiveFieldWithinStatedRadius() {
        for variant in [VGGFCNVariant.fcn32s, .fcn8s, .fcn4s] {
            let net = ModelSegmentation(VGGFCN(variant: variant, classes: 2, width: 1.0 / 16, seed: 7, zeroScoreLayers: false))
            let r = estimatedReceptiveFieldRadius(of: net, length: 900)
            print("receptive-field radius of \(variant): measured \(r), stated \(net.receptiveFieldRadius)")
            #expect(r > 150 && r <= net.receptiveFieldRadius, "\(variant): measured radius \(r), stated \(net.receptiveFieldRadius)")
        }
        let mini = MiniFCN.network(fullResolution: true)
        let r = estimatedReceptiveFieldRadius(of: mini, length: 80, height: 3)
        #expect(r > 0 && r <= mini.receptiveFieldRadius, "mini: measured \(r)")
    }

    @Test func streamedLabelsEqualArgmaxOfScores() {
        let net = MiniFCN.network(classes: 6, fullResolution: false)
        let rgb = testImage(height: 37, width: 29, seed: 4)
        let expected = wholeScores(net, rgb)
        for tile: Int? in [nil, 7, 16] {
            let seg = Segmenter(network: net, options: SegmentationOptions(tileSize: tile))
            let labelsOnly = seg.segment(rgb: rgb)
            #expect(labelsOnly.scores == nil)
            #expect(labelsOnly.labels == argmaxLabels(expected), "tile \(String(describing: tile))")
            #expect(Set(labelsOnly.labels).count > 1, "the test image must produce several classes")
        }
    }

    @Test func flipAugmentationTiledEqualsWhole() {
        let net = MiniFCN.network(fullResolution: true)
        let rgb = testImage(height: 30, width: 50, seed: 5)
        let whole = Segmenter(network: net, options: SegmentationOptions(flip: true)).segment(rgb: rgb, keepScores: true)
        let tiled = Segmenter(network: net, options: SegmentationOptions(tileSize: 9, flip: true)).segment(rgb: rgb, keepScores: true)
        expectClose(tiled.scores!, whole.scores!, tolerance: 1e-5, "flip TTA")
        // Probabilities: mean of softmaxes, so they sum to 1 per pixel, and differ from no-flip.
        let sums = whole.scores!.sum(axis: 1)
        expectClose(sums, Tensor.ones(sums.shape), tolerance: 1e-5, "probabilities sum to 1")
        let plain = softmax(wholeScores(net, rgb), axis: 1)
        #expect((whole.scores! - plain).abs().max().item > 1e-4)
    }

    @Test func multiScaleOnOneTileMatchesManualAverage() {
        let net = MiniFCN.network(fullResolution: true)
        let rgb = testImage(height: 24, width: 20, seed: 6)
        let r = Segmenter(network: net, options: SegmentationOptions(scales: [0.5, 1])).segment(rgb: rgb, keepScores: true)
        let x = rgb.unsqueezed(axis: 0)
        let p1 = softmax(wholeScores(net, rgb), axis: 1)
        let small = interpolateBilinear(x, size: Size2(12, 10))
        let s05 = interpolateBilinear(net.scores(normalized: net.inputPreprocessing.apply(small)), size: Size2(24, 20))
        let expected = (p1 + softmax(s05, axis: 1)) * 0.5
        expectClose(r.scores!, expected, tolerance: 1e-5, "scales 0.5, 1")
    }
}

