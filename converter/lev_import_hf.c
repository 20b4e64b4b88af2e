/* lev_import_hf.c: importer for Hugging Face checkpoint directories (config.json, safetensors, tokenizer files). */
#include "lev_import.h"
#include "lev_json.h"
#include "lev_kernels.h"
#include "lev_safetensors.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------- */
/* JSON helpers                                                                                                      */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Reads a JSON number (integer or float) as double; FALSE when it is not a number. */
static gboolean
node_get_number (JsonNode *n, double *out)
{
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  if (t == G_TYPE_INT64)
    *out = (double) json_node_get_int (n);
  else if (t == G_TYPE_DOUBLE)
    *out = json_node_get_double (n);
  else
    return FALSE;
  return TRUE;
}

/* Config integer field: required ones fail when absent; all fail when not a positive integer below 2^32. */
static gboolean
cfg_uint (JsonObject *cfg, const gchar *key, gboolean required, guint32 def, guint32 *out, GError **error)
{
  JsonNode *n = lev_json_member (cfg, key);
  guint64 v;
  if (n == NULL) {
    if (required) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "config.json has no \"%s\"", key);
      return FALSE;
    }
    *out = def;
    return TRUE;
  }
  if (!lev_json_u64 (n, &v) || v == 0 || v > G_MAXUINT32) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "config.json: \"%s\" is not a positive integer below 2^32", key);
    return FALSE;
  }
  *out = (guint32) v;
  return TRUE;
}

/* Config float field with a default for absent or null. */
static gboolean
cfg_float (JsonObject *o, const gchar *key, double def, float *out, GError **error)
{
  JsonNode *n = lev_json_member (o, key);
  double v = def;
  if (n != NULL && (!node_get_number (n, &v) || !isfinite (v))) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "config.json: \"%s\" is not a number", key);
    return FALSE;
  }
  *out = (float) v;
  return TRUE;
}

/* Config boolean field with a default for absent or null. */
static gboolean
cfg_bool (JsonObject *o, const gchar *key, gboolean def, gboolean *out, GError **error)
{
  JsonNode *n = lev_json_member (o, key);
  if (n == NULL) {
    *out = def;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "\"%s\" is not a boolean", key);
    return FALSE;
  }
  *out = json_node_get_boolean (n);
  return TRUE;
}

/* A token id from config: an integer, or a list whose first element is used; -1 when absent. */
static gboolean
cfg_token_id (JsonObject *cfg, const gchar *key, gint32 *out, GError **error)
{
  JsonNode *n = lev_json_member (cfg, key);
  guint64 v;
  *out = -1;
  if (n == NULL)
    return TRUE;
  if (JSON_NODE_HOLDS_ARRAY (n)) {
    JsonArray *a = json_node_get_array (n);
    if (json_array_get_length (a) == 0)
      return TRUE;
    n = json_array_get_element (a, 0);
  }
  if (!lev_json_u64 (n, &v) || v > G_MAXINT32) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "config.json: \"%s\" is not a token id", key);
    return FALSE;
  }
  *out = (gint32) v;
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* config.json                                                                                                       */
/* ---------------------------------------------------------------------------------------------------------------- */

/* How the checkpoint stores its linear weights (from config.json). */
typedef struct {
  gboolean tied;            /* tie_word_embeddings */
  gboolean ternarize;       /* latent float weights made ternary at import (1bitLLM, 2B4T "online") */
  gboolean packed;          /* uint8, 4 ternary codes per byte along output rows, plus weight_scale (2B4T "offline") */
  gboolean scale_divides;   /* weight_scale divides (transformers' BitLinear) instead of multiplying (AutoBitLinear) */
} HfLayout;

/* Reads 2B4T's quantization_config: quant_method bitnet, linear_class, quantization_mode. */
static gboolean
parse_bitnet_quantization (JsonNode *qn, const gchar *path, HfLayout *layout, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (qn)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: quantization_config is not an object", path);
    return FALSE;
  }
  JsonObject *q = json_node_get_object (qn);
  const gchar *method = lev_json_string (q, "quant_method");
  const gchar *cls = lev_json_member (q, "linear_class") ? lev_json_string (q, "linear_class") : "bitlinear";
  const gchar *mode = lev_json_member (q, "quantization_mode") ? lev_json_string (q, "quantization_mode") : "offline";
  if (method == NULL || strcmp (method, "bitnet") != 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: quantization method %s is not supported (bitnet is)", path, method ? method : "(missing)");
    return FALSE;
  }
  if (cls == NULL || (strcmp (cls, "autobitlinear") != 0 && strcmp (cls, "bitlinear") != 0)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: BitNet linear_class %s is not supported (autobitlinear and bitlinear are)", path,
                 cls ? cls : "(not a string)");
    return FALSE;
  }
  if (mode == NULL || (strcmp (mode, "offline") != 0 && strcmp (mode, "online") != 0)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: BitNet quantization_mode %s is not supported (offline and online are)", path,
                 mode ? mode : "(not a string)");
    return FALSE;
  }
  /* AutoBitLinear: y = linear(x, W_ternary) * weight_scale; BitLinear: y = linear(x, W_ternary) / weight_scale */
  layout->scale_divides = strcmp (cls, "bitlinear") == 0;
  layout->packed = strcmp (mode, "offline") == 0;
  layout->ternarize = !layout->packed;
  return TRUE;
}

/* config.json, architecture: the model class (hp->arch, its flags, the context length it defaults to) and 2B4T's
 * quantization_config. */
static gboolean
config_architecture (JsonObject *cfg, const gchar *path, LevHParams *hp, HfLayout *layout, guint32 *default_ctx,
                     GError **error)
{
  JsonNode *an = lev_json_member (cfg, "architectures");
  const gchar *arch = NULL;
  if (an != NULL && JSON_NODE_HOLDS_ARRAY (an) && json_array_get_length (json_node_get_array (an)) > 0) {
    JsonNode *a0 = json_array_get_element (json_node_get_array (an), 0);
    if (JSON_NODE_HOLDS_VALUE (a0) && json_node_get_value_type (a0) == G_TYPE_STRING)
      arch = json_node_get_string (a0);
  }
  if (arch == NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s has no \"architectures\" list", path);
    return FALSE;
  }
  if (strcmp (arch, "LlamaForCausalLM") == 0) {
    hp->arch = LEV_ARCH_LLAMA;
    *default_ctx = 2048;
  } else if (strcmp (arch, "Qwen2ForCausalLM") == 0) {
    hp->arch = LEV_ARCH_QWEN2;
    hp->flags |= LEV_HP_QKV_BIAS;
    *default_ctx = 32768;
  } else if (strcmp (arch, "BitnetForCausalLM") == 0) {
    /* 1bitLLM: latent float weights, ternarized here */
    hp->arch = LEV_ARCH_BITNET;
    hp->flags |= LEV_HP_SUB_NORMS | LEV_HP_ACT_QUANT;
    layout->ternarize = TRUE;
    *default_ctx = 2048;
  } else if (strcmp (arch, "BitNetForCausalLM") == 0) {
    /* Microsoft BitNet b1.58 2B4T layout: packed (quantization_config) or, without one, a float model */
    hp->arch = LEV_ARCH_BITNET;
    hp->flags |= LEV_HP_SUB_NORMS;
    *default_ctx = 4096;
  } else {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: architecture %s is not supported (LlamaForCausalLM, Qwen2ForCausalLM, BitnetForCausalLM and "
                 "BitNetForCausalLM are)", path, arch);
    return FALSE;
  }
  JsonNode *qn = lev_json_member (cfg, "quantization_config");
  if (qn != NULL && strcmp (arch, "BitNetForCausalLM") == 0) {
    if (!parse_bitnet_quantization (qn, path, layout, error))
      return FALSE;
    hp->flags |= LEV_HP_ACT_QUANT;
  } else if (qn != NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: quantized checkpoints (quantization_config) are not supported for %s", path, arch);
    return FALSE;
  }
  return TRUE;
}

/* config.json, sizes: widths, layers, heads, vocabulary, context, norm epsilon, RoPE base, tied embeddings, BOS/EOS. */
static gboolean
config_sizes (JsonObject *cfg, const gchar *path, LevHParams *hp, HfLayout *layout, guint32 default_ctx,
              GError **error)
{
  if (!cfg_uint (cfg, "hidden_size", TRUE, 0, &hp->dim, error) ||
      !cfg_uint (cfg, "num_hidden_layers", TRUE, 0, &hp->n_layers, error) ||
      !cfg_uint (cfg, "num_attention_heads", TRUE, 0, &hp->n_heads, error) ||
      !cfg_uint (cfg, "num_key_value_heads", FALSE, hp->n_heads, &hp->n_kv_heads, error) ||
      !cfg_uint (cfg, "intermediate_size", TRUE, 0, &hp->ffn_dim, error) ||
      !cfg_uint (cfg, "vocab_size", TRUE, 0, &hp->vocab_size, error) ||
      !cfg_uint (cfg, "max_position_embeddings", FALSE, default_ctx, &hp->max_ctx, error))
    return FALSE;
  if (lev_json_member (cfg, "head_dim") != NULL) {
    if (!cfg_uint (cfg, "head_dim", TRUE, 0, &hp->head_dim, error))
      return FALSE;
  } else if (hp->dim % hp->n_heads != 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: hidden_size %u is not a multiple of num_attention_heads %u", path, hp->dim, hp->n_heads);
    return FALSE;
  } else {
    hp->head_dim = hp->dim / hp->n_heads;
  }
  if (hp->n_layers > LEV_MAX_LAYERS || hp->n_heads % hp->n_kv_heads != 0 || hp->head_dim % 2 != 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: inconsistent sizes (%u layers, %u heads, %u kv heads, head_dim %u)", path, hp->n_layers,
                 hp->n_heads, hp->n_kv_heads, hp->head_dim);
    return FALSE;
  }
  if (!cfg_float (cfg, "rms_norm_eps", 1e-6, &hp->norm_eps, error) ||
      !cfg_float (cfg, "rope_theta", 10000.0, &hp->rope_theta, error) ||
      !cfg_bool (cfg, "tie_word_embeddings", FALSE, &layout->tied, error) ||
      !cfg_token_id (cfg, "bos_token_id", &hp->bos_id, error) ||
      !cfg_token_id (cfg, "eos_token_id", &hp->eos_id, error))
    return FALSE;
  if (!(hp->rope_theta > 0.0f) || !(hp->norm_eps >= 0.0f)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: rope_theta or rms_norm_eps out of range",
                 path);
    return FALSE;
  }
  hp->rope_style = LEV_ROPE_HALF;
  if (layout->tied)
    hp->flags |= LEV_HP_TIED_EMBEDDINGS;
  return TRUE;
}

/* config.json, features this engine does not implement: refused with a message naming them. */
static gboolean
config_refuse_unsupported (JsonObject *cfg, const gchar *path, const LevHParams *hp, GError **error)
{
  gboolean flag;
  static const char *const refused_bools[] = { "attention_bias", "mlp_bias", "use_sliding_window" };
  for (gsize i = 0; i < G_N_ELEMENTS (refused_bools); i++) {
    if (!cfg_bool (cfg, refused_bools[i], FALSE, &flag, error))
      return FALSE;
    if (flag) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "%s: %s = true is not supported", path,
                   refused_bools[i]);
      return FALSE;
    }
  }
  if (hp->arch == LEV_ARCH_BITNET) {
    guint32 wbits, ibits;
    if (!cfg_uint (cfg, "weight_bits", FALSE, 1, &wbits, error) ||
        !cfg_uint (cfg, "input_bits", FALSE, 8, &ibits, error))
      return FALSE;
    if (wbits != 1 || ibits != 8) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "%s: BitNet with weight_bits %u and input_bits %u is not supported (1 and 8 are)", path, wbits,
                   ibits);
      return FALSE;
    }
  }
  return TRUE;
}

/* config.json, hidden_act: the feed-forward activation. */
static gboolean
config_activation (JsonObject *cfg, const gchar *path, LevHParams *hp, GError **error)
{
  const gchar *act = lev_json_member (cfg, "hidden_act") ? lev_json_string (cfg, "hidden_act") : "silu";
  if (act != NULL && strcmp (act, "silu") == 0)
    hp->activation = LEV_ACT_SILU;
  else if (act != NULL && strcmp (act, "relu2") == 0)
    hp->activation = LEV_ACT_RELU2;
  else if (act != NULL && (strcmp (act, "gelu_pytorch_tanh") == 0 || strcmp (act, "gelu") == 0))
    hp->activation = LEV_ACT_GELU;
  else {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "%s: hidden_act %s is not supported", path,
                 act ? act : "(not a string)");
    return FALSE;
  }
  return TRUE;
}

/* config.json, rope_scaling: none, linear or llama3 (with its frequency factors). */
static gboolean
config_rope_scaling (JsonObject *cfg, const gchar *path, LevHParams *hp, GError **error)
{
  JsonNode *rs = lev_json_member (cfg, "rope_scaling");
  hp->rope_scaling = LEV_ROPE_SCALING_NONE;
  if (rs != NULL) {
    if (!JSON_NODE_HOLDS_OBJECT (rs)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: rope_scaling is not an object", path);
      return FALSE;
    }
    JsonObject *ro = json_node_get_object (rs);
    const gchar *type = lev_json_string (ro, "rope_type");
    if (type == NULL)
      type = lev_json_string (ro, "type");
    if (type != NULL && strcmp (type, "default") == 0) {
      /* no scaling */
    } else if (type != NULL && (strcmp (type, "llama3") == 0 || strcmp (type, "linear") == 0)) {
      gboolean llama3 = strcmp (type, "llama3") == 0;
      JsonNode *fn = lev_json_member (ro, "factor");
      double factor;
      if (fn == NULL || !node_get_number (fn, &factor) || !(factor > 0.0) || !isfinite (factor)) {
        g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: rope_scaling %s needs a positive factor",
                     path, type);
        return FALSE;
      }
      hp->rope_factor = (float) factor;
      hp->rope_scaling = llama3 ? LEV_ROPE_SCALING_LLAMA3 : LEV_ROPE_SCALING_LINEAR;
      if (llama3) {
        double lo, hi;
        guint64 orig;
        if (!node_get_number (lev_json_member (ro, "low_freq_factor"), &lo) ||
            !node_get_number (lev_json_member (ro, "high_freq_factor"), &hi) ||
            !lev_json_u64 (lev_json_member (ro, "original_max_position_embeddings"), &orig) || orig == 0 ||
            orig > G_MAXUINT32 || !(hi > lo) || !(lo > 0.0)) {
          g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                       "%s: rope_scaling llama3 needs low_freq_factor < high_freq_factor and "
                       "original_max_position_embeddings", path);
          return FALSE;
        }
        hp->rope_low_freq_factor = (float) lo;
        hp->rope_high_freq_factor = (float) hi;
        hp->rope_orig_ctx = (guint32) orig;
      }
    } else {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "%s: rope_scaling type %s is not supported (llama3 and linear are)", path,
                   type ? type : "(missing)");
      return FALSE;
    }
  }
  return TRUE;
}

/* Fills model->hp and layout from dir's config.json. */
static gboolean
parse_config (LevConvModel *model, const gchar *dir, HfLayout *layout, GError **error)
{
  g_autofree gchar *path = g_build_filename (dir, "config.json", NULL);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO,
                 "%s has no config.json (not a Hugging Face checkpoint directory)", dir);
    return FALSE;
  }
  g_autoptr (JsonParser) parser = lev_json_load_file (path, error);
  if (parser == NULL)
    return FALSE;
  JsonObject *cfg = json_node_get_object (json_parser_get_root (parser));
  LevHParams *hp = &model->hp;
  guint32 default_ctx = 0;
  return config_architecture (cfg, path, hp, layout, &default_ctx, error)
         && config_sizes (cfg, path, hp, layout, default_ctx, error)
         && config_refuse_unsupported (cfg, path, hp, error)
         && config_activation (cfg, path, hp, error)
         && config_rope_scaling (cfg, path, hp, error);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* tensors                                                                                                           */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Per-layer Hugging Face suffixes and their canonical names; ternary marks the BitLinear weights of BitNet. */
static const struct {
  const char *hf;
  const char *lev;
  gboolean linear;
} layer_map[] = {
  { "input_layernorm.weight", "attn_norm", FALSE },
  { "post_attention_layernorm.weight", "ffn_norm", FALSE },
  { "self_attn.q_proj.weight", "attn_q", TRUE },
  { "self_attn.k_proj.weight", "attn_k", TRUE },
  { "self_attn.v_proj.weight", "attn_v", TRUE },
  { "self_attn.o_proj.weight", "attn_o", TRUE },
  { "self_attn.q_proj.bias", "attn_q_bias", FALSE },
  { "self_attn.k_proj.bias", "attn_k_bias", FALSE },
  { "self_attn.v_proj.bias", "attn_v_bias", FALSE },
  { "mlp.gate_proj.weight", "ffn_gate", TRUE },
  { "mlp.up_proj.weight", "ffn_up", TRUE },
  { "mlp.down_proj.weight", "ffn_down", TRUE },
  { "self_attn.inner_attn_ln.weight", "attn_sub_norm", FALSE },  /* 1bitLLM */
  { "mlp.ffn_layernorm.weight", "ffn_sub_norm", FALSE },
  { "self_attn.attn_sub_norm.weight", "attn_sub_norm", FALSE },  /* BitNet b1.58 2B4T */
  { "mlp.ffn_sub_norm.weight", "ffn_sub_norm", FALSE },
};

/* Maps a Hugging Face tensor name to its canonical name (g_free it); NULL with *skip for tensors to ignore,
 * NULL with error for unknown ones. */
static gchar *
canonical_name (const gchar *hf, const LevHParams *hp, gboolean tied, gboolean *linear, gboolean *skip,
                GError **error)
{
  *skip = FALSE;
  *linear = FALSE;
  if (strcmp (hf, "model.embed_tokens.weight") == 0)
    return g_strdup ("token_embd");
  if (strcmp (hf, "model.norm.weight") == 0)
    return g_strdup ("output_norm");
  if (strcmp (hf, "lm_head.weight") == 0) {
    if (tied) { /* transformers ties it to the embedding and ignores the stored copy */
      *skip = TRUE;
      return NULL;
    }
    return g_strdup ("output");
  }
  if (g_str_has_prefix (hf, "model.layers.")) {
    const gchar *p = hf + strlen ("model.layers.");
    gchar *end = NULL;
    guint64 layer = g_ascii_strtoull (p, &end, 10);
    if (end != p && *end == '.' && g_ascii_isdigit (*p) && (layer > 0 || end == p + 1)) {
      const gchar *suffix = end + 1;
      if (strcmp (suffix, "self_attn.rotary_emb.inv_freq") == 0) { /* recomputed by the engine */
        *skip = TRUE;
        return NULL;
      }
      for (gsize i = 0; i < G_N_ELEMENTS (layer_map); i++) {
        if (strcmp (suffix, layer_map[i].hf) == 0) {
          if (layer >= hp->n_layers) {
            g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                         "tensor %s belongs to layer %" G_GUINT64_FORMAT ", but the model has %u layers", hf, layer,
                         hp->n_layers);
            return NULL;
          }
          *linear = layer_map[i].linear;
          return g_strdup_printf ("blk.%" G_GUINT64_FORMAT ".%s", layer, layer_map[i].lev);
        }
      }
    }
  }
  g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
               "tensor %s is not part of any layout this converter knows", hf);
  return NULL;
}

/* Returns the tensor's values as g_malloc'd floats. */
static float *
st_to_f32 (const LevStTensor *t)
{
  float *out = g_new (float, t->numel);
  for (guint64 i = 0; i < t->numel; i++) {
    if (t->dtype == LEV_ST_F32) {
      memcpy (&out[i], t->data + 4 * i, 4);
    } else {
      guint16 v;
      memcpy (&v, t->data + 2 * i, 2);
      v = GUINT16_FROM_LE (v);
      if (t->dtype == LEV_ST_F16)
        out[i] = lev_f16_to_f32 (v);
      else {
        guint32 bits = (guint32) v << 16;
        memcpy (&out[i], &bits, 4);
      }
    }
  }
  return out;
}

/* 1bitLLM weight_quant: scale = mean|W| (clamped >= 1e-5), t = clamp(round_half_even(W / scale), -1, 1). */
static void
add_ternarized (LevConvModel *model, const gchar *name, const LevStTensor *st)
{
  float *w = st_to_f32 (st);
  double sum = 0.0;
  for (guint64 i = 0; i < st->numel; i++)
    sum += fabs ((double) w[i]);
  float scale = st->numel ? (float) (sum / (double) st->numel) : 0.0f;
  if (!(scale >= 1e-5f))
    scale = 1e-5f;
  gint8 *t = g_malloc (st->numel ? st->numel : 1);
  for (guint64 i = 0; i < st->numel; i++) {
    float r = nearbyintf (w[i] / scale); /* default rounding mode: halves to even, as torch.round */
    t[i] = r > 0.0f ? 1 : r < 0.0f ? -1 : 0;
  }
  g_free (w);
  LevConvTensor *ct = lev_conv_model_add_tensor (model, name, LEV_SRC_TERNARY, st->n_dims, st->shape, t, t);
  ct->scale = scale;
}

/* Unpacks a 2B4T BitLinear weight: uint8 [out/4][in], output row i·(out/4)+j in bits 2i..2i+1 of packed row j,
 * value = code − 1; the scale comes from <name>_scale and multiplies (AutoBitLinear) or divides (BitLinear). */
static gboolean
add_packed (LevConvModel *model, const gchar *name, const LevStTensor *st, LevStSet *set, gboolean scale_divides,
            GError **error)
{
  g_autofree gchar *scale_name = g_strconcat (st->name, "_scale", NULL);
  const LevStTensor *sc = g_hash_table_lookup (set->tensors, scale_name);
  if (st->n_dims != 2) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "packed tensor %s must be a matrix", st->name);
    return FALSE;
  }
  if (sc == NULL || sc->numel != 1 || sc->dtype == LEV_ST_U8) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                 "packed tensor %s needs a float %s with one element", st->name, scale_name);
    return FALSE;
  }
  float *sv = st_to_f32 (sc);
  float scale = scale_divides ? 1.0f / sv[0] : sv[0];
  g_free (sv);
  if (!(scale > 0.0f) || !isfinite (scale)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s is not a positive finite scale", scale_name);
    return FALSE;
  }
  guint64 quarter = st->shape[0], cols = st->shape[1], rows = quarter * 4;
  gint8 *t = g_malloc (rows * cols > 0 ? rows * cols : 1);
  for (guint64 j = 0; j < quarter; j++)
    for (guint64 c = 0; c < cols; c++) {
      guint8 byte = st->data[j * cols + c];
      for (guint i = 0; i < 4; i++) {
        guint code = (byte >> (2 * i)) & 3u;
        if (code == 3) {
          g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                       "packed tensor %s holds the invalid code 3 at row %" G_GUINT64_FORMAT ", column %"
                       G_GUINT64_FORMAT, st->name, j, c);
          g_free (t);
          return FALSE;
        }
        t[(i * quarter + j) * cols + c] = (gint8) ((gint) code - 1);
      }
    }
  guint64 shape[2] = { rows, cols };
  LevConvTensor *ct = lev_conv_model_add_tensor (model, name, LEV_SRC_TERNARY, 2, shape, t, t);
  ct->scale = scale;
  return TRUE;
}

/* Adds a float tensor pointing into the mapped file (copied when the file does not align it). */
static void
add_float (LevConvModel *model, const gchar *name, const LevStTensor *st)
{
  LevSrcType type = st->dtype == LEV_ST_F32 ? LEV_SRC_F32 : st->dtype == LEV_ST_F16 ? LEV_SRC_F16 : LEV_SRC_BF16;
  guint esize = st->dtype == LEV_ST_F32 ? 4 : 2;
  const void *data = st->data;
  gpointer owned = NULL;
  if ((uintptr_t) data % esize != 0) {
    owned = g_memdup2 (data, st->nbytes ? st->nbytes : 1);
    data = owned;
  }
  lev_conv_model_add_tensor (model, name, type, st->n_dims, st->shape, data, owned);
}

static gint
str_cmp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar *const *) a, *(const gchar *const *) b);
}

/* Adds every tensor of set to model under its canonical name. */
static gboolean
map_tensors (LevConvModel *model, LevStSet *set, const HfLayout *layout, GError **error)
{
  /* deterministic order: sorted by Hugging Face name */
  guint n = 0;
  gpointer *keys = g_hash_table_get_keys_as_array (set->tensors, &n);
  qsort (keys, n, sizeof (gpointer), str_cmp);
  gboolean ok = TRUE, have_lm_head = FALSE;
  for (guint i = 0; ok && i < n; i++) {
    const LevStTensor *st = g_hash_table_lookup (set->tensors, keys[i]);
    gboolean linear, skip;
    if (layout->packed && g_str_has_suffix (st->name, ".weight_scale"))
      continue;                 /* read with its packed weight */
    g_autofree gchar *name = canonical_name (st->name, &model->hp, layout->tied, &linear, &skip, error);
    if (strcmp (st->name, "lm_head.weight") == 0)
      have_lm_head = TRUE;
    if (name == NULL) {
      ok = skip;
      continue;
    }
    if (st->dtype == LEV_ST_U8 && linear && layout->packed) {
      ok = add_packed (model, name, st, set, layout->scale_divides, error);
    } else if (layout->packed && linear) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "tensor %s should be packed uint8 (quantization_mode offline) but is not", st->name);
      ok = FALSE;
    } else if (st->dtype == LEV_ST_U8) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "tensor %s has dtype U8, which only packed BitNet linear weights may have", st->name);
      ok = FALSE;
    } else if (st->n_dims < 1 || st->n_dims > LEV_MAX_DIMS) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "tensor %s has %u dimensions", st->name,
                   st->n_dims);
      ok = FALSE;
    } else if (linear && layout->ternarize) {
      add_ternarized (model, name, st);
    } else {
      add_float (model, name, st);
    }
  }
  g_free (keys);
  if (ok && !layout->tied && !have_lm_head) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                 "tie_word_embeddings is false, but there is no lm_head.weight tensor");
    ok = FALSE;
  }
  return ok;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* tokenizer                                                                                                         */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Reads tokenizer.model or tokenizer.json (if any) and tokenizer_config.json (if any). */
static gboolean
import_tokenizer (LevConvModel *model, const gchar *dir, GError **error)
{
  g_autofree gchar *spm = g_build_filename (dir, "tokenizer.model", NULL);
  g_autofree gchar *tj = g_build_filename (dir, "tokenizer.json", NULL);
  if (g_file_test (spm, G_FILE_TEST_IS_REGULAR) || g_file_test (tj, G_FILE_TEST_IS_REGULAR)) {
    /* a SentencePiece tokenizer.model first, else tokenizer.json with its tokenizer_config.json (lev_import_vocab) */
    model->vocab = lev_import_vocab (dir, error);
    if (model->vocab == NULL)
      return FALSE;
  }
  g_autofree gchar *tc = g_build_filename (dir, "tokenizer_config.json", NULL);
  if (g_file_test (tc, G_FILE_TEST_IS_REGULAR)) {
    g_autoptr (JsonParser) parser = lev_json_load_file (tc, error);
    if (parser == NULL)
      return FALSE;
    JsonObject *o = json_node_get_object (json_parser_get_root (parser));
    static const struct { const char *key; guint32 flag; } flags[] = {
      { "add_bos_token", LEV_TOKF_ADD_BOS }, { "add_eos_token", LEV_TOKF_ADD_EOS },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (flags); i++) {
      gboolean v;
      if (lev_json_member (o, flags[i].key) == NULL)
        continue;
      if (!cfg_bool (o, flags[i].key, FALSE, &v, error)) {
        g_prefix_error (error, "%s: ", tc);
        return FALSE;
      }
      if (model->vocab != NULL) {
        if (v)
          model->vocab->flags |= flags[i].flag;
        else
          model->vocab->flags &= ~flags[i].flag;
      }
    }
    JsonNode *ct = lev_json_member (o, "chat_template");
    if (ct != NULL && JSON_NODE_HOLDS_VALUE (ct) && json_node_get_value_type (ct) == G_TYPE_STRING) {
      model->chat_template = g_strdup (json_node_get_string (ct));
    } else if (ct != NULL && JSON_NODE_HOLDS_ARRAY (ct)) {
      /* a list of {name, template}: take the one named "default" */
      JsonArray *a = json_node_get_array (ct);
      for (guint i = 0; i < json_array_get_length (a); i++) {
        JsonNode *e = json_array_get_element (a, i);
        if (!JSON_NODE_HOLDS_OBJECT (e))
          continue;
        const gchar *nm = lev_json_string (json_node_get_object (e), "name");
        const gchar *tpl = lev_json_string (json_node_get_object (e), "template");
        if (nm != NULL && tpl != NULL && strcmp (nm, "default") == 0)
          model->chat_template = g_strdup (tpl);
      }
    }
  }
  if (model->chat_template == NULL) {
    g_autofree gchar *jinja = g_build_filename (dir, "chat_template.jinja", NULL);
    gchar *text = NULL;
    if (g_file_test (jinja, G_FILE_TEST_IS_REGULAR) && g_file_get_contents (jinja, &text, NULL, NULL))
      model->chat_template = text;
  }
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------------------------- */

/* Reads a Hugging Face checkpoint directory (config.json + safetensors + tokenizer files). */
LevConvModel *
lev_import_hf_dir (const gchar *dir, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  if (G_BYTE_ORDER != G_LITTLE_ENDIAN) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "big-endian hosts are not supported");
    return NULL;
  }
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "%s is not a directory", dir);
    return NULL;
  }
  LevConvModel *model = lev_conv_model_new ();
  HfLayout layout = { FALSE, FALSE, FALSE, FALSE };
  LevStSet *set = NULL;
  gboolean ok = parse_config (model, dir, &layout, error);
  if (ok)
    ok = (set = lev_st_load_dir (dir, error)) != NULL;
  if (ok) {
    for (guint i = 0; i < set->maps->len; i++)
      g_ptr_array_add (model->keep, g_mapped_file_ref (g_ptr_array_index (set->maps, i)));
    ok = map_tensors (model, set, &layout, error) && lev_conv_model_validate (model, error);
    if (!ok)
      g_prefix_error (error, "%s: ", dir);
  }
  lev_st_set_free (set);
  if (ok)
    ok = import_tokenizer (model, dir, error);
  if (!ok) {
    lev_conv_model_free (model);
    return NULL;
  }
  g_autofree gchar *canon = g_canonicalize_filename (dir, NULL);
  model->name = g_path_get_basename (canon);
  return model;
}
