// Peak memory of loading a large weights file (opt-in: needs a 0.5 GB file, written by
//   python Tests/Fixtures/gen_readers.py --large fcn8s_large.caffemodel   (or .pth)
// and run with FCN_LARGE_WEIGHTS=$PWD/fcn8s_large.caffemodel swift test --filter ReaderMemoryTests).
// The peak resident set (VmHWM, reset through /proc/self/clear_refs) above the resident set
// before loading must stay within 1.25x the file's size: the file is memory-mapped and each
// blob is decoded straight into its tensor, so the file's bytes and the tensors are never
// held together. Linux only (procfs).
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

private func procStatus(_ key: String) -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = s.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return -1 }
    return Int(line.split(separator: " ").dropFirst().first { Int($0) != nil }.flatMap { Int($0) } ?? -1) * 1024
}

/// Bytes of peak resident memory that `body` adds to the resident memory before it.
private func peakIncrease(_ body: () throws -> Void) rethrows -> Int {
    Compute.releaseCachedBuffers()
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)   // resets VmHWM
    let before = procStatus("VmRSS")
    try body()
    return procStatus("VmHWM") - before
}

@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["FCN_LARGE_WEIGHTS"] != nil))
struct ReaderMemoryTests {
    let path = ProcessInfo.processInfo.environment["FCN_LARGE_WEIGHTS"] ?? ""

    @Test func largeFileLoadsWithoutTwoCopies() throws {
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let mib = { (b: Int) in String(format: "%.0f MiB", Double(b) / 1_048_576) }
        var rows: [String] = []
        if path.hasSuffix(".caffemodel") {
            var start = Date()
            let direct = try peakIncrease {
                let net = try VGGFCN.fromCaffeModel(path: path)
                #expect(net.variant == .fcn8s && net.classes == 21 && net.width == 1)
            }
            rows.append("VGGFCN.fromCaffeModel: peak +\(mib(direct)) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
            #expect(Double(direct) < 1.25 * Double(size))
            start = Date()
            let contents = try peakIncrease { _ = try CaffeModel.read(path: path) }
            rows.append("CaffeModel.read: peak +\(mib(contents)) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
            #expect(Double(contents) < 1.25 * Double(size))
        } else {
            var start = Date()
            let all = try peakIncrease { _ = try TorchCheckpoint.read(path: path) }
            rows.append("TorchCheckpoint.read: peak +\(mib(all)) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
            #expect(Double(all) < 1.25 * Double(size))
            start = Date()
            let model = try peakIncrease {
                let net = VGGFCN(variant: .fcn8s, classes: 21, seed: 1)
                try net.loadStateDict(from: TorchCheckpointFile(path: path))
            }
            rows.append("VGGFCN + loadStateDict(from: TorchCheckpointFile): peak +\(mib(model)) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s (the network's own weights, then the loaded ones, as loadStateDict converts all before assigning)")
        }
        print("reader memory, file \(mib(size)):\n  " + rows.joined(separator: "\n  "))
    }
}
