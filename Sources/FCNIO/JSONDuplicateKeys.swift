// Duplicate keys in JSON objects. RFC 8259 leaves their meaning open and Foundation's
// JSONSerialization keeps the last value silently; a weights header that names a tensor
// twice is ambiguous, so the safetensors reader rejects it (as the reference Rust
// implementation does) with this scan.
//
// The scan walks the text once, keeping a stack of open objects and arrays and, per
// object, the set of keys seen. Keys are compared after unescaping (`"a"` and `"\u0061"`
// are the same key; a lone surrogate escape becomes U+FFFD). It is meant for text that a
// JSON parser has accepted, but it reads any bytes without trapping.

import FCNCore
/// A key that appears twice in one JSON object.
struct JSONDuplicateKey: Equatable {
    /// Keys leading to the object with the duplicate, outermost first (empty for the
    /// top-level object; an element of an array adds none).
    let path: [String]
    /// The repeated key.
    let key: String
}

/// The first key that occurs twice in the same object of the JSON text `bytes`, or nil.
func jsonFirstDuplicateKey(_ bytes: UnsafeRawBufferPointer) -> JSONDuplicateKey? {
    struct Frame {
        let isObject: Bool
        let name: String?          // key of this container in its parent object
        var keys: Set<String> = []
        var expectingKey = true
        var lastKey: String?
    }
    var stack: [Frame] = []
    var i = 0
    let n = bytes.count

    /// Reads the string starting at the quote at `i`; leaves `i` after its closing quote.
    func readString() -> String {
        var out: [UInt8] = []
        i += 1
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= n else { return nil }
            var v: UInt32 = 0
            for k in at..<(at + 4) {
                let c = bytes[k]
                switch c {
                case 0x30...0x39: v = v << 4 | UInt32(c - 0x30)
                case 0x41...0x46: v = v << 4 | UInt32(c - 0x41 + 10)
                case 0x61...0x66: v = v << 4 | UInt32(c - 0x61 + 10)
                default: return nil
                }
            }
            return v
        }
        func append(_ scalar: UInt32) {
            let s = Unicode.Scalar(scalar) ?? "\u{FFFD}"
            out.append(contentsOf: Array(String(Character(s)).utf8))
        }
        while i < n {
            let c = bytes[i]
            if c == 0x22 { i += 1; break }
            guard c == 0x5C, i + 1 < n else { out.append(c); i += 1; continue }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                guard let u = hex4(i) else { out.append(e); continue }
                i += 4
                if (0xD800..<0xDC00).contains(u), i + 6 <= n, bytes[i] == 0x5C, bytes[i + 1] == 0x75,
                   let low = hex4(i + 2), (0xDC00..<0xE000).contains(low) {
                    i += 6
                    append(0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00))
                } else {
                    append(u)
                }
            default: out.append(e)     // \" \\ \/ and anything a parser would have refused
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    while i < n {
        switch bytes[i] {
        case 0x7B, 0x5B:   // { [
            let name = stack.last.flatMap { $0.isObject ? $0.lastKey : nil }
            stack.append(Frame(isObject: bytes[i] == 0x7B, name: name))
            i += 1
        case 0x7D, 0x5D:   // } ]
            if !stack.isEmpty { stack.removeLast() }
            i += 1
        case 0x2C:         // ,
            if !stack.isEmpty { stack[stack.count - 1].expectingKey = true }
            i += 1
        case 0x3A:         // :
            if !stack.isEmpty { stack[stack.count - 1].expectingKey = false }
            i += 1
        case 0x22:         // "
            let s = readString()
            if let top = stack.last, top.isObject, top.expectingKey {
                guard stack[stack.count - 1].keys.insert(s).inserted else {
                    return JSONDuplicateKey(path: stack.compactMap(\.name), key: s)
                }
                stack[stack.count - 1].lastKey = s
                stack[stack.count - 1].expectingKey = false
            }
        default:
            i += 1
        }
    }
    return nil
}
