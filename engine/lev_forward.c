/* lev_forward.c: the decoder forward pass (LLaMA, Qwen2, BitNet, bitllama2.c) over a ring-buffer KV cache. */
#include "lev_model.h"
#include "lev_threadpool.h"

#include <math.h>
#include <string.h>

struct LevContext {
  const LevModel *model;
  LevThreadPool *pool;
  uint32_t n_ctx, n_sink;
  gboolean act_quant;
  uint64_t pos;               /* tokens evaluated since reset */
  /* KV cache: [n_layers][n_ctx][kv_dim], keys stored rotated at their text position */
  float *key_cache, *value_cache;
  /* scratch */
  float *x, *xb, *xb2, *q, *hb, *hb2, *att, *logits;
  int8_t *xq;
  float *inv_freq;            /* head_dim / 2 RoPE frequencies after scaling */
  float *rope_cos, *rope_sin; /* at the text position of the token */
  float *sink_cos, *sink_sin; /* at the query's place in the cache (differs once the window slides) */
};

/* ---------------------------------------------------------------- helpers */

/* out = x / rms(x) * w (w NULL: no weight). */
static void
rmsnorm (float *out, const float *x, const float *w, uint32_t n, float eps)
{
  float ss = 0.0f;
  for (uint32_t i = 0; i < n; i++)
    ss += x[i] * x[i];
  float inv = 1.0f / sqrtf (ss / (float) n + eps);
  for (uint32_t i = 0; i < n; i++)
    out[i] = w ? w[i] * (inv * x[i]) : inv * x[i];
}

/* An activation vector prepared for a linear layer: float values, or int8 codes with one scale. */
typedef struct {
  const float *x;
  const int8_t *xq;           /* NULL: use x */
  float x_scale;              /* value = xq * x_scale */
} LinearInput;

/* Quantizes x to int8 per token (absmax) the way the model was trained. */
static LinearInput
quantize_input (LevContext *c, float *x, uint32_t n)
{
  LinearInput in = { x, NULL, 1.0f };
  if (!c->act_quant)
    return in;
  const LevHParams *hp = &c->model->hp;
  if (hp->flags & LEV_HP_BITLINEAR_NORM) {
    /* bitllama2.c: x * (1 / rms(x) / n) with no epsilon, then a = max|x| / 127 and q = round(x * (1 / a)),
     * in the reference runner's order of float operations */
    float ss = 0.0f;
    for (uint32_t i = 0; i < n; i++)
      ss += x[i] * x[i];
    float scale = 1.0f / sqrtf (ss / (float) n);
    scale /= (float) n;
    float amax = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
      x[i] = isfinite (scale) ? x[i] * scale : 0.0f;
      amax = fmaxf (amax, fabsf (x[i]));
    }
    float a = (float) (amax / 127.0);
    float inv = a > 0.0f ? (float) (1.0 / a) : 0.0f;
    for (uint32_t i = 0; i < n; i++) {
      double r = round (x[i] * inv);
      c->xq[i] = (int8_t) fmin (fmax (r, -128.0), 127.0);
    }
    in.x_scale = a;
  } else {
    /* BitNet b1.58: s = 127 / max(|x|, 1e-5), q = clamp(round_half_even(x * s), -128, 127) */
    float amax = 0.0f;
    for (uint32_t i = 0; i < n; i++)
      amax = fmaxf (amax, fabsf (x[i]));
    float s = 127.0f / fmaxf (amax, 1e-5f);
    gboolean away = (hp->flags & LEV_HP_ACT_ROUND_AWAY) != 0;
    for (uint32_t i = 0; i < n; i++) {
      float r = away ? roundf (x[i] * s) : nearbyintf (x[i] * s);
      c->xq[i] = (int8_t) fminf (fmaxf (r, -128.0f), 127.0f);
    }
    in.x_scale = 1.0f / s;
  }
  in.xq = c->xq;
  return in;
}

typedef struct {
  const LevMatrix *m;
  LinearInput in;
  float *y;
  float *xdq;                 /* dequantized activations when the matrix is not int8 */
} LinearJob;

static void
linear_worker (void *arg, uint32_t ith, uint32_t nth)
{
  LinearJob *j = arg;
  const LevMatrix *m = j->m;
  size_t r0 = (size_t) m->rows * ith / nth, r1 = (size_t) m->rows * (ith + 1) / nth;
  const float *x = j->in.xq ? j->xdq : j->in.x;
  switch (m->encoding) {
    case LEV_ENC_F32: lev_matvec_f32 (m->data, x, j->y, m->cols, r0, r1); break;
    case LEV_ENC_F16: lev_matvec_f16 (m->data, x, j->y, m->cols, r0, r1); break;
    case LEV_ENC_BF16: lev_matvec_bf16 (m->data, x, j->y, m->cols, r0, r1); break;
    case LEV_ENC_Q8:
      if (j->in.xq)
        lev_matvec_q8_i8 (m->data, m->scales, j->in.xq, j->in.x_scale, j->y, m->cols, r0, r1);
      else
        lev_matvec_q8_f32 (m->data, m->scales, j->in.x, j->y, m->cols, r0, r1);
      break;
    default: break;
  }
}

/* y = W x on the thread pool. */
static void
linear (LevContext *c, const LevMatrix *m, const LinearInput *in, float *y)
{
  LinearJob job = { m, *in, y, NULL };
  if (in->xq && m->encoding != LEV_ENC_Q8) {
    /* a float matrix with quantized activations: use the dequantized values (att is free outside attention) */
    float *xdq = c->att;
    for (uint32_t i = 0; i < m->cols; i++)
      xdq[i] = (float) in->xq[i] * in->x_scale;
    job.xdq = xdq;
  }
  lev_threadpool_run (c->pool, linear_worker, &job);
}

/* Rotates one head vector in place with precomputed cos/sin for its position. */
static void
rope_apply (float *v, uint32_t head_dim, uint32_t style, const float *cosv, const float *sinv)
{
  uint32_t half = head_dim / 2;
  for (uint32_t i = 0; i < half; i++) {
    uint32_t a = style == LEV_ROPE_INTERLEAVED ? 2 * i : i;
    uint32_t b = style == LEV_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
    float x0 = v[a], x1 = v[b];
    v[a] = x0 * cosv[i] - x1 * sinv[i];
    v[b] = x0 * sinv[i] + x1 * cosv[i];
  }
}

/* Fills cos/sin of every pair's angle at position pos. Like the reference implementations (run.c, llama.cpp) the
 * angle is a float product of position and frequency, so logits match theirs to float rounding. */
static void
rope_table (const LevContext *c, uint64_t pos, float *cosv, float *sinv)
{
  uint32_t half = c->model->hp.head_dim / 2;
  for (uint32_t i = 0; i < half; i++) {
    float angle = (float) pos * c->inv_freq[i];
    cosv[i] = cosf (angle);
    sinv[i] = sinf (angle);
  }
}

/* Fills the per-pair RoPE frequencies, applying the model's RoPE scaling. */
static void
init_rope (LevContext *c)
{
  const LevHParams *hp = &c->model->hp;
  uint32_t half = hp->head_dim / 2;
  for (uint32_t i = 0; i < half; i++) {
    double f = 1.0f / powf (hp->rope_theta, (float) (2 * i) / (float) hp->head_dim);
    if (hp->rope_scaling == LEV_ROPE_SCALING_LINEAR) {
      f /= hp->rope_factor;
    } else if (hp->rope_scaling == LEV_ROPE_SCALING_LLAMA3) {
      double wavelen = 2.0 * G_PI / f;
      double low_wavelen = hp->rope_orig_ctx / (double) hp->rope_low_freq_factor;
      double high_wavelen = hp->rope_orig_ctx / (double) hp->rope_high_freq_factor;
      if (wavelen > low_wavelen) {
        f /= hp->rope_factor;
      } else if (wavelen >= high_wavelen) {
        double smooth = (hp->rope_orig_ctx / wavelen - hp->rope_low_freq_factor)
                        / (hp->rope_high_freq_factor - hp->rope_low_freq_factor);
        f = (1.0 - smooth) * f / hp->rope_factor + smooth * f;
      }
    }
    c->inv_freq[i] = (float) f;
  }
}

/* ---------------------------------------------------------------- attention */

typedef struct {
  LevContext *c;
  uint32_t layer;
  uint32_t slot;              /* cache slot of the current token */
} AttnJob;

/* Returns the cache slot of text position pos. */
static uint32_t
slot_of (const LevContext *c, uint64_t pos)
{
  if (pos < c->n_ctx)
    return (uint32_t) pos;
  return c->n_sink + (uint32_t) ((pos - c->n_sink) % (c->n_ctx - c->n_sink));
}

static void
attention_worker (void *arg, uint32_t ith, uint32_t nth)
{
  AttnJob *j = arg;
  LevContext *c = j->c;
  const LevHParams *hp = &c->model->hp;
  uint32_t hd = hp->head_dim, kv_dim = hp->n_kv_heads * hd, group = hp->n_heads / hp->n_kv_heads;
  gboolean wrapped = c->pos >= c->n_ctx;
  uint32_t n_slots = wrapped ? c->n_ctx : (uint32_t) c->pos + 1;
  const float *kc = c->key_cache + (size_t) j->layer * c->n_ctx * kv_dim;
  const float *vc = c->value_cache + (size_t) j->layer * c->n_ctx * kv_dim;
  float scale = sqrtf ((float) hd);
  for (uint32_t h = ith; h < hp->n_heads; h += nth) {
    const float *q = c->q + (size_t) h * hd;      /* rotated at the text position */
    float *att = c->att + (size_t) h * c->n_ctx;
    uint32_t kvh = h / group;
    float q_sink[1024];
    if (wrapped) {
      /* sinks sit at the start of the cache: the query is placed at the end of the cache for them, so that
       * query-key distances stay within the trained context (StreamingLLM) */
      memcpy (q_sink, c->xb2 + (size_t) h * hd, hd * sizeof (float));
      rope_apply (q_sink, hd, hp->rope_style, c->sink_cos, c->sink_sin);
    }
    float maxv = -INFINITY;
    for (uint32_t s = 0; s < n_slots; s++) {
      const float *k = kc + (size_t) s * kv_dim + (size_t) kvh * hd;
      float d = lev_dot_f32 (wrapped && s < c->n_sink ? q_sink : q, k, hd) / scale;
      att[s] = d;
      maxv = fmaxf (maxv, d);
    }
    float sum = 0.0f;
    for (uint32_t s = 0; s < n_slots; s++) {
      att[s] = expf (att[s] - maxv);
      sum += att[s];
    }
    float *out = c->xb + (size_t) h * hd;
    memset (out, 0, hd * sizeof (float));
    for (uint32_t s = 0; s < n_slots; s++)
      lev_axpy_f32 (att[s] / sum, vc + (size_t) s * kv_dim + (size_t) kvh * hd, out, hd);
  }
}

/* ---------------------------------------------------------------- the forward pass */

const float *
lev_context_eval (LevContext *c, int32_t token, GError **error)
{
  const LevModel *m = c->model;
  const LevHParams *hp = &m->hp;
  if (token < 0 || (uint32_t) token >= hp->vocab_size) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "token id %d is outside the vocabulary (0..%u)", token,
                 hp->vocab_size - 1);
    return NULL;
  }
  uint32_t dim = hp->dim, hd = hp->head_dim, ffn = hp->ffn_dim;
  uint32_t q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
  gboolean bitlinear_norm = (hp->flags & LEV_HP_BITLINEAR_NORM) != 0;
  uint32_t slot = slot_of (c, c->pos);
  float *x = c->x;

  lev_matrix_get_row (&m->tok_embd, (uint32_t) token, x);
  rope_table (c, c->pos, c->rope_cos, c->rope_sin);
  if (c->pos >= c->n_ctx)
    rope_table (c, c->n_ctx - 1, c->sink_cos, c->sink_sin);

  for (uint32_t l = 0; l < hp->n_layers; l++) {
    const LevLayer *L = &m->layers[l];
    float *kc = c->key_cache + ((size_t) l * c->n_ctx + slot) * kv_dim;
    float *vc = c->value_cache + ((size_t) l * c->n_ctx + slot) * kv_dim;

    /* attention: norm, q/k/v projections, biases, RoPE */
    if (bitlinear_norm)
      memcpy (c->xb, x, dim * sizeof (float));
    else
      rmsnorm (c->xb, x, L->attn_norm, dim, hp->norm_eps);
    LinearInput in = quantize_input (c, c->xb, dim);
    linear (c, &L->wq, &in, c->q);
    linear (c, &L->wk, &in, kc);
    linear (c, &L->wv, &in, vc);
    if (L->bq) {
      for (uint32_t i = 0; i < q_dim; i++)
        c->q[i] += L->bq[i];
      for (uint32_t i = 0; i < kv_dim; i++) {
        kc[i] += L->bk[i];
        vc[i] += L->bv[i];
      }
    }
    memcpy (c->xb2, c->q, q_dim * sizeof (float));   /* unrotated queries, for the sinks */
    for (uint32_t h = 0; h < hp->n_heads; h++)
      rope_apply (c->q + (size_t) h * hd, hd, hp->rope_style, c->rope_cos, c->rope_sin);
    for (uint32_t h = 0; h < hp->n_kv_heads; h++)
      rope_apply (kc + (size_t) h * hd, hd, hp->rope_style, c->rope_cos, c->rope_sin);

    /* multi-head attention over the cache (GQA: heads share kv heads in groups) */
    AttnJob aj = { c, l, slot };
    lev_threadpool_run (c->pool, attention_worker, &aj);

    /* output projection (BitNet: sub-norm first) and residual */
    if (L->attn_sub_norm)
      rmsnorm (c->xb, c->xb, L->attn_sub_norm, q_dim, hp->norm_eps);
    in = quantize_input (c, c->xb, q_dim);
    linear (c, &L->wo, &in, c->xb2);
    for (uint32_t i = 0; i < dim; i++)
      x[i] += c->xb2[i];

    /* feed-forward: act(gate) * up, (sub-norm), down, residual */
    if (bitlinear_norm)
      memcpy (c->xb, x, dim * sizeof (float));
    else
      rmsnorm (c->xb, x, L->ffn_norm, dim, hp->norm_eps);
    in = quantize_input (c, c->xb, dim);
    linear (c, &L->w_gate, &in, c->hb);
    linear (c, &L->w_up, &in, c->hb2);
    for (uint32_t i = 0; i < ffn; i++) {
      float g = c->hb[i];
      switch (hp->activation) {
        case LEV_ACT_RELU2: g = g > 0.0f ? g * g : 0.0f; break;
        case LEV_ACT_GELU:
          g = 0.5f * g * (1.0f + tanhf (0.7978845608f * (g + 0.044715f * g * g * g)));
          break;
        default: g = g / (1.0f + expf (-g)); break;
      }
      c->hb[i] = g * c->hb2[i];
    }
    if (L->ffn_sub_norm)
      rmsnorm (c->hb, c->hb, L->ffn_sub_norm, ffn, hp->norm_eps);
    in = quantize_input (c, c->hb, ffn);
    linear (c, &L->w_down, &in, c->xb);
    for (uint32_t i = 0; i < dim; i++)
      x[i] += c->xb[i];
  }

  rmsnorm (x, x, m->output_norm, dim, hp->norm_eps);
  LinearInput out_in = { x, NULL, 1.0f };
  linear (c, &m->output, &out_in, c->logits);
  c->pos++;
  return c->logits;
}

/* ---------------------------------------------------------------- context lifetime */

LevContextParams
lev_context_default_params (void)
{
  LevContextParams p = { 0, 4, 0, LEV_ACT_QUANT_AUTO };
  return p;
}

LevContext *
lev_context_new (const LevModel *model, const LevContextParams *params, GError **error)
{
  const LevHParams *hp = &model->hp;
  if (!model->has_weights) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_NO_WEIGHTS, "the model file holds only a tokenizer, no weights");
    return NULL;
  }
  LevContextParams p = params ? *params : lev_context_default_params ();
  uint32_t n_ctx = p.n_ctx ? p.n_ctx : hp->max_ctx;
  if (n_ctx < 2 || n_ctx > (1u << 20)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "context size %u is out of range (2..%u)", n_ctx, 1u << 20);
    return NULL;
  }
  if (p.n_sink >= n_ctx) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "%u attention sinks do not fit a context of %u", p.n_sink,
                 n_ctx);
    return NULL;
  }
  if (p.act_quant > LEV_ACT_QUANT_ON) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "unknown activation quantization mode %u", p.act_quant);
    return NULL;
  }
  uint32_t n_threads = p.n_threads ? p.n_threads : g_get_num_processors ();
  n_threads = MIN (n_threads, 64u);
  uint32_t kv_dim = hp->n_kv_heads * hp->head_dim, q_dim = hp->n_heads * hp->head_dim;
  uint32_t wide = MAX (MAX (hp->dim, q_dim), hp->ffn_dim);
  uint64_t cache_floats = (uint64_t) hp->n_layers * n_ctx * kv_dim;
  if (cache_floats > ((uint64_t) 1 << 36) / sizeof (float)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "a context of %u needs a KV cache over 64 GiB", n_ctx);
    return NULL;
  }
  LevContext *c = g_new0 (LevContext, 1);
  c->model = model;
  c->n_ctx = n_ctx;
  c->n_sink = p.n_sink;
  c->act_quant = p.act_quant == LEV_ACT_QUANT_AUTO ? (hp->flags & LEV_HP_ACT_QUANT) != 0
                                                  : p.act_quant == LEV_ACT_QUANT_ON;
  c->key_cache = g_try_malloc0 (cache_floats * sizeof (float));
  c->value_cache = g_try_malloc0 (cache_floats * sizeof (float));
  c->pool = lev_threadpool_new (n_threads);
  if (!c->key_cache || !c->value_cache || !c->pool) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "cannot allocate a context of %u tokens (%" G_GUINT64_FORMAT
                 " MiB of KV cache) or its threads", n_ctx, cache_floats * 8 >> 20);
    lev_context_free (c);
    return NULL;
  }
  c->x = g_new0 (float, hp->dim);
  c->xb = g_new0 (float, wide);
  c->xb2 = g_new0 (float, wide);
  c->q = g_new0 (float, q_dim);
  c->hb = g_new0 (float, hp->ffn_dim);
  c->hb2 = g_new0 (float, MAX (hp->ffn_dim, wide));
  c->att = g_new0 (float, MAX ((size_t) hp->n_heads * n_ctx, wide));
  c->logits = g_new0 (float, hp->vocab_size);
  c->xq = g_new0 (int8_t, wide);
  c->inv_freq = g_new0 (float, hp->head_dim / 2);
  c->rope_cos = g_new0 (float, hp->head_dim / 2);
  c->rope_sin = g_new0 (float, hp->head_dim / 2);
  c->sink_cos = g_new0 (float, hp->head_dim / 2);
  c->sink_sin = g_new0 (float, hp->head_dim / 2);
  init_rope (c);
  return c;
}

void
lev_context_free (LevContext *c)
{
  if (!c)
    return;
  if (c->pool)
    lev_threadpool_free (c->pool);
  g_free (c->key_cache);
  g_free (c->value_cache);
  g_free (c->x);
  g_free (c->xb);
  g_free (c->xb2);
  g_free (c->q);
  g_free (c->hb);
  g_free (c->hb2);
  g_free (c->att);
  g_free (c->logits);
  g_free (c->xq);
  g_free (c->inv_freq);
  g_free (c->rope_cos);
  g_free (c->rope_sin);
  g_free (c->sink_cos);
  g_free (c->sink_sin);
  g_free (c);
}

void
lev_context_reset (LevContext *c)
{
  c->pos = 0;
}

uint64_t
lev_context_pos (const LevContext *c)
{
  return c->pos;
}

uint32_t
lev_context_n_ctx (const LevContext *c)
{
  return c->n_ctx;
}
