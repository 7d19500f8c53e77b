#!/usr/bin/env python3
"""Writes the small seed corpora under fuzz/corpus/<target>/ (synthetic content only: no GLUE
rows are copied into the repo). Re-run after changing a layout: python3 fuzz/make_seeds.py"""
import json, os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
C = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(C, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- safetensors
def st(tensors, meta=None, pad=True):
    hdr, blob = {}, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob

f32 = lambda *v: struct.pack("<%df" % len(v), *v)
put("fuzz_safetensors", "f32_meta", st([("a.weight", "F32", [2, 2], f32(1, 2, 3, 4)), ("b", "F32", [2], f32(5, 6))],
                                       {"format": "pt"}))
put("fuzz_safetensors", "task_file", st([("classifier.bias", "F32", [2], f32(0.5, -0.5))],
                                        {"format": "peftbench-task", "format_version": "1", "method": "lora",
                                         "task": "sst2", "seed": "0", "max_len": "32"}))
put("fuzz_safetensors", "dtypes", st([("h", "F16", [3], struct.pack("<3H", 0x3c00, 0x7c00, 0x0001)),
                                      ("bf", "BF16", [1], struct.pack("<H", 0x3f80)),
                                      ("d", "F64", [1], struct.pack("<d", 2.5)),
                                      ("i", "I64", [1, 1], struct.pack("<q", -7)),
                                      ("u", "U8", [2], b"\x01\xff"), ("q", "BOOL", [1], b"\x01"),
                                      ("e", "F8_E4M3", [1], b"\x38"), ("s", "F32", [], f32(9)),
                                      ("z", "F32", [0, 4], b"")]))
put("fuzz_safetensors", "empty_header", struct.pack("<Q", 2) + b"{}")
put("fuzz_safetensors", "truncated", st([("a", "F32", [4], f32(1, 2, 3, 4))])[:-5])
put("fuzz_safetensors", "huge_len", struct.pack("<Q", 1 << 62) + b"{}")

# ---- config.json
base = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 99,
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48,
        "max_position_embeddings": 40, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "position_embedding_type": "absolute", "num_labels": 3}
put("fuzz_config", "full", json.dumps(base, indent=2))
put("fuzz_config", "minimal", json.dumps({k: base[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                                 "num_attention_heads", "intermediate_size")}))
put("fuzz_config", "bad_types", '{"vocab_size": "99", "hidden_size": 32.5, "num_hidden_layers": -1}')
put("fuzz_config", "not_object", "[1, 2, 3]")

# ---- GLUE: byte 0 = layout index (tasks in GLUE order, splits in registry order)
layouts = []  # (task, split, text)
S, P = "a fine , moving film .", "is it good ?"
layouts += [("cola", "train", "src1\t1\t\tThe dog barked.\nsrc1\t0\t*\tDog the barked.\n"),
            ("cola", "dev", "src2\t1\t\tShe left.\n"),
            ("cola", "test", "index\tsentence\n0\tHe ran.\n")]
layouts += [("sst2", "train", "sentence\tlabel\n%s \t1\nboring \t0\n" % S),
            ("sst2", "dev", "sentence\tlabel\n%s\t1\n" % S),
            ("sst2", "test", "index\tsentence\n0\t%s\n" % S)]
layouts += [("mrpc", "train", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said so .\t\"He said it .\n"),
            ("mrpc", "dev", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n0\t3\t4\tA b .\tC d .\r\n"),
            ("mrpc", "test", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t5\t6\tX .\tY .\n")]
stsb_h = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
layouts += [("stsb", "train", stsb_h + "0\tmain\tf\t2012\t0\tnone\tnone\tA man runs.\tA man is running.\t4.750\n"),
            ("stsb", "dev", stsb_h + "0\tmain\tf\t2012\t0\tnone\tnone\tA.\tB.\t0.000\n1\tm\tf\t2012\t1\tn\tn\tC.\tD.\t5\n"),
            ("stsb", "test", stsb_h.replace("\tscore", "") + "0\tmain\tf\t2012\t0\tnone\tnone\tA.\tB.\n")]
qqp_h = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
layouts += [("qqp", "train", qqp_h + "0\t1\t2\tHow old?\tWhat age?\t1\n1\t3\t4\tWhy?\n"),
            ("qqp", "dev", qqp_h + "0\t1\t2\tHow old?\tWhat age?\t0\n"),
            ("qqp", "test", "id\tquestion1\tquestion2\n0\tHow?\tWhy?\n")]
mh = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"
mrow = "0\t1\t1e\tgov\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tThe cat sat.\tA cat sat."
layouts += [("mnli", "train", mh + "\tlabel1\tgold_label\n" + mrow + "\tneutral\tneutral\n"),
            ("mnli", "dev_matched", mh + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n" + mrow +
             "\tentailment\tentailment\tneutral\tentailment\tentailment\tentailment\n"),
            ("mnli", "dev_mismatched", mh + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n" + mrow +
             "\tcontradiction\tcontradiction\tneutral\tcontradiction\tcontradiction\tcontradiction\n"),
            ("mnli", "test_matched", mh + "\n" + mrow + "\n"),
            ("mnli", "test_mismatched", mh + "\n" + mrow + "\n")]
layouts += [("qnli", "train", "index\tquestion\tsentence\tlabel\n0\tWho?\tHim.\tentailment\n"),
            ("qnli", "dev", "index\tquestion\tsentence\tlabel\n0\tWho?\tNobody.\tnot_entailment\n"),
            ("qnli", "test", "index\tquestion\tsentence\n0\tWho?\tHim.\n")]
for t, lab in (("rte", ("entailment", "not_entailment")), ("wnli", ("0", "1"))):
    layouts += [(t, "train", "index\tsentence1\tsentence2\tlabel\n0\tIt rained.\tIt was wet.\t%s\n" % lab[0]),
                (t, "dev", "index\tsentence1\tsentence2\tlabel\n0\tIt rained.\tIt was dry.\t%s\n" % lab[1]),
                (t, "test", "index\tsentence1\tsentence2\n0\tIt rained.\tIt was wet.\n")]
assert len(layouts) == 29, len(layouts)
for i, (t, sp, text) in enumerate(layouts):
    put("fuzz_glue", "%02d_%s_%s" % (i, t, sp), bytes([i]) + text.encode())
put("fuzz_glue", "bad_utf8", bytes([3]) + b"sentence\tlabel\nbad \xff\xfe text\t1\n")
put("fuzz_glue", "skip_malformed", bytes([12 + 2 * 29]) + (qqp_h + "0\t1\t2\tq\n1\t1\t2\ta\tb\t1\n").encode())

# ---- tokenizer: byte 0 = mode (low 2 bits) | (max_len - 2) << 2; 0xFF separates a and b
put("fuzz_tokenizer", "single", bytes([0 | (30 << 2)]) + "Hello, World! It's a test.".encode())
put("fuzz_tokenizer", "pair", bytes([1 | (14 << 2)]) + "the quick brown fox".encode() + b"\xff" + b"jumps over the lazy dog")
put("fuzz_tokenizer", "unicode", bytes([2 | (63 << 2)]) + "Café naïve 東京 Ελληνικά ﬁ \u2028 [CLS] x[SEP]y".encode()
    + b"\xff" + "ＡＢＣ ｱｲｳ \u00a0 \u200b".encode())
put("fuzz_tokenizer", "bad_utf8", bytes([0 | (10 << 2)]) + b"ab\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 end")
put("fuzz_tokenizer", "long_word", bytes([0 | (5 << 2)]) + b"a" * 150 + b" ok")
put("fuzz_tokenizer", "vocab", bytes([3]) + b"\xef\xbb\xbf[PAD]\r\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##llo\nh\nworld\n,\r[CLS]")

# ---- results JSONL
rec = {"schema": "peftbench-result/1", "task": "sst2", "method": "lora", "seed": 0,
       "metrics": {"splits": {"dev": {"accuracy": 0.5}}, "score": 0.5, "main": "accuracy"},
       "params": {"trainable": 1234}, "commit": None}
line = json.dumps(rec, separators=(",", ":"))
put("fuzz_results", "two_records", line + "\n" + line.replace("lora", "full") + "\n")
put("fuzz_results", "torn_last", line + "\n" + line[: len(line) // 2])
put("fuzz_results", "junk", "[1,2]\n\n{\"a\":1}\nnot json\n{\"b\":")
