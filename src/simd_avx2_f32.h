/* simd_avx2_f32.h: the template parameters (template.h) of AVX2 vectors of float32, for a
 * template that works on one vector type through FC_TEMPLATE_* names. Included, once per
 * instantiation, by a .c file that has included <immintrin.h> and defined REAL float;
 * template_end.h undefines them all.
 *     FC_TEMPLATE_LANES      floats per vector
 *     FC_TEMPLATE_VEC        the vector type
 *     FC_TEMPLATE_LOADU, FC_TEMPLATE_STOREU, FC_TEMPLATE_SETZERO, FC_TEMPLATE_BROADCAST
 *     (from memory), FC_TEMPLATE_SET1 (from a value), FC_TEMPLATE_FMADD (a*b + c, fused)
 *     FC_TEMPLATE_MUL, FC_TEMPLATE_ADD, FC_TEMPLATE_SQRT   a*b, a + b and the square root
 *     FC_TEMPLATE_REDUCE_ADD   the sum of a vector's lanes, halves first (simd_reduce.h) */
#include "simd_reduce.h"

#define FC_TEMPLATE_LANES 8
#define FC_TEMPLATE_VEC __m256
#define FC_TEMPLATE_LOADU _mm256_loadu_ps
#define FC_TEMPLATE_STOREU _mm256_storeu_ps
#define FC_TEMPLATE_SETZERO _mm256_setzero_ps
#define FC_TEMPLATE_BROADCAST _mm256_broadcast_ss
#define FC_TEMPLATE_SET1 _mm256_set1_ps
#define FC_TEMPLATE_FMADD _mm256_fmadd_ps
#define FC_TEMPLATE_MUL _mm256_mul_ps
#define FC_TEMPLATE_ADD _mm256_add_ps
#define FC_TEMPLATE_REDUCE_ADD fc_reduce_add_avx2_f32
#define FC_TEMPLATE_SQRT _mm256_sqrt_ps
