/* libaal: everything the `aal` command and the tests use. */
#ifndef AAL_H
#define AAL_H

#include "sim/core/error.h"
#include "sim/core/tensor.h"
#include "sim/layers/conv.h"
#include "sim/layers/layers.h"
#include "sim/layers/transformer.h"
#include "sim/core/tape.h"
#include "sim/bench/bench.h"
#include "sim/model/smoke.h"
#include "sim/model/rules.h"
#include "sim/model/resnet.h"
#include "sim/model/memory.h"
#include "sim/model/storage.h"
#include "sim/train/train.h"
#include "sim/train/checkpoint.h"
#include "sim/train/npy.h"
#include "sim/data/data.h"
#include "sim/model/li_record.h"
#include "sim/model/align.h"

#endif
