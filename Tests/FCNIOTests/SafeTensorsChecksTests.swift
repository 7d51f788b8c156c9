// Two checks of weights files: a safetensors header that names a tensor twice is an error
// (JSONSerialization alone would keep the last entry), and loading non-finite weights into
// a model throws naming the tensor, leaving the model unchanged.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

private func header(_ json: String, dataBytes: Int) -> Data {
    var d = Data()
    var n = UInt64(json.utf8.count).littleEndian
    withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
    d.append(contentsOf: Array(json.utf8))
    d.append(contentsOf: [UInt8](repeating: 0, count: dataBytes))
    return d
}

private func duplicate(_ json: String) -> JSONDuplicateKey? {
    Array(json.utf8).withUnsafeBytes { jsonFirstDuplicateKey($0) }
}

@Suite struct SafeTensorsChecksTests {
    @Test func duplicateKeyScan() {
        #expect(duplicate(#"{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]}"#) == nil)
        #expect(duplicate(#"{"a": 1, "b": 2, "a": 3}"#) == JSONDuplicateKey(path: [], key: "a"))
        #expect(duplicate(#"{"w": {"dtype": "F32", "shape": [1], "dtype": "F16"}}"#) == JSONDuplicateKey(path: ["w"], key: "dtype"))
        #expect(duplicate(#"{"x": [{"k": 1, "k": 2}]}"#) == JSONDuplicateKey(path: ["x"], key: "k"))
        // Keys compare unescaped: "a" and "\u0061", "é" and "\u00e9", a surrogate pair and its character.
        #expect(duplicate(#"{"a": 1, "\u0061": 2}"#)?.key == "a")
        #expect(duplicate(#"{"é": 1, "\u00e9": 2}"#)?.key == "é")
        #expect(duplicate(#"{"😀": 1, "\ud83d\ude00": 2}"#)?.key == "😀")
        #expect(duplicate(#"{"a\"b": 1, "a\u0022b": 2, "x": "{\"a\"b\": 3}"}"#)?.key == "a\"b")
        #expect(duplicate(#"{"s": "a, \"b\": {", "b": 1}"#) == nil)     // braces and quotes inside strings
        // Anything at all is scanned without trapping.
        var rng = TestRNG(seed: 3)
        for _ in 0..<2000 {
            let bytes = (0..<rng.int(64)).map { _ in [0x7B, 0x7D, 0x5B, 0x5D, 0x22, 0x5C, 0x3A, 0x2C, 0x61, 0x75, 0x30][rng.int(11)] as UInt8 }
            _ = bytes.withUnsafeBytes { jsonFirstDuplicateKey($0) }
        }
    }

    @Test func headerNamingATensorTwiceIsRejected() {
        let twice = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        #expect(throws: FCNError.invalidFormat("safetensors '<memory>': header names 'w' twice")) {
            _ = try SafeTensorsFile(data: header(twice, dataBytes: 4))
        }
        let escaped = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(throws: FCNError.invalidFormat("safetensors '<memory>': header names 'w' twice")) {
            _ = try SafeTensorsFile(data: header(escaped, dataBytes: 8))
        }
        let nested = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"shape":[2]}}"#
        #expect(throws: FCNError.invalidFormat("safetensors '<memory>': header entry 'w' has the key 'shape' twice")) {
            _ = try SafeTensorsFile(data: header(nested, dataBytes: 4))
        }
        let meta = #"{"__metadata__":{"a":"1","a":"2"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        #expect(throws: FCNError.invalidFormat("safetensors '<memory>': header entry '__metadata__' has the key 'a' twice")) {
            _ = try SafeTensorsFile(data: header(meta, dataBytes: 4))
        }
        let fine = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(throws: Never.self) { _ = try SafeTensorsFile(data: header(fine, dataBytes: 8)) }
    }

    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteWeightsNameTheTensor(_ bad: Float) throws {
        let model = Sequential(Conv2d(inChannels: 2, outChannels: 3, kernelSize: 1, seed: 1), BatchNorm2d(3))
        var state = model.stateDict()
        var bias = state["0.bias"]!.scalars
        bias[2] = bad
        state["0.bias"] = Tensor(shape: [3], scalars: bias)
        let path = tempPath("nonfinite.safetensors")
        defer { removeTempDir(path) }
        try saveSafeTensors(state, to: path)
        let before = model.namedState().map { $0.1.scalars }
        let message = "invalid format: loadStateDict: tensor '0.bias' holds \(bad) at element 2; weights must be finite"
        #expect(errorText { try model.load(from: path) } == message)
        #expect(errorText { try model.loadStateDict(state) } == message)
        #expect(model.namedState().map { $0.1.scalars } == before)        // unchanged
        // A NaN in a running statistic is named too.
        state["0.bias"] = Tensor(shape: [3], repeating: 0)
        state["1.running_var"] = Tensor(shape: [3], scalars: [1, bad, 1])
        #expect(errorText { try model.loadStateDict(state) }?.contains("tensor '1.running_var' holds \(bad) at element 1") == true)
    }
}
