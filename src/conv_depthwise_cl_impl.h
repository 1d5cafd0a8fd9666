/* conv_depthwise_cl_impl.h: the micro-kernels of the depthwise convolution's channels-last
 * path (conv_depthwise.c), for one element type and instruction set (template.h: REAL, FN,
 * ISA). They work on blocks of DW_CB(REAL) channels laid out channels-last, a block's values
 * of one pixel side by side (fc_dw_cl_geom), and sum every lane in the same fixed order, so
 * they give the same bits on every call. Its includer defines the vector of REAL and its
 * operations (simd_avx2_f32.h and the others, or the scalar ones of conv_depthwise.c):
 *     FC_TEMPLATE_LANES      REALs per vector
 *     FC_TEMPLATE_VEC        the vector type
 *     FC_TEMPLATE_LOADU, FC_TEMPLATE_STOREU, FC_TEMPLATE_SETZERO, FC_TEMPLATE_FMADD
 *                            its unaligned load and store, zero and a*b + c
 *     FC_TEMPLATE_TARGET     the target attribute of the instruction set (may be empty)
 * the register budgets DW_CL_PIX_VECS (the forward pass's sums: output pixels times
 * vectors per block) and DW_CL_TAP_VECS (the weight gradient's: taps times vectors per
 * block), and, where a block is one vector and the instruction set has an in-register
 * transpose, DW_CL_TRANSPOSE(r) (r[i] row i in, column i out, DW_CB(REAL) vectors) and
 * DW_CL_ADD_SET1(v, b) (v plus b in every lane) for the copies into and out of the
 * channels-last layout; without them the copies are scalar loops. */

/* Vectors per channel block; output pixels the forward pass sums at once; taps the weight
 * gradient sums at once. */
#define DW_CL_NV (DW_CB(REAL) / FC_TEMPLATE_LANES)
#define DW_CL_QB (DW_CL_PIX_VECS / DW_CL_NV > 1 ? DW_CL_PIX_VECS / DW_CL_NV : 1)
_Static_assert(DW_CL_QB <= 8, "dw_cl_forward's cases of short rows go up to 7 pixels");
#define DW_CL_TB (DW_CL_TAP_VECS / DW_CL_NV > 1 ? DW_CL_TAP_VECS / DW_CL_NV : 1)
_Static_assert(DW_CL_TB <= 12, "dw_cl_weight's cases go up to 12 taps");

/* yb[p][q][.] for nq consecutive output pixels from q0 of nrows consecutive rows from the
 * one at yrow (reading xrow): the sum over the taps, in order, of wcl[t][.] times xb at the
 * pixel's tap. nrows * nq <= DW_CL_QB; both are constants at each call. */
static inline __attribute__((always_inline)) FC_TEMPLATE_TARGET void
FN(ISA(dw_cl_forward_run))(REAL *restrict yrow, const REAL *xrow, const REAL *wcl,
                           const fc_dw_cl_geom *g, int64_t q0, const int nrows, const int nq)
{
    const int64_t cb = DW_CB(REAL);
    const int64_t step = g->sw * cb, row_step = g->sh * g->Wp * cb, out_row = g->Q * cb;
    FC_TEMPLATE_VEC acc[DW_CL_QB][DW_CL_NV];
    DW_UNROLL
    for (int i = 0; i < nrows * nq; i++) {
        DW_UNROLL
        for (int v = 0; v < DW_CL_NV; v++) {
            acc[i][v] = FC_TEMPLATE_SETZERO();
        }
    }
    const REAL *base = xrow + q0 * step;
    for (int64_t r = 0; r < g->R; r++) {
        const REAL *in_r = base + r * g->dh * g->Wp * cb;
        const REAL *w_r = wcl + r * g->S * cb;
        for (int64_t s = 0; s < g->S; s++) {
            const REAL *in = in_r + s * g->dw * cb;
            FC_TEMPLATE_VEC wv[DW_CL_NV];
            DW_UNROLL
            for (int v = 0; v < DW_CL_NV; v++) {
                wv[v] = FC_TEMPLATE_LOADU(w_r + s * cb + v * FC_TEMPLATE_LANES);
            }
            DW_UNROLL
            for (int k = 0; k < nrows; k++) {
                DW_UNROLL
                for (int i = 0; i < nq; i++) {
                    DW_UNROLL
                    for (int v = 0; v < DW_CL_NV; v++) {
                        acc[k * nq + i][v] = FC_TEMPLATE_FMADD(
                            wv[v],
                            FC_TEMPLATE_LOADU(in + k * row_step + i * step
                                              + v * FC_TEMPLATE_LANES),
                            acc[k * nq + i][v]);
                    }
                }
            }
        }
    }
    DW_UNROLL
    for (int k = 0; k < nrows; k++) {
        DW_UNROLL
        for (int i = 0; i < nq; i++) {
            DW_UNROLL
            for (int v = 0; v < DW_CL_NV; v++) {
                FC_TEMPLATE_STOREU(yrow + k * out_row + (q0 + i) * cb + v * FC_TEMPLATE_LANES,
                                   acc[k * nq + i][v]);
            }
        }
    }
}

/* nrows output rows of nq-pixel groups, the last group ending at the row's end
 * (overlapping the one before: its pixels get the same sums again); nq <= Q and nrows are
 * constants at each call. */
static inline __attribute__((always_inline)) FC_TEMPLATE_TARGET void
FN(ISA(dw_cl_forward_row))(REAL *restrict yrow, const REAL *xrow, const REAL *wcl,
                           const fc_dw_cl_geom *g, const int nrows, const int nq)
{
    for (int64_t q0 = 0;; q0 += nq) {
        const int64_t q = q0 + nq <= g->Q ? q0 : g->Q - nq;
        FN(ISA(dw_cl_forward_run))(yrow, xrow, wcl, g, q, nrows, nq);
        if (q0 + nq >= g->Q) {
            break;
        }
    }
}

/* yb (P, Q, CB) from the zero-padded xb (Hp, Wp, CB) and the block's filters wcl (taps,
 * CB), a group's sums independent chains in registers: rows of at least DW_CL_QB pixels in
 * groups of DW_CL_QB (dw_cl_forward_row); shorter rows whole, two at a time where two fit
 * in DW_CL_QB (the last pair of an odd number of rows overlapping the one before). */
static FC_TEMPLATE_TARGET void FN(ISA(dw_cl_forward))(REAL *restrict yb, const REAL *xb,
                                                      const REAL *wcl, const fc_dw_cl_geom *g)
{
    const int64_t cb = DW_CB(REAL);
    const int pairs = 2 * g->Q <= DW_CL_QB && g->P >= 2;
    for (int64_t p0 = 0; p0 < g->P; p0 += 1 + pairs) {
        const int64_t p = pairs && p0 + 2 > g->P ? g->P - 2 : p0;
        const REAL *xrow = xb + p * g->sh * g->Wp * cb;
        REAL *yrow = yb + p * g->Q * cb;
        if (g->Q >= DW_CL_QB) {
            FN(ISA(dw_cl_forward_row))(yrow, xrow, wcl, g, 1, DW_CL_QB);
            continue;
        }
        /* Q < DW_CL_QB <= 8: the row (or pair) in one group of Q pixels */
        switch (g->Q) {
#define DW_CL_FORWARD_CASE(n)                                                            \
    case n:                                                                              \
        if (pairs) {                                                                     \
            FN(ISA(dw_cl_forward_run))(yrow, xrow, wcl, g, 0, 2,                         \
                                       2 * (n) <= DW_CL_QB ? (n) : 1);                   \
        } else {                                                                         \
            FN(ISA(dw_cl_forward_run))(yrow, xrow, wcl, g, 0, 1, (n) <= DW_CL_QB ? (n) : 1); \
        }                                                                                \
        break;
            DW_CL_FORWARD_CASE(1) DW_CL_FORWARD_CASE(2) DW_CL_FORWARD_CASE(3)
            DW_CL_FORWARD_CASE(4) DW_CL_FORWARD_CASE(5) DW_CL_FORWARD_CASE(6)
            DW_CL_FORWARD_CASE(7)
#undef DW_CL_FORWARD_CASE
        default:
            break;
        }
    }
}

/* dxb (H, W, CB) from dyb (P, Q, CB) and wcl (taps, CB): each input pixel sums, taps in
 * order, the products of the output pixels that read it, and only those (no zeros around
 * dy, whose products with an infinite weight would be NaN). The tables: row h has
 * rows->count[h] taps' rows, entry i giving the filter row's first tap (r * S) in
 * rows->tap[h * R + i] and the output row's offset in dyb in rows->at[h * R + i]; likewise
 * cols for the columns (tap s, output column's offset). */
static FC_TEMPLATE_TARGET void FN(ISA(dw_cl_data))(REAL *restrict dxb, const REAL *dyb,
                                                   const REAL *wcl, const fc_dw_cl_geom *g,
                                                   const fc_dw_cl_lists *rows,
                                                   const fc_dw_cl_lists *cols)
{
    const int64_t cb = DW_CB(REAL);
    for (int64_t h = 0; h < g->H; h++) {
        const int64_t nr = rows->count[h];
        const int64_t *rtap = rows->tap + h * g->R, *rat = rows->at + h * g->R;
        for (int64_t w = 0; w < g->W; w++) {
            const int64_t ns = cols->count[w];
            const int64_t *stap = cols->tap + w * g->S, *sat = cols->at + w * g->S;
            FC_TEMPLATE_VEC acc[DW_CL_NV];
            DW_UNROLL
            for (int v = 0; v < DW_CL_NV; v++) {
                acc[v] = FC_TEMPLATE_SETZERO();
            }
            for (int64_t i = 0; i < nr; i++) {
                const REAL *wr = wcl + rtap[i] * cb;
                const REAL *dr = dyb + rat[i];
                for (int64_t j = 0; j < ns; j++) {
                    const REAL *wt = wr + stap[j] * cb;
                    const REAL *d = dr + sat[j];
                    DW_UNROLL
                    for (int v = 0; v < DW_CL_NV; v++) {
                        acc[v] = FC_TEMPLATE_FMADD(
                            FC_TEMPLATE_LOADU(wt + v * FC_TEMPLATE_LANES),
                            FC_TEMPLATE_LOADU(d + v * FC_TEMPLATE_LANES), acc[v]);
                    }
                }
            }
            DW_UNROLL
            for (int v = 0; v < DW_CL_NV; v++) {
                FC_TEMPLATE_STOREU(dxb + (h * g->W + w) * cb + v * FC_TEMPLATE_LANES, acc[v]);
            }
        }
    }
}

/* sums[t0 .. t0 + nt) (CB each) += for each of those taps, the sum over the output pixels
 * in order of dyb (P, Q, CB) times the zero-padded xb (Hp, Wp, CB) at the pixel's tap, the
 * nt sums in registers across the pixels. nt is a constant at each call. */
static inline __attribute__((always_inline)) FC_TEMPLATE_TARGET void
FN(ISA(dw_cl_weight_taps))(REAL *restrict sums, const REAL *xb, const REAL *dyb,
                           const fc_dw_cl_geom *g, int64_t t0, const int nt)
{
    const int64_t cb = DW_CB(REAL);
    int64_t off[DW_CL_TB];
    FC_TEMPLATE_VEC acc[DW_CL_TB][DW_CL_NV];
    DW_UNROLL
    for (int i = 0; i < nt; i++) {
        const int64_t t = t0 + i;
        off[i] = (t / g->S * g->dh * g->Wp + t % g->S * g->dw) * cb;
        DW_UNROLL
        for (int v = 0; v < DW_CL_NV; v++) {
            acc[i][v] = FC_TEMPLATE_LOADU(sums + t * cb + v * FC_TEMPLATE_LANES);
        }
    }
    for (int64_t p = 0; p < g->P; p++) {
        const REAL *xrow = xb + p * g->sh * g->Wp * cb;
        const REAL *drow = dyb + p * g->Q * cb;
        for (int64_t q = 0; q < g->Q; q++) {
            const REAL *x = xrow + q * g->sw * cb;
            FC_TEMPLATE_VEC d[DW_CL_NV];
            DW_UNROLL
            for (int v = 0; v < DW_CL_NV; v++) {
                d[v] = FC_TEMPLATE_LOADU(drow + q * cb + v * FC_TEMPLATE_LANES);
            }
            DW_UNROLL
            for (int i = 0; i < nt; i++) {
                DW_UNROLL
                for (int v = 0; v < DW_CL_NV; v++) {
                    acc[i][v] = FC_TEMPLATE_FMADD(
                        d[v], FC_TEMPLATE_LOADU(x + off[i] + v * FC_TEMPLATE_LANES), acc[i][v]);
                }
            }
        }
    }
    DW_UNROLL
    for (int i = 0; i < nt; i++) {
        DW_UNROLL
        for (int v = 0; v < DW_CL_NV; v++) {
            FC_TEMPLATE_STOREU(sums + (t0 + i) * cb + v * FC_TEMPLATE_LANES, acc[i][v]);
        }
    }
}

/* sums (taps, CB) += the weight gradient's sums of one image (dw_cl_weight_taps), the taps
 * in groups of at most DW_CL_TB, of sizes differing by at most one. */
static FC_TEMPLATE_TARGET void FN(ISA(dw_cl_weight))(REAL *restrict sums, const REAL *xb,
                                                     const REAL *dyb, const fc_dw_cl_geom *g)
{
    const int64_t taps = g->R * g->S;
    const int64_t groups = (taps + DW_CL_TB - 1) / DW_CL_TB;
    int64_t t0 = 0;
    for (int64_t k = 0; k < groups; k++) {
        const int64_t nt = taps / groups + (k < taps % groups);
        switch (nt) {
#define DW_CL_WEIGHT_CASE(n)                                                             \
    case n:                                                                              \
        FN(ISA(dw_cl_weight_taps))(sums, xb, dyb, g, t0, (n) <= DW_CL_TB ? (n) : 1);     \
        break;
            DW_CL_WEIGHT_CASE(1) DW_CL_WEIGHT_CASE(2) DW_CL_WEIGHT_CASE(3)
            DW_CL_WEIGHT_CASE(4) DW_CL_WEIGHT_CASE(5) DW_CL_WEIGHT_CASE(6)
            DW_CL_WEIGHT_CASE(7) DW_CL_WEIGHT_CASE(8) DW_CL_WEIGHT_CASE(9)
            DW_CL_WEIGHT_CASE(10) DW_CL_WEIGHT_CASE(11) DW_CL_WEIGHT_CASE(12)
#undef DW_CL_WEIGHT_CASE
        default:
            break;
        }
        t0 += nt;
    }
}

/* buf[pos[i]][j] = src[j * plane + i], channels-last (CB lanes a pixel), for the lanes
 * j < lanes and the pixels i < npix; pos NULL means pos[i] = i. The lanes past `lanes`
 * are left as they are or zeroed (the kernels compute them, the passes never store
 * them). */
static FC_TEMPLATE_TARGET void FN(ISA(dw_cl_fill))(REAL *restrict buf, const REAL *src,
                                                   int64_t lanes, int64_t plane,
                                                   const int64_t *pos, int64_t npix)
{
    const int64_t cb = DW_CB(REAL);
#ifdef DW_CL_TRANSPOSE
    if (npix >= cb) {
        /* CB pixels at a time, the last run ending at npix (overlapping the one before) */
        for (int64_t i0 = 0;; i0 += cb) {
            const int64_t i = i0 + cb <= npix ? i0 : npix - cb;
            FC_TEMPLATE_VEC r[DW_CB(REAL)];
            if (lanes == cb) {
                DW_UNROLL
                for (int j = 0; j < DW_CB(REAL); j++) {
                    r[j] = FC_TEMPLATE_LOADU(src + j * plane + i);
                }
            } else {
                for (int j = 0; j < cb; j++) {
                    r[j] = j < lanes ? FC_TEMPLATE_LOADU(src + j * plane + i)
                                     : FC_TEMPLATE_SETZERO();
                }
            }
            DW_CL_TRANSPOSE(r);
            if (pos == NULL) {
                DW_UNROLL
                for (int k = 0; k < DW_CB(REAL); k++) {
                    FC_TEMPLATE_STOREU(buf + (i + k) * cb, r[k]);
                }
            } else {
                DW_UNROLL
                for (int k = 0; k < DW_CB(REAL); k++) {
                    FC_TEMPLATE_STOREU(buf + pos[i + k] * cb, r[k]);
                }
            }
            if (i0 + cb >= npix) {
                break;
            }
        }
        return;
    }
#endif
    for (int64_t j = 0; j < lanes; j++) {
        const REAL *s = src + j * plane;
        REAL *b = buf + j;
        if (pos == NULL) {
            for (int64_t i = 0; i < npix; i++) {
                b[i * cb] = s[i];
            }
        } else {
            for (int64_t i = 0; i < npix; i++) {
                b[pos[i] * cb] = s[i];
            }
        }
    }
}

/* dst[j * npix + i] = buf[i][j] (+ bias[j] when bias is not NULL) for the lanes j < lanes
 * and the pixels i < npix: the inverse of dw_cl_fill without pos. */
static FC_TEMPLATE_TARGET void FN(ISA(dw_cl_unfill))(REAL *restrict dst, const REAL *buf,
                                                     int64_t lanes, int64_t npix,
                                                     const REAL *bias)
{
    const int64_t cb = DW_CB(REAL);
#ifdef DW_CL_TRANSPOSE
    if (npix >= cb) {
        for (int64_t i0 = 0;; i0 += cb) {
            const int64_t i = i0 + cb <= npix ? i0 : npix - cb;
            FC_TEMPLATE_VEC r[DW_CB(REAL)];
            for (int k = 0; k < cb; k++) {
                r[k] = FC_TEMPLATE_LOADU(buf + (i + k) * cb);
            }
            DW_CL_TRANSPOSE(r);
            if (lanes == cb && bias == NULL) {
                DW_UNROLL
                for (int j = 0; j < DW_CB(REAL); j++) {
                    FC_TEMPLATE_STOREU(dst + j * npix + i, r[j]);
                }
            } else {
                for (int j = 0; j < lanes; j++) {
                    FC_TEMPLATE_STOREU(dst + j * npix + i,
                                       bias == NULL ? r[j] : DW_CL_ADD_SET1(r[j], bias[j]));
                }
            }
            if (i0 + cb >= npix) {
                break;
            }
        }
        return;
    }
#endif
    for (int64_t j = 0; j < lanes; j++) {
        REAL *d = dst + j * npix;
        const REAL *in = buf + j;
        if (bias == NULL) {
            for (int64_t i = 0; i < npix; i++) {
                d[i] = in[i * cb];
            }
        } else {
            const REAL bj = bias[j];
            for (int64_t i = 0; i < npix; i++) {
                d[i] = in[i * cb] + bj;
            }
        }
    }
}

static const FN(fc_dw_cl_kernels) FN(ISA(dw_cl_kernels)) = {
    FN(ISA(dw_cl_forward)), FN(ISA(dw_cl_data)), FN(ISA(dw_cl_weight)), FN(ISA(dw_cl_fill)),
    FN(ISA(dw_cl_unfill))
};

#undef DW_CL_NV
#undef DW_CL_QB
#undef DW_CL_TB
