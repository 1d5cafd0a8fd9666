/* conv_winograd_weight_impl.h: the F(4x4, 3x3) weight gradient (conv_winograd_weight.c says
 * how it works) for one element type (template.h: REAL, FN; the GEMM is FN(fc_gemm)).
 * Included by conv_winograd_weight.c after the transforms of every instruction set
 * (conv_winograd_weight_transforms_impl.h).
 *
 * Tiles: output tile (th, tw) covers output rows 4th .. 4th+3 and columns 4tw .. 4tw+3 (dy
 * past P or Q counts as 0) and reads the 6x6 input patch from row 4th - pad_top and column
 * 4tw - pad_left (x outside the image counts as 0). Chunks hold tile rows [row0, row1) of
 * the N * ceil(P/4) tile rows of the whole batch, numbered image by image.
 * Transformed tiles are stored channel-minor, (36 positions, tiles, channels), so that the
 * transforms run along contiguous channels (vectorised) and the GEMM's packing of A reads
 * whole runs of channels. */

/* dw (K, C, 3, 3) for filters [k0, k1) <- G^T M G of every (k, c), M (36 positions
 * m_position apart, K, C) the sum of the team's partial Ms (m, one after the other, each
 * wg_weight_sums elements), added into the first in thread order. The transform runs in
 * double and rounds once, as the forward pass's filter transform. */
static void FN(winograd_filter_gradient)(REAL *dw, REAL *m, int team, int64_t k0,
                                         int64_t k1, const wg_weight_plan *wp,
                                         const fc_conv_problem *pb)
{
    const int64_t C = pb->C, KC = wp->m_position, msize = wg_weight_sums(wp);
    for (int64_t k = k0; k < k1; k++) {
        REAL *restrict total = m + k * C;
        for (int i = 1; i < team; i++) {
            const REAL *restrict mi = m + i * msize + k * C;
            for (int t = 0; t < WG_POSITIONS; t++) {
                for (int64_t c = 0; c < C; c++) {
                    total[t * KC + c] += mi[t * KC + c];
                }
            }
        }
        /* s = G^T M along the rows' positions, then dg = s G along the columns', for a
         * block of channels at a time: loops along the channels, each body one 1-D
         * transform written out, vectorise. */
        for (int64_t c0 = 0; c0 < C; c0 += WG_WEIGHT_CHANNEL_BLOCK) {
            const int64_t n = C - c0 < WG_WEIGHT_CHANNEL_BLOCK ? C - c0
                                                               : WG_WEIGHT_CHANNEL_BLOCK;
            const REAL *restrict sums = total + c0;
            double s[3][WG_ALPHA][WG_WEIGHT_CHANNEL_BLOCK];
            for (int b = 0; b < WG_ALPHA; b++) {
#pragma omp simd
                for (int64_t j = 0; j < n; j++) {
                    const double col[WG_ALPHA] = {
                        sums[b * KC + j], sums[(WG_ALPHA + b) * KC + j],
                        sums[(2 * WG_ALPHA + b) * KC + j], sums[(3 * WG_ALPHA + b) * KC + j],
                        sums[(4 * WG_ALPHA + b) * KC + j], sums[(5 * WG_ALPHA + b) * KC + j]};
                    double g[3];
                    WG_FILTER_GRAD_1D(g, col);
                    s[0][b][j] = g[0];
                    s[1][b][j] = g[1];
                    s[2][b][j] = g[2];
                }
            }
            REAL *restrict out = dw + (k * C + c0) * 9;
            for (int r = 0; r < 3; r++) {
#pragma omp simd
                for (int64_t j = 0; j < n; j++) {
                    const double row[WG_ALPHA] = {s[r][0][j], s[r][1][j], s[r][2][j],
                                                  s[r][3][j], s[r][4][j], s[r][5][j]};
                    double g[3];
                    WG_FILTER_GRAD_1D(g, row);
                    out[9 * j + 3 * r] = (REAL)g[0];
                    out[9 * j + 3 * r + 1] = (REAL)g[1];
                    out[9 * j + 3 * r + 2] = (REAL)g[2];
                }
            }
        }
    }
}

typedef void FN(chunk_tiles_fn)(REAL *u, REAL *v, REAL *xband, REAL *dband, REAL *tmp,
                                const REAL *x, const REAL *dy, int64_t row0, int64_t row1,
                                int64_t k0, int64_t k1, const wg_weight_plan *wp,
                                const fc_conv_problem *pb);

/* The transforms of a chunk for the SIMD level of the call. */
static FN(chunk_tiles_fn) *FN(select_chunk_tiles)(void)
{
#if FC_WINOGRAD_HAVE_X86
    if (fc_simd_avx512()) {
        return FN(winograd_chunk_tiles_avx512);
    }
    if (fc_simd_avx2()) {
        return FN(winograd_chunk_tiles_avx2);
    }
#endif
    return FN(winograd_chunk_tiles_generic);
}

/* Adds the products of one chunk, tile rows [row0, row1), for filters [k0, k1) to m
 * (36 positions m_position apart, K, C), overwriting it when `first`; 0, or 1 when a GEMM
 * failed. u, v, xband, dband and tmp: the thread's scratch. */
static int FN(add_chunk)(REAL *m, int64_t row0, int64_t row1, int64_t k0, int64_t k1,
                         int first, const REAL *dy, const REAL *x, FN(chunk_tiles_fn) *tiles_fn,
                         REAL *u, REAL *v, REAL *xband, REAL *dband, REAL *tmp,
                         const wg_weight_plan *wp, const fc_conv_problem *pb)
{
    const int64_t C = pb->C, kk = k1 - k0, tiles = (row1 - row0) * wp->tiles_w;
    tiles_fn(u, v, xband, dband, tmp, x, dy, row0, row1, k0, k1, wp, pb);
    for (int t = 0; t < WG_POSITIONS; t++) {
        /* m[t][k0:k1] (kk x C) (+)= v[t]^T (kk x tiles) @ u[t] (tiles x C) */
        if (FN(fc_gemm)(kk, C, tiles, v + t * wp->v_position, 1, kk, u + t * wp->u_position,
                        C, 1, first ? 0 : 1, m + t * wp->m_position + k0 * C, C, 1) != FC_OK) {
            return 1;
        }
    }
    return 0;
}

/* One thread's share of the products, summed into m; 0, or 1 when a buffer or a GEMM
 * failed. Split by tiles, the thread sums its chunks (an omp for over the team) for every
 * filter into its own m, zeroed by the caller; split by filters, it sums every chunk for
 * its filters [k0, k1) into the shared m, overwritten by the first chunk. Its own buffers,
 * freed before it returns. */
static int FN(sum_chunks)(REAL *m, int64_t k0, int64_t k1, const REAL *dy, const REAL *x,
                          FN(chunk_tiles_fn) *tiles_fn, const wg_weight_plan *wp,
                          const fc_conv_problem *pb)
{
    const int64_t C = pb->C, K = pb->K;
    REAL *u = malloc((size_t)(WG_POSITIONS * wp->u_position) * sizeof(REAL));
    REAL *v = malloc((size_t)(WG_POSITIONS * wp->v_position) * sizeof(REAL));
    REAL *xband = malloc((size_t)wp->xband_size * sizeof(REAL));
    REAL *dband = malloc((size_t)wp->dband_size * sizeof(REAL));
    REAL *tmp = malloc((size_t)(WG_POSITIONS * (C > K ? C : K)) * sizeof(REAL));
    int failed = u == NULL || v == NULL || xband == NULL || dband == NULL || tmp == NULL;
    if (wp->by_filters) {
        for (int64_t chunk = 0; chunk < wp->chunks && !failed && k1 > k0; chunk++) {
            const int64_t row0 = chunk * wp->chunk_rows;
            const int64_t row1 = row0 + wp->chunk_rows < wp->total_rows
                ? row0 + wp->chunk_rows : wp->total_rows;
            failed = FN(add_chunk)(m, row0, row1, k0, k1, chunk == 0, dy, x, tiles_fn, u, v,
                                   xband, dband, tmp, wp, pb);
        }
    } else {
#pragma omp for schedule(static)
        for (int64_t chunk = 0; chunk < wp->chunks; chunk++) {
            if (failed) {
                continue;
            }
            const int64_t row0 = chunk * wp->chunk_rows;
            const int64_t row1 = row0 + wp->chunk_rows < wp->total_rows
                ? row0 + wp->chunk_rows : wp->total_rows;
            failed = FN(add_chunk)(m, row0, row1, 0, K, 0, dy, x, tiles_fn, u, v, xband,
                                   dband, tmp, wp, pb);
        }
    }
    free(u);
    free(v);
    free(xband);
    free(dband);
    free(tmp);
    return failed;
}

fc_status FN(fc_conv_winograd_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                               const fc_conv_problem *pb)
{
    /* dw (K, C, 3, 3) = sum over n and tiles of G^T [(A dy A^T) . (B^T x B)] G */
    if (!fc_winograd_supports(pb)) {
        return FC_ERR_INVALID;
    }
    if ((double)WG_POSITIONS * (double)pb->C * (double)pb->K * sizeof(REAL)
        > (double)FC_WINOGRAD_MAX_SUMS_BYTES) {
        return FC_ERR_TOO_LARGE;
    }
    wg_weight_plan wp;
    wg_weight_plan_of(&wp, pb, fc_get_num_threads());
    const int64_t msize = wg_weight_sums(&wp);
    FN(chunk_tiles_fn) *tiles_fn = FN(select_chunk_tiles)();
    int failed = 0;     /* shared: set by any thread, read by all after a barrier */

    /* m holds the one M (split by filters) or the team's partial Ms, thread by thread (a
     * thread the runtime does not start leaves its M zero). */
    REAL *m = wp.by_filters ? malloc((size_t)msize * sizeof(REAL))
                            : calloc((size_t)(wp.team * msize), sizeof(REAL));
    if (m == NULL) {
        return FC_ERR_NOMEM;
    }

#pragma omp parallel num_threads(wp.team)
    {
        const int thread = fc_thread_num(), team = fc_team_size();
        const int64_t k0 = wg_filter_share(pb->K, team, thread);
        const int64_t k1 = wg_filter_share(pb->K, team, thread + 1);
        if (FN(sum_chunks)(wp.by_filters ? m : m + thread * msize, k0, k1, dy, x, tiles_fn,
                           &wp, pb)) {
#pragma omp atomic write
            failed = 1;
        }
        /* Every partial M is complete: sum them and transform back, split over channels,
         * unless a thread failed (all threads see the same flag). Split by filters, each
         * thread's filters are complete and its own. */
#pragma omp barrier
        int any_failed;
#pragma omp atomic read
        any_failed = failed;
        if (!any_failed && wp.by_filters) {
            FN(winograd_filter_gradient)(dw, m, 1, k0, k1, &wp, pb);
        } else if (!any_failed) {
#pragma omp for schedule(static)
            for (int64_t k = 0; k < pb->K; k++) {
                FN(winograd_filter_gradient)(dw, m, wp.team, k, k + 1, &wp, pb);
            }
        }
    }
    free(m);
    return failed ? FC_ERR_NOMEM : FC_OK;
}
