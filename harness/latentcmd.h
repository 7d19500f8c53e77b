/* `peftbench autoencoder` and `peftbench compress`: latent-space compression (backbone/latent.h,
 * backbone/autoenc.h). Both return the exit status (0, 1 failure, 2 usage error). */
#ifndef PB_LATENTCMD_H
#define PB_LATENTCMD_H

int pb_cmd_autoencoder(int argc, char **argv);
int pb_cmd_compress(int argc, char **argv);

#endif
