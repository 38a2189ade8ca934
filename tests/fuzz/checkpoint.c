/* Fuzzes the checkpoint loader (sim/train/checkpoint.c, aal_checkpoint_load) on a tiny
 * ResNet (width 1/64, blocks 1,1,1,1, 1x16x16 input, 2 classes).
 *
 * Each input is loaded twice: as it is, and with its last 8 bytes replaced by the FNV-1a
 * checksum of the rest, so that the fuzzer gets past the checksum into the tensor
 * records.  Property: a load that succeeds leaves a network that saves and loads back
 * bit for bit (values, momentum buffers and step).
 *
 * FUZZ_WRITE_SEEDS=DIR writes the seed corpus (a checkpoint of this network with some
 * momentum buffers, one without any, a truncated one and a header alone) and exits. */
#include "tests/fuzz/fuzz.h"

#include "sim/data/data.h"
#include "sim/model/resnet.h"
#include "sim/train/checkpoint.h"

static aal_resnet net;
static char in_path[4200], out_path[4200];

static void make_net(void)
{
  aal_resnet_config cfg;
  aal_error err;
  aal_resnet_config_default(&cfg);
  int rc = aal_resnet_config_set_width(&cfg, 1.0 / 64, &err);
  if (rc == AAL_OK)
    rc = aal_resnet_config_set_blocks(&cfg, "1,1,1,1", &err);
  cfg.classes = 2;
  cfg.in_channels = 1;
  cfg.in_size = 16;
  if (rc == AAL_OK)
    rc = aal_resnet_init(&net, &cfg, 1, &err);
  if (rc != AAL_OK) {
    fprintf(stderr, "fuzz: cannot build the network: %s\n", err.msg);
    exit(2);
  }
}

/* Every value and momentum byte of the network, and which tensors have momentum. */
static unsigned char *snapshot(size_t *len)
{
  size_t n = 0;
  for (int i = 0; i < net.nparams; i++)
    n += 1 + net.params[i].value->size * sizeof(double) * 2;
  unsigned char *b = malloc(n), *p = b;
  FUZZ_SETUP(b != NULL, "snapshot");
  for (int i = 0; i < net.nparams; i++) {
    const aal_param *q = &net.params[i];
    const size_t bytes = q->value->size * sizeof(double);
    *p++ = q->momentum != NULL;
    memcpy(p, q->value->data, bytes);
    p += bytes;
    if (q->momentum != NULL)
      memcpy(p, q->momentum->data, bytes);
    else
      memset(p, 0, bytes);
    p += bytes;
  }
  *len = n;
  return b;
}

static void load(const uint8_t *data, size_t size)
{
  aal_error err;
  uint64_t step = 0;
  fuzz_write(in_path, data, size);
  if (aal_checkpoint_load(&net, &step, in_path, &err) != AAL_OK)
    return;
  /* what loaded saves and loads back exactly */
  size_t la, lb;
  unsigned char *a = snapshot(&la);
  FUZZ_REQUIRE(aal_checkpoint_save(&net, step, out_path, &err) == AAL_OK, "%s", err.msg);
  uint64_t step2 = ~step;
  FUZZ_REQUIRE(aal_checkpoint_load(&net, &step2, out_path, &err) == AAL_OK, "%s", err.msg);
  unsigned char *b = snapshot(&lb);
  FUZZ_REQUIRE(step2 == step && la == lb && memcmp(a, b, la) == 0,
               "saved and loaded again, the network differs (step %llu, %llu)",
               (unsigned long long)step, (unsigned long long)step2);
  free(a);
  free(b);
}

static void write_seeds(const char *dir)
{
  aal_error err;
  char path[4200];
  fuzz_path(path, sizeof path, dir, "plain.ckpt");
  FUZZ_SETUP(aal_checkpoint_save(&net, 0, path, &err) == AAL_OK, err.msg);
  /* momentum on every other tensor, a later step */
  for (int i = 0; i < net.nparams; i += 2) {
    aal_param *p = &net.params[i];
    p->momentum = aal_tensor_new_like(p->value, &err);
    FUZZ_SETUP(p->momentum != NULL, err.msg);
    for (size_t k = 0; k < p->value->size; k++)
      p->momentum->data[k] = 0.001 * (double)(k + 1) - 0.01;
  }
  fuzz_path(path, sizeof path, dir, "momentum.ckpt");
  FUZZ_SETUP(aal_checkpoint_save(&net, 12345, path, &err) == AAL_OK, err.msg);
  size_t len;
  unsigned char *b = fuzz_read(path, &len);
  FUZZ_SETUP(b != NULL, path);
  fuzz_path(path, sizeof path, dir, "truncated.ckpt");
  fuzz_write(path, b, 2000);
  fuzz_path(path, sizeof path, dir, "header-only.ckpt");
  fuzz_write(path, b, 24);
  free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  const char *root = fuzz_tmpdir("checkpoint");
  fuzz_path(in_path, sizeof in_path, root, "in.ckpt");
  fuzz_path(out_path, sizeof out_path, root, "out.ckpt");
  make_net();
  const char *seeds = getenv("FUZZ_WRITE_SEEDS");
  if (seeds != NULL && *seeds != '\0') {
    write_seeds(seeds);
    exit(0);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  load(data, size);
  if (size >= 8 + 4 + 8 + 4 + 8) {
    uint8_t *fixed = malloc(size);
    FUZZ_SETUP(fixed != NULL, "malloc");
    memcpy(fixed, data, size);
    const uint64_t sum = aal_data_fnv1a64(AAL_FNV1A64_INIT, fixed, size - 8);
    memcpy(fixed + size - 8, &sum, 8);
    load(fixed, size);
    free(fixed);
  }
  return 0;
}
