/* pool_impl.h: the pooling kernels for one element type.
 * Included by pool.c with REAL (float or double), FN(name) (adds _f32/_f64) and
 * POOL_USE_AVX2 (1 when the AVX2 micro-kernels of pool_avx2.c exist for this type).
 *
 * Layouts: x, dx (N, C, H, W); y, dy (N, C, P, Q); indices (N, C, P, Q) int64; C-contiguous.
 * Every kernel is one OpenMP loop over the N*C planes: a thread owns each plane it writes, so
 * overlapping windows accumulate their gradients without races or atomics, and results do not
 * depend on the number of threads. Inside a plane the rows stream in order; the interior of a
 * row goes to a micro-kernel (pool_simd.h), the windows that touch the padding to the
 * per-window code, which is PyTorch's CPU algorithm written plainly. */

/* ---- portable micro-kernels: the twins of pool_avx2.c ---- */

/* PyTorch's rule for a running maximum: a greater value or a NaN takes over. So a NaN in the
 * window wins (the last NaN, as in PyTorch) and on ties the first maximum keeps the index. */
static inline int FN(takes_over)(REAL v, REAL m)
{
    return v > m || isnan(v);
}

/* The maximum of the K x K window at x (rows ldx apart) and its position r*K + s. */
static inline REAL FN(window_max_s2)(const REAL *x, int64_t ldx, const int K, int *pos)
{
    REAL m = x[0];
    int best = 0;
    for (int r = 0; r < K; r++) {
        for (int s = 0; s < K; s++) {
            const REAL v = x[r * ldx + s];
            if (FN(takes_over)(v, m)) {
                m = v;
                best = r * K + s;
            }
        }
    }
    *pos = best;
    return m;
}

static inline void FN(max_row_s2)(REAL *y, uint8_t *pos, const REAL *x, int64_t ldx, int64_t n,
                                  const int K)
{
    for (int64_t q = 0; q < n; q++) {
        int best;
        y[q] = FN(window_max_s2)(x + 2 * q, ldx, K, &best);
        if (pos) {
            pos[q] = (uint8_t)best;
        }
    }
}

/* Sums run row by row from zero, in PyTorch's order, so float results match it bit for bit. */
static inline void FN(avg_row_s2)(REAL *y, const REAL *x, int64_t ldx, int64_t n, REAL divisor,
                                  const int K)
{
    for (int64_t q = 0; q < n; q++) {
        const REAL *win = x + 2 * q;
        REAL sum = 0;
        for (int r = 0; r < K; r++) {
            for (int s = 0; s < K; s++) {
                sum += win[r * ldx + s];
            }
        }
        y[q] = sum / divisor;
    }
}

static void FN(max_row_k2s2)(REAL *y, uint8_t *pos, const REAL *x, int64_t ldx, int64_t n)
{
    FN(max_row_s2)(y, pos, x, ldx, n, 2);
}

static void FN(max_row_k3s2)(REAL *y, uint8_t *pos, const REAL *x, int64_t ldx, int64_t n)
{
    FN(max_row_s2)(y, pos, x, ldx, n, 3);
}

static void FN(avg_row_k2s2)(REAL *y, const REAL *x, int64_t ldx, int64_t n, REAL divisor)
{
    FN(avg_row_s2)(y, x, ldx, n, divisor, 2);
}

static void FN(avg_row_k3s2)(REAL *y, const REAL *x, int64_t ldx, int64_t n, REAL divisor)
{
    FN(avg_row_s2)(y, x, ldx, n, divisor, 3);
}

static void FN(max_grad_row_k2s2)(REAL *dx, int64_t ldx, const REAL *dy, const REAL *x,
                                  int64_t n)
{
    for (int64_t q = 0; q < n; q++) {
        int best;
        FN(window_max_s2)(x + 2 * q, ldx, 2, &best);
        REAL *d = dx + 2 * q;
        d[0] = best == 0 ? dy[q] : 0;
        d[1] = best == 1 ? dy[q] : 0;
        d[ldx] = best == 2 ? dy[q] : 0;
        d[ldx + 1] = best == 3 ? dy[q] : 0;
    }
}

static void FN(avg_grad_row_k2s2)(REAL *dx, int64_t ldx, const REAL *dy, int64_t n,
                                  REAL divisor)
{
    for (int64_t q = 0; q < n; q++) {
        const REAL g = dy[q] / divisor;
        REAL *d = dx + 2 * q;
        d[0] = g;
        d[1] = g;
        d[ldx] = g;
        d[ldx + 1] = g;
    }
}

/* The micro-kernels of one call, chosen once at its start: AVX2 or the portable twins. */
typedef struct {
    void (*max_row[2])(REAL *y, uint8_t *pos, const REAL *x, int64_t ldx, int64_t n); /* K=2,3 */
    void (*avg_row[2])(REAL *y, const REAL *x, int64_t ldx, int64_t n, REAL divisor);
    void (*max_grad_row_k2)(REAL *dx, int64_t ldx, const REAL *dy, const REAL *x, int64_t n);
    void (*avg_grad_row_k2)(REAL *dx, int64_t ldx, const REAL *dy, int64_t n, REAL divisor);
} FN(pool_micro);

static FN(pool_micro) FN(pool_micro_select)(void)
{
    FN(pool_micro) mk = {
        {FN(max_row_k2s2), FN(max_row_k3s2)},
        {FN(avg_row_k2s2), FN(avg_row_k3s2)},
        FN(max_grad_row_k2s2),
        FN(avg_grad_row_k2s2),
    };
#if POOL_USE_AVX2
    if (fc_simd_avx2()) {
        mk.max_row[0] = fc_max_row_k2s2_avx2_f32;
        mk.max_row[1] = fc_max_row_k3s2_avx2_f32;
        mk.avg_row[0] = fc_avg_row_k2s2_avx2_f32;
        mk.avg_row[1] = fc_avg_row_k3s2_avx2_f32;
        mk.max_grad_row_k2 = fc_max_grad_row_k2s2_avx2_f32;
        mk.avg_grad_row_k2 = fc_avg_grad_row_k2s2_avx2_f32;
    }
#endif
    return mk;
}

/* ---- per-window code: any window size, stride, padding, dilation ---- */

/* PyTorch's max pooling of one window: start from -inf at the first tap inside the input
 * (which is also the index an all -inf window reports), then let greater values and NaNs
 * take over. */
static inline REAL FN(max_window)(const REAL *x_plane, const fc_pool_problem *pb,
                                  const pool_window *win, int64_t *index)
{
    REAL m = -INFINITY;
    int64_t best = (win->h0 + win->r_lo * pb->dil_h) * pb->W + win->w0 + win->s_lo * pb->dil_w;
    for (int64_t r = win->r_lo; r < win->r_hi; r++) {
        const int64_t h = win->h0 + r * pb->dil_h;
        for (int64_t s = win->s_lo; s < win->s_hi; s++) {
            const int64_t i = h * pb->W + win->w0 + s * pb->dil_w;
            if (FN(takes_over)(x_plane[i], m)) {
                m = x_plane[i];
                best = i;
            }
        }
    }
    *index = best;
    return m;
}

static void FN(max_windows)(REAL *y_row, int64_t *i_row, const REAL *x_plane,
                            const fc_pool_problem *pb, int64_t p, int64_t q_begin, int64_t q_end)
{
    for (int64_t q = q_begin; q < q_end; q++) {
        const pool_window win = pool_window_at(pb, p, q);
        int64_t index;
        y_row[q] = FN(max_window)(x_plane, pb, &win, &index);
        if (i_row) {
            i_row[q] = index;
        }
    }
}

/* A window lying wholly in the padding outputs a constant -inf: it sends no gradient. */
static void FN(max_grad_windows)(REAL *dx_plane, const REAL *dy_row, const REAL *x_plane,
                                 const fc_pool_problem *pb, int64_t p, int64_t q_begin,
                                 int64_t q_end)
{
    for (int64_t q = q_begin; q < q_end; q++) {
        const pool_window win = pool_window_at(pb, p, q);
        if (!pool_window_empty(&win)) {
            int64_t index;
            FN(max_window)(x_plane, pb, &win, &index);
            dx_plane[index] += dy_row[q];
        }
    }
}

static void FN(avg_windows)(REAL *y_row, const REAL *x_plane, const fc_pool_problem *pb,
                            int64_t p, int64_t q_begin, int64_t q_end)
{
    for (int64_t q = q_begin; q < q_end; q++) {
        const avg_window win = avg_window_at(pb, p, q);
        REAL sum = 0;
        for (int64_t h = win.h0; h < win.h1; h++) {
            for (int64_t w = win.w0; w < win.w1; w++) {
                sum += x_plane[h * pb->W + w];
            }
        }
        y_row[q] = (win.h0 < win.h1 && win.w0 < win.w1) ? sum / (REAL)win.divisor : 0;
    }
}

static void FN(avg_grad_windows)(REAL *dx_plane, const REAL *dy_row, const fc_pool_problem *pb,
                                 int64_t p, int64_t q_begin, int64_t q_end)
{
    for (int64_t q = q_begin; q < q_end; q++) {
        const avg_window win = avg_window_at(pb, p, q);
        const REAL g = dy_row[q] / (REAL)win.divisor;
        for (int64_t h = win.h0; h < win.h1; h++) {
            for (int64_t w = win.w0; w < win.w1; w++) {
                dx_plane[h * pb->W + w] += g;
            }
        }
    }
}

static inline void FN(zero)(REAL *a, int64_t n)
{
    memset(a, 0, (size_t)n * sizeof(REAL));
}

/* The micro-kernel rows and columns of a problem: [*p_lo, *p_hi) x [*q_lo, *q_hi), empty
 * when the problem has no micro-kernel (K == 0). */
static void FN(fast_region)(const fc_pool_problem *pb, int K, int64_t *p_lo, int64_t *p_hi,
                            int64_t *q_lo, int64_t *q_hi)
{
    *p_lo = *p_hi = *q_lo = *q_hi = 0;
    if (K) {
        pool_interior(pb->P, pb->H, 2, pb->pad_h, K, p_lo, p_hi);
        pool_interior(pb->Q, pb->W, 2, pb->pad_w, K, q_lo, q_hi);
    }
}

/* ---- max pooling ---- */

fc_status FN(fc_max_pool_forward)(REAL *y, int64_t *indices, const REAL *x,
                                  const fc_pool_problem *pb)
{
    /* y, indices (N, C, P, Q) = the maximum of each window of x (N, C, H, W) and its flat
     * position h*W + w; indices may be NULL, and then no index is computed at all. */
    if (!pool_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    const FN(pool_micro) mk = FN(pool_micro_select)();
    const int K = pool_fast_window(pb);
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;
    int64_t p_lo, p_hi, q_lo, q_hi;
    FN(fast_region)(pb, K, &p_lo, &p_hi, &q_lo, &q_hi);

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        const REAL *x_plane = x + nc * H * W;
        uint8_t pos[POOL_CHUNK];
        for (int64_t p = 0; p < P; p++) {
            REAL *y_row = y + (nc * P + p) * Q;
            int64_t *i_row = indices ? indices + (nc * P + p) * Q : NULL;
            if (p < p_lo || p >= p_hi) {
                FN(max_windows)(y_row, i_row, x_plane, pb, p, 0, Q);
                continue;
            }
            const int64_t h0 = 2 * p - pb->pad_h;
            FN(max_windows)(y_row, i_row, x_plane, pb, p, 0, q_lo);
            if (!i_row) {
                mk.max_row[K - 2](y_row + q_lo, NULL, x_plane + h0 * W + 2 * q_lo - pb->pad_w, W,
                                  q_hi - q_lo);
            }
            /* With indices, the compact argmax of a chunk becomes PyTorch's while still hot. */
            for (int64_t q = q_lo; i_row && q < q_hi; q += POOL_CHUNK) {
                const int64_t n = q_hi - q < POOL_CHUNK ? q_hi - q : POOL_CHUNK;
                const int64_t w0 = 2 * q - pb->pad_w;
                mk.max_row[K - 2](y_row + q, pos, x_plane + h0 * W + w0, W, n);
                for (int64_t j = 0; j < n; j++) {
                    i_row[q + j] = (h0 + pos[j] / K) * W + w0 + 2 * j + pos[j] % K;
                }
            }
            FN(max_windows)(y_row, i_row, x_plane, pb, p, q_hi, Q);
        }
    }
    return FC_OK;
}

fc_status FN(fc_max_pool_backward)(REAL *dx, const REAL *dy, const REAL *x,
                                   const fc_pool_problem *pb)
{
    /* dx (N, C, H, W): each dy (N, C, P, Q) value goes to the maximum of its window of
     * x (N, C, H, W), found again here, where the forward pass found it. */
    if (!pool_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    const FN(pool_micro) mk = FN(pool_micro_select)();
    const int K = pool_fast_window(pb);
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;
    int64_t p_lo, p_hi, q_lo, q_hi;
    FN(fast_region)(pb, K, &p_lo, &p_hi, &q_lo, &q_hi);
    /* 2x2 stride-2 windows do not overlap, so their micro-kernel writes their pixels outright;
     * when they tile the plane exactly, no pixel is left to clear beforehand. */
    const int tiled = K == 2 && pb->pad_h == 0 && pb->pad_w == 0 && 2 * P == H && 2 * Q == W;

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        const REAL *x_plane = x + nc * H * W;
        REAL *dx_plane = dx + nc * H * W;
        uint8_t pos[POOL_CHUNK];
        REAL y_scratch[POOL_CHUNK];
        if (!tiled) {
            FN(zero)(dx_plane, H * W);
        }
        for (int64_t p = 0; p < P; p++) {
            const REAL *dy_row = dy + (nc * P + p) * Q;
            if (p < p_lo || p >= p_hi) {
                FN(max_grad_windows)(dx_plane, dy_row, x_plane, pb, p, 0, Q);
                continue;
            }
            const int64_t h0 = 2 * p - pb->pad_h;
            FN(max_grad_windows)(dx_plane, dy_row, x_plane, pb, p, 0, q_lo);
            if (K == 2) {
                const int64_t at = h0 * W + 2 * q_lo - pb->pad_w;
                mk.max_grad_row_k2(dx_plane + at, W, dy_row + q_lo, x_plane + at, q_hi - q_lo);
            }
            /* 3x3 windows overlap: find the argmax of a chunk, then add in window order. */
            for (int64_t q = q_lo; K == 3 && q < q_hi; q += POOL_CHUNK) {
                const int64_t n = q_hi - q < POOL_CHUNK ? q_hi - q : POOL_CHUNK;
                const int64_t w0 = 2 * q - pb->pad_w;
                mk.max_row[1](y_scratch, pos, x_plane + h0 * W + w0, W, n);
                for (int64_t j = 0; j < n; j++) {
                    dx_plane[(h0 + pos[j] / 3) * W + w0 + 2 * j + pos[j] % 3] += dy_row[q + j];
                }
            }
            FN(max_grad_windows)(dx_plane, dy_row, x_plane, pb, p, q_hi, Q);
        }
    }
    return FC_OK;
}

fc_status FN(fc_max_pool_backward_indices)(REAL *dx, const REAL *dy, const int64_t *indices,
                                           const fc_pool_problem *pb)
{
    /* dx (N, C, H, W): dy (N, C, P, Q) added at the flat positions indices (N, C, P, Q), as
     * PyTorch does; positions outside the plane (a window wholly in the padding) are skipped. */
    if (!pool_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    const int64_t HW = pb->H * pb->W, PQ = pb->P * pb->Q, planes = pb->N * pb->C;

#pragma omp parallel for schedule(static) if (planes * HW >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        REAL *dx_plane = dx + nc * HW;
        const REAL *dy_plane = dy + nc * PQ;
        const int64_t *i_plane = indices + nc * PQ;
        FN(zero)(dx_plane, HW);
        for (int64_t i = 0; i < PQ; i++) {
            if (i_plane[i] >= 0 && i_plane[i] < HW) {
                dx_plane[i_plane[i]] += dy_plane[i];
            }
        }
    }
    return FC_OK;
}

/* ---- average pooling ---- */

fc_status FN(fc_avg_pool_forward)(REAL *y, const REAL *x, const fc_pool_problem *pb)
{
    /* y (N, C, P, Q) = the sum of each window of x (N, C, H, W) / PyTorch's divisor */
    if (!pool_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    const FN(pool_micro) mk = FN(pool_micro_select)();
    const int K = pool_fast_window(pb);
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;
    int64_t p_lo, p_hi, q_lo, q_hi;
    FN(fast_region)(pb, K, &p_lo, &p_hi, &q_lo, &q_hi);
    /* Interior windows are whole: padding or not, they divide by the window size. */
    const REAL divisor = (REAL)(pb->divisor_override ? pb->divisor_override : pb->R * pb->S);

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        const REAL *x_plane = x + nc * H * W;
        for (int64_t p = 0; p < P; p++) {
            REAL *y_row = y + (nc * P + p) * Q;
            if (p < p_lo || p >= p_hi) {
                FN(avg_windows)(y_row, x_plane, pb, p, 0, Q);
                continue;
            }
            const int64_t h0 = 2 * p - pb->pad_h;
            FN(avg_windows)(y_row, x_plane, pb, p, 0, q_lo);
            mk.avg_row[K - 2](y_row + q_lo, x_plane + h0 * W + 2 * q_lo - pb->pad_w, W,
                              q_hi - q_lo, divisor);
            FN(avg_windows)(y_row, x_plane, pb, p, q_hi, Q);
        }
    }
    return FC_OK;
}

fc_status FN(fc_avg_pool_backward)(REAL *dx, const REAL *dy, const fc_pool_problem *pb)
{
    /* dx (N, C, H, W): each dy (N, C, P, Q) value / the window's divisor, added to every input
     * pixel of its window, windows in order (so overlapping windows add up as in PyTorch). */
    if (!pool_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    const FN(pool_micro) mk = FN(pool_micro_select)();
    const int K = pool_fast_window(pb) == 2 ? 2 : 0;   /* only 2x2 windows are disjoint */
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;
    int64_t p_lo, p_hi, q_lo, q_hi;
    FN(fast_region)(pb, K, &p_lo, &p_hi, &q_lo, &q_hi);
    const REAL divisor = (REAL)(pb->divisor_override ? pb->divisor_override : pb->R * pb->S);
    const int tiled = K == 2 && pb->pad_h == 0 && pb->pad_w == 0 && 2 * P == H && 2 * Q == W;

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        REAL *dx_plane = dx + nc * H * W;
        if (!tiled) {
            FN(zero)(dx_plane, H * W);
        }
        for (int64_t p = 0; p < P; p++) {
            const REAL *dy_row = dy + (nc * P + p) * Q;
            if (p < p_lo || p >= p_hi) {
                FN(avg_grad_windows)(dx_plane, dy_row, pb, p, 0, Q);
                continue;
            }
            const int64_t h0 = 2 * p - pb->pad_h;
            FN(avg_grad_windows)(dx_plane, dy_row, pb, p, 0, q_lo);
            mk.avg_grad_row_k2(dx_plane + h0 * W + 2 * q_lo - pb->pad_w, W, dy_row + q_lo,
                               q_hi - q_lo, divisor);
            FN(avg_grad_windows)(dx_plane, dy_row, pb, p, q_hi, Q);
        }
    }
    return FC_OK;
}

/* ---- adaptive average pooling (global pooling is the 1 x 1 case) ---- */

fc_status FN(fc_adaptive_avg_pool_forward)(REAL *y, const REAL *x, const fc_pool_problem *pb)
{
    /* y (N, C, P, Q) = the mean of each adaptive window of x (N, C, H, W) */
    if (!adaptive_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        const REAL *x_plane = x + nc * H * W;
        for (int64_t p = 0; p < P; p++) {
            int64_t h0, h1;
            adaptive_range(p, P, H, &h0, &h1);
            for (int64_t q = 0; q < Q; q++) {
                int64_t w0, w1;
                adaptive_range(q, Q, W, &w0, &w1);
                REAL sum = 0;
                for (int64_t h = h0; h < h1; h++) {
                    for (int64_t w = w0; w < w1; w++) {
                        sum += x_plane[h * W + w];
                    }
                }
                y[(nc * P + p) * Q + q] = sum / (REAL)((h1 - h0) * (w1 - w0));
            }
        }
    }
    return FC_OK;
}

fc_status FN(fc_adaptive_avg_pool_backward)(REAL *dx, const REAL *dy, const fc_pool_problem *pb)
{
    /* dx (N, C, H, W): each dy (N, C, P, Q) value spread evenly over its adaptive window */
    if (!adaptive_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        REAL *dx_plane = dx + nc * H * W;
        FN(zero)(dx_plane, H * W);
        for (int64_t p = 0; p < P; p++) {
            int64_t h0, h1;
            adaptive_range(p, P, H, &h0, &h1);
            for (int64_t q = 0; q < Q; q++) {
                int64_t w0, w1;
                adaptive_range(q, Q, W, &w0, &w1);
                const REAL g = dy[(nc * P + p) * Q + q] / (REAL)((h1 - h0) * (w1 - w0));
                for (int64_t h = h0; h < h1; h++) {
                    for (int64_t w = w0; w < w1; w++) {
                        dx_plane[h * W + w] += g;
                    }
                }
            }
        }
    }
    return FC_OK;
}
