/* lev_qkernels_neondot.c: AArch64 NEON dot-product (ARMv8.2 dotprod) packed kernels: codes unpacked to signed
 * weights, vdotq_s32; the attention and activation helpers are lev_qkernels_neon.c's. Built with its own -march, so
 * that a plain armv8-a build has it too; chosen at run time from AT_HWCAP. */
#include "lev_kernels.h"

#if defined(LEV_HAVE_NEONDOT)
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

#define LEV_NEON_DOT vdotq_s32
#include "lev_qkernels_neon_gemm.h"

LEV_QDEFINE_GEMM (gemm_t2, gemm_tiles, LEV_QENC_T2, 4)
LEV_QDEFINE_GEMM (gemm_t1, gemm_tiles, LEV_QENC_T1, 4)
LEV_QDEFINE_GEMM (gemm_b1, gemm_tiles, LEV_QENC_B1, 4)
LEV_QDEFINE_GEMM (gemm_q4, gemm_tiles, LEV_QENC_Q4, 4)

static const LevQKernels neondot_kernels = { "neondot", 0, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                             { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                             lev_neon_dot_f32, lev_neon_axpy_f32, lev_dot_f16, lev_axpy_f16,
                                             lev_dot_i8, lev_axpy_i8, lev_sparse_row_dot, lev_neon_dot_heads,
                                             lev_neon_axpy_heads, lev_neon_attend_values, lev_neon_softmax,
                                             lev_neon_silu_mul, lev_neon_quantize_absmax,
                                             lev_neon_hadamard };

const LevQKernels *
lev_qkernels_neondot (void)
{
#if defined(__linux__)
#if !defined(HWCAP_ASIMDDP)
#define HWCAP_ASIMDDP (1ul << 20)
#endif
  if (!(getauxval (AT_HWCAP) & HWCAP_ASIMDDP))
    return NULL;
#endif
  return &neondot_kernels;
}
#endif
