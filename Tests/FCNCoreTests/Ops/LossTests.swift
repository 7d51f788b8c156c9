// softmaxCrossEntropy against PyTorch (Fixtures/gen_loss.py) and finite differences.
//
// Fixture idea (gen_loss.py):
//   out = F.cross_entropy(logits, labels, weight=w | None, ignore_index=i, reduction=r)
//   out.backward(grad_out); store logits, labels.float(), w, out, grad_out, logits.grad
// 39 cases: [N, C, H, W] (C = 1, 2, 3, 4, 5, 6, 17, 21) and [N, C]; ignore index 255, -100
// and 0 with 0-50% ignored pixels; all pixels ignored; class weights; mean/sum/none;
// logits up to 1e4. PyTorch gives NaN for 'mean' with every pixel ignored: the fixture
// stores the library's definition instead (0 loss, 0 gradient).
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct LossTests {
    // Tolerance 1e-5 relative to max(1, |loss|): a logsumexp per pixel and a Double sum.
    @Test(arguments: loadFixture("loss"))
    func lossAndGradientMatchPyTorch(_ c: FixtureCase) {
        let logits = c.tensor("logits").requiringGrad()
        let reduction = LossReduction(rawValue: c.string("reduction"))!
        let w = c.bool("weighted") ? c.tensor("weights") : nil
        let loss = softmaxCrossEntropy(logits: logits, labels: c.tensor("labels"), ignoreIndex: c.int("ignore"),
                                       reduction: reduction, classWeights: w)
        expectClose(loss, c.tensor("loss"), tolerance: 1e-5, "\(c) loss")
        loss.backward(gradient: c.tensor("grad_out"))
        expectClose(logits.grad!, c.tensor("grad_logits"), tolerance: 1e-5, "\(c) grad")
    }

    @Test func allIgnoredGivesZeroLossAndGradient() {
        let logits = Tensor.randn([2, 3, 4, 4], seed: 1).requiringGrad()
        let labels = Tensor.full([2, 4, 4], 255)
        let loss = softmaxCrossEntropy(logits: logits, labels: labels)
        #expect(loss.shape == [] && loss.item == 0)       // PyTorch: NaN
        loss.backward()
        #expect(logits.grad!.scalars.allSatisfy { $0 == 0 })
        #expect(softmaxCrossEntropy(logits: logits, labels: labels, reduction: .sum).item == 0)
        #expect(softmaxCrossEntropy(logits: logits, labels: labels, reduction: .none).scalars.allSatisfy { $0 == 0 })
    }

    // The multi-threaded path (> 32768 logits, several 512-pixel blocks) equals
    // -logSoftmax gathered at the labels.
    @Test func equalsLogSoftmaxGather() {
        let (N, C, H, W) = (2, 21, 30, 31)
        let logits = Tensor.randn([N, C, H, W], std: 4, seed: 3)
        var labels = Tensor.uniform([N, H, W], low: 0, high: Float(C), seed: 4)
        labels.withUnsafeMutableBufferPointer { b in for i in 0..<b.count { b[i] = i % 7 == 0 ? 255 : b[i].rounded(.down) } }
        let per = softmaxCrossEntropy(logits: logits, labels: labels, reduction: .none)
        let ls = logSoftmax(logits, axis: 1)
        var sum = 0.0, kept = 0
        for n in 0..<N { for h in 0..<H { for w in 0..<W {
            let y = labels[n, h, w]
            if y == 255 { #expect(per[n, h, w] == 0); continue }
            let ref = -ls[n, Int(y), h, w]
            #expect(abs(per[n, h, w] - ref) <= 2e-6 * max(1, abs(ref)))
            sum += Double(ref); kept += 1
        } } }
        let mean = softmaxCrossEntropy(logits: logits, labels: labels).item
        #expect(abs(Double(mean) - sum / Double(kept)) < 1e-5 * sum / Double(kept))
    }

    @Test func largeLogitsAreFinite() {
        let logits = Tensor(shape: [1, 3], scalars: [1e4, -1e4, 0]).requiringGrad()
        let loss = softmaxCrossEntropy(logits: logits, labels: Tensor(shape: [1], scalars: [1]))
        #expect(loss.item == 2e4)
        loss.backward()
        #expect(logits.grad!.scalars == [1, -1, 0])
    }

    // Central differences w.r.t. the logits, eps 1e-2, tolerance 1e-3 (observed <= 1.2e-4); labels include the
    // ignore index and class weights.
    @Test(arguments: LossReduction.allCases)
    func finiteDifferences(_ reduction: LossReduction) {
        let logits = Tensor.randn([2, 4, 3, 3], std: 2, seed: 7)
        var labels = Tensor.uniform([2, 3, 3], low: 0, high: 4, seed: 8)
        labels.withUnsafeMutableBufferPointer { b in for i in 0..<b.count { b[i] = i % 5 == 2 ? 255 : b[i].rounded(.down) } }
        let w = Tensor(shape: [4], scalars: [0.5, 1, 2, 1.5])
        gradientCheck([logits], eps: 1e-2, tolerance: 1e-3, "loss \(reduction)") {
            softmaxCrossEntropy(logits: $0[0], labels: labels, reduction: reduction, classWeights: w)
        }
        gradientCheck([Tensor.randn([5, 3], seed: 9)], eps: 1e-2, tolerance: 1e-3, "classification \(reduction)") {
            softmaxCrossEntropy(logits: $0[0], labels: Tensor(shape: [5], scalars: [0, 2, 1, 255, 2]), reduction: reduction)
        }
    }

    @Test func labelOutOfRangeNamesTheOp() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = softmaxCrossEntropy(logits: Tensor.zeros([1, 21, 2, 2]), labels: Tensor(shape: [1, 2, 2], scalars: [0, 3, 21, 255]))
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("softmaxCrossEntropy: label 21.0 at [0, 1, 0] is not a class id in [0, 21) nor the ignore index 255"))
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = softmaxCrossEntropy(logits: Tensor.zeros([2, 3]), labels: Tensor(shape: [2], scalars: [1.5, 0]))
        }
        let r2Text = String(decoding: r2?.standardErrorContent ?? [], as: UTF8.self)
        #expect(r2Text.contains("softmaxCrossEntropy: label 1.5 at [0] is not a class id in [0, 3) nor the ignore index 255"))
        let r3 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = softmaxCrossEntropy(logits: Tensor.zeros([2, 3, 4, 4]), labels: Tensor.zeros([2, 4, 5]))
        }
        let r3Text = String(decoding: r3?.standardErrorContent ?? [], as: UTF8.self)
        #expect(r3Text.contains("softmaxCrossEntropy: labels of shape [2, 4, 5] do not match logits [2, 3, 4, 4]; expected [2, 4, 4]"))
    }
}
