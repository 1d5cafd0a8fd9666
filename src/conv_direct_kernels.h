/* conv_direct_kernels.h: the shapes and the contract of the direct convolution's
 * micro-kernels (conv_direct.c runs them; conv_direct_kernels_impl.h declares their types).
 *
 * Only the micro-kernels know SIMD. Each exists as a portable C twin (conv_direct_generic.c),
 * an AVX2+FMA version (conv_direct_avx2.c) and an AVX-512 one (conv_direct_avx512.c), all
 * with the same contract, gathered per instruction set and element type in one table of
 * kernels (fc_direct_kernels_<type>_<isa>, indexed by block size). A "vector" is 32 bytes
 * (8 floats or 4 doubles) for the portable and AVX2 kernels, 64 bytes for AVX-512: the
 * block shapes below count vectors.
 *
 * All kernels read an input buffer through a table of tap offsets: filter tap t (one
 * (channel, row, column) of the filter) of the output pixel numbered v reads x[v + off[t]].
 * conv_direct.c lays the buffer out so that this holds for any stride, dilation and
 * padding, so the kernels never branch on geometry.
 *
 * tile (forward, and the data gradient as a correlation): KB filters x VW pixels,
 *     tile[k][j] = bias[k] + sum over t < ntaps of w[t*KB + k] * x[off[t] + j],
 *     every accumulator in registers over all the taps, stored through a strip map.
 * tile_add (the data gradient as the forward's adjoint): the same sums added to KB rows,
 *     y[yoff[i] + j] += sum over t < ntaps of w[t*KB + i] * x[off[t] + j],  j < VW.
 * wgrad (weight gradient, vectorised over pixels): KB filters x TB taps,
 *     dw[k*ldw + t] += sum over i < rows, q < Q of dy[k*ldk + i*ldy + q] * x[off[t] + i*pitch + q]
 *     for t < nt (off holds TB entries; the extra taps are computed and dropped). Lanes
 *     past Q are masked, never multiplied by zero, so an inf or NaN that the convolution
 *     never reads cannot leak into dw.
 * wgradk (weight gradient, vectorised over filters): TB taps x NV vectors of filters,
 *     dwt[t*ldt + k] += sum over i < rows, q < Q of
 *                       x[off[t] + i*pitch + q] * dyt[(i*Q + q)*ldv + k]
 *     for t < nt, k < NV * (lanes per vector); dwt and dyt hold filters contiguously.
 * tilek (forward vectorised over filters, for layers of few pixels per row and a multiple
 *     of the vector length of filters): PB pixels x NV vectors of filters,
 *     y[k*ldk + j] = bias[k] + sum over t < ntaps of x[off[t] + j] * w[t*ldw + k]
 *     for j < PB, k < nk <= NV * (lanes per vector); w and bias hold NV vectors of filters
 *     per tap (zeros past the block's filters), each pixel's sums one vector per NV.
 * transpose (the passes' weight packs): dst[j*ldd + i] = src[i*lds + j] for i < rows,
 *     j < cols, the values copied bit for bit.
 */
#ifndef FASTCONV_CONV_DIRECT_KERNELS_H
#define FASTCONV_CONV_DIRECT_KERNELS_H

#include <stdint.h>

/* tile and tile_add exist for KB = 1..6 rows, each with NV vectors per row: X(KB, NV).
 * 8 to 12 accumulators: enough independent FMA chains to hide the FMA latency (2 pipes x 4
 * cycles), few enough to leave registers for the broadcast weight and the inputs. */
#define FC_TILE_SHAPES(X) X(1, 8) X(2, 5) X(3, 4) X(4, 3) X(5, 2) X(6, 2)
#define FC_TILE_KB_MAX 6
#define FC_TILE_VW_MAX 128  /* one row of 8 vectors of 16 floats (AVX-512) */

/* wgrad exists for KB = 1..3 filters and wgradk for NV = 1..3 vectors of filters, each
 * with TB taps: X(KB or NV, TB), 8 to 12 accumulators. */
#define FC_WGRAD_SHAPES(X) X(1, 8) X(2, 6) X(3, 4)
#define FC_WGRAD_KB_MAX 3
#define FC_WGRADK_NV_MAX 3
#define FC_WGRAD_TB_MAX 8

/* The tables of the shapes above, indexed by KB (or NV); entry 0 is unused. */
#define FC_SHAPE_ENTRY(BLOCK, SIZE) [BLOCK] = SIZE,
static const int fc_tile_nv[FC_TILE_KB_MAX + 1] = {FC_TILE_SHAPES(FC_SHAPE_ENTRY)};
static const int fc_wgrad_tb[FC_WGRAD_KB_MAX + 1] = {FC_WGRAD_SHAPES(FC_SHAPE_ENTRY)};
#undef FC_SHAPE_ENTRY

/* tilek exists for NV = 1..2 vectors of filters and PB = 1..16/NV pixels; a caller uses
 * PB <= 16/NV with 32 vector registers (AVX-512), 12/NV with 16 (AVX2): NV*PB
 * accumulators, leaving a register for the weights and one for a broadcast. */
#define FC_TILEK_NV_MAX 2
#define FC_TILEK_PB_MAX 16
#define FC_TILEK_ACC_16_REGISTERS 12
#define FC_TILEK_ACC_32_REGISTERS 16

/* The (NV, PB) pairs each kernel set instantiates as tilek_NV_PB (FC_TILEK defined by the
 * includer), and the table rows naming them: NV*PB <= 16. */
#define FC_TILEK_ALL \
    FC_TILEK(1, 1) FC_TILEK(1, 2) FC_TILEK(1, 3) FC_TILEK(1, 4) \
    FC_TILEK(1, 5) FC_TILEK(1, 6) FC_TILEK(1, 7) FC_TILEK(1, 8) \
    FC_TILEK(1, 9) FC_TILEK(1, 10) FC_TILEK(1, 11) FC_TILEK(1, 12) \
    FC_TILEK(1, 13) FC_TILEK(1, 14) FC_TILEK(1, 15) FC_TILEK(1, 16) \
    FC_TILEK(2, 1) FC_TILEK(2, 2) FC_TILEK(2, 3) FC_TILEK(2, 4) \
    FC_TILEK(2, 5) FC_TILEK(2, 6) FC_TILEK(2, 7) FC_TILEK(2, 8)
#define FC_TILEK_TABLE                                                                       \
    {NULL},                                                                                  \
    {NULL, FN(tilek_1_1), FN(tilek_1_2), FN(tilek_1_3), FN(tilek_1_4), FN(tilek_1_5),        \
     FN(tilek_1_6), FN(tilek_1_7), FN(tilek_1_8), FN(tilek_1_9), FN(tilek_1_10),             \
     FN(tilek_1_11), FN(tilek_1_12), FN(tilek_1_13), FN(tilek_1_14), FN(tilek_1_15),         \
     FN(tilek_1_16)},                                                                        \
    {NULL, FN(tilek_2_1), FN(tilek_2_2), FN(tilek_2_3), FN(tilek_2_4), FN(tilek_2_5),        \
     FN(tilek_2_6), FN(tilek_2_7), FN(tilek_2_8)}

/* The kernel tables of one set (fc_direct_kernels, conv_direct_kernels_impl.h), from the
 * functions each kernel template names FN(tile1), FN(tile_add1), FN(wgrad1), FN(wgradk1),
 * FN(tilek_1_1) and so on. */
#define FC_DIRECT_KERNEL_TABLES                                                              \
    .tile = {NULL, FN(tile1), FN(tile2), FN(tile3), FN(tile4), FN(tile5), FN(tile6)},        \
    .tile_add = {NULL, FN(tile_add1), FN(tile_add2), FN(tile_add3), FN(tile_add4),           \
                 FN(tile_add5), FN(tile_add6)},                                              \
    .wgrad = {NULL, FN(wgrad1), FN(wgrad2), FN(wgrad3)},                                     \
    .wgradk = {NULL, FN(wgradk1), FN(wgradk2), FN(wgradk3)},                                 \
    .tilek = {FC_TILEK_TABLE},                                                               \
    .transpose = FN(transpose)

/* Where a strip's lanes are stored: lanes [lo[i], hi[i]) of filter k go to
 * y[base[i] + k*ldk + lane], one segment per output row the strip touches. */
#define FC_STRIP_MAX_SEG 8
typedef struct {
    int nseg;
    int lo[FC_STRIP_MAX_SEG], hi[FC_STRIP_MAX_SEG];
    int64_t base[FC_STRIP_MAX_SEG];
    int64_t ldk;
} fc_strip_map;

#endif /* FASTCONV_CONV_DIRECT_KERNELS_H */
