/*
 * template_end.h: ends one instantiation of a template (template.h): the next one may
 * define the parameters anew. Included after each *_impl.h, any number of times.
 */
#undef REAL
#undef TYPE_SUFFIX
#undef ISA_SUFFIX
#undef FC_TEMPLATE_LANES
#undef FC_TEMPLATE_VEC
#undef FC_TEMPLATE_MR
#undef FC_TEMPLATE_NR
#undef FC_TEMPLATE_KERNEL
#undef FC_TEMPLATE_KERNEL_NARROW
#undef FC_TEMPLATE_TARGET
#undef FC_TEMPLATE_TILEK_ACC
#undef FC_TEMPLATE_AVX2
#undef FC_TEMPLATE_LOADU
#undef FC_TEMPLATE_STOREU
#undef FC_TEMPLATE_SETZERO
#undef FC_TEMPLATE_BROADCAST
#undef FC_TEMPLATE_FMADD
#undef FC_TEMPLATE_MUL
#undef FC_TEMPLATE_ADD
#undef FC_TEMPLATE_REDUCE_ADD
#undef FC_TEMPLATE_SQRT
#undef FC_TEMPLATE_SET1
#undef FC_TEMPLATE_MC
#undef FC_TEMPLATE_KC
#undef FC_TEMPLATE_NC
#undef FC_TEMPLATE_SHUFFLES
#undef FC_TEMPLATE_NR_AVX512
#undef FC_TEMPLATE_TRANSPOSE16
#undef FC_TEMPLATE_TRANSPOSE
#undef FC_TEMPLATE_MASKZ_LOADU
#undef FC_TEMPLATE_MASK_STOREU
#undef FC_TEMPLATE_UINT
#undef FC_TEMPLATE_FMA
