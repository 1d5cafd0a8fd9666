/* gemm_tile.h: the template parameters (template.h) of the GEMM micro-kernel for REAL on
 * one instruction set, for a template built around it (gemm_impl.h, the Winograd blocks):
 *     FC_TEMPLATE_MR, FC_TEMPLATE_NR     its tile: rows of A, columns of B
 *     FC_TEMPLATE_KERNEL                 the kernel (gemm_kernels.h)
 * Included, once per instantiation, after TYPE_SUFFIX and ISA_SUFFIX are defined; the
 * names expand, where the template uses them, to the FC_GEMM_TILE_* entry of that type and
 * instruction set in gemm_kernels.h, so each kernel's tile is written down once.
 * template_end.h undefines them. */
#define FC_TEMPLATE_MR ISA(FC_GEMM_TILE_MR)
#define FC_TEMPLATE_NR ISA(FN(FC_GEMM_TILE_NR))
#define FC_TEMPLATE_KERNEL ISA(FN(FC_GEMM_TILE_KERNEL))
