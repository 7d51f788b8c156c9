// Training does not leak: the recorded graph (and the activations it saves) is released
// after each backward pass, and inference records nothing.
//
// * 200 SGD steps of a tiny FCN-8s (width 1/64, 3 classes, 24x24 input): resident set size
//   read from /proc/self/statm (Linux only) after step 20 and after step 200 must grow by
//   less than 20 MB. One step's saved activations total about 1.6 MB (the four conv1
//   maps alone are 222x222 floats = 197 KB each), so keeping the graph alive would add
//   ~290 MB over the 180 steps and leaking a single conv1 map per step 35 MB; 20 MB leaves
//   room for allocator noise. The steps run in a child process (an exit test), alone. The loss must also go down (the SGD update does reach the parameters).
// * A weak reference to the loss's graph node is nil once the loss is dropped (no
//   reference cycle keeps a graph alive), with or without backward.
// * Under `withoutGrad` the output has no graph node; in eval mode with frozen parameters
//   nothing is recorded even with recording on.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

/// Resident set size in bytes, or nil where /proc/self/statm does not exist.
private func residentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return nil }
    #if canImport(Glibc)
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    #else
    return pages * 4096
    #endif
}

@Suite struct MemoryTests {
    /// Runs in a child process (an exit test) so that no other test's allocations, running
    /// concurrently in the same process, show up in the resident set size.
    @Test func trainingStepsDoNotGrowMemory() async throws {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            let report = try memoryGrowthOfTrainingSteps()
            FileHandle.standardError.write(Data(report.message.utf8))
            exit(report.ok ? 0 : 1)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("MemoryTests:"), "child report: \(text)")
    }

    @Test func graphIsReleased() throws {
        let model = try vggDeterministicFCN(.fcn8s, classes: 3, width: 1.0 / 64, seed: 34)
        model.eval()
        let x = Tensor.randn([1, 3, 9, 9], seed: 35)
        weak var afterBackward: GradNode?
        weak var forwardOnly: GradNode?
        do {
            let s = model(x).sum()
            afterBackward = s.node
            #expect(afterBackward != nil)
            s.backward()
        }
        do {
            let y = model(x)
            forwardOnly = y.node
            #expect(forwardOnly != nil)
        }
        #expect(afterBackward == nil && forwardOnly == nil)
    }

    @Test func inferenceRecordsNothing() throws {
        let model = try vggDeterministicFCN(.fcn16s, classes: 3, width: 1.0 / 64, seed: 36)
        model.eval()
        let x = Tensor.randn([1, 3, 11, 14], seed: 37)
        let y = withoutGrad { model(x) }
        #expect(!y.requiresGrad && y.node == nil)
        let taps = withoutGrad { model.forwardWithTaps(x) }
        #expect([taps.pool3, taps.pool4, taps.pool5, taps.fc7, taps.scoreFr, taps.scores].allSatisfy { $0.node == nil })
        model.freeze()
        let z = model(x)                        // recording on, but nothing requires a gradient
        #expect(z.node == nil && z.scalars == y.scalars)
        // A trainable model with recording on does build a graph (the check above is not vacuous).
        model.unfreeze()
        for (_, m) in model.namedModules() { if let t = m as? ConvTranspose2d { t.weight.requiresGrad = false } }
        #expect(model(x).requiresGrad)
    }
}

/// 200 SGD steps of a tiny FCN-8s; RSS growth between step 20 and step 200 (see the file
/// comment for the bound) and whether the loss fell.
private func memoryGrowthOfTrainingSteps() throws -> (ok: Bool, message: String) {
    let model = try vggDeterministicFCN(.fcn8s, classes: 3, width: 1.0 / 64, seed: 31)
    model.train()
    let x = Tensor.randn([1, 3, 24, 24], seed: 32) * 50
    var g = FCNRandom(seed: 33)
    let labels = Tensor(shape: [1, 24, 24], scalars: (0..<576).map { _ in Float(g.next() % 3) })
    let lr: Float = 1e-3
    var rss20: Int?, rss200: Int?
    var firstLoss: Float = 0, lastLoss: Float = 0
    for step in 1...200 {
        let loss = softmaxCrossEntropy(logits: model(x), labels: labels)
        loss.backward()
        for p in model.trainableParameters() {
            p.update { w, grad in
                guard let grad else { return }
                for i in 0..<w.count { w[i] -= lr * grad[i] }
            }
        }
        model.zeroGrad()
        if step == 1 { firstLoss = loss.item }
        if step == 200 { lastLoss = loss.item }
        if step == 20 { rss20 = residentBytes() }
        if step == 200 { rss200 = residentBytes() }
    }
    let lossFell = lastLoss.isFinite && lastLoss < firstLoss
    guard let a = rss20, let b = rss200 else {
        return (lossFell, "MemoryTests: /proc/self/statm not available; RSS check skipped; loss \(firstLoss) -> \(lastLoss)\n")
    }
    let growth = b - a
    let msg = "MemoryTests: RSS after step 20 \(a >> 20) MB, after step 200 \(b >> 20) MB, growth \(growth >> 10) KB (bound 20 MB); loss \(firstLoss) -> \(lastLoss)\n"
    return (lossFell && growth < 20 << 20, msg)
}
