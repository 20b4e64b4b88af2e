/* lev_schema.c: the file format's facts in one place: encodings' names and sizes, each architecture's tensors. */
#include "lev_schema.h"

#include "lev_qkernels.h"

#include <string.h>

_Static_assert ((int) LEV_ENC_T2 == (int) LEV_QENC_T2 && (int) LEV_ENC_T1 == (int) LEV_QENC_T1
                && (int) LEV_ENC_B1 == (int) LEV_QENC_B1 && (int) LEV_ENC_Q4 == (int) LEV_QENC_Q4,
                "file encodings and kernel encodings agree");

/* Indexed by LevEncoding. */
static const char *const encoding_names[] = { "f32", "f16", "bf16", "q8", "t2", "t1", "b1", "q4", "sparse" };
_Static_assert (G_N_ELEMENTS (encoding_names) == LEV_ENC_SPARSE + 1, "one name per encoding");

/* Returns an encoding's name. */
const char *
lev_encoding_name (uint32_t enc)
{
  return enc < G_N_ELEMENTS (encoding_names) ? encoding_names[enc] : NULL;
}

/* Parses an encoding's name. */
gboolean
lev_encoding_from_name (const char *name, uint32_t *enc)
{
  for (uint32_t i = 0; name && i < G_N_ELEMENTS (encoding_names); i++)
    if (strcmp (name, encoding_names[i]) == 0) {
      *enc = i;
      return TRUE;
    }
  return FALSE;
}

/* Returns the bytes a tensor of this encoding and shape takes. */
uint64_t
lev_encoding_size (uint32_t enc, uint64_t rows, uint64_t cols, uint64_t extra)
{
  if (cols != 0 && rows > UINT64_MAX / cols)
    return 0;
  uint64_t n = rows * cols;
  switch (enc) {
    case LEV_ENC_F32: return n > UINT64_MAX / 4 ? 0 : n * 4;
    case LEV_ENC_F16:
    case LEV_ENC_BF16: return n > UINT64_MAX / 2 ? 0 : n * 2;
    /* float scales[rows], then int8 values */
    case LEV_ENC_Q8: return rows > UINT64_MAX / 4 || n > UINT64_MAX - rows * 4 ? 0 : n + rows * 4;
    /* uint32 row_ptr[rows + 1], then uint32 entries[extra] */
    case LEV_ENC_SPARSE:
      return rows >= UINT64_MAX / 8 || extra > UINT64_MAX / 8 - rows - 1 ? 0 : 4 * (rows + 1 + extra);
    case LEV_ENC_T2:
    case LEV_ENC_T1:
    case LEV_ENC_B1:
    case LEV_ENC_Q4: {
      /* codes[rows][row_bytes], then float scales[extra] */
      uint64_t rb = cols > SIZE_MAX / 2 ? 0 : lev_qenc_row_bytes (enc, (size_t) cols);
      if (rb == 0 || rows > UINT64_MAX / rb / 2 || extra > UINT64_MAX / 8)
        return 0;
      uint64_t codes = rows * rb;
      return extra * 4 > UINT64_MAX - codes ? 0 : codes + extra * 4;
    }
    default: return 0;
  }
}

/* Returns the scale counts an encoding allows for a shape. */
guint
lev_encoding_scale_counts (uint32_t enc, uint64_t rows, uint64_t cols, uint64_t counts[4])
{
  if (!lev_qenc_is_packed (enc))
    return 0;
  guint k = 0;
  counts[k++] = 1;
  counts[k++] = rows;
  /* per group: a block (t2, t1, b1) or half a block (t2, b1), at most LEV_QMAX_GROUPS groups a row */
  uint64_t by_block = lev_qenc_groups_per_row (enc, cols, lev_qenc_block_weights (enc));
  uint64_t by_half = lev_qenc_groups_per_row (enc, cols, LEV_HALF_BLOCK_GROUP_WEIGHTS);
  if (by_block && by_block <= LEV_QMAX_GROUPS && rows <= UINT64_MAX / by_block)
    counts[k++] = rows * by_block;
  if (by_half && by_half <= LEV_QMAX_GROUPS && rows <= UINT64_MAX / by_half)
    counts[k++] = rows * by_half;
  return k;
}

/* Indexed by LevLinear: name, and the input it reads. */
static const struct { const char *name; LevLinearInput input; } linears[LEV_N_LINEAR] = {
  { "attn_q", LEV_LINEAR_INPUT_QKV }, { "attn_k", LEV_LINEAR_INPUT_QKV }, { "attn_v", LEV_LINEAR_INPUT_QKV },
  { "attn_o", LEV_LINEAR_INPUT_ATTN_OUT }, { "ffn_gate", LEV_LINEAR_INPUT_GATE_UP },
  { "ffn_up", LEV_LINEAR_INPUT_GATE_UP }, { "ffn_down", LEV_LINEAR_INPUT_DOWN },
};

/* Returns a linear layer's name. */
const char *
lev_linear_name (LevLinear which)
{
  return (guint) which < LEV_N_LINEAR ? linears[which].name : NULL;
}

/* Returns which input a linear layer reads. */
LevLinearInput
lev_linear_input (LevLinear which)
{
  return (guint) which < LEV_N_LINEAR ? linears[which].input : LEV_LINEAR_INPUT_QKV;
}

/* Returns whether a model's block matrices are natively ternary in its checkpoint. */
gboolean
lev_schema_ternary_linears (const LevHParams *hp)
{
  return hp->arch == LEV_ARCH_BITLLAMA2C || (hp->arch == LEV_ARCH_BITNET && (hp->flags & LEV_HP_ACT_QUANT));
}

static void
schema_add (GArray *out, LevTensorRole role, LevLinear linear, int32_t layer, uint64_t d0, uint64_t d1,
            gboolean required, const char *suffix)
{
  LevSchemaTensor t = { { 0 }, role, linear, layer, d1 ? 2 : 1, { d0, d1 ? d1 : 1 }, required };
  if (layer < 0)
    g_strlcpy (t.name, suffix, sizeof t.name);
  else
    g_snprintf (t.name, sizeof t.name, "blk.%d.%s", layer, suffix);
  g_array_append_val (out, t);
}

/* Returns the tensors an architecture's file holds. */
LevSchemaTensor *
lev_schema_tensors (const LevHParams *hp, size_t *n)
{
  uint64_t d = hp->dim, v = hp->vocab_size, f = hp->ffn_dim;
  uint64_t q = (uint64_t) hp->n_heads * hp->head_dim, kv = (uint64_t) hp->n_kv_heads * hp->head_dim;
  /* the norms before attention and feed-forward: bitllama2.c's parameter-free BitLinear norm replaces them */
  gboolean norms = !(hp->flags & LEV_HP_BITLINEAR_NORM);
  gboolean bias = (hp->flags & LEV_HP_QKV_BIAS) != 0, sub_norms = (hp->flags & LEV_HP_SUB_NORMS) != 0;
  const uint64_t shapes[LEV_N_LINEAR][2] = { { q, d }, { kv, d }, { kv, d }, { d, q }, { f, d }, { f, d }, { d, f } };
  GArray *out = g_array_new (FALSE, TRUE, sizeof (LevSchemaTensor));
  schema_add (out, LEV_TENSOR_TOKEN_EMBD, 0, -1, v, d, TRUE, "token_embd");
  schema_add (out, LEV_TENSOR_OUTPUT_NORM, 0, -1, d, 0, TRUE, "output_norm");
  if (!(hp->flags & LEV_HP_TIED_EMBEDDINGS))
    schema_add (out, LEV_TENSOR_OUTPUT, 0, -1, v, d, TRUE, "output");
  for (uint32_t l = 0; l < hp->n_layers; l++) {
    int32_t L = (int32_t) l;
    schema_add (out, LEV_TENSOR_ATTN_NORM, 0, L, d, 0, norms, "attn_norm");
    schema_add (out, LEV_TENSOR_FFN_NORM, 0, L, d, 0, norms, "ffn_norm");
    for (guint i = 0; i < LEV_N_LINEAR; i++)
      schema_add (out, LEV_TENSOR_LINEAR, (LevLinear) i, L, shapes[i][0], shapes[i][1], TRUE, linears[i].name);
    schema_add (out, LEV_TENSOR_ATTN_Q_BIAS, 0, L, q, 0, bias, "attn_q_bias");
    schema_add (out, LEV_TENSOR_ATTN_K_BIAS, 0, L, kv, 0, bias, "attn_k_bias");
    schema_add (out, LEV_TENSOR_ATTN_V_BIAS, 0, L, kv, 0, bias, "attn_v_bias");
    schema_add (out, LEV_TENSOR_ATTN_SUB_NORM, 0, L, q, 0, sub_norms, "attn_sub_norm");
    schema_add (out, LEV_TENSOR_FFN_SUB_NORM, 0, L, f, 0, sub_norms, "ffn_sub_norm");
  }
  *n = out->len;
  return (LevSchemaTensor *) g_array_free (out, FALSE);
}
