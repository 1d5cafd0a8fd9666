/*
 * conv_winograd_impl.h: the Winograd driver, written once and included by conv_winograd.c
 * for float and double: transform the filters into packed A panels, then hand blocks of
 * tiles to the threads (each block: conv_winograd_block_impl.h).
 *
 * The includer defines REAL, SUFFIX, and the block functions and B-panel widths of each
 * SIMD level: BLOCK_GENERIC, BLOCK_AVX2, BLOCK_AVX512, NR_6ROW (portable and AVX2, 6-row
 * tiles) and NR_AVX512 (12-row tiles).
 */
#define FN(name) FC_GLUE(name, SUFFIX)

typedef void (*FN(wg_block_fn))(REAL *y, const REAL *x, const REAL *u, const REAL *bias,
                                const wg_plan *pl, int64_t t0, REAL *work);

/* The tile block for the SIMD level of the call; sets the plan's micro-kernel tile. */
static FN(wg_block_fn) FN(select_block)(wg_plan *pl)
{
#if FC_GEMM_HAVE_AVX512
    if (fc_simd_avx512()) {
        pl->mr = FC_GEMM_MR_AVX512;
        pl->nr = NR_AVX512;
        return BLOCK_AVX512;
    }
#endif
    pl->mr = FC_GEMM_MR;
    pl->nr = NR_6ROW;
#if FC_GEMM_HAVE_AVX2
    if (fc_simd_avx2()) {
        return BLOCK_AVX2;
    }
#endif
    return BLOCK_GENERIC;
}

/* u (wg_filter_index layout) <- G g G^T for each output channel k < K and input channel
 * c < C, where g[r][s] = w[k*s_out + c*s_in + r*s_r + s*s_s]; zero for the padding filters
 * K .. kpanels*mr. Computed in double, rounded once. */
static void FN(transform_filters)(REAL *u, const REAL *w, int64_t s_out, int64_t s_in,
                                  int64_t s_r, int64_t s_s, const wg_plan *pl)
{
    const int64_t kpad = pl->kpanels * pl->mr;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < kpad; k++) {
        for (int64_t c = 0; c < pl->C; c++) {
            double g[3][3], gt[WG_ALPHA][3], ut[WG_ALPHA][WG_ALPHA];
            for (int r = 0; r < 3; r++) {
                for (int s = 0; s < 3; s++) {
                    g[r][s] = k < pl->K ? (double)w[k * s_out + c * s_in + r * s_r + s * s_s] : 0;
                }
            }
            for (int s = 0; s < 3; s++) {           /* columns: G g */
                double col[3] = {g[0][s], g[1][s], g[2][s]}, o[WG_ALPHA];
                WG_FILTER_1D(o, col);
                for (int a = 0; a < WG_ALPHA; a++) {
                    gt[a][s] = o[a];
                }
            }
            for (int a = 0; a < WG_ALPHA; a++) {    /* rows: (G g) G^T */
                WG_FILTER_1D(ut[a], gt[a]);
                for (int b = 0; b < WG_ALPHA; b++) {
                    u[wg_filter_index(pl, a * WG_ALPHA + b, k, c)] = (REAL)ut[a][b];
                }
            }
        }
    }
}

/* y = the plan's correlation of x with the filters w (read through the strides, as in
 * transform_filters) + bias (or NULL). */
static fc_status FN(winograd)(REAL *y, const REAL *x, const REAL *w, int64_t s_out,
                              int64_t s_in, int64_t s_r, int64_t s_s, const REAL *bias,
                              wg_plan *pl)
{
    const FN(wg_block_fn) block = FN(select_block)(pl);
    const int nthreads = fc_get_num_threads();
    wg_plan_blocks(pl, (int64_t)sizeof(REAL), nthreads);
    const int64_t nblocks = (pl->tiles + pl->block - 1) / pl->block;
    const size_t u_bytes = fc_round64((size_t)(WG_POSITIONS * pl->kpanels * pl->mr * pl->C)
                                      * sizeof(REAL));
    const size_t work_bytes = fc_round64((size_t)wg_workspace(pl) * sizeof(REAL));
    REAL *u = aligned_alloc(64, u_bytes);
    if (u == NULL) {
        return FC_ERR_NOMEM;
    }
    FN(transform_filters)(u, w, s_out, s_in, s_r, s_s, pl);
    int failed = 0;

#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        REAL *work = aligned_alloc(64, work_bytes);
        if (work == NULL) {
            failed = 1;
        }
        /* Each block writes its own outputs: the result does not depend on the thread. */
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < nblocks; b++) {
            if (!failed) {
                block(y, x, u, bias, pl, b * pl->block, work);
            }
        }
        free(work);
    }
    free(u);
    return failed ? FC_ERR_NOMEM : FC_OK;
}

fc_status FN(fc_conv_winograd_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *bias,
                                       const fc_conv_problem *pb)
{
    if (!fc_winograd_supports(pb)) {
        return FC_ERR_INVALID;
    }
    wg_plan pl;
    wg_plan_problem(&pl, pb->N, pb->C, pb->H, pb->W, pb->K, pb->P, pb->Q, pb->pad_top,
                    pb->pad_left);
    /* g[r][s] of filter k, channel c: w[k][c][r][s] */
    return FN(winograd)(y, x, w, pb->C * 9, 9, 3, 1, bias, &pl);
}

fc_status FN(fc_conv_winograd_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                             const fc_conv_problem *pb)
{
    if (!fc_winograd_supports(pb)) {
        return FC_ERR_INVALID;
    }
    /* dx[n][c][h][w] = sum over k, r, s of dy[n][k][h + r - (2 - pad_top)][...] *
     * w[k][c][2 - r][2 - s]: a forward correlation of dy with the filters rotated 180
     * degrees, K and C swapped, padding 2 - pad (negative: dy is cropped). */
    wg_plan pl;
    wg_plan_problem(&pl, pb->N, pb->K, pb->P, pb->Q, pb->C, pb->H, pb->W, 2 - pb->pad_top,
                    2 - pb->pad_left);
    /* g[r][s] of output channel c, input channel k: w[k][c][2 - r][2 - s] */
    return FN(winograd)(dx, dy, w + 8, 9, pb->C * 9, -3, -1, NULL, &pl);
}

#undef FN
#undef REAL
#undef SUFFIX
#undef BLOCK_GENERIC
#undef BLOCK_AVX2
#undef BLOCK_AVX512
#undef NR_6ROW
#undef NR_AVX512
