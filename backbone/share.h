/* Parameter-shared backbones (ALBERT-style; Chen et al. 2023 study their inference cost):
 * S encoder steps over G weight sets, G dividing S, each set running S/G consecutive steps:
 * step s runs set floor(s*G/S) (ALBERT's num_hidden_groups rule). G = 1 is fully shared (ALBERT),
 * 1 < G < S partially shared, G = S the plain BERT. A shared model is an ordinary pb_model whose
 * config declares G weight sets (cfg.layers = G) and whose layer plan has S steps
 * (pb_model_set_plan): the parameter table holds each set once, so parameters, storage, the
 * optimizer and saving count it once, and the gradients of every step add up in it.
 *
 * Hugging Face layout: a shared model saves as an ALBERT folder (config.json model_type
 * "albert", num_hidden_layers S, num_hidden_groups G, inner_group_num 1, embedding_size =
 * hidden_size, hidden_act "gelu"; tensors under ALBERT's names, pb_albert_name, plus
 * albert.encoder.embedding_hidden_mapping_in as the identity with a zero bias, which makes HF's
 * AlbertModel compute exactly our forward). Loading such a folder declares G sets, sets the plan
 * and gives every tensor its ALBERT name as an alias (pb_model_apply_albert); a mapping that is
 * not the identity (factorised ALBERT embeddings) is refused. */
#ifndef PB_SHARE_H
#define PB_SHARE_H

#include <stddef.h>

#include "backbone/bert.h"
#include "backbone/safetensors.h"

/* plan[s] = floor(s*G/S) for s < S. PB_ERR_ARG (one line naming both) when S < 1, G < 1 or G
 * does not divide S. */
int pb_share_plan(int steps, int groups, int *plan);
/* Declares cfg (cfg->layers = L encoder steps) with G weight sets: L steps, groups of L/G
 * consecutive steps. G = L is exactly pb_model_declare(m, cfg). PB_ERR_ARG when G does not
 * divide L or G < 1 (the model is left empty). */
int pb_model_declare_shared(pb_model *m, const pb_config *cfg, int groups);
/* G when the plan is groups of consecutive steps over every declared set (cfg.layers = G and
 * plan[s] = floor(s*G/S); the identity gives G = S), else 0 */
int pb_model_share_groups(const pb_model *m);
/* 1 when the plan is not the identity (some set runs more than one step) */
int pb_model_is_shared(const pb_model *m);

/* ALBERT's name of one of our tensor names (bert.encoder.layer.G.attention.self.query.weight ->
 * albert.encoder.albert_layer_groups.G.albert_layers.0.attention.query.weight, bert.pooler.dense.*
 * -> albert.pooler.*, cls.predictions.transform.* -> predictions.*, ...). Returns 1 and writes out
 * when the name has another ALBERT spelling, 0 when it keeps its own (classifier.*, method
 * tensors). */
int pb_albert_name(const char *name, char *out, size_t n);
#define PB_ALBERT_MAP_W "albert.encoder.embedding_hidden_mapping_in.weight"
#define PB_ALBERT_MAP_B "albert.encoder.embedding_hidden_mapping_in.bias"
/* On a model declared from an ALBERT config (cfg.layers = G weight sets): the plan of S steps
 * and every tensor's ALBERT name as an alias, so pb_model_load_hf reads the folder. */
int pb_model_apply_albert(pb_model *m, int steps);
/* PB_ERR_UNSUPPORTED naming the file when f holds an embedding_hidden_mapping_in that is not
 * the d x d identity with a zero bias; PB_OK when it is, or is absent. */
int pb_albert_check_mapping(const pb_st_file *f, int d);

/* The tensors of an HF folder for m: every backbone and head tensor (with_classifier = 0 leaves
 * out classifier.*), under ALBERT's names plus the identity mapping when m is shared, else
 * under their own names. PB_ERR_UNSUPPORTED when a shared model's plan is not consecutive groups
 * or it has shapes ALBERT cannot express (width segments, pruned sets, factorised embeddings). */
typedef struct {
  pb_st_wtensor *w;        /* [n] */
  int n;
  char (*names)[PB_NAME_MAX]; /* [n] the names w points at */
  float *map;              /* [d*d + d] the identity mapping and its zero bias (shared only) */
  int map_shape[3];        /* {d, d} and {d} */
} pb_hf_tensors;
int pb_hf_tensors_build(pb_hf_tensors *l, const pb_model *m, int with_classifier);
void pb_hf_tensors_free(pb_hf_tensors *l);

/* Making a shared model from an unshared one of the same S, hidden, heads and ffn: every
 * non-layer backbone tensor (embeddings, pooler) is copied, and each weight set g of dst becomes
 * the mean (PB_SHARE_INIT_MEAN) of src's layers in its group, or the group's first layer
 * (PB_SHARE_INIT_FIRST). Head and method tensors are not touched. Both models' parameters must
 * be allocated. PB_ERR_SHAPE when the shapes differ. */
enum { PB_SHARE_INIT_MEAN = 0, PB_SHARE_INIT_FIRST = 1 };
int pb_share_init_from(pb_model *dst, const pb_model *src, int how);

#endif
