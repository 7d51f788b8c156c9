// fcn_mpi: MPI opened at run time with dlopen, behind a small C interface with no MPI types.
//
// Why C: MPI's handles are of a different C type in each ABI (pointers to global objects
// in Open MPI, ints in MPICH and its derivatives, small pointer-sized constants in the
// MPI-5 standard ABI), and the entry points must be called through function pointers of
// exactly those types. This shim resolves the entry points and the predefined handles of
// the opened library once, and calls them with the right types; Swift sees plain ints
// and pointers. Building needs no MPI headers or libraries: nothing links against MPI.
//
// Contract:
// * `fcn_mpi_open` once per process (a second successful open is refused: MPI can be
//   initialised once). Then `fcn_mpi_init`, then the collectives on MPI_COMM_WORLD.
// * Every call returns MPI's own error code (0 is success) or one of the negative
//   FCN_MPI_ERR_* codes of the shim. `fcn_mpi_error_string` turns either into text.
// * The caller serialises calls (the library is initialised with MPI_THREAD_SERIALIZED).
#ifndef FCN_MPI_H
#define FCN_MPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The binary interface of an opened MPI library.
enum {
    FCN_MPI_ABI_NONE = 0,
    FCN_MPI_ABI_OPEN_MPI = 1,   // libmpi.so.40: handles are addresses of ompi_mpi_* objects
    FCN_MPI_ABI_MPICH = 2,      // libmpi.so.12 / libmpich.so.12 (MPICH, Intel MPI, MVAPICH, Cray): int handles
    FCN_MPI_ABI_STANDARD = 3,   // libmpi_abi.so: the MPI-5.0 standard ABI, version 1.x
};

/// Element types of the collectives (mapped to MPI_FLOAT, MPI_DOUBLE, MPI_INT64_T, MPI_BYTE).
enum {
    FCN_MPI_FLOAT = 0,
    FCN_MPI_DOUBLE = 1,
    FCN_MPI_INT64 = 2,
    FCN_MPI_BYTE = 3,
};

/// Error codes of the shim itself; MPI's own codes are >= 0.
enum {
    FCN_MPI_ERR_NOT_OPEN = -1,      // no library was opened (or it is already finalised)
    FCN_MPI_ERR_BAD_ARGUMENT = -2,  // unknown element type, negative count
    FCN_MPI_ERR_TYPE_SIZE = -3,     // MPI_Type_size of a predefined type is wrong: wrong ABI constants
};

/// Opens `name` (a file name for dlopen, searched as dlopen searches) with RTLD_GLOBAL,
/// decides its ABI, resolves the entry points and predefined handles. Returns 0, or
/// nonzero with the reason written (NUL-terminated) into `message`: not found, a missing
/// symbol, an unsupported ABI version. Calls nothing in MPI except the query
/// MPI_Abi_get_version (callable before initialisation) where the library has it.
int fcn_mpi_open(const char *name, char *message, size_t message_len);

/// The ABI of the opened library (FCN_MPI_ABI_NONE before a successful open).
int fcn_mpi_abi(void);

/// MPI_Get_library_version into `buffer` (NUL-terminated, truncated to `len`).
int fcn_mpi_library_version(char *buffer, size_t len);

/// MPI_Init_thread(MPI_THREAD_SERIALIZED) unless MPI is already initialised (then
/// `*initialised_here` is 0 and the caller owns neither initialisation nor finalisation);
/// sets MPI_ERRORS_RETURN on MPI_COMM_WORLD, so failures come back as codes instead of
/// aborting inside MPI; checks the element types' sizes (MPI_Type_size 4, 8, 8, 1) so a
/// wrong handle constant is caught here. `*provided` is the thread level granted,
/// normalised to 0 single, 1 funneled, 2 serialized, 3 multiple.
/// When this call initialised MPI it registers an exit handler: on exit status 0 it
/// calls MPI_Finalize; on any other status it prints a line naming the rank and status
/// to stderr and calls MPI_Abort, so the whole job ends instead of the other ranks
/// waiting forever in their next collective.
int fcn_mpi_init(int *provided, int *initialised_here);

int fcn_mpi_rank(int *rank);
int fcn_mpi_size(int *size);

/// MPI_Allreduce(MPI_IN_PLACE, buffer, count, type, MPI_SUM, MPI_COMM_WORLD).
int fcn_mpi_allreduce_sum(void *buffer, int count, int type);
/// MPI_Allgather of `count` elements per rank. `send` NULL means MPI_IN_PLACE: this
/// rank's contribution is read from its own slot of `recv`.
int fcn_mpi_allgather(const void *send, void *recv, int count, int type);
/// MPI_Alltoall: `count` elements to and from each rank (slot r of `send` goes to rank r).
int fcn_mpi_alltoall(const void *send, void *recv, int count, int type);
/// MPI_Bcast of `count` elements from `root`.
int fcn_mpi_bcast(void *buffer, int count, int type, int root);
int fcn_mpi_barrier(void);
/// MPI_Abort(MPI_COMM_WORLD, code): ends every process of the job.
int fcn_mpi_abort(int code);
/// MPI_Finalize, if this process initialised MPI and has not finalised it yet.
int fcn_mpi_finalize(void);

/// MPI_Error_string for MPI codes, a fixed text for the shim's codes.
void fcn_mpi_error_string(int code, char *buffer, size_t len);

#ifdef __cplusplus
}
#endif

#endif
