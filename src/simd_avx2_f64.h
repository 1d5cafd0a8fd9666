/* simd_avx2_f64.h: the template parameters (template.h) of AVX2 vectors of float64, as
 * simd_avx2_f32.h names them for float32. Included, once per instantiation, by a .c file
 * that has included <immintrin.h> and defined REAL double; template_end.h undefines them. */
#include "simd_reduce.h"

#define FC_TEMPLATE_LANES 4
#define FC_TEMPLATE_VEC __m256d
#define FC_TEMPLATE_LOADU _mm256_loadu_pd
#define FC_TEMPLATE_STOREU _mm256_storeu_pd
#define FC_TEMPLATE_SETZERO _mm256_setzero_pd
#define FC_TEMPLATE_BROADCAST _mm256_broadcast_sd
#define FC_TEMPLATE_SET1 _mm256_set1_pd
#define FC_TEMPLATE_FMADD _mm256_fmadd_pd
#define FC_TEMPLATE_MUL _mm256_mul_pd
#define FC_TEMPLATE_ADD _mm256_add_pd
#define FC_TEMPLATE_REDUCE_ADD fc_reduce_add_avx2_f64
#define FC_TEMPLATE_SQRT _mm256_sqrt_pd
