// Fuzz tests of the weights readers: seeded random corruptions (CodecFuzzTests.mutate:
// byte flips, special bytes, inserted and deleted runs, truncation) of small valid files.
// 10,000 inputs each for the caffemodel reader (plus the VGGFCN mapping on a mutated
// FCN-8s), the zip reader, and the PyTorch checkpoint reader, where half the inputs mutate
// the archive and half mutate the pickle and re-wrap it in a valid zip, so the corruption
// reaches the unpickler, the state-dict checks and the tensor conversion instead of stopping
// at the CRC. In-process: a trap kills the run; every call must return consistent values or
// throw an `FCNError`. About 3 s in a debug build.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

private func expectFCNError(_ what: String, _ body: () throws -> Void) -> Bool {
    do { try body(); return true } catch is FCNError { return false } catch {
        Issue.record("\(what): non-FCNError \(error)")
        return false
    }
}

@Suite struct ReaderFuzzTests {
    static func smallCaffeModels() -> [[UInt8]] {
        let conv = CaffeProto.layer("conv", "Convolution", blobs: [CaffeProto.blob([2, 1, 3, 3]), CaffeProto.blob([2], legacy: true)],
                                    conv: CaffeProto.conv(output: 2, kernel: 3, pad: 1))
        let unpacked = PB.bytes(7, PB.int(1, 3)) + [1, 2, 3].flatMap { PB.float(5, Float($0)) }
        let doubles = PB.bytes(7, PB.bytes(1, PB.varint(2))) + PB.bytes(8, [0.5, -1.0].flatMap { PB.le($0.bitPattern) })
        let group = PB.tag(50, 3) + PB.int(1, 1) + PB.tag(50, 4)
        let other = CaffeProto.layer("p", "Power", blobs: [unpacked, doubles], power: PB.float(2, 0.5)) + group
        let v1 = PB.bytes(2, PB.string(4, "c") + PB.int(5, 4) + PB.bytes(6, CaffeProto.blob([4], legacy: true)) + PB.bytes(10, CaffeProto.conv(output: 4, kernel: 1)))
        return [[UInt8](CaffeProto.net([conv, CaffeProto.layer("relu", "ReLU"), other])), v1 + v1]
    }

    @Test func caffeModels() throws {
        let seeds = Self.smallCaffeModels()
        let vgg = [UInt8](CaffeProto.net(CaffeProto.vggLayers(.fcn8sAtOnce, classes: 2, width: 1.0 / 128)))
        var rng = TestRNG(seed: 85)
        var read = 0, mapped = 0
        for i in 0..<10_000 {
            let useVGG = i % 10 == 0
            let x = CodecFuzzTests.mutate(useVGG ? vgg : seeds[i % seeds.count], &rng)
            let ok = expectFCNError("caffemodel #\(i)") {
                let m = try CaffeModel.read(data: Data(x))
                for l in m.layers {
                    for (b, s) in zip(l.blobs, l.info.blobShapes) where b.shape != s.dims || b.count != s.count {
                        Issue.record("caffemodel #\(i): blob \(b.shape) vs shape \(s)")
                    }
                }
                if useVGG, expectFCNError("vgg #\(i)", { _ = try VGGFCN.caffeStateDict(from: m) }) { mapped += 1 }
            }
            if ok { read += 1 }
        }
        print("fuzz caffemodel: 10000 variants, \(read) read without error, \(mapped) of the FCN-8s ones mapped")
        #expect(read > 0 && read < 10_000)
    }

    @Test func zipArchives() {
        let text = Array(String(repeating: "zip fuzz 0123456789 ", count: 12).utf8)
        let seeds = [TestZip.build([TestZip.Item(name: "a/x", data: text), TestZip.Item(name: "a/y", data: text, deflate: true)]),
                     TestZip.build([TestZip.Item(name: "a/x", data: Array(text.prefix(20)), deflate: true)], zip64: true, align: false),
                     TestZip.build([TestZip.Item(name: "z", data: [])], comment: "c")]
        var rng = TestRNG(seed: 86)
        var ok = 0
        for i in 0..<10_000 {
            let x = CodecFuzzTests.mutate(seeds[i % seeds.count], &rng)
            if expectFCNError("zip #\(i)", {
                let z = try ZipArchive(region: ByteRegion.copying(Data(x)), label: "fuzz")
                for e in z.entries {
                    let n = try z.withContents(e, limit: 1 << 16) { $0.count }
                    if n != e.uncompressedSize { Issue.record("zip #\(i): \(n) bytes for \(e.uncompressedSize)") }
                }
            }) { ok += 1 }
        }
        print("fuzz zip: 10000 variants, \(ok) read without error")
        #expect(ok > 0 && ok < 10_000)
    }

    @Test func torchCheckpoints() throws {
        let pickle = PK.proto2 + PK.global("collections", "OrderedDict") + PK.emptyTuple + PK.reduce + PK.mark
            + PK.string("w") + PK.tensor(key: "0", numel: 12, size: [3, 4], stride: [4, 1])
            + PK.string("t") + PK.tensor(key: "0", numel: 12, offset: 1, size: [2, 3], stride: [1, 4])
            + PK.string("h") + PK.tensor(key: "1", storage: "HalfStorage", numel: 4, size: [2, 2], stride: [1, 2])
            + PK.string("n") + PK.tensor(key: "2", storage: "LongStorage", numel: 1, size: [], stride: [])
            + PK.setitems + PK.emptyDict + PK.string("_metadata") + PK.emptyDict + [0x73, 0x62] + PK.stop
        let storages: [(String, [UInt8])] = [("0", float32Bytes((0..<12).map(Float.init))), ("1", [0, 60, 0, 64, 0, 188, 0, 0]),
                                             ("2", PB.le(Int64(17)))]
        let valid = [UInt8](torchZip(pickle: pickle, storages: storages))
        let reference = try TorchCheckpoint.read(data: Data(valid))
        #expect(reference.names == ["w", "t", "h", "n"] && reference.tensors["t"]!.scalars == [1, 5, 9, 2, 6, 10])
        let views = try [UInt8](Data(contentsOf: URL(fileURLWithPath: readersDirectory + "/views.pth")))
        var rng = TestRNG(seed: 87)
        var ok = 0
        for i in 0..<10_000 {
            let x: [UInt8]
            switch i % 4 {
            case 0: x = CodecFuzzTests.mutate(valid, &rng)
            case 1: x = CodecFuzzTests.mutate(views, &rng)
            default: x = [UInt8](torchZip(pickle: CodecFuzzTests.mutate(pickle, &rng), storages: storages))
            }
            if expectFCNError("checkpoint #\(i)", {
                let f = try TorchCheckpointFile(data: Data(x))
                for n in f.names {
                    let t = try f.tensor(n)
                    if t.shape != f.entries[n]!.shape { Issue.record("checkpoint #\(i): \(n) has shape \(t.shape)") }
                }
            }) { ok += 1 }
        }
        print("fuzz checkpoint: 10000 variants, \(ok) read without error")
        #expect(ok > 0 && ok < 10_000)
    }
}
