// safetensors reader/writer against files written by safetensors.torch.save_file
// (gen_safetensors.py): the same values stored as F32, F16, BF16 and F64, compared bit for bit
// with torch's own conversion `t.to(dtype).float()`; integer dtypes; the writer's F16/BF16
// rounding against torch's; corrupt headers with exact messages; atomic saves.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

/// Bitwise equality except that any NaN equals any NaN (and -0 differs from +0).
private func sameBits(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
}

/// A safetensors image with the given JSON header and `dataBytes` bytes of data.
private func image(_ header: String, dataBytes: Int, declaredLength: UInt64? = nil) -> Data {
    var d = Data()
    var n = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
    withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
    d.append(contentsOf: Array(header.utf8))
    d.append(contentsOf: [UInt8](repeating: 0, count: dataBytes))
    return d
}

private func expectFormatError(_ data: Data, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(throws: FCNError.invalidFormat("safetensors '<memory>': " + message), sourceLocation: sourceLocation) {
        _ = try SafeTensorsFile(data: data)
    }
}

@Suite struct SafeTensorsTests {
    let dir = fixturesDirectory

    @Test(arguments: ["f32", "f16", "bf16", "f64"])
    func readsTorchFilesOfEveryFloatDType(_ dt: String) throws {
        let file = try SafeTensorsFile(path: "\(dir)/st_dtype_\(dt).safetensors")
        let expected = try SafeTensorsFile(path: "\(dir)/st_dtype_expected.safetensors")
        #expect(file.names.count == 4)
        for name in ["special", "matrix", "ties", "bf_ties"] {
            #expect(file.entries[name]!.dtype.rawValue == dt.uppercased())
            let got = try file.tensor(name), want = try expected.tensor("\(dt).\(name)")
            #expect(sameBits(got, want), "\(dt).\(name): \(got) vs \(want)")
        }
        if dt == "f32" {
            #expect(file.metadata == ["format": "pt", "written_by": "safetensors.torch.save_file", "dtype": "f32"])
        } else {
            #expect(file.metadata.isEmpty)
        }
    }

    @Test func readsIntegerAndBoolDTypes() throws {
        let t = try loadSafeTensors(path: "\(dir)/st_dtype_ints.safetensors")
        #expect(t["i64"]!.scalars == [0, -1, 7, 16_777_216, -123_456])
        #expect(t["i32"]!.shape == [3, 2] && t["i32"]!.scalars == [1, -2, 3, 2_147_483, 0, -9])
        #expect(t["i16"]!.scalars == [-32768, 32767, 5])
        #expect(t["i8"]!.scalars == [-128, 127, 0, -1])
        #expect(t["u8"]!.scalars == [0, 255, 128])
        #expect(t["bool"]!.scalars == [1, 0, 1])
        #expect(t["scalar"]!.shape == [] && t["scalar"]!.item == 42)
    }

    @Test(arguments: [SafeTensorsDType.f16, .bf16])
    func writerRoundsLikeTorch(_ dtype: SafeTensorsDType) throws {
        let expected = try SafeTensorsFile(path: "\(dir)/st_dtype_expected.safetensors")
        var sources: [String: Tensor] = [:]
        for name in ["special", "matrix", "ties", "bf_ties"] { sources[name] = try expected.tensor("source.\(name)") }
        let path = tempPath("half.safetensors")
        defer { removeTempDir(path) }
        try saveSafeTensors(sources, dtype: dtype, to: path)
        let back = try SafeTensorsFile(path: path)
        let key = dtype == .f16 ? "f16" : "bf16"
        for (name, _) in sources {
            #expect(back.entries[name]!.dtype == dtype)
            #expect(sameBits(try back.tensor(name), try expected.tensor("\(key).\(name)")), "\(key).\(name)")
        }
        // The same bytes as torch's file for the same values (the header differs only in key order).
        let torchFile = try SafeTensorsFile(path: "\(dir)/st_dtype_\(key).safetensors")
        #expect(sameBits(try torchFile.tensor("special"), try back.tensor("special")))
    }

    @Test func float32RoundTripIsBitExact() throws {
        let specials: [Float] = [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, -.greatestFiniteMagnitude, Float(bitPattern: 0x0000_0400), 3.14159]
        let tensors = ["a.weight": Tensor(shape: [3, 3], scalars: specials), "b": Tensor.randn([2, 3, 4, 5], seed: 1),
                       "empty": Tensor.zeros([0, 3]), "scalar": Tensor(7)]
        let path = tempPath("rt.safetensors")
        defer { removeTempDir(path) }
        try saveSafeTensors(tensors, metadata: ["k": "v", "cases": "[1]"], to: path)
        let f = try SafeTensorsFile(path: path)
        #expect(f.metadata == ["k": "v", "cases": "[1]"])
        #expect(f.names == ["a.weight", "b", "empty", "scalar"])
        for (k, v) in tensors { #expect(sameBits(try f.tensor(k), v), "\(k)") }
        #expect(try f.tensor("scalar").shape == [])
        // The in-memory image is the same bytes as the file.
        #expect(try safeTensorsData(tensors, metadata: ["k": "v", "cases": "[1]"]) == (try Data(contentsOf: URL(fileURLWithPath: path))))
        // The header is padded to 8 bytes, as the reference writer does.
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(d.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } % 8 == 0)
    }

    @Test func corruptFilesThrowPreciseErrors() {
        expectFormatError(Data([1, 2, 3]), "file is 3 bytes, shorter than the 8-byte header length")
        expectFormatError(image("{}", dataBytes: 0, declaredLength: 50), "header length 50 points past the end of the 10-byte file (truncated?)")
        expectFormatError(image("{}", dataBytes: 0, declaredLength: 1 << 40), "header length 1099511627776 exceeds the 100000000-byte limit (not a safetensors file?)")
        expectFormatError(image("{\"a\": ", dataBytes: 0), "header is not valid JSON")
        expectFormatError(image("[1, 2]", dataBytes: 0), "header is not a JSON object")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[2]}}"#, dataBytes: 8), "entry 'a' lacks dtype, shape or data_offsets")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 6),
                          "tensor 'a' data [0, 8) lies outside the 6-byte data section (truncated?)")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, dataBytes: 4),
                          "tensor 'a' of shape [2] and dtype F32 needs 8 bytes but data_offsets [0, 4] span 4")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, dataBytes: 8),
                          "tensor 'a' has an invalid shape [-2]")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, dataBytes: 8),
                          "tensor 'a' has an invalid shape [2.5]")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, dataBytes: 8),
                          "tensor 'a' has invalid data_offsets [8, 0]")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, dataBytes: 12),
                          "tensor 'b' data [4, 12) overlaps tensor 'a', which ends at 8")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, dataBytes: 12),
                          "gap of 4 bytes before tensor 'b' at offset 8 (after tensor 'a')")
        expectFormatError(image(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 9),
                          "the data section holds 9 bytes but the tensors use 4")
        expectFormatError(image(#"{"__metadata__":{"n":1}}"#, dataBytes: 0), "metadata value for 'n' is not a string")
        #expect(throws: FCNError.unsupported("safetensors '<memory>': tensor 'q' has dtype Q4; supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL")) {
            _ = try SafeTensorsFile(data: image(#"{"q":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#, dataBytes: 1))
        }
    }

    @Test func truncatedRealFileIsRejected() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/st_dtype_f32.safetensors"))
        #expect(throws: FCNError.self) { _ = try SafeTensorsFile(data: full.prefix(full.count - 1)) }
        #expect(throws: FCNError.self) { _ = try SafeTensorsFile(data: full.prefix(20)) }
        let f = try SafeTensorsFile(data: full)
        #expect(throws: FCNError.mismatch("safetensors '<memory>': no tensor named 'nope'")) { _ = try f.tensor("nope") }
        #expect(throws: FCNError.io("cannot open '/nonexistent/x.safetensors': No such file or directory")) {
            _ = try SafeTensorsFile(path: "/nonexistent/x.safetensors")
        }
    }

    @Test func saveIsAtomicAndLeavesNoTemporaryFiles() throws {
        let path = tempPath("model.safetensors")
        defer { removeTempDir(path) }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try saveSafeTensors(["w": Tensor.ones([4])], to: path)
        // A failing save (bad name) leaves the previous file intact.
        #expect(throws: FCNError.mismatch("safetensors writer: a tensor may not be named __metadata__")) {
            try saveSafeTensors(["__metadata__": Tensor.zeros([1])], to: path)
        }
        #expect(try loadSafeTensors(path: path)["w"]!.scalars == [1, 1, 1, 1])
        try saveSafeTensors(["w": Tensor.full([2], 3)], to: path)
        #expect(try loadSafeTensors(path: path)["w"]!.scalars == [3, 3])
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["model.safetensors"])
        #expect(throws: FCNError.self) { try saveSafeTensors(["w": Tensor.ones([1])], to: "/nonexistent-dir/x.safetensors") }
        #expect(throws: FCNError.unsupported("safetensors writer: dtype F64; supported: F32, F16, BF16")) {
            try saveSafeTensors(["w": Tensor.ones([1])], dtype: .f64, to: path)
        }
    }

    @Test func halfConversionsAreExact() {
        // Every finite half converts to float and back unchanged.
        for h in UInt16(0)...UInt16.max where (h & 0x7C00) != 0x7C00 {
            if floatToHalf(halfToFloat(h)) != h { Issue.record("half \(h) does not round-trip"); break }
        }
        #expect(floatToHalf(65520) == 0x7C00 && floatToHalf(65519) == 0x7BFF)
        #expect(floatToHalf(-.nan) & 0x7E00 == 0x7E00 && floatToBFloat16(.nan) == 0x7FC0)
        #expect(floatToBFloat16(1.00390625) == 0x3F80 && floatToBFloat16(1.01171875) == 0x3F82)   // ties to even
    }
}
