/*
 * gemm_impl.h: the GEMM algorithm (gemm.c says how it works) for one element type and one
 * micro-kernel, included by gemm.c for each type and instruction set (template.h: REAL,
 * FN, ISA). Its other parameters:
 *     FC_TEMPLATE_MR, FC_TEMPLATE_NR     the micro-kernel's tile (rows of A, columns of B)
 *     FC_TEMPLATE_MC, FC_TEMPLATE_KC, FC_TEMPLATE_NC   the cache blocks of A's rows, the
 *                                        depth and B's columns
 *     FC_TEMPLATE_KERNEL                 the micro-kernel (gemm_kernels.h)
 *     FC_TEMPLATE_KERNEL_NARROW          its half-width form, where the instance has one
 *     FC_TEMPLATE_KERNEL_ROWS, FC_TEMPLATE_KERNEL_NARROW_ROWS   both forms reading a
 *                                        row-major A in place, where the instance has them
 *     FC_TEMPLATE_TARGET                 the instruction set's function attribute (empty
 *                                        for the portable one): gemm_few_rows' loops are
 *                                        vectorised by the compiler for it
 *     FC_TEMPLATE_LANES, _VEC, _SETZERO, _LOADU, _FMADD, _ADD, _REDUCE_ADD   the
 *                                        instruction set's vectors (simd_*.h), absent for
 *                                        the portable one
 *     FC_TEMPLATE_TRANSPOSE, _MASKZ_LOADU, _MASK_STOREU   where the instruction set has
 *                                        them: a LANES x LANES transpose in registers and
 *                                        masked loads and stores (pack_transposed)
 * It defines FN(ISA(gemm)) (gemm_avx2_f32, ...); the allocator, b_in_place(), a_in_place()
 * and gemm_grid() come from gemm.c. MR, NR, MC, KC and NC below are short names for the
 * parameters, undefined at the end of the file.
 */
#define MR FC_TEMPLATE_MR
#define NR FC_TEMPLATE_NR
#define MC FC_TEMPLATE_MC
#define KC FC_TEMPLATE_KC
#define NC FC_TEMPLATE_NC

_Static_assert(MC % MR == 0 && NC % NR == 0, "blocks hold whole micro-panels");

#ifdef FC_TEMPLATE_TRANSPOSE
/* pack_panels where the depth is contiguous (s_depth == 1: a row-major A, a column-major
 * B): each panel in groups of LANES of its rows (zeros past the edge), LANES depth values
 * of each loaded as one vector, the square transposed in registers, and each of its
 * columns stored as a row of the panel. The scalar form reads one value per load. */
FC_TEMPLATE_TARGET static void FN(ISA(pack_transposed))(REAL *restrict dst, const REAL *src,
                                                        int64_t s_width, int64_t width,
                                                        int64_t depth, const int panel)
{
    enum { VL = FC_TEMPLATE_LANES };
    for (int64_t i0 = 0; i0 < width; i0 += panel, dst += depth * panel) {
        for (int g = 0; g < panel; g += VL) {
            const int group = panel - g < VL ? panel - g : VL;   /* the panel's rows here */
            const int64_t in_group = width - i0 - g;     /* ... and of them, those that exist */
            const int rows = in_group < 0 ? 0 : in_group < group ? (int)in_group : group;
            const unsigned lanes_kept = (1u << group) - 1;
            for (int64_t p0 = 0; p0 < depth; p0 += VL) {
                const int n = depth - p0 < VL ? (int)(depth - p0) : VL;
                FC_TEMPLATE_VEC r[VL];
                for (int i = 0; i < VL; i++) {
                    r[i] = i < rows ? FC_TEMPLATE_MASKZ_LOADU((1u << n) - 1,
                                                              src + (i0 + g + i) * s_width + p0)
                                    : FC_TEMPLATE_SETZERO();
                }
                FC_TEMPLATE_TRANSPOSE(r);
                for (int p = 0; p < n; p++) {
                    FC_TEMPLATE_MASK_STOREU(dst + (p0 + p) * panel + g, lanes_kept, r[p]);
                }
            }
        }
    }
}
#endif

/* dst (ceil(width/panel) panels, each depth x panel) <- the width x depth matrix at src,
 * element (i, p) at src[i*s_width + p*s_depth]: A's rows in MR-row panels (s_width = rsa)
 * or B's columns in NR-column panels (s_width = csb). Inlined, so panel is a constant. */
static inline void FN(ISA(pack_panels))(REAL *restrict dst, const REAL *src, int64_t s_width,
                                        int64_t s_depth, int64_t width, int64_t depth,
                                        const int panel)
{
#ifdef FC_TEMPLATE_TRANSPOSE
    if (s_depth == 1 && s_width != 1) {
        FN(ISA(pack_transposed))(dst, src, s_width, width, depth, panel);
        return;
    }
#endif
    for (int64_t i0 = 0; i0 < width; i0 += panel) {
        const REAL *s = src + i0 * s_width;
        const int64_t w = width - i0 < panel ? width - i0 : panel;
        if (w == panel && s_width == 1) {
            /* Contiguous along the panel (a column-major A, a row-major B): each panel row
             * is one contiguous copy. */
            for (int64_t p = 0; p < depth; p++) {
                for (int i = 0; i < panel; i++) {
                    dst[p * panel + i] = s[p * s_depth + i];
                }
            }
        } else if (w == panel) {
            for (int64_t p = 0; p < depth; p++) {
                for (int i = 0; i < panel; i++) {
                    dst[p * panel + i] = s[i * s_width + p * s_depth];
                }
            }
        } else {
            /* Zeros past the edge, so the kernel can always compute a full tile. */
            for (int64_t p = 0; p < depth; p++) {
                for (int i = 0; i < panel; i++) {
                    dst[p * panel + i] = i < w ? s[i * s_width + p * s_depth] : 0;
                }
            }
        }
        dst += depth * panel;
    }
}

/* One tile of C (MR x NR, or its first half where narrow) from kc steps of an A panel:
 * packed (lda 0) or MR rows read in place, row stride lda (any other value, negative
 * too; where the instance has kernels for that; a_in_place never picks a stride of 0). */
static inline void FN(ISA(tile))(int narrow, int64_t kc, const REAL *a, int64_t lda,
                                 const REAL *b, int64_t ldb, REAL *c, int64_t ldc, REAL beta)
{
#ifdef FC_TEMPLATE_KERNEL_ROWS
    if (lda != 0) {
        if (narrow) {
            FC_TEMPLATE_KERNEL_NARROW_ROWS(kc, a, lda, b, ldb, c, ldc, beta);
        } else {
            FC_TEMPLATE_KERNEL_ROWS(kc, a, lda, b, ldb, c, ldc, beta);
        }
        return;
    }
#else
    (void)lda;
#endif
#ifdef FC_TEMPLATE_KERNEL_NARROW
    if (narrow) {
        FC_TEMPLATE_KERNEL_NARROW(kc, a, b, ldb, c, ldc, beta);
        return;
    }
#else
    (void)narrow;
#endif
    FC_TEMPLATE_KERNEL(kc, a, b, ldb, c, ldc, beta);
}

/* C (mc x nc, row stride ldc) = A (mc x kc) * B (kc x nc, element (p, j) at b[p*rsb + j*csb])
 * + beta C. A's rows [0, a_rows) are read in place at a + i*lda, the others from ap (its
 * packed panels from row a_rows on); bp holds B's packed panels, filled here unless
 * bmode == B_PACKED. */
static void FN(ISA(macro_kernel))(REAL *c, int64_t ldc, const REAL *a, int64_t lda,
                                  int64_t a_rows, const REAL *ap, REAL *bp, const REAL *b,
                                  int64_t rsb, int64_t csb, int bmode, int64_t mc, int64_t nc,
                                  int64_t kc, REAL beta)
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
            FN(ISA(pack_panels))(bj, b + jr * csb, csb, rsb, nr, kc, NR);
        }
        for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t mr = mc - ir < MR ? mc - ir : MR;
            REAL *cij = c + ir * ldc + jr;
            const int in_place = ir < a_rows;
            const REAL *ai = in_place ? a + ir * lda : ap + (ir - a_rows) * kc;
            const int64_t ldai = in_place ? lda : 0;
            if (mr == MR && nr == NR) {
                FN(ISA(tile))(0, kc, ai, ldai, bk, ldbk, cij, ldc, beta);
            } else {
                /* Edge tile: compute the full tile aside (its first half where the rest
                 * is padding and the instance has a half-width kernel), then write only
                 * what is inside C. */
                REAL tile[MR * NR];
                FN(ISA(tile))(nr <= NR / 2, kc, ai, ldai, bk, ldbk, tile, NR, 0);
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
static void FN(ISA(gemm_serial))(REAL *c, int64_t ldc, const REAL *a, int64_t rsa, int64_t csa,
                            const REAL *b, int64_t rsb, int64_t csb, int64_t M, int64_t N,
                                 int64_t K, REAL beta, REAL *abuf, REAL *bbuf)
{
    int in_place = b_in_place(M, MR, rsb, csb, sizeof(REAL));
    for (int64_t jc = 0; jc < N; jc += NC) {
        int64_t nc = N - jc < NC ? N - jc : NC;
#ifdef FC_TEMPLATE_KERNEL_ROWS
        const int a_read_in_place = a_in_place(nc, NR, rsa, csa, sizeof(REAL));
#else
        const int a_read_in_place = 0;
#endif
        for (int64_t pc = 0; pc < K; pc += KC) {
            int64_t kc = K - pc < KC ? K - pc : KC;
            /* Later K blocks add to the partial sums of the earlier ones. */
            REAL beta_pc = pc == 0 ? beta : 1;
            for (int64_t ic = 0; ic < M; ic += MC) {
                int64_t mc = M - ic < MC ? M - ic : MC;
                int bmode = in_place ? B_IN_PLACE : ic == 0 ? B_PACK_NOW : B_PACKED;
                /* A read in place: whole panels only; a last partial one is packed with
                 * its padding */
                const int64_t a_rows = a_read_in_place ? mc / MR * MR : 0;
                const REAL *ablock = a + ic * rsa + pc * csa;
                if (a_rows < mc) {
                    FN(ISA(pack_panels))(abuf, ablock + a_rows * rsa, rsa, csa, mc - a_rows,
                                         kc, MR);
                }
                FN(ISA(macro_kernel))(c + ic * ldc + jc, ldc, ablock, rsa, a_rows, abuf, bbuf,
                                      b + pc * rsb + jc * csb, rsb, csb, bmode, mc, nc, kc,
                                      beta_pc);
            }
        }
    }
}

#ifdef FC_TEMPLATE_LANES
/* dot_columns computes DOT_COLUMNS columns of C at a time: they share each load of A's
 * row, and two vector sums per column (even and odd vectors of the depth) make 8
 * independent chains of FMAs, enough to hide their latency. */
#define DOT_COLUMNS 4

/* C[i, j] = sum over p of A[i, p] B[p, j] + beta C[i, j], for i < M, j in [j0, j1), with
 * B's columns contiguous (rsb == 1): dot products of A's rows and B's columns. Each sums
 * the whole vectors of its depth in two vector sums (even and odd vectors), adds them and
 * then the lanes (FC_TEMPLATE_REDUCE_ADD), then the last K % lanes products in order. The
 * order depends on K alone, so a column's bits do not depend on j0 or on the threads. */
FC_TEMPLATE_TARGET static void FN(ISA(dot_columns))(int64_t M, int64_t j0, int64_t j1,
                                                    int64_t K, const REAL *A, int64_t rsa,
                                                    int64_t csa, const REAL *B, int64_t csb,
                                                    REAL beta, REAL *C, int64_t ldc)
{
    enum { VL = FC_TEMPLATE_LANES };
    for (int64_t i = 0; i < M; i++) {
        const REAL *a = A + i * rsa;
        for (int64_t j = j0; j < j1; j += DOT_COLUMNS) {
            const REAL *b[DOT_COLUMNS];
            REAL sum[DOT_COLUMNS];
            for (int c = 0; c < DOT_COLUMNS; c++) {    /* past j1: column j1 - 1 again */
                b[c] = B + (j + c < j1 ? j + c : j1 - 1) * csb;
            }
            int64_t p = 0;
            if (csa == 1) {
                FC_TEMPLATE_VEC even[DOT_COLUMNS], odd[DOT_COLUMNS];
                for (int c = 0; c < DOT_COLUMNS; c++) {
                    even[c] = odd[c] = FC_TEMPLATE_SETZERO();
                }
                for (; p + 2 * VL <= K; p += 2 * VL) {
                    const FC_TEMPLATE_VEC a0 = FC_TEMPLATE_LOADU(a + p);
                    const FC_TEMPLATE_VEC a1 = FC_TEMPLATE_LOADU(a + p + VL);
                    for (int c = 0; c < DOT_COLUMNS; c++) {
                        even[c] = FC_TEMPLATE_FMADD(a0, FC_TEMPLATE_LOADU(b[c] + p), even[c]);
                        odd[c] = FC_TEMPLATE_FMADD(a1, FC_TEMPLATE_LOADU(b[c] + p + VL), odd[c]);
                    }
                }
                if (p + VL <= K) {
                    const FC_TEMPLATE_VEC a0 = FC_TEMPLATE_LOADU(a + p);
                    for (int c = 0; c < DOT_COLUMNS; c++) {
                        even[c] = FC_TEMPLATE_FMADD(a0, FC_TEMPLATE_LOADU(b[c] + p), even[c]);
                    }
                    p += VL;
                }
                for (int c = 0; c < DOT_COLUMNS; c++) {
                    sum[c] = FC_TEMPLATE_REDUCE_ADD(FC_TEMPLATE_ADD(even[c], odd[c]));
                }
            } else {
                for (int c = 0; c < DOT_COLUMNS; c++) {
                    sum[c] = 0;
                }
            }
            for (; p < K; p++) {
                for (int c = 0; c < DOT_COLUMNS; c++) {
                    sum[c] += a[p * csa] * b[c][p];
                }
            }
            for (int c = 0; c < DOT_COLUMNS && j + c < j1; c++) {
                REAL *out = C + i * ldc + j + c;
                *out = beta == 0 ? sum[c] : sum[c] + beta * *out;
            }
        }
    }
}
#undef DOT_COLUMNS
#else
/* The portable path's dot products run DOT_PARTS interleaved partial sums (independent
 * chains), added pairwise at the end. */
#define DOT_PARTS 16

/* C[i, j] = sum over p of A[i, p] B[p, j] + beta C[i, j], for i < M, j in [j0, j1), with
 * B's columns contiguous (rsb == 1): dot products of A's rows and B's columns. */
static void FN(ISA(dot_columns))(int64_t M, int64_t j0, int64_t j1, int64_t K, const REAL *A,
                                 int64_t rsa, int64_t csa, const REAL *B, int64_t csb,
                                 REAL beta, REAL *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        const REAL *a = A + i * rsa;
        for (int64_t j = j0; j < j1; j++) {
            const REAL *b = B + j * csb;
            REAL part[DOT_PARTS] = {0};
            for (int64_t p = 0; p < K; p++) {
                part[p % DOT_PARTS] += a[p * csa] * b[p];
            }
            for (int half = DOT_PARTS / 2; half > 0; half /= 2) {
                for (int l = 0; l < half; l++) {            /* a tree: short chains */
                    part[l] += part[l + half];
                }
            }
            C[i * ldc + j] = beta == 0 ? part[0] : part[0] + beta * C[i * ldc + j];
        }
    }
}
#undef DOT_PARTS
#endif

/* The same product for any B: each row of C gathers B's rows scaled by A's row, p in order. */
FC_TEMPLATE_TARGET static void FN(ISA(add_rows))(int64_t M, int64_t j0, int64_t j1,
                                                 int64_t K, const REAL *A, int64_t rsa,
                                                 int64_t csa, const REAL *B, int64_t rsb,
                                                 int64_t csb, REAL beta, REAL *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        REAL *c = C + i * ldc;
        for (int64_t j = j0; j < j1; j++) {
            c[j] = beta == 0 ? 0 : beta * c[j];
        }
        for (int64_t p = 0; p < K; p++) {
            const REAL a = A[i * rsa + p * csa];
            const REAL *b = B + p * rsb;
            if (csb == 1) {
                for (int64_t j = j0; j < j1; j++) {
                    c[j] += a * b[j];
                }
            } else {
                for (int64_t j = j0; j < j1; j++) {
                    c[j] += a * b[j * csb];
                }
            }
        }
    }
}

/* A GEMM of at most FEW_ROWS_MAX rows of A: each element of B is used that few times, so
 * packing B (and computing whole tiles of mostly absent rows) costs more than it saves.
 * Threads split C's columns; each element is summed by one thread in a fixed order. */
static fc_status FN(ISA(gemm_few_rows))(int64_t M, int64_t N, int64_t K, const REAL *A,
                                        int64_t rsa, int64_t csa, const REAL *B, int64_t rsb,
                                        int64_t csb, REAL beta, REAL *C, int64_t ldc,
                                        int nthreads)
{
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    int nt = nthreads;
    while (nt > 1 && (flops < MIN_FLOPS_PER_THREAD * nt || N < nt)) {
        nt--;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int t = 0; t < nt; t++) {
        const int64_t j0 = N * t / nt, j1 = N * (t + 1) / nt;
        if (rsb == 1) {
            FN(ISA(dot_columns))(M, j0, j1, K, A, rsa, csa, B, csb, beta, C, ldc);
        } else {
            FN(ISA(add_rows))(M, j0, j1, K, A, rsa, csa, B, rsb, csb, beta, C, ldc);
        }
    }
    return FC_OK;
}

/* C (M x N, row stride ldc) = A (M x K, strides rsa, csa) B (K x N, strides rsb, csb) + beta C
 * with the MR x NR micro-kernel */
static fc_status FN(ISA(gemm))(int64_t M, int64_t N, int64_t K, const REAL *A, int64_t rsa,
                               int64_t csa, const REAL *B, int64_t rsb, int64_t csb, REAL beta,
                               REAL *C, int64_t ldc, int nthreads)
{
    if (M < 0 || N < 0 || K < 0 || (M > 1 && ldc < N)) {
        return FC_ERR_INVALID;
    }
    if (M == 0 || N == 0) {
        return FC_OK;
    }
    if (M <= FEW_ROWS_MAX && K > 0) {
        return FN(ISA(gemm_few_rows))(M, N, K, A, rsa, csa, B, rsb, csb, beta, C, ldc,
                                      nthreads);
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
                FN(ISA(gemm_serial))(C + m0 * ldc + n0, ldc, A + m0 * rsa, rsa, csa,
                                     B + n0 * csb, rsb, csb, m, n, K, beta, abuf, bbuf);
            }
        }
    }
    fc_aligned_free(buf);
    return FC_OK;
}

#undef MR
#undef NR
#undef MC
#undef KC
#undef NC
