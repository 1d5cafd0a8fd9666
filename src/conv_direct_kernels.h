/* conv_direct_kernels.h: the micro-kernels of the direct convolution (conv_direct.c).
 *
 * Only these functions know SIMD. Each exists as a portable C twin (conv_direct_generic.c)
 * and an AVX2+FMA version (conv_direct_avx2.c) with the same contract; conv_direct.c picks
 * one per call with fc_simd_avx2().
 *
 * Both kernels read an input buffer through a table of tap offsets: filter tap t (one
 * (channel, row, column) of the filter) of the output pixel numbered v reads x[v + off[t]].
 * conv_direct_impl.h builds the buffer so that this holds for any stride, dilation and
 * padding, so the kernels never branch on geometry.
 *
 * Tile kernel (forward and data gradient): KB filters x VW consecutive pixels,
 *     tile[k][j] = bias[k] + sum over t < ntaps of w[t*KB + k] * x[off[t] + j],
 * with every accumulator in registers over all the taps, then stored through a strip map.
 *
 * Weight-gradient kernel: KB filters x TB taps, summed over a band of rows,
 *     dw[k*ldw + t] += sum over i < rows, q < Q of dy[k*ldk + i*ldy + q] * x[off[t] + i*pitch + q]
 * for t < nt (off is padded to TB entries, the extra taps are computed and dropped).
 * Lanes past Q are masked, never multiplied by zero: an inf or NaN that the convolution
 * never reads cannot leak into dw.
 */
#ifndef FASTCONV_CONV_DIRECT_KERNELS_H
#define FASTCONV_CONV_DIRECT_KERNELS_H

#include <stdint.h>

/* Tile kernels exist for KB = 1..6 filters. FC_TILE_NV(kb) 32-byte vectors per filter make
 * 8 to 12 accumulators: enough independent FMA chains to hide the FMA latency (2 pipes x
 * 4 cycles), and few enough to leave registers for the broadcast weight and the inputs. */
#define FC_TILE_KB_MAX 6
#define FC_TILE_NV(kb) ((kb) == 1 ? 8 : (kb) == 2 ? 5 : (kb) == 3 ? 4 : (kb) == 4 ? 3 : 2)
/* Pixels per strip of a tile of kb filters, for an element type of `size` bytes. */
#define FC_TILE_VW(kb, size) (FC_TILE_NV(kb) * (int)(32 / (size)))
#define FC_TILE_VW_MAX 64

/* Weight-gradient kernels exist for KB = 1..3 filters; FC_WGRAD_TB(kb) taps make 8 to 12
 * accumulators, each a vector of partial sums over pixels. */
#define FC_WGRAD_KB_MAX 3
#define FC_WGRAD_TB(kb) ((kb) == 1 ? 8 : (kb) == 2 ? 6 : 4)
#define FC_WGRAD_TB_MAX 8

/* Where a strip's lanes are stored: lanes [lo[i], hi[i]) of filter k go to
 * y[base[i] + k*ldk + lane], one segment per output row the strip touches. */
#define FC_STRIP_MAX_SEG 8
typedef struct {
    int nseg;
    int lo[FC_STRIP_MAX_SEG], hi[FC_STRIP_MAX_SEG];
    int64_t base[FC_STRIP_MAX_SEG];
    int64_t ldk;
} fc_strip_map;

#define FC_DECLARE_DIRECT_KERNELS(SUFFIX, T)                                                  \
    typedef void (*fc_tile_kernel_##SUFFIX)(T *y, const fc_strip_map *map, const T *x,        \
                                            const int64_t *off, int64_t ntaps, const T *w,    \
                                            const T *bias);                                   \
    typedef void (*fc_wgrad_kernel_##SUFFIX)(T *dw, int64_t ldw, int nt, const T *dy,         \
                                             int64_t ldk, int64_t ldy, const T *x,            \
                                             const int64_t *off, int64_t pitch, int64_t rows, \
                                             int64_t Q);                                      \
    /* indexed by KB; entry 0 is unused */                                                    \
    extern const fc_tile_kernel_##SUFFIX fc_tile_generic_##SUFFIX[FC_TILE_KB_MAX + 1];        \
    extern const fc_tile_kernel_##SUFFIX fc_tile_avx2_##SUFFIX[FC_TILE_KB_MAX + 1];           \
    extern const fc_wgrad_kernel_##SUFFIX fc_wgrad_generic_##SUFFIX[FC_WGRAD_KB_MAX + 1];     \
    extern const fc_wgrad_kernel_##SUFFIX fc_wgrad_avx2_##SUFFIX[FC_WGRAD_KB_MAX + 1];
FC_DECLARE_DIRECT_KERNELS(f32, float)
FC_DECLARE_DIRECT_KERNELS(f64, double)
#undef FC_DECLARE_DIRECT_KERNELS

#endif /* FASTCONV_CONV_DIRECT_KERNELS_H */
