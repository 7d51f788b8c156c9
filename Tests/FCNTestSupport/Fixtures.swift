// Golden fixtures made by the PyTorch scripts in Tests/Fixtures/ (gen_*.py).
//
// One safetensors file per op family: tensors named "<case>.<name>" (for example
// "3.input", "3.output", "3.grad_input"), and `__metadata__["cases"]` a JSON array with one
// configuration object per case. CI needs no PyTorch: the files are committed.
import Foundation
import FCNCore
import FCNIO

/// A JSON value from a fixture's configuration.
public enum JSONValue: Sendable, CustomStringConvertible {
    case number(Double), string(String), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    public init(_ any: Any) {
        switch any {
        // JSON booleans decode as NSNumber too; they are the ones whose type is "c" (char).
        case let n as NSNumber where String(cString: n.objCType) == "c": self = .bool(n.boolValue)
        case let n as NSNumber: self = .number(n.doubleValue)
        case let s as String: self = .string(s)
        case let a as [Any]: self = .array(a.map(JSONValue.init))
        case let o as [String: Any]: self = .object(o.mapValues(JSONValue.init))
        default: self = .null
        }
    }

    public var description: String {
        switch self {
        case .number(let d): return d == d.rounded() ? String(Int(d)) : String(d)
        case .string(let s): return "\"\(s)\""
        case .bool(let b): return String(b)
        case .array(let a): return "[" + a.map(\.description).joined(separator: ",") + "]"
        case .object(let o): return "{" + o.keys.sorted().map { "\($0):\(o[$0]!)" }.joined(separator: ",") + "}"
        case .null: return "null"
        }
    }
}

/// Directory of the committed fixtures.
public let fixturesDirectory: String = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
}()

/// One configuration of a fixture file, with its tensors.
public struct FixtureCase: Sendable, CustomStringConvertible {
    public let index: Int
    public let config: [String: JSONValue]
    public let tensors: [String: Tensor]

    public var description: String { "case \(index) " + JSONValue.object(config).description }

    public func tensor(_ name: String) -> Tensor {
        guard let t = tensors[name] else { fatalError("fixture \(description) has no tensor '\(name)'") }
        return t
    }
    public func has(_ name: String) -> Bool { tensors[name] != nil }
    public func int(_ key: String) -> Int {
        guard case .number(let d)? = config[key] else { fatalError("fixture \(description): '\(key)' is not a number") }
        return Int(d)
    }
    public func double(_ key: String) -> Double {
        guard case .number(let d)? = config[key] else { fatalError("fixture \(description): '\(key)' is not a number") }
        return d
    }
    public func ints(_ key: String) -> [Int] {
        switch config[key] {
        case .array(let a)?: return a.map { if case .number(let d) = $0 { return Int(d) }; fatalError("'\(key)' is not an int array") }
        case .number(let d)?: return [Int(d)]
        default: fatalError("fixture \(description): '\(key)' is not an int array")
        }
    }
    public func doubles(_ key: String) -> [Double] {
        switch config[key] {
        case .array(let a)?: return a.map { if case .number(let d) = $0 { return d }; fatalError("'\(key)' is not a number array") }
        case .number(let d)?: return [d]
        default: fatalError("fixture \(description): '\(key)' is not a number array")
        }
    }
    public func bool(_ key: String) -> Bool {
        guard case .bool(let b)? = config[key] else { fatalError("fixture \(description): '\(key)' is not a bool") }
        return b
    }
    public func string(_ key: String) -> String {
        guard case .string(let s)? = config[key] else { fatalError("fixture \(description): '\(key)' is not a string") }
        return s
    }
    public func value(_ key: String) -> JSONValue? { config[key] }
}

/// Loads `Fixtures/<name>.safetensors` and splits it into cases.
public func loadFixture(_ name: String) -> [FixtureCase] {
    let path = fixturesDirectory + "/" + name + ".safetensors"
    do {
        let file = try SafeTensorsFile(path: path)
        guard let casesJSON = file.metadata["cases"], let arr = try JSONSerialization.jsonObject(with: Data(casesJSON.utf8)) as? [Any] else {
            fatalError("fixture \(name): no 'cases' metadata")
        }
        var tensors = [[String: Tensor]](repeating: [:], count: arr.count)
        for n in file.names {
            guard let dot = n.firstIndex(of: "."), let i = Int(n[..<dot]), i < arr.count else { continue }
            tensors[i][String(n[n.index(after: dot)...])] = try file.tensor(n)
        }
        return arr.enumerated().map { i, c in
            var cfg: [String: JSONValue] = [:]
            if case .object(let o) = JSONValue(c) { cfg = o }
            return FixtureCase(index: i, config: cfg, tensors: tensors[i])
        }
    } catch {
        fatalError("cannot load fixture \(path): \(error)")
    }
}

/// A path `name` in a fresh temporary folder.
public func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-tests-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

/// Removes the folder `tempPath` made for `path`.
public func removeTempDir(_ path: String) {
    try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
}

