/* lev_test_logits.h: teacher-forced logits of a context compared with a reference file of rows × vocab floats, the
 * greedy choice, and a reference's token ids read from JSON. */
#pragma once

#include <json-glib/json-glib.h>

#include "lev_test_common.h"
#include "leviathan.h"

/* Feeds ids[0 .. n_ids) to c one at a time and returns the largest |logit - reference| over all rows of ref_rel (a
 * fixture of n_ids × vocab little-endian floats, its size asserted); a failed evaluation fails the test. */
static inline double
lev_test_logits_vs_reference (LevContext *c, uint32_t vocab, const gint32 *ids, guint n_ids, const char *ref_rel)
{
  gsize len;
  gchar *ref = lev_test_read_fixture (ref_rel, &len);
  g_assert_cmpuint (len, ==, (gsize) n_ids * vocab * sizeof (float));
  double worst = 0;
  for (guint p = 0; p < n_ids; p++) {
    const float *logits = lev_context_eval (c, ids[p], NULL);
    g_assert_nonnull (logits);
    worst = MAX (worst, lev_test_max_abs_diff (logits, (const float *) ref + (size_t) p * vocab, vocab));
  }
  g_free (ref);
  return worst;
}

/* The greedy choice: the first index of the largest of v[0 .. n). */
static inline int32_t
lev_test_argmax (const float *v, uint32_t n)
{
  uint32_t b = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[b])
      b = i;
  return (int32_t) b;
}

/* The integers of a JSON array as a GArray of gint32 (g_array_free it). */
static inline GArray *
lev_test_json_id_array (JsonArray *a)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  for (guint i = 0; i < json_array_get_length (a); i++) {
    gint32 v = (gint32) json_array_get_int_element (a, i);
    g_array_append_val (ids, v);
  }
  return ids;
}
