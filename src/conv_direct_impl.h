/* conv_direct_impl.h: the direct convolution kernels for one element type.
 * Included by conv_direct.c with REAL (float or double) and FN(name) (adds _f32/_f64).
 *
 * Layouts: x (N, C, H, W); w (K, C/groups, R, S); y and dy (N, K, P, Q); all C-contiguous.
 * Parallel loops are split so that each thread owns what it writes: forward over output
 * planes (n, k), data gradient over input planes (n, c), weight gradient over filter
 * slices (k, c). No atomics and no reductions across threads, so every result is bitwise
 * identical whatever the number of threads. */

/* y_row[q] += wv * x_row[q * stride] for q in [lo, hi): the inner loop of every kernel. */
static inline void FN(axpy_strided)(REAL *y_row, const REAL *x_row, REAL wv,
                                    int64_t lo, int64_t hi, int64_t stride)
{
    if (stride == 1) {
        for (int64_t q = lo; q < hi; q++) {
            y_row[q] += wv * x_row[q];
        }
    } else {
        for (int64_t q = lo; q < hi; q++) {
            y_row[q] += wv * x_row[q * stride];
        }
    }
}

/* sum over q in [lo, hi) of a[q] * b[q * stride], with 8 partial sums in a fixed order so
 * the compiler can vectorise it while the result stays deterministic. */
static inline REAL FN(dot_strided)(const REAL *a, const REAL *b, int64_t lo, int64_t hi,
                                   int64_t stride)
{
    REAL part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t q = lo;
    if (stride == 1) {
        for (; q + 8 <= hi; q += 8) {
            for (int j = 0; j < 8; j++) {
                part[j] += a[q + j] * b[q + j];
            }
        }
    }
    for (; q < hi; q++) {
        part[0] += a[q] * b[q * stride];
    }
    return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

/* sum of a[0..n) with 8 partial sums, for the same reason as dot_strided. */
static inline REAL FN(sum8)(const REAL *a, int64_t n)
{
    REAL part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            part[j] += a[i + j];
        }
    }
    for (; i < n; i++) {
        part[0] += a[i];
    }
    return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

fc_status FN(fc_conv_direct_forward)(REAL *y, const REAL *x, const REAL *w, const REAL *bias,
                                     const fc_conv_problem *pb)
{
    /* y (N, K, P, Q) = sum over c, r, s of x (N, C, H, W) * w (K, C/g, R, S), + bias (K) */
    const int64_t Cg = pb->C / pb->groups, Kg = pb->K / pb->groups;
    const int64_t P = pb->P, Q = pb->Q, H = pb->H, W = pb->W;
    const int64_t planes = pb->N * pb->K;

#pragma omp parallel for schedule(static)
    for (int64_t nk = 0; nk < planes; nk++) {
        const int64_t n = nk / pb->K, k = nk % pb->K, g = k / Kg;
        REAL *y_plane = y + nk * P * Q;
        const REAL b = bias ? bias[k] : (REAL)0;
        for (int64_t i = 0; i < P * Q; i++) {
            y_plane[i] = b;
        }
        for (int64_t c = 0; c < Cg; c++) {
            const REAL *x_plane = x + (n * pb->C + g * Cg + c) * H * W;
            const REAL *w_cs = w + (k * Cg + c) * pb->R * pb->S;
            for (int64_t r = 0; r < pb->R; r++) {
                int64_t p_lo, p_hi;
                fc_valid_range(P, H, pb->stride_h, fc_offset_h(pb, r), &p_lo, &p_hi);
                for (int64_t s = 0; s < pb->S; s++) {
                    const REAL wv = w_cs[r * pb->S + s];
                    const int64_t off_w = fc_offset_w(pb, s);
                    int64_t q_lo, q_hi;
                    fc_valid_range(Q, W, pb->stride_w, off_w, &q_lo, &q_hi);
                    for (int64_t p = p_lo; p < p_hi; p++) {
                        const int64_t h = p * pb->stride_h + fc_offset_h(pb, r);
                        FN(axpy_strided)(y_plane + p * Q, x_plane + h * W + off_w, wv,
                                         q_lo, q_hi, pb->stride_w);
                    }
                }
            }
        }
    }
    return FC_OK;
}

fc_status FN(fc_conv_direct_backward_data)(REAL *dx, const REAL *dy, const REAL *w,
                                           const fc_conv_problem *pb)
{
    /* dx (N, C, H, W) = the adjoint of the forward: each dy (N, K, P, Q) value scattered
     * back through w (K, C/g, R, S) onto the input pixels it read. */
    const int64_t Cg = pb->C / pb->groups, Kg = pb->K / pb->groups;
    const int64_t P = pb->P, Q = pb->Q, H = pb->H, W = pb->W;
    const int64_t planes = pb->N * pb->C;

#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < planes; nc++) {
        const int64_t n = nc / pb->C, c = nc % pb->C, g = c / Cg, c_in_group = c % Cg;
        REAL *dx_plane = dx + nc * H * W;
        for (int64_t i = 0; i < H * W; i++) {
            dx_plane[i] = 0;
        }
        for (int64_t k = g * Kg; k < (g + 1) * Kg; k++) {
            const REAL *dy_plane = dy + (n * pb->K + k) * P * Q;
            const REAL *w_cs = w + (k * Cg + c_in_group) * pb->R * pb->S;
            for (int64_t r = 0; r < pb->R; r++) {
                int64_t p_lo, p_hi;
                fc_valid_range(P, H, pb->stride_h, fc_offset_h(pb, r), &p_lo, &p_hi);
                for (int64_t s = 0; s < pb->S; s++) {
                    const REAL wv = w_cs[r * pb->S + s];
                    const int64_t off_w = fc_offset_w(pb, s);
                    int64_t q_lo, q_hi;
                    fc_valid_range(Q, W, pb->stride_w, off_w, &q_lo, &q_hi);
                    for (int64_t p = p_lo; p < p_hi; p++) {
                        const int64_t h = p * pb->stride_h + fc_offset_h(pb, r);
                        REAL *dx_row = dx_plane + h * W + off_w;
                        const REAL *dy_row = dy_plane + p * Q;
                        if (pb->stride_w == 1) {
                            for (int64_t q = q_lo; q < q_hi; q++) {
                                dx_row[q] += wv * dy_row[q];
                            }
                        } else {
                            for (int64_t q = q_lo; q < q_hi; q++) {
                                dx_row[q * pb->stride_w] += wv * dy_row[q];
                            }
                        }
                    }
                }
            }
        }
    }
    return FC_OK;
}

fc_status FN(fc_conv_direct_backward_weight)(REAL *dw, const REAL *dy, const REAL *x,
                                             const fc_conv_problem *pb)
{
    /* dw (K, C/g, R, S) = sum over n, p, q of dy (N, K, P, Q) * the x (N, C, H, W) pixel
     * each tap read. One thread per (k, c) slice, summing the batch in order. */
    const int64_t Cg = pb->C / pb->groups, Kg = pb->K / pb->groups;
    const int64_t P = pb->P, Q = pb->Q, H = pb->H, W = pb->W;
    const int64_t slices = pb->K * Cg;

#pragma omp parallel for schedule(static)
    for (int64_t kc = 0; kc < slices; kc++) {
        const int64_t k = kc / Cg, c_in_group = kc % Cg, c = (k / Kg) * Cg + c_in_group;
        for (int64_t r = 0; r < pb->R; r++) {
            int64_t p_lo, p_hi;
            fc_valid_range(P, H, pb->stride_h, fc_offset_h(pb, r), &p_lo, &p_hi);
            for (int64_t s = 0; s < pb->S; s++) {
                const int64_t off_w = fc_offset_w(pb, s);
                int64_t q_lo, q_hi;
                fc_valid_range(Q, W, pb->stride_w, off_w, &q_lo, &q_hi);
                REAL acc = 0;
                for (int64_t n = 0; n < pb->N; n++) {
                    const REAL *dy_plane = dy + (n * pb->K + k) * P * Q;
                    const REAL *x_plane = x + (n * pb->C + c) * H * W;
                    for (int64_t p = p_lo; p < p_hi; p++) {
                        const int64_t h = p * pb->stride_h + fc_offset_h(pb, r);
                        acc += FN(dot_strided)(dy_plane + p * Q, x_plane + h * W + off_w,
                                               q_lo, q_hi, pb->stride_w);
                    }
                }
                dw[kc * pb->R * pb->S + r * pb->S + s] = acc;
            }
        }
    }
    return FC_OK;
}

fc_status FN(fc_conv_backward_bias)(REAL *db, const REAL *dy, const fc_conv_problem *pb)
{
    /* db (K) = sum over n, p, q of dy (N, K, P, Q) */
    const int64_t PQ = pb->P * pb->Q;

#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < pb->K; k++) {
        REAL acc = 0;
        for (int64_t n = 0; n < pb->N; n++) {
            const REAL *dy_plane = dy + (n * pb->K + k) * PQ;
            acc += FN(sum8)(dy_plane, PQ);
        }
        db[k] = acc;
    }
    return FC_OK;
}
