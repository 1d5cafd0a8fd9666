/*
 * template.h: the one way fastconv writes a kernel once and stamps it out for each element
 * type and instruction set.
 *
 * A template is a header named *_impl.h. It is written in terms of
 *     REAL          the element type: float or double
 *     FN(name)      name with the type's suffix:  FN(fc_pool_forward) -> fc_pool_forward_f32
 *     ISA(name)     name with the instruction set's suffix (per-ISA code only):
 *                   ISA(FN(gemm_kernel)) -> gemm_kernel_f32_avx2
 * and never defines or undefines them. Its includer (a .c file) instantiates it once per
 * type, and per instruction set where the template holds SIMD code:
 *
 *     #define REAL float
 *     #define TYPE_SUFFIX f32
 *     #define ISA_SUFFIX avx2          (per-ISA templates only)
 *     #include "pool_impl.h"
 *     #include "template_end.h"        (undefines REAL, TYPE_SUFFIX, ISA_SUFFIX and any
 *                                       FC_TEMPLATE_* parameter the template takes)
 *
 * Suffixes are f32 / f64 for the type and generic / avx2 / avx512 for the instruction set.
 * A template that needs more parameters (a vector width, a micro-kernel) names them
 * FC_TEMPLATE_<WHAT> and says so in its opening comment.
 *
 * Exported functions are defined through FN(...) but declared in fastconv.h with their
 * full names written out, so that grep finds every one of them.
 */
#ifndef FASTCONV_TEMPLATE_H
#define FASTCONV_TEMPLATE_H

#define FC_PASTE_(a, b) a##_##b
#define FC_PASTE(a, b) FC_PASTE_(a, b)
#define FN(name) FC_PASTE(name, TYPE_SUFFIX)
#define ISA(name) FC_PASTE(name, ISA_SUFFIX)

#endif /* FASTCONV_TEMPLATE_H */
