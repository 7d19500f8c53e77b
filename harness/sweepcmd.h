/* `peftbench sweep plan|run|slurm|collect|status|exec`: many runs from one sweep file
 * (harness/sweepspec.h), locally (harness/sweeprun.h) or on Slurm (harness/sweepslurm.h). */
#ifndef PB_SWEEPCMD_H
#define PB_SWEEPCMD_H

int pb_cmd_sweep(int argc, char **argv);

#endif
