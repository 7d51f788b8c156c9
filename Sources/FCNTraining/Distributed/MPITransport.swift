// The collectives a distributed group needs, and their MPI implementation over the C shim
// (CFCNKernels/mpi_loader.c, which opens the library with dlopen at run time).
//
// Contract of a transport: every rank of the group makes the same calls in the same order
// with the same counts and element types (as with MPI itself); each call blocks until this
// rank's part of it is done. Counts are Int32 (MPI's `int`): callers split larger buffers.
// Calls are not thread-safe: `DistributedGroup` serialises them.

import FCNCore
import CFCNKernels
import Foundation

/// Errors of the distributed layer: MPI could not be loaded or started, or a collective failed.
public enum DistributedError: Error, Equatable, CustomStringConvertible, Sendable {
    /// No MPI library could be opened; the message names the libraries tried and why each
    /// failed, the variable FCN_MPI_LIBRARY and the packages that provide one.
    case libraryNotFound(String)
    /// A library was opened but cannot be used (unknown or unsupported ABI, wrong group).
    case unsupported(String)
    /// An MPI call returned an error: the call's name, MPI's code and MPI_Error_string's text.
    case callFailed(call: String, code: Int32, message: String)
    /// The ranks disagree on something they must share (buffer counts of a gradient plan).
    case mismatch(String)

    public var description: String {
        switch self {
        case .libraryNotFound(let m): return "MPI library not found: \(m)"
        case .unsupported(let m): return "unsupported MPI: \(m)"
        case .callFailed(let call, let code, let m): return "\(call) failed (MPI error \(code)): \(m)"
        case .mismatch(let m): return "ranks disagree: \(m)"
        }
    }
}

/// Element types the collectives carry (the C shim's FCN_MPI_* values).
enum CollectiveElement: Int32, Sendable {
    case float = 0, double = 1, int64 = 2, byte = 3
}

/// Scalars a collective can carry, with their MPI element type.
protocol CollectiveScalar: Sendable {
    static var collectiveElement: CollectiveElement { get }
}
extension Float: CollectiveScalar { static var collectiveElement: CollectiveElement { .float } }
extension Double: CollectiveScalar { static var collectiveElement: CollectiveElement { .double } }
extension Int64: CollectiveScalar { static var collectiveElement: CollectiveElement { .int64 } }
extension UInt8: CollectiveScalar { static var collectiveElement: CollectiveElement { .byte } }

/// Point of entry of the collectives (see the file contract).
protocol CollectiveTransport: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// Element-wise sum over the ranks, in place, in whatever order the transport adds.
    func allreduceSum(_ buffer: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws
    /// Rank r's `count` elements land in slot r of `recv` (`count * size` elements) on every
    /// rank; `send` nil means this rank's slot of `recv` already holds its contribution.
    func allgather(_ send: UnsafeRawPointer?, _ recv: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws
    /// Slot j of `send` goes to rank j, where it lands in slot r (this rank) of `recv`.
    func alltoall(_ send: UnsafeRawPointer, _ recv: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws
    func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement, root: Int32) throws
    func barrier() throws
    /// Ends every process of the job with `code`.
    func abort(code: Int32) -> Never
}

/// Which binary interface an opened MPI library has.
public enum MPIABI: String, Sendable {
    case openMPI = "Open MPI"
    case mpich = "MPICH"
    case standard = "MPI-5 standard ABI"
}

/// MPI_COMM_WORLD of a library opened with dlopen. One per process.
final class MPITransport: CollectiveTransport, @unchecked Sendable {
    let rank: Int
    let size: Int
    let library: String
    let abi: MPIABI
    let version: String
    /// Thread level granted: 0 single, 1 funneled, 2 serialized, 3 multiple.
    let threadLevel: Int

    private init(rank: Int, size: Int, library: String, abi: MPIABI, version: String, threadLevel: Int) {
        self.rank = rank; self.size = size; self.library = library; self.abi = abi
        self.version = version; self.threadLevel = threadLevel
    }

    /// Packages that provide an MPI runtime, for the not-found message.
    static let installHint = "install an MPI runtime that matches the launcher (Debian/Ubuntu: "
        + "`apt-get install openmpi-bin` for Open MPI's libmpi.so.40, or `apt-get install mpich` for libmpich.so.12; "
        + "Fedora/RHEL: the openmpi or mpich package, with its lib directory on LD_LIBRARY_PATH), or set "
        + "\(DistributedLaunch.libraryVariable) to the path of the MPI library (libmpi.so.40, libmpi.so.12, libmpi_abi.so)"

    /// Opens the first library of `candidates` that loads and is of a supported ABI, and
    /// initialises MPI. `launch` (when known) must agree with MPI on the number of ranks.
    static func open(candidates: [String], launch: DistributedLaunch?) throws -> MPITransport {
        var failures: [String] = []
        var opened: String?
        for name in candidates {
            var message = [CChar](repeating: 0, count: 1024)
            if fcn_mpi_open(name, &message, message.count) == 0 { opened = name; break }
            failures.append("\(name): \(cText(message))")
        }
        guard let library = opened else {
            let context = launch.map { "started by \($0), " } ?? ""
            throw DistributedError.libraryNotFound(
                "\(context)no MPI library could be opened (\(failures.joined(separator: "; "))); " + installHint)
        }
        let abi: MPIABI
        switch fcn_mpi_abi() {
        case Int32(FCN_MPI_ABI_OPEN_MPI): abi = .openMPI
        case Int32(FCN_MPI_ABI_MPICH): abi = .mpich
        default: abi = .standard
        }
        var version = [CChar](repeating: 0, count: 8200)
        _ = fcn_mpi_library_version(&version, version.count)
        var provided: Int32 = 0, initialisedHere: Int32 = 0
        try check("MPI initialisation (MPI_Init_thread, MPI_Comm_set_errhandler, MPI_Type_size) of \(library)",
                  fcn_mpi_init(&provided, &initialisedHere))
        var rank: Int32 = 0, size: Int32 = 0
        try check("MPI_Comm_rank", fcn_mpi_rank(&rank))
        try check("MPI_Comm_size", fcn_mpi_size(&size))
        let text = cText(version).trimmingCharacters(in: .whitespacesAndNewlines)
        if let expected = launch?.size, expected != Int(size) {
            throw DistributedError.unsupported(
                "the launcher (\(launch!)) started \(expected) processes but \(library) (\(abi.rawValue)) "
                + "initialised a group of \(size): the library is not the launcher's implementation; set "
                + "\(DistributedLaunch.libraryVariable) to the library of the mpirun/mpiexec that started the job")
        }
        return MPITransport(rank: Int(rank), size: Int(size), library: library, abi: abi,
                            version: text.split(separator: "\n").first.map(String.init) ?? text,
                            threadLevel: Int(provided))
    }

    /// Throws `callFailed` for a nonzero MPI (or shim) return code.
    static func check(_ call: String, _ code: Int32) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 1100)
        fcn_mpi_error_string(code, &text, text.count)
        throw DistributedError.callFailed(call: call, code: code, message: cText(text))
    }

    func allreduceSum(_ buffer: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws {
        try Self.check("MPI_Allreduce", fcn_mpi_allreduce_sum(buffer, count, type.rawValue))
    }
    func allgather(_ send: UnsafeRawPointer?, _ recv: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws {
        try Self.check("MPI_Allgather", fcn_mpi_allgather(send, recv, count, type.rawValue))
    }
    func alltoall(_ send: UnsafeRawPointer, _ recv: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement) throws {
        try Self.check("MPI_Alltoall", fcn_mpi_alltoall(send, recv, count, type.rawValue))
    }
    func broadcast(_ buffer: UnsafeMutableRawPointer, count: Int32, type: CollectiveElement, root: Int32) throws {
        try Self.check("MPI_Bcast", fcn_mpi_bcast(buffer, count, type.rawValue, root))
    }
    func barrier() throws {
        try Self.check("MPI_Barrier", fcn_mpi_barrier())
    }
    func abort(code: Int32) -> Never {
        _ = fcn_mpi_abort(code)
        _exit(code)   // MPI_Abort does not return; this is for a library that ignores it
    }
}

/// The text of a NUL-terminated C buffer (invalid UTF-8 repaired).
func cText(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
