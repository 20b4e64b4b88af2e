/* lev_qtune.c: kernel code rates on cache-resident matrices, and the run-time choice of the fastest implementation
 * of each packed encoding by measuring them (lev_qkernels_get). */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime under -std=c17 */
#include "lev_qkernels.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- timing cases */

/* A random packed matrix and random int8 activations of n tokens, everything one kernel call reads. */
typedef struct {
  LevQMatrix w;
  LevQAct act;
  uint8_t *codes;
  float *scales, *y, *fscale;
  int8_t *q, *q2;
  int32_t *sum, *csum;
} RateCase;

static uint64_t
next_random (uint64_t *s)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dull;
}

/* Fills n bytes with pseudo-random values. */
static void
fill_random (uint64_t *s, void *p, size_t n)
{
  uint8_t *b = p;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = next_random (s);
    memcpy (b + i, &v, n - i < 8 ? n - i : 8);
  }
}

/* Frees what case_make allocated. */
static void
case_free (RateCase *c)
{
  free (c->codes);
  free (c->scales);
  free (c->y);
  free (c->fscale);
  free (c->q);
  free (c->q2);
  free (c->sum);
  free (c->csum);
}

/* Makes a case: a cols-wide matrix of about `bytes` bytes (at least 16 rows) in enc with scale groups of
 * group_weights (0: one scale a row), n tokens. Codes are random bytes: any byte is some code of every encoding, and
 * the kernels' speed does not depend on the values. Returns 0 when the combination is invalid. */
static int
case_make (RateCase *c, uint32_t enc, uint32_t group_weights, uint32_t n, size_t cols, size_t bytes)
{
  memset (c, 0, sizeof *c);
  if (!lev_qenc_is_packed (enc) || n == 0 || cols == 0)
    return 0;
  size_t groups = group_weights ? lev_qenc_groups_per_row (enc, cols, group_weights) : 1;
  if (groups == 0 || groups > LEV_QMAX_GROUPS)
    return 0;
  size_t rb = lev_qenc_row_bytes (enc, cols), rows = bytes / rb / 16 * 16;
  if (rows < 16)
    rows = 16;
  size_t stride = (cols + LEV_QPAD - 1) / LEV_QPAD * LEV_QPAD;
  uint64_t seed = 0x9e3779b97f4a7c15ull ^ enc;
  /* cache-line aligned, as the engine's weights (the file's tensors) and activations are */
  c->codes = aligned_alloc (64, (rows * rb + 63) / 64 * 64);
  c->scales = malloc (rows * groups * sizeof (float));
  c->y = malloc (rows * n * sizeof (float));
  c->fscale = malloc (n * sizeof (float));
  c->q = aligned_alloc (64, n * stride);
  c->q2 = aligned_alloc (64, 2 * n * stride);
  c->sum = malloc (n * sizeof (int32_t));
  c->csum = malloc (n * stride / 32 * sizeof (int32_t));
  if (!c->codes || !c->scales || !c->y || !c->fscale || !c->q || !c->q2 || !c->sum || !c->csum) {
    case_free (c);
    return 0;
  }
  memset (c->q, 0, n * stride);
  fill_random (&seed, c->codes, rows * rb);
  for (size_t i = 0; i < rows * groups; i++)
    c->scales[i] = 1.0f / (float) (1 + i % 7);
  for (uint32_t t = 0; t < n; t++) {
    fill_random (&seed, c->q + t * stride, cols);
    lev_qact_finish_row (c->q + t * stride, stride, c->q2 + 2 * t * stride, &c->sum[t], c->csum + t * stride / 32);
    c->fscale[t] = 1.0f / 64.0f;
  }
  c->w = (LevQMatrix) { enc, (uint32_t) rows, (uint32_t) cols, (uint32_t) lev_qenc_cols_padded (enc, cols), rb,
                        c->codes, c->scales, (uint32_t) (rows * groups) };
  c->act = (LevQAct) { n, stride, c->q, c->q2, c->sum, c->fscale, c->csum };
  return 1;
}

static double
now_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* Seconds per call of k on the case: `calls` calls timed together. */
static double
case_time (const LevQKernels *k, RateCase *c, int calls)
{
  double t0 = now_seconds ();
  for (int i = 0; i < calls; i++)
    lev_qgemm (k, &c->w, &c->act, c->y, c->w.rows, 0, c->w.rows);
  return (now_seconds () - t0) / calls;
}

/* Calls per timing so that one timing of k takes at least min_seconds (one untimed call warms the caches). */
static int
case_calls (const LevQKernels *k, RateCase *c, double min_seconds)
{
  case_time (k, c, 1);
  double one = case_time (k, c, 1);
  double calls = one > 0.0 ? min_seconds / one + 1.0 : 1e6;
  return calls > 1e6 ? 1000000 : (int) calls;
}

/* GB/s of packed weights for a time per call. */
static double
case_rate (const RateCase *c, double seconds)
{
  return seconds > 0.0 ? (double) c->w.rows * c->w.row_bytes * c->act.n / seconds / 1e9 : 0.0;
}

double
lev_qkernel_rate (const LevQKernels *k, uint32_t enc, uint32_t group_weights, uint32_t n_tokens, size_t cols,
                  size_t bytes, double min_seconds, int trials)
{
  RateCase c;
  if (!k || !case_make (&c, enc, group_weights, n_tokens, cols, bytes))
    return -1.0;
  int calls = case_calls (k, &c, min_seconds);
  double best = 0.0;
  for (int i = 0; i < (trials > 0 ? trials : 1); i++) {
    double s = case_time (k, &c, calls);
    if (i == 0 || s < best)
      best = s;
  }
  double rate = case_rate (&c, best);
  case_free (&c);
  return rate;
}

/* ---------------------------------------------------------------- choice by measurement */

/* The measurement: a 2048-wide matrix of about 64 KiB (L2-resident on every x86-64 and ARM core we know), one token
 * and 32, the candidates timed in turn, best of five timings of at least 100 microseconds each. */
#define TUNE_COLS 2048
#define TUNE_BYTES 65536
#define TUNE_TILE 32
#define TUNE_TRIALS 5
#define TUNE_SECONDS 100e-6

void
lev_qkernels_measure (LevQKernels *out, char *choice, size_t size)
{
  const LevQKernels *cand[LEV_QMAX_SIMD_SETS];
  int nc = (int) lev_qkernels_simd_sets (cand);
  if (nc == 0)
    cand[nc++] = lev_qkernels_scalar ();
  *out = *cand[0];                        /* the widest set: attention helpers, sparse dot */
  int needs_q2 = 0;
  size_t used = 0;
  if (size)
    choice[0] = 0;
  for (uint32_t e = 0; e < 4; e++) {
    uint32_t enc = LEV_QENC_T2 + e;
    const LevQKernels *pick[2] = { cand[0], cand[0] };
    for (int mode = 0; mode < 2 && nc > 1; mode++) {
      RateCase c;
      if (!case_make (&c, enc, 0, mode ? TUNE_TILE : 1, TUNE_COLS, TUNE_BYTES))
        continue;
      int calls[LEV_QMAX_SIMD_SETS];
      double best[LEV_QMAX_SIMD_SETS];
      for (int i = 0; i < nc; i++)
        calls[i] = case_calls (cand[i], &c, TUNE_SECONDS);
      for (int trial = 0; trial < TUNE_TRIALS; trial++)
        for (int i = 0; i < nc; i++) {
          double s = case_time (cand[i], &c, calls[i]);
          if (trial == 0 || s < best[i])
            best[i] = s;
        }
      for (int i = 1; i < nc; i++)
        if (best[i] < best[0] * 0.97) {   /* a clear win only: ties go to the earlier set */
          best[0] = best[i];
          pick[mode] = cand[i];
        }
      case_free (&c);
    }
    out->gemv[e] = pick[0]->gemv[e];
    out->gemm[e] = pick[1]->gemm[e];
    needs_q2 |= pick[0]->needs_q2 | pick[1]->needs_q2;
    if (used < size)
      used += (size_t) snprintf (choice + used, size - used, "%s%s %s/%s", e ? ", " : "", lev_qenc_name (enc),
                                 pick[0]->name, pick[1]->name);
  }
  out->needs_q2 = needs_q2;
  out->name = "measured";
}

/* ---------------------------------------------------------------- the choice, cached per CPU model */

/* Bump when a kernel changes speed (a new or rewritten implementation): cached choices made before are dropped. */
#define LEV_QTUNE_REVISION 3

/* Builds from its choice line (as lev_qkernels_measure writes it) the kernels it names into *out; FALSE when the
 * line names an encoding or an implementation this process does not have. */
static int
kernels_from_choice (const char *line, LevQKernels *out)
{
  const LevQKernels *sets[LEV_QMAX_SIMD_SETS];
  *out = lev_qkernels_simd_sets (sets) ? *sets[0] : *lev_qkernels_scalar ();
  int needs_q2 = 0;
  const char *p = line;
  for (uint32_t e = 0; e < 4; e++) {
    char enc[8], one[24], tiles[24];
    int used = 0;
    if (sscanf (p, e ? ", %7s %23[^/]/%23[^,]%n" : "%7s %23[^/]/%23[^,]%n", enc, one, tiles, &used) != 3)
      return 0;
    p += used;
    const LevQKernels *k1 = lev_qkernels_by_name (one), *kt = lev_qkernels_by_name (tiles);
    if (strcmp (enc, lev_qenc_name (LEV_QENC_T2 + e)) != 0 || !k1 || !kt)
      return 0;
    out->gemv[e] = k1->gemv[e];
    out->gemm[e] = kt->gemm[e];
    needs_q2 |= k1->needs_q2 | kt->needs_q2;
  }
  out->needs_q2 = needs_q2;
  out->name = "measured";
  return *p == 0;
}

/* Writes the CPU's identity into buf: the first processor's model name, family, model and stepping (x86) or
 * implementer, variant and part (ARM) as /proc/cpuinfo gives them: guests of one "model name" differ in family. */
static void
cpu_identity (char *buf, size_t size)
{
  static const char *const fields[] = { "model name", "cpu family", "model", "stepping", "CPU implementer",
                                        "CPU variant", "CPU part" };
  size_t used = 0;
  buf[0] = 0;
  FILE *f = fopen ("/proc/cpuinfo", "r");
  char line[256];
  while (f && fgets (line, sizeof line, f) && line[0] != '\n') {    /* the first processor's block */
    char *colon = strchr (line, ':');
    if (!colon)
      continue;
    size_t name_len = (size_t) (colon - line);
    while (name_len > 0 && (line[name_len - 1] == '\t' || line[name_len - 1] == ' '))
      name_len--;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
      if (strlen (fields[i]) == name_len && strncmp (line, fields[i], name_len) == 0 && used < size) {
        char *v = colon + 1 + (colon[1] == ' ');
        v[strcspn (v, "\n")] = 0;
        used += (size_t) snprintf (buf + used, size - used, "%s%s", used ? "/" : "", v);
      }
  }
  if (f)
    fclose (f);
  if (!buf[0])
    snprintf (buf, size, "unknown");
}

/* Fills path with the cache file of this CPU and these kernels, and key with what its first line must say;
 * FALSE when there is no cache directory ($XDG_CACHE_HOME or $HOME/.cache). */
static int
cache_location (char *path, size_t psize, char *key, size_t ksize)
{
  char cpu[200], sets[96] = "";
  cpu_identity (cpu, sizeof cpu);
  const LevQKernels *all[LEV_QMAX_SIMD_SETS];
  size_t n_sets = lev_qkernels_simd_sets (all);
  for (size_t i = 0; i < n_sets; i++) {
    strncat (sets, " ", sizeof sets - strlen (sets) - 1);
    strncat (sets, all[i]->name, sizeof sets - strlen (sets) - 1);
  }
  snprintf (key, ksize, "leviathan kernels %d: %s:%s", LEV_QTUNE_REVISION, cpu, sets);
  uint64_t h = 0xcbf29ce484222325ull;                   /* FNV-1a of the key names the file */
  for (const char *c = key; *c; c++)
    h = (h ^ (uint8_t) *c) * 0x100000001b3ull;
  const char *xdg = getenv ("XDG_CACHE_HOME"), *home = getenv ("HOME");
  int n;
  if (xdg && xdg[0] == '/')
    n = snprintf (path, psize, "%s/leviathan/kernels-%016llx", xdg, (unsigned long long) h);
  else if (home && home[0] == '/')
    n = snprintf (path, psize, "%s/.cache/leviathan/kernels-%016llx", home, (unsigned long long) h);
  else
    return 0;
  return n > 0 && (size_t) n < psize;
}

/* Reads a cached choice line for key from path into line; FALSE when there is none that fits. */
static int
cache_read (const char *path, const char *key, char *line, size_t size)
{
  FILE *f = fopen (path, "r");
  if (!f)
    return 0;
  char first[512];
  int ok = fgets (first, sizeof first, f) && strncmp (first, key, strlen (key)) == 0 && first[strlen (key)] == '\n'
           && fgets (line, (int) size, f) && strlen (line) > 1 && line[strlen (line) - 1] == '\n';
  fclose (f);
  if (ok)
    line[strlen (line) - 1] = 0;
  return ok;
}

/* Stores the choice line for key at path (the directories made as needed; a temporary file renamed over it, so
 * that a reader never sees half a file); failures leave no file and are not errors. */
static void
cache_write (const char *path, const char *key, const char *line)
{
  char dir[4096], tmp[4200];
  snprintf (dir, sizeof dir, "%s", path);
  for (char *slash = strchr (dir + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
    *slash = 0;
    if (mkdir (dir, 0755) != 0 && errno != EEXIST)
      return;
    *slash = '/';
  }
  snprintf (tmp, sizeof tmp, "%s.%ld.tmp", path, (long) getpid ());
  FILE *f = fopen (tmp, "w");
  if (!f)
    return;
  int ok = fprintf (f, "%s\n%s\n", key, line) > 0;
  ok = fclose (f) == 0 && ok;
  if (!ok || rename (tmp, path) != 0)
    unlink (tmp);
}

static LevQKernels measured;
static const LevQKernels *chosen;
static char choice_line[160];
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

/* Makes the choice of this process (once): LEV_KERNELS's set; else the choice cached for this CPU model and these
 * kernels; else a measurement, then cached (LEV_KERNELS=measure: measured again, cache rewritten). */
static void
choose (void)
{
  const char *env = getenv ("LEV_KERNELS");
  int remeasure = env && strcmp (env, "measure") == 0;
  const LevQKernels *k = env && *env && !remeasure ? lev_qkernels_by_name (env) : NULL;
  if (k) {
    chosen = k;
    snprintf (choice_line, sizeof choice_line, "%s (LEV_KERNELS)", k->name);
    return;
  }
  char path[4096], key[384], line[128];
  int cacheable = cache_location (path, sizeof path, key, sizeof key);
  if (cacheable && !remeasure && cache_read (path, key, line, sizeof line) && kernels_from_choice (line, &measured)) {
    chosen = &measured;
    snprintf (choice_line, sizeof choice_line, "%s (cached)", line);
    return;
  }
  lev_qkernels_measure (&measured, choice_line, sizeof choice_line);
  chosen = &measured;
  if (cacheable)
    cache_write (path, key, choice_line);
}

const LevQKernels *
lev_qkernels_get (void)
{
  pthread_once (&choose_once, choose);
  return chosen;
}

const char *
lev_qkernels_choice (void)
{
  pthread_once (&choose_once, choose);
  return choice_line;
}
