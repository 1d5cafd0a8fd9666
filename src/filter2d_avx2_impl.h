/* filter2d_avx2_impl.h: the AVX2+FMA micro-kernel of the 2-D filters for one element type
 * (template.h: REAL, FN; FN(fc_fma) of real_math.h). Included by filter2d.c, which also
 * defines the vector of REAL and its operations (simd_avx2_f32.h, simd_avx2_f64.h):
 *     FC_TEMPLATE_LANES      REALs per vector (8 float, 4 double)
 *     FC_TEMPLATE_VEC        the vector type
 *     FC_TEMPLATE_LOADU, FC_TEMPLATE_STOREU, FC_TEMPLATE_SETZERO, FC_TEMPLATE_BROADCAST,
 *     FC_TEMPLATE_FMADD      its unaligned load and store, zero, broadcast and a*b + c
 */

/* y[j .. j + V*L) of the row below: V vectors of outputs, each in its own accumulator, so
 * that V multiply-add chains are in flight at once (one chain waits out the FMA latency at
 * every tap). V is a constant at each call, so the loops over it unroll into registers. */
__attribute__((target("avx2,fma"), always_inline))
static inline void FN(filter_vectors_avx2)(REAL *y, const REAL *const *rows, const REAL *k,
                                           int64_t R, int64_t S, int64_t j, const int V)
{
    const int64_t L = FC_TEMPLATE_LANES;
    FC_TEMPLATE_VEC acc[8];
    for (int v = 0; v < V; v++) {
        acc[v] = FC_TEMPLATE_SETZERO();
    }
    for (int64_t r = 0; r < R; r++) {
        const REAL *x = rows[r] + j;
        const REAL *kr = k + r * S;
        for (int64_t s = 0; s < S; s++) {
            const FC_TEMPLATE_VEC wv = FC_TEMPLATE_BROADCAST(kr + s);
            for (int v = 0; v < V; v++) {
                acc[v] = FC_TEMPLATE_FMADD(wv, FC_TEMPLATE_LOADU(x + s + v * L), acc[v]);
            }
        }
    }
    for (int v = 0; v < V; v++) {
        FC_TEMPLATE_STOREU(y + j + v * L, acc[v]);
    }
}

/* y[j] = sum over r, s of k[r*S + s] * rows[r][j + s] for j in [0, n): eight vectors of
 * outputs per step, then one vector, then single pixels. Taps accumulate in the order r, s,
 * as in the portable twin (which does not fuse the multiply-add, so the two differ in
 * rounding); a pixel's value does not depend on which of these steps computes it. */
__attribute__((target("avx2,fma")))
static void FN(filter_row_avx2)(REAL *y, const REAL *const *rows, const REAL *k, int64_t R,
                                int64_t S, int64_t n)
{
    const int64_t L = FC_TEMPLATE_LANES;
    int64_t j = 0;
    for (; j + 8 * L <= n; j += 8 * L) {
        FN(filter_vectors_avx2)(y, rows, k, R, S, j, 8);
    }
    for (; j + L <= n; j += L) {
        FN(filter_vectors_avx2)(y, rows, k, R, S, j, 1);
    }
    for (; j < n; j++) {
        REAL acc = 0;
        for (int64_t r = 0; r < R; r++) {
            for (int64_t s = 0; s < S; s++) {
                acc = FN(fc_fma)(k[r * S + s], rows[r][j + s], acc);
            }
        }
        y[j] = acc;
    }
}
