// Argument reading shared by the command-line front ends (`TrainerOptions.parse` for
// fcn-train, `SegmentCommand.parse` for fcn-segment).
//
// Contract: arguments are read left to right; `--flag value` and `--flag=value` are the same;
// every malformed value throws a `CommandLineError` whose message names the flag, the
// accepted values and what was given. Nothing the user passes can trap.

import FCN

/// A bad command line (unknown option, missing or malformed value, inconsistent options).
public struct CommandLineError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The human-readable reason, naming the option.
    public let message: String
    /// An error with the given message.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// Reads arguments one at a time with the value checks both front ends share.
struct ArgumentReader {
    private var args: [(text: String, inline: String?)]
    private var index = -1

    /// `arguments` without the program name; `--flag=value` is split at the first `=`.
    init(_ arguments: [String]) {
        args = arguments.map { a in
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                return (String(a[..<eq]), String(a[a.index(after: eq)...]))
            }
            return (a, nil)
        }
    }

    /// The next flag or positional argument, or nil after the last.
    mutating func next() -> String? {
        index += 1
        return index < args.count ? args[index].text : nil
    }

    /// The value of the flag just read (inline after `=`, else the next argument).
    mutating func value(_ flag: String) throws -> String {
        if let v = args[index].inline { return v }
        guard index + 1 < args.count else { throw CommandLineError("\(flag) needs a value") }
        index += 1
        return args[index].text
    }

    /// Throws when the flag just read was given a value with `=` (switches take none).
    func noValue(_ flag: String) throws {
        if args[index].inline != nil { throw CommandLineError("\(flag) takes no value") }
    }

    /// An integer value of at least `lo`.
    mutating func int(_ flag: String, min lo: Int) throws -> Int {
        let s = try value(flag)
        guard let v = Int(s) else { throw CommandLineError("\(flag) expects an integer, got '\(s)'") }
        guard v >= lo else { throw CommandLineError("\(flag) must be >= \(lo), got \(v)") }
        return v
    }

    /// A non-negative integer that fits a UInt64 (seeds).
    mutating func seed(_ flag: String) throws -> UInt64 {
        let s = try value(flag)
        guard let v = UInt64(s) else { throw CommandLineError("\(flag) expects a non-negative integer, got '\(s)'") }
        return v
    }

    /// A finite number, > 0 when `positive`, else >= 0.
    mutating func double(_ flag: String, positive: Bool) throws -> Double {
        try ArgumentReader.number(flag, try value(flag), positive: positive)
    }

    /// `s` as a finite number, > 0 when `positive`, else >= 0 (also for list items).
    static func number(_ flag: String, _ s: String, positive: Bool) throws -> Double {
        guard let v = Double(s), v.isFinite else { throw CommandLineError("\(flag) expects a number, got '\(s)'") }
        if positive { guard v > 0 else { throw CommandLineError("\(flag) must be > 0, got \(s)") } }
        else { guard v >= 0 else { throw CommandLineError("\(flag) must be >= 0, got \(s)") } }
        return v
    }

    /// One of `options` by name.
    mutating func choice<T>(_ flag: String, _ options: [(name: String, value: T)]) throws -> T {
        let s = try value(flag)
        guard let hit = options.first(where: { $0.name == s }) else {
            throw CommandLineError("\(flag) expects one of \(options.map(\.name).joined(separator: "|")), got '\(s)'")
        }
        return hit.value
    }

    /// `--precision f32|bf16` (also float32, bfloat16).
    mutating func precision(_ flag: String) throws -> ComputePrecision {
        let s = try value(flag)
        guard let p = ComputePrecision(parsing: s) else { throw CommandLineError("\(flag) expects f32 or bf16, got '\(s)'") }
        return p
    }

    /// One of the cases of `T` by raw value.
    mutating func choice<T: RawRepresentable & CaseIterable>(_ flag: String, _: T.Type) throws -> T where T.RawValue == String {
        try choice(flag, T.allCases.map { (name: $0.rawValue, value: $0) })
    }

    /// The error for an argument no option claimed: an unknown option, or a positional
    /// argument where the command takes none.
    static func unexpected(_ text: String) -> CommandLineError {
        text.hasPrefix("-") ? CommandLineError("unknown option '\(text)' (see --help)")
            : CommandLineError("unexpected argument '\(text)' (options start with --; see --help)")
    }
}
