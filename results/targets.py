#!/usr/bin/env python3
"""Issue 14's targets, computed from result records (standard library only).

    python3 results/targets.py DEFAULT.jsonl RANDOM.jsonl > results/targets.md

DEFAULT.jsonl holds runs over the pre-trained default backbone, RANDOM.jsonl the same runs over a
random-initialised backbone of the same shape (results/reproduce.sh writes both). Targets:
  1. SST-2 dev accuracy over the default (full training set, 1 epoch): LoRA >= 0.82, full >= 0.85.
  2. For every PEFT method (LoRA, Adapter, LayerConnect): the average of SST-2 accuracy, MRPC
     accuracy, RTE accuracy and STS-B Pearson over the default beats the same average over the
     random backbone by at least 10 points; full fine-tuning over the default beats full
     fine-tuning from random initialisation.
A cell is the mean over the seeds of one training configuration; a (task, method) with records of
more than one configuration in one file is refused, since their mean would mean nothing.
Exit status 1 on unreadable or mixed input, 0 otherwise (a missed target is reported, not an
error).
"""
import json
import statistics
import sys

TASKS = [("sst2", "accuracy", "SST-2 acc"), ("mrpc", "accuracy", "MRPC acc"), ("rte", "accuracy", "RTE acc"),
         ("stsb", "pearson", "STS-B Pearson")]
PEFT = ["lora", "adapter", "layerconnect"]


def load(path):
    cells = {}  # (task, method) -> {"config": id, "scores": [...], "backbone": fingerprint, "majority": x}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        sys.exit(f"targets.py: {path}: {e.strerror}")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            task, method = r["task"], r["method"]
            # records before the config id existed: their method configuration stands in
            cid = r.get("config_id") or json.dumps(r.get("config", r.get("method_config")), sort_keys=True)
            dev = r["metrics"]["splits"]["dev"]
        except (ValueError, KeyError, TypeError) as e:
            sys.exit(f"targets.py: {path}:{n}: not a peftbench result record ({e})")
        metric = dict((t, m) for t, m, _ in TASKS).get(task)
        if metric is None:
            continue
        c = cells.setdefault((task, method), {"config": cid, "scores": [], "backbone": r["backbone"]["fingerprint"][:8],
                                              "majority": r["metrics"].get("majority_baseline") if r["metrics"].get("main") == metric else None,
                                              "train": r.get("data", {}).get("train_examples"), "epochs": r.get("train", {}).get("epochs")})
        if c["config"] != cid:
            sys.exit(f"targets.py: {path}:{n}: {task}/{method} has records of two configurations "
                     f"({c['config']} and {cid}); keep one per file")
        c["scores"].append(dev[metric])
    return cells


def mean(cells, task, method):
    c = cells.get((task, method))
    return (statistics.mean(c["scores"]), len(c["scores"])) if c else (None, 0)


def fmt(x):
    return "–" if x is None else f"{100 * x:.1f}"


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    d, r = load(sys.argv[1]), load(sys.argv[2])
    out = ["# Issue 14 targets", "", f"From `{sys.argv[1]}` (pre-trained default) and `{sys.argv[2]}` (random "
           "initialisation, same shape); scores x100 on the GLUE dev sets, mean over seeds (n runs).", "",
           "## SST-2 over the default", "", "| method | dev accuracy | n | training examples | epochs | target | met |",
           "|:---|---:|---:|---:|---:|---:|:---|"]
    for method, target in (("lora", 0.82), ("full", 0.85)):
        m, n = mean(d, "sst2", method)
        c = d.get(("sst2", method), {})
        out.append(f"| {method} | {fmt(m)} | {n} | {c.get('train', '–')} | {c.get('epochs', '–')} | {100 * target:.0f} | "
                   f"{'–' if m is None else 'yes' if m >= target else 'no'} |")
    out += ["", "## Pre-trained default vs random initialisation", "",
            "| method | backbone | " + " | ".join(h for _, _, h in TASKS) + " | Avg | default − random | target | met |",
            "|:---|:---|" + "---:|" * len(TASKS) + "---:|---:|:---|:---|"]
    for method in PEFT + ["full"]:
        avgs = []
        for cells in (d, r):
            vals = [mean(cells, t, method) for t, _, _ in TASKS]
            avg = statistics.mean(v for v, _ in vals) if all(v is not None for v, _ in vals) else None
            avgs.append(avg)
            bb = next((c["backbone"] for (t, me), c in cells.items() if me == method), "–")
            row = f"| {method} | {bb} | " + " | ".join(f"{fmt(v)} (n={k})" if v is not None else "–" for v, k in vals)
            if cells is d:
                out.append(row + f" | {fmt(avg)} | | | |")
            else:
                diff = None if None in avgs else avgs[0] - avgs[1]
                need = 0.10 if method != "full" else 0.0
                met = "–" if diff is None else "yes" if diff >= need and (method != "full" or diff > 0) else "no"
                out.append(row + f" | {fmt(avg)} | {'–' if diff is None else f'{100 * diff:+.1f}'} | "
                           f"{'≥ +10' if method != 'full' else '> 0'} | {met} |")
    maj = [d.get((t, "lora"), {}).get("majority") for t, _, _ in TASKS]
    out += ["", "Majority-class baselines (dev), where the record's main metric is the one above: " + ", ".join(
        f"{h} {fmt(m)}" for (_, _, h), m in zip(TASKS, maj) if m is not None) +
        "; STS-B has none (a constant has no correlation). The full training sets: SST-2 67,349, MRPC 3,668, "
        "RTE 2,490, STS-B 5,749 examples."]
    print("\n".join(out))


if __name__ == "__main__":
    main()
