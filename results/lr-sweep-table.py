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
    means = {key: sum(sc[t] for t in TASKS) / len(TASKS) for key, sc in cells.items() if all(t in sc for t in TASKS)}
    best = {}
    for key, mean in means.items():
        group = key[:2]
        if group not in best or mean > means[best[group]]:
            best[group] = key
    chosen = set(best.values())
    print("| backbone | method | lr | " + " | ".join(TASKS) + " | mean |")
    print("|---|---|---:|" + "---:|" * (len(TASKS) + 1))
    for key in sorted(cells):
        row = [f"{cells[key][t]:.1f}" if t in cells[key] else "–" for t in TASKS]
        mean = f"{means[key]:.1f}" if key in means else "–"
        if key in chosen:
            mean = f"**{mean}**"
        print(f"| {key[0]} | {key[1]} | {key[2]:g} | " + " | ".join(row) + f" | {mean} |")

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: lr-sweep-table.py RESULTS.jsonl")
    main(sys.argv[1])
