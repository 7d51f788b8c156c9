// MPI opened at run time: entry points and predefined handles per ABI (see fcn_mpi.h).
//
// The handle values below were read from each implementation's own mpi.h:
// * Open MPI (4.1 and 5.x, libmpi.so.40): MPI_COMM_WORLD is &ompi_mpi_comm_world,
//   MPI_FLOAT &ompi_mpi_float, MPI_DOUBLE &ompi_mpi_double, MPI_INT64_T &ompi_mpi_int64_t,
//   MPI_BYTE &ompi_mpi_byte, MPI_SUM &ompi_mpi_op_sum, MPI_ERRORS_RETURN
//   &ompi_mpi_errors_return; MPI_IN_PLACE is (void *)1; thread levels are 0..3.
// * MPICH ABI (MPICH 3.x/4.x, Intel MPI, MVAPICH; libmpi.so.12, Debian's libmpich.so.12):
//   int handles. MPI_COMM_WORLD 0x44000000, MPI_FLOAT 0x4c00040a, MPI_DOUBLE 0x4c00080b,
//   MPI_INT64_T 0x4c00083a, MPI_BYTE 0x4c00010d, MPI_SUM 0x58000003, MPI_ERRORS_RETURN
//   0x54000001; MPI_IN_PLACE is (void *)-1; thread levels are 0..3. (MPI_INT64_T is the
//   value MPICH's configure gives on LP64 Linux; fcn_mpi_init checks its size.)
// * MPI-5.0 standard ABI 1.x (libmpi_abi.so): pointer-sized constants. MPI_COMM_WORLD
//   0x101, MPI_FLOAT 0x210, MPI_DOUBLE 0x214, MPI_INT64_T 0x258, MPI_BYTE 0x247, MPI_SUM
//   0x21, MPI_ERRORS_RETURN 0x143; MPI_IN_PLACE is (void *)1; thread levels are
//   0, 1024, 2048, 4096.
#define _GNU_SOURCE
#include "fcn_mpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { THREAD_SERIALIZED_NORMALISED = 2 };

static struct {
    void *lib;
    int abi;
    int int_handles;         // MPICH: handles are C ints; otherwise pointer-sized
    void *in_place;
    intptr_t world, op_sum, errors_return, types[4];
    int thread_scale;        // 1 (levels 0..3) or 1024 (standard ABI)
    int initialised_here, finalised, rank;

    int (*initialized)(int *);
    int (*finalized)(int *);
    int (*init_thread)(int *, char ***, int, int *);
    int (*finalize)(void);
    int (*error_string)(int, char *, int *);
    int (*library_version)(char *, int *);
    int (*query_thread)(int *);
    // Functions taking handles: called through the typedefs below, per handle kind.
    void *comm_rank, *comm_size, *comm_set_errhandler, *type_size, *allreduce, *allgather,
        *alltoall, *bcast, *barrier, *abort_;
} M;

// Handle-taking entry points, once with int handles (MPICH) and once with pointers.
typedef int (*rank_i)(int, int *);
typedef int (*rank_p)(void *, int *);
typedef int (*set_errhandler_i)(int, int);
typedef int (*set_errhandler_p)(void *, void *);
typedef int (*type_size_i)(int, int *);
typedef int (*type_size_p)(void *, int *);
typedef int (*allreduce_i)(const void *, void *, int, int, int, int);
typedef int (*allreduce_p)(const void *, void *, int, void *, void *, void *);
typedef int (*gather_i)(const void *, int, int, void *, int, int, int);
typedef int (*gather_p)(const void *, int, void *, void *, int, void *, void *);
typedef int (*bcast_i)(void *, int, int, int, int);
typedef int (*bcast_p)(void *, int, void *, int, void *);
typedef int (*barrier_i)(int);
typedef int (*barrier_p)(void *);
typedef int (*abort_i)(int, int);
typedef int (*abort_p)(void *, int);

#define HI(h) ((int)(h))
#define HP(h) ((void *)(h))

static void put(char *message, size_t len, const char *text) {
    if (message && len) snprintf(message, len, "%s", text);
}

static void *need(void *lib, const char *symbol, const char *name, int *ok, char *message, size_t len) {
    void *p = dlsym(lib, symbol);
    if (!p && *ok) {
        char text[512];
        snprintf(text, sizeof text, "%s has no symbol %s: not an MPI library this build supports", name, symbol);
        put(message, len, text);
        *ok = 0;
    }
    return p;
}

int fcn_mpi_open(const char *name, char *message, size_t message_len) {
    if (M.lib) { put(message, message_len, "an MPI library is already open in this process"); return 1; }
    dlerror();
    void *lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        const char *e = dlerror();
        put(message, message_len, e ? e : "dlopen failed");
        return 1;
    }
    int ok = 1, abi = FCN_MPI_ABI_NONE;
    // The standard ABI first: its MPI_Abi_get_version answers 1.x, every other library
    // that has the function (Open MPI's and MPICH's own ABIs, MPI 5.0) answers -1.
    // Then Open MPI by its exported objects (a standard-ABI Open MPI library can see
    // them through its dependencies, which is why this test comes second).
    int (*abi_version)(int *, int *) = (int (*)(int *, int *))dlsym(lib, "MPI_Abi_get_version");
    int major = -1, minor = -1;
    if (abi_version && abi_version(&major, &minor) == 0 && major >= 0) {
        if (major != 1) {
            char text[256];
            snprintf(text, sizeof text, "%s implements the MPI standard ABI %d.%d; this build supports 1.x", name, major, minor);
            put(message, message_len, text);
            dlclose(lib);
            return 1;
        }
        abi = FCN_MPI_ABI_STANDARD;
    } else if (dlsym(lib, "ompi_mpi_comm_world")) {
        abi = FCN_MPI_ABI_OPEN_MPI;
    } else if (dlsym(lib, "MPIR_Dup_fn")) {
        abi = FCN_MPI_ABI_MPICH;   // MPICH's mpi.h defines MPI_DUP_FN as MPIR_Dup_fn: every library of its ABI exports it
    } else {
        char text[512];
        snprintf(text, sizeof text, "%s is neither Open MPI (no ompi_mpi_comm_world), MPICH (no MPIR_Dup_fn) "
                 "nor an MPI standard ABI library (MPI_Abi_get_version missing or not 1.x)", name);
        put(message, message_len, text);
        dlclose(lib);
        return 1;
    }

    memset(&M, 0, sizeof M);
    M.abi = abi;
#define NEED(field, symbol) M.field = (__typeof__(M.field))need(lib, symbol, name, &ok, message, message_len)
    NEED(initialized, "MPI_Initialized");
    NEED(finalized, "MPI_Finalized");
    NEED(init_thread, "MPI_Init_thread");
    NEED(finalize, "MPI_Finalize");
    NEED(error_string, "MPI_Error_string");
    NEED(library_version, "MPI_Get_library_version");
    NEED(query_thread, "MPI_Query_thread");
    NEED(comm_rank, "MPI_Comm_rank");
    NEED(comm_size, "MPI_Comm_size");
    NEED(comm_set_errhandler, "MPI_Comm_set_errhandler");
    NEED(type_size, "MPI_Type_size");
    NEED(allreduce, "MPI_Allreduce");
    NEED(allgather, "MPI_Allgather");
    NEED(alltoall, "MPI_Alltoall");
    NEED(bcast, "MPI_Bcast");
    NEED(barrier, "MPI_Barrier");
    NEED(abort_, "MPI_Abort");
#undef NEED
    switch (abi) {
    case FCN_MPI_ABI_OPEN_MPI:
        M.int_handles = 0;
        M.in_place = (void *)1;
        M.thread_scale = 1;
        M.world = (intptr_t)need(lib, "ompi_mpi_comm_world", name, &ok, message, message_len);
        M.op_sum = (intptr_t)need(lib, "ompi_mpi_op_sum", name, &ok, message, message_len);
        M.errors_return = (intptr_t)need(lib, "ompi_mpi_errors_return", name, &ok, message, message_len);
        M.types[FCN_MPI_FLOAT] = (intptr_t)need(lib, "ompi_mpi_float", name, &ok, message, message_len);
        M.types[FCN_MPI_DOUBLE] = (intptr_t)need(lib, "ompi_mpi_double", name, &ok, message, message_len);
        M.types[FCN_MPI_INT64] = (intptr_t)need(lib, "ompi_mpi_int64_t", name, &ok, message, message_len);
        M.types[FCN_MPI_BYTE] = (intptr_t)need(lib, "ompi_mpi_byte", name, &ok, message, message_len);
        break;
    case FCN_MPI_ABI_MPICH:
        M.int_handles = 1;
        M.in_place = (void *)-1;
        M.thread_scale = 1;
        M.world = 0x44000000;
        M.op_sum = 0x58000003;
        M.errors_return = 0x54000001;
        M.types[FCN_MPI_FLOAT] = 0x4c00040a;
        M.types[FCN_MPI_DOUBLE] = 0x4c00080b;
        M.types[FCN_MPI_INT64] = 0x4c00083a;
        M.types[FCN_MPI_BYTE] = 0x4c00010d;
        break;
    default:   // FCN_MPI_ABI_STANDARD
        M.int_handles = 0;
        M.in_place = (void *)1;
        M.thread_scale = 1024;
        M.world = 0x101;
        M.op_sum = 0x21;
        M.errors_return = 0x143;
        M.types[FCN_MPI_FLOAT] = 0x210;
        M.types[FCN_MPI_DOUBLE] = 0x214;
        M.types[FCN_MPI_INT64] = 0x258;
        M.types[FCN_MPI_BYTE] = 0x247;
        break;
    }
    if (!ok) {
        memset(&M, 0, sizeof M);
        dlclose(lib);
        return 1;
    }
    M.lib = lib;
    return 0;
}

int fcn_mpi_abi(void) { return M.lib ? M.abi : FCN_MPI_ABI_NONE; }

int fcn_mpi_library_version(char *buffer, size_t len) {
    if (!M.lib) return FCN_MPI_ERR_NOT_OPEN;
    char text[8192 + 1];   // MPI_MAX_LIBRARY_VERSION_STRING: 8192 (MPICH, standard), 256 (Open MPI)
    int n = 0;
    int rc = M.library_version(text, &n);
    if (rc != 0) return rc;
    if (n < 0) n = 0;
    if (n > 8192) n = 8192;
    text[n] = 0;
    put(buffer, len, text);
    return 0;
}

static int type_size(int type, int *size) {
    return M.int_handles ? ((type_size_i)M.type_size)(HI(M.types[type]), size)
                         : ((type_size_p)M.type_size)(HP(M.types[type]), size);
}

static void on_exit_handler(int status, void *unused) {
    (void)unused;
    int done = 1;
    if (!M.lib || !M.initialised_here || M.finalised || M.finalized(&done) != 0 || done) return;
    if (status == 0) {
        M.finalised = 1;
        M.finalize();
        return;
    }
    fprintf(stderr, "fcn: rank %d is exiting with status %d; aborting the MPI job so that the other ranks stop too\n",
            M.rank, status);
    fflush(stderr);
    M.int_handles ? ((abort_i)M.abort_)(HI(M.world), status) : ((abort_p)M.abort_)(HP(M.world), status);
}

#if !defined(__GLIBC__)
static void at_exit_handler(void) { on_exit_handler(0, NULL); }
#endif

int fcn_mpi_init(int *provided, int *initialised_here) {
    if (!M.lib || M.finalised) return FCN_MPI_ERR_NOT_OPEN;
    int already = 0, rc = M.initialized(&already);
    if (rc != 0) return rc;
    int level = 0;
    *initialised_here = 0;
    if (!already) {
        rc = M.init_thread(NULL, NULL, THREAD_SERIALIZED_NORMALISED * M.thread_scale, &level);
        if (rc != 0) return rc;
        *initialised_here = M.initialised_here = 1;
#if defined(__GLIBC__)
        on_exit(on_exit_handler, NULL);   // sees the exit status (atexit does not)
#else
        atexit(at_exit_handler);          // no status: finalises on every exit
#endif
    } else {
        rc = M.query_thread(&level);   // the host program's choice
        if (rc != 0) return rc;
    }
    *provided = level / M.thread_scale;
    rc = M.int_handles ? ((set_errhandler_i)M.comm_set_errhandler)(HI(M.world), HI(M.errors_return))
                       : ((set_errhandler_p)M.comm_set_errhandler)(HP(M.world), HP(M.errors_return));
    if (rc != 0) return rc;
    static const int expected[4] = {4, 8, 8, 1};
    for (int t = 0; t < 4; t++) {
        int size = 0;
        rc = type_size(t, &size);
        if (rc != 0) return rc;
        if (size != expected[t]) return FCN_MPI_ERR_TYPE_SIZE;
    }
    return fcn_mpi_rank(&M.rank);
}

int fcn_mpi_rank(int *rank) {
    if (!M.lib) return FCN_MPI_ERR_NOT_OPEN;
    return M.int_handles ? ((rank_i)M.comm_rank)(HI(M.world), rank) : ((rank_p)M.comm_rank)(HP(M.world), rank);
}

int fcn_mpi_size(int *size) {
    if (!M.lib) return FCN_MPI_ERR_NOT_OPEN;
    return M.int_handles ? ((rank_i)M.comm_size)(HI(M.world), size) : ((rank_p)M.comm_size)(HP(M.world), size);
}

static int check(int count, int type) {
    if (!M.lib || M.finalised) return FCN_MPI_ERR_NOT_OPEN;
    if (count < 0 || type < 0 || type > 3) return FCN_MPI_ERR_BAD_ARGUMENT;
    return 0;
}

int fcn_mpi_allreduce_sum(void *buffer, int count, int type) {
    int rc = check(count, type);
    if (rc) return rc;
    if (M.int_handles)
        return ((allreduce_i)M.allreduce)(M.in_place, buffer, count, HI(M.types[type]), HI(M.op_sum), HI(M.world));
    return ((allreduce_p)M.allreduce)(M.in_place, buffer, count, HP(M.types[type]), HP(M.op_sum), HP(M.world));
}

static int gather_like(void *fn, const void *send, void *recv, int count, int type) {
    int rc = check(count, type);
    if (rc) return rc;
    const void *s = send ? send : M.in_place;
    if (M.int_handles) {
        int t = HI(M.types[type]);
        return ((gather_i)fn)(s, count, t, recv, count, t, HI(M.world));
    }
    void *t = HP(M.types[type]);
    return ((gather_p)fn)(s, count, t, recv, count, t, HP(M.world));
}

int fcn_mpi_allgather(const void *send, void *recv, int count, int type) {
    return gather_like(M.allgather, send, recv, count, type);
}

int fcn_mpi_alltoall(const void *send, void *recv, int count, int type) {
    if (!send) return FCN_MPI_ERR_BAD_ARGUMENT;
    return gather_like(M.alltoall, send, recv, count, type);
}

int fcn_mpi_bcast(void *buffer, int count, int type, int root) {
    int rc = check(count, type);
    if (rc) return rc;
    if (M.int_handles)
        return ((bcast_i)M.bcast)(buffer, count, HI(M.types[type]), root, HI(M.world));
    return ((bcast_p)M.bcast)(buffer, count, HP(M.types[type]), root, HP(M.world));
}

int fcn_mpi_barrier(void) {
    if (!M.lib || M.finalised) return FCN_MPI_ERR_NOT_OPEN;
    return M.int_handles ? ((barrier_i)M.barrier)(HI(M.world)) : ((barrier_p)M.barrier)(HP(M.world));
}

int fcn_mpi_abort(int code) {
    if (!M.lib) return FCN_MPI_ERR_NOT_OPEN;
    return M.int_handles ? ((abort_i)M.abort_)(HI(M.world), code) : ((abort_p)M.abort_)(HP(M.world), code);
}

int fcn_mpi_finalize(void) {
    if (!M.lib) return FCN_MPI_ERR_NOT_OPEN;
    if (!M.initialised_here || M.finalised) return 0;
    M.finalised = 1;
    return M.finalize();
}

void fcn_mpi_error_string(int code, char *buffer, size_t len) {
    if (code == FCN_MPI_ERR_NOT_OPEN) { put(buffer, len, "MPI is not open or already finalised"); return; }
    if (code == FCN_MPI_ERR_BAD_ARGUMENT) { put(buffer, len, "bad argument (element type or count)"); return; }
    if (code == FCN_MPI_ERR_TYPE_SIZE) {
        put(buffer, len, "MPI_Type_size of MPI_FLOAT, MPI_DOUBLE, MPI_INT64_T, MPI_BYTE is not 4, 8, 8, 1: "
            "the library's predefined handles differ from those built in for its ABI");
        return;
    }
    char text[1024 + 1];   // MPI_MAX_ERROR_STRING: 256 (Open MPI), 512 (MPICH 4, standard), 1024 (older MPICH)
    int n = 0;
    if (!M.lib || M.error_string(code, text, &n) != 0) { snprintf(buffer, len, "MPI error %d", code); return; }
    if (n < 0) n = 0;
    if (n > 1024) n = 1024;
    text[n] = 0;
    put(buffer, len, text);
}
