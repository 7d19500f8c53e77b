/* `peftbench eval`: evaluates a saved task file, or a Hugging Face
 * BertForSequenceClassification folder as it is, on dev (and test) splits; prints the
 * metrics (or JSON with --json) and writes one prediction file per split
 * (harness/predictions.h). */
#ifndef PB_EVALCMD_H
#define PB_EVALCMD_H

int pb_cmd_eval(int argc, char **argv);

#endif
