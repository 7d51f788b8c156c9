// A restricted unpickler for PyTorch state dicts: it builds plain values and never calls
// anything, like `torch.load(weights_only=True)`.
//
// Opcodes accepted (Python's pickle protocol, as torch.save emits at its default protocol
// 2, plus the framing and string opcodes of protocols 3-5):
//   PROTO FRAME STOP MARK POP POP_MARK DUP
//   NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1 LONG4 (up to 64 bits) BINFLOAT
//   BINUNICODE SHORT_BINUNICODE BINUNICODE8 BINSTRING SHORT_BINSTRING (Latin-1)
//   EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST APPEND APPENDS EMPTY_DICT SETITEM SETITEMS
//   BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET
//   GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID
// Any other opcode (INST, OBJ, NEWOBJ, EXT*, PERSID, bytes, sets, ...) is refused.
//
// Globals: a GLOBAL is resolved against a fixed list when it is read, and any other name
// is refused at that point with an error naming it, before anything else happens:
//   collections.OrderedDict                called with () -> an empty ordered dict
//   torch._utils._rebuild_tensor_v2        (storage, offset, size, stride, requires_grad,
//                                           backward_hooks[, metadata]) -> a tensor view
//   torch._utils._rebuild_parameter        (tensor, requires_grad, backward_hooks) -> tensor
//   torch.Size                             (tuple,) -> the tuple
//   torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage
//                                          only inside a persistent id, naming the dtype
// BUILD is accepted on dicts only (an OrderedDict's `_metadata` attribute) and its state
// is dropped. A persistent id (BINPERSID) must be torch's storage reference
// ('storage', <storage class>, key, location, numel) and becomes a storage record.
//
// Values: composite values (tuples, lists, dicts, storages, tensors) live in arrays of the
// unpickler and are referred to by index, so no value nests inside another: deep or cyclic
// input can neither overflow the stack when values are freed or walked nor leak. Every
// read is bounds checked; sizes come from the input, so memory is linear in its length.

import FCNCore
/// A value built by `RestrictedUnpickler`. Composites are indices into its arrays.
enum PickleValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple(Int), list(Int), dict(Int)
    case global(PickleGlobal)
    case storage(Int)
    case tensor(Int)

    /// Python's name of the value's type, for messages.
    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let g): return g.qualifiedName
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// The globals a checkpoint may name.
enum PickleGlobal: Sendable, Equatable {
    case orderedDict, rebuildTensorV2, rebuildParameter, torchSize
    case storageType(SafeTensorsDType, String)

    static let storageTypes: [String: SafeTensorsDType] = [
        "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
    ]

    /// The allowed global `module.name`, or nil.
    static func resolve(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch", "Size"): return .torchSize
        case ("torch", _): return storageTypes[name].map { .storageType($0, name) }
        default: return nil
        }
    }

    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .torchSize: return "torch.Size"
        case .storageType(_, let n): return "torch." + n
        }
    }

    static let allowedList = "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, torch.Size and torch.*Storage"
}

/// A dict key (the hashable values a state dict uses).
enum PickleKey: Hashable, Sendable {
    case string(String), int(Int), none
}

/// An insertion-ordered dict (Python dicts keep insertion order; a key set again keeps
/// its first position).
struct PickleDict: Sendable {
    var keys: [PickleKey] = []
    var values: [PickleValue] = []
    var position: [PickleKey: Int] = [:]

    mutating func set(_ key: PickleKey, _ value: PickleValue) {
        if let i = position[key] { values[i] = value; return }
        position[key] = keys.count
        keys.append(key); values.append(value)
    }

    subscript(_ key: PickleKey) -> PickleValue? { position[key].map { values[$0] } }
}

/// torch's persistent storage reference.
struct PickleStorage: Sendable {
    let dtype: SafeTensorsDType
    let key: String
    let location: String
    let numel: Int
}

/// A tensor view rebuilt by `_rebuild_tensor_v2` (offset and strides in elements).
struct PickleTensor: Sendable {
    let storage: Int
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// Unpickles one pickle stream under the rules above.
struct RestrictedUnpickler {
    private(set) var tuples: [[PickleValue]] = []
    private(set) var lists: [[PickleValue]] = []
    private(set) var dicts: [PickleDict] = []
    private(set) var storages: [PickleStorage] = []
    private(set) var tensors: [PickleTensor] = []
    private var storageIndex: [String: Int] = [:]

    /// Unpickles `bytes` and returns the value STOP finds on the stack.
    mutating func load(_ bytes: UnsafeRawBufferPointer) throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        var pos = 0
        let n = bytes.count
        var opOffset = 0

        func fail(_ m: String) -> FCNError { .invalidFormat("pickle: \(m) at byte \(opOffset)") }
        func take(_ k: Int) throws -> UnsafeRawBufferPointer {
            guard k >= 0, k <= n - pos else { throw fail("truncated (needs \(k) more bytes, \(n - pos) left)") }
            defer { pos += k }
            return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + k)])
        }
        func uint(_ k: Int) throws -> UInt64 {
            let b = try take(k)
            var v: UInt64 = 0
            for i in stride(from: k - 1, through: 0, by: -1) { v = v << 8 | UInt64(b[i]) }
            return v
        }
        func length(_ k: Int) throws -> Int {
            let v = try uint(k)
            guard v <= UInt64(n - pos) else { throw fail("length \(v) runs past the end of the \(n)-byte pickle") }
            return Int(v)
        }
        func pop() throws -> PickleValue {
            guard let v = stack.popLast() else { throw fail("stack underflow") }
            if let m = marks.last, stack.count < m { throw fail("value popped across a MARK") }
            return v
        }
        func popMark() throws -> [PickleValue] {
            guard let m = marks.popLast() else { throw fail("no MARK") }
            guard m <= stack.count else { throw fail("MARK above the stack") }
            defer { stack.removeSubrange(m...) }
            return Array(stack[m...])
        }
        func top() throws -> PickleValue {
            guard let v = stack.last else { throw fail("stack underflow") }
            return v
        }
        func line() throws -> String {
            guard let nl = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("unterminated GLOBAL name") }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[pos..<nl]), as: UTF8.self)
            pos = nl + 1
            return s
        }
        func text(_ k: Int) throws -> String { String(decoding: try take(k), as: UTF8.self) }
        func latin1(_ k: Int) throws -> String { String(try take(k).map { Character(Unicode.Scalar($0)) }) }
        func integer(_ v: PickleValue, _ what: String) throws -> Int {
            switch v {
            case .int(let i): return i
            case .bool(let b): return b ? 1 : 0
            default: throw fail("\(what) is a \(v.typeName), expected an int")
            }
        }
        func key(_ v: PickleValue) throws -> PickleKey {
            switch v {
            case .string(let s): return .string(s)
            case .int(let i): return .int(i)
            case .bool(let b): return .int(b ? 1 : 0)
            case .none: return .none
            default: throw fail("a \(v.typeName) cannot be a dict key here")
            }
        }
        func setItems(_ items: [PickleValue]) throws {
            guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values") }
            guard case .dict(let d) = try top() else { throw fail("SETITEM(S) on a \(try top().typeName)") }
            for i in stride(from: 0, to: items.count, by: 2) { dicts[d].set(try key(items[i]), items[i + 1]) }
        }
        func append(_ items: [PickleValue]) throws {
            guard case .list(let l) = try top() else { throw fail("APPEND(S) on a \(try top().typeName)") }
            lists[l].append(contentsOf: items)
        }
        func global(_ module: String, _ name: String) throws -> PickleValue {
            guard let g = PickleGlobal.resolve(module: module, name: name) else {
                throw FCNError.unsupported("pickle: global '\(module).\(name)' is not allowed (at byte \(opOffset)); a weights file may only name \(PickleGlobal.allowedList), and nothing is ever called")
            }
            return .global(g)
        }
        func tuple(_ items: [PickleValue]) -> PickleValue {
            tuples.append(items)
            return .tuple(tuples.count - 1)
        }

        while true {
            opOffset = pos
            guard pos < n else { throw fail("truncated: no STOP") }
            let op = bytes[pos]
            pos += 1
            switch op {
            case 0x80:   // PROTO
                let v = try uint(1)
                guard v <= 5 else { throw fail("protocol \(v) is newer than 5") }
            case 0x95: _ = try uint(8)                      // FRAME (length only)
            case 0x2E:                                      // STOP
                guard marks.isEmpty, stack.count == 1 else { throw fail("STOP with \(stack.count) values and \(marks.count) marks") }
                return stack[0]
            case 0x28: marks.append(stack.count)            // MARK
            case 0x30: _ = try pop()                         // POP
            case 0x31: _ = try popMark()                     // POP_MARK
            case 0x32: stack.append(try top())               // DUP
            case 0x4E: stack.append(.none)                  // NONE
            case 0x88: stack.append(.bool(true))            // NEWTRUE
            case 0x89: stack.append(.bool(false))           // NEWFALSE
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: UInt32(try uint(4))))))   // BININT
            case 0x4B: stack.append(.int(Int(try uint(1))))                               // BININT1
            case 0x4D: stack.append(.int(Int(try uint(2))))                               // BININT2
            case 0x8A, 0x8B:                                 // LONG1, LONG4
                let k = try length(op == 0x8A ? 1 : 4)
                guard k <= 8 else { throw fail("integer of \(k) bytes is too large") }
                if k == 0 { stack.append(.int(0)); break }
                let raw = try uint(k)
                let shift = UInt64(64 - 8 * k)
                stack.append(.int(Int(Int64(bitPattern: raw << shift) >> Int64(shift))))
            case 0x47:                                       // BINFLOAT (big-endian)
                let b = try take(8)
                var v: UInt64 = 0
                for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x58: stack.append(.string(try text(try length(4))))       // BINUNICODE
            case 0x8C: stack.append(.string(try text(try length(1))))       // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try text(try length(8))))       // BINUNICODE8
            case 0x54:                                                       // BINSTRING
                let v = Int32(bitPattern: UInt32(try uint(4)))
                guard v >= 0, Int(v) <= n - pos else { throw fail("BINSTRING length \(v) is invalid") }
                stack.append(.string(try latin1(Int(v))))
            case 0x55: stack.append(.string(try latin1(try length(1))))     // SHORT_BINSTRING
            case 0x29: stack.append(tuple([]))                              // EMPTY_TUPLE
            case 0x74: stack.append(tuple(try popMark()))                   // TUPLE
            case 0x85, 0x86, 0x87:                                          // TUPLE1-3
                let k = Int(op) - 0x84
                var items: [PickleValue] = []
                for _ in 0..<k { items.append(try pop()) }
                stack.append(tuple(items.reversed()))
            case 0x5D: lists.append([]); stack.append(.list(lists.count - 1))          // EMPTY_LIST
            case 0x61: try append([try pop()])                                          // APPEND
            case 0x65: let items = try popMark(); try append(items)                     // APPENDS
            case 0x7D: dicts.append(PickleDict()); stack.append(.dict(dicts.count - 1)) // EMPTY_DICT
            case 0x73: let v = try pop(), k = try pop(); try setItems([k, v])           // SETITEM
            case 0x75: let items = try popMark(); try setItems(items)                   // SETITEMS
            case 0x71: memo[Int(try uint(1))] = try top()                              // BINPUT
            case 0x72: memo[Int(try uint(4))] = try top()                              // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()                                    // MEMOIZE
            case 0x68, 0x6A:                                                            // BINGET, LONG_BINGET
                let i = Int(try uint(op == 0x68 ? 1 : 4))
                guard let v = memo[i] else { throw fail("memo entry \(i) is not defined") }
                stack.append(v)
            case 0x63: let module = try line(); stack.append(try global(module, try line()))   // GLOBAL
            case 0x93:                                                                  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .string(let m) = module, case .string(let nm) = name else { throw fail("STACK_GLOBAL needs two strings") }
                stack.append(try global(m, nm))
            case 0x52:                                                                  // REDUCE
                let args = try pop(), callable = try pop()
                guard case .tuple(let t) = args else { throw fail("REDUCE arguments are a \(args.typeName), not a tuple") }
                guard case .global(let g) = callable else { throw fail("REDUCE calls a \(callable.typeName)") }
                stack.append(try reduce(g, tuples[t], fail))
            case 0x62:                                                                  // BUILD
                let state = try pop()
                guard case .dict = try top() else { throw fail("BUILD on a \(try top().typeName) (only dict attributes are accepted)") }
                switch state {
                case .dict, .tuple, .none: break
                default: throw fail("BUILD state is a \(state.typeName)")
                }
            case 0x51:                                                                  // BINPERSID
                stack.append(try persistentLoad(try pop(), fail))
            default:
                let name = (0x20..<0x7F).contains(op) ? " ('\(Character(Unicode.Scalar(op)))')" : ""
                throw FCNError.unsupported("pickle: opcode 0x\(String(op, radix: 16))\(name) at byte \(opOffset) is not accepted in a weights file")
            }
        }
    }

    private mutating func reduce(_ g: PickleGlobal, _ args: [PickleValue], _ fail: (String) -> FCNError) throws -> PickleValue {
        func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
            guard case .tuple(let t) = v else { throw fail("\(g.qualifiedName): \(what) is a \(v.typeName), expected a tuple") }
            return try tuples[t].map {
                guard case .int(let i) = $0, i >= 0 else { throw fail("\(g.qualifiedName): \(what) holds \($0.typeName == "int" ? "a negative int" : "a " + $0.typeName)") }
                return i
            }
        }
        switch g {
        case .orderedDict:
            guard args.isEmpty else { throw fail("collections.OrderedDict is called with \(args.count) arguments (expected none)") }
            dicts.append(PickleDict())
            return .dict(dicts.count - 1)
        case .torchSize:
            guard args.count == 1, case .tuple = args[0] else { throw fail("torch.Size expects one tuple") }
            _ = try ints(args[0], "size")
            return args[0]
        case .rebuildParameter:
            guard args.count == 3, case .tensor = args[0] else { throw fail("torch._utils._rebuild_parameter expects (tensor, requires_grad, hooks)") }
            return args[0]
        case .rebuildTensorV2:
            guard args.count == 6 || args.count == 7 else { throw fail("torch._utils._rebuild_tensor_v2 expects 6 or 7 arguments, got \(args.count)") }
            guard case .storage(let s) = args[0] else { throw fail("torch._utils._rebuild_tensor_v2: the storage is a \(args[0].typeName)") }
            guard case .int(let offset) = args[1], offset >= 0 else { throw fail("torch._utils._rebuild_tensor_v2: invalid storage offset") }
            let shape = try ints(args[2], "size"), strides = try ints(args[3], "stride")
            guard shape.count == strides.count else { throw fail("torch._utils._rebuild_tensor_v2: size \(shape) and stride \(strides) differ in rank") }
            tensors.append(PickleTensor(storage: s, offset: offset, shape: shape, strides: strides))
            return .tensor(tensors.count - 1)
        case .storageType(_, let name):
            throw fail("torch.\(name) is called (storage classes may only appear in persistent ids)")
        }
    }

    private mutating func persistentLoad(_ pid: PickleValue, _ fail: (String) -> FCNError) throws -> PickleValue {
        guard case .tuple(let t) = pid, tuples[t].count == 5, case .string("storage") = tuples[t][0] else {
            throw fail("persistent id is not torch's ('storage', type, key, location, numel)")
        }
        let f = tuples[t]
        guard case .global(.storageType(let dtype, _)) = f[1] else { throw fail("persistent id names a \(f[1].typeName), not a storage class") }
        guard case .string(let key) = f[2], case .string(let location) = f[3], case .int(let numel) = f[4], numel >= 0 else {
            throw fail("persistent id has a malformed key, location or size")
        }
        if let i = storageIndex[key] {
            guard storages[i].dtype == dtype, storages[i].numel == numel else {
                throw fail("storage '\(key)' is referenced with two types or sizes")
            }
            return .storage(i)
        }
        storageIndex[key] = storages.count
        storages.append(PickleStorage(dtype: dtype, key: key, location: location, numel: numel))
        return .storage(storages.count - 1)
    }
}
