// How a process was started: alone, or as one rank of a job started by an MPI launcher.
//
// Why the environment: a launcher (Open MPI's mpirun, MPICH's Hydra mpiexec, a PMIx
// server such as Open MPI 5's prterun, Slurm's srun) leaves its variables in every rank's
// environment before the program starts, so a program can tell, without loading MPI,
// whether it is part of a job. A program started by hand then never opens an MPI library
// and runs exactly as before.
//
// Which library: the launcher and the library must be of one implementation (Open MPI's
// mpirun cannot start MPICH ranks, nor Hydra Open MPI ranks: each rank would initialise as
// a group of one). So the launcher's own library comes first in the list tried; the
// variable FCN_MPI_LIBRARY (a file name or path for dlopen) comes before everything.

import FCNCore
import Foundation

/// The MPI launcher a process was started by, read from its environment.
public struct DistributedLaunch: Equatable, Sendable, CustomStringConvertible {
    /// The kind of launcher, which decides which MPI library is tried first.
    public enum Launcher: String, Sendable {
        /// Open MPI's mpirun/mpiexec (OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_RANK).
        case openMPI = "Open MPI mpirun"
        /// A PMI-1/PMI-2 launcher: MPICH's Hydra mpiexec, Intel MPI (PMI_SIZE, PMI_RANK,
        /// PMI_FD, MPI_LOCALNRANKS).
        case pmi = "PMI (MPICH Hydra)"
        /// A PMIx server without Open MPI 4's variables: Open MPI 5's prterun, srun --mpi=pmix
        /// (PMIX_RANK).
        case pmix = "PMIx"
        /// Slurm's srun: SLURM_PROCID with SLURM_STEP_NUM_TASKS, which only a job step has
        /// (a batch script sees SLURM_NTASKS and SLURM_PROCID=0 without being a rank).
        case slurm = "Slurm srun"
    }

    /// Name of the environment variable that names the MPI library to open first.
    public static let libraryVariable = "FCN_MPI_LIBRARY"

    public let launcher: Launcher
    /// This process's rank as the launcher reports it, when it does.
    public let rank: Int?
    /// The number of processes of the job as the launcher reports it, when it does.
    public let size: Int?

    public var description: String {
        "\(launcher.rawValue)" + (rank.map { ", rank \($0)" } ?? "") + (size.map { " of \($0)" } ?? "")
    }

    /// The launcher named by `environment`, or nil for a process started by hand.
    ///
    /// Precedence: Open MPI's variables, then PMI's, then PMIx's, then Slurm's (srun sets
    /// PMI or PMIx variables as well when it runs an MPI job). Slurm's own variables count
    /// only in a job step of more than one task (SLURM_STEP_NUM_TASKS > 1), never in a
    /// batch script, which has SLURM_NTASKS and SLURM_PROCID=0 without being a rank.
    public static func detect(_ environment: [String: String]) -> DistributedLaunch? {
        func int(_ key: String) -> Int? { environment[key].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
        if let size = int("OMPI_COMM_WORLD_SIZE") {
            return DistributedLaunch(launcher: .openMPI, rank: int("OMPI_COMM_WORLD_RANK"), size: size)
        }
        // MPI_LOCALNRANKS (Hydra) counts the ranks of this node only: a sign, not the size.
        if ["PMI_SIZE", "PMI_RANK", "PMI_FD", "MPI_LOCALNRANKS"].contains(where: { environment[$0] != nil }) {
            return DistributedLaunch(launcher: .pmi, rank: int("PMI_RANK"), size: int("PMI_SIZE"))
        }
        if let rank = int("PMIX_RANK") {
            return DistributedLaunch(launcher: .pmix, rank: rank, size: nil)
        }
        if let rank = int("SLURM_PROCID"), let size = int("SLURM_STEP_NUM_TASKS"), size > 1 {
            return DistributedLaunch(launcher: .slurm, rank: rank, size: size)
        }
        return nil
    }

    /// The launcher of this process, from its environment (see `detect(_:)`).
    public static func current() -> DistributedLaunch? { detect(processEnvironment()) }

    /// MPI libraries to try, in order: `override` (the value of FCN_MPI_LIBRARY) alone when
    /// it is set, else the launcher's own implementation first, then the others: Open MPI
    /// (libmpi.so.40), MPICH's ABI (libmpi.so.12; Debian's libmpich.so.12), the MPI-5
    /// standard ABI (libmpi_abi.so), and the unversioned development link libmpi.so.
    public static func libraryCandidates(launcher: Launcher?, override: String?) -> [String] {
        if let o = override?.trimmingCharacters(in: .whitespacesAndNewlines), !o.isEmpty { return [o] }
        let openMPI = ["libmpi.so.40"]
        let mpich = ["libmpi.so.12", "libmpich.so.12"]
        let standard = ["libmpi_abi.so.0", "libmpi_abi.so"]
        let first: [String]
        switch launcher {
        case .pmi?: first = mpich + openMPI
        default: first = openMPI + mpich
        }
        return first + standard + ["libmpi.so"]
    }
}

/// The environment of this process.
func processEnvironment() -> [String: String] { ProcessInfo.processInfo.environment }

