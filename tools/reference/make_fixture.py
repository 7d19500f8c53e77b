#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that tests/test_reference.c compares the C BERT against.

Run from the repo root with Debian's torch:  /usr/bin/python3 tools/reference/make_fixture.py
(no transformers / safetensors packages needed: both the model and the file writer are here).

Outputs (deterministic; fixed seeds):
  tests/fixtures/tiny_bert/{config.json,vocab.txt,model.safetensors}      C=3 classification checkpoint
  tests/fixtures/tiny_bert_ref.safetensors                                its reference state
  tests/fixtures/tiny_bert_reg/{config.json,vocab.txt,model.safetensors}  C=1 regression checkpoint
  tests/fixtures/tiny_bert_reg_ref.safetensors                            its reference state

The model is the post-LN BERT of shared/DESIGN.md and backbone/bert.h, written out op by op:
  emb = word[ids] + pos[0..T-1] + type[types] -> LayerNorm(eps)
  layer: q,k,v = x W^T + b; scores = q_h k_h^T / sqrt(hd), padded keys (mask 0) set to -1e9;
         softmax; ctx -> attention.output.dense -> + x -> LayerNorm
         -> intermediate.dense -> GELU (erf) -> output.dense -> + residual -> LayerNorm
  pooled = tanh(pooler.dense(h[:, 0])); logits = classifier(pooled)
  loss = mean cross-entropy (C > 1) or mean squared error of logits[:, 0] (C = 1).
Dropout is 0. Parameters are drawn, rounded to float32 (what the checkpoint holds), and all
reference math runs in float64, so the reference carries no fp32 noise of its own.

Reference file tensors (all F32; integer tensors hold exact small ints):
  input_ids, token_type_ids, attention_mask [B,T]; labels [B]; logits [B,C]; loss [1];
  grad.<name> for every parameter (full fine-tuning); adamw_losses [5] (loss before each of 5
  AdamW steps on the same batch: lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on
  tensors with ndim >= 2 only, constant lr); final.<name> for the classifier weight and the
  layer-0 query weight after the 5 steps.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

# ---------------------------------------------------------------- shapes
V, D, L, A, F, P = 99, 32, 2, 4, 48, 40
B, T = 3, 11
LN_EPS = 1e-12
W_STD = 0.2        # large on purpose: activations and gradients are O(1), not trivially small
B_STD = 0.1        # non-zero biases so that a dropped bias shows up
ADAM_STEPS = 5
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
FINAL_NAMES = ["classifier.weight", "bert.encoder.layer.0.attention.self.query.weight"]
# Tolerances the C test applies (stored in the fixture metadata as documentation / single source).
TOLERANCES = {
    # Measured (C fp32 vs this float64 reference): logits 5e-7, loss 0, grads <= 9e-7 relative to
    # max(1, max|ref|), AdamW losses <= 3e-6, final params <= 2e-7. Tight enough that a LayerNorm
    # eps of 1e-5 instead of config's 1e-12 fails (logits move 1.6e-5, grads 2.6e-5 relative).
    "logits_abs": 3e-6,       # max |c - ref| <= tol * max(1, max|ref|)
    "loss_abs": 3e-6,         # |c - ref| <= tol * max(1, |ref|)
    "grad_rel": 1e-5,         # per tensor: max |c - ref| <= tol * max(1, max|ref|)
    "adamw_loss_abs": 2e-5,   # loss before each of the 5 steps
    "final_abs": 5e-6,        # per tensor: max |c - ref| after the 5 steps of lr 1e-3
}

# written by make_bf16_fixture.py, which keeps its own size budget (the d=128 checkpoint and its
# JSON reference are larger than this 1 MiB budget for everything else)
BF16_OUTPUTS = ("tiny_bert_bf16_ref.json", "small_bert128", "small_bert128_bf16_ref.json")


def fixtures_bytes(fx):
    """bytes under tests/fixtures, less BF16_OUTPUTS"""
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(fx) for f in fs
               if os.path.relpath(os.path.join(dp, f), fx).split(os.sep)[0] not in BF16_OUTPUTS)


SPECIALS = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = 0, 3, 4, 5, 6


def make_vocab():
    words = ["the", "a", "of", "and", "to", "in", "is", "was", "it", "for", "on", "that", "with",
             "as", "movie", "film", "good", "bad", "great", "not", "very", "story", "plot", "acting",
             "fun", "dull", "best", "worst", "love", "hate", "cat", "dog", "sat", "mat", "ran", "big",
             "small", "red", "blue", "green", "one", "two", "three", "man", "woman", "child", "house",
             "car", "road", "tree", "water", "fire", "sun", "moon", "star", "day", "night", "happy",
             "sad", "old", "new", "##s", "##ing", "##ed", "##ly", "##er", "##est", "un", "##able",
             "play", "run", "walk", "talk", "read", "write", ",", ".", "!", "?", "'", "-", "(", ")",
             "0", "1", "2", "3", "4", "5", "6", "7", "8"]
    vocab = SPECIALS + words
    assert len(vocab) == V and len(set(vocab)) == V, len(vocab)
    return vocab


# ---------------------------------------------------------------- safetensors writer
def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, np.float32 array). Little-endian F32 only."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr, dtype="<f4")
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for raw in blobs:
            f.write(raw)


# ---------------------------------------------------------------- parameters
def param_specs(C, V=V, D=D, P=P, L=L, F=F):
    """(name, shape, kind) in HF order (the C table's declaration order, backbone/bert.c
    pb_model_declare); kind in {w, b, lnw, lnb}. Shapes default to this fixture's."""
    s = [("bert.embeddings.word_embeddings.weight", (V, D), "w"),
         ("bert.embeddings.position_embeddings.weight", (P, D), "w"),
         ("bert.embeddings.token_type_embeddings.weight", (2, D), "w"),
         ("bert.embeddings.LayerNorm.weight", (D,), "lnw"),
         ("bert.embeddings.LayerNorm.bias", (D,), "lnb")]
    for l in range(L):
        p = f"bert.encoder.layer.{l}."
        for n in ("query", "key", "value"):
            s += [(p + f"attention.self.{n}.weight", (D, D), "w"), (p + f"attention.self.{n}.bias", (D,), "b")]
        s += [(p + "attention.output.dense.weight", (D, D), "w"), (p + "attention.output.dense.bias", (D,), "b"),
              (p + "attention.output.LayerNorm.weight", (D,), "lnw"),
              (p + "attention.output.LayerNorm.bias", (D,), "lnb"),
              (p + "intermediate.dense.weight", (F, D), "w"), (p + "intermediate.dense.bias", (F,), "b"),
              (p + "output.dense.weight", (D, F), "w"), (p + "output.dense.bias", (D,), "b"),
              (p + "output.LayerNorm.weight", (D,), "lnw"), (p + "output.LayerNorm.bias", (D,), "lnb")]
    s += [("bert.pooler.dense.weight", (D, D), "w"), ("bert.pooler.dense.bias", (D,), "b"),
          ("classifier.weight", (C, D), "w"), ("classifier.bias", (C,), "b")]
    return s


def init_params(C, seed):
    g = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape, kind in param_specs(C):
        n = torch.randn(shape, generator=g, dtype=torch.float64)
        if kind == "w":
            v = W_STD * n
        elif kind == "b":
            v = B_STD * n
        elif kind == "lnw":
            v = 1.0 + 0.1 * n
        else:
            v = 0.1 * n
        # the checkpoint stores float32: the reference uses exactly those values
        params[name] = v.float().double().requires_grad_(True)
    return params


# ---------------------------------------------------------------- model (float64)
def layernorm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + LN_EPS) * w + b


def linear(x, p, name):
    return x @ p[name + ".weight"].t() + p[name + ".bias"]


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def forward(p, ids, types, mask, C, labels):
    Bn, Tn = ids.shape
    hd = D // A
    x = (p["bert.embeddings.word_embeddings.weight"][ids]
         + p["bert.embeddings.position_embeddings.weight"][torch.arange(Tn)][None, :, :]
         + p["bert.embeddings.token_type_embeddings.weight"][types])
    h = layernorm(x, p["bert.embeddings.LayerNorm.weight"], p["bert.embeddings.LayerNorm.bias"])
    keymask = (mask == 0)[:, None, None, :]  # [B,1,1,T]
    for l in range(L):
        pre = f"bert.encoder.layer.{l}."
        def heads(t):
            return t.view(Bn, Tn, A, hd).transpose(1, 2)  # [B,A,T,hd]
        q = heads(linear(h, p, pre + "attention.self.query"))
        k = heads(linear(h, p, pre + "attention.self.key"))
        v = heads(linear(h, p, pre + "attention.self.value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        s = s.masked_fill(keymask, -1e9)
        a = torch.softmax(s, dim=-1)
        ctx = (a @ v).transpose(1, 2).reshape(Bn, Tn, D)
        o = linear(ctx, p, pre + "attention.output.dense")
        h1 = layernorm(o + h, p[pre + "attention.output.LayerNorm.weight"], p[pre + "attention.output.LayerNorm.bias"])
        f = gelu(linear(h1, p, pre + "intermediate.dense"))
        f = linear(f, p, pre + "output.dense")
        h = layernorm(f + h1, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"])
    pooled = torch.tanh(linear(h[:, 0], p, "bert.pooler.dense"))
    logits = linear(pooled, p, "classifier")
    if C == 1:
        loss = ((logits[:, 0] - labels) ** 2).mean()
    else:
        loss = torch.nn.functional.cross_entropy(logits, labels.long())
    return logits, loss


# ---------------------------------------------------------------- batch
def make_batch():
    """Row 0 fills T (two segments), row 1 is a padded sentence pair, row 2 a short single sentence."""
    rows = [
        ([CLS, 7, 20, 27, 23, SEP, 14, 22, 96, 98, SEP], [0] * 6 + [1] * 5),
        ([CLS, 40, 41, 10, SEP, 52, SEP], [0] * 5 + [1] * 2),
        ([CLS, 29, SEP], [0] * 3),
    ]
    ids = torch.zeros(B, T, dtype=torch.long)
    types = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, (r, ty) in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r)
        types[b, :len(ty)] = torch.tensor(ty)
        mask[b, :len(r)] = 1
    assert int(mask[0].sum()) == T
    return ids, types, mask


# ---------------------------------------------------------------- one fixture
def build(out_dir, ref_path, C, labels, seed, vocab):
    ids, types, mask = make_batch()
    params = init_params(C, seed)
    names = list(params.keys())

    # forward + backward at the initial parameters
    logits, loss = forward(params, ids, types, mask, C, labels)
    loss.backward()
    grads = {n: params[n].grad.detach().clone() for n in names}

    # sanity: not degenerate
    lval = float(loss)
    assert math.isfinite(lval) and lval > 0.05, lval
    if C > 1:
        pr = torch.softmax(logits.detach(), -1)
        assert float(pr.max()) < 0.99 and float(pr.min()) > 0.01, pr
        assert len(set(logits.detach().argmax(-1).tolist())) >= 1
    for n in names:
        assert torch.isfinite(grads[n]).all(), n
    zero_grads = [n for n in names if float(grads[n].abs().max()) == 0.0]
    assert not zero_grads, zero_grads
    # padded keys must not matter: changing a pad id leaves the logits unchanged
    ids2 = ids.clone()
    ids2[2, 5] = 50
    with torch.no_grad():
        l2, _ = forward(params, ids2, types, mask, C, labels)
    assert float((l2 - logits).abs().max()) < 1e-12

    # 5 AdamW steps on the same batch (float64), loss recorded before each step
    work = {n: params[n].detach().clone().requires_grad_(True) for n in names}
    decay = [work[n] for n in names if work[n].ndim >= 2]
    nodecay = [work[n] for n in names if work[n].ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": ADAM["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=ADAM["lr"], betas=ADAM["betas"], eps=ADAM["eps"])
    adam_losses = []
    for _ in range(ADAM_STEPS):
        opt.zero_grad()
        _, lo = forward(work, ids, types, mask, C, labels)
        adam_losses.append(float(lo))
        lo.backward()
        opt.step()
    assert adam_losses[-1] < adam_losses[0], adam_losses

    # float32 run of the same forward/backward: an estimate of fp32 noise to set tolerances by
    p32 = {n: params[n].detach().float().requires_grad_(True) for n in names}
    lg32, lo32 = forward(p32, ids, types, mask, C, labels.float())
    lo32.backward()
    noise = {"logits": float((lg32.double() - logits.detach()).abs().max()),
             "loss": abs(float(lo32) - lval),
             "grad_rel": max(float((p32[n].grad.double() - grads[n]).abs().max()) / max(1.0, float(grads[n].abs().max()))
                             for n in names)}

    # ---- write the checkpoint folder
    os.makedirs(out_dir, exist_ok=True)
    cfg = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": A,
        "intermediate_size": F, "max_position_embeddings": P, "type_vocab_size": 2,
        "layer_norm_eps": LN_EPS, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": W_STD, "pad_token_id": PAD, "position_embedding_type": "absolute",
        "num_labels": C,
        "id2label": {str(i): f"LABEL_{i}" for i in range(C)},
        "label2id": {f"LABEL_{i}": i for i in range(C)},
    }
    if C == 1:
        cfg["problem_type"] = "regression"
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    write_safetensors(os.path.join(out_dir, "model.safetensors"),
                      [(n, params[n].detach().float().numpy()) for n in names],
                      {"format": "pt"})

    # ---- write the reference state
    f32 = lambda t: t.detach().to(torch.float32).numpy()
    tensors = [("input_ids", f32(ids)), ("token_type_ids", f32(types)), ("attention_mask", f32(mask)),
               ("labels", f32(labels)), ("logits", f32(logits)), ("loss", np.array([lval], np.float32))]
    tensors += [("grad." + n, f32(grads[n])) for n in names]
    tensors += [("adamw_losses", np.array(adam_losses, np.float32))]
    tensors += [("final." + n, f32(work[n])) for n in FINAL_NAMES]
    meta = {"magic": "peftbench-fixture", "version": "1", "B": B, "T": T, "C": C,
            "task": "regression" if C == 1 else "classification",
            "checkpoint": os.path.relpath(out_dir, os.path.dirname(ref_path)),
            "adamw": json.dumps({"lr": ADAM["lr"], "beta1": ADAM["betas"][0], "beta2": ADAM["betas"][1],
                                 "eps": ADAM["eps"], "weight_decay": ADAM["weight_decay"],
                                 "steps": ADAM_STEPS, "decay": "ndim>=2"}),
            "tolerances": json.dumps(TOLERANCES),
            "fp32_noise": json.dumps(noise),
            "generator": "tools/reference/make_fixture.py, torch " + torch.__version__}
    write_safetensors(ref_path, tensors, meta)

    print(f"{ref_path}: C={C} loss={lval:.6f} logits[0]={logits[0].tolist()}")
    print(f"  adamw losses: {[round(x, 6) for x in adam_losses]}")
    gmax = {n: float(grads[n].abs().max()) for n in names}
    print(f"  |grad| max over tensors: {max(gmax.values()):.4g}, min of per-tensor max: {min(gmax.values()):.4g}")
    print(f"  fp32-vs-fp64 torch noise: {noise}")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    fx = os.path.normpath(os.path.join(root, "tests", "fixtures"))
    torch.set_num_threads(1)
    vocab = make_vocab()
    build(os.path.join(fx, "tiny_bert"), os.path.join(fx, "tiny_bert_ref.safetensors"),
          C=3, labels=torch.tensor([0.0, 2.0, 1.0], dtype=torch.float64), seed=1234, vocab=vocab)
    build(os.path.join(fx, "tiny_bert_reg"), os.path.join(fx, "tiny_bert_reg_ref.safetensors"),
          C=1, labels=torch.tensor([0.75, -1.25, 2.5], dtype=torch.float64), seed=4321, vocab=vocab)
    total = fixtures_bytes(fx)
    print(f"tests/fixtures total: {total} bytes (less the bf16 references)")
    assert total < 1 << 20


if __name__ == "__main__":
    sys.exit(main())
