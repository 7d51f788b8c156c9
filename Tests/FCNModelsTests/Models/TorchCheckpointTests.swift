// PyTorch checkpoints written by torch.save (gen_readers.py): views of shared storages in
// every dtype (also byte-swapped with byteorder "big", and re-zipped with deflate), the
// wrappers training scripts save, nn.Parameter values, a PyTorch FCN-8s whose scores this
// library must reproduce within 1e-5, and the legacy format; then hand-made damaged files.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

private let torchCases = loadFixture("readers_torch")

private func torchCase(_ file: String) -> FixtureCase {
    torchCases.first { $0.string("file") == file }!
}

private func names(_ c: FixtureCase) -> [String] {
    guard case .array(let a)? = c.value("names") else { return [] }
    return a.map { if case .string(let s) = $0 { return s }; return "" }
}

private func checkpointError(_ pickle: [UInt8], _ storages: [(String, [UInt8])] = [], prefix: String = "archive") -> String? {
    errorText { _ = try TorchCheckpoint.read(data: torchZip(pickle: pickle, storages: storages, prefix: prefix)) }
}

@Suite struct TorchCheckpointTests {
    @Test(arguments: ["views.pth", "views_big_endian.pth", "views_deflated.pth"])
    func readsViewsOfEveryDType(_ file: String) throws {
        let f = try TorchCheckpointFile(path: readersDirectory + "/" + file)
        let expected = torchCase("views.pth")
        #expect(f.names == names(expected) && f.wrapperKey == nil && f.isBigEndian == (file == "views_big_endian.pth"))
        for n in f.names {
            let t = try f.tensor(n), want = expected.tensor("t." + n)
            #expect(t.shape == want.shape && t.scalars.map(\.bitPattern) == want.scalars.map(\.bitPattern), "\(file): \(n)")
        }
        let e = f.entries
        #expect(e["transposed"]!.strides == [1, 8] && e["transposed"]!.storageKey == e["contiguous"]!.storageKey)
        #expect(e["offset_slice"]!.storageOffset == 19 && e["every_other"]!.strides == [8, 2])
        #expect(e["expanded"]!.strides == [0, 1] && e["scalar"]!.shape == [] && e["empty"]!.shape == [0, 3])
        #expect(e["half"]!.dtype == .f16 && e["bfloat16"]!.dtype == .bf16 && e["int64"]!.dtype == .i64 && e["bool"]!.dtype == .bool)
        #expect(try f.tensor("num_batches_tracked").item == 123_456)
    }

    @Test func pytorchFCN8sStateDictGivesPyTorchsScores() throws {
        let c = torchCase("vgg8s_state.pth")
        let file = try TorchCheckpointFile(path: readersDirectory + "/vgg8s_state.pth")
        let net = VGGFCN(variant: .fcn8s, classes: 3, width: 1.0 / 128, seed: 4)
        #expect(file.names == net.namedState().map(\.0) && file.names == names(c))
        try net.loadStateDict(from: file)
        net.eval()
        let y = withoutGrad { net(c.tensor("input")) }
        let err = vggRelError(y, c.tensor("output"))
        print("vgg8s_state.pth: relative error \(err)")
        #expect(err <= 1e-5)
        // The one way in: recognised by content and names; FCN-8s against 8s-at-once needs --model.
        let path = readersDirectory + "/vgg8s_state.pth"
        #expect(try ModelFile.format(of: path) == .pytorch)
        #expect(throws: FCNError.self) { try ModelFile.open(path) }
        let opened = try ModelFile.open(path, overrides: ModelOverrides(architecture: .fcn8s))
        #expect(opened.modelDescription.classes == 3 && opened.modelDescription.width == 1.0 / 128)
        #expect(vggRelError(withoutGrad { opened(c.tensor("input")) }, c.tensor("output")) <= 1e-5)
        // A file that is none of the three formats names them.
        let junk = tempPath("junk.bin")
        defer { removeTempDir(junk) }
        try Data([1, 2, 3, 4, 5, 6, 7]).write(to: URL(fileURLWithPath: junk))
        do { _ = try ModelFile.open(junk); Issue.record("junk accepted") } catch {
            #expect("\(error)".contains("not a safetensors file, a PyTorch checkpoint or a caffemodel"), "\(error)")
        }
    }

    @Test(arguments: [("tvlike_model_wrapper.pth", "model"), ("tvlike_state_dict_wrapper.pth", "state_dict"), ("tvlike_parameters.pth", "")])
    func readsWrappersAndParameters(_ file: String, _ wrapper: String) throws {
        let f = try TorchCheckpointFile(path: readersDirectory + "/" + file)
        #expect(f.wrapperKey == (wrapper.isEmpty ? nil : wrapper))
        let reference = try SafeTensorsFile(path: fixturesDirectory + "/tvlike_state.safetensors")
        #expect(f.names == names(torchCase(file)))
        for n in f.names { #expect(try f.tensor(n).scalars == reference.tensor(n).scalars, "\(n)") }
        let model = TVLike()
        if wrapper.isEmpty {
            // Parameters only (no buffers): loads non-strictly, reporting the buffers as missing.
            let report = try model.loadStateDict(from: f, strict: false)
            #expect(report.unexpected.isEmpty && report.missing.allSatisfy { $0.contains("running_") || $0.contains("num_batches") })
        } else {
            try model.loadStateDict(from: f)
            #expect(model.backbone.bn1.numBatchesTracked!.value.item == 17)
            let io = try SafeTensorsFile(path: fixturesDirectory + "/tvlike_io.safetensors")
            model.eval()
            expectClose(model(try io.tensor("input")), try io.tensor("output"), tolerance: 1e-5, "\(file) eval output")
        }
    }

    @Test func legacyAndForeignFilesAreRefusedClearly() {
        let legacy = errorText { _ = try TorchCheckpoint.read(path: readersDirectory + "/legacy.pth") }
        #expect(legacy?.contains("legacy format of PyTorch < 1.6") == true)
        let script = Data(TestZip.build([TestZip.Item(name: "m/constants.pkl", data: [0x80, 2, 0x2E]), TestZip.Item(name: "m/code/m.py", data: [])]))
        #expect(errorText { _ = try TorchCheckpoint.read(data: script) }?.contains("TorchScript archive") == true)
        #expect(errorText { _ = try TorchCheckpoint.read(data: Data("hello".utf8)) }?.contains("too short for a zip archive") == true)
        #expect(errorText { _ = try TorchCheckpoint.read(path: readersDirectory + "/vgg32s_v2.caffemodel") }?.contains("no end of central directory") == true)
    }

    @Test func damagedCheckpointsThrow() {
        let one = float32Bytes([1, 2, 3, 4])
        let w = { (numel: Int, offset: Int, size: [Int], stride: [Int]) in
            PK.proto2 + PK.dict([("w", PK.tensor(key: "0", numel: numel, offset: offset, size: size, stride: stride))]) + PK.stop
        }
        #expect(checkpointError(w(4, 0, [4], [1]), [("0", one)]) == nil)
        #expect(checkpointError(w(4, 0, [4], [1]))?.contains("storage '0' has no record 'archive/data/0'") == true)
        #expect(checkpointError(w(5, 0, [4], [1]), [("0", one)])?.contains("needs 20 bytes, its record holds 16") == true)
        #expect(checkpointError(w(4, 1, [4], [1]), [("0", one)])?.contains("reaches past its storage '0' of 4 elements") == true)
        #expect(checkpointError(w(4, 0, [2, 2], [3, 1]), [("0", one)])?.contains("reaches past") == true)
        #expect(checkpointError(w(4, 0, [1 << 20, 1 << 20], [0, 0]), [("0", one)])?.contains("expanded view") == true)
        #expect(checkpointError(w(4, 0, [Int(Int32.max), Int(Int32.max), 4], [1, 1, 1]), [("0", one)])?.contains("reaches past") == true)
        #expect(checkpointError(w(4, 0, [0, 9], [99, 99]), [("0", one)]) == nil)   // empty: no element to check
        // Not a state dict, or one with other values.
        let list = PK.proto2 + [0x5D] + PK.stop
        #expect(checkpointError(list)?.contains("the pickled object is a list, not a dict of tensors") == true)
        let mixed = PK.proto2 + PK.dict([("epoch", PK.int(3)), ("opt", PK.emptyDict)]) + PK.stop
        #expect(checkpointError(mixed)?.contains("its keys: 'epoch' (int), 'opt' (dict)") == true)
        let wrapped = PK.proto2 + PK.dict([("model", PK.dict([("a", PK.int(1))]))]) + PK.stop
        #expect(checkpointError(wrapped)?.contains("has none under 'state_dict', 'model_state_dict', 'model'") == true)
        // An entry outside the archive folder, an unknown byte order, a CRC error in a storage.
        var items = [TestZip.Item(name: "a/data.pkl", data: w(4, 0, [4], [1])), TestZip.Item(name: "a/data/0", data: one),
                     TestZip.Item(name: "b/extra", data: [])]
        #expect(errorText { _ = try TorchCheckpoint.read(data: Data(TestZip.build(items))) }?.contains("entry 'b/extra' lies outside the archive folder 'a/'") == true)
        items[2] = TestZip.Item(name: "a/byteorder", data: Array("middle".utf8))
        #expect(errorText { _ = try TorchCheckpoint.read(data: Data(TestZip.build(items))) }?.contains("byteorder record says 'middle'") == true)
        var corrupt = [UInt8](torchZip(pickle: w(4, 0, [4], [1]), storages: [("0", one)]))
        let at = corrupt.indices.first { corrupt[$0...].starts(with: one) }!
        corrupt[at] ^= 1
        #expect(errorText { _ = try TorchCheckpoint.read(data: Data(corrupt)) }?.contains("entry 'archive/data/0' is corrupt: CRC-32") == true)
    }
}
