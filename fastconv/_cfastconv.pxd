# C declarations of src/fastconv.h, shared by the Cython glue.
from libc.stdint cimport int32_t, int64_t, uint8_t

cdef extern from "fastconv.h" nogil:
    ctypedef enum fc_status:
        FC_OK
        FC_ERR_NOMEM
        FC_ERR_INVALID
        FC_ERR_TOO_LARGE

    enum: FC_IM2COL_MAX_ROW_BYTES
    enum: FC_WINOGRAD_MAX_SUMS_BYTES

    ctypedef struct fc_conv_problem:
        int64_t N, C, H, W
        int64_t K, R, S
        int64_t stride_h, stride_w
        int64_t pad_top, pad_bottom, pad_left, pad_right
        int64_t dil_h, dil_w
        int64_t groups
        int64_t P, Q
        int relu
        int direct_forward
        int direct_data
        int direct_weight

    ctypedef struct fc_pool_problem:
        int64_t N, C, H, W
        int64_t R, S
        int64_t stride_h, stride_w
        int64_t pad_h, pad_w
        int64_t dil_h, dil_w
        int64_t P, Q
        int count_include_pad
        int64_t divisor_override

    int fc_have_openmp()
    int fc_get_num_threads()
    void fc_set_num_threads(int n)
    void fc_sync_num_threads()
    void fc_set_thread_num_threads(int n)
    int fc_openmp_started()
    int fc_simd_avx2()
    int fc_simd_avx512()
    void fc_simd_select(int level)
    const char *fc_simd_name()
    int fc_cpu_has_avx2_fma()
    int fc_cpu_has_avx512()

    fc_status fc_gemm_f32(int64_t M, int64_t N, int64_t K,
                          const float *A, int64_t rsa, int64_t csa,
                          const float *B, int64_t rsb, int64_t csb,
                          float beta, float *C, int64_t ldc, int nthreads)
    fc_status fc_gemm_f64(int64_t M, int64_t N, int64_t K,
                          const double *A, int64_t rsa, int64_t csa,
                          const double *B, int64_t rsb, int64_t csb,
                          double beta, double *C, int64_t ldc, int nthreads)

    # Convolution: one entry point per pass and dtype, running the algorithm named (conv.c).
    ctypedef enum fc_conv_algorithm:
        FC_CONV_DIRECT
        FC_CONV_IM2COL
        FC_CONV_WINOGRAD

    fc_status fc_conv_forward_f32(float *y, const float *x, const float *w, const float *bias,
                                  const fc_conv_problem *pb, fc_conv_algorithm algorithm)
    fc_status fc_conv_forward_f64(double *y, const double *x, const double *w,
                                  const double *bias, const fc_conv_problem *pb,
                                  fc_conv_algorithm algorithm)
    fc_status fc_conv_backward_data_f32(float *dx, const float *dy, const float *w,
                                        const fc_conv_problem *pb, fc_conv_algorithm algorithm)
    fc_status fc_conv_backward_data_f64(double *dx, const double *dy, const double *w,
                                        const fc_conv_problem *pb, fc_conv_algorithm algorithm)
    fc_status fc_conv_backward_weight_f32(float *dw, const float *dy, const float *x,
                                          const fc_conv_problem *pb, fc_conv_algorithm algorithm)
    fc_status fc_conv_backward_weight_f64(double *dw, const double *dy, const double *x,
                                          const fc_conv_problem *pb, fc_conv_algorithm algorithm)
    fc_status fc_conv_backward_bias_f32(float *db, const float *dy, const fc_conv_problem *pb)
    fc_status fc_conv_backward_bias_f64(double *db, const double *dy, const fc_conv_problem *pb)
    int64_t fc_winograd_kept_bytes()

    ctypedef enum fc_border:
        FC_BORDER_CONSTANT
        FC_BORDER_REFLECT
        FC_BORDER_REPLICATE
        FC_BORDER_MIRROR
        FC_BORDER_WRAP

    ctypedef struct fc_filter_problem:
        int64_t N, H, W
        int64_t R, S
        fc_border border
        int64_t top, left, out_H, out_W

    ctypedef struct fc_filter_input:
        const char *const *rows
        const int64_t *plane_steps
        const int64_t *widths
        int64_t pieces
        int u8

    fc_status fc_filter2d_f32(float *y, const fc_filter_input *x, const float *k,
                              const fc_filter_problem *pb)
    fc_status fc_filter2d_f64(double *y, const fc_filter_input *x, const double *k,
                              const fc_filter_problem *pb)
    fc_status fc_filter2d_magnitude_f32(float *y, const fc_filter_input *x, const float *kx,
                                        const float *ky, const fc_filter_problem *pb)
    fc_status fc_filter2d_magnitude_f64(double *y, const fc_filter_input *x, const double *kx,
                                        const double *ky, const fc_filter_problem *pb)
    fc_status fc_canny_nms_f32(uint8_t *classes, const float *gx, const float *gy,
                               const float *mag, int64_t N, int64_t H, int64_t W,
                               double low, double high)
    fc_status fc_canny_nms_f64(uint8_t *classes, const double *gx, const double *gy,
                               const double *mag, int64_t N, int64_t H, int64_t W,
                               double low, double high)
    fc_status fc_canny_hysteresis(uint8_t *edges, const uint8_t *classes, int64_t N,
                                  int64_t H, int64_t W)
    fc_status fc_label_regions(int32_t *labels, const uint8_t *classes, int64_t N, int64_t H,
                               int64_t W, int64_t *count)
    void fc_border_indices(int64_t *out, int64_t start, int64_t count, int64_t n,
                           fc_border mode)

    fc_status fc_max_pool_forward_f32(float *y, uint8_t *argmax, int64_t *indices, const float *x,
                                      const fc_pool_problem *pb)
    fc_status fc_max_pool_forward_f64(double *y, uint8_t *argmax, int64_t *indices, const double *x,
                                      const fc_pool_problem *pb)
    fc_status fc_max_pool_backward_f32(float *dx, const float *dy, const float *x,
                                       const fc_pool_problem *pb)
    fc_status fc_max_pool_backward_f64(double *dx, const double *dy, const double *x,
                                       const fc_pool_problem *pb)
    fc_status fc_max_pool_backward_argmax_f32(float *dx, const float *dy,
                                              const uint8_t *argmax,
                                              const fc_pool_problem *pb)
    fc_status fc_max_pool_backward_argmax_f64(double *dx, const double *dy,
                                              const uint8_t *argmax,
                                              const fc_pool_problem *pb)
    fc_status fc_max_pool_backward_indices_f32(float *dx, const float *dy, const int64_t *indices,
                                               const fc_pool_problem *pb)
    fc_status fc_max_pool_backward_indices_f64(double *dx, const double *dy, const int64_t *indices,
                                               const fc_pool_problem *pb)
    fc_status fc_avg_pool_forward_f32(float *y, const float *x, const fc_pool_problem *pb)
    fc_status fc_avg_pool_forward_f64(double *y, const double *x, const fc_pool_problem *pb)
    fc_status fc_avg_pool_backward_f32(float *dx, const float *dy, const fc_pool_problem *pb)
    fc_status fc_avg_pool_backward_f64(double *dx, const double *dy, const fc_pool_problem *pb)
    fc_status fc_adaptive_avg_pool_forward_f32(float *y, const float *x, const fc_pool_problem *pb)
    fc_status fc_adaptive_avg_pool_forward_f64(double *y, const double *x, const fc_pool_problem *pb)
    fc_status fc_adaptive_avg_pool_backward_f32(float *dx, const float *dy,
                                                const fc_pool_problem *pb)
    fc_status fc_adaptive_avg_pool_backward_f64(double *dx, const double *dy,
                                                const fc_pool_problem *pb)

    fc_status fc_max_abs_f32(float *result, const float *x, int64_t n)
    fc_status fc_max_abs_f64(double *result, const double *x, int64_t n)
    int fc_values_fit(double max_a, double max_b, double max_c, double scale, double limit)

    void fc_relu_forward_f32(float *y, const float *x, int64_t n)
    void fc_relu_forward_f64(double *y, const double *x, int64_t n)
    void fc_relu_backward_f32(float *dx, const float *dy, const float *y, int64_t n)
    void fc_relu_backward_f64(double *dx, const double *dy, const double *y, int64_t n)
    void fc_add_forward_f32(float *y, const float *a, const float *b, int64_t n, int relu)
    void fc_add_forward_f64(double *y, const double *a, const double *b, int64_t n,
                            int relu)

    ctypedef struct fc_adam_scalars_f32:
        float beta1, one_minus_beta1, beta2, one_minus_beta2, correction1, correction2, lr, eps
    ctypedef struct fc_adam_scalars_f64:
        double beta1, one_minus_beta1, beta2, one_minus_beta2, correction1, correction2, lr, eps
    void fc_adam_update_f32(float *param, float *m, float *v, const float *grad, int64_t n,
                            const fc_adam_scalars_f32 *s)
    void fc_adam_update_f64(double *param, double *m, double *v, const double *grad, int64_t n,
                            const fc_adam_scalars_f64 *s)
    void fc_sgd_update_f32(float *param, float *velocity, const float *grad, int64_t n,
                           float momentum, float lr, int nesterov, int first)
    void fc_sgd_update_f64(double *param, double *velocity, const double *grad, int64_t n,
                           double momentum, double lr, int nesterov, int first)

# The direct convolution's plan and run counters (src/fastconv.h, "direct convolution").
cdef extern from "fastconv.h" nogil:
    ctypedef enum fc_direct_forward_variant:
        FC_DIRECT_FORWARD_BY_PIXELS
        FC_DIRECT_FORWARD_BY_FILTERS
    ctypedef enum fc_direct_data_variant:
        FC_DIRECT_DATA_SCATTER
        FC_DIRECT_DATA_GATHER
        FC_DIRECT_DATA_LOOPS
    ctypedef enum fc_direct_weight_variant:
        FC_DIRECT_WEIGHT_BY_PIXELS
        FC_DIRECT_WEIGHT_BY_FILTERS
    ctypedef struct fc_direct_plan:
        fc_direct_forward_variant forward
        fc_direct_data_variant backward_data
        fc_direct_weight_variant backward_weight
        int64_t band_rows
        int64_t bands
        int forward_reads_x_in_place
        int64_t filter_parts
        int weight_reads_x_in_place
        int weight_rows_flat
        int64_t data_gather_phases
        int scatter_fits
        int threads
    fc_status fc_conv_direct_plan_f32(fc_direct_plan *plan, const fc_conv_problem *pb,
                                      int nthreads)
    fc_status fc_conv_direct_plan_f64(fc_direct_plan *plan, const fc_conv_problem *pb,
                                      int nthreads)
    int64_t fc_conv_direct_forward_runs(fc_direct_forward_variant variant)
    int64_t fc_conv_direct_data_runs(fc_direct_data_variant variant)
    int64_t fc_conv_direct_weight_runs(fc_direct_weight_variant variant)

    # Batch normalisation over (N, C, HW) (batchnorm.c).
    ctypedef struct fc_batch_norm_problem:
        int64_t N, C, HW
        double eps, momentum
        int relu

    fc_status fc_batch_norm_forward_train_f32(float *y, double *mean, double *invstd,
                                             float *running_mean, float *running_var,
                                             const float *x, const float *weight,
                                             const float *bias, const fc_batch_norm_problem *pb)
    fc_status fc_batch_norm_forward_train_f64(double *y, double *mean, double *invstd,
                                             double *running_mean, double *running_var,
                                             const double *x, const double *weight,
                                             const double *bias, const fc_batch_norm_problem *pb)
    fc_status fc_batch_norm_forward_eval_f32(float *y, const float *x, const float *mean,
                                            const float *var, const float *weight,
                                            const float *bias, const fc_batch_norm_problem *pb)
    fc_status fc_batch_norm_forward_eval_f64(double *y, const double *x, const double *mean,
                                            const double *var, const double *weight,
                                            const double *bias, const fc_batch_norm_problem *pb)
    fc_status fc_batch_norm_backward_f32(float *dx, float *dweight, float *dbias,
                                        const float *dy, const float *x, const float *y,
                                        const double *mean, const double *invstd,
                                        const float *weight, const fc_batch_norm_problem *pb)
    fc_status fc_batch_norm_backward_f64(double *dx, double *dweight, double *dbias,
                                        const double *dy, const double *x, const double *y,
                                        const double *mean, const double *invstd,
                                        const double *weight, const fc_batch_norm_problem *pb)


# The depthwise convolution (src/fastconv.h, "depthwise convolution"); its kernels run
# through the fc_conv_* dispatchers as FC_CONV_DEPTHWISE.
cdef extern from "fastconv.h" nogil:
    enum: FC_CONV_DEPTHWISE
    enum: FC_DEPTHWISE_MAX_WORKSPACE_BYTES
    enum: FC_DEPTHWISE_CHANNELS_LAST_MAX_PIXELS
    int fc_depthwise_supports(const fc_conv_problem *pb)
    int64_t fc_depthwise_workspace_bytes(const fc_conv_problem *pb, int64_t itemsize)


# Eval-mode programs (src/fastconv.h, "eval-mode programs").
cdef extern from "fastconv.h" nogil:
    ctypedef enum fc_step_kind:
        FC_STEP_CONV
        FC_STEP_MAX_POOL
        FC_STEP_AVG_POOL
        FC_STEP_ADAPTIVE_AVG_POOL
        FC_STEP_LINEAR
        FC_STEP_RELU
        FC_STEP_ADD
        FC_STEP_ZERO_PAD_SUBSAMPLE
        FC_STEP_BATCH_NORM

    ctypedef enum fc_buffer:
        FC_BUFFER_INPUT
        FC_BUFFER_OUTPUT
        FC_BUFFER_WORKSPACE

    ctypedef struct fc_value:
        fc_buffer buffer
        int64_t offset

    ctypedef struct fc_step:
        fc_step_kind kind
        fc_value input, side, output
        const void *weight
        const void *bias
        fc_conv_problem conv
        fc_conv_algorithm algorithm
        fc_pool_problem pool
        int64_t rows, in_features, out_features
        int64_t count
        int64_t shape[4]
        int64_t out_channels, before, stride
        const void *mean
        const void *var
        fc_batch_norm_problem batch_norm
        int relu
        double value_scale, value_limit

    fc_status fc_program_run_chunks_f32(const fc_step *steps, int64_t count,
                                        const float *input, float *output, float *workspace,
                                        int64_t chunks, int64_t input_size,
                                        int64_t output_size, int64_t workspace_size,
                                        int nthreads, int64_t *failed)
    fc_status fc_program_run_chunks_f64(const fc_step *steps, int64_t count,
                                        const double *input, double *output,
                                        double *workspace, int64_t chunks, int64_t input_size,
                                        int64_t output_size, int64_t workspace_size,
                                        int nthreads, int64_t *failed)
