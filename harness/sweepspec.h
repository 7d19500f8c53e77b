/* Sweep files: a plan of many `peftbench run`s in one human-written JSON file (cJSON).
 *
 *   {
 *     "name": "glue-peft",                  (optional: the file's stem)
 *     "tasks": ["rte", "mrpc"],
 *     "seeds": [0, 1, 2],                   (optional: [0])
 *     "train": {"epochs": 3, "max_len": 128, "lr": [1e-4, 5e-4]},
 *     "methods": ["full",
 *                 {"method": "lora", "options": {"r": [8, 16], "alpha": 16}, "train": {"lr": 5e-4}}],
 *     "runs": [{"task": "sst2", "method": "lora", "options": {"r": 4}, "train": {"epochs": 1}, "seed": 0}],
 *     "threads": 1,                         (optional: per run; default cores / -j)
 *     "slurm": {"partition": "gpu", "time": "02:00:00", "mem": "8G", "cpus_per_task": 2,
 *               "max_parallel": 16, "extra": ["--account=nlp"]}
 *   }
 *
 * Expansion: for every task, every method entry, every combination of its option lists,
 * every combination of the train lists (a method's "train" replaces the top-level value of the
 * keys it names) and every seed, one run; then the explicit "runs" (their own options and train
 * values take one value each; they inherit the top-level "train", whose lists still expand). A
 * scalar is a list of one. Option values are method options (`-o key=value`); train
 * keys are `run`'s options with '_' for '-': epochs, steps, batch, max_len, lr, warmup,
 * weight_decay, dropout, max_grad_norm, max_train, max_eval, data_seed, model, shape, vocab,
 * data_dir, lower_case, teacher, kd_alpha, kd_temp, kd_hidden, and the booleans merge, new_head,
 * test (true adds the flag). Two runs with the same id are one run (the later is dropped).
 *
 * A run's id: the first 12 hex digits of the SHA-256 of its canonical line
 *   task=T;method=M;options=k=v,...;train=k=v,...;seed=S
 * (option and train keys sorted; numbers printed as in the file, %.17g-normalised), so that
 * reordering the file's lists or keys never changes an id, and any change of a run's setting
 * does. */
#ifndef PB_SWEEPSPEC_H
#define PB_SWEEPSPEC_H

#include <cjson/cJSON.h>

#define PB_SWEEP_MAX_KV 48
#define PB_SWEEP_ID_LEN 12

typedef struct {
  char *key, *value;  /* value "" for a boolean flag */
} pb_sweep_kv;

typedef struct {
  char id[PB_SWEEP_ID_LEN + 1];
  char *task, *method;
  pb_sweep_kv opt[PB_SWEEP_MAX_KV];   /* method options, sorted by key */
  int n_opt;
  pb_sweep_kv train[PB_SWEEP_MAX_KV]; /* run options, sorted by key */
  int n_train;
  unsigned long long seed;
  char *canon;                        /* the canonical line the id hashes */
} pb_sweep_run;

typedef struct {
  char *path;              /* the sweep file */
  char *name;
  int threads;             /* "threads" (0: not given) */
  /* slurm */
  char *partition, *time, *mem, *account;
  int cpus_per_task, max_parallel;
  char **extra;            /* "extra" sbatch options */
  int n_extra;
  /* the runs */
  pb_sweep_run *runs;
  int n, cap;
  int n_dup;               /* runs dropped as duplicates of an earlier id */
} pb_sweep;

/* Reads and expands a sweep file. Errors (PB_ERR_FORMAT) name the file and the JSON path
 * ("FILE: methods[1].options.r: expected a number, string or boolean, or a list of them"):
 * not JSON, unknown keys, wrong types, empty lists, unknown tasks or methods, more than 100000
 * runs. */
int pb_sweep_load(const char *path, pb_sweep *sw);
void pb_sweep_free(pb_sweep *sw);

/* argv of `peftbench run` for run r (NULL-terminated, into argv[cap]; strings point into r, the
 * flag table or a per-thread buffer valid until the next call): run --task T --method M
 * -o k=v ... --FLAG v ... --seed S; the caller appends its own (results, out, threads). Returns
 * the count, -1 when cap is short. */
int pb_sweep_run_argv(const pb_sweep_run *r, const char **argv, int cap);
/* one line: "task method k=v,k=v train k=v,k=v seed S" into buf */
void pb_sweep_run_desc(const pb_sweep_run *r, char *buf, size_t n);

#endif
