/* BERT WordPiece tokenizer, equivalent to Hugging Face's (slow) BertTokenizer with
 * do_lower_case=True, tokenize_chinese_chars=True, strip_accents=None (follows lowercasing),
 * max_input_chars_per_word=100 — i.e. bert-base-uncased; or, after
 * pb_tok_set_lower_case(tk, 0), the same with do_lower_case=False (bert-base-cased).
 *
 * Pipeline for one text (HF semantics, see tokenizer.c for the details):
 *   0. the literal special tokens "[PAD]" "[UNK]" "[CLS]" "[SEP]" "[MASK]" (exact case) are
 *      split out first and map to their ids (HF's added-token trie);
 *   1. clean: drop U+0000, U+FFFD and every category C* code point except \t \n \r;
 *      whitespace (space, \t \n \r, category Zs, U+2028, U+2029) separates words;
 *   2. every CJK ideograph (HF _is_chinese_char ranges) becomes a word of its own;
 *   3. per word: lower-case each code point (utf8proc_tolower), NFD, drop category Mn;
 *      cased (lower_case 0): none of these, only NFC (HF's slow tokenizer NFC-normalises
 *      the text before splitting words; with lower-casing the NFD makes that a no-op);
 *   4. split on punctuation (ASCII 33-47, 58-64, 91-96, 123-126, or category P*): each
 *      punctuation code point is a word of its own;
 *   5. WordPiece: greedy longest-match-first with "##" continuations; a word longer than
 *      100 code points, or one with any unmatched piece, becomes a single [UNK].
 * Invalid UTF-8 bytes are decoded as U+FFFD and therefore dropped (the same as Python's
 * bytes.decode(errors="replace") followed by BertTokenizer). Never crashes on any input.
 *
 * A loaded tokenizer is read-only: all functions below may be called concurrently. */
#ifndef PB_TOKENIZER_H
#define PB_TOKENIZER_H

#include <stddef.h>

typedef struct pb_tokenizer pb_tokenizer;

/* Loads vocab.txt: one token per line, id = 0-based line number. Accepts \n, \r\n and \r
 * line ends (Python universal newlines), a missing final newline and a leading UTF-8 BOM.
 * Duplicate tokens: the later line wins for token -> id (as HF's dict). Errors (status +
 * pb_set_error naming the file): missing/unreadable file (PB_ERR_NOTFOUND / PB_ERR_IO),
 * empty file or a missing [PAD] [UNK] [CLS] [SEP] [MASK] (PB_ERR_FORMAT). *out is NULL on
 * error. */
int pb_tok_load(pb_tokenizer **out, const char *vocab_path);
/* pb_tok_load that also gives the SHA-256 (util/digest.h) of exactly the bytes it read
 * (so a file replaced meanwhile, or a pipe, cannot give a hash of other bytes); sha256 may
 * be NULL; it is "" on error. */
int pb_tok_load_digest(pb_tokenizer **out, const char *vocab_path, char sha256[65]);
/* Same from memory: data[nbytes] holds the file's content; name is used in messages. */
int pb_tok_load_mem(pb_tokenizer **out, const char *data, size_t nbytes, const char *name);
void pb_tok_free(pb_tokenizer *tk); /* NULL is fine */

/* do_lower_case: 1 (the default after loading) = uncased BERT (lower-case + strip accents),
 * 0 = cased BERT (text kept as is: "Café" stays "Café"). Any non-zero value
 * means 1. Not thread-safe: set it before sharing the tokenizer; NULL tk is ignored. */
void pb_tok_set_lower_case(pb_tokenizer *tk, int lower_case);
int pb_tok_lower_case(const pb_tokenizer *tk); /* 1 or 0 (1 for NULL) */
/* The vocabulary's casing convention: the id of the first token that lower-casing
 * (utf8proc_tolower per code point) would change, skipping bracketed tokens such as [CLS]
 * or [unused0]; -1 when there is none, i.e. an uncased vocabulary (bert-base-uncased:
 * -1; bert-base-cased: "The" and the like). U+211D (Lu without a lower-case form, in
 * bert-base-uncased) does not count. */
int pb_tok_first_cased(const pb_tokenizer *tk);

int pb_tok_vocab_size(const pb_tokenizer *tk);
/* id of an exact vocabulary entry (e.g. "[CLS]", "##ing"), or -1 when absent. */
int pb_tok_id(const pb_tokenizer *tk, const char *token);
/* the token string of id (NUL-terminated, owned by tk), or NULL when id is out of range. */
const char *pb_tok_token(const pb_tokenizer *tk, int id);

/* Tokenizes text (NUL-terminated UTF-8; NULL = empty) into WordPiece ids, no [CLS]/[SEP].
 * ids: [cap] output; like snprintf, at most cap ids are written and *n_out receives the
 * full count, so a caller may retry with cap = *n_out. Returns PB_OK, PB_ERR_ARG (tk or
 * n_out NULL, cap < 0) or PB_ERR_NOMEM. */
int pb_tok_tokenize(const pb_tokenizer *tk, const char *text, int *ids, int cap, int *n_out);

/* BERT input for one sentence (b == NULL) or a pair, as HF tokenizer(a, b,
 * max_length=max_len, truncation=True ('longest_first'), padding='max_length'):
 *   [CLS] a [SEP]            or   [CLS] a [SEP] b [SEP]
 * Truncation (HF truncate_sequences, longest_first, right side): with r = tokens to
 * remove, the longer of a/b first loses min(r, |len_a - len_b|) tokens; the rest is split
 * evenly, an odd one coming off b (a gets ceil, b floor of what remains; ties cut b first).
 * Single sentences just lose their tail.
 * Outputs, each [max_len]: ids (padded with [PAD]'s id), types (0 for [CLS], a and its
 * [SEP]; 1 for b and its [SEP]; 0 for padding), mask (1 real token, 0 padding); any of
 * types/mask may be NULL. *len_out (may be NULL) = number of real tokens.
 * Returns PB_ERR_ARG when max_len < 2 (single) or < 3 (pair). */
int pb_tok_encode_pair(const pb_tokenizer *tk, const char *a, const char *b, int max_len,
                       int *ids, int *types, int *mask, int *len_out);

#endif
