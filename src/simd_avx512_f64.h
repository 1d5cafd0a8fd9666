/* simd_avx512_f64.h: the template parameters (template.h) of AVX-512 vectors of float64, for a
 * template that works on one vector type through FC_TEMPLATE_* names (the names
 * simd_avx2_f64.h gives the AVX2 ones). Included, once per instantiation, by a .c file that
 * has included <immintrin.h> and defined REAL double; template_end.h undefines them all.
 *     FC_TEMPLATE_LANES      doubles per vector
 *     FC_TEMPLATE_VEC        the vector type
 *     FC_TEMPLATE_LOADU, FC_TEMPLATE_STOREU, FC_TEMPLATE_SETZERO, FC_TEMPLATE_SET1 (from a
 *     value), FC_TEMPLATE_FMADD (a*b + c, fused), FC_TEMPLATE_ADD,
 *     FC_TEMPLATE_REDUCE_ADD (the sum of a vector's lanes, halves first) */
#define FC_TEMPLATE_LANES 8
#define FC_TEMPLATE_VEC __m512d
#define FC_TEMPLATE_LOADU _mm512_loadu_pd
#define FC_TEMPLATE_STOREU _mm512_storeu_pd
#define FC_TEMPLATE_SETZERO _mm512_setzero_pd
#define FC_TEMPLATE_SET1 _mm512_set1_pd
#define FC_TEMPLATE_FMADD _mm512_fmadd_pd
#define FC_TEMPLATE_ADD _mm512_add_pd
#define FC_TEMPLATE_REDUCE_ADD _mm512_reduce_add_pd
