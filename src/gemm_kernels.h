/*
 * gemm_kernels.h: the micro-kernel contract shared by the portable, AVX2 and AVX-512 GEMM kernels.
 *
 * A micro-kernel computes one MR x NR tile of C from a packed MR-row panel of A and an
 * NR-column panel of B, with all MR x NR sums in registers:
 *
 *     C[i*ldc + j] = sum_{p < kc} a[p*MR + i] * b[p*ldb + j]  (+ beta * C[i*ldc + j])
 *
 * a: packed A panel, kc x MR, 64-byte aligned (see gemm.c).
 * b: B panel, kc rows of NR contiguous values, row stride ldb: ldb == NR for a packed panel,
 *    ldb == the row stride of a row-major B that small problems read in place (no packing).
 * beta == 0: C is overwritten and never read (it may hold NaN); otherwise C is scaled and added.
 * The tile is always full: gemm.c handles edge tiles through a small temporary.
 */
#ifndef FC_GEMM_KERNELS_H
#define FC_GEMM_KERNELS_H

#include <stdint.h>

/* Portable and AVX2 tiles: both precisions use 6 rows so A panels are packed the same way;
 * NR is two AVX2 vector widths. */
#define FC_GEMM_MR 6
#define FC_GEMM_NR_F32 16
#define FC_GEMM_NR_F64 8

/* AVX-512 tiles (gemm_avx512.c says why they are larger): MR rows, two ZMM vectors wide. */
#define FC_GEMM_MR_AVX512 12
#define FC_GEMM_NR_AVX512_F32 32
#define FC_GEMM_NR_AVX512_F64 16

/* The micro-kernel's type, for each element type: every kernel below is declared with it. */
typedef void fc_gemm_kernel_f32(int64_t kc, const float *a, const float *b, int64_t ldb,
                                float *c, int64_t ldc, float beta);
typedef void fc_gemm_kernel_f64(int64_t kc, const double *a, const double *b, int64_t ldb,
                                double *c, int64_t ldc, double beta);

/* The portable kernels (gemm.c). */
fc_gemm_kernel_f32 fc_gemm_kernel_generic_6x16_f32;
fc_gemm_kernel_f64 fc_gemm_kernel_generic_6x8_f64;

/* The AVX2+FMA kernels exist only where the compiler can target x86 AVX2 per function. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define FC_GEMM_HAVE_AVX2 1
fc_gemm_kernel_f32 fc_gemm_kernel_avx2_6x16_f32;
fc_gemm_kernel_f64 fc_gemm_kernel_avx2_6x8_f64;
#else
#define FC_GEMM_HAVE_AVX2 0
#endif

/* The AVX-512 kernels likewise, where GCC or Clang can target avx512f per function. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FC_GEMM_HAVE_AVX512 1
fc_gemm_kernel_f32 fc_gemm_kernel_avx512_f32;
fc_gemm_kernel_f64 fc_gemm_kernel_avx512_f64;
/* Their half-width forms (MR rows of one ZMM vector), for a last tile of at most that many
 * columns: the same sums, half the multiplications of padding. */
fc_gemm_kernel_f32 fc_gemm_kernel_avx512_narrow_f32;
fc_gemm_kernel_f64 fc_gemm_kernel_avx512_narrow_f64;
/* Both forms reading A in place: its MR rows at a + i*lda, each contiguous along the depth
 * (a row-major A), a[i*lda + p] in place of a[p*MR + i]; the same sums. */
typedef void fc_gemm_kernel_rows_f32(int64_t kc, const float *a, int64_t lda, const float *b,
                                     int64_t ldb, float *c, int64_t ldc, float beta);
typedef void fc_gemm_kernel_rows_f64(int64_t kc, const double *a, int64_t lda, const double *b,
                                     int64_t ldb, double *c, int64_t ldc, double beta);
fc_gemm_kernel_rows_f32 fc_gemm_kernel_avx512_rows_f32;
fc_gemm_kernel_rows_f64 fc_gemm_kernel_avx512_rows_f64;
fc_gemm_kernel_rows_f32 fc_gemm_kernel_avx512_narrow_rows_f32;
fc_gemm_kernel_rows_f64 fc_gemm_kernel_avx512_narrow_rows_f64;
#else
#define FC_GEMM_HAVE_AVX512 0
#endif

/* Each kernel and its tile, by type and instruction set (FC_GEMM_TILE_<WHAT>_<type>_<isa>):
 * the names gemm_tile.h builds from TYPE_SUFFIX and ISA_SUFFIX. */
#define FC_GEMM_TILE_MR_generic FC_GEMM_MR
#define FC_GEMM_TILE_MR_avx2 FC_GEMM_MR
#define FC_GEMM_TILE_MR_avx512 FC_GEMM_MR_AVX512
#define FC_GEMM_TILE_NR_f32_generic FC_GEMM_NR_F32
#define FC_GEMM_TILE_NR_f64_generic FC_GEMM_NR_F64
#define FC_GEMM_TILE_NR_f32_avx2 FC_GEMM_NR_F32
#define FC_GEMM_TILE_NR_f64_avx2 FC_GEMM_NR_F64
#define FC_GEMM_TILE_NR_f32_avx512 FC_GEMM_NR_AVX512_F32
#define FC_GEMM_TILE_NR_f64_avx512 FC_GEMM_NR_AVX512_F64
#define FC_GEMM_TILE_KERNEL_f32_generic fc_gemm_kernel_generic_6x16_f32
#define FC_GEMM_TILE_KERNEL_f64_generic fc_gemm_kernel_generic_6x8_f64
#define FC_GEMM_TILE_KERNEL_f32_avx2 fc_gemm_kernel_avx2_6x16_f32
#define FC_GEMM_TILE_KERNEL_f64_avx2 fc_gemm_kernel_avx2_6x8_f64
#define FC_GEMM_TILE_KERNEL_f32_avx512 fc_gemm_kernel_avx512_f32
#define FC_GEMM_TILE_KERNEL_f64_avx512 fc_gemm_kernel_avx512_f64

#endif /* FC_GEMM_KERNELS_H */
