#!/usr/bin/python3
"""Table from a bench/run.sh JSONL file: per (shape, batch, mode) the C median, the best torch
setting's median, the ratio torch/C (> 1: C faster), GFLOP/s of both (FLOPs from the C op
counter, the same model), C's share of the measured sgemm peak, and peak RSS of both.

    /usr/bin/python3 bench/summary.py bench/results-*.jsonl [--markdown]
Medians are over all timed repetitions of all rounds (of all files given). "paired" is the
median over rounds of (best torch setting's median / C's median) within the same round of the
same file: C and torch ran back to back there, so it is steadier on a VM whose speed drifts.
"""
import json
import statistics
import sys
from collections import defaultdict


def main():
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    rows = []  # every record, tagged with the index of its file (rounds pair within one file)
    for fi, p in enumerate(paths):
        with open(p) as f:
            rows += [dict(json.loads(l), file=fi) for l in f if l.strip().startswith("{")]
    peak = {}  # threads -> best measured sgemm GFLOP/s (run.sh measures at the start and the end)
    for r in rows:
        if r["impl"] == "sgemm":
            peak[r["threads"]] = max(peak.get(r["threads"], 0.0), r["gflops"])
    times = defaultdict(list)   # (shape, batch, mode, setting) -> [s]
    rounds = defaultdict(dict)  # (shape, batch, mode, file, round) -> {setting: median s}
    rss = defaultdict(float)
    flops = {}
    cthreads = 1
    for r in rows:
        if r["impl"] not in ("c", "torch"):
            continue
        k = (r["shape"], r["batch"], r["mode"])
        rounds[k + (r["file"], r["round"])][r["setting"]] = r["median_s"]
        times[k + (r["setting"],)] += r["times"]
        rss[k + (r["impl"],)] = max(rss[k + (r["impl"],)], r["peak_rss_mib"])
        if r["impl"] == "c":
            flops[k] = r["flops"]
            cthreads = int(r["setting"][1:])
    order = {"tiny": 0, "mini": 1, "base": 2}
    morder = {"infer": 0, "full": 1, "lora": 2}
    keys = sorted({k[:3] for k in times}, key=lambda k: (order[k[0]], -k[1], morder[k[2]]))
    pk = peak.get(cthreads)
    print(f"sgemm peak (2048^3): " + ", ".join(f"{t} thr {g:.1f} GFLOP/s" for t, g in sorted(peak.items())))
    ccore = {r.get("blas_core", "?") for r in rows if r["impl"] == "sgemm"}
    tcore = {r.get("blas_core", "?") for r in rows if r["impl"] == "torch"}
    print(f"OpenBLAS kernels: C {'/'.join(sorted(ccore))}, torch {'/'.join(sorted(tcore))}"
          + ("" if ccore == tcore else "  (DIFFERENT: the ratio compares different sgemm kernels)"))
    hdr = ("| shape | batch | step | C s | torch s (best setting) | torch/C | C GFLOP/s | C % of sgemm peak "
           "| paired torch/C (min-max) | torch GFLOP/s | C peak RSS MiB | torch peak RSS MiB |")
    print(hdr)
    print("|---" * (hdr.count("|") - 1) + "|")
    for k in keys:
        c = times.get(k + (f"c{cthreads}",))
        tset = {s: statistics.median(v) for (a, b, m, s), v in times.items() if (a, b, m) == k and s.startswith("t")}
        if not c or not tset:
            continue
        cm = statistics.median(c)
        best = min(tset, key=tset.get)
        tm = tset[best]
        fl = flops.get(k, 0)
        pct = f"{100 * fl / cm / 1e9 / pk:.0f}%" if pk else "-"
        name = {"tiny": "tiny L2/H128", "mini": "mini L4/H256", "base": "bert-base L12/H768"}[k[0]]
        step = {"infer": "inference fwd", "full": "full FT step", "lora": "LoRA step"}[k[2]]
        pr = []
        for (a, b, m, fi, rd), st in rounds.items():
            tt = [v for s, v in st.items() if s.startswith("t")]
            if (a, b, m) == k and f"c{cthreads}" in st and tt:
                pr.append(min(tt) / st[f"c{cthreads}"])
        paired = f"{statistics.median(pr):.2f}x ({min(pr):.2f}-{max(pr):.2f}, {len(pr)} rounds)" if pr else "-"
        others = ", ".join(f"{s} {v:.3f}" for s, v in sorted(tset.items()) if s != best)
        print(f"| {name} | {k[1]} | {step} | {cm:.3f} | {tm:.3f} ({best}{'; ' + others if others else ''}) "
              f"| {tm / cm:.2f}x | {fl / cm / 1e9:.1f} | {pct} | {paired} | {fl / tm / 1e9:.1f} "
              f"| {rss[k + ('c',)]:.0f} | {rss[k + ('torch',)]:.0f} |")
    for r in rows:
        if r["impl"] == "c-overhead":
            print(f"op counting overhead ({r['shape']} b{r['batch']} {r['mode']}, median of {r['reps']}): "
                  f"off {r['off_s']:.4f} s, opcount {r['opcount_s']:.4f} s, opcount+PAPI {r['opcount_papi_s']:.4f} s; "
                  f"median paired step ratio vs off: opcount {r.get('opcount_paired_pct', float('nan')):+.2f}%, "
                  f"opcount+PAPI {r.get('opcount_papi_paired_pct', float('nan')):+.2f}%; "
                  f"PAPI available {bool(r['papi_available'])}; one PAPI start/stop pair "
                  f"{r.get('papi_pair_us', float('nan')):.1f} us, one op-counter add {r.get('opc_add_ns', float('nan')):.2f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
