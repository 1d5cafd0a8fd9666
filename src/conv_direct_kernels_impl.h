/* conv_direct_kernels_impl.h: the types of the direct convolution's micro-kernels for one
 * element type (REAL, FN; template.h), and the table of one instruction set's kernels.
 * Included by every template that defines or runs them; contracts in
 * conv_direct_kernels.h. */

typedef void (*FN(fc_tile_kernel))(REAL *y, const fc_strip_map *map, const REAL *x,
                                   const int64_t *off, int64_t ntaps, const REAL *w,
                                   const REAL *bias);
typedef void (*FN(fc_tile_add_kernel))(REAL *y, const int64_t *yoff, const REAL *x,
                                       const int64_t *off, int64_t ntaps, const REAL *w);
typedef void (*FN(fc_wgrad_kernel))(REAL *dw, int64_t ldw, int nt, const REAL *dy,
                                    int64_t ldk, int64_t ldy, const REAL *x,
                                    const int64_t *off, int64_t pitch, int64_t rows,
                                    int64_t Q);
typedef void (*FN(fc_wgradk_kernel))(REAL *dwt, int64_t ldt, int nt, const REAL *dyt,
                                     int64_t ldv, const REAL *x, const int64_t *off,
                                     int64_t pitch, int64_t rows, int64_t Q);
typedef void (*FN(fc_tilek_kernel))(REAL *y, int64_t ldk, int nk, const REAL *x,
                                    const int64_t *off, int64_t ntaps, const REAL *w,
                                    int64_t ldw, const REAL *bias);
typedef void (*FN(fc_transpose_kernel))(REAL *dst, int64_t ldd, const REAL *src,
                                        int64_t lds, int64_t rows, int64_t cols);

/* One instruction set's kernels, each table indexed by its block size (KB, or NV for
 * wgradk; tilek by [NV][PB]); entry 0 is unused. */
typedef struct {
    int lanes;           /* elements per vector */
    int tilek_acc;       /* accumulators a tilek call may use (NV * PB) */
    FN(fc_tile_kernel) tile[FC_TILE_KB_MAX + 1];
    FN(fc_tile_add_kernel) tile_add[FC_TILE_KB_MAX + 1];
    FN(fc_wgrad_kernel) wgrad[FC_WGRAD_KB_MAX + 1];
    FN(fc_wgradk_kernel) wgradk[FC_WGRADK_NV_MAX + 1];
    FN(fc_tilek_kernel) tilek[FC_TILEK_NV_MAX + 1][FC_TILEK_PB_MAX + 1];
    FN(fc_transpose_kernel) transpose;
} FN(fc_direct_kernels);

extern const FN(fc_direct_kernels) FC_PASTE(FN(fc_direct_kernels), generic);
extern const FN(fc_direct_kernels) FC_PASTE(FN(fc_direct_kernels), avx2);
extern const FN(fc_direct_kernels) FC_PASTE(FN(fc_direct_kernels), avx512);
