// SyntheticShapes: determinism (image i is a function of (seed, i)), label validity, thin
// bars, image statistics; InputPreprocessing for the Caffe and torchvision conventions.
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite struct SyntheticShapesTests {
    let data = SyntheticShapes(size: 64, count: 16, seed: 7)

    @Test func deterministicByIndex() {
        let a = data[3], b = SyntheticShapes(size: 64, count: 16, seed: 7).sample(3)
        #expect(bitIdentical(a.image, b.image) && bitIdentical(a.label, b.label))
        // Order of access does not matter; other indices and seeds differ.
        _ = data[5]
        #expect(bitIdentical(data[3].image, a.image))
        #expect(!bitIdentical(data[4].image, a.image))
        #expect(!bitIdentical(SyntheticShapes(size: 64, seed: 8)[3].label, a.label))
    }

    @Test func labelsAndImagesAreValid() {
        var seen = Set<Int>()
        for i in 0..<8 {
            let (img, lab) = data[i]
            #expect(img.shape == [3, 64, 64] && lab.shape == [64, 64])
            let ls = lab.scalars
            #expect(ls.allSatisfy { $0 >= 0 && $0 < 5 && $0 == $0.rounded() })
            let classes = Set(ls.map { Int($0) })
            #expect(classes.count >= 3, "image \(i) has classes \(classes)")
            seen.formUnion(classes)
            let px = img.scalars
            #expect(px.allSatisfy { $0 >= 0 && $0 <= 255 })
            let mean = px.reduce(0, +) / Float(px.count)
            let variance = px.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(px.count)
            #expect(mean > 30 && mean < 225 && variance.squareRoot() > 15, "image \(i): mean \(mean), std \(variance.squareRoot())")
        }
        #expect(seen == [0, 1, 2, 3, 4])
    }

    @Test func thinBarsAreThin() {
        // Most bar pixels touch a non-bar pixel (a 4-neighbour): bars are 1-3 px wide.
        var barPixels = 0, boundaryPixels = 0
        for i in 0..<8 {
            let l = data[i].label.scalars, n = 64
            for y in 1..<(n - 1) { for x in 1..<(n - 1) where l[y * n + x] == 4 {
                barPixels += 1
                if [l[(y - 1) * n + x], l[(y + 1) * n + x], l[y * n + x - 1], l[y * n + x + 1]].contains(where: { $0 != 4 }) { boundaryPixels += 1 }
            } }
        }
        #expect(barPixels > 50)
        #expect(Double(boundaryPixels) / Double(barPixels) > 0.8)
    }

    /// A wide scene at the shape scale of small images: the default scale is the image's own
    /// (bit for bit the same images), and with `shapeScale: 64` on 192 pixels the discs keep
    /// a 64-pixel scene's size: their rows are on average less than half as long as those of
    /// the same canvas drawn at its own scale (radii up to 0.16 x 64 against 0.16 x 192).
    @Test func wideScenesKeepTheShapeScale() {
        let own = SyntheticShapes(size: 64, count: 4, seed: 7, shapeScale: 64)
        #expect(bitIdentical(own[2].image, data[2].image) && bitIdentical(own[2].label, data[2].label))
        /// Lengths of the horizontal runs of disc pixels.
        func discRuns(_ label: Tensor, _ n: Int) -> [Int] {
            let l = label.scalars
            var runs: [Int] = []
            for y in 0..<n {
                var run = 0
                for x in 0...n {
                    if x < n && l[y * n + x] == 1 { run += 1 } else if run > 0 { runs.append(run); run = 0 }
                }
            }
            return runs
        }
        let wide = SyntheticShapes(size: 192, count: 3, seed: 11, shapeScale: 64)
        let large = SyntheticShapes(size: 192, count: 3, seed: 11)
        var wideRuns: [Int] = [], largeRuns: [Int] = [], classes = Set<Int>()
        for i in 0..<3 {
            let (img, lab) = wide[i]
            #expect(img.shape == [3, 192, 192] && lab.shape == [192, 192])
            classes.formUnion(lab.scalars.map { Int($0) })
            wideRuns += discRuns(lab, 192)
            largeRuns += discRuns(large[i].label, 192)
        }
        #expect(classes == [0, 1, 2, 3, 4])
        func mean(_ r: [Int]) -> Double { Double(r.reduce(0, +)) / Double(max(1, r.count)) }
        #expect(!wideRuns.isEmpty && 2 * mean(wideRuns) < mean(largeRuns), "mean disc row \(mean(wideRuns)) against \(mean(largeRuns))")
    }

    @Test func shapesDifferFromBackground() {
        // Shape pixels are distinguishable: mean colour of foreground vs background differs.
        let (img, lab) = data[0]
        let l = lab.scalars, p = img.scalars, hw = 64 * 64
        var fg = [Float](repeating: 0, count: 3), bg = fg, nf: Float = 0, nb: Float = 0
        for i in 0..<hw {
            if l[i] == 0 { nb += 1; for c in 0..<3 { bg[c] += p[c * hw + i] } } else { nf += 1; for c in 0..<3 { fg[c] += p[c * hw + i] } }
        }
        let d = (0..<3).map { abs(fg[$0] / nf - bg[$0] / nb) }.reduce(0, +)
        #expect(d > 20)
    }

    @Test func normalizationConventions() {
        let img = Tensor(shape: [3, 1, 2], scalars: [10, 255, 20, 0, 30, 128])
        let caffe = InputPreprocessing.caffe.apply(img).scalars
        // BGR order minus the BGR mean.
        let m = InputPreprocessing.caffe.mean
        #expect(caffe == [30 - m[0], 128 - m[0], 20 - m[1], 0 - m[1], 10 - m[2], 255 - m[2]])
        let tv = InputPreprocessing.torchvision.apply(img).scalars
        #expect(abs(tv[0] - (10.0 / 255 - 0.485) / 0.229) < 1e-6)
        #expect(abs(tv[5] - (128.0 / 255 - 0.406) / 0.225) < 1e-6)
        // The mean pixel normalises to zero in both conventions; batches work too.
        for norm in [InputPreprocessing.caffe, .torchvision] {
            let mp = norm.meanPixelRGB
            let batch = Tensor(shape: [2, 3, 1, 1], scalars: mp + mp)
            #expect(norm.apply(batch).scalars.allSatisfy { abs($0) < 1e-5 })
        }
    }
}
