/* `peftbench slenderize`: COST-EFF slenderization of a backbone on one GLUE task
 * (backbone/slender.h): Taylor importance over K training batches with the model's current
 * head, heads / FFN neurons pruned, word embeddings factorised, an HF-style folder written
 * (config.json carries "peftbench_slender", which pb_build_model applies before loading). */
#ifndef PB_SLENDERCMD_H
#define PB_SLENDERCMD_H

int pb_cmd_slenderize(int argc, char **argv);

#endif
