// One loaded model serves several threads: 8 concurrent segmentations give the serial
// results bit for bit (also run under the thread sanitizer:
// `swift test --sanitize=thread --filter InferenceConcurrencyTests`).
import Testing
import Dispatch
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNInference
import FCNTestSupport

final class ResultBox: @unchecked Sendable {
    let lock = Lock()
    var results: [Int: SegmentationResult] = [:]
}

@Suite struct InferenceConcurrencyTests {
    @Test func concurrentSegmentationsEqualSerialOnes() {
        let model = VGGFCN(variant: .fcn16s, classes: 4, width: 1.0 / 64, seed: 9, zeroScoreLayers: false)
        let seg = Segmenter(network: ModelSegmentation(model), options: SegmentationOptions(tileSize: 48))
        let images = (0..<8).map { testImage(height: 40 + 3 * $0, width: 56 - 2 * $0, seed: UInt64(20 + $0)) }
        let serial = images.map { seg.segment(rgb: $0, keepScores: true) }
        let box = ResultBox()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let r = seg.segment(rgb: images[i], keepScores: true)
            box.lock.withLock { box.results[i] = r }
        }
        for i in 0..<8 {
            let r = box.results[i]!
            #expect(r.labels == serial[i].labels, "image \(i) labels")
            #expect(r.scores!.scalars == serial[i].scores!.scalars, "image \(i) scores bit for bit")
        }
    }
}
