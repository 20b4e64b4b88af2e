/* lev_quantize.c: quantization of float matrices to t2/t1/b1 with error compensation: calibration Hessians from the
 * float model, GPTQ/OBQ error feedback, sparse f16 outliers and int8 low-rank adapters (docs/quality.md). */
#include "lev_quantize.h"
#include "lev_progress.h"
#include "lev_kernels.h"
#include "lev_qkernels.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

/* Calibration text used when --calib is not given: plain English prose written for this project (narrative,
 * dialogue, lists and numbers), so that every kind of token position is exercised a little. */
static const char builtin_calibration[] =
  "Once upon a time, in a small town by the sea, there lived a girl named Mia. Every morning she walked to the "
  "harbour with her grandfather to watch the boats come in. The fishermen waved, the gulls cried, and the air "
  "smelled of salt and rope.\n"
  "One day a storm came from the west. The sky turned grey and the waves grew tall. \"We must help them tie the "
  "boats,\" said her grandfather. Mia ran down the steps, took a heavy rope in both hands and pulled as hard as she "
  "could. When the last boat was safe, everyone cheered, and the baker gave her a warm loaf of bread.\n"
  "The next spring the town held a fair. There were three tents, twelve tables and more than one hundred people. "
  "Children played games, old friends told long stories, and a band played until the sun went down. Mia learned "
  "that a small act of courage can change a whole day, and that kindness is remembered.\n"
  "In the beginning the earth was quiet. Rivers ran to the sea, and the seasons turned: winter, spring, summer and "
  "autumn. People planted seed in the fields, gathered the harvest, and gave thanks for what they had. They built "
  "houses of stone and wood, and they wrote down their laws so that their children would know them.\n"
  "A teacher asked her class, \"What is the most important thing you learned this year?\" A boy said numbers: one, "
  "two, three, four, five. A girl said words, because words let you tell others what you think. Another said "
  "friends, because friends help you when the work is hard. The teacher smiled and wrote all three on the board.\n"
  "Then the king said unto his servants, Go ye into the city and call all who are there, the poor and the rich, "
  "and bring them to the feast; for the table is ready and the bread is broken. And they went, and did as he "
  "commanded them, and the house was filled with guests.\n";

const gchar *
lev_quant_builtin_calibration (void)
{
  return builtin_calibration;
}

LevQuantOptions
lev_quant_default_options (LevOutFormat format)
{
  LevQuantOptions o = { format, LEV_COMP_NONE, LEV_SCALE_ROW, LEV_FIT_ABSMEAN, 0.005, 1, 4, NULL, FALSE, 1, 4096,
                       256, FALSE, 0, FALSE };
  return o;
}

/* ---------------------------------------------------------------- calibration */

/* Input statistics of the layers [layer0, layer1): H = sum over tokens of x x^T for each of the four inputs. */
typedef struct {
  guint layer0, layer1;
  /* [(layer - layer0) * LEV_N_LINEAR_INPUTS + LevLinearInput], cols × cols, or NULL */
  double *H[LEV_N_LINEAR_INPUTS * LEV_MAX_LAYERS];
} Calib;

/* Observer: accumulates x x^T of each token row into the Hessian of (layer, which). */
static void
calib_observe (void *user, uint32_t layer, uint32_t which, const float *x, size_t ldx, uint32_t n, uint32_t cols)
{
  Calib *cb = user;
  if (layer < cb->layer0 || layer >= cb->layer1)
    return;
  double *H = cb->H[(layer - cb->layer0) * LEV_N_LINEAR_INPUTS + which];
  double *xd = g_new (double, cols);
  for (uint32_t t = 0; t < n; t++) {
    for (uint32_t i = 0; i < cols; i++)
      xd[i] = x[t * ldx + i];
    for (uint32_t i = 0; i < cols; i++) {
      double xi = xd[i];
      double *h = H + (size_t) i * cols;
      for (uint32_t j = 0; j <= i; j++)
        h[j] += xi * xd[j];
    }
  }
  g_free (xd);
}

/* A context of the float model for calibration: calib_ctx slots (at most the model's), the options' threads, float
 * activations; NULL with error set when it cannot be made. */
static LevContext *
calib_context_new (LevModel *fm, const LevQuantOptions *o, GError **error)
{
  LevContextParams p = lev_context_default_params ();
  p.n_ctx = MIN (o->calib_ctx, lev_model_hparams (fm)->max_ctx);
  p.n_threads = o->n_threads;
  p.act_quant = LEV_ACT_QUANT_OFF;
  GError *local = NULL;
  LevContext *ctx = lev_context_new (fm, &p, &local);
  if (!ctx) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "calibration: %s", local->message);
    g_error_free (local);
  }
  return ctx;
}

/* Runs the float model over the calibration tokens, collecting the Hessians of layers [cb->layer0, cb->layer1). */
static gboolean
calib_run (LevModel *fm, const int32_t *ids, size_t n_ids, const LevQuantOptions *o, Calib *cb, GError **error)
{
  const LevHParams *hp = lev_model_hparams (fm);
  guint q_dim = hp->n_heads * hp->head_dim;
  guint cols[LEV_N_LINEAR_INPUTS] = { [LEV_LINEAR_INPUT_QKV] = hp->dim, [LEV_LINEAR_INPUT_ATTN_OUT] = q_dim,
                                      [LEV_LINEAR_INPUT_GATE_UP] = hp->dim, [LEV_LINEAR_INPUT_DOWN] = hp->ffn_dim };
  for (guint l = cb->layer0; l < cb->layer1; l++)
    for (guint w = 0; w < LEV_N_LINEAR_INPUTS; w++)
      cb->H[(l - cb->layer0) * LEV_N_LINEAR_INPUTS + w] = g_try_new0 (double, (gsize) cols[w] * cols[w]);
  for (guint i = 0; i < (cb->layer1 - cb->layer0) * LEV_N_LINEAR_INPUTS; i++)
    if (!cb->H[i]) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "out of memory for the calibration statistics");
      return FALSE;
    }
  LevContext *ctx = calib_context_new (fm, o, error);
  if (!ctx)
    return FALSE;
  lev_context_set_linear_observer (ctx, calib_observe, cb);
  const LevTokenizer *tok = lev_model_tokenizer (fm);
  int32_t bos = lev_tokenizer_bos (tok);
  gboolean add_bos = lev_tokenizer_adds_bos (tok) && bos >= 0;
  size_t n_ctx = lev_context_n_ctx (ctx), win = n_ctx - (add_bos ? 1 : 0);
  GError *local = NULL;
  int32_t *buf = g_new (int32_t, n_ctx);
  gboolean ok = TRUE;
  for (size_t at = 0; ok && at < n_ids; at += win) {
    size_t k = MIN (win, n_ids - at), n = 0;
    if (add_bos)
      buf[n++] = bos;
    memcpy (buf + n, ids + at, k * sizeof (int32_t));
    n += k;
    lev_context_reset (ctx);
    ok = lev_context_eval_batch (ctx, buf, (uint32_t) n, &local) != NULL;
  }
  if (!ok) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "calibration: %s", local->message);
    g_error_free (local);
  }
  g_free (buf);
  lev_context_free (ctx);
  /* mirror the lower triangle */
  for (guint i = 0; ok && i < (cb->layer1 - cb->layer0) * LEV_N_LINEAR_INPUTS; i++) {
    guint c = cols[i % LEV_N_LINEAR_INPUTS];
    double *H = cb->H[i];
    for (guint r = 0; r < c; r++)
      for (guint s = r + 1; s < c; s++)
        H[(size_t) r * c + s] = H[(size_t) s * c + r];
  }
  return ok;
}

static void
calib_clear (Calib *cb)
{
  for (guint i = 0; i < G_N_ELEMENTS (cb->H); i++)
    g_clear_pointer (&cb->H[i], g_free);
}

/* ---------------------------------------------------------------- dense linear algebra (small, in double) */

/* In-place Cholesky factorization A = L L^T of an n × n symmetric positive definite matrix; the lower triangle
 * becomes L and the upper is zeroed. Returns FALSE when A is not positive definite. */
static gboolean
cholesky (double *A, guint n)
{
  for (guint j = 0; j < n; j++) {
    double *aj = A + (size_t) j * n;
    double d = aj[j];
    for (guint k = 0; k < j; k++)
      d -= aj[k] * aj[k];
    if (!(d > 0.0))
      return FALSE;
    d = sqrt (d);
    aj[j] = d;
    for (guint i = j + 1; i < n; i++) {
      double *ai = A + (size_t) i * n;
      double s = ai[j];
      for (guint k = 0; k < j; k++)
        s -= ai[k] * aj[k];
      ai[j] = s / d;
    }
    for (guint k = j + 1; k < n; k++)
      aj[k] = 0.0;
  }
  return TRUE;
}

/* Inverts a lower-triangular L in place. */
static void
invert_lower (double *L, guint n)
{
  for (guint j = 0; j < n; j++) {
    L[(size_t) j * n + j] = 1.0 / L[(size_t) j * n + j];
    for (guint i = j + 1; i < n; i++) {
      double s = 0.0;
      for (guint k = j; k < i; k++)
        s += L[(size_t) i * n + k] * L[(size_t) k * n + j];
      L[(size_t) i * n + j] = -s / L[(size_t) i * n + i];
    }
  }
}

/* The damped Hessian H + 1% of its mean diagonal (columns that never saw input get a unit diagonal). */
static double *
damped_hessian (const double *H, guint n)
{
  double *D = g_memdup2 (H, (gsize) n * n * sizeof (double));
  double mean = 0.0;
  for (guint i = 0; i < n; i++)
    mean += D[(size_t) i * n + i];
  mean /= n;
  if (!(mean > 0.0))
    mean = 1.0;
  for (guint i = 0; i < n; i++) {
    double *d = &D[(size_t) i * n + i];
    if (*d <= 0.0)
      *d = mean;
    *d += 0.01 * mean;
  }
  return D;
}

/* Returns U, upper triangular with U^T U = (H + damping)^-1 (GPTQ's factor: the transpose of the lower Cholesky
 * factor of the inverse), or NULL with error set when either factorization fails. */
static double *
inverse_upper_factor (const double *H, guint cols, const char *name, GError **error)
{
  double *D = damped_hessian (H, cols);
  if (!cholesky (D, cols)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: the input Hessian is not positive "
                 "definite", name);
    g_free (D);
    return NULL;
  }
  invert_lower (D, cols);                      /* L^-1 */
  double *Hinv = g_new0 (double, (gsize) cols * cols);   /* H^-1 = L^-T L^-1 */
  for (guint i = 0; i < cols; i++)
    for (guint j = 0; j <= i; j++) {
      double s = 0.0;
      for (guint k = i; k < cols; k++)
        s += D[(gsize) k * cols + i] * D[(gsize) k * cols + j];
      Hinv[(gsize) i * cols + j] = Hinv[(gsize) j * cols + i] = s;
    }
  g_free (D);
  if (!cholesky (Hinv, cols)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: the inverse Hessian is not positive "
                 "definite", name);
    g_free (Hinv);
    return NULL;
  }
  double *U = g_new0 (double, (gsize) cols * cols);
  for (guint i = 0; i < cols; i++)
    for (guint j = i; j < cols; j++)
      U[(gsize) i * cols + j] = Hinv[(gsize) j * cols + i];
  g_free (Hinv);
  return U;
}

/* ---------------------------------------------------------------- one matrix */

typedef struct {
  guint rows, cols;
  gboolean binary;       /* b1: values ±1; else ternary -1, 0, +1 */
  guint group;           /* weights per scale along a row with per-group scales (a block or 64), else 0 */
  guint groups;          /* scales per row with per-group scales (the groups cover the row padded to blocks) */
  int8_t *q;             /* [rows][cols] codes */
  float *scales;         /* [n_scales] */
  guint n_scales;
  GArray *sp_rowptr;     /* guint32 [rows + 1], or NULL */
  GArray *sp_entries;    /* guint32 (f16 << 16 | col) */
  guint rank;
  float *lora_a;         /* [rows][rank] */
  float *lora_b;         /* [rank][cols] */
} QMat;

static inline int8_t
quant_value (float w, float s, gboolean binary)
{
  if (binary)
    return w >= 0.0f ? 1 : -1;
  if (!(s > 0.0f))
    return 0;
  float v = rintf (w / s);
  return (int8_t) (v > 1.0f ? 1 : v < -1.0f ? -1 : v);
}

static int
cmp_float_desc (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* The scale of n weights: mean |w| (absmean; also the least-squares scale of sign codes), or for ternary least
 * squares the s = mean of the k largest |w| that maximizes (sum of those)^2 / k, i.e. minimizes |w - s q|^2. */
static float
fit_scale (const float *w, gsize n, gboolean binary, LevScaleFit fit)
{
  double asum = 0.0;
  for (gsize i = 0; i < n; i++)
    asum += fabsf (w[i]);
  if (binary || fit == LEV_FIT_ABSMEAN || n == 0)
    return (float) (asum / (double) MAX (n, 1u));
  float *a = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    a[i] = fabsf (w[i]);
  qsort (a, n, sizeof (float), cmp_float_desc);
  double prefix = 0.0, best = -1.0, best_s = 0.0;
  for (gsize k = 1; k <= n; k++) {
    prefix += a[k - 1];
    double gain = prefix * prefix / (double) k;
    if (gain > best) {
      best = gain;
      best_s = prefix / (double) k;
    }
  }
  g_free (a);
  return (float) best_s;
}

/* The Hessian whose diagonal orders the columns. */
typedef struct {
  const double *H;
  guint cols;
} DiagOrder;

/* Orders column indices by falling diagonal of the Hessian, ties by index. */
static gint
cmp_diag_desc (gconstpointer a, gconstpointer b, gpointer user)
{
  const DiagOrder *d = user;
  guint i = *(const guint *) a, j = *(const guint *) b;
  double hi = d->H[(gsize) i * d->cols + i], hj = d->H[(gsize) j * d->cols + j];
  return hi > hj ? -1 : hi < hj ? 1 : (i > j) - (i < j);
}

/* Permutes the columns of a rows × cols matrix of elem-byte values: column k takes column ord[k] (inverse: the
 * other way round). */
static void
permute_columns (void *M, guint rows, guint cols, gsize elem, const guint *ord, gboolean inverse)
{
  guint8 *tmp = g_malloc (cols * elem);
  for (guint r = 0; r < rows; r++) {
    guint8 *w = (guint8 *) M + (gsize) r * cols * elem;
    for (guint k = 0; k < cols; k++) {
      if (inverse)
        memcpy (tmp + ord[k] * elem, w + k * elem, elem);
      else
        memcpy (tmp + k * elem, w + ord[k] * elem, elem);
    }
    memcpy (w, tmp, cols * elem);
  }
  g_free (tmp);
}

/* Rounds a value to f16 and back (what the file will hold). */
static inline float
f16_round (float v)
{
  return lev_f16_to_f32 (lev_f32_to_f16 (fminf (fmaxf (v, -65504.0f), 65504.0f)));
}

/* After error feedback the weights moved while the scales stayed: refits m's scales (gw weights per scale, ng a
 * row) to the codes they got, by least squares under the input statistics H. Within a row with groups g of codes
 * q_g (outside the outliers) the error (t - sum_g s_g q_g)^T H (t - sum_g s_g q_g), t = W0 minus the kept outliers
 * (whose values W stay what the sweep fixed), is least at G s = b with G_gh = q_g^T H q_h and b_g = q_g^T H t; one
 * group per row gives s = (q^T H t) / (q^T H q), one scale per tensor sums numerator and denominator over the
 * rows. A row whose system has no positive solution keeps its scales. */
static void
refit_scales (QMat *m, const double *H, const float *W0, const float *W, const guint8 *mask, guint gw, guint ng)
{
  guint rows = m->rows, cols = m->cols;
  double *hq = g_new (double, (gsize) cols * ng);    /* hq[i][g] = (H q_g)_i */
  double *G = g_new (double, (gsize) ng * ng), *b = g_new (double, ng), *sol = g_new (double, ng);
  guint *act = g_new (guint, ng);
  double num_all = 0.0, den_all = 0.0;
  for (guint r = 0; r < rows; r++) {
    const int8_t *q = m->q + (gsize) r * cols;
    const guint8 *mk = mask ? mask + (gsize) r * cols : NULL;
#define QCODE(j) (mk && mk[j] ? 0 : q[j])
    for (guint i = 0; i < cols; i++) {
      const double *h = H + (gsize) i * cols;
      for (guint g = 0; g < ng; g++) {
        double acc = 0.0;
        for (guint j = g * gw; j < MIN (cols, (g + 1) * gw); j++)
          if (QCODE (j))
            acc += h[j] * QCODE (j);
        hq[(gsize) i * ng + g] = acc;
      }
    }
    memset (G, 0, (gsize) ng * ng * sizeof (double));
    memset (b, 0, ng * sizeof (double));
    for (guint i = 0; i < cols; i++) {
      gsize at = (gsize) r * cols + i;
      double t = W0[at] - (mk && mk[i] ? W[at] : 0.0);
      const double *hi = hq + (gsize) i * ng;
      for (guint g = 0; g < ng; g++) {
        b[g] += hi[g] * t;
        if (QCODE (i))
          G[(gsize) (i / gw) * ng + g] += QCODE (i) * hi[g];
      }
    }
#undef QCODE
    if (m->n_scales == 1) {
      num_all += b[0];
      den_all += G[0];
      continue;
    }
    /* solve over the groups that have codes (the others keep their scale, which multiplies nothing) */
    guint na = 0;
    for (guint g = 0; g < ng; g++)
      if (G[(gsize) g * ng + g] > 0.0)
        act[na++] = g;
    if (na == 0)
      continue;
    double *A = g_new (double, (gsize) na * na);
    for (guint x = 0; x < na; x++)
      for (guint y = 0; y < na; y++)
        A[(gsize) x * na + y] = G[(gsize) act[x] * ng + act[y]];
    gboolean good = cholesky (A, na);
    if (good) {                              /* L L^T s = b */
      for (guint x = 0; x < na; x++) {
        double v = b[act[x]];
        for (guint y = 0; y < x; y++)
          v -= A[(gsize) x * na + y] * sol[y];
        sol[x] = v / A[(gsize) x * na + x];
      }
      for (guint x = na; x-- > 0;) {
        double v = sol[x];
        for (guint y = x + 1; y < na; y++)
          v -= A[(gsize) y * na + x] * sol[y];
        sol[x] = v / A[(gsize) x * na + x];
        good = good && isfinite (sol[x]) && sol[x] > 0.0;
      }
    }
    if (good)                                /* else the row keeps its scales */
      for (guint x = 0; x < na; x++)
        m->scales[(gsize) r * ng + act[x]] = (float) sol[x];
    g_free (A);
  }
  if (m->n_scales == 1 && den_all > 0.0 && num_all > 0.0)
    m->scales[0] = (float) (num_all / den_all);
  g_free (hq);
  g_free (G);
  g_free (b);
  g_free (sol);
  g_free (act);
}

/* The scale of row r, column c (in the file's column order) of m, with gw weights per scale and ng scales a row. */
static inline float
qmat_scale (const QMat *m, guint ng, guint gw, guint r, guint c)
{
  return m->scales[m->n_scales == 1 ? 0 : (gsize) r * ng + c / gw];
}

/* Fits m's scales to the original weights W: gw weights per scale along a row, ng scales per row (groups cover the
 * row padded to whole blocks; a group that holds only padding keeps scale 0, which multiplies only zeros). */
static void
fit_initial_scales (const float *W, const LevQuantOptions *o, QMat *m, guint *gw_out, guint *ng_out)
{
  guint rows = m->rows, cols = m->cols;
  gsize n = (gsize) rows * cols;
  gboolean binary = m->binary;
  guint gw = m->group ? m->group : cols, ng = m->group ? m->groups : 1;
  m->n_scales = o->scale_mode == LEV_SCALE_TENSOR ? 1 : rows * ng;
  m->scales = g_new (float, m->n_scales);
  if (m->n_scales == 1)
    m->scales[0] = fit_scale (W, n, binary, o->fit);
  else
    for (guint r = 0; r < rows; r++)
      for (guint g = 0; g < ng; g++)
        m->scales[(gsize) r * ng + g] = g * gw < cols ? fit_scale (W + (gsize) r * cols + g * gw,
                                                                   MIN (gw, cols - g * gw), binary, o->fit) : 0.0f;
  *gw_out = gw;
  *ng_out = ng;
}

/* Returns the outlier mask (n bytes, 1 = kept in f16): the share of weights with the largest rounding error times
 * input energy (diag H). */
static guint8 *
pick_outliers (const float *W, const double *H, const LevQuantOptions *o, const QMat *m, guint gw, guint ng)
{
  guint rows = m->rows, cols = m->cols;
  gsize n = (gsize) rows * cols;
  gboolean binary = m->binary;
  gsize k = (gsize) llround (o->outlier_share * (double) n);
  guint8 *mask = g_new0 (guint8, n);
  if (k > 0) {
    float *score = g_new (float, n), *sorted;
    for (guint r = 0; r < rows; r++)
      for (guint c = 0; c < cols; c++) {
        float w = W[(gsize) r * cols + c], s = qmat_scale (m, ng, gw, r, c), e = w - s * quant_value (w, s, binary);
        score[(gsize) r * cols + c] = e * e * (float) (H ? H[(gsize) c * cols + c] : 1.0);
      }
    sorted = g_memdup2 (score, n * sizeof (float));
    qsort (sorted, n, sizeof (float), cmp_float_desc);
    float thr = sorted[MIN (k, n) - 1];
    gsize taken = 0;
    for (gsize i = 0; i < n && taken < k; i++)
      if (score[i] > thr)
        mask[i] = 1, taken++;
    for (gsize i = 0; i < n && taken < k; i++)
      if (score[i] == thr && !mask[i])
        mask[i] = 1, taken++;
    g_free (sorted);
    g_free (score);
  }
  return mask;
}

/* Rounds W (modified) into m->q column by column with m's scales; outliers (mask) keep their f16 difference; with
 * error feedback (H and o->compensate), each column's error moves onto the columns not yet rounded, and the scales
 * are refitted against the original weights W0 at the end. FALSE with error set when H cannot be factored. */
static gboolean
round_columns (float *W, const float *W0, const double *H, const LevQuantOptions *o, QMat *m, guint8 *mask, guint gw,
               guint ng, const char *name, GError **error)
{
  guint rows = m->rows, cols = m->cols;
  gsize n = (gsize) rows * cols;
  gboolean binary = m->binary;
  gboolean want_outliers = mask != NULL;
  /* error feedback: U = upper Cholesky factor of H^-1; after column j is rounded, its error (scaled by 1 / U_jj)
   * moves onto the columns not yet rounded along row j of U (GPTQ) */
  double *U = NULL;
  guint *ord = NULL;
  if (H && o->compensate >= LEV_COMP_EF) {
    /* columns in order of falling input energy (GPTQ's act-order): the most important are rounded first, while
     * the most columns are left to take their error; W and the mask are permuted now and restored after */
    ord = g_new (guint, cols);
    for (guint c = 0; c < cols; c++)
      ord[c] = c;
    DiagOrder dord = { H, cols };
    g_qsort_with_data (ord, (gint) cols, sizeof (guint), cmp_diag_desc, &dord);
    double *Hp = g_new (double, (gsize) cols * cols);
    for (guint i = 0; i < cols; i++)
      for (guint j = 0; j < cols; j++)
        Hp[(gsize) i * cols + j] = H[(gsize) ord[i] * cols + ord[j]];
    permute_columns (W, rows, cols, sizeof (float), ord, FALSE);
    if (mask)
      permute_columns (mask, rows, cols, 1, ord, FALSE);
    U = inverse_upper_factor (Hp, cols, name, error);
    g_free (Hp);
    if (!U) {
      g_free (ord);
      return FALSE;
    }
  }

  m->q = g_new (int8_t, n);
  if (want_outliers) {
    m->sp_rowptr = g_array_sized_new (FALSE, FALSE, sizeof (guint32), rows + 1);
    m->sp_entries = g_array_new (FALSE, FALSE, sizeof (guint32));
  }
  float *err = g_new (float, rows);
  for (guint c = 0; c < cols; c++) {
    guint oc = ord ? ord[c] : c;               /* the column in the file's order, for its scale */
    for (guint r = 0; r < rows; r++) {
      float w = W[(gsize) r * cols + c], s = qmat_scale (m, ng, gw, r, oc);
      int8_t q = quant_value (w, s, binary);
      m->q[(gsize) r * cols + c] = q;
      float deq = s * q;
      if (mask && mask[(gsize) r * cols + c])
        deq += f16_round (w - deq);            /* kept: the outlier stores the difference */
      err[r] = w - deq;
    }
    if (!U)
      continue;
    double ujj = U[(gsize) c * cols + c];
    const double *urow = U + (gsize) c * cols;
    for (guint r = 0; r < rows; r++) {
      float e = (float) (err[r] / ujj);
      if (e == 0.0f)
        continue;
      float *wr = W + (gsize) r * cols;
      for (guint k = c + 1; k < cols; k++)
        wr[k] -= e * (float) urow[k];
    }
  }
  g_free (err);
  g_free (U);
  if (ord) {                                   /* back to the file's column order */
    permute_columns (W, rows, cols, sizeof (float), ord, TRUE);
    permute_columns (m->q, rows, cols, 1, ord, TRUE);
    if (mask)
      permute_columns (mask, rows, cols, 1, ord, TRUE);
    g_free (ord);
  }

  if (H && o->compensate >= LEV_COMP_EF)
    refit_scales (m, H, W0, W, mask, gw, ng);

  return TRUE;
}

/* Writes m's outlier entries (row order, columns ascending) and returns the dequantized matrix Wq (with them). */
static float *
store_outliers (const float *W, QMat *m, const guint8 *mask, guint gw, guint ng)
{
  guint rows = m->rows, cols = m->cols;
  gsize n = (gsize) rows * cols;
  gboolean want_outliers = mask != NULL;
  float *Wq = g_new (float, n);
  guint32 zero = 0;
  if (want_outliers)
    g_array_append_val (m->sp_rowptr, zero);
  for (guint r = 0; r < rows; r++) {
    for (guint c = 0; c < cols; c++) {
      gsize i = (gsize) r * cols + c;
      Wq[i] = qmat_scale (m, ng, gw, r, c) * m->q[i];
      if (mask && mask[i]) {         /* the kept weight is the value the sweep fixed: store its difference */
        uint16_t h = lev_f32_to_f16 (fminf (fmaxf (W[i] - Wq[i], -65504.0f), 65504.0f));
        guint32 e = ((guint32) h << 16) | c;
        g_array_append_val (m->sp_entries, e);
        Wq[i] += lev_f16_to_f32 (h);
      }
    }
    if (want_outliers) {
      guint32 end = m->sp_entries->len;
      g_array_append_val (m->sp_rowptr, end);
    }
  }

  return Wq;
}

/* Returns the calibration loss sum over rows of (w0 - wq)^T H (w0 - wq) that rounding W with m's scales and the
 * outlier mask gives (a trial on copies; m is left as it was; scales_out, if not NULL, receives the scales refitted
 * to the trial's codes), or a negative value with error set when H cannot be factored. */
static double
trial_loss (const float *W, const float *W0, const double *H, const LevQuantOptions *o, const QMat *m,
            guint8 *mask, guint gw, guint ng, float *scales_out, const char *name, GError **error)
{
  guint rows = m->rows, cols = m->cols;
  gsize n = (gsize) rows * cols;
  QMat trial = *m;
  trial.scales = g_memdup2 (m->scales, m->n_scales * sizeof (float));
  trial.q = NULL;
  float *Wt = g_memdup2 (W, n * sizeof (float));
  double loss = -1.0;
  if (round_columns (Wt, W0, H, o, &trial, mask, gw, ng, name, error)) {
    float *Wq = store_outliers (Wt, &trial, mask, gw, ng);
    double *d = g_new (double, cols);
    loss = 0.0;
    for (guint r = 0; r < rows; r++) {
      for (guint c = 0; c < cols; c++)
        d[c] = (double) W0[(gsize) r * cols + c] - Wq[(gsize) r * cols + c];
      for (guint a = 0; a < cols; a++) {
        double acc = 0.0;
        for (guint b = 0; b < cols; b++)
          acc += H[(gsize) a * cols + b] * d[b];
        loss += d[a] * acc;
      }
    }
    g_free (d);
    g_free (Wq);
    if (scales_out)
      memcpy (scales_out, trial.scales, m->n_scales * sizeof (float));
  }
  if (trial.sp_rowptr)
    g_array_free (trial.sp_rowptr, TRUE);
  if (trial.sp_entries)
    g_array_free (trial.sp_entries, TRUE);
  g_free (trial.q);
  g_free (trial.scales);
  g_free (Wt);
  return loss;
}

/* --ef-passes: alternates the error-feedback sweep and the scales' refit o->ef_passes times, each sweep starting
 * from the scales the one before refitted, and leaves in m the starting scales whose sweep gave the lowest
 * calibration loss (the first pass's are the initial fit, so the result is never worse by that loss). FALSE with
 * error set when H cannot be factored. */
static gboolean
alternate_scales (const float *W, const float *W0, const double *H, const LevQuantOptions *o, QMat *m, guint8 *mask,
                  guint gw, guint ng, const char *name, GError **error)
{
  gsize ns = m->n_scales;
  float *best = g_memdup2 (m->scales, ns * sizeof (float)), *next = g_new (float, ns);
  double best_loss = INFINITY;
  gboolean ok = TRUE;
  for (guint p = 0; p < o->ef_passes && ok; p++) {
    double loss = trial_loss (W, W0, H, o, m, mask, gw, ng, next, name, error);
    ok = loss >= 0.0;
    if (ok && g_getenv ("LEV_QUANT_DEBUG"))
      g_printerr ("%s: pass %u proxy loss %.6g\n", name, p + 1, loss);
    if (ok && loss < best_loss) {
      best_loss = loss;
      memcpy (best, m->scales, ns * sizeof (float));
    }
    memcpy (m->scales, next, ns * sizeof (float));
  }
  memcpy (m->scales, best, ns * sizeof (float));
  g_free (best);
  g_free (next);
  return ok;
}

/* Fits m's low-rank adapter (rank factors lora_a, lora_b) to the residual R = W0 - Wq, weighted by the inputs: with
 * H = L L^T, the best rank-r approximation of R L (subspace iteration) is A V^T, so R ~ A (V^T L^-1). */
static void
fit_lowrank (const float *W0, const float *Wq, const double *H, QMat *m, guint rank)
{
  guint rows = m->rows, cols = m->cols;
  gsize n = (gsize) rows * cols;
  double *L = H ? damped_hessian (H, cols) : NULL;
  if (L && !cholesky (L, cols))
    g_clear_pointer (&L, g_free);
  double *M = g_new (double, n);             /* R L */
  for (guint r = 0; r < rows; r++) {
    for (guint c = 0; c < cols; c++) {
      double s = 0.0;
      if (L) {
        for (guint k = c; k < cols; k++)
          s += (double) (W0[(gsize) r * cols + k] - Wq[(gsize) r * cols + k]) * L[(gsize) k * cols + c];
      } else {
        s = W0[(gsize) r * cols + c] - Wq[(gsize) r * cols + c];
      }
      M[(gsize) r * cols + c] = s;
    }
  }
  double *V = g_new (double, (gsize) cols * rank), *MV = g_new (double, (gsize) rows * rank);
  GRand *rng = g_rand_new_with_seed (1234);
  for (gsize i = 0; i < (gsize) cols * rank; i++)
    V[i] = g_rand_double_range (rng, -1.0, 1.0);
  g_rand_free (rng);
  for (guint it = 0; it < 40; it++) {
    /* orthonormalize the columns of V (modified Gram-Schmidt) */
    for (guint k = 0; k < rank; k++) {
      for (guint j = 0; j < k; j++) {
        double d = 0.0;
        for (guint c = 0; c < cols; c++)
          d += V[(gsize) c * rank + k] * V[(gsize) c * rank + j];
        for (guint c = 0; c < cols; c++)
          V[(gsize) c * rank + k] -= d * V[(gsize) c * rank + j];
      }
      double nn = 0.0;
      for (guint c = 0; c < cols; c++)
        nn += V[(gsize) c * rank + k] * V[(gsize) c * rank + k];
      nn = nn > 0.0 ? 1.0 / sqrt (nn) : 0.0;
      for (guint c = 0; c < cols; c++)
        V[(gsize) c * rank + k] *= nn;
    }
    /* MV = M V */
    memset (MV, 0, (gsize) rows * rank * sizeof (double));
    for (guint r = 0; r < rows; r++)
      for (guint c = 0; c < cols; c++) {
        double mrc = M[(gsize) r * cols + c];
        for (guint k = 0; k < rank; k++)
          MV[(gsize) r * rank + k] += mrc * V[(gsize) c * rank + k];
      }
    if (it == 39)
      break;
    /* V = M^T (M V) */
    memset (V, 0, (gsize) cols * rank * sizeof (double));
    for (guint r = 0; r < rows; r++)
      for (guint c = 0; c < cols; c++) {
        double mrc = M[(gsize) r * cols + c];
        for (guint k = 0; k < rank; k++)
          V[(gsize) c * rank + k] += mrc * MV[(gsize) r * rank + k];
      }
  }
  /* B = V^T L^-1: row k solves L^T b = v_k */
  m->rank = rank;
  m->lora_a = g_new (float, (gsize) rows * rank);
  m->lora_b = g_new (float, (gsize) rank * cols);
  double *b = g_new (double, cols);
  for (guint k = 0; k < rank; k++) {
    for (guint c = cols; c-- > 0;) {
      double s = V[(gsize) c * rank + k];
      if (L) {
        for (guint j = c + 1; j < cols; j++)
          s -= L[(gsize) j * cols + c] * b[j];
        s /= L[(gsize) c * cols + c];
      }
      b[c] = s;
    }
    /* balance the two factors so both quantize to int8 with similar relative error */
    double na = 0.0, nb = 0.0;
    for (guint r = 0; r < rows; r++)
      na += MV[(gsize) r * rank + k] * MV[(gsize) r * rank + k];
    for (guint c = 0; c < cols; c++)
      nb += b[c] * b[c];
    double g = na > 0.0 && nb > 0.0 ? sqrt (sqrt (nb / na)) : 1.0;
    for (guint r = 0; r < rows; r++)
      m->lora_a[(gsize) r * rank + k] = (float) (MV[(gsize) r * rank + k] * g);
    for (guint c = 0; c < cols; c++)
      m->lora_b[(gsize) k * cols + c] = (float) (b[c] / g);
  }
  g_free (b);
  g_free (V);
  g_free (MV);
  g_free (M);
  g_free (L);
}

/* LEV_QUANT_DEBUG: prints the layer-wise proxy loss (w - wq)^T H (w - wq), summed, against round to nearest. */
static void
print_proxy_loss (const float *W0, const float *Wq, const double *H, const LevQuantOptions *o, const QMat *m,
                  guint gw, const char *name)
{
  guint rows = m->rows, cols = m->cols;
  gboolean binary = m->binary;
  if (H && g_getenv ("LEV_QUANT_DEBUG")) {     /* the layer-wise proxy loss (w - wq)^T H (w - wq), summed */
    double loss = 0.0, rtn = 0.0, ref = 0.0;
    double *d = g_new (double, cols), *e = g_new (double, cols);
    for (guint r = 0; r < rows; r++) {
      float s0 = 0.0f;
      for (guint c = 0; c < cols; c++) {
        float w = W0[(gsize) r * cols + c];
        if (c % gw == 0)
          s0 = fit_scale (W0 + (gsize) r * cols + c, MIN (gw, cols - c), binary, o->fit);
        d[c] = w - Wq[(gsize) r * cols + c];
        e[c] = w - s0 * quant_value (w, s0, binary);
      }
      for (guint i = 0; i < cols; i++)
        for (guint j = 0; j < cols; j++) {
          double h = H[(gsize) i * cols + j];
          loss += d[i] * h * d[j];
          rtn += e[i] * h * e[j];
          ref += W0[(gsize) r * cols + i] * h * W0[(gsize) r * cols + j];
        }
    }
    g_printerr ("%s: proxy loss %.4g (round to nearest %.4g, output energy %.4g)\n", name, loss, rtn, ref);
    g_free (d);
    g_free (e);
  }
}

/* Quantizes W (rows × cols, modified) with optional Hessian H (cols × cols) into m as the options say. */
static gboolean
quantize_matrix (float *W, const double *H, const LevQuantOptions *o, QMat *m, const char *name, GError **error)
{
  guint rows = m->rows, cols = m->cols;
  gsize n = (gsize) rows * cols;
  float *W0 = g_memdup2 (W, n * sizeof (float));
  guint gw, ng;
  fit_initial_scales (W, o, m, &gw, &ng);
  gboolean want_outliers = o->compensate >= LEV_COMP_EF_OUTLIERS && o->outlier_share > 0.0;
  guint8 *mask = want_outliers ? pick_outliers (W, H, o, m, gw, ng) : NULL;
  if ((o->ef_passes > 1 && H && o->compensate >= LEV_COMP_EF
       && !alternate_scales (W, W0, H, o, m, mask, gw, ng, name, error))
      || !round_columns (W, W0, H, o, m, mask, gw, ng, name, error)) {
    g_free (W0);
    g_free (mask);
    return FALSE;
  }
  float *Wq = store_outliers (W, m, mask, gw, ng);
  g_free (mask);
  guint rank = o->compensate >= LEV_COMP_EF_OUTLIERS_LOWRANK ? MIN (o->rank, MIN (rows, cols)) : 0;
  if (rank > 0)
    fit_lowrank (W0, Wq, H, m, rank);
  print_proxy_loss (W0, Wq, H, o, m, gw, name);
  g_free (Wq);
  g_free (W0);
  return TRUE;
}

static void
qmat_clear (QMat *m)
{
  g_free (m->q);
  g_free (m->scales);
  if (m->sp_rowptr)
    g_array_unref (m->sp_rowptr);
  if (m->sp_entries)
    g_array_unref (m->sp_entries);
  g_free (m->lora_a);
  g_free (m->lora_b);
}

/* ---------------------------------------------------------------- encoding into the model */

/* Adds an already encoded tensor (takes buf) to the model. */
static void
add_encoded (LevConvModel *model, const char *name, guint32 enc, guint64 rows, guint64 cols, guint8 *buf,
             guint64 size)
{
  guint64 shape[2] = { rows, cols };
  LevConvTensor *t = lev_conv_model_add_tensor (model, name, LEV_SRC_ENCODED, 2, shape, buf, buf);
  t->encoding = enc;
  t->encoded_size = size;
}

/* Encodes a float matrix [rows][cols] as q8 (int8 with one absmax scale per row). */
static guint8 *
encode_q8 (const float *w, guint rows, guint cols, guint64 *size)
{
  *size = lev_encoding_size (LEV_ENC_Q8, rows, cols, 0);
  guint8 *buf = g_malloc0 (*size);
  float *scales = (float *) buf;
  int8_t *q = (int8_t *) (buf + 4ull * rows);
  for (guint r = 0; r < rows; r++) {
    float amax = 0.0f;
    for (guint c = 0; c < cols; c++)
      amax = fmaxf (amax, fabsf (w[(gsize) r * cols + c]));
    scales[r] = amax / 127.0f;
    float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (guint c = 0; c < cols; c++)
      q[(gsize) r * cols + c] = (int8_t) lrintf (w[(gsize) r * cols + c] * inv);
  }
  return buf;
}

/* Replaces tensor t's data by the packed encoding of m and adds its outliers and adapter tensors. */
static void
store_qmat (LevConvModel *model, LevConvTensor *t, guint32 enc, const QMat *m)
{
  size_t rb = lev_qenc_row_bytes (enc, m->cols);
  guint64 size = lev_encoding_size (enc, m->rows, m->cols, m->n_scales);
  guint8 *buf = g_malloc0 (size);
  for (guint r = 0; r < m->rows; r++)
    lev_qpack_row (enc, m->q + (gsize) r * m->cols, m->cols, buf + (gsize) r * rb);
  memcpy (buf + (gsize) m->rows * rb, m->scales, 4ull * m->n_scales);
  g_free (t->owned);
  t->owned = buf;
  t->data = buf;
  t->type = LEV_SRC_ENCODED;
  t->encoding = enc;
  t->encoded_size = size;
  gchar *base = g_strdup (t->name);
  if (m->sp_rowptr) {
    guint64 sz = lev_encoding_size (LEV_ENC_SPARSE, m->rows, m->cols, m->sp_entries->len);
    guint8 *sp = g_malloc (MAX (sz, 4u));
    memcpy (sp, m->sp_rowptr->data, 4ull * m->sp_rowptr->len);
    memcpy (sp + 4ull * m->sp_rowptr->len, m->sp_entries->data, 4ull * m->sp_entries->len);
    gchar *n = g_strconcat (base, LEV_OUTLIERS_SUFFIX, NULL);
    add_encoded (model, n, LEV_ENC_SPARSE, m->rows, m->cols, sp, sz);
    g_free (n);
  }
  if (m->rank) {
    guint64 sa, sb;
    guint8 *a = encode_q8 (m->lora_a, m->rows, m->rank, &sa), *b = encode_q8 (m->lora_b, m->rank, m->cols, &sb);
    gchar *na = g_strconcat (base, LEV_LORA_A_SUFFIX, NULL), *nb = g_strconcat (base, LEV_LORA_B_SUFFIX, NULL);
    add_encoded (model, na, LEV_ENC_Q8, m->rows, m->rank, a, sa);
    add_encoded (model, nb, LEV_ENC_Q8, m->rank, m->cols, b, sb);
    g_free (na);
    g_free (nb);
  }
  g_free (base);
}

/* Returns tensor t's values as a new float array. */
static float *
tensor_floats (const LevConvTensor *t)
{
  gsize n = (gsize) t->shape[0] * t->shape[1];
  float *w = g_new (float, n);
  for (gsize i = 0; i < n; i++) {
    if (t->type == LEV_SRC_F32) {
      memcpy (&w[i], (const guint8 *) t->data + 4 * i, 4);
    } else {
      uint16_t h;
      memcpy (&h, (const guint8 *) t->data + 2 * i, 2);
      w[i] = t->type == LEV_SRC_F16 ? lev_f16_to_f32 (h) : lev_bf16_to_f32 (h);
    }
  }
  return w;
}

/* ---------------------------------------------------------------- rotation */

gboolean
lev_rotate_model (LevConvModel *model, guint32 seed, gboolean quiet, GError **error)
{
  const LevHParams *hp = &model->hp;
  gboolean any_float = FALSE, any_ternary = FALSE;
  for (guint l = 0; l < hp->n_layers; l++)
    for (guint i = 0; i < LEV_N_LINEAR; i++) {
      gchar *n = g_strdup_printf ("blk.%u.%s", l, lev_linear_name ((LevLinear) i));
      LevConvTensor *t = lev_conv_model_find (model, n);
      any_float = any_float || (t && t->type != LEV_SRC_TERNARY && t->type != LEV_SRC_ENCODED);
      any_ternary = any_ternary || (t && (t->type == LEV_SRC_TERNARY || t->type == LEV_SRC_ENCODED));
      g_free (n);
    }
  if (!any_float || any_ternary || (hp->flags & (LEV_HP_BITLINEAR_NORM | LEV_HP_ROTATED))) {
    if (!quiet)
      g_printerr ("levconvert: --rotate ignored: %s\n", (hp->flags & LEV_HP_ROTATED) ? "the model is rotated already"
                  : "the matrices are natively ternary or already quantized (a rotation would make their weights "
                    "float; they convert losslessly as they are)");
    return TRUE;
  }
  guint q_dim = hp->n_heads * hp->head_dim;
  guint cols_of[LEV_N_LINEAR_INPUTS] = { hp->dim, q_dim, hp->dim, hp->ffn_dim };
  for (guint l = 0; l < hp->n_layers; l++)
    for (guint i = 0; i < LEV_N_LINEAR; i++) {
      gchar *n = g_strdup_printf ("blk.%u.%s", l, lev_linear_name ((LevLinear) i));
      LevConvTensor *t = lev_conv_model_find (model, n);
      LevLinearInput w = lev_linear_input ((LevLinear) i);
      if (!t || t->shape[1] != cols_of[w]) {
        g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "rotation: tensor %s is missing or not %u "
                     "columns wide", n, cols_of[w]);
        g_free (n);
        return FALSE;
      }
      g_free (n);
      /* y = W x = (W R^T)(R x) with R = B diag(signs): each row w of W becomes R w, the same transform the engine
       * applies to the input x */
      guint rows = (guint) t->shape[0], cols = (guint) t->shape[1];
      float *W = tensor_floats (t), *signs = g_new (float, cols);
      lev_hadamard_signs (seed, l * LEV_N_LINEAR_INPUTS + w, signs, cols);
      for (guint r = 0; r < rows; r++)
        lev_hadamard (W + (gsize) r * cols, cols, signs);
      g_free (signs);
      g_free (t->owned);
      t->owned = W;
      t->data = W;
      t->type = LEV_SRC_F32;
    }
  model->hp.flags |= LEV_HP_ROTATED;
  model->hp.rotated_inputs = (1u << LEV_N_LINEAR_INPUTS) - 1;
  model->hp.rotation_seed = seed;
  if (!quiet)
    g_printerr ("levconvert: rotated the inputs of every block's linear layers (randomized Hadamard, seed %u)\n",
                seed);
  return TRUE;
}

/* ---------------------------------------------------------------- the whole model */

/* Data-free calibration (as LLM-QAT makes its training data): texts sampled from the float model itself, each
 * started from BOS (else EOS, else token 0) and drawn with temperature 1 and no truncation (the model's own
 * distribution, seeded: the same seed gives the same text), up to calib_ctx - 1 tokens or an EOS; n_want tokens in
 * all, returned in *n_ids. */
static int32_t *
sampled_tokens (LevModel *fm, const LevQuantOptions *o, size_t n_want, size_t *n_ids, GError **error)
{
  const LevHParams *hp = lev_model_hparams (fm);
  GError *local = NULL;
  LevContext *ctx = calib_context_new (fm, o, error);
  if (!ctx)
    return NULL;
  LevSamplerParams sp = lev_sampler_default_params ();
  sp.temperature = 1.0f;
  sp.top_k = 0;
  sp.top_p = 1.0f;
  sp.min_p = 0.0f;
  sp.repeat_penalty = 1.0f;
  sp.seed = o->calib_seed;
  LevSampler *smp = lev_sampler_new (&sp, hp->vocab_size);
  int32_t start = hp->bos_id >= 0 ? hp->bos_id : hp->eos_id >= 0 ? hp->eos_id : 0;
  int32_t *ids = g_new (int32_t, n_want);
  size_t n = 0, per_text = MAX (lev_context_n_ctx (ctx), 2u) - 1;
  gboolean ok = TRUE;
  while (ok && n < n_want) {
    lev_context_reset (ctx);
    int32_t tok = start;
    for (size_t k = 0; ok && k < per_text && n < n_want; k++) {
      const float *logits = lev_context_eval (ctx, tok, &local);
      if (!logits) {
        ok = FALSE;
        break;
      }
      tok = lev_sampler_sample (smp, logits);
      ids[n++] = tok;
      if (tok == hp->eos_id)
        break;
    }
  }
  if (!ok) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "calibration: %s", local->message);
    g_error_free (local);
    g_clear_pointer (&ids, g_free);
  }
  lev_sampler_free (smp);
  lev_context_free (ctx);
  *n_ids = n;
  return ids;
}

/* Tokenizes the calibration text with the model's tokenizer, or without --calib samples it from the float model;
 * returns the ids (at most opts->calib_tokens) and says on stderr which calibration it is. */
static int32_t *
calib_tokens (LevModel *fm, const LevQuantOptions *o, size_t *n_ids, GError **error)
{
  gchar *text = NULL;
  gsize len = 0;
  if (o->calib_path) {
    GError *local = NULL;
    if (!g_file_get_contents (o->calib_path, &text, &len, &local)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot read calibration text: %s",
                   local->message);
      g_error_free (local);
      return NULL;
    }
    if (!g_utf8_validate (text, (gssize) len, NULL)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "calibration text %s is not valid UTF-8",
                   o->calib_path);
      g_free (text);
      return NULL;
    }
  } else if (o->calib_builtin) {
    text = g_strdup (builtin_calibration);
    len = strlen (text);
  } else {
    if (!o->quiet)
      g_printerr ("levconvert: calibration: %u tokens sampled from the float model (from BOS, temperature 1, seed "
                  "%" G_GUINT64_FORMAT "; --calib FILE to use your own text)\n", o->calib_tokens, o->calib_seed);
    return sampled_tokens (fm, o, o->calib_tokens, n_ids, error);
  }
  const LevTokenizer *tok = lev_model_tokenizer (fm);
  int32_t *ids = NULL;
  int32_t eos = lev_model_hparams (fm)->eos_id;
  if (tok && o->calib_lines) {       /* each non-empty line a text of its own, ended by EOS (as levppl --lines) */
    GArray *all = g_array_new (FALSE, FALSE, sizeof (int32_t));
    gchar **lines = g_strsplit (text, "\n", -1);
    for (gchar **l = lines; *l; l++) {
      size_t n = 0;
      int32_t *li = **l ? lev_tokenizer_encode (tok, *l, -1, FALSE, &n, NULL) : NULL;
      if (li)
        g_array_append_vals (all, li, (guint) n);
      if (li && eos >= 0)
        g_array_append_val (all, eos);
      g_free (li);
    }
    g_strfreev (lines);
    *n_ids = all->len;
    ids = (int32_t *) g_array_free (all, FALSE);
  } else if (tok) {
    ids = lev_tokenizer_encode (tok, text, (gssize) len, FALSE, n_ids, NULL);
  }
  g_free (text);
  if (!ids || *n_ids < 16) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "the calibration text gives %zu tokens; at "
                 "least 16 are needed", ids ? *n_ids : (size_t) 0);
    g_free (ids);
    return NULL;
  }
  *n_ids = MIN (*n_ids, (size_t) o->calib_tokens);
  if (!o->quiet)
    g_printerr ("levconvert: calibration: %zu tokens of %s%s\n", *n_ids,
                o->calib_path ? o->calib_path : "the built-in text", o->calib_lines ? ", a text per line" : "");
  return ids;
}

gboolean
lev_quantize_model (LevConvModel *model, const LevQuantOptions *o, GError **error)
{
  guint32 enc = o->format == LEV_OUT_T2 ? LEV_ENC_T2 : o->format == LEV_OUT_T1 ? LEV_ENC_T1
              : o->format == LEV_OUT_B1 ? LEV_ENC_B1 : 0;
  if (!enc) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "error compensation and scale choices "
                 "apply to the t2, t1 and b1 formats only");
    return FALSE;
  }
  const LevHParams *hp = &model->hp;
  gboolean any_float = FALSE;
  for (guint l = 0; l < hp->n_layers; l++)
    for (guint i = 0; i < LEV_N_LINEAR; i++) {
      gchar *n = g_strdup_printf ("blk.%u.%s", l, lev_linear_name ((LevLinear) i));
      LevConvTensor *t = lev_conv_model_find (model, n);
      any_float = any_float || (t && t->type != LEV_SRC_TERNARY && t->type != LEV_SRC_ENCODED);
      g_free (n);
    }
  if (!any_float) {
    if (!o->quiet && o->compensate != LEV_COMP_NONE)
      g_printerr ("levconvert: the matrices are natively ternary: nothing to compensate, they convert losslessly\n");
    return TRUE;
  }

  /* calibration needs the float model: written to a temporary file and loaded by the engine */
  gboolean need_calib = o->compensate != LEV_COMP_NONE;
  gchar *tmp = NULL;
  LevModel *fm = NULL;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  gboolean ok = TRUE;
  gint64 t0 = g_get_monotonic_time ();
  if (need_calib) {
    int fd = g_file_open_tmp ("levconvert-calib-XXXXXX.leviathan", &tmp, NULL);
    if (fd >= 0)
      close (fd);
    GError *local = NULL;
    ok = fd >= 0 && lev_write_model_full (model, tmp, LEV_OUT_F32, LEV_OUT_F32, FALSE, error);
    if (ok) {
      fm = lev_model_load (tmp, &local);
      if (!fm) {
        g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "calibration: %s", local->message);
        g_error_free (local);
        ok = FALSE;
      }
    } else if (fd < 0) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot create a temporary file for calibration");
    }
    ok = ok && (ids = calib_tokens (fm, o, &n_ids, error)) != NULL;
  }

  /* layers in groups whose statistics fit in 1 GiB */
  guint q_dim = hp->n_heads * hp->head_dim;
  guint64 per_layer = 8ull * (2ull * hp->dim * hp->dim + (guint64) q_dim * q_dim + (guint64) hp->ffn_dim * hp->ffn_dim);
  guint group = need_calib ? (guint) CLAMP ((1ull << 30) / MAX (per_layer, 1u), 1u, hp->n_layers) : hp->n_layers;
  Calib cb = { 0 };
  guint64 n_out = 0, n_weights = 0;
  for (guint l0 = 0; ok && l0 < hp->n_layers; l0 += group) {
    guint l1 = MIN (l0 + group, hp->n_layers);
    memset (&cb, 0, sizeof cb);
    cb.layer0 = l0;
    cb.layer1 = l1;
    if (need_calib)
      ok = calib_run (fm, ids, n_ids, o, &cb, error);
    for (guint l = l0; ok && l < l1; l++) {
      for (guint i = 0; ok && i < LEV_N_LINEAR; i++) {
        gchar *n = g_strdup_printf ("blk.%u.%s", l, lev_linear_name ((LevLinear) i));
        LevConvTensor *t = lev_conv_model_find (model, n);
        if (t && t->type != LEV_SRC_TERNARY && t->type != LEV_SRC_ENCODED) {
          guint sgroup = o->scale_mode == LEV_SCALE_GROUP ? lev_qenc_block_weights (enc)
                        : o->scale_mode == LEV_SCALE_GROUP64 ? LEV_HALF_BLOCK_GROUP_WEIGHTS : 0;
          QMat m = { .rows = (guint) t->shape[0], .cols = (guint) t->shape[1], .binary = enc == LEV_ENC_B1,
                     .group = sgroup, .groups = (guint) lev_qenc_groups_per_row (enc, t->shape[1], sgroup) };
          if (sgroup && (m.groups == 0 || m.groups > LEV_QMAX_GROUPS)) {
            g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor %s: %u-weight scale groups "
                         "do not fit its %u columns in %s (at most %u groups a row)", n, sgroup, m.cols,
                         lev_qenc_name (enc), LEV_QMAX_GROUPS);
            ok = FALSE;
          }
          float *W = tensor_floats (t);
          for (gsize k = 0; ok && k < (gsize) m.rows * m.cols; k++)
            if (!isfinite (W[k])) {
              g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor %s holds a non-finite "
                           "value at element %" G_GSIZE_FORMAT, n, k);
              ok = FALSE;
            }
          const double *H = need_calib ? cb.H[(l - l0) * LEV_N_LINEAR_INPUTS + lev_linear_input ((LevLinear) i)] : NULL;
          ok = ok && quantize_matrix (W, H, o, &m, n, error);
          if (ok) {
            n_out += m.sp_entries ? m.sp_entries->len : 0;
            n_weights += (guint64) m.rows * m.cols;
            store_qmat (model, t, enc, &m);
          }
          qmat_clear (&m);
          g_free (W);
        }
        g_free (n);
        if (ok)
          lev_conv_progress ("quantizing", (guint64) l * LEV_N_LINEAR + i + 1,
                             (guint64) hp->n_layers * LEV_N_LINEAR);
      }
      if (ok && !o->quiet && need_calib)
        g_printerr ("levconvert: quantized layer %u of %u (%.1f s)\n", l + 1, hp->n_layers,
                    (g_get_monotonic_time () - t0) / 1e6);
    }
    calib_clear (&cb);
  }
  if (ok && !o->quiet && need_calib)
    g_printerr ("levconvert: calibrated on %zu tokens; %" G_GUINT64_FORMAT " outliers (%.3f%% of %" G_GUINT64_FORMAT
                " weights)\n", n_ids, n_out, n_weights ? 100.0 * (double) n_out / (double) n_weights : 0.0,
                n_weights);
  g_free (ids);
  lev_model_free (fm);
  if (tmp) {
    g_unlink (tmp);
    g_free (tmp);
  }
  return ok;
}

LevConvModel *
lev_split_adapters (LevConvModel *model)
{
  LevConvModel *ad = NULL;
  for (guint i = 0; i < model->tensors->len;) {
    LevConvTensor *t = g_ptr_array_index (model->tensors, i);
    if (g_str_has_suffix (t->name, LEV_LORA_A_SUFFIX) || g_str_has_suffix (t->name, LEV_LORA_B_SUFFIX)) {
      if (!ad) {
        ad = lev_conv_model_new ();
        ad->hp = model->hp;
        ad->name = g_strdup_printf ("adapter of %s", model->name ? model->name : "a model");
      }
      g_ptr_array_add (ad->tensors, g_ptr_array_steal_index (model->tensors, i));
    } else {
      i++;
    }
  }
  return ad;
}
