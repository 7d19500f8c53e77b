#!/usr/bin/env python3
"""Markdown table of the latent-compression records (results/latent/run.sh): one row per run with
its compression (from the record's backbone.latent), dev score, parameters, inference FLOPs per
example (at the dev examples' own lengths and at T = 128), training-step FLOPs, peak RSS of the
training run (record memory.peak_rss_kb) and of the eval process (eval-rss.tsv, /usr/bin/time), and
wall and CPU seconds per training step (timings.train.wall_s, cpu_s / train.steps). Every number comes from the
files given.  usage: summary.py RECORDS.jsonl EVAL-RSS.tsv"""
import json
import sys

recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rss = {}
for i, line in enumerate(open(sys.argv[2])):
    f = line.rstrip("\n").split("\t")
    if i and len(f) == 3:
        rss[f[1]] = int(f[2])

print("| model | variant | k | d' | init | dev score | parameters | FLOPs/example (dev) | FLOPs/example (T=128) "
      "| FLOPs/training step | model bytes train (MiB) | of which activations | peak RSS train (MiB) | peak RSS eval (MiB) "
      "| wall s/step | CPU s/step |")
print("|:---|:---|---:|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
base = None
for r in recs:
    lt = r["backbone"].get("latent")
    ops = r["ops"]
    row = {
        "acc": r["metrics"]["score"],
        "params": r["params"]["all"],
        "fdev": ops["inference_per_example"]["flops"]["total"],
        "f128": ops["inference_T128"]["flops"]["total"],
        "ftrain": ops["train_step"]["flops"]["total"],
        "rss": r["memory"]["peak_rss_kb"] / 1024,
        "mb": r["memory"]["model_bytes"]["total"] / 2**20,
        "act": r["memory"]["model_bytes"]["activations"] / 2**20,
        "erss": rss.get(r["storage"]["path"].split("/")[-1], -1) / 1024,
        "sps": r["timings"]["train"]["wall_s"] / r["train"]["steps"],
        "cps": r["timings"]["train"]["cpu_s"] / r["train"]["steps"],
    }
    if lt is None:
        base = row
        name, var, k, dp, init = "uncompressed", "-", "-", str(r["backbone"]["config"]["hidden"]) if isinstance(
            r["backbone"]["config"], dict) else "256", "-"
    else:
        src = r["backbone"]["source"].rstrip("/").split("/")[-1]
        name, var, k, dp = src, lt["variant"], str(lt["cut"]), str(lt["widths"][-1])
        init = "project" if "proj" in src else "fresh"
    rel = lambda key: "" if base is None or row is base else " (%.2f)" % (row[key] / base[key])
    print("| %s | %s | %s | %s | %s | %.4f | %s%s | %.3g%s | %.3g%s | %.3g%s | %.1f%s | %.1f%s | %.0f | %s | %.3f | %.3f%s |" % (
        name, var, k, dp, init, row["acc"], f"{row['params']:,}", rel("params"), row["fdev"], rel("fdev"),
        row["f128"], rel("f128"), row["ftrain"], rel("ftrain"), row["mb"], rel("mb"), row["act"], rel("act"), row["rss"], "%.0f" % row["erss"] if row["erss"] >= 0 else "–", row["sps"], row["cps"], rel("cps")))
