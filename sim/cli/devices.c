/* `aal devices`: the CUDA devices, when aal was built with CUDA. */
#include <config.h>

#include "sim/cli/commands.h"

#include <stdio.h>
#include <stdlib.h>

#include "sim/cli/cli.h"

#ifdef AAL_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

int aal_cmd_devices(int argc, char **argv)
{
  const cli_option opts[] = {{0}};
  int rc = cli_parse("devices", "\n\nLists the CUDA devices (when built with CUDA).", opts,
                     argc, argv, 2);
  if (rc != CLI_RUN)
    return rc;
#ifdef AAL_HAVE_CUDA
  char info[512];
  int count = aal_cuda_device_info(info, sizeof info);
  printf("%s\n", info);
  return count >= 0 ? EXIT_SUCCESS : EXIT_FAILURE;
#else
  printf("built without CUDA (configure --with-cuda=yes to enable)\n");
  return EXIT_SUCCESS;
#endif
}
