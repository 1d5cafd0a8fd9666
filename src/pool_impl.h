/* pool_impl.h: the pooling kernels for one element type (template.h: REAL, FN;
 * FC_TEMPLATE_AVX2, 1 when pool_avx2.c has the AVX2 micro-kernels of this type). Included
 * by pool.c.
 *
 * Layouts: x, dx (N, C, H, W); y, dy (N, C, P, Q); argmax (N, C, P, Q) uint8 taps r*S + s and
 * indices (N, C, P, Q) int64 flat positions h*W + w of the maxima; all C-contiguous.
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

/* The maximum of the K x K window at x (rows ldx apart) and its position r*K + s. The position
 * is found after the value, with selects on comparison results rather than branches: on random
 * data a branch per tap mispredicts every other window, several times the cost of the data. */
static inline REAL FN(window_max_s2)(const REAL *x, int64_t ldx, const int K, int *pos)
{
    /* A maxss chain for the value and a bitmask of the NaN taps beside it: a NaN in the
     * window (PyTorch's other half of takes_over) is then the last NaN tap. */
    REAL m = x[0];
    unsigned nans = (unsigned)isnan(x[0]) != 0;
    for (int t = 1; t < K * K; t++) {
        const REAL v = x[(t / K) * ldx + t % K];
        m = v > m ? v : m;
        nans |= (unsigned)(isnan(v) != 0) << t;
    }
    if (nans) {
        const int last = pool_highest_bit(nans);
        m = x[(last / K) * ldx + last % K];
        if (pos) {
            *pos = last;
        }
        return m;
    }
    if (pos) {
        /* the first tap equal to the maximum is PyTorch's */
        unsigned equal = 0;
        for (int t = 0; t < K * K; t++) {
            equal |= (unsigned)(x[(t / K) * ldx + t % K] == m) << t;
        }
        *pos = pool_lowest_bit(equal);
    }
    return m;
}

/* The gradient g of one 2x2 window to its tap `best`, zeros to the other three. */
static inline void FN(grad_window_k2)(REAL *d, int64_t ldx, int best, REAL g)
{
    d[0] = 0;
    d[1] = 0;
    d[ldx] = 0;
    d[ldx + 1] = 0;
    d[(best >> 1) * ldx + (best & 1)] = g;
}

static inline void FN(max_rows_s2)(REAL *y, int64_t ldy, uint8_t *pos, int64_t ldpos,
                                   const REAL *x, int64_t ldx, int64_t n, int64_t rows,
                                   const int K)
{
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t q = 0; q < n; q++) {
            int best;
            y[i * ldy + q] = FN(window_max_s2)(x + 2 * i * ldx + 2 * q, ldx, K, pos ? &best : NULL);
            if (pos) {
                pos[i * ldpos + q] = (uint8_t)best;
            }
        }
    }
}

/* Sums run row by row from zero, in PyTorch's order, so results match it bit for bit. */
static inline void FN(avg_rows_s2)(REAL *y, int64_t ldy, const REAL *x, int64_t ldx, int64_t n,
                                   int64_t rows, REAL divisor, const int K)
{
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t q = 0; q < n; q++) {
            const REAL *win = x + 2 * i * ldx + 2 * q;
            REAL sum = 0;
            for (int r = 0; r < K; r++) {
                for (int s = 0; s < K; s++) {
                    sum += win[r * ldx + s];
                }
            }
            y[i * ldy + q] = sum / divisor;
        }
    }
}

static void FN(max_rows_k2s2)(REAL *y, int64_t ldy, uint8_t *pos, int64_t ldpos, const REAL *x,
                              int64_t ldx, int64_t n, int64_t rows)
{
    FN(max_rows_s2)(y, ldy, pos, ldpos, x, ldx, n, rows, 2);
}

static void FN(max_rows_k3s2)(REAL *y, int64_t ldy, uint8_t *pos, int64_t ldpos, const REAL *x,
                              int64_t ldx, int64_t n, int64_t rows)
{
    FN(max_rows_s2)(y, ldy, pos, ldpos, x, ldx, n, rows, 3);
}

static void FN(avg_rows_k2s2)(REAL *y, int64_t ldy, const REAL *x, int64_t ldx, int64_t n,
                              int64_t rows, REAL divisor)
{
    FN(avg_rows_s2)(y, ldy, x, ldx, n, rows, divisor, 2);
}

static void FN(avg_rows_k3s2)(REAL *y, int64_t ldy, const REAL *x, int64_t ldx, int64_t n,
                              int64_t rows, REAL divisor)
{
    FN(avg_rows_s2)(y, ldy, x, ldx, n, rows, divisor, 3);
}

static void FN(max_grad_rows_k2s2)(REAL *dx, int64_t ldx, const REAL *dy, int64_t ldy,
                                   const REAL *x, int64_t n, int64_t rows)
{
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t q = 0; q < n; q++) {
            const int64_t at = 2 * i * ldx + 2 * q;
            int best;
            FN(window_max_s2)(x + at, ldx, 2, &best);
            FN(grad_window_k2)(dx + at, ldx, best, dy[i * ldy + q]);
        }
    }
}

static void FN(max_grad_argmax_rows_k2s2)(REAL *dx, int64_t ldx, const REAL *dy, int64_t ldy,
                                          const uint8_t *pos, int64_t ldpos, int64_t n,
                                          int64_t rows)
{
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t q = 0; q < n; q++) {
            /* a tap past the window (a corrupt argmax) sends nothing, like the AVX2 twin */
            const int best = pos[i * ldpos + q];
            FN(grad_window_k2)(dx + 2 * i * ldx + 2 * q, ldx, best & 3,
                               best < 4 ? dy[i * ldy + q] : 0);
        }
    }
}

static void FN(avg_grad_rows_k2s2)(REAL *dx, int64_t ldx, const REAL *dy, int64_t ldy,
                                   int64_t n, int64_t rows, REAL divisor)
{
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t q = 0; q < n; q++) {
            const int64_t at = 2 * i * ldx + 2 * q;
            const REAL g = dy[i * ldy + q] / divisor;
            dx[at] = g;
            dx[at + 1] = g;
            dx[at + ldx] = g;
            dx[at + ldx + 1] = g;
        }
    }
}

/* The micro-kernels of one call, chosen once at its start: AVX2 or the portable twins. */
typedef struct {
    void (*max_rows[2])(REAL *y, int64_t ldy, uint8_t *pos, int64_t ldpos, const REAL *x,
                        int64_t ldx, int64_t n, int64_t rows);          /* [0]: 2x2, [1]: 3x3 */
    void (*avg_rows[2])(REAL *y, int64_t ldy, const REAL *x, int64_t ldx, int64_t n,
                        int64_t rows, REAL divisor);
    void (*max_grad_rows_k2)(REAL *dx, int64_t ldx, const REAL *dy, int64_t ldy, const REAL *x,
                             int64_t n, int64_t rows);
    void (*max_grad_argmax_rows_k2)(REAL *dx, int64_t ldx, const REAL *dy, int64_t ldy,
                                    const uint8_t *pos, int64_t ldpos, int64_t n, int64_t rows);
    void (*avg_grad_rows_k2)(REAL *dx, int64_t ldx, const REAL *dy, int64_t ldy, int64_t n,
                             int64_t rows, REAL divisor);
} FN(pool_micro);

static FN(pool_micro) FN(pool_micro_select)(void)
{
    FN(pool_micro) mk = {
        {FN(max_rows_k2s2), FN(max_rows_k3s2)},
        {FN(avg_rows_k2s2), FN(avg_rows_k3s2)},
        FN(max_grad_rows_k2s2),
        FN(max_grad_argmax_rows_k2s2),
        FN(avg_grad_rows_k2s2),
    };
#if FC_TEMPLATE_AVX2
    if (fc_simd_avx2()) {
        mk.max_rows[0] = fc_max_rows_k2s2_avx2_f32;
        mk.max_rows[1] = fc_max_rows_k3s2_avx2_f32;
        mk.avg_rows[0] = fc_avg_rows_k2s2_avx2_f32;
        mk.avg_rows[1] = fc_avg_rows_k3s2_avx2_f32;
        mk.max_grad_rows_k2 = fc_max_grad_rows_k2s2_avx2_f32;
        mk.max_grad_argmax_rows_k2 = fc_max_grad_argmax_rows_k2s2_avx2_f32;
        mk.avg_grad_rows_k2 = fc_avg_grad_rows_k2s2_avx2_f32;
    }
#endif
    return mk;
}

/* ---- per-window code: any window size, stride, padding, dilation ---- */

/* PyTorch's max pooling of one window: start from -inf at the first tap inside the input, let
 * greater values and NaNs take over. Returns the maximum; *tap receives its tap r*S + s: the
 * first tap equal to it, or the last NaN tap when it is NaN, which is where PyTorch's running
 * rule stops (an all -inf window reports its first tap inside the input, one wholly in the
 * padding the tap at (r_lo, s_lo)); tap may be NULL. Value first, position second, as in
 * window_max_s2: a branch per tap would mispredict on random data. */
static inline REAL FN(max_window)(const REAL *x_plane, const fc_pool_problem *pb,
                                  const pool_window *win, int64_t *tap)
{
    const REAL *x0 = x_plane + win->h0 * pb->W + win->w0;
    const int64_t row_step = pb->dil_h * pb->W, col_step = pb->dil_w;
    REAL m = -INFINITY;
    int any_nan = 0;
    for (int64_t r = win->r_lo; r < win->r_hi; r++) {
        for (int64_t s = win->s_lo; s < win->s_hi; s++) {
            const REAL v = x0[r * row_step + s * col_step];
            m = v > m ? v : m;
            any_nan |= isnan(v) != 0;
        }
    }
    if (!tap) {
        if (any_nan) {   /* the value of the last NaN, PyTorch's */
            for (int64_t r = win->r_hi - 1; r >= win->r_lo; r--) {
                for (int64_t s = win->s_hi - 1; s >= win->s_lo; s--) {
                    if (isnan(x0[r * row_step + s * col_step])) {
                        return x0[r * row_step + s * col_step];
                    }
                }
            }
        }
        return m;
    }
    *tap = win->r_lo * pb->S + win->s_lo;
    if (any_nan) {
        for (int64_t r = win->r_hi - 1; r >= win->r_lo; r--) {
            for (int64_t s = win->s_hi - 1; s >= win->s_lo; s--) {
                if (isnan(x0[r * row_step + s * col_step])) {
                    *tap = r * pb->S + s;
                    return x0[r * row_step + s * col_step];
                }
            }
        }
    }
    for (int64_t r = win->r_lo; r < win->r_hi; r++) {
        for (int64_t s = win->s_lo; s < win->s_hi; s++) {
            if (x0[r * row_step + s * col_step] == m) {
                *tap = r * pb->S + s;
                return m;
            }
        }
    }
    return m;
}

/* Windows [q_begin, q_end) of row p: y, and when asked their taps and PyTorch's indices. */
POOL_SPECIALISED void FN(max_windows)(REAL *y_row, uint8_t *a_row, int64_t *i_row,
                                      const REAL *x_plane, const fc_pool_problem *pb, int64_t p,
                                      int64_t q_begin, int64_t q_end)
{
    for (int64_t q = q_begin; q < q_end; q++) {
        const pool_window win = pool_window_at(pb, p, q);
        int64_t tap;
        y_row[q] = FN(max_window)(x_plane, pb, &win, a_row || i_row ? &tap : NULL);
        if (a_row) {
            a_row[q] = (uint8_t)tap;
        }
        if (i_row) {
            i_row[q] = pool_tap_index(pb, &win, tap);
        }
    }
}

/* A window lying wholly in the padding outputs a constant -inf: it sends no gradient. */
POOL_SPECIALISED void FN(max_grad_windows)(REAL *dx_plane, const REAL *dy_row, const REAL *x_plane,
                                           const fc_pool_problem *pb, int64_t p, int64_t q_begin,
                                           int64_t q_end)
{
    for (int64_t q = q_begin; q < q_end; q++) {
        const pool_window win = pool_window_at(pb, p, q);
        if (!pool_window_empty(&win)) {
            int64_t tap;
            FN(max_window)(x_plane, pb, &win, &tap);
            dx_plane[pool_tap_index(pb, &win, tap)] += dy_row[q];
        }
    }
}

/* The same from saved taps; a tap in the padding (or not in the window) sends nothing. */
POOL_SPECIALISED void FN(max_grad_argmax_windows)(REAL *dx_plane, const REAL *dy_row,
                                                  const uint8_t *a_row,
                                                  const fc_pool_problem *pb, int64_t p,
                                                  int64_t q_begin, int64_t q_end)
{
    for (int64_t q = q_begin; q < q_end; q++) {
        const pool_window win = pool_window_at(pb, p, q);
        if (a_row[q] < pb->R * pb->S && pool_tap_inside(pb, &win, a_row[q])) {
            dx_plane[pool_tap_index(pb, &win, a_row[q])] += dy_row[q];
        }
    }
}

POOL_SPECIALISED void FN(avg_windows)(REAL *y_row, const REAL *x_plane, const fc_pool_problem *pb,
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

POOL_SPECIALISED void FN(avg_grad_windows)(REAL *dx_plane, const REAL *dy_row,
                                           const fc_pool_problem *pb, int64_t p,
                                           int64_t q_begin, int64_t q_end)
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

/* Backward passes that go through the windows row by row clear each input row just before the
 * first window reaches it, rows [*zeroed, end), rather than the whole plane up front: the rows
 * are then still in cache when the gradients land. */
static inline void FN(zero_rows)(REAL *dx_plane, const fc_pool_problem *pb, int64_t *zeroed,
                                 int64_t end)
{
    end = end < pb->H ? end : pb->H;
    if (end > *zeroed) {
        FN(zero)(dx_plane + *zeroed * pb->W, (end - *zeroed) * pb->W);
        *zeroed = end;
    }
}

/* One past the last input row the windows of output row p reach. */
static inline int64_t FN(rows_reached)(const fc_pool_problem *pb, int64_t p)
{
    return p * pb->stride_h - pb->pad_h + (pb->R - 1) * pb->dil_h + 1;
}

/* Max pooling of the micro-kernel block, with its taps written to a_plane and/or PyTorch's
 * indices to i_plane when those are not NULL. Without a_plane, the taps go through a small
 * buffer a chunk at a time and become indices while still in L1. */
POOL_SPECIALISED void FN(max_block)(const FN(pool_micro) *mk, const pool_block *blk, REAL *y_plane,
                                    uint8_t *a_plane, int64_t *i_plane, const REAL *x_plane,
                                    const fc_pool_problem *pb)
{
    const int64_t W = pb->W, Q = pb->Q, n = blk->q_hi - blk->q_lo, rows = blk->p_hi - blk->p_lo;
    const int64_t corner = pool_block_input(pb, blk->p_lo, blk->q_lo);
    const int64_t out = blk->p_lo * Q + blk->q_lo;
    if (a_plane || !i_plane) {
        mk->max_rows[blk->K - 2](y_plane + out, Q, a_plane ? a_plane + out : NULL, Q,
                                 x_plane + corner, W, n, rows);
        if (i_plane) {
            pool_block_indices(i_plane, a_plane + out, Q, pb, blk->K, blk->p_lo, blk->q_lo, n,
                               rows);
        }
        return;
    }
    uint8_t pos[POOL_CHUNK];
    for (int64_t q = blk->q_lo; q < blk->q_hi; q += POOL_CHUNK) {
        const int64_t nq = blk->q_hi - q < POOL_CHUNK ? blk->q_hi - q : POOL_CHUNK;
        const int64_t rows_per_chunk = POOL_CHUNK / nq;
        for (int64_t p = blk->p_lo; p < blk->p_hi; p += rows_per_chunk) {
            const int64_t np = blk->p_hi - p < rows_per_chunk ? blk->p_hi - p : rows_per_chunk;
            mk->max_rows[blk->K - 2](y_plane + p * Q + q, Q, pos, nq,
                                     x_plane + pool_block_input(pb, p, q), W, nq, np);
            pool_block_indices(i_plane, pos, nq, pb, blk->K, p, q, nq, np);
        }
    }
}

/* The micro-kernels' windows are whole: padding or not, they divide by the window size. */
static inline REAL FN(block_divisor)(const fc_pool_problem *pb)
{
    return (REAL)(pb->divisor_override ? pb->divisor_override : pb->R * pb->S);
}

/* ---- forward passes of max and average pooling ---- */

/* y_plane (P, Q) <- the maximum (with a_plane and i_plane, each optional) or, average set,
 * the average of each window of x_plane (H, W). The block first: it streams the plane into
 * cache, where the windows that touch the padding then find their pixels (read first,
 * cold, a column of border windows would cost as much as the whole block). */
POOL_SPECIALISED void FN(forward_plane)(const int average, const FN(pool_micro) *mk,
                                        const pool_block *blk, REAL divisor, REAL *y_plane,
                                        uint8_t *a_plane, int64_t *i_plane, const REAL *x_plane,
                                        const fc_pool_problem *pb)
{
    const int64_t W = pb->W, P = pb->P, Q = pb->Q;
    if (blk->K && average) {
        mk->avg_rows[blk->K - 2](y_plane + blk->p_lo * Q + blk->q_lo, Q,
                                 x_plane + pool_block_input(pb, blk->p_lo, blk->q_lo), W,
                                 blk->q_hi - blk->q_lo, blk->p_hi - blk->p_lo, divisor);
    } else if (blk->K) {
        FN(max_block)(mk, blk, y_plane, a_plane, i_plane, x_plane, pb);
    }
    for (int64_t p = pool_border_row(blk, 0, Q); p < P; p = pool_border_row(blk, p + 1, Q)) {
        int64_t left_end, right_begin;
        pool_block_split(blk, p, Q, &left_end, &right_begin);
        if (average) {
            FN(avg_windows)(y_plane + p * Q, x_plane, pb, p, 0, left_end);
            FN(avg_windows)(y_plane + p * Q, x_plane, pb, p, right_begin, Q);
        } else {
            uint8_t *a_row = a_plane ? a_plane + p * Q : NULL;
            int64_t *i_row = i_plane ? i_plane + p * Q : NULL;
            FN(max_windows)(y_plane + p * Q, a_row, i_row, x_plane, pb, p, 0, left_end);
            FN(max_windows)(y_plane + p * Q, a_row, i_row, x_plane, pb, p, right_begin, Q);
        }
    }
}

/* y (N, C, P, Q) <- forward_plane of every plane of x (N, C, H, W). */
static fc_status FN(pool_forward)(int average, REAL *y, uint8_t *argmax, int64_t *indices,
                                  const REAL *x, const fc_pool_problem *problem)
{
    const fc_pool_problem stacked = indices ? *problem : pool_stacked(problem);
    const fc_pool_problem *pb = &stacked;
    const FN(pool_micro) mk = FN(pool_micro_select)();
    const pool_block blk = pool_block_of(pb, pool_fast_window(pb));
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;
    const REAL divisor = FN(block_divisor)(pb);

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        const REAL *x_plane = x + nc * H * W;
        REAL *y_plane = y + nc * P * Q;
        if (average) {
            FN(forward_plane)(1, &mk, &blk, divisor, y_plane, NULL, NULL, x_plane, pb);
        } else {
            FN(forward_plane)(0, &mk, &blk, divisor, y_plane,
                              argmax ? argmax + nc * P * Q : NULL,
                              indices ? indices + nc * P * Q : NULL, x_plane, pb);
        }
    }
    return FC_OK;
}

fc_status FN(fc_max_pool_forward)(REAL *y, uint8_t *argmax, int64_t *indices, const REAL *x,
                                  const fc_pool_problem *pb)
{
    /* y (N, C, P, Q) = the maximum of each window of x (N, C, H, W); argmax (N, C, P, Q) its
     * tap r*S + s (needs R*S <= 256), indices (N, C, P, Q) its flat position h*W + w. Either
     * may be NULL, and with neither no position is computed at all. */
    if (!pool_problem_ok(pb) || (argmax && pb->R * pb->S > POOL_ARGMAX_TAPS)) {
        return FC_ERR_INVALID;
    }
    return FN(pool_forward)(0, y, argmax, indices, x, pb);
}

fc_status FN(fc_avg_pool_forward)(REAL *y, const REAL *x, const fc_pool_problem *pb)
{
    /* y (N, C, P, Q) = the sum of each window of x (N, C, H, W) / PyTorch's divisor */
    if (!pool_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    return FN(pool_forward)(1, y, NULL, NULL, x, pb);
}

/* ---- backward passes of max and average pooling ---- */

/* Block row p, windows [q0, q0 + n): each dy_row value added at its window's tap pos[j], in
 * window order, so overlapping windows add up as in PyTorch. A tap past the window (only a
 * corrupt argmax has one) sends nothing. */
POOL_SPECIALISED void FN(scatter_block_row)(REAL *dx_plane, const REAL *dy_row, const uint8_t *pos,
                                            const fc_pool_problem *pb, int K, int64_t p, int64_t q0,
                                            int64_t n)
{
    int64_t tap[9];   /* flat offset of tap r*K + s from its window's corner */
    for (int r = 0; r < K; r++) {
        for (int s = 0; s < K; s++) {
            tap[r * K + s] = r * pb->W + s;
        }
    }
    REAL *corner = dx_plane + pool_block_input(pb, p, q0);
    for (int64_t j = 0; j < n; j++) {
        if (pos[j] < K * K) {
            corner[2 * j + tap[pos[j]]] += dy_row[q0 + j];
        }
    }
}

/* Block row p of overlapping 3x3 windows: their taps from the micro-kernel, then scattered. */
POOL_SPECIALISED void FN(max_grad_block_row_k3)(const FN(pool_micro) *mk, const pool_block *blk,
                                                REAL *dx_plane, const REAL *dy_row,
                                                const REAL *x_plane, const fc_pool_problem *pb,
                                                int64_t p)
{
    uint8_t pos[POOL_CHUNK];
    REAL y_scratch[POOL_CHUNK];
    for (int64_t q = blk->q_lo; q < blk->q_hi; q += POOL_CHUNK) {
        const int64_t n = blk->q_hi - q < POOL_CHUNK ? blk->q_hi - q : POOL_CHUNK;
        mk->max_rows[1](y_scratch, 0, pos, 0, x_plane + pool_block_input(pb, p, q), pb->W, n, 1);
        FN(scatter_block_row)(dx_plane, dy_row, pos, pb, 3, p, q, n);
    }
}

/* Block row p of overlapping 3x3 windows: dy / divisor added to each window's 9 pixels, in
 * window order (PyTorch's, so the sums round alike). */
POOL_SPECIALISED void FN(avg_grad_block_row_k3)(REAL *dx_plane, const REAL *dy_row,
                                                const fc_pool_problem *pb, REAL divisor, int64_t p,
                                                int64_t q0, int64_t n)
{
    REAL *corner = dx_plane + pool_block_input(pb, p, q0);
    for (int64_t j = 0; j < n; j++) {
        const REAL g = dy_row[q0 + j] / divisor;
        for (int r = 0; r < 3; r++) {
            REAL *d = corner + r * pb->W + 2 * j;
            d[0] += g;
            d[1] += g;
            d[2] += g;
        }
    }
}

/* What one backward pass sends through the windows of a plane (pool_grad, pool.c) reads. */
typedef struct {
    const REAL *x_plane;        /* POOL_GRAD_MAX_FROM_X: the plane of x */
    const uint8_t *a_plane;     /* POOL_GRAD_MAX_FROM_ARGMAX: the plane of argmax */
    REAL divisor;               /* POOL_GRAD_AVG: the block's divisor (block_divisor) */
} FN(grad_source);

/* Windows [q_begin, q_end) of row p, which touch the padding: the per-window code. */
POOL_SPECIALISED void FN(grad_windows)(const pool_grad kind, REAL *dx_plane,
                                       const REAL *dy_row, const FN(grad_source) *src,
                                       const fc_pool_problem *pb, int64_t p, int64_t q_begin,
                                       int64_t q_end)
{
    if (kind == POOL_GRAD_MAX_FROM_ARGMAX) {
        FN(max_grad_argmax_windows)(dx_plane, dy_row, src->a_plane + p * pb->Q, pb, p, q_begin,
                                    q_end);
    } else if (kind == POOL_GRAD_MAX_FROM_X) {
        FN(max_grad_windows)(dx_plane, dy_row, src->x_plane, pb, p, q_begin, q_end);
    } else {
        FN(avg_grad_windows)(dx_plane, dy_row, pb, p, q_begin, q_end);
    }
}

/* Row p's windows inside the 3x3 block, which overlap: in window order. */
POOL_SPECIALISED void FN(grad_block_row_k3)(const pool_grad kind, const FN(pool_micro) *mk,
                                            const pool_block *blk, REAL *dx_plane,
                                            const REAL *dy_row, const FN(grad_source) *src,
                                            const fc_pool_problem *pb, int64_t p)
{
    const int64_t n = blk->q_hi - blk->q_lo;
    if (kind == POOL_GRAD_MAX_FROM_ARGMAX) {
        FN(scatter_block_row)(dx_plane, dy_row, src->a_plane + p * pb->Q + blk->q_lo, pb, 3, p,
                              blk->q_lo, n);
    } else if (kind == POOL_GRAD_MAX_FROM_X) {
        FN(max_grad_block_row_k3)(mk, blk, dx_plane, dy_row, src->x_plane, pb, p);
    } else {
        FN(avg_grad_block_row_k3)(dx_plane, dy_row, pb, src->divisor, p, blk->q_lo, n);
    }
}

/* The 2x2 block's windows, which are disjoint: their pixels simply written by a
 * micro-kernel. */
POOL_SPECIALISED void FN(grad_block_k2)(const pool_grad kind, const FN(pool_micro) *mk,
                                        const pool_block *blk, REAL *dx_plane,
                                        const REAL *dy_plane, const FN(grad_source) *src,
                                        const fc_pool_problem *pb)
{
    const int64_t W = pb->W, Q = pb->Q, n = blk->q_hi - blk->q_lo, rows = blk->p_hi - blk->p_lo;
    const int64_t corner = pool_block_input(pb, blk->p_lo, blk->q_lo);
    const int64_t out = blk->p_lo * Q + blk->q_lo;
    if (kind == POOL_GRAD_MAX_FROM_ARGMAX) {
        mk->max_grad_argmax_rows_k2(dx_plane + corner, W, dy_plane + out, Q, src->a_plane + out,
                                    Q, n, rows);
    } else if (kind == POOL_GRAD_MAX_FROM_X) {
        mk->max_grad_rows_k2(dx_plane + corner, W, dy_plane + out, Q, src->x_plane + corner, n,
                             rows);
    } else {
        mk->avg_grad_rows_k2(dx_plane + corner, W, dy_plane + out, Q, n, rows, src->divisor);
    }
}

/* dx_plane (H, W) <- the gradient of one plane from dy_plane (P, Q). 2x2 stride-2 windows
 * are disjoint: the block's pixels are written first, so the border windows find the plane
 * in cache, and only rows with border windows are visited. 3x3 windows overlap: every row
 * in turn, keeping PyTorch's window order so that the sums round alike, each input row
 * cleared just before the first window reaches it. */
POOL_SPECIALISED void FN(backward_plane)(const pool_grad kind, const FN(pool_micro) *mk,
                                         const pool_block *blk, int tiled, REAL *dx_plane,
                                         const REAL *dy_plane, const FN(grad_source) *src,
                                         const fc_pool_problem *pb)
{
    const int64_t P = pb->P, Q = pb->Q;
    const pool_block rows_to_skip = blk->K == 3 ? pool_block_of(pb, 0) : *blk;
    int64_t zeroed = 0;   /* rows of dx_plane cleared so far, when cleared row by row */
    if (blk->K == 2) {
        if (!tiled) {
            FN(zero)(dx_plane, pb->H * pb->W);
        }
        FN(grad_block_k2)(kind, mk, blk, dx_plane, dy_plane, src, pb);
    }
    for (int64_t p = pool_border_row(&rows_to_skip, 0, Q); p < P;
         p = pool_border_row(&rows_to_skip, p + 1, Q)) {
        const REAL *dy_row = dy_plane + p * Q;
        int64_t left_end, right_begin;
        pool_block_split(blk, p, Q, &left_end, &right_begin);
        if (blk->K != 2) {
            FN(zero_rows)(dx_plane, pb, &zeroed, FN(rows_reached)(pb, p));
        }
        FN(grad_windows)(kind, dx_plane, dy_row, src, pb, p, 0, left_end);
        if (blk->K == 3 && left_end < right_begin) {
            FN(grad_block_row_k3)(kind, mk, blk, dx_plane, dy_row, src, pb, p);
        }
        FN(grad_windows)(kind, dx_plane, dy_row, src, pb, p, right_begin, Q);
    }
    if (blk->K != 2) {
        FN(zero_rows)(dx_plane, pb, &zeroed, pb->H);   /* rows no window reaches */
    }
}

/* The three backward passes through the windows (pool_grad): dx (N, C, H, W) from
 * dy (N, C, P, Q) and x or argmax as kind says (the other may be NULL), plane by plane. */
static fc_status FN(pool_backward)(pool_grad kind, REAL *dx, const REAL *dy, const REAL *x,
                                   const uint8_t *argmax, const fc_pool_problem *problem)
{
    if (!pool_problem_ok(problem)) {
        return FC_ERR_INVALID;
    }
    const fc_pool_problem stacked = pool_stacked(problem);
    const fc_pool_problem *pb = &stacked;
    const FN(pool_micro) mk = FN(pool_micro_select)();
    const pool_block blk = pool_block_of(pb, pool_fast_window(pb));
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;
    const int tiled = pool_block_tiles_plane(pb, &blk);
    const REAL divisor = FN(block_divisor)(pb);

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        const FN(grad_source) src = {
            kind == POOL_GRAD_MAX_FROM_X ? x + nc * H * W : NULL,
            kind == POOL_GRAD_MAX_FROM_ARGMAX ? argmax + nc * P * Q : NULL,
            divisor,
        };
        REAL *dx_plane = dx + nc * H * W;
        const REAL *dy_plane = dy + nc * P * Q;
        /* one call per pass, each with the pass as a constant (POOL_SPECIALISED) */
        switch (kind) {
        case POOL_GRAD_MAX_FROM_X:
            FN(backward_plane)(POOL_GRAD_MAX_FROM_X, &mk, &blk, tiled, dx_plane, dy_plane, &src,
                               pb);
            break;
        case POOL_GRAD_MAX_FROM_ARGMAX:
            FN(backward_plane)(POOL_GRAD_MAX_FROM_ARGMAX, &mk, &blk, tiled, dx_plane, dy_plane,
                               &src, pb);
            break;
        default:
            FN(backward_plane)(POOL_GRAD_AVG, &mk, &blk, tiled, dx_plane, dy_plane, &src, pb);
            break;
        }
    }
    return FC_OK;
}

fc_status FN(fc_max_pool_backward)(REAL *dx, const REAL *dy, const REAL *x,
                                   const fc_pool_problem *pb)
{
    /* dx (N, C, H, W): each dy (N, C, P, Q) value goes to the maximum of its window of
     * x (N, C, H, W), found again here, where the forward pass found it. */
    return FN(pool_backward)(POOL_GRAD_MAX_FROM_X, dx, dy, x, NULL, pb);
}

fc_status FN(fc_max_pool_backward_argmax)(REAL *dx, const REAL *dy, const uint8_t *argmax,
                                          const fc_pool_problem *pb)
{
    /* dx (N, C, H, W): each dy (N, C, P, Q) value goes to the tap argmax (N, C, P, Q) of its
     * window that the forward pass found; x is not read at all. */
    return FN(pool_backward)(POOL_GRAD_MAX_FROM_ARGMAX, dx, dy, NULL, argmax, pb);
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

fc_status FN(fc_avg_pool_backward)(REAL *dx, const REAL *dy, const fc_pool_problem *pb)
{
    /* dx (N, C, H, W): each dy (N, C, P, Q) value / the window's divisor, added to every input
     * pixel of its window, windows in order (so overlapping windows add up as in PyTorch). */
    return FN(pool_backward)(POOL_GRAD_AVG, dx, dy, NULL, NULL, pb);
}

/* ---- adaptive average pooling (global pooling is the 1 x 1 case) ---- */

/* Adaptive average pooling of plane nc, forward (out y (N, C, P, Q) <- the mean of each
 * window of in x (N, C, H, W)) or backward (each in dy (N, C, P, Q) value spread evenly over
 * its window of out dx (N, C, H, W), zeroed first). One walk over the windows serves both
 * passes; each calls it with `backward` as a constant (POOL_SPECIALISED), so each compiles
 * to its own loop. */
POOL_SPECIALISED void FN(adaptive_plane)(const int backward, REAL *out, const REAL *in,
                                         int64_t H, int64_t W, int64_t P, int64_t Q, int64_t nc)
{
    REAL *dx_plane = out + nc * H * W;          /* backward */
    const REAL *x_plane = in + nc * H * W;      /* forward */
    if (backward) {
        FN(zero)(dx_plane, H * W);
    }
    for (int64_t p = 0; p < P; p++) {
        int64_t h0, h1;
        adaptive_range(p, P, H, &h0, &h1);
        for (int64_t q = 0; q < Q; q++) {
            int64_t w0, w1;
            adaptive_range(q, Q, W, &w0, &w1);
            const int64_t pooled = (nc * P + p) * Q + q;
            if (backward) {
                const REAL g = in[pooled] / (REAL)((h1 - h0) * (w1 - w0));
                for (int64_t h = h0; h < h1; h++) {
                    for (int64_t w = w0; w < w1; w++) {
                        dx_plane[h * W + w] += g;
                    }
                }
            } else {
                REAL sum = 0;
                for (int64_t h = h0; h < h1; h++) {
                    for (int64_t w = w0; w < w1; w++) {
                        sum += x_plane[h * W + w];
                    }
                }
                out[pooled] = sum / (REAL)((h1 - h0) * (w1 - w0));
            }
        }
    }
}

/* The two passes, plane by plane. The parallel loop holds one call per pass, each with the
 * pass as a constant: OpenMP outlines the loop before anything is inlined, so a constant
 * passed into this function would not reach the loop's body. */
static fc_status FN(adaptive_pass)(const int backward, REAL *out, const REAL *in,
                                   const fc_pool_problem *pb)
{
    if (!adaptive_problem_ok(pb)) {
        return FC_ERR_INVALID;
    }
    const int64_t H = pb->H, W = pb->W, P = pb->P, Q = pb->Q, planes = pb->N * pb->C;

#pragma omp parallel for schedule(static) if (planes * H * W >= POOL_PARALLEL_MIN)
    for (int64_t nc = 0; nc < planes; nc++) {
        if (backward) {
            FN(adaptive_plane)(1, out, in, H, W, P, Q, nc);
        } else {
            FN(adaptive_plane)(0, out, in, H, W, P, Q, nc);
        }
    }
    return FC_OK;
}

fc_status FN(fc_adaptive_avg_pool_forward)(REAL *y, const REAL *x, const fc_pool_problem *pb)
{
    /* y (N, C, P, Q) = the mean of each adaptive window of x (N, C, H, W) */
    return FN(adaptive_pass)(0, y, x, pb);
}

fc_status FN(fc_adaptive_avg_pool_backward)(REAL *dx, const REAL *dy, const fc_pool_problem *pb)
{
    /* dx (N, C, H, W): each dy (N, C, P, Q) value spread evenly over its adaptive window */
    return FN(adaptive_pass)(1, dx, dy, pb);
}
