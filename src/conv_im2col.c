/* conv_im2col.c: convolution as im2col + GEMM (forward, data gradient, weight gradient),
 * written once in conv_im2col_impl.h and instantiated for float and double. */
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "conv_index.h"
#include "conv_threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Each thread's column buffer holds at most this many bytes (or one output row's columns,
 * if that is larger, up to FC_IM2COL_MAX_ROW_BYTES of fastconv.h): the whole-batch im2col
 * matrix is never built. */
#define FC_IM2COL_WORKSPACE_BYTES ((int64_t)4 << 20)

/* A 1x1, stride-1, unpadded filter reads x itself: col would be a copy of x. */
static int is_pointwise(const fc_conv_problem *pb)
{
    return pb->R == 1 && pb->S == 1 && pb->stride_h == 1 && pb->stride_w == 1
        && pb->pad_top == 0 && pb->pad_bottom == 0 && pb->pad_left == 0 && pb->pad_right == 0;
}

/* One output row's columns (Cg*R*S x Q elements of elem_size bytes) exceed the hard limit:
 * the kernels then refuse (FC_ERR_TOO_LARGE) rather than allocate it. In double, as the
 * product of two int64 may not fit one. */
static int row_too_large(const fc_conv_problem *pb, size_t elem_size)
{
    const double row = (double)(pb->C / pb->groups) * (double)pb->R * (double)pb->S
                       * (double)pb->Q * (double)elem_size;
    return !is_pointwise(pb) && row > (double)FC_IM2COL_MAX_ROW_BYTES;
}

/* Split: with at least as many (n, g) pairs as threads, each thread takes whole pairs and
 * runs single-threaded GEMMs; otherwise pairs go one by one with a parallel GEMM. */
static int pairs_in_parallel(const fc_conv_problem *pb, int nthreads)
{
    return nthreads > 1 && pb->N * pb->groups >= nthreads;
}

#define REAL float
#define FN(name) name##_f32
#define GEMM fc_gemm_f32
#include "conv_im2col_impl.h"
#undef REAL
#undef FN
#undef GEMM

#define REAL double
#define FN(name) name##_f64
#define GEMM fc_gemm_f64
#include "conv_im2col_impl.h"
#undef REAL
#undef FN
#undef GEMM
