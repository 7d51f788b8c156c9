// lovaszSoftmax against the paper's algorithm in PyTorch (Fixtures/gen_lovasz.py), finite
// differences, and its defining property (hard predictions give 1 - IU).
//
// Fixture idea (gen_lovasz.py; PyTorch has no Lovasz loss, the script writes Algorithm 1
// with torch ops and takes the gradient from autograd):
//   p = logits.softmax(1); per class: e = |fg - p_c|, e sorted descending (stable),
//   loss_c = dot(e_sorted, lovasz_grad(fg_sorted)); mean over classes (present | all),
//   and over images with per_image. loss.backward(grad_out)
// 36 cases: [N, C, H, W] with C = 1, 2, 3, 4, 5, 6, 21 and [N, C]; classes present / all;
// batch and per image; ignore index 255 or -100 with 0-30% ignored pixels; a first image
// with no labelled pixel; absent classes; logits of scale 0.2 to 3.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct LovaszTests {
    // Tolerance 1e-5 relative to max(1, |value|): a softmax per pixel and Jaccard steps in
    // Double against PyTorch's float32 cumsum and dot.
    @Test(arguments: loadFixture("lovasz"))
    func lossAndGradientMatchPyTorch(_ c: FixtureCase) {
        let logits = c.tensor("logits").requiringGrad()
        let classes = LovaszClasses(rawValue: c.string("classes"))!
        let loss = lovaszSoftmax(logits: logits, labels: c.tensor("labels"), ignoreIndex: c.int("ignore"),
                                 classes: classes, perImage: c.bool("per_image"))
        expectClose(loss, c.tensor("loss"), tolerance: 1e-5, "\(c) loss")
        loss.backward(gradient: c.tensor("grad_out"))
        expectClose(logits.grad!, c.tensor("grad_logits"), tolerance: 1e-5, "\(c) grad")
    }

    /// Labels and one-hot logits (margin 60: softmax gives exactly 1 and ~1e-26) for
    /// predictions `pred`, N images of H x W with C classes.
    static func hard(_ labels: [Int], _ pred: [Int], N: Int, C: Int, H: Int, W: Int) -> (Tensor, Tensor) {
        let S = H * W
        var x = [Float](repeating: 0, count: N * C * S)
        for i in 0..<N * S { x[(i / S * C + pred[i]) * S + i % S] = 60 }
        return (Tensor(shape: [N, C, H, W], scalars: x), Tensor(shape: [N, H, W], scalars: labels.map(Float.init)))
    }

    /// Mean over the classes present in `labels[range]` of 1 - |pred = c and label = c| / |pred = c or label = c|.
    static func oneMinusIU(_ labels: [Int], _ pred: [Int], _ range: Range<Int>, C: Int) -> Double {
        var sum = 0.0, present = 0
        for c in 0..<C where range.contains(where: { labels[$0] == c }) {
            let inter = range.filter { labels[$0] == c && pred[$0] == c }.count
            let union = range.filter { labels[$0] == c || pred[$0] == c }.count
            sum += 1 - Double(inter) / Double(union); present += 1
        }
        return sum / Double(present)
    }

    // The loss is the Lovasz extension of the Jaccard loss: at 0/1 errors it equals 1 - IU
    // of each class, averaged over present classes (over the batch, or per image then
    // averaged). 2 x 40 x 50 pixels also run the multi-threaded backward.
    @Test(arguments: [false, true])
    func hardPredictionsGiveOneMinusIU(_ perImage: Bool) {
        let (N, C, H, W) = (2, 5, 40, 50)
        var g = FCNRandom(seed: 11)
        // Class 4 never appears in the labels (present-classes rule), class 3 only in image 1.
        let labels = (0..<N * H * W).map { i in i < H * W ? Int(g.next() % 3) : Int(g.next() % 4) }
        let pred = labels.map { y in g.next() % 4 == 0 ? Int(g.next() % 5) : y }
        let (x, y) = Self.hard(labels, pred, N: N, C: C, H: H, W: W)
        let loss = Double(lovaszSoftmax(logits: x, labels: y, perImage: perImage).item)
        let S = H * W
        let expected = perImage
            ? (Self.oneMinusIU(labels, pred, 0..<S, C: C) + Self.oneMinusIU(labels, pred, S..<2 * S, C: C)) / 2
            : Self.oneMinusIU(labels, pred, 0..<N * S, C: C)
        #expect(expected > 0.1)
        #expect(abs(loss - expected) < 1e-6, "loss \(loss), 1 - IU \(expected)")
        let perfect = Self.hard(labels, labels, N: N, C: C, H: H, W: W)
        #expect(abs(lovaszSoftmax(logits: perfect.0, labels: perfect.1, perImage: perImage).item) < 1e-6)
    }

    // Per image is the mean of the images' own losses, and its gradient is theirs / N
    // (2 x 3 x 70 x 70: the parallel backward path).
    @Test func perImageIsTheMeanOfImages() {
        let (C, H, W) = (3, 70, 70)
        let logits = Tensor.randn([2, C, H, W], std: 2, seed: 5).requiringGrad()
        var labels = Tensor.uniform([2, H, W], low: 0, high: Float(C), seed: 6)
        labels.withUnsafeMutableBufferPointer { b in for i in 0..<b.count { b[i] = i % 9 == 4 ? 255 : b[i].rounded(.down) } }
        let both = lovaszSoftmax(logits: logits, labels: labels, perImage: true)
        both.backward()
        var sum: Float = 0
        for n in 0..<2 {
            let xn = logits.detached().sliced(axis: 0, range: n..<(n + 1)).requiringGrad()
            let ln = lovaszSoftmax(logits: xn, labels: labels.sliced(axis: 0, range: n..<(n + 1)))
            sum += ln.item
            ln.backward()
            expectClose(logits.grad!.sliced(axis: 0, range: n..<(n + 1)) * 2, xn.grad!, tolerance: 1e-6, "image \(n) gradient")
        }
        #expect(abs(both.item - sum / 2) < 1e-6)
    }

    // Central differences, eps 1e-3, on logits whose errors are at least 2e-3 apart within
    // every class (a logit step moves a probability by at most eps / 4, so no two errors
    // swap order and the loss is linear in the errors there). The loss is scaled by 10 so
    // that the gradient is of order 1. Tolerance 2e-3 (observed <= 4.6e-4: a float loss
    // differenced over a 2e-3 step).
    @Test(arguments: [(LovaszClasses.present, false), (.present, true), (.all, false), (.all, true)])
    func finiteDifferences(_ classes: LovaszClasses, _ perImage: Bool) {
        let (N, C, H, W) = (2, 3, 2, 3)
        let labels = Tensor(shape: [N, H, W], scalars: [0, 1, 1, 255, 0, 1, 2, 2, 0, 1, 255, 2])
        var seed: UInt64 = 20
        var logits = Tensor.randn([N, C, H, W], std: 2, seed: seed)
        func minGap(_ x: Tensor) -> Float {
            let p = softmax(x, axis: 1)
            var gap = Float.infinity
            for c in 0..<C {
                var e: [Float] = []
                for n in 0..<N { for s in 0..<H * W where labels.scalars[n * H * W + s] != 255 {
                    let pc = p.scalars[(n * C + c) * H * W + s]
                    e.append(labels.scalars[n * H * W + s] == Float(c) ? 1 - pc : pc)
                } }
                e.sort()
                for i in 1..<e.count { gap = min(gap, e[i] - e[i - 1]) }
            }
            return gap
        }
        while minGap(logits) < 2e-3 { seed += 1; logits = Tensor.randn([N, C, H, W], std: 2, seed: seed) }
        gradientCheck([logits], eps: 1e-3, tolerance: 2e-3, "lovasz \(classes) perImage \(perImage)") {
            lovaszSoftmax(logits: $0[0], labels: labels, classes: classes, perImage: perImage) * 10
        }
    }

    @Test func nothingLabelledGivesZero() {
        let logits = Tensor.randn([2, 3, 4, 4], seed: 1).requiringGrad()
        for perImage in [false, true] {
            let loss = lovaszSoftmax(logits: logits, labels: Tensor.full([2, 4, 4], 255), perImage: perImage)
            #expect(loss.shape == [] && loss.item == 0)
            loss.backward()
            #expect(logits.grad!.scalars.allSatisfy { $0 == 0 })
            logits.zeroGrad()
        }
    }

    @Test func badInputNamesTheOp() async {
        let r1 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = lovaszSoftmax(logits: Tensor.zeros([1, 3, 2, 2]), labels: Tensor(shape: [1, 2, 2], scalars: [0, 3, 1, 255]))
        }
        let t1 = String(decoding: r1?.standardErrorContent ?? [], as: UTF8.self)
        #expect(t1.contains("lovaszSoftmax: label 3.0 at [0, 0, 1] is not a class id in [0, 3) nor the ignore index 255"))
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = lovaszSoftmax(logits: Tensor.zeros([2, 3, 4, 4]), labels: Tensor.zeros([2, 4, 5]))
        }
        let t2 = String(decoding: r2?.standardErrorContent ?? [], as: UTF8.self)
        #expect(t2.contains("lovaszSoftmax: labels of shape [2, 4, 5] do not match logits [2, 3, 4, 4]; expected [2, 4, 4]"))
    }

    // The radix sort orders by the high word and keeps ties in input order (as torch.sort
    // with stable=True); the keys are error bits as the loss packs them (~bits: descending).
    @Test func sortIsDescendingAndStable() {
        var g = FCNRandom(seed: 3)
        let keys: [Float] = (0..<5000).map { i in i % 7 == 0 ? 0.5 : (i % 11 == 0 ? 0 : g.nextUniform()) }
        let buffer = UnsafeMutablePointer<UInt64>.allocate(capacity: 10_000)
        defer { buffer.deallocate() }
        for i in 0..<5000 { buffer[i] = UInt64(~keys[i].bitPattern) << 32 | UInt64(i) }
        let sorted = _radixSortByHighWord(buffer, scratch: buffer + 5000, count: 5000)
        let order = (0..<5000).map { Int(UInt32(truncatingIfNeeded: sorted[$0])) }
        let expected = (0..<5000).sorted { keys[$0] > keys[$1] || (keys[$0] == keys[$1] && $0 < $1) }
        #expect(order == expected)
    }
}
