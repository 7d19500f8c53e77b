/* `peftbench compare`: significance tests between two methods or configurations.
 *
 *   peftbench compare A.tsv B.tsv --task T [options]
 *       paired tests over the examples of two prediction files (harness/predictions.h) of the
 *       same split: paired bootstrap (percentile CI, p) and approximate randomisation.
 *   peftbench compare RESULTS.jsonl... --a KEY=VAL[,KEY=VAL] --b KEY=VAL... [--task T] [options]
 *       two groups of result records (one configuration each, distinct seeds): mean ± std
 *       over seeds, Welch's t-test, an exact (or Monte Carlo) permutation test, and, when both
 *       groups have prediction files for the same seeds, the paired tests over examples of the
 *       seed-averaged difference.
 *
 * The statistics are in harness/stats.h (definitions there). Exit status: 0 when the tests
 * ran (significant or not), 1 on bad input (one line naming the file), 2 on usage errors. */
#ifndef PB_COMPARE_H
#define PB_COMPARE_H

/* argv[0] is "compare" */
int pb_cmd_compare(int argc, char **argv);

#endif
