/* program_impl.h: an eval-mode program's steps for one element type (template.h: REAL,
 * FN). Included by program.c. */

/* out = a + b (as np.add). */
static void FN(add_into)(REAL *out, const REAL *a, const REAL *b, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= FC_ELEMENTWISE_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        out[i] = a[i] + b[i];
    }
}

/* y (rows, out) = x (rows, in) @ w^T + bias: the GEMM, then the bias added to each row
 * (as Linear: the product, then += bias). */
static fc_status FN(linear)(REAL *y, const REAL *x, const fc_step *s)
{
    const int64_t in = s->in_features, out = s->out_features;
    const REAL *bias = (const REAL *)s->bias;
    fc_status st = FN(fc_gemm)(s->rows, out, in, x, in, 1, (const REAL *)s->weight, 1, in,
                               0, y, out, fc_get_num_threads());
    if (st != FC_OK || bias == NULL)
        return st;
    for (int64_t i = 0; i < s->rows; i++)
        for (int64_t j = 0; j < out; j++)
            y[i * out + j] += bias[j];
    return FC_OK;
}

/* ResNet's option-A shortcut: y[:, before + c] = x[:, c, ::stride, ::stride], other
 * channels zero. */
static void FN(zero_pad_subsample)(REAL *y, const REAL *x, const fc_step *s)
{
    const int64_t N = s->shape[0], C = s->shape[1], H = s->shape[2], W = s->shape[3];
    const int64_t K = s->out_channels, st = s->stride;
    const int64_t P = (H + st - 1) / st, Q = (W + st - 1) / st;
    memset(y, 0, (size_t)(N * K * P * Q) * sizeof(REAL));
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const REAL *plane = x + (n * C + c) * H * W;
            REAL *target = y + (n * K + s->before + c) * P * Q;
            for (int64_t p = 0; p < P; p++)
                for (int64_t q = 0; q < Q; q++)
                    target[p * Q + q] = plane[p * st * W + q * st];
        }
}

/* The algorithm a CONV step runs for input `in`: its own, or direct where the values fail
 * the step's test (fc_values_fit). */
static fc_conv_algorithm FN(conv_algorithm)(const fc_step *s, const REAL *in)
{
    if (s->value_scale <= 0) {
        return s->algorithm;
    }
    const fc_conv_problem *pb = &s->conv;
    REAL most_in = 0, most_weight = 0, most_bias = 0;
    FN(fc_max_abs)(&most_in, in, pb->N * pb->C * pb->H * pb->W);
    FN(fc_max_abs)(&most_weight, (const REAL *)s->weight,
                   pb->K * (pb->C / pb->groups) * pb->R * pb->S);
    if (s->bias != NULL) {
        FN(fc_max_abs)(&most_bias, (const REAL *)s->bias, pb->K);
    }
    return fc_values_fit(most_in, most_weight, most_bias, s->value_scale, s->value_limit)
               ? s->algorithm : FC_CONV_DIRECT;
}

static fc_status FN(run_step)(const fc_step *s, REAL *const buffers[3])
{
    const REAL *in = buffers[s->input.buffer] + s->input.offset;
    REAL *out = buffers[s->output.buffer] + s->output.offset;
    switch (s->kind) {
    case FC_STEP_CONV:
        return FN(fc_conv_forward)(out, in, (const REAL *)s->weight, (const REAL *)s->bias,
                                   &s->conv, FN(conv_algorithm)(s, in));
    case FC_STEP_MAX_POOL:
        return FN(fc_max_pool_forward)(out, NULL, NULL, in, &s->pool);
    case FC_STEP_AVG_POOL:
        return FN(fc_avg_pool_forward)(out, in, &s->pool);
    case FC_STEP_ADAPTIVE_AVG_POOL:
        return FN(fc_adaptive_avg_pool_forward)(out, in, &s->pool);
    case FC_STEP_LINEAR:
        return FN(linear)(out, in, s);
    case FC_STEP_RELU:
        FN(fc_relu_forward)(out, in, s->count);
        return FC_OK;
    case FC_STEP_ADD:
        FN(add_into)(out, in, buffers[s->side.buffer] + s->side.offset, s->count);
        if (s->relu)
            FN(fc_relu_forward)(out, out, s->count);
        return FC_OK;
    case FC_STEP_ZERO_PAD_SUBSAMPLE:
        FN(zero_pad_subsample)(out, in, s);
        return FC_OK;
    case FC_STEP_BATCH_NORM:
        return FN(fc_batch_norm_forward_eval)(out, in, (const REAL *)s->mean,
                                              (const REAL *)s->var, (const REAL *)s->weight,
                                              (const REAL *)s->bias, &s->batch_norm);
    }
    return FC_ERR_INVALID;
}

fc_status FN(fc_program_run)(const fc_step *steps, int64_t count, const REAL *input,
                             REAL *output, REAL *workspace, int64_t *failed)
{
    /* the input is only read: no step writes to FC_BUFFER_INPUT (program.py) */
    REAL *const buffers[3] = {(REAL *)input, output, workspace};
    for (int64_t i = 0; i < count; i++) {
        const fc_status st = FN(run_step)(&steps[i], buffers);
        if (st != FC_OK) {
            *failed = i;
            return st;
        }
    }
    *failed = -1;
    return FC_OK;
}

fc_status FN(fc_program_run_chunks)(const fc_step *steps, int64_t count, const REAL *input,
                                    REAL *output, REAL *workspace, int64_t chunks,
                                    int64_t input_size, int64_t output_size,
                                    int64_t workspace_size, int nthreads, int64_t *failed)
{
    if (nthreads <= 1 || chunks <= 1) {
        for (int64_t c = 0; c < chunks; c++) {
            const fc_status st = FN(fc_program_run)(steps, count, input + c * input_size,
                                                   output + c * output_size, workspace,
                                                   failed);
            if (st != FC_OK)
                return st;
        }
        return FC_OK;
    }
    fc_status result = FC_OK;
    *failed = -1;
#pragma omp parallel num_threads(nthreads)
    {
        run_kernels_alone();
        REAL *own = workspace + (int64_t)fc_thread_num() * workspace_size;
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < chunks; c++) {
            int64_t step = -1;
            fc_status st = FC_OK;
            /* a team of one of its own: a kernel's work-sharing outside a parallel region
             * of its own binds to it, not to this team */
#pragma omp parallel num_threads(1)
            st = FN(fc_program_run)(steps, count, input + c * input_size,
                                    output + c * output_size, own, &step);
            if (st != FC_OK) {
#pragma omp critical(fc_program_chunks)
                if (result == FC_OK) {
                    result = st;
                    *failed = step;
                }
            }
        }
    }
    return result;
}
