// The restricted unpickler: what a state dict needs is read, everything else refused. The
// refusal tests show the payloads are live: Python's own pickle.loads runs them (when a
// python3 is on PATH) and creates the marker file, while the unpickler here names the
// global and creates nothing.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
import FCNTestSupport

private func unpickle(_ bytes: [UInt8]) throws -> (PickleValue, RestrictedUnpickler) {
    var u = RestrictedUnpickler()
    let v = try bytes.withUnsafeBytes { try u.load($0) }
    return (v, u)
}

private func unpickleError(_ bytes: [UInt8]) -> String? { errorText { _ = try unpickle(bytes) } }

/// Runs `pickle.loads` on `bytes` with the system's python3; false when there is none.
private func pythonLoads(_ bytes: [UInt8]) -> Bool {
    let path = tempPath("payload.pkl")
    defer { removeTempDir(path) }
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return false }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())", path]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}

@Suite struct PickleTests {
    @Test func readsATorchStyleStateDict() throws {
        let pickle = PK.proto2 + PK.global("collections", "OrderedDict") + PK.emptyTuple + PK.reduce + PK.mark
            + PK.string("w") + PK.tensor(key: "0", numel: 6, size: [2, 3], stride: [3, 1])
            + PK.string("b") + PK.tensor(key: "1", storage: "HalfStorage", numel: 4, offset: 1, size: [3], stride: [1])
            + PK.string("t") + PK.tensor(key: "0", numel: 6, size: [3, 2], stride: [1, 3])
            + PK.setitems + PK.stop
        let (root, u) = try unpickle(pickle)
        guard case .dict(let d) = root else { Issue.record("root is \(root.typeName)"); return }
        #expect(u.dicts[d].keys == [.string("w"), .string("b"), .string("t")])
        #expect(u.storages.map(\.key) == ["0", "1"] && u.storages[1].dtype == .f16 && u.storages[0].location == "cpu")
        #expect(u.tensors.map(\.shape) == [[2, 3], [3], [3, 2]] && u.tensors[2].strides == [1, 3] && u.tensors[1].offset == 1)
    }

    @Test func readsTheOpcodesOfProtocolsTwoToFive() throws {
        var p: [UInt8] = [0x80, 4, 0x95] + PB.le(UInt64(0))                      // PROTO 4, FRAME
        p += [0x5D, 0x94]                                                         // EMPTY_LIST, MEMOIZE (0)
        p += PK.mark + [0x4A] + PB.le(Int32(-5)) + [0x4B, 200, 0x4D] + PB.le(UInt16(60000))   // BININT, BININT1, BININT2
        p += [0x8A, 2, 0x00, 0x80]                                                // LONG1 -32768
        p += [0x47] + Array(PB.le(2.5.bitPattern).reversed())                     // BINFLOAT (big-endian)
        p += [0x8C, 2] + Array("hi".utf8) + [0x8D] + PB.le(UInt64(1)) + [0x7A]    // SHORT_BINUNICODE, BINUNICODE8
        p += [0x55, 2, 0xE9, 0x41]                                                // SHORT_BINSTRING (Latin-1)
        p += [0x4E, 0x88, 0x89, 0x29, 0x32, 0x30]                                 // NONE NEWTRUE NEWFALSE EMPTY_TUPLE DUP POP
        p += [0x65]                                                               // APPENDS
        p += [0x68, 0] + [0x72] + PB.le(UInt32(70000)) + [0x6A] + PB.le(UInt32(70000))   // BINGET, LONG_BINPUT, LONG_BINGET
        p += [0x30, 0x30] + PK.mark + [0x4B, 1] + [0x31]                          // POP, POP, MARK ... POP_MARK
        p += [0x8C, 11] + Array("collections".utf8) + [0x8C, 11] + Array("OrderedDict".utf8) + [0x93] + PK.emptyTuple + PK.reduce
        p += [0x30] + PK.stop                                                     // STACK_GLOBAL + REDUCE, POP, STOP
        let (root, u) = try unpickle(p)
        guard case .list(let l) = root else { Issue.record("root is \(root.typeName)"); return }
        let items = u.lists[l]
        #expect(items.count == 12)
        guard items.count == 12 else { return }
        if case .int(let a) = items[0], case .int(let b) = items[1], case .int(let c) = items[2], case .int(let d) = items[3] {
            #expect([a, b, c, d] as [Int] == [-5, 200, 60000, -32768])
        } else { Issue.record("ints: \(items.prefix(4).map(\.typeName))") }
        if case .float(let f) = items[4], case .string(let s) = items[5], case .string(let z) = items[6], case .string(let l1) = items[7] {
            #expect(f == 2.5 && s == "hi" && z == "z" && l1 == "éA")
        } else { Issue.record("float/strings: \(items[4...7].map(\.typeName))") }
        #expect(items[8...].map(\.typeName) == ["None", "bool", "bool", "tuple"])
        #expect(u.dicts.count == 1)   // the OrderedDict built by STACK_GLOBAL + REDUCE
        #expect(unpickleError([0x80, 2, 0x8A, 9] + [UInt8](repeating: 1, count: 9) + PK.stop)?.contains("integer of 9 bytes is too large") == true)
    }

    @Test func deepAndCyclicInputIsHarmless() throws {
        // 300,000 nested tuples: no recursion when built, walked or freed.
        let deep = PK.proto2 + PK.emptyTuple + [UInt8](repeating: 0x85, count: 300_000) + PK.stop
        let (root, u) = try unpickle(deep)
        #expect(u.tuples.count == 300_001)
        if case .tuple(let t) = root { #expect(u.tuples[t].count == 1) }
        // A list that contains itself.
        let cycle = PK.proto2 + [0x5D, 0x71, 0, 0x68, 0, 0x61] + PK.stop
        let (c, cu) = try unpickle(cycle)
        if case .list(let l) = c, case .list(let inner) = cu.lists[l][0] { #expect(inner == l) } else { Issue.record("no cycle") }
    }

    @Test func malformedPicklesThrow() {
        #expect(unpickleError([])?.contains("truncated: no STOP") == true)
        #expect(unpickleError(PK.proto2 + PK.stop)?.contains("STOP with 0 values") == true)
        #expect(unpickleError(PK.proto2 + [0x30])?.contains("stack underflow") == true)
        #expect(unpickleError(PK.proto2 + [0x74])?.contains("no MARK") == true)
        #expect(unpickleError(PK.proto2 + [0x68, 3])?.contains("memo entry 3 is not defined") == true)
        #expect(unpickleError(PK.proto2 + [0x58] + PB.le(UInt32(1000)) + [0x41])?.contains("runs past the end") == true)
        #expect(unpickleError([0x80, 6])?.contains("protocol 6 is newer than 5") == true)
        #expect(unpickleError(PK.proto2 + [0x4B, 1, 0x4B, 2, 0x61])?.contains("APPEND(S) on a int") == true)
        #expect(unpickleError(PK.proto2 + [0x7D, 0x5D, 0x4B, 1, 0x73])?.contains("a list cannot be a dict key") == true)
        #expect(unpickleError(PK.proto2 + [0x4B, 5] + PK.mark + [0x30] + PK.stop)?.contains("popped across a MARK") == true)
        #expect(unpickleError(PK.proto2 + [0x5D] + PK.emptyDict + [0x62] + PK.stop)?.contains("BUILD on a list") == true)
        #expect(unpickleError(PK.proto2 + PK.global("torch", "FloatStorage") + PK.emptyTuple + PK.reduce + PK.stop)?
            .contains("storage classes may only appear in persistent ids") == true)
        #expect(unpickleError(PK.proto2 + PK.tuple([PK.string("module"), PK.int(1)]) + PK.binpersid + PK.stop)?
            .contains("persistent id is not torch's") == true)
        #expect(unpickleError(PK.proto2 + PK.global("collections", "OrderedDict") + PK.tuple([PK.int(1)]) + PK.reduce + PK.stop)?
            .contains("OrderedDict is called with 1 arguments") == true)
        // Every prefix of a valid pickle throws (none is mistaken for a whole one).
        let valid = PK.proto2 + PK.dict([("w", PK.tensor(key: "0", numel: 4, size: [4], stride: [1]))]) + PK.stop
        for n in 0..<valid.count { #expect(unpickleError(Array(valid.prefix(n))) != nil, "prefix \(n)") }
    }

    @Test func globalsOutsideTheListAreRefusedAndNothingRuns() throws {
        let dir = tempPath("marker")
        defer { removeTempDir(dir) }
        let folder = URL(fileURLWithPath: dir).deletingLastPathComponent().path
        let payloads: [(name: String, global: [UInt8], argument: (String) -> String)] = [
            ("os.system", PK.global("os", "system"), { "touch '\($0)'" }),
            ("builtins.eval", PK.global("builtins", "eval"), { "open('\($0)', 'w').close()" }),
            ("posix.system", [0x8C, 5] + Array("posix".utf8) + [0x8C, 6] + Array("system".utf8) + [0x93], { "touch '\($0)'" }),
        ]
        for p in payloads {
            let marker = folder + "/ran-\(p.name)"
            let pickle = PK.proto2 + p.global + PK.string(p.argument(marker)) + [0x85] + PK.reduce + PK.stop
            // Ours: refused with the global's name, nothing created, through the checkpoint reader too.
            let e = unpickleError(pickle)
            #expect(e?.contains("global '\(p.name)' is not allowed") == true, "\(e ?? "no error")")
            let wrapped = PK.proto2 + PK.dict([("w", PK.tensor(key: "0", numel: 1, size: [1], stride: [1])), ("x", Array(pickle.dropFirst(2).dropLast()))]) + PK.stop
            let ce = errorText { _ = try TorchCheckpointFile(data: torchZip(pickle: wrapped, storages: [("0", float32Bytes([1]))])) }
            #expect(ce?.contains("global '\(p.name)' is not allowed") == true, "\(ce ?? "no error")")
            #expect(!FileManager.default.fileExists(atPath: marker), "\(p.name) ran")
            // Python's unpickler runs the same bytes: the payload is live.
            if pythonLoads(pickle) {
                #expect(FileManager.default.fileExists(atPath: marker), "python did not run \(p.name)")
                try? FileManager.default.removeItem(atPath: marker)
            }
        }
        // Other constructions that would run code are refused by opcode.
        #expect(unpickleError(PK.proto2 + [0x69] + Array("os\nsystem\n".utf8) + PK.stop)?.contains("opcode 0x69 ('i')") == true)   // INST
        #expect(unpickleError(PK.proto2 + PK.global("torch", "Size") + PK.emptyTuple + [0x81] + PK.stop)?.contains("opcode 0x81") == true)   // NEWOBJ
        #expect(unpickleError(PK.proto2 + [0x50] + Array("0\n".utf8) + PK.stop)?.contains("opcode 0x50 ('P')") == true)   // PERSID
    }
}
