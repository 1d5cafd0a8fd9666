# Run-time configuration: threads and the SIMD path.

cdef int _check(fc_status status, str what) except -1:
    """Turn a C status into a Python exception (C never prints or exits)."""
    if status == FC_OK:
        return 0
    if status == FC_ERR_NOMEM:
        raise MemoryError(f"{what}: could not allocate the kernel's workspace")
    if status == FC_ERR_TOO_LARGE:
        raise MemoryError(f"{what}: one output row's im2col columns exceed the workspace "
                          f"limit of {FC_IM2COL_MAX_ROW_BYTES >> 20} MiB per thread; "
                          f"algorithm='direct' needs no workspace")
    raise RuntimeError(f"{what}: the C kernel rejected its problem description (status {status})")


# Bytes of one output row's im2col columns above which im2col refuses (src/fastconv.h).
IM2COL_MAX_ROW_BYTES = FC_IM2COL_MAX_ROW_BYTES

# Bytes of the Winograd weight gradient's per-thread sums (36*C*K elements) above which it
# refuses (src/fastconv.h).
WINOGRAD_MAX_SUMS_BYTES = FC_WINOGRAD_MAX_SUMS_BYTES


def have_openmp():
    return bool(fc_have_openmp())


def get_num_threads():
    fc_sync_num_threads()
    return fc_get_num_threads()


def set_num_threads(int n):
    fc_set_num_threads(n)


def set_thread_num_threads(int n):
    """n threads for the calling thread's kernels alone (see fc_set_thread_num_threads)."""
    fc_set_thread_num_threads(n)


def openmp_started():
    return bool(fc_openmp_started())


def cpu_has_avx2_fma():
    return bool(fc_cpu_has_avx2_fma())


def cpu_has_avx512():
    return bool(fc_cpu_has_avx512())


def simd_select(int level):
    """0: generic, 1: AVX2+FMA, 2: AVX-512 (each capped by what the CPU has)."""
    fc_simd_select(level)


def simd_name():
    return fc_simd_name().decode()


def compiler():
    return COMPILER_VERSION


cdef extern from *:
    """
    #if defined(__clang__)
    #define FC_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define FC_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define FC_COMPILER "msvc"
    #else
    #define FC_COMPILER "unknown"
    #endif
    """
    const char *FC_COMPILER

COMPILER_VERSION = FC_COMPILER.decode()
