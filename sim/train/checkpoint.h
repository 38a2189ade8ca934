/* Checkpoints of a ResNet: every parameter, buffer and SGD momentum buffer by name,
 * plus the step counter.  Written atomically (temporary file in the same directory,
 * fsync, rename, fsync of the directory), so a crash leaves the previous checkpoint
 * intact.  Format (little-endian, as on the machines this runs on):
 *   "AALCKPT\0" u32 version=1  u64 step  u32 count
 *   count x { u32 name_len, name bytes, u32 ndim, u64 shape[ndim], u8 has_momentum,
 *             f64 value[size], f64 momentum[size] if has_momentum }
 *   u64 FNV-1a 64 (aal_data_fnv1a64) of every byte before it */
#ifndef AAL_CHECKPOINT_H
#define AAL_CHECKPOINT_H

#include <stdint.h>

#include "sim/model/resnet.h"

int aal_checkpoint_save(const aal_resnet *net, uint64_t step, const char *path,
                        aal_error *err);
/* Loads into a network built with the same configuration: every name must be present
 * once with the same shape (errors name the file and the tensor; a tensor given twice,
 * and so another missing, is AAL_EFORMAT naming it).  A bad checksum, a short
 * file or an unknown version is AAL_EFORMAT; a path that is not a regular file (a
 * directory, a FIFO) is AAL_EIO naming it, found before anything is read. */
int aal_checkpoint_load(aal_resnet *net, uint64_t *step, const char *path, aal_error *err);

/* Writes len bytes to path atomically (temp file, fsync, rename, fsync of the directory). */
int aal_write_atomic(const char *path, const void *data, size_t len, aal_error *err);

/* Reads the whole file into *data (malloc'd, *len bytes; free it whatever the status).
 * A regular file only (O_NONBLOCK: opening a FIFO does not wait for a writer; fstat then
 * refuses it, as it refuses a directory or a device): AAL_EIO "PATH is a directory, not
 * KIND" (kind: "a checkpoint file"), or naming the path and the system's reason. */
int aal_read_file(const char *path, const char *kind, unsigned char **data, size_t *len,
                  aal_error *err);

#endif
