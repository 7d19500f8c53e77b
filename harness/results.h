/* Result records: one JSON object per run, appended atomically as one line of a JSONL file
 * (util/fileio.h pb_append_line), and read back for tables, plots and checks.
 *
 * Schema "peftbench-result/1" (every key always present; null where not measured):
 * {
 *   "schema": "peftbench-result/1", "time": "2026-11-23T17:00:00Z",
 *   "task": "sst2", "method": "lora",
 *   "method_config": {"r": "8", "alpha": "16", ...},   (strings, from the method's describe)
 *   "method_desc": "r=8,alpha=16,targets=query+value,dropout=0",
 *   "seed": 0,
 *   "config": {...}, "config_id": "8 hex",   the whole training configuration except task and
 *                      seed, and its id (harness/runconfig.h); records without it are older
 *   "head": {"source": "checkpoint" | "initialised", "detail": str, "label_map": str|null},
 *   "tokenizer": {"vocab": path, "vocab_sha256": "64 hex", "lower_case": bool,
 *                 "lower_case_source": "option" | "tokenizer_config.json" | "vocab convention"},
 *   "backbone": {"source": "models/default" | "<dir>" | "random-init", "pretrained": bool,
 *                "fingerprint": "16 hex", "config": {"vocab_size", "hidden", "layers", "heads",
 *                "ffn", "max_pos"}},
 *   "data": {"data_dir": str, "train_examples": int, "max_train": int, "data_seed": int,
 *            "train_subset": "16 hex" (SHA-256 of the kept rows), "max_eval": int,
 *            "eval_examples": {"dev": int}, "max_len": int, "truncated_train": int},
 *   "train": {"epochs": int, "steps": int, "batch": int, "lr": num, "warmup_steps": int, "warmup_ratio": num,
 *             "schedule": "linear-hf", "max_grad_norm": num, "clipped_steps": int,
 *             "grad_norm_curve": [[step, mean norm before clipping], ...] | null,
 *             "weight_decay": num, "final_loss": num, "loss_curve": [[step, loss], ...],
 *             "interrupted": false},
 *   "metrics": {"splits": {"dev": {"accuracy": num, ...}, ...}, "score": num, "main": "accuracy",
 *               "majority_baseline": num},
 *   "params": {"backbone": int, "method": int, "head": int, "trainable": int, "stored": int,
 *              "all": int, "trainable_pct": num, "report": "trainable params: ... || ..."},
 *   "storage": {"path": str, "file_bytes": int, "tensor_bytes": int},
 *   "predictions": {"dev": path, ...},   one file per evaluated split (harness/predictions.h)
 *   "ops": {
 *     "inference_per_example": OPS,   mean over eval examples at their real lengths
 *     "mean_tokens": num,             mean real length of those examples
 *     "inference_T128": OPS,          one example at T = 128
 *     "per_token_T128": OPS,          inference_T128 / 128 (numbers, not integers)
 *     "method_merged_T128": OPS|null, the method's added ops when merged (LoRA), else null
 *     "train_step": OPS, "train_step_shape": [B, T],   one training step (fwd+bwd+AdamW)
 *     "measured": {"train": OPS, "eval": OPS, "eval_analytic": OPS, "eval_match": bool}
 *   },
 *   "counters": <counters/papi.h pb_papi_to_json object>,
 *   "timings": {"train": {"wall_s", "cpu_s", "intervals"}, "eval": {...}, "total_wall_s": num},
 *   "memory": {"peak_rss_kb", "vm_hwm_kb", "current_rss_kb"},
 *   "host": {"hostname": str, "cpu": str, "cores": int, "threads": int,
 *            "blas": {"core": str, "detected": str, "switched": bool},  (backbone/blas.h)
 *            "precision": {"mode": "fp32"|"bf16", "linear", "kernel", "attention", ...}},  (backbone/bf16.h)
 *   "commit": "git sha" | null, "commit_dirty": bool | null   (compiled in at build time)
 * }
 * Records written by `peftbench eval --results` (harness/exitstats.h) add "source": "eval" and
 * "exits" (early-exit statistics, null for a model without exits), with "train" null.
 * OPS = {"matmul_macs": {"backbone", "head", "method", "optimizer", "total"},
 *        "elementwise_flops": {...}, "transcendental": {...}, "flops": {...}}
 * (flops = 2*MACs + elementwise + transcendental, per owner and total).
 */
#ifndef PB_RESULTS_H
#define PB_RESULTS_H

#include <cjson/cJSON.h>

#include "counters/opcount.h"

#define PB_RESULT_SCHEMA "peftbench-result/1"

/* OPS object of the schema above; `scale` divides every number (1 = exact integers). */
cJSON *pb_ops_json(const pb_opcounts *c, double scale);
/* JSON text of obj in which every number reads back as exactly the same double (malloc'd;
 * NULL on OOM). Records, `eval --json` and `run --json` are printed with it. */
char *pb_json_print_exact(const cJSON *obj, int formatted);
/* Appends obj as one line (atomic, fsync'ed), numbers exact; status + message naming the file. */
int pb_result_append(const char *path, const cJSON *obj);

/* Reads every record of a JSONL file. Lines that do not parse as a JSON object (a torn last
 * line after a crash) are skipped and counted in *n_bad. *out is a cJSON array (free it). */
int pb_results_read(const char *path, cJSON **out, int *n_bad);

/* "host" object; the source commit the binary was built from (compiled in at build time;
 * NULL when unknown) and whether that tree had uncommitted changes (1), none (0), unknown (-1). */
cJSON *pb_host_json(int threads);
/* the "precision" object (also inside "host"): mode fp32|bf16, the library and kernel of the
 * linear products, the attention products' precision; for bf16 also fp32_fallbacks and
 * bf16_cache_mib (backbone/bf16.h) */
void pb_precision_json_add(cJSON *obj);
const char *pb_source_commit(void);
int pb_source_dirty(void);
/* Adds obj.commit (sha or null) and obj.commit_dirty (bool or null). */
void pb_commit_json_add(cJSON *obj);
/* ISO-8601 UTC time of now into buf[n] */
void pb_utc_now(char *buf, int n);

#endif
