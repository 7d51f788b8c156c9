// ConfusionMatrix metrics vs the FCN reference score.py computed with numpy (fixture from
// Fixtures/gen_training.py):
//   hist = bincount(n * gt[k] + pred[k]) with k = (0 <= gt < n)
//   iu = diag / (hist.sum(1) + hist.sum(0) - diag); mean IU = nanmean(iu); ...
// Cases include ignored pixels (255), classes absent from gt and from both gt and pred.
// Counts are exact; metrics agree to 1e-6 (fixture stores float32).
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite struct MetricsTests {
    func close(_ a: Double, _ b: Float, _ what: String) {
        if b.isNaN { #expect(a.isNaN, "\(what): \(a) should be nan"); return }
        #expect(abs(a - Double(b)) <= 1e-6 * max(1, abs(Double(b))), "\(what): \(a) vs \(b)")
    }

    @Test(arguments: loadFixture("training_metrics"))
    func matchesScorePy(_ c: FixtureCase) {
        let n = c.int("classes")
        var m = ConfusionMatrix(classes: n)
        let gt = c.tensor("gt"), pred = c.tensor("pred")
        m.update(prediction: pred, label: gt)
        #expect(m.counts.map(Float.init) == c.tensor("hist").scalars)
        close(m.pixelAccuracy, c.tensor("acc").item, "\(c) acc")
        close(m.meanClassAccuracy, c.tensor("mean_acc").item, "\(c) mean acc")
        close(m.meanIU, c.tensor("mean_iu").item, "\(c) mean IU")
        close(m.frequencyWeightedIU, c.tensor("fwiu").item, "\(c) fwIU")
        for k in 0..<n {
            close(m.classIU[k], c.tensor("iu").scalars[k], "\(c) IU[\(k)]")
            close(m.classAccuracy[k], c.tensor("acc_cls").scalars[k], "\(c) acc[\(k)]")
        }
        // Same counts from Int arrays, and split + merge equals one pass.
        var a = ConfusionMatrix(classes: n), b = ConfusionMatrix(classes: n)
        let g = gt.scalars.map { Int($0) }, p = pred.scalars.map { Int($0) }
        let half = g.count / 2
        a.update(prediction: Array(p[..<half]), label: Array(g[..<half]))
        b.update(prediction: Array(p[half...]), label: Array(g[half...]))
        a.merge(b)
        #expect(a == m)
    }

    @Test func scoresArgmaxAndIgnore() {
        // Two pixels, 3 classes: argmax 2 and 0 (tie between 0 and 1 goes to 0); third pixel ignored.
        let scores = Tensor(shape: [1, 3, 1, 3], scalars: [0, 5, 1, /**/ 1, 5, 0, /**/ 3, 0, 0])
        var m = ConfusionMatrix(classes: 3)
        m.update(scores: scores, label: Tensor(shape: [1, 1, 3], scalars: [2, 0, 255]))
        #expect(m[2, 2] == 1 && m[0, 0] == 1 && m.total == 2)
        #expect(m.pixelAccuracy == 1)
        #expect(m.classIU[1].isNaN)
        #expect(m.meanIU == 1)
    }

    @Test func outOfRangePredictionStops() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var m = ConfusionMatrix(classes: 2)
            m.update(prediction: [0, 7], label: [0, 1])
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("ConfusionMatrix.update: prediction 7 at pixel 1 is outside 0..<2"))
    }
}
