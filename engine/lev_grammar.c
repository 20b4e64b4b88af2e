/* lev_grammar.c: the GBNF-notation compiler, the pushdown parser state over code points and bytes, and the
 * per-state token mask (a walk of the vocabulary's byte trie, cached by parser state). */
#include "lev_grammar.h"
#include "leviathan.h"

#include <string.h>

/* ---- the compiled grammar ---- */

typedef enum { EL_END = 0, EL_CHARS, EL_REF } ElemKind;

typedef struct {
  uint32_t kind;                 /* ElemKind */
  uint32_t val;                  /* EL_CHARS: class index; EL_REF: rule index */
} Elem;

typedef struct {
  uint32_t first, count;         /* ranges [first, first + count) of LevGrammar.ranges (pairs lo, hi) */
  gboolean negated;
} CharClass;

struct LevGrammar {
  Elem *elems;                   /* every alternative's elements, each alternative ended by EL_END */
  uint32_t *alt_starts;          /* element index of each alternative, rule by rule */
  uint32_t *rule_first, *rule_count; /* a rule's alternatives in alt_starts */
  uint32_t n_rules, root;
  uint32_t *ranges;
  CharClass *classes;
};

/* Parser stacks deeper than this are dropped (a recursive grammar nested this deep). */
#define MAX_DEPTH 128u
/* Expansions of rules without consuming a character, at most, in one step. */
#define MAX_EXPAND 128u
/* Parser stacks in one state, at most (a very ambiguous grammar keeps the first ones). */
#define MAX_STACKS 2048u
/* Bounded repetitions ({m,n}) above this are refused. */
#define MAX_REPEAT 4096

/* ---- the GBNF parser ---- */

typedef struct {
  char *name;
  GPtrArray *alts;               /* GArray of Elem, one per alternative */
  gboolean defined;
} BRule;

typedef struct {
  const char *src, *p;
  GPtrArray *rules;              /* BRule* */
  GHashTable *names;             /* name → rule index + 1 */
  GArray *ranges, *classes;
  GError *error;
  uint32_t n_anon;
} Builder;

static void
brule_free (gpointer data)
{
  BRule *r = data;
  g_free (r->name);
  g_ptr_array_free (r->alts, TRUE);
  g_free (r);
}

/* Sets the builder's error (the first one wins) naming the line and column of the parse position. */
G_GNUC_PRINTF (2, 3) static void
fail (Builder *b, const char *fmt, ...)
{
  if (b->error)
    return;
  int line = 1, col = 1;
  for (const char *q = b->src; q < b->p && *q; q++) {
    if (*q == '\n') {
      line++;
      col = 1;
    } else if (((unsigned char) *q & 0xC0) != 0x80) {
      col++;
    }
  }
  va_list ap;
  va_start (ap, fmt);
  gchar *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (&b->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "grammar: line %d, column %d: %s", line, col, msg);
  g_free (msg);
}

static uint32_t
new_rule (Builder *b, const char *name)
{
  BRule *r = g_new0 (BRule, 1);
  r->name = g_strdup (name);
  r->alts = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  g_ptr_array_add (b->rules, r);
  return b->rules->len - 1;
}

/* Returns the index of the rule named name, made (undefined) on its first mention. */
static uint32_t
rule_by_name (Builder *b, const char *name)
{
  gpointer v = g_hash_table_lookup (b->names, name);
  if (v)
    return GPOINTER_TO_UINT (v) - 1;
  uint32_t id = new_rule (b, name);
  g_hash_table_insert (b->names, g_strdup (name), GUINT_TO_POINTER (id + 1));
  return id;
}

/* Makes an anonymous rule (a group or a repetition). */
static uint32_t
anon_rule (Builder *b)
{
  gchar *name = g_strdup_printf ("(anonymous %u)", b->n_anon++);
  uint32_t id = new_rule (b, name);
  g_free (name);
  ((BRule *) b->rules->pdata[id])->defined = TRUE;
  return id;
}

static void
add_alt (Builder *b, uint32_t rule, GArray *seq)
{
  g_ptr_array_add (((BRule *) b->rules->pdata[rule])->alts, seq);
}

static GArray *
new_seq (void)
{
  return g_array_new (FALSE, FALSE, sizeof (Elem));
}

static void
seq_add (GArray *seq, uint32_t kind, uint32_t val)
{
  Elem e = { kind, val };
  g_array_append_val (seq, e);
}

static uint32_t
add_class (Builder *b, const uint32_t *pairs, uint32_t n_pairs, gboolean negated)
{
  CharClass c = { b->ranges->len / 2, n_pairs, negated };
  g_array_append_vals (b->ranges, pairs, n_pairs * 2);
  g_array_append_val (b->classes, c);
  return b->classes->len - 1;
}

static gboolean
is_name_char (char c)
{
  return g_ascii_isalnum (c) || c == '-' || c == '_';
}

/* Skips white space (newlines included) and # comments. */
static void
skip_space (Builder *b)
{
  for (;;) {
    while (*b->p == ' ' || *b->p == '\t' || *b->p == '\n' || *b->p == '\r')
      b->p++;
    if (*b->p != '#')
      return;
    while (*b->p && *b->p != '\n')
      b->p++;
  }
}

/* Reads a name at p into a new string; NULL when none starts there. */
static gchar *
read_name (Builder *b)
{
  const char *s = b->p;
  while (is_name_char (*b->p))
    b->p++;
  return b->p > s ? g_strndup (s, (gsize) (b->p - s)) : NULL;
}

/* Whether a rule definition ("name ::=") starts at p. */
static gboolean
at_rule_start (const Builder *b)
{
  const char *q = b->p;
  if (!is_name_char (*q))
    return FALSE;
  while (is_name_char (*q))
    q++;
  while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
    q++;
  return strncmp (q, "::=", 3) == 0;
}

static int
hex_value (char c)
{
  return g_ascii_isxdigit (c) ? g_ascii_xdigit_value (c) : -1;
}

/* Reads one character of a literal or class (an escape or a UTF-8 character) into *cp. */
static gboolean
read_char (Builder *b, uint32_t *cp)
{
  if (*b->p == '\0') {
    fail (b, "unexpected end of the grammar");
    return FALSE;
  }
  if (*b->p != '\\') {
    *cp = g_utf8_get_char (b->p);
    b->p = g_utf8_next_char (b->p);
    return TRUE;
  }
  b->p++;
  char c = *b->p;
  int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
  if (digits) {
    uint32_t v = 0;
    for (int i = 1; i <= digits; i++) {
      int h = hex_value (b->p[i]);
      if (h < 0) {
        fail (b, "\\%c needs %d hexadecimal digits", c, digits);
        return FALSE;
      }
      v = v << 4 | (uint32_t) h;
    }
    if (v > 0x10FFFF) {
      fail (b, "\\%c%.*s is not a Unicode code point", c, digits, b->p + 1);
      return FALSE;
    }
    b->p += digits + 1;
    *cp = v;
    return TRUE;
  }
  switch (c) {
  case 'n': *cp = '\n'; break;
  case 'r': *cp = '\r'; break;
  case 't': *cp = '\t'; break;
  case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'': *cp = (uint32_t) c; break;
  default:
    fail (b, "unknown escape \\%c", c ? c : '0');
    return FALSE;
  }
  b->p++;
  return TRUE;
}

static void parse_alternatives (Builder *b, uint32_t rule, gboolean nested);

/* Parses a "literal" into item (one character class per character). */
static void
parse_literal (Builder *b, GArray *item)
{
  const char *start = b->p++;
  while (!b->error && *b->p != '"') {
    if (*b->p == '\0' || *b->p == '\n') {
      b->p = start;
      fail (b, "unterminated string literal");
      return;
    }
    uint32_t cp;
    if (!read_char (b, &cp))
      return;
    uint32_t pair[2] = { cp, cp };
    seq_add (item, EL_CHARS, add_class (b, pair, 1, FALSE));
  }
  if (!b->error)
    b->p++;                           /* the closing '"' */
}

/* Parses a [class] (ranges a-z, ^ for the complement) into item. */
static void
parse_class (Builder *b, GArray *item)
{
  const char *start = b->p++;
  gboolean negated = *b->p == '^';
  if (negated)
    b->p++;
  GArray *pairs = g_array_new (FALSE, FALSE, sizeof (uint32_t));
  while (!b->error && *b->p != ']') {
    if (*b->p == '\0' || *b->p == '\n') {
      b->p = start;
      fail (b, "unterminated character class");
      break;
    }
    uint32_t lo, hi;
    if (!read_char (b, &lo))
      break;
    hi = lo;
    if (b->p[0] == '-' && b->p[1] != ']' && b->p[1] != '\0') {
      b->p++;
      if (!read_char (b, &hi))
        break;
      if (hi < lo) {
        fail (b, "the range of a character class runs backwards");
        break;
      }
    }
    g_array_append_val (pairs, lo);
    g_array_append_val (pairs, hi);
  }
  if (!b->error && pairs->len == 0 && !negated)
    fail (b, "an empty character class matches nothing");
  if (!b->error) {
    b->p++;
    seq_add (item, EL_CHARS, add_class (b, (const uint32_t *) pairs->data, pairs->len / 2, negated));
  }
  g_array_free (pairs, TRUE);
}

/* Parses a number of a {m,n} repetition. */
static gboolean
read_count (Builder *b, long *out)
{
  if (!g_ascii_isdigit (*b->p)) {
    fail (b, "expected a number in {m,n}");
    return FALSE;
  }
  char *end;
  *out = strtol (b->p, &end, 10);
  b->p = end;
  if (*out > MAX_REPEAT) {
    fail (b, "a repetition count above %d", MAX_REPEAT);
    return FALSE;
  }
  return TRUE;
}

/* Appends item (one element) repeated min to max times (max -1: unbounded) to seq. */
static void
append_repeat (Builder *b, GArray *seq, Elem x, long min, long max)
{
  for (long i = 0; i < min; i++)
    g_array_append_val (seq, x);
  if (max < 0) {
    /* S ::= x S | (empty) */
    uint32_t s = anon_rule (b);
    GArray *a = new_seq ();
    g_array_append_val (a, x);
    seq_add (a, EL_REF, s);
    add_alt (b, s, a);
    add_alt (b, s, new_seq ());
    seq_add (seq, EL_REF, s);
    return;
  }
  /* O1 ::= x | (empty); Ok ::= x O(k-1) | (empty) */
  uint32_t prev = 0;
  for (long k = 1; k <= max - min; k++) {
    uint32_t o = anon_rule (b);
    GArray *a = new_seq ();
    g_array_append_val (a, x);
    if (k > 1)
      seq_add (a, EL_REF, prev);
    add_alt (b, o, a);
    add_alt (b, o, new_seq ());
    prev = o;
  }
  if (max > min)
    seq_add (seq, EL_REF, prev);
}

/* Parses a sequence of items with their postfix operators into seq, up to |, ) or the next rule. */
static void
parse_sequence (Builder *b, GArray *seq, gboolean nested)
{
  for (;;) {
    skip_space (b);
    char c = *b->p;
    if (b->error || c == '\0' || c == '|' || c == ')' || (!nested && at_rule_start (b)))
      return;
    GArray *item = new_seq ();
    if (c == '"') {
      parse_literal (b, item);
    } else if (c == '[') {
      parse_class (b, item);
    } else if (c == '.') {
      b->p++;
      seq_add (item, EL_CHARS, add_class (b, NULL, 0, TRUE));
    } else if (c == '(') {
      b->p++;
      uint32_t r = anon_rule (b);
      parse_alternatives (b, r, TRUE);
      if (!b->error && *b->p != ')')
        fail (b, "expected ')'");
      else if (!b->error)
        b->p++;                       /* the ')' (after an error p may be at the end: never past it) */
      seq_add (item, EL_REF, r);
    } else if (is_name_char (c)) {
      gchar *name = read_name (b);
      seq_add (item, EL_REF, rule_by_name (b, name));
      g_free (name);
    } else {
      fail (b, "unexpected '%c'", c);
    }
    if (b->error) {
      g_array_free (item, TRUE);
      return;
    }
    c = *b->p;
    if (c == '*' || c == '+' || c == '?' || c == '{') {
      long min = 0, max = -1;
      b->p++;
      if (c == '+')
        min = 1;
      else if (c == '?')
        max = 1;
      else if (c == '{') {
        if (!read_count (b, &min)) {
          g_array_free (item, TRUE);
          return;
        }
        max = min;
        if (*b->p == ',') {
          b->p++;
          max = -1;
          if (*b->p != '}' && !read_count (b, &max)) {
            g_array_free (item, TRUE);
            return;
          }
        }
        if (*b->p != '}' || (max >= 0 && max < min)) {
          fail (b, *b->p != '}' ? "expected '}'" : "{m,n} with n below m");
          g_array_free (item, TRUE);
          return;
        }
        b->p++;
      }
      Elem x;
      if (item->len == 1) {
        x = g_array_index (item, Elem, 0);
      } else {             /* a literal of several characters repeats as a whole */
        uint32_t r = anon_rule (b);
        add_alt (b, r, g_array_ref (item));
        x = (Elem) { EL_REF, r };
      }
      append_repeat (b, seq, x, min, max);
    } else {
      g_array_append_vals (seq, item->data, item->len);
    }
    g_array_unref (item);
  }
}

static void
parse_alternatives (Builder *b, uint32_t rule, gboolean nested)
{
  for (;;) {
    GArray *seq = new_seq ();
    parse_sequence (b, seq, nested);
    add_alt (b, rule, seq);
    if (b->error)
      return;
    skip_space (b);
    if (*b->p != '|')
      return;
    b->p++;
  }
}

/* Refuses undefined rules, left recursion and a root that matches no finite text. */
static void
check_rules (Builder *b)
{
  uint32_t n = b->rules->len;
  for (uint32_t i = 0; i < n; i++) {
    BRule *r = b->rules->pdata[i];
    if (!r->defined) {
      g_set_error (&b->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "grammar: rule '%s' is used but not defined", r->name);
      return;
    }
  }
  /* nullable and productive rules, to a fixed point */
  gboolean *nullable = g_new0 (gboolean, n), *productive = g_new0 (gboolean, n);
  for (gboolean changed = TRUE; changed;) {
    changed = FALSE;
    for (uint32_t i = 0; i < n; i++) {
      BRule *r = b->rules->pdata[i];
      for (guint a = 0; a < r->alts->len; a++) {
        GArray *seq = r->alts->pdata[a];
        gboolean nul = TRUE, prod = TRUE;
        for (guint k = 0; k < seq->len; k++) {
          Elem e = g_array_index (seq, Elem, k);
          nul = nul && e.kind == EL_REF && nullable[e.val];
          prod = prod && (e.kind == EL_CHARS || productive[e.val]);
        }
        if ((nul && !nullable[i]) || (prod && !productive[i])) {
          nullable[i] |= nul;
          productive[i] |= prod;
          changed = TRUE;
        }
      }
    }
  }
  uint32_t root = GPOINTER_TO_UINT (g_hash_table_lookup (b->names, "root")) - 1;
  if (!productive[root])
    g_set_error (&b->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "grammar: rule 'root' matches no finite text");
  /* left recursion: a rule reachable from itself through leading nullable references (depth-first, colours) */
  guint8 *colour = g_new0 (guint8, n);
  uint32_t *stack = g_new (uint32_t, n + 1), *next_alt = g_new (uint32_t, n + 1), *next_el = g_new (uint32_t, n + 1);
  for (uint32_t s = 0; s < n && !b->error; s++) {
    if (colour[s])
      continue;
    uint32_t top = 0;
    stack[0] = s;
    next_alt[0] = next_el[0] = 0;
    colour[s] = 1;
    while (!b->error) {
      BRule *r = b->rules->pdata[stack[top]];
      uint32_t child = UINT32_MAX;
      while (next_alt[top] < r->alts->len && child == UINT32_MAX) {
        GArray *seq = r->alts->pdata[next_alt[top]];
        if (next_el[top] >= seq->len) {
          next_alt[top]++;
          next_el[top] = 0;
          continue;
        }
        Elem e = g_array_index (seq, Elem, next_el[top]);
        if (e.kind == EL_REF)
          child = e.val;
        if (e.kind == EL_REF && nullable[e.val])
          next_el[top]++;
        else {
          next_alt[top]++;
          next_el[top] = 0;
        }
      }
      if (child == UINT32_MAX) {
        colour[stack[top]] = 2;
        if (top == 0)
          break;
        top--;
      } else if (colour[child] == 1) {
        g_set_error (&b->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "grammar: rule '%s' is left-recursive",
                     ((BRule *) b->rules->pdata[child])->name);
      } else if (colour[child] == 0) {
        colour[child] = 1;
        top++;
        stack[top] = child;
        next_alt[top] = next_el[top] = 0;
      }
    }
  }
  g_free (colour);
  g_free (stack);
  g_free (next_alt);
  g_free (next_el);
  g_free (nullable);
  g_free (productive);
}

/* Flattens the builder's rules into the compiled form. */
static LevGrammar *
flatten (Builder *b)
{
  LevGrammar *g = g_new0 (LevGrammar, 1);
  uint32_t n = b->rules->len, n_alts = 0, n_elems = 0;
  for (uint32_t i = 0; i < n; i++) {
    BRule *r = b->rules->pdata[i];
    n_alts += r->alts->len;
    for (guint a = 0; a < r->alts->len; a++)
      n_elems += ((GArray *) r->alts->pdata[a])->len + 1;
  }
  g->n_rules = n;
  g->elems = g_new (Elem, n_elems);
  g->alt_starts = g_new (uint32_t, MAX (n_alts, 1));
  g->rule_first = g_new (uint32_t, n);
  g->rule_count = g_new (uint32_t, n);
  uint32_t ai = 0, ei = 0;
  for (uint32_t i = 0; i < n; i++) {
    BRule *r = b->rules->pdata[i];
    g->rule_first[i] = ai;
    g->rule_count[i] = r->alts->len;
    for (guint a = 0; a < r->alts->len; a++) {
      GArray *seq = r->alts->pdata[a];
      g->alt_starts[ai++] = ei;
      if (seq->len)
        memcpy (g->elems + ei, seq->data, seq->len * sizeof (Elem));
      ei += seq->len;
      g->elems[ei++] = (Elem) { EL_END, 0 };
    }
  }
  g->root = GPOINTER_TO_UINT (g_hash_table_lookup (b->names, "root")) - 1;
  g->ranges = g_memdup2 (b->ranges->data, MAX (b->ranges->len, 1) * sizeof (uint32_t));
  g->classes = g_memdup2 (b->classes->data, MAX (b->classes->len, 1) * sizeof (CharClass));
  return g;
}

/* Compiles GBNF text. */
LevGrammar *
lev_grammar_new_gbnf (const char *gbnf, GError **error)
{
  if (!g_utf8_validate (gbnf, -1, NULL)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "grammar: not valid UTF-8");
    return NULL;
  }
  Builder b = { gbnf, gbnf, g_ptr_array_new_with_free_func (brule_free),
                g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL),
                g_array_new (FALSE, FALSE, sizeof (uint32_t)), g_array_new (FALSE, FALSE, sizeof (CharClass)), NULL,
                0 };
  skip_space (&b);
  if (!*b.p)
    fail (&b, "the grammar is empty");
  while (!b.error && *b.p) {
    gchar *name = read_name (&b);
    if (!name) {
      fail (&b, "expected a rule name");
      break;
    }
    skip_space (&b);
    if (strncmp (b.p, "::=", 3) != 0) {
      fail (&b, "expected '::=' after '%s'", name);
      g_free (name);
      break;
    }
    b.p += 3;
    uint32_t r = rule_by_name (&b, name);
    BRule *br = b.rules->pdata[r];
    if (br->defined)
      fail (&b, "rule '%s' is defined twice", name);
    br->defined = TRUE;
    g_free (name);
    parse_alternatives (&b, r, FALSE);
    if (!b.error && *b.p == ')')
      fail (&b, "unexpected ')'");
    skip_space (&b);
  }
  if (!b.error && !g_hash_table_contains (b.names, "root"))
    g_set_error (&b.error, LEV_ERROR, LEV_ERROR_ARGUMENT, "grammar: no rule 'root' (the start rule)");
  if (!b.error)
    check_rules (&b);
  LevGrammar *g = b.error ? NULL : flatten (&b);
  if (b.error)
    g_propagate_error (error, b.error);
  g_ptr_array_free (b.rules, TRUE);
  g_hash_table_destroy (b.names);
  g_array_free (b.ranges, TRUE);
  g_array_free (b.classes, TRUE);
  return g;
}

/* Compiles a JSON Schema or GBNF text. */
LevGrammar *
lev_grammar_compile (const char *text, GError **error)
{
  const char *p = text;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
    p++;
  if (*p != '{')
    return lev_grammar_new_gbnf (text, error);
  gchar *gbnf = lev_json_schema_to_gbnf (text, error);
  if (!gbnf)
    return NULL;
  LevGrammar *g = lev_grammar_new_gbnf (gbnf, error);
  g_free (gbnf);
  return g;
}

/* Frees a grammar. */
void
lev_grammar_free (LevGrammar *g)
{
  if (!g)
    return;
  g_free (g->elems);
  g_free (g->alt_starts);
  g_free (g->rule_first);
  g_free (g->rule_count);
  g_free (g->ranges);
  g_free (g->classes);
  g_free (g);
}

/* ---- parser states: sets of stacks of element positions (the top is the next element to match) ---- */

typedef struct {
  GArray *data;                  /* uint32: a stack's depth, then its positions bottom to top; stack after stack */
  uint32_t n_stacks;
  uint32_t cp, need;             /* a UTF-8 character begun: its bits so far and the continuation bytes to come */
  uint32_t len;                  /* and its length in bytes */
} State;

static void
state_init (State *s)
{
  s->data = g_array_new (FALSE, FALSE, sizeof (uint32_t));
  s->n_stacks = s->cp = s->need = s->len = 0;
}

static void
state_clear (State *s)
{
  g_array_set_size (s->data, 0);
  s->n_stacks = s->cp = s->need = s->len = 0;
}

static void
state_copy (State *dst, const State *src)
{
  g_array_set_size (dst->data, src->data->len);
  if (src->data->len)
    memcpy (dst->data->data, src->data->data, src->data->len * sizeof (uint32_t));
  dst->n_stacks = src->n_stacks;
  dst->cp = src->cp;
  dst->need = src->need;
  dst->len = src->len;
}

/* Adds a stack unless the state holds it already. */
static void
state_add (State *s, const uint32_t *stk, uint32_t n)
{
  const uint32_t *d = (const uint32_t *) s->data->data;
  for (uint32_t i = 0, at = 0; i < s->n_stacks; i++) {
    if (d[at] == n && memcmp (d + at + 1, stk, n * sizeof (uint32_t)) == 0)
      return;
    at += d[at] + 1;
  }
  if (s->n_stacks >= MAX_STACKS)
    return;
  g_array_append_val (s->data, n);
  g_array_append_vals (s->data, stk, n);
  s->n_stacks++;
}

/* Adds to out every stack that stk (positions, top last) becomes once rule references at its top are expanded and
 * finished sequences popped: each one's top is a character class, or it is empty (the text may end there).
 * scratch holds MAX_EXPAND + 1 frames of MAX_DEPTH positions. */
static void
expand (const LevGrammar *g, const uint32_t *stk, uint32_t n, State *out, uint32_t *scratch, uint32_t level)
{
  uint32_t *buf = scratch + level * MAX_DEPTH;
  memcpy (buf, stk, n * sizeof (uint32_t));
  while (n > 0 && g->elems[buf[n - 1]].kind == EL_END)
    n--;
  if (n == 0 || g->elems[buf[n - 1]].kind == EL_CHARS) {
    state_add (out, buf, n);
    return;
  }
  if (level >= MAX_EXPAND)
    return;
  uint32_t rule = g->elems[buf[n - 1]].val;
  buf[n - 1]++;               /* where to return; dropped when the reference ends its sequence (tail call) */
  while (n > 0 && g->elems[buf[n - 1]].kind == EL_END)
    n--;
  if (n >= MAX_DEPTH)
    return;
  for (uint32_t a = 0; a < g->rule_count[rule]; a++) {
    buf[n] = g->alt_starts[g->rule_first[rule] + a];
    expand (g, buf, n + 1, out, scratch, level + 1);
  }
}

static gboolean
class_matches (const LevGrammar *g, uint32_t cls, uint32_t cp)
{
  const CharClass *c = &g->classes[cls];
  const uint32_t *r = g->ranges + 2 * c->first;
  for (uint32_t i = 0; i < c->count; i++)
    if (cp >= r[2 * i] && cp <= r[2 * i + 1])
      return !c->negated;
  return c->negated;
}

/* Whether the class may match some character in [lo, hi] (a UTF-8 character whose first bytes are known). */
static gboolean
class_may_match (const LevGrammar *g, uint32_t cls, uint32_t lo, uint32_t hi)
{
  const CharClass *c = &g->classes[cls];
  const uint32_t *r = g->ranges + 2 * c->first;
  for (uint32_t i = 0; i < c->count; i++) {
    if (!c->negated && r[2 * i] <= hi && r[2 * i + 1] >= lo)
      return TRUE;
    if (c->negated && r[2 * i] <= lo && r[2 * i + 1] >= hi)
      return FALSE;
  }
  return c->negated;
}

/* out = cur after the character cp; FALSE when no stack takes it. */
static gboolean
advance_char (const LevGrammar *g, const State *cur, uint32_t cp, State *out, uint32_t *scratch)
{
  state_clear (out);
  const uint32_t *d = (const uint32_t *) cur->data->data;
  uint32_t tmp[MAX_DEPTH];
  for (uint32_t i = 0, at = 0; i < cur->n_stacks; i++, at += d[at] + 1) {
    uint32_t n = d[at];
    if (n == 0 || !class_matches (g, g->elems[d[at + n]].val, cp))
      continue;
    memcpy (tmp, d + at + 1, n * sizeof (uint32_t));
    tmp[n - 1]++;
    expand (g, tmp, n, out, scratch, 0);
  }
  return out->n_stacks > 0;
}

/* out = cur after one byte of UTF-8; FALSE when the byte leaves the grammar (or is not UTF-8). */
static gboolean
advance_byte (const LevGrammar *g, const State *cur, uint8_t byte, State *out, uint32_t *scratch)
{
  uint32_t cp, need, len;
  if (cur->need) {
    if ((byte & 0xC0) != 0x80)
      return FALSE;
    cp = cur->cp << 6 | (byte & 0x3Fu);
    need = cur->need - 1;
    len = cur->len;
  } else if (byte < 0x80) {
    cp = byte;
    need = 0;
    len = 1;
  } else if (byte >= 0xC2 && byte <= 0xDF) {
    cp = byte & 0x1Fu;
    need = 1;
    len = 2;
  } else if ((byte & 0xF0) == 0xE0) {
    cp = byte & 0x0Fu;
    need = 2;
    len = 3;
  } else if (byte >= 0xF0 && byte <= 0xF4) {
    cp = byte & 0x07u;
    need = 3;
    len = 4;
  } else {
    return FALSE;
  }
  /* the characters this many bytes may spell (no overlong forms, no surrogates, at most U+10FFFF) */
  uint32_t min_cp = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
  uint32_t lo = cp << (6 * need), hi = lo | ((1u << (6 * need)) - 1);
  lo = MAX (lo, min_cp);
  hi = MIN (hi, 0x10FFFFu);
  if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF))
    return FALSE;
  if (need == 0)
    return advance_char (g, cur, cp, out, scratch);
  /* a character begun: keep the stacks whose class may take a character starting so */
  state_clear (out);
  const uint32_t *d = (const uint32_t *) cur->data->data;
  for (uint32_t i = 0, at = 0; i < cur->n_stacks; i++, at += d[at] + 1)
    if (d[at] > 0 && class_may_match (g, g->elems[d[at + d[at]]].val, lo, hi))
      state_add (out, d + at + 1, d[at]);
  out->cp = cp;
  out->need = need;
  out->len = len;
  return out->n_stacks > 0;
}

/* Whether some stack may still take a character. */
static gboolean
state_can_continue (const State *s)
{
  const uint32_t *d = (const uint32_t *) s->data->data;
  for (uint32_t i = 0, at = 0; i < s->n_stacks; i++, at += d[at] + 1)
    if (d[at] > 0)
      return TRUE;
  return FALSE;
}

static gboolean
state_has_empty (const State *s)
{
  if (s->need)
    return FALSE;
  const uint32_t *d = (const uint32_t *) s->data->data;
  for (uint32_t i = 0, at = 0; i < s->n_stacks; i++, at += d[at] + 1)
    if (d[at] == 0)
      return TRUE;
  return FALSE;
}

/* ---- the matcher: the vocabulary as a byte trie, masks by state ---- */

typedef struct {
  uint32_t first_child, next_sibling;  /* 0: none (node 0 is the root, never a child) */
  uint32_t tokens_first, tokens_count; /* tokens whose bytes end here, in LevGrammarMatcher.node_tokens */
  uint8_t byte;
} TrieNode;

/* Masks kept by state, at most this many bytes of them (the cache is emptied when full). */
#define MASK_CACHE_BYTES (32u << 20)

struct LevGrammarMatcher {
  const LevGrammar *g;
  uint32_t n_vocab;
  GArray *nodes;                 /* TrieNode */
  uint32_t *node_tokens;
  GArray *start_ids;             /* tokens whose bytes differ at the start of a text */
  GArray *start_offsets;         /* uint32 n + 1 offsets into start_bytes */
  GString *start_bytes;
  State cur, tmp[2];
  State *levels;                 /* one state per trie depth */
  uint32_t n_levels;
  uint32_t *scratch;
  uint8_t *mask;
  GHashTable *cache;             /* GBytes (mode and state) → uint8_t[n_vocab] */
  size_t cache_bytes;
};

/* Adds a path for bytes to the trie; returns its last node. */
static uint32_t
trie_insert (GArray *nodes, const char *bytes, size_t n)
{
  uint32_t at = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t) bytes[i];
    uint32_t ch = g_array_index (nodes, TrieNode, at).first_child, last = 0;
    while (ch && g_array_index (nodes, TrieNode, ch).byte != c) {
      last = ch;
      ch = g_array_index (nodes, TrieNode, ch).next_sibling;
    }
    if (!ch) {
      TrieNode nn = { 0, 0, 0, 0, c };
      g_array_append_val (nodes, nn);
      ch = nodes->len - 1;
      if (last)
        g_array_index (nodes, TrieNode, last).next_sibling = ch;
      else
        g_array_index (nodes, TrieNode, at).first_child = ch;
    }
    at = ch;
  }
  return at;
}

/* Makes a matcher. */
LevGrammarMatcher *
lev_grammar_matcher_new (const LevGrammar *g, const LevTokenizer *tok, uint32_t n_vocab)
{
  LevGrammarMatcher *m = g_new0 (LevGrammarMatcher, 1);
  m->g = g;
  m->n_vocab = n_vocab;
  m->nodes = g_array_new (FALSE, TRUE, sizeof (TrieNode));
  TrieNode root = { 0 };
  g_array_append_val (m->nodes, root);
  m->start_ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  m->start_offsets = g_array_new (FALSE, FALSE, sizeof (uint32_t));
  m->start_bytes = g_string_new (NULL);
  uint32_t zero = 0;
  g_array_append_val (m->start_offsets, zero);
  /* the bytes of a token inside a text: decoded after an ordinary piece ("a", else the first non-control one) */
  uint32_t n_tok = tok ? MIN (lev_tokenizer_n_tokens (tok), n_vocab) : 0;
  int32_t mid_prev = tok ? lev_tokenizer_find_piece (tok, "a", 1) : -1;
  for (uint32_t i = 0; tok && mid_prev < 0 && i < n_tok; i++)
    if (!lev_tokenizer_is_control (tok, (int32_t) i) && (int32_t) i != lev_tokenizer_bos (tok))
      mid_prev = (int32_t) i;
  uint32_t *end_node = g_new0 (uint32_t, MAX (n_tok, 1));
  GString *mid = g_string_new (NULL), *start = g_string_new (NULL);
  uint32_t max_len = 0;
  for (uint32_t i = 0; i < n_tok; i++) {
    g_string_truncate (mid, 0);
    g_string_truncate (start, 0);
    lev_tokenizer_decode_token (tok, mid_prev, (int32_t) i, mid);
    lev_tokenizer_decode_token (tok, -1, (int32_t) i, start);
    if (mid->len > 0)
      end_node[i] = trie_insert (m->nodes, mid->str, mid->len);
    max_len = MAX (max_len, (uint32_t) mid->len);
    if (start->len != mid->len || memcmp (start->str, mid->str, mid->len) != 0) {
      int32_t id = (int32_t) i;
      g_array_append_val (m->start_ids, id);
      g_string_append_len (m->start_bytes, start->str, (gssize) start->len);
      uint32_t off = (uint32_t) m->start_bytes->len;
      g_array_append_val (m->start_offsets, off);
    }
  }
  /* tokens by end node (counting sort) */
  uint32_t n_nodes = m->nodes->len;
  TrieNode *nodes = (TrieNode *) m->nodes->data;
  for (uint32_t i = 0; i < n_tok; i++)
    if (end_node[i])
      nodes[end_node[i]].tokens_count++;
  uint32_t acc = 0;
  for (uint32_t k = 0; k < n_nodes; k++) {
    nodes[k].tokens_first = acc;
    acc += nodes[k].tokens_count;
    nodes[k].tokens_count = 0;
  }
  m->node_tokens = g_new (uint32_t, MAX (acc, 1));
  for (uint32_t i = 0; i < n_tok; i++)
    if (end_node[i]) {
      TrieNode *nd = &nodes[end_node[i]];
      m->node_tokens[nd->tokens_first + nd->tokens_count++] = i;
    }
  g_free (end_node);
  g_string_free (mid, TRUE);
  g_string_free (start, TRUE);
  m->n_levels = max_len + 2;
  m->levels = g_new (State, m->n_levels);
  for (uint32_t k = 0; k < m->n_levels; k++)
    state_init (&m->levels[k]);
  state_init (&m->cur);
  state_init (&m->tmp[0]);
  state_init (&m->tmp[1]);
  m->scratch = g_new (uint32_t, (MAX_EXPAND + 1) * MAX_DEPTH);
  m->mask = g_new0 (uint8_t, MAX (n_vocab, 1));
  m->cache = g_hash_table_new_full (g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, g_free);
  lev_grammar_matcher_reset (m);
  return m;
}

/* Frees a matcher. */
void
lev_grammar_matcher_free (LevGrammarMatcher *m)
{
  if (!m)
    return;
  g_array_free (m->nodes, TRUE);
  g_free (m->node_tokens);
  g_array_free (m->start_ids, TRUE);
  g_array_free (m->start_offsets, TRUE);
  g_string_free (m->start_bytes, TRUE);
  for (uint32_t k = 0; k < m->n_levels; k++)
    g_array_free (m->levels[k].data, TRUE);
  g_free (m->levels);
  g_array_free (m->cur.data, TRUE);
  g_array_free (m->tmp[0].data, TRUE);
  g_array_free (m->tmp[1].data, TRUE);
  g_free (m->scratch);
  g_free (m->mask);
  g_hash_table_destroy (m->cache);
  g_free (m);
}

/* Returns to the start: the root rule expanded. */
void
lev_grammar_matcher_reset (LevGrammarMatcher *m)
{
  state_clear (&m->cur);
  uint32_t stk[1];
  const LevGrammar *g = m->g;
  for (uint32_t a = 0; a < g->rule_count[g->root]; a++) {
    stk[0] = g->alt_starts[g->rule_first[g->root] + a];
    expand (g, stk, 1, &m->cur, m->scratch, 0);
  }
}

/* Runs st over bytes into the matcher's tmp states; returns the final state or NULL when they leave the grammar. */
static const State *
run_bytes (LevGrammarMatcher *m, const State *st, const char *bytes, size_t n)
{
  const State *at = st;
  for (size_t i = 0; i < n; i++) {
    State *next = &m->tmp[i & 1];
    if (!advance_byte (m->g, at, (uint8_t) bytes[i], next, m->scratch))
      return NULL;
    at = next;
  }
  return at;
}

/* Marks the tokens below node (reached in state st at depth) that keep the text inside the grammar. */
static void
walk (LevGrammarMatcher *m, uint32_t node, uint32_t depth, const State *st, gboolean lead)
{
  const TrieNode *nodes = (const TrieNode *) m->nodes->data;
  for (uint32_t c = nodes[node].first_child; c; c = nodes[c].next_sibling) {
    const TrieNode *nd = &nodes[c];
    const State *use = st;
    gboolean still_lead = lead && (nd->byte == ' ' || nd->byte == '\n');
    if (!still_lead) {
      State *next = &m->levels[depth + 1];
      if (!advance_byte (m->g, st, nd->byte, next, m->scratch))
        continue;
      use = next;
      for (uint32_t k = 0; k < nd->tokens_count; k++)
        m->mask[m->node_tokens[nd->tokens_first + k]] = 1;
    }
    if (nd->first_child && state_can_continue (use))
      walk (m, c, depth + 1, use, still_lead);
  }
}

/* Returns the mask of the current state. */
const uint8_t *
lev_grammar_matcher_mask (LevGrammarMatcher *m, LevGrammarBytes mode)
{
  GByteArray *key = g_byte_array_new ();
  uint32_t head[5] = { (uint32_t) mode, m->cur.cp, m->cur.need, m->cur.len, m->cur.n_stacks };
  g_byte_array_append (key, (const guint8 *) head, sizeof head);
  g_byte_array_append (key, (const guint8 *) m->cur.data->data, m->cur.data->len * sizeof (uint32_t));
  GBytes *kb = g_byte_array_free_to_bytes (key);
  const uint8_t *hit = g_hash_table_lookup (m->cache, kb);
  if (hit) {
    memcpy (m->mask, hit, m->n_vocab);
    g_bytes_unref (kb);
    return m->mask;
  }
  memset (m->mask, 0, m->n_vocab);
  walk (m, 0, 0, &m->cur, mode == LEV_GRAMMAR_BYTES_LEAD);
  if (mode == LEV_GRAMMAR_BYTES_START) {
    const uint32_t *off = (const uint32_t *) m->start_offsets->data;
    for (guint i = 0; i < m->start_ids->len; i++) {
      int32_t id = g_array_index (m->start_ids, int32_t, i);
      size_t n = off[i + 1] - off[i];
      m->mask[id] = n > 0 && run_bytes (m, &m->cur, m->start_bytes->str + off[i], n) != NULL;
    }
  }
  if (m->cache_bytes + m->n_vocab > MASK_CACHE_BYTES) {
    g_hash_table_remove_all (m->cache);
    m->cache_bytes = 0;
  }
  g_hash_table_insert (m->cache, kb, g_memdup2 (m->mask, m->n_vocab));
  m->cache_bytes += m->n_vocab + g_bytes_get_size (kb);
  return m->mask;
}

/* Advances over output bytes. */
gboolean
lev_grammar_matcher_accept (LevGrammarMatcher *m, const char *bytes, size_t n)
{
  const State *end = run_bytes (m, &m->cur, bytes, n);
  if (!end)
    return FALSE;
  if (end != &m->cur)
    state_copy (&m->cur, end);
  return TRUE;
}

/* Whether the text is a complete sentence. */
gboolean
lev_grammar_matcher_is_complete (const LevGrammarMatcher *m)
{
  return state_has_empty (&m->cur);
}

/* Whether the text is complete and cannot go on. */
gboolean
lev_grammar_matcher_is_finished (const LevGrammarMatcher *m)
{
  return state_has_empty (&m->cur) && !state_can_continue (&m->cur);
}
