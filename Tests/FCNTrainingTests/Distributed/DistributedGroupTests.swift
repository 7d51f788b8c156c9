// A process started by hand is a group of one whose collectives are the identity and which
// never opens MPI; the launcher is read from the environment; a missing or foreign MPI
// library is a clear error naming the variable and the packages.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNTraining
import FCNTestSupport

@Suite struct DistributedGroupTests {
    /// NaN payloads, signed zeros, subnormals: the identity keeps every bit.
    let awkward: [Float] = [1, -0.0, 0, .nan, Float(bitPattern: 0x7fc0_1234), .infinity, Float(bitPattern: 0x0000_0007), -3.5, .ulpOfOne]

    @Test func byHandIsAGroupOfOneWithoutMPI() throws {
        if let launch = DistributedLaunch.current() {
            Issue.record("the tests run under an MPI launcher (\(launch)); this check needs a process started by hand")
            return
        }
        for group in [try DistributedGroup.initialize(), try DistributedGroup.initialize(.single), DistributedGroup.single()] {
            #expect(group.rank == 0 && group.size == 1 && group.backend == .single)
            #expect(group.transport == nil, "no MPI library opened")
        }
    }

    @Test func collectivesOfOneAreTheIdentity() throws {
        let g = DistributedGroup.single()
        var f = awkward
        try g.allSum(&f)
        try g.allSum(&f, algorithm: .mpiAllreduce)
        #expect(f.map(\.bitPattern) == awkward.map(\.bitPattern))
        var d = awkward.map(Double.init)
        try g.allSum(&d)
        #expect(d.map(\.bitPattern) == awkward.map { Double($0).bitPattern })
        var i: [Int64] = [.max, .min, 0, 42]
        try g.allSum(&i)
        #expect(i == [.max, .min, 0, 42])
        var t = Tensor(shape: [3, 3], scalars: awkward)
        let before = t
        try g.allSum(&t)
        try g.broadcast(&t, from: 0)
        #expect(t.scalars.map(\.bitPattern) == awkward.map(\.bitPattern) && t.sharesStorage(with: before), "no copy either")
        var bytes: [UInt8] = [1, 2, 3]
        try g.broadcast(&bytes, from: 0)
        #expect(bytes == [1, 2, 3])
        #expect(try g.allGather([Int64(7), 8]) == [7, 8])
        try g.barrier()
        let plan = try GradientBuckets(group: g, counts: [9, 0, 2], bucketBytes: 8)
        var tensors = [t, Tensor(shape: [0], scalars: []), Tensor(shape: [2], scalars: [.nan, -0.0])]
        try plan.average(&tensors)
        #expect(tensors[0].scalars.map(\.bitPattern) == awkward.map(\.bitPattern))
        #expect(tensors[2].scalars.map(\.bitPattern) == [Float.nan.bitPattern, (-0.0 as Float).bitPattern])
    }

    @Test func launcherFromTheEnvironment() {
        #expect(DistributedLaunch.detect([:]) == nil)
        #expect(DistributedLaunch.detect(["HOME": "/root", "PATH": "/bin"]) == nil)
        #expect(DistributedLaunch.detect(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "2", "PMIX_RANK": "2"])
                == DistributedLaunch(launcher: .openMPI, rank: 2, size: 4))
        #expect(DistributedLaunch.detect(["PMI_SIZE": "2", "PMI_RANK": "1", "PMI_FD": "6", "MPI_LOCALNRANKS": "2"])
                == DistributedLaunch(launcher: .pmi, rank: 1, size: 2))
        // Hydra's per-node count is not the size of the job.
        #expect(DistributedLaunch.detect(["MPI_LOCALNRANKS": "2", "MPI_LOCALRANKID": "0"])
                == DistributedLaunch(launcher: .pmi, rank: nil, size: nil))
        #expect(DistributedLaunch.detect(["PMIX_RANK": "3"]) == DistributedLaunch(launcher: .pmix, rank: 3, size: nil))
        #expect(DistributedLaunch.detect(["SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "8"])
                == DistributedLaunch(launcher: .slurm, rank: 5, size: 8))
        // A batch script: SLURM_NTASKS and SLURM_PROCID=0, but no job step.
        #expect(DistributedLaunch.detect(["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "1"]) == nil)
        #expect(DistributedLaunch.detect(["SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"]) == nil)
        // srun of an MPI job also sets PMI/PMIx variables, which name the library family.
        #expect(DistributedLaunch.detect(["SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "PMI_RANK": "1", "PMI_SIZE": "2"])?.launcher == .pmi)
    }

    @Test func libraryCandidates() {
        #expect(DistributedLaunch.libraryCandidates(launcher: .openMPI, override: nil)
                == ["libmpi.so.40", "libmpi.so.12", "libmpich.so.12", "libmpi_abi.so.0", "libmpi_abi.so", "libmpi.so"])
        #expect(DistributedLaunch.libraryCandidates(launcher: .pmi, override: nil)
                == ["libmpi.so.12", "libmpich.so.12", "libmpi.so.40", "libmpi_abi.so.0", "libmpi_abi.so", "libmpi.so"])
        #expect(DistributedLaunch.libraryCandidates(launcher: .pmi, override: " /opt/mpi/lib/libmpi.so.12 ") == ["/opt/mpi/lib/libmpi.so.12"])
        #expect(DistributedLaunch.libraryCandidates(launcher: nil, override: "")[0] == "libmpi.so.40")
    }

    /// Opening fails before anything is initialised (so these leave the process free of MPI).
    @Test func missingOrForeignLibraryIsAClearError() throws {
        let launch = DistributedLaunch(launcher: .openMPI, rank: 0, size: 2)
        do {
            _ = try MPITransport.open(candidates: ["/nonexistent/libmpi.so.40", "libfcn-no-such-mpi.so"], launch: launch)
            Issue.record("a missing library was opened")
        } catch let e as DistributedError {
            let text = "\(e)"
            guard case .libraryNotFound = e else { Issue.record("wrong error: \(text)"); return }
            for needle in ["/nonexistent/libmpi.so.40", "libfcn-no-such-mpi.so", "FCN_MPI_LIBRARY", "openmpi-bin", "mpich",
                           "Open MPI mpirun, rank 0 of 2"] {
                #expect(text.contains(needle), "\(needle) missing from: \(text)")
            }
        }
        // A library that is not MPI: named as neither ABI.
        do {
            _ = try MPITransport.open(candidates: ["libm.so.6"], launch: nil)
            Issue.record("libm was taken for MPI")
        } catch let e as DistributedError {
            #expect("\(e)".contains("libm.so.6 is neither Open MPI"), "\(e)")
        }
    }

    @Test func errorsDescribeThemselves() {
        #expect("\(DistributedError.callFailed(call: "MPI_Bcast", code: 15, message: "MPI_ERR_TRUNCATE: message truncated"))"
                == "MPI_Bcast failed (MPI error 15): MPI_ERR_TRUNCATE: message truncated")
        #expect("\(DistributedError.mismatch("x"))" == "ranks disagree: x")
    }
}
