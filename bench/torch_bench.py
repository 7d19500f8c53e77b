#!/usr/bin/python3
"""PyTorch twin of bench/bench_backbone.c: the same post-LN BERT (tools/reference/make_fixture.py,
float32 parameters), the same shapes and steps, one JSON line per (mode, thread setting).

    /usr/bin/python3 bench/torch_bench.py --shape tiny|mini|base --batch B [--seq 128]
        [--modes infer,full,lora] [--settings t1,t2,t2b] [--reps 3] [--warmup 1] [--round 0]
        [--precision fp32|bf16]

Modes: infer = forward under torch.inference_mode (dropout off); full = zero_grad + forward +
cross-entropy + backward + AdamW over all params; lora = the same with LoRA r=8 alpha=16 on
query,value and the backbone frozen (requires_grad False). Dropout 0.1 in training steps (as in
the C run). AdamW lr 1e-5, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on >= 2-D tensors only.

Precision (the C run's --precision): fp32 (default) runs everything in float32. bf16 is PyTorch's
mixed-precision recipe: every mode's forward and loss run under torch.autocast("cpu",
dtype=torch.bfloat16), the backward outside it; parameters, gradients and AdamW state stay
float32. Under torch 1.13's CPU autocast, F.linear and matmul run in bf16 (oneDNN; fp32
accumulation, bf16 outputs) and the element-wise ops on their outputs (scale, mask, softmax, GELU,
tanh, the LoRA sum) stay bf16; the residual adds promote to float32, so LayerNorm runs in float32,
and cross-entropy is on autocast's float32 list (tools/reference/make_bf16_fixture.py records the
dtypes). Each JSON line carries "precision" and "torch_kernels": what backs this precision's
matmuls, found once before timing by running the model's three kinds of matmul at its shapes in a
subprocess under ONEDNN_VERBOSE: "onednn:<implementations>" (e.g. onednn:brg:avx512_core_amx_bf16),
with "+native" when one of them bypassed oneDNN (torch 1.13 gives small bf16 GEMMs, such as the
classifier at small batches, to its own kernel); fp32: "openblas".

Thread settings (switched in-process; OpenBLAS is the GEMM backend of Debian's torch, so its own
pool is set through ctypes, the same library torch loaded):
  t1   torch.set_num_threads(1), OpenBLAS 1 thread
  t2   torch.set_num_threads(2), OpenBLAS 1 thread   (no oversubscription; GEMMs serial)
  t2b  torch.set_num_threads(2), OpenBLAS 2 threads  (GEMMs threaded too)
Peak RSS per mode: VmHWM after writing 5 to /proc/self/clear_refs.
"""
import argparse
import contextlib
import ctypes
import ctypes.util
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = {  # d, L, A, ffn
    "tiny": (128, 2, 2, 512),
    "mini": (256, 4, 4, 1024),
    "base": (768, 12, 12, 3072),
}
V, P, TYPES, C = 30522, 512, 2, 2
LN_EPS, P_DROP, INIT = 1e-12, 0.1, 0.02
LORA_R, LORA_ALPHA = 8, 16.0
SET_TO_NONE = os.environ.get("BENCH_SET_TO_NONE", "1") == "1"  # opt.zero_grad(set_to_none=...)


def openblas():
    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas") or ""):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
            return lib
        except (OSError, AttributeError):
            pass
    return None


OPENBLAS = openblas()


def blas_core():
    """the OpenBLAS kernels torch's GEMMs run on (bench/run.sh sets OPENBLAS_CORETYPE to C's)"""
    if OPENBLAS is None or not hasattr(OPENBLAS, "openblas_get_corename"):
        return "unknown"
    OPENBLAS.openblas_get_corename.restype = ctypes.c_char_p
    return OPENBLAS.openblas_get_corename().decode()


KERNEL_PROBE = r"""
import sys, torch, torch.nn.functional as F
torch.set_num_threads(1)
bf16 = sys.argv[1] == "bf16"
B, T, d, A, C = (int(v) for v in sys.argv[2:])
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
    F.linear(torch.randn(B * T, d), torch.randn(d, d), torch.randn(d))             # q/k/v/o, FFN
    torch.randn(B, A, T, d // A) @ torch.randn(B, A, d // A, T)                   # attention
    F.linear(torch.randn(B, d), torch.randn(C, d), torch.randn(C))                # classifier
"""


def torch_kernels(precision, B, T, d, A, C):
    """what backs this precision's matmuls: the model's three kinds of matmul (at its shapes), run
    once in a subprocess under ONEDNN_VERBOSE; 'onednn:<implementations>', plus '+native' when
    one of them did not go to oneDNN (torch 1.13 sends small bf16 GEMMs to its own kernel),
    'openblas' (fp32 without oneDNN) or 'native'"""
    env = dict(os.environ, DNNL_VERBOSE="1", ONEDNN_VERBOSE="1")
    try:
        r = subprocess.run([sys.executable, "-c", KERNEL_PROBE, precision, str(B), str(T), str(d), str(A),
                            str(C)], env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if r.returncode != 0:
        return "unknown"
    ex = [ln.split(",") for ln in r.stdout.splitlines()
          if ln.startswith(("onednn_verbose,exec,cpu,matmul", "dnnl_verbose,exec,cpu,matmul"))]
    other = "openblas" if precision == "fp32" and OPENBLAS is not None else "native"
    if not ex:
        return other
    return "onednn:" + "+".join(sorted({f[4] for f in ex})) + ("+" + other if len(ex) < 3 else "")


def set_threads(setting):
    omp, blas = {"t1": (1, 1), "t2": (2, 1), "t2b": (2, 2)}[setting]
    torch.set_num_threads(omp)
    if OPENBLAS is not None:
        OPENBLAS.openblas_set_num_threads(blas)


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    return -1.0


class Bert(torch.nn.Module):
    """post-LN BERT, HF layout (weights [out, in]), erf GELU, tanh pooler, C-way classifier."""

    def __init__(self, d, L, A, ff, lora):
        super().__init__()
        self.d, self.L, self.A = d, L, A
        g = torch.Generator().manual_seed(0)

        def w(*shape):
            return torch.nn.Parameter(torch.randn(*shape, generator=g) * INIT)

        def z(n):
            return torch.nn.Parameter(torch.zeros(n))

        def o(n):
            return torch.nn.Parameter(torch.ones(n))

        self.word, self.pos, self.ttype = w(V, d), w(P, d), w(TYPES, d)
        self.eln_w, self.eln_b = o(d), z(d)
        self.layers = torch.nn.ModuleList()
        for _ in range(L):
            m = torch.nn.Module()
            for n in ("q", "k", "v", "o"):
                setattr(m, n + "w", w(d, d))
                setattr(m, n + "b", z(d))
            m.ln1w, m.ln1b = o(d), z(d)
            m.iw, m.ib = w(ff, d), z(ff)
            m.fw, m.fb = w(d, ff), z(d)
            m.ln2w, m.ln2b = o(d), z(d)
            if lora:  # PEFT: A kaiming-uniform, B zero
                for n in ("q", "v"):
                    a = torch.empty(LORA_R, d)
                    torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
                    setattr(m, "lora_" + n + "A", torch.nn.Parameter(a))
                    setattr(m, "lora_" + n + "B", torch.nn.Parameter(torch.zeros(d, LORA_R)))
            self.layers.append(m)
        self.pool_w, self.pool_b = w(d, d), z(d)
        self.cls_w, self.cls_b = w(C, d), z(C)
        self.lora = lora
        if lora:
            for name, p in self.named_parameters():
                p.requires_grad_("lora_" in name or name.startswith("cls_"))

    def lin(self, x, m, n):
        y = F.linear(x, getattr(m, n + "w"), getattr(m, n + "b"))
        if self.lora and n in ("q", "v"):
            y = y + (F.linear(F.linear(x, getattr(m, "lora_" + n + "A")), getattr(m, "lora_" + n + "B"))
                     * (LORA_ALPHA / LORA_R))
        return y

    def forward(self, ids, types, mask):
        B, T = ids.shape
        d, A = self.d, self.A
        hd = d // A
        p = P_DROP if self.training else 0.0
        x = self.word[ids] + self.pos[:T][None] + self.ttype[types]
        h = F.dropout(F.layer_norm(x, (d,), self.eln_w, self.eln_b, LN_EPS), p, self.training)
        keymask = (mask == 0)[:, None, None, :]
        for m in self.layers:
            def heads(t):
                return t.view(B, T, A, hd).transpose(1, 2)
            q, k, v = heads(self.lin(h, m, "q")), heads(self.lin(h, m, "k")), heads(self.lin(h, m, "v"))
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
            s = s.masked_fill(keymask, -1e9)
            a = F.dropout(torch.softmax(s, dim=-1), p, self.training)
            ctx = (a @ v).transpose(1, 2).reshape(B, T, d)
            o = F.dropout(F.linear(ctx, m.ow, m.ob), p, self.training)
            h1 = F.layer_norm(o + h, (d,), m.ln1w, m.ln1b, LN_EPS)
            f = F.gelu(F.linear(h1, m.iw, m.ib))
            f = F.dropout(F.linear(f, m.fw, m.fb), p, self.training)
            h = F.layer_norm(f + h1, (d,), m.ln2w, m.ln2b, LN_EPS)
        pooled = F.dropout(torch.tanh(F.linear(h[:, 0], self.pool_w, self.pool_b)), p, self.training)
        return F.linear(pooled, self.cls_w, self.cls_b)


def make_step(model, mode, ids, types, mask, labels, precision):
    if precision == "bf16":
        def amp():
            return torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        amp = contextlib.nullcontext
    if mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode(), amp():
                model(ids, types, mask)
        return step
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, foreach=True)

    def step():
        opt.zero_grad(set_to_none=SET_TO_NONE)
        with amp():
            loss = F.cross_entropy(model(ids, types, mask), labels)
        loss.backward()  # outside autocast, as the PyTorch docs recommend
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--modes", default="infer,full,lora")
    ap.add_argument("--settings", default="t1,t2,t2b")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--round", type=int, default=0)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    d, L, A, ff = SHAPES[a.shape]
    B, T = a.batch, a.seq
    g = torch.Generator().manual_seed(99)
    ids = torch.randint(0, V, (B, T), generator=g)
    types = (torch.arange(T) >= T // 2).long()[None].expand(B, T).contiguous()
    mask = torch.ones(B, T, dtype=torch.long)
    labels = torch.arange(B) % 2
    kernels = torch_kernels(a.precision, B, T, d, A, C)  # once, before any timing
    for mode in a.modes.split(","):
        gc.collect()
        reset_peak_rss()
        t0 = time.perf_counter()
        model = Bert(d, L, A, ff, lora=(mode == "lora"))
        step = make_step(model, mode, ids, types, mask, labels, a.precision)
        setup_s = time.perf_counter() - t0
        for si, setting in enumerate(a.settings.split(",")):
            set_threads(setting)
            for _ in range(a.warmup if si == 0 else 0):  # later settings: model and optimizer are warm
                step()
            ts = []
            for _ in range(a.reps):
                s = time.perf_counter()
                step()
                ts.append(time.perf_counter() - s)
            print(json.dumps({"impl": "torch", "setting": setting, "shape": a.shape, "batch": B, "seq": T,
                              "mode": mode, "round": a.round, "times": [round(t, 5) for t in ts],
                              "median_s": round(statistics.median(ts), 5), "peak_rss_mib": round(peak_rss_mib(), 1),
                              "setup_s": round(setup_s, 2), "torch": torch.__version__,
                              "blas_core": blas_core(), "precision": a.precision,
                              "torch_kernels": kernels}), flush=True)
        del step, model
    return 0


if __name__ == "__main__":
    sys.exit(main())
