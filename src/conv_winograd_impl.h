/*
 * conv_winograd_impl.h: the Winograd driver for one element type (template.h: REAL, FN),
 * included by conv_winograd.c: transform the filters into packed A panels, then hand
 * blocks of tiles to the threads (each block: conv_winograd_block_impl.h). Its other
 * parameters are the B-panel widths of the micro-kernels: FC_TEMPLATE_NR for the 6-row
 * tiles (portable and AVX2) and FC_TEMPLATE_NR_AVX512 for the AVX-512 ones.
 */

/* The filter transform and tile block of one instruction set. */
typedef struct {
    FN(wg_filters_fn) *filters;
    FN(wg_block_fn) *block;
} FN(wg_isa);

/* The filter transform and tile block for the SIMD level of the call; sets the plan's
 * micro-kernel tile. */
static FN(wg_isa) FN(select_isa)(wg_plan *pl)
{
#if FC_GEMM_HAVE_AVX512
    if (fc_simd_avx512()) {
        pl->mr = FC_GEMM_MR_AVX512;
        pl->nr = FC_TEMPLATE_NR_AVX512;
        return (FN(wg_isa)){FN(wg_filters_avx512), FN(wg_block_avx512)};
    }
#endif
    pl->mr = FC_GEMM_MR;
    pl->nr = FC_TEMPLATE_NR;
#if FC_GEMM_HAVE_AVX2
    if (fc_simd_avx2()) {
        return (FN(wg_isa)){FN(wg_filters_avx2), FN(wg_block_avx2)};
    }
#endif
    return (FN(wg_isa)){FN(wg_filters_generic), FN(wg_block_generic)};
}

/* y = the plan's correlation of x with the filters w (read as wg_filters in conv_winograd.h
 * reads them) + bias (or NULL). */
static fc_status FN(winograd)(REAL *y, const REAL *x, const REAL *w, int64_t s_out,
                              int64_t s_in, int flip, const REAL *bias,
                              wg_plan *pl)
{
    const FN(wg_isa) isa = FN(select_isa)(pl);
    const int nthreads = fc_get_num_threads();
    wg_plan_blocks(pl, (int64_t)sizeof(REAL), nthreads);
    const int64_t nblocks = (pl->tiles + pl->block - 1) / pl->block;
    const size_t u_bytes = (size_t)(WG_POSITIONS * pl->u_position) * sizeof(REAL);
    const size_t work_bytes = (size_t)wg_workspace(pl) * sizeof(REAL);
    REAL *u = wg_take(WG_KEPT_FILTERS, u_bytes);
    if (u == NULL) {
        return FC_ERR_NOMEM;
    }
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t kp = 0; kp < pl->kpanels; kp++) {      /* each panel writes its own U */
        isa.filters(u, w, s_out, s_in, flip, pl, kp);
    }
    int failed = 0;

#pragma omp parallel num_threads(nthreads) reduction(|| : failed)
    {
        REAL *work = wg_take(WG_KEPT_WORK, work_bytes);
        if (work == NULL) {
            failed = 1;
        }
        /* Each block writes its own outputs: the result does not depend on the thread. */
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < nblocks; b++) {
            if (!failed) {
                isa.block(y, x, u, bias, pl, b * pl->block, work);
            }
        }
        wg_give_back(WG_KEPT_WORK, work);
    }
    wg_give_back(WG_KEPT_FILTERS, u);
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
    pl.relu = pb->relu;
    /* g[r][s] of filter k, channel c: w[k][c][r][s] */
    return FN(winograd)(y, x, w, pb->C * 9, 9, 0, bias, &pl);
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
    return FN(winograd)(dx, dy, w, 9, pb->C * 9, 1, NULL, &pl);
}

