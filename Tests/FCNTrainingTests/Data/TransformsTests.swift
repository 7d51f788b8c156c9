// Transforms: resizes vs torch F.interpolate (fixture training_resize from
// Fixtures/gen_training.py: bilinear align_corners=False for images, nearest for labels),
// image/label alignment under augmentation, flips, crops with padding, batching.
// Tolerance 1e-5 relative for bilinear (0...255 values, a few float32 products); nearest exact.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite struct TransformsTests {
    @Test(arguments: loadFixture("training_resize"))
    func resizeMatchesInterpolate(_ c: FixtureCase) {
        let out = c.ints("out")
        let b = SegmentationTransforms.resizeBilinear(c.tensor("image"), height: out[0], width: out[1])
        expectClose(b, c.tensor("bilinear"), tolerance: 1e-5, "\(c) bilinear")
        let n = SegmentationTransforms.resizeNearest(c.tensor("label"), height: out[0], width: out[1])
        #expect(n.shape == c.tensor("nearest").shape && n.scalars == c.tensor("nearest").scalars, "\(c) nearest")
    }

    @Test func flipTwiceIsIdentityAndCropPads() {
        let x = Tensor.randn([3, 5, 7], seed: 3)
        #expect(bitIdentical(x.flippedHorizontally().flippedHorizontally(), x))
        #expect(Tensor(shape: [1, 3], scalars: [1, 2, 3]).flippedHorizontally().scalars == [3, 2, 1])
        let lab = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        let c = SegmentationTransforms.crop(lab, top: -1, left: 1, height: 3, width: 2, padValue: [255])
        #expect(c.scalars == [255, 255, 2, 255, 4, 255])
    }

    /// An image whose channel 0 is 10 * label (labels constant on 12 x 12 blocks) must still
    /// read 10 * label after scale + crop + flip wherever the label is constant on the 5 x 5
    /// output window (bilinear and nearest sample up to one source pixel apart, which is
    /// PyTorch's behaviour too); where the label is padding (255) the image is padding.
    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func augmentationKeepsImageAndLabelAligned(_ seed: UInt64) {
        let n = 48
        let labels = (0..<(n * n)).map { i -> Float in Float(((i / n / 12) * 7 + (i % n / 12) * 3 + Int(seed)) % 5) }
        let label = Tensor(shape: [n, n], scalars: labels)
        let img = Tensor(shape: [3, n, n], scalars: labels.map { $0 * 10 } + [Float](repeating: 1, count: 2 * n * n))
        let aug = SegmentationAugmentation(scaleRange: 0.5...1.6, cropSize: (40, 56), imagePadValue: [-1, -1, -1])
        var rng = FCNRandom(seed: seed)
        for _ in 0..<4 {
            let (i2, l2) = aug(image: img, label: label, using: &rng)
            #expect(i2.shape == [3, 40, 56] && l2.shape == [40, 56])
            let li = l2.scalars, ii = i2.scalars, w = 56
            var checked = 0
            for y in 2..<38 { for x in 2..<54 {
                let v = li[y * w + x]
                if v == 255 { #expect(ii[y * w + x] == -1); continue }
                var uniform = true
                for dy in -2...2 { for dx in -2...2 where li[(y + dy) * w + x + dx] != v { uniform = false } }
                if uniform {
                    checked += 1
                    #expect(abs(ii[y * w + x] - 10 * v) < 1e-3, "pixel (\(y), \(x)): image \(ii[y * w + x]) label \(v)")
                }
            } }
            #expect(checked > 100)
        }
    }

    @Test func cropOffsetsAndFlipAreConsistent() {
        // Without scaling: output = input window at (top, left), mirrored if flipped.
        let img = Tensor.randn([3, 20, 30], seed: 1)
        let lab = Tensor(shape: [20, 30], scalars: (0..<600).map { Float($0 % 21) })
        let aug = SegmentationAugmentation(scaleRange: nil, cropSize: (12, 16))
        var rng = FCNRandom(seed: 9)
        var flips = 0
        for _ in 0..<10 {
            let p = aug.sampleParameters(height: 20, width: 30, using: &rng)
            #expect(p.top >= 0 && p.top <= 8 && p.left >= 0 && p.left <= 14)
            let (i2, l2) = aug.apply(p, image: img, label: lab)
            var ei = SegmentationTransforms.crop(img, top: p.top, left: p.left, height: 12, width: 16, padValue: [0])
            var el = SegmentationTransforms.crop(lab, top: p.top, left: p.left, height: 12, width: 16, padValue: [255])
            if p.flipped { flips += 1; ei = ei.flippedHorizontally(); el = el.flippedHorizontally() }
            #expect(bitIdentical(i2, ei) && bitIdentical(l2, el))
        }
        #expect(flips > 0 && flips < 10)
        // Same generator state, same result.
        var r1 = FCNRandom(seed: 5), r2 = FCNRandom(seed: 5)
        let a = SegmentationAugmentation(cropSize: (16, 16))
        #expect(bitIdentical(a(image: img, label: lab, using: &r1).image, a(image: img, label: lab, using: &r2).image))
    }

    @Test func batchingPadsWith255() {
        let s1 = (image: Tensor.ones([3, 4, 5]), label: Tensor.zeros([4, 5]))
        let s2 = (image: Tensor.full([3, 6, 3], 2), label: Tensor.ones([6, 3]))
        let (imgs, labs) = collateSegmentation([s1, s2], imagePadValue: [7, 8, 9], sizeDivisor: 4)
        #expect(imgs.shape == [2, 3, 8, 8] && labs.shape == [2, 8, 8])
        #expect(imgs[0, 0, 3, 4] == 1 && imgs[0, 0, 4, 0] == 7 && imgs[0, 2, 0, 5] == 9 && imgs[1, 1, 5, 2] == 2 && imgs[1, 1, 5, 3] == 8)
        #expect(labs[0, 3, 4] == 0 && labs[0, 3, 5] == 255 && labs[1, 5, 2] == 1 && labs[1, 6, 0] == 255)
        let ignored = labs.scalars.filter { $0 == 255 }.count
        #expect(ignored == 2 * 64 - 20 - 18)
    }

    @Test func mismatchedSampleStops() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = collateSegmentation([(image: .zeros([3, 4, 4]), label: .zeros([4, 5]))])
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("collateSegmentation: sample 0: image [3, 4, 4] and label [4, 5] must be [3, H, W] and [H, W]"))
    }
}
