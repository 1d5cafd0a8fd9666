/*
 * gemm_impl.h: the GEMM algorithm, written once and included by gemm.c for each precision
 * and tile geometry.
 *
 * The includer defines: REAL (float or double), SUFFIX (names this instance), MR and NR
 * (tile rows and columns), MC, KC, NC (cache blocks), KERNEL_T (the micro-kernel pointer
 * type) and, for the 6-row geometry the portable path uses, GENERIC_KERNEL. FN(), the
 * allocator and gemm_grid() come from gemm.c, which also picks the micro-kernel. The end of
 * this file undefines the includer's macros, ready for the next instance.
 */

_Static_assert(MC % MR == 0 && NC % NR == 0, "blocks hold whole micro-panels");

#ifdef GENERIC_KERNEL
_Static_assert(MR == 6, "kernel_generic spells out six rows");

/* c (MR x NR, row stride ldc) = a (kc x MR packed) * b (kc x NR, row stride ldb) + beta c */
static void FN(kernel_generic)(int64_t kc, const REAL *restrict a, const REAL *restrict b,
                               int64_t ldb, REAL *restrict c, int64_t ldc, REAL beta)
{
    /* One loop over j updating all six rows: the only loop left to vectorise runs along B's
     * contiguous rows (a loop over i gets GCC to vectorise along A's panel, 10x slower). */
    REAL acc[MR][NR] = {{0}};
    for (int64_t p = 0; p < kc; p++) {
        const REAL *ap = a + p * MR, *bp = b + p * ldb;
        REAL a0 = ap[0], a1 = ap[1], a2 = ap[2], a3 = ap[3], a4 = ap[4], a5 = ap[5];
        for (int j = 0; j < NR; j++) {
            REAL bj = bp[j];
            acc[0][j] += a0 * bj;
            acc[1][j] += a1 * bj;
            acc[2][j] += a2 * bj;
            acc[3][j] += a3 * bj;
            acc[4][j] += a4 * bj;
            acc[5][j] += a5 * bj;
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NR; j++) {
            /* beta == 0 must not read C, which may hold NaN. */
            c[i * ldc + j] = beta == 0 ? acc[i][j] : acc[i][j] + beta * c[i * ldc + j];
        }
    }
}

#endif /* GENERIC_KERNEL */

/* dst (ceil(mc/MR) panels, each kc x MR) <- A (mc x kc, element (i, p) at a[i*rsa + p*csa]) */
static void FN(pack_a)(REAL *restrict dst, const REAL *a, int64_t rsa, int64_t csa,
                       int64_t mc, int64_t kc)
{
    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
        const REAL *src = a + i0 * rsa;
        int64_t mr = mc - i0 < MR ? mc - i0 : MR;
        if (mr == MR && rsa == 1) {
            /* Column-major A (a transposed operand): each panel row is one contiguous copy. */
            for (int64_t p = 0; p < kc; p++) {
                for (int i = 0; i < MR; i++) {
                    dst[p * MR + i] = src[p * csa + i];
                }
            }
        } else if (mr == MR) {
            for (int64_t p = 0; p < kc; p++) {
                for (int i = 0; i < MR; i++) {
                    dst[p * MR + i] = src[i * rsa + p * csa];
                }
            }
        } else {
            /* Zero rows past the edge so the kernel can always compute a full tile. */
            for (int64_t p = 0; p < kc; p++) {
                for (int i = 0; i < MR; i++) {
                    dst[p * MR + i] = i < mr ? src[i * rsa + p * csa] : 0;
                }
            }
        }
        dst += kc * MR;
    }
}

/* dst (ceil(nc/NR) panels, each kc x NR) <- B (kc x nc, element (p, j) at b[p*rsb + j*csb]) */
static void FN(pack_b)(REAL *restrict dst, const REAL *b, int64_t rsb, int64_t csb,
                       int64_t kc, int64_t nc)
{
    for (int64_t j0 = 0; j0 < nc; j0 += NR) {
        const REAL *src = b + j0 * csb;
        int64_t nr = nc - j0 < NR ? nc - j0 : NR;
        if (nr == NR && csb == 1) {
            /* Row-major B: each panel row is one contiguous vector copy. */
            for (int64_t p = 0; p < kc; p++) {
                for (int j = 0; j < NR; j++) {
                    dst[p * NR + j] = src[p * rsb + j];
                }
            }
        } else if (nr == NR) {
            for (int64_t p = 0; p < kc; p++) {
                for (int j = 0; j < NR; j++) {
                    dst[p * NR + j] = src[p * rsb + j * csb];
                }
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                for (int j = 0; j < NR; j++) {
                    dst[p * NR + j] = j < nr ? src[p * rsb + j * csb] : 0;
                }
            }
        }
        dst += kc * NR;
    }
}

/* C (mc x nc, row stride ldc) = Ap (packed mc x kc) * B (kc x nc, element (p, j) at
 * b[p*rsb + j*csb]) + beta C; bp holds B's packed panels, filled here unless bmode == B_PACKED */
static void FN(macro_kernel)(REAL *c, int64_t ldc, const REAL *ap, REAL *bp, const REAL *b,
                             int64_t rsb, int64_t csb, int bmode, int64_t mc, int64_t nc,
                             int64_t kc, REAL beta, KERNEL_T kernel)
{
    /* jr outside ir: one B panel (kc x NR) stays in L1 while the A panels stream from L2. */
    for (int64_t jr = 0; jr < nc; jr += NR) {
        int64_t nr = nc - jr < NR ? nc - jr : NR;
        REAL *bj = bp + (jr / NR) * kc * NR;
        const REAL *bk = bj;
        int64_t ldbk = NR;
        if (bmode == B_IN_PLACE && nr == NR) {
            bk = b + jr;
            ldbk = rsb;
        } else if (bmode != B_PACKED) {
            /* Packing a panel right before its first use leaves it in L1 for the kernel. */
            FN(pack_b)(bj, b + jr * csb, rsb, csb, kc, nr);
        }
        for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t mr = mc - ir < MR ? mc - ir : MR;
            REAL *cij = c + ir * ldc + jr;
            if (mr == MR && nr == NR) {
                kernel(kc, ap + ir * kc, bk, ldbk, cij, ldc, beta);
            } else {
                /* Edge tile: compute the full tile aside, then write only what is inside C. */
                REAL tile[MR * NR];
                kernel(kc, ap + ir * kc, bk, ldbk, tile, NR, 0);
                for (int64_t i = 0; i < mr; i++) {
                    for (int64_t j = 0; j < nr; j++) {
                        REAL t = tile[i * NR + j];
                        cij[i * ldc + j] = beta == 0 ? t : t + beta * cij[i * ldc + j];
                    }
                }
            }
        }
    }
}

/* C (M x N, row stride ldc) = A (M x K, strides rsa, csa) B (K x N, strides rsb, csb) + beta C
 * on one thread; abuf holds min(M, MC) x min(K, KC) and bbuf min(K, KC) x min(N, NC), padded */
static void FN(gemm_serial)(REAL *c, int64_t ldc, const REAL *a, int64_t rsa, int64_t csa,
                            const REAL *b, int64_t rsb, int64_t csb, int64_t M, int64_t N,
                            int64_t K, REAL beta, REAL *abuf, REAL *bbuf, KERNEL_T kernel)
{
    int in_place = b_in_place(M, MR, rsb, csb, sizeof(REAL));
    for (int64_t jc = 0; jc < N; jc += NC) {
        int64_t nc = N - jc < NC ? N - jc : NC;
        for (int64_t pc = 0; pc < K; pc += KC) {
            int64_t kc = K - pc < KC ? K - pc : KC;
            /* Later K blocks add to the partial sums of the earlier ones. */
            REAL beta_pc = pc == 0 ? beta : 1;
            for (int64_t ic = 0; ic < M; ic += MC) {
                int64_t mc = M - ic < MC ? M - ic : MC;
                int bmode = in_place ? B_IN_PLACE : ic == 0 ? B_PACK_NOW : B_PACKED;
                FN(pack_a)(abuf, a + ic * rsa + pc * csa, rsa, csa, mc, kc);
                FN(macro_kernel)(c + ic * ldc + jc, ldc, abuf, bbuf, b + pc * rsb + jc * csb,
                                 rsb, csb, bmode, mc, nc, kc, beta_pc, kernel);
            }
        }
    }
}

/* C (M x N, row stride ldc) = A (M x K, strides rsa, csa) B (K x N, strides rsb, csb) + beta C
 * with the MR x NR micro-kernel `kernel` */
static fc_status FN(gemm)(int64_t M, int64_t N, int64_t K, const REAL *A, int64_t rsa,
                          int64_t csa, const REAL *B, int64_t rsb, int64_t csb, REAL beta,
                          REAL *C, int64_t ldc, int nthreads, KERNEL_T kernel)
{
    if (M < 0 || N < 0 || K < 0 || (M > 1 && ldc < N)) {
        return FC_ERR_INVALID;
    }
    if (M == 0 || N == 0) {
        return FC_OK;
    }
    if (K == 0) {
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) {
                C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
            }
        }
        return FC_OK;
    }

    /* Each thread owns one rectangle of C (whole MR x NR tiles) and runs the serial algorithm
     * on it with its own buffers: no barriers, and every C element is summed in the same order
     * whatever the thread count, because the K blocking does not depend on it. */
    int tm, tn;
    gemm_grid(M, N, K, MR, NR, nthreads, &tm, &tn);
    int nt = tm * tn;
    int64_t mstep = ((M + MR - 1) / MR + tm - 1) / tm * MR;
    int64_t nstep = ((N + NR - 1) / NR + tn - 1) / tn * NR;
    int64_t mcmax = mstep < MC ? mstep : MC;
    int64_t kcmax = K < KC ? K : KC;
    int64_t ncmax = nstep < NC ? nstep : NC;
    size_t abytes = fc_round64((size_t)(mcmax * kcmax) * sizeof(REAL));
    size_t bbytes = fc_round64((size_t)(kcmax * ncmax) * sizeof(REAL));
    char *buf = fc_aligned_malloc((size_t)nt * (abytes + bbytes));
    if (buf == NULL) {
        return FC_ERR_NOMEM;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        /* A runtime may grant fewer threads than asked: the rectangles are then shared out. */
        REAL *abuf = (REAL *)(buf + (size_t)tid * (abytes + bbytes));
        REAL *bbuf = (REAL *)(buf + (size_t)tid * (abytes + bbytes) + abytes);
        for (int r = tid; r < nt; r += nth) {
            int64_t m0 = (r / tn) * mstep, n0 = (r % tn) * nstep;
            if (m0 < M && n0 < N) {
                int64_t m = M - m0 < mstep ? M - m0 : mstep;
                int64_t n = N - n0 < nstep ? N - n0 : nstep;
                FN(gemm_serial)(C + m0 * ldc + n0, ldc, A + m0 * rsa, rsa, csa, B + n0 * csb,
                                rsb, csb, m, n, K, beta, abuf, bbuf, kernel);
            }
        }
    }
    fc_aligned_free(buf);
    return FC_OK;
}

#undef REAL
#undef SUFFIX
#undef MR
#undef NR
#undef MC
#undef KC
#undef NC
#undef KERNEL_T
#undef GENERIC_KERNEL
