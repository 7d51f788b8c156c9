// The error rule of the library.
//
// * Misuse of an op (wrong shapes, invalid options) is a programming error, as an out-of-
//   range Array index is in Swift: the op checks its arguments before any kernel runs and
//   stops the program with a message that names the op, what it got and what it expected,
//   for example `conv2d: input [1, 3, 8, 8] has 3 channels but weight [16, 4, 3, 3] with
//   groups 1 expects 4`. The message is printed in release builds too (fatalError).
// * Problems with data from outside (files, checkpoints, images, command-line arguments)
//   are thrown as Swift errors, never trapped: see `FCNError`.

/// Errors thrown for data from outside the program: files, checkpoints, images, arguments.
public enum FCNError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A file could not be read or written.
    case io(String)
    /// A file is truncated, corrupt or not of the expected format.
    case invalidFormat(String)
    /// A value (tensor name, shape, option) does not match what was expected.
    case mismatch(String)
    /// A feature of a format that this library does not support.
    case unsupported(String)

    /// The kind of error followed by its message, e.g. `invalid format: ...`.
    public var description: String {
        switch self {
        case .io(let m): return "I/O error: \(m)"
        case .invalidFormat(let m): return "invalid format: \(m)"
        case .mismatch(let m): return "mismatch: \(m)"
        case .unsupported(let m): return "unsupported: \(m)"
        }
    }
}

/// Checks an op's argument; on failure stops with "`op`: `message`".
@inlinable
package func fcnCheck(_ condition: @autoclosure () -> Bool, _ op: @autoclosure () -> String,
              _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition() { fcnFail(op(), message(), file: file, line: line) }
}

/// Stops with "`op`: `message`". Used for programming errors (see the rule above).
@usableFromInline
package func fcnFail(_ op: String, _ message: String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("\(op): \(message)", file: file, line: line)
}
