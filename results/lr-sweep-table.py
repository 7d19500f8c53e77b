"""Prints the learning-rate sweep of results/lr-sweep.sh as a Markdown table: one row per
(backbone, method, lr), the dev main score per task (x100) and their mean; the best rate of each
method (highest mean over the tasks it has all of) is marked. Usage: python3 lr-sweep-table.py FILE"""
import json
import sys

TASKS = ["sst2", "mrpc", "stsb", "rte"]


def main(path):
    cells = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                key = (r["config"]["backbone"][:8], r["method"], float(r["config"]["lr"]))
                cells.setdefault(key, {})[r["task"]] = 100.0 * r["metrics"]["score"]
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"{path}:{n}: not a peftbench result record ({e})")
    best = {}
    for key, scores in cells.items():
        if all(t in scores for t in TASKS):
            mean = sum(scores[t] for t in TASKS) / len(TASKS)
            group = key[:2]
            if group not in best or mean > best[group][1]:
                best[group] = (key, mean)
    chosen = {v[0] for v in best.values()}
    print("| backbone | method | lr | " + " | ".join(TASKS) + " | mean |")
    print("|---|---|---:|" + "---:|" * (len(TASKS) + 1))
    for key in sorted(cells):
        scores = cells[key]
        row = [f"{scores[t]:.1f}" if t in scores else "–" for t in TASKS]
        complete = all(t in scores for t in TASKS)
        mean = f"{sum(scores[t] for t in TASKS) / len(TASKS):.1f}" if complete else "–"
        if key in chosen:
            mean = f"**{mean}**"
        print(f"| {key[0]} | {key[1]} | {key[2]:g} | " + " | ".join(row) + f" | {mean} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: lr-sweep-table.py RESULTS.jsonl")
    main(sys.argv[1])
