#include "sim/core/tape.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  char layer[AAL_TAPE_NAME_LEN];
  char slot[AAL_TAPE_NAME_LEN];
  aal_tensor *tensor;
  int first_owner;  /* 1 when no earlier entry holds the same tensor */
} tape_entry;

struct aal_tape {
  tape_entry *entries;
  size_t count;
  size_t capacity;
};

aal_tape *aal_tape_new(aal_error *err)
{
  aal_tape *tape = calloc(1, sizeof *tape);
  if (tape == NULL)
    aal_fail(err, AAL_ENOMEM, "cannot allocate a tape");
  return tape;
}

void aal_tape_clear(aal_tape *tape)
{
  if (tape == NULL)
    return;
  for (size_t i = 0; i < tape->count; i++)
    aal_tensor_release(tape->entries[i].tensor);
  tape->count = 0;
}

void aal_tape_free(aal_tape *tape)
{
  if (tape == NULL)
    return;
  aal_tape_clear(tape);
  free(tape->entries);
  free(tape);
}

static const tape_entry *find(const aal_tape *tape, const char *layer, const char *slot)
{
  for (size_t i = 0; i < tape->count; i++)
    if (strcmp(tape->entries[i].layer, layer) == 0 && strcmp(tape->entries[i].slot, slot) == 0)
      return &tape->entries[i];
  return NULL;
}

static int check_name(const char *name, const char *what, aal_error *err)
{
  if (name == NULL || name[0] == '\0')
    return aal_fail(err, AAL_ETAPE, "tape: %s name is empty", what);
  if (strlen(name) >= AAL_TAPE_NAME_LEN)
    return aal_fail(err, AAL_ETAPE, "tape: %s name '%s' is longer than %d characters", what,
                    name, AAL_TAPE_NAME_LEN - 1);
  return AAL_OK;
}

static int grow(aal_tape *tape, aal_error *err)
{
  if (tape->count < tape->capacity)
    return AAL_OK;
  size_t capacity = tape->capacity ? 2 * tape->capacity : 32;
  tape_entry *entries = realloc(tape->entries, capacity * sizeof *entries);
  if (entries == NULL)
    return aal_fail(err, AAL_ENOMEM, "tape: cannot grow to %zu entries", capacity);
  tape->entries = entries;
  tape->capacity = capacity;
  return AAL_OK;
}

int aal_tape_save(aal_tape *tape, const char *layer, const char *slot, aal_tensor *t,
                  aal_error *err)
{
  if (tape == NULL || t == NULL)
    return aal_fail(err, AAL_EINVAL, "tape save: %s is NULL", tape == NULL ? "tape" : "tensor");
  int rc = check_name(layer, "layer", err);
  if (rc == AAL_OK)
    rc = check_name(slot, "slot", err);
  if (rc != AAL_OK)
    return rc;
  if (find(tape, layer, slot) != NULL)
    return aal_fail(err, AAL_ETAPE, "tape: %s/%s is already saved", layer, slot);
  if ((rc = grow(tape, err)) != AAL_OK)
    return rc;
  tape_entry *e = &tape->entries[tape->count];
  strcpy(e->layer, layer);
  strcpy(e->slot, slot);
  e->tensor = aal_tensor_retain(t);
  e->first_owner = 1;
  for (size_t i = 0; i < tape->count; i++)
    if (tape->entries[i].tensor == t)
      e->first_owner = 0;
  tape->count++;
  return AAL_OK;
}

const aal_tensor *aal_tape_load(const aal_tape *tape, const char *layer, const char *slot,
                                aal_error *err)
{
  if (tape == NULL || layer == NULL || slot == NULL) {
    aal_fail(err, AAL_EINVAL, "tape load: NULL argument");
    return NULL;
  }
  const tape_entry *e = find(tape, layer, slot);
  if (e == NULL) {
    aal_fail(err, AAL_ETAPE, "tape: backward of %s needs %s/%s, which the forward pass did "
             "not save", layer, layer, slot);
    return NULL;
  }
  return e->tensor;
}

size_t aal_tape_count(const aal_tape *tape)
{
  return tape == NULL ? 0 : tape->count;
}

size_t aal_tape_unique_count(const aal_tape *tape)
{
  size_t n = 0;
  for (size_t i = 0; tape != NULL && i < tape->count; i++)
    n += (size_t)tape->entries[i].first_owner;
  return n;
}

static size_t entry_bytes(const tape_entry *e, int at_f32)
{
  return at_f32 ? aal_tensor_bytes_f32(e->tensor) : aal_tensor_bytes(e->tensor);
}

size_t aal_tape_bytes(const aal_tape *tape)
{
  size_t total = 0;
  for (size_t i = 0; tape != NULL && i < tape->count; i++)
    if (tape->entries[i].first_owner)
      total += entry_bytes(&tape->entries[i], 0);
  return total;
}

size_t aal_tape_bytes_f32(const aal_tape *tape)
{
  size_t total = 0;
  for (size_t i = 0; tape != NULL && i < tape->count; i++)
    if (tape->entries[i].first_owner)
      total += entry_bytes(&tape->entries[i], 1);
  return total;
}

size_t aal_tape_layer_bytes(const aal_tape *tape, const char *layer, int at_f32)
{
  size_t total = 0;
  for (size_t i = 0; tape != NULL && layer != NULL && i < tape->count; i++) {
    const tape_entry *e = &tape->entries[i];
    if (e->first_owner && strcmp(e->layer, layer) == 0)
      total += entry_bytes(e, at_f32);
  }
  return total;
}

static int seen_layer_before(const aal_tape *tape, size_t i)
{
  for (size_t k = 0; k < i; k++)
    if (strcmp(tape->entries[k].layer, tape->entries[i].layer) == 0)
      return 1;
  return 0;
}

size_t aal_tape_layers(const aal_tape *tape, const char **names, size_t max)
{
  size_t n = 0;
  for (size_t i = 0; tape != NULL && i < tape->count; i++) {
    if (seen_layer_before(tape, i))
      continue;
    if (n < max)
      names[n] = tape->entries[i].layer;
    n++;
  }
  return n;
}

int aal_tape_report(const aal_tape *tape, FILE *out)
{
  if (tape == NULL || out == NULL)
    return AAL_EINVAL;
  fprintf(out, "%-28s %-40s %14s %14s\n", "layer", "saved (slot:shape, *=shared)", "bytes",
          "bytes@f32");
  for (size_t i = 0; i < tape->count; i++) {
    if (seen_layer_before(tape, i))
      continue;
    const char *layer = tape->entries[i].layer;
    char slots[256] = "";
    size_t used = 0;
    for (size_t k = i; k < tape->count && used < sizeof slots; k++) {
      const tape_entry *e = &tape->entries[k];
      if (strcmp(e->layer, layer) != 0)
        continue;
      char shape[64];
      aal_tensor_shape_str(e->tensor, shape, sizeof shape);
      int n = snprintf(slots + used, sizeof slots - used, "%s%s:%s%s%s", used ? " " : "",
                       e->slot, shape, e->tensor->dtype == AAL_BITS ? "b" : "",
                       e->first_owner ? "" : "*");
      if (n < 0)
        break;
      used += (size_t)n;
    }
    fprintf(out, "%-28s %-40s %14zu %14zu\n", layer, slots,
            aal_tape_layer_bytes(tape, layer, 0), aal_tape_layer_bytes(tape, layer, 1));
  }
  fprintf(out, "%-28s %-40s %14zu %14zu\n", "total", "", aal_tape_bytes(tape),
          aal_tape_bytes_f32(tape));
  return AAL_OK;
}
