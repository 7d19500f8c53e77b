#!/usr/bin/python3
"""Table from a bench/bf16.sh JSONL file: per (shape, batch, mode) the medians of C fp32, C bf16
and torch bf16 autocast, the paired ratios torch-bf16/C-bf16 and C-fp32/C-bf16 (> 1: C bf16
faster), C bf16's GFLOP/s (FLOPs from the C op counter) and its share of the measured bf16
matrix-product peak, and the peak RSS of all three.

    /usr/bin/python3 bench/bf16_summary.py bench/bf16-*.jsonl [--markdown]
Medians are over all timed repetitions of all rounds. "paired" is the median over rounds of the
ratio of the two medians measured back to back in the same round of the same file.
"""
import json
import statistics
import sys
from collections import defaultdict

NAMES = {"tiny": "tiny L2/H128", "mini": "mini L4/H256", "base": "bert-base L12/H768"}
STEPS = {"infer": "inference", "full": "full FT step", "lora": "LoRA step"}


def impl_of(r):
    if r["impl"] == "c":
        return "c-" + r.get("precision", "fp32")
    if r["impl"] == "torch":
        return "torch-" + r.get("precision", "fp32")
    return None


def main():
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    rows = []
    for fi, p in enumerate(paths):
        with open(p) as f:
            rows += [dict(json.loads(l), file=fi) for l in f if l.strip().startswith("{")]
    peak = max((r["gflops"] for r in rows if r["impl"] == "bf16gemm" and r["threads"] == max(
        x["threads"] for x in rows if x["impl"] == "bf16gemm")), default=0.0)
    speak = max((r["gflops"] for r in rows if r["impl"] == "sgemm"), default=0.0)
    times = defaultdict(list)
    rounds = defaultdict(dict)
    rss = defaultdict(float)
    flops = {}
    kern = set()
    for r in rows:
        im = impl_of(r)
        if not im:
            continue
        k = (r["shape"], r["batch"], r["mode"])
        times[k + (im,)] += r["times"]
        rounds[k + (r["file"], r["round"])][im] = r["median_s"]
        rss[k + (im,)] = max(rss[k + (im,)], r["peak_rss_mib"])
        if r["impl"] == "c":
            flops[k] = r["flops"]
            if r.get("precision") == "bf16":
                kern.add("C: " + r.get("kernel", "?"))
        elif r.get("precision") == "bf16":
            kern.add("torch: " + r.get("torch_kernels", "?"))
    print(f"matrix-product peak (2048^3, all threads): bf16 {peak:.0f} GFLOP/s, fp32 sgemm {speak:.0f} GFLOP/s")
    print("kernels: " + "; ".join(sorted(kern)))
    hdr = ("| shape | batch | step | C fp32 s | C bf16 s | torch bf16 s | torch bf16 / C bf16 (paired) "
           "| C fp32 / C bf16 (paired) | C bf16 GFLOP/s | % of bf16 peak | peak RSS MiB C fp32 / C bf16 / torch bf16 |")
    print(hdr)
    print("|---" * (hdr.count("|") - 1) + "|")
    order = {"tiny": 0, "mini": 1, "base": 2}
    morder = {"infer": 0, "full": 1, "lora": 2}
    for k in sorted({x[:3] for x in times}, key=lambda k: (order[k[0]], -k[1], morder[k[2]])):
        med = {im: statistics.median(times[k + (im,)]) for im in ("c-fp32", "c-bf16", "torch-bf16")
               if times.get(k + (im,))}
        if len(med) < 3:
            continue

        def paired(a, b):
            pr = [st[a] / st[b] for (s, bt, m, fi, rd), st in rounds.items() if (s, bt, m) == k and a in st and b in st]
            return f"{statistics.median(pr):.2f}x ({min(pr):.2f}-{max(pr):.2f})" if pr else "-"

        fl = flops.get(k, 0) / med["c-bf16"] / 1e9
        print(f"| {NAMES[k[0]]} | {k[1]} | {STEPS[k[2]]} | {med['c-fp32']:.4f} | {med['c-bf16']:.4f} "
              f"| {med['torch-bf16']:.4f} | {paired('torch-bf16', 'c-bf16')} | {paired('c-fp32', 'c-bf16')} "
              f"| {fl:.0f} | {100 * fl / peak:.0f}% | {rss[k + ('c-fp32',)]:.0f} / {rss[k + ('c-bf16',)]:.0f} / "
              f"{rss[k + ('torch-bf16',)]:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
