/* conv_winograd_weight_impl.h: the F(2x2, 3x3) weight gradient (conv_winograd_weight.c says
 * how it works) for one element type. Included by conv_winograd_weight.c with REAL, FN(name) and GEMM defined.
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
    const int64_t C = pb->C, K = pb->K, P = pb->P, Q = pb->Q;
    const int64_t msize = 16 * C * K;
    const int64_t tiles_h = (P + 1) / 2, tiles_w = (Q + 1) / 2;
    const int64_t total_rows = pb->N * tiles_h;
    const int nthreads = fc_get_num_threads();
    /* Chunks of at most FC_WINOGRAD_CHUNK_TILES tiles (at least one tile row), their count
     * a multiple of the threads when there are rows enough, so the threads share evenly. */
    int64_t max_rows = FC_WINOGRAD_CHUNK_TILES / tiles_w;
    max_rows = max_rows < 1 ? 1 : max_rows;
    int64_t chunks = (total_rows + max_rows - 1) / max_rows;
    if (total_rows >= nthreads) {
        chunks = (chunks + nthreads - 1) / nthreads * nthreads;
    }
    const int64_t chunk_rows = (total_rows + chunks - 1) / chunks;
    chunks = (total_rows + chunk_rows - 1) / chunk_rows;
    const int team = chunks < nthreads ? (int)chunks : nthreads;
    const int64_t chunk_tiles = chunk_rows * tiles_w;
    const int64_t runs = chunk_rows < tiles_h ? chunk_rows : tiles_h;
    const int64_t xband_size = (2 * runs + 2) * (2 * tiles_w + 2) * C;
    const int64_t dband_size = 2 * runs * 2 * tiles_w * K;
    void (*chunk_tiles_fn)(REAL *, REAL *, REAL *, REAL *, const REAL *, const REAL *, int64_t, int64_t,
                           const fc_conv_problem *) = FN_X86(winograd_chunk_tiles, generic);
#if FC_WINOGRAD_HAVE_X86
    if (fc_simd_avx512()) {
        chunk_tiles_fn = FN_X86(winograd_chunk_tiles, avx512);
    } else if (fc_simd_avx2()) {
        chunk_tiles_fn = FN_X86(winograd_chunk_tiles, avx2);
    }
#endif
    int failed = 0;     /* shared: set by any thread, read by all after a barrier */

    /* m holds the team's partial Ms, thread by thread. */
    REAL *m = calloc((size_t)(team * msize), sizeof(REAL));
    if (m == NULL) {
        return FC_ERR_NOMEM;
    }

#pragma omp parallel num_threads(team)
    {
        REAL *my_m = m + fc_thread_num() * msize;
        REAL *u = malloc((size_t)(16 * chunk_tiles * C) * sizeof(REAL));
        REAL *v = malloc((size_t)(16 * chunk_tiles * K) * sizeof(REAL));
        REAL *xband = malloc((size_t)xband_size * sizeof(REAL));
        REAL *dband = malloc((size_t)dband_size * sizeof(REAL));
        int my_failed = u == NULL || v == NULL || xband == NULL || dband == NULL;
#pragma omp for schedule(static)
        for (int64_t chunk = 0; chunk < chunks; chunk++) {
            if (my_failed) {
                continue;
            }
            const int64_t row0 = chunk * chunk_rows;
            const int64_t row1 = row0 + chunk_rows < total_rows ? row0 + chunk_rows : total_rows;
            const int64_t tiles = (row1 - row0) * tiles_w;
            chunk_tiles_fn(u, v, xband, dband, x, dy, row0, row1, pb);
            for (int t = 0; t < 16 && !my_failed; t++) {
                /* my_m[t] (K x C) += v[t]^T (K x tiles) @ u[t] (tiles x C) */
                if (GEMM(K, C, tiles, v + t * tiles * K, 1, K, u + t * tiles * C, C, 1,
                         1, my_m + t * K * C, C, 1) != FC_OK) {
                    my_failed = 1;
                }
            }
        }
        if (my_failed) {
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
            for (int64_t k = 0; k < K; k++) {
                FN(winograd_filter_gradient)(dw, m, team, k, k + 1, pb);
            }
        }
        free(u);
        free(v);
        free(xband);
        free(dband);
    }
    free(m);
    return failed ? FC_ERR_NOMEM : FC_OK;
}
