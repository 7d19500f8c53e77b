#!/usr/bin/env python3
"""Markdown tables of the issue-17 measurements from results/shared/runs.jsonl and ode-TASK.jsonl:
score (dev accuracy x100) and exact inference FLOPs per example at every S' for each backbone and
method, then parameters and storage per backbone and method.
    python3 results/shared/summary.py [results/shared]"""
import json
import os
import sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__))


def load(name):
    with open(os.path.join(d, name)) as f:
        return [json.loads(l) for l in f if l.strip()]


def bb_name(src):
    s = src.rstrip("/")
    return "default (unshared)" if s.endswith("models/default") else os.path.basename(s)


runs = load("runs.jsonl")
ode = [r for f in sorted(os.listdir(d)) if f.startswith("ode-") and f.endswith(".jsonl") for r in load(f)]
tasks = sorted({r["task"] for r in ode})
rows = {}
for r in ode:
    key = (r["task"], bb_name(r["backbone"]["source"]), r["method"])
    rows.setdefault(key, {})[r["ode"]["steps_run"]] = (r["metrics"]["score"], r["ops"]["inference_per_example"]["flops"]["total"])
steps = sorted({s for v in rows.values() for s in v})
for task in tasks:
    print(f"\n{task}: dev score x100 / mean inference GFLOPs per example at S' steps\n")
    print("| backbone | method | " + " | ".join(f"S'={s}" for s in steps) + " |")
    print("|---|---|" + "---|" * len(steps))
    for (t, bb, m), v in sorted(rows.items()):
        if t != task:
            continue
        cells = [f"{100 * v[s][0]:.1f} / {v[s][1] / 1e9:.3f}" if s in v else "–" for s in steps]
        print(f"| {bb} | {m} | " + " | ".join(cells) + " |")
print("\nparameters and storage (run records)\n")
print("| task | backbone | method | backbone params | trainable (+head) | task file bytes |")
print("|---|---|---|---|---|---|")
for r in runs:
    p = r["params"]
    print(f"| {r['task']} | {bb_name(r['backbone']['source'])} | {r['method']} | {p['backbone']:,} | {p['trainable']:,} | {r['storage']['file_bytes']:,} |")
