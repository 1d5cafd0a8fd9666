/* filter2d_avx2_impl.h: the AVX2+FMA micro-kernel of the 2-D filters for one element type
 * (template.h: REAL, FN; FN(fc_fma) of real_math.h). Included by filter2d.c, which also
 * defines the vector of REAL and its operations (simd_avx2_f32.h, simd_avx2_f64.h):
 *     FC_TEMPLATE_LANES      REALs per vector (8 float, 4 double)
 *     FC_TEMPLATE_VEC        the vector type
 *     FC_TEMPLATE_LOADU, FC_TEMPLATE_STOREU, FC_TEMPLATE_SETZERO, FC_TEMPLATE_BROADCAST,
 *     FC_TEMPLATE_FMADD      its unaligned load and store, zero, broadcast and a*b + c
 */

/* The tap sums of output pixels j .. j + V*L of a row (V vectors) from the R input rows
 * `rows`: ax[v] of kernel kx and, when `both`, ay[v] of kernel ky, from the same
 * loads. Each vector has its own accumulators, so that V (or 2V) multiply-add chains are in
 * flight at once (one chain waits out the FMA latency at every tap). Taps accumulate in the
 * order r, s. V and `both` are constants at each call, so the loops unroll into
 * registers and the unused kernel disappears. */
__attribute__((target("avx2,fma"), always_inline))
static inline void FN(tap_sums_avx2)(FC_TEMPLATE_VEC *ax, FC_TEMPLATE_VEC *ay,
                                     const REAL *const *rows, const REAL *kx, const REAL *ky,
                                     int64_t R, int64_t S, int64_t j, const int V,
                                     const int both)
{
    const int64_t L = FC_TEMPLATE_LANES;
    for (int v = 0; v < V; v++) {
        ax[v] = FC_TEMPLATE_SETZERO();
        if (both) {
            ay[v] = FC_TEMPLATE_SETZERO();
        }
    }
    for (int64_t r = 0; r < R; r++) {
        const REAL *x = rows[r] + j;
        for (int64_t s = 0; s < S; s++) {
            const FC_TEMPLATE_VEC wx = FC_TEMPLATE_BROADCAST(kx + r * S + s);
            const FC_TEMPLATE_VEC wy = both ? FC_TEMPLATE_BROADCAST(ky + r * S + s) : wx;
            for (int v = 0; v < V; v++) {
                FC_TEMPLATE_VEC xv = FC_TEMPLATE_LOADU(x + s + v * L);
                /* Holds xv in a register: compilers otherwise fold the load into both
                 * multiply-adds, loading it twice, and the loads bound the loop. */
                __asm__("" : "+x"(xv));
                ax[v] = FC_TEMPLATE_FMADD(wx, xv, ax[v]);
                if (both) {
                    ay[v] = FC_TEMPLATE_FMADD(wy, xv, ay[v]);
                }
            }
        }
    }
}

/* The tap sum of output pixel j alone, in the same order and fused as tap_sums_avx2. */
__attribute__((target("avx2,fma")))
static inline REAL FN(tap_sum_pixel_avx2)(const REAL *const *rows, const REAL *k, int64_t R,
                                          int64_t S, int64_t j)
{
    REAL acc = 0;
    for (int64_t r = 0; r < R; r++) {
        for (int64_t s = 0; s < S; s++) {
            acc = FN(fc_fma)(k[r * S + s], rows[r][j + s], acc);
        }
    }
    return acc;
}

/* y[j] = sum over r, s of k[r*S + s] * rows[r][c0 + j + s] for j in [0, n): eight vectors of
 * outputs per step, then one vector, then single pixels. The portable twin sums the taps in
 * the same order without fusing the multiply-add, so the two differ in rounding; here a
 * pixel's value does not depend on which step computes it. */
__attribute__((target("avx2,fma")))
static void FN(filter_row_avx2)(REAL *y, const REAL *const *rows, const REAL *k, int64_t R,
                                int64_t S, int64_t c0, int64_t n)
{
    const int64_t L = FC_TEMPLATE_LANES;
    FC_TEMPLATE_VEC acc[8];
    int64_t j = 0;
    for (; j + 8 * L <= n; j += 8 * L) {
        FN(tap_sums_avx2)(acc, NULL, rows, k, NULL, R, S, c0 + j, 8, 0);
        for (int v = 0; v < 8; v++) {
            FC_TEMPLATE_STOREU(y + j + v * L, acc[v]);
        }
    }
    for (; j + L <= n; j += L) {
        FN(tap_sums_avx2)(acc, NULL, rows, k, NULL, R, S, c0 + j, 1, 0);
        FC_TEMPLATE_STOREU(y + j, acc[0]);
    }
    for (; j < n; j++) {
        y[j] = FN(tap_sum_pixel_avx2)(rows, k, R, S, c0 + j);
    }
}

/* sqrt(gx^2 + gy^2) of one vector, multiplied and added apart (never fused), as the portable
 * magnitude is. */
__attribute__((target("avx2,fma"), always_inline))
static inline FC_TEMPLATE_VEC FN(magnitude_avx2)(FC_TEMPLATE_VEC gx, FC_TEMPLATE_VEC gy)
{
    return FC_TEMPLATE_SQRT(FC_TEMPLATE_ADD(FC_TEMPLATE_MUL(gx, gx), FC_TEMPLATE_MUL(gy, gy)));
}

/* y[j] = sqrt(gx^2 + gy^2) for j in [0, n), gx and gy the tap sums of kx and ky at column
 * c0 + j as filter_row_avx2 computes them: both from the same loads, with no row of gy in
 * memory. */
__attribute__((target("avx2,fma")))
static void FN(magnitude_row_avx2)(REAL *y, const REAL *const *rows, const REAL *kx,
                                   const REAL *ky, int64_t R, int64_t S, int64_t c0,
                                   int64_t n)
{
    const int64_t L = FC_TEMPLATE_LANES;
    FC_TEMPLATE_VEC ax[4], ay[4];
    int64_t j = 0;
    for (; j + 4 * L <= n; j += 4 * L) {
        FN(tap_sums_avx2)(ax, ay, rows, kx, ky, R, S, c0 + j, 4, 1);
        for (int v = 0; v < 4; v++) {
            FC_TEMPLATE_STOREU(y + j + v * L, FN(magnitude_avx2)(ax[v], ay[v]));
        }
    }
    for (; j + L <= n; j += L) {
        FN(tap_sums_avx2)(ax, ay, rows, kx, ky, R, S, c0 + j, 1, 1);
        FC_TEMPLATE_STOREU(y + j, FN(magnitude_avx2)(ax[0], ay[0]));
    }
    for (; j < n; j++) {
        const REAL gx = FN(tap_sum_pixel_avx2)(rows, kx, R, S, c0 + j);
        const REAL gy = FN(tap_sum_pixel_avx2)(rows, ky, R, S, c0 + j);
        y[j] = FN(fc_magnitude)(gx, gy);
    }
}
