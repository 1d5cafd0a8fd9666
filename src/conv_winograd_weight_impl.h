/* conv_winograd_weight_impl.h: the F(2x2, 3x3) weight gradient (conv_winograd_weight.c says
 * how it works) for one element type (template.h: REAL, FN; the GEMM is FN(fc_gemm)).
 * Included by conv_winograd_weight.c after the transforms of every instruction set
 * (conv_winograd_weight_transforms_impl.h).
 *
 * Tiles: output tile (th, tw) covers output rows 2th, 2th+1 and columns 2tw, 2tw+1 (dy
 * past P or Q counts as 0) and reads the 4x4 input patch from row 2th - pad_top and column
 * 2tw - pad_left (x outside the image counts as 0). Chunks hold tile rows [row0, row1) of
 * the N * ceil(P/2) tile rows of the whole batch, numbered image by image.
 * Transformed tiles are stored channel-minor, (16 positions, tiles, channels), so that the
 * transforms run along contiguous channels (vectorised) and the GEMM's packing of A reads
 * whole runs of channels. */

/* dw (K, C, 3, 3) for filters [k0, k1) <- G^T M G of every (k, c), M (16, K, C) the sum of
 * the team's partial Ms (m, one after the other), added into the first in thread order. */
static void FN(winograd_filter_gradient)(REAL *dw, REAL *m, int team, int64_t k0,
                                         int64_t k1, const fc_conv_problem *pb)
{
    const int64_t C = pb->C, K = pb->K, KC = K * C, msize = 16 * KC;
    for (int64_t k = k0; k < k1; k++) {
        REAL *restrict total = m + k * C;
        for (int i = 1; i < team; i++) {
            const REAL *restrict mi = m + i * msize + k * C;
            for (int t = 0; t < 16; t++) {
                for (int64_t c = 0; c < C; c++) {
                    total[t * KC + c] += mi[t * KC + c];
                }
            }
        }
        for (int64_t c = 0; c < C; c++) {
            /* G^T = [[1, 1/2, 1/2, 0], [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]] on both sides */
            REAL s[3][4];
            for (int b = 0; b < 4; b++) {
                const REAL m0 = total[b * KC + c], m1 = total[(4 + b) * KC + c];
                const REAL m2 = total[(8 + b) * KC + c], m3 = total[(12 + b) * KC + c];
                s[0][b] = m0 + (REAL)0.5 * (m1 + m2);
                s[1][b] = (REAL)0.5 * (m1 - m2);
                s[2][b] = (REAL)0.5 * (m1 + m2) + m3;
            }
            REAL *out = dw + (k * C + c) * 9;
            for (int r = 0; r < 3; r++) {
                out[3 * r + 0] = s[r][0] + (REAL)0.5 * (s[r][1] + s[r][2]);
                out[3 * r + 1] = (REAL)0.5 * (s[r][1] - s[r][2]);
                out[3 * r + 2] = (REAL)0.5 * (s[r][1] + s[r][2]) + s[r][3];
            }
        }
    }
}

typedef void FN(chunk_tiles_fn)(REAL *u, REAL *v, REAL *xband, REAL *dband, const REAL *x,
                                const REAL *dy, int64_t row0, int64_t row1,
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

/* One thread's share: its chunks' transforms and 16 products summed into my_m (16, K, C);
 * 0, or 1 when a buffer or a GEMM failed. Its own buffers, freed before it returns. */
static int FN(sum_chunks)(REAL *my_m, const REAL *dy, const REAL *x, FN(chunk_tiles_fn) *tiles_fn,
                          const wg_weight_plan *wp, const fc_conv_problem *pb)
{
    const int64_t C = pb->C, K = pb->K;
    REAL *u = malloc((size_t)(16 * wp->chunk_tiles * C) * sizeof(REAL));
    REAL *v = malloc((size_t)(16 * wp->chunk_tiles * K) * sizeof(REAL));
    REAL *xband = malloc((size_t)wp->xband_size * sizeof(REAL));
    REAL *dband = malloc((size_t)wp->dband_size * sizeof(REAL));
    int failed = u == NULL || v == NULL || xband == NULL || dband == NULL;
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < wp->chunks; chunk++) {
        if (failed) {
            continue;
        }
        const int64_t row0 = chunk * wp->chunk_rows;
        const int64_t row1 = row0 + wp->chunk_rows < wp->total_rows ? row0 + wp->chunk_rows
                                                                    : wp->total_rows;
        const int64_t tiles = (row1 - row0) * wp->tiles_w;
        tiles_fn(u, v, xband, dband, x, dy, row0, row1, pb);
        for (int t = 0; t < 16 && !failed; t++) {
            /* my_m[t] (K x C) += v[t]^T (K x tiles) @ u[t] (tiles x C) */
            if (FN(fc_gemm)(K, C, tiles, v + t * tiles * K, 1, K, u + t * tiles * C, C, 1,
                            1, my_m + t * K * C, C, 1) != FC_OK) {
                failed = 1;
            }
        }
    }
    free(u);
    free(v);
    free(xband);
    free(dband);
    return failed;
}

fc_status FN(fc_conv_winograd_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                               const fc_conv_problem *pb)
{
    /* dw (K, C, 3, 3) = sum over n and tiles of G^T [(A dy A^T) . (B^T x B)] G */
    if (!fc_winograd_supports(pb)) {
        return FC_ERR_INVALID;
    }
    if (16.0 * (double)pb->C * (double)pb->K * sizeof(REAL) > (double)FC_WINOGRAD_MAX_SUMS_BYTES) {
        return FC_ERR_TOO_LARGE;
    }
    const int64_t msize = 16 * pb->C * pb->K;
    wg_weight_plan wp;
    wg_weight_plan_of(&wp, pb, fc_get_num_threads());
    FN(chunk_tiles_fn) *tiles_fn = FN(select_chunk_tiles)();
    int failed = 0;     /* shared: set by any thread, read by all after a barrier */

    /* m holds the team's partial Ms, thread by thread. */
    REAL *m = calloc((size_t)(wp.team * msize), sizeof(REAL));
    if (m == NULL) {
        return FC_ERR_NOMEM;
    }

#pragma omp parallel num_threads(wp.team)
    {
        if (FN(sum_chunks)(m + fc_thread_num() * msize, dy, x, tiles_fn, &wp, pb)) {
#pragma omp atomic write
            failed = 1;
        }
        /* Every partial M is complete (the for's implicit barrier): sum them and transform
         * back, split over channels, unless a thread failed (all threads see the same flag). */
#pragma omp barrier
        int any_failed;
#pragma omp atomic read
        any_failed = failed;
        if (!any_failed) {
#pragma omp for schedule(static)
            for (int64_t k = 0; k < pb->K; k++) {
                FN(winograd_filter_gradient)(dw, m, wp.team, k, k + 1, pb);
            }
        }
    }
    free(m);
    return failed ? FC_ERR_NOMEM : FC_OK;
}
