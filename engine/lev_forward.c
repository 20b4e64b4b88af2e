/* lev_forward.c: the decoder forward pass (LLaMA, Qwen2, BitNet, bitllama2.c) over a ring-buffer KV cache. */
#include "lev_model.h"
#include "lev_threadpool.h"
#include "lev_engine_private.h"

#include <math.h>
#include <string.h>
#include <sys/mman.h>

#define LEV_MAX_BATCH LEV_PREFILL_BLOCK /* prompt tokens evaluated together (one pass over the weights) */

struct LevContext {
  const LevModel *model;
  LevThreadPool *pool;
  const LevQKernels *kern;    /* packed kernels chosen for this CPU */
  uint32_t n_ctx, n_sink;
  gboolean act_quant;         /* the model quantizes its linear inputs to int8 */
  gboolean float_reference;   /* activation quantization explicitly off: packed matrices take float inputs */
  gboolean packed_body;       /* the blocks' matrices are packed: quantize each linear input once, per token */
  uint64_t pos;               /* tokens evaluated since reset */
  /* KV cache: [n_layers][n_ctx][kv_dim] of kv_type, keys stored rotated at their text position; int8 caches
   * keep one scale per token and kv head ([n_layers][n_ctx][n_kv_heads]) */
  uint32_t kv_type;
  size_t kv_elem;             /* bytes per value */
  uint8_t *key_cache, *value_cache;
  size_t cache_bytes;         /* of each of the two (cache_alloc) */
  float *key_scale, *value_scale;
  float *kbuf, *vbuf;         /* [batch][kv_dim] new keys and values before they are stored (compact caches) */
  uint8_t *embd_scratch;      /* one embedding row as stored */
  /* scratch, LEV_MAX_BATCH rows each (row stride: the width named) */
  uint32_t wide;              /* max (dim, q_dim, ffn_dim) */
  float *x, *xb, *xb2, *q, *hb, *hb2, *xdq, *logits;
  float *att;                 /* [n_threads][att_stride]: attention weights [LEV_ATTN_RUN][n_ctx], sink queries */
  size_t att_stride;
  /* int8 activations of the current linear input: [batch][qstride], the kernels' second layout, sums, scales */
  size_t qstride;
  int8_t *xq, *xq2;
  int32_t *xsum;
  int32_t *xcsum;              /* [B][qstride / 32] activation sums per 32-value chunk (per-group scales) */
  float *xscale;
  float *inv_freq;            /* head_dim / 2 RoPE frequencies after scaling */
  float *rope_cos, *rope_sin; /* [batch][head_dim / 2] at the text position of each token */
  float *sink_cos, *sink_sin; /* at the query's place in the cache (differs once the window slides) */
  float *lora_u;              /* [batch][max lora rank]: B x of the current product's low-rank adapter */
  uint32_t lora_rank;         /* the model's largest adapter rank */
  LevLinearObserver observer; /* calibration hook (converter), or NULL */
  void *observer_data;
  /* the rows of the block being evaluated: each row's context (its KV cache, position and logits) and text
   * position; all this context itself except in an engine's batched steps (lev_forward_rows) */
  LevContext **row_ctx;
  uint64_t *row_pos;
  float *batch_logits;        /* an engine's scratch context: [LEV_MAX_BATCH][vocab] logits of a batched step */
  LevEngine *engine;          /* the engine evaluating this context (lev_engine_context_new), or NULL */
};

/* ---------------------------------------------------------------- helpers */

/* Returns `bytes` of zeroed memory for a KV cache, or NULL: a mapping of its own, in 2 MiB pages where the kernel
 * gives them on request (transparent huge pages, "madvise" mode), so that a cache filling up takes a page fault
 * every 2 MiB instead of every 4 KiB. The caches are [layer][slot], so each decoded token of each context writes a
 * new 4 KiB page every few tokens in every layer; on a VM a fault costs about 15 us, which made a batched 8-stream
 * step of TinyLlama spend 1.7 ms of its 35 in the cache stores (step profile, LEV_PROFILE_STEPS). */
static uint8_t *
cache_alloc (size_t bytes)
{
  void *p = mmap (NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
#ifdef MADV_HUGEPAGE
  madvise (p, bytes, MADV_HUGEPAGE);   /* a hint: where it fails, 4 KiB pages as before */
#endif
  return p;
}

/* Frees a cache of cache_alloc (NULL: nothing). */
static void
cache_free (uint8_t *p, size_t bytes)
{
  if (p)
    munmap (p, bytes);
}

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

/* bitllama2.c's parameter-free norm: x * (1 / rms(x) / n), no epsilon, in place (zero when x is zero). */
static void
bitlinear_norm (float *x, uint32_t n)
{
  float ss = 0.0f;
  for (uint32_t i = 0; i < n; i++)
    ss += x[i] * x[i];
  float scale = 1.0f / sqrtf (ss / (float) n);
  scale /= (float) n;
  for (uint32_t i = 0; i < n; i++)
    x[i] = isfinite (scale) ? x[i] * scale : 0.0f;
}

/* bitllama2.c: the norm above (written back to x), then a = max|x| / 127 and q = round(x * (1 / a)), in the
 * reference runner's order of float operations; returns a. */
static float
quantize_bitlinear (float *x, uint32_t n, int8_t *q)
{
  bitlinear_norm (x, n);
  float amax = 0.0f;
  for (uint32_t i = 0; i < n; i++)
    amax = fmaxf (amax, fabsf (x[i]));
  float a = (float) (amax / 127.0);
  float inv = a > 0.0f ? (float) (1.0 / a) : 0.0f;
  for (uint32_t i = 0; i < n; i++) {
    double r = round (x[i] * inv);
    q[i] = (int8_t) fmin (fmax (r, -128.0), 127.0);
  }
  return a;
}

/* Pads int8 row t of a block with zeros to whole kernel blocks and fills its sums and second layout. */
static void
finish_quantized_row (LevContext *c, uint32_t t, uint32_t cols)
{
  size_t width = (cols + LEV_QPAD - 1) / LEV_QPAD * LEV_QPAD;
  int8_t *q = c->xq + t * c->qstride;
  memset (q + cols, 0, width - cols);
  lev_qact_finish_row (q, width, c->kern->needs_q2 ? c->xq2 + 2 * t * c->qstride : NULL, &c->xsum[t],
                       c->xcsum + t * (c->qstride / 32));
}

/* Pads the int8 rows of a block with zeros to whole kernel blocks and fills their sums and second layout. */
static void
finish_quantized (LevContext *c, uint32_t n, uint32_t cols)
{
  for (uint32_t t = 0; t < n; t++)
    finish_quantized_row (c, t, cols);
}

/* The input of one or more linear layers: n float rows, and their int8 form in c->xq when `quantized`. */
typedef struct {
  uint32_t n, cols;
  const float *x;
  size_t ldx;                 /* floats between rows */
  gboolean quantized;
} LinearInput;

/* Token rows of a linear input to quantize to int8. */
typedef struct {
  LevContext *c;
  float *x;
  size_t ldx;
  uint32_t cols;
} QuantizeJob;

/* Quantizes token row t (chunk t) of the job the way the model was trained when it quantizes its activations, else
 * as linear() would for its packed products, and finishes it for the kernels; rows are independent. */
static void
quantize_worker (void *arg, uint32_t t, uint32_t slot)
{
  QuantizeJob *j = arg;
  LevContext *c = j->c;
  const LevHParams *hp = &c->model->hp;
  int8_t *q = c->xq + t * c->qstride;
  float *x = j->x + t * j->ldx;
  (void) slot;
  if (!c->act_quant)          /* the same per-product quantization as linear() would do, once for all readers */
    c->xscale[t] = c->kern->quantize_absmax (x, j->cols, q, 0);
  else if (hp->flags & LEV_HP_BITLINEAR_NORM)
    c->xscale[t] = quantize_bitlinear (x, j->cols, q);
  else
    c->xscale[t] = c->kern->quantize_absmax (x, j->cols, q, (hp->flags & LEV_HP_ACT_ROUND_AWAY) != 0);
  finish_quantized_row (c, t, j->cols);
}

/* Multiplies n rows of x (cols values, ldx apart) in place by the randomized Hadamard transform of linear input
 * `which` of layer l when the model rotates that input (the converter rotated the weights that read it). */
static void
rotate_input (LevContext *c, uint32_t l, LevLinearInput which, float *x, size_t ldx, uint32_t n, uint32_t cols)
{
  const LevModel *m = c->model;
  if (!(m->hp.rotated_inputs & (1u << which)))
    return;
  const float *signs = m->rot_signs[which] + (size_t) l * cols;
  for (uint32_t t = 0; t < n; t++)
    c->kern->hadamard (x + t * ldx, cols, signs);
}

/* Prepares x (n rows of cols values) as a linear input, quantized to int8 per token the way the model was
 * trained when it quantizes its activations. */
static LinearInput
linear_input (LevContext *c, float *x, size_t ldx, uint32_t n, uint32_t cols)
{
  LinearInput in = { n, cols, x, ldx, FALSE };
  const LevHParams *hp = &c->model->hp;
  if (!c->act_quant && !c->packed_body) {
    if (hp->flags & LEV_HP_BITLINEAR_NORM)   /* the norm belongs to the model, the quantization does not */
      for (uint32_t t = 0; t < n; t++)
        bitlinear_norm (x + t * ldx, cols);
    return in;
  }
  QuantizeJob job = { c, x, ldx, cols };
  if (n >= 4 && lev_threadpool_size (c->pool) > 1)   /* a prompt block: its tokens over the threads */
    lev_threadpool_run_chunks (c->pool, quantize_worker, &job, n);
  else
    for (uint32_t t = 0; t < n; t++)
      quantize_worker (&job, t, 0);
  in.quantized = TRUE;
  return in;
}

/* One matrix of a linear job: y = W x, its rows split into chunks. */
typedef struct {
  const LevMatrix *m;
  float *y;
  size_t ldy;                 /* floats between y's rows */
  uint32_t first_chunk;       /* the job's chunks first_chunk .. are this matrix's */
} LinearPart;

/* Products of up to three matrices with one input (q/k/v, gate/up): one pass of the thread pool over the chunks of
 * all of them, the input quantized once. */
typedef struct {
  const LevContext *c;
  const LinearInput *in;
  LevQAct act;                /* packed matrices: the int8 activations */
  uint32_t chunk_rows;        /* rows per chunk of work, a multiple of 16 */
  uint32_t n_parts;
  LinearPart part[3];
} LinearJob;

/* Adds the matrix's outliers and low-rank adapter to rows [r0, r1) of y for every token: y += S x + A (B x), with
 * the float input x and B x already in c->lora_u. */
static void
linear_extras (const LinearJob *j, const LinearPart *p, size_t r0, size_t r1)
{
  const LevContext *c = j->c;
  const LevMatrix *m = p->m;
  const LinearInput *in = j->in;
  for (uint32_t t = 0; t < in->n; t++) {
    const float *x = in->x + t * in->ldx;
    float *y = p->y + t * p->ldy;
    if (m->sp_rowptr)
      for (size_t r = r0; r < r1; r++)
        y[r] += c->kern->sparse_dot (m->sp_entries + m->sp_rowptr[r], m->sp_rowptr[r + 1] - m->sp_rowptr[r], x);
    if (m->lora_rank) {
      const float *u = c->lora_u + (size_t) t * c->lora_rank;
      uint32_t rank = m->lora_rank;
      for (size_t r = r0; r < r1; r++) {
        const int8_t *a = m->lora_a + r * rank;
        float acc = 0.0f;
        for (uint32_t k = 0; k < rank; k++)
          acc += (float) a[k] * u[k];
        y[r] += acc * m->lora_a_scales[r];
      }
    }
  }
}

/* One chunk of rows of one of the job's products, for every token of the block. */
static void
linear_worker (void *arg, uint32_t chunk, uint32_t slot)
{
  LinearJob *j = arg;
  const LevContext *c = j->c;
  const LinearInput *in = j->in;
  (void) slot;
  uint32_t k = 0;
  while (k + 1 < j->n_parts && chunk >= j->part[k + 1].first_chunk)
    k++;
  const LinearPart *p = &j->part[k];
  const LevMatrix *m = p->m;
  size_t r0 = (size_t) (chunk - p->first_chunk) * j->chunk_rows, r1 = MIN (r0 + j->chunk_rows, (size_t) m->rows);
  if (lev_qenc_is_packed (m->encoding)) {
    if (j->act.q) {
      lev_qgemm (c->kern, &m->q, &j->act, p->y, p->ldy, r0, r1);
    } else {                  /* float reference path (activation quantization switched off) */
      for (uint32_t t = 0; t < in->n; t++)
        for (size_t r = r0; r < r1; r++)
          p->y[t * p->ldy + r] = lev_qdot_f32 (&m->q, r, in->x + t * in->ldx);
    }
    if (m->sp_rowptr || m->lora_rank)
      linear_extras (j, p, r0, r1);
    return;
  }
  for (uint32_t t = 0; t < in->n; t++) {
    const float *x = in->quantized ? c->xdq + (size_t) t * c->wide : in->x + t * in->ldx;
    float *y = p->y + t * p->ldy;
    switch (m->encoding) {
      case LEV_ENC_F32: lev_matvec_f32 (m->data, x, y, m->cols, r0, r1); break;
      case LEV_ENC_F16: lev_matvec_f16 (m->data, x, y, m->cols, r0, r1); break;
      case LEV_ENC_BF16: lev_matvec_bf16 (m->data, x, y, m->cols, r0, r1); break;
      case LEV_ENC_Q8:
        if (in->quantized)
          lev_matvec_q8_i8 (m->data, m->scales, c->xq + t * c->qstride, c->xscale[t], y, m->cols, r0, r1);
        else
          lev_matvec_q8_f32 (m->data, m->scales, in->x + t * in->ldx, y, m->cols, r0, r1);
        break;
      default: break;
    }
  }
  if (m->sp_rowptr || m->lora_rank)
    linear_extras (j, p, r0, r1);
}

/* y[k] = W[k] x for the n_parts matrices W[k] (at most three) and every token of the input (y[k]'s rows ldy[k]
 * floats apart): one pass of the thread pool over all their rows, in chunks of about a (2 * threads)th of them, so
 * that each thread claims a few large chunks (every claim is a cache line that travels between cores). Packed
 * matrices multiply int8 activations: a float input is quantized per token (absmax) once for all of them. A matrix
 * with a low-rank adapter gets a pass of its own (its B x lives in the one c->lora_u). */
static void
linear_multi (LevContext *c, uint32_t n_parts, const LevMatrix *const *m, const LinearInput *in, float *const *y,
              const size_t *ldy)
{
  for (uint32_t k = 0; k < n_parts; k++)
    if (m[k]->lora_rank && n_parts > 1) {
      for (uint32_t i = 0; i < n_parts; i++)
        linear_multi (c, 1, &m[i], in, &y[i], &ldy[i]);
      return;
    }
  uint32_t nth = lev_threadpool_size (c->pool), rows = 0;
  gboolean packed = FALSE, float_in_quantized = FALSE;
  for (uint32_t k = 0; k < n_parts; k++) {
    rows += m[k]->rows;
    packed |= lev_qenc_is_packed (m[k]->encoding);
    float_in_quantized |= !lev_qenc_is_packed (m[k]->encoding) && in->quantized && m[k]->encoding != LEV_ENC_Q8;
  }
  LinearJob job = { c, in, { 0 }, (rows + 2 * nth * 16 - 1) / (2 * nth * 16) * 16, n_parts, { { 0 } } };
  uint32_t chunks = 0;
  for (uint32_t k = 0; k < n_parts; k++) {
    job.part[k] = (LinearPart) { m[k], y[k], ldy[k], chunks };
    chunks += (m[k]->rows + job.chunk_rows - 1) / job.chunk_rows;
  }
  if (packed) {
    if (!in->quantized && !c->float_reference) {
      for (uint32_t t = 0; t < in->n; t++)
        c->xscale[t] = c->kern->quantize_absmax (in->x + t * in->ldx, in->cols, c->xq + t * c->qstride, 0);
      finish_quantized (c, in->n, in->cols);
    }
    if (in->quantized || !c->float_reference)
      job.act = (LevQAct) { in->n, c->qstride, c->xq, c->xq2, c->xsum, c->xscale, c->xcsum };
  }
  if (float_in_quantized) {   /* a float matrix with quantized activations: use the dequantized values */
    for (uint32_t t = 0; t < in->n; t++)
      for (uint32_t i = 0; i < in->cols; i++)
        c->xdq[(size_t) t * c->wide + i] = (float) c->xq[t * c->qstride + i] * c->xscale[t];
  }
  if (m[0]->lora_rank) {      /* u = B x per token (rank values): small, done before the rows are split */
    for (uint32_t t = 0; t < in->n; t++)
      lev_matvec_q8_f32 (m[0]->lora_b, m[0]->lora_b_scales, in->x + t * in->ldx,
                         c->lora_u + (size_t) t * c->lora_rank, m[0]->cols, 0, m[0]->lora_rank);
  }
  lev_threadpool_run_chunks (c->pool, linear_worker, &job, chunks);
}

/* y = W x for every token of the input (y rows ldy floats apart), rows split over the thread pool. */
static void
linear (LevContext *c, const LevMatrix *m, const LinearInput *in, float *y, size_t ldy)
{
  linear_multi (c, 1, &m, in, &y, &ldy);
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

/* The most query heads one attention job handles: the heads of a GQA group share each key and value row. */
#define LEV_ATTN_RUN 8u

typedef struct {
  LevContext *c;              /* the scratch (queries, outputs, attention weights) */
  uint32_t layer;
  uint32_t n;                 /* rows of the block: row i of context c->row_ctx[i] at text position c->row_pos[i] */
  uint32_t run;               /* query heads per job (at most LEV_ATTN_RUN, within one kv head's group) */
  uint32_t runs;              /* jobs per kv head and token */
} AttnJob;

/* Returns the cache slot of text position pos. */
static uint32_t
slot_of (const LevContext *c, uint64_t pos)
{
  if (pos < c->n_ctx)
    return (uint32_t) pos;
  return c->n_sink + (uint32_t) ((pos - c->n_sink) % (c->n_ctx - c->n_sink));
}

/* Attention of one token for a run of query heads that share a kv head (GQA): each key and value row is read once
 * for all of them (the kernels' dot_heads / axpy_heads, bit-identical to one head at a time); `slot` picks the
 * thread's scratch (attention weights and sink queries). */
static void
attention_worker (void *arg, uint32_t job, uint32_t slot)
{
  AttnJob *j = arg;
  LevContext *c = j->c;
  const LevHParams *hp = &c->model->hp;
  uint32_t hd = hp->head_dim, kv_dim = hp->n_kv_heads * hd, q_dim = hp->n_heads * hd;
  uint32_t group = hp->n_heads / hp->n_kv_heads;
  float scale = sqrtf ((float) hd);
  uint32_t per_token = hp->n_kv_heads * j->runs;
  uint32_t i = job / per_token, kvh = job % per_token / j->runs;
  uint32_t h0 = kvh * group + job % j->runs * j->run, nh = MIN (j->run, kvh * group + group - h0);
  const LevContext *rc = c->row_ctx[i];                               /* the row's cache */
  size_t layer_slot0 = (size_t) j->layer * rc->n_ctx;
  float *att = c->att + (size_t) slot * c->att_stride;                /* [nh][rc->n_ctx] */
  float *q_sink = att + (size_t) LEV_ATTN_RUN * rc->n_ctx;             /* [nh][hd] */
  uint64_t pos = c->row_pos[i];
  gboolean wrapped = pos >= rc->n_ctx;
  uint32_t n_slots = wrapped ? rc->n_ctx : (uint32_t) pos + 1;
  const float *q = c->q + (size_t) i * q_dim + (size_t) h0 * hd;     /* rotated at the text position */
  if (wrapped) {
    /* sinks sit at the start of the cache: the query is placed at the end of the cache for them, so that
     * query-key distances stay within the trained context (StreamingLLM) */
    for (uint32_t g = 0; g < nh; g++) {
      memcpy (q_sink + (size_t) g * hd, c->xb2 + (size_t) i * c->wide + (size_t) (h0 + g) * hd, hd * sizeof (float));
      rope_apply (q_sink + (size_t) g * hd, hd, hp->rope_style, rc->sink_cos, rc->sink_sin);
    }
  }
  float d[LEV_ATTN_RUN];
  for (uint32_t s = 0; s < n_slots; s++) {
    size_t at = ((layer_slot0 + s) * kv_dim + (size_t) kvh * hd) * rc->kv_elem;
    c->kern->dot_heads (rc->kv_type, wrapped && s < rc->n_sink ? q_sink : q, hd, nh, rc->key_cache + at, hd, d);
    /* int8 rows: their scale (1 otherwise: multiplying by 1 is exact) */
    float ks = rc->kv_type == LEV_KV_Q8 ? rc->key_scale[(layer_slot0 + s) * hp->n_kv_heads + kvh] : 1.0f;
    for (uint32_t g = 0; g < nh; g++)
      att[(size_t) g * rc->n_ctx + s] = d[g] * ks;
  }
  /* scores / sqrt(head_dim), their maximum (NaN skipped), exponentials, normalized */
  for (uint32_t g = 0; g < nh; g++)
    c->kern->softmax (att + (size_t) g * rc->n_ctx, n_slots, scale);
  /* out[g] = sum over slots of weight * value row (int8 rows: weight * row scale), slot by slot */
  float *out = c->xb + (size_t) i * c->wide + (size_t) h0 * hd;       /* nh head outputs, hd apart */
  memset (out, 0, (size_t) nh * hd * sizeof (float));
  c->kern->attend_values (rc->kv_type, att, rc->n_ctx, nh,
                          rc->value_cache + (layer_slot0 * kv_dim + (size_t) kvh * hd) * rc->kv_elem,
                          kv_dim * rc->kv_elem,
                          rc->kv_type == LEV_KV_Q8 ? rc->value_scale + layer_slot0 * hp->n_kv_heads + kvh : NULL,
                          hp->n_kv_heads, n_slots, out, hd, hd);
}

/* SwiGLU over the pool: act(gate) * up of c->hb / c->hb2, chunk k the values [k * per, (k + 1) * per). */
typedef struct {
  const LevContext *c;
  size_t n, per;
} SiluJob;

/* One chunk of a SiluJob (the kernel is elementwise and bit-identical whatever the split). */
static void
silu_worker (void *arg, uint32_t chunk, uint32_t slot)
{
  const SiluJob *j = arg;
  size_t a = (size_t) chunk * j->per, b = MIN (a + j->per, j->n);
  (void) slot;
  if (a < b)
    j->c->kern->silu_mul (j->c->hb + a, j->c->hb2 + a, b - a);
}

/* Stores the n new keys and values of the block (rows of c->kbuf / c->vbuf) into each row's cache at the slot of its
 * position, in that cache's type (an f32 cache: copied as they are). */
static void
store_kv (LevContext *c, uint32_t layer, uint32_t n)
{
  const LevHParams *hp = &c->model->hp;
  uint32_t hd = hp->head_dim, kv_dim = hp->n_kv_heads * hd;
  for (uint32_t i = 0; i < n; i++) {
    LevContext *rc = c->row_ctx[i];
    size_t row = (size_t) layer * rc->n_ctx + slot_of (rc, c->row_pos[i]);
    for (int which = 0; which < 2; which++) {
      const float *src = (which ? c->vbuf : c->kbuf) + (size_t) i * kv_dim;
      uint8_t *dst = (which ? rc->value_cache : rc->key_cache) + row * kv_dim * rc->kv_elem;
      if (rc->kv_type == LEV_KV_F32) {
        memcpy (dst, src, kv_dim * sizeof (float));
        continue;
      }
      if (rc->kv_type == LEV_KV_F16) {
        for (uint32_t k = 0; k < kv_dim; k++)
          ((uint16_t *) dst)[k] = lev_f32_to_f16 (src[k]);
        continue;
      }
      float *scales = (which ? rc->value_scale : rc->key_scale) + row * hp->n_kv_heads;
      for (uint32_t h = 0; h < hp->n_kv_heads; h++) {
        const float *v = src + (size_t) h * hd;
        float amax = 0.0f;
        for (uint32_t k = 0; k < hd; k++)
          amax = fmaxf (amax, fabsf (v[k]));
        float sc = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        scales[h] = sc;
        for (uint32_t k = 0; k < hd; k++)
          ((int8_t *) dst)[(size_t) h * hd + k] = (int8_t) lrintf (v[k] * inv);
      }
    }
  }
}

/* ---------------------------------------------------------------- the forward pass */

/* The input of a block's attention or feed-forward part: each of the n rows of x (dim values) into xb (row stride
 * ld), RMS-normalized with weight w, or copied where the model's BitLinear layers normalize their own inputs. */
static void
sublayer_input (const LevHParams *hp, const float *w, const float *x, float *xb, size_t ld, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++) {
    if (hp->flags & LEV_HP_BITLINEAR_NORM)
      memcpy (xb + (size_t) i * ld, x + (size_t) i * hp->dim, hp->dim * sizeof (float));
    else
      rmsnorm (xb + (size_t) i * ld, x + (size_t) i * hp->dim, w, hp->dim, hp->norm_eps);
  }
}

/* The residual connection: each of the n rows of x (dim values) plus the same row of y (row stride ld). */
static void
residual_add (float *x, const float *y, size_t ld, uint32_t n, uint32_t dim)
{
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t k = 0; k < dim; k++)
      x[(size_t) i * dim + k] += y[(size_t) i * ld + k];
}

/* Runs the decoder over the n rows of the block, tokens[i] at row i of context c->row_ctx[i] and text position
 * c->row_pos[i], with c's scratch and threads, and leaves the logits of each context's last row in that context's
 * logits. The rows of one context are consecutive, at consecutive positions, and more than one must not wrap its
 * cache (their slots are pos .. pos + k - 1). Every row below is one token; the linear layers take the whole block
 * at once, whichever contexts its rows belong to; attention reads each row's own cache. */
static void
forward_rows (LevContext *c, const int32_t *tokens, uint32_t n)
{
  const LevModel *m = c->model;
  const LevHParams *hp = &m->hp;
  uint32_t dim = hp->dim, hd = hp->head_dim, ffn = hp->ffn_dim, W = c->wide, half = hd / 2;
  uint32_t q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
  LevContext *c0 = c->row_ctx[0];
  gboolean one = TRUE;        /* all rows are one context's */
  for (uint32_t i = 1; i < n; i++)
    one = one && c->row_ctx[i] == c0;
  /* new keys and values: straight into one context's f32 cache, else through kbuf / vbuf */
  gboolean direct = one && c0->kv_type == LEV_KV_F32;
  uint32_t slot = slot_of (c0, c->row_pos[0]);
  float *x = c->x;
  gboolean prof = lev_prof_enabled ();
  int64_t tp = prof ? lev_prof_now () : 0;
#define PROF(part) do { if (prof) lev_prof_add (n, part, &tp); } while (0)

  for (uint32_t i = 0; i < n; i++) {
    LevContext *rc = c->row_ctx[i];
    lev_model_embedding (m, (uint32_t) tokens[i], x + (size_t) i * dim, c->embd_scratch);
    rope_table (c, c->row_pos[i], c->rope_cos + i * half, c->rope_sin + i * half);
    if (c->row_pos[i] >= rc->n_ctx)
      rope_table (c, rc->n_ctx - 1, rc->sink_cos, rc->sink_sin);
  }
  PROF (LEV_PROF_EMBED);

  for (uint32_t l = 0; l < hp->n_layers; l++) {
    const LevLayer *L = &m->layers[l];
    float *kc = direct ? (float *) c0->key_cache + ((size_t) l * c0->n_ctx + slot) * kv_dim : c->kbuf;
    float *vc = direct ? (float *) c0->value_cache + ((size_t) l * c0->n_ctx + slot) * kv_dim : c->vbuf;

    /* attention: norm, q/k/v projections, biases, RoPE */
    sublayer_input (hp, L->attn_norm, x, c->xb, W, n);
    rotate_input (c, l, LEV_LINEAR_INPUT_QKV, c->xb, W, n, dim);
    if (c->observer)
      c->observer (c->observer_data, l, LEV_LINEAR_INPUT_QKV, c->xb, W, n, dim);
    PROF (LEV_PROF_NORM);
    LinearInput in = linear_input (c, c->xb, W, n, dim);
    PROF (LEV_PROF_QUANT);
    {
      const LevMatrix *qkv[3] = { &L->wq, &L->wk, &L->wv };
      float *const ys[3] = { c->q, kc, vc };
      const size_t lds[3] = { q_dim, kv_dim, kv_dim };
      linear_multi (c, 3, qkv, &in, ys, lds);
    }
    PROF (LEV_PROF_QKV);
    for (uint32_t i = 0; i < n; i++) {
      float *qi = c->q + (size_t) i * q_dim, *ki = kc + (size_t) i * kv_dim, *vi = vc + (size_t) i * kv_dim;
      if (L->bq) {
        for (uint32_t k = 0; k < q_dim; k++)
          qi[k] += L->bq[k];
        for (uint32_t k = 0; k < kv_dim; k++) {
          ki[k] += L->bk[k];
          vi[k] += L->bv[k];
        }
      }
      memcpy (c->xb2 + (size_t) i * W, qi, q_dim * sizeof (float));   /* unrotated queries, for the sinks */
      for (uint32_t h = 0; h < hp->n_heads; h++)
        rope_apply (qi + (size_t) h * hd, hd, hp->rope_style, c->rope_cos + i * half, c->rope_sin + i * half);
      for (uint32_t h = 0; h < hp->n_kv_heads; h++)
        rope_apply (ki + (size_t) h * hd, hd, hp->rope_style, c->rope_cos + i * half, c->rope_sin + i * half);
    }

    if (!direct)
      store_kv (c, l, n);
    PROF (LEV_PROF_ROPE);

    /* multi-head attention over the cache (GQA: heads share kv heads in groups) */
    AttnJob aj = { c, l, n, 0, 0 };
    {
      /* runs of up to LEV_ATTN_RUN heads of one group, halved while that leaves fewer than two jobs a thread */
      uint32_t group = hp->n_heads / hp->n_kv_heads, nth = lev_threadpool_size (c->pool);
      aj.run = MIN (group, LEV_ATTN_RUN);
      while (aj.run > 1 && n * hp->n_kv_heads * ((group + aj.run - 1) / aj.run) < 2 * nth)
        aj.run = (aj.run + 1) / 2;
      aj.runs = (group + aj.run - 1) / aj.run;
    }
    lev_threadpool_run_chunks (c->pool, attention_worker, &aj, n * hp->n_kv_heads * aj.runs);
    PROF (LEV_PROF_ATTN);

    /* output projection (BitNet: sub-norm first) and residual */
    if (L->attn_sub_norm)
      for (uint32_t i = 0; i < n; i++)
        rmsnorm (c->xb + (size_t) i * W, c->xb + (size_t) i * W, L->attn_sub_norm, q_dim, hp->norm_eps);
    rotate_input (c, l, LEV_LINEAR_INPUT_ATTN_OUT, c->xb, W, n, q_dim);
    if (c->observer)
      c->observer (c->observer_data, l, LEV_LINEAR_INPUT_ATTN_OUT, c->xb, W, n, q_dim);
    PROF (LEV_PROF_NORM);
    in = linear_input (c, c->xb, W, n, q_dim);
    PROF (LEV_PROF_QUANT);
    linear (c, &L->wo, &in, c->xb2, W);
    PROF (LEV_PROF_WO);
    residual_add (x, c->xb2, W, n, dim);

    /* feed-forward: act(gate) * up, (sub-norm), down, residual */
    sublayer_input (hp, L->ffn_norm, x, c->xb, W, n);
    rotate_input (c, l, LEV_LINEAR_INPUT_GATE_UP, c->xb, W, n, dim);
    if (c->observer)
      c->observer (c->observer_data, l, LEV_LINEAR_INPUT_GATE_UP, c->xb, W, n, dim);
    PROF (LEV_PROF_NORM);
    in = linear_input (c, c->xb, W, n, dim);
    PROF (LEV_PROF_QUANT);
    {
      const LevMatrix *gate_up[2] = { &L->w_gate, &L->w_up };
      float *const ys[2] = { c->hb, c->hb2 };
      const size_t lds[2] = { ffn, ffn };
      linear_multi (c, 2, gate_up, &in, ys, lds);
    }
    PROF (LEV_PROF_GATE_UP);
    if (hp->activation != LEV_ACT_RELU2 && hp->activation != LEV_ACT_GELU) {
      /* g / (1 + exp(-g)) * up: an exponential a value, split over the threads (1.8 of the 35 ms of an 8-row
       * TinyLlama step when single-threaded), in pieces of whole 64-value lines */
      uint32_t nth = lev_threadpool_size (c->pool);
      size_t total = (size_t) n * ffn;
      SiluJob sj = { c, total, (total + 64 * nth - 1) / (64 * nth) * 64 };
      lev_threadpool_run_chunks (c->pool, silu_worker, &sj, nth);
    } else
      for (size_t k = 0; k < (size_t) n * ffn; k++) {
        float g = c->hb[k];
        if (hp->activation == LEV_ACT_RELU2)
          g = g > 0.0f ? g * g : 0.0f;
        else
          g = 0.5f * g * (1.0f + tanhf (0.7978845608f * (g + 0.044715f * g * g * g)));
        c->hb[k] = g * c->hb2[k];
      }
    if (L->ffn_sub_norm)
      for (uint32_t i = 0; i < n; i++)
        rmsnorm (c->hb + (size_t) i * ffn, c->hb + (size_t) i * ffn, L->ffn_sub_norm, ffn, hp->norm_eps);
    rotate_input (c, l, LEV_LINEAR_INPUT_DOWN, c->hb, ffn, n, ffn);
    if (c->observer)
      c->observer (c->observer_data, l, LEV_LINEAR_INPUT_DOWN, c->hb, ffn, n, ffn);
    PROF (LEV_PROF_ACT);
    in = linear_input (c, c->hb, ffn, n, ffn);
    PROF (LEV_PROF_QUANT);
    linear (c, &L->w_down, &in, c->xb, W);
    PROF (LEV_PROF_DOWN);
    residual_add (x, c->xb, W, n, dim);
    PROF (LEV_PROF_NORM);
  }

  /* logits of each context's last row: one row as before, several as one product into batch_logits */
  uint32_t last[LEV_MAX_BATCH], n_out = 0;
  for (uint32_t i = 0; i < n; i++)
    if (i + 1 == n || c->row_ctx[i + 1] != c->row_ctx[i])
      last[n_out++] = i;
  if (n_out == 1) {
    float *row = x + (size_t) (n - 1) * dim;
    rmsnorm (row, row, m->output_norm, dim, hp->norm_eps);
    LinearInput out_in = { 1, dim, row, dim, FALSE };
    linear (c, &m->output, &out_in, c->row_ctx[n - 1]->logits, hp->vocab_size);
    PROF (LEV_PROF_LOGITS);
    if (prof)
      lev_prof_step (n);
    return;
  }
  for (uint32_t k = 0; k < n_out; k++)
    rmsnorm (c->xb + (size_t) k * W, x + (size_t) last[k] * dim, m->output_norm, dim, hp->norm_eps);
  LinearInput out_in = { n_out, dim, c->xb, W, FALSE };
  linear (c, &m->output, &out_in, c->batch_logits, hp->vocab_size);
  for (uint32_t k = 0; k < n_out; k++)
    memcpy (c->row_ctx[last[k]]->logits, c->batch_logits + (size_t) k * hp->vocab_size,
            hp->vocab_size * sizeof (float));
  PROF (LEV_PROF_LOGITS);
  if (prof)
    lev_prof_step (n);
#undef PROF
}

/* Runs the decoder over n tokens of c at text positions pos .. pos + n - 1 and leaves the logits of the last one in
 * c->logits (forward_rows with every row c's). */
static void
forward (LevContext *c, const int32_t *tokens, uint32_t n)
{
  for (uint32_t i = 0; i < n; i++) {
    c->row_ctx[i] = c;
    c->row_pos[i] = c->pos + i;
  }
  forward_rows (c, tokens, n);
}

/* Returns how many of n tokens c evaluates in one block from its position: a whole block, or one token near or past
 * the end of the cache (a ring buffer: a block must not wrap). */
static uint32_t
block_tokens (const LevContext *c, uint32_t n)
{
  uint32_t k = MIN (n, LEV_MAX_BATCH);
  return c->pos + k > c->n_ctx ? 1 : k;
}

void
lev_forward_rows (LevContext *lead, LevContext *const *ctxs, const int32_t *tokens, uint32_t n)
{
  g_assert (n >= 1 && n <= LEV_MAX_BATCH);
  for (uint32_t i = 0; i < n; i++) {
    lead->row_ctx[i] = ctxs[i];
    lead->row_pos[i] = i > 0 && ctxs[i - 1] == ctxs[i] ? lead->row_pos[i - 1] + 1 : ctxs[i]->pos;
  }
  forward_rows (lead, tokens, n);
  for (uint32_t i = 0; i < n; i++)
    ctxs[i]->pos++;
}

uint32_t
lev_context_block_tokens (const LevContext *c, uint32_t n)
{
  return block_tokens (c, n);
}

/* lev_context_check_logits: a scan of the step's logits (one pass over vocab floats): a NaN or infinity in them is an
 * error naming, when a
 * weight is the cause, that tensor and so its layer (a pass over the weights, done only once a bad value was seen),
 * instead of garbage sampled as token 0. The context's cache then holds the bad values too: reset it before reuse. */
gboolean
lev_context_check_logits (const LevContext *c, GError **error)
{
  uint32_t n = c->model->hp.vocab_size, i = 0;
  while (i < n && isfinite (c->logits[i]))
    i++;
  if (i == n)
    return TRUE;
  gchar *cause = lev_model_find_nonfinite_weight (c->model);
  g_set_error (error, LEV_ERROR, LEV_ERROR_NUMERIC, "the model produced a logit that is not a finite number (token "
               "id %u is %s) at position %" G_GUINT64_FORMAT ": %s", i, isnan (c->logits[i]) ? "NaN" : "infinite",
               (guint64) c->pos - 1,
               cause ? cause : "every weight is finite, so the activations overflow");
  g_free (cause);
  return FALSE;
}

const float *
lev_context_eval (LevContext *c, int32_t token, GError **error)
{
  return lev_context_eval_batch (c, &token, 1, error);
}

const float *
lev_context_eval_batch (LevContext *c, const int32_t *tokens, uint32_t n, GError **error)
{
  const LevHParams *hp = &c->model->hp;
  for (uint32_t i = 0; i < n; i++)
    if (tokens[i] < 0 || (uint32_t) tokens[i] >= hp->vocab_size) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "token id %d is outside the vocabulary (0..%u)", tokens[i],
                   hp->vocab_size - 1);
      return NULL;
    }
  if (n == 0) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "no tokens to evaluate");
    return NULL;
  }
  if (c->engine)              /* the engine's scheduler evaluates it, in steps shared with its other contexts */
    return lev_engine_eval (c->engine, c, tokens, n, error) ? c->logits : NULL;
  for (uint32_t done = 0; done < n;) {
    uint32_t k = block_tokens (c, n - done);
    forward (c, tokens + done, k);
    c->pos += k;
    done += k;
  }
  return lev_context_check_logits (c, error) ? c->logits : NULL;
}

void
lev_context_set_linear_observer (LevContext *c, LevLinearObserver fn, void *user)
{
  c->observer = fn;
  c->observer_data = user;
}

const char *
lev_kernels_name (void)
{
  return lev_qkernels_choice ();
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
  return lev_context_new_kv (model, params, LEV_KV_F32, error);
}

uint64_t
lev_context_kv_bytes_per_token (const LevContext *c)
{
  const LevHParams *hp = &c->model->hp;
  uint64_t per_layer = (uint64_t) hp->n_kv_heads * hp->head_dim * c->kv_elem * 2;
  if (c->kv_type == LEV_KV_Q8)
    per_layer += (uint64_t) hp->n_kv_heads * 2 * sizeof (float);
  return per_layer * hp->n_layers;
}

const char *
lev_kv_type_name (uint32_t kv_type)
{
  return kv_type == LEV_KV_F32 ? "f32" : kv_type == LEV_KV_F16 ? "f16" : kv_type == LEV_KV_Q8 ? "q8" : NULL;
}

gboolean
lev_kv_type_from_name (const char *name, LevKvType *out)
{
  for (uint32_t t = LEV_KV_F32; t <= LEV_KV_Q8; t++)
    if (name && strcmp (name, lev_kv_type_name (t)) == 0) {
      *out = (LevKvType) t;
      return TRUE;
    }
  return FALSE;
}

void
lev_context_memory_estimate (const LevModel *model, const LevContextParams *params, LevKvType kv_type,
                             LevMemoryEstimate *est)
{
  const LevHParams *hp = &model->hp;
  LevContextParams p = params ? *params : lev_context_default_params ();
  uint64_t n_ctx = p.n_ctx ? p.n_ctx : hp->max_ctx;
  uint64_t n_threads = MIN (p.n_threads ? p.n_threads : g_get_num_processors (), 64u);
  uint64_t kv_dim = (uint64_t) hp->n_kv_heads * hp->head_dim, q_dim = (uint64_t) hp->n_heads * hp->head_dim;
  uint64_t wide = MAX (MAX ((uint64_t) hp->dim, q_dim), hp->ffn_dim);
  uint64_t kv_elem = kv_type == LEV_KV_F16 ? 2 : kv_type == LEV_KV_Q8 ? 1 : 4;
  uint64_t B = LEV_MAX_BATCH, half = hp->head_dim / 2, qstride = (wide + LEV_QPAD - 1) / LEV_QPAD * LEV_QPAD;
  uint64_t lora = MAX (lev_model_max_lora_rank (model), 1u);
  est->weights = model->has_weights ? model->size : 0;
  est->kv_cache = 2 * hp->n_layers * n_ctx * kv_dim * kv_elem
                  + (kv_type == LEV_KV_Q8 ? 2 * hp->n_layers * n_ctx * hp->n_kv_heads * sizeof (float) : 0);
  /* the allocations of lev_context_new_kv after the caches, in its order */
  uint64_t floats = B * hp->dim + 3 * B * wide + B * q_dim + (kv_type != LEV_KV_F32 ? 2 * B * kv_dim : 0)
                    + 2 * B * hp->ffn_dim + n_threads * LEV_ATTN_RUN * (n_ctx + hp->head_dim) + hp->vocab_size
                    + B + 3 * half + 2 * B * half + B * lora;
  est->scratch = floats * sizeof (float) + hp->dim * 4 + 64 + 3 * B * qstride + B * sizeof (int32_t)
                 + B * (qstride / 32) * sizeof (int32_t) + sizeof (LevContext);
  est->total = est->weights + est->kv_cache + est->scratch;
}

/* Creates a context; with engine set it runs on the engine's threads and scratch (no threads, no attention scratch
 * of its own). */
static LevContext *
context_new (const LevModel *model, const LevContextParams *params, LevKvType kv_type, LevEngine *engine,
             GError **error)
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
  if (kv_type > LEV_KV_Q8) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "unknown KV cache type %u", kv_type);
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
  c->kern = lev_qkernels_get ();
  c->n_ctx = n_ctx;
  c->n_sink = p.n_sink;
  c->act_quant = p.act_quant == LEV_ACT_QUANT_AUTO ? (hp->flags & LEV_HP_ACT_QUANT) != 0
                                                  : p.act_quant == LEV_ACT_QUANT_ON;
  c->float_reference = p.act_quant == LEV_ACT_QUANT_OFF;
  c->packed_body = !c->float_reference;
  for (uint32_t l = 0; l < hp->n_layers; l++) {
    const LevLayer *L = &model->layers[l];
    const LevMatrix *ms[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
    for (guint i = 0; i < G_N_ELEMENTS (ms); i++)
      c->packed_body = c->packed_body && lev_qenc_is_packed (ms[i]->encoding);
  }
  c->kv_type = kv_type;
  c->kv_elem = kv_type == LEV_KV_F16 ? 2 : kv_type == LEV_KV_Q8 ? 1 : 4;
  c->cache_bytes = MAX (cache_floats * c->kv_elem, 1);
  c->key_cache = cache_alloc (c->cache_bytes);
  c->value_cache = cache_alloc (c->cache_bytes);
  if (kv_type == LEV_KV_Q8) {
    c->key_scale = g_new0 (float, (size_t) hp->n_layers * n_ctx * hp->n_kv_heads);
    c->value_scale = g_new0 (float, (size_t) hp->n_layers * n_ctx * hp->n_kv_heads);
  }
  if (!engine)
    c->pool = lev_threadpool_new (n_threads);
  if (!c->key_cache || !c->value_cache || (!engine && !c->pool)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "cannot allocate a context of %u tokens (%" G_GUINT64_FORMAT
                 " MiB of KV cache) or its threads", n_ctx, cache_floats * 8 >> 20);
    lev_context_free (c);
    return NULL;
  }
  size_t B = LEV_MAX_BATCH, half = hp->head_dim / 2;
  c->wide = wide;
  c->qstride = (wide + LEV_QPAD - 1) / LEV_QPAD * LEV_QPAD;
  c->logits = g_new0 (float, hp->vocab_size);
  c->sink_cos = g_new0 (float, half);
  c->sink_sin = g_new0 (float, half);
  c->lora_rank = lev_model_max_lora_rank (model);
  if (engine) {               /* the engine's scratch context evaluates it: no scratch of its own */
    c->engine = lev_engine_ref (engine);
    return c;
  }
  c->x = g_new0 (float, B * hp->dim);
  c->xb = g_new0 (float, B * wide);
  c->xb2 = g_new0 (float, B * wide);
  c->xdq = g_new0 (float, B * wide);
  c->q = g_new0 (float, B * q_dim);
  c->kbuf = g_new0 (float, B * kv_dim);   /* compact caches, and an engine's rows of several contexts */
  c->vbuf = g_new0 (float, B * kv_dim);
  c->row_ctx = g_new0 (LevContext *, B);
  c->row_pos = g_new0 (uint64_t, B);
  c->hb = g_new0 (float, B * hp->ffn_dim);
  c->hb2 = g_new0 (float, B * hp->ffn_dim);
  c->att_stride = (size_t) LEV_ATTN_RUN * (n_ctx + hp->head_dim);
  c->att = g_new0 (float, (size_t) lev_threadpool_size (c->pool) * c->att_stride);
  c->embd_scratch = g_new0 (uint8_t, (size_t) hp->dim * 4 + 64);
  /* cache-line aligned: the kernels load whole lines of activations (a 64-byte load across two lines costs two) */
  c->xq = g_aligned_alloc0 (B, c->qstride, 64);
  c->xq2 = g_aligned_alloc0 (2 * B, c->qstride, 64);
  c->xsum = g_new0 (int32_t, B);
  c->xcsum = g_new0 (int32_t, B * (c->qstride / 32));
  c->xscale = g_new0 (float, B);
  c->inv_freq = g_new0 (float, half);
  c->rope_cos = g_new0 (float, B * half);
  c->rope_sin = g_new0 (float, B * half);
  c->lora_u = g_new0 (float, B * MAX (c->lora_rank, 1u));
  init_rope (c);
  return c;
}

LevContext *
lev_context_new_kv (const LevModel *model, const LevContextParams *params, LevKvType kv_type, GError **error)
{
  return context_new (model, params, kv_type, NULL, error);
}

LevContext *
lev_context_new_on_engine (const LevModel *model, const LevContextParams *params, LevKvType kv_type,
                           LevEngine *engine, GError **error)
{
  return context_new (model, params, kv_type, engine, error);
}

void
lev_context_reserve_batch (LevContext *lead, uint32_t n_ctx)
{
  const LevHParams *hp = &lead->model->hp;
  size_t stride = (size_t) LEV_ATTN_RUN * (n_ctx + hp->head_dim);
  if (stride > lead->att_stride) {
    g_free (lead->att);
    lead->att_stride = stride;
    lead->att = g_new0 (float, (size_t) lev_threadpool_size (lead->pool) * stride);
  }
  if (!lead->batch_logits)
    lead->batch_logits = g_new0 (float, (size_t) LEV_MAX_BATCH * hp->vocab_size);
}

LevEngine *
lev_context_engine (const LevContext *c)
{
  return c->engine;
}

uint32_t
lev_context_n_threads (const LevContext *c)
{
  return c->pool ? lev_threadpool_size (c->pool) : 0;
}

const float *
lev_context_logits (const LevContext *c)
{
  return c->logits;
}

void
lev_context_free (LevContext *c)
{
  if (!c)
    return;
  if (c->pool)
    lev_threadpool_free (c->pool);
  cache_free (c->key_cache, c->cache_bytes);
  cache_free (c->value_cache, c->cache_bytes);
  g_free (c->key_scale);
  g_free (c->value_scale);
  g_free (c->kbuf);
  g_free (c->vbuf);
  g_free (c->x);
  g_free (c->xb);
  g_free (c->xb2);
  g_free (c->xdq);
  g_free (c->q);
  g_free (c->hb);
  g_free (c->hb2);
  g_free (c->att);
  g_free (c->logits);
  g_free (c->embd_scratch);
  g_aligned_free (c->xq);
  g_aligned_free (c->xq2);
  g_free (c->xsum);
  g_free (c->xcsum);
  g_free (c->xscale);
  g_free (c->inv_freq);
  g_free (c->rope_cos);
  g_free (c->rope_sin);
  g_free (c->sink_cos);
  g_free (c->sink_sin);
  g_free (c->lora_u);
  g_free (c->row_ctx);
  g_free (c->row_pos);
  g_free (c->batch_logits);
  if (c->engine) {
    lev_engine_forget_context (c->engine, c);
    lev_engine_unref (c->engine);
  }
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
