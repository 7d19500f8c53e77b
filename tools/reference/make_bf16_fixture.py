#!/usr/bin/python3
"""Writes the bf16 mixed-precision references for `--precision bf16` (issue 20): what PyTorch's
CPU autocast, torch.autocast("cpu", dtype=torch.bfloat16), makes of the fixture BERT, next to the
float64 answer, so that the C side can set its bf16 tolerances relative to torch's own bf16 noise.

Run from the repo root with Debian's torch:  /usr/bin/python3 tools/reference/make_bf16_fixture.py
(no transformers / safetensors packages; deterministic, a few seconds; one thread).

Outputs:
  tests/fixtures/tiny_bert_bf16_ref.json        tiny_bert (d=32) on the batch of tiny_bert_ref.safetensors
  tests/fixtures/small_bert128/{config.json,vocab.txt,model.safetensors}
                                                a generated d=128 checkpoint (V=99 L=2 A=4 F=512 P=40, C=3)
  tests/fixtures/small_bert128_bf16_ref.json    its references (it has no safetensors reference, so the
                                                float64 logits, loss and gradients are in the JSON too)

Each model is evaluated three ways on its batch: float64 (parameters are the checkpoint's float32
values), float32, and float32 parameters under bf16 autocast (forward and loss inside the autocast
context, loss.backward() outside it, as the PyTorch docs recommend; the gradients land in the
float32 parameters). The model is make_fixture.py's post-LN BERT, written with the functional ops
HF's BertModel uses (F.linear, matmul, F.layer_norm, torch.softmax, F.gelu, F.cross_entropy) so
that autocast sees the ops it sees in HF: under torch 1.13 CPU autocast, linear and matmul run in
bf16 (oneDNN), their outputs are bf16 and the element-wise ops that follow them (scale, mask,
softmax, GELU, tanh) stay in bf16; the residual adds promote to float32 (bf16 + fp32 parameter
path), so every LayerNorm runs in float32; cross-entropy is on autocast's float32 list. The dtypes
seen in layer 0 are stored under "autocast_dtypes".

JSON keys: magic, version, checkpoint, reference (or null), B, T, C, logits_bf16 (B x C
row-major), loss_bf16, grad_bf16 {HF name: flat list}, noise {logits_bf16_vs_fp64_max_abs,
loss_bf16_vs_fp64_abs, grad_bf16_vs_fp64_max_rel (per tensor max|g - g64| / max(1, max|g64|), max
over tensors), and the same three for plain float32}, grad_bf16_vs_fp64_rel {name: rel},
autocast_dtypes, torch_kernels, generator; small_bert128 adds logits_fp64, loss_fp64, grad_fp64
and batch {ids, types, mask, labels}. Floats are Python repr (shortest round-trip of the double).
Note: the bf16 numbers depend on the oneDNN kernel (AMX / AVX-512 BF16 / emulation) and thread
count, since the fp32 accumulation order inside the matmuls differs; the fp64 ones do not.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixture as mf  # noqa: E402  (parameter table, init conventions, batch, safetensors writer)

SMALL = dict(V=99, D=128, L=2, A=4, F=512, P=40)
SMALL_C = 3
SMALL_SEED = 128128
SMALL_LABELS = [0, 2, 1]
# size budget of these outputs (make_fixture.py's 1 MiB budget leaves them out, BF16_OUTPUTS)
MAX_BYTES = {"tiny_bert_bf16_ref.json": 512 << 10, "small_bert128": 1_800_000,
             "small_bert128_bf16_ref.json": 2 << 20}


# ---------------------------------------------------------------- safetensors reader (F32 only)
def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        assert h["dtype"] == "F32", (path, name, h["dtype"])
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(raw[base + a:base + b], dtype="<f4").reshape(h["shape"]).copy()
    return out, meta


# ---------------------------------------------------------------- model
def forward(p, cfg, ids, types, mask, labels, trace=None):
    """post-LN BERT of make_fixture.py; p: {HF name: tensor}; returns logits [B,C], loss."""
    Bn, Tn = ids.shape
    D, A, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    eps = cfg["layer_norm_eps"]
    hd = D // A

    def lin(x, name):
        return F.linear(x, p[name + ".weight"], p[name + ".bias"])

    def ln(x, name):
        return F.layer_norm(x, (D,), p[name + ".weight"], p[name + ".bias"], eps)

    def rec(key, t):
        if trace is not None and key not in trace:
            trace[key] = str(t.dtype).replace("torch.", "")
        return t

    x = (p["bert.embeddings.word_embeddings.weight"][ids]
         + p["bert.embeddings.position_embeddings.weight"][torch.arange(Tn)][None, :, :]
         + p["bert.embeddings.token_type_embeddings.weight"][types])
    h = rec("embeddings_layernorm", ln(rec("embeddings_sum", x), "bert.embeddings.LayerNorm"))
    keymask = (mask == 0)[:, None, None, :]
    for l in range(L):
        pre = f"bert.encoder.layer.{l}."

        def heads(t):
            return t.view(Bn, Tn, A, hd).transpose(1, 2)
        q = heads(rec("query_linear", lin(h, pre + "attention.self.query")))
        k = heads(lin(h, pre + "attention.self.key"))
        v = heads(lin(h, pre + "attention.self.value"))
        s = rec("scores_scaled", rec("scores_matmul", q @ k.transpose(-1, -2)) / math.sqrt(hd))
        s = rec("scores_masked", s.masked_fill(keymask, -1e9))
        a = rec("softmax", torch.softmax(s, dim=-1))
        ctx = rec("context_matmul", a @ v).transpose(1, 2).reshape(Bn, Tn, D)
        o = rec("attention_output_linear", lin(ctx, pre + "attention.output.dense"))
        h1 = ln(rec("residual_add", o + h), pre + "attention.output.LayerNorm")
        rec("layernorm", h1)
        f = rec("gelu", F.gelu(rec("intermediate_linear", lin(h1, pre + "intermediate.dense"))))
        f = lin(f, pre + "output.dense")
        h = ln(f + h1, pre + "output.LayerNorm")
    pooled = rec("pooler_tanh", torch.tanh(lin(h[:, 0], "bert.pooler.dense")))
    logits = rec("logits", lin(pooled, "classifier"))
    loss = rec("loss", F.cross_entropy(logits, labels))
    return logits, loss


def evaluate(params64, cfg, batch, mode):
    """mode fp64 | fp32 | bf16 (fp32 parameters, forward + loss under CPU bf16 autocast)."""
    ids, types, mask, labels = batch
    dt = torch.float64 if mode == "fp64" else torch.float32
    p = {n: t.detach().to(dt).clone().requires_grad_(True) for n, t in params64.items()}
    trace = {}
    if mode == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.is_autocast_cpu_enabled()
            logits, loss = forward(p, cfg, ids, types, mask, labels, trace)
    else:
        logits, loss = forward(p, cfg, ids, types, mask, labels)
    loss.backward()  # outside the autocast context
    grads = {n: p[n].grad.detach().double() for n in p}
    for n, g in grads.items():
        assert p[n].grad.dtype == dt and torch.isfinite(g).all(), (mode, n)
    return logits.detach().double(), float(loss), grads, trace


def noise(ref, got):
    l64, lo64, g64 = ref
    l, lo, g = got
    rel = {n: float((g[n] - g64[n]).abs().max()) / max(1.0, float(g64[n].abs().max())) for n in g64}
    return float((l - l64).abs().max()), abs(lo - lo64), max(rel.values()), rel


def flat(t):
    return t.detach().double().flatten().tolist()


# ---------------------------------------------------------------- which kernels back bf16 matmuls
PROBE = r"""
import sys, torch, torch.nn.functional as F
torch.set_num_threads(1)
B, T, d, A, C = (int(v) for v in sys.argv[1:])
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
    F.linear(torch.randn(B * T, d), torch.randn(d, d), torch.randn(d))
    torch.randn(B, A, T, d // A) @ torch.randn(B, A, d // A, T)
    F.linear(torch.randn(B, d), torch.randn(C, d), torch.randn(C))
"""


def torch_kernels(B, T, d, A, C):
    """the kernels of the model's three kinds of bf16 matmul at its shapes, from a subprocess under
    ONEDNN_VERBOSE: 'onednn:<implementations>', '+native' if one bypassed oneDNN (torch 1.13 gives
    small bf16 GEMMs, here the classifier, to its own kernel)"""
    env = dict(os.environ, DNNL_VERBOSE="1", ONEDNN_VERBOSE="1")
    try:
        r = subprocess.run([sys.executable, "-c", PROBE] + [str(v) for v in (B, T, d, A, C)], env=env,
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    ex = [ln.split(",") for ln in r.stdout.splitlines()
          if ln.startswith(("onednn_verbose,exec,cpu,matmul", "dnnl_verbose,exec,cpu,matmul"))]
    if r.returncode != 0 or not ex:
        return "unknown" if r.returncode != 0 else "native"
    return "onednn:" + "+".join(sorted({f[4] for f in ex})) + ("+native" if len(ex) < 3 else "")


# ---------------------------------------------------------------- one fixture
def build(name, cfg, params64, batch, ref_name=None, with_fp64=False, with_batch=False, grad_max_numel=None):
    ids, types, mask, labels = batch

    def keep(n, g):  # every tensor, or the small ones and one attention matrix
        return grad_max_numel is None or g.numel() <= grad_max_numel or n.endswith("layer.1.attention.self.query.weight")

    r64 = evaluate(params64, cfg, batch, "fp64")
    r32 = evaluate(params64, cfg, batch, "fp32")
    rbf = evaluate(params64, cfg, batch, "bf16")
    lg64, lo64, g64, _ = r64
    lgbf, lobf, gbf, trace = rbf
    pr = torch.softmax(lg64, -1)
    nbf = noise(r64[:3], rbf[:3])
    n32 = noise(r64[:3], r32[:3])
    B, T = ids.shape
    C = lg64.shape[1]
    out = {
        "magic": "peftbench-bf16-fixture", "version": 1, "checkpoint": name, "reference": ref_name,
        "B": B, "T": T, "C": C,
        "logits_bf16": flat(lgbf), "loss_bf16": lobf,
        "grad_bf16": {n: flat(g) for n, g in gbf.items() if keep(n, g)},
        "noise": {"logits_bf16_vs_fp64_max_abs": nbf[0], "loss_bf16_vs_fp64_abs": nbf[1],
                  "grad_bf16_vs_fp64_max_rel": nbf[2],
                  "logits_fp32_vs_fp64_max_abs": n32[0], "loss_fp32_vs_fp64_abs": n32[1],
                  "grad_fp32_vs_fp64_max_rel": n32[2]},
        "grad_bf16_vs_fp64_rel": nbf[3],
        "autocast_dtypes": trace,
        "torch_kernels": torch_kernels(B, T, cfg["hidden_size"], cfg["num_attention_heads"], C),
        "generator": "tools/reference/make_bf16_fixture.py, torch " + torch.__version__ + ", 1 thread",
    }
    if with_fp64:
        out["logits_fp64"] = flat(lg64)
        out["loss_fp64"] = lo64
        out["grad_fp64"] = {n: flat(g) for n, g in g64.items() if keep(n, g)}
    if grad_max_numel:
        out["grad_tensors"] = (f"tensors of at most {grad_max_numel} elements and layer 1's query weight "
                               "(the noise numbers cover all)")
    if with_batch:
        out["batch"] = {"ids": ids.flatten().tolist(), "types": types.flatten().tolist(),
                        "mask": mask.flatten().tolist(), "labels": labels.tolist()}
    worst = max(nbf[3], key=nbf[3].get)
    print(f"{name}: B={B} T={T} C={C} loss fp64 {lo64:.6f} bf16 {lobf:.6f}; "
          f"fp64 probabilities {float(pr.min()):.3g}..{float(pr.max()):.3g}; {out['torch_kernels']}")
    print(f"  bf16 vs fp64: logits {nbf[0]:.3g}, loss {nbf[1]:.3g}, grad rel {nbf[2]:.3g} ({worst})")
    print(f"  fp32 vs fp64: logits {n32[0]:.3g}, loss {n32[1]:.3g}, grad rel {n32[2]:.3g}")
    return out, r64


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    print(f"  {path}: {os.path.getsize(path)} bytes")


def load_checkpoint(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    t, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
    return cfg, {n: torch.from_numpy(a).double() for n, a in t.items()}


def tiny(fx):
    cfg, params = load_checkpoint(os.path.join(fx, "tiny_bert"))
    ref, meta = read_safetensors(os.path.join(fx, "tiny_bert_ref.safetensors"))
    B, T, C = int(meta["B"]), int(meta["T"]), int(meta["C"])
    assert C == cfg["num_labels"] and C > 1
    ids = torch.from_numpy(ref["input_ids"]).long()
    batch = (ids, torch.from_numpy(ref["token_type_ids"]).long(), torch.from_numpy(ref["attention_mask"]).long(),
             torch.from_numpy(ref["labels"]).long())
    assert tuple(ids.shape) == (B, T)
    # the float64 path is make_fixture.forward's math (op for op, functional forms): it must agree
    # with it to rounding, and with the stored (float32-rounded) reference to float32 rounding
    p64 = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    mlg, mlo = mf.forward(p64, *batch[:3], C, batch[3].double())
    mlo.backward()
    out, (lg64, lo64, g64, _) = build("tiny_bert", cfg, params, batch,
                                      ref_name="tiny_bert_ref.safetensors")
    d_mf = max(float((lg64 - mlg.detach()).abs().max()), abs(lo64 - float(mlo)),
               max(float((g64[n] - p64[n].grad).abs().max()) for n in g64))
    # the stored values are make_fixture's float64 ones rounded to float32: it reproduces them
    # bitwise, and this forward (which differs from it by ~1e-15) to float32 rounding (2^-23 of max(1, max|ref|))
    stored = {"logits": ref["logits"], "loss": ref["loss"], **{n: ref["grad." + n] for n in g64}}
    mine = {"logits": lg64, "loss": torch.tensor([lo64]), **g64}
    theirs = {"logits": mlg.detach(), "loss": mlo.detach().reshape(1), **{n: p64[n].grad for n in g64}}
    exact = all(np.array_equal(theirs[k].float().numpy(), stored[k]) for k in stored)
    rel = max(float(np.max(np.abs(mine[k].numpy() - stored[k].astype(np.float64))))
              / max(1.0, float(np.max(np.abs(stored[k])))) for k in stored)  # the C tests' rule
    d_ref = max(float(np.max(np.abs(mine[k].numpy() - stored[k].astype(np.float64)))) for k in stored)
    print(f"  fp64 vs make_fixture.forward: {d_mf:.3g}; vs tiny_bert_ref.safetensors (F32): max abs {d_ref:.3g}, "
          f"{rel:.3g} relative to max(1, max|ref|); make_fixture.forward rounded to F32 == stored: {exact}")
    assert d_mf < 1e-12, d_mf
    assert exact and rel <= 2.0 ** -23, rel
    return out


def small_config(C):
    s = SMALL
    cfg = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": s["V"], "hidden_size": s["D"], "num_hidden_layers": s["L"],
        "num_attention_heads": s["A"], "intermediate_size": s["F"], "max_position_embeddings": s["P"],
        "type_vocab_size": 2, "layer_norm_eps": mf.LN_EPS, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": mf.W_STD, "pad_token_id": mf.PAD, "position_embedding_type": "absolute",
        "num_labels": C,
        "id2label": {str(i): f"LABEL_{i}" for i in range(C)},
        "label2id": {f"LABEL_{i}": i for i in range(C)},
    }
    return cfg


def small(fx):
    """a d=128 checkpoint drawn with make_fixture.init_params's conventions (seeded torch.Generator)"""
    s = SMALL
    g = torch.Generator().manual_seed(SMALL_SEED)
    params = {}
    for name, shape, kind in mf.param_specs(SMALL_C, V=s["V"], D=s["D"], P=s["P"], L=s["L"], F=s["F"]):
        n = torch.randn(shape, generator=g, dtype=torch.float64)
        v = {"w": mf.W_STD * n, "b": mf.B_STD * n, "lnw": 1.0 + 0.1 * n, "lnb": 0.1 * n}[kind]
        params[name] = v.float().double()  # the checkpoint stores float32
    cfg = small_config(SMALL_C)
    out_dir = os.path.join(fx, "small_bert128")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    shutil.copyfile(os.path.join(fx, "tiny_bert", "vocab.txt"), os.path.join(out_dir, "vocab.txt"))
    mf.write_safetensors(os.path.join(out_dir, "model.safetensors"),
                         [(n, params[n].float().numpy()) for n in params], {"format": "pt"})
    # read back what was written: the fixture is computed from the file, not from memory
    cfg2, params2 = load_checkpoint(out_dir)
    assert cfg2 == cfg and all(torch.equal(params2[n], params[n]) for n in params)
    ids, types, mask = mf.make_batch()
    batch = (ids, types, mask, torch.tensor(SMALL_LABELS, dtype=torch.long))
    out, _ = build("small_bert128", cfg2, params2, batch, with_fp64=True, with_batch=True,
                   grad_max_numel=1024)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"  {out_dir}: {size} bytes")
    return out


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    fx = os.path.normpath(os.path.join(root, "tests", "fixtures"))
    torch.set_num_threads(1)
    write_json(os.path.join(fx, "tiny_bert_bf16_ref.json"), tiny(fx))
    write_json(os.path.join(fx, "small_bert128_bf16_ref.json"), small(fx))
    assert set(MAX_BYTES) == set(mf.BF16_OUTPUTS)
    for name, limit in MAX_BYTES.items():
        path = os.path.join(fx, name)
        size = (sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) if os.path.isdir(path)
                else os.path.getsize(path))
        assert size < limit, (name, size, limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
