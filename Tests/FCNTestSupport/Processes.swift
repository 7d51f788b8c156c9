// Running other programs from tests: a tool on PATH, Open MPI's and MPICH's launchers, and
// a process run with a deadline (the multi-process tests of the distributed group and of
// fcn-train under mpirun).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An executable named `name` on PATH, or nil.
public func findOnPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// The first output line of `tool --version`.
public func versionLine(_ tool: String) -> String {
    (try? runProcess(tool, ["--version"], timeout: 20).output)?.split(separator: "\n").first.map(String.init) ?? ""
}

/// Open MPI's mpirun: `mpirun.openmpi`, or `mpirun` when it is Open MPI's.
public let openMPIRun: String? = findOnPath("mpirun.openmpi")
    ?? findOnPath("mpirun").flatMap { versionLine($0).contains("Open MPI") ? $0 : nil }
/// MPICH's Hydra launcher, when installed beside Open MPI (Debian's mpich package).
public let hydraRun: String? = findOnPath("mpiexec.mpich") ?? findOnPath("mpiexec.hydra")

/// Runs `tool` with a deadline; output and errors are collected in one file. A run past
/// the deadline is ended (SIGTERM, which mpirun forwards to its ranks) and reported.
public func runProcess(_ tool: String, _ arguments: [String], environment: [String: String] = [:],
                timeout: Double) throws -> (status: Int32, output: String, seconds: Double, timedOut: Bool) {
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("fcn-mpi-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: log) }
    let handle = try FileHandle(forWritingTo: log)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: tool)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    p.standardOutput = handle
    p.standardError = handle
    p.standardInput = FileHandle.nullDevice
    let start = Date()
    try p.run()
    var timedOut = false
    while p.isRunning {
        if Date().timeIntervalSince(start) > timeout {
            timedOut = true
            p.terminate()
            Thread.sleep(forTimeInterval: 2)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            break
        }
        Thread.sleep(forTimeInterval: 0.05)
    }
    p.waitUntilExit()
    try handle.close()
    let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    return (p.terminationStatus, output, Date().timeIntervalSince(start), timedOut)
}

