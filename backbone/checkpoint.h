/* Checkpoints: HF BERT folders (config.json + model.safetensors) and our task files.
 *
 * HF folder:  config.json (BertConfig fields), vocab.txt (copied by the caller) and
 *             model.safetensors with HF tensor names ("bert.embeddings.word_embeddings.weight",
 *             "bert.encoder.layer.3.attention.self.query.weight", ..., "classifier.weight").
 *             The loader also accepts the prefix-less naming ("embeddings....", as saved by a
 *             bare BertModel) and the old LayerNorm names "gamma"/"beta".
 * Task file:  a safetensors file holding ONLY the tensors with stored = 1 in the parameter
 *             table (method tensors + head; everything for full fine-tuning), with metadata
 *             "format" = "peftbench-task", "format_version" = "1" and the caller's pairs
 *             (method, method config, task, config JSON, backbone fingerprint, ...).
 *
 * All writes are atomic (tmp + fsync + rename): a failed save never damages an existing
 * file. On a load error the model's values may be partly overwritten only for errors found
 * while converting data (non-finite values, unreadable dtype); names and shapes are all
 * checked before any value is touched. */
#ifndef PB_CHECKPOINT_H
#define PB_CHECKPOINT_H

#include "backbone/bert.h"
#include "backbone/safetensors.h"

#define PB_TASK_FORMAT "peftbench-task"
#define PB_TASK_FORMAT_VERSION "1"

/* Reads an HF BERT config.json into cfg. Required: vocab_size, hidden_size,
 * num_hidden_layers, num_attention_heads, intermediate_size (positive integers). Optional,
 * with BertConfig's defaults: max_position_embeddings (512), type_vocab_size (2),
 * layer_norm_eps (1e-12), hidden_dropout_prob (0.1), attention_probs_dropout_prob (0.1),
 * initializer_range (0.02), hidden_act ("gelu": anything else is PB_ERR_UNSUPPORTED, as is
 * a position_embedding_type other than "absolute" or a model_type other than "bert").
 * Wrong types are PB_ERR_FORMAT naming the field and the file. cfg->num_labels is the
 * caller's: it is kept if positive, else set to 2. */
int pb_config_load_hf(const char *config_json_path, pb_config *cfg);

/* Slender shapes of an HF folder written by pb_model_save_hf (model_dir/config.json key
 * "peftbench_slender": {"layers": [{"hidden", "heads", "head_dim", "ffn"} per layer],
 * "word_rank": r}, present only when some set differs from the config or the word embeddings
 * are factorised): applies them to a declared model (pb_model_set_shape per differing set,
 * pb_model_factor_word when r > 0), before methods attach and before alloc. Without the key:
 * nothing changes. Malformed: PB_ERR_FORMAT naming the file. */
int pb_model_apply_hf_shape(pb_model *m, const char *model_dir);

/* Fills every backbone tensor of an allocated model (pb_model_declare + pb_model_alloc)
 * from model_dir/model.safetensors. Missing backbone tensor: PB_ERR_NOTFOUND naming it;
 * shape mismatch: PB_ERR_SHAPE with both shapes; non-finite value: PB_ERR_NUMERIC naming the
 * tensor. Extra tensors (cls.predictions.*, position_ids, ...) are ignored. Head tensors
 * (classifier.*) are loaded when present with the model's shape, otherwise left as they are.
 * Method tensors are not touched. */
int pb_model_load_hf(pb_model *m, const char *model_dir);
/* The same; load_head = 0 leaves the head as it is even when the file has one that fits.
 * Either way m->hf_head says what the file held (PB_HF_HEAD_*) and m->hf_head_note names
 * the mismatching tensor and both shapes. */
int pb_model_load_hf_ex(pb_model *m, const char *model_dir, int load_head);

/* Writes dir/config.json and dir/model.safetensors (F32; all backbone + head tensors under
 * their HF names, metadata {"format": "pt"}) so that our own pretraining produces an HF-style
 * folder. Creates dir if it does not exist (one level). vocab.txt is the caller's. */
int pb_model_save_hf(const pb_model *m, const char *dir);

/* Writes the tensors with stored = 1 to a task file at path, with metadata
 * format/format_version followed by meta [n_meta] (whose keys must not be "format" or
 * "format_version"). Non-finite values are PB_ERR_NUMERIC naming the tensor (nothing is
 * written). */
int pb_task_save(const pb_model *m, const char *path, const pb_kv *meta, int n_meta);
/* The same, but an existing file at path is never replaced (PB_ERR_IO "exists already"),
 * even by a process racing this one. */
int pb_task_save_new(const pb_model *m, const char *path, const pb_kv *meta, int n_meta);

/* Fills the stored tensors of m from a task file. Every stored tensor must be in the file
 * with the same shape (PB_ERR_NOTFOUND / PB_ERR_SHAPE otherwise), and every tensor in the
 * file must be a stored tensor of m (PB_ERR_NOTFOUND: the model was built with another
 * method or config). If meta is non-NULL, *meta receives all metadata pairs (malloc'd; free
 * with pb_kv_free(*meta, *n_meta)). Bumps m->params.version. */
int pb_task_load(pb_model *m, const char *path, pb_kv **meta, int *n_meta);

/* Reads only the metadata of a task file (to build the right model before loading), after
 * checking that it is a peftbench task file of a supported version. Free with pb_kv_free. */
int pb_task_read_meta(const char *path, pb_kv **meta, int *n_meta);

#endif
