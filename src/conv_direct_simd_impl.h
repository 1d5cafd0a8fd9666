/* conv_direct_simd_impl.h: the SIMD micro-kernels for one element type and one instruction
 * set. Included by conv_direct_avx2.c and conv_direct_avx512.c with REAL, FN(name), ISA(name)
 * (the tables' suffix), the target attributes FC_TARGET and FC_TARGET_INLINE, the lane count
 * VL, the vector and mask types VEC and MASK and the V_* operations defined. Contracts in
 * conv_direct_kernels.h.
 *
 * Accumulators are arrays of exactly 12 vectors (block sizes keep KB*NV <= 12), which the
 * compiler keeps in registers; a larger, partly used array would stay in memory. */

/* y <- tile (kb, vw) through the strip map: whole vectors stored plainly, the ends of a
 * segment with a masked store (masked lanes are never touched, so they cannot fault). */
static FC_TARGET void FN(store_map)(REAL *y, const fc_strip_map *map, const REAL *tile, int kb,
                                    int vw)
{
    for (int s = 0; s < map->nseg; s++) {
        const int lo = map->lo[s], hi = map->hi[s];
        for (int j = lo - lo % VL; j < hi; j += VL) {
            const MASK mask = V_LANES(lo - j, hi - j);
            const int whole = j >= lo && j + VL <= hi;
            for (int k = 0; k < kb; k++) {
                REAL *dst = y + map->base[s] + k * map->ldk + j;
                const VEC v = V_LOAD(tile + k * vw + j);
                if (whole) {
                    V_STOREU(dst, v);
                } else {
                    V_MASKSTORE(dst, mask, v);
                }
            }
        }
    }
}

/* acc (KB rows, NV vectors) += sum over taps of w[t*KB + k] * x[off[t] + lanes]: per tap,
 * NV loads of x, KB broadcast weights, KB*NV FMAs. The loop of tile and tile_add. */
FC_TARGET_INLINE void FN(tile_taps)(const int KB, const int NV, VEC acc[12], const REAL *x,
                                    const int64_t *off, int64_t ntaps, const REAL *w)
{
    for (int64_t t = 0; t < ntaps; t++) {
        const REAL *xt = x + off[t];
        const REAL *wt = w + t * KB;
        /* 12 accumulators + min(KB, NV) held values + 1 <= 16 registers: hold whichever of
         * the weights and the input vectors are fewer, stream the other */
        if (KB <= NV) {
            VEC wk[FC_TILE_KB_MAX];
            for (int k = 0; k < KB; k++) {
                wk[k] = V_BCAST(wt + k);
            }
            for (int v = 0; v < NV; v++) {
                VEC xv = V_LOADU(xt + VL * v);
                FC_IN_REGISTER(xv);
                for (int k = 0; k < KB; k++) {
                    acc[k * NV + v] = V_FMA(wk[k], xv, acc[k * NV + v]);
                }
            }
        } else {
            VEC xv[FC_TILE_KB_MAX];
            for (int v = 0; v < NV; v++) {
                xv[v] = V_LOADU(xt + VL * v);
            }
            for (int k = 0; k < KB; k++) {
                const VEC wk = V_BCAST(wt + k);
                for (int v = 0; v < NV; v++) {
                    acc[k * NV + v] = V_FMA(wk, xv[v], acc[k * NV + v]);
                }
            }
        }
    }
}

/* tile (KB filters, NV*VL pixels), from the bias, stored through the strip map. The
 * accumulators go through memory once, with constant indices: any run-time-dependent use
 * of them (such as storing each straight through the map) makes GCC keep them all in
 * memory, a store per FMA. */
FC_TARGET_INLINE void FN(tile)(const int KB, const int NV, REAL *y, const fc_strip_map *map,
                               const REAL *x, const int64_t *off, int64_t ntaps, const REAL *w,
                               const REAL *bias)
{
    VEC acc[12];
    for (int k = 0; k < KB; k++) {
        for (int v = 0; v < NV; v++) {
            acc[k * NV + v] = V_BCAST(bias + k);
        }
    }
    FN(tile_taps)(KB, NV, acc, x, off, ntaps, w);
    _Alignas(64) REAL tile[FC_TILE_KB_MAX * FC_TILE_VW_MAX];
    FC_UNROLL
    for (int i = 0; i < KB * NV; i++) {
        V_STORE(tile + VL * i, acc[i]);
    }
    FN(store_map)(y, map, tile, KB, NV * VL);
}

/* rows y + yoff[i] (KB of them, NV*VL lanes each) += the tile's sums. */
FC_TARGET_INLINE void FN(tile_add)(const int KB, const int NV, REAL *y, const int64_t *yoff,
                                   const REAL *x, const int64_t *off, int64_t ntaps,
                                   const REAL *w)
{
    VEC acc[12];
    FC_UNROLL
    for (int i = 0; i < KB * NV; i++) {
        acc[i] = V_LOADU(y + yoff[i / NV] + VL * (i % NV));
    }
    FN(tile_taps)(KB, NV, acc, x, off, ntaps, w);
    FC_UNROLL
    for (int i = 0; i < KB * NV; i++) {
        V_STOREU(y + yoff[i / NV] + VL * (i % NV), acc[i]);
    }
}

/* dw (KB filters, TB taps) += dy . x over a band: per VL pixels, KB loads of dy, TB loads of
 * x, KB*TB FMAs; the last Q % VL pixels of a row through masked loads (masked lanes read
 * as 0 and are never read from memory). */
FC_TARGET_INLINE void FN(wgrad)(const int KB, const int TB, REAL *dw, int64_t ldw, int nt,
                                const REAL *dy, int64_t ldk, int64_t ldy, const REAL *x,
                                const int64_t *off, int64_t pitch, int64_t rows, int64_t Q)
{
    VEC acc[12];  /* acc[k*TB + t] */
    FC_UNROLL
    for (int i = 0; i < KB * TB; i++) {
        acc[i] = V_ZERO();
    }
    const int64_t q_full = Q - Q % VL;
    const MASK tail = V_LANES(0, (int)(Q % VL));
    for (int64_t i = 0; i < rows; i++) {
        const REAL *dy_row = dy + i * ldy;
        const REAL *x_tap[FC_WGRAD_TB_MAX];
        for (int t = 0; t < TB; t++) {
            x_tap[t] = x + off[t] + i * pitch;
        }
        for (int64_t q = 0; q < q_full; q += VL) {
            VEC d[FC_WGRAD_KB_MAX];
            for (int k = 0; k < KB; k++) {
                d[k] = V_LOADU(dy_row + k * ldk + q);
            }
            for (int t = 0; t < TB; t++) {
                VEC xv = V_LOADU(x_tap[t] + q);
                FC_IN_REGISTER(xv);
                for (int k = 0; k < KB; k++) {
                    acc[k * TB + t] = V_FMA(d[k], xv, acc[k * TB + t]);
                }
            }
        }
        if (q_full < Q) {
            VEC d[FC_WGRAD_KB_MAX];
            for (int k = 0; k < KB; k++) {
                d[k] = V_MASKLOAD(dy_row + k * ldk + q_full, tail);
            }
            for (int t = 0; t < TB; t++) {
                VEC xv = V_MASKLOAD(x_tap[t] + q_full, tail);
                FC_IN_REGISTER(xv);
                for (int k = 0; k < KB; k++) {
                    acc[k * TB + t] = V_FMA(d[k], xv, acc[k * TB + t]);
                }
            }
        }
    }
    /* via memory with constant indices: a run-time bound on acc keeps it out of registers */
    _Alignas(64) REAL sums[12 * VL];
    FC_UNROLL
    for (int i = 0; i < KB * TB; i++) {
        V_STORE(sums + VL * i, acc[i]);
    }
    for (int k = 0; k < KB; k++) {
        for (int t = 0; t < nt; t++) {
            dw[k * ldw + t] += V_HSUM(V_LOAD(sums + VL * (k * TB + t)));
        }
    }
}

/* dwt (TB taps, NV vectors of filters) += x (broadcast per tap) * dyt (NV vectors) over a
 * band, pixel by pixel: per pixel, NV loads of dyt, TB broadcasts of x, TB*NV FMAs. */
FC_TARGET_INLINE void FN(wgradk)(const int NV, const int TB, REAL *dwt, int64_t ldt, int nt,
                                 const REAL *dyt, int64_t ldv, const REAL *x, const int64_t *off,
                                 int64_t pitch, int64_t rows, int64_t Q)
{
    VEC acc[12];  /* acc[t*NV + v] */
    FC_UNROLL
    for (int i = 0; i < TB * NV; i++) {
        acc[i] = V_ZERO();
    }
    for (int64_t i = 0; i < rows; i++) {
        const REAL *dy_row = dyt + i * Q * ldv;
        const REAL *x_tap[FC_WGRAD_TB_MAX];
        for (int t = 0; t < TB; t++) {
            x_tap[t] = x + off[t] + i * pitch;
        }
        for (int64_t q = 0; q < Q; q++) {
            VEC d[FC_WGRADK_NV_MAX];
            for (int v = 0; v < NV; v++) {
                d[v] = V_LOADU(dy_row + q * ldv + VL * v);
            }
            for (int t = 0; t < TB; t++) {
                const VEC xb = V_BCAST(x_tap[t] + q);
                for (int v = 0; v < NV; v++) {
                    acc[t * NV + v] = V_FMA(xb, d[v], acc[t * NV + v]);
                }
            }
        }
    }
    _Alignas(64) REAL sums[12 * VL];
    FC_UNROLL
    for (int i = 0; i < TB * NV; i++) {
        V_STORE(sums + VL * i, acc[i]);
    }
    for (int t = 0; t < nt; t++) {
        for (int v = 0; v < NV; v++) {
            REAL *dst = dwt + t * ldt + VL * v;
            V_STOREU(dst, V_ADD(V_LOADU(dst), V_LOAD(sums + VL * (t * NV + v))));
        }
    }
}

/* tilek: PB pixels x NV vectors of filters, from the bias; per tap, NV loads of weights and
 * PB broadcasts of x (AVX-512 folds each into its FMA), PB*NV FMAs. The sums go to y one
 * filter row at a time (the output is filters-major). */
FC_TARGET_INLINE void FN(tilek)(const int NV, const int PB, VEC *acc, REAL *y, int64_t ldk,
                                int nk, const REAL *x, const int64_t *off, int64_t ntaps,
                                const REAL *w, int64_t ldw, const REAL *bias)
{
    for (int v = 0; v < NV; v++) {
        const VEC b = V_LOADU(bias + VL * v);
        for (int j = 0; j < PB; j++) {
            acc[j * NV + v] = b;
        }
    }
    for (int64_t t = 0; t < ntaps; t++) {
        const REAL *xt = x + off[t];
        const REAL *wt = w + t * ldw;
        VEC wv[FC_TILEK_NV_MAX];
        for (int v = 0; v < NV; v++) {
            wv[v] = V_LOADU(wt + VL * v);
            FC_IN_REGISTER(wv[v]);
        }
        for (int j = 0; j < PB; j++) {
            const VEC xb = V_BCAST(xt + j);
            for (int v = 0; v < NV; v++) {
                acc[j * NV + v] = V_FMA(xb, wv[v], acc[j * NV + v]);
            }
        }
    }
    _Alignas(64) REAL sums[FC_TILEK_PB_MAX * VL];
    FC_UNROLL
    for (int i = 0; i < NV * PB; i++) {
        V_STORE(sums + VL * i, acc[i]);
    }
    for (int k = 0; k < nk; k++) {
        for (int j = 0; j < PB; j++) {
            y[k * ldk + j] = sums[j * NV * VL + k];
        }
    }
}

/* One function per block size (KB, or NV for wgradk): the sizes become constants, so the
 * loops above unroll and the accumulators live in registers. */
#define FC_TILE(KB)                                                                         \
    static FC_TARGET void FN(tile##KB)(REAL *y, const fc_strip_map *map, const REAL *x,     \
                                       const int64_t *off, int64_t ntaps, const REAL *w,    \
                                       const REAL *bias)                                    \
    {                                                                                       \
        FN(tile)(KB, FC_TILE_NV(KB), y, map, x, off, ntaps, w, bias);                       \
    }                                                                                       \
    static FC_TARGET void FN(tile_add##KB)(REAL *y, const int64_t *yoff, const REAL *x,     \
                                           const int64_t *off, int64_t ntaps, const REAL *w) \
    {                                                                                       \
        FN(tile_add)(KB, FC_TILE_NV(KB), y, yoff, x, off, ntaps, w);                        \
    }
FC_TILE(1)
FC_TILE(2)
FC_TILE(3)
FC_TILE(4)
FC_TILE(5)
FC_TILE(6)
#undef FC_TILE

#define FC_WGRAD(N)                                                                         \
    static FC_TARGET void FN(wgrad##N)(REAL *dw, int64_t ldw, int nt, const REAL *dy,       \
                                       int64_t ldk, int64_t ldy, const REAL *x,             \
                                       const int64_t *off, int64_t pitch, int64_t rows,     \
                                       int64_t Q)                                           \
    {                                                                                       \
        FN(wgrad)(N, FC_WGRAD_TB(N), dw, ldw, nt, dy, ldk, ldy, x, off, pitch, rows, Q);    \
    }                                                                                       \
    static FC_TARGET void FN(wgradk##N)(REAL *dwt, int64_t ldt, int nt, const REAL *dyt,    \
                                        int64_t ldv, const REAL *x, const int64_t *off,     \
                                        int64_t pitch, int64_t rows, int64_t Q)             \
    {                                                                                       \
        FN(wgradk)(N, FC_WGRADK_TB(N), dwt, ldt, nt, dyt, ldv, x, off, pitch, rows, Q);     \
    }
FC_WGRAD(1)
FC_WGRAD(2)
FC_WGRAD(3)
#undef FC_WGRAD

/* tilek per (NV, PB), each with an accumulator array of exactly NV*PB vectors. */
#define FC_TILEK(NV, PB)                                                                    \
    static FC_TARGET void FN(tilek_##NV##_##PB)(REAL *y, int64_t ldk, int nk, const REAL *x, \
                                                const int64_t *off, int64_t ntaps,          \
                                                const REAL *w, int64_t ldw,                 \
                                                const REAL *bias)                           \
    {                                                                                       \
        VEC acc[NV * PB];                                                                   \
        FN(tilek)(NV, PB, acc, y, ldk, nk, x, off, ntaps, w, ldw, bias);                    \
    }
FC_TILEK_ALL
#undef FC_TILEK

const FN(fc_tilek_kernel) FN(ISA(fc_tilek))[FC_TILEK_NV_MAX + 1][FC_TILEK_PB_MAX + 1] = {
    FC_TILEK_TABLE
};

const FN(fc_tile_kernel) FN(ISA(fc_tile))[FC_TILE_KB_MAX + 1] = {
    NULL, FN(tile1), FN(tile2), FN(tile3), FN(tile4), FN(tile5), FN(tile6)
};
const FN(fc_tile_add_kernel) FN(ISA(fc_tile_add))[FC_TILE_KB_MAX + 1] = {
    NULL, FN(tile_add1), FN(tile_add2), FN(tile_add3), FN(tile_add4), FN(tile_add5),
    FN(tile_add6)
};
const FN(fc_wgrad_kernel) FN(ISA(fc_wgrad))[FC_WGRAD_KB_MAX + 1] = {
    NULL, FN(wgrad1), FN(wgrad2), FN(wgrad3)
};
const FN(fc_wgradk_kernel) FN(ISA(fc_wgradk))[FC_WGRADK_NV_MAX + 1] = {
    NULL, FN(wgradk1), FN(wgradk2), FN(wgradk3)
};
