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
#undef FC_TEMPLATE_TARGET
#undef FC_TEMPLATE_UINT
