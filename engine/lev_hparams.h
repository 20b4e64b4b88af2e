/* lev_hparams.h: the hyperparameter block of a .leviathan file (LevHParams, 256 bytes), its enums and flags. */
#pragma once

#include <stdint.h>

/* Part of the file format (docs/format.md): little-endian, written to and read from the file as is. Not part of the
 * public API (leviathan.h, whose accessors lev_model_vocab_size, ... give the front ends what they need): the
 * converter and the tools reach it through leviathan-ext.h (lev_model_hparams). */

/* Architectures (what the forward pass does between the shapes). */
typedef enum {
  LEV_ARCH_LLAMA = 1,          /* LLaMA / TinyLlama / Llama 2 / Llama 3, llama2.c checkpoints */
  LEV_ARCH_QWEN2 = 2,          /* Qwen2 / Qwen2.5: LLaMA with q/k/v biases */
  LEV_ARCH_BITNET = 3,         /* BitNet b1.58 with sub-norms (1bitLLM and 2B4T layouts) */
  LEV_ARCH_BITLLAMA2C = 4,     /* bitllama2.c: BitLinear with its parameter-free norm, no layer norms */
} LevArch;

typedef enum {
  LEV_ROPE_INTERLEAVED = 0,    /* pairs (2i, 2i+1) rotate together: llama2.c, Meta's original layout */
  LEV_ROPE_HALF = 1,           /* pairs (i, i + head_dim/2): Hugging Face rotate_half, NEOX */
} LevRopeStyle;

typedef enum {
  LEV_ROPE_SCALING_NONE = 0,
  LEV_ROPE_SCALING_LINEAR = 1, /* positions divided by factor */
  LEV_ROPE_SCALING_LLAMA3 = 2, /* Llama 3.1 frequency-dependent scaling */
} LevRopeScaling;

typedef enum {
  LEV_ACT_SILU = 0,            /* silu(gate) * up */
  LEV_ACT_RELU2 = 1,           /* relu(gate)^2 * up */
  LEV_ACT_GELU = 2,            /* gelu(gate) * up (tanh approximation) */
} LevActivation;

/* Model flags (LevHParams.flags). */
enum {
  LEV_HP_QKV_BIAS = 1u << 0,        /* blk.N.attn_{q,k,v}_bias present */
  LEV_HP_SUB_NORMS = 1u << 1,       /* blk.N.attn_sub_norm before attn_o, blk.N.ffn_sub_norm before ffn_down */
  LEV_HP_TIED_EMBEDDINGS = 1u << 2, /* no "output" tensor: logits use token_embd */
  LEV_HP_ACT_QUANT = 1u << 3,       /* per-token absmax int8 quantization of every linear input in the blocks */
  LEV_HP_BITLINEAR_NORM = 1u << 4,  /* bitllama2.c: x / (rms(x) * n) without eps before each linear */
  LEV_HP_ACT_ROUND_AWAY = 1u << 5,  /* activation quantization rounds halves away from zero (C round) not to even */
  LEV_HP_ROTATED = 1u << 6,         /* the linear inputs in rotated_inputs are rotated online (randomized Hadamard,
                                     * signs from rotation_seed; docs/format.md) */
};

/* ---- Hyperparameters: 256 bytes. ---- */
typedef struct LevHParams {
  uint32_t arch;               /* LevArch */
  uint32_t flags;              /* LEV_HP_* */
  uint32_t dim;                /* model (residual) width */
  uint32_t n_layers;
  uint32_t n_heads;
  uint32_t n_kv_heads;         /* n_heads % n_kv_heads == 0 */
  uint32_t head_dim;           /* usually dim / n_heads; even */
  uint32_t ffn_dim;            /* hidden width of the feed-forward block */
  uint32_t vocab_size;         /* rows of token_embd and output */
  uint32_t max_ctx;            /* context length the model was trained with */
  float norm_eps;              /* RMSNorm epsilon */
  float rope_theta;            /* RoPE base */
  uint32_t rope_style;         /* LevRopeStyle */
  uint32_t rope_scaling;       /* LevRopeScaling */
  float rope_factor;           /* scaling factor (linear, llama3) */
  float rope_low_freq_factor;  /* llama3 */
  float rope_high_freq_factor; /* llama3 */
  uint32_t rope_orig_ctx;      /* llama3: original_max_position_embeddings */
  uint32_t activation;         /* LevActivation */
  int32_t bos_id;              /* -1 when none */
  int32_t eos_id;              /* -1 when none */
  uint32_t chat_template_offset; /* into the string blob; length 0 when none */
  uint32_t chat_template_len;
  uint32_t name_offset;        /* model name, into the string blob */
  uint32_t name_len;
  uint32_t rotated_inputs;     /* LEV_HP_ROTATED: bit w set = linear input w (LevLinearInput) of every block is
                                * multiplied by its randomized Hadamard transform before the products; else 0 */
  uint32_t rotation_seed;      /* LEV_HP_ROTATED: seed of the transforms' signs (lev_hadamard_signs); else 0 */
  uint8_t reserved[148];       /* zero */
} LevHParams;

_Static_assert (sizeof (LevHParams) == 256, "LevHParams is 256 bytes");
