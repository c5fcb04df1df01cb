/* pointwise_avx512.c — the AVX-512 instance of pointwise.c (built with AVX-512 enabled
 * where the compiler can target it; pointwise.c chooses it at run time). */
#if defined(DARTSC_PW_AVX512)
#define KPW_VARIANT 1
#define KPW_ISA avx512
#include "kernels/cpu/pointwise.c"
#else
typedef int kpw_avx512_unused; /* ISO C: no empty translation unit */
#endif
