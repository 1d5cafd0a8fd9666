/* conv_direct_simd_impl.h: the SIMD micro-kernels for one element type and one instruction
 * set (template.h: REAL, FN, ISA), and their table ISA(FN(fc_direct_kernels)). Contracts in
 * conv_direct_kernels.h. The includer (conv_direct_avx2.c, conv_direct_avx512.c) defines,
 * for each element type, the vector vocabulary the kernels use through FN(...): the types
 * vec and mask, the lane count `lanes`, the operations v_load, v_loadu, v_store, v_storeu,
 * v_maskload, v_maskstore, v_bcast, v_fma, v_add, v_zero, v_lanes (the mask of lanes
 * [lo, hi)), v_hsum and v_transpose (a lanes x lanes square in registers, rows in and
 * columns out); the attributes FC_TARGET and FC_TARGET_INLINE, FC_IN_REGISTER and
 * FC_UNROLL; and the template parameter FC_TEMPLATE_TILEK_ACC, the accumulators a tilek
 * call may use.
 *
 * Accumulators are arrays of exactly 12 vectors (block sizes keep KB*NV <= 12), which the
 * compiler keeps in registers; a larger, partly used array would stay in memory. */
#include "conv_direct_kernels_impl.h"

/* y <- tile (kb, vw) through the strip map: whole vectors stored plainly, the ends of a
 * segment with a masked store (masked lanes are never touched, so they cannot fault). */
static FC_TARGET void FN(store_map)(REAL *y, const fc_strip_map *map, const REAL *tile, int kb,
                                    int vw)
{
    for (int s = 0; s < map->nseg; s++) {
        const int lo = map->lo[s], hi = map->hi[s];
        for (int j = lo - lo % FN(lanes); j < hi; j += FN(lanes)) {
            const FN(mask) mask = FN(v_lanes)(lo - j, hi - j);
            const int whole = j >= lo && j + FN(lanes) <= hi;
            for (int k = 0; k < kb; k++) {
                REAL *dst = y + map->base[s] + k * map->ldk + j;
                const FN(vec) v = FN(v_load)(tile + k * vw + j);
                if (whole) {
                    FN(v_storeu)(dst, v);
                } else {
                    FN(v_maskstore)(dst, mask, v);
                }
            }
        }
    }
}

/* sums[0 .. n vectors) <- acc[0 .. n): the accumulators go through memory once, with
 * constant indices (n is a constant in every caller): any run-time-dependent use of them
 * makes GCC keep them all in memory, a store per FMA. */
FC_TARGET_INLINE void FN(spill)(REAL *sums, const FN(vec) *acc, const int n)
{
    FC_UNROLL
    for (int i = 0; i < n; i++) {
        FN(v_store)(sums + FN(lanes) * i, acc[i]);
    }
}

/* acc (KB rows, NV vectors) += sum over taps of w[t*KB + k] * x[off[t] + lanes]: per tap,
 * NV loads of x, KB broadcast weights, KB*NV FMAs. The loop of tile and tile_add. */
FC_TARGET_INLINE void FN(tile_taps)(const int KB, const int NV, FN(vec) acc[12], const REAL *x,
                                    const int64_t *off, int64_t ntaps, const REAL *w)
{
    for (int64_t t = 0; t < ntaps; t++) {
        const REAL *xt = x + off[t];
        const REAL *wt = w + t * KB;
        /* 12 accumulators + min(KB, NV) held values + 1 <= 16 registers: hold whichever of
         * the weights and the input vectors are fewer, stream the other */
        if (KB <= NV) {
            FN(vec) wk[FC_TILE_KB_MAX];
            for (int k = 0; k < KB; k++) {
                wk[k] = FN(v_bcast)(wt + k);
            }
            for (int v = 0; v < NV; v++) {
                FN(vec) xv = FN(v_loadu)(xt + FN(lanes) * v);
                FC_IN_REGISTER(xv);
                for (int k = 0; k < KB; k++) {
                    acc[k * NV + v] = FN(v_fma)(wk[k], xv, acc[k * NV + v]);
                }
            }
        } else {
            FN(vec) xv[FC_TILE_KB_MAX];
            for (int v = 0; v < NV; v++) {
                xv[v] = FN(v_loadu)(xt + FN(lanes) * v);
            }
            for (int k = 0; k < KB; k++) {
                const FN(vec) wk = FN(v_bcast)(wt + k);
                for (int v = 0; v < NV; v++) {
                    acc[k * NV + v] = FN(v_fma)(wk, xv[v], acc[k * NV + v]);
                }
            }
        }
    }
}

/* tile (KB filters, NV vectors of pixels), from the bias, stored through the strip map
 * after a spill (storing each accumulator straight through the map would keep them all in
 * memory). */
FC_TARGET_INLINE void FN(tile)(const int KB, const int NV, REAL *y, const fc_strip_map *map,
                               const REAL *x, const int64_t *off, int64_t ntaps, const REAL *w,
                               const REAL *bias)
{
    FN(vec) acc[12];
    for (int k = 0; k < KB; k++) {
        for (int v = 0; v < NV; v++) {
            acc[k * NV + v] = FN(v_bcast)(bias + k);
        }
    }
    FN(tile_taps)(KB, NV, acc, x, off, ntaps, w);
    _Alignas(64) REAL tile[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
    FN(spill)(tile, acc, KB * NV);
    FN(store_map)(y, map, tile, KB, NV * FN(lanes));
}

/* rows y + yoff[i] (KB of them, NV vectors each) += the tile's sums. */
FC_TARGET_INLINE void FN(tile_add)(const int KB, const int NV, REAL *y, const int64_t *yoff,
                                   const REAL *x, const int64_t *off, int64_t ntaps,
                                   const REAL *w)
{
    FN(vec) acc[12];
    FC_UNROLL
    for (int i = 0; i < KB * NV; i++) {
        acc[i] = FN(v_loadu)(y + yoff[i / NV] + FN(lanes) * (i % NV));
    }
    FN(tile_taps)(KB, NV, acc, x, off, ntaps, w);
    FC_UNROLL
    for (int i = 0; i < KB * NV; i++) {
        FN(v_storeu)(y + yoff[i / NV] + FN(lanes) * (i % NV), acc[i]);
    }
}

/* dw (KB filters, TB taps) += dy . x over a band: per vector of pixels, KB loads of dy, TB
 * loads of x, KB*TB FMAs; the pixels past a row's last whole vector through masked loads
 * (masked lanes read as 0 and are never read from memory). */
FC_TARGET_INLINE void FN(wgrad)(const int KB, const int TB, REAL *dw, int64_t ldw, int nt,
                                const REAL *dy, int64_t ldk, int64_t ldy, const REAL *x,
                                const int64_t *off, int64_t pitch, int64_t rows, int64_t Q)
{
    FN(vec) acc[12];  /* acc[k*TB + t] */
    FC_UNROLL
    for (int i = 0; i < KB * TB; i++) {
        acc[i] = FN(v_zero)();
    }
    const int64_t q_full = Q - Q % FN(lanes);
    const FN(mask) tail = FN(v_lanes)(0, (int)(Q % FN(lanes)));
    for (int64_t i = 0; i < rows; i++) {
        const REAL *dy_row = dy + i * ldy;
        const REAL *x_tap[FC_WGRAD_TB_MAX];
        for (int t = 0; t < TB; t++) {
            x_tap[t] = x + off[t] + i * pitch;
        }
        for (int64_t q = 0; q < q_full; q += FN(lanes)) {
            FN(vec) d[FC_WGRAD_KB_MAX];
            for (int k = 0; k < KB; k++) {
                d[k] = FN(v_loadu)(dy_row + k * ldk + q);
            }
            for (int t = 0; t < TB; t++) {
                FN(vec) xv = FN(v_loadu)(x_tap[t] + q);
                FC_IN_REGISTER(xv);
                for (int k = 0; k < KB; k++) {
                    acc[k * TB + t] = FN(v_fma)(d[k], xv, acc[k * TB + t]);
                }
            }
        }
        if (q_full < Q) {
            FN(vec) d[FC_WGRAD_KB_MAX];
            for (int k = 0; k < KB; k++) {
                d[k] = FN(v_maskload)(dy_row + k * ldk + q_full, tail);
            }
            for (int t = 0; t < TB; t++) {
                FN(vec) xv = FN(v_maskload)(x_tap[t] + q_full, tail);
                FC_IN_REGISTER(xv);
                for (int k = 0; k < KB; k++) {
                    acc[k * TB + t] = FN(v_fma)(d[k], xv, acc[k * TB + t]);
                }
            }
        }
    }
    _Alignas(64) REAL sums[12 * FN(lanes)];
    FN(spill)(sums, acc, KB * TB);
    for (int k = 0; k < KB; k++) {
        for (int t = 0; t < nt; t++) {
            dw[k * ldw + t] += FN(v_hsum)(FN(v_load)(sums + FN(lanes) * (k * TB + t)));
        }
    }
}

/* dwt (TB taps, NV vectors of filters) += x (broadcast per tap) * dyt (NV vectors) over a
 * band, pixel by pixel: per pixel, NV loads of dyt, TB broadcasts of x, TB*NV FMAs. */
FC_TARGET_INLINE void FN(wgradk)(const int NV, const int TB, REAL *dwt, int64_t ldt, int nt,
                                 const REAL *dyt, int64_t ldv, const REAL *x, const int64_t *off,
                                 int64_t pitch, int64_t rows, int64_t Q)
{
    FN(vec) acc[12];  /* acc[t*NV + v] */
    FC_UNROLL
    for (int i = 0; i < TB * NV; i++) {
        acc[i] = FN(v_zero)();
    }
    for (int64_t i = 0; i < rows; i++) {
        const REAL *dy_row = dyt + i * Q * ldv;
        const REAL *x_tap[FC_WGRAD_TB_MAX];
        for (int t = 0; t < TB; t++) {
            x_tap[t] = x + off[t] + i * pitch;
        }
        for (int64_t q = 0; q < Q; q++) {
            FN(vec) d[FC_WGRADK_NV_MAX];
            for (int v = 0; v < NV; v++) {
                d[v] = FN(v_loadu)(dy_row + q * ldv + FN(lanes) * v);
            }
            for (int t = 0; t < TB; t++) {
                const FN(vec) xb = FN(v_bcast)(x_tap[t] + q);
                for (int v = 0; v < NV; v++) {
                    acc[t * NV + v] = FN(v_fma)(xb, d[v], acc[t * NV + v]);
                }
            }
        }
    }
    _Alignas(64) REAL sums[12 * FN(lanes)];
    FN(spill)(sums, acc, TB * NV);
    for (int t = 0; t < nt; t++) {
        for (int v = 0; v < NV; v++) {
            REAL *dst = dwt + t * ldt + FN(lanes) * v;
            const FN(vec) sum = FN(v_load)(sums + FN(lanes) * (t * NV + v));
            FN(v_storeu)(dst, FN(v_add)(FN(v_loadu)(dst), sum));
        }
    }
}

/* tilek: PB pixels x NV vectors of filters, from the bias; per tap, NV loads of weights and
 * PB broadcasts of x (AVX-512 folds each into its FMA), PB*NV FMAs. The sums go to y one
 * filter row at a time (the output is filters-major). */
FC_TARGET_INLINE void FN(tilek)(const int NV, const int PB, FN(vec) *acc, REAL *y, int64_t ldk,
                                int nk, const REAL *x, const int64_t *off, int64_t ntaps,
                                const REAL *w, int64_t ldw, const REAL *bias)
{
    for (int v = 0; v < NV; v++) {
        const FN(vec) b = FN(v_loadu)(bias + FN(lanes) * v);
        for (int j = 0; j < PB; j++) {
            acc[j * NV + v] = b;
        }
    }
    for (int64_t t = 0; t < ntaps; t++) {
        const REAL *xt = x + off[t];
        const REAL *wt = w + t * ldw;
        FN(vec) wv[FC_TILEK_NV_MAX];
        for (int v = 0; v < NV; v++) {
            wv[v] = FN(v_loadu)(wt + FN(lanes) * v);
            FC_IN_REGISTER(wv[v]);
        }
        for (int j = 0; j < PB; j++) {
            const FN(vec) xb = FN(v_bcast)(xt + j);
            for (int v = 0; v < NV; v++) {
                acc[j * NV + v] = FN(v_fma)(xb, wv[v], acc[j * NV + v]);
            }
        }
    }
    _Alignas(64) REAL sums[FC_TILEK_PB_MAX * FN(lanes)];
    FN(spill)(sums, acc, NV * PB);
    for (int k = 0; k < nk; k++) {
        for (int j = 0; j < PB; j++) {
            y[k * ldk + j] = sums[j * NV * FN(lanes) + k];
        }
    }
}

/* One function per block size (KB, or NV for wgradk): the sizes become constants, so the
 * loops above unroll and the accumulators live in registers. */
#define FC_TILE(KB, NV)                                                                     \
    static FC_TARGET void FN(tile##KB)(REAL *y, const fc_strip_map *map, const REAL *x,     \
                                       const int64_t *off, int64_t ntaps, const REAL *w,    \
                                       const REAL *bias)                                    \
    {                                                                                       \
        FN(tile)(KB, NV, y, map, x, off, ntaps, w, bias);                                   \
    }                                                                                       \
    static FC_TARGET void FN(tile_add##KB)(REAL *y, const int64_t *yoff, const REAL *x,     \
                                           const int64_t *off, int64_t ntaps, const REAL *w) \
    {                                                                                       \
        FN(tile_add)(KB, NV, y, yoff, x, off, ntaps, w);                                    \
    }
FC_TILE_SHAPES(FC_TILE)
#undef FC_TILE

#define FC_WGRAD(N, TB)                                                                     \
    static FC_TARGET void FN(wgrad##N)(REAL *dw, int64_t ldw, int nt, const REAL *dy,       \
                                       int64_t ldk, int64_t ldy, const REAL *x,             \
                                       const int64_t *off, int64_t pitch, int64_t rows,     \
                                       int64_t Q)                                           \
    {                                                                                       \
        FN(wgrad)(N, TB, dw, ldw, nt, dy, ldk, ldy, x, off, pitch, rows, Q);                \
    }                                                                                       \
    static FC_TARGET void FN(wgradk##N)(REAL *dwt, int64_t ldt, int nt, const REAL *dyt,    \
                                        int64_t ldv, const REAL *x, const int64_t *off,     \
                                        int64_t pitch, int64_t rows, int64_t Q)             \
    {                                                                                       \
        FN(wgradk)(N, TB, dwt, ldt, nt, dyt, ldv, x, off, pitch, rows, Q);                  \
    }
FC_WGRAD_SHAPES(FC_WGRAD)
#undef FC_WGRAD

/* tilek per (NV, PB), each with an accumulator array of exactly NV*PB vectors. */
#define FC_TILEK(NV, PB)                                                                    \
    static FC_TARGET void FN(tilek_##NV##_##PB)(REAL *y, int64_t ldk, int nk, const REAL *x, \
                                                const int64_t *off, int64_t ntaps,          \
                                                const REAL *w, int64_t ldw,                 \
                                                const REAL *bias)                           \
    {                                                                                       \
        FN(vec) acc[NV * PB];                                                               \
        FN(tilek)(NV, PB, acc, y, ldk, nk, x, off, ntaps, w, ldw, bias);                    \
    }
FC_TILEK_ALL
#undef FC_TILEK

/* transpose in squares of lanes x lanes, each transposed in registers (FN(v_transpose));
 * partial squares at the edges load and store only their rows' and columns' lanes. */
static FC_TARGET void FN(transpose)(REAL *dst, int64_t ldd, const REAL *src, int64_t lds,
                                    int64_t rows, int64_t cols)
{
    enum { L = FN(lanes) };
    for (int64_t i0 = 0; i0 < rows; i0 += L) {
        const int nr = rows - i0 < L ? (int)(rows - i0) : L;
        const FN(mask) row_lanes = FN(v_lanes)(0, nr);
        for (int64_t j0 = 0; j0 < cols; j0 += L) {
            const int nc = cols - j0 < L ? (int)(cols - j0) : L;
            const FN(mask) col_lanes = FN(v_lanes)(0, nc);
            FN(vec) r[L];
            for (int i = 0; i < L; i++) {
                const REAL *s = src + (i0 + i) * lds + j0;
                r[i] = i >= nr ? FN(v_zero)()
                       : nc == L ? FN(v_loadu)(s) : FN(v_maskload)(s, col_lanes);
            }
            FN(v_transpose)(r);
            for (int j = 0; j < nc; j++) {
                REAL *d = dst + (j0 + j) * ldd + i0;
                if (nr == L) {
                    FN(v_storeu)(d, r[j]);
                } else {
                    FN(v_maskstore)(d, row_lanes, r[j]);
                }
            }
        }
    }
}

const FN(fc_direct_kernels) ISA(FN(fc_direct_kernels)) = {
    .lanes = FN(lanes),
    .tilek_acc = FC_TEMPLATE_TILEK_ACC,
    FC_DIRECT_KERNEL_TABLES,
};
