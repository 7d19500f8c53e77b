#!/usr/bin/python3
"""Writes the fine-tuning parity fixture that tests/test_finetune_parity.c compares
`peftbench run` against: a plain-torch fine-tuning loop with Hugging Face Trainer semantics.

Run from the repo root with Debian's torch:  /usr/bin/python3 tools/reference/make_finetune_fixture.py
(no transformers: the model is make_fixture.py's post-LN BERT, the Trainer's optimizer step is
written out below; deterministic, a few seconds).

Outputs:
  tests/fixtures/finetune_bert/{config.json,vocab.txt,model.safetensors}  C=2 checkpoint (random, F32)
  tests/fixtures/finetune_parity.json                                     the reference (below)

What the loop does, per method (full, lora, adapter, layerconnect), as HF's Trainer would:
  - the same checkpoint; the method's tensors start at the values the C run draws for them
    (pb_model_init_random: splitmix64 stream of --seed over the parameter table in declaration
    order, replicated here exactly), the head comes from the checkpoint;
  - every step sees the same batch: all N_TRAIN training sentences (--batch N_TRAIN), so the
    order `run` shuffles them in does not matter (the loss is a mean); dropout 0;
  - loss = mean cross-entropy; backward; torch.nn.utils.clip_grad_norm_(trainable, 1.0);
    torch.optim.AdamW (betas 0.9/0.999, eps 1e-8) with HF's decay groups (Trainer
    get_decay_parameter_names: no decay for biases and LayerNorm weights; everything else decays;
    LayerConnect's anchors are declared no-decay by methods/layerconnect.c and are kept so);
    then the scheduler: get_linear_schedule_with_warmup with warm-up steps
    ceil(warmup_ratio * T) (TrainingArguments.get_warmup_steps), stepped after the optimizer.
  - the per-step loss (before the step's update), the per-step gradient norm before clipping,
    whether it clipped, the lr of each step and, after the last step, a few parameter values.
The model math runs in float64 on float32-rounded parameters; the loop is also run in float32
torch to show how far float32 arithmetic alone lands from it (fp32_noise in the fixture).
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixture as mf  # noqa: E402  (vocab, safetensors writer, layernorm, gelu)

# ---------------------------------------------------------------- shapes and settings
V, D, L, A, F, P = 99, 24, 4, 4, 48, 24
C = 2
W_STD, B_STD = 0.2, 0.1
CLS_STD = 0.5
CKPT_SEED = 2024
RUN_SEED = 3           # `run --seed`: draws the method tensors (the head is the checkpoint's)
STEPS = 50
WARMUP_RATIO = 0.1     # -> ceil(0.1 * 50) = 5 warm-up steps: steps 1..5 at lr 0, .2, .4, .6, .8 x lr
WEIGHT_DECAY = 0.1
MAX_GRAD_NORM = 1.0
CLIP_EPS = 1e-6        # torch.nn.utils.clip_grad_norm_
BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
MAX_LEN = 24
# per method: `run` options and lr, chosen so that clipping triggers on some steps, not all
METHODS = {
    "full": {"opts": [], "lr": 5e-4},
    "lora": {"opts": [], "lr": 3e-3},
    "adapter": {"opts": [], "lr": 5e-3},
    "layerconnect": {"opts": [], "lr": 1e-2},
}
LORA_R, LORA_ALPHA = 8, 16.0          # methods/lora.c defaults; targets query, value
ADAPTER_R, ADAPTER_STD = 8, 0.01      # methods/adapter.c defaults; pfeiffer (after the FFN), relu
LC_K = 9                              # methods/layerconnect.c default; form diag, scope tokens
# What tests/test_finetune_parity.c allows (stored in the fixture; single source). Measured, C
# float32 `run` vs this float64 loop: losses <= 1.0e-6 (full; LoRA, Adapter, LayerConnect
# 3-4e-7), gradient norms <= 8e-6 relative, final parameters <= 6e-7 -- the same size as float32
# torch's own distance from float64 (fp32_noise). The smallest departure from HF the tolerance
# must catch, decay on biases/LayerNorm too, moves the losses by 1.5e-5 (LoRA) to 9e-4
# (sensitivity_max_loss_change); the schedule or clipping change them by 0.04 to 0.34.
TOLERANCES = {
    "loss_abs": 5e-6,        # every step: |c - ref| <= tol * max(1, |ref|)
    "grad_norm_rel": 5e-5,   # every step: |c - ref| <= tol * ref (norm before clipping)
    "final_abs": 5e-6,       # per tensor: max |c - ref| <= tol * max(1, max|ref|)
}
# parameters whose final values the test compares (task-file tensors of that method)
FINAL = {
    "full": ["classifier.weight", "classifier.bias", "bert.encoder.layer.0.attention.self.query.weight",
             "bert.embeddings.LayerNorm.weight"],
    "lora": ["classifier.weight", "lora.layer.0.query.B", "lora.layer.3.value.A"],
    "adapter": ["classifier.weight", "adapter.layer.0.ffn.up.weight", "adapter.layer.2.ffn.down.bias"],
    "layerconnect": ["classifier.weight", "layerconnect.anchors"],
}

# ---------------------------------------------------------------- data: words of the vocabulary only
POS_WORDS = ["good", "great", "best", "love", "fun", "happy"]
NEG_WORDS = ["bad", "worst", "hate", "dull", "sad", "not"]
FILL = ["the", "movie", "film", "story", "plot", "acting", "was", "is", "very", "a", "and", "it", "of",
        "man", "woman", "dog", "cat", "old", "new", "day", "night", "one", "two"]
N_TRAIN, N_DEV = 16, 6


def make_sentences(n, seed):
    g = np.random.RandomState(seed)
    out = []
    for i in range(n):
        label = i % 2
        k = 3 + g.randint(0, 9)  # 3..11 words: rows of different lengths, padding exercised
        words = [FILL[g.randint(len(FILL))] for _ in range(k)]
        pol = POS_WORDS if label else NEG_WORDS
        for _ in range(1 + g.randint(2)):
            words[g.randint(k)] = pol[g.randint(len(pol))]
        out.append((" ".join(words), label))
    return out


def encode(sents, vocab):
    idx = {w: i for i, w in enumerate(vocab)}
    rows = [[mf.CLS] + [idx[w] for w in s.split()] + [mf.SEP] for s, _ in sents]
    T = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r)
        mask[b, :len(r)] = 1
    labels = torch.tensor([lab for _, lab in sents], dtype=torch.long)
    return ids, torch.zeros_like(ids), mask, labels, rows


# ---------------------------------------------------------------- the checkpoint
def param_specs():
    """(name, shape, kind) in the C table's declaration order, at this fixture's shape."""
    return mf.param_specs(C, V=V, D=D, P=P, L=L, F=F)


def init_checkpoint():
    g = torch.Generator().manual_seed(CKPT_SEED)
    out = {}
    for name, shape, kind in param_specs():
        n = torch.randn(shape, generator=g, dtype=torch.float64)
        v = {"w": (CLS_STD if name == "classifier.weight" else W_STD) * n, "b": B_STD * n,
             "lnw": 1.0 + 0.1 * n, "lnb": 0.1 * n}[kind]
        out[name] = v.float().double()  # the checkpoint stores float32
    return out


# ---------------------------------------------------------------- the C parameter initialisation
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix_at(seed, k):
    """k-th (0-based) output of util/rng.c's splitmix64 stream seeded with seed."""
    z = (seed + (k + 1) * GOLDEN) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class CRng:
    def __init__(self, seed, skip):
        self.seed, self.k = seed, skip

    def u64(self):
        v = splitmix_at(self.seed, self.k)
        self.k += 1
        return v

    def uniform(self):  # pb_rng_uniform, float32
        return np.float32(self.u64() >> 40) * np.float32(1.0 / 16777216.0)

    def normal(self):   # pb_rng_normal: Box-Muller in double, rounded to float
        u1 = ((self.u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0)
        u2 = (self.u64() >> 11) * (1.0 / 9007199254740992.0)
        return np.float32(math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2))


def c_init(spec, rng):
    """pb_params_init of one method tensor: spec = (name, shape, kind, a) with kind zero|normal|uniform."""
    name, shape, kind, a = spec
    n = int(np.prod(shape))
    out = np.zeros(n, np.float32)
    a32 = np.float32(a)
    for j in range(n):
        if kind == "normal":
            out[j] = a32 * rng.normal()
        elif kind == "uniform":
            out[j] = a32 * (np.float32(2.0) * rng.uniform() - np.float32(1.0))
    return torch.from_numpy(out.reshape(shape)).double()


def method_specs(method):
    """The method's tensors in attach order, with the C init kind and parameter (methods/*.c)."""
    s = []
    if method == "lora":
        a = np.float32(1.0) / np.sqrt(np.float32(D))  # kaiming_uniform(a=sqrt(5)): 1/sqrtf(in)
        for l in range(L):
            for site in ("query", "value"):  # PB_LIN order: query, key, value, ...
                s += [(f"lora.layer.{l}.{site}.A", (LORA_R, D), "uniform", a),
                      (f"lora.layer.{l}.{site}.B", (D, LORA_R), "zero", 0.0)]
    elif method == "adapter":
        for l in range(L):
            p = f"adapter.layer.{l}.ffn."
            s += [(p + "down.weight", (ADAPTER_R, D), "normal", ADAPTER_STD), (p + "down.bias", (ADAPTER_R,), "zero", 0.0),
                  (p + "up.weight", (D, ADAPTER_R), "zero", 0.0), (p + "up.bias", (D,), "zero", 0.0)]
    elif method == "layerconnect":
        s += [("layerconnect.anchors", (LC_K, 2 * D), "zero", 0.0)]
    return s


def method_init(method, seed):
    # draws before the method's tensors: pb_params_init walks the whole table in order; the backbone
    # and head tensors drawn N(0, std) take 2 draws per element (LayerNorm ones and zero biases none)
    skip = 2 * sum(int(np.prod(shape)) for _, shape, kind in param_specs() if kind == "w")
    rng = CRng(seed, skip)
    return {spec[0]: c_init(spec, rng) for spec in method_specs(method)}


def lc_interp():
    """methods/layerconnect.c pb_layerconnect_interp, W [L, K] in float32."""
    W = np.zeros((L, LC_K), np.float32)
    for l in range(L):
        num, den = l * (LC_K - 1), L - 1
        k0, rem = num // den, num % den
        f = rem / den
        W[l, k0] = np.float32(1.0 - f)
        if rem:
            W[l, k0 + 1] = np.float32(f)
    return torch.from_numpy(W)


# ---------------------------------------------------------------- the model with the method hooks
def forward(p, method, batch, Winterp):
    ids, types, mask, labels = batch
    Bn, Tn = ids.shape
    hd = D // A
    lin = lambda x, name: x @ p[name + ".weight"].t() + p[name + ".bias"]
    x = (p["bert.embeddings.word_embeddings.weight"][ids]
         + p["bert.embeddings.position_embeddings.weight"][torch.arange(Tn)][None, :, :]
         + p["bert.embeddings.token_type_embeddings.weight"][types])
    h = mf.layernorm(x, p["bert.embeddings.LayerNorm.weight"], p["bert.embeddings.LayerNorm.bias"])
    keymask = (mask == 0)[:, None, None, :]
    conn = Winterp.to(h.dtype) @ p["layerconnect.anchors"] if method == "layerconnect" else None
    scale = LORA_ALPHA / LORA_R
    for l in range(L):
        pre = f"bert.encoder.layer.{l}."
        hprev = h
        heads = lambda t: t.view(Bn, Tn, A, hd).transpose(1, 2)
        q = lin(h, pre + "attention.self.query")
        k = lin(h, pre + "attention.self.key")
        v = lin(h, pre + "attention.self.value")
        if method == "lora":
            q = q + scale * (h @ p[f"lora.layer.{l}.query.A"].t()) @ p[f"lora.layer.{l}.query.B"].t()
            v = v + scale * (h @ p[f"lora.layer.{l}.value.A"].t()) @ p[f"lora.layer.{l}.value.B"].t()
        s = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(hd)
        s = s.masked_fill(keymask, -1e9)
        ctx = (torch.softmax(s, dim=-1) @ heads(v)).transpose(1, 2).reshape(Bn, Tn, D)
        o = lin(ctx, pre + "attention.output.dense")
        h1 = mf.layernorm(o + h, p[pre + "attention.output.LayerNorm.weight"], p[pre + "attention.output.LayerNorm.bias"])
        f = lin(mf.gelu(lin(h1, pre + "intermediate.dense")), pre + "output.dense")
        if method == "adapter":  # pfeiffer: y = x + W_up relu(W_down x + b_down) + b_up on the FFN output
            ad = f"adapter.layer.{l}.ffn."
            f = f + torch.relu(f @ p[ad + "down.weight"].t() + p[ad + "down.bias"]) @ p[ad + "up.weight"].t() + p[ad + "up.bias"]
        h = mf.layernorm(f + h1, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"])
        if method == "layerconnect":  # h_l = Layer_l(h_{l-1}) + g_l * h_{l-1} + b_l
            h = h + conn[l, :D] * hprev + conn[l, D:]
    pooled = torch.tanh(lin(h[:, 0], "bert.pooler.dense"))
    logits = lin(pooled, "classifier")
    return torch.nn.functional.cross_entropy(logits, labels)


def hf_no_decay(name):
    """Trainer.get_decay_parameter_names: no decay for LayerNorm modules' parameters and names with
    'bias'. LayerConnect's anchors (gains and biases of the connectors) are declared no-decay by the
    method (methods/layerconnect.c), as a Trainer subclass would exclude them."""
    return "bias" in name or "LayerNorm" in name or name.startswith("layerconnect.")


def one_based_lambda(s, W, T):
    """what `run` did before (and `pretrain` still does, backbone/params.c PB_SCHED_ONE_BASED):
    t = s+1; t/W for t <= W, then (T-t)/(T-W): the last step at lr 0."""
    t = s + 1
    if W > 0 and t <= W:
        return t / W
    return (T - t) / (T - W) if T > W else 1.0


def hf_lambda(s, W, T):
    """transformers _get_linear_schedule_with_warmup_lr_lambda."""
    if s < W:
        return float(s) / float(max(1, W))
    return max(0.0, float(T - s) / float(max(1, T - W)))


def train(method, ckpt, minit, batch, dtype, variant=None):
    """variant (the sensitivity runs): None (HF), "one_based_schedule" (with the old floor warm-up
    int(ratio*T)), "no_clipping", "decay_all" (biases and LayerNorm weights decay too)."""
    p = {n: v.clone().to(dtype) for n, v in ckpt.items()}
    p.update({n: v.clone().to(dtype) for n, v in minit.items()})
    if method == "full":
        trainable = [n for n, _, _ in param_specs()]
    else:
        trainable = [s[0] for s in method_specs(method)] + ["classifier.weight", "classifier.bias"]
    for n in trainable:
        p[n].requires_grad_(True)
    lr = float(np.float32(METHODS[method]["lr"]))   # `run` holds lr and weight decay as float
    wd = float(np.float32(WEIGHT_DECAY))
    no_decay = (lambda n: False) if variant == "decay_all" else hf_no_decay
    groups = [{"params": [p[n] for n in trainable if not no_decay(n)], "weight_decay": wd},
              {"params": [p[n] for n in trainable if no_decay(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=ADAM_EPS)
    if variant == "one_based_schedule":
        W = int(STEPS * WARMUP_RATIO)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: one_based_lambda(s, W, STEPS))
    else:
        W = math.ceil(STEPS * WARMUP_RATIO)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: hf_lambda(s, W, STEPS))
    Winterp = lc_interp()
    params = [p[n] for n in trainable]
    losses, norms, clipped, lrs = [], [], [], []
    for step in range(STEPS):
        opt.zero_grad()
        loss = forward(p, method, batch, Winterp)
        loss.backward()
        lrs.append(opt.param_groups[0]["lr"])
        gn = float(torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM if variant != "no_clipping" else math.inf))
        losses.append(float(loss))
        norms.append(gn)
        clipped.append(MAX_GRAD_NORM / (gn + CLIP_EPS) < 1.0)
        opt.step()
        sched.step()
    final = {n: p[n].detach().double() for n in FINAL[method]}
    return losses, norms, clipped, lrs, final, W


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    fx = os.path.join(root, "tests", "fixtures")
    torch.set_num_threads(1)
    vocab = mf.make_vocab()
    assert len(vocab) == V
    train_s = make_sentences(N_TRAIN, 11)
    dev_s = make_sentences(N_DEV, 12)
    ids, types, mask, labels, rows = encode(train_s, vocab)
    batch = (ids, types, mask, labels)
    assert ids.shape[1] <= MAX_LEN <= P
    ckpt = init_checkpoint()

    # ---- the checkpoint folder
    out_dir = os.path.join(fx, "finetune_bert")
    os.makedirs(out_dir, exist_ok=True)
    cfg = {"architectures": ["BertForSequenceClassification"], "model_type": "bert",
           "vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": A,
           "intermediate_size": F, "max_position_embeddings": P, "type_vocab_size": 2,
           "layer_norm_eps": mf.LN_EPS, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
           "attention_probs_dropout_prob": 0.0, "initializer_range": W_STD, "pad_token_id": mf.PAD,
           "position_embedding_type": "absolute", "num_labels": C,
           "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "label2id": {"LABEL_0": 0, "LABEL_1": 1}}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    mf.write_safetensors(os.path.join(out_dir, "model.safetensors"),
                         [(n, ckpt[n].float().numpy()) for n, _, _ in param_specs()], {"format": "pt"})

    # ---- the four fine-tuning runs
    W = math.ceil(STEPS * WARMUP_RATIO)
    fixture = {
        "generator": "tools/reference/make_finetune_fixture.py, torch " + torch.__version__,
        "checkpoint": "tests/fixtures/finetune_bert",
        "task": "sst2",
        "train": [{"sentence": s, "label": lab} for s, lab in train_s],
        "dev": [{"sentence": s, "label": lab} for s, lab in dev_s],
        "train_token_ids": rows,
        "settings": {"steps": STEPS, "batch": N_TRAIN, "max_len": MAX_LEN, "seed": RUN_SEED,
                     "warmup_ratio": WARMUP_RATIO, "warmup_steps": W, "weight_decay": WEIGHT_DECAY,
                     "max_grad_norm": MAX_GRAD_NORM, "dropout": 0.0,
                     "adamw": {"betas": list(BETAS), "eps": ADAM_EPS},
                     "decay": "HF Trainer get_decay_parameter_names: not biases, not LayerNorm; "
                              "layerconnect.anchors no decay (methods/layerconnect.c)"},
        "tolerances": TOLERANCES,
        "methods": {},
    }
    print(f"checkpoint {out_dir}: V={V} d={D} L={L} A={A} F={F} P={P} C={C}; "
          f"{N_TRAIN} training sentences, T={ids.shape[1]}; {STEPS} steps, warm-up {W}")
    for method, mc in METHODS.items():
        minit = method_init(method, RUN_SEED)
        losses, norms, clipped, lrs, final, _ = train(method, ckpt, minit, batch, torch.float64)
        l32, n32, _, _, f32, _ = train(method, ckpt, minit, batch, torch.float32)
        noise = {"loss_abs": max(abs(a - b) for a, b in zip(l32, losses)),
                 "grad_norm_rel": max(abs(a - b) / b for a, b in zip(n32, norms)),
                 "final_abs": max(float((f32[n] - final[n]).abs().max()) for n in final)}
        # how far each departure from HF's Trainer moves the losses: what the C test can see
        sens = {}
        for var in ("one_based_schedule", "no_clipping", "decay_all"):
            lv = train(method, ckpt, minit, batch, torch.float64, var)[0]
            sens[var] = max(abs(a - b) for a, b in zip(lv, losses))
        nclip = sum(clipped)
        # the choice of settings must exercise both branches of clipping, warm-up at lr 0 first
        assert 0 < nclip < STEPS, (method, nclip)
        assert lrs[0] == 0.0 and lrs[W] == float(np.float32(mc["lr"])) and lrs[-1] > 0, (method, lrs[:W + 1], lrs[-1])
        margin = min(abs(MAX_GRAD_NORM / (g + CLIP_EPS) - 1.0) for g in norms)
        assert margin > 1e-4, (method, margin)  # no norm so close to 1 that fp32 could flip the decision
        assert losses[-1] < losses[0], (method, losses[0], losses[-1])
        fixture["methods"][method] = {
            "options": mc["opts"], "lr": mc["lr"],
            "losses": losses, "grad_norms": norms, "clipped": [int(c) for c in clipped],
            "clipped_steps": nclip, "lrs": lrs,
            "final": {n: {"shape": list(v.shape), "values": v.flatten().tolist()} for n, v in final.items()},
            "fp32_noise": noise,
            "sensitivity_max_loss_change": sens,
            "closest_clip_margin": margin,
        }
        print(f"  {method:12s} lr {mc['lr']:g}: loss {losses[0]:.6f} -> {losses[-1]:.6f}; grad norm "
              f"{min(norms):.3f}..{max(norms):.3f}, clipped on {nclip} of {STEPS} steps "
              f"(first {[i + 1 for i, c in enumerate(clipped) if c][:6]}); fp32 noise {noise}")
        print(f"    max loss change: {', '.join(f'{k} {v:.3g}' for k, v in sens.items())}")
    path = os.path.join(fx, "finetune_parity.json")
    with open(path, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    total = mf.fixtures_bytes(fx)
    print(f"{path}: {os.path.getsize(path)} bytes; tests/fixtures total {total} bytes (less the bf16 references)")
    assert total < 1 << 20


if __name__ == "__main__":
    sys.exit(main())
