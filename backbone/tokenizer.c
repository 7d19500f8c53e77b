/* BERT WordPiece tokenizer (HF BertTokenizer, bert-base-uncased semantics, or cased with
 * pb_tok_set_lower_case(tk, 0)); see tokenizer.h.
 *
 * Notes on matching HF exactly:
 * - HF lower-cases with Python's str.lower(). PreTrainedTokenizer.tokenize() first lowers
 *   the text one character at a time (regex "(specials)|(.+?)"), so Greek final sigma never
 *   applies: simple per-code-point utf8proc_tolower() gives the same result. The only
 *   multi-character lower-casing, U+0130 -> "i" + U+0307, ends as "i" after Mn stripping,
 *   which is what utf8proc_tolower(U+0130) = "i" gives directly.
 * - Accent stripping is NFD then drop category Mn only (utf8proc's STRIPMARK would also
 *   drop Mc/Me, so it is not used). Hangul syllables decompose into conjoining jamo, as
 *   in HF. Newer HF adds an NFC pass before whitespace splitting; it cannot change the
 *   lower-cased result because NFD follows.
 * - Cased (do_lower_case=False, strip_accents=None): no lower-casing, no NFD, no Mn
 *   removal; only that NFC pass (utf8proc compose), which does matter here ("e" + U+0301
 *   becomes "é", U+212B ANGSTROM SIGN becomes U+00C5, U+1FEF becomes the ASCII "`" and
 *   is then split as punctuation). Applying it per whitespace word equals applying it to
 *   the whole text: no canonical composition or reordering crosses a whitespace starter.
 *   HF's fast (Rust) BertNormalizer has no NFC pass, so it differs from the slow one (and
 *   from us) on decomposed input when cased.
 * - Character categories come from utf8proc (Unicode 15 for utf8proc 2.8); a Python with
 *   an older Unicode database may differ on code points assigned since.
 * - Single sentence with max_len == 2: HF refuses to truncate (logs an error) and returns
 *   a longer sequence; we return [CLS] [SEP] since the output arrays hold max_len.
 */
#include "backbone/tokenizer.h"
#include "util/digest.h"
#include "util/status.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define PB_TOK_MAX_WORD_CHARS 100 /* HF max_input_chars_per_word */

struct pb_tokenizer {
  char *blob;          /* [blob_len] every token's bytes, each followed by a NUL */
  size_t blob_len;
  uint32_t *tok_off;   /* [n] byte offset of token i in blob */
  uint32_t *tok_len;   /* [n] byte length of token i (without the NUL) */
  int n;               /* vocabulary size */
  int32_t *slot_id;    /* [cap] open-addressing table: token id, or -1 for an empty slot */
  uint32_t *slot_hash; /* [cap] full hash of the slot's token */
  uint32_t cap_mask;   /* cap - 1, cap a power of two >= 2n */
  int max_chars;       /* longest token in code points, "##" not counted */
  int lower_case;      /* 1: lower-case + NFD + drop Mn (uncased BERT); 0: cased, NFC only */
  int pad, unk, cls, sep, mask; /* special token ids */
};

/* ---------------------------------------------------------------- hashing (FNV-1a) */

#define FNV_INIT 2166136261u
static inline uint32_t fnv_bytes(uint32_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 16777619u; }
  return h;
}

/* id of the token ("##" if cont) + s[0..n), or -1. */
static int lookup(const pb_tokenizer *tk, const char *s, size_t n, int cont) {
  uint32_t h = FNV_INIT;
  if (cont) h = fnv_bytes(h, "##", 2);
  h = fnv_bytes(h, s, n);
  size_t want = n + (cont ? 2 : 0);
  for (uint32_t i = h & tk->cap_mask;; i = (i + 1) & tk->cap_mask) {
    int32_t id = tk->slot_id[i];
    if (id < 0) return -1;
    if (tk->slot_hash[i] != h || tk->tok_len[id] != want) continue;
    const char *t = tk->blob + tk->tok_off[id];
    if (cont) { if (t[0] != '#' || t[1] != '#') continue; t += 2; }
    if (memcmp(t, s, n) == 0) return id;
  }
}

/* ---------------------------------------------------------------- vocabulary */

int pb_tok_vocab_size(const pb_tokenizer *tk) { return tk ? tk->n : 0; }

int pb_tok_id(const pb_tokenizer *tk, const char *token) {
  if (!tk || !token) return -1;
  size_t n = strlen(token);
  if (n >= 2 && token[0] == '#' && token[1] == '#') return lookup(tk, token + 2, n - 2, 1);
  return lookup(tk, token, n, 0);
}

const char *pb_tok_token(const pb_tokenizer *tk, int id) {
  if (!tk || id < 0 || id >= tk->n) return NULL;
  return tk->blob + tk->tok_off[id];
}

void pb_tok_free(pb_tokenizer *tk) {
  if (!tk) return;
  free(tk->blob); free(tk->tok_off); free(tk->tok_len); free(tk->slot_id); free(tk->slot_hash);
  free(tk);
}

static int count_chars(const char *s, size_t n) { /* code points = non-continuation bytes */
  int c = 0;
  for (size_t i = 0; i < n; i++) c += ((uint8_t)s[i] & 0xC0) != 0x80;
  return c;
}

int pb_tok_load_mem(pb_tokenizer **out, const char *data, size_t nbytes, const char *name) {
  if (!out) return pb_set_error(PB_ERR_ARG, "tokenizer: NULL output pointer");
  *out = NULL;
  if (!name) name = "(vocab)";
  if (!data && nbytes) return pb_set_error(PB_ERR_ARG, "%s: NULL vocabulary data", name);
  if (nbytes >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) { data += 3; nbytes -= 3; }
  if (nbytes == 0) return pb_set_error(PB_ERR_FORMAT, "%s: empty vocabulary file", name);
  if (nbytes > 0x7fffffffu) return pb_set_error(PB_ERR_FORMAT, "%s: vocabulary file too large", name);

  /* count lines: terminators \n, \r\n, \r; a final unterminated line counts */
  size_t lines = 0;
  for (size_t i = 0; i < nbytes; i++) {
    if (data[i] == '\n') lines++;
    else if (data[i] == '\r') { lines++; if (i + 1 < nbytes && data[i + 1] == '\n') i++; }
  }
  if (data[nbytes - 1] != '\n' && data[nbytes - 1] != '\r') lines++;
  if (lines > 0x3fffffff) return pb_set_error(PB_ERR_FORMAT, "%s: too many lines", name);

  pb_tokenizer *tk = calloc(1, sizeof *tk);
  if (!tk) return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", name);
  tk->n = (int)lines;
  uint32_t cap = 16;
  while (cap < 2 * lines) cap <<= 1;
  tk->cap_mask = cap - 1;
  tk->blob = malloc(nbytes + lines + 1);
  tk->tok_off = malloc(lines * sizeof *tk->tok_off);
  tk->tok_len = malloc(lines * sizeof *tk->tok_len);
  tk->slot_id = malloc((size_t)cap * sizeof *tk->slot_id);
  tk->slot_hash = malloc((size_t)cap * sizeof *tk->slot_hash);
  if (!tk->blob || !tk->tok_off || !tk->tok_len || !tk->slot_id || !tk->slot_hash) {
    pb_tok_free(tk);
    return pb_set_error(PB_ERR_NOMEM, "%s: out of memory for %zu tokens", name, lines);
  }
  memset(tk->slot_id, 0xff, (size_t)cap * sizeof *tk->slot_id);

  size_t pos = 0, bl = 0;
  for (int id = 0; id < tk->n; id++) {
    size_t start = pos;
    while (pos < nbytes && data[pos] != '\n' && data[pos] != '\r') pos++;
    size_t len = pos - start;
    if (pos < nbytes) { if (data[pos] == '\r' && pos + 1 < nbytes && data[pos + 1] == '\n') pos++; pos++; }
    memcpy(tk->blob + bl, data + start, len);
    tk->blob[bl + len] = 0;
    tk->tok_off[id] = (uint32_t)bl;
    tk->tok_len[id] = (uint32_t)len;
    bl += len + 1;
    const char *t = data + start;
    int cont = len >= 2 && t[0] == '#' && t[1] == '#';
    int nch = count_chars(t, len) - (cont ? 2 : 0);
    if (nch > tk->max_chars) tk->max_chars = nch;
    uint32_t h = fnv_bytes(FNV_INIT, t, len);
    uint32_t i = h & tk->cap_mask;
    for (;; i = (i + 1) & tk->cap_mask) { /* a later duplicate replaces the earlier id */
      int32_t o = tk->slot_id[i];
      if (o < 0) break;
      if (tk->slot_hash[i] == h && tk->tok_len[o] == len && memcmp(tk->blob + tk->tok_off[o], t, len) == 0) break;
    }
    tk->slot_id[i] = id;
    tk->slot_hash[i] = h;
  }
  tk->blob_len = bl;
  tk->lower_case = 1;

  static const char *names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  int *dst[5] = {&tk->pad, &tk->unk, &tk->cls, &tk->sep, &tk->mask};
  for (int k = 0; k < 5; k++) {
    *dst[k] = pb_tok_id(tk, names[k]);
    if (*dst[k] < 0) {
      pb_tok_free(tk);
      return pb_set_error(PB_ERR_FORMAT, "%s: vocabulary has no %s token", name, names[k]);
    }
  }
  *out = tk;
  return PB_OK;
}

int pb_tok_load(pb_tokenizer **out, const char *path) { return pb_tok_load_digest(out, path, NULL); }

int pb_tok_load_digest(pb_tokenizer **out, const char *path, char sha256[65]) {
  if (sha256) sha256[0] = '\0';
  if (!out) return pb_set_error(PB_ERR_ARG, "tokenizer: NULL output pointer");
  *out = NULL;
  if (!path) return pb_set_error(PB_ERR_ARG, "tokenizer: NULL vocabulary path");
  FILE *f = fopen(path, "rb");
  if (!f)
    return pb_set_error(errno == ENOENT ? PB_ERR_NOTFOUND : PB_ERR_IO, "%s: cannot open vocabulary: %s",
                        path, strerror(errno));
  size_t cap = 1 << 20, n = 0;
  char *buf = malloc(cap);
  if (!buf) { fclose(f); return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); }
  for (;;) {
    if (n == cap) {
      char *nb = cap > ((size_t)1 << 31) ? NULL : realloc(buf, cap * 2);
      if (!nb) { free(buf); fclose(f); return pb_set_error(PB_ERR_NOMEM, "%s: out of memory", path); }
      buf = nb; cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  int err = ferror(f);
  fclose(f);
  if (err) { free(buf); return pb_set_error(PB_ERR_IO, "%s: read error", path); }
  int rc = pb_tok_load_mem(out, buf, n, path);
  if (rc == PB_OK && sha256 && (rc = pb_sha256_hex(buf, n, sha256)) != PB_OK) {
    pb_tok_free(*out);
    *out = NULL;
  }
  free(buf);
  return rc;
}

void pb_tok_set_lower_case(pb_tokenizer *tk, int lower_case) {
  if (tk) tk->lower_case = lower_case != 0;
}

int pb_tok_lower_case(const pb_tokenizer *tk) { return tk ? tk->lower_case : 1; }

int pb_tok_first_cased(const pb_tokenizer *tk) {
  if (!tk) return -1;
  for (int id = 0; id < tk->n; id++) {
    const uint8_t *t = (const uint8_t *)tk->blob + tk->tok_off[id];
    utf8proc_ssize_t len = (utf8proc_ssize_t)tk->tok_len[id];
    if (len >= 3 && t[0] == '[' && t[len - 1] == ']') continue; /* [CLS], [unused0], ... */
    for (utf8proc_ssize_t i = 0; i < len;) {
      if (t[i] < 128) {
        if (t[i] >= 'A' && t[i] <= 'Z') return id;
        i++;
        continue;
      }
      utf8proc_int32_t c;
      utf8proc_ssize_t used = utf8proc_iterate(t + i, len - i, &c);
      if (used <= 0) { i++; continue; }
      if (utf8proc_tolower(c) != c) return id;
      i += used;
    }
  }
  return -1;
}

/* ---------------------------------------------------------------- character classes */

enum { C_WORD = 0, C_SPACE = 1, C_DROP = 2, C_PUNCT = 3 };

/* ASCII: class before punctuation splitting. 0x00-0x1F except \t\n\r, and 0x7F, are Cc. */
static inline int ascii_class(int c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return C_SPACE;
  if (c < 32 || c == 127) return C_DROP;
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
    return C_PUNCT;
  return C_WORD;
}

/* clean-text class of a non-ASCII code point: C_DROP (U+FFFD, any C*), C_SPACE (Zs, and
 * U+2028/U+2029 which Python's str.split() treats as whitespace), else C_WORD. */
static int clean_class(int32_t c) {
  if (c == 0xFFFD) return C_DROP;
  if (c == 0x2028 || c == 0x2029) return C_SPACE;
  switch (utf8proc_category(c)) {
  case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
  case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: return C_DROP;
  case UTF8PROC_CATEGORY_ZS: return C_SPACE;
  default: return C_WORD;
  }
}

static int is_chinese(int32_t c) { /* HF BasicTokenizer._is_chinese_char */
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_punct(int32_t c) {
  if (c < 128) return ascii_class(c) == C_PUNCT;
  utf8proc_category_t k = utf8proc_category(c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* ---------------------------------------------------------------- scratch buffers */

typedef struct {
  int *ids; int n, cap;          /* output ids [cap] */
  int32_t *word; int wn, wcap;   /* current raw word, code points [wcap] */
  int word_ascii;                /* current word is all ASCII */
  int32_t *dec; int dcap;        /* lowered + NFD code points [dcap] */
  char *bytes; int bcap;         /* UTF-8 of one piece/word [bcap] */
  int *off; int ocap;            /* byte offset of each code point boundary [ocap] */
  int err;                       /* PB_ERR_NOMEM once an allocation failed */
} scratch;

static int grow(void **p, int *cap, int need, size_t elem, scratch *s) {
  if (need <= *cap) return 1;
  if (s->err) return 0;
  int nc = *cap ? *cap : 64;
  while (nc < need) { if (nc > (1 << 29)) { s->err = PB_ERR_NOMEM; return 0; } nc *= 2; }
  void *q = realloc(*p, (size_t)nc * elem);
  if (!q) { s->err = PB_ERR_NOMEM; return 0; }
  *p = q; *cap = nc;
  return 1;
}

static void push_id(scratch *s, int id) {
  if (!grow((void **)&s->ids, &s->cap, s->n + 1, sizeof(int), s)) return;
  s->ids[s->n++] = id;
}

/* UTF-8 encode cps[0..n) into s->bytes with s->off[0..n] boundaries; returns byte length. */
static int encode(scratch *s, const int32_t *cps, int n) {
  if (!grow((void **)&s->bytes, &s->bcap, 4 * n + 1, 1, s) ||
      !grow((void **)&s->off, &s->ocap, n + 1, sizeof(int), s))
    return -1;
  int b = 0;
  for (int i = 0; i < n; i++) {
    s->off[i] = b;
    b += (int)utf8proc_encode_char(cps[i], (utf8proc_uint8_t *)s->bytes + b);
  }
  s->off[n] = b;
  return b;
}

/* ---------------------------------------------------------------- WordPiece */

static void wordpiece(const pb_tokenizer *tk, scratch *s, const int32_t *cps, int n) {
  if (n <= 0) return;
  if (n > PB_TOK_MAX_WORD_CHARS) { push_id(s, tk->unk); return; }
  if (encode(s, cps, n) < 0) return;
  int mark = s->n, start = 0;
  while (start < n) {
    int end = n, id = -1;
    if (end - start > tk->max_chars) end = start + tk->max_chars;
    for (; end > start; end--) {
      id = lookup(tk, s->bytes + s->off[start], (size_t)(s->off[end] - s->off[start]), start > 0);
      if (id >= 0) break;
    }
    if (id < 0) { s->n = mark; push_id(s, tk->unk); return; }
    push_id(s, id);
    start = end;
  }
}

/* Uncased: lower-case, NFD + drop Mn; cased: NFC only. Then split on punctuation and
 * WordPiece: one whitespace word. */
static void flush_word(const pb_tokenizer *tk, scratch *s) {
  int n = s->wn;
  if (n == 0) return;
  s->wn = 0;
  int32_t *w = s->word;
  int lower = tk->lower_case;
  if (s->word_ascii) { /* ASCII is NFC and NFD already */
    if (lower)
      for (int i = 0; i < n; i++) if (w[i] >= 'A' && w[i] <= 'Z') w[i] += 32;
  } else {
    if (lower)
      for (int i = 0; i < n; i++) w[i] = utf8proc_tolower(w[i]);
    int blen = encode(s, w, n);
    if (blen < 0) return;
    /* canonical decomposition (+ ordering); cased then recomposes it: NFC */
    utf8proc_option_t opt = (utf8proc_option_t)(UTF8PROC_STABLE | (lower ? UTF8PROC_DECOMPOSE : UTF8PROC_COMPOSE));
    utf8proc_ssize_t m;
    for (;;) {
      m = utf8proc_decompose((const utf8proc_uint8_t *)s->bytes, blen, s->dec, s->dcap, opt);
      if (m < 0) return; /* cannot happen: the bytes were encoded from valid code points */
      if (m <= s->dcap) break;
      if (!grow((void **)&s->dec, &s->dcap, (int)m, sizeof(int32_t), s)) return;
    }
    if (!lower) {
      m = utf8proc_normalize_utf32(s->dec, m, opt);
      if (m < 0) return; /* cannot happen: composition only shortens the buffer */
    }
    n = 0; /* back into w (decomposition may have grown); uncased keeps all but category Mn */
    if (!grow((void **)&s->word, &s->wcap, (int)m, sizeof(int32_t), s)) return;
    w = s->word;
    for (utf8proc_ssize_t i = 0; i < m; i++)
      if (!lower || utf8proc_category(s->dec[i]) != UTF8PROC_CATEGORY_MN) w[n++] = s->dec[i];
  }
  s->word_ascii = 1;
  int ps = 0; /* start of the current non-punctuation piece */
  for (int i = 0; i < n; i++) {
    if (is_punct(w[i])) {
      wordpiece(tk, s, w + ps, i - ps);
      wordpiece(tk, s, w + i, 1);
      ps = i + 1;
    }
  }
  wordpiece(tk, s, w + ps, n - ps);
}

static void add_char(scratch *s, int32_t c) {
  if (!grow((void **)&s->word, &s->wcap, s->wn + 1, sizeof(int32_t), s)) return;
  s->word[s->wn++] = c;
  if (c >= 128) s->word_ascii = 0;
}

/* the literal special tokens HF splits out before anything else */
static int match_special(const pb_tokenizer *tk, const char *p, int *id) {
  static const char *lit[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  static const int len[5] = {5, 5, 5, 5, 6};
  for (int k = 0; k < 5; k++) {
    if (strncmp(p, lit[k], (size_t)len[k]) == 0) {
      const int ids[5] = {tk->pad, tk->unk, tk->cls, tk->sep, tk->mask};
      *id = ids[k];
      return len[k];
    }
  }
  return 0;
}

static void run(const pb_tokenizer *tk, const char *text, scratch *s) {
  s->word_ascii = 1;
  const uint8_t *p = (const uint8_t *)text;
  size_t len = strlen(text), i = 0;
  while (i < len && !s->err) {
    uint8_t b = p[i];
    if (b < 128) {
      int sid, sl;
      if (b == '[' && (sl = match_special(tk, text + i, &sid)) > 0) {
        flush_word(tk, s);
        push_id(s, sid);
        i += (size_t)sl;
        continue;
      }
      i++;
      int k = ascii_class(b);
      if (k == C_SPACE) flush_word(tk, s);
      else if (k != C_DROP) add_char(s, b); /* punctuation is split after normalisation */
      continue;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t used = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
    if (used <= 0) { i++; continue; } /* invalid byte: U+FFFD, dropped */
    i += (size_t)used;
    if (is_chinese(c)) {
      flush_word(tk, s);
      add_char(s, c);
      flush_word(tk, s);
      continue;
    }
    int k = clean_class(c);
    if (k == C_SPACE) flush_word(tk, s);
    else if (k == C_WORD) add_char(s, c);
  }
  flush_word(tk, s);
}

static void scratch_free(scratch *s) { free(s->ids); free(s->word); free(s->dec); free(s->bytes); free(s->off); }

/* ---------------------------------------------------------------- public encoding */

int pb_tok_tokenize(const pb_tokenizer *tk, const char *text, int *ids, int cap, int *n_out) {
  if (!tk || !n_out || cap < 0 || (cap > 0 && !ids))
    return pb_set_error(PB_ERR_ARG, "tokenizer: bad argument to pb_tok_tokenize");
  *n_out = 0;
  scratch s = {0};
  if (text) run(tk, text, &s);
  if (s.err) { scratch_free(&s); return pb_set_error(s.err, "tokenizer: out of memory"); }
  int k = s.n < cap ? s.n : cap;
  if (k > 0) memcpy(ids, s.ids, (size_t)k * sizeof(int));
  *n_out = s.n;
  scratch_free(&s);
  return PB_OK;
}

int pb_tok_encode_pair(const pb_tokenizer *tk, const char *a, const char *b, int max_len,
                       int *ids, int *types, int *mask, int *len_out) {
  int nspec = b ? 3 : 2;
  if (!tk || !ids || max_len < nspec)
    return pb_set_error(PB_ERR_ARG, "tokenizer: pb_tok_encode_pair needs a tokenizer, ids and max_len >= %d (got %d)",
                        nspec, max_len);
  scratch sa = {0}, sb = {0};
  if (a) run(tk, a, &sa);
  if (b) run(tk, b, &sb);
  if (sa.err || sb.err) {
    scratch_free(&sa); scratch_free(&sb);
    return pb_set_error(PB_ERR_NOMEM, "tokenizer: out of memory");
  }
  int la = sa.n, lb = sb.n;
  int remove = la + lb + nspec - max_len;
  if (remove > 0) {
    if (!b) {
      la -= remove;
    } else { /* HF truncate_sequences, LONGEST_FIRST, truncation_side right */
      int diff = la > lb ? la - lb : lb - la;
      int first = remove < diff ? remove : diff, second = remove - first;
      int cut_a, cut_b;
      if (la > lb) { cut_a = first + second / 2; cut_b = second - second / 2; }
      else { cut_a = second / 2; cut_b = first + second - second / 2; }
      la -= cut_a; lb -= cut_b;
    }
  }
  int t = 0;
  ids[t] = tk->cls; if (types) types[t] = 0; t++;
  for (int i = 0; i < la; i++, t++) { ids[t] = sa.ids[i]; if (types) types[t] = 0; }
  ids[t] = tk->sep; if (types) types[t] = 0; t++;
  if (b) {
    for (int i = 0; i < lb; i++, t++) { ids[t] = sb.ids[i]; if (types) types[t] = 1; }
    ids[t] = tk->sep; if (types) types[t] = 1; t++;
  }
  int real = t;
  for (; t < max_len; t++) { ids[t] = tk->pad; if (types) types[t] = 0; }
  if (mask) for (int i = 0; i < max_len; i++) mask[i] = i < real;
  if (len_out) *len_out = real;
  scratch_free(&sa); scratch_free(&sb);
  return PB_OK;
}
